// LSA, part 3: gene texts -> TF-IDF -> randomised SVD -> gene store.
#include <celltyper/error.hpp>
#include <celltyper/gene_embedding.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/parallel.hpp>

#include "genes/text_store_parts.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

#ifndef CELLTYPER_VERSION
#define CELLTYPER_VERSION "unknown"
#endif

namespace celltyper {

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

LsaResult embed_genes_lsa(const GeneTexts& texts, const GeneTable* table, const LsaOptions& options) {
  if (options.dims < 1 || options.dims > kMaxLsaDims) {
    throw InputError(fmt::format("LSA: dims must be in 1..{}, got {}", kMaxLsaDims, options.dims));
  }
  if (texts.entrez_ids.size() != texts.texts.size() || texts.symbols.size() != texts.texts.size()) {
    throw InputError("LSA: gene texts have inconsistent lengths");
  }
  const auto progress = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };
  LsaResult result;
  std::vector<std::size_t> documents_of;  // document -> position in `texts`
  std::vector<std::string> documents;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (texts.texts[i].empty()) {
      result.empty_text.push_back(texts.entrez_ids[i]);
    } else {
      documents_of.push_back(i);
      documents.push_back(texts.texts[i]);
    }
  }
  if (documents.empty()) throw InputError("LSA: every gene text is empty");

  const auto start = std::chrono::steady_clock::now();
  TfidfOptions tfidf_options = options.tfidf;
  tfidf_options.num_threads = options.num_threads;
  TfidfMatrix weights = tfidf(documents, tfidf_options);
  documents = {};
  result.n_terms = weights.matrix.n_cols;
  result.nnz = weights.matrix.nnz();
  result.seconds_tfidf = seconds_since(start);
  progress(fmt::format("TF-IDF: {} texts, {} terms (min document frequency {}), {} non-zeros ({:.1f} s)",
                       weights.matrix.n_rows, result.n_terms, tfidf_options.min_document_frequency, result.nnz,
                       result.seconds_tfidf));
  if (result.nnz == 0) {
    throw InputError(fmt::format("LSA: no gene text has a term found in at least {} texts (of {})",
                                 tfidf_options.min_document_frequency, weights.matrix.n_rows));
  }
  const std::int64_t max_rank = std::min(weights.matrix.n_rows, weights.matrix.n_cols);
  if (options.dims > max_rank) {
    throw InputError(fmt::format("LSA: dims {} exceeds what {} texts with {} terms allow (at most {})", options.dims,
                                 weights.matrix.n_rows, weights.matrix.n_cols, max_rank));
  }

  const auto svd_start = std::chrono::steady_clock::now();
  RandomizedSvdOptions svd_options;
  svd_options.rank = options.dims;
  svd_options.oversampling = options.oversampling;
  svd_options.power_iterations = options.power_iterations;
  svd_options.seed = options.seed;
  svd_options.num_threads = options.num_threads;
  progress(fmt::format("randomised SVD: rank {}, oversampling {}, {} power iterations, seed {}, {} threads", options.dims,
                       options.oversampling, options.power_iterations, options.seed, resolve_threads(options.num_threads)));
  RandomizedSvdResult svd = randomized_svd(weights.matrix, svd_options);
  result.seconds_svd = seconds_since(svd_start);
  result.singular_values = svd.singular_values;
  progress(fmt::format("randomised SVD done ({:.1f} s); singular values {:.4g} .. {:.4g}", result.seconds_svd,
                       svd.singular_values.front(), svd.singular_values.back()));

  // Rows of U S: a document with no term (or a zero projection) has no direction.
  const int k = options.dims;
  double largest_norm = 0;
  std::vector<double> norms(documents_of.size());
  for (std::size_t d = 0; d < documents_of.size(); ++d) {
    double sum = 0;
    const double* row = svd.left_scaled.data() + d * static_cast<std::size_t>(k);
    for (int j = 0; j < k; ++j) sum += row[j] * row[j];
    norms[d] = std::sqrt(sum);
    largest_norm = std::max(largest_norm, norms[d]);
  }
  std::vector<std::int64_t> ids;
  std::vector<std::string> symbols;
  std::vector<std::string> ensembl;
  std::vector<float> matrix;
  matrix.reserve(documents_of.size() * static_cast<std::size_t>(k));
  for (std::size_t d = 0; d < documents_of.size(); ++d) {
    const std::size_t position = documents_of[d];
    const std::int64_t entrez_id = texts.entrez_ids[position];
    if (!(norms[d] > 1e-9 * largest_norm)) {
      result.no_terms.push_back(entrez_id);
      continue;
    }
    ids.push_back(entrez_id);
    symbols.push_back(texts.symbols[position]);
    ensembl.push_back(detail::first_ensembl_id(table, entrez_id));
    const double scale = 1.0 / norms[d];
    const double* row = svd.left_scaled.data() + d * static_cast<std::size_t>(k);
    for (int j = 0; j < k; ++j) matrix.push_back(static_cast<float>(row[j] * scale));
  }
  svd.left_scaled = {};

  GeneStoreProvenance provenance = detail::text_store_provenance("lsa", "tfidf-lsa", k, texts, table);
  const TokenizerOptions& tokenizer = tfidf_options.tokenizer;
  provenance.extra["lsa"] = {
      {"method", "TF-IDF (sublinear tf, smoothed idf, L2 rows) + randomised SVD (Halko et al. 2011); rows of U*S, L2-normalised"},
      {"tokenizer", {{"remove_stop_words", tokenizer.remove_stop_words},
                     {"split_hyphenated", tokenizer.split_hyphenated},
                     {"max_token_length", tokenizer.max_token_length},
                     {"n_stop_words", gene_text_stop_words().size()}}},
      {"min_document_frequency", tfidf_options.min_document_frequency},
      {"max_document_fraction", tfidf_options.max_document_fraction},
      {"sublinear_tf", tfidf_options.sublinear_tf},
      {"smooth_idf", tfidf_options.smooth_idf},
      {"oversampling", options.oversampling},
      {"power_iterations", options.power_iterations},
      {"seed", options.seed},
      {"n_texts", weights.matrix.n_rows},
      {"n_terms", result.n_terms},
      {"nnz", result.nnz},
      {"singular_values", result.singular_values}};
  provenance.extra["counts"] = {{"n_genes_in_texts", texts.size()},
                                {"n_embedded", ids.size()},
                                {"n_empty_text", result.empty_text.size()},
                                {"n_no_terms", result.no_terms.size()}};
  result.store = GeneStore(std::move(ids), std::move(symbols), std::move(ensembl), std::move(matrix), k, std::move(provenance));
  return result;
}

}  // namespace celltyper
