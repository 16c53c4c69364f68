// `celltyper genes ...`: gene texts and gene embeddings (text, embed, info, truncate, neighbors,
// export).
#include <celltyper/error.hpp>
#include <celltyper/gene_embedding.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_text.hpp>

#include "cli/commands.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

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
  GeneTextOptions options;
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
                      "TSV of gene summaries (entrez_id or symbol, summary), used instead of the gene table's");
  command->add_flag("--no-summaries", args.no_summaries, "Leave RefSeq summaries out of the texts");
  command->add_option("--enrichment", args.enrichment, "JSONL of enrichment texts ({\"id\": ..., \"text\": ...} per line)");
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
  const std::string path = requested.empty() ? default_gene_table_path() : requested;
  if (path.empty()) {
    throw InputError("no gene table found: pass --gene-table (org.*.eg.db SQLite or TSV) or set CELLTYPER_GENE_TABLE");
  }
  const auto start = std::chrono::steady_clock::now();
  GeneTable table = load_gene_table(path);
  note(global, fmt::format("gene table {}: {} genes ({:.1f} s)", path, table.size(),
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
  return table;
}

/// Build texts from the sources named in `args` (the gene table already loaded).
GeneTexts build_texts(const TextSourceArgs& args, const GeneTable& table, const GlobalOptions& global) {
  std::unique_ptr<GoAnnotations> go;
  if (!args.no_go) {
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
  if (!args.summaries.empty() && !args.no_summaries) {
    summaries = std::make_unique<GeneExtraTexts>(load_gene_summaries(args.summaries, table));
    note(global, fmt::format("summaries {}: {} genes ({} ids not in the gene table)", args.summaries, summaries->texts.size(),
                             summaries->n_unresolved));
  }
  std::unique_ptr<GeneExtraTexts> enrichment;
  if (!args.enrichment.empty()) {
    enrichment = std::make_unique<GeneExtraTexts>(load_gene_enrichment(args.enrichment, table));
    note(global, fmt::format("enrichment {}: {} genes ({} ids not in the gene table)", args.enrichment, enrichment->texts.size(),
                             enrichment->n_unresolved));
  }
  GeneTextOptions options = args.options;
  options.include_summary = !args.no_summaries;
  GeneTextSources sources;
  sources.table = &table;
  sources.go = go.get();
  sources.summaries = summaries.get();
  sources.enrichment = enrichment.get();
  GeneTexts texts = build_gene_texts(sources, options);
  const auto& counts = texts.provenance["counts"];
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

void add_embed(CLI::App* genes, const GlobalOptions& global) {
  struct Args {
    std::string backend = "lsa";
    TextSourceArgs sources;
    std::string texts;
    std::string write_texts;
    LsaOptions lsa;
    std::int64_t min_df = 2;
    std::string input;
    GeneImportOptions import;
    bool strict = false;
    int threads = 0;
    std::string out;
    std::string skipped;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = genes->add_subcommand("embed", "Make a gene store: LSA of the gene texts (offline) or import vectors");
  command->add_option("--backend", args->backend, "lsa (TF-IDF + randomised SVD of the gene texts) or import")
      ->capture_default_str();
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
  command->add_option("--model", args->import.model, "import: model name recorded in the provenance");
  command->add_flag("--strict", args->strict, "import: fail when any gene id is not in the gene table");
  command->add_option("--threads", args->threads, "Threads (0 = all cores)")->capture_default_str();
  command->add_option("--skipped", args->skipped, "Write the genes left without a vector (entrez_id, symbol, reason) to this TSV");
  command->add_option("-o,--out", args->out, "Output gene store (.h5)")->required();
  command->callback([args, &global] {
    const auto start = std::chrono::steady_clock::now();
    if (args->backend == "openai" || args->backend == "openai-batch") {
      throw UnsupportedError(fmt::format("--backend {} is not wired into 'genes embed' yet: write the texts with 'celltyper genes "
                                         "text', embed them with the OpenAI tools, then 'celltyper genes embed --backend import'",
                                         args->backend));
    }
    if (args->backend != "lsa" && args->backend != "import") {
      throw InputError(fmt::format("--backend must be lsa or import, got '{}'", args->backend));
    }
    const GeneTable table = load_table(args->sources.gene_table, global);
    GeneStore store;
    std::vector<std::string> skipped_lines;
    if (args->backend == "import") {
      if (args->input.empty()) throw InputError("--backend import needs --input FILE");
      args->import.allow_unresolved = !args->strict;
      const GeneImportResult result = import_gene_embeddings(args->input, table, args->import);
      note(global, fmt::format("imported {} of {} rows from {} ({} ids not in the gene table{}, {} duplicates, {} all-zero rows)",
                               result.store.n_genes(), result.n_rows, args->input, result.n_unresolved,
                               result.unresolved_examples.empty() ? "" : fmt::format(", e.g. {}", fmt::join(result.unresolved_examples, ", ")),
                               result.n_duplicates, result.n_zero_rows));
      store = result.store;
    } else {
      GeneTexts texts;
      if (!args->texts.empty()) {
        texts = read_gene_texts(args->texts, &table);
        note(global, fmt::format("texts {}: {} genes, recipe hash {}{}", args->texts, texts.size(), texts.recipe_hash,
                                 texts.provenance.value("edited", false) ? " (differs from the file's header: edited?)" : ""));
      } else {
        texts = build_texts(args->sources, table, global);
      }
      if (!args->write_texts.empty()) write_gene_texts(texts, args->write_texts);
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
    if (!args->skipped.empty()) {
      std::ofstream out(args->skipped);
      out << "entrez_id\tsymbol\treason\n";
      for (const auto& line : skipped_lines) out << line << '\n';
      if (!out) throw IoError(fmt::format("cannot write {}", args->skipped));
    }
    const std::filesystem::path parent = std::filesystem::path(args->out).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    store.save(args->out);
    note(global, fmt::format("wrote {}: {} genes x {} dims ({} backend, {:.1f} s)", args->out, store.n_genes(), store.dims(),
                             store.provenance().backend,
                             std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
  });
}

// ---- genes info ------------------------------------------------------------------------------

void add_info(CLI::App* genes, const GlobalOptions& global) {
  struct Args {
    std::string path;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = genes->add_subcommand("info", "Describe a gene store (default: the one commands use without --genes)");
  command->add_option("store", args->path, "Gene store (.h5); default: $CELLTYPER_GENE_STORE, else share/celltyper/gene_embeddings.h5 beside the executable");
  command->add_flag("--json", args->json, "Print machine-readable JSON");
  command->callback([args, &global] {
    (void)global;
    if (args->path.empty()) fmt::print("default gene store: {}\n", default_gene_store_path());
    const std::string path = resolve_gene_store_path(args->path);
    const GeneStore store = GeneStore::load(path);
    nlohmann::json info = store.info_json();
    info["path"] = path;
    if (args->json) {
      fmt::print("{}\n", info.dump(2));
      return;
    }
    const GeneStoreProvenance& p = store.provenance();
    fmt::print("gene store:        {}\n", path);
    fmt::print("genes x dims:      {} x {}{}\n", store.n_genes(), store.dims(),
               p.dims != store.dims() ? fmt::format(" (made with {} dims, truncated)", p.dims) : "");
    fmt::print("backend / model:   {} / {}\n", p.backend, p.model);
    fmt::print("species:           {}\n", p.species.empty() ? "?" : p.species);
    fmt::print("text recipe hash:  {}\n", p.text_recipe_hash.empty() ? "-" : p.text_recipe_hash);
    fmt::print("gene table hash:   {}\n", p.gene_table_hash.empty() ? "-" : p.gene_table_hash);
    fmt::print("identity hash:     {}\n", info["identity_hash"].get<std::string>());
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
    const GeneStore store = GeneStore::load(args->path);
    const GeneStore truncated = store.truncated(args->dims);
    truncated.save(args->out);
    note(global, fmt::format("wrote {}: {} genes x {} dims (from {})", args->out, truncated.n_genes(), truncated.dims(), store.dims()));
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
      const std::string table_path = args->gene_table.empty() ? default_gene_table_path() : args->gene_table;
      if (!table_path.empty()) {
        const GeneTable table = load_gene_table(table_path);
        row = store.find_gene(args->gene, &table);
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
  CLI::App* genes = app.add_subcommand("genes", "Gene texts and gene embeddings: text, embed, info, truncate, neighbors, export");
  genes->require_subcommand(1);
  add_text(genes, global);
  add_embed(genes, global);
  add_info(genes, global);
  add_truncate(genes, global);
  add_neighbors(genes, global);
  add_export(genes, global);
}

CELLTYPER_REGISTER_COMMAND("20-genes", add_genes);

}  // namespace celltyper::cli
