// End-to-end tests of `celltyper genes`: text, embed (lsa, import), info, neighbors, truncate,
// export on a small themed gene set, and bad input giving one clear line and an exit code.
#include "support/test_support.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace celltyper {
namespace {

using nlohmann::json;
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

/// 27 real genes of six blood-cell themes with short hand-written summaries, plus two GO links.
struct Fixture {
  TempDir directory;
  std::string table;
  std::string gene2go;
  std::string go_terms;
  Fixture() {
    struct Row {
      const char* entrez;
      const char* symbol;
      const char* name;
      const char* summary;
    };
    const std::vector<Row> rows = {
        {"915", "CD3D", "CD3 delta subunit of T-cell receptor complex", "T cell receptor complex subunit; T cell activation and antigen recognition by T lymphocytes."},
        {"916", "CD3E", "CD3 epsilon subunit of T-cell receptor complex", "T cell receptor complex subunit; signal transduction in T lymphocytes after antigen recognition."},
        {"917", "CD3G", "CD3 gamma subunit of T-cell receptor complex", "T cell receptor complex subunit required for T lymphocyte development and activation."},
        {"919", "CD247", "CD247 molecule", "Zeta chain of the T cell receptor complex; T lymphocyte antigen receptor signalling."},
        {"7535", "ZAP70", "zeta chain of T cell receptor associated protein kinase 70", "Tyrosine kinase of T lymphocytes; T cell receptor signalling and T cell activation."},
        {"3932", "LCK", "LCK proto-oncogene, Src family tyrosine kinase", "Tyrosine kinase of T lymphocytes phosphorylating the T cell receptor complex."},
        {"973", "CD79A", "CD79a molecule", "B cell antigen receptor complex subunit; B lymphocyte development and immunoglobulin signalling."},
        {"974", "CD79B", "CD79b molecule", "B cell antigen receptor complex subunit with immunoglobulin; B lymphocyte signalling."},
        {"931", "MS4A1", "membrane spanning 4-domains A1", "B lymphocyte surface molecule CD20; B cell activation and differentiation into plasma cells."},
        {"930", "CD19", "CD19 molecule", "B lymphocyte antigen receptor coreceptor; B cell activation and immunoglobulin signalling."},
        {"5079", "PAX5", "paired box 5", "Transcription factor of B lymphocyte development; B cell lineage commitment."},
        {"4069", "LYZ", "lysozyme", "Bacteriolytic enzyme of monocytes and macrophages; innate immune defence against bacteria."},
        {"929", "CD14", "CD14 molecule", "Monocyte and macrophage receptor for bacterial lipopolysaccharide; innate immune response."},
        {"6279", "S100A8", "S100 calcium binding protein A8", "Calcium binding calprotectin subunit of neutrophils and monocytes; innate immune inflammation."},
        {"6280", "S100A9", "S100 calcium binding protein A9", "Calcium binding calprotectin subunit of neutrophils and monocytes; antimicrobial inflammation."},
        {"2214", "FCGR3A", "Fc gamma receptor IIIa", "Receptor for immunoglobulin G on monocytes and natural killer cells; cytotoxicity."},
        {"5473", "PPBP", "pro-platelet basic protein", "Platelet chemokine released from platelet alpha granules after platelet activation."},
        {"5196", "PF4", "platelet factor 4", "Platelet chemokine of platelet alpha granules; released during platelet aggregation and coagulation."},
        {"3674", "ITGA2B", "integrin subunit alpha 2b", "Platelet integrin fibrinogen receptor; platelet aggregation and coagulation."},
        {"2815", "GP9", "glycoprotein IX platelet", "Platelet glycoprotein receptor complex for von Willebrand factor; platelet adhesion and coagulation."},
        {"4818", "NKG7", "natural killer cell granule protein 7", "Granule protein of natural killer cells and cytotoxic T lymphocytes; cytotoxic granule exocytosis."},
        {"10578", "GNLY", "granulysin", "Cytotoxic granule antimicrobial protein of natural killer cells and cytotoxic lymphocytes."},
        {"5551", "PRF1", "perforin 1", "Pore forming cytotoxic granule protein of natural killer cells; target cell killing."},
        {"3002", "GZMB", "granzyme B", "Serine protease of cytotoxic granules of natural killer cells; apoptosis of target cells."},
        {"3043", "HBB", "hemoglobin subunit beta", "Hemoglobin subunit of erythrocytes; oxygen transport in red blood cells."},
        {"3039", "HBA1", "hemoglobin subunit alpha 1", "Hemoglobin subunit of erythrocytes; oxygen binding and transport in red blood cells."},
        {"3040", "HBA2", "hemoglobin subunit alpha 2", "Hemoglobin subunit of erythrocytes; oxygen transport by red blood cells."},
    };
    std::string text = "entrez_id\tsymbol\tname\tgene_type\tensembl_ids\taliases\trefseq_summary\n";
    for (const auto& row : rows) text += fmt::format("{}\t{}\t{}\tprotein-coding\t\t\t{}\n", row.entrez, row.symbol, row.name, row.summary);
    table = write_file(directory, "genes.tsv", text);
    gene2go = write_file(directory, "gene2go.tsv", "entrez_id\tgo_id\tevidence\tontology\n916\tGO:0042101\tIDA\tCC\n915\tGO:0042101\tIDA\tCC\n");
    go_terms = write_file(directory, "go_terms.tsv", "go_id\tontology\tterm\tdefinition\nGO:0042101\tCC\tT cell receptor complex\t.\n");
  }
  [[nodiscard]] std::vector<std::string> sources() const {
    return {"--gene-table", table, "--go-tsv", gene2go, "--go-terms", go_terms};
  }
};

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

json info_json(const std::string& store) {
  const auto result = test::run_cli({"genes", "info", store, "--json"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return json::parse(result.out);
}

TEST(GenesCli, TextEmbedInfoNeighborsTruncateExport) {
  Fixture fixture;
  const TempDir& directory = fixture.directory;
  // genes text (TSV and JSONL).
  const std::string texts = directory.file("texts.tsv");
  auto result = test::run_cli(concat({"genes", "text", "--out", texts}, fixture.sources()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("texts: 27 genes, 27 non-empty, 27 with a summary, 2 with GO terms"), std::string::npos) << result.err;
  const std::string tsv = read_file(texts);
  EXPECT_NE(tsv.find("\n916\tCD3E\tCD3E: CD3 epsilon subunit of T-cell receptor complex. Gene type: protein-coding. Summary: T "
                     "cell receptor complex subunit; signal transduction in T lymphocytes after antigen recognition. Cellular "
                     "component: T cell receptor complex.\n"),
            std::string::npos);
  result = test::run_cli(concat({"-q", "genes", "text", "--out", directory.file("texts.jsonl")}, fixture.sources()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  EXPECT_EQ(read_file(directory.file("texts.jsonl")).rfind("{\"celltyper_gene_texts\":1,", 0), 0U);
  // --sections: the recipe (aliases added, GO left out, the summary twice), recorded in the header.
  result = test::run_cli(concat({"-q", "genes", "text", "--sections", "default,aliases,go:0,summary:2", "--out",
                                 directory.file("sections.tsv")},
                                fixture.sources()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::string sectioned = read_file(directory.file("sections.tsv"));
  EXPECT_NE(sectioned.find("\"sections\":\"name,type,aliases,summary:2,enrichment\""), std::string::npos) << sectioned.substr(0, 600);
  const std::size_t cd3e = sectioned.find("\n916\tCD3E\t");
  ASSERT_NE(cd3e, std::string::npos);
  const std::string cd3e_text = sectioned.substr(cd3e + 1, sectioned.find('\n', cd3e + 1) - cd3e - 1);
  EXPECT_EQ(cd3e_text.find("Cellular component"), std::string::npos) << cd3e_text;
  EXPECT_NE(cd3e_text.find("Summary: T cell receptor complex subunit; signal transduction in T lymphocytes after antigen "
                           "recognition. Summary: T cell"),
            std::string::npos)
      << cd3e_text;

  // genes embed from the texts file, and from the sources directly: the same store content.
  const std::string store = directory.file("store.h5");
  result = test::run_cli({"genes", "embed", "--backend", "lsa", "--gene-table", fixture.table, "--texts", texts, "--dims", "6",
                          "--threads", "2", "--out", store});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("randomised SVD"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("wrote " + store + ": 27 genes x 6 dims"), std::string::npos) << result.err;
  const std::string direct = directory.file("direct.h5");
  result = test::run_cli(concat({"-q", "genes", "embed", "--dims", "6", "--threads", "1", "--out", direct}, fixture.sources()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json info = info_json(store);
  EXPECT_EQ(info["identity_hash"], info_json(direct)["identity_hash"]);
  EXPECT_EQ(info["n_genes"], 27);
  EXPECT_EQ(info["store_dims"], 6);
  EXPECT_EQ(info["backend"], "lsa");
  EXPECT_EQ(info["text_recipe_hash"].get<std::string>().size(), 16U);
  EXPECT_EQ(info["extra"]["texts"]["recipe_hash"], info["text_recipe_hash"]);

  result = test::run_cli({"genes", "info", store});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("genes x dims:      27 x 6"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("backend / model:   lsa / tfidf-lsa"), std::string::npos) << result.out;

  // neighbors: by symbol, by Entrez id, through the default store variable.
  result = test::run_cli({"genes", "neighbors", "CD3E", "--genes", store, "-k", "3"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::vector<std::string> t_cell = {"CD3D", "CD3G", "CD247", "ZAP70", "LCK"};
  const std::string first = result.out.substr(result.out.find("\n1\t") + 3, result.out.find('\t', result.out.find("\n1\t") + 3) - result.out.find("\n1\t") - 3);
  EXPECT_NE(std::find(t_cell.begin(), t_cell.end(), first), t_cell.end()) << result.out;
  EXPECT_EQ(std::count(result.out.begin(), result.out.end(), '\n'), 4) << result.out;
  setenv("CELLTYPER_GENE_STORE", store.c_str(), 1);
  const auto by_default = test::run_cli({"genes", "neighbors", "5473", "-k", "2"});
  unsetenv("CELLTYPER_GENE_STORE");
  ASSERT_EQ(by_default.exit_code, 0) << by_default.err;
  const bool platelet = by_default.out.find("\tPF4\t") != std::string::npos || by_default.out.find("\tITGA2B\t") != std::string::npos ||
                        by_default.out.find("\tGP9\t") != std::string::npos;
  EXPECT_TRUE(platelet) << by_default.out;

  // truncate, export, re-import.
  const std::string small = directory.file("small.h5");
  result = test::run_cli({"genes", "truncate", store, "--dims", "3", "--out", small});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json small_info = info_json(small);
  EXPECT_EQ(small_info["store_dims"], 3);
  EXPECT_EQ(small_info["dims"], 6);
  EXPECT_EQ(small_info["extra"]["truncation"]["to_dims"], 3);
  result = test::run_cli({"genes", "export", store, "--format", "npy", "--out", directory.file("exported")});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(std::filesystem::exists(directory.file("exported.npy")));
  EXPECT_EQ(std::filesystem::file_size(directory.file("exported.npy")), 128U + 27U * 6U * 4U);
  result = test::run_cli({"genes", "export", store, "--format", "tsv", "--out", directory.file("exported")});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::string imported = directory.file("imported.h5");
  result = test::run_cli({"genes", "embed", "--backend", "import", "--gene-table", fixture.table, "--input",
                          directory.file("exported.npy"), "--gene-list", directory.file("exported.genes.tsv"), "--out", imported});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("imported 27 of 27 rows"), std::string::npos) << result.err;
  const json imported_info = info_json(imported);
  EXPECT_EQ(imported_info["backend"], "import");
  EXPECT_EQ(imported_info["store_dims"], 6);
  result = test::run_cli({"genes", "embed", "--backend", "import", "--gene-table", fixture.table, "--input",
                          directory.file("exported.tsv"), "--out", directory.file("imported_tsv.h5")});
  ASSERT_EQ(result.exit_code, 0) << result.err;

  // Import: every row left out is listed in --skipped with its reason; a gene given twice keeps
  // its first row with a warning, and --strict refuses it.
  const std::string odd = write_file(directory, "odd.tsv", "gene\td0\td1\nCD3E\t1\t0\nCD3E\t0\t1\nLYZ\t0\t0\nNOT_A_GENE\t1\t1\nMS4A1\t1\t1\n");
  result = test::run_cli({"-q", "genes", "embed", "--backend", "import", "--gene-table", fixture.table, "--input", odd, "--skipped",
                          directory.file("skipped.tsv"), "--out", directory.file("odd.h5")});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("warning: " + odd + ": 1 rows give a gene an earlier row already gave and are left out (e.g. row 2 'CD3E' -> CD3E)"),
            std::string::npos)
      << result.err;
  EXPECT_EQ(read_file(directory.file("skipped.tsv")), "id\tsymbol\treason\nCD3E\tCD3E\tduplicate\nLYZ\tLYZ\tall_zero\nNOT_A_GENE\t\tnot_in_gene_table\n");
  EXPECT_EQ(info_json(directory.file("odd.h5"))["n_genes"], 2);
  result = test::run_cli({"genes", "embed", "--backend", "import", "--gene-table", fixture.table, "--input", odd, "--strict", "--out",
                          directory.file("strict.h5")});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("1 of 5 gene ids are not in the gene table"), std::string::npos) << result.err;  // (checked first)
  const std::string twice = write_file(directory, "twice.tsv", "gene\td0\td1\nCD3E\t1\t0\nLYZ\t0\t0\nCD3E\t0\t1\nLYZ\t1\t1\n");
  result = test::run_cli({"genes", "embed", "--backend", "import", "--gene-table", fixture.table, "--input", twice, "--strict", "--out",
                          directory.file("strict.h5")});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("1 rows give a gene an earlier row already gave (e.g. row 3 'CD3E' -> CD3E)"), std::string::npos) << result.err;
  // (LYZ's all-zero first row does not cost it its second: 2 genes)
  result = test::run_cli({"-q", "genes", "embed", "--backend", "import", "--gene-table", fixture.table, "--input", twice, "--out",
                          directory.file("twice.h5")});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(info_json(directory.file("twice.h5"))["n_genes"], 2);

  // A gene table without summaries (as org.Hs.eg.db, the default): the RefSeq summaries
  // scripts/setup.sh installs beside the executable (the default store's), else a warning;
  // --no-summaries asks for none.
  const std::string bare = write_file(directory, "bare.tsv",
                                      "entrez_id\tsymbol\tname\tgene_type\n915\tCD3D\tCD3 delta subunit of T-cell receptor complex\t"
                                      "protein-coding\n916\tCD3E\tCD3 epsilon subunit of T-cell receptor complex\tprotein-coding\n");
  result = test::run_cli({"genes", "text", "--gene-table", bare, "--no-go", "--out", directory.file("bare_texts.tsv")});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto installed = std::filesystem::path(test::cli_path()).parent_path() / "share" / "celltyper" / "gene_summaries.tsv";
  if (std::filesystem::exists(installed)) {
    EXPECT_NE(result.err.find("summaries " + installed.string() + " (installed by scripts/setup.sh; --summaries FILE or --no-summaries to change)"),
              std::string::npos)
        << result.err;
    EXPECT_NE(result.err.find("texts: 2 genes, 2 non-empty, 2 with a summary"), std::string::npos) << result.err;
  } else {
    EXPECT_NE(result.err.find("warning: no gene text has a summary: the gene table (" + bare + ") has none"), std::string::npos) << result.err;
  }
  result = test::run_cli({"genes", "text", "--gene-table", bare, "--no-go", "--no-summaries", "--out", directory.file("bare_texts.tsv")});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err.find("summaries "), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("0 with a summary"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("warning"), std::string::npos) << result.err;
}

TEST(GenesCli, BadInputGivesOneClearLine) {
  Fixture fixture;
  const TempDir& directory = fixture.directory;
  const std::string store = directory.file("store.h5");
  auto result = test::run_cli(concat({"-q", "genes", "embed", "--dims", "4", "--out", store}, fixture.sources()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  // (a store's folder is made, as it always was: the output checks come after)
  const auto nested = test::run_cli(concat({"-q", "genes", "embed", "--dims", "4", "--out", directory.file("stores/v2/genes.h5")}, fixture.sources()));
  EXPECT_EQ(nested.exit_code, 0) << nested.err;

  const auto expect_error = [](const test::CommandResult& r, int code, const std::string& needle) {
    EXPECT_EQ(r.exit_code, code) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  };
  expect_error(test::run_cli({"genes", "neighbors", "NOTAGENE", "--genes", store, "--gene-table", fixture.table}), 2,
               "gene 'NOTAGENE' is not in the gene store");
  expect_error(test::run_cli({"-q", "genes", "embed", "--texts", write_file(directory, "empty.tsv", "entrez_id\tsymbol\ttext\n916\tCD3E\t\n"),
                              "--gene-table", fixture.table, "--out", directory.file("x.h5")}),
               2, "every gene text is empty");
  expect_error(test::run_cli({"-q", "genes", "embed", "--texts", write_file(directory, "bad.tsv", "entrez_id\tsymbol\ttext\n916\tCD3E\n"),
                              "--gene-table", fixture.table, "--out", directory.file("x.h5")}),
               2, "bad.tsv: line 2 has 2 tab-separated fields");
  expect_error(test::run_cli(concat({"-q", "genes", "embed", "--dims", "500", "--out", directory.file("x.h5")}, fixture.sources())), 2,
               "dims 500 exceeds");
  const char* key = std::getenv("OPENAI_API_KEY");
  const std::string saved_key = key != nullptr ? key : "";
  unsetenv("OPENAI_API_KEY");
  expect_error(test::run_cli(concat({"-q", "genes", "embed", "--backend", "openai", "--out", directory.file("x.h5")}, fixture.sources())),
               2, "no OpenAI API key: set the environment variable OPENAI_API_KEY");
  if (!saved_key.empty()) setenv("OPENAI_API_KEY", saved_key.c_str(), 1);
  EXPECT_FALSE(std::filesystem::exists(directory.file("x.h5.checkpoint.jsonl")));
  expect_error(test::run_cli(concat({"-q", "genes", "embed", "--backend", "word2vec", "--out", directory.file("x.h5")}, fixture.sources())),
               2, "--backend must be lsa, use-lite, openai, openai-batch or import");
  expect_error(test::run_cli({"-q", "genes", "embed", "--backend", "import", "--gene-table", fixture.table, "--input",
                              write_file(directory, "unknown.tsv", "FOO\t1\t2\n"), "--out", directory.file("x.h5")}),
               2, "none of its 1 gene ids resolves");
  expect_error(test::run_cli({"-q", "genes", "embed", "--backend", "import", "--strict", "--gene-table", fixture.table, "--input",
                              write_file(directory, "partly.tsv", "FOO\t1\t2\nCD3E\t1\t0\n"), "--out", directory.file("x.h5")}),
               2, "1 of 2 gene ids are not in the gene table");
  expect_error(test::run_cli(concat({"-q", "genes", "embed", "--sections", "name,summry", "--out", directory.file("x.h5")},
                                    fixture.sources())),
               2, "unknown section 'summry'");
  expect_error(test::run_cli({"genes", "info", write_file(directory, "text.h5", "hello\n")}), 2, "not a gene store");
  // info reads the attributes only; --check reads every vector as the commands do.
  const std::string damaged = directory.file("damaged.h5");
  std::filesystem::copy_file(store, damaged);
  const auto spoiled = test::run_program({test::system_python(), "-c",
                                          fmt::format("import h5py, numpy as np\nf = h5py.File('{}', 'r+')\nf['embeddings'][0, 0] = np.nan\n", damaged)});
  ASSERT_EQ(spoiled.exit_code, 0) << spoiled.err;
  EXPECT_EQ(test::run_cli({"genes", "info", damaged}).exit_code, 0);
  const auto checked = test::run_cli({"genes", "info", "--check", damaged});
  EXPECT_EQ(checked.exit_code, 2);
  EXPECT_NE(checked.err.find(damaged), std::string::npos) << checked.err;
  const auto healthy = test::run_cli({"genes", "info", "--check", store});
  ASSERT_EQ(healthy.exit_code, 0) << healthy.err;
  EXPECT_NE(healthy.out.find("checked:           every vector"), std::string::npos) << healthy.out;
  // An alias of two genes is named as such, with both genes.
  const std::string aliased = write_file(directory, "aliased.tsv",
                                         "entrez_id\tsymbol\tname\tgene_type\taliases\n915\tCD3D\tx\tprotein-coding\tTWICE\n"
                                         "916\tCD3E\tx\tprotein-coding\tTWICE\n");
  expect_error(test::run_cli({"genes", "neighbors", "TWICE", "--genes", store, "--gene-table", aliased}), 2,
               "gene 'TWICE' is an alias of 2 genes (CD3D, CD3E): name one of them");
  expect_error(test::run_cli({"genes", "truncate", store, "--dims", "9", "--out", directory.file("t.h5")}), 2, "dims must be in 1..4");
  EXPECT_FALSE(std::filesystem::exists(directory.file("x.h5")));
  EXPECT_FALSE(std::filesystem::exists(directory.file("t.h5")));

  setenv("CELLTYPER_GENE_STORE", directory.file("absent.h5").c_str(), 1);
  const auto missing = test::run_cli({"genes", "neighbors", "CD3E"});
  const auto info = test::run_cli({"genes", "info"});
  unsetenv("CELLTYPER_GENE_STORE");
  expect_error(missing, 2, "(named by CELLTYPER_GENE_STORE): correct or unset the variable, or pass --genes");
  EXPECT_EQ(info.exit_code, 2);
  EXPECT_NE(info.out.find("default gene store: " + directory.file("absent.h5")), std::string::npos) << info.out;
}

}  // namespace
}  // namespace celltyper
