// Tests of the LSA backend: tokeniser, TF-IDF against hand-computed values, randomised SVD
// against Eigen's exact JacobiSVD, determinism across runs and thread counts, prefixes.
#include <celltyper/error.hpp>
#include <celltyper/gene_embedding.hpp>

// Eigen is a private dependency of the library; the tests use its headers directly as the exact
// oracle. GCC 12 reports false -W(maybe-)uninitialized positives inside its AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <eigen3/Eigen/Dense>

#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <string>

#include "support/test_support.hpp"

namespace celltyper {
namespace {

using Strings = std::vector<std::string>;

TEST(Tokenizer, BiomedicalTokens) {
  EXPECT_EQ(tokenize("CD3E, IL-2 and IL2 (T-cell) TNF-α β-catenin HLA-DRB1"),
            (Strings{"cd3e", "il2", "il", "il2", "tcell", "t", "cell", "tnfalpha", "tnf", "alpha", "betacatenin", "beta",
                     "catenin", "hladrb1", "hla", "drb1"}));
  EXPECT_EQ(tokenize("The protein encoded by this gene is a member of the kinase family."), (Strings{"kinase"}));
  EXPECT_EQ(tokenize("-leading trailing- a--b x-"), (Strings{"leading", "trailing", "b", "x"}));
  EXPECT_EQ(tokenize("Β-cells (ΑΒ), Sjögren’s 10–20 μM"),
            (Strings{"betacells", "beta", "cells", "alphabeta", "sjogren", "s", "10", "20", "mum"}));
  EXPECT_EQ(tokenize("NF-kappaB/Rel; p53:MDM2"), (Strings{"nfkappab", "nf", "kappab", "rel", "p53", "mdm2"}));
  EXPECT_EQ(tokenize("residues 10-20 of CD8-1"), (Strings{"residues", "10", "20", "cd81", "cd8"}));
  const std::string long_token(41, 'x');
  EXPECT_EQ(tokenize("ok " + long_token), (Strings{"ok"}));
  TokenizerOptions keep_all;
  keep_all.remove_stop_words = false;
  keep_all.split_hyphenated = false;
  EXPECT_EQ(tokenize("The T-cell gene", keep_all), (Strings{"the", "tcell", "gene"}));
  EXPECT_TRUE(tokenize("").empty());
  EXPECT_EQ(tokenize("\xff\xfe broken utf-8 \xce"), (Strings{"broken", "utf8", "utf"}));  // bad UTF-8 separates
}

TEST(Tokenizer, StopWordList) {
  const auto& words = gene_text_stop_words();
  EXPECT_TRUE(std::is_sorted(words.begin(), words.end()));
  for (const char* word : {"the", "protein", "gene", "encodes", "encoded", "member", "family", "summary", "process", "activity"}) {
    EXPECT_TRUE(is_gene_text_stop_word(word)) << word;
  }
  for (const char* word : {"t", "b", "cell", "kinase", "receptor", "immune", "cd3e"}) {
    EXPECT_FALSE(is_gene_text_stop_word(word)) << word;
  }
}

TEST(Tfidf, TinyCorpusMatchesHandValues) {
  // df: kinase 2, receptor 2, ligand 1 (n = 3). idf = ln(4/(1+df)) + 1; tf = 1 + ln(count).
  TfidfOptions options;
  options.min_document_frequency = 1;
  const TfidfMatrix result = tfidf({"Kinase kinase receptor.", "receptor ligand", "kinase"}, options);
  EXPECT_EQ(result.vocabulary, (Strings{"kinase", "ligand", "receptor"}));
  EXPECT_EQ(result.document_frequency, (std::vector<std::int64_t>{2, 1, 2}));
  EXPECT_NEAR(result.idf[0], 1.2876820724517808, 1e-15);
  EXPECT_NEAR(result.idf[1], 1.6931471805599454, 1e-15);
  const CsrBlockF64& m = result.matrix;
  ASSERT_EQ(m.n_rows, 3);
  ASSERT_EQ(m.n_cols, 3);
  EXPECT_EQ(std::vector<std::int64_t>(m.indptr.begin(), m.indptr.end()), (std::vector<std::int64_t>{0, 2, 4, 5}));
  EXPECT_EQ(std::vector<std::int32_t>(m.indices.begin(), m.indices.end()), (std::vector<std::int32_t>{0, 2, 1, 2, 0}));
  const std::vector<double> expected{0.8610369959439765, 0.5085423203783268, 0.7959605415681652, 0.6053485081062916, 1.0};
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(m.values[i], expected[i], 1e-14) << i;

  // min_df = 2 drops "ligand"; max_df = 0.5 drops terms in more than 1.5 documents.
  options.min_document_frequency = 2;
  EXPECT_EQ(tfidf({"Kinase kinase receptor.", "receptor ligand", "kinase"}, options).vocabulary, (Strings{"kinase", "receptor"}));
  options.min_document_frequency = 1;
  options.max_document_fraction = 0.5;
  EXPECT_EQ(tfidf({"Kinase kinase receptor.", "receptor ligand", "kinase"}, options).vocabulary, (Strings{"ligand"}));
  options.max_document_fraction = 0;
  EXPECT_THROW(tfidf({"a"}, options), InputError);
}

// ---- randomised SVD against the exact SVD -------------------------------------------------------

using Dense = Eigen::MatrixXd;

/// rows x cols matrix U diag(s) V^T with s_i = decay^i and random orthonormal U, V.
Dense decaying_matrix(int rows, int cols, double decay, int rank, unsigned seed) {
  std::srand(seed);
  const int r = std::min({rows, cols, rank});
  const Dense u = Eigen::HouseholderQR<Dense>(Dense::Random(rows, r)).householderQ() * Dense::Identity(rows, r);
  const Dense v = Eigen::HouseholderQR<Dense>(Dense::Random(cols, r)).householderQ() * Dense::Identity(cols, r);
  Eigen::VectorXd s(r);
  for (int i = 0; i < r; ++i) s(i) = std::pow(decay, i);
  return u * s.asDiagonal() * v.transpose();
}

CsrBlockF64 to_csr(const Dense& a) {
  CsrBlockF64 m;
  m.reset(0, a.rows(), a.cols());
  for (Eigen::Index i = 0; i < a.rows(); ++i) {
    for (Eigen::Index j = 0; j < a.cols(); ++j) {
      if (a(i, j) == 0) continue;
      m.indices.push_back(static_cast<std::int32_t>(j));
      m.values.push_back(a(i, j));
    }
    m.indptr.push_back(static_cast<std::int64_t>(m.indices.size()));
  }
  return m;
}

/// sin of the largest principal angle between the column spaces of orthonormal a and b.
double subspace_sine(const Dense& a, const Dense& b) {
  const Eigen::JacobiSVD<Dense> svd(a.transpose() * b);
  const double smallest_cosine = std::min(1.0, svd.singularValues().minCoeff());
  return std::sqrt(std::max(0.0, 1 - smallest_cosine * smallest_cosine));
}

void check_against_exact(int rows, int cols) {
  SCOPED_TRACE(testing::Message() << rows << " x " << cols);
  const Dense a = decaying_matrix(rows, cols, 0.7, 1000, 7);
  const Eigen::JacobiSVD<Dense> exact(a, Eigen::ComputeThinU | Eigen::ComputeThinV);
  RandomizedSvdOptions options;
  options.rank = 10;
  options.compute_right = true;
  const RandomizedSvdResult result = randomized_svd(to_csr(a), options);
  ASSERT_EQ(result.singular_values.size(), 10U);
  Dense u(rows, 10);
  Dense v(cols, 10);
  for (int j = 0; j < 10; ++j) {
    const double s = result.singular_values[static_cast<std::size_t>(j)];
    EXPECT_NEAR(s, exact.singularValues()(j), 1e-4) << j;
    for (int i = 0; i < rows; ++i) u(i, j) = result.left_scaled[static_cast<std::size_t>(i * 10 + j)] / s;
    for (int i = 0; i < cols; ++i) v(i, j) = result.right[static_cast<std::size_t>(i * 10 + j)];
  }
  EXPECT_LT((u.transpose() * u - Dense::Identity(10, 10)).norm(), 1e-8);
  EXPECT_LT((v.transpose() * v - Dense::Identity(10, 10)).norm(), 1e-8);
  EXPECT_LT(subspace_sine(u, exact.matrixU().leftCols(10)), 1e-4);
  EXPECT_LT(subspace_sine(v, exact.matrixV().leftCols(10)), 1e-4);
  // Component by component (signs canonical: largest entry of each U column positive).
  for (int j = 0; j < 10; ++j) {
    Eigen::VectorXd exact_u = exact.matrixU().col(j);
    Eigen::Index largest = 0;
    u.col(j).cwiseAbs().maxCoeff(&largest);
    EXPECT_GT(u(largest, j), 0);
    if (exact_u(largest) < 0) exact_u = -exact_u;
    EXPECT_LT((u.col(j) - exact_u).norm(), 1e-4) << j;
  }
}

TEST(RandomizedSvd, MatchesExactSvdOnTallMatrix) { check_against_exact(90, 60); }
TEST(RandomizedSvd, MatchesExactSvdOnWideMatrix) { check_against_exact(60, 90); }

TEST(RandomizedSvd, RankDeficientSketchFallsBackToHouseholder) {
  const Dense a = decaying_matrix(70, 50, 0.5, 3, 11);  // rank 3; sketch width 8 + 10 = 18
  RandomizedSvdOptions options;
  options.rank = 8;
  options.compute_right = true;
  const RandomizedSvdResult result = randomized_svd(to_csr(a), options);
  const Eigen::JacobiSVD<Dense> exact(a);
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(result.singular_values[static_cast<std::size_t>(j)], exact.singularValues()(j), 1e-8);
  for (int j = 3; j < 8; ++j) EXPECT_LT(result.singular_values[static_cast<std::size_t>(j)], 1e-6);
  // U S V^T reconstructs A.
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> us(result.left_scaled.data(), 70, 8);
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> v(result.right.data(), 50, 8);
  EXPECT_LT((Dense(us * v.transpose()) - a).norm(), 1e-8);
}

TEST(RandomizedSvd, PrefixOfRankDIsRankK) {
  const CsrBlockF64 a = to_csr(decaying_matrix(120, 80, 0.6, 1000, 3));
  RandomizedSvdOptions options;
  options.rank = 20;
  const RandomizedSvdResult wide = randomized_svd(a, options);
  options.rank = 6;
  const RandomizedSvdResult narrow = randomized_svd(a, options);
  for (int j = 0; j < 6; ++j) {
    EXPECT_NEAR(wide.singular_values[static_cast<std::size_t>(j)], narrow.singular_values[static_cast<std::size_t>(j)], 1e-9);
    for (int i = 0; i < 120; ++i) {
      EXPECT_NEAR(wide.left_scaled[static_cast<std::size_t>(i * 20 + j)], narrow.left_scaled[static_cast<std::size_t>(i * 6 + j)],
                  1e-8);
    }
  }
}

TEST(RandomizedSvd, RejectsBadOptions) {
  const CsrBlockF64 a = to_csr(decaying_matrix(10, 8, 0.5, 8, 1));
  RandomizedSvdOptions options;
  options.rank = 9;
  EXPECT_THROW(randomized_svd(a, options), InputError);
  options.rank = 0;
  EXPECT_THROW(randomized_svd(a, options), InputError);
  options.rank = 2;
  options.power_iterations = -1;
  EXPECT_THROW(randomized_svd(a, options), InputError);
  EXPECT_THROW(randomized_svd(CsrBlockF64{}, RandomizedSvdOptions{}), InputError);
}

// ---- LSA ---------------------------------------------------------------------------------------

/// A synthetic corpus: document d is about theme d % 12 (30 words drawn from the theme's 40
/// words) plus 5 words from the whole 480-word vocabulary; word w is spelled "w<w>".
GeneTexts synthetic_texts(int n_documents) {
  GeneTexts texts;
  std::uint64_t state = 12345;
  const auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int>(state >> 33);
  };
  for (int d = 0; d < n_documents; ++d) {
    const int theme = d % 12;
    std::string text = fmt::format("G{}: theme {} gene.", d, theme);
    for (int i = 0; i < 30; ++i) text += fmt::format(" w{}", theme * 40 + next() % 40);
    for (int i = 0; i < 5; ++i) text += fmt::format(" w{}", next() % 480);
    texts.entrez_ids.push_back(d + 1);
    texts.symbols.push_back(fmt::format("G{}", d));
    texts.texts.push_back(std::move(text));
  }
  texts.recipe_hash = gene_text_recipe_hash(texts.entrez_ids, texts.texts);
  return texts;
}

TEST(Lsa, BitIdenticalAcrossRunsAndThreadCounts) {
  const GeneTexts texts = synthetic_texts(1500);
  LsaOptions options;
  options.dims = 140;  // sketch width 150: two Gram tiles; 1500 rows: several row blocks
  options.num_threads = 1;
  const LsaResult one = embed_genes_lsa(texts, nullptr, options);
  const LsaResult again = embed_genes_lsa(texts, nullptr, options);
  options.num_threads = 3;
  const LsaResult three = embed_genes_lsa(texts, nullptr, options);
  ASSERT_EQ(one.store.n_genes(), 1500);
  ASSERT_EQ(one.store.dims(), 140);
  EXPECT_EQ(std::memcmp(one.store.matrix().data(), again.store.matrix().data(), one.store.matrix().size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(one.store.matrix().data(), three.store.matrix().data(), one.store.matrix().size() * sizeof(float)), 0);
  EXPECT_EQ(one.store.identity_hash(), three.store.identity_hash());
  EXPECT_EQ(one.singular_values, three.singular_values);
  // Another seed: another (equally valid) basis for the noise components.
  options.seed = 7;
  EXPECT_NE(embed_genes_lsa(texts, nullptr, options).store.identity_hash(), one.store.identity_hash());
  // Documents of a theme are each other's neighbours.
  const auto neighbours = one.store.nearest(0, 5);
  for (const auto& [row, cosine] : neighbours) EXPECT_EQ(row % 12, 0) << row;
  EXPECT_EQ(one.store.provenance().backend, "lsa");
  EXPECT_EQ(one.store.provenance().text_recipe_hash, texts.recipe_hash);
  EXPECT_EQ(one.store.provenance().extra["lsa"]["singular_values"].size(), 140U);
}

TEST(Lsa, TruncationIsTheNormalisedPrefixAndMatchesALowerRankRun) {
  const GeneTexts texts = synthetic_texts(600);
  LsaOptions options;
  options.dims = 24;
  const LsaResult full = embed_genes_lsa(texts, nullptr, options);
  const GeneStore prefix = full.store.truncated(12);
  ASSERT_EQ(prefix.dims(), 12);
  for (std::int64_t i = 0; i < prefix.n_genes(); ++i) {
    double norm = 0;
    for (int j = 0; j < 12; ++j) norm += static_cast<double>(full.store.row(i)[j]) * full.store.row(i)[j];
    for (int j = 0; j < 12; ++j) EXPECT_NEAR(prefix.row(i)[j], full.store.row(i)[j] / std::sqrt(norm), 1e-6);
  }
  // The 12 theme directions stand far above the noise, so the rank-12 run spans the same
  // subspace. Its basis may differ (the themes have nearly equal singular values), so compare
  // the rotation-invariant cosines between genes.
  options.dims = 12;
  const LsaResult low = embed_genes_lsa(texts, nullptr, options);
  const auto cosine = [](const GeneStore& store, std::int64_t a, std::int64_t b) {
    double dot = 0;
    for (int j = 0; j < store.dims(); ++j) dot += static_cast<double>(store.row(a)[j]) * store.row(b)[j];
    return dot;
  };
  double worst = 0;
  for (std::int64_t a = 0; a < 60; ++a) {
    for (std::int64_t b = a + 1; b < 60; ++b) worst = std::max(worst, std::abs(cosine(low.store, a, b) - cosine(prefix, a, b)));
  }
  EXPECT_LT(worst, 0.01);
}

TEST(Lsa, GenesWithoutTextOrTermsAreListed) {
  GeneTexts texts = synthetic_texts(100);
  texts.texts[3].clear();
  texts.texts[5] = "zzzonlyhere";  // a term in one text only: below min_df = 2
  texts.recipe_hash = gene_text_recipe_hash(texts.entrez_ids, texts.texts);
  LsaOptions options;
  options.dims = 8;
  const LsaResult result = embed_genes_lsa(texts, nullptr, options);
  EXPECT_EQ(result.empty_text, (std::vector<std::int64_t>{4}));
  EXPECT_EQ(result.no_terms, (std::vector<std::int64_t>{6}));
  EXPECT_EQ(result.store.n_genes(), 98);
  EXPECT_EQ(result.store.find_entrez(4), -1);
  EXPECT_EQ(result.store.provenance().extra["counts"]["n_no_terms"], 1);

  options.dims = 0;
  EXPECT_THROW(embed_genes_lsa(texts, nullptr, options), InputError);
  options.dims = 1025;
  EXPECT_THROW(embed_genes_lsa(texts, nullptr, options), InputError);
  GeneTexts empty = texts;
  for (auto& text : empty.texts) text.clear();
  options.dims = 4;
  EXPECT_THROW(embed_genes_lsa(empty, nullptr, options), InputError);
  GeneTexts unique = synthetic_texts(3);
  for (std::size_t i = 0; i < unique.size(); ++i) unique.texts[i] = fmt::format("only{}", i);
  EXPECT_THROW(embed_genes_lsa(unique, nullptr, options), InputError);  // no term in 2 texts
}

}  // namespace
}  // namespace celltyper
