/// @file gene_embedding.hpp
/// Gene embeddings made offline: latent semantic analysis (LSA) of the gene texts, and import of
/// vectors computed elsewhere. Both produce a `GeneStore` (see gene_store.hpp for layout).
///
/// **LSA** (Deerwester S. et al., "Indexing by latent semantic analysis", JASIS 41(6), 1990):
///  1. tokenise each gene text (`tokenize`: biomedical-friendly, see below);
///  2. TF-IDF (`tfidf`): documents x terms, sublinear term frequency 1 + ln(tf), smoothed inverse
///     document frequency ln((1 + n) / (1 + df)) + 1, each document row L2-normalised — the
///     definitions of scikit-learn's `TfidfVectorizer(sublinear_tf=True)`;
///  3. truncated SVD by randomised subspace iteration (`randomized_svd`; Halko N., Martinsson
///     P.-G., Tropp J. A., "Finding structure with randomness", SIAM Review 53(2), 2011,
///     Algorithms 4.4 and 5.1): Gaussian test matrix from a fixed seed, oversampling p, q power
///     iterations with re-orthonormalisation by Cholesky QR (Fukaya T. et al., "Shifted
///     Cholesky QR for computing the QR factorization of ill-conditioned matrices", SIAM J. Sci.
///     Comput. 42(1), 2020; Householder QR when that fails);
///  4. gene vector = row of U*S (the document's coordinates), components ordered by singular
///     value, each row L2-normalised. A prefix of k columns is the rank-k LSA.
///
/// Determinism: for a fixed seed, results are bit-identical at any thread count. Every parallel
/// loop writes disjoint outputs; the only reductions (Gram matrices) sum a fixed number of
/// fixed row chunks in a fixed order.
///
/// **Tokeniser** (`tokenize`), in order:
///  - ASCII letters are lower-cased; Greek letters (U+0391..U+03C9, e.g. "α", "Β") become their
///    names ("alpha", "beta"), so "TNF-α" reads as "tnf-alpha"; the micro sign is "mu"; Latin-1
///    letters lose their accents ("Sjögren" -> "sjogren", "ß" -> "ss"); any other non-ASCII
///    character (dashes, symbols, other scripts) separates;
///  - a raw token is a maximal run of letters and digits joined by single internal hyphens
///    ("IL-2", "T-cell", "CD3E", "HLA-DRB1"); any other character separates ("(IL2)," -> "il2");
///  - a hyphenated token emits its hyphen-free form ("il-2" -> "il2", so "IL-2" and "IL2" match)
///    and then each of its parts that is neither a stop word nor a bare number ("il"; "t",
///    "cell"); numbers joined by hyphens ("10-20") are a range and emit just the numbers;
///  - tokens that are stop words (`gene_text_stop_words`) or longer than `max_token_length`
///    characters are dropped.
#pragma once

#include <celltyper/gene_store.hpp>
#include <celltyper/gene_text.hpp>
#include <celltyper/sparse.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace celltyper {

// ---- tokeniser -------------------------------------------------------------------------------

/// Options of `tokenize`.
struct TokenizerOptions {
  bool remove_stop_words = true;      ///< drop `gene_text_stop_words()`
  bool split_hyphenated = true;       ///< also emit the parts of hyphenated tokens
  std::size_t max_token_length = 40;  ///< longer tokens are dropped (sequences, identifiers)
};

/// The stop-word list, sorted: (a) common English function words (articles, pronouns,
/// prepositions, conjunctions, auxiliaries: "the", "of", "is", "which", ...); (b) filler common
/// to gene summaries that says nothing about a gene: "protein", "proteins", "gene", "genes",
/// "encode", "encodes", "encoded", "encoding", "product", "member", "family", "belongs",
/// "involved", "play", "plays", "role", "may", "also", "known", "several", "various",
/// "transcript", "variant", "variants", "isoform", "isoforms", "alternatively", "spliced",
/// "multiple", "result", "results", "found", "identified", "described", "studies", ...;
/// (c) the section labels of gene texts: "summary", "type", "biological", "process",
/// "molecular", "function", "cellular", "component", "enrichment", and "activity" (the suffix of
/// every GO molecular-function name). Single letters other than "a" and "i" are kept ("t cell",
/// "b cell").
const std::vector<std::string_view>& gene_text_stop_words();

/// Whether `token` (lower case) is a stop word.
bool is_gene_text_stop_word(std::string_view token);

/// Tokens of `text` in order of appearance (see the file comment for the rules).
std::vector<std::string> tokenize(std::string_view text, const TokenizerOptions& options = {});

// ---- TF-IDF ----------------------------------------------------------------------------------

/// Options of `tfidf`.
struct TfidfOptions {
  TokenizerOptions tokenizer;             ///< how documents are split into terms
  std::int64_t min_document_frequency = 2;  ///< keep terms in at least this many documents
  double max_document_fraction = 1.0;     ///< keep terms in at most this fraction of documents
  bool sublinear_tf = true;               ///< tf -> 1 + ln(tf)
  bool smooth_idf = true;                 ///< idf = ln((1+n)/(1+df)) + 1; else ln(n/df) + 1
  bool normalize = true;                  ///< L2-normalise each document row
  int num_threads = 0;                    ///< 0 = all hardware threads
};

/// A TF-IDF matrix: documents x terms.
struct TfidfMatrix {
  CsrBlockF64 matrix;                       ///< [n_documents x n_terms], CSR, indices sorted per row
  std::vector<std::string> vocabulary;      ///< per term (column), sorted alphabetically
  std::vector<std::int64_t> document_frequency;  ///< per term
  std::vector<double> idf;                  ///< per term
};

/// TF-IDF of `documents` (see the file comment). A document with no kept term is an all-zero row.
TfidfMatrix tfidf(const std::vector<std::string>& documents, const TfidfOptions& options = {});

// ---- randomised SVD --------------------------------------------------------------------------

/// Options of `randomized_svd`.
struct RandomizedSvdOptions {
  int rank = 256;              ///< k: singular triplets wanted (1 <= k <= min(rows, cols))
  int oversampling = 10;       ///< p: extra sketch columns (sketch width l = k + p, capped at min(rows, cols))
  int power_iterations = 4;    ///< q: subspace iterations (each multiplies by A and by A^T)
  std::uint64_t seed = 42;     ///< seed of the Gaussian test matrix
  bool compute_right = false;  ///< also return V
  int num_threads = 0;         ///< 0 = all hardware threads
};

/// Truncated SVD A ~ U diag(s) V^T.
struct RandomizedSvdResult {
  int rank = 0;                          ///< k
  std::vector<double> singular_values;   ///< s, descending, k values
  std::vector<double> left_scaled;       ///< U diag(s): [rows x k] row-major
  std::vector<double> right;             ///< V: [cols x k] row-major (when compute_right)
};

/// Rank-k SVD of the sparse matrix `a` by randomised subspace iteration (Halko et al. 2011).
/// The subspace is sought on the smaller side of `a`. Signs are canonical: in each column of
/// U diag(s), the entry of largest magnitude (first such) is positive. Throws InputError on bad
/// options or an empty matrix.
RandomizedSvdResult randomized_svd(const CsrBlockF64& a, const RandomizedSvdOptions& options);

// ---- LSA gene embeddings -----------------------------------------------------------------------

/// Options of `embed_genes_lsa`.
struct LsaOptions {
  int dims = 256;                     ///< embedding dimensions, 1..kMaxLsaDims
  TfidfOptions tfidf;                 ///< tokeniser and weighting
  int oversampling = 10;              ///< randomised SVD oversampling p
  /// Randomised SVD power iterations q. 2: on the 77,614 human gene texts, q = 4 or 6 give the
  /// same neighbour quality at every d (bench/results/genes.md) for twice the time.
  int power_iterations = 2;
  std::uint64_t seed = 42;            ///< Gaussian test matrix seed
  int num_threads = 0;                ///< 0 = all hardware threads (also used for TF-IDF)
  std::function<void(const std::string&)> progress;  ///< optional progress lines (no newline)
};

/// Largest `LsaOptions::dims`.
inline constexpr int kMaxLsaDims = 1024;

/// Outcome of `embed_genes_lsa`.
struct LsaResult {
  GeneStore store;                              ///< one unit vector per embedded gene
  std::vector<std::int64_t> empty_text;         ///< Entrez ids of genes with an empty text (no vector)
  std::vector<std::int64_t> no_terms;           ///< Entrez ids whose text has no vocabulary term or a zero projection
  std::vector<double> singular_values;          ///< dims values, descending
  std::int64_t n_terms = 0;                     ///< vocabulary size
  std::int64_t nnz = 0;                         ///< non-zeros of the TF-IDF matrix
  double seconds_tfidf = 0;                     ///< wall time of tokenising + TF-IDF
  double seconds_svd = 0;                       ///< wall time of the SVD
};

/// LSA embedding of `texts` (see the file comment). `table`, when given, supplies Ensembl ids,
/// the gene-table hash and species for the store. Throws InputError on bad options or when no
/// text has a vocabulary term.
LsaResult embed_genes_lsa(const GeneTexts& texts, const GeneTable* table, const LsaOptions& options = {});

// ---- import --------------------------------------------------------------------------------

/// Options of `import_gene_embeddings`.
struct GeneImportOptions {
  /// "tsv", "csv", "npy", "h5" or "" = from the extension (.tsv/.txt/.tab, .csv, .npy, .h5/.hdf5;
  /// .gz text is not supported).
  std::string format;
  /// For .npy: the gene ids of the matrix rows, one per line (a first line "entrez_id", "symbol",
  /// "gene", "gene_id" or "id" is a header; with tabs, the first column is used).
  std::string gene_list;
  /// For generic HDF5: the 2-D float dataset ("" = the first of "embeddings", "matrix", "X") and
  /// the 1-D id dataset ("" = the first of "genes/entrez_id", "genes/symbol", "gene_ids", "genes", "ids").
  std::string h5_matrix;
  std::string h5_ids;
  /// When false, any id that does not resolve to a gene of the table is an InputError, and so is
  /// a row whose gene an earlier row already gave (else the first row is kept).
  bool allow_unresolved = true;
  std::string model;  ///< recorded as provenance model ("" = the file name)
};

/// Outcome of `import_gene_embeddings`.
struct GeneImportResult {
  GeneStore store;                              ///< the resolved genes, rows normalised
  std::int64_t n_rows = 0;                      ///< rows in the input
  std::int64_t n_unresolved = 0;                ///< rows whose id matched no gene (skipped)
  std::vector<std::string> unresolved_examples; ///< up to 10
  std::int64_t n_duplicates = 0;                ///< rows whose gene an earlier row already had (skipped)
  std::vector<std::string> duplicate_examples;  ///< up to 10
  std::int64_t n_zero_rows = 0;                 ///< all-zero rows (skipped: no direction)
  /// Every row left out: its id as given, the gene's symbol (or "" when unresolved) and why
  /// ("not_in_gene_table", "duplicate", "all_zero").
  std::vector<std::array<std::string, 3>> skipped;
};

/// Import gene vectors computed elsewhere: a TSV/CSV (gene id, then one number per dimension;
/// an optional header line is recognised by a non-numeric second field), a `.npy` float32 or
/// float64 C-order 2-D array plus `options.gene_list`, or an HDF5 file (a celltyper gene store,
/// or the datasets named in options). Ids may be Entrez ids, Ensembl ids, symbols or aliases
/// carried by one gene, resolved through `table`. Rows are L2-normalised. Throws InputError
/// naming file and line/row for malformed input, non-finite values, ragged rows, and when no id
/// resolves; IoError when unreadable.
GeneImportResult import_gene_embeddings(const std::string& path, const GeneTable& table,
                                        const GeneImportOptions& options = {});

}  // namespace celltyper
