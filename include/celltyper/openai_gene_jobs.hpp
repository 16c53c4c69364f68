/// @file openai_gene_jobs.hpp
/// The gene workflows of `celltyper genes embed --backend openai|openai-batch` and
/// `celltyper genes enrich` as library calls: direct requests with a checkpoint, and Batch API
/// jobs written, submitted, collected and turned into a gene store or enrichment texts. The CLI
/// parses flags and prints; these functions do the work (openai.hpp has the layers below).
#pragma once

#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_text.hpp>
#include <celltyper/openai.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace celltyper::openai {

/// Kinds of Batch API jobs celltyper writes (job.json metadata "kind").
inline constexpr const char* kGeneEmbeddingsJob = "gene-embeddings";
inline constexpr const char* kGeneEnrichmentJob = "gene-enrichment";

/// The job of `kind` in `directory`, or nullopt when the directory holds no job. Throws
/// InputError when it holds a job of another kind (naming the command for that one).
std::optional<BatchJobInfo> find_batch_job(const std::string& directory, const std::string& kind);

/// How to bring an existing job forward.
struct BatchStepOptions {
  bool submit = false;     ///< upload request files and create batches
  bool collect = false;    ///< poll, download, parse; new rounds for what is missing
  BatchCollectOptions collect_options;  ///< http, use_api, wait, poll interval, max rounds, on_line (submit = `submit`)
};

/// Outcome of `advance_batch_job`.
struct BatchStepResult {
  std::optional<BatchSubmitResult> submitted;   ///< set when only submitting
  std::optional<BatchCollectResult> collected;  ///< set when collecting (complete)
};

/// Submit (without `collect`) or collect the job in `directory`. A collect that leaves the job
/// incomplete throws Error saying what to do next (run again later, --submit, --max-rounds).
/// Throws InputError when neither submit nor collect is asked.
BatchStepResult advance_batch_job(const std::string& directory, const BatchStepOptions& options);

/// The advice for an incomplete job after `result` ("" when complete).
std::string next_step(const BatchCollectResult& result, const std::string& directory, bool submitted, std::size_t max_rounds);

/// Outcome of `embed_gene_texts`.
struct GeneEmbeddingResult {
  GeneStore store;
  EmbedTextsResult requests;               ///< counts of requests, retries, checkpoint hits; warnings
  std::vector<std::int64_t> empty_text;    ///< genes with an empty text (no request, no vector)
};

/// `genes embed --backend openai`: embed every non-empty text of `texts` by direct requests
/// (`options.http.checkpoint_path` makes it resumable) and build the gene store. Throws
/// InputError when every text is empty.
GeneEmbeddingResult embed_gene_texts(const GeneTexts& texts, const GeneTable& table, const EmbedTextsOptions& options);

/// `genes embed --backend openai-batch`, first run: write a job for the non-empty texts of
/// `texts` into `directory` (the texts kept as gene_texts.jsonl, the gene table and `out`
/// recorded). Returns the job and the genes with an empty text.
BatchJobInfo write_gene_embedding_job(const GeneTexts& texts, const GeneTable& table, const std::string& directory,
                                      const BatchWriteOptions& options, const std::string& out, std::vector<std::int64_t>* empty_text = nullptr);

/// The gene table a gene job was written with, when that file still exists ("" otherwise).
std::string batch_job_gene_table(const BatchJobInfo& job);

/// The gene store of a complete gene-embeddings job; its texts are checked against the recipe
/// hash recorded when the job was written (InputError when edited since).
GeneStore gene_store_from_batch_job(const std::string& directory, const GeneTable& table);

/// Which genes `genes enrich` asks about.
struct EnrichmentSelection {
  std::string subset;                  ///< file of gene ids or symbols ("" = every gene of the table)
  std::vector<std::string> gene_types; ///< only these gene types (empty = any)
  std::string summaries;               ///< TSV of summaries for the prompts ("" = none)
};

/// The prompts of `genes enrich` for the selected genes of `table`. Throws InputError when no
/// gene is selected.
IdAndText enrichment_items(const GeneTable& table, const EnrichmentSelection& selection);

/// Hash of the system message and prompt template (recorded with the answers).
std::string enrichment_prompt_hash(const ChatRequestOptions& chat);

/// `genes enrich` with --batch-dir, first run: write a job for `items` into `directory`, with
/// `header` (model, temperature, prompt hash, gene table hash) kept for the output file.
BatchJobInfo write_gene_enrichment_job(const IdAndText& items, const std::string& directory, const BatchWriteOptions& options,
                                       const std::string& out, const nlohmann::json& header);

/// Answers of a complete gene-enrichment job and the header to write with them.
struct EnrichmentAnswers {
  std::map<std::int64_t, std::string> texts;  ///< Entrez id -> answer
  nlohmann::json header;
};
EnrichmentAnswers enrichment_from_batch_job(const std::string& directory);

/// Answers keyed by Entrez id (the items' ids are decimal Entrez ids).
std::map<std::int64_t, std::string> answers_by_gene(const std::map<std::string, std::string>& answers);

}  // namespace celltyper::openai
