// Tests of gene texts: document layout, GO readers (TSV and Bioconductor SQLite), summaries and
// enrichment sources, recipe hash, texts files round trip and malformed input.
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_text.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "support/test_support.hpp"

namespace celltyper {
namespace {

using test::TempDir;

std::string write_file(const TempDir& directory, const std::string& name, const std::string& text) {
  const std::string path = directory.file(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <typename Action>
std::string input_error_message(Action&& action) {
  try {
    action();
  } catch (const InputError& error) {
    return error.what();
  }
  return {};
}

/// Three genes: CD3E with a summary (containing a tab), LYZ without, XYZ1 with nothing.
GeneTable small_table(const TempDir& directory) {
  return load_gene_table(write_file(
      directory, "genes.tsv",
      "entrez_id\tsymbol\tname\tgene_type\tensembl_ids\taliases\trefseq_summary\n"
      "916\tCD3E\tCD3 epsilon subunit of T-cell receptor complex\tprotein-coding\tENSG00000198851\tT3E\t"
      "The protein encoded by this gene is the CD3-epsilon polypeptide.  It forms the T-cell receptor-CD3 complex.\n"
      "4069\tLYZ\tlysozyme\tprotein-coding\tENSG00000090382\tLZM\t\n"
      "99999\tXYZ1\tuncharacterized XYZ1\tncRNA\t\t\t\n"));
}

/// GO TSV pair: duplicates, an ND link, a root term, an unknown term id, all three aspects.
struct GoFiles {
  std::string gene2go;
  std::string terms;
};
GoFiles small_go(const TempDir& directory) {
  return {write_file(directory, "gene2go.tsv",
                     "entrez_id\tgo_id\tevidence\tontology\n"
                     "916\tGO:0050852\tIDA\tBP\n"
                     "916\tGO:0050852\tIMP\tBP\n"          // duplicate link, other evidence
                     "916\tGO:0007166\tTAS\tBP\n"
                     "916\tGO:0042105\tIDA\tCC\n"
                     "916\tGO:0004888\tIEA\tMF\n"
                     "916\tGO:0008150\tND\tBP\n"           // root + ND: dropped
                     "4069\tGO:0003674\tIEA\tMF\n"         // root term: dropped
                     "4069\tGO:0003796\tIDA\tMF\n"
                     "4069\tGO:9999999\tIDA\tBP\n"),       // unknown id: dropped
          write_file(directory, "go_terms.tsv",
                     "go_id\tontology\tterm\tdefinition\n"
                     "GO:0050852\tBP\tT cell receptor signaling pathway\tdef\n"
                     "GO:0007166\tBP\tcell surface receptor signaling pathway\tdef\n"
                     "GO:0042105\tCC\talpha-beta T cell receptor complex\tdef\n"
                     "GO:0004888\tMF\ttransmembrane signaling receptor activity\tdef\n"
                     "GO:0003674\tMF\tmolecular_function\tdef\n"
                     "GO:0008150\tBP\tbiological_process\tdef\n"
                     "GO:0003796\tMF\tlysozyme activity\tdef\n")};
}

/// The small table and GO files as build_gene_texts sources (in place: `sources` points at them).
struct SmallSources {
  TempDir directory;
  GeneTable table = small_table(directory);
  GoAnnotations go = [this] {
    const GoFiles files = small_go(directory);
    return load_go_tsv(files.gene2go, files.terms);
  }();
  GeneTextSources sources{&table, &go, nullptr, nullptr};
  SmallSources() = default;
  SmallSources(const SmallSources&) = delete;
  SmallSources& operator=(const SmallSources&) = delete;
};

TEST(GoAnnotations, TsvReaderDeduplicatesSortsAndDropsRootAndNd) {
  TempDir directory;
  const GoFiles files = small_go(directory);
  const GoAnnotations go = load_go_tsv(files.gene2go, files.terms);
  ASSERT_EQ(go.genes.size(), 2U);
  const GeneGoTerms& cd3e = go.genes.at(916);
  EXPECT_EQ(cd3e[0], (std::vector<std::string>{"T cell receptor signaling pathway", "cell surface receptor signaling pathway"}));
  EXPECT_EQ(cd3e[1], (std::vector<std::string>{"transmembrane signaling receptor activity"}));
  EXPECT_EQ(cd3e[2], (std::vector<std::string>{"alpha-beta T cell receptor complex"}));
  EXPECT_EQ(go.genes.at(4069)[1], (std::vector<std::string>{"lysozyme activity"}));
  EXPECT_TRUE(go.genes.at(4069)[0].empty());
  EXPECT_EQ(go.n_links, 5U);
  EXPECT_EQ(go.n_dropped_evidence, 2U);
  EXPECT_EQ(go.n_unknown_terms, 1U);
  EXPECT_EQ(go.go_ids.at(4069), (std::vector<std::string>{"GO:0003796"}));
  EXPECT_EQ(go.content_hash.size(), 16U);
  // Keeping ND and root terms changes the content and the hash.
  GoLoadOptions keep_all;
  keep_all.exclude_evidence.clear();
  keep_all.drop_root_terms = false;
  const GoAnnotations all = load_go_tsv(files.gene2go, files.terms, keep_all);
  EXPECT_EQ(all.genes.at(916)[0].size(), 3U);
  EXPECT_NE(all.content_hash, go.content_hash);
}

TEST(GoAnnotations, TsvReaderNamesFileAndLineOfBadRows) {
  TempDir directory;
  const GoFiles files = small_go(directory);
  const std::string bad_ontology = write_file(directory, "bad1.tsv", "entrez_id\tgo_id\tevidence\tontology\n1\tGO:1\tIDA\tXX\n");
  EXPECT_NE(input_error_message([&] { load_go_tsv(bad_ontology, files.terms); }).find("bad1.tsv: line 2, column ontology"),
            std::string::npos);
  const std::string bad_fields = write_file(directory, "bad2.tsv", "entrez_id\tgo_id\tevidence\tontology\n1\tGO:1\tIDA\n");
  EXPECT_NE(input_error_message([&] { load_go_tsv(bad_fields, files.terms); }).find("line 2 has 3 tab-separated fields"),
            std::string::npos);
  const std::string no_column = write_file(directory, "bad3.tsv", "gene\tgo_id\tontology\n1\tGO:1\tBP\n");
  EXPECT_NE(input_error_message([&] { load_go_tsv(no_column, files.terms); }).find("no column 'entrez_id'"), std::string::npos);
  EXPECT_THROW(load_go_tsv(directory.file("absent.tsv"), files.terms), IoError);
}

TEST(GoAnnotations, BioconductorSqliteMatchesItsTsvExport) {
  const std::string org = default_gene_table_path();
  const std::string go_db = default_go_db_path();
  if (org.empty() || go_db.empty() || org.find(".sqlite") == std::string::npos) GTEST_SKIP() << "org.Hs.eg.db / GO.db absent";
  const GoAnnotations go = load_go_sqlite(org, go_db);
  EXPECT_GT(go.genes.size(), 15000U);
  const GeneGoTerms& cd3e = go.genes.at(916);
  const auto& cc = cd3e[static_cast<std::size_t>(GoAspect::kCellularComponent)];
  EXPECT_NE(std::find(cc.begin(), cc.end(), "T cell receptor complex"), cc.end());
  // ../shared/data's TSV pair was exported from the same Debian packages: same annotations.
  const std::string gene2go = test::shared_data("gene-annotations/human_gene2go.tsv");
  const std::string terms = test::shared_data("gene-annotations/go_terms.tsv");
  if (gene2go.empty() || terms.empty()) return;
  const GoAnnotations from_tsv = load_go_tsv(gene2go, terms);
  EXPECT_EQ(from_tsv.content_hash, go.content_hash);
  EXPECT_EQ(from_tsv.n_links, go.n_links);
}

TEST(GoAnnotations, SqliteErrorsNameTheFile) {
  TempDir directory;
  const std::string not_db = write_file(directory, "not.sqlite", "hello");
  const std::string go_db = default_go_db_path();
  if (go_db.empty()) GTEST_SKIP() << "GO.db absent";
  EXPECT_THROW(load_go_sqlite(go_db, go_db), InputError);  // GO.db has no go_bp table
  EXPECT_THROW(load_go_sqlite(directory.file("absent.sqlite"), go_db), IoError);
  try {
    load_go_sqlite(not_db, go_db);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("not.sqlite"), std::string::npos) << error.what();
  }
}

TEST(GeneTexts, DocumentLayoutIsExact) {
  const SmallSources small;
  const GeneTextSources& sources = small.sources;
  const GeneTexts texts = build_gene_texts(sources);
  ASSERT_EQ(texts.size(), 3U);
  EXPECT_EQ(texts.entrez_ids, (std::vector<std::int64_t>{916, 4069, 99999}));
  EXPECT_EQ(texts.texts[0],
            "CD3E: CD3 epsilon subunit of T-cell receptor complex. Gene type: protein-coding. Summary: The protein encoded by "
            "this gene is the CD3-epsilon polypeptide. It forms the T-cell receptor-CD3 complex. Biological process: T cell "
            "receptor signaling pathway; cell surface receptor signaling pathway. Molecular function: transmembrane signaling "
            "receptor activity. Cellular component: alpha-beta T cell receptor complex.");
  EXPECT_EQ(texts.texts[1], "LYZ: lysozyme. Gene type: protein-coding. Molecular function: lysozyme activity.");
  EXPECT_EQ(texts.texts[2], "XYZ1: uncharacterized XYZ1. Gene type: ncRNA.");
  EXPECT_EQ(texts.n_nonempty(), 3U);
  EXPECT_EQ(texts.provenance["counts"]["n_with_go"], 2);
  EXPECT_EQ(texts.provenance["counts"]["n_with_summary"], 1);
  EXPECT_EQ(texts.recipe_hash, gene_text_recipe_hash(texts.entrez_ids, texts.texts));
  // Deterministic.
  EXPECT_EQ(build_gene_texts(sources).texts, texts.texts);

  GeneTextOptions options;
  options.require_annotation = true;
  options.max_go_terms_per_aspect = 1;
  const GeneTexts strict = build_gene_texts(sources, options);
  EXPECT_TRUE(strict.texts[2].empty());
  EXPECT_EQ(strict.n_nonempty(), 2U);
  EXPECT_NE(strict.texts[0].find("Biological process: T cell receptor signaling pathway. Molecular"), std::string::npos);
  EXPECT_NE(strict.recipe_hash, texts.recipe_hash);
  EXPECT_THROW(build_gene_texts(GeneTextSources{}), InputError);
}

TEST(GeneTexts, SectionsChooseAndRepeatParts) {
  const SmallSources small;
  const GeneTextSources& sources = small.sources;
  const GeneTexts defaults = build_gene_texts(sources);

  // The default recipe spelled out gives the same texts, hash included.
  GeneTextOptions options;
  options.section_repeats = parse_gene_text_sections("name,type,summary,bp,mf,cc,enrichment");
  EXPECT_EQ(options.section_repeats, kDefaultGeneTextSections);
  EXPECT_EQ(build_gene_texts(sources, options).recipe_hash, defaults.recipe_hash);
  EXPECT_EQ(format_gene_text_sections(kDefaultGeneTextSections), "name,type,summary,bp,mf,cc,enrichment");
  EXPECT_EQ(defaults.provenance["options"]["sections"], "name,type,summary,bp,mf,cc,enrichment");

  // Aliases added, the summary twice, GO reduced to its molecular function.
  options.section_repeats = parse_gene_text_sections("default,aliases,summary:2,bp:0,cc:0");
  EXPECT_EQ(format_gene_text_sections(options.section_repeats), "name,type,aliases,summary:2,mf,enrichment");
  const GeneTexts varied = build_gene_texts(sources, options);
  EXPECT_EQ(varied.texts[0],
            "CD3E: CD3 epsilon subunit of T-cell receptor complex. Gene type: protein-coding. Also known as: T3E. Summary: The "
            "protein encoded by this gene is the CD3-epsilon polypeptide. It forms the T-cell receptor-CD3 complex. Summary: "
            "The protein encoded by this gene is the CD3-epsilon polypeptide. It forms the T-cell receptor-CD3 complex. "
            "Molecular function: transmembrane signaling receptor activity.");
  EXPECT_EQ(varied.texts[1], "LYZ: lysozyme. Gene type: protein-coding. Also known as: LZM. Molecular function: lysozyme activity.");
  EXPECT_EQ(varied.texts[2], "XYZ1: uncharacterized XYZ1. Gene type: ncRNA.");
  EXPECT_NE(varied.recipe_hash, defaults.recipe_hash);
  EXPECT_EQ(varied.provenance["options"]["sections"], "name,type,aliases,summary:2,mf,enrichment");

  // Only the symbol and GO ("go" names all three aspects); the name twice.
  options.section_repeats = parse_gene_text_sections("go");
  const GeneTexts go_only = build_gene_texts(sources, options);
  EXPECT_EQ(go_only.texts[1], "LYZ. Molecular function: lysozyme activity.");
  EXPECT_EQ(go_only.texts[2], "XYZ1.");
  options.section_repeats = parse_gene_text_sections("name:2");
  EXPECT_EQ(build_gene_texts(sources, options).texts[1], "LYZ: lysozyme. lysozyme.");
  options.require_annotation = true;
  EXPECT_TRUE(build_gene_texts(sources, options).texts[1].empty());  // no summary/GO/enrichment written

  // Bad lists name the item and the valid names.
  EXPECT_NE(input_error_message([] { (void)parse_gene_text_sections("name,summry"); }).find("unknown section 'summry'"),
            std::string::npos);
  EXPECT_NE(input_error_message([] { (void)parse_gene_text_sections("summary:12"); }).find("one digit"), std::string::npos);
  EXPECT_NE(input_error_message([] { (void)parse_gene_text_sections(""); }).find("empty item"), std::string::npos);
  EXPECT_NE(input_error_message([] { (void)parse_gene_text_sections("name,,bp"); }).find("sections: name, type"),
            std::string::npos);
}

TEST(GeneTexts, SummariesAndEnrichmentSources) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  const std::string summaries_path = write_file(directory, "summaries.tsv",
                                                "symbol\trefseq_summary_status\tsummary\n"
                                                "LZM\tREVIEWED\tLysozyme breaks bacterial cell walls.\n"  // alias of LYZ
                                                "NOPE\tx\tunknown gene\n");
  const GeneExtraTexts summaries = load_gene_summaries(summaries_path, table);
  EXPECT_EQ(summaries.texts.size(), 1U);
  EXPECT_EQ(summaries.texts.at(4069), "Lysozyme breaks bacterial cell walls.");
  EXPECT_EQ(summaries.n_unresolved, 1U);
  EXPECT_EQ(summaries.unresolved_examples, (std::vector<std::string>{"NOPE"}));

  const std::string enrichment_path = write_file(directory, "enrichment.jsonl",
                                                 "{\"celltyper_results\":1,\"kind\":\"text\",\"model\":\"m\"}\n"
                                                 "{\"id\":\"916\",\"text\":\"Cell types: T cell.\"}\n"
                                                 "\n"
                                                 "{\"entrez_id\":99999,\"text\":\"Tissues: none known.\"}\n");
  const GeneExtraTexts enrichment = load_gene_enrichment(enrichment_path, table);
  EXPECT_EQ(enrichment.texts.size(), 2U);

  GeneTextSources sources;
  sources.table = &table;
  sources.summaries = &summaries;
  sources.enrichment = &enrichment;
  const GeneTexts texts = build_gene_texts(sources);
  EXPECT_EQ(texts.texts[1], "LYZ: lysozyme. Gene type: protein-coding. Summary: Lysozyme breaks bacterial cell walls.");
  EXPECT_NE(texts.texts[0].find("complex. Enrichment: Cell types: T cell."), std::string::npos) << texts.texts[0];
  EXPECT_EQ(texts.texts[2], "XYZ1: uncharacterized XYZ1. Gene type: ncRNA. Enrichment: Tissues: none known.");
  EXPECT_EQ(texts.provenance["summaries"]["content_hash"], summaries.content_hash);

  const std::string bad_json = write_file(directory, "bad.jsonl", "{\"id\": 1, \"text\": \"x\"}\n{oops\n");
  EXPECT_NE(input_error_message([&] { load_gene_enrichment(bad_json, table); }).find("bad.jsonl: line 2: not valid JSON"),
            std::string::npos);
  const std::string no_id = write_file(directory, "noid.jsonl", "{\"text\": \"x\"}\n");
  EXPECT_NE(input_error_message([&] { load_gene_enrichment(no_id, table); }).find("line 1"), std::string::npos);
  const std::string ragged = write_file(directory, "ragged.tsv", "entrez_id\tsummary\n916\tx\ty\n");
  EXPECT_NE(input_error_message([&] { load_gene_summaries(ragged, table); }).find("ragged.tsv: line 2 has 3"), std::string::npos);
}

TEST(GeneTexts, FilesRoundTripInBothFormats) {
  const SmallSources small;
  const TempDir& directory = small.directory;
  const GeneTable& table = small.table;
  const GeneTextSources& sources = small.sources;
  const GeneTexts texts = build_gene_texts(sources);
  for (const std::string name : {"texts.tsv", "texts.jsonl"}) {
    SCOPED_TRACE(name);
    const std::string path = directory.file(name);
    write_gene_texts(texts, path);
    const GeneTexts back = read_gene_texts(path);
    EXPECT_EQ(back.entrez_ids, texts.entrez_ids);
    EXPECT_EQ(back.symbols, texts.symbols);
    EXPECT_EQ(back.texts, texts.texts);
    EXPECT_EQ(back.recipe_hash, texts.recipe_hash);
    EXPECT_FALSE(back.provenance.contains("edited"));
    EXPECT_EQ(back.provenance["go"]["content_hash"], small.go.content_hash);
  }
  const std::string tsv = read_file(directory.file("texts.tsv"));
  EXPECT_EQ(tsv.rfind("#celltyper_gene_texts\trecipe=celltyper-gene-text/1\trecipe_hash=" + texts.recipe_hash + "\t", 0), 0U);
  EXPECT_NE(tsv.find("\nentrez_id\tsymbol\ttext\n916\tCD3E\tCD3E: CD3 epsilon"), std::string::npos);
  // No temporary file left behind.
  std::size_t n_files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(directory.path())) ++n_files;
  EXPECT_EQ(n_files, 5U);

  // An edited file: the hash is recomputed and the edit flagged.
  std::string edited = tsv;
  edited.replace(edited.find("lysozyme activity"), 8, "LYSOZYME");
  const std::string edited_path = write_file(directory, "edited.tsv", edited);
  const GeneTexts back = read_gene_texts(edited_path);
  EXPECT_NE(back.recipe_hash, texts.recipe_hash);
  EXPECT_EQ(back.provenance["recipe_hash_in_file"], texts.recipe_hash);
  EXPECT_TRUE(back.provenance["edited"].get<bool>());

  // A plain TSV with symbols resolved through the table.
  const std::string plain = write_file(directory, "plain.tsv", "symbol\ttext\nT3E\tsome text\nLYZ\tother\n");
  EXPECT_THROW(read_gene_texts(plain), InputError);
  const GeneTexts resolved = read_gene_texts(plain, &table);
  EXPECT_EQ(resolved.entrez_ids, (std::vector<std::int64_t>{916, 4069}));
}

TEST(GeneTexts, MalformedTextsFiles) {
  TempDir directory;
  const auto message = [&](const std::string& name, const std::string& content) {
    const std::string path = write_file(directory, name, content);
    return input_error_message([&] { read_gene_texts(path); });
  };
  EXPECT_NE(message("empty.tsv", "").find("is empty"), std::string::npos);
  EXPECT_NE(message("nohead.tsv", "a\tb\n1\t2\n").find("the header must name 'text'"), std::string::npos);
  EXPECT_NE(message("ragged.tsv", "entrez_id\tsymbol\ttext\n1\tA\n").find("ragged.tsv: line 2 has 2 tab-separated fields"),
            std::string::npos);
  EXPECT_NE(message("badid.tsv", "entrez_id\tsymbol\ttext\nx\tA\tt\n").find("line 2, column entrez_id"), std::string::npos);
  EXPECT_NE(message("dup.tsv", "entrez_id\tsymbol\ttext\n1\tA\tt\n1\tB\tu\n").find("Entrez id 1 appears twice"), std::string::npos);
  EXPECT_NE(message("bad.jsonl", "{\"entrez_id\":1,\"text\":\"a\"}\n{\"entrez_id\":2}\n").find("line 2: no string 'text'"),
            std::string::npos);
  EXPECT_NE(message("nogenes.tsv", "entrez_id\tsymbol\ttext\n").find("holds no genes"), std::string::npos);
  EXPECT_THROW(read_gene_texts(directory.file("absent.tsv")), IoError);
}

TEST(GeneTexts, ResolveGeneName) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  EXPECT_EQ(resolve_gene_name(table, "916"), table.find_entrez(916));
  EXPECT_EQ(resolve_gene_name(table, "ENSG00000090382.3"), table.find_entrez(4069));
  EXPECT_EQ(resolve_gene_name(table, "cd3e"), table.find_entrez(916));
  EXPECT_EQ(resolve_gene_name(table, "LZM"), table.find_entrez(4069));
  EXPECT_EQ(resolve_gene_name(table, "NOPE"), kNoGene);
  EXPECT_EQ(resolve_gene_name(table, ""), kNoGene);
}

}  // namespace
}  // namespace celltyper

namespace celltyper {
namespace {

TEST(GeneTexts, EnrichmentFilesRoundTripAsJsonlAndTsv) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  const std::map<std::int64_t, std::string> answers = {{916, "Associated genes: CD3D;\tCD3G.\nTissues: thymus."},
                                                       {4069, "Cell types: monocyte."}};
  const std::string jsonl = directory.file("enrichment.jsonl");
  write_gene_enrichment(answers, table, jsonl, {{"model", "gpt-test"}});
  const std::string content = read_file(jsonl);
  EXPECT_EQ(content.rfind(R"({"celltyper_gene_enrichment":1,"model":"gpt-test"})" "\n", 0), 0u) << content;
  EXPECT_NE(content.find(R"({"entrez_id":916,"symbol":"CD3E","text":"Associated genes: CD3D;\tCD3G.\nTissues: thymus."})"),
            std::string::npos)
      << content;
  const std::string tsv = directory.file("enrichment.tsv");
  write_gene_enrichment(answers, table, tsv);
  EXPECT_EQ(read_file(tsv), "entrez_id\tsymbol\ttext\n916\tCD3E\tAssociated genes: CD3D; CD3G. Tissues: thymus.\n"
                            "4069\tLYZ\tCell types: monocyte.\n");
  // Both read back to the same cleaned texts.
  const GeneExtraTexts from_jsonl = load_gene_enrichment(jsonl, table);
  const GeneExtraTexts from_tsv = load_gene_enrichment(tsv, table);
  EXPECT_EQ(from_jsonl.texts, from_tsv.texts);
  EXPECT_EQ(from_jsonl.content_hash, from_tsv.content_hash);
  EXPECT_EQ(from_tsv.texts.at(916), "Associated genes: CD3D; CD3G. Tissues: thymus.");
  EXPECT_NE(input_error_message([&] { load_gene_enrichment(write_file(directory, "bad.tsv", "entrez_id\ttext\n916\ta\tb\n"), table); })
                .find("enrichment file " + directory.file("bad.tsv") + ": line 2 has 3 tab-separated fields"),
            std::string::npos);
  EXPECT_NE(input_error_message([&] { load_gene_enrichment(write_file(directory, "empty.jsonl", "\n\n"), table); }).find("is empty"),
            std::string::npos);
}

TEST(GeneTexts, SubsetListsAndSelection) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  const auto genes = read_gene_subset(write_file(directory, "list.txt", "symbol\nLYZ\n# a comment\n\n916\tCD3E\nENSG00000090382\n"), table);
  ASSERT_EQ(genes.size(), 2u);
  EXPECT_EQ(table.gene(genes[0]).symbol, "CD3E");
  EXPECT_EQ(table.gene(genes[1]).symbol, "LYZ");
  const std::string message =
      input_error_message([&] { read_gene_subset(write_file(directory, "bad.txt", "CD3E\nNOPE1\nLZM\n12345\n"), table); });
  EXPECT_NE(message.find("2 gene id(s) not in the gene table"), std::string::npos) << message;
  EXPECT_NE(message.find("'NOPE1' (line 2), '12345' (line 4)"), std::string::npos) << message;
  EXPECT_NE(input_error_message([&] { read_gene_subset(write_file(directory, "none.txt", "entrez_id\n"), table); }).find("names no gene"),
            std::string::npos);

  GeneTextSources sources;
  sources.table = &table;
  const GeneTexts all = build_gene_texts(sources);
  const GeneTexts some = select_gene_texts(all, {4069, 99999});
  ASSERT_EQ(some.size(), 2u);
  EXPECT_EQ(some.symbols, (std::vector<std::string>{"LYZ", "XYZ1"}));
  EXPECT_EQ(some.recipe_hash, gene_text_recipe_hash(some.entrez_ids, some.texts));
  EXPECT_NE(some.recipe_hash, all.recipe_hash);
  EXPECT_EQ(some.provenance["selected_from"]["recipe_hash"], all.recipe_hash);
  EXPECT_EQ(some.provenance["counts"]["n_genes"], 2);
}

}  // namespace
}  // namespace celltyper
