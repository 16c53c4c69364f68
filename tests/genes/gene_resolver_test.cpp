// Tests of resolve_genes: match order, ambiguity, suffixes, column auto-detection, warnings,
// and resolution of real var names (pbmc3k symbols, CellBench Ensembl ids).
#include <celltyper/dataframe.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/test_support.hpp"

namespace celltyper {
namespace {

/// Genes built in memory: the same rules as the TSV fixture of gene_table_test.cpp.
GeneTable small_table() {
  std::vector<Gene> genes(8);
  genes[0] = {
      .entrez_id = 1, .symbol = "AAA", .ensembl_ids = {"ENSG00000000001"}, .aliases = {"ALIAS1", "SHARED", "BBB"}};
  genes[1] = {
      .entrez_id = 2, .symbol = "BBB", .ensembl_ids = {"ENSG00000000002"}, .aliases = {"SHARED", "AAA", "Ccc"}};
  genes[2] = {.entrez_id = 3, .symbol = "CCC", .ensembl_ids = {"ENSG00000000003"}};
  genes[3] = {.entrez_id = 7, .symbol = "MALAT1", .ensembl_ids = {"ENSG00000000007"}};
  genes[4] = {.entrez_id = 8, .symbol = "C1orf1", .aliases = {"OLD8"}};
  genes[5] = {.entrez_id = 9, .symbol = "NKX2-1", .ensembl_ids = {"ENSG00000000009"}};
  genes[6] = {.entrez_id = 4513, .symbol = "COX2", .chromosome = "MT", .aliases = {"COII", "MTCO2"}};
  genes[7] = {.entrez_id = 107075310, .symbol = "MTCO2P12", .chromosome = "1", .aliases = {"COX2", "MT-CO2", "MTCO2"}};
  for (auto& gene : genes) gene.gene_type = "protein-coding";
  genes[7].gene_type = "pseudo";
  return GeneTable(std::move(genes), "small table");
}

DataFrame var_with_index(std::vector<std::string> names) {
  DataFrame var;
  var.index = std::move(names);
  return var;
}

TEST(ResolveGenes, MatchOrderAndKinds) {
  const GeneTable table = small_table();
  const DataFrame var = var_with_index({"AAA", "ENSG00000000002.4", "3", "ALIAS1", "aaa", "SHARED", "nothing", "BBB",
                                        "c1orf1", "", "NKX2-1"});
  const GeneResolveResult result = resolve_genes(table, var);
  ASSERT_EQ(result.n_vars(), 11U);
  const std::vector<GeneMatch> expected{GeneMatch::kSymbol,    GeneMatch::kEnsembl,
                                        GeneMatch::kEntrez,    GeneMatch::kAlias,
                                        GeneMatch::kSymbolCaseInsensitive, GeneMatch::kAmbiguous,
                                        GeneMatch::kUnmatched, GeneMatch::kSymbol,
                                        GeneMatch::kSymbolCaseInsensitive, GeneMatch::kUnmatched,
                                        GeneMatch::kSymbol};
  EXPECT_EQ(result.match, expected);
  const auto symbol_of = [&](std::size_t row) {
    return result.gene_index[row] == kNoGene ? std::string("-") : table.gene(result.gene_index[row]).symbol;
  };
  EXPECT_EQ(symbol_of(0), "AAA");
  EXPECT_EQ(symbol_of(1), "BBB");
  EXPECT_EQ(symbol_of(2), "CCC");
  EXPECT_EQ(symbol_of(3), "-");  // ALIAS1 names AAA, read from row 0 (a symbol beats an alias)
  EXPECT_EQ(symbol_of(5), "-");
  EXPECT_EQ(symbol_of(7), "-");  // BBB (an alias of AAA too) is BBB, read from row 1 (as exact, and earlier)
  EXPECT_EQ(resolve_genes(table, var_with_index({"BBB"})).gene_index[0], table.find_entrez(2));
  EXPECT_EQ(symbol_of(8), "C1orf1");
  EXPECT_EQ(symbol_of(10), "NKX2-1");  // a real "-1" is an exact match, not a suffix
  EXPECT_EQ(result.count(GeneMatch::kUnmatched), 2U);
  EXPECT_EQ(result.count(GeneMatch::kAmbiguous), 1U);
  EXPECT_EQ(result.n_matched(), 8U);
  EXPECT_EQ(result.n_distinct_genes, 5U);  // AAA, BBB, CCC, C1orf1, NKX2-1
  EXPECT_EQ(result.n_duplicate_vars, 3U);  // ALIAS1, aaa -> AAA; BBB -> BBB (after ENSG...2)
  EXPECT_EQ(result.ambiguous_examples, std::vector<std::string>{"SHARED (2 genes)"});
  EXPECT_EQ(result.unmatched_examples, (std::vector<std::string>{"nothing", "(empty)"}));
  EXPECT_EQ(result.column, "_index");
  EXPECT_EQ(result.id_type, GeneIdType::kSymbol);
  EXPECT_EQ(result.table_hash, table.content_hash_hex());
}

TEST(ResolveGenes, SymbolIgnoringCaseBeatsExactAlias) {
  // "Ccc" is an alias of BBB (as NCBI lists "Gem" among GMNN's aliases) but CCC is a symbol.
  const GeneTable table = small_table();
  const GeneResolveResult result = resolve_genes(table, var_with_index({"Ccc"}));
  EXPECT_EQ(result.match[0], GeneMatch::kSymbolCaseInsensitive);
  EXPECT_EQ(table.gene(result.gene_index[0]).symbol, "CCC");
  EXPECT_EQ(table.gene(table.find_alias("Ccc").gene).symbol, "BBB");
}

TEST(ResolveGenes, LowerCasedAliasesAreFoundLikeLowerCasedSymbols) {
  // A file whose symbols were lower-cased loses no gene that only an (upper-case) alias names.
  // Mouse-cased names are not upper-cased for aliases: NCBI's human aliases hold other genes'
  // mouse symbols ("Ear2", a mouse RNase, is an alias of the human NR2F6).
  const GeneTable table = small_table();
  const GeneResolveResult result = resolve_genes(table, var_with_index({"old8-x", "alias1", "old8", "shared", "Alias1"}));
  EXPECT_EQ(result.match, (std::vector<GeneMatch>{GeneMatch::kUnmatched, GeneMatch::kAlias, GeneMatch::kAlias,
                                                  GeneMatch::kAmbiguous, GeneMatch::kUnmatched}));
  EXPECT_EQ(table.gene(result.gene_index[1]).symbol, "AAA");
  EXPECT_EQ(table.gene(result.gene_index[2]).symbol, "C1orf1");
  EXPECT_EQ(resolve_genes(table, var_with_index({"ccc"})).match[0], GeneMatch::kSymbolCaseInsensitive);  // a symbol first
}

TEST(ResolveGenes, MitochondrialGenesAnswerToTheirHgncSymbols) {
  const GeneTable table = small_table();
  const GeneResolveResult result = resolve_genes(table, var_with_index({"MT-CO2", "mt-Co2", "MTCO2", "COX2"}));
  const std::int32_t cox2 = table.find_entrez(4513);
  EXPECT_EQ(result.match, (std::vector<GeneMatch>{GeneMatch::kSymbol, GeneMatch::kSymbolCaseInsensitive,
                                                  GeneMatch::kAmbiguous, GeneMatch::kSymbol}));
  EXPECT_EQ(result.gene_index, (std::vector<std::int32_t>{cox2, kNoGene, kNoGene, kNoGene}));  // one var per gene: the first exact one
  for (const char* name : {"MT-CO2", "mt-Co2", "COX2"}) EXPECT_EQ(resolve_genes(table, var_with_index({name})).gene_index[0], cox2) << name;
  EXPECT_TRUE(table.is_known_name("MT-CO2"));
}

TEST(ResolveGenes, MakeUniqueSuffixIsAFallback) {
  const GeneTable table = small_table();
  const DataFrame var = var_with_index({"MALAT1", "MALAT1-1", "MALAT1.2", "OLD8-1", "NKX2-1-1", "ZZZ-1", "CCC-x"});
  GeneResolveResult result = resolve_genes(table, var);
  EXPECT_EQ(result.n_suffix_stripped, 4U);
  EXPECT_EQ(table.gene(result.gene_index[0]).symbol, "MALAT1");
  EXPECT_EQ(result.gene_index[1], kNoGene);  // MALAT1 is read from row 0, its exact name
  EXPECT_EQ(result.gene_index[2], kNoGene);
  for (const char* name : {"MALAT1-1", "MALAT1.2"}) {
    EXPECT_EQ(table.gene(resolve_genes(table, var_with_index({name})).gene_index[0]).symbol, "MALAT1") << name;
  }
  EXPECT_EQ(result.match[3], GeneMatch::kAlias);
  EXPECT_EQ(table.gene(result.gene_index[4]).symbol, "NKX2-1");
  EXPECT_EQ(result.gene_index[5], kNoGene);
  EXPECT_EQ(result.gene_index[6], kNoGene);
  EXPECT_EQ(result.n_duplicate_vars, 2U);
  ASSERT_FALSE(result.duplicate_examples.empty());
  EXPECT_EQ(result.duplicate_examples[0], "MALAT1-1 -> MALAT1 (also MALAT1)");

  GeneResolveOptions options;
  options.strip_unique_suffix = false;
  result = resolve_genes(table, var, options);
  EXPECT_EQ(result.n_suffix_stripped, 0U);
  EXPECT_EQ(result.n_matched(), 1U);
}

TEST(ResolveGenes, AGeneIsReadFromItsBestMatchedVar) {
  // pbmc3k's var holds "HNRNPU-AS1" (an alias of HNRNPU) before "HNRNPU": the exact symbol is
  // read, wherever it stands; among equally good matches the first; an exact repeat of a name
  // is said.
  const GeneTable table = small_table();
  GeneResolveResult result = resolve_genes(table, var_with_index({"ALIAS1", "ccc", "MALAT1-1", "AAA", "CCC", "MALAT1", "CCC"}));
  const auto symbol_of = [&](std::size_t row) {
    return result.gene_index[row] == kNoGene ? std::string("-") : table.gene(result.gene_index[row]).symbol;
  };
  EXPECT_EQ(symbol_of(0), "-");
  EXPECT_EQ(symbol_of(1), "-");
  EXPECT_EQ(symbol_of(2), "-");
  EXPECT_EQ(symbol_of(3), "AAA");
  EXPECT_EQ(symbol_of(4), "CCC");
  EXPECT_EQ(symbol_of(5), "MALAT1");
  EXPECT_EQ(symbol_of(6), "-");
  EXPECT_EQ(result.n_distinct_genes, 3U);
  EXPECT_EQ(result.n_duplicate_vars, 4U);
  EXPECT_EQ(result.n_matched(), 7U);
  EXPECT_EQ(result.duplicate_examples[0], "ALIAS1 -> AAA (also AAA)");
  ASSERT_EQ(result.warnings.size(), 1U) << ::testing::PrintToString(result.warnings);
  // (CCC twice; MALAT1-1 beside MALAT1, which is read, is no news)
  EXPECT_NE(result.warnings[0].find("1 gene name repeats another var's ('CCC' and 'CCC'): one var of each is read"), std::string::npos)
      << result.warnings[0];
  // A suffix fallback still beats an alias.
  result = resolve_genes(table, var_with_index({"OLD8", "C1orf1-1"}));
  EXPECT_EQ(result.gene_index[0], kNoGene);
  EXPECT_EQ(table.gene(result.gene_index[1]).symbol, "C1orf1");
}

TEST(ResolveGenes, AnotherColumnsIdsPickWhichOfRepeatedNamesIsRead) {
  // A 10x features.tsv read with its names made unique: symbols CCC, CCC-1 (an earlier row of
  // another gene's id under the same symbol first), AAA; the gene ids beside them say which CCC
  // is CCC. Without the id column the exact name wins, as before.
  const GeneTable table = small_table();
  DataFrame var = var_with_index({"CCC", "CCC-1", "AAA"});
  var.columns.push_back(Column::from_strings("gene_ids", {"ENSG00000000099", "ENSG00000000003", "ENSG00000000001"}));
  GeneResolveResult result = resolve_genes(table, var);
  EXPECT_EQ(result.column, "_index");
  EXPECT_EQ(result.gene_index[0], kNoGene);
  EXPECT_EQ(table.gene(result.gene_index[1]).symbol, "CCC");
  EXPECT_TRUE(result.warnings.empty()) << ::testing::PrintToString(result.warnings);  // (the ids decided: no doubt to report)
  result = resolve_genes(table, var_with_index({"CCC", "CCC-1", "AAA"}));
  EXPECT_EQ(table.gene(result.gene_index[0]).symbol, "CCC");
  EXPECT_EQ(result.gene_index[1], kNoGene);
}

TEST(ResolveGenes, RMakeNamesDotsAreReadAsDashes) {
  // R's make.names turns '-' into '.': "NKX2.1" is NKX2-1 (not NKX2 with a make-unique suffix).
  const GeneTable table = small_table();
  const GeneResolveResult result = resolve_genes(table, var_with_index({"NKX2.1", "MT.CO2", "MALAT1.1", "NKX2-1.1", "AAA.BBB"}));
  EXPECT_EQ(table.gene(result.gene_index[0]).symbol, "NKX2-1");
  EXPECT_EQ(result.match[0], GeneMatch::kSymbol);
  EXPECT_EQ(table.gene(result.gene_index[1]).symbol, "COX2");
  EXPECT_EQ(table.gene(result.gene_index[2]).symbol, "MALAT1");  // a make-unique suffix, as before
  EXPECT_EQ(result.match[3], GeneMatch::kSymbol);  // "NKX2-1.1": a suffix of NKX2-1 (a '-' in the name: not make.names)
  EXPECT_EQ(result.gene_index[3], kNoGene);        // (NKX2-1 is read from row 0)
  EXPECT_EQ(result.match[4], GeneMatch::kUnmatched);
  EXPECT_EQ(result.n_dots_restored, 2U);
  EXPECT_EQ(result.n_suffix_stripped, 2U);
  EXPECT_NE(result.summary().find("2 after reading R's make.names '.' as '-'"), std::string::npos) << result.summary();
  GeneResolveOptions exact;
  exact.strip_unique_suffix = false;
  EXPECT_EQ(resolve_genes(table, var_with_index({"NKX2.1"}), exact).gene_index[0], kNoGene);
}

TEST(ResolveGenes, FeaturesOtherThanGeneExpressionAreNotGenes) {
  // Cell Ranger's CITE-seq / multiome files: antibody tags (one named after its gene) and
  // peaks beside the genes, told apart by var['feature_types'].
  const GeneTable table = small_table();
  DataFrame var = var_with_index({"AAA_TotalSeqB", "AAA", "BBB", "chr1:100-200", "CCC"});
  var.columns.push_back(Column::categorical(
      "feature_types", {"Antibody Capture", "Gene Expression", "gene expression", "Peaks", "Gene Expression"}));
  const GeneResolveResult result = resolve_genes(table, var);
  EXPECT_EQ(result.gene_index[0], kNoGene);
  EXPECT_EQ(table.gene(result.gene_index[1]).symbol, "AAA");  // the gene, not the tag before it
  EXPECT_EQ(result.gene_index[3], kNoGene);
  ASSERT_EQ(result.other_feature, (std::vector<std::uint8_t>{1, 0, 0, 1, 0}));
  EXPECT_EQ(result.n_other_features, 2U);
  EXPECT_EQ(result.count(GeneMatch::kUnmatched), 0U);  // not counted as unmatched genes
  EXPECT_DOUBLE_EQ(result.fraction_matched(), 1.0);    // 3 of the 3 gene vars
  EXPECT_NE(result.summary().find("features other than gene expression: 2 (var 'feature_types': Antibody Capture 1, Peaks 1)"),
            std::string::npos)
      << result.summary();
  // Without the column (or with only gene expression in it), nothing is flagged; nor by
  // CELLxGENE's var['feature_type'], which holds gene biotypes.
  EXPECT_TRUE(resolve_genes(table, var_with_index({"AAA", "BBB"})).other_feature.empty());
  DataFrame biotypes = var_with_index({"AAA", "BBB", "CCC"});
  biotypes.columns.push_back(Column::categorical("feature_type", {"protein_coding", "lncRNA", "GEX"}));
  const GeneResolveResult genes = resolve_genes(table, biotypes);
  EXPECT_TRUE(genes.other_feature.empty());
  EXPECT_EQ(genes.n_matched(), 3U);
}

TEST(ResolveGenes, AntibodyTagsAndPeaksAreToldWithoutCellRangersTypes) {
  const GeneTable table = small_table();
  const auto flags = [&](const DataFrame& var) { return resolve_genes(table, var).other_feature; };
  // Other spellings of the kinds (muon's, Seurat's, CITE-seq-Count's); a gene biotype with
  // "protein" in it is a gene.
  DataFrame kinds = var_with_index({"AAA", "T1", "T2", "T3", "T4", "BBB"});
  kinds.columns.push_back(Column::categorical(
      "feature_types", {"Gene Expression", "Protein", "Antibody Derived Tags", "protein_expression", "Chromatin Accessibility", "protein_coding"}));
  EXPECT_EQ(flags(kinds), (std::vector<std::uint8_t>{0, 1, 1, 1, 1, 0}));
  // Names: genome intervals (ATAC peaks, 10x's and Signac's), antibody tags; genes that only look
  // alike stay genes (ADTRP, HLA-A-like names, zebrafish zgc: / si: names, a bare 'chr1').
  const DataFrame named = var_with_index({"AAA", "chr1:10109-10357", "chr2-100-250", "1:500-900", "GL000194.1:10-20", "CD3_TotalSeqB",
                                          "IgG1_isotype", "Mouse_IgG2a", "ADT_CD4", "CD8_ADT", "HTO-1", "Hashtag3", "BBB", "ADTRP", "zgc:123456",
                                          "si:ch211-12-34", "chr1", "chr1:300-200", "MT-CO2", "CCC"});
  EXPECT_EQ(flags(named), (std::vector<std::uint8_t>{0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}));
  // Other tools' tag names (CITE-seq-Count's name-barcode pairs, BioLegend's species prefix, BD's
  // sample tags, 10x CellPlex oligos); gene names with a few bases or a 'Hu' stay genes.
  EXPECT_EQ(flags(var_with_index({"CD3-CTCATTGTAACTCCT", "Hu.CD3_UCHT1", "SampleTag01_hs", "CMO301", "AAA", "GATA3", "HUS1", "CMO", "TTTACGTACGTA"})),
            (std::vector<std::uint8_t>{1, 1, 1, 1, 0, 0, 0, 0, 0}));
  const GeneResolveResult told = resolve_genes(table, named);
  EXPECT_TRUE(told.other_features_guessed);  // (antibody-like names are a guess: train and annotate warn)
  EXPECT_NE(told.other_features_message().find("11 vars are no genes (antibody-tag names 7, genome intervals (peaks) 4; e.g. "
                                                "chr1:10109-10357, chr2-100-250, 1:500-900): left out of the genes and the library sizes; "
                                                "a var 'feature_types' column"),
            std::string::npos)
      << told.other_features_message();
  EXPECT_FALSE(told.other_features_message().starts_with("note: "));
  const GeneResolveResult peaks = resolve_genes(table, var_with_index({"AAA", "chr1:10109-10357", "BBB"}));
  EXPECT_FALSE(peaks.other_features_guessed);  // (a genome interval is no gene's name: a note)
  EXPECT_TRUE(peaks.other_features_message().starts_with("note: 1 var is no gene (genome intervals (peaks) 1; e.g. chr1:10109-10357)"))
      << peaks.other_features_message();
  // Vars of no type beside typed genes (an antibody matrix joined to a Cell Ranger one): no genes
  // once one of them is named like a tag; a typed gene keeps its gene, whatever its name.
  DataFrame joined = var_with_index({"AAA", "BBB", "CCC", "MALAT1", "CD3_TotalSeqB", "NKX2-1", "AAA-1"});
  joined.columns.push_back(Column::from_strings("feature_types", {"Gene Expression", "Gene Expression", "Gene Expression", "Gene Expression", "", "", ""}));
  EXPECT_EQ(flags(joined), (std::vector<std::uint8_t>{0, 0, 0, 0, 1, 1, 1}));
  DataFrame untold = joined;
  untold.index[4] = "CD3";
  EXPECT_TRUE(flags(untold).empty());  // (nothing says they are not genes)
  // An id column giving nearly every var an Ensembl id (Cell Ranger's gene_ids): the few vars it
  // gives their own name are no genes (a 10x antibody's id is its name).
  std::vector<std::string> names;
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) {
    names.push_back(fmt::format("G{}", i));
    ids.push_back(fmt::format("ENSG{:011d}", i + 100));
  }
  // Transgenes and missing ids written as text ("nan") are no such group: genes. A spike-in is
  // flagged by its own name (ERCC-00002: no cell's transcript), not as one of such a group.
  DataFrame transgenes = var_with_index(names);
  transgenes.index.insert(transgenes.index.end(), {"EGFP", "tdTomato", "ERCC-00002", "AAA"});
  std::vector<std::string> transgene_ids = ids;
  transgene_ids.insert(transgene_ids.end(), {"EGFP", "tdTomato", "ERCC-00002", "nan"});
  transgenes.columns.push_back(Column::from_strings("gene_ids", transgene_ids));
  std::vector<std::uint8_t> spike_in_only(names.size() + 4, 0);
  spike_in_only[names.size() + 2] = 1;
  EXPECT_EQ(flags(transgenes), spike_in_only);
  // Spike-ins by name (ERCC's, SIRVs), not the genes ERCC1 .. ERCC8 nor names merely alike.
  EXPECT_EQ(flags(var_with_index({"ERCC-00002", "ERCC_00171", "SIRV1", "SIRV101", "ERCC1", "ERCC6L2", "ERCC-2", "SIRVX", "AAA"})),
            (std::vector<std::uint8_t>{1, 1, 1, 1, 0, 0, 0, 0, 0}));
  // A quarter or more of the group named like tags (an isotype control, a TotalSeq name): the
  // whole group, whose other names (CD56, AAA) say nothing.
  names.insert(names.end(), {"AAA", "CD56", "IgG1_isotype"});
  ids.insert(ids.end(), {"AAA", "CD56", "IgG1_isotype"});
  DataFrame tenx = var_with_index(names);
  tenx.columns.push_back(Column::from_strings("gene_ids", ids));
  const GeneResolveResult ids_told = resolve_genes(table, tenx);
  EXPECT_EQ(ids_told.n_other_features, 3U);
  EXPECT_TRUE(ids_told.is_other_feature(200));
  EXPECT_NE(ids_told.other_feature_examples.find("antibody-tag names 1, no Ensembl id in var 'gene_ids' 2"), std::string::npos)
      << ids_told.other_feature_examples;
  // One hashtag among genes joined without a type: the hashtag alone.
  DataFrame one_tag = var_with_index({"G1", "G2", "G3", "G4", "G5", "G6", "G7", "G8", "G9", "AAA", "BBB", "CCC", "MALAT1", "HTO_1"});
  std::vector<std::string> one_tag_types(9, "Gene Expression");
  one_tag_types.resize(14, "");
  one_tag.columns.push_back(Column::from_strings("feature_types", one_tag_types));
  EXPECT_EQ(flags(one_tag), (std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  // Control probes typed as genes (every var 'Gene Expression'): told by their names, as before;
  // UCSC's unplaced contigs are intervals; a barnyard 'mouse_' prefix is no isotype control.
  DataFrame probes = var_with_index({"AAA", "BLANK_0001", "NegControlProbe_0003", "chrUn_KI270742v1:100-200", "mouse_Pigg", "BBB"});
  probes.columns.push_back(Column::categorical("feature_types", std::vector<std::string>(6, "Gene Expression")));
  EXPECT_EQ(flags(probes), (std::vector<std::uint8_t>{0, 1, 1, 1, 0, 0}));
  DataFrame guides = var_with_index({"AAA", "g1", "g2"});
  guides.columns.push_back(Column::categorical("feature_types", {"Gene Expression", "sgRNA", "CRISPR Guide Capture"}));
  EXPECT_EQ(flags(guides), (std::vector<std::uint8_t>{0, 1, 1}));
  // A matrix of nothing but antibody tags or peaks: every var flagged, and said so.
  DataFrame protein = var_with_index({"AAA", "BBB"});
  protein.columns.push_back(Column::categorical("feature_types", {"Antibody Capture", "Antibody Capture"}));
  const GeneResolveResult none = resolve_genes(table, protein);
  EXPECT_EQ(none.n_other_features, 2U);
  ASSERT_FALSE(none.warnings.empty());
  EXPECT_NE(none.warnings[0].find("no gene expression: every var (2) is a feature other than gene expression"), std::string::npos) << none.warnings[0];
  EXPECT_NE(resolve_genes(table, kinds).summary().find("genes: 2 of 2 gene vars matched (100.0%)"), std::string::npos)
      << resolve_genes(table, kinds).summary();
}

TEST(ResolveGenes, ImagingPanelsControlProbesAreNotGenes) {
  // Xenium's controls, told by feature_type; MERSCOPE's and CosMx's (and an AnnData built from
  // them without the column) by their names: not genes, not unmatched genes, not library size.
  const GeneTable table = small_table();
  DataFrame xenium = var_with_index({"AAA", "NegControlProbe_00042", "BBB", "NegControlCodeword_0500", "BLANK_0006", "UnassignedCodeword_0001"});
  xenium.columns.push_back(Column::categorical("feature_type", {"Gene Expression", "Negative Control Probe", "Gene Expression",
                                                                "Negative Control Codeword", "Blank Codeword", "Unassigned Codeword"}));
  const GeneResolveResult told = resolve_genes(table, xenium);
  EXPECT_EQ(told.other_feature, (std::vector<std::uint8_t>{0, 1, 0, 1, 1, 1}));
  EXPECT_EQ(told.count(GeneMatch::kUnmatched), 0U);
  const GeneResolveResult named = resolve_genes(table, var_with_index({"AAA", "Blank-0", "BBB", "NegPrb12", "SystemControl3", "CCC"}));
  EXPECT_EQ(named.other_feature, (std::vector<std::uint8_t>{0, 1, 0, 1, 1, 0}));
  EXPECT_EQ(named.count(GeneMatch::kUnmatched), 0U);
  EXPECT_NE(named.summary().find("features other than gene expression: 3 (control probes named Blank-* 1, NegPrb* 1, SystemControl* 1)"),
            std::string::npos)
      << named.summary();
}

TEST(ResolveGenes, BlanksAroundNamesAndGenomePrefixesAreNotPartOfTheGene) {
  // A var pasted from a spreadsheet ("AAA ", "\tBBB"), Cell Ranger's multi-genome references
  // ("GRCh38_CCC", "hg19_MALAT1", "mm10___NKX2-1"); an unknown prefix stays unmatched.
  const GeneTable table = small_table();
  const GeneResolveResult result =
      resolve_genes(table, var_with_index({"AAA ", "\tBBB\r", "GRCh38_CCC", "hg19_MALAT1", "mm10___NKX2-1", "foo_C1orf1", "GRCh38_"}));
  EXPECT_EQ(table.gene(result.gene_index[0]).symbol, "AAA");
  EXPECT_EQ(table.gene(result.gene_index[1]).symbol, "BBB");
  EXPECT_EQ(table.gene(result.gene_index[2]).symbol, "CCC");
  EXPECT_EQ(table.gene(result.gene_index[3]).symbol, "MALAT1");
  EXPECT_EQ(table.gene(result.gene_index[4]).symbol, "NKX2-1");
  EXPECT_EQ(result.gene_index[5], kNoGene);
  EXPECT_EQ(result.gene_index[6], kNoGene);
}

TEST(ResolveGenes, AutoDetectPicksTheColumnResolvingMost) {
  const GeneTable table = small_table();
  // scanpy / 10x layout: index = symbols made unique, gene_ids = Ensembl, and noise columns.
  DataFrame var = var_with_index({"AAA", "BBB", "CCC", "unknown-1", "MALAT1"});
  var.columns.push_back(Column::from_strings(
      "gene_ids", {"ENSG00000000001", "ENSG00000000002", "ENSG00000000003", "ENSG00000000004", "ENSG00000000007"}));
  var.columns.push_back(Column::categorical("feature_types", std::vector<std::string>(5, "Gene Expression")));
  var.columns.push_back(Column::from_floats("means", {1, 2, 3, 4, 5}));
  GeneResolveResult result = resolve_genes(table, var);
  EXPECT_EQ(result.column, "_index");  // 4 vs 4: the tie goes to the index
  EXPECT_EQ(result.id_type, GeneIdType::kSymbol);
  ASSERT_EQ(result.candidates.size(), 3U);
  EXPECT_EQ(result.candidates[1].column, "gene_ids");
  EXPECT_EQ(result.candidates[1].id_type, GeneIdType::kEnsembl);
  EXPECT_EQ(result.candidates[1].n_resolved, 4U);
  EXPECT_EQ(result.candidates[2].n_resolved, 0U);

  // Index of ids unknown to the table, symbols in a categorical feature_name (CELLxGENE-like).
  DataFrame cellxgene = var_with_index({"ENSG00000000099", "ENSG00000000098", "ENSG00000000003"});
  cellxgene.columns.push_back(Column::categorical("feature_name", {"AAA", "BBB", "CCC"}));
  result = resolve_genes(table, cellxgene);
  EXPECT_EQ(result.column, "feature_name");
  EXPECT_EQ(result.id_type, GeneIdType::kSymbol);
  EXPECT_EQ(result.n_matched(), 3U);
  EXPECT_EQ(result.candidates[0].id_type, GeneIdType::kEnsembl);
  EXPECT_EQ(result.candidates[0].n_resolved, 1U);

  // Entrez ids.
  DataFrame entrez = var_with_index({"x", "y", "z"});
  entrez.columns.push_back(Column::from_strings("entrez", {"1", "2", "12345"}));
  result = resolve_genes(table, entrez);
  EXPECT_EQ(result.column, "entrez");
  EXPECT_EQ(result.id_type, GeneIdType::kEntrez);
  EXPECT_EQ(result.count(GeneMatch::kEntrez), 2U);

  // A chromosome column ("1", "2", ... read as Entrez ids) matches every var but names few genes:
  // the symbols of the index, which match fewer vars, name more genes (velocyto's loom files
  // carry row_attrs/Chromosome beside Gene).
  DataFrame chromosomes = var_with_index({"AAA", "BBB", "CCC", "unknown", "MALAT1"});
  chromosomes.columns.push_back(Column::categorical("Chromosome", {"1", "1", "2", "1", "2"}));
  result = resolve_genes(table, chromosomes);
  EXPECT_EQ(result.column, "_index");
  EXPECT_EQ(result.n_matched(), 4U);
  EXPECT_EQ(result.candidates[1].n_resolved, 5U);
  EXPECT_EQ(result.candidates[1].n_distinct, 2U);
  EXPECT_EQ(result.candidates[0].n_distinct, 4U);
  EXPECT_NE(result.summary().find("Chromosome (entrez, 5 matched, 2 genes)"), std::string::npos) << result.summary();
}

TEST(ResolveGenes, NamedColumn) {
  const GeneTable table = small_table();
  DataFrame var = var_with_index({"AAA", "BBB"});
  var.index_name = "gene_symbols";
  var.columns.push_back(Column::categorical("feature_name", {"CCC", "CCC"}));
  var.columns.push_back(Column::from_ints("length", {1, 2}));
  GeneResolveOptions options;
  options.column = "feature_name";
  GeneResolveResult result = resolve_genes(table, var, options);
  EXPECT_EQ(result.column, "feature_name");
  EXPECT_EQ(result.n_distinct_genes, 1U);
  EXPECT_EQ(result.n_duplicate_vars, 1U);
  for (const char* index_name : {"_index", "index", "gene_symbols"}) {
    options.column = index_name;
    result = resolve_genes(table, var, options);
    EXPECT_EQ(result.column, "_index") << index_name;
    EXPECT_EQ(result.n_distinct_genes, 2U) << index_name;
  }
  options.column = "nope";
  try {
    (void)resolve_genes(table, var, options);
    ADD_FAILURE() << "no error for a missing column";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("no column 'nope'"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("feature_name"), std::string::npos) << error.what();
  }
  options.column = "length";
  try {
    (void)resolve_genes(table, var, options);
    ADD_FAILURE() << "no error for a numeric column";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("'length' holds int values"), std::string::npos) << error.what();
  }
}

TEST(ResolveGenes, WarnsAboutLikelySpeciesMismatch) {
  const GeneTable table = small_table();
  GeneResolveResult result = resolve_genes(table, var_with_index({"Aaa", "Bbb", "Ccc", "Malat1", "Xist"}));
  EXPECT_EQ(result.count(GeneMatch::kSymbolCaseInsensitive), 4U);
  ASSERT_EQ(result.warnings.size(), 1U) << result.summary();
  EXPECT_NE(result.warnings[0].find("cased like mouse genes"), std::string::npos) << result.warnings[0];
  EXPECT_NE(result.summary().find("warning: likely species mismatch"), std::string::npos);
  EXPECT_TRUE(result.mouse_cased_mismatch);
  EXPECT_EQ(result.n_symbol_vars, 5U);
  EXPECT_EQ(result.n_mouse_cased_vars, 5U);

  result = resolve_genes(table, var_with_index({"ENSMUSG00000000001", "ENSMUSG00000000002", "ENSG00000000003"}));
  ASSERT_EQ(result.warnings.size(), 1U) << result.summary();
  EXPECT_FALSE(result.mouse_cased_mismatch);
  EXPECT_EQ(result.n_symbol_vars, 0U);
  EXPECT_NE(result.warnings[0].find("ENSMUSG (mouse)"), std::string::npos) << result.warnings[0];
  EXPECT_NE(result.warnings[0].find("ENSG (human)"), std::string::npos) << result.warnings[0];

  result = resolve_genes(table, var_with_index({"foo", "bar", "AAA"}));
  ASSERT_EQ(result.warnings.size(), 1U) << result.summary();
  EXPECT_NE(result.warnings[0].find("few genes matched"), std::string::npos) << result.warnings[0];
  EXPECT_NE(result.warnings[0].find("For another species, its table: --gene-table FILE (a TSV with columns entrez_id and symbol"),
            std::string::npos)
      << result.warnings[0];

  result = resolve_genes(table, var_with_index({"AAA", "BBB", "C1orf1"}));
  EXPECT_TRUE(result.warnings.empty()) << result.summary();
}

TEST(ResolveGenes, JsonAndSummary) {
  const GeneTable table = small_table();
  const GeneResolveResult result = resolve_genes(table, var_with_index({"AAA", "SHARED", "zzz", "MALAT1-1"}));
  const nlohmann::json json = result.to_json();
  EXPECT_EQ(json.at("column"), "_index");
  EXPECT_EQ(json.at("id_type"), "symbol");
  EXPECT_EQ(json.at("n_vars"), 4);
  EXPECT_EQ(json.at("n_matched"), 2);
  EXPECT_DOUBLE_EQ(json.at("fraction_matched").get<double>(), 0.5);
  EXPECT_EQ(json.at("counts").at("ambiguous"), 1);
  EXPECT_EQ(json.at("counts").at("symbol_case_insensitive"), 0);
  EXPECT_EQ(json.at("n_suffix_stripped"), 1);
  EXPECT_EQ(json.at("table_hash"), table.content_hash_hex());
  const std::string summary = result.summary();
  EXPECT_NE(summary.find("2 of 4 vars matched (50.0%)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("unmatched 1 (e.g. zzz)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("SHARED (2 genes)"), std::string::npos) << summary;
}

TEST(ResolveGenes, EmptyVar) {
  const GeneResolveResult result = resolve_genes(small_table(), DataFrame{});
  EXPECT_EQ(result.n_vars(), 0U);
  EXPECT_EQ(result.fraction_matched(), 0.0);
  EXPECT_EQ(result.id_type, GeneIdType::kUnknown);
  EXPECT_TRUE(result.warnings.empty());
}

// ---- real data -----------------------------------------------------------------------------

std::vector<std::string> read_names(const std::string& path) {
  std::ifstream input(path);
  EXPECT_TRUE(input.good()) << "cannot read " << path;
  std::vector<std::string> names;
  for (std::string line; std::getline(input, line);) names.push_back(line);
  return names;
}

/// Resolve `names_file` (tests/data/genes/) against `table`; check that >= 95% of the names the
/// table knows exactly (as a symbol, alias, Ensembl or Entrez id) resolve.
GeneResolveResult check_real_names(const GeneTable& table, const std::string& names_file, std::size_t n_expected,
                                   GeneIdType expected_type) {
  const DataFrame var = var_with_index(read_names(test::fixture("genes/" + names_file)));
  EXPECT_EQ(var.n_rows(), n_expected);
  const GeneResolveResult result = resolve_genes(table, var);
  std::size_t n_known = 0;
  std::size_t n_known_resolved = 0;
  for (std::size_t row = 0; row < var.n_rows(); ++row) {
    if (!table.is_known_name(var.index[row])) continue;
    ++n_known;
    n_known_resolved += result.gene_index[row] != kNoGene ? 1 : 0;
  }
  std::printf("%s against %s:\n%s  names known to the table: %zu, of which resolved: %zu (%.2f%%)\n",
              names_file.c_str(), std::filesystem::path(table.source()).filename().c_str(), result.summary().c_str(),
              n_known, n_known_resolved, 100.0 * static_cast<double>(n_known_resolved) / static_cast<double>(n_known));
  EXPECT_EQ(result.id_type, expected_type);
  EXPECT_GT(n_known, n_expected / 2);
  EXPECT_GE(static_cast<double>(n_known_resolved), 0.95 * static_cast<double>(n_known));
  EXPECT_TRUE(result.warnings.empty()) << result.summary();
  return result;
}

TEST(ResolveGenesRealData, Pbmc3kSymbolsAndCellbenchEnsemblWithTsv) {
  CELLTYPER_REQUIRE_SHARED(path, "gene-annotations/human_genes.tsv");
  const GeneTable table = load_gene_table(path);
  const GeneResolveResult pbmc = check_real_names(table, "pbmc3k_var_names.txt", 13714, GeneIdType::kSymbol);
  EXPECT_GT(pbmc.count(GeneMatch::kSymbol), 11000U);
  EXPECT_GT(pbmc.fraction_matched(), 0.80);
  for (const char* mitochondrial : {"MT-CO1", "MT-ND4L", "MT-ATP6", "MT-CYB"}) {
    const std::int32_t gene = table.find_symbol(mitochondrial);
    ASSERT_NE(gene, kNoGene) << mitochondrial;
    EXPECT_EQ(table.gene(gene).chromosome, "MT") << mitochondrial;
  }
  const GeneResolveResult cellbench =
      check_real_names(table, "cellbench_3cl_var_names.txt", 28258, GeneIdType::kEnsembl);
  EXPECT_GT(cellbench.count(GeneMatch::kEnsembl), 20000U);
  // org.Hs.eg.db maps only ~36,600 genes to Ensembl: many CellBench ids (lncRNAs, pseudogenes) are
  // not in the table at all.
  EXPECT_GT(cellbench.fraction_matched(), 0.70);
}

TEST(ResolveGenesRealData, Pbmc3kSymbolsAndCellbenchEnsemblWithSqlite) {
  const std::string path = "/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite";
  std::error_code error;
  if (!std::filesystem::exists(path, error)) GTEST_SKIP() << path << " is absent (r-bioc-org.hs.eg.db)";
  const GeneTable table = load_gene_table(path);
  (void)check_real_names(table, "pbmc3k_var_names.txt", 13714, GeneIdType::kSymbol);
  (void)check_real_names(table, "cellbench_3cl_var_names.txt", 28258, GeneIdType::kEnsembl);
}

}  // namespace
}  // namespace celltyper
