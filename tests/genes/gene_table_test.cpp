// Tests of GeneTable: TSV and org.*.eg.db SQLite readers, look-up indexes, content hash.
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unordered_map>

#include "support/test_support.hpp"

namespace celltyper {
namespace {

using test::TempDir;

constexpr const char* kHeader =
    "entrez_id\tsymbol\tname\tgene_type\tchromosome\tensembl_ids\tuniprot_ids\taliases\trefseq_summary_status\t"
    "refseq_summary\n";

/// A small table exercising every rule (rows deliberately not in Entrez order):
/// - SHARED is an alias of AAA and BBB (ambiguous); BBB is also an alias of AAA (the symbol wins);
/// - ENSG00000000002 belongs to BBB and to pseudogene DUP (4): BBB, protein-coding, is preferred;
/// - DUP is the symbol of 4 (pseudo) and 5 (protein-coding): 5 is preferred.
std::string small_table_text() {
  return std::string(kHeader) +
         "2\tBBB\tbeta gene\tprotein-coding\t2\tENSG00000000002,ENSG00000000022\t\tALIAS2,SHARED,AAA,BBB\t\t\n"
         "1\tAAA\talpha gene\tprotein-coding\t1\tENSG00000000001.7\tP00001\tALIAS1,SHARED,BBB\tREVIEWED REFSEQ\t"
         "Alpha does things.\n"
         "3\tCCC\tgamma\tncRNA\tX,Y\t\t\tCc1\t\t\n"
         "4\tDUP\tduplicate one\tpseudo\t4\tENSG00000000002\t\t\t\t\n"
         "5\tDUP\tduplicate two\tprotein-coding\t5\tENSG00000000005\t\t\t\t\n"
         "7\tMALAT1\tlong non-coding\tncRNA\t11\tENSG00000000007\t\t\t\t\n"
         "8\tC1orf1\torf gene\tprotein-coding\t1\t\t\t\t\t\n";
}

std::string write_file(const TempDir& directory, const std::string& name, const std::string& text) {
  const std::string path = directory.file(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

GeneTable small_table(const TempDir& directory) {
  return load_gene_table(write_file(directory, "genes.tsv", small_table_text()));
}

/// The message of the InputError `action` throws ("" when it throws none).
template <typename Action>
std::string input_error_message(Action&& action) {
  try {
    action();
  } catch (const InputError& error) {
    return error.what();
  }
  return {};
}

TEST(GeneTableTsv, LoadsFieldsAndSortsByEntrez) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  ASSERT_EQ(table.size(), 7U);
  for (std::size_t i = 1; i < table.size(); ++i) {
    EXPECT_LT(table.genes()[i - 1].entrez_id, table.genes()[i].entrez_id);
  }
  const Gene& alpha = table.gene(table.find_entrez(1));
  EXPECT_EQ(alpha.symbol, "AAA");
  EXPECT_EQ(alpha.name, "alpha gene");
  EXPECT_EQ(alpha.gene_type, "protein-coding");
  EXPECT_EQ(alpha.ensembl_ids, std::vector<std::string>{"ENSG00000000001"});  // version stripped
  EXPECT_EQ(alpha.uniprot_ids, std::vector<std::string>{"P00001"});
  EXPECT_EQ(alpha.aliases, (std::vector<std::string>{"ALIAS1", "SHARED", "BBB"}));
  EXPECT_EQ(alpha.summary_status, "REVIEWED REFSEQ");
  EXPECT_EQ(alpha.summary, "Alpha does things.");
  const Gene& beta = table.gene(table.find_entrez(2));
  EXPECT_EQ(beta.aliases, (std::vector<std::string>{"ALIAS2", "SHARED", "AAA"}));  // own symbol dropped
  EXPECT_EQ(table.gene(table.find_entrez(3)).chromosome, "X,Y");
  EXPECT_TRUE(table.gene(table.find_entrez(3)).summary.empty());
  EXPECT_EQ(table.find_entrez(6), kNoGene);
  EXPECT_EQ(table.ensembl_prefix(), "ENSG");
  EXPECT_TRUE(table.species().empty());
}

TEST(GeneTableTsv, EnsemblVersionIsStripped) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  const std::int32_t alpha = table.find_entrez(1);
  EXPECT_EQ(table.find_ensembl("ENSG00000000001"), alpha);
  EXPECT_EQ(table.find_ensembl("ENSG00000000001.12"), alpha);
  EXPECT_EQ(table.find_ensembl("ENSG00000000001.3_PAR_Y"), alpha);
  EXPECT_EQ(table.find_ensembl("ENSG000000000011"), kNoGene);
  EXPECT_EQ(table.find_ensembl("ENST00000000001"), kNoGene);
}

TEST(GeneTableTsv, SharedSymbolOrEnsemblPrefersProteinCoding) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  EXPECT_EQ(table.gene(table.find_symbol("DUP")).entrez_id, 5);
  EXPECT_EQ(table.gene(table.find_ensembl("ENSG00000000002")).entrez_id, 2);
}

TEST(GeneTableTsv, AliasesAndSymbols) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  EXPECT_TRUE(table.find_alias("SHARED").ambiguous());
  EXPECT_EQ(table.find_alias("SHARED").n_genes, 2U);
  EXPECT_EQ(table.find_alias("SHARED").gene, kNoGene);
  EXPECT_TRUE(table.find_alias("ALIAS1").found());
  EXPECT_EQ(table.gene(table.find_alias("ALIAS1").gene).symbol, "AAA");
  EXPECT_EQ(table.find_alias("alias1").n_genes, 0U);  // aliases are case-sensitive
  // "BBB" is an alias of AAA, but it is BBB's official symbol.
  EXPECT_EQ(table.gene(table.find_symbol("BBB")).entrez_id, 2);
  EXPECT_EQ(table.find_symbol("bbb"), kNoGene);
  EXPECT_EQ(table.gene(table.find_symbol_case_insensitive("bbb")).entrez_id, 2);
  EXPECT_EQ(table.gene(table.find_symbol_case_insensitive("C1ORF1")).entrez_id, 8);
  EXPECT_TRUE(table.is_known_name("SHARED"));
  EXPECT_TRUE(table.is_known_name("3"));
  EXPECT_TRUE(table.is_known_name("ENSG00000000022.1"));
  EXPECT_FALSE(table.is_known_name("6"));
  EXPECT_FALSE(table.is_known_name("aaa"));
  EXPECT_FALSE(table.is_known_name(""));
}

TEST(GeneTableTsv, ContentHashIgnoresRowOrderButNotContent) {
  TempDir directory;
  const GeneTable table = small_table(directory);
  EXPECT_EQ(table.content_hash_hex().size(), 16U);
  // Same rows, reversed.
  std::string text = small_table_text();
  const std::string body = text.substr(std::string(kHeader).size());
  std::vector<std::string> lines;
  for (std::size_t begin = 0; begin < body.size();) {
    const std::size_t end = body.find('\n', begin);
    lines.push_back(body.substr(begin, end - begin + 1));
    begin = end + 1;
  }
  std::string reversed = kHeader;
  for (auto line = lines.rbegin(); line != lines.rend(); ++line) reversed += *line;
  EXPECT_EQ(load_gene_table(write_file(directory, "reversed.tsv", reversed)).content_hash(), table.content_hash());
  // One summary changed.
  std::string changed = text;
  changed.replace(changed.find("Alpha does things."), 18, "Alpha does other things.");
  EXPECT_NE(load_gene_table(write_file(directory, "changed.tsv", changed)).content_hash(), table.content_hash());
  // Copies keep everything.
  const GeneTable copy = table;  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_EQ(copy.content_hash(), table.content_hash());
  EXPECT_EQ(copy.find_symbol("MALAT1"), table.find_symbol("MALAT1"));
}

TEST(GeneTableTsv, ReadsGzipAndWindowsLineEndings) {
  TempDir directory;
  const std::string plain = write_file(directory, "genes.tsv", small_table_text());
  const auto gzip = test::run_program({"gzip", "-k", plain});
  ASSERT_EQ(gzip.exit_code, 0) << gzip.err;
  const GeneTable table = load_gene_table(plain + ".gz");
  EXPECT_EQ(table.size(), 7U);
  EXPECT_EQ(table.content_hash(), load_gene_table(plain).content_hash());
  std::string crlf;
  for (const char character : small_table_text()) {
    if (character == '\n') crlf += '\r';
    crlf += character;
  }
  EXPECT_EQ(load_gene_table(write_file(directory, "crlf.tsv", crlf)).content_hash(), table.content_hash());
}

TEST(GeneTableTsv, MalformedFilesNameTheProblem) {
  TempDir directory;
  std::string message = input_error_message([&] {
    (void)load_gene_table(write_file(directory, "short.tsv", std::string(kHeader) + "1\tAAA\tonly three\n"));
  });
  EXPECT_NE(message.find("short.tsv"), std::string::npos) << message;
  EXPECT_NE(message.find("line 2"), std::string::npos) << message;
  EXPECT_NE(message.find("3 tab-separated fields, expected 10"), std::string::npos) << message;

  message = input_error_message([&] {
    (void)load_gene_table(write_file(directory, "entrez.tsv", "entrez_id\tsymbol\n1\tAAA\tx\n"));
  });
  EXPECT_NE(message.find("line 2"), std::string::npos) << message;
  message = input_error_message([&] {
    (void)load_gene_table(write_file(directory, "entrez.tsv", "entrez_id\tsymbol\n1\tAAA\n12a\tBBB\n"));
  });
  EXPECT_NE(message.find("line 3, column entrez_id"), std::string::npos) << message;
  EXPECT_NE(message.find("'12a'"), std::string::npos) << message;

  message = input_error_message([&] {
    (void)load_gene_table(write_file(directory, "nosymbol.tsv", "entrez_id\tgene\n1\tAAA\n"));
  });
  EXPECT_NE(message.find("no column 'symbol'"), std::string::npos) << message;

  message = input_error_message([&] {
    (void)load_gene_table(write_file(directory, "twice.tsv", "entrez_id\tsymbol\n1\tAAA\n1\tBBB\n"));
  });
  EXPECT_NE(message.find("Entrez id 1 appears twice"), std::string::npos) << message;

  message = input_error_message([&] { (void)load_gene_table(write_file(directory, "empty.tsv", "")); });
  EXPECT_NE(message.find("empty"), std::string::npos) << message;

  EXPECT_THROW((void)load_gene_table(directory.file("absent.tsv")), InputError);  // (a missing file: exit 2)
  EXPECT_THROW((void)load_gene_table(""), InputError);
}

TEST(GeneTableTsv, MinimalColumnsAreEnough) {
  TempDir directory;
  const GeneTable table = load_gene_table(write_file(directory, "min.tsv", "symbol\tentrez_id\nAAA\t10\nBBB\t9\n"));
  ASSERT_EQ(table.size(), 2U);
  EXPECT_EQ(table.gene(0).symbol, "BBB");
  EXPECT_TRUE(table.gene(0).ensembl_ids.empty());
  EXPECT_TRUE(table.ensembl_prefix().empty());
}

/// Write a tiny org.*.eg.db-shaped SQLite database with Python's sqlite3 module.
std::string write_small_sqlite(const TempDir& directory, bool with_alias_table = true) {
  const std::string path = directory.file(with_alias_table ? "org.Tiny.eg.sqlite" : "broken.sqlite");
  std::string script =
      "import sqlite3, sys\n"
      "c = sqlite3.connect(sys.argv[1])\n"
      "c.executescript('''\n"
      "CREATE TABLE metadata (name TEXT, value TEXT);\n"
      "INSERT INTO metadata VALUES ('ORGANISM', 'Homo sapiens'), ('SPECIES', 'Human');\n"
      "CREATE TABLE genes (_id INTEGER PRIMARY KEY, gene_id TEXT);\n"
      "INSERT INTO genes VALUES (1, '916'), (2, '1'), (3, '917');\n"
      "CREATE TABLE gene_info (_id INTEGER, gene_name TEXT, symbol TEXT);\n"
      "INSERT INTO gene_info VALUES (1, 'CD3 epsilon', 'CD3E'), (2, 'alpha-1-B', 'A1BG'), (3, 'CD3 gamma', 'CD3G');\n"
      "CREATE TABLE genetype (_id INTEGER, gene_type TEXT);\n"
      "INSERT INTO genetype VALUES (1, 'protein-coding'), (2, 'protein-coding'), (3, 'protein-coding');\n"
      "CREATE TABLE chromosomes (_id INTEGER, chromosome TEXT);\n"
      "INSERT INTO chromosomes VALUES (1, '11'), (2, '19'), (3, '11');\n"
      "CREATE TABLE ensembl (_id INTEGER, ensembl_id TEXT);\n"
      "INSERT INTO ensembl VALUES (1, 'ENSG00000198851'), (2, 'ENSG00000121410'), (3, 'ENSG00000160654');\n"
      "CREATE TABLE uniprot (_id INTEGER, uniprot_id TEXT);\n"
      "INSERT INTO uniprot VALUES (1, 'P07766');\n";
  if (with_alias_table) {
    script +=
        "CREATE TABLE alias (_id INTEGER, alias_symbol TEXT);\n"
        "INSERT INTO alias VALUES (1, 'T3E'), (1, 'CD3E'), (1, 'TCRE'), (3, 'T3G'), (3, 'TCRE');\n";
  }
  script += "''')\nc.commit()\n";
  const auto result = test::run_program({test::system_python(), "-c", script, path});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return path;
}

TEST(GeneTableSqlite, ReadsOrgEgDbLayout) {
  TempDir directory;
  const std::string path = write_small_sqlite(directory);
  const GeneTable table = load_gene_table(path);  // dispatch by content
  ASSERT_EQ(table.size(), 3U);
  EXPECT_EQ(table.species(), "Homo sapiens");
  EXPECT_EQ(table.gene(0).symbol, "A1BG");  // sorted by Entrez id
  const Gene& cd3e = table.gene(table.find_symbol("CD3E"));
  EXPECT_EQ(cd3e.entrez_id, 916);
  EXPECT_EQ(cd3e.name, "CD3 epsilon");
  EXPECT_EQ(cd3e.chromosome, "11");
  EXPECT_EQ(cd3e.ensembl_ids, std::vector<std::string>{"ENSG00000198851"});
  EXPECT_EQ(cd3e.uniprot_ids, std::vector<std::string>{"P07766"});
  EXPECT_EQ(cd3e.aliases, (std::vector<std::string>{"T3E", "TCRE"}));  // own symbol dropped
  EXPECT_EQ(table.find_alias("T3E").gene, table.find_entrez(916));
  EXPECT_TRUE(table.find_alias("TCRE").ambiguous());
  EXPECT_EQ(load_gene_table_sqlite(path).content_hash(), table.content_hash());
}

TEST(GeneTableSqlite, MissingTableIsAnInputError) {
  TempDir directory;
  const std::string path = write_small_sqlite(directory, /* with_alias_table = */ false);
  const std::string message = input_error_message([&] { (void)load_gene_table(path); });
  EXPECT_NE(message.find("broken.sqlite"), std::string::npos) << message;
  EXPECT_NE(message.find("alias"), std::string::npos) << message;
  EXPECT_THROW((void)load_gene_table_sqlite(directory.file("absent.sqlite")), IoError);
}

TEST(GeneTable, DefaultPathFollowsEnvironment) {
  const char* saved = std::getenv("CELLTYPER_GENE_TABLE");
  const std::string saved_value = saved != nullptr ? saved : "";
  setenv("CELLTYPER_GENE_TABLE", "/some/where/genes.tsv", 1);
  EXPECT_EQ(default_gene_table_path(), "/some/where/genes.tsv");
  unsetenv("CELLTYPER_GENE_TABLE");
  const std::string fallback = default_gene_table_path();
  EXPECT_TRUE(fallback.empty() || fallback.ends_with("org.Hs.eg.sqlite")) << fallback;
  if (saved != nullptr) setenv("CELLTYPER_GENE_TABLE", saved_value.c_str(), 1);
}

// ---- real data -----------------------------------------------------------------------------

constexpr const char* kOrgHsSqlite = "/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite";

void expect_cd3e(const GeneTable& table) {
  const std::int32_t cd3e = table.find_symbol("CD3E");
  ASSERT_NE(cd3e, kNoGene);
  EXPECT_EQ(table.gene(cd3e).entrez_id, 916);
  EXPECT_EQ(table.find_entrez(916), cd3e);
  EXPECT_EQ(table.find_ensembl("ENSG00000198851"), cd3e);
  EXPECT_EQ(table.find_ensembl("ENSG00000198851.10"), cd3e);
  EXPECT_EQ(table.find_alias("T3E").gene, cd3e);
  EXPECT_EQ(table.gene(cd3e).gene_type, "protein-coding");
  EXPECT_EQ(table.gene(table.find_symbol("A1BG")).entrez_id, 1);
  EXPECT_EQ(table.gene(table.find_ensembl("ENSG00000121410")).symbol, "A1BG");
  // HBD is the symbol of two records; the protein-coding hemoglobin delta is preferred.
  EXPECT_EQ(table.gene(table.find_symbol("HBD")).entrez_id, 3045);
  EXPECT_EQ(table.ensembl_prefix(), "ENSG");
}

TEST(GeneTableRealData, HumanGenesTsv) {
  CELLTYPER_REQUIRE_SHARED(path, "gene-annotations/human_genes.tsv");
  const auto start = std::chrono::steady_clock::now();
  const GeneTable table = load_gene_table(path);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("human_genes.tsv: %zu genes in %.3f s, hash %s\n", table.size(), seconds,
              table.content_hash_hex().c_str());
  EXPECT_EQ(table.size(), 77614U);
  expect_cd3e(table);
  EXPECT_FALSE(table.gene(table.find_symbol("CD3E")).summary.empty());
  std::size_t n_with_summary = 0;
  for (const Gene& gene : table.genes()) n_with_summary += gene.summary.empty() ? 0 : 1;
  EXPECT_EQ(n_with_summary, 15136U);
}

TEST(GeneTableRealData, OrgHsEgDbSqliteAgreesWithTsv) {
  std::error_code error;
  if (!std::filesystem::exists(kOrgHsSqlite, error)) GTEST_SKIP() << kOrgHsSqlite << " is absent (r-bioc-org.hs.eg.db)";
  const auto start = std::chrono::steady_clock::now();
  const GeneTable sqlite_table = load_gene_table(kOrgHsSqlite);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("org.Hs.eg.sqlite: %zu genes in %.3f s, hash %s\n", sqlite_table.size(), seconds,
              sqlite_table.content_hash_hex().c_str());
  EXPECT_EQ(sqlite_table.species(), "Homo sapiens");
  EXPECT_GT(sqlite_table.size(), 60000U);
  expect_cd3e(sqlite_table);

  CELLTYPER_REQUIRE_SHARED(tsv_path, "gene-annotations/human_genes.tsv");
  const GeneTable tsv_table = load_gene_table(tsv_path);
  std::size_t n_shared = 0;
  std::size_t n_same_symbol = 0;
  std::size_t n_same_ensembl = 0;
  for (const Gene& gene : tsv_table.genes()) {
    const std::int32_t other = sqlite_table.find_entrez(gene.entrez_id);
    if (other == kNoGene) continue;
    ++n_shared;
    n_same_symbol += sqlite_table.gene(other).symbol == gene.symbol ? 1 : 0;
    n_same_ensembl += sqlite_table.gene(other).ensembl_ids == gene.ensembl_ids ? 1 : 0;
  }
  std::printf("shared Entrez ids %zu, same symbol %zu, same Ensembl ids %zu\n", n_shared, n_same_symbol,
              n_same_ensembl);
  EXPECT_GT(n_shared, 60000U);
  EXPECT_GT(static_cast<double>(n_same_symbol), 0.99 * static_cast<double>(n_shared));

  // Both files come from org.Hs.eg.db 3.16: without the RefSeq summaries (absent from SQLite)
  // their content, and so their hash, is the same.
  std::vector<Gene> without_summaries = tsv_table.genes();
  for (Gene& gene : without_summaries) {
    gene.summary.clear();
    gene.summary_status.clear();
  }
  const GeneTable stripped(std::move(without_summaries));
  std::printf("TSV without summaries: hash %s\n", stripped.content_hash_hex().c_str());
  EXPECT_NE(tsv_table.content_hash(), sqlite_table.content_hash());
  EXPECT_EQ(stripped.content_hash(), sqlite_table.content_hash());
}

}  // namespace
}  // namespace celltyper
