/// Gene stores from the USE-lite encoder (see use_lite.hpp), resumable through a checkpoint file.
///
/// Checkpoint layout: one JSON header line {"format": "celltyper-use-lite-checkpoint/1",
/// "package": <UseLiteEncoder::package_hash>, "dims": 512, "window": 128}, then fixed-size
/// records appended as genes finish: int64 Entrez id, uint64 FNV-1a 64 of the gene's text,
/// 512 float32 (little-endian, the machine's order). A record cut short by a kill is dropped (the
/// file is cut back to whole records before appending); a header of another package or format
/// starts the file afresh.
#include <celltyper/cancel.hpp>
#include <celltyper/error.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/parallel.hpp>
#include <celltyper/use_lite.hpp>

#include "genes/text_store_parts.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <unordered_map>

namespace celltyper {

namespace {

constexpr const char* kCheckpointFormat = "celltyper-use-lite-checkpoint/1";
constexpr std::size_t kRecordBytes = sizeof(std::int64_t) + sizeof(std::uint64_t) + kUseLiteDims * sizeof(float);

std::uint64_t text_hash(std::string_view text) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return hash;
}

struct Saved {
  std::uint64_t hash;
  std::vector<float> vector;
};

/// The appending side of the checkpoint (see the file comment).
class Checkpoint {
 public:
  Checkpoint(const std::string& path, const std::string& package_hash) : path_(path) {
    if (path.empty()) return;
    const std::string header = nlohmann::json{{"format", kCheckpointFormat}, {"package", package_hash}, {"dims", kUseLiteDims},
                                              {"window", kUseLiteMaxTokens}}
                                   .dump() +
                               "\n";
    std::size_t keep = 0;  // bytes of the existing file to keep
    if (std::ifstream in(path, std::ios::binary); in) {
      std::string first;
      std::getline(in, first);
      if (first + "\n" == header) {
        std::vector<char> record(kRecordBytes);
        keep = header.size();
        while (in.read(record.data(), static_cast<std::streamsize>(kRecordBytes))) {
          std::int64_t id = 0;
          Saved saved{0, std::vector<float>(kUseLiteDims)};
          std::memcpy(&id, record.data(), sizeof id);
          std::memcpy(&saved.hash, record.data() + sizeof id, sizeof saved.hash);
          std::memcpy(saved.vector.data(), record.data() + sizeof id + sizeof saved.hash, kUseLiteDims * sizeof(float));
          saved_[id] = std::move(saved);
          keep += kRecordBytes;
        }
      }
    }
    std::error_code error;
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, error);
    if (keep == 0) {
      file_ = std::fopen(path.c_str(), "wb");
      if (file_ == nullptr) throw IoError(fmt::format("cannot write the checkpoint {}", path));
      write(header.data(), header.size());
    } else {
      std::filesystem::resize_file(path, keep, error);  // drop a record cut short
      if (error) throw IoError(fmt::format("cannot cut the checkpoint {} back to whole records: {}", path, error.message()));
      file_ = std::fopen(path.c_str(), "ab");
      if (file_ == nullptr) throw IoError(fmt::format("cannot append to the checkpoint {}", path));
    }
  }
  ~Checkpoint() {
    if (file_ != nullptr) std::fclose(file_);
  }
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  /// The saved vector of gene `id` when its text hash is `hash`.
  [[nodiscard]] const std::vector<float>* find(std::int64_t id, std::uint64_t hash) const {
    const auto it = saved_.find(id);
    return it != saved_.end() && it->second.hash == hash ? &it->second.vector : nullptr;
  }

  /// Append one record (thread-safe); flushed at most every second.
  void append(std::int64_t id, std::uint64_t hash, const float* vector) {
    if (file_ == nullptr) return;
    std::vector<char> record(kRecordBytes);
    std::memcpy(record.data(), &id, sizeof id);
    std::memcpy(record.data() + sizeof id, &hash, sizeof hash);
    std::memcpy(record.data() + sizeof id + sizeof hash, vector, kUseLiteDims * sizeof(float));
    std::lock_guard lock(mutex_);
    write(record.data(), record.size());
    const auto now = std::chrono::steady_clock::now();
    if (now - last_flush_ > std::chrono::seconds(1)) {
      std::fflush(file_);
      last_flush_ = now;
    }
  }

  void flush() {
    if (file_ != nullptr) std::fflush(file_);
  }

 private:
  void write(const char* data, std::size_t size) {
    if (std::fwrite(data, 1, size, file_) != size) throw IoError(fmt::format("cannot write the checkpoint {}", path_));
  }
  std::string path_;
  std::FILE* file_ = nullptr;
  std::unordered_map<std::int64_t, Saved> saved_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point last_flush_ = std::chrono::steady_clock::now();
};

}  // namespace

UseLiteGeneResult embed_genes_use_lite(const GeneTexts& texts, const GeneTable* table, const UseLiteEncoder& encoder,
                                       const UseLiteGeneOptions& options) {
  UseLiteGeneResult result;
  Checkpoint checkpoint(options.checkpoint_path, encoder.package_hash());
  const std::size_t n = texts.size();
  std::vector<float> matrix(n * kUseLiteDims, 0.0F);
  std::vector<char> has_vector(n, 0);
  std::vector<std::size_t> todo;
  for (std::size_t i = 0; i < n; ++i) {
    if (texts.texts[i].empty()) continue;
    if (const std::vector<float>* saved = checkpoint.find(texts.entrez_ids[i], text_hash(texts.texts[i]))) {
      std::copy(saved->begin(), saved->end(), matrix.begin() + static_cast<std::ptrdiff_t>(i * kUseLiteDims));
      has_vector[i] = 1;
      ++result.n_from_checkpoint;
    } else {
      todo.push_back(i);
    }
  }
  // Token ids of every gene to embed (in parallel: the tokeniser is a fair share of short texts' cost).
  std::vector<std::vector<std::int32_t>> ids_of(todo.size());
  parallel_for(static_cast<std::int64_t>(todo.size()), options.num_threads,
               [&](std::int64_t k) { ids_of[static_cast<std::size_t>(k)] = encoder.tokenizer().encode(texts.texts[todo[static_cast<std::size_t>(k)]]); });
  // Batches of whole genes, ~512 tokens each (a longer gene alone), longest genes first so that
  // the threads finish together. A batch is one unit of work: its genes reach the checkpoint together.
  std::vector<std::size_t> order(todo.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return ids_of[a].size() > ids_of[b].size(); });
  constexpr std::size_t kBatchTokens = 512;
  std::vector<std::vector<std::size_t>> batches;
  std::size_t batch_tokens = 0;
  for (const std::size_t k : order) {
    if (ids_of[k].empty()) continue;  // no token: no vector
    if (batches.empty() || batch_tokens + ids_of[k].size() > kBatchTokens) {
      batches.emplace_back();
      batch_tokens = 0;
    }
    batches.back().push_back(k);
    batch_tokens += ids_of[k].size();
  }

  const std::size_t reused = result.n_from_checkpoint;
  std::size_t total = reused;
  for (const auto& batch : batches) total += batch.size();
  if (options.progress) options.progress(reused, total);
  std::atomic<std::size_t> done{0};
  // Workers run in chunks of batches so that the calling thread reports progress and checks for a cancel.
  const std::size_t chunk = std::max<std::size_t>(16, batches.size() / 100);
  for (std::size_t begin = 0; begin < batches.size(); begin += chunk) {
    check_cancelled();
    const std::size_t end = std::min(batches.size(), begin + chunk);
    parallel_for(static_cast<std::int64_t>(end - begin), options.num_threads, [&](std::int64_t item) {
      const std::vector<std::size_t>& batch = batches[begin + static_cast<std::size_t>(item)];
      std::vector<std::span<const std::int32_t>> batch_ids;
      for (const std::size_t k : batch) batch_ids.emplace_back(ids_of[k]);
      const std::vector<std::vector<float>> vectors = encoder.encode_batch(batch_ids);
      for (std::size_t j = 0; j < batch.size(); ++j) {
        const std::size_t i = todo[batch[j]];
        float* row = matrix.data() + i * kUseLiteDims;
        std::copy(vectors[j].begin(), vectors[j].end(), row);
        has_vector[i] = 1;
        checkpoint.append(texts.entrez_ids[i], text_hash(texts.texts[i]), row);
      }
      done.fetch_add(batch.size(), std::memory_order_relaxed);
    });
    if (options.progress) options.progress(reused + done.load(), total);
  }
  for (const auto& ids : ids_of) {
    result.n_tokens += ids.size();
    result.n_windows += (ids.size() + kUseLiteMaxTokens - 1) / kUseLiteMaxTokens;
  }
  checkpoint.flush();

  std::vector<std::int64_t> ids;
  std::vector<std::string> symbols;
  std::vector<std::string> ensembl;
  std::vector<float> kept;
  kept.reserve(matrix.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (!has_vector[i]) {
      result.empty_text.push_back(texts.entrez_ids[i]);
      continue;
    }
    ids.push_back(texts.entrez_ids[i]);
    symbols.push_back(texts.symbols[i]);
    ensembl.push_back(detail::first_ensembl_id(table, texts.entrez_ids[i]));
    kept.insert(kept.end(), matrix.begin() + static_cast<std::ptrdiff_t>(i * kUseLiteDims),
                matrix.begin() + static_cast<std::ptrdiff_t>((i + 1) * kUseLiteDims));
  }
  if (ids.empty()) throw InputError("no gene has a text with a token, so there is nothing to store");

  GeneStoreProvenance provenance = detail::text_store_provenance("use-lite", kUseLiteModelName, kUseLiteDims, texts, table);
  provenance.extra["use_lite"] = {{"package", kUseLitePackage},
                                  {"package_hash", encoder.package_hash()},
                                  {"window_tokens", kUseLiteMaxTokens},
                                  {"long_texts", "token-weighted mean of consecutive windows, L2-normalised"}};
  provenance.extra["counts"] = {{"n_genes_in_texts", texts.size()}, {"n_embedded", ids.size()}, {"n_no_vector", result.empty_text.size()}};
  result.store = GeneStore(std::move(ids), std::move(symbols), std::move(ensembl), std::move(kept), kUseLiteDims, std::move(provenance));
  return result;
}

}  // namespace celltyper
