// The `celltyper._celltyper` extension: the library verbs over data handed from Python (NumPy /
// SciPy arrays read in place through ArrayDataset). Only argument conversion lives here; the
// AnnData handling and pandas results are in python/celltyper/__init__.py.
#include <celltyper/annotate.hpp>
#include <celltyper/array_dataset.hpp>
#include <celltyper/cancel.hpp>
#include <celltyper/cross_validation.hpp>
#include <celltyper/error.hpp>
#include <celltyper/floored_logs.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/gene_table_cache.hpp>
#include <celltyper/gene_vector_source.hpp>
#include <celltyper/markers.hpp>
#include <celltyper/matrix_summary.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/ontology.hpp>
#include <celltyper/report.hpp>
#include <celltyper/train.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;
using namespace celltyper;

namespace {

/// Ctrl-C (or a notebook's "interrupt kernel") while a call runs in C++ with the GIL released:
/// the call's loops check here between steps (cancel.hpp); the check takes the GIL at most every
/// 0.1 s to let Python run its signal handlers. A KeyboardInterrupt stops the call (Cancelled),
/// and the exception translator raises KeyboardInterrupt again in Python.
class Interruptible {
 public:
  Interruptible() : scope_([this] { return interrupted(); }) {}

 private:
  bool interrupted() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100)) return false;
    last_ = now;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return false;
    PyErr_Clear();
    return true;
  }
  std::chrono::steady_clock::time_point last_{};
  CancelScope scope_;
};


// ---- arguments -------------------------------------------------------------------------------

template <typename T>
T option(const py::dict& options, const char* key, T fallback) {
  if (!options.contains(key)) return fallback;
  const py::object value = options[key];
  if (value.is_none()) return fallback;
  return value.cast<T>();
}

ArrayType array_type(const py::array& array, const std::string& what) {
  const py::dtype dtype = array.dtype();
  const char kind = dtype.kind();
  const auto size = dtype.itemsize();
  if (kind == 'f' && size == 4) return ArrayType::kFloat32;
  if (kind == 'f' && size == 8) return ArrayType::kFloat64;
  if (kind == 'i' && size == 1) return ArrayType::kInt8;
  if (kind == 'i' && size == 2) return ArrayType::kInt16;
  if (kind == 'i' && size == 4) return ArrayType::kInt32;
  if (kind == 'i' && size == 8) return ArrayType::kInt64;
  if (kind == 'u' && size == 1) return ArrayType::kUInt8;
  if (kind == 'u' && size == 2) return ArrayType::kUInt16;
  if (kind == 'u' && size == 4) return ArrayType::kUInt32;
  if (kind == 'u' && size == 8) return ArrayType::kUInt64;
  if (kind == 'b') return ArrayType::kUInt8;
  throw InputError(fmt::format("{} has dtype {}: numbers (float32/64, integers) expected", what, py::str(py::handle(dtype)).cast<std::string>()));
}

ArrayView array_view(const py::array& array, const std::string& what) {
  if ((array.flags() & py::array::c_style) == 0) throw InputError(fmt::format("{} is not C-contiguous", what));
  ArrayView view;
  view.data = array.data();
  view.type = array_type(array, what);
  view.size = static_cast<std::int64_t>(array.size());
  return view;
}

/// A data frame from an index and {name: list of str or None}.
DataFrame data_frame(const std::vector<std::string>& index, const py::dict& columns, const std::string& origin) {
  DataFrame frame;
  frame.index = index;
  frame.origin = origin;
  for (const auto& [key, value] : columns) {
    const std::string name = py::str(key).cast<std::string>();
    const py::list list = py::reinterpret_borrow<py::list>(value);
    if (list.size() != index.size()) {
      throw InputError(fmt::format("{}: column '{}' has {} values for {} rows", origin, name, list.size(), index.size()));
    }
    Column column;
    column.name = name;
    column.kind = ColumnKind::kString;
    column.dtype = "str";
    column.strings.resize(index.size());
    column.mask.assign(index.size(), 0);
    bool any_missing = false;
    for (std::size_t i = 0; i < index.size(); ++i) {
      const py::handle item = list[i];
      if (item.is_none()) {
        column.mask[i] = 1;
        any_missing = true;
      } else {
        column.strings[i] = py::str(item).cast<std::string>();
      }
    }
    if (!any_missing) column.mask.clear();
    frame.columns.push_back(std::move(column));
  }
  return frame;
}

/// The arrays a dataset borrows (kept referenced for as long as it lives) and the dataset.
struct BorrowedData {
  std::vector<py::array> arrays;
  std::unique_ptr<Dataset> dataset;  ///< an ArrayDataset (with_floors_removed: edgeR log CPM read with its floor as 0)
  std::string matrix = "X";  ///< the AnnData matrix the arrays are: "X", "raw/X" or "layers/NAME"
};

/// The matrix each dataset holds, in order (TrainOptions::matrices).
std::vector<std::string> matrices_of(const std::vector<BorrowedData>& data) {
  std::vector<std::string> matrices;
  for (const BorrowedData& borrowed : data) matrices.push_back(borrowed.matrix);
  return matrices;
}

/// A dataset from the spec python/celltyper/__init__.py builds: {"name", "obs_names", "obs"
/// (dict of columns), "var_names", "var" (dict), "format": "csr" | "dense", "shape", "data",
/// "indices", "indptr", "matrix": "X" | "raw/X" | "layers/NAME"}.
BorrowedData borrowed_dataset(const py::dict& spec) {
  BorrowedData out;
  const std::string name = spec["name"].cast<std::string>();
  const auto shape = spec["shape"].cast<std::pair<std::int64_t, std::int64_t>>();
  const std::string format = spec["format"].cast<std::string>();
  MatrixView view;
  view.n_rows = shape.first;
  view.n_cols = shape.second;
  const auto take = [&](const char* key, const std::string& what) {
    py::array array = py::reinterpret_borrow<py::array>(spec[key]);
    out.arrays.push_back(array);
    return array_view(array, what);
  };
  if (format == "csr") {
    view.encoding = MatrixEncoding::kCsr;
    view.values = take("data", name + ": X.data");
    view.indices = take("indices", name + ": X.indices");
    view.indptr = take("indptr", name + ": X.indptr");
  } else if (format == "dense") {
    view.encoding = MatrixEncoding::kDense;
    view.values = take("data", name + ": X");
  } else {
    throw InputError(fmt::format("{}: matrix format '{}' (csr or dense expected)", name, format));
  }
  DataFrame obs = data_frame(spec["obs_names"].cast<std::vector<std::string>>(), spec["obs"].cast<py::dict>(), name + ":obs");
  DataFrame var = data_frame(spec["var_names"].cast<std::vector<std::string>>(), spec["var"].cast<py::dict>(), name + ":var");
  if (spec.contains("matrix")) out.matrix = spec["matrix"].cast<std::string>();
  out.dataset = with_floors_removed(std::make_unique<ArrayDataset>(name, std::move(obs), std::move(var), view, out.matrix));
  return out;
}

// ---- shared resources: the gene table and the ontology, loaded once per path ----------------

/// The `T` loaded from `path` by `load`, once per process and path (the gene table, the ontology
/// and the gene store are read on the first call that needs them, then shared by later calls).
template <typename T, typename Load>
std::shared_ptr<const T> load_once(const std::string& path, Load load) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const T>> loaded;
  std::lock_guard lock(mutex);
  auto& slot = loaded[path];
  if (!slot) slot = std::make_shared<const T>(load(path));
  return slot;
}

/// The gene table at `path` ("" = the default org.Hs.eg.db); null when there is none.
std::shared_ptr<const GeneTable> gene_table(const std::string& path) {
  const std::string chosen = choose_gene_table_path(path);
  if (chosen.empty()) return nullptr;
  return load_once<GeneTable>(chosen, [](const std::string& file) { return load_gene_table_cached(file); });
}

std::shared_ptr<const Ontology> ontology(const std::string& path) {
  const std::string chosen = default_ontology_path(path);
  if (chosen.empty()) return nullptr;
  return load_once<Ontology>(chosen, [](const std::string& file) { return load_ontology(file); });
}

/// verbose=True: progress lines on Python's sys.stderr (a notebook's, or a redirect_stderr's),
/// not on file descriptor 2.
std::function<void(const std::string&)> stderr_log(bool verbose) {
  if (!verbose) return {};
  return [](const std::string& message) {
    py::gil_scoped_acquire gil;
    try {
      py::module_::import("sys").attr("stderr").attr("write")(fmt::format("celltyper: {}\n", message));
    } catch (const py::error_already_set&) {  // (no usable sys.stderr: the line is lost, not the run)
    }
  };
}

EmbedOptions embed_options(const py::dict& options) {
  EmbedOptions embed;  // (matrix: each caller names the one its dataset holds, or the request)
  embed.normalization = parse_normalization_choice(option<std::string>(options, "normalization", "auto"));
  embed.num_threads = option<int>(options, "threads", 0);
  embed.genes.column = option<std::string>(options, "gene_column", "");
  embed.memory_limit_bytes = option<std::size_t>(options, "memory_limit", embed.memory_limit_bytes);
  return embed;
}

py::array_t<float> matrix_array(std::vector<float>&& values, std::int64_t rows, std::int64_t cols) {
  auto* owned = new std::vector<float>(std::move(values));
  py::capsule free(owned, [](void* pointer) { delete static_cast<std::vector<float>*>(pointer); });
  return py::array_t<float>({rows, cols}, {cols * static_cast<std::int64_t>(sizeof(float)), static_cast<std::int64_t>(sizeof(float))},
                            owned->data(), free);
}

py::array_t<float> vector_array(std::vector<float>&& values) {
  const auto n = static_cast<std::int64_t>(values.size());
  auto* owned = new std::vector<float>(std::move(values));
  py::capsule free(owned, [](void* pointer) { delete static_cast<std::vector<float>*>(pointer); });
  return py::array_t<float>({n}, {static_cast<std::int64_t>(sizeof(float))}, owned->data(), free);
}

// ---- training --------------------------------------------------------------------------------

TrainOptions train_options(const py::dict& options) {
  TrainOptions train;
  train.label_column = option<std::string>(options, "label", "");
  train.group_column = option<std::string>(options, "group", "");
  train.classifier = option<std::string>(options, "classifier", train.classifier);
  train.features = option<std::string>(options, "features", train.features);
  train.n_genes = option<int>(options, "n_genes", train.n_genes);
  train.hyperparameters = option<HyperParameters>(options, "hyperparameters", {});
  train.validation_fraction = option<double>(options, "validation_fraction", train.validation_fraction);
  train.seed = option<std::uint64_t>(options, "seed", train.seed);
  train.num_threads = option<int>(options, "threads", 0);
  train.label_map = option<std::string>(options, "label_map", "");
  train.label_map_dataset = option<std::string>(options, "label_dataset", "");
  train.reference_sample_cells = option<std::int64_t>(options, "reference_sample", train.reference_sample_cells);
  train.harmonize_labels = option<bool>(options, "harmonize_labels", false);
  train.flat_labels = option<bool>(options, "flat_labels", false);
  train.balance_references = option<bool>(options, "balance_references", false);
  train.own_gene_names = option<bool>(options, "own_gene_names", false);
  train.gene_pooling = option<std::string>(options, "gene_pooling", train.gene_pooling);
  train.augment_depth = option<bool>(options, "augment_depth", train.augment_depth);
  train.calibrate = option<bool>(options, "calibrate", train.calibrate);
  train.augment_depth_max_copies = option<std::int64_t>(options, "augment_depth_max_copies", train.augment_depth_max_copies);
  if (train.augment_depth_max_copies < 0) throw InputError("augment_depth_max_copies must be 0 (every cell) or more");
  train.embed = embed_options(options);
  train.embed.matrix = option<std::string>(options, "matrix", "auto");  // the request; each reference's matrix is in matrices
  train.embed.dims = option<int>(options, "dims", 0);
  train.log = stderr_log(option<bool>(options, "verbose", false));
  return train;
}

GeneStore load_store_for(const TrainOptions& train, const std::string& path) {
  if (train.features != kFeaturesGenept) return {};
  return GeneStore::load(resolve_gene_store_path(path));
}

nlohmann::json train_summary(const TrainResult& result) {
  nlohmann::json summary = {{"n_cells", result.n_cells},
                            {"n_dropped_unlabelled", result.n_dropped_unlabelled},
                            {"n_dropped_empty", result.n_dropped_empty},
                            {"n_validation", result.n_validation},
                            {"n_thinned_copies", result.model.provenance.is_object() ? result.model.provenance.value("n_thinned_copies", std::int64_t{0}) : 0},
                            {"warnings", result.warnings}};
  summary["validation"] = result.has_validation ? to_json(result.validation) : nlohmann::json(nullptr);
  summary["calibration"] = calibration_summary(result.model);
  if (result.n_reference_genes > 0) {  // reference mode (train_for_query)
    summary["n_reference_genes"] = result.n_reference_genes;
    summary["n_shared_genes"] = result.n_shared_genes;
  }
  return summary;
}

std::pair<std::shared_ptr<CellTypeModel>, std::string> train(const py::list& references, const py::dict& options) {
  std::vector<BorrowedData> data;
  for (const auto& reference : references) data.push_back(borrowed_dataset(reference.cast<py::dict>()));
  TrainOptions train = train_options(options);
  train.matrices = matrices_of(data);
  const std::string store_path = option<std::string>(options, "genes", "");
  const std::string table_path = option<std::string>(options, "gene_table", "");
  const std::string ontology_path = option<std::string>(options, "ontology", "");
  py::gil_scoped_release release;
  Interruptible interruptible;
  std::vector<const Dataset*> datasets;
  for (const auto& borrowed : data) datasets.push_back(borrowed.dataset.get());
  const auto table = gene_table(table_path);
  if (!table) throw InputError("training needs a gene table: pass gene_table= or install r-bioc-org.hs.eg.db (scripts/setup.sh)");
  const GeneStore store = load_store_for(train, store_path);
  // The ontology gives labels that are CL names their ids, and the terms of harmonize_labels.
  const std::shared_ptr<const Ontology> cell_ontology = ontology(ontology_path);
  if (train.harmonize_labels && !cell_ontology && train.label_map.empty()) {
    throw InputError(fmt::format("harmonize_labels=True needs the Cell Ontology (ontology=FILE) or label_map=; {}", kOntologyReleaseHint));
  }
  train.ontology = cell_ontology.get();
  TrainResult result = train_model(datasets, train, store, *table);
  std::string summary = train_summary(result).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // before the model moves out of `result`
  auto model = std::make_shared<CellTypeModel>(std::move(result.model));
  return {model, std::move(summary)};
}

// ---- cross-validation ------------------------------------------------------------------------

/// `celltyper cv` over data in memory: the result's JSON (CrossValidationResult::to_json) with the
/// fold table as text and every held-out cell's reference, row, fold, truth and predictions; and
/// per flat method its out-of-fold probabilities as (class names, cells x classes float32 array).
py::tuple cross_validate_cells(const py::list& references, const py::dict& options) {
  std::vector<BorrowedData> data;
  for (const auto& reference : references) data.push_back(borrowed_dataset(reference.cast<py::dict>()));
  CrossValidationOptions cv;
  cv.train = train_options(options);
  cv.train.matrices = matrices_of(data);
  cv.train.references = option<std::vector<std::string>>(options, "names", {});
  for (const auto& classifier : option<std::vector<std::string>>(options, "classifiers", {"logreg"})) {
    find_classifier_spec(classifier);  // (an unknown name, said before any work)
    for (const auto& features : option<std::vector<std::string>>(options, "routes", {kFeaturesExpression})) {
      if (features != kFeaturesGenept && features != kFeaturesExpression) {
        throw InputError(fmt::format("features must be '{}' or '{}', got '{}'", kFeaturesExpression, kFeaturesGenept, features));
      }
      cv.configurations.push_back({classifier, features, cv.train.hyperparameters});
    }
  }
  cv.ensemble = option<bool>(options, "ensemble", true);
  cv.hierarchical = option<bool>(options, "hierarchical", false);
  cv.min_score = option<double>(options, "min_score", cv.min_score);
  cv.harmonize_labels = cv.train.harmonize_labels;
  cv.folds = option<std::vector<std::string>>(options, "folds", {});
  cv.n_splits = option<int>(options, "n_splits", 0);
  cv.keep_held_out = true;
  cv.keep_held_out_map = !option<std::string>(options, "report", "").empty();
  cv.keep_models = option<bool>(options, "return_models", false);
  cv.log = cv.train.log;
  const std::string restrict_genes = option<std::string>(options, "restrict_genes", "");
  const std::string report = option<std::string>(options, "report", "");
  const std::string store_path = option<std::string>(options, "genes", "");
  const std::string table_path = option<std::string>(options, "gene_table", "");
  const std::string ontology_path = option<std::string>(options, "ontology", "");
  const bool use_ontology = option<bool>(options, "use_ontology", true);
  std::optional<py::gil_scoped_release> release(std::in_place);
  std::optional<Interruptible> interruptible(std::in_place);
  std::vector<const Dataset*> datasets;
  for (const auto& borrowed : data) datasets.push_back(borrowed.dataset.get());
  const auto table = gene_table(table_path);
  if (!table) throw InputError("cross-validation needs a gene table: pass gene_table= or install r-bioc-org.hs.eg.db (scripts/setup.sh)");
  const bool uses_store = std::any_of(cv.configurations.begin(), cv.configurations.end(),
                                      [](const CvModelConfig& configuration) { return configuration.features == kFeaturesGenept; });
  const GeneStore store = uses_store ? GeneStore::load(resolve_gene_store_path(store_path)) : GeneStore{};
  const std::shared_ptr<const Ontology> cell_ontology = use_ontology ? ontology(ontology_path) : nullptr;
  if (!cell_ontology && (cv.hierarchical || cv.harmonize_labels)) {
    throw InputError(fmt::format("hierarchical=True / harmonize_labels=True need the Cell Ontology: pass ontology=FILE; {}", kOntologyReleaseHint));
  }
  cv.ontology = cell_ontology.get();
  cv.train.ontology = cell_ontology.get();
  if (restrict_genes == "held-out") {
    cv.restrict_to_held_out_genes = true;
  } else if (!restrict_genes.empty()) {
    const std::optional<GeneTable> own = cv_own_gene_names_table(datasets, cv, *table);  // (another species: its own names)
    cv.train.restrict_genes = genes_of(restrict_genes, own ? *own : *table);
  }
  CrossValidationResult result = cross_validate(datasets, cv, store, *table);
  nlohmann::json json = result.to_json();
  json["table"] = result.format_table();
  json["held_out"] = {{"reference", result.held_out.reference}, {"row", result.held_out.row}, {"fold", result.held_out.fold},
                      {"truth", result.held_out.truth}, {"predictions", result.held_out.predictions},
                      {"scores", result.held_out.scores}};
  if (!report.empty()) {
    std::vector<std::pair<std::string, std::string>> details;
    details.emplace_back("references", fmt::format("{}", fmt::join(cv.train.references, ", ")));
    details.emplace_back("label", cv.train.label_column);
    details.emplace_back("held out by", cv.train.group_column);
    if (cell_ontology) details.emplace_back("ontology", default_ontology_path(ontology_path));
    write_html_report(report_content(result, std::move(details), 20000, cv.train.seed), report);
  }
  std::string text = json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  CrossValidationResult::HeldOut held_out = std::move(result.held_out);
  std::vector<CvFoldModel> models = std::move(result.models);
  interruptible.reset();
  release.reset();
  py::dict probabilities;
  for (auto& [method, matrix] : held_out.probabilities) {
    const auto cols = static_cast<std::int64_t>(matrix.class_names.size());
    const auto rows = cols == 0 ? static_cast<std::int64_t>(held_out.truth.size()) : static_cast<std::int64_t>(matrix.values.size()) / cols;
    probabilities[py::str(method)] = py::make_tuple(matrix.class_names, matrix_array(std::move(matrix.values), rows, cols));
  }
  py::list fold_models;
  for (auto& kept : models) fold_models.append(py::make_tuple(kept.fold, kept.method, std::move(kept.model)));
  return py::make_tuple(py::str(text), probabilities, fold_models);
}

// ---- annotation ------------------------------------------------------------------------------

py::dict annotate(const py::dict& query_spec, const std::vector<std::shared_ptr<CellTypeModel>>& given, const py::list& references,
                  const py::dict& options) {
  BorrowedData query = borrowed_dataset(query_spec);
  std::vector<BorrowedData> reference_data;
  for (const auto& reference : references) reference_data.push_back(borrowed_dataset(reference.cast<py::dict>()));
  AnnotateOptions annotate_options;
  annotate_options.embed = embed_options(options);
  annotate_options.embed.matrix = query.matrix;
  annotate_options.min_score = option<double>(options, "min_score", annotate_options.min_score);
  annotate_options.top_k = option<int>(options, "top_k", 0);
  annotate_options.over_clustering = option<std::string>(options, "over_clustering", "");
  annotate_options.group = option<std::string>(options, "group", "");
  annotate_options.hierarchical = option<bool>(options, "hierarchical", false);
  annotate_options.unassign_unlike = option<bool>(options, "unassign_unlike", false);
  annotate_options.refit = option<bool>(options, "refit", true);
  annotate_options.allow_low_coverage = option<bool>(options, "allow_low_coverage", false);
  annotate_options.log = stderr_log(option<bool>(options, "verbose", false));
  TrainOptions train = train_options(options);
  train.group_column.clear();  // (annotate's `group` names the query's samples, not validation groups of the references)
  train.matrices = matrices_of(reference_data);
  const std::string store_path = option<std::string>(options, "genes", "");
  const std::string table_path = option<std::string>(options, "gene_table", "");
  const std::string ontology_path = option<std::string>(options, "ontology", "");
  if (given.empty() == reference_data.empty()) throw InputError("annotate needs either model= (trained models) or reference= (train on the fly)");

  Annotation annotation;
  std::string ontology_warning;
  std::string gene_table_message;  // (the recorded gene table's note or warning)
  std::vector<std::string> trained_warnings;  // (reference mode: what training said, as the command prints it)
  std::shared_ptr<CellTypeModel> trained_model;
  std::string trained_summary;
  {
    py::gil_scoped_release release;
    Interruptible interruptible;
    std::shared_ptr<const Ontology> cell_ontology;
    if (annotate_options.hierarchical) {
      cell_ontology = ontology(ontology_path);
      if (!cell_ontology) {
        throw InputError(fmt::format("hierarchical=True needs the Cell Ontology: pass ontology=FILE (.obo or .json) or set CELLTYPER_ONTOLOGY; {}",
                                     kOntologyReleaseHint));
      }
      annotate_options.ontology = cell_ontology.get();
    }
    std::vector<const CellTypeModel*> models;
    for (const auto& model : given) {
      if (!model) throw InputError("model is None");
      models.push_back(model.get());
    }
    std::shared_ptr<const GeneTable> table;
    // A model trained with another gene table (another species'): its names, not the default's.
    RecordedGeneTable recorded;
    recorded = models_recorded_gene_table(
        models,
        [&]() -> const GeneTable* {
          if (!table) table = gene_table(table_path);
          return table.get();
        },
        table_path);  // (said "--gene-table X": the result's warnings name it gene_table='X')
    gene_table_message = recorded.message;
    if (recorded.table) {
      table = std::make_shared<const GeneTable>(std::move(*recorded.table));
    } else if (!table) {
      table = gene_table(table_path);
    }
    if (!reference_data.empty()) {
      if (!table) throw InputError("reference mode needs a gene table: pass gene_table= or install r-bioc-org.hs.eg.db (scripts/setup.sh)");
      std::vector<const Dataset*> datasets;
      for (const auto& borrowed : reference_data) datasets.push_back(borrowed.dataset.get());
      if (!cell_ontology) cell_ontology = ontology(ontology_path);  // CL ids of labels that are CL names
      train.ontology = cell_ontology.get();
      const GeneStore store = load_store_for(train, store_path);
      TrainResult result = train_for_query(datasets, *query.dataset, train, store, *table, annotate_options.embed,
                                           annotate_options.allow_low_coverage ? 0 : annotate_options.min_coverage_genes);
      trained_summary = train_summary(result).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      trained_warnings = result.warnings;
      // (references of another species trained on their own var names: the query is read in them)
      if (trained_on_own_gene_names(result.model)) table = std::make_shared<const GeneTable>(result.model.gene_table());
      trained_model = std::make_shared<CellTypeModel>(std::move(result.model));
      models.push_back(trained_model.get());
    }
    // Classes with CL ids: the ontology names them (obs celltyper_ontology_name), when installed or given.
    if (annotate_options.ontology == nullptr && std::any_of(models.begin(), models.end(), [](const CellTypeModel* model) {
          return std::any_of(model->class_cl_ids.begin(), model->class_cl_ids.end(), [](const std::string& id) { return !id.empty(); });
        })) {
      try {  // (the names are an extra: an unreadable ontology costs them, not the labels)
        if (!cell_ontology) cell_ontology = ontology(ontology_path);
        annotate_options.ontology = cell_ontology.get();
        if (!cell_ontology) ontology_warning = std::string(kNoOntologyForNamesWarning);
      } catch (const Error& error) {
        ontology_warning = fmt::format("the Cell Ontology could not be read, so obs celltyper_ontology_name is left out: {}", error.what());
      }
    }
    const GeneTable fallback = table ? GeneTable() : models_gene_table(models);
    annotation = annotate_dataset(*query.dataset, models, table ? *table : fallback, annotate_options);
  }
  if (!ontology_warning.empty()) annotation.warnings.push_back(ontology_warning);
  annotation.warnings.insert(annotation.warnings.begin(), trained_warnings.begin(), trained_warnings.end());
  if (!gene_table_message.empty()) annotation.warnings.insert(annotation.warnings.begin(), gene_table_message);
  py::dict out;
  // (what the run did, for adata.uns['celltyper_annotation'], before the scores move out; Python names the models)
  std::vector<const CellTypeModel*> used;  // (the given models, then reference mode's)
  for (const auto& model : given) used.push_back(model.get());
  if (trained_model) used.push_back(trained_model.get());
  out["record"] = annotation_record(annotation, used, {}, annotate_options, {}, false).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const auto n = static_cast<std::int64_t>(annotation.labels.size());
  const auto classes = static_cast<std::int64_t>(annotation.class_names.size());
  out["labels"] = annotation.labels;
  out["scores"] = vector_array(std::move(annotation.scores));
  out["cl_ids"] = annotation.cl_ids;
  out["cl_names"] = annotation.cl_names;
  out["has_cl_names"] = annotation.has_cl_names;
  out["class_names"] = annotation.class_names;
  out["class_cl_ids"] = annotation.class_cl_ids;
  out["probabilities"] = matrix_array(std::move(annotation.probabilities), n, classes);
  out["top_labels"] = annotation.top_labels;
  out["top_scores"] = annotation.top_scores;
  out["majority_vote"] = annotation.majority_vote;
  out["flat_labels"] = annotation.flat_labels;
  out["gene_coverage"] = vector_array(std::move(annotation.gene_coverage));
  out["similarity"] = vector_array(std::move(annotation.similarity));
  out["unlike_reference"] = std::vector<bool>(annotation.unlike_reference.begin(), annotation.unlike_reference.end());
  out["similarity_judged"] = std::vector<bool>(annotation.similarity_judged.begin(), annotation.similarity_judged.end());
  out["has_majority_vote"] = annotation.has_majority_vote;
  out["has_flat_labels"] = annotation.has_flat_labels;
  out["has_similarity"] = annotation.has_similarity;
  out["warnings"] = annotation.warnings;
  nlohmann::json uses = nlohmann::json::array();
  for (const ModelUse& use : annotation.models) uses.push_back(to_json(use));
  out["models"] = uses.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  nlohmann::json groups = nlohmann::json::array();
  for (const PanelGroupUse& group : annotation.panel_groups) groups.push_back(to_json(group));
  out["panel_groups"] = groups.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  nlohmann::json samples = nlohmann::json::array();
  for (const SampleSummary& sample : annotation.samples) samples.push_back(to_json(sample));
  out["samples"] = samples.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (trained_model) {
    out["trained_model"] = trained_model;
    out["trained_summary"] = trained_summary;
  }
  return out;
}

// ---- embedding, evaluation, genes -------------------------------------------------------------

/// What the values of a dataset spec look like (summarize_matrix of its first 2,000 cells):
/// "raw-counts", "log-normalized", ... as `celltyper inspect` names them.
std::string matrix_scale(const py::dict& spec) {
  BorrowedData data = borrowed_dataset(spec);
  py::gil_scoped_release release;
  SummarizeOptions scan;
  scan.max_rows = 2000;
  const std::unique_ptr<MatrixReader> reader = data.dataset->open_matrix(data.matrix);
  return to_string(summarize_matrix(*reader, scan).scale);
}

std::tuple<py::array_t<float>, std::string, py::array_t<bool>> embed(const py::dict& spec, const py::dict& options) {
  BorrowedData data = borrowed_dataset(spec);
  EmbedOptions embed = embed_options(options);
  embed.matrix = data.matrix;
  embed.dims = option<int>(options, "dims", 0);
  embed.min_median_coverage = option<double>(options, "min_coverage", embed.min_median_coverage);
  embed.coverage_option = "--min-coverage";  // (min_coverage= in Python's words)
  const std::string store_path = option<std::string>(options, "genes", "");
  const std::string table_path = option<std::string>(options, "gene_table", "");
  MemorySink sink;
  EmbedResult result;
  {
    py::gil_scoped_release release;
    Interruptible interruptible;
    const auto table = gene_table(table_path);
    if (!table) throw InputError("embedding needs a gene table: pass gene_table= or install r-bioc-org.hs.eg.db (scripts/setup.sh)");
    const std::string resolved = resolve_gene_store_path(store_path);
    const auto store = load_once<GeneStore>(resolved, [](const std::string& file) { return GeneStore::load(file); });
    const GeneVectorSource source = store_vector_source(*store, fmt::format("{} ({}, {} dims)", resolved, store->provenance().backend, store->dims()));
    result = embed_dataset(*data.dataset, *table, source, embed, sink);
  }
  py::array_t<bool> empty(static_cast<py::ssize_t>(sink.empty.size()));  // cells without an expressed gene with a vector
  std::copy(sink.empty.begin(), sink.empty.end(), empty.mutable_data());
  return {matrix_array(std::move(sink.values), result.n_cells, result.dims), result.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::move(empty)};
}

std::string evaluate_cells(const py::dict& obs_columns, const std::vector<std::string>& obs_names, const py::dict& obsm, const py::dict& uns,
                           const py::dict& options) {
  MemoryAnnotatedSource source;
  source.label = option<std::string>(options, "name", "AnnData");
  source.obs = data_frame(obs_names, obs_columns, source.label + ":obs");
  for (const auto& [key, value] : obsm) {
    const auto array = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(value);
    if (!array || array.ndim() != 2) throw InputError(fmt::format("{}: obsm:{} is not a 2-D numeric matrix", source.label, py::str(key).cast<std::string>()));
    DenseMatrix matrix;
    matrix.rows = array.shape(0);
    matrix.cols = array.shape(1);
    matrix.values.assign(array.data(), array.data() + array.size());
    source.obsm.emplace(py::str(key).cast<std::string>(), std::move(matrix));
  }
  for (const auto& [key, value] : uns) source.uns.emplace(py::str(key).cast<std::string>(), value.cast<std::vector<std::string>>());
  DatasetEvaluationOptions evaluation;
  evaluation.truth = option<std::string>(options, "truth", "");
  evaluation.prediction = option<std::string>(options, "pred", evaluation.prediction);
  evaluation.probabilities = option<std::string>(options, "probabilities", evaluation.probabilities);
  evaluation.group = option<std::string>(options, "group", "");
  evaluation.label_map = option<std::string>(options, "label_map", "");
  evaluation.label_dataset = option<std::string>(options, "label_dataset", "");
  evaluation.embedding = option<std::string>(options, "embedding", "none");
  evaluation.max_map_points = option<std::size_t>(options, "max_points", evaluation.max_map_points);
  evaluation.seed = option<std::uint64_t>(options, "seed", evaluation.seed);
  const std::string report = option<std::string>(options, "report", "");
  evaluation.umap = !report.empty();  // (the report's second map, as `celltyper evaluate --report`)
  evaluation.top_k = option<std::vector<int>>(options, "top_k", evaluation.top_k);
  const std::string compare = option<std::string>(options, "compare", "auto");
  if (compare != "auto" && compare != "labels" && compare != "ontology") throw InputError(fmt::format("compare='{}': auto, labels or ontology", compare));
  evaluation.compare = compare == "labels" ? CompareOn::kLabels : compare == "ontology" ? CompareOn::kOntology : CompareOn::kAuto;
  const bool use_ontology = option<bool>(options, "use_ontology", true);
  const std::string ontology_path = option<std::string>(options, "ontology", "");
  py::gil_scoped_release release;
  Interruptible interruptible;
  std::shared_ptr<const Ontology> cell_ontology = use_ontology ? ontology(ontology_path) : nullptr;
  evaluation.ontology = cell_ontology.get();
  const DatasetEvaluation result = evaluate_annotated(source, evaluation);
  if (!report.empty()) write_html_report(report_content(result), report);
  return to_json(result).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::tuple<std::string, std::int64_t, float>> gene_neighbors(const std::string& gene, int k, const std::string& store_path,
                                                                          const std::string& table_path) {
  if (k < 1) throw InputError(fmt::format("k={}: at least 1", k));
  py::gil_scoped_release release;
  Interruptible interruptible;
  const std::string resolved = resolve_gene_store_path(store_path);
  const auto store = load_once<GeneStore>(resolved, [](const std::string& file) { return GeneStore::load(file); });
  const auto table = gene_table(table_path);
  const std::int32_t row = store->find_gene(gene, table.get());
  if (row < 0) throw InputError(fmt::format("gene '{}' has no vector in {}", gene, resolved));
  std::vector<std::tuple<std::string, std::int64_t, float>> out;
  for (const auto& [neighbour, cosine] : store->nearest(row, k)) {
    const auto index = static_cast<std::size_t>(neighbour);
    out.emplace_back(store->symbols()[index], store->entrez_ids()[index], cosine);
  }
  return out;
}

/// Whether the column indices of every CSR row are increasing (non-strictly: duplicates are left
/// for ArrayDataset to refuse), read in place (SciPy's own check copies the indices when the
/// index arrays have different integer types).
bool csr_indices_sorted(const py::array& indptr, const py::array& indices) {
  const ArrayView pointers = array_view(indptr, "X.indptr");
  const ArrayView columns = array_view(indices, "X.indices");
  const auto check = [&](const auto* p, const auto* c) {
    for (std::int64_t r = 0; r + 1 < pointers.size; ++r) {
      const auto begin = static_cast<std::int64_t>(p[r]);
      const auto end = std::min<std::int64_t>(static_cast<std::int64_t>(p[r + 1]), columns.size);
      for (std::int64_t k = std::max<std::int64_t>(begin, 0) + 1; k < end; ++k) {
        if (c[k] < c[k - 1]) return false;
      }
    }
    return true;
  };
  const auto with_columns = [&](const auto* p) {
    if (columns.type == ArrayType::kInt64) return check(p, static_cast<const std::int64_t*>(columns.data));
    if (columns.type == ArrayType::kInt32) return check(p, static_cast<const std::int32_t*>(columns.data));
    throw InputError(fmt::format("X.indices are {}; int32 or int64 expected", to_string(columns.type)));
  };
  py::gil_scoped_release release;
  Interruptible interruptible;
  if (pointers.type == ArrayType::kInt64) return with_columns(static_cast<const std::int64_t*>(pointers.data));
  if (pointers.type == ArrayType::kInt32) return with_columns(static_cast<const std::int32_t*>(pointers.data));
  throw InputError(fmt::format("X.indptr are {}; int32 or int64 expected", to_string(pointers.type)));
}

}  // namespace

PYBIND11_MODULE(_celltyper, m) {
  m.doc() = "celltyper engine (C++): use the functions of the celltyper package";
  static py::exception<Error> base(m, "CelltyperError", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr pointer) {
    try {
      if (pointer) std::rethrow_exception(pointer);
    } catch (const InputError& error) {
      PyErr_SetString(PyExc_ValueError, error.what());
    } catch (const IoError& error) {
      PyErr_SetString(PyExc_OSError, error.what());
    } catch (const UnsupportedError& error) {
      PyErr_SetString(PyExc_NotImplementedError, error.what());
    } catch (const Cancelled&) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
    } catch (const Error& error) {
      base(error.what());
    }
  });

  py::class_<CellTypeModel, std::shared_ptr<CellTypeModel>>(m, "Model")
      .def_property_readonly("classes", [](const CellTypeModel& model) { return model.class_names; })
      .def_property_readonly("cl_ids", [](const CellTypeModel& model) { return model.class_cl_ids; })
      .def_property_readonly("features", [](const CellTypeModel& model) { return model.features; })
      .def_property_readonly("classifier", [](const CellTypeModel& model) { return model.classifier ? model.classifier->type() : std::string(); })
      .def_property_readonly("n_features", &CellTypeModel::n_features)
      .def_property_readonly("panel", [](const CellTypeModel& model) { return model.panel.symbols; })
      .def_property_readonly("n_reference_cells", [](const CellTypeModel& model) { return model.reference.n_cells(); })
      .def_property_readonly("_validation_json", [](const CellTypeModel& model) { return model.validation.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); })
      .def_property_readonly("_provenance_json", [](const CellTypeModel& model) { return model.provenance.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); })
      .def_property_readonly("_calibration_json", [](const CellTypeModel& model) { return calibration_summary(model).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); })
      .def("_markers_json", [](const CellTypeModel& model, std::size_t n) {
        std::string text;
        {
          py::gil_scoped_release release;
          text = markers_to_json(class_markers(model, n)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
        return text;
      })
      .def("save", [](const CellTypeModel& model, const std::string& path) {
        py::gil_scoped_release release;
        Interruptible interruptible;
        save_model(model, path);
      });
  m.def("load_model", [](const std::string& path) {
    py::gil_scoped_release release;
    Interruptible interruptible;
    auto model = std::make_shared<CellTypeModel>(load_model(path));
    // A Python model outlives its file's scope: its reference sample is read now, not on first refit.
    (void)model->reference.cell_values();
    return model;
  });
  m.def("train", &train);
  m.def("annotate", &annotate);
  m.def("embed", &embed);
  m.def("matrix_scale", &matrix_scale);
  m.attr("RAW_GENE_SUPERSET_RATIO") = kRawGeneSupersetRatio;
  m.def("evaluate", &evaluate_cells);
  m.def("cross_validate", &cross_validate_cells);
  m.def("gene_neighbors", &gene_neighbors);
  m.def("csr_indices_sorted", &csr_indices_sorted);
  m.def("is_annotation_column", [](const std::string& name) { return is_annotation_column(name); });
  m.def("version", [] { return std::string(CELLTYPER_VERSION); });
  m.def("default_gene_table_path", [] { return default_gene_table_path(); });
}
