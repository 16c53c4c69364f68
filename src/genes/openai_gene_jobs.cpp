// Gene workflows over the OpenAI layers: direct embedding, Batch API jobs for embeddings and
// enrichment (openai_gene_jobs.hpp).
#include <celltyper/error.hpp>
#include <celltyper/openai_gene_jobs.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>

namespace celltyper::openai {

std::optional<BatchJobInfo> find_batch_job(const std::string& directory, const std::string& kind) {
  if (!std::filesystem::exists(std::filesystem::path(directory) / "job.json")) return std::nullopt;
  BatchJobInfo job = open_batch_job(directory);
  const std::string found = job.metadata.is_object() ? job.metadata.value("kind", "") : "";
  if (found != kind) {
    throw InputError(fmt::format("{} holds a batch job of kind '{}', not '{}' ({})", directory, found.empty() ? "?" : found, kind,
                                 kind == std::string(kGeneEmbeddingsJob) ? "use 'genes enrich' for that one" : "use 'genes embed' for that one"));
  }
  return job;
}

std::string next_step(const BatchCollectResult& result, const std::string& directory, bool submitted, std::size_t max_rounds) {
  if (result.complete) return "";
  if (!result.pending.empty()) return "batches are still running: run --collect again later (or add --wait SECONDS)";
  if (!result.new_round.empty()) {
    return submitted ? fmt::format("{} was submitted: run --collect again later", result.new_round)
                     : fmt::format("submit {}/{} (add --submit) and run --collect again", directory, result.new_round);
  }
  if (!result.awaiting.empty()) {
    return fmt::format("submit the request files (add --submit) or put their output files into the round directories of {}", directory);
  }
  return fmt::format("giving up after {} rounds (raise --max-rounds to try again)", max_rounds);
}

BatchStepResult advance_batch_job(const std::string& directory, const BatchStepOptions& options) {
  BatchStepResult step;
  if (!options.collect) {
    if (!options.submit) {
      throw InputError(fmt::format("{} already holds a batch job: add --submit to submit it or --collect to collect it", directory));
    }
    step.submitted = submit_batch_job(directory, options.collect_options.http, options.collect_options.on_line);
    return step;
  }
  BatchCollectOptions collect = options.collect_options;
  collect.submit = options.submit;
  BatchCollectResult result = collect_batch_job(directory, collect);
  if (collect.on_line) {
    const std::string summary = result.summary();
    std::size_t start = 0;
    while (start < summary.size()) {
      const std::size_t end = std::min(summary.find('\n', start), summary.size());
      collect.on_line(summary.substr(start, end - start));
      start = end + 1;
    }
  }
  if (!result.complete) {
    const std::string message = fmt::format("batch job {} is not complete: {} of {} done; {}", directory, result.n_done, result.n_items,
                                            next_step(result, directory, options.submit, collect.max_rounds));
    // Exit 75 only where running the same command later goes on (batches running, a new round
    // submitted); a round to submit, request files awaiting or rounds given up need the user.
    if (!result.pending.empty() || (!result.new_round.empty() && options.submit)) throw NotFinishedError(message);
    throw Error(message);
  }
  step.collected = std::move(result);
  return step;
}

namespace {

std::vector<std::int64_t> empty_text_genes(const GeneTexts& texts) {
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (texts.texts[i].empty()) ids.push_back(texts.entrez_ids[i]);
  }
  return ids;
}

}  // namespace

GeneEmbeddingResult embed_gene_texts(const GeneTexts& texts, const GeneTable& table, const EmbedTextsOptions& options) {
  const IdAndText items = gene_text_items(texts, &table);
  if (items.empty()) throw InputError("every gene text is empty: nothing to embed");
  GeneEmbeddingResult result;
  result.empty_text = empty_text_genes(texts);
  result.requests = embed_texts(items, options);
  EmbeddingSource source;
  source.backend = "openai";
  source.model = options.request.model;
  source.details = {{"base_url", options.http.base_url},
                    {"dimensions_requested", options.request.dimensions},
                    {"inputs_per_request", options.request.inputs_per_request},
                    {"checkpoint", options.http.checkpoint_path},
                    {"n_requests", result.requests.n_requests},
                    {"n_retries", result.requests.n_retries},
                    {"n_from_checkpoint", result.requests.n_from_checkpoint}};
  result.store = gene_store_from_embeddings(texts, result.requests.embeddings, &table, source);
  return result;
}

BatchJobInfo write_gene_embedding_job(const GeneTexts& texts, const GeneTable& table, const std::string& directory,
                                      const BatchWriteOptions& options, const std::string& out, std::vector<std::int64_t>* empty_text) {
  const IdAndText items = gene_text_items(texts, &table);
  if (empty_text != nullptr) *empty_text = empty_text_genes(texts);
  if (items.empty()) throw InputError("every gene text is empty: nothing to embed");
  std::filesystem::create_directories(directory);
  write_gene_texts(texts, (std::filesystem::path(directory) / "gene_texts.jsonl").string());
  BatchWriteOptions write = options;
  write.endpoint = BatchEndpoint::kEmbeddings;
  const nlohmann::json metadata = {{"kind", kGeneEmbeddingsJob},
                                   {"gene_table", std::filesystem::absolute(table.source()).string()},
                                   {"gene_texts", "gene_texts.jsonl"},
                                   {"text_recipe_hash", texts.recipe_hash},
                                   {"out", out.empty() ? "" : std::filesystem::absolute(out).string()},
                                   {"created_utc", utc_timestamp()}};
  return create_batch_job(items, directory, write, metadata);
}

std::string batch_job_gene_table(const BatchJobInfo& job) {
  const std::string path = job.metadata.is_object() ? job.metadata.value("gene_table", "") : "";
  std::error_code error;
  return !path.empty() && std::filesystem::exists(path, error) ? path : "";
}

GeneStore gene_store_from_batch_job(const std::string& directory, const GeneTable& table) {
  const BatchJobInfo info = open_batch_job(directory);
  const GeneTexts texts =
      read_gene_texts((std::filesystem::path(directory) / info.metadata.value("gene_texts", "gene_texts.jsonl")).string(), &table);
  if (texts.recipe_hash != info.metadata.value("text_recipe_hash", texts.recipe_hash)) {
    throw InputError(fmt::format("{}/gene_texts.jsonl was changed after the job was written (recipe hash {} instead of {})", directory,
                                 texts.recipe_hash, info.metadata.value("text_recipe_hash", "")));
  }
  const StoredResults stored = read_results_store(info.results_path());
  EmbeddingSource source;
  source.backend = "openai-batch";
  source.model = info.model;
  source.details = {{"batch_dir", std::filesystem::absolute(directory).string()},
                    {"dimensions_requested", info.dimensions},
                    {"rounds", info.rounds.size()}};
  return gene_store_from_embeddings(texts, stored.embeddings, &table, source);
}

IdAndText enrichment_items(const GeneTable& table, const EnrichmentSelection& selection) {
  std::vector<std::int32_t> genes;
  if (!selection.subset.empty()) {
    genes = read_gene_subset(selection.subset, table);
  } else {
    for (std::int32_t i = 0; i < static_cast<std::int32_t>(table.size()); ++i) genes.push_back(i);
  }
  if (!selection.gene_types.empty()) {
    const std::set<std::string> types(selection.gene_types.begin(), selection.gene_types.end());
    std::erase_if(genes, [&](std::int32_t gene) { return !types.contains(table.gene(gene).gene_type); });
  }
  if (genes.empty()) throw InputError("no gene to enrich (check --subset and --gene-types)");
  std::unique_ptr<GeneExtraTexts> summaries;
  if (!selection.summaries.empty()) summaries = std::make_unique<GeneExtraTexts>(load_gene_summaries(selection.summaries, table));
  return gene_enrichment_prompts(table, genes, summaries.get());
}

std::string enrichment_prompt_hash(const ChatRequestOptions& chat) {
  return ContentHasher().field(chat.system_message).field(kEnrichmentPromptTemplate).hex();
}

BatchJobInfo write_gene_enrichment_job(const IdAndText& items, const std::string& directory, const BatchWriteOptions& options,
                                       const std::string& out, const nlohmann::json& header) {
  BatchWriteOptions write = options;
  write.endpoint = BatchEndpoint::kChatCompletions;
  const nlohmann::json metadata = {
      {"kind", kGeneEnrichmentJob}, {"out", out.empty() ? "" : std::filesystem::absolute(out).string()}, {"header", header}};
  return create_batch_job(items, directory, write, metadata);
}

std::map<std::int64_t, std::string> answers_by_gene(const std::map<std::string, std::string>& answers) {
  std::map<std::int64_t, std::string> texts;
  for (const auto& [id, text] : answers) texts.emplace(std::stoll(id), text);
  return texts;
}

EnrichmentAnswers enrichment_from_batch_job(const std::string& directory) {
  const BatchJobInfo info = open_batch_job(directory);
  const StoredResults stored = read_results_store(info.results_path());
  EnrichmentAnswers answers;
  answers.texts = answers_by_gene(stored.texts);
  answers.header = info.metadata.value("header", nlohmann::json::object());
  answers.header["batch_dir"] = std::filesystem::absolute(directory).string();
  return answers;
}

}  // namespace celltyper::openai
