// The binary gene-table cache: same table as the source, invalidated when the source changes,
// ignored when damaged; org.Hs.eg.db round-trips with its content hash.
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_table_cache.hpp>

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace celltyper {
namespace {

std::string write_table(const std::filesystem::path& directory, const std::string& text) {
  const std::string path = (directory / "genes.tsv").string();
  std::ofstream(path) << text;
  return path;
}

constexpr const char* kTable =
    "entrez_id\tsymbol\tname\tgene_type\tchromosome\tensembl_ids\tuniprot_ids\taliases\trefseq_summary_status\trefseq_summary\n"
    "916\tCD3E\tCD3 epsilon\tprotein-coding\t11\tENSG00000198851\tP07766\tT3E,TCRE\tREVIEWED\tPart of the TCR-CD3 complex.\n"
    "931\tMS4A1\tmembrane spanning 4-domains A1\tprotein-coding\t11\tENSG00000156738\tP11836\tCD20,B1\t\t\n"
    "4512\tCOX1\tcytochrome c oxidase I\tprotein-coding\tMT\tENSG00000198804\t\tMTCO1\t\t\n";

TEST(GeneTableCache, BinaryCopyEqualsTheSourceAndFollowsItsChanges) {
  const test::TempDir directory;
  const std::string source = write_table(directory.path(), kTable);
  const GeneTable table = load_gene_table(source);
  const std::string cache = directory.file("cache.bin");
  save_gene_table_binary(table, cache, source);
  const auto loaded = load_gene_table_binary(cache, source);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->content_hash(), table.content_hash());
  EXPECT_EQ(loaded->source(), table.source());
  EXPECT_EQ(loaded->find_symbol("MT-CO1"), table.find_symbol("MT-CO1"));
  EXPECT_TRUE(loaded->find_alias("CD20").found());
  EXPECT_EQ(loaded->gene(loaded->find_symbol("CD3E")).summary, "Part of the TCR-CD3 complex.");
  // Identifiers only: texts empty, everything a resolver uses (and the whole table's hash) kept.
  const auto identifiers = load_gene_table_binary(cache, source, GeneTableFields::kIdentifiers);
  ASSERT_TRUE(identifiers.has_value());
  EXPECT_EQ(identifiers->content_hash(), table.content_hash());
  for (std::int32_t g = 0; g < static_cast<std::int32_t>(table.size()); ++g) {
    const Gene& full = table.gene(g);
    const Gene& lite = identifiers->gene(g);
    EXPECT_EQ(lite.entrez_id, full.entrez_id);
    EXPECT_EQ(lite.symbol, full.symbol);
    EXPECT_EQ(lite.gene_type, full.gene_type);
    EXPECT_EQ(lite.chromosome, full.chromosome);
    EXPECT_EQ(lite.ensembl_ids, full.ensembl_ids);
    EXPECT_EQ(lite.aliases, full.aliases);
    EXPECT_EQ(lite.uniprot_ids, full.uniprot_ids);
    EXPECT_TRUE(lite.name.empty() && lite.summary.empty() && lite.summary_status.empty());
  }
  EXPECT_EQ(identifiers->find_symbol("MT-CO1"), table.find_symbol("MT-CO1"));

  // a newer source (another modification time) makes the copy stale
  std::filesystem::last_write_time(source, std::filesystem::last_write_time(source) + std::chrono::seconds(5));
  EXPECT_FALSE(load_gene_table_binary(cache, source).has_value());

  // a damaged copy is ignored, never trusted
  save_gene_table_binary(table, cache, source);
  const auto size = std::filesystem::file_size(cache);
  std::filesystem::resize_file(cache, size - 3);
  EXPECT_FALSE(load_gene_table_binary(cache, source).has_value());
  EXPECT_FALSE(load_gene_table_binary(directory.file("absent.bin"), source).has_value());

  // one changed byte inside a text (no length or count changes) fails the checksum
  save_gene_table_binary(table, cache, source);
  std::string bytes = test::read_file(cache);
  const auto at = bytes.find("Part of the TCR");
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 'Q';
  std::ofstream(cache, std::ios::binary | std::ios::trunc) << bytes;
  EXPECT_FALSE(load_gene_table_binary(cache, source).has_value());
}

TEST(GeneTableCache, CachedLoadWritesOnceThenReads) {
  const test::TempDir directory;
  const std::string source = write_table(directory.path(), kTable);
  const std::string cache_dir = directory.file("cache");
  ::setenv("CELLTYPER_CACHE_DIR", cache_dir.c_str(), 1);
  const std::string cache = gene_table_cache_path(source);
  EXPECT_EQ(cache.rfind(cache_dir, 0), 0U) << cache;
  const GeneTable first = load_gene_table_cached(source);
  EXPECT_TRUE(std::filesystem::exists(cache));
  const GeneTable second = load_gene_table_cached(source);
  EXPECT_EQ(first.content_hash(), second.content_hash());
  EXPECT_EQ(first.content_hash(), load_gene_table(source).content_hash());
  ::setenv("CELLTYPER_CACHE_DIR", "none", 1);
  EXPECT_EQ(gene_table_cache_path(source), "");
  EXPECT_EQ(load_gene_table_cached(source).content_hash(), first.content_hash());
  ::unsetenv("CELLTYPER_CACHE_DIR");
}

TEST(GeneTableCache, OrgHsEgDbRoundTrips) {
  const std::string path = default_gene_table_path();
  if (path.empty()) GTEST_SKIP() << "org.Hs.eg.db is not installed";
  const test::TempDir directory;
  const GeneTable table = load_gene_table(path);
  save_gene_table_binary(table, directory.file("org.bin"), path);
  const auto loaded = load_gene_table_binary(directory.file("org.bin"), path);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->size(), table.size());
  EXPECT_EQ(loaded->content_hash(), table.content_hash());
  EXPECT_EQ(loaded->species(), table.species());
  EXPECT_EQ(loaded->ensembl_prefix(), table.ensembl_prefix());
  // The restored table (normalisation and hash skipped) is the table its genes build.
  const GeneTable rebuilt(loaded->genes(), loaded->source(), loaded->species());
  EXPECT_EQ(rebuilt.content_hash(), table.content_hash());
  for (const char* name : {"CD3E", "MT-CO1", "ENSG00000198851", "HBD"}) {
    EXPECT_EQ(loaded->find_symbol(name), table.find_symbol(name)) << name;
    EXPECT_EQ(loaded->find_ensembl(name), table.find_ensembl(name)) << name;
  }
}

}  // namespace
}  // namespace celltyper
