// The steps of training (train.hpp): labelled cells -> features -> validation split -> fit, and
// `train_model`, which composes them into a self-contained CellTypeModel.
#include <celltyper/annotate.hpp>
#include <celltyper/calibration.hpp>
#include <celltyper/error.hpp>
#include <celltyper/matrix_summary.hpp>
#include <celltyper/extract.hpp>
#include <celltyper/recovered_counts.hpp>
#include <celltyper/reference_similarity.hpp>
#include <celltyper/ontology.hpp>
#include <celltyper/thinned_dataset.hpp>
#include <celltyper/text_matrix.hpp>
#include <celltyper/train.hpp>

#include "genes/gene_names.hpp"
#include "huge_pages.hpp"
#include "splitmix64.hpp"
#include "text_lists.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <bit>
#include <fstream>
#include <iterator>
#include <filesystem>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <set>

#ifndef CELLTYPER_VERSION
#define CELLTYPER_VERSION "unknown"
#endif

namespace celltyper {
namespace {

/// Fisher-Yates with our own index draw, so the order is the same with every standard library.
template <typename T>
void shuffle_in_place(std::vector<T>& values, std::mt19937_64& rng) {
  for (std::size_t i = values.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(rng() % i);
    std::swap(values[i - 1], values[j]);
  }
}

std::string join_names(const std::vector<std::string>& names, std::size_t limit = 8) {
  std::vector<std::string> quoted;
  for (const auto& name : names) quoted.push_back(fmt::format("'{}'", name));
  return detail::some_of(quoted, limit);
}

std::vector<std::string> label_column_names(const std::string& label_column) {
  std::vector<std::string> names;
  std::size_t begin = 0;
  while (begin <= label_column.size()) {
    const std::size_t end = std::min(label_column.find(',', begin), label_column.size());
    if (end > begin) names.push_back(label_column.substr(begin, end - begin));
    begin = end + 1;
  }
  return names;
}

/// "obs column 'celltype'", "obs columns 'celltype' / 'bulk_labels'".
std::string label_column_phrase(const std::string& label_column) {
  const std::vector<std::string> names = label_column_names(label_column);
  if (names.size() < 2) return fmt::format("obs column '{}'", label_column);
  return fmt::format("obs columns '{}'", fmt::join(names, "' / '"));
}



/// Train a fresh classifier on the rows `rows` of `data.cells`; returns it and the class names
/// (sorted) it was trained on. Coarse labels (`data.coarse_labels`) among the rows train as the
/// set of their classes present in the rows (a coarse label without any stands as a class); a
/// back end without label sets leaves their cells out (counted in `left_out`). Validation cells
/// with a coarse label are not scored by early stopping.
std::unique_ptr<Classifier> fit_rows(const TrainOptions& options, const TrainingData& data, const std::vector<std::int64_t>& rows,
                                     std::vector<std::string>& class_names, const std::vector<std::int64_t>* validation_rows = nullptr,
                                     const std::string& phase = "final", std::int64_t* left_out = nullptr,
                                     const Classifier* warm_start = nullptr, const std::vector<std::string>* warm_start_classes = nullptr) {
  const std::vector<std::string>& labels = data.cells.labels;
  auto classifier = make_classifier(options.classifier);
  const auto reference_of_row = [&data](std::size_t row) { return data.cells.references.empty() ? 0 : data.cells.references[row]; };
  std::set<std::string> classes;
  for (auto row : rows) {
    const auto r = static_cast<std::size_t>(row);
    if (data.coarse_classes(labels[r], reference_of_row(r)) == nullptr) classes.insert(labels[r]);
  }
  // A coarse cell's classes among those that train here; none: its label stands as a class.
  const auto members_of = [&](std::size_t row) {
    std::vector<std::string> members;
    if (const auto* coarse = data.coarse_classes(labels[row], reference_of_row(row))) {
      for (const auto& member : *coarse) {
        if (classes.count(member) != 0) members.push_back(member);
      }
    }
    return members;
  };
  for (auto row : rows) {
    const auto r = static_cast<std::size_t>(row);
    if (data.coarse_classes(labels[r], reference_of_row(r)) != nullptr && members_of(r).empty()) classes.insert(labels[r]);
  }
  class_names.assign(classes.begin(), classes.end());
  std::map<std::string, std::int32_t> code;  // class -> code
  for (std::size_t c = 0; c < class_names.size(); ++c) code[class_names[c]] = static_cast<std::int32_t>(c);
  FitOptions fit;
  std::map<std::vector<std::string>, std::int32_t> set_code;  // a set of classes -> code n_classes + s
  // The code of a cell: its set of classes when its label is coarse in its reference, else its
  // class; -1 for a class unknown here, -2 for a set the back end cannot train on.
  const auto code_of = [&](std::size_t row, bool add_sets) -> std::int32_t {
    const std::vector<std::string> members = members_of(row);
    if (!members.empty()) {
      const auto found = set_code.find(members);
      if (found != set_code.end()) return found->second;
      if (!add_sets || !classifier->supports_label_sets()) return -2;
      const auto next = static_cast<std::int32_t>(class_names.size() + fit.label_sets.size());
      std::vector<std::int32_t> codes;
      for (const auto& member : members) codes.push_back(code.at(member));
      fit.label_sets.push_back(std::move(codes));
      set_code[members] = next;
      return next;
    }
    const auto found = code.find(labels[row]);
    return found == code.end() ? -1 : found->second;
  };
  std::vector<std::int32_t> y;
  std::vector<std::int32_t> reference_of;
  std::vector<std::int64_t> kept;  // the rows that train (a class or a set known here)
  for (const auto row_index : rows) {
    const auto row = static_cast<std::size_t>(row_index);
    const std::int32_t cell_code = code_of(row, true);
    if (cell_code < 0) {
      if (left_out != nullptr && data.cells.is_original(row_index)) ++*left_out;  // reference cells, not their copies
      continue;
    }
    kept.push_back(row_index);
    y.push_back(cell_code);
    reference_of.push_back(reference_of_row(row));
  }
  // The classifier reads the kept rows of the features matrix in place (FitOptions::rows), never
  // a copy of cells x features; every cell in order (the final fit, reference mode) needs no list.
  bool every_row = static_cast<std::int64_t>(kept.size()) == data.cells.n();
  for (std::size_t i = 0; every_row && i < kept.size(); ++i) every_row = kept[i] == static_cast<std::int64_t>(i);
  // Depth augmentation: a thinned copy weighs augment_depth_weight of a reference cell (times its
  // reference's copy_scale when only some of its cells were copied).
  std::vector<double> own_weight(y.size(), 1.0);
  const auto& copy_scale = data.cells.copy_scale;
  const bool copies_weigh_less = !data.cells.augmented_from.empty() &&
                                 (options.augment_depth_weight != 1.0 || std::any_of(copy_scale.begin(), copy_scale.end(), [](double s) { return s != 1.0; }));
  if (copies_weigh_less) {
    for (std::size_t i = 0; i < kept.size(); ++i) {
      if (data.cells.is_original(kept[i])) continue;
      const auto r = static_cast<std::size_t>(reference_of[i]);
      own_weight[i] = options.augment_depth_weight * (r < copy_scale.size() ? copy_scale[r] : 1.0);
    }
  }
  // Every reference weighs the same: its cells (and copies, at their weight) sum to the total / references.
  std::map<std::int32_t, double> per_reference;
  double total = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    per_reference[reference_of[i]] += own_weight[i];
    total += own_weight[i];
  }
  if (options.balance_references && per_reference.size() > 1) {
    fit.sample_weights.resize(y.size());
    for (std::size_t i = 0; i < y.size(); ++i) {
      fit.sample_weights[i] = own_weight[i] * total / (static_cast<double>(per_reference.size()) * per_reference[reference_of[i]]);
    }
  } else if (copies_weigh_less) {
    fit.sample_weights = std::move(own_weight);
  }
  // Start from an earlier fit of the same classes (the validation fit: most of the same cells).
  if (warm_start != nullptr && warm_start_classes != nullptr && *warm_start_classes == class_names && warm_start->type() == classifier->type()) {
    const ClassifierState state = warm_start->export_state();
    const auto weights = state.double_arrays.find("weights");
    if (weights != state.double_arrays.end()) fit.initial_weights = weights->second.values;
  }
  fit.hyperparameters = options.hyperparameters;
  fit.num_threads = options.num_threads;
  fit.seed = options.seed;
  fit.data_parallel = options.data_parallel;
  // Held-out cells for early stopping (iterative back ends); a class absent from training is -1.
  // Their features are read from the training matrix as the back end asks (never copied whole).
  std::vector<std::int64_t> validation_cells;
  std::vector<std::int32_t> validation_y;
  if (validation_rows != nullptr && !validation_rows->empty() && classifier->uses_validation()) {
    for (const auto row_index : *validation_rows) {
      const auto row = static_cast<std::size_t>(row_index);
      if (!members_of(row).empty()) continue;  // a coarse label
      validation_cells.push_back(row_index);
      validation_y.push_back(code_of(row, false));
    }
    fit.validation.n = static_cast<std::int64_t>(validation_y.size());
    fit.validation.labels = validation_y.data();
    fit.validation.read = [&data, &validation_cells](std::int64_t first, std::int64_t count, float* out) {
      const auto d = static_cast<std::size_t>(data.cells.dims);
      for (std::int64_t i = 0; i < count; ++i) data.cells.copy_row(validation_cells[static_cast<std::size_t>(first + i)], out + static_cast<std::size_t>(i) * d);
    };
  }
  if (options.on_epoch) {
    fit.on_epoch = [&options, &phase](const nlohmann::json& epoch) {
      nlohmann::json line = epoch;
      line["phase"] = phase;
      options.on_epoch(line);
    };
  }
  if (!every_row) fit.rows = &kept;
  if (data.cells.sparse) {
    classifier->fit(data.cells.sparse_view(), static_cast<std::int64_t>(y.size()), y, static_cast<int>(class_names.size()), fit);
  } else {
    classifier->fit(data.cells.features.data(), static_cast<std::int64_t>(y.size()), data.cells.dims, y, static_cast<int>(class_names.size()), fit);
  }
  return classifier;
}

/// A labelled reference cell that may go into the model's reference sample.
struct SampleCandidate {
  std::size_t reference = 0;
  std::int64_t row = 0;
  std::string label;
};

/// At most `cap` of `candidates`, balanced over labels: every class keeps min(its cells, q)
/// cells, q the largest quota that fits (drawn at random with `seed`); returned in reference and
/// row order.
std::vector<SampleCandidate> choose_reference_sample(std::vector<SampleCandidate> candidates, std::int64_t cap, std::uint64_t seed) {
  if (cap <= 0) return {};
  if (static_cast<std::int64_t>(candidates.size()) <= cap) return candidates;
  std::map<std::string, std::vector<std::size_t>> by_class;
  for (std::size_t i = 0; i < candidates.size(); ++i) by_class[candidates[i].label].push_back(i);
  std::vector<std::int64_t> sizes;
  for (const auto& entry : by_class) sizes.push_back(static_cast<std::int64_t>(entry.second.size()));
  std::int64_t quota = 1;
  std::int64_t high = *std::max_element(sizes.begin(), sizes.end());
  while (quota < high) {  // largest quota whose total fits
    const std::int64_t middle = (quota + high + 1) / 2;
    std::int64_t total = 0;
    for (const auto size : sizes) total += std::min(size, middle);
    if (total <= cap) {
      quota = middle;
    } else {
      high = middle - 1;
    }
  }
  std::mt19937_64 rng(seed ^ 0x5a17e5eedULL);
  std::vector<std::size_t> chosen;
  for (auto& [label, members] : by_class) {
    if (static_cast<std::int64_t>(members.size()) > quota) {
      shuffle_in_place(members, rng);
      members.resize(static_cast<std::size_t>(quota));
    }
    chosen.insert(chosen.end(), members.begin(), members.end());
  }
  std::sort(chosen.begin(), chosen.end());
  std::vector<SampleCandidate> sample;
  sample.reserve(chosen.size());
  for (const std::size_t i : chosen) sample.push_back(std::move(candidates[i]));
  return sample;
}

/// Append rows `rows` (ascending) of `matrix` of `dataset` to `out`, columns renumbered by
/// `column` (per var; -1 = not kept), values as stored.
void append_sample_rows(const Dataset& dataset, const std::string& matrix, const std::vector<std::int32_t>& column,
                        const std::vector<std::int64_t>& rows, std::size_t memory_limit_bytes, CsrBlockF64& out) {
  if (rows.empty()) return;
  const std::string source = resolve_matrix_source(dataset, matrix);
  const std::unique_ptr<MatrixReader> reader = dataset.open_matrix(source);
  const BlockStreamOptions stream = stream_options(dataset, source, memory_limit_bytes);
  std::size_t next = 0;
  // A row's (column, value bits) as one key: sorting 64-bit keys by column is ~2x faster than
  // (column, double) pairs, and a row whose vars already follow the columns needs no sort.
  std::vector<std::uint64_t> entries;
  for_each_block(*reader, stream, [&](const CsrBlock& block) {
    while (next < rows.size() && rows[next] < block.first_row + block.n_rows) {
      const auto r = static_cast<std::size_t>(rows[next] - block.first_row);
      entries.clear();
      for (std::int64_t k = block.indptr[r]; k < block.indptr[r + 1]; ++k) {
        const std::int32_t j = column[static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)])];
        const float value = block.values[static_cast<std::size_t>(k)];
        if (j >= 0 && value != 0) entries.push_back(static_cast<std::uint64_t>(j) << 32 | std::bit_cast<std::uint32_t>(value));
      }
      if (!std::is_sorted(entries.begin(), entries.end())) std::sort(entries.begin(), entries.end());
      detail::reserve_growing_huge(out.indices, out.indices.size() + entries.size());
      detail::reserve_growing_huge(out.values, out.values.size() + entries.size());
      for (const std::uint64_t entry : entries) {
        out.indices.push_back(static_cast<std::int32_t>(entry >> 32));
        out.values.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(entry)));
      }
      out.indptr.push_back(static_cast<std::int64_t>(out.indices.size()));
      ++out.n_rows;
      ++next;
    }
  });
}

}  // namespace

/// A training matrix written by `celltyper extract` carries its cell embeddings in obsm: use them
/// instead of embedding X (which holds no values there). Returns false for any other dataset.
/// Throws InputError when the embeddings were made with another gene store.
bool read_precomputed_embeddings(const Dataset& dataset, const GeneStore& store, int requested_dims, std::vector<float>& values,
                                 std::vector<std::uint8_t>& empty, std::set<std::int64_t>& used_genes, nlohmann::json& info) {
  const auto* h5ad = dataset.h5ad_file();
  if (h5ad == nullptr) return false;
  const auto extract_text = h5ad->read_uns_string(kExtractUnsKey);
  if (!extract_text) return false;
  const nlohmann::json extract = nlohmann::json::parse(*extract_text, nullptr, /* allow_exceptions = */ false);
  const auto embedding_text = h5ad->read_uns_string("celltyper_embedding");
  const nlohmann::json embedding = embedding_text ? nlohmann::json::parse(*embedding_text, nullptr, false) : nlohmann::json();
  if (!extract.is_object() || !embedding.is_object()) throw InputError(fmt::format("{}: unreadable uns/{} or uns/celltyper_embedding", dataset.path(), kExtractUnsKey));
  const std::string identity = embedding.value("gene_vectors_identity", "");
  if (identity != store.identity_hash()) {
    throw InputError(fmt::format("{}: its embeddings were made with gene vectors {} ({}), not the store given ({}): pass that store with --genes "
                                 "or run `celltyper extract` again",
                                 dataset.path(), embedding.value("gene_vectors", "?"), identity, store.identity_hash()));
  }
  const std::string key = extract.value("obsm_key", "X_celltyper");
  DenseMatrix matrix = h5ad->read_obsm(key);
  if (matrix.rows != dataset.n_obs()) throw InputError(fmt::format("{}: obsm/{} has {} rows for {} cells", dataset.path(), key, matrix.rows, dataset.n_obs()));
  if (requested_dims > 0 && requested_dims != matrix.cols) {
    throw InputError(fmt::format("{}: obsm/{} has {} dims; --dims {} would need a new `celltyper extract --dims {}`", dataset.path(), key,
                                 matrix.cols, requested_dims, requested_dims));
  }
  const DataFrame obs = h5ad->read_obs_columns({"celltyper_embedding_empty"});
  const Column& flags = obs.at("celltyper_embedding_empty", fmt::format("obs of {}", dataset.path()));
  empty.assign(flags.booleans.begin(), flags.booleans.end());
  const DataFrame var = dataset.read_var();
  const Column& entrez = var.at("entrez_id", fmt::format("var of {}", dataset.path()));
  for (const std::int64_t id : entrez.integers) {
    if (store.find_entrez(id) >= 0) used_genes.insert(id);
  }
  values = std::move(matrix.values);
  info.update({{"matrix", "obsm/" + key},
               {"precomputed", extract.value("selection", "")},
               {"files", extract.value("files", nlohmann::json::object())}});
  return true;
}

bool is_extract_output(const Dataset& dataset) {
  const auto* h5ad = dataset.h5ad_file();
  return h5ad != nullptr && h5ad->read_uns_string(kExtractUnsKey).has_value();
}

std::vector<std::int64_t> genes_of(const std::string& path, const GeneTable& table, const GeneResolveOptions& options) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) throw InputError(fmt::format("{}: no such file", path));
  DataFrame var;
  GeneResolveOptions resolve = options;
  std::ifstream probe(path, std::ios::binary);
  std::string magic(8, '\0');
  probe.read(magic.data(), 8);
  if (magic == "\x89HDF\r\n\x1a\n") {
    var = open_dataset(path)->read_var();
  } else {  // a gene list: one id or symbol per line
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] == '#') continue;
      var.index.push_back(line.substr(first, line.find_last_not_of(" \t") - first + 1));
    }
    resolve.column = "_index";
  }
  const GeneResolveResult resolved = resolve_genes(table, var, resolve);
  std::vector<std::int64_t> ids;
  for (const std::int32_t gene : resolved.gene_index) {
    if (gene != kNoGene) ids.push_back(table.gene(gene).entrez_id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  if (ids.empty()) {
    throw InputError(fmt::format("{}: none of its {} gene names resolves in the gene table (column '{}' read as {} ids)", path,
                                 var.n_rows(), resolved.column, to_string(resolved.id_type)));
  }
  return ids;
}

std::vector<std::int64_t> detected_genes(const Dataset& dataset, const std::string& matrix, const std::vector<std::size_t>& rows,
                                         const GeneTable& table, const GeneResolveOptions& options, std::size_t memory_limit_bytes) {
  const std::string source = resolve_matrix_source(dataset, matrix);
  const std::unique_ptr<MatrixReader> reader = dataset.open_matrix(source);
  std::vector<std::uint8_t> wanted(static_cast<std::size_t>(reader->n_rows()), 0);
  for (const std::size_t row : rows) {
    if (row >= wanted.size()) throw InputError(fmt::format("{}: row {} is out of range ({} rows)", dataset.path(), row, wanted.size()));
    wanted[row] = 1;
  }
  std::vector<std::uint8_t> detected(static_cast<std::size_t>(reader->n_cols()), 0);
  const BlockStreamOptions stream = stream_options(dataset, source, memory_limit_bytes);
  for_each_block(*reader, stream, [&](const CsrBlock& block) {
    for (std::int64_t r = 0; r < block.n_rows; ++r) {
      if (wanted[static_cast<std::size_t>(block.first_row + r)] == 0) continue;
      for (std::int64_t k = block.indptr[static_cast<std::size_t>(r)]; k < block.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
        if (block.values[static_cast<std::size_t>(k)] != 0) detected[static_cast<std::size_t>(block.indices[static_cast<std::size_t>(k)])] = 1;
      }
    }
  });
  const GeneResolveResult resolved = resolve_dataset_genes(table, dataset, source, options);
  std::vector<std::int64_t> ids;
  for (std::size_t column = 0; column < resolved.gene_index.size() && column < detected.size(); ++column) {
    if (detected[column] != 0 && resolved.gene_index[column] != kNoGene) ids.push_back(table.gene(resolved.gene_index[column]).entrez_id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

namespace {

/// Checks of the options every step relies on, made before any cell is read.
void check_options(const TrainOptions& options) {
  if (options.label_column.empty()) throw InputError("train: no label column given (--label obs:COLUMN)");
  if (!(options.validation_fraction >= 0 && options.validation_fraction < 1)) {
    throw InputError(fmt::format("--validation-fraction {} is not in [0, 1)", options.validation_fraction));
  }
  resolve_hyperparameters(find_classifier_spec(options.classifier), options.hyperparameters);
  if (options.features != kFeaturesExpression && options.features != kFeaturesGenept) {
    throw InputError(fmt::format("--features must be {} or {}, got '{}'", kFeaturesGenept, kFeaturesExpression, options.features));
  }
  if (options.gene_pooling != "impute" && options.gene_pooling != "shared" && options.gene_pooling != "all") {
    throw InputError(fmt::format("gene pooling '{}' is not impute, shared or all", options.gene_pooling));
  }
}

/// Gene ids (sorted, unique; empty = every gene) a model may use, from TrainOptions::restrict_genes.
class AllowedGenes {
 public:
  explicit AllowedGenes(std::vector<std::int64_t> ids) : ids_(std::move(ids)) {
    std::sort(ids_.begin(), ids_.end());
    ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
  }
  [[nodiscard]] bool restricted() const { return !ids_.empty(); }
  [[nodiscard]] bool allows(std::int64_t entrez) const { return ids_.empty() || std::binary_search(ids_.begin(), ids_.end(), entrez); }
  [[nodiscard]] const std::vector<std::int64_t>& ids() const { return ids_; }

 private:
  std::vector<std::int64_t> ids_;
};

/// Symbol and first Ensembl id of `entrez` in `table` ("" / the id as text when unknown).
std::pair<std::string, std::string> gene_names(const GeneTable& table, std::int64_t entrez, bool id_when_unknown) {
  const std::int32_t gene = table.find_entrez(entrez);
  if (gene == kNoGene) return {id_when_unknown ? std::to_string(entrez) : std::string(), std::string()};
  const auto& record = table.gene(gene);
  return {record.symbol, record.ensembl_ids.empty() ? std::string() : record.ensembl_ids.front()};
}

/// The model's reference sample: class-balanced labelled cells with every gene the references
/// measured (`reference_genes`, sorted), values as stored.
void sample_references(const std::vector<LabelledReference>& references, const std::vector<GeneResolveResult>& resolved,
                       const std::vector<std::int64_t>& reference_genes, const GeneTable& table, const TrainOptions& options,
                       TrainingData& data) {
  std::vector<SampleCandidate> candidates;
  for (std::size_t r = 0; r < references.size(); ++r) {
    for (std::size_t row = 0; row < references[r].labels.size(); ++row) {
      if (references[r].labelled[row] != 0 && references[r].excluded[row] == 0) candidates.push_back({r, static_cast<std::int64_t>(row), references[r].labels[row]});
    }
  }
  ReferenceSample& sample = data.sample;
  sample.n_reference_cells = static_cast<std::int64_t>(candidates.size());
  const std::vector<SampleCandidate> chosen = choose_reference_sample(std::move(candidates), options.reference_sample_cells, options.seed);
  sample.values.reset(0, 0, static_cast<std::int64_t>(reference_genes.size()));
  for (std::size_t r = 0; r < references.size(); ++r) {
    std::vector<std::int64_t> rows;
    for (const auto& candidate : chosen) {
      if (candidate.reference != r) continue;
      rows.push_back(candidate.row);
      data.sample_labels.push_back(candidate.label);
      data.sample_references.push_back(static_cast<std::int32_t>(r));
    }
    if (rows.empty()) continue;
    // First var of each gene only (a duplicate var would count twice), as the features do.
    std::vector<std::int32_t> column(resolved[r].gene_index.size(), -1);
    std::vector<std::uint8_t> taken(reference_genes.size(), 0);
    for (std::size_t var = 0; var < column.size(); ++var) {
      const std::int32_t gene = resolved[r].gene_index[var];
      if (gene == kNoGene) continue;
      const auto index = static_cast<std::size_t>(
          std::lower_bound(reference_genes.begin(), reference_genes.end(), table.gene(gene).entrez_id) - reference_genes.begin());
      if (index == reference_genes.size() || reference_genes[index] != table.gene(gene).entrez_id) continue;  // not shared
      if (taken[index] != 0) continue;
      taken[index] = 1;
      column[var] = static_cast<std::int32_t>(index);
    }
    append_sample_rows(*references[r].dataset, references[r].matrix, column, rows, options.embed.memory_limit_bytes, sample.values);
  }
  sample.entrez_ids = reference_genes;
  sample.matrix = references.front().matrix;
  for (const std::int64_t entrez : reference_genes) {
    auto [symbol, ensembl] = gene_names(table, entrez, true);
    sample.symbols.push_back(std::move(symbol));
    sample.ensembl_ids.push_back(std::move(ensembl));
    const std::int32_t gene = table.find_entrez(entrez);
    std::string aliases;
    if (gene != kNoGene) {
      for (const auto& alias : table.gene(gene).aliases) {
        if (alias.find_first_of("|\n") != std::string::npos) continue;
        if (!aliases.empty()) aliases += '|';
        aliases += alias;
      }
    }
    sample.aliases.push_back(std::move(aliases));
  }
}

/// How one reference's library sizes are summed (ExpressionOptions::size_factor_genes and
/// size_factor_multiplier).
struct LibraryScope {
  std::vector<std::int64_t> genes;  ///< ascending Entrez ids
  double multiplier = 1.0;
};

std::vector<std::int64_t> intersect_sorted(const std::vector<std::int64_t>& a, const std::vector<std::int64_t>& b) {
  std::vector<std::int64_t> both;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  return both;
}

/// Library sizes of pooled references with different genes ("impute"). The anchor is the
/// reference that measured the most (allowed) genes: its cells' library is their sum over those
/// genes, as a query's is over the anchor's genes it measured (the model's size-factor genes).
/// Every other reference sums over the anchor genes it measured and scales that sum by the median,
/// over the anchor's labelled cells, of (sum over all anchor genes) / (sum over this reference's
/// share of them): an estimate of the full library it did not measure. Summing every side over the
/// genes all references share instead made a cell's library a sum over a few hundred variable genes
/// when one reference keeps only those (pbmc68k_reduced: 765), which is noisy for shallow cells.
std::vector<LibraryScope> pooled_library_scopes(const std::vector<LabelledReference>& references,
                                                const std::vector<std::vector<std::int64_t>>& measured,
                                                const std::vector<std::int64_t>& allowed_ids, const GeneTable& table,
                                                const ExpressionOptions& settings, const TrainOptions& options, std::size_t& anchor) {
  std::vector<std::vector<std::int64_t>> usable(references.size());
  anchor = 0;
  for (std::size_t r = 0; r < references.size(); ++r) {
    usable[r] = allowed_ids.empty() ? measured[r] : intersect_sorted(measured[r], allowed_ids);
    if (usable[r].size() > usable[anchor].size()) anchor = r;
  }
  std::vector<LibraryScope> scopes(references.size());
  std::vector<std::vector<std::int64_t>> partial_sets;  // the anchor's genes, then each other reference's share
  std::vector<std::size_t> set_of(references.size(), 0);
  partial_sets.push_back(usable[anchor]);
  for (std::size_t r = 0; r < references.size(); ++r) {
    scopes[r].genes = r == anchor ? usable[anchor] : intersect_sorted(usable[r], usable[anchor]);
    if (r == anchor || scopes[r].genes.size() == usable[anchor].size()) continue;
    set_of[r] = partial_sets.size();
    partial_sets.push_back(scopes[r].genes);
  }
  if (partial_sets.size() == 1) return scopes;
  ExpressionOptions anchor_settings = settings;
  anchor_settings.matrix = references[anchor].matrix;
  const auto sums = library_sizes(*references[anchor].dataset, table, anchor_settings, partial_sets, references[anchor].labelled);
  for (std::size_t r = 0; r < references.size(); ++r) {
    if (set_of[r] == 0) continue;
    std::vector<double> ratios;
    for (std::size_t cell = 0; cell < sums[0].size(); ++cell) {
      const double part = sums[set_of[r]][cell];
      if (part > 0 && sums[0][cell] > 0) ratios.push_back(sums[0][cell] / part);
    }
    if (!ratios.empty()) {
      auto middle = ratios.begin() + static_cast<std::ptrdiff_t>(ratios.size() / 2);
      std::nth_element(ratios.begin(), middle, ratios.end());
      scopes[r].multiplier = *middle;
    }
    if (options.log) {
      options.log(fmt::format("{}: library sizes over its {} of the anchor's {} genes, x {:.3g} (median ratio in {})", references[r].path,
                              scopes[r].genes.size(), usable[anchor].size(), scopes[r].multiplier, references[anchor].path));
    }
  }
  return scopes;
}

/// `settings` with reference `r`'s matrix and library scope (`scopes` empty: as given).
ExpressionOptions reference_settings(const ExpressionOptions& settings, const LabelledReference& reference,
                                     const std::vector<LibraryScope>& scopes, std::size_t r) {
  ExpressionOptions out = settings;
  out.matrix = reference.matrix;
  // Counts read back: normalised as counts (a few cells that did not read back whole keep
  // non-integer values, which would otherwise make the scan call the matrix something else).
  if (reference.recovered != nullptr) out.normalization = NormalizationChoice::kLog1pCp10k;
  if (reference.normalization != NormalizationChoice::kAuto) out.normalization = reference.normalization;
  if (!scopes.empty()) {
    out.size_factor_genes = scopes[r].genes;
    out.size_factor_multiplier = scopes[r].multiplier;
  }
  return out;
}

/// The expression panel: the `options.n_genes` most variable genes of the labelled cells (among
/// the allowed genes).
std::vector<std::int64_t> choose_panel(const std::vector<LabelledReference>& references, const GeneTable& table,
                                       const ExpressionOptions& expression_settings, const std::vector<LibraryScope>& scopes,
                                       const AllowedGenes& allowed, const TrainOptions& options, TrainingData& data) {
  GeneExpressionStats stats;
  for (std::size_t r = 0; r < references.size(); ++r) {
    const LabelledReference& reference = references[r];
    const auto* h5ad = reference.dataset->h5ad_file();
    if (h5ad != nullptr && h5ad->read_uns_string(kExtractUnsKey)) {
      throw InputError(fmt::format("{}: a training matrix from `celltyper extract` holds embeddings, not expression: use --features genept",
                                   reference.path));
    }
    if (options.log) options.log(fmt::format("gene statistics of {} ({} cells)", reference.path, reference.dataset->n_obs()));
    std::vector<std::string> warnings;
    const ExpressionOptions settings = reference_settings(expression_settings, reference, scopes, r);
    accumulate_expression_stats(*reference.dataset, table, settings, reference.labelled, stats, &warnings);
    for (const auto& warning : warnings) {  // (named by the reference, once: some name their dataset already)
      data.cells.warnings.push_back(warning.starts_with(reference.path + ": ") ? warning : fmt::format("{}: {}", reference.path, warning));
    }
  }
  if (allowed.restricted()) {  // the panel is chosen among the allowed genes only
    GeneExpressionStats kept;
    kept.n_cells = stats.n_cells;
    for (std::size_t g = 0; g < stats.entrez_ids.size(); ++g) {
      if (!allowed.allows(stats.entrez_ids[g])) continue;
      kept.entrez_ids.push_back(stats.entrez_ids[g]);
      kept.sum.push_back(stats.sum[g]);
      kept.sum_squares.push_back(stats.sum_squares[g]);
      kept.sum_expm1.push_back(stats.sum_expm1[g]);
      kept.sum_expm1_squares.push_back(stats.sum_expm1_squares[g]);
      kept.n_expressing.push_back(stats.n_expressing[g]);
    }
    if (kept.entrez_ids.empty()) {
      throw InputError(fmt::format("--restrict-genes: none of its {} genes is among the references' genes", allowed.ids().size()));
    }
    stats = std::move(kept);
  }
  std::vector<std::int64_t> panel = select_variable_genes(stats, options.n_genes);
  if (options.log) options.log(fmt::format("expression panel: {} most variable of {} genes", panel.size(), stats.entrez_ids.size()));
  return panel;
}

/// Expression features of every cell of one reference, block by block to `sink` (nothing kept).
/// Returns the reference's provenance entry.
nlohmann::json expression_reference_features(const LabelledReference& reference, std::size_t reference_index,
                                             const std::vector<LibraryScope>& scopes, const std::vector<std::int64_t>& panel,
                                             const GeneTable& table, const ExpressionOptions& expression_settings, const TrainOptions& options,
                                             TrainingData& data, const FeatureBlockCallback& sink) {
  const std::string& path = reference.path;
  const Dataset& dataset = *reference.dataset;
  if (options.log) {
    options.log(fmt::format("expression features of {} ({} cells)", path, dataset.n_obs()));
    if (!reference.recovered_note.empty()) options.log(fmt::format("{}: {}", path, reference.recovered_note));
  }
  ExpressionOptions settings = reference_settings(expression_settings, reference, scopes, reference_index);
  settings.missing_genes_imputed = !scopes.empty();  // ("impute": every reference has its library scope)
  // Pooled references with different genes: a reference may lack most of the panel (imputed).
  const ExpressionFeatures computed = stream_expression_features(dataset, table, panel, settings, sink, data.n_shared_genes > 0 ? 0.0 : 0.05);
  for (const auto& warning : computed.warnings) {
    data.cells.warnings.push_back(warning.find(path) == std::string::npos ? fmt::format("{}: {}", path, warning) : warning);
  }
  data.normalizations.insert(to_string(computed.normalization));
  data.cells.dims = static_cast<int>(panel.size());
  return {{"path", path},
          {"n_cells", dataset.n_obs()},
          {"matrix", computed.matrix},
          {"normalization", to_string(computed.normalization)},
          {"normalization_reason", reference.recovered == nullptr ? computed.normalization_reason
                                                                  : reference.recovered_note + "; normalised as counts"},
          {"counts", computed.counts || reference.recovered != nullptr},
          {"counts_recovered", reference.recovered != nullptr},
          {"gene_column", computed.genes.column},
          {"n_panel_genes_found", computed.n_panel_genes_found}};
}

/// GenePT-w embeddings (or `celltyper extract`'s precomputed ones) of every cell of one
/// reference: [n_obs x dims] in `values`, empty flags in `empty`. Returns the reference's
/// provenance entry.
nlohmann::json embedded_reference_features(const LabelledReference& reference, const GeneVectorSource& source, const GeneStore& store,
                                           const GeneTable& table, const AllowedGenes& allowed, const TrainOptions& options, TrainingData& data,
                                           std::set<std::int64_t>& used_genes, std::vector<float>& values, std::vector<std::uint8_t>& empty) {
  const std::string& path = reference.path;
  const Dataset& dataset = *reference.dataset;
  auto log = [&options](const std::string& message) {
    if (options.log) options.log(message);
  };
  int& dims = data.cells.dims;
  nlohmann::json info = {{"path", path}, {"n_cells", dataset.n_obs()}};
  if (allowed.restricted() && is_extract_output(dataset)) {
    throw InputError(fmt::format("{}: holds precomputed embeddings (from `celltyper extract`): --restrict-genes needs expression to embed", path));
  }
  if (read_precomputed_embeddings(dataset, store, options.embed.dims, values, empty, used_genes, info)) {
    const int found = static_cast<int>(values.size() / std::max<std::size_t>(1, reference.labels.size()));
    if (dims != 0 && found != dims) throw InputError(fmt::format("{}: {} dims, earlier references {}", path, found, dims));
    dims = found;
    log(fmt::format("{}: precomputed embeddings ({} cells x {} dims, from `celltyper extract`)", path, dataset.n_obs(), dims));
    return info;
  }
  EmbedOptions embed = options.embed;
  embed.num_threads = options.num_threads;
  embed.matrix = reference.matrix;
  embed.size_factor_genes = data.genes.size_factor_genes;
  // Restricted to a query's genes, a reference cell's counts lie mostly elsewhere by request.
  if (allowed.restricted()) embed.min_median_coverage = 0;
  MemorySink sink;
  log(fmt::format("embedding {} ({} cells)", path, dataset.n_obs()));
  const EmbedResult embedded = embed_dataset(dataset, table, source, embed, sink);
  if (dims != 0 && embedded.dims != dims) throw InputError(fmt::format("{}: embedded with {} dims, earlier references {}", path, embedded.dims, dims));
  dims = embedded.dims;
  for (const std::int32_t gene : embedded.genes.gene_index) {
    if (gene == kNoGene) continue;
    const std::int64_t entrez = table.gene(gene).entrez_id;
    if (allowed.allows(entrez) && store.find_entrez(entrez) >= 0) used_genes.insert(entrez);
  }
  for (const auto& warning : embedded.warnings) data.cells.warnings.push_back(message_about(path, warning));
  data.normalizations.insert(to_string(embedded.normalization));
  info.update({{"matrix", embedded.matrix},
               {"normalization", to_string(embedded.normalization)},
               {"gene_column", embedded.genes.column},
               {"n_vars_with_vector", embedded.n_vars_with_vector},
               {"median_coverage", embedded.median_coverage}});
  values = std::move(sink.values);
  empty = std::move(sink.empty);
  return info;
}

/// Pooled references with different genes ("impute"): each panel column a reference did not
/// measure gets, in that reference's cells, the mean of the cells of the references that did.
/// Compressed rows store the imputed values beside the measured ones (a reference measuring most
/// of the panel, as CELLxGENE's do, adds few; the matrix goes dense when they would fill it); the
/// sums run in row order over the stored values, so the means and the features are those of the
/// dense matrix, bit for bit.
void impute_unmeasured_genes(const std::vector<std::int64_t>& panel, const std::vector<std::vector<std::int64_t>>& measured,
                             LabelledFeatures& cells) {
  const auto width = static_cast<std::size_t>(cells.dims);
  const std::size_t n_references = measured.size();
  std::vector<std::vector<std::uint8_t>> has(n_references, std::vector<std::uint8_t>(width, 0));
  for (std::size_t r = 0; r < n_references; ++r) {
    for (std::size_t j = 0; j < width; ++j) has[r][j] = std::binary_search(measured[r].begin(), measured[r].end(), panel[j]) ? 1 : 0;
  }
  std::vector<double> sum(width, 0.0);
  std::vector<std::int64_t> count(width, 0);
  CsrBlock& m = cells.sparse_features;
  for (std::int64_t i = 0; i < cells.n(); ++i) {
    const auto r = static_cast<std::size_t>(cells.references[static_cast<std::size_t>(i)]);
    for (std::size_t j = 0; j < width; ++j) count[j] += has[r][j];
    if (!cells.sparse) {
      for (std::size_t j = 0; j < width; ++j) {
        if (has[r][j] != 0) sum[j] += cells.features[static_cast<std::size_t>(i) * width + j];
      }
      continue;
    }
    for (std::int64_t k = m.indptr[static_cast<std::size_t>(i)]; k < m.indptr[static_cast<std::size_t>(i) + 1]; ++k) {
      const auto j = static_cast<std::size_t>(m.indices[static_cast<std::size_t>(k)]);
      if (has[r][j] != 0) sum[j] += m.values[static_cast<std::size_t>(k)];
    }
  }
  std::vector<float> mean(width, 0.0f);
  for (std::size_t j = 0; j < width; ++j) mean[j] = count[j] > 0 ? static_cast<float>(sum[j] / static_cast<double>(count[j])) : 0.0f;
  // Per reference, its unmeasured columns with a non-zero mean (a zero stays implicit).
  std::vector<std::vector<std::int32_t>> imputed(n_references);
  for (std::size_t r = 0; r < n_references; ++r) {
    for (std::size_t j = 0; j < width; ++j) {
      if (has[r][j] == 0 && mean[j] != 0.0f) imputed[r].push_back(static_cast<std::int32_t>(j));
    }
  }
  std::size_t added = 0;
  for (std::int64_t i = 0; i < cells.n(); ++i) added += imputed[static_cast<std::size_t>(cells.references[static_cast<std::size_t>(i)])].size();
  if (cells.sparse && added == 0) return;
  // References that measured a small part of the panel fill most of it: when the compressed rows
  // would hold more than half of the matrix's values (8 bytes each against 4), it goes dense.
  if (cells.sparse && 2 * (m.values.size() + added) > static_cast<std::size_t>(cells.n()) * width) {
    cells.features = cells.dense();
    cells.sparse = false;
    cells.sparse_features = CsrBlock();
  }
  if (!cells.sparse) {
    for (std::int64_t i = 0; i < cells.n(); ++i) {
      const auto r = static_cast<std::size_t>(cells.references[static_cast<std::size_t>(i)]);
      for (std::size_t j = 0; j < width; ++j) {
        if (has[r][j] == 0) cells.features[static_cast<std::size_t>(i) * width + j] = mean[j];
      }
    }
    return;
  }
  // Each row: its stored values merged with its reference's imputed columns, in column order (an
  // imputed column replaces a stored value, as in the dense matrix).
  CsrBlock merged;
  merged.reset(0, m.n_rows, m.n_cols);
  detail::reserve_huge(merged.indices, m.indices.size() + added);
  detail::reserve_huge(merged.values, m.values.size() + added);
  for (std::int64_t i = 0; i < cells.n(); ++i) {
    const auto& columns = imputed[static_cast<std::size_t>(cells.references[static_cast<std::size_t>(i)])];
    auto next = columns.begin();
    for (std::int64_t k = m.indptr[static_cast<std::size_t>(i)]; k < m.indptr[static_cast<std::size_t>(i) + 1]; ++k) {
      const std::int32_t column = m.indices[static_cast<std::size_t>(k)];
      for (; next != columns.end() && *next < column; ++next) {
        merged.indices.push_back(*next);
        merged.values.push_back(mean[static_cast<std::size_t>(*next)]);
      }
      if (next != columns.end() && *next == column) continue;  // replaced below
      merged.indices.push_back(column);
      merged.values.push_back(m.values[static_cast<std::size_t>(k)]);
    }
    for (; next != columns.end(); ++next) {
      merged.indices.push_back(*next);
      merged.values.push_back(mean[static_cast<std::size_t>(*next)]);
    }
    merged.indptr.push_back(static_cast<std::int64_t>(merged.values.size()));
  }
  m = std::move(merged);
}

/// The reference sample of pooled references with different genes: each cell's reference and
/// each reference's measured columns, so that a refit imputes as the training did.
void record_sample_genes(const std::vector<std::vector<std::int64_t>>& measured, ReferenceSample& sample) {
  sample.measured.assign(measured.size(), {});
  for (std::size_t r = 0; r < measured.size(); ++r) {
    for (std::size_t column = 0; column < sample.entrez_ids.size(); ++column) {
      if (std::binary_search(measured[r].begin(), measured[r].end(), sample.entrez_ids[column])) {
        sample.measured[r].push_back(static_cast<std::int32_t>(column));
      }
    }
  }
}

/// The most probable class of each row of `probabilities`.
std::vector<std::string> argmax_classes(const ProbabilityMatrix& probabilities, std::size_t n) {
  const std::size_t c = probabilities.class_names.size();
  std::vector<std::string> prediction(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float* row = probabilities.values.data() + i * c;
    prediction[i] = probabilities.class_names[static_cast<std::size_t>(std::max_element(row, row + c) - row)];
  }
  return prediction;
}

}  // namespace

namespace {

/// Whether `key` (lower case, trimmed) is a CL id in either form: "cl:0000236", "cl_0000236".
bool is_cl_id_key(std::string_view key) {
  return key.size() == 10 && key.starts_with("cl") && (key[2] == ':' || key[2] == '_') &&
         std::all_of(key.begin() + 3, key.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
}

}  // namespace

bool is_cl_id_label(std::string_view label) { return is_cl_id_key(label_spelling_key(label)); }

std::string label_spelling_key(std::string_view label) {
  std::string key(without_surrounding_spaces(label));
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (is_cl_id_key(key)) key[2] = ':';  // (an OBO PURL's CL_0000236 is CL:0000236)
  return key;
}

std::string unlabelled_cells_warning(const std::string& path, std::int64_t n, const std::string& column, const std::string& spelled) {
  return fmt::format("{}: {} cell{} without a label in obs:{} left out{}", path, n, n == 1 ? "" : "s", column,
                     spelled.empty() ? "" : fmt::format(" (labels that name no type, such as '{}', included)", spelled));
}

std::map<std::string, std::string> label_spelling_renames(const std::map<std::string, std::int64_t>& cells, std::string* note) {
  const auto trimmed = [](const std::string& label) { return std::string(without_surrounding_spaces(label)); };
  const auto folded = [](const std::string& label) { return label_spelling_key(label); };
  std::map<std::string, std::pair<std::string, std::int64_t>> best;  // folded -> (spelling, cells)
  for (const auto& [label, count] : cells) {
    auto [it, inserted] = best.emplace(folded(label), std::make_pair(label, count));
    if (!inserted && count > it->second.second) it->second = {label, count};
  }
  std::map<std::string, std::string> renames;
  detail::Examples examples(6);
  for (const auto& [label, count] : cells) {
    std::string canonical = trimmed(best.at(folded(label)).first);
    if (const std::string key = folded(label); is_cl_id_key(key)) {  // a CL id in the ontology's own form
      canonical = key;
      std::transform(canonical.begin(), canonical.end(), canonical.begin(), [](char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); });
    }
    if (canonical == label) continue;
    renames.emplace(label, canonical);
    examples.add_with([&, &name = label, cells_of = count] { return fmt::format("'{}' ({} cells) as '{}'", name, cells_of, canonical); });
  }
  if (note != nullptr && !renames.empty()) {
    const bool joined = best.size() < cells.size();  // (else a lone label with spaces around it, only trimmed)
    const bool ids = std::any_of(renames.begin(), renames.end(), [&](const auto& renamed) { return is_cl_id_key(folded(renamed.first)); });
    *note = joined ? fmt::format("{} label{} from another only in surrounding spaces or letter case{}, read as one class: {}", renames.size(),
                                 renames.size() == 1 ? " differs" : "s differ", ids ? " (CL ids also in their CL_ form)" : "", examples.str())
                   : fmt::format("{} label{} read {}: {}", renames.size(), renames.size() == 1 ? "" : "s",
                                 ids ? "as the CL ids they spell (CL:0000000)" : "without surrounding spaces", examples.str());
  }
  return renames;
}

namespace {

/// Labelled cells per label over every reference.
std::map<std::string, std::int64_t> cells_per_label(const std::vector<LabelledReference>& references) {
  std::map<std::string, std::int64_t> cells;
  for (const auto& reference : references) {
    for (std::size_t row = 0; row < reference.labels.size(); ++row) {
      if (reference.labelled[row] != 0) ++cells[reference.labels[row]];
    }
  }
  return cells;
}

/// label_spelling_renames over every reference's labelled cells, applied to their labels and to
/// the term ids counted per label. Returns the warning, "" when nothing changed.
std::string unify_label_spellings(std::vector<LabelledReference>& references) {
  std::string note;
  const std::map<std::string, std::string> renames = label_spelling_renames(cells_per_label(references), &note);
  if (renames.empty()) return "";
  for (auto& reference : references) {
    for (std::size_t row = 0; row < reference.labels.size(); ++row) {
      if (const auto renamed = renames.find(reference.labels[row]); renamed != renames.end()) reference.labels[row] = renamed->second;
    }
    LabelTermIds merged;
    for (auto& [label, counts] : reference.label_term_ids) {
      const auto renamed = renames.find(label);
      for (const auto& [id, count] : counts) merged[renamed == renames.end() ? label : renamed->second][id] += count;
    }
    reference.label_term_ids = std::move(merged);
  }
  return note;
}

}  // namespace

std::vector<LabelledReference> read_labelled_cells(const std::vector<const Dataset*>& datasets, const TrainOptions& options) {
  if (datasets.empty()) throw InputError("train: no reference dataset given");
  if (options.label_column.empty()) throw InputError("train: no label column given (--label obs:COLUMN)");
  if (!options.matrices.empty() && options.matrices.size() != datasets.size()) {
    throw InputError(fmt::format("train: {} matrices (--layer) for {} references", options.matrices.size(), datasets.size()));
  }
  if (!options.cell_masks.empty() && options.cell_masks.size() != datasets.size()) {
    throw InputError(fmt::format("train: {} cell masks for {} references", options.cell_masks.size(), datasets.size()));
  }
  std::vector<LabelledReference> references;
  std::vector<std::pair<std::size_t, double>> unknown_logs;  // references of logs of unknown normalisation, their largest value
  for (std::size_t r = 0; r < datasets.size(); ++r) {
    LabelledReference reference;
    reference.dataset = datasets[r];
    reference.path = reference.dataset->path();
    const std::string& path = reference.path;
    const std::vector<std::uint8_t>* mask = options.cell_masks.empty() || options.cell_masks[r].empty() ? nullptr : &options.cell_masks[r];
    const std::string& matrix = options.matrices.empty() || options.matrices[r].empty() ? options.embed.matrix : options.matrices[r];
    reference.matrix = resolve_matrix_source(*reference.dataset, matrix, &reference.matrix_note, true);
    // A reference holding only log-normalised values: their counts, so that it is thinned for
    // depth augmentation and its similarity profile calibrated by depth as counts are.
    if (options.features == kFeaturesExpression && options.embed.normalization == NormalizationChoice::kAuto) {
      SummarizeOptions scan;  // (recover_counts' scan, kept for the shared base below)
      scan.max_rows = 2000;
      scan.memory_limit_bytes = options.embed.memory_limit_bytes;
      const MatrixSummary summary = summarize_matrix(*reference.dataset->open_matrix(reference.matrix), scan);
      if (summary.scale == ValueScale::kLogTransformed) unknown_logs.emplace_back(r, summary.max_value);
      CountsRecovery recovery = recover_counts(*reference.dataset, reference.matrix, options.embed.memory_limit_bytes, &summary);
      reference.recovered = std::move(recovery.dataset);
      reference.recovered_note = std::move(recovery.note);
      reference.recovered_warning = std::move(recovery.warning);
      if (reference.recovered != nullptr) reference.dataset = reference.recovered.get();
    }
    const std::vector<std::string> present = reference.dataset->obs_column_names();
    try {
      reference.label_column = label_column_of(present, options.label_column, fmt::format("obs of {}", path));
    } catch (const InputError& error) {
      if (datasets.size() < 2 || options.label_column.find(',') != std::string::npos) throw;
      throw InputError(fmt::format("{}; references labelled in differently named columns: --label obs:{},obs:COLUMN, each reference "
                                   "reading the first it has",
                                   error.what(), options.label_column));
    }
    std::vector<std::string> wanted{reference.label_column};
    if (!options.group_column.empty() && options.group_column != kGroupByFile) wanted.push_back(options.group_column);
    // CELLxGENE files carry each cell's CL id beside its label: read it when obs has it.
    reference.term_id_column = want_term_id_column(present, reference.label_column, wanted);
    const DataFrame obs = reference.dataset->read_obs_columns(wanted);
    const Column& label_column = obs.at(reference.label_column, fmt::format("obs of {}", path));
    const bool by_file = options.group_column == kGroupByFile;  // each reference is a group
    const Column* group_column =
        options.group_column.empty() || by_file ? nullptr : &obs.at(options.group_column, fmt::format("obs of {}", path));
    const auto n_obs = static_cast<std::size_t>(reference.dataset->n_obs());
    if (mask != nullptr && mask->size() != n_obs) throw InputError(fmt::format("{}: cell mask has {} rows for {} cells", path, mask->size(), n_obs));
    reference.labels.resize(n_obs);
    reference.groups.resize(n_obs);
    reference.labelled.assign(n_obs, 0);
    reference.excluded.assign(n_obs, 0);
    for (std::size_t row = 0; row < n_obs; ++row) {
      if (mask != nullptr) reference.excluded[row] = (*mask)[row] == 0 ? 1 : 0;
      if (reference.excluded[row] != 0) continue;
      if (!label_column.is_missing(row)) reference.labels[row] = label_column.value_as_string(row);
      if (is_unlabelled(reference.labels[row])) {
        if (!reference.labels[row].empty()) reference.missing_spelled = reference.labels[row];
        reference.labels[row].clear();
        ++reference.n_unlabelled;
        continue;
      }
      if (!options.label_renames.empty()) {
        const auto renamed = options.label_renames.find(reference.labels[row]);
        if (renamed != options.label_renames.end()) reference.labels[row] = renamed->second;
      }
      if (reference.labels[row].find('|') != std::string::npos && ++reference.n_multi_labelled == 1) {
        reference.multi_label_example = reference.labels[row];
      }
      reference.labelled[row] = reference.labels[row].empty() ? 0 : 1;
      if (by_file) {
        reference.groups[row] = path;
      } else if (group_column != nullptr) {
        const std::string group = group_value(*group_column, row);
        if (group == kMissingGroup && reference.labelled[row] != 0) ++reference.n_missing_group;
        reference.groups[row] = path + "\x1f" + group;
      }
    }
    if (!reference.term_id_column.empty()) {
      count_label_term_ids(label_column, obs.at(reference.term_id_column, fmt::format("obs of {}", path)), reference.label_term_ids,
                           options.label_renames, &reference.excluded);
    }
    references.push_back(std::move(reference));
  }
  if (cells_per_label(references).empty()) {
    std::vector<std::string> paths;
    for (const auto& reference : references) paths.push_back(reference.path);
    if (std::all_of(references.begin(), references.end(), [](const auto& reference) { return reference.labels.empty(); })) {
      throw InputError(fmt::format("{} {} zero cells: nothing to train on", join_names(paths), paths.size() == 1 ? "has" : "have"));
    }
    throw InputError(fmt::format("{} label{} no cell of {} (every value is missing{})", label_column_phrase(options.label_column),
                                 label_column_names(options.label_column).size() > 1 ? "" : "s", join_names(paths),
                                 options.cell_masks.empty() ? "" : " or masked out"));
  }
  // Logs of unknown normalisation (TPM kept for some genes) in several files, plates of one study:
  // read back in one base, base 2 when any file's values exceed natural logs of millions
  // (choose_normalization's rule), so that a file whose largest values happen to be lower is not
  // read as natural logs (and the files keep one normalisation: a refittable model).
  const bool any_base2 = std::any_of(unknown_logs.begin(), unknown_logs.end(), [](const auto& log) { return log.second > kNaturalLogOfMillionsMax; });
  if (unknown_logs.size() >= 2 && any_base2) {
    for (const auto& [r, largest] : unknown_logs) {
      references[r].normalization = NormalizationChoice::kRelog2Cp10k;
      std::string& said = references[r].matrix_note;
      said += fmt::format("{}logs of unknown normalisation (TPM, FPKM or read counts?) in {} of the references: read back as log2(1 + x) "
                          "in each (values of one exceed natural logs of millions) and normalised as counts",
                          said.empty() ? "" : "; ", unknown_logs.size());
    }
  }
  std::string note = unify_label_spellings(references);
  // A class of one cell can be neither learnt nor validated: left out, as CellTypist and
  // SingleR would keep it only to predict it from one cell.
  std::map<std::string, std::int64_t> cells = cells_per_label(references);
  std::vector<std::string> singletons;
  for (const auto& [label, count] : cells) {
    if (count == 1) singletons.push_back(label);
  }
  // (with fewer than two classes left, training stops anyway: its message names the singletons)
  if (!singletons.empty() && singletons.size() + 2 <= cells.size()) {
    for (auto& reference : references) {
      for (std::size_t row = 0; row < reference.labels.size(); ++row) {
        if (reference.labelled[row] != 0 && cells[reference.labels[row]] == 1) reference.labelled[row] = 0;
      }
    }
    note += fmt::format("{}class{} {} ha{} a single cell: left out (a class needs 2 cells to be learnt and validated)", note.empty() ? "" : "; ",
                        singletons.size() == 1 ? "" : "es", join_names(singletons, 8), singletons.size() == 1 ? "s" : "ve");
  }
  // A class of a few cells is rarely predicted (pbmc3k with 2 of its DCs kept: 2 of its 32 DCs
  // called DC) and gets no resemblance profile: said, as CellTypist and SingleR say nothing.
  std::vector<std::string> few;
  for (const auto& [label, count] : cells) {
    if (count >= 2 && count < kSimilarityMinClassCells) few.push_back(fmt::format("'{}' ({} cells)", label, count));
  }
  if (!few.empty()) {
    note += fmt::format("{}class{} {} ha{} fewer than {} labelled cells: such a class is rarely predicted, and the check whether query "
                        "cells resemble the reference's types has no profile of it; more reference cells of it (or merging it into a "
                        "related class) help",
                        note.empty() ? "" : "; ", few.size() == 1 ? "" : "es", detail::some_of(few, 8, ", "), few.size() == 1 ? "s" : "ve",
                        kSimilarityMinClassCells);
  }
  references.front().label_note = std::move(note);
  return references;
}

std::string ontology_term_id_column(const std::string& label_column) { return label_column + "_ontology_term_id"; }


std::string label_column_of(const std::vector<std::string>& present, const std::string& label_column, const std::string& where) {
  const auto has = [&present](const std::string& name) { return std::find(present.begin(), present.end(), name) != present.end(); };
  if (has(label_column)) return label_column;
  std::vector<std::string> tried;
  for (const std::string& name : label_column_names(label_column)) {
    if (has(name)) return name;
    tried.push_back(fmt::format("'{}'", name));
  }
  throw InputError(fmt::format("{}: no column {} (available: {})", where, tried.size() < 2 ? fmt::format("'{}'", label_column) : detail::some_of(tried, tried.size(), " nor "),
                               present.empty() ? std::string("none") : detail::some_of(present, 30)));
}

std::string label_columns_text(const std::string& label_column) {
  const std::vector<std::string> names = label_column_names(label_column);
  if (names.size() < 2) return "obs:" + label_column;
  return fmt::format("obs:{}", fmt::join(names, ",obs:"));
}

std::string want_term_id_column(const std::vector<std::string>& present, const std::string& label_column, std::vector<std::string>& wanted) {
  const std::string column = ontology_term_id_column(label_column);
  if (std::find(present.begin(), present.end(), column) == present.end() || std::find(wanted.begin(), wanted.end(), column) != wanted.end()) return "";
  wanted.push_back(column);
  return column;
}

bool take_data_term_id(const std::string& label, const std::map<std::string, std::string>& data_ids, const Ontology* ontology, LabelMatch& match) {
  const auto given = data_ids.find(label);
  if (given == data_ids.end() || (ontology != nullptr && !ontology->contains(given->second))) return false;
  match.cl_id = given->second;
  match.cl_label = ontology != nullptr ? ontology->label(given->second) : std::string();
  match.candidates.clear();
  return true;
}

void count_label_term_ids(const Column& labels, const Column& term_ids, LabelTermIds& ids, const std::map<std::string, std::string>& label_renames,
                          const std::vector<std::uint8_t>* excluded) {
  const std::size_t n = std::min(labels.size(), term_ids.size());
  const auto add = [&](std::string label, const std::string& id, std::int64_t count) {
    if (is_missing_label(label) || !id.starts_with("CL:")) return;
    if (const auto renamed = label_renames.find(label); renamed != label_renames.end()) label = renamed->second;
    ids[label][id] += count;
  };
  const auto kept = [&](std::size_t row) { return excluded == nullptr || row >= excluded->size() || (*excluded)[row] == 0; };
  if (labels.kind == ColumnKind::kCategorical && term_ids.kind == ColumnKind::kCategorical) {
    // Count code pairs: a million-cell obs without a string per cell.
    std::map<std::pair<std::int32_t, std::int32_t>, std::int64_t> pairs;
    for (std::size_t row = 0; row < n; ++row) {
      const std::int32_t a = labels.codes[row];
      const std::int32_t b = term_ids.codes[row];
      if (a >= 0 && b >= 0 && kept(row)) ++pairs[{a, b}];
    }
    for (const auto& [codes, count] : pairs) {
      add(labels.categories[static_cast<std::size_t>(codes.first)], term_ids.categories[static_cast<std::size_t>(codes.second)], count);
    }
    return;
  }
  for (std::size_t row = 0; row < n; ++row) {
    if (labels.is_missing(row) || term_ids.is_missing(row) || !kept(row)) continue;
    add(labels.value_as_string(row), term_ids.value_as_string(row), 1);
  }
}

std::map<std::string, std::string> most_frequent_term_ids(const LabelTermIds& ids, const std::string& column, std::vector<std::string>* warnings) {
  std::map<std::string, std::string> result;
  for (const auto& [label, counts] : ids) {
    if (counts.empty()) continue;
    auto best = counts.begin();  // ordered by id: the smallest id wins a tie
    std::int64_t total = 0;
    for (auto it = counts.begin(); it != counts.end(); ++it) {
      total += it->second;
      if (it->second > best->second) best = it;
    }
    result[label] = best->first;
    if (counts.size() > 1 && warnings != nullptr) {
      warnings->push_back(fmt::format("label '{}' carries {} Cell Ontology ids in obs:{}: {} ({} of {} cells) taken", label, counts.size(), column,
                                      best->first, best->second, total));
    }
  }
  return result;
}

LabelHarmonization harmonize_labels(const std::set<std::string>& labels, const Ontology* ontology, const std::string& label_map,
                                    const std::string& label_map_dataset, bool rename, const std::map<std::string, std::string>& data_ids,
                                    std::map<std::string, std::string>* sources) {
  if (ontology == nullptr && label_map.empty() && data_ids.empty()) {
    throw InputError("--harmonize-labels needs the Cell Ontology or a label map (--label-map TSV)");
  }
  // With `rename` labels become the table's terms, so its ids must be the ontology's (load_table
  // checks them); a flat model records them as given, so that an id newer than the installed
  // ontology stays usable (the ontology's names still map the labels the table lacks).
  // (ids as given: an obsolete one is followed to its replacement below, with a warning)
  LabelMapperOptions as_given;
  as_given.follow_replaced_by = false;
  LabelMapper mapper(rename ? ontology : nullptr, as_given);
  if (!label_map.empty()) mapper.load_table(label_map);
  const LabelMapper names(ontology, as_given);
  LabelHarmonization result;
  if (std::string note = mapper.unknown_dataset_note(label_map_dataset); !note.empty()) result.warnings.push_back(std::move(note));
  std::vector<std::string> unknown_ids;  // "label (CL:...)" of table ids the ontology lacks
  std::vector<std::string> obsolete_ids;  // ... and of ids it marks obsolete, without a replacement
  std::vector<std::string> replaced_ids;  // ... with one
  std::vector<std::string> misnamed;      // labels naming another term than their cells' id (unrelated)
  std::vector<std::string> coarsened;     // labels naming a term below their cells' id
  std::map<std::string, std::set<std::vector<std::string>>> readings;  // name -> its labels' alternatives
  for (const auto& label : labels) {
    LabelMatch found = mapper.map_preferring(label, label_map_dataset);
    // The data's own id (CELLxGENE's cell_type_ontology_term_id) before the ontology's names.
    const bool from_data = found.kind != LabelMatchKind::kUserMap && take_data_term_id(label, data_ids, ontology, found);
    if (!from_data && found.kind != LabelMatchKind::kUserMap && !rename && ontology != nullptr) found = names.map(label);
    const std::string source = std::string(from_data                                    ? "data"
                                           : found.kind == LabelMatchKind::kUserMap      ? "label map"
                                           : found.kind == LabelMatchKind::kIdentifier ? "CL id"
                                           : found.kind == LabelMatchKind::kSynonym    ? "CL synonym"
                                           : found.kind == LabelMatchKind::kCommonAncestor ? "common ancestor of its CL names"
                                           : found.kind == LabelMatchKind::kShorthand  ? "shorthand"
                                                                                       : "CL name") +
                               (found.plural ? " (plural)" : "");
    if (!found.mapped()) {
      result.unmapped.push_back(label);
      if (!found.reason.empty()) result.unmapped_reasons[label] = found.reason;
      if (found.kind == LabelMatchKind::kAmbiguous) {
        for (const auto& id : found.candidates) {
          result.ambiguous[label].push_back(ontology != nullptr && ontology->contains(id) ? fmt::format("{} ({})", id, ontology->label(id)) : id);
        }
      }
      continue;
    }
    if (ontology != nullptr && !ontology->contains(found.cl_id)) {
      unknown_ids.push_back(fmt::format("'{}' ({})", label, found.cl_id));
    } else if (ontology != nullptr && ontology->is_deprecated(found.cl_id)) {
      const std::string replacement = ontology->canonical(found.cl_id);
      if (replacement == found.cl_id) {
        obsolete_ids.push_back(fmt::format("'{}' ({})", label, found.cl_id));
      } else {
        replaced_ids.push_back(fmt::format("'{}' ({}, replaced by {} '{}')", label, found.cl_id, replacement, ontology->label(replacement)));
        // The class records the replacement, as every ontology-aware step reads it (and annotate
        // writes it); under --harmonize-labels it also takes its name.
        found.cl_id = replacement;
        found.cl_label = ontology->label(replacement);
      }
    }
    if (from_data && ontology != nullptr && label.rfind("CL:", 0) != 0 && ontology->contains(found.cl_id)) {
      // A label that names another term than its cells' id: an unrelated one is a stale id column
      // after relabelling; a coarser name with a finer id (an author's "T cell" curated as CD4 T) is
      // the id refining it; a finer name with a coarser id loses the name's depth, said in a note.
      const LabelMatch named = names.map(label);
      if (named.mapped() && ontology->contains(named.cl_id)) {
        const std::string by_name = ontology->canonical(named.cl_id);
        const std::string by_data = ontology->canonical(found.cl_id);
        const std::string text = fmt::format("'{}' ({} by its name, {} '{}' in the data)", label, by_name, found.cl_id, ontology->label(by_data));
        if (by_name == by_data || ontology->is_ancestor(by_name, by_data)) {
          // (the same term, or the id below the name's)
        } else if (ontology->is_ancestor(by_data, by_name)) {
          coarsened.push_back(text);
        } else {
          misnamed.push_back(text);
        }
      }
    }
    std::string name = label;
    if (rename) {
      name = found.cl_label.empty() ? found.cl_id : found.cl_label;
      result.renames[label] = name;
    }
    result.cl_ids[name] = found.cl_id;
    std::vector<std::string> parts = ontology != nullptr ? names.alternatives_within(label, found.cl_id) : std::vector<std::string>();
    if (!parts.empty()) result.label_alternatives[label] = parts;
    readings[name].insert(std::move(parts));
    if (sources != nullptr) (*sources)[name] = source;
  }
  if (!misnamed.empty()) {
    result.warnings.push_back(fmt::format(
        "{} label{} name{} another Cell Ontology term than the id {} cells carry: {}; the data's id is used{} (a stale id column? "
        "correct it, or give the label's id with --label-map TSV, which wins)",
        misnamed.size(), misnamed.size() == 1 ? "" : "s", misnamed.size() == 1 ? "s" : "", misnamed.size() == 1 ? "its" : "their",
        detail::some_of(misnamed, 6), rename ? ", and labels with one id train as one class" : ""));
  }
  if (!coarsened.empty()) {
    result.warnings.push_back(fmt::format(
        "{}{} label{} name{} a finer Cell Ontology term than the id {} cells carry: {}; the data's id is used (give the label's id with "
        "--label-map TSV, which wins, to keep its depth)",
        kNotePrefix, coarsened.size(), coarsened.size() == 1 ? "" : "s", coarsened.size() == 1 ? "s" : "", coarsened.size() == 1 ? "its" : "their",
        detail::some_of(coarsened, 6)));
  }
  for (const auto& [name, read] : readings) {  // (two labels of one name read differently: its term alone)
    if (read.size() == 1 && !read.begin()->empty()) result.alternatives[name] = *read.begin();
  }
  const std::string release = ontology == nullptr || ontology->version().empty() ? std::string() : fmt::format(" (release {})", ontology->version());
  if (!obsolete_ids.empty()) {
    result.warnings.push_back(fmt::format(
        "{} mapped to an obsolete Cell Ontology term{}: it has no parent there, so annotate --hierarchical sums its probability "
        "into no coarser term and the ontology metrics cannot place it; map the label to a current term (--label-map TSV)",
        detail::some_of(obsolete_ids, 6), release));
  }
  if (!replaced_ids.empty()) {
    result.warnings.push_back(fmt::format(
        "{} mapped to an obsolete Cell Ontology term{}: {}; map the label to the current term (--label-map TSV)",
        detail::some_of(replaced_ids, 6), release,
        rename ? "the class is its replacement (named so), as the ontology-aware steps read it"
               : "the class records its replacement's id, as annotate --hierarchical and the ontology metrics read it, and keeps its own name"));
  }
  if (!unknown_ids.empty()) {
    result.warnings.push_back(fmt::format(
        "the label map gives {} an id that the Cell Ontology does not have{}: kept as the class's id, but annotate --hierarchical "
        "and the ontology metrics cannot place it (a newer CL release than the installed one? --ontology FILE)",
        detail::some_of(unknown_ids, 6),
        ontology->version().empty() ? std::string() : fmt::format(" (release {})", ontology->version())));
  }
  return result;
}

std::map<std::string, CoarseLabel> coarse_labels(const std::vector<std::set<std::string>>& labels_by_reference,
                                                 const std::map<std::string, std::string>& cl_ids, const Ontology& ontology,
                                                 const std::map<std::string, std::vector<std::string>>& alternatives) {
  std::map<std::string, TermIndex> term;  // labels with a term of this ontology
  for (const auto& labels : labels_by_reference) {
    for (const auto& label : labels) {
      const auto id = cl_ids.find(label);
      if (id == cl_ids.end()) continue;
      if (const auto index = ontology.find_index(id->second)) term[label] = ontology.canonical(*index);  // (an obsolete id: its replacement)
    }
  }
  const auto at_or_below = [&](const std::string& upper, const std::string& lower) {
    const TermIndex a = term.at(upper);
    const TermIndex b = term.at(lower);
    return a == b || ontology.is_ancestor(a, b);
  };
  // Per (label, reference): the pool's labels below it that the reference left to it.
  std::map<std::string, CoarseLabel> result;
  std::set<std::string> classes;  // labels some reference uses with nothing left below
  for (std::size_t r = 0; r < labels_by_reference.size(); ++r) {
    const auto& used = labels_by_reference[r];
    for (const auto& label : used) {
      if (term.count(label) == 0) {
        classes.insert(label);
        continue;
      }
      std::vector<TermIndex> within;  // the alternatives the label names ("T/NK cells": T cell, NK cell), if any
      if (const auto named = alternatives.find(label); named != alternatives.end()) {
        for (const auto& id : named->second) {
          if (const auto index = ontology.find_index(id)) within.push_back(ontology.canonical(*index));
        }
      }
      // The reference's other labels under this one: a coarse label beside them names its other
      // cells ("T cell" beside "CD4 T": the T cells that are not CD4), so those classes are not
      // its. A label of alternatives names its types outright ("Naive CD4 T|Memory CD4 T",
      // CellTypist's multi-label, beside the two): its cells are of one of them, the reference's
      // own classes of them included.
      std::vector<std::string> own_below;
      for (const auto& other : used) {
        if (within.empty() && other != label && term.count(other) != 0 && at_or_below(label, other) && term.at(other) != term.at(label)) {
          own_below.push_back(other);
        }
      }
      std::vector<std::string> left;
      for (const auto& entry : term) {
        const std::string& other = entry.first;  // a named variable: lambdas may not capture a structured binding (C++17)
        if (other == label || entry.second == term.at(label) || !at_or_below(label, other)) continue;
        const bool taken = std::any_of(own_below.begin(), own_below.end(), [&](const std::string& mine) { return at_or_below(mine, other); });
        if (!taken) left.push_back(other);
      }
      if (!within.empty()) {
        // Only the classes at or below an alternative; where the pool has none below one ("CD4 T"
        // under a pool's "T cell"), those above it (a CD4 T cell is a T cell).
        const auto at_or_under = [&](TermIndex upper, TermIndex lower) { return upper == lower || ontology.is_ancestor(upper, lower); };
        std::vector<TermIndex> reached;  // alternatives with a label of the pool at or below them
        for (const TermIndex part : within) {
          if (std::any_of(left.begin(), left.end(), [&](const std::string& other) { return at_or_under(part, term.at(other)); })) reached.push_back(part);
        }
        std::erase_if(left, [&](const std::string& other) {
          const TermIndex t = term.at(other);
          return std::none_of(within.begin(), within.end(), [&](TermIndex part) {
            const bool unreached = std::find(reached.begin(), reached.end(), part) == reached.end();
            return at_or_under(part, t) || (unreached && ontology.is_ancestor(t, part));
          });
        });
      }
      if (left.empty()) {
        classes.insert(label);
      } else {
        result[label].classes[static_cast<std::int32_t>(r)] = std::move(left);
      }
    }
  }
  // Sets hold classes only: the label itself when it is a class, never a label that is coarse
  // everywhere (its own classes below it are in the set already).
  for (auto& [label, coarse] : result) {
    for (auto& [reference, members] : coarse.classes) {
      std::erase_if(members, [&classes](const std::string& member) { return classes.count(member) == 0; });
      if (classes.count(label) != 0) members.push_back(label);
      std::sort(members.begin(), members.end());
    }
  }
  return result;
}

namespace {

/// "'lymphocyte' of B lies above classes of another (...)" for each label of one set (a
/// reference's labels, or those of one source file of an extract matrix) above labels another set
/// uses, `names` naming the sets.
std::vector<std::string> labels_above_others(const std::vector<std::set<std::string>>& labels_by_set, const std::vector<std::string>& names,
                                             const std::map<std::string, std::string>& cl_ids, const Ontology& ontology) {
  std::vector<std::string> problems;
  for (const auto& [label, coarse] : coarse_labels(labels_by_set, cl_ids, ontology)) {
    const auto& [set, below] = *coarse.classes.begin();
    problems.push_back(fmt::format("'{}' of {} lies above classes of another ({})", label, names[static_cast<std::size_t>(set)], join_names(below, 3)));
  }
  return problems;
}

}  // namespace

const std::vector<std::string>* TrainingData::coarse_classes(const std::string& label, std::int32_t reference) const {
  const auto found = coarse_labels.find(label);
  if (found == coarse_labels.end()) return nullptr;
  const auto in_reference = found->second.classes.find(reference);
  return in_reference == found->second.classes.end() || in_reference->second.empty() ? nullptr : &in_reference->second;
}

namespace {

/// Labels of annotations that name no cell type but a quality call or a shrug ("Doublets", "low
/// quality", "Other"): a class of them is trained and predicted like a type.
bool names_no_cell_type(std::string_view label) {
  static const std::set<std::string, std::less<>> kNoType = {
      "doublet", "doublets", "multiplet", "multiplets", "low quality", "low quality cell", "low quality cells", "lowq", "debris",
      "dead", "dead cell", "dead cells", "dying cells", "damaged", "damaged cells", "ambient", "ambient rna", "empty", "empty droplet",
      "empty droplets", "unclassified", "ambiguous", "undetermined", "unresolved", "uncertain", "other", "others", "mixed",
      "contamination", "contaminant", "contaminants", "junk", "none", "?"};
  return kNoType.count(normalize_label(label)) != 0;
}

/// "; 'A/B' fits several terms: X or Y" for labels several terms fit ("" when none).
std::string ambiguity_note(const std::map<std::string, std::vector<std::string>>& ambiguous) {
  std::vector<std::string> said;
  for (const auto& [label, candidates] : ambiguous) {
    std::string either;
    for (const auto& candidate : candidates) either += (either.empty() ? "" : " or ") + candidate;
    said.push_back(fmt::format("'{}': {}", label, either));
  }
  return said.empty() ? std::string() : fmt::format("; several terms fit {}", detail::some_of(said, 4, "; "));
}

/// "; 'Hepatocytes/T cells': the common ancestor of its parts ... is too broad" for unmapped labels
/// with a reason; numbers are said once ("" when none has a reason).
std::string unmapped_reasons_note(const std::map<std::string, std::string>& reasons) {
  std::vector<std::string> said;
  std::vector<std::string> numbers;
  for (const auto& [label, reason] : reasons) {
    if (reason == kNumberLabelReason) {
      numbers.push_back(label);
    } else {
      said.push_back(fmt::format("'{}': {}", label, reason));
    }
  }
  std::string note = said.empty() ? std::string() : "; " + detail::some_of(said, 4, "; ");
  if (!numbers.empty()) {
    note += fmt::format("; {} {} number{} (cluster ids?), not cell type{}", detail::some_of(numbers, 4),
                        numbers.size() == 1 ? "is a" : "are", numbers.size() == 1 ? "" : "s", numbers.size() == 1 ? "" : "s");
  }
  return note;
}

/// Whether two terms share a close ancestor (Ontology::close_ancestor, the bar of LabelMapper's
/// alternatives: "eukaryotic cell" relates nothing, nor "neuron" the retina's alpha cell and
/// pancreatic D cell).
bool related_terms(const Ontology& ontology, TermIndex a, TermIndex b) {
  const auto lowest = ontology.lowest_common_ancestors(a, b);
  return std::any_of(lowest.begin(), lowest.end(), [&](TermIndex common) { return ontology.close_ancestor(common, {a, b}); });
}

/// Whether a term's name carries another species' tag, as CL's "alpha retinal ganglion cell (Mmus)".
bool names_a_species(const std::string& label) {
  const std::size_t n = label.size();
  return n > 7 && label[n - 7] == ' ' && label[n - 6] == '(' && label[n - 1] == ')' &&
         std::isupper(static_cast<unsigned char>(label[n - 5])) != 0 &&
         std::all_of(label.end() - 4, label.end() - 1, [](char c) { return std::islower(static_cast<unsigned char>(c)) != 0; });
}

/// Warnings on the labels' Cell Ontology ids that the ontology's names gave (not a label map or the
/// data's ids): two labels of one reference naming one term (two classes that compete, "NK cells"
/// and "Natural killer cells"; --harmonize-labels makes them one), and a label mapped through a
/// synonym to a term unrelated to every other label's ("Alpha cells" of a pancreas reference: the
/// retina's "alpha cell").
std::vector<std::string> label_id_warnings(const std::vector<std::set<std::string>>& used, const std::vector<LabelledReference>& references,
                                           const TrainingData& data, const Ontology& ontology, bool harmonized,
                                           const std::string& term_id_source) {
  std::vector<std::string> warnings;
  const auto by_names = [&](const std::string& label) {
    const auto source = data.label_cl_id_sources.find(label);
    return source != data.label_cl_id_sources.end() && source->second != "label map" && source->second != term_id_source;
  };
  const auto term_of = [&](const std::string& label) -> std::optional<TermIndex> {
    const auto id = data.label_cl_ids.find(label);
    if (id == data.label_cl_ids.end()) return std::nullopt;
    const auto found = ontology.find_index(id->second);
    return found ? std::optional<TermIndex>(ontology.canonical(*found)) : std::nullopt;
  };
  if (!harmonized) {
    for (std::size_t r = 0; r < used.size(); ++r) {
      std::map<TermIndex, std::vector<std::string>> labels_of_term;
      for (const auto& label : used[r]) {
        if (const auto term = term_of(label); term && by_names(label)) labels_of_term[*term].push_back(label);
      }
      for (const auto& [term, labels] : labels_of_term) {
        if (labels.size() < 2) continue;
        warnings.push_back(fmt::format("{}: {} name one Cell Ontology term ({}, {}) and train as {} classes that compete: give them one "
                                       "spelling (--harmonize-labels makes every label its term)",
                                       references[r].path, join_names(labels, 4), ontology.term(term).label, ontology.term(term).id,
                                       labels.size()));
      }
    }
  }
  std::set<std::string> all_labels;
  for (const auto& labels : used) all_labels.insert(labels.begin(), labels.end());
  std::vector<std::pair<std::string, TermIndex>> terms;
  for (const auto& label : all_labels) {
    if (const auto term = term_of(label)) terms.emplace_back(label, *term);
  }
  for (const auto& [label, term] : terms) {
    const auto source = data.label_cl_id_sources.find(label);
    if (source == data.label_cl_id_sources.end() || !source->second.starts_with("CL synonym")) continue;
    const bool alone = terms.size() > 1 && std::none_of(terms.begin(), terms.end(), [&, &label = label, term = term](const auto& other) {
      return other.first != label && related_terms(ontology, term, other.second);
    });
    const bool species = names_a_species(ontology.term(term).label);
    if (alone || species) {
      warnings.push_back(fmt::format("label '{}' maps through a Cell Ontology synonym to {} ({}), {}: if it means another cell, name its id "
                                     "with --label-map TSV (columns label, cl_id)",
                                     label, ontology.term(term).label, ontology.term(term).id,
                                     species ? "a term of another species" : "a term unrelated to every other label's"));
    }
  }
  return warnings;
}

/// The GenePT-w route reads a gene's vector by its id: a gene table of the user's own numbering
/// (another species' genes under ids 1..N) would read the store's genes of those ids, other genes
/// (a fly table's id 1 is the human store's A1BG). InputError when, of the store's genes under the
/// references' ids (50 or more), most carry another symbol than the table's (case aside).
void check_store_names_the_table_genes(const GeneStore& store, const GeneTable& table, const std::vector<std::int64_t>& reference_genes) {
  std::size_t shared = 0;
  std::size_t agree = 0;
  std::string example;
  for (const std::int64_t id : reference_genes) {
    const std::int32_t row = store.find_entrez(id);
    const std::int32_t gene = table.find_entrez(id);
    if (row < 0 || gene == kNoGene) continue;
    ++shared;
    const std::string& in_table = table.gene(gene).symbol;
    const std::string& in_store = store.symbols()[static_cast<std::size_t>(row)];
    if (genes_detail::ascii_lower(in_table) == genes_detail::ascii_lower(in_store)) {
      ++agree;
    } else if (example.empty()) {
      example = fmt::format("id {}: '{}' in the table, '{}' in the store", id, in_table, in_store);
    }
  }
  if (shared >= 50 && 2 * agree < shared) {
    throw InputError(fmt::format(
        "the gene table {} and the gene store ({} vectors) name other genes under the same ids ({} of {} symbols agree; {}): the store's vectors "
        "are of other genes (another species, or ids of your own numbering); build a store for this table (celltyper genes embed "
        "--gene-table FILE), or train on expression (the default route)",
        table.source().empty() ? std::string("in memory") : table.source(), store.provenance().backend, agree, shared, example));
  }
}

}  // namespace

TrainingData training_features(const std::vector<const Dataset*>& datasets, const TrainOptions& options, const GeneStore& store,
                               const GeneTable& table) {
  if (datasets.empty()) throw InputError("train: no reference dataset given");
  check_options(options);
  std::vector<LabelledReference> references = read_labelled_cells(datasets, options);
  TrainingData data;
  data.features = options.features;
  // (every labelled cell without a group: the validation split says so, once)
  std::int64_t n_labelled = 0;
  std::int64_t n_missing_group = 0;
  for (const auto& reference : references) {
    n_labelled += std::count(reference.labelled.begin(), reference.labelled.end(), std::uint8_t{1});
    n_missing_group += reference.n_missing_group;
  }
  const bool every_group_missing = n_missing_group > 0 && n_missing_group == n_labelled;
  for (const auto& reference : references) {
    if (!reference.matrix_note.empty()) data.cells.warnings.push_back(fmt::format("{}{}: {}", kNotePrefix, reference.path, reference.matrix_note));
    // Antibody tags, peaks, control probes beside the genes: said (a matrix of them alone: the
    // resolver's warning).
    if (const GeneResolveResult genes = resolve_genes(table, reference.dataset->read_var_of(reference.matrix), options.embed.genes);
        genes.n_other_features > 0) {
      if (genes.n_other_features == genes.n_vars()) throw InputError(message_about(reference.path, genes.other_features_message()));
      data.cells.warnings.push_back(message_about(reference.path, genes.other_features_message()));
    }
    // (the copies are what reading counts back is for: no word of them without augmentation)
    if (!reference.recovered_warning.empty() && options.augment_depth) {
      data.cells.warnings.push_back(fmt::format("{}: {}", reference.path, reference.recovered_warning));
    }
    if (!reference.label_note.empty()) data.cells.warnings.push_back(fmt::format("{}: {}", label_columns_text(options.label_column), reference.label_note));
    // (with --harmonize-labels such a label is read as alternatives, as "T/NK cells" is: it trains
    // as the classes below the types' common Cell Ontology term, and the harmonizing notes say so)
    if (reference.n_multi_labelled > 0 && (!options.harmonize_labels || options.flat_labels)) {
      data.cells.warnings.push_back(fmt::format(
          "{}: {} cell{} of obs:{} have labels joining several types with '|' (CellTypist's multi-labels, e.g. '{}'): each such label "
          "trains as a class of its own; relabel such cells with one type, leave them out (as 'Unassigned'), or {} "
          "to train each as either of its types (the classes below their common Cell Ontology term; every class then takes its "
          "Cell Ontology name)",
          reference.path, reference.n_multi_labelled, reference.n_multi_labelled == 1 ? "" : "s", reference.label_column, reference.multi_label_example,
          options.flat_labels ? "train without --flat-labels" : "pass --harmonize-labels"));
    }
    if (reference.n_unlabelled > 0) {
      data.cells.warnings.push_back(unlabelled_cells_warning(reference.path, reference.n_unlabelled, reference.label_column, reference.missing_spelled) +
                                        (options.cell_table.empty()
                                             ? std::string()
                                             : fmt::format("; a cell whose name is not in the first column of {} has no label (names must match "
                                                           "exactly, barcode suffixes such as '-1' included)",
                                                           options.cell_table)));
    }
    if (reference.n_missing_group > 0 && !every_group_missing) {
      data.cells.warnings.push_back(fmt::format("{}: {} labelled cell{} without a value in obs:{} form a group of their own, '{}'", reference.path,
                                                reference.n_missing_group, reference.n_missing_group == 1 ? "" : "s", options.group_column,
                                                kMissingGroup));
    }
  }
  // Cell Ontology ids of the labels: --label-map, the CL ids the data carries beside its labels
  // (CELLxGENE's cell_type_ontology_term_id), the ontology's ids, names and exact synonyms.
  std::set<std::string> distinct;
  LabelTermIds term_ids;
  std::string term_id_column;  // every reference has the same label column, so the same id column
  // Cells of each label, every cell with one (those of classes too small to learn, left out of
  // `labelled` by now, included): a column of per-cell values reads as labels below.
  for (const auto& reference : references) {
    std::map<std::string, std::int64_t> cells_of;
    for (std::size_t row = 0; row < reference.labels.size(); ++row) {
      if (reference.labelled[row] != 0) distinct.insert(reference.labels[row]);
      if (!reference.labels[row].empty()) ++cells_of[reference.labels[row]];
    }
    // A column of per-cell values (nCount_RNA, a score, a barcode) read as labels: hundreds of
    // classes of a cell or two each, which training drops or cannot learn (pbmc3k's nCount_RNA:
    // 1,736 values among 2,638 cells, validation accuracy 0.005). Per reference: pooled with
    // another's cell types (labels in differently named columns), it is as wrong.
    std::int64_t n_cells = 0;
    std::int64_t singletons = 0;
    std::string example;
    for (const auto& [label, count] : cells_of) {
      n_cells += count;
      if (count != 1) continue;
      ++singletons;
      if (example.empty()) example = label;
    }
    const auto n_values = static_cast<std::int64_t>(cells_of.size());
    if (n_values > 100 && 2 * n_values > n_cells && 2 * singletons > n_values) {  // (under 2 cells a value, most on one cell)
      throw InputError(fmt::format(
          "{}obs:{} holds {} distinct values among {} labelled cells, {} of them on one cell each (e.g. '{}'): per-cell values (a count, a "
          "score, a cell id), not cell types; name the column of cell types with --label obs:COLUMN",
          references.size() > 1 ? reference.path + ": " : std::string(), reference.label_column, cells_of.size(), n_cells, singletons, example));
    }
    for (const auto& [label, counts] : reference.label_term_ids) {
      for (const auto& [id, count] : counts) term_ids[label][id] += count;
    }
    if (!reference.term_id_column.empty()) term_id_column = reference.term_id_column;
  }
  const std::string term_id_source = "obs:" + term_id_column;
  const std::map<std::string, std::string> data_ids = most_frequent_term_ids(term_ids, term_id_column, &data.cells.warnings);
  std::map<std::string, std::vector<std::string>> label_alternatives;  // label (as trained) -> the alternatives it names
  if (options.harmonize_labels || options.ontology != nullptr || !options.label_map.empty() || !data_ids.empty()) {
    std::map<std::string, std::string> sources;
    const LabelHarmonization mapped = harmonize_labels(distinct, options.ontology, options.label_map, options.label_map_dataset,
                                                       options.harmonize_labels, data_ids, &sources);
    data.label_cl_ids = mapped.cl_ids;
    label_alternatives = mapped.alternatives;
    data.cells.warnings.insert(data.cells.warnings.end(), mapped.warnings.begin(), mapped.warnings.end());
    for (auto& [label, source] : sources) data.label_cl_id_sources[label] = source == "data" ? term_id_source : source;
    if (!options.harmonize_labels && !mapped.unmapped.empty() && options.warn_unmapped_labels) {
      // (annotate --hierarchical leaves an uncertain cell of such a class Unassigned: no coarser term)
      // (a note: the labels are as good without; only ontology-aware prediction and metrics need ids)
      data.cells.warnings.push_back(fmt::format(
          "{}{} of {} labels have no Cell Ontology id ({}): annotate --hierarchical and the ontology metrics cannot place them; "
          "name them with --label-map TSV (columns label, cl_id){}",
          kNotePrefix, mapped.unmapped.size(), distinct.size(), join_names(mapped.unmapped, 8),
          ambiguity_note(mapped.ambiguous) + unmapped_reasons_note(mapped.unmapped_reasons)));
    } else if (options.log && !options.harmonize_labels) {
      options.log(fmt::format("Cell Ontology ids for {} of {} labels", mapped.cl_ids.size(), distinct.size()));
    }
    if (options.harmonize_labels) {  // every label becomes its term's name
      for (auto& reference : references) {
        for (auto& label : reference.labels) {
          const auto renamed = mapped.renames.find(label);
          if (renamed != mapped.renames.end()) label = renamed->second;
        }
      }
      if (!mapped.unmapped.empty()) {
        data.cells.warnings.push_back(fmt::format("--harmonize-labels: {} label{} without a Cell Ontology term kept as given: {}{}", mapped.unmapped.size(),
                                                  mapped.unmapped.size() == 1 ? "" : "s", join_names(mapped.unmapped),
                                                  unmapped_reasons_note(mapped.unmapped_reasons)));
      }
    }
  }
  // The labels each reference uses (after any harmonisation): mixed granularity and its warning.
  std::vector<std::set<std::string>> used(references.size());
  for (std::size_t r = 0; r < references.size(); ++r) {
    for (std::size_t row = 0; row < references[r].labels.size(); ++row) {
      if (references[r].labelled[row] != 0) used[r].insert(references[r].labels[row]);
    }
  }
  for (std::size_t r = 0; r < references.size(); ++r) {  // (the same words in every fold of cv, which says them once)
    std::vector<std::string> no_type;
    for (const auto& label : used[r]) {
      if (names_no_cell_type(label)) no_type.push_back(label);
    }
    if (!no_type.empty()) {
      data.cells.warnings.push_back(fmt::format(
          "{}: labels of obs:{} that name no cell type ({}) train as classes, and query cells can be called so; relabel their cells "
          "'Unassigned' (left out of training) unless you want them predicted",
          references[r].path, references[r].label_column, join_names(no_type, 6)));
    }
  }
  if (options.harmonize_labels && options.ontology != nullptr && !options.flat_labels) {  // mixed granularity
    data.coarse_labels = coarse_labels(used, data.label_cl_ids, *options.ontology, label_alternatives);
    for (const auto& [label, coarse] : data.coarse_labels) {
      for (const auto& [r, classes] : coarse.classes) {
        if (options.log) {
          options.log(fmt::format("coarse label '{}' of {}: trains as one of {}", label, references[static_cast<std::size_t>(r)].path,
                                  join_names(classes, 12)));
        }
      }
    }
  }
  if (!options.harmonize_labels && references.size() > 1 && !data.label_cl_ids.empty()) {
    // Pooled flat without --harmonize-labels: labels at different depths compete as classes, and
    // two names of one term are two classes. Say so (CELLxGENE files carry the ids to tell).
    std::vector<std::string> problems;
    if (options.ontology != nullptr) {
      std::vector<std::string> paths;
      for (const auto& reference : references) paths.push_back(reference.path);
      problems = labels_above_others(used, paths, data.label_cl_ids, *options.ontology);
    }
    // (two labels of one reference that its label map sends to one term are its own business)
    std::map<std::string, std::vector<std::string>> labels_of_id;
    std::map<std::string, std::set<std::size_t>> references_of_id;
    for (const auto& [label, id] : data.label_cl_ids) labels_of_id[id].push_back(label);
    for (std::size_t r = 0; r < used.size(); ++r) {
      for (const auto& label : used[r]) {
        if (const auto id = data.label_cl_ids.find(label); id != data.label_cl_ids.end()) references_of_id[id->second].insert(r);
      }
    }
    for (const auto& [id, labels] : labels_of_id) {
      if (labels.size() > 1 && references_of_id[id].size() > 1) problems.push_back(fmt::format("{} name one term ({})", join_names(labels, 4), id));
    }
    if (!problems.empty()) {
      data.cells.warnings.push_back(fmt::format(
          "{}: {}; trained flat, each label is a class of its own that competes with its relatives. --harmonize-labels (train, "
          "cv, annotate --reference) makes the labels Cell Ontology terms and trains a coarse label as one of the classes below it",
          kMixedDepthsWarning,
          detail::some_of(problems, 3, "; ")));
    }
  }
  if (options.ontology != nullptr && !data.label_cl_ids.empty() && options.warn_unmapped_labels) {
    for (std::string& warning : label_id_warnings(used, references, data, *options.ontology, options.harmonize_labels, term_id_source)) {
      data.cells.warnings.push_back(std::move(warning));
    }
  }
  if (options.ontology != nullptr && !data.label_cl_ids.empty()) {
    // An extract training matrix joins cells of several files (obs source_file) as one reference:
    // labels are told apart per reference, so a coarse label of one file competes with the
    // finer classes of another (with or without --harmonize-labels), and nothing above says so.
    for (const auto& reference : references) {
      if (!is_extract_output(*reference.dataset)) continue;
      const std::vector<std::string> names = reference.dataset->obs_column_names();
      if (std::find(names.begin(), names.end(), "source_file") == names.end()) continue;
      const Column sources = reference.dataset->read_obs_columns({"source_file"}).at("source_file", reference.path);
      std::map<std::string, std::set<std::string>> by_source;
      for (std::size_t row = 0; row < reference.labels.size(); ++row) {
        if (reference.labelled[row] != 0) by_source[sources.value_as_string(row)].insert(reference.labels[row]);
      }
      if (by_source.size() < 2) continue;
      std::vector<std::string> source_names;
      std::vector<std::set<std::string>> labels_by_source;
      for (auto& [source, labels] : by_source) {
        source_names.push_back(source);
        labels_by_source.push_back(std::move(labels));
      }
      const std::vector<std::string> problems = labels_above_others(labels_by_source, source_names, data.label_cl_ids, *options.ontology);
      if (problems.empty()) continue;
      data.cells.warnings.push_back(fmt::format(
          "{}: {} joins the cells of {} files (obs source_file): {}; as one reference its coarse labels are classes that compete "
          "with their relatives{}: train on the files themselves (--reference A.h5ad,B.h5ad --harmonize-labels) to train a coarse "
          "label as one of the classes below it",
          kMixedDepthsWarning, reference.path, by_source.size(), detail::some_of(problems, 3, "; "),
          options.harmonize_labels ? " (--harmonize-labels tells coarse labels apart per reference file)" : ""));
    }
  }
  for (const auto& [label, classes] : options.coarse_label_sets) {
    for (std::size_t r = 0; r < references.size(); ++r) data.coarse_labels[label].classes[static_cast<std::int32_t>(r)] = classes;
  }
  for (const auto& reference : references) data.reference_names.push_back(reference.path);
  const bool expression = options.features == kFeaturesExpression;
  // Every gene the references measured (Entrez ids): the reference sample's columns, and with
  // --restrict-genes the genes a cell's library size is summed over (the allowed genes the
  // references have), on the references and later on the query.
  std::vector<GeneResolveResult> resolved(references.size());
  std::vector<std::int64_t> reference_genes;
  bool has_expression = true;
  for (std::size_t r = 0; r < references.size(); ++r) {
    const Dataset& dataset = *references[r].dataset;
    if (is_extract_output(dataset)) {
      has_expression = false;
      continue;
    }
    resolved[r] = resolve_dataset_genes(table, dataset, resolve_matrix_source(dataset, references[r].matrix), options.embed.genes);
    data.references_mouse_cased = data.references_mouse_cased || resolved[r].mouse_cased_mismatch;
    for (const std::int32_t gene : resolved[r].gene_index) {
      if (gene != kNoGene) reference_genes.push_back(table.gene(gene).entrez_id);
    }
  }
  std::sort(reference_genes.begin(), reference_genes.end());
  reference_genes.erase(std::unique(reference_genes.begin(), reference_genes.end()), reference_genes.end());
  // Several references whose genes differ (TrainOptions::gene_pooling): the genes every
  // reference measured are the only ones ("shared", and the GenePT-w route), or a reference's
  // missing genes are imputed and library sizes scaled to one reference ("impute",
  // pooled_library_scopes).
  std::vector<std::int64_t> sample_genes = reference_genes;
  std::vector<std::int64_t> allowed_ids = options.restrict_genes;
  std::sort(allowed_ids.begin(), allowed_ids.end());
  allowed_ids.erase(std::unique(allowed_ids.begin(), allowed_ids.end()), allowed_ids.end());
  std::vector<std::vector<std::int64_t>> measured(references.size());  // per reference, ascending
  bool impute = false;
  if (options.gene_pooling != "all" && has_expression && references.size() > 1) {
    std::vector<std::int64_t> shared;
    for (std::size_t r = 0; r < references.size(); ++r) {
      std::vector<std::int64_t>& genes = measured[r];
      for (const std::int32_t gene : resolved[r].gene_index) {
        if (gene != kNoGene) genes.push_back(table.gene(gene).entrez_id);
      }
      std::sort(genes.begin(), genes.end());
      genes.erase(std::unique(genes.begin(), genes.end()), genes.end());
      shared = r == 0 ? genes : intersect_sorted(shared, genes);
    }
    if (shared.size() < reference_genes.size()) {
      if (shared.empty()) throw InputError(fmt::format("the references {} share no gene", join_names(data.reference_names)));
      std::vector<std::int64_t> within = allowed_ids.empty() ? shared : intersect_sorted(allowed_ids, shared);  // shared and allowed
      if (within.empty()) throw InputError("--restrict-genes: none of its genes is measured by every reference");
      data.n_shared_genes = shared.size();
      impute = expression && options.gene_pooling == "impute";
      if (options.log) {
        options.log(fmt::format("the {} references share {} of their {} genes: {}", references.size(), shared.size(), reference_genes.size(),
                                impute ? "missing genes imputed, library sizes scaled to the reference that measured the most" : "training on the shared genes"));
      }
      if (!impute) {
        allowed_ids = std::move(within);
        sample_genes = std::move(shared);
      }
    }
  }
  if (!expression && has_expression) check_store_names_the_table_genes(store, table, reference_genes);
  const AllowedGenes allowed(allowed_ids);
  data.n_restrict_genes = AllowedGenes(options.restrict_genes).ids().size();
  const GeneVectorSource source{store.dims(),
                                [&store, &allowed](std::int64_t entrez) -> const float* {
                                  if (!allowed.allows(entrez)) return nullptr;
                                  const std::int32_t row = store.find_entrez(entrez);
                                  return row < 0 ? nullptr : store.row(row);
                                },
                                store.identity_hash(),
                                fmt::format("{} store, {} genes, {} dims{}", store.provenance().backend, store.n_genes(), store.dims(),
                                            allowed.restricted() ? fmt::format(", restricted to {} genes", allowed.ids().size()) : "")};

  // References of fewer genes than a transcriptome (one cut to its highly variable genes, or a
  // targeted panel) hold values normalised over every gene, or counts of part of each cell's
  // molecules: a cell's library is summed over the genes the references measured, on the
  // references and on every query, so that a query measuring more genes is normalised as the
  // references were. Summed over all its genes, a query's values of a reference's 2,000 genes
  // were several times smaller than the reference's own (pbmc3k's even cells cut to 2,000 genes
  // annotating its odd cells: accuracy 0.80 vs 0.89). A whole-transcriptome reference keeps
  // every var (the vars no gene table names count too: more molecules, steadier libraries).
  // "impute": each reference's scope below; a query's library over the anchor's genes.
  // The GenePT-w route sums over them too (EmbedOptions::size_factor_genes). Restricted to some
  // genes (--restrict-genes, annotate's refit on a query's genes), both routes sum over the
  // allowed genes the references measured, as the query's own libraries are.
  std::vector<std::int64_t> size_factor_genes;
  if (has_expression && !impute) {
    std::vector<std::int64_t> library;  // empty: every var
    if (allowed.restricted()) {
      library = intersect_sorted(allowed.ids(), reference_genes);
    } else if (!reference_genes.empty() && reference_genes.size() < kTranscriptomeGenes) {
      library = reference_genes;
      if (options.log) {
        options.log(fmt::format("the reference{} measure{} {} genes, fewer than a transcriptome (cut to variable genes, or a panel?): a "
                                "cell's library is summed over them, on every query too",
                                references.size() > 1 ? "s" : "", references.size() > 1 ? "" : "s", reference_genes.size()));
      }
    }
    (expression ? size_factor_genes : data.genes.size_factor_genes) = std::move(library);
  }
  const ExpressionOptions expression_settings = [&] {
    EmbedOptions embed = options.embed;
    embed.num_threads = options.num_threads;
    ExpressionOptions settings = expression_options(embed);
    settings.size_factor_genes = size_factor_genes;
    return settings;
  }();

  std::vector<LibraryScope> scopes;  // "impute": per reference; empty: every reference as expression_settings says
  if (impute) {
    std::size_t anchor = 0;
    scopes = pooled_library_scopes(references, measured, allowed_ids, table, expression_settings, options, anchor);
    size_factor_genes = scopes[anchor].genes;
  }
  if (options.reference_sample_cells > 0 && has_expression && !sample_genes.empty()) {
    sample_references(references, resolved, sample_genes, table, options, data);
  }
  const std::vector<std::int64_t> panel =
      expression ? choose_panel(references, table, expression_settings, scopes, allowed, options, data) : std::vector<std::int64_t>();

  // Features of the usable labelled cells, reference by reference. The expression route streams
  // each block's kept rows (and their thinned copies) straight into cells.features, reserved once:
  // no n x panel intermediate per reference and no regrowth of the whole matrix.
  std::set<std::int64_t> used_genes;
  LabelledFeatures& cells = data.cells;
  if (expression) {
    std::size_t rows = 0;  // at most: the labelled cells, and a copy of each (or the cap) with augmentation
    for (const LabelledReference& reference : references) {
      std::size_t labelled = 0;
      for (std::size_t row = 0; row < reference.labels.size(); ++row) labelled += reference.excluded[row] == 0 && reference.labelled[row] != 0 ? 1 : 0;
      const auto cap = options.augment_depth_max_copies > 0 ? static_cast<std::size_t>(options.augment_depth_max_copies) : labelled;
      rows += labelled + (options.augment_depth ? std::min(labelled, cap) : 0);
    }
    cells.dims = static_cast<int>(panel.size());  // append_row's width, before the first block
    cells.sparse = !options.dense_features;
    if (cells.sparse) {
      cells.sparse_features.reset(0, 0, static_cast<std::int64_t>(panel.size()));
      cells.sparse_features.indptr.reserve(rows + 1);
    } else {
      detail::reserve_huge(cells.features, rows * panel.size());
    }
  }
  for (std::size_t r = 0; r < references.size(); ++r) {
    const LabelledReference& reference = references[r];
    const std::size_t first_row = cells.labels.size();
    std::vector<std::size_t> kept_rows;
    // A row of the reference that trains: labelled, not masked out, not empty.
    auto keep = [&](std::size_t row, bool is_empty) {
      if (reference.excluded[row] != 0) return false;
      if (reference.labelled[row] == 0) {
        ++cells.n_dropped_unlabelled;
        return false;
      }
      if (is_empty) {
        ++cells.n_dropped_empty;
        return false;
      }
      cells.labels.push_back(reference.labels[row]);
      cells.groups.push_back(reference.groups[row]);
      cells.references.push_back(static_cast<std::int32_t>(r));
      kept_rows.push_back(row);
      return true;
    };
    std::size_t width = panel.size();
    nlohmann::json info;
    if (expression) {
      const FeatureBlockCallback append = [&](std::int64_t first, std::int64_t n_rows, const float* block, const std::uint8_t* block_empty) {
        for (std::int64_t i = 0; i < n_rows; ++i) {
          if (keep(static_cast<std::size_t>(first + i), block_empty[i] != 0)) cells.append_row(block + i * static_cast<std::ptrdiff_t>(width));
        }
      };
      info = expression_reference_features(reference, r, scopes, panel, table, expression_settings, options, data, append);
    } else {
      std::vector<float> values;
      std::vector<std::uint8_t> empty;
      info = embedded_reference_features(reference, source, store, table, allowed, options, data, used_genes, values, empty);
      width = static_cast<std::size_t>(cells.dims);
      for (std::size_t row = 0; row < reference.labels.size(); ++row) keep(row, empty[row] != 0);
      if (cells.features.empty() && kept_rows.size() * width == values.size()) {
        cells.features = std::move(values);  // every cell of the first reference: no copy
      } else {
        for (const std::size_t row : kept_rows) {
          cells.features.insert(cells.features.end(), values.begin() + static_cast<std::ptrdiff_t>(row * width),
                                values.begin() + static_cast<std::ptrdiff_t>((row + 1) * width));
        }
      }
    }
    info["n_used"] = static_cast<std::int64_t>(kept_rows.size());
    info["label_column"] = "obs:" + reference.label_column;
    // Depth augmentation: a thinned copy of every kept cell of a reference holding counts.
    // (Molecules only: thinning CP10k or TPM values scales them by p, which CP10k undoes.)
    const std::string normalized_as = info.value("normalization", std::string());
    const bool holds_counts = options.references_hold_counts >= 0 ? options.references_hold_counts == 1 : info.value("counts", false);
    const bool counts =
        holds_counts && (normalized_as == to_string(Normalization::kLog1pCp10k) || normalized_as == to_string(Normalization::kCp10k));
    if (options.augment_depth && expression && counts) {
      // Columns keyed by gene (the first column of each): a cell is thinned the same way in its
      // file and in a model's reference sample (the refit equals training on the query's genes).
      std::vector<std::int64_t> column_keys(resolved[r].gene_index.size(), -1);
      std::set<std::int64_t> keyed;
      for (std::size_t column = 0; column < column_keys.size(); ++column) {
        const std::int32_t gene = resolved[r].gene_index[column];
        if (gene != kNoGene && keyed.insert(table.gene(gene).entrez_id).second) column_keys[column] = table.gene(gene).entrez_id;
      }
      // Row -> its kept cell, for the cells that get a copy: every one, or a random
      // augment_depth_max_copies of them (a function of the seed and the cell's place among the
      // kept cells: the same for the same file).
      std::vector<std::uint8_t> copied(kept_rows.size(), 1);
      const auto cap = static_cast<std::size_t>(std::max<std::int64_t>(options.augment_depth_max_copies, 0));
      if (cap > 0 && kept_rows.size() > cap) {
        std::vector<std::pair<std::uint64_t, std::size_t>> order(kept_rows.size());
        for (std::size_t i = 0; i < kept_rows.size(); ++i) order[i] = {detail::SplitMix64{options.seed ^ (0x636F70696573ULL + i * 0x9E3779B97F4A7C15ULL)}.next(), i};
        std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(cap), order.end());
        std::fill(copied.begin(), copied.end(), 0);
        for (std::size_t k = 0; k < cap; ++k) copied[order[k].second] = 1;
      }
      const auto n_copied = static_cast<std::size_t>(std::count(copied.begin(), copied.end(), 1));
      cells.copy_scale.resize(references.size(), 1.0);
      cells.copy_scale[r] = n_copied > 0 ? static_cast<double>(kept_rows.size()) / static_cast<double>(n_copied) : 1.0;
      std::vector<std::int64_t> original_of(reference.labels.size(), -1);
      for (std::size_t i = 0; i < kept_rows.size(); ++i) {
        if (copied[i] != 0) original_of[kept_rows[i]] = static_cast<std::int64_t>(first_row + i);
      }
      // Only the copied rows are thinned (the others read as empty cells and are skipped): the
      // same copies as thinning every row, without drawing the molecules of the rest.
      std::vector<std::uint8_t> thin_rows(reference.labels.size(), 0);
      for (std::size_t row = 0; row < thin_rows.size(); ++row) thin_rows[row] = original_of[row] >= 0 ? 1 : 0;
      const ThinnedDataset thinned(*reference.dataset, options.augment_depth_low, options.augment_depth_high, options.seed ^ 0x7468696E6E6564ULL,
                                   std::move(column_keys), std::move(thin_rows));
      LabelledReference shallow = reference;
      shallow.dataset = &thinned;
      cells.augmented_from.resize(cells.labels.size(), -1);  // the reference cells so far
      std::int64_t n_copies = 0;
      const FeatureBlockCallback append_copies = [&](std::int64_t first, std::int64_t n_rows, const float* block, const std::uint8_t* block_empty) {
        for (std::int64_t i = 0; i < n_rows; ++i) {
          const auto row = static_cast<std::size_t>(first + i);
          if (original_of[row] < 0 || block_empty[i] != 0) continue;  // not trained on, or every count thinned away
          cells.labels.push_back(reference.labels[row]);
          cells.groups.push_back(reference.groups[row]);
          cells.references.push_back(static_cast<std::int32_t>(r));
          cells.augmented_from.push_back(original_of[row]);
          cells.append_row(block + i * static_cast<std::ptrdiff_t>(width));
          ++n_copies;
        }
      };
      TrainOptions quiet = options;
      quiet.log = nullptr;
      ExpressionOptions settings = expression_settings;
      settings.normalization = info["normalization"] == to_string(Normalization::kCp10k) ? NormalizationChoice::kCp10k : NormalizationChoice::kLog1pCp10k;
      std::set<std::string> normalizations = data.normalizations;  // the copies add no normalisation nor warnings of their own
      const std::size_t n_warnings = cells.warnings.size();
      expression_reference_features(shallow, r, scopes, panel, table, settings, quiet, data, append_copies);
      data.normalizations = std::move(normalizations);
      cells.warnings.resize(n_warnings);
      info["n_thinned_copies"] = n_copies;
      if (options.log) {
        options.log(fmt::format("depth augmentation: {} thinned copies of {}'s cells (each keeps {:g}-{:g} of its counts{})", n_copies, reference.path,
                                options.augment_depth_low, options.augment_depth_high,
                                n_copied < kept_rows.size() ? fmt::format("; a random {} of its {} cells copied, each copy weighing {:.3g}", n_copied,
                                                                          kept_rows.size(), options.augment_depth_weight * cells.copy_scale[r])
                                                            : std::string()));
      }
    } else if (!cells.augmented_from.empty()) {
      cells.augmented_from.resize(cells.labels.size(), -1);
    }
    data.reference_info.push_back(std::move(info));
  }

  if (impute) impute_unmeasured_genes(panel, measured, cells);
  if (impute && !data.sample_labels.empty()) record_sample_genes(measured, data.sample);
  if (expression) {
    data.panel.size_factor_genes = size_factor_genes;
    for (const std::int64_t entrez : panel) {
      auto [symbol, ensembl] = gene_names(table, entrez, false);
      data.panel.entrez_ids.push_back(entrez);
      data.panel.symbols.push_back(std::move(symbol));
      data.panel.ensembl_ids.push_back(std::move(ensembl));
    }
  } else {
    // Gene rows: the store prefix of every gene seen in the training data.
    ModelGenes& genes = data.genes;
    genes.dims = cells.dims;
    genes.store_identity = store.identity_hash();
    genes.store_description = source.description;
    for (const std::int64_t entrez : used_genes) {
      const std::int32_t row = store.find_entrez(entrez);
      genes.entrez_ids.push_back(entrez);
      genes.symbols.push_back(store.symbols()[static_cast<std::size_t>(row)]);
      genes.ensembl_ids.push_back(store.ensembl_ids()[static_cast<std::size_t>(row)]);
      genes.vectors.insert(genes.vectors.end(), store.row(row), store.row(row) + cells.dims);
    }
    if (genes.entrez_ids.empty()) throw InputError("no gene of the references has a vector in the gene store");
    data.gene_store = store.info_json();
  }
  data.gene_table_hash = table.content_hash_hex();
  data.gene_table_source = table.source();
  if (std::error_code error; !data.gene_table_source.empty() && std::filesystem::is_regular_file(data.gene_table_source, error)) {
    data.gene_table_source = std::filesystem::absolute(data.gene_table_source, error).lexically_normal().string();  // (from any directory)
  }
  return data;
}

std::int64_t LabelledFeatures::n_original() const {
  if (augmented_from.empty()) return n();
  return std::count(augmented_from.begin(), augmented_from.end(), std::int64_t{-1});
}

void LabelledFeatures::append_row(const float* row) {
  if (!sparse) {
    features.insert(features.end(), row, row + dims);
    return;
  }
  detail::reserve_growing_huge(sparse_features.indices, sparse_features.indices.size() + static_cast<std::size_t>(dims));
  detail::reserve_growing_huge(sparse_features.values, sparse_features.values.size() + static_cast<std::size_t>(dims));
  for (int j = 0; j < dims; ++j) {
    if (row[j] != 0) {
      sparse_features.indices.push_back(j);
      sparse_features.values.push_back(row[j]);
    }
  }
  sparse_features.indptr.push_back(static_cast<std::int64_t>(sparse_features.values.size()));
  ++sparse_features.n_rows;
}

void LabelledFeatures::copy_row(std::int64_t row, float* out) const {
  if (!sparse) {
    std::copy_n(features.begin() + static_cast<std::ptrdiff_t>(row * dims), dims, out);
    return;
  }
  sparse_view().copy_row(row, out);
}

std::vector<float> LabelledFeatures::dense_rows(const std::vector<std::int64_t>& rows) const {
  std::vector<float> out(rows.size() * static_cast<std::size_t>(dims));
  for (std::size_t i = 0; i < rows.size(); ++i) copy_row(rows[i], out.data() + i * static_cast<std::size_t>(dims));
  return out;
}

std::vector<float> LabelledFeatures::dense() const {
  if (!sparse) return features;
  std::vector<std::int64_t> rows(static_cast<std::size_t>(sparse_features.n_rows));
  std::iota(rows.begin(), rows.end(), std::int64_t{0});
  return dense_rows(rows);
}

SparseFeatures LabelledFeatures::sparse_view() const {
  return {sparse_features.indptr.data(), sparse_features.indices.data(), sparse_features.values.data(), sparse_features.n_rows, dims};
}

ValidationSplit split_validation(const LabelledFeatures& data, double fraction, std::uint64_t seed, const std::string& group_column) {
  if (!(fraction >= 0 && fraction < 1)) throw InputError(fmt::format("--validation-fraction {} is not in [0, 1)", fraction));
  if (!data.augmented_from.empty()) {
    // Split the reference cells; a thinned copy trains when its cell trains, never validates.
    LabelledFeatures originals;
    std::vector<std::int64_t> row_of;  // original index -> row
    for (std::int64_t i = 0; i < data.n(); ++i) {
      if (!data.is_original(i)) continue;
      originals.labels.push_back(data.labels[static_cast<std::size_t>(i)]);
      originals.groups.push_back(data.groups[static_cast<std::size_t>(i)]);
      row_of.push_back(i);
    }
    ValidationSplit split = split_validation(originals, fraction, seed, group_column);
    std::vector<std::uint8_t> trains(static_cast<std::size_t>(data.n()), 0);
    for (auto& row : split.train_rows) {
      row = row_of[static_cast<std::size_t>(row)];
      trains[static_cast<std::size_t>(row)] = 1;
    }
    for (auto& row : split.validation_rows) row = row_of[static_cast<std::size_t>(row)];
    for (std::int64_t i = 0; i < data.n(); ++i) {
      const std::int64_t from = data.augmented_from[static_cast<std::size_t>(i)];
      if (from >= 0 && trains[static_cast<std::size_t>(from)] != 0) split.train_rows.push_back(i);
    }
    std::sort(split.train_rows.begin(), split.train_rows.end());
    return split;
  }
  const std::int64_t n = data.n();
  ValidationSplit split;
  auto everything_trains = [&split, n](const std::string& description) {
    split.train_rows.resize(static_cast<std::size_t>(n));
    std::iota(split.train_rows.begin(), split.train_rows.end(), std::int64_t{0});
    split.description = description;
    return split;
  };
  if (fraction == 0) return everything_trains("none");
  std::mt19937_64 rng(seed);
  const bool grouped = std::any_of(data.groups.begin(), data.groups.end(), [](const std::string& group) { return !group.empty(); });
  const std::string column = group_column.empty() ? std::string() : group_column == kGroupByFile ? " (reference files)" : " of obs:" + group_column;
  if (grouped) {
    const auto target = static_cast<std::int64_t>(std::llround(fraction * static_cast<double>(n)));
    std::map<std::string, std::vector<std::int64_t>> by_group;
    for (std::int64_t i = 0; i < n; ++i) by_group[data.groups[static_cast<std::size_t>(i)]].push_back(i);
    std::vector<std::string> order;
    for (const auto& entry : by_group) order.push_back(entry.first);
    if (order.size() < 2) {
      const bool all_missing = order.front().ends_with(std::string("\x1f") + std::string(kMissingGroup));
      split.warnings.push_back(fmt::format("the group column{} has {}: no validation split (whole groups are held out, never random cells)",
                                           group_column.empty() ? "" : " '" + group_column + "'",
                                           all_missing ? "no value for any labelled cell" : "a single group"));
      return everything_trains("none (a single group)");
    }
    shuffle_in_place(order, rng);
    std::set<std::string> held_out;
    std::int64_t count = 0;
    for (std::size_t g = 0; g + 1 < order.size() && count < std::max<std::int64_t>(target, 1); ++g) {
      held_out.insert(order[g]);
      count += static_cast<std::int64_t>(by_group[order[g]].size());
    }
    for (std::int64_t i = 0; i < n; ++i) (held_out.count(data.groups[static_cast<std::size_t>(i)]) ? split.validation_rows : split.train_rows).push_back(i);
    split.description = fmt::format("whole groups{} ({} of {} held out)", column, held_out.size(), order.size());
    // Group names without the reference path when every group comes from one reference.
    const auto path_of = [](const std::string& key) { return key.substr(0, key.find('\x1f')); };
    const bool one_reference = std::all_of(order.begin(), order.end(), [&](const std::string& key) { return path_of(key) == path_of(order.front()); });
    for (const auto& group : held_out) {
      const auto separator = group.find('\x1f');
      if (separator == std::string::npos) {
        split.held_out_groups.push_back(group);
      } else {
        split.held_out_groups.push_back(one_reference ? group.substr(separator + 1) : group.substr(0, separator) + ":" + group.substr(separator + 1));
      }
    }
    return split;
  }
  std::map<std::string, std::vector<std::int64_t>> by_class;
  for (std::int64_t i = 0; i < n; ++i) by_class[data.labels[static_cast<std::size_t>(i)]].push_back(i);
  for (auto& [label, rows] : by_class) {
    shuffle_in_place(rows, rng);
    const auto size = static_cast<std::int64_t>(rows.size());
    const std::int64_t held = std::min<std::int64_t>(size - 1, std::llround(fraction * static_cast<double>(size)));
    split.validation_rows.insert(split.validation_rows.end(), rows.begin(), rows.begin() + held);
    split.train_rows.insert(split.train_rows.end(), rows.begin() + held, rows.end());
  }
  std::sort(split.train_rows.begin(), split.train_rows.end());
  std::sort(split.validation_rows.begin(), split.validation_rows.end());
  split.description = fmt::format("stratified random {:.0f}% of each class", 100 * fraction);
  return split;
}

HyperParameters route_hyperparameters(const std::string& classifier, const std::string& features) {
  if (classifier == "logreg" && features == kFeaturesExpression) return {{"l2", 1.0}};
  return {};
}

namespace {

/// What a model's calibration is (provenance "calibration").
nlohmann::json calibration_json(const TemperatureFit& fit, bool calibrate, bool has_split, bool has_validation) {
  if (fit.n_cells == 0) {
    return {{"temperature", 1.0},
            {"method", "none"},
            {"reason", !calibrate       ? std::string(kCalibrationTurnedOff)
                       : !has_split      ? std::string("no validation cells (--validation-fraction 0, or a single group)")
                       : !has_validation ? std::string("validation skipped (its training part has a single class)")
                                         : fit.reason}};
  }
  return {{"temperature", fit.temperature},
          {"method", "temperature scaling on the validation cells (log-loss optimum, mean score at most the smoothed accuracy)"},
          {"bounded_by_accuracy", fit.bounded},
          {"n_cells", fit.n_cells},
          {"n_one_hot", fit.n_one_hot},
          {"n_coarse_left_out", fit.n_coarse_left_out},
          {"n_coarse_used", fit.n_coarse_used},
          {"accuracy", fit.accuracy},
          {"mean_confidence", {{"before", fit.mean_confidence_before}, {"after", fit.mean_confidence_after}}},
          {"log_loss", {{"before", fit.log_loss_before}, {"after", fit.log_loss_after}}},
          {"expected_calibration_error", {{"before", fit.ece_before}, {"after", fit.ece_after}}}};
}

/// fit_model; `take_sample_values`, when given, is data.sample.values, which the model takes
/// instead of a copy when it keeps every sample cell (train_model's data is its own).
TrainResult fit_model_taking(const TrainingData& data, const ValidationSplit& split, const TrainOptions& options,
                             CsrBlockF64* take_sample_values) {
  const ClassifierSpec& spec = find_classifier_spec(options.classifier);
  HyperParameters given = route_hyperparameters(options.classifier, data.features);
  for (const auto& [name, value] : options.hyperparameters) given[name] = value;
  const HyperParameters hyperparameters = resolve_hyperparameters(spec, given);
  auto log = [&](const std::string& message) {
    if (options.log) options.log(message);
  };
  const LabelledFeatures& cells = data.cells;
  const std::vector<std::string>& labels = cells.labels;
  const int dims = cells.dims;
  const std::int64_t n = cells.n();
  TrainResult result;
  result.warnings = cells.warnings;
  result.n_dropped_unlabelled = cells.n_dropped_unlabelled;
  result.n_dropped_empty = cells.n_dropped_empty;
  if (cells.n_dropped_empty > 0) {  // (a cell without a count there has no profile to learn from)
    result.warnings.push_back(fmt::format("{}{} labelled cell{} no count in the genes trained on: left out", kNotePrefix, cells.n_dropped_empty,
                                          cells.n_dropped_empty == 1 ? " has" : "s have"));
  }

  std::map<std::string, std::int64_t> class_counts;  // every label, coarse ones included (reference cells, not thinned copies)
  for (std::int64_t i = 0; i < n; ++i) {
    if (cells.is_original(i)) ++class_counts[labels[static_cast<std::size_t>(i)]];
  }
  std::set<std::string> class_set;  // labels some cell trains as a class with
  for (std::int64_t i = 0; i < n; ++i) {
    const auto row = static_cast<std::size_t>(i);
    if (data.coarse_classes(labels[row], cells.references.empty() ? 0 : cells.references[row]) == nullptr) class_set.insert(labels[row]);
  }
  const std::size_t n_classes = class_set.size();
  if (n_classes < 2) {
    throw InputError(fmt::format("{} ha{} {} class{} among the usable cells of {}: training needs at least 2",
                                 label_column_phrase(options.label_column), label_column_names(options.label_column).size() > 1 ? "ve" : "s", n_classes, n_classes == 1 ? "" : "es", join_names(data.reference_names)));
  }
  std::vector<std::string> singletons;
  for (const auto& [label, count] : class_counts) {
    if (count < 2) singletons.push_back(label);
  }
  if (!singletons.empty()) {
    throw InputError(fmt::format("{}: class{} {} ha{} a single cell; drop or merge {} before training",
                                 label_column_phrase(options.label_column), singletons.size() == 1 ? "" : "es", join_names(singletons),
                                 singletons.size() == 1 ? "s" : "ve", singletons.size() == 1 ? "it" : "them"));
  }
  result.warnings.insert(result.warnings.end(), split.warnings.begin(), split.warnings.end());

  // Fit on the training part, score the held-out cells.
  TrainOptions resolved = options;
  resolved.hyperparameters = hyperparameters;
  nlohmann::json validation_report;
  std::unique_ptr<Classifier> validation_fit;  // the final fit starts from it (logreg)
  std::vector<std::string> validation_classes;
  if (!split.validation_rows.empty()) {
    std::set<std::string> distinct;
    for (auto row : split.train_rows) distinct.insert(labels[static_cast<std::size_t>(row)]);
    if (distinct.size() < 2) {
      result.warnings.push_back("the training part of the validation split has a single class: validation skipped");
    } else {
      log(fmt::format("validation: training on {} cells, scoring {} held-out cells ({})", split.train_rows.size(), split.validation_rows.size(),
                      split.description));
      ProbabilityMatrix probabilities;
      // (from scratch, the final fit runs the configured epochs: so does this one, for its
      // probabilities to calibrate the final model)
      auto classifier = fit_rows(resolved, data, split.train_rows, probabilities.class_names,
                                 options.final_fit_from_scratch ? nullptr : &split.validation_rows, "validation");
      // Iterative back ends stopped early on the held-out cells: the final fit on every cell runs
      // for the epochs (boosting rounds) that scored best there.
      const nlohmann::json& report = classifier->fit_report();
      if (options.final_fit_from_scratch) {
        // (the configured epochs and rounds, no warm start: the model of a fit without validation)
      } else if (report.contains("best_epoch") && hyperparameters.count("epochs") && report["best_epoch"].get<int>() > 0) {
        resolved.hyperparameters["epochs"] = report["best_epoch"].get<int>();
        log(fmt::format("final fit on all cells: the {} epochs that scored best on the validation cells", report["best_epoch"].get<int>()));
      }
      if (!options.final_fit_from_scratch && report.contains("best_round") && hyperparameters.count("n_estimators") && report["best_round"].get<int>() > 0) {
        resolved.hyperparameters["n_estimators"] = report["best_round"].get<int>();
      }
      validation_report = report;
      std::vector<std::string> truth;
      for (auto row : split.validation_rows) truth.push_back(labels[static_cast<std::size_t>(row)]);
      // Predicted a slice at a time: a dense copy of every held-out cell would be 20% of the
      // dense matrix that compressed features avoid.
      constexpr std::size_t kSlice = 8192;
      probabilities.values.reserve(truth.size() * probabilities.class_names.size());
      for (std::size_t first = 0; first < truth.size(); first += kSlice) {
        const std::vector<std::int64_t> slice(split.validation_rows.begin() + static_cast<std::ptrdiff_t>(first),
                                              split.validation_rows.begin() + static_cast<std::ptrdiff_t>(std::min(truth.size(), first + kSlice)));
        const std::vector<float> x = cells.dense_rows(slice);
        const std::vector<float> p = classifier->predict_proba(x.data(), static_cast<std::int64_t>(slice.size()), options.num_threads);
        probabilities.values.insert(probabilities.values.end(), p.begin(), p.end());
      }
      std::vector<std::string> predicted = argmax_classes(probabilities, truth.size());
      if (options.calibrate) {
        // The temperature, from each held-out cell's right class. A score is the chance that the
        // cell is of its called class; a coarse label says only that it is of one of the classes
        // below it, which a wrong call among them meets too (pooled savercat 'lymphocyte' cells
        // sharpened pbmc3k + savercat's scores to 0.74 at an accuracy of its classes' cells well
        // under it): coarse-labelled cells calibrate only when too few cells carry a class.
        std::map<std::string, std::int32_t> column_of;
        for (std::size_t k = 0; k < probabilities.class_names.size(); ++k) column_of[probabilities.class_names[k]] = static_cast<std::int32_t>(k);
        std::vector<std::vector<std::int32_t>> right(truth.size());
        std::vector<char> coarse(truth.size(), 0);
        std::int64_t n_class_cells = 0;
        for (std::size_t i = 0; i < truth.size(); ++i) {
          const auto row = static_cast<std::size_t>(split.validation_rows[i]);
          const auto* classes = data.coarse_classes(truth[i], cells.references.empty() ? 0 : cells.references[row]);
          coarse[i] = classes != nullptr ? 1 : 0;
          for (const std::string& name : classes != nullptr ? *classes : std::vector<std::string>{truth[i]}) {
            if (const auto found = column_of.find(name); found != column_of.end()) right[i].push_back(found->second);
          }
          // (a cell counts when a temperature can move its row: more than one class above 0)
          const std::size_t width = probabilities.class_names.size();
          const float* row_values = probabilities.values.data() + i * width;
          if (classes == nullptr && !right[i].empty() && std::count_if(row_values, row_values + width, [](float p) { return p > 0; }) > 1) {
            ++n_class_cells;
          }
        }
        std::int64_t n_coarse_left_out = 0;
        std::int64_t n_coarse_used = 0;
        for (std::size_t i = 0; i < truth.size(); ++i) {
          if (coarse[i] == 0 || right[i].empty()) continue;
          if (n_class_cells >= kMinCalibrationCells) {
            right[i].clear();
            ++n_coarse_left_out;
          } else {
            ++n_coarse_used;
          }
        }
        result.calibration = fit_temperature(probabilities.values, static_cast<int>(probabilities.class_names.size()), right);
        result.calibration.n_coarse_left_out = n_coarse_left_out;
        result.calibration.n_coarse_used = n_coarse_used;
        temper_probabilities(probabilities.values.data(), static_cast<std::int64_t>(truth.size()),
                             static_cast<int>(probabilities.class_names.size()), result.calibration.temperature);
        log("scores: " + calibration_text(calibration_json(result.calibration, true, true, true)));
      }
      // A coarse truth is met by any of its classes (the prediction is at or below it).
      for (std::size_t i = 0; i < truth.size(); ++i) {
        const auto row = static_cast<std::size_t>(split.validation_rows[i]);
        const auto* classes = data.coarse_classes(truth[i], cells.references.empty() ? 0 : cells.references[row]);
        if (classes != nullptr && std::find(classes->begin(), classes->end(), predicted[i]) != classes->end()) truth[i] = predicted[i];
      }
      EvaluationOptions evaluation;
      evaluation.probabilities = &probabilities;
      evaluation.top_k = {1, 3};
      result.validation = evaluate(truth, predicted, evaluation);
      // Coarse truths that none of their classes met are errors (accuracy counts them), not
      // classes: macro averages and the per-class table leave the coarse labels out (a 2-cell 'lymphocyte' row of F1 0
      // took a pooled harmonized model's macro-F1 from 0.937 to 0.843).
      // (a class of the pool that the validation fit lacks, its cells all held out, stays a row)
      const std::set<std::string> model_classes(probabilities.class_names.begin(), probabilities.class_names.end());
      const auto coarse_only = [&](const std::string& label) { return model_classes.count(label) == 0 && data.coarse_labels.count(label) != 0; };
      if (std::any_of(truth.begin(), truth.end(), coarse_only)) {
        // The per-class table and the macro average over the rows left (the confusion matrix keeps
        // every truth, so the unmet coarse cells stay visible there).
        std::erase_if(result.validation.per_class, [&](const ClassMetrics& metrics) { return coarse_only(metrics.label); });
        if (const auto n_classes = static_cast<double>(result.validation.per_class.size()); n_classes > 0) {
          AveragedMetrics macro;
          for (const ClassMetrics& metrics : result.validation.per_class) {
            macro.precision += metrics.precision;
            macro.recall += metrics.recall;
            macro.f1 += metrics.f1;
          }
          result.validation.macro = {macro.precision / n_classes, macro.recall / n_classes, macro.f1 / n_classes};
        }
      }
      result.has_validation = true;
      result.n_validation = static_cast<std::int64_t>(truth.size());
      validation_classes = probabilities.class_names;
      if (!options.final_fit_from_scratch) validation_fit = std::move(classifier);
    }
  }

  // Final model on every cell.
  std::vector<std::int64_t> all_rows(static_cast<std::size_t>(n));
  std::iota(all_rows.begin(), all_rows.end(), std::int64_t{0});
  const std::int64_t n_original = cells.n_original();
  log(fmt::format("training {} on {} cells{} x {} dims, {} classes{}", options.classifier, n_original,
                  n > n_original ? fmt::format(" (+ {} thinned copies)", n - n_original) : "", dims, n_classes,
                  data.coarse_labels.empty() ? "" : fmt::format(" and {} coarse labels", data.coarse_labels.size())));
  const auto started = std::chrono::steady_clock::now();
  CellTypeModel& model = result.model;
  std::int64_t left_out = 0;
  model.classifier =
      fit_rows(resolved, data, all_rows, model.class_names, nullptr, "final", &left_out, validation_fit.get(), &validation_classes);
  if (left_out > 0) {
    result.warnings.push_back(fmt::format("{} cannot train on coarse labels: their {} cells were left out (logreg and mlp use them)",
                                          options.classifier, left_out));
  }
  // (the validation fit's temperature, for the fit on every cell: what scikit-learn's
  // CalibratedClassifierCV(ensemble=False) does with its held-out predictions)
  if (result.calibration.n_cells > 0) model.classifier->set_temperature(result.calibration.temperature);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.n_cells = n_original;

  // Cell Ontology ids of the classes (training_features mapped the labels).
  model.class_cl_ids.assign(model.class_names.size(), "");
  for (std::size_t c = 0; c < model.class_names.size(); ++c) {
    const auto found = data.label_cl_ids.find(model.class_names[c]);
    if (found != data.label_cl_ids.end()) model.class_cl_ids[c] = found->second;
  }

  model.features = data.features;
  const bool expression = data.features == kFeaturesExpression;
  if (!data.sample_labels.empty() && data.normalizations.size() == 1) {
    std::map<std::string, std::int32_t> class_index;
    for (std::size_t c = 0; c < model.class_names.size(); ++c) class_index[model.class_names[c]] = static_cast<std::int32_t>(c);
    // Keep only cells of a class of the model (a class whose every cell was empty is none).
    const ReferenceSample& sample = data.sample;
    ReferenceSample& kept = model.reference;
    kept.entrez_ids = sample.entrez_ids;
    kept.symbols = sample.symbols;
    kept.ensembl_ids = sample.ensembl_ids;
    kept.aliases = sample.aliases;
    kept.matrix = sample.matrix;
    kept.n_reference_cells = sample.n_reference_cells;
    kept.measured = sample.measured;
    kept.normalization = *data.normalizations.begin();
    kept.values.reset(0, 0, sample.values.n_cols);
    std::map<std::vector<std::int32_t>, std::int32_t> set_code;  // a coarse cell's classes -> its label code
    std::vector<std::size_t> kept_rows;
    for (std::size_t i = 0; i < data.sample_labels.size(); ++i) {
      std::int32_t code = -1;
      if (const auto* coarse = data.coarse_classes(data.sample_labels[i], data.sample_references[i])) {
        std::vector<std::int32_t> members;
        for (const auto& member : *coarse) {
          const auto found = class_index.find(member);
          if (found != class_index.end()) members.push_back(found->second);
        }
        if (!members.empty()) {
          const auto [entry, added] = set_code.emplace(members, static_cast<std::int32_t>(model.class_names.size() + kept.label_sets.size()));
          if (added) kept.label_sets.push_back(members);
          code = entry->second;
        }
      }
      if (code < 0) {
        const auto found = class_index.find(data.sample_labels[i]);
        if (found == class_index.end()) continue;
        code = found->second;
      }
      kept.labels.push_back(code);
      if (!sample.measured.empty()) kept.references.push_back(data.sample_references[i]);
      kept_rows.push_back(i);
    }
    if (take_sample_values != nullptr && static_cast<std::int64_t>(kept_rows.size()) == sample.values.n_rows) {
      kept.values = std::move(*take_sample_values);  // every row kept: the sample's values, not a copy of them
    } else {
      for (const std::size_t i : kept_rows) {
        kept.values.indices.insert(kept.values.indices.end(), sample.values.indices.begin() + sample.values.indptr[i],
                                   sample.values.indices.begin() + sample.values.indptr[i + 1]);
        kept.values.values.insert(kept.values.values.end(), sample.values.values.begin() + sample.values.indptr[i],
                                  sample.values.values.begin() + sample.values.indptr[i + 1]);
        kept.values.indptr.push_back(static_cast<std::int64_t>(kept.values.indices.size()));
        ++kept.values.n_rows;
      }
    }
  } else if (!data.sample_labels.empty()) {
    result.warnings.push_back("the references were normalised differently: the model keeps no reference sample (annotate cannot refit it)");
  }
  if (expression) {
    model.panel = data.panel;
  } else {
    model.genes = data.genes;
  }

  nlohmann::json counts = nlohmann::json::object();
  for (const auto& [label, count] : class_counts) counts[label] = count;
  // The granularity of each reference's labels: cells labelled with a class, with a coarse term.
  nlohmann::json granularity = nlohmann::json::array();
  for (std::size_t r = 0; r < data.reference_names.size(); ++r) {
    std::map<std::string, std::int64_t> fine;
    std::map<std::string, std::int64_t> coarse;
    for (std::int64_t i = 0; i < n; ++i) {
      if (!cells.is_original(i)) continue;
      if (!cells.references.empty() && cells.references[static_cast<std::size_t>(i)] != static_cast<std::int32_t>(r)) continue;
      const std::string& label = labels[static_cast<std::size_t>(i)];
      ++(data.coarse_classes(label, static_cast<std::int32_t>(r)) != nullptr ? coarse : fine)[label];
    }
    granularity.push_back({{"reference", data.reference_names[r]}, {"class_labels", fine}, {"coarse_labels", coarse}});
  }
  nlohmann::json coarse_json = nlohmann::json::object();
  for (const auto& [label, coarse] : data.coarse_labels) {
    for (const auto& [r, classes] : coarse.classes) coarse_json[label][data.reference_names[static_cast<std::size_t>(r)]] = classes;
  }
  // The label column, or the columns of references labelled in differently named ones.
  std::vector<std::string> label_columns;
  for (const nlohmann::json& info : data.reference_info) {
    const std::string column = info.value("label_column", "obs:" + options.label_column);
    if (std::find(label_columns.begin(), label_columns.end(), column) == label_columns.end()) label_columns.push_back(column);
  }
  model.provenance = {{"references", data.reference_info},
                      {"label_column", fmt::format("{}", fmt::join(label_columns, ","))},
                      {"group_column", options.group_column.empty()               ? ""
                                      : options.group_column == kGroupByFile ? std::string(kGroupByFile)
                                                                             : "obs:" + options.group_column},
                      {"classifier", options.classifier},
                      {"features", data.features},
                      {"n_genes", expression ? static_cast<std::int64_t>(data.panel.entrez_ids.size()) : 0},
                      {"n_genes_requested", options.n_genes},
                      {"reference_sample_cells", model.reference.n_cells()},
                      {"hyperparameters", hyperparameters},
                      {"seed", options.seed},
                      {"dims", expression ? 0 : dims},
                      {"restrict_genes", data.n_restrict_genes},
                      {"matrix", options.embed.matrix},
                      {"gene_store", data.gene_store},
                      {"gene_table_hash", data.gene_table_hash},
                      {"gene_table", data.gene_table_source},
                      {"label_map", options.label_map},
                      {"harmonize_labels", options.harmonize_labels},
                      {"label_cl_ids", data.label_cl_ids},
                      {"label_cl_id_sources", data.label_cl_id_sources},
                      {"coarse_labels", coarse_json},
                      {"label_granularity", granularity},
                      {"balance_references", options.balance_references},
                      {"shared_genes", data.n_shared_genes},
                      {"gene_pooling", options.gene_pooling},
                      {"augment_depth", options.augment_depth},
                      {"augment_depth_range", {options.augment_depth_low, options.augment_depth_high}},
                      {"augment_depth_weight", options.augment_depth_weight},
                      {"augment_depth_max_copies", options.augment_depth_max_copies},
                      {"n_thinned_copies", n - n_original},
                      {"n_cells", n_original},
                      {"n_dropped_unlabelled", result.n_dropped_unlabelled},
                      {"n_dropped_empty", result.n_dropped_empty},
                      {"class_counts", counts},
                      {"fit_report", model.classifier->fit_report()},
                      {"validation_fit_report", validation_report},
                      {"final_hyperparameters", resolved.hyperparameters},
                      {"fit_seconds", seconds},
                      {"final_fit", "all labelled cells (validation metrics come from a fit without the held-out cells)"},
                      {"celltyper_version", CELLTYPER_VERSION}};
  // The genes every class expresses, by which annotate tells a query padded with zeros (kept
  // here so that annotating a query never has to read the reference sample for them).
  if (!model.reference.empty()) model.provenance["ubiquitous_genes"] = ubiquitous_genes(model);
  // The sample's depth (its cells' median counts over its genes), by which annotate tells a query
  // far shallower than the reference without reading the sample (a refit then matches its depth).
  if (expression && !model.reference.empty()) {
    model.provenance["reference_sample_median_counts"] = reference_sample_depth(model.reference, model.reference.entrez_ids);
  }
  // The types' profiles, by which annotate tells query cells that resemble none of them.
  // Both routes: the profiles compare expression, whatever features the classifier reads.
  if (!model.reference.empty()) {
    model.similarity = similarity_profile(model.reference, model.library_genes(), model.class_names.size(), options.seed, options.num_threads);
  }
  if (result.has_validation) {
    model.validation = to_json(result.validation);
    model.validation["n_cells"] = result.n_validation;
    model.validation["split"] = split.description;
    if (!split.held_out_groups.empty()) model.validation["held_out_groups"] = split.held_out_groups;
  }
  model.provenance["calibration"] = calibration_json(result.calibration, options.calibrate, !split.validation_rows.empty(), result.has_validation);
  return result;
}

}  // namespace

TrainResult fit_model(const TrainingData& data, const ValidationSplit& split, const TrainOptions& options) {
  return fit_model_taking(data, split, options, nullptr);
}

OpenedDatasets open_datasets(const std::vector<std::string>& paths, const std::string& cell_table) {
  OpenedDatasets opened;
  // The same file twice would train on every cell twice (and leak cells into validation).
  std::map<std::string, std::string> seen;
  for (const auto& path : paths) {
    std::error_code error;
    const std::filesystem::path canonical = std::filesystem::weakly_canonical(path, error);
    const std::string key = error || !std::filesystem::exists(canonical, error) ? path : canonical.string();
    if (const auto [it, inserted] = seen.emplace(key, path); !inserted) {
      throw InputError(fmt::format("{}: given twice as a reference{}", path, it->second == path ? "" : fmt::format(" (also as {})", it->second)));
    }
  }
  const DataFrame table = cell_table.empty() ? DataFrame() : read_cell_table(cell_table);
  for (const auto& path : paths) {
    opened.owned.push_back(cell_table.empty() ? open_dataset(path) : with_cell_table(open_dataset(path), table, cell_table));
    opened.views.push_back(opened.owned.back().get());
  }
  return opened;
}

bool trained_on_own_gene_names(const CellTypeModel& model) {
  return model.provenance.is_object() && model.provenance.value("gene_table", std::string()) == kOwnGeneNamesSource;
}

std::int64_t own_gene_id(std::string_view lower_name) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a, then SplitMix64's finaliser
  for (const char c : lower_name) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  detail::SplitMix64 mix{hash};
  return kOwnGeneIdBase + static_cast<std::int64_t>(mix.next() >> 12);  // 52 bits: every id below 2^53 (exact as a double)
}

std::optional<GeneTable> own_gene_names_table(const std::vector<const Dataset*>& datasets, const TrainOptions& options,
                                              const GeneTable& table, std::string* warning) {
  // (a table of own names already: train_model after train_for_query chose it)
  if (options.own_gene_names && options.features != kFeaturesExpression) {
    throw InputError("--own-gene-names trains on the expression route (--features expression): GenePT-w reads its gene vectors by the "
                     "gene table's ids");
  }
  if (options.features != kFeaturesExpression || datasets.empty() || table.source() == kOwnGeneNamesSource) return std::nullopt;
  constexpr double kFewMatched = 0.1;  // (a human transcriptome matches 80-100%, a mouse one 70-80% ignoring case)
  bool few_matched = true;             // (under kFewMatched in every reference)
  std::vector<std::string> names;
  std::vector<std::string> shares;  // per reference: "path: 6 of 13714 (0.0%)"
  std::string examples;
  for (std::size_t r = 0; r < datasets.size(); ++r) {
    const Dataset& dataset = *datasets[r];
    if (is_extract_output(dataset)) {
      if (options.own_gene_names) {
        throw InputError(fmt::format("{}: --own-gene-names: a `celltyper extract` training matrix holds cell embeddings, no genes",
                                     dataset.path()));
      }
      return std::nullopt;
    }
    const std::string& matrix = options.matrices.empty() || options.matrices[r].empty() ? options.embed.matrix : options.matrices[r];
    const DataFrame var = dataset.read_var_of(resolve_matrix_source(dataset, matrix));
    const GeneResolveResult resolved = resolve_genes(table, var, options.embed.genes);
    const std::size_t gene_vars = resolved.n_vars() - resolved.n_other_features;
    if (gene_vars == 0 && options.own_gene_names) throw InputError(fmt::format("{}: --own-gene-names: none of its vars is a gene (antibody or peak features only)", dataset.path()));
    if (gene_vars == 0 || resolved.fraction_matched() >= kFewMatched) {
      if (!options.own_gene_names) return std::nullopt;
      few_matched = false;
    }
    const Column* column = resolved.column == "_index" ? nullptr : var.find(resolved.column);
    for (std::size_t row = 0; row < var.n_rows(); ++row) {
      if (resolved.is_other_feature(row)) continue;
      std::string name = column == nullptr ? var.index[row] : column->is_missing(row) ? std::string() : column->value_as_string(row);
      if (name.find_first_not_of(" \t\r\n") == std::string::npos) continue;
      if (examples.empty()) examples = name;
      names.push_back(std::move(name));
    }
    shares.push_back(fmt::format("{}: {} of {} vars ({:.1f}%)", dataset.path(), resolved.n_matched(), gene_vars, 100.0 * resolved.fraction_matched()));
  }
  // One gene per name, letter case aside (the first spelling in byte order: "FBgn1" before "fbgn1"),
  // its id from its lower-cased name alone, so that a name has the same id in every model trained
  // so (two such models annotate together) and in every query.
  std::sort(names.begin(), names.end());
  std::vector<Gene> genes;
  std::set<std::string> seen;  // lower-cased names
  std::set<std::int64_t> ids;
  for (std::string& name : names) {
    std::string key = genes_detail::ascii_lower(name);
    if (!seen.insert(key).second) continue;
    Gene gene;
    gene.entrez_id = own_gene_id(key);
    while (!ids.insert(gene.entrez_id).second) ++gene.entrez_id;  // (two names of one hash: the later one next; ~1e-7 for 60,000 names)
    if (genes_detail::ensembl_gene_core(name)) gene.ensembl_ids.push_back(name);
    gene.symbol = std::move(name);
    genes.push_back(std::move(gene));
  }
  if (genes.empty()) return std::nullopt;
  GeneTable own(std::move(genes), std::string(kOwnGeneNamesSource));
  if (warning != nullptr && !few_matched) {  // (asked for: a note)
    *warning = fmt::format("{}training on the references' own var names as written ({} genes; --own-gene-names): a query must name its "
                           "genes the same way (letter case aside); the gene table {} matches {}",
                           kNotePrefix, own.size(), table.source().empty() ? std::string("in memory") : table.source(),
                           fmt::join(shares, "; "));
  } else if (warning != nullptr) {
    *warning = fmt::format(
        "the gene table {}{} names few of the references' genes ({}; e.g. '{}'): another species? Training on the references' own var "
        "names as written ({} genes): a query must name its genes the same way (letter case aside); a gene table of the species "
        "(--gene-table FILE: a TSV with columns entrez_id and symbol, optionally aliases and ensembl_ids) would also match other "
        "spellings of the names",
        table.source().empty() ? std::string("in memory") : table.source(), table.species().empty() ? "" : fmt::format(" ({})", table.species()),
        fmt::join(shares, "; "), examples, own.size());
  }
  return own;
}

TrainResult train_model(const TrainOptions& options, const GeneStore& store, const GeneTable& table) {
  if (options.references.empty()) throw InputError("train: no reference dataset given");
  return train_model(open_datasets(options.references, options.cell_table).views, options, store, table);
}

TrainResult train_model(const std::vector<const Dataset*>& datasets, const TrainOptions& options, const GeneStore& store,
                        const GeneTable& given_table) {
  std::string own_names;  // (references of another species' ids than the table's: their own names)
  const std::optional<GeneTable> own = own_gene_names_table(datasets, options, given_table, &own_names);
  const GeneTable& table = own ? *own : given_table;
  TrainingData data = training_features(datasets, options, store, table);
  if (own) data.cells.warnings.insert(data.cells.warnings.begin(), own_names);
  const ValidationSplit split = split_validation(data.cells, options.validation_fraction, options.seed, options.group_column);
  TrainResult result = fit_model_taking(data, split, options, &data.sample.values);
  finish_model(result, data);
  return result;
}

void finish_model(TrainResult& result, const TrainingData& data) {
  // (a reference's genes are resolved more than once: its warnings, such as a species mismatch, once)
  std::vector<std::string> once;
  for (auto& warning : result.warnings) {
    if (std::find(once.begin(), once.end(), warning) == once.end()) once.push_back(std::move(warning));
  }
  result.warnings = std::move(once);
  // (kept in the file: `inspect` shows them, a model read back has its training summary)
  result.model.provenance["training_warnings"] = result.warnings;
  // References named like mouse genes, read through a human table: annotate tells a query named
  // like human genes that it is likely another species than the model's.
  if (data.references_mouse_cased) {
    result.model.provenance["reference_gene_names"] = "mouse-cased";
  }
}

}  // namespace celltyper
