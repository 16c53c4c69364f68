// The binary gene-table cache: same table as the source, invalidated when the source changes,
// ignored when damaged; org.Hs.eg.db round-trips with its content hash.
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_table_cache.hpp>

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <optional>
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
  // The saved indexes, used where they are mapped, answer every name as the built ones do
  // (symbols in either case, aliases with their counts, Ensembl ids, names that are absent).
  std::size_t n_checked = 0;
  const auto same = [&](const std::string& name) {
    ASSERT_EQ(loaded->find_symbol(name), table.find_symbol(name)) << name;
    ASSERT_EQ(loaded->find_symbol_case_insensitive(name), table.find_symbol_case_insensitive(name)) << name;
    ASSERT_EQ(loaded->find_alias(name).n_genes, table.find_alias(name).n_genes) << name;
    ASSERT_EQ(loaded->find_alias(name).gene, table.find_alias(name).gene) << name;
    ASSERT_EQ(loaded->find_ensembl(name), table.find_ensembl(name)) << name;
    ASSERT_EQ(loaded->is_known_name(name), table.is_known_name(name)) << name;
    ++n_checked;
  };
  for (const Gene& gene : table.genes()) {
    same(gene.symbol);
    std::string lower = gene.symbol;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    same(lower);
    same(gene.symbol + "_absent");
    for (const auto& alias : gene.aliases) same(alias);
    for (const auto& id : gene.ensembl_ids) same(id);
  }
  EXPECT_GT(n_checked, 3 * table.size());
  EXPECT_NE(loaded->find_symbol("MT-CO1"), kNoGene);
  EXPECT_EQ(loaded->find_symbol_case_insensitive("mt-co1"), loaded->find_symbol("MT-CO1"));
  // A copy rebuilds its own indexes and outlives the original's mapping.
  std::optional<GeneTable> copy;
  {
    auto again = load_gene_table_binary(directory.file("org.bin"), path);
    ASSERT_TRUE(again.has_value());
    copy.emplace(*again);
  }
  EXPECT_EQ(copy->find_symbol("CD3E"), table.find_symbol("CD3E"));
  EXPECT_EQ(copy->find_alias("CD20").gene, table.find_alias("CD20").gene);
}

TEST(GeneTableCache, DamagedSavedIndexesAreRefused) {
  const test::TempDir directory;
  const GeneTable table = load_gene_table(write_table(directory.path(), kTable));
  std::string saved;
  table.save_indexes(saved);
  ASSERT_EQ(saved.size() % 8, 0U);
  // std::string's buffer is aligned for 8-byte reads; the saved indexes start at its first byte.
  const auto restore = [&table](const std::string& bytes) {
    return GeneTable::restore(table.genes(), "t.tsv", "", table.ensembl_prefix(), table.content_hash(), bytes);
  };
  const GeneTable good = restore(saved);
  EXPECT_EQ(good.find_symbol("MS4A1"), table.find_symbol("MS4A1"));
  EXPECT_EQ(good.find_alias("TCRE").gene, table.find_alias("TCRE").gene);
  EXPECT_EQ(good.find_symbol("MT-CO1"), table.find_symbol("MT-CO1"));
  EXPECT_THROW(restore(saved.substr(0, saved.size() - 24)), InputError);  // a slot cut off
  EXPECT_THROW(restore(saved + std::string(8, '\0')), InputError);       // bytes after the indexes
  std::string bad_gene = saved;
  // Point the first used slot of the first index at a gene the table does not have.
  std::uint64_t pool_size = 0;
  std::memcpy(&pool_size, bad_gene.data(), 8);
  std::size_t at = 8 + (pool_size + 7) / 8 * 8 + 16;  // the first index's first slot
  while (bad_gene.compare(at + 12, 4, std::string(4, '\0')) == 0) at += 24;  // skip empty slots (key_length 0)
  const std::int32_t no_such_gene = 99;
  std::memcpy(bad_gene.data() + at + 16, &no_such_gene, 4);
  EXPECT_THROW(restore(bad_gene), InputError);
  std::string bad_capacity = saved;
  const std::uint64_t capacity = 24;  // not a power of two
  std::memcpy(bad_capacity.data() + 8 + (pool_size + 7) / 8 * 8, &capacity, 8);
  EXPECT_THROW(restore(bad_capacity), InputError);
}

}  // namespace
}  // namespace celltyper
