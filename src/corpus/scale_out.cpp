// catalog / embed / extract over a process group: contiguous shares, gathered at the root in rank order.
#include <celltyper/error.hpp>
#include <celltyper/matrix_summary.hpp>
#include <celltyper/scale_out.hpp>
#include "text_lists.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace celltyper {

namespace {

/// Keeps one process's embeddings and per-cell statistics, and ships them as bytes.
class CollectingSink final : public EmbeddingSink {
 public:
  void begin(std::int64_t n_cells, int n_dims) override {
    dims = n_dims;
    values.reserve(static_cast<std::size_t>(n_cells) * static_cast<std::size_t>(n_dims));
  }
  void write(std::int64_t, std::int64_t n_rows, const float* block, const CellEmbedStats& stats) override {
    values.insert(values.end(), block, block + n_rows * dims);
    empty.insert(empty.end(), stats.empty.begin(), stats.empty.end());
    total.insert(total.end(), stats.total.begin(), stats.total.end());
    covered.insert(covered.end(), stats.covered_fraction.begin(), stats.covered_fraction.end());
  }
  void finish(const nlohmann::json&) override {}

  [[nodiscard]] std::string serialize() const {
    const std::uint64_t header[2] = {static_cast<std::uint64_t>(dims), static_cast<std::uint64_t>(empty.size())};
    std::string bytes(sizeof header + values.size() * sizeof(float) + empty.size() + 2 * empty.size() * sizeof(double), '\0');
    char* out = bytes.data();
    auto put = [&out](const void* data, std::size_t size) {
      if (size > 0) std::memcpy(out, data, size);
      out += size;
    };
    put(header, sizeof header);
    put(values.data(), values.size() * sizeof(float));
    put(empty.data(), empty.size());
    put(total.data(), total.size() * sizeof(double));
    put(covered.data(), covered.size() * sizeof(double));
    return bytes;
  }
  void deserialize(const std::string& bytes) {
    std::uint64_t header[2];
    if (bytes.size() < sizeof header) throw std::runtime_error("embed: truncated message");
    std::memcpy(header, bytes.data(), sizeof header);
    dims = static_cast<int>(header[0]);
    const auto n = static_cast<std::size_t>(header[1]);
    if (bytes.size() != sizeof header + n * static_cast<std::size_t>(dims) * sizeof(float) + n + 2 * n * sizeof(double)) {
      throw std::runtime_error("embed: message size mismatch");
    }
    const char* in = bytes.data() + sizeof header;
    auto get = [&in](void* data, std::size_t size) {
      if (size > 0) std::memcpy(data, in, size);
      in += size;
    };
    values.resize(n * static_cast<std::size_t>(dims));
    empty.resize(n);
    total.resize(n);
    covered.resize(n);
    get(values.data(), values.size() * sizeof(float));
    get(empty.data(), n);
    get(total.data(), n * sizeof(double));
    get(covered.data(), n * sizeof(double));
  }
  /// Hand rows to `sink` starting at output row `first`.
  void write_to(EmbeddingSink& sink, std::int64_t first) const {
    CellEmbedStats stats;
    stats.empty = empty;
    stats.total = total;
    stats.covered_fraction = covered;
    if (!empty.empty()) sink.write(first, static_cast<std::int64_t>(empty.size()), values.data(), stats);
  }

  int dims = 0;
  std::vector<float> values;
  std::vector<std::uint8_t> empty;
  std::vector<double> total;
  std::vector<double> covered;
};

constexpr const char* kEmptyWarning = "cells have no expressed gene with a vector";

nlohmann::json outcome_to_json(std::size_t index, const CatalogFileOutcome& outcome) {
  return {{"index", index},
          {"ok", outcome.ok},
          {"resumed", outcome.resumed},
          {"read_again", outcome.read_again},
          {"error", outcome.error},
          {"error_code", outcome.error_code},
          {"n_obs", outcome.n_obs},
          {"file_bytes", outcome.file_bytes},
          {"requests", outcome.remote.requests},
          {"retries", outcome.remote.retries},
          {"bytes_fetched", outcome.remote.bytes_fetched},
          {"cache_hits", outcome.remote.cache_hits},
          {"seconds", outcome.seconds}};
}

/// Catalogue work per file: local files by size, URLs by the median local size (or 1).
std::vector<std::int64_t> catalog_weights(const std::vector<std::string>& paths) {
  std::vector<std::int64_t> weights(paths.size(), -1);
  std::vector<std::int64_t> local;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (is_remote_path(paths[i])) continue;
    std::error_code error;
    const auto size = std::filesystem::file_size(paths[i], error);
    weights[i] = error ? 1 : static_cast<std::int64_t>(size / 1024 + 1);
    local.push_back(weights[i]);
  }
  std::int64_t median = 1;
  if (!local.empty()) {
    std::nth_element(local.begin(), local.begin() + static_cast<std::ptrdiff_t>(local.size() / 2), local.end());
    median = local[local.size() / 2];
  }
  for (auto& weight : weights) {
    if (weight < 0) weight = median;
  }
  return weights;
}

}  // namespace

CatalogResult build_catalog_distributed(const std::vector<std::string>& paths, const std::string& out_dir, const CatalogOptions& options,
                                        Communicator& communicator) {
  if (!communicator.distributed()) return build_catalog(paths, out_dir, options);
  const auto started = std::chrono::steady_clock::now();
  const std::vector<std::size_t> bounds = contiguous_shares(catalog_weights(paths), communicator.size());
  const auto rank = static_cast<std::size_t>(communicator.rank());
  const std::vector<std::string> share(paths.begin() + static_cast<std::ptrdiff_t>(bounds[rank]),
                                       paths.begin() + static_cast<std::ptrdiff_t>(bounds[rank + 1]));
  CatalogResult mine = build_catalog(share, out_dir, options);
  nlohmann::json outcomes = nlohmann::json::array();
  for (std::size_t i = 0; i < mine.files.size(); ++i) outcomes.push_back(outcome_to_json(bounds[rank] + i, mine.files[i]));
  const std::vector<std::string> parts = gather_to_root(communicator, outcomes.dump());
  if (!communicator.is_root()) return mine;

  CatalogResult result;
  result.files.resize(paths.size());
  std::vector<bool> seen(paths.size(), false);
  for (const auto& part : parts) {
    for (const auto& item : nlohmann::json::parse(part)) {
      const auto index = item.at("index").get<std::size_t>();
      if (index >= paths.size() || seen[index]) throw std::runtime_error(fmt::format("catalog: bad file index {} gathered", index));
      seen[index] = true;
      CatalogFileOutcome& outcome = result.files[index];
      outcome.path = paths[index];
      outcome.ok = item.at("ok").get<bool>();
      outcome.resumed = item.at("resumed").get<bool>();
      outcome.read_again = item.value("read_again", false);
      outcome.error = item.at("error").get<std::string>();
      outcome.error_code = item.value("error_code", 0);
      outcome.n_obs = item.at("n_obs").get<std::int64_t>();
      outcome.file_bytes = item.at("file_bytes").get<std::uint64_t>();
      outcome.remote.requests = item.at("requests").get<std::int64_t>();
      outcome.remote.retries = item.at("retries").get<std::int64_t>();
      outcome.remote.bytes_fetched = item.at("bytes_fetched").get<std::int64_t>();
      outcome.remote.cache_hits = item.at("cache_hits").get<std::int64_t>();
      outcome.seconds = item.at("seconds").get<double>();
    }
  }
  if (std::count(seen.begin(), seen.end(), true) != static_cast<std::ptrdiff_t>(paths.size())) {
    throw std::runtime_error("catalog: some files' outcomes were not gathered");
  }
  result.tally();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

EmbedResult embed_dataset_distributed(const Dataset& dataset, const GeneTable& table, const GeneVectorSource& source,
                                      const EmbedOptions& options, EmbeddingSink* sink, Communicator& communicator) {
  const auto started = std::chrono::steady_clock::now();
  const int size = communicator.size();
  const int rank = communicator.rank();
  const std::int64_t n = dataset.n_obs();
  if (!communicator.distributed() || n < size || !options.rows.empty()) {
    // One process does everything (also when there are fewer cells than processes).
    EmbedResult result;
    if (communicator.is_root()) result = embed_dataset(dataset, table, source, options, *sink);
    return result;
  }
  EmbedOptions mine = options;
  mine.rows = {{n * rank / size, n * (rank + 1) / size}};
  CollectingSink part;
  EmbedResult result = embed_dataset(dataset, table, source, mine, part);
  if (!communicator.is_root()) {
    communicator.send(part.serialize(), 0);
    return result;
  }
  // Root: its own rows, then each process's rows in rank order.
  sink->begin(n, result.dims);
  std::vector<double> coverage = part.covered;
  std::int64_t n_empty = std::count(part.empty.begin(), part.empty.end(), std::uint8_t{1});
  part.write_to(*sink, 0);
  std::int64_t written = static_cast<std::int64_t>(part.empty.size());
  for (int other = 1; other < size; ++other) {
    CollectingSink received;
    received.deserialize(communicator.receive(other));
    if (received.dims != result.dims) throw std::runtime_error(fmt::format("embed: rank {} sent {} dims, expected {}", other, received.dims, result.dims));
    coverage.insert(coverage.end(), received.covered.begin(), received.covered.end());
    n_empty += std::count(received.empty.begin(), received.empty.end(), std::uint8_t{1});
    received.write_to(*sink, written);
    written += static_cast<std::int64_t>(received.empty.size());
  }
  if (written != n) throw std::runtime_error(fmt::format("embed: gathered {} of {} rows", written, n));
  const Quantiles q = quantiles(std::move(coverage));
  result.n_cells = n;
  result.median_coverage = q.median;
  result.min_coverage = q.min;
  result.n_empty_cells = n_empty;
  std::erase_if(result.warnings, [](const std::string& warning) { return warning.find(kEmptyWarning) != std::string::npos; });
  if (n_empty > 0) {
    result.warnings.push_back(fmt::format("{} {} (flagged in celltyper_embedding_empty)", n_empty, kEmptyWarning));
  }
  result.provenance["median_coverage"] = result.median_coverage;
  sink->finish(result.provenance);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

ExtractResult extract_selection(const SelectionFile& selection, const GeneTable& table, const GeneVectorSource& source,
                                const ExtractOptions& options, const std::string& output, Communicator& communicator) {
  const auto started = std::chrono::steady_clock::now();
  if (const std::vector<std::string> missing = missing_selection_files(selection); !missing.empty() && !options.skip_unreadable) {
    throw InputError(fmt::format("{}: {} of the selected files do not exist ({}); the files changed since `select`? Select again, or pass "
                                 "--skip-unreadable to leave them out",
                                 selection.path, missing.size(), detail::some_of(missing, 3)));
  }
  std::vector<std::int64_t> weights;
  for (const auto& fragment : selection.fragments) weights.push_back(fragment.row_end - fragment.row_start);
  const std::vector<std::size_t> bounds = contiguous_shares(weights, communicator.size());
  const auto rank = static_cast<std::size_t>(communicator.rank());
  ExtractedCells mine = extract_fragments(selection, bounds[rank], bounds[rank + 1], table, source, options);
  ExtractResult result;
  result.processes = communicator.size();
  if (!communicator.is_root()) {
    communicator.send(mine.serialize(), 0);
    return result;
  }
  ExtractedCells all = std::move(mine);
  for (int other = 1; other < communicator.size(); ++other) all.append(ExtractedCells::deserialize(communicator.receive(other)));
  write_training_h5ad(output, selection, all, table, source, options);
  result.n_cells = all.n_cells();
  result.dims = all.dims;
  std::set<std::string> skipped_paths;
  for (const auto& file : all.skipped) skipped_paths.insert(file.value("path", std::string()));
  result.n_fragments = static_cast<std::size_t>(std::count_if(selection.fragments.begin(), selection.fragments.end(),
                                                              [&](const FragmentRef& fragment) { return skipped_paths.count(fragment.path) == 0; }));
  result.n_files = all.file_info.size();
  result.n_genes = all.genes.size();
  result.n_empty_cells = std::count(all.empty.begin(), all.empty.end(), std::uint8_t{1});
  result.embed_seconds = all.seconds;
  // (processes that embedded fragments of one file each said what they read of it: once)
  std::set<std::string> said;
  for (const auto& warning : all.warnings) {
    if (said.insert(warning).second) result.warnings.push_back(warning);
  }
  for (auto& warning : kept_obs_warnings(all)) result.warnings.push_back(std::move(warning));
  for (const auto& file : all.skipped) {
    result.skipped_files.push_back(file.value("path", std::string()));
    result.n_skipped_cells += file.value("n_cells", std::int64_t{0});
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace celltyper
