// `celltyper genes ...`: gene texts and gene embeddings (text, enrich, embed, info, truncate,
// combine, neighbors, export).
#include <celltyper/error.hpp>
#include <celltyper/gene_embedding.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_store_combine.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/installed_files.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/gene_text.hpp>
#include <celltyper/openai.hpp>
#include <celltyper/openai_gene_jobs.hpp>
#include <celltyper/output_file.hpp>
#include <celltyper/parallel.hpp>
#include <celltyper/use_lite.hpp>

#include "cli/commands.hpp"
#include "cli/progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

namespace celltyper::cli {

namespace {

/// Where gene texts come from (shared by `genes text` and `genes embed`).
struct TextSourceArgs {
  std::string gene_table;
  std::string org_db;
  std::string go_db;
  std::string go_tsv;
  std::string go_terms;
  bool no_go = false;
  std::string summaries;
  std::string enrichment;
  bool no_summaries = false;
  std::string sections;
  GeneTextOptions options;

  /// The recipe: --sections (default recipe when absent), less what --no-go / --no-summaries drop.
  [[nodiscard]] GeneTextOptions text_options() const {
    GeneTextOptions out = options;
    if (!sections.empty()) out.section_repeats = parse_gene_text_sections(sections);
    if (no_go) {
      for (const GeneTextSection aspect : kGoTextSections) out.set_repeats(aspect, 0);
    }
    if (no_summaries) out.set_repeats(GeneTextSection::kSummary, 0);
    return out;
  }
};

void add_text_source_options(CLI::App* command, TextSourceArgs& args) {
  command->add_option("--gene-table", args.gene_table,
                      "Gene table: org.*.eg.db SQLite or TSV (default: $CELLTYPER_GENE_TABLE, else Debian's org.Hs.eg.db)");
  command->add_option("--go-db", args.go_db, "GO.db SQLite with GO term names (default: Debian's r-bioc-go.db)");
  command->add_option("--org-db", args.org_db,
                      "org.*.eg.db SQLite with gene -> GO links (default: the gene table when it is one, else Debian's org.Hs.eg.db)");
  command->add_option("--go-tsv", args.go_tsv, "Gene-to-GO TSV (entrez_id, go_id, evidence, ontology) instead of the SQLite databases");
  command->add_option("--go-terms", args.go_terms, "GO terms TSV (go_id, ontology, term, ...) for --go-tsv");
  command->add_flag("--no-go", args.no_go, "Leave GO terms out of the texts");
  command->add_option("--summaries", args.summaries,
                      "TSV of gene summaries (entrez_id or symbol, summary), used instead of the gene table's (default, for a human "
                      "gene table without summaries such as org.Hs.eg.db: the RefSeq summaries scripts/setup.sh installs beside the "
                      "executable, share/celltyper/gene_summaries.tsv, which the default gene store was built with)");
  command->add_flag("--no-summaries", args.no_summaries, "Leave RefSeq summaries out of the texts");
  command->add_option("--enrichment", args.enrichment,
                      "Enrichment texts from 'celltyper genes enrich' (.jsonl, or a TSV with entrez_id/symbol and text columns)");
  command->add_option("--sections", args.sections,
                      "Sections of each gene text, each written once or :N times (0-9): name, type, aliases, summary, bp, mf, "
                      "cc, go (= bp,mf,cc), enrichment; 'default' = name,type,summary,bp,mf,cc,enrichment, e.g. "
                      "'default,aliases,summary:2' (the symbol always leads)")
      ->check([](const std::string& value) {
        try {
          (void)parse_gene_text_sections(value);
        } catch (const InputError& error) {
          return std::string(error.what());
        }
        return std::string();
      });
  command->add_option("--max-go-terms", args.options.max_go_terms_per_aspect, "Most GO terms per aspect in a text (0 = all)")
      ->capture_default_str();
  command->add_flag("--require-annotation", args.options.require_annotation,
                    "Give no text (so no embedding) to genes with no summary, GO term or enrichment text");
}

bool is_sqlite_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[16] = {};
  in.read(magic, sizeof magic);
  return in.gcount() == 16 && std::string_view(magic, 15) == "SQLite format 3";
}

void note(const GlobalOptions& global, const std::string& line) {
  if (!global.quiet) fmt::print(stderr, "celltyper: {}\n", line);
}

GeneTable load_table(const std::string& requested, const GlobalOptions& global) {
  const std::string path = choose_gene_table_path(requested);
  const auto start = std::chrono::steady_clock::now();
  GeneTable table = load_requested_gene_table(path);
  note(global, fmt::format("gene table {}: {} genes ({:.1f} s)", path, table.size(),
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
  return table;
}

/// The RefSeq summaries scripts/setup.sh installs beside the executable (from
/// ../shared/data/gene-annotations/human_genes.tsv, the default store's), or "" when absent.
std::string installed_gene_summaries_path() { return installed_file("gene_summaries.tsv").string(); }

/// Build texts from the sources named in `args` (the gene table already loaded).
GeneTexts build_texts(const TextSourceArgs& args, const GeneTable& table, const GlobalOptions& global) {
  const GeneTextOptions options = args.text_options();
  std::unique_ptr<GoAnnotations> go;
  if (options.writes_go()) {
    if (!args.go_tsv.empty() || !args.go_terms.empty()) {
      if (args.go_tsv.empty() || args.go_terms.empty()) throw InputError("--go-tsv and --go-terms go together");
      go = std::make_unique<GoAnnotations>(load_go_tsv(args.go_tsv, args.go_terms));
    } else {
      std::string org_db = args.org_db;
      if (org_db.empty()) org_db = is_sqlite_file(table.source()) ? table.source() : default_gene_table_path();
      if (!org_db.empty() && !is_sqlite_file(org_db)) org_db.clear();
      const std::string go_db = args.go_db.empty() ? default_go_db_path() : args.go_db;
      if (org_db.empty() || go_db.empty()) {
        if (!args.org_db.empty() || !args.go_db.empty()) {
          throw InputError(fmt::format("GO terms need both an org.*.eg.db database (--org-db: {}) and GO.db (--go-db: {})",
                                       org_db.empty() ? "not found" : org_db, go_db.empty() ? "not found" : go_db));
        }
        note(global, "no org.Hs.eg.db / GO.db found: texts without GO terms (use --go-tsv/--go-terms, or --no-go to silence this)");
      } else {
        go = std::make_unique<GoAnnotations>(load_go_sqlite(org_db, go_db));
      }
    }
    if (go) note(global, fmt::format("GO annotations {}: {} genes, {} links", go->source, go->genes.size(), go->n_links));
  }
  std::unique_ptr<GeneExtraTexts> summaries;
  const bool wants_summaries = options.repeats(GeneTextSection::kSummary) > 0;
  std::string summaries_path = args.summaries;
  bool installed_matched_none = false;  // the installed (human) summaries name none of the table's genes
  const bool table_has_summaries =
      std::any_of(table.genes().begin(), table.genes().end(), [](const Gene& gene) { return !gene.summary.empty(); });
  const bool human = table.species().empty() || table.species().find("Homo sapiens") != std::string::npos;
  if (summaries_path.empty() && wants_summaries && !table_has_summaries && human) {
    summaries_path = installed_gene_summaries_path();  // (what the default gene store's texts have)
  }
  if (!summaries_path.empty() && wants_summaries) {
    summaries = std::make_unique<GeneExtraTexts>(load_gene_summaries(summaries_path, table));
    if (args.summaries.empty() && summaries->texts.empty()) {
      // (a TSV gene table of another species, which names none: Entrez ids are the species' own)
      installed_matched_none = true;
      summaries.reset();
    } else {
      note(global, fmt::format("summaries {}{}: {} genes ({} ids not in the gene table)", summaries_path,
                               args.summaries.empty() ? " (installed by scripts/setup.sh; --summaries FILE or --no-summaries to change)" : "",
                               summaries->texts.size(), summaries->n_unresolved));
    }
  }
  std::unique_ptr<GeneExtraTexts> enrichment;
  if (!args.enrichment.empty()) {
    enrichment = std::make_unique<GeneExtraTexts>(load_gene_enrichment(args.enrichment, table));
    note(global, fmt::format("enrichment {}: {} genes ({} ids not in the gene table)", args.enrichment, enrichment->texts.size(),
                             enrichment->n_unresolved));
  }
  GeneTextSources sources;
  sources.table = &table;
  sources.go = go.get();
  sources.summaries = summaries.get();
  sources.enrichment = enrichment.get();
  GeneTexts texts = build_gene_texts(sources, options);
  const auto& counts = texts.provenance["counts"];
  if (wants_summaries && counts["n_with_summary"].get<std::size_t>() == 0 && texts.size() > 0) {
    fmt::print(stderr, "warning: no gene text has a summary: the gene table ({}) has none{}; pass --summaries TSV (entrez_id or symbol, "
                       "summary: NCBI's gene summaries of the table's species) or --no-summaries\n",
               table.source(),
               installed_matched_none ? fmt::format(" and the installed summaries ({}, human genes) name none of its genes", summaries_path)
               : summaries_path.empty() ? " and no summaries file was given or installed"
                                        : fmt::format(" nor does {}", summaries_path));
  }
  note(global, fmt::format("texts: {} genes, {} non-empty, {} with a summary, {} with GO terms, {} with enrichment; recipe hash {}",
                           texts.size(), counts["n_nonempty"].get<std::size_t>(), counts["n_with_summary"].get<std::size_t>(),
                           counts["n_with_go"].get<std::size_t>(), counts["n_with_enrichment"].get<std::size_t>(),
                           texts.recipe_hash));
  return texts;
}

std::string join_examples(const std::vector<std::int64_t>& ids, const GeneTexts& texts, std::size_t limit = 10) {
  std::string out;
  std::size_t shown = 0;
  for (const std::int64_t id : ids) {
    if (shown == limit) {
      out += ", ...";
      break;
    }
    const auto position = std::find(texts.entrez_ids.begin(), texts.entrez_ids.end(), id);
    const std::string name = position == texts.entrez_ids.end()
                                 ? std::to_string(id)
                                 : texts.symbols[static_cast<std::size_t>(position - texts.entrez_ids.begin())];
    out += (shown == 0 ? "" : ", ") + name;
    ++shown;
  }
  return out;
}

// ---- OpenAI options shared by 'genes embed --backend openai*' and 'genes enrich' ------------

/// How to reach an OpenAI-compatible server, directly or through the Batch API.
struct OpenAiArgs {
  std::string base_url = "https://api.openai.com/v1";
  int concurrency = 4;
  double timeout_seconds = 120;
  int max_attempts = 6;
  double backoff_seconds = 1;
  std::string checkpoint;
  std::string batch_dir;
  bool submit = false;
  bool collect = false;
  bool no_api = false;
  double wait_seconds = 0;
  double poll_interval_seconds = 60;
  std::size_t max_rounds = 4;
  std::size_t max_requests_per_file = openai::BatchLimits{}.max_requests_per_file;
  std::size_t max_file_bytes = openai::BatchLimits{}.max_bytes_per_file;
  std::string subset;
};

void add_openai_options(CLI::App* command, OpenAiArgs& args) {
  command->add_option("--base-url", args.base_url,
                      "OpenAI-compatible API root; the key comes from the environment variable OPENAI_API_KEY")
      ->capture_default_str();
  command->add_option("--concurrency", args.concurrency, "Direct requests in flight at most")->capture_default_str();
  command->add_option("--timeout", args.timeout_seconds, "Seconds per request before it is retried")->capture_default_str();
  command->add_option("--max-attempts", args.max_attempts, "Attempts per request over 429/5xx/timeouts (exponential backoff with jitter)")
      ->capture_default_str();
  command->add_option("--backoff", args.backoff_seconds,
                      "Seconds of the first retry delay (doubled per attempt, up to 60, with full jitter; Retry-After wins)")
      ->capture_default_str();
  command->add_option("--checkpoint", args.checkpoint,
                      "openai (direct): results file (JSONL, fsynced) that makes the run resumable; a directory puts it there "
                      "(default: OUT.checkpoint.jsonl); use-lite: vectors file (default: OUT.use-lite-checkpoint, removed "
                      "once the store is written)");
  command->add_option("--subset", args.subset, "Only the genes in this list (one Entrez id, symbol or Ensembl id per line)");
  command->add_option("--batch-dir", args.batch_dir,
                      "Use the Batch API through this job directory: the first run writes the request files, "
                      "--submit uploads them, --collect gathers the results");
  command->add_flag("--submit", args.submit, "Batch: upload the request files and create the batches (POST /files, /batches)");
  command->add_flag("--collect", args.collect,
                    "Batch: poll the batches, download and parse their output (or parse output files put in the round "
                    "directories), then write the output when every gene is done, else a new round for the rest");
  command->add_flag("--no-api", args.no_api, "Batch --collect: only read output files already in the job directory");
  command->add_option("--wait", args.wait_seconds, "Batch --collect: keep polling up to this many seconds")->capture_default_str();
  command->add_option("--poll-interval", args.poll_interval_seconds, "Batch --collect --wait: seconds between polls")
      ->capture_default_str();
  command->add_option("--max-rounds", args.max_rounds, "Batch: rounds at most (each retries what the last left undone)")
      ->capture_default_str();
  command->add_option("--max-requests-per-file", args.max_requests_per_file, "Batch: request lines per file at most")
      ->capture_default_str();
  command->add_option("--max-file-bytes", args.max_file_bytes, "Batch: bytes per request file at most")->capture_default_str();
}

/// Reports progress of direct requests: a bar on a terminal, else a line per tenth done.
class RequestProgress {
 public:
  RequestProgress(std::string label, std::string unit, const GlobalOptions& global)
      : label_(std::move(label)), unit_(std::move(unit)), global_(global) {}
  void operator()(std::size_t done, std::size_t total) {
    if (!bar_) {
      bar_ = std::make_unique<ProgressBar>(label_, unit_, static_cast<std::int64_t>(total), progress_enabled(global_.quiet));
      if (!global_.quiet) fmt::print(stderr, "celltyper: {}: {} {} to do, {} already in the checkpoint\n", label_, total - done, unit_, done);
      first_done_ = done;
    }
    bar_->update(static_cast<std::int64_t>(done));
    if (!global_.quiet && !progress_enabled(global_.quiet) && total > first_done_) {
      const std::size_t tenth = (done - first_done_) * 10 / (total - first_done_);
      if (tenth > last_tenth_) {
        last_tenth_ = tenth;
        fmt::print(stderr, "celltyper: {}: {} of {} {} done\n", label_, done, total, unit_);
      }
    }
  }
  void finish() {
    if (bar_) bar_->finish();
  }

 private:
  std::string label_;
  std::string unit_;
  const GlobalOptions& global_;
  std::unique_ptr<ProgressBar> bar_;
  std::size_t first_done_ = 0;
  std::size_t last_tenth_ = 0;
};

openai::HttpClientOptions http_options(const OpenAiArgs& args) {
  openai::HttpClientOptions http;
  http.base_url = args.base_url;
  http.max_concurrent_requests = args.concurrency;
  http.request_timeout_seconds = args.timeout_seconds;
  http.max_attempts = args.max_attempts;
  http.initial_backoff_seconds = args.backoff_seconds;
  return http;
}

/// The checkpoint file: --checkpoint (a directory gets `default_name` inside), else OUT.checkpoint.jsonl.
std::string checkpoint_path(const OpenAiArgs& args, const std::string& out, const std::string& default_name) {
  std::string path = args.checkpoint.empty() ? out + ".checkpoint.jsonl" : args.checkpoint;
  if (!args.checkpoint.empty() && (std::filesystem::is_directory(args.checkpoint) || args.checkpoint.back() == '/'))
    path = (std::filesystem::path(args.checkpoint) / default_name).string();
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  if (error) throw IoError(fmt::format("cannot create the checkpoint directory {}: {}", parent.string(), error.message()));
  return path;
}

/// File-name-safe form of a model name.
std::string safe_name(std::string text) {
  for (char& c : text)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') c = '_';
  return text;
}

openai::BatchLimits batch_limits(const OpenAiArgs& args) {
  openai::BatchLimits limits;
  limits.max_requests_per_file = args.max_requests_per_file;
  limits.max_bytes_per_file = args.max_file_bytes;
  return limits;
}

/// Submit and/or collect the job of --batch-dir; returns true when --collect completed it.
bool advance_job(const OpenAiArgs& args, const GlobalOptions& global) {
  openai::BatchStepOptions step;
  step.submit = args.submit;
  step.collect = args.collect;
  step.collect_options.http = http_options(args);
  step.collect_options.use_api = !args.no_api;
  step.collect_options.wait_seconds = args.wait_seconds;
  step.collect_options.poll_interval_seconds = args.poll_interval_seconds;
  step.collect_options.max_rounds = args.max_rounds;
  step.collect_options.on_line = [&global](const std::string& line) { note(global, line); };
  const openai::BatchStepResult result = openai::advance_batch_job(args.batch_dir, step);
  if (const auto& submitted = result.submitted) {
    note(global, fmt::format("submitted: {} files uploaded, {} batches created, {} submitted before, {} answered by output files "
                             "already there; next: --collect",
                             submitted->n_uploaded, submitted->n_created, submitted->n_already_submitted, submitted->n_answered));
  }
  return result.collected.has_value();
}

// ---- genes text ------------------------------------------------------------------------------

void add_text(CLI::App* genes, const GlobalOptions& global) {
  struct Args {
    TextSourceArgs sources;
    std::string out;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = genes->add_subcommand("text", "Write one text per gene (symbol, name, type, summary, GO terms, enrichment)");
  add_text_source_options(command, args->sources);
  command->add_option("-o,--out", args->out, "Output: .tsv (entrez_id, symbol, text) or .jsonl")->required();
  command->callback([args, &global] {
    const GeneTable table = load_table(args->sources.gene_table, global);
    const GeneTexts texts = build_texts(args->sources, table, global);
    write_gene_texts(texts, args->out);
    note(global, fmt::format("wrote {} texts to {}", texts.size(), args->out));
  });
}

// ---- genes embed -----------------------------------------------------------------------------

struct EmbedArgs {
  std::string backend = "lsa";
  TextSourceArgs sources;
  std::string texts;
  std::string write_texts;
  LsaOptions lsa;
  std::int64_t min_df = 2;
  std::string input;
  GeneImportOptions import;
  std::string model;
  std::string use_lite_dir;
  bool strict = false;
  int threads = 0;
  std::string out;
  std::string skipped;
  // openai, openai-batch
  OpenAiArgs openai;
  int dimensions = 0;
  std::size_t batch_size = 256;
};

/// The texts to embed: --texts, or built from the sources; restricted to --subset.
GeneTexts texts_to_embed(const EmbedArgs& args, const GeneTable& table, const GlobalOptions& global) {
  GeneTexts texts;
  if (!args.texts.empty()) {
    texts = read_gene_texts(args.texts, &table);
    note(global, fmt::format("texts {}: {} genes, recipe hash {}{}", args.texts, texts.size(), texts.recipe_hash,
                             texts.provenance.value("edited", false) ? " (differs from the file's header: edited?)" : ""));
  } else {
    texts = build_texts(args.sources, table, global);
  }
  if (!args.openai.subset.empty()) {
    std::vector<std::int64_t> ids;
    for (const std::int32_t gene : read_gene_subset(args.openai.subset, table)) ids.push_back(table.gene(gene).entrez_id);
    texts = select_gene_texts(texts, ids);
    note(global, fmt::format("subset {}: {} genes with texts, recipe hash {}", args.openai.subset, texts.size(), texts.recipe_hash));
    if (texts.size() == 0) throw InputError(fmt::format("no gene of the subset {} has a text", args.openai.subset));
  }
  if (!args.write_texts.empty()) write_gene_texts(texts, args.write_texts);
  return texts;
}

void write_skipped(const std::string& path, const std::vector<std::string>& lines, const char* id_column = "entrez_id") {
  if (path.empty()) return;
  std::string text = fmt::format("{}\tsymbol\treason\n", id_column);
  for (const auto& line : lines) text += line + '\n';
  write_output_file(path, text);
}

void save_store(const GeneStore& store, const std::string& out, const GlobalOptions& global,
                std::chrono::steady_clock::time_point start) {
  const std::filesystem::path parent = std::filesystem::path(out).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  store.save(out);
  note(global, fmt::format("wrote {}: {} genes x {} dims ({} backend, {:.1f} s)", out, store.n_genes(), store.dims(),
                           store.provenance().backend, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
}

/// Genes with an empty text (no request, no vector): noted, and lines for --skipped.
std::vector<std::string> note_empty_texts(const std::vector<std::int64_t>& ids, const GeneTexts& texts, const GlobalOptions& global) {
  if (ids.empty()) return {};
  note(global, fmt::format("{} genes have an empty text and no vector (e.g. {})", ids.size(), join_examples(ids, texts)));
  std::map<std::int64_t, std::string> symbols;
  for (std::size_t i = 0; i < texts.size(); ++i) symbols.emplace(texts.entrez_ids[i], texts.symbols[i]);
  std::vector<std::string> lines;
  for (const std::int64_t id : ids) lines.push_back(fmt::format("{}\t{}\tempty_text", id, symbols[id]));
  return lines;
}

/// `genes embed --backend openai`: direct requests with a checkpoint.
void embed_openai_direct(const EmbedArgs& args, const GeneTable& table, const GlobalOptions& global,
                         std::chrono::steady_clock::time_point start) {
  const GeneTexts texts = texts_to_embed(args, table, global);
  openai::EmbedTextsOptions options;
  options.request.model = args.model.empty() ? openai::EmbeddingRequestOptions{}.model : args.model;
  options.request.dimensions = args.dimensions;
  options.request.inputs_per_request = args.batch_size;
  options.request.base64 = true;
  options.http = http_options(args.openai);
  options.http.checkpoint_path = checkpoint_path(
      args.openai, args.out, fmt::format("embeddings-{}-{}.jsonl", safe_name(options.request.model), args.dimensions));
  const auto n_texts = std::count_if(texts.texts.begin(), texts.texts.end(), [](const std::string& text) { return !text.empty(); });
  note(global, fmt::format("embedding {} gene texts with {} at {} (checkpoint {})", n_texts, options.request.model, options.http.base_url,
                           options.http.checkpoint_path));
  RequestProgress progress("embed", "genes", global);
  options.http.on_progress = std::ref(progress);
  const openai::GeneEmbeddingResult result = openai::embed_gene_texts(texts, table, options);
  progress.finish();
  const std::vector<std::string> skipped = note_empty_texts(result.empty_text, texts, global);
  print_warnings(result.requests.warnings, global.quiet);
  note(global, fmt::format("{} genes embedded: {} from the checkpoint, {} requests ({} retries)", result.requests.embeddings.size(),
                           result.requests.n_from_checkpoint, result.requests.n_requests, result.requests.n_retries));
  write_skipped(args.skipped, skipped);
  save_store(result.store, args.out, global, start);
}

/// `genes embed --backend use-lite`: the offline transformer encoder, resumable through a checkpoint.
void embed_use_lite(const EmbedArgs& args, const GeneTable& table, const GlobalOptions& global,
                    std::chrono::steady_clock::time_point start) {
  const std::string dir = args.use_lite_dir.empty() ? default_use_lite_dir() : args.use_lite_dir;
  const UseLiteEncoder encoder = UseLiteEncoder::load(dir);  // checked before any text is built
  const GeneTexts texts = texts_to_embed(args, table, global);
  UseLiteGeneOptions options;
  options.num_threads = args.threads;
  options.checkpoint_path =
      args.openai.checkpoint.empty() ? args.out + ".use-lite-checkpoint" : checkpoint_path(args.openai, args.out, "use-lite-checkpoint");
  note(global, fmt::format("embedding {} gene texts with {} ({}, {} threads; checkpoint {})", texts.n_nonempty(), kUseLitePackage, dir,
                           resolve_threads(args.threads), options.checkpoint_path));
  RequestProgress progress("embed", "genes", global);
  options.progress = std::ref(progress);
  const UseLiteGeneResult result = embed_genes_use_lite(texts, &table, encoder, options);
  progress.finish();
  note(global, fmt::format("{} genes embedded: {} from the checkpoint, {} now ({} tokens in {} windows of <= {} tokens)",
                           result.store.n_genes(), result.n_from_checkpoint, result.store.n_genes() - static_cast<std::int64_t>(result.n_from_checkpoint),
                           result.n_tokens, result.n_windows, kUseLiteMaxTokens));
  const std::vector<std::string> skipped = note_empty_texts(result.empty_text, texts, global);  // empty or no token
  write_skipped(args.skipped, skipped);
  save_store(result.store, args.out, global, start);
  std::error_code error;
  std::filesystem::remove(options.checkpoint_path, error);  // its vectors are in the store now
}

/// `genes embed --backend openai-batch`: write, submit and collect a Batch API job.
void embed_openai_batch(const EmbedArgs& args, const GlobalOptions& global, std::chrono::steady_clock::time_point start) {
  std::optional<GeneTable> loaded;  // only writing and collecting need the gene table
  std::string table_path = args.sources.gene_table;
  const auto gene_table = [&]() -> const GeneTable& {
    if (!loaded) loaded.emplace(load_table(table_path, global));
    return *loaded;
  };
  const OpenAiArgs& batch = args.openai;
  if (batch.batch_dir.empty()) throw InputError("--backend openai-batch needs --batch-dir DIR (the job directory)");
  if (!openai::find_batch_job(batch.batch_dir, openai::kGeneEmbeddingsJob)) {
    if (batch.collect) throw InputError(fmt::format("{} holds no batch job to collect: run without --collect first", batch.batch_dir));
    const GeneTable& table = gene_table();
    const GeneTexts texts = texts_to_embed(args, table, global);
    openai::BatchWriteOptions options;
    options.embedding.model = args.model.empty() ? openai::EmbeddingRequestOptions{}.model : args.model;
    options.embedding.dimensions = args.dimensions;
    options.embedding.inputs_per_request = args.batch_size;
    options.embedding.base64 = true;
    options.limits = batch_limits(batch);
    std::vector<std::int64_t> empty_text;
    const openai::BatchJobInfo created = openai::write_gene_embedding_job(texts, table, batch.batch_dir, options, args.out, &empty_text);
    note_empty_texts(empty_text, texts, global);
    note(global, fmt::format("wrote batch job {}: {} genes, {} ({} dims requested), request files in {}/{}", batch.batch_dir,
                             created.n_items, created.model, created.dimensions, batch.batch_dir, created.rounds.front()));
    if (!batch.submit) {
      note(global, "next: --submit (or upload the request files yourself and put the output files into the round directory), "
                   "then --collect");
      return;
    }
  }
  if (!advance_job(batch, global)) return;
  const openai::BatchJobInfo info = openai::open_batch_job(batch.batch_dir);
  const std::string out = !args.out.empty() ? args.out : info.metadata.value("out", "");
  if (out.empty()) throw InputError("the batch job is complete: give the output gene store with --out");
  if (table_path.empty()) table_path = openai::batch_job_gene_table(info);  // by default, the table the texts were made from
  save_store(openai::gene_store_from_batch_job(batch.batch_dir, gene_table()), out, global, start);
}

void add_embed(CLI::App* genes, const GlobalOptions& global) {
  auto args = std::make_shared<EmbedArgs>();
  CLI::App* command = genes->add_subcommand(
      "embed", "Make a gene store: LSA of the gene texts or a transformer text encoder (offline), OpenAI embeddings (direct or "
               "Batch API), or import vectors");
  command->add_option("--backend", args->backend,
                      "lsa (TF-IDF + randomised SVD of the gene texts), use-lite (Universal Sentence Encoder Lite, offline, 512 "
                      "dims), openai (direct requests), openai-batch (Batch API job) or import")
      ->capture_default_str();
  command->add_option("--use-lite-dir", args->use_lite_dir,
                      "use-lite: folder of the model package (default: $CELLTYPER_USE_LITE_DIR, else the one "
                      "scripts/fetch_use_lite.sh fetched)");
  add_text_source_options(command, args->sources);
  command->add_option("--texts", args->texts, "Gene texts file from 'celltyper genes text' (default: build them from the sources)");
  command->add_option("--write-texts", args->write_texts, "Also write the texts used to this file (.tsv or .jsonl)");
  command->add_option("--dims", args->lsa.dims, fmt::format("LSA dimensions, 1..{}", kMaxLsaDims))->capture_default_str();
  command->add_option("--seed", args->lsa.seed, "Seed of the randomised SVD's Gaussian test matrix")->capture_default_str();
  command->add_option("--power-iterations", args->lsa.power_iterations, "Randomised SVD power iterations")->capture_default_str();
  command->add_option("--oversampling", args->lsa.oversampling, "Randomised SVD oversampling")->capture_default_str();
  command->add_option("--min-df", args->min_df, "Keep terms found in at least this many texts")->capture_default_str();
  command->add_option("--input", args->input, "import: TSV/CSV (gene id + numbers), .npy (with --gene-list) or HDF5 file");
  command->add_option("--gene-list", args->import.gene_list, "import: gene ids of the .npy rows, one per line");
  command->add_option("--format", args->import.format, "import: tsv, csv, npy or h5 (default: from the extension)");
  command->add_option("--h5-matrix", args->import.h5_matrix, "import: HDF5 dataset with the [genes x dims] matrix");
  command->add_option("--h5-ids", args->import.h5_ids, "import: HDF5 dataset with the gene ids");
  command->add_option("--model", args->model,
                      "openai*: embedding model (default text-embedding-3-large); import: model name recorded in the provenance");
  command->add_option("--dimensions", args->dimensions,
                      "openai*: dimensions asked of the model (Matryoshka truncation; 0 = the model's full size)")
      ->capture_default_str();
  command->add_option("--batch-size", args->batch_size, "openai*: texts per embeddings request, 1..2048")->capture_default_str();
  add_openai_options(command, args->openai);
  command->add_flag("--strict", args->strict, "import: fail when any gene id is not in the gene table or names a gene an earlier row gave");
  command->add_option("--threads", args->threads, "Threads (0 = all cores)")->capture_default_str();
  command->add_option("--skipped", args->skipped,
                      "Write the genes left without a vector (entrez_id, symbol, reason; import: the row's id as its file gives it, symbol, "
                      "reason) to this TSV");
  command->add_option("-o,--out", args->out, "Output gene store (.h5); with openai-batch, needed by --collect only");
  command->callback([args, &global] {
    const auto start = std::chrono::steady_clock::now();
    const std::set<std::string> backends = {"lsa", "use-lite", "import", "openai", "openai-batch"};
    if (!backends.contains(args->backend)) {
      throw InputError(fmt::format("--backend must be lsa, use-lite, openai, openai-batch or import, got '{}'", args->backend));
    }
    if (!args->use_lite_dir.empty() && args->backend != "use-lite") throw InputError("--use-lite-dir goes with --backend use-lite");
    if (args->out.empty() && args->backend != "openai-batch") throw InputError("--out is required (the gene store to write)");
    const TextSourceArgs& sources = args->sources;
    // (the store's folder is made, as writing it always has: stores/v2/genes.h5)
    if (const std::filesystem::path parent = std::filesystem::path(args->out).parent_path(); !args->out.empty() && !parent.empty()) {
      std::error_code ignored;
      std::filesystem::create_directories(parent, ignored);
    }
    check_outputs({args->out, args->skipped, args->write_texts},
                                 {args->input, args->import.gene_list, args->texts, sources.gene_table, sources.org_db, sources.go_db,
                                  sources.go_tsv, sources.go_terms, sources.summaries, sources.enrichment});
    if (args->backend != "openai-batch" && !args->openai.batch_dir.empty())
      throw InputError("--batch-dir goes with --backend openai-batch");
    if (args->backend.starts_with("openai") && (args->batch_size < 1 || args->batch_size > 2048))
      throw InputError(fmt::format("--batch-size must be 1..2048, got {}", args->batch_size));
    if (args->backend == "openai-batch") {
      embed_openai_batch(*args, global, start);
      return;
    }
    const GeneTable table = load_table(args->sources.gene_table, global);
    if (args->backend == "openai") {
      embed_openai_direct(*args, table, global, start);
      return;
    }
    if (args->backend == "use-lite") {
      embed_use_lite(*args, table, global, start);
      return;
    }
    GeneStore store;
    std::vector<std::string> skipped_lines;
    if (args->backend == "import") {
      if (args->input.empty()) throw InputError("--backend import needs --input FILE");
      args->import.allow_unresolved = !args->strict;
      args->import.model = args->model;
      const GeneImportResult result = import_gene_embeddings(args->input, table, args->import);
      note(global, fmt::format("imported {} of {} rows from {} ({} ids not in the gene table{}, {} duplicates, {} all-zero rows)",
                               result.store.n_genes(), result.n_rows, args->input, result.n_unresolved,
                               result.unresolved_examples.empty() ? "" : fmt::format(", e.g. {}", fmt::join(result.unresolved_examples, ", ")),
                               result.n_duplicates, result.n_zero_rows));
      if (result.n_duplicates > 0) {  // (the first row of each gene is kept: said, under --quiet too)
        fmt::print(stderr, "warning: {}: {} rows give a gene an earlier row already gave and are left out (e.g. {}); --strict refuses them\n",
                   args->input, result.n_duplicates, fmt::join(result.duplicate_examples, ", "));
      }
      for (const auto& [id, symbol, reason] : result.skipped) skipped_lines.push_back(fmt::format("{}\t{}\t{}", id, symbol, reason));
      store = result.store;
    } else {
      const GeneTexts texts = texts_to_embed(*args, table, global);
      args->lsa.num_threads = args->threads;
      args->lsa.tfidf.min_document_frequency = args->min_df;
      if (!global.quiet) args->lsa.progress = [](const std::string& line) { fmt::print(stderr, "celltyper: {}\n", line); };
      LsaResult result = embed_genes_lsa(texts, &table, args->lsa);
      if (!result.empty_text.empty()) {
        note(global, fmt::format("{} genes have an empty text and no vector (e.g. {})", result.empty_text.size(),
                                 join_examples(result.empty_text, texts)));
      }
      if (!result.no_terms.empty()) {
        note(global, fmt::format("{} genes have no vocabulary term and no vector (e.g. {})", result.no_terms.size(),
                                 join_examples(result.no_terms, texts)));
      }
      const auto add_skipped = [&](const std::vector<std::int64_t>& ids, const char* reason) {
        for (const std::int64_t id : ids) {
          const std::int32_t gene = table.find_entrez(id);
          skipped_lines.push_back(fmt::format("{}\t{}\t{}", id, gene == kNoGene ? "" : table.gene(gene).symbol, reason));
        }
      };
      add_skipped(result.empty_text, "empty_text");
      add_skipped(result.no_terms, "no_vocabulary_term");
      store = std::move(result.store);
    }
    write_skipped(args->skipped, skipped_lines, args->backend == "import" ? "id" : "entrez_id");  // (import: the id as its file gives it)
    save_store(store, args->out, global, start);
  });
}

// ---- genes enrich ----------------------------------------------------------------------------

void add_enrich(CLI::App* genes, const GlobalOptions& global) {
  struct Args {
    std::string gene_table;
    std::string summaries;
    std::string gene_types;
    std::string model = openai::ChatRequestOptions{}.model;
    double temperature = openai::ChatRequestOptions{}.temperature;
    int max_tokens = 0;
    OpenAiArgs openai;
    std::string out;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = genes->add_subcommand(
      "enrich", "Ask a chat model, per gene, for its associated genes, tissues, cell types, drugs and pathways "
                "(input of 'genes text --enrichment')");
  command->add_option("--gene-table", args->gene_table,
                      "Gene table: org.*.eg.db SQLite or TSV (default: $CELLTYPER_GENE_TABLE, else Debian's org.Hs.eg.db)");
  command->add_option("--summaries", args->summaries, "TSV of gene summaries (entrez_id or symbol, summary) for the prompts");
  command->add_option("--gene-types", args->gene_types, "Only genes of these types, comma-separated (e.g. protein-coding)");
  command->add_option("--model", args->model, "Chat model")->capture_default_str();
  command->add_option("--temperature", args->temperature, "Sampling temperature, 0..2")->capture_default_str();
  command->add_option("--max-tokens", args->max_tokens, "max_completion_tokens per answer (0 = the model's limit)")->capture_default_str();
  add_openai_options(command, args->openai);
  command->add_option("-o,--out", args->out, "Output enrichment texts: .jsonl or .tsv (entrez_id, symbol, text); with --batch-dir, needed by --collect only");
  command->callback([args, &global] {
    const auto start = std::chrono::steady_clock::now();
    const OpenAiArgs& openai_args = args->openai;
    const bool batch = !openai_args.batch_dir.empty();
    if (!batch && (openai_args.submit || openai_args.collect)) throw InputError("--submit and --collect go with --batch-dir");
    if (args->out.empty() && !batch) throw InputError("--out is required (the enrichment file to write)");
    std::optional<GeneTable> loaded;  // submitting a batch job needs no gene table
    const auto gene_table = [&]() -> const GeneTable& {
      if (!loaded) loaded.emplace(load_table(args->gene_table, global));
      return *loaded;
    };
    openai::ChatRequestOptions chat;
    chat.model = args->model;
    chat.temperature = args->temperature;
    chat.max_completion_tokens = args->max_tokens;
    const std::string prompt_hash = openai::enrichment_prompt_hash(chat);
    const auto write_out = [&](const std::map<std::int64_t, std::string>& texts, const std::string& out, const nlohmann::json& header) {
      write_gene_enrichment(texts, gene_table(), out, header);
      note(global, fmt::format("wrote {}: enrichment texts of {} genes ({:.1f} s)", out, texts.size(),
                               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
    };
    const auto prompts = [&]() {
      openai::EnrichmentSelection selection;
      selection.subset = openai_args.subset;
      selection.summaries = args->summaries;
      std::stringstream list(args->gene_types);
      for (std::string type; std::getline(list, type, ',');) {
        if (!type.empty()) selection.gene_types.push_back(type);
      }
      return openai::enrichment_items(gene_table(), selection);
    };
    nlohmann::json header = {{"model", chat.model}, {"temperature", chat.temperature}, {"prompt_hash", prompt_hash}};

    if (!batch) {
      const openai::IdAndText items = prompts();
      openai::CompleteTextsOptions options;
      options.request = chat;
      options.http = http_options(openai_args);
      options.http.checkpoint_path = checkpoint_path(openai_args, args->out, fmt::format("enrichment-{}.jsonl", safe_name(chat.model)));
      note(global, fmt::format("asking {} at {} about {} genes (checkpoint {})", chat.model, options.http.base_url, items.size(),
                               options.http.checkpoint_path));
      RequestProgress progress("enrich", "genes", global);
      options.http.on_progress = std::ref(progress);
      const openai::CompleteTextsResult result = openai::complete_texts(items, options);
      progress.finish();
      print_warnings(result.warnings, global.quiet);
      note(global, fmt::format("{} answers: {} from the checkpoint, {} requests ({} retries)", result.texts.size(),
                               result.n_from_checkpoint, result.n_requests, result.n_retries));
      header["base_url"] = options.http.base_url;
      header["gene_table_hash"] = gene_table().content_hash_hex();
      header["created_utc"] = utc_timestamp();
      write_out(openai::answers_by_gene(result.texts), args->out, header);
      return;
    }
    if (!openai::find_batch_job(openai_args.batch_dir, openai::kGeneEnrichmentJob)) {
      if (openai_args.collect)
        throw InputError(fmt::format("{} holds no batch job to collect: run without --collect first", openai_args.batch_dir));
      const openai::IdAndText items = prompts();
      openai::BatchWriteOptions options;
      options.chat = chat;
      options.limits = batch_limits(openai_args);
      header["created_utc"] = utc_timestamp();
      header["gene_table_hash"] = gene_table().content_hash_hex();
      const openai::BatchJobInfo created = openai::write_gene_enrichment_job(items, openai_args.batch_dir, options, args->out, header);
      note(global, fmt::format("wrote batch job {}: {} genes, {}, request files in {}/{}", openai_args.batch_dir, created.n_items,
                               created.model, openai_args.batch_dir, created.rounds.front()));
      if (!openai_args.submit) {
        note(global, "next: --submit (or upload the request files yourself and put the output files into the round directory), "
                     "then --collect");
        return;
      }
    }
    if (!advance_job(openai_args, global)) return;
    const openai::BatchJobInfo info = openai::open_batch_job(openai_args.batch_dir);
    const std::string out = !args->out.empty() ? args->out : info.metadata.value("out", "");
    if (out.empty()) throw InputError("the batch job is complete: give the output file with --out");
    const openai::EnrichmentAnswers answers = openai::enrichment_from_batch_job(openai_args.batch_dir);
    write_out(answers.texts, out, answers.header);
  });
}

// ---- genes info ------------------------------------------------------------------------------

void add_info(CLI::App* genes, const GlobalOptions& global) {
  struct Args {
    std::string path;
    bool json = false;
    bool check = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = genes->add_subcommand("info", "Describe a gene store (default: the one commands use without --genes)");
  command->add_option("store", args->path, "Gene store (.h5); default: $CELLTYPER_GENE_STORE, else share/celltyper/gene_embeddings.h5 beside the executable");
  command->add_flag("--json", args->json, "Print machine-readable JSON");
  command->add_flag("--check", args->check,
                    "Also read every vector and check the store as commands do (ids unique, values finite, rows of norm 1, shapes agree); "
                    "without it only the attributes are read");
  command->callback([args, &global] {
    (void)global;
    if (args->path.empty()) fmt::print("default gene store: {}\n", default_gene_store_path());
    const std::string path = resolve_gene_store_path(args->path);
    if (args->check) (void)GeneStore::load(path);  // throws InputError naming the fault
    nlohmann::json info = GeneStore::read_info(path);  // attributes only: the matrix is not read
    info["path"] = path;
    if (args->check) info["checked"] = true;
    if (args->json) {
      fmt::print("{}\n", info.dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
      return;
    }
    const GeneStoreProvenance p = GeneStoreProvenance::from_json(info);
    const int store_dims = info["store_dims"].get<int>();
    fmt::print("gene store:        {}\n", path);
    fmt::print("genes x dims:      {} x {}{}\n", info["n_genes"].get<std::int64_t>(), store_dims,
               p.dims != store_dims ? fmt::format(" (made with {} dims, truncated)", p.dims) : "");
    fmt::print("backend / model:   {} / {}\n", p.backend, p.model);
    fmt::print("species:           {}\n", p.species.empty() ? "?" : p.species);
    fmt::print("text recipe hash:  {}\n", p.text_recipe_hash.empty() ? "-" : p.text_recipe_hash);
    fmt::print("gene table hash:   {}\n", p.gene_table_hash.empty() ? "-" : p.gene_table_hash);
    fmt::print("identity hash:     {}\n", info["identity_hash"].get<std::string>());
    if (args->check) fmt::print("checked:           every vector (ids unique, values finite, norm 1, shapes agree): ok\n");
    fmt::print("created (UTC):     {} by celltyper {}\n", p.created_utc, p.celltyper_version);
    if (p.extra.contains("lsa")) {
      const auto& lsa = p.extra["lsa"];
      fmt::print("LSA:               {} texts, {} terms, {} non-zeros; seed {}, {} power iterations, oversampling {}\n",
                 lsa.value("n_texts", 0), lsa.value("n_terms", 0), lsa.value("nnz", 0), lsa.value("seed", 0),
                 lsa.value("power_iterations", 0), lsa.value("oversampling", 0));
    }
    if (p.extra.contains("texts") && p.extra["texts"].contains("counts")) {
      const auto& counts = p.extra["texts"]["counts"];
      fmt::print("texts:             {} genes, {} with a summary, {} with GO terms, {} with enrichment\n",
                 counts.value("n_genes", 0), counts.value("n_with_summary", 0), counts.value("n_with_go", 0),
                 counts.value("n_with_enrichment", 0));
      const auto& texts = p.extra["texts"];
      if (texts.contains("summaries")) fmt::print("summaries from:    {}\n", texts["summaries"].value("source", ""));
      if (texts.contains("go")) fmt::print("GO from:           {}\n", texts["go"].value("source", ""));
    }
    if (p.extra.contains("import")) fmt::print("imported from:     {}\n", p.extra["import"].value("source", ""));
    if (p.extra.contains("openai") && p.extra["openai"].is_object()) {
      const auto& details = p.extra["openai"];
      const int requested = details.value("dimensions_requested", 0);
      fmt::print("OpenAI:            {} {}, dimensions asked: {}\n", details.contains("batch_dir") ? "Batch API job" : "direct requests to",
                 details.contains("batch_dir") ? details.value("batch_dir", "") : details.value("base_url", ""),
                 requested > 0 ? std::to_string(requested) : "model default");
    }
    if (p.extra.contains("truncation")) {
      fmt::print("truncated:         {} -> {} dims\n", p.extra["truncation"].value("from_dims", 0), p.extra["truncation"].value("to_dims", 0));
    }
  });
}

// ---- genes truncate --------------------------------------------------------------------------

void add_truncate(CLI::App* genes, const GlobalOptions& global) {
  struct Args {
    std::string path;
    int dims = 0;
    std::string out;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = genes->add_subcommand("truncate", "Keep the first k dimensions of a gene store (rows re-normalised)");
  command->add_option("store", args->path, "Gene store (.h5)")->required();
  command->add_option("--dims", args->dims, "Dimensions to keep")->required();
  command->add_option("-o,--out", args->out, "Output gene store")->required();
  command->callback([args, &global] {
    check_outputs({args->out}, {args->path});
    const GeneStore store = GeneStore::load(args->path);
    const GeneStore truncated = store.truncated(args->dims);
    truncated.save(args->out);
    note(global, fmt::format("wrote {}: {} genes x {} dims (from {})", args->out, truncated.n_genes(), truncated.dims(), store.dims()));
  });
}

// ---- genes combine ---------------------------------------------------------------------------

void add_combine(CLI::App* genes, const GlobalOptions& global) {
  struct Args {
    std::vector<std::string> inputs;
    std::vector<double> weights;
    bool keep_order = false;
    bool center = false;
    int dims = 0;
    std::string out;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = genes->add_subcommand(
      "combine",
      "Combine gene stores (e.g. LSA + use-lite + imported): weighted concatenation (optionally centred) rotated onto its principal axes");
  command->add_option("stores", args->inputs, "Gene stores (.h5), 2 or more (1 with --center)")->required()->expected(1, 64);
  command->add_option("--weights", args->weights,
                      "Weight per store (comma-separated; default all 1): the combined cosine is the weighted mean of the stores' cosines")
      ->delimiter(',');
  command->add_flag("--keep-order", args->keep_order,
                    "Keep the concatenation's column order (default: rotate onto principal axes, most informative dimensions first)");
  command->add_flag("--center", args->center,
                    "Subtract each store's mean gene vector first (rows re-normalised): removes the common direction of "
                    "transformer embeddings such as use-lite's");
  command->add_option("--dims", args->dims, "Keep the first k dimensions after rotation (0 = all)")->capture_default_str();
  command->add_option("-o,--out", args->out, "Output gene store")->required();
  command->callback([args, &global] {
    check_outputs({args->out}, args->inputs);
    std::vector<GeneStore> sources;
    for (const auto& path : args->inputs) sources.push_back(GeneStore::load(path));
    CombineOptions options;
    options.weights = args->weights;
    options.principal_axes = !args->keep_order;
    options.center = args->center;
    options.dims = args->dims;
    const CombineResult result = combine_gene_stores(sources, options);
    for (std::size_t s = 0; s < sources.size(); ++s)
      note(global, fmt::format("{}: {} genes x {} dims ({} / {})", args->inputs[s], sources[s].n_genes(), sources[s].dims(),
                               sources[s].provenance().backend, sources[s].provenance().model));
    note(global, fmt::format("{} genes are in every store (the others are left out)", result.n_common));
    result.store.save(args->out);
    note(global, fmt::format("wrote {}: {} genes x {} dims", args->out, result.store.n_genes(), result.store.dims()));
  });
}

// ---- genes neighbors -------------------------------------------------------------------------

void add_neighbors(CLI::App* genes, const GlobalOptions& global) {
  struct Args {
    std::string gene;
    int k = 10;
    std::string store;
    std::string gene_table;
    int dims = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = genes->add_subcommand("neighbors", "List the genes closest to GENE by cosine similarity");
  command->add_option("gene", args->gene, "Gene symbol, Ensembl id or Entrez id")->required();
  command->add_option("-k", args->k, "Neighbours to list")->capture_default_str();
  command->add_option("--genes", args->store, "Gene store (default: $CELLTYPER_GENE_STORE, else the store beside the executable)");
  command->add_option("--gene-table", args->gene_table, "Gene table to resolve aliases (default: $CELLTYPER_GENE_TABLE, else org.Hs.eg.db)");
  command->add_option("--dims", args->dims, "Use only the first k dimensions (0 = all)")->capture_default_str();
  command->callback([args, &global] {
    if (args->k < 1) throw InputError(fmt::format("-k must be at least 1, got {}", args->k));
    const std::string path = resolve_gene_store_path(args->store);
    GeneStore store = GeneStore::load(path);
    if (args->dims > 0 && args->dims < store.dims()) store = store.truncated(args->dims);
    std::int32_t row = store.find_gene(args->gene);
    if (row < 0) {
      const std::string table_path = choose_gene_table_path(args->gene_table);
      if (!table_path.empty()) {
        const GeneTable table = load_gene_table_cached(table_path, GeneTableFields::kIdentifiers);
        row = store.find_gene(args->gene, &table);
        if (row < 0 && table.find_alias(args->gene).ambiguous()) {  // e.g. SEPT2: an old symbol of SEPTIN2 and SEPTIN6
          std::vector<std::string> genes;
          for (const Gene& gene : table.genes()) {
            if (std::find(gene.aliases.begin(), gene.aliases.end(), args->gene) != gene.aliases.end()) genes.push_back(gene.symbol);
          }
          throw InputError(fmt::format("gene '{}' is an alias of {} genes ({}): name one of them", args->gene, genes.size(), fmt::join(genes, ", ")));
        }
      }
    }
    if (row < 0) throw InputError(fmt::format("gene '{}' is not in the gene store {} ({} genes)", args->gene, path, store.n_genes()));
    note(global, fmt::format("{} (Entrez {}) in {} ({} dims)", store.symbols()[static_cast<std::size_t>(row)],
                             store.entrez_ids()[static_cast<std::size_t>(row)], path, store.dims()));
    fmt::print("rank\tsymbol\tentrez_id\tcosine\n");
    int rank = 0;
    for (const auto& [neighbour, cosine] : store.nearest(row, args->k)) {
      fmt::print("{}\t{}\t{}\t{:.4f}\n", ++rank, store.symbols()[static_cast<std::size_t>(neighbour)],
                 store.entrez_ids()[static_cast<std::size_t>(neighbour)], cosine);
    }
  });
}

// ---- genes export ----------------------------------------------------------------------------

void add_export(CLI::App* genes, const GlobalOptions& global) {
  struct Args {
    std::string path;
    std::string format = "tsv";
    std::string out;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = genes->add_subcommand("export", "Write a gene store's matrix and gene ids as TSV or .npy");
  command->add_option("store", args->path, "Gene store (.h5)")->required();
  command->add_option("--format", args->format, "tsv (PREFIX.tsv) or npy (PREFIX.npy + PREFIX.genes.tsv)")
      ->capture_default_str()
      ->check(CLI::IsMember({"tsv", "npy"}));
  command->add_option("-o,--out", args->out, "Output prefix")->required();
  command->callback([args, &global] {
    check_outputs({args->out + ".tsv", args->out + ".npy", args->out + ".genes.tsv"}, {args->path});
    const GeneStore store = GeneStore::load(args->path);
    if (args->format == "tsv") {
      export_gene_store_tsv(store, args->out);
      note(global, fmt::format("wrote {}.tsv ({} genes x {} dims)", args->out, store.n_genes(), store.dims()));
    } else {
      export_gene_store_npy(store, args->out);
      note(global, fmt::format("wrote {0}.npy and {0}.genes.tsv ({1} genes x {2} dims)", args->out, store.n_genes(), store.dims()));
    }
  });
}

}  // namespace

void add_genes(CLI::App& app, const GlobalOptions& global) {
  CLI::App* genes =
      app.add_subcommand("genes", "Gene texts and gene embeddings: text, enrich, embed, info, truncate, combine, neighbors, export");
  genes->require_subcommand(1);
  add_text(genes, global);
  add_enrich(genes, global);
  add_embed(genes, global);
  add_info(genes, global);
  add_truncate(genes, global);
  add_combine(genes, global);
  add_neighbors(genes, global);
  add_export(genes, global);
}

CELLTYPER_REGISTER_COMMAND("20-genes", add_genes);

}  // namespace celltyper::cli
