/// @file report_dataset.cpp
/// Evaluating the predictions stored in an annotated .h5ad: reading the columns, mapping both
/// label sides to the Cell Ontology, choosing what the flat metrics compare, evaluating all cells
/// and each group, and projecting an embedding for the report's cell map.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>

#include "celltyper/error.hpp"
#include "celltyper/report.hpp"
#include "celltyper/train.hpp"
#include "io/hdf5_open.hpp"
#include "io/hdf5_util.hpp"
#include "text_lists.hpp"

namespace celltyper {
namespace {

using h5::Handle;

/// "prefix:NAME" or "NAME" -> "NAME"; another "x:" prefix is refused. `what` names the input.
std::string strip_prefix(const std::string& reference, const std::string& prefix, const std::string& what) {
  const std::string full = prefix + ":";
  if (reference.rfind(full, 0) == 0) return reference.substr(full.size());
  for (const char* other : {"obs:", "obsm:", "uns:", "var:", "layers:", "obsp:", "varm:"}) {
    if (reference.rfind(other, 0) == 0) {
      throw InputError(fmt::format("{} '{}': expected {}:NAME", what, reference, prefix));
    }
  }
  if (reference.empty()) throw InputError(fmt::format("{}: empty name", what));
  return reference;
}

/// The strings of the dataset uns/<key> and whether it is a scalar (celltyper's JSON texts) or
/// an array (a list: anndata's string-array); nullopt when absent or not strings.
/// `root`: the AnnData group ("" for an .h5ad, "mod/rna/" for a MuData file's modality).
std::optional<std::pair<std::vector<std::string>, bool>> read_uns_strings(const std::string& path, const std::string& root, const std::string& key) {
  auto lock = h5::hdf5_lock();
  h5::silence_hdf5_errors();
  const h5::OpenFile opened = h5::open_file_readonly(path);
  const Handle& file = opened.file;
  if (!file) throw IoError(fmt::format("cannot open {} to read uns/{}", path, key));
  const std::string dataset_path = root + "uns/" + key;
  if (h5::object_type(file.get(), dataset_path) != H5O_TYPE_DATASET) return std::nullopt;
  const Handle dataset = h5::open_dataset(file.get(), dataset_path, path);
  if (!h5::is_string_dataset(dataset.get())) return std::nullopt;
  return std::make_pair(h5::read_strings(dataset.get()), h5::dataset_shape(dataset.get()).empty());
}

/// uns/<key> as a list of strings: a string array (what celltyper writes since session 28, and
/// anndata for a Python list), or a scalar JSON list (older celltyper files); nullopt when absent.
/// Throws InputError when present but neither.
std::optional<std::vector<std::string>> read_uns_string_list(const std::string& path, const std::string& root, const std::string& key) {
  const auto strings = read_uns_strings(path, root, key);
  if (!strings) return std::nullopt;
  if (!strings->second) return strings->first;
  // an older file's JSON text
  const nlohmann::json parsed = nlohmann::json::parse(strings->first.front(), nullptr, /* allow_exceptions = */ false);
  if (!parsed.is_array() || !std::all_of(parsed.begin(), parsed.end(), [](const auto& v) { return v.is_string(); })) {
    throw InputError(fmt::format("{}: uns/{} is not a JSON list of strings", path, key));
  }
  return parsed.get<std::vector<std::string>>();
}

/// Key of the uns entry next to obsm `key` that holds `what` ("classes", "cl_ids"):
/// celltyper_probabilities -> celltyper_probability_classes, other keys -> key + "_" + what.
std::string companion_key(const std::string& key, const std::string& what) {
  const std::string plural = "probabilities";
  if (key.size() >= plural.size() && key.compare(key.size() - plural.size(), plural.size(), plural) == 0) {
    return key.substr(0, key.size() - plural.size()) + "probability_" + what;
  }
  return key + "_" + what;
}

std::string join(const std::vector<std::string>& items) {
  return items.empty() ? std::string("none") : fmt::format("{}", fmt::join(items, ", "));
}

/// Check `column` is an obs column; the error names the role, the file and the columns there are.
void require_obs_column(const std::string& column, const std::string& role, const std::string& path,
                        const std::vector<std::string>& available) {
  if (std::find(available.begin(), available.end(), column) == available.end()) {
    throw InputError(fmt::format("{}: no obs column '{}' for the {} (available: {})", path, column, role, join(available)));
  }
}

/// Distinct labels with their cell counts, sorted by label.
std::map<std::string, std::size_t> count_labels(const std::vector<std::string>& labels) {
  std::map<std::string, std::size_t> counts;
  for (const auto& label : labels) ++counts[label];
  return counts;
}

/// Fill a mapping row from a LabelMatch and check the id against the hierarchy.
LabelMappingRow mapping_row(const std::string& label, std::size_t n_cells, const LabelMatch& match, const Ontology* ontology,
                            std::vector<std::string>* replaced = nullptr) {
  LabelMappingRow row;
  row.label = label;
  row.n_cells = n_cells;
  row.cl_id = match.cl_id;
  row.cl_label = match.cl_label;
  row.match = std::string(to_string(match.kind)) + (match.plural ? "_plural" : "");  // ("label_plural": "B cells")
  row.candidates = match.candidates;
  if (ontology == nullptr) return row;
  if (row.mapped()) {
    const auto index = ontology->find_index(row.cl_id);
    if (!index) {
      row.match = "unknown_id";
      row.cl_id.clear();
    } else {
      const TermIndex canonical = ontology->canonical(*index);
      if (ontology->root() && ontology->depth(canonical) < 0) {
        row.match = "not_in_hierarchy";
        row.cl_id.clear();
      } else {
        if (canonical != *index && replaced != nullptr) {
          replaced->push_back(fmt::format("'{}' ({} -> {} '{}')", label, row.cl_id, ontology->term(canonical).id, ontology->term(canonical).label));
        }
        row.cl_id = ontology->term(canonical).id;
        row.cl_label = ontology->term(canonical).label;
      }
    }
  } else if (match.kind == LabelMatchKind::kUnmapped && label.rfind("CL:", 0) == 0) {
    row.match = "unknown_id";
  }
  return row;
}

/// Share of the cells of `rows` (Unassigned and unpredicted cells left out) whose label has a CL id.
double mapped_share(const std::vector<LabelMappingRow>& rows) {
  std::size_t mapped = 0;
  std::size_t all = 0;
  for (const auto& row : rows) {
    if (row.label == kUnassigned || row.label == kNoPrediction) continue;
    all += row.n_cells;
    if (row.mapped()) mapped += row.n_cells;
  }
  return all == 0 ? 0.0 : static_cast<double>(mapped) / static_cast<double>(all);
}

/// Rows of `rows` that are not mapped, as "label (n cells)".
std::vector<std::string> unmapped_descriptions(const std::vector<LabelMappingRow>& rows) {
  std::vector<std::string> out;
  for (const auto& row : rows) {
    if (row.mapped()) continue;
    out.push_back(row.match == "unmapped" || row.match.empty() ? fmt::format("'{}' ({} cells)", row.label, row.n_cells)
                                                                : fmt::format("'{}' ({} cells, {})", row.label, row.n_cells, row.match));
  }
  return out;
}

/// Probability matrix restricted to `cells`, with columns renamed by `rename` and columns of the
/// same new name summed (several classes mapping to one CL term).
ProbabilityMatrix probability_matrix(const DenseMatrix& matrix, const std::vector<std::string>& class_names,
                                     const std::vector<std::size_t>& cells,
                                     const std::function<std::string(const std::string&)>& rename) {
  ProbabilityMatrix probabilities;
  std::vector<std::size_t> target(class_names.size());
  std::unordered_map<std::string, std::size_t> column_of;
  for (std::size_t j = 0; j < class_names.size(); ++j) {
    const std::string name = rename(class_names[j]);
    const auto [entry, inserted] = column_of.emplace(name, probabilities.class_names.size());
    if (inserted) probabilities.class_names.push_back(name);
    target[j] = entry->second;
  }
  const std::size_t n_columns = probabilities.class_names.size();
  probabilities.values.assign(cells.size() * n_columns, 0.0F);
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const float* row = matrix.row(static_cast<std::int64_t>(cells[i]));
    for (std::size_t j = 0; j < class_names.size(); ++j) probabilities.values[i * n_columns + target[j]] += row[j];
  }
  return probabilities;
}

nlohmann::json mapping_json(const std::vector<LabelMappingRow>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& row : rows) {
    nlohmann::json entry = {{"label", row.label},
                            {"n_cells", row.n_cells},
                            {"cl_id", row.mapped() ? nlohmann::json(row.cl_id) : nlohmann::json(nullptr)},
                            {"cl_label", row.cl_label},
                            {"match", row.match}};
    if (!row.candidates.empty()) entry["candidates"] = row.candidates;
    if (!row.alternatives.empty()) entry["alternatives"] = row.alternatives;
    out.push_back(std::move(entry));
  }
  return out;
}

nlohmann::json unmapped_json(const std::vector<LabelMappingRow>& rows) {
  nlohmann::json labels = nlohmann::json::object();
  std::size_t cells = 0;
  for (const auto& row : rows) {
    if (row.mapped()) continue;
    labels[row.label] = row.n_cells;
    cells += row.n_cells;
  }
  return {{"n_labels", labels.size()}, {"n_cells", cells}, {"labels", std::move(labels)}};
}

}  // namespace

namespace {

/// An annotated .h5ad read on demand.
class H5adAnnotatedSource final : public AnnotatedSource {
 public:
  explicit H5adAnnotatedSource(const std::string& path) : path_(path), file_(path) {}
  [[nodiscard]] const std::string& name() const override { return path_; }
  [[nodiscard]] std::vector<std::string> obs_column_names() const override { return file_.obs_column_names(); }
  [[nodiscard]] DataFrame read_obs_columns(const std::vector<std::string>& names) const override { return file_.read_obs_columns(names); }
  [[nodiscard]] std::vector<std::string> obsm_keys() const override { return file_.keys("obsm"); }
  [[nodiscard]] DenseMatrix read_obsm(const std::string& key) const override { return file_.read_obsm(key); }
  [[nodiscard]] std::optional<std::vector<std::string>> uns_string_list(const std::string& key) const override {
    return read_uns_string_list(path_, file_.group().empty() ? std::string() : file_.group() + "/", key);
  }

 private:
  std::string path_;
  H5adFile file_;
};

}  // namespace

std::vector<std::string> MemoryAnnotatedSource::obs_column_names() const {
  std::vector<std::string> names;
  for (const Column& column : obs.columns) names.push_back(column.name);
  return names;
}

DataFrame MemoryAnnotatedSource::read_obs_columns(const std::vector<std::string>& names) const {
  DataFrame out;
  out.index = obs.index;
  out.origin = obs.origin;
  for (const auto& name : names) out.columns.push_back(obs.at(name, "obs of " + label));
  return out;
}

std::vector<std::string> MemoryAnnotatedSource::obsm_keys() const {
  std::vector<std::string> keys;
  for (const auto& [key, matrix] : obsm) keys.push_back(key);
  return keys;
}

DenseMatrix MemoryAnnotatedSource::read_obsm(const std::string& key) const {
  const auto found = obsm.find(key);
  if (found == obsm.end()) throw InputError(fmt::format("{}: no obsm matrix '{}'", label, key));
  if (found->second.rows != static_cast<std::int64_t>(obs.n_rows()) ||
      static_cast<std::int64_t>(found->second.values.size()) != found->second.rows * found->second.cols) {
    throw InputError(fmt::format("{}: obsm:{} has {} rows for {} cells", label, key, found->second.rows, obs.n_rows()));
  }
  return found->second;
}

std::optional<std::vector<std::string>> MemoryAnnotatedSource::uns_string_list(const std::string& key) const {
  const auto found = uns.find(key);
  if (found == uns.end()) return std::nullopt;
  return found->second;
}

DatasetEvaluation evaluate_annotated(const std::string& path, const DatasetEvaluationOptions& options) {
  return evaluate_annotated(H5adAnnotatedSource(path), options);
}

DatasetEvaluation evaluate_annotated(const AnnotatedSource& source, const DatasetEvaluationOptions& options) {
  const std::string& path = source.name();
  if (options.truth.empty()) throw InputError("evaluation needs the obs column of the true labels");
  const std::string truth_column = strip_prefix(options.truth, "obs", "truth column");
  const std::string prediction_column = strip_prefix(options.prediction, "obs", "prediction column");
  const std::string group_column = options.group.empty() ? std::string() : strip_prefix(options.group, "obs", "group column");
  const Ontology* ontology = options.ontology;
  if (options.compare == CompareOn::kOntology && ontology == nullptr) {
    throw InputError("comparing on Cell Ontology terms needs an ontology file (none was given or found)");
  }

  DatasetEvaluation evaluation;
  evaluation.input = path;
  evaluation.truth = "obs:" + truth_column;
  evaluation.prediction = "obs:" + prediction_column;
  evaluation.group = group_column.empty() ? std::string() : "obs:" + group_column;
  if (ontology != nullptr) {
    evaluation.ontology_source = ontology->source();
    evaluation.ontology_version = ontology->version();
  }

  // ---- columns ---------------------------------------------------------------------------
  const std::vector<std::string> obs_columns = source.obs_column_names();
  require_obs_column(truth_column, "truth labels", path, obs_columns);
  require_obs_column(prediction_column, "predictions", path, obs_columns);
  std::vector<std::string> wanted = {truth_column};
  if (prediction_column != truth_column) wanted.push_back(prediction_column);
  // CELLxGENE files carry each cell's CL id beside its label (cell_type_ontology_term_id).
  const std::string truth_ids_column = want_term_id_column(obs_columns, truth_column, wanted);
  if (!group_column.empty()) {
    require_obs_column(group_column, "groups", path, obs_columns);
    if (std::find(wanted.begin(), wanted.end(), group_column) == wanted.end()) wanted.push_back(group_column);
  }
  const DataFrame obs = source.read_obs_columns(wanted);
  const Column& truth_values = obs.at(truth_column, "obs of " + path);
  const Column& prediction_values = obs.at(prediction_column, "obs of " + path);
  const Column* group_values = group_column.empty() ? nullptr : &obs.at(group_column, "obs of " + path);
  const std::size_t n_file = obs.n_rows();
  evaluation.n_cells_in_file = n_file;

  std::vector<std::size_t> cells;  // file rows that have a truth label
  std::vector<std::string> truth;
  std::vector<std::string> prediction;
  std::string missing_spelled;  // a missing value written as text among the truth ("unknown", "nan")
  std::string missing_prediction_spelled;  // and among the predictions
  std::size_t n_unassigned_truth = 0;  // truth 'Unassigned' (another annotation used as truth): no label, as train and cv read it
  std::string unassigned_spelled;
  for (std::size_t row = 0; row < n_file; ++row) {
    if (truth_values.is_missing(row) || is_unlabelled(truth_values.value_as_string(row))) {
      const std::string value = truth_values.is_missing(row) ? std::string() : truth_values.value_as_string(row);
      if (!value.empty() && !is_missing_label(value)) {
        ++n_unassigned_truth;
        if (unassigned_spelled.empty()) unassigned_spelled = value;
      } else if (!value.empty() && missing_spelled.empty()) {
        missing_spelled = value;
      }
      ++evaluation.n_missing_truth;
      continue;
    }
    cells.push_back(row);
    truth.push_back(truth_values.value_as_string(row));
    if (prediction_values.is_missing(row) || is_missing_label(prediction_values.value_as_string(row))) {
      if (!prediction_values.is_missing(row) && missing_prediction_spelled.empty()) missing_prediction_spelled = prediction_values.value_as_string(row);
      ++evaluation.n_missing_prediction;
      prediction.emplace_back(kNoPrediction);
    } else {
      prediction.push_back(prediction_values.value_as_string(row));
    }
  }
  if (n_file == 0) throw InputError(fmt::format("{}: the dataset has zero cells: nothing to evaluate", path));
  if (cells.empty()) throw InputError(fmt::format("{}: no cell has a truth label in obs column '{}'", path, truth_column));
  if (evaluation.n_missing_truth > 0) {
    std::vector<std::string> included;
    if (!missing_spelled.empty()) included.push_back(fmt::format("missing values written as text, such as '{}'", missing_spelled));
    if (n_unassigned_truth > 0) {
      included.push_back(fmt::format("{} cells labelled '{}', no label as train and cv read it", n_unassigned_truth, unassigned_spelled));
    }
    evaluation.warnings.push_back(fmt::format("{} of {} cells have no truth label in obs:{} and are left out{}", evaluation.n_missing_truth,
                                              n_file, truth_column,
                                              included.empty() ? "" : fmt::format(" ({}, included)", fmt::join(included, "; "))));
  }
  if (evaluation.n_missing_prediction > 0) {
    evaluation.warnings.push_back(fmt::format("{} cells have no value in obs:{}{}; they are evaluated as '{}'", evaluation.n_missing_prediction,
                                              prediction_column,
                                              missing_prediction_spelled.empty()
                                                  ? ""
                                                  : fmt::format(" (missing values written as text, such as '{}', included)", missing_prediction_spelled),
                                              kNoPrediction));
  }

  // ---- probabilities and the model's own class -> CL id table ------------------------------
  const std::vector<std::string> obsm_keys = source.obsm_keys();
  const auto has_obsm = [&](const std::string& key) { return std::find(obsm_keys.begin(), obsm_keys.end(), key) != obsm_keys.end(); };
  std::string probability_key;
  if (options.probabilities == "auto") {
    if (has_obsm("celltyper_probabilities")) probability_key = "celltyper_probabilities";
  } else if (options.probabilities != "none" && !options.probabilities.empty()) {
    probability_key = strip_prefix(options.probabilities, "obsm", "probability matrix");
    if (!has_obsm(probability_key)) {
      throw InputError(fmt::format("{}: no obsm matrix '{}' for the probabilities (available: {})", path, probability_key, join(obsm_keys)));
    }
  }
  DenseMatrix probability_values;
  std::vector<std::string> probability_classes;
  if (!probability_key.empty()) {
    const std::string classes_key = options.probability_classes.empty()
                                        ? companion_key(probability_key, "classes")
                                        : strip_prefix(options.probability_classes, "uns", "probability class names");
    const auto classes = source.uns_string_list(classes_key);
    if (!classes) {
      if (options.probabilities != "auto") {
        throw InputError(fmt::format("{}: the class names of obsm:{} are not in uns:{} (a JSON list of strings); name them with the "
                                     "probability classes option",
                                     path, probability_key, classes_key));
      }
      evaluation.warnings.push_back(
          fmt::format("obsm:{} is present but uns:{} (its class names) is not: ranking metrics skipped", probability_key, classes_key));
      probability_key.clear();
    } else {
      probability_values = source.read_obsm(probability_key);
      if (static_cast<std::size_t>(probability_values.cols) != classes->size()) {
        throw InputError(fmt::format("{}: obsm:{} has {} columns but uns:{} names {} classes", path, probability_key,
                                     probability_values.cols, classes_key, classes->size()));
      }
      probability_classes = *classes;
      evaluation.probabilities = "obsm:" + probability_key;
    }
  }
  // Class -> CL id recorded by `celltyper annotate` (from the model file): for predicted labels, and
  // for truth labels that are class names when nothing else maps them.
  std::map<std::string, std::string> model_cl_ids;
  const std::optional<std::vector<std::string>> model_classes = source.uns_string_list("celltyper_probability_classes");
  {
    const auto& classes = model_classes;
    const auto ids = source.uns_string_list("celltyper_probability_cl_ids");
    if (classes && ids && classes->size() == ids->size()) {
      for (std::size_t j = 0; j < classes->size(); ++j) {
        if (!(*ids)[j].empty()) model_cl_ids.emplace((*classes)[j], (*ids)[j]);
      }
    }
  }

  // The columns `celltyper annotate` writes beside its probabilities (under --hierarchical its label
  // may be a coarser term, or Unassigned under --min-score: still these probabilities' prediction).
  const bool own_prediction = prediction_column == "celltyper_label" || prediction_column == "celltyper_flat_label" ||
                              prediction_column == "celltyper_ontology_id";
  if (!probability_key.empty() && !own_prediction) {
    // Ranking metrics describe the prediction the probabilities made: not another tool's labels
    // in the --pred column beside them (nor a majority vote). Judged on the cells whose
    // prediction is one of the probabilities' classes.
    std::map<std::string, std::size_t> column_of;  // a class's name (as spelled, then its spelling key), or its CL id (a --pred of celltyper_ontology_id)
    for (std::size_t j = 0; j < probability_classes.size(); ++j) column_of.emplace(probability_classes[j], j);
    for (std::size_t j = 0; j < probability_classes.size(); ++j) column_of.emplace(label_spelling_key(probability_classes[j]), j);
    for (std::size_t j = 0; j < probability_classes.size(); ++j) {
      if (const auto id = model_cl_ids.find(probability_classes[j]); id != model_cl_ids.end()) column_of.emplace(id->second, j);
    }
    std::size_t judged = 0;
    std::size_t agree = 0;
    for (std::size_t k = 0; k < cells.size(); ++k) {
      auto found = column_of.find(prediction[k]);
      if (found == column_of.end()) found = column_of.find(label_spelling_key(prediction[k]));
      if (found == column_of.end()) continue;
      ++judged;
      const float* p = probability_values.row(static_cast<std::int64_t>(cells[k]));
      agree += *std::max_element(p, p + probability_values.cols) == p[found->second] ? 1 : 0;
    }
    if (judged == 0 || 10 * agree < 9 * judged) {
      evaluation.warnings.push_back(
          judged == 0 ? fmt::format("obsm:{} did not make obs:{} (no cell's prediction is one of its {} classes, e.g. '{}'): ranking metrics "
                                    "(top-k, MRR) left out; they would describe another prediction",
                                    probability_key, prediction_column, probability_classes.size(),
                                    probability_classes.empty() ? std::string() : probability_classes.front())
                      : fmt::format("obsm:{} did not make obs:{} (its most probable class is the prediction on {} of the {} cells predicted "
                                    "as one of its classes): ranking metrics (top-k, MRR) left out; they would describe another prediction",
                                    probability_key, prediction_column, agree, judged));
      probability_key.clear();
      evaluation.probabilities.clear();
    }
  }

  std::map<std::string, std::string> renames;  // a truth label as read -> as evaluated (only those that change)
  std::map<std::string, std::string> class_spelling;  // a probability class -> its label as evaluated
  // Labels differing only in letter case or surrounding spaces are one label, as train and cv read
  // them, on both sides: each takes the predictions' most frequent spelling of it (else the
  // probabilities' classes', "b cell" beside a model's "B cell"; else the truth's most frequent),
  // so that 'naive cd4 t' predicted beside 'Naive CD4 T' is one class, not an error.
  {
    std::map<std::string, std::int64_t> truth_cells;
    for (const auto& label : truth) ++truth_cells[label];
    std::map<std::string, std::int64_t> predicted_cells;
    for (const auto& label : prediction) {
      if (label != kUnassigned && label != kNoPrediction) ++predicted_cells[label];
    }
    const std::map<std::string, std::string> truth_frequent = label_spelling_renames(truth_cells);
    const std::map<std::string, std::string> predicted_frequent = label_spelling_renames(predicted_cells);
    std::map<std::string, std::string> spelling;  // key -> the spelling evaluated
    for (const auto& [label, count] : predicted_cells) {
      const auto frequent = predicted_frequent.find(label);
      spelling.emplace(label_spelling_key(label), frequent == predicted_frequent.end() ? label : frequent->second);
    }
    for (const auto& name : probability_classes) spelling.emplace(label_spelling_key(name), name);
    for (const auto& name : probability_classes) class_spelling[name] = spelling.at(label_spelling_key(name));
    const auto evaluated_as = [&](const std::string& label, const std::map<std::string, std::string>& frequent) {
      if (const auto found = spelling.find(label_spelling_key(label)); found != spelling.end()) return found->second;
      const auto most = frequent.find(label);
      return most == frequent.end() ? label : most->second;
    };
    const auto respell = [&](std::vector<std::string>& labels, const std::map<std::string, std::int64_t>& counts,
                             const std::map<std::string, std::string>& frequent, const std::string& side) {
      std::map<std::string, std::string> changed;  // as read -> as evaluated (only those that change)
      std::vector<std::string> examples;
      for (const auto& [label, count] : counts) {
        std::string final_name = evaluated_as(label, frequent);
        if (final_name == label) continue;
        if (examples.size() < 5) examples.push_back(fmt::format("'{}' ({} cells) as '{}'", label, count, final_name));
        changed.emplace(label, std::move(final_name));
      }
      if (changed.empty()) return changed;
      const bool ids = std::any_of(changed.begin(), changed.end(), [](const auto& renamed) { return is_cl_id_label(renamed.first); });
      evaluation.warnings.push_back(fmt::format("{}: {} label{} differ{} from another {} only in letter case or surrounding spaces{} and {} read "
                                                "as one label with it (as train and cv do): {}{}",
                                                side, changed.size(), changed.size() == 1 ? "" : "s", changed.size() == 1 ? "s" : "",
                                                &labels == &truth ? "or from a predicted label" : "predicted label or class of the probabilities",
                                                ids ? " (CL ids also in their CL_ form)" : "", changed.size() == 1 ? "is" : "are",
                                                fmt::join(examples, ", "), changed.size() > examples.size() ? ", ..." : ""));
      for (auto& label : labels) {
        if (const auto renamed = changed.find(label); renamed != changed.end()) label = renamed->second;
      }
      return changed;
    };
    renames = respell(truth, truth_cells, truth_frequent, "truth obs:" + truth_column);
    respell(prediction, predicted_cells, predicted_frequent, "predictions obs:" + prediction_column);
  }

  // ---- label mapping -----------------------------------------------------------------------
  LabelMapperOptions as_given;  // (an obsolete id is read as its replacement by mapping_row, which says so)
  as_given.follow_replaced_by = false;
  LabelMapper mapper(ontology, as_given);
  if (!options.label_map.empty()) mapper.load_table(options.label_map);
  std::vector<std::string> replaced;  // of labels mapped to an obsolete id: "'label' (old -> new 'name')"
  if (std::string note = mapper.unknown_dataset_note(options.label_dataset); !note.empty()) evaluation.warnings.push_back(std::move(note));
  // A row of the user's --label-map wins over the id a model recorded (which may come from a CL
  // name or synonym that means another cell there: "Alpha cells" as the retina's "alpha cell").
  std::vector<std::string> overridden;  // "'label': model id -> table id"
  const auto map_prediction = [&](const std::string& label) {
    LabelMatch table = mapper.map_preferring(label, options.label_dataset);
    const auto found = model_cl_ids.find(label);
    const auto same_term = [&](const std::string& a, const std::string& b) {  // (a deprecated id and its replacement are one)
      return a == b || (ontology != nullptr && ontology->contains(a) && ontology->contains(b) && ontology->canonical(a) == ontology->canonical(b));
    };
    if (table.kind == LabelMatchKind::kUserMap && (found == model_cl_ids.end() || !same_term(found->second, table.cl_id))) {
      if (found != model_cl_ids.end()) overridden.push_back(fmt::format("'{}' ({} -> {})", label, found->second, table.cl_id));
      return std::pair(table, false);
    }
    if (found != model_cl_ids.end()) {
      LabelMatch match;
      match.label = label;
      match.cl_id = found->second;
      match.kind = LabelMatchKind::kUserMap;
      if (ontology != nullptr && ontology->contains(found->second)) match.cl_label = ontology->label(found->second);
      return std::pair(match, true);
    }
    return std::pair(table, false);
  };
  std::map<std::string, std::string> truth_ids;  // label -> the CL id its cells carry, from truth_ids_column
  if (!truth_ids_column.empty()) {
    LabelTermIds counted;
    count_label_term_ids(truth_values, obs.at(truth_ids_column, "obs of " + path), counted);
    LabelTermIds merged;  // under the labels as evaluated (spellings made one)
    for (const auto& [label, ids] : counted) {
      const auto renamed = renames.find(label);
      auto& into = merged[renamed == renames.end() ? label : renamed->second];
      for (const auto& [id, n] : ids) into[id] += n;
    }
    truth_ids = most_frequent_term_ids(merged, truth_ids_column, &evaluation.warnings);
  }
  for (const auto& [label, count] : count_labels(truth)) {
    LabelMatch match = mapper.map_preferring(label, options.label_dataset);  // (as for the predictions and in train)
    const bool from_data = match.kind != LabelMatchKind::kUserMap && take_data_term_id(label, truth_ids, ontology, match);
    if (from_data) match.kind = LabelMatchKind::kUserMap;
    // A truth label that is one of the model's classes (truth in the reference's vocabulary) takes
    // the model's id when nothing else maps it: whether or not some cell is predicted so.
    bool from_model = false;
    if (!from_data && match.cl_id.empty() && model_cl_ids.count(label) != 0) std::tie(match, from_model) = map_prediction(label);
    LabelMappingRow row = mapping_row(label, count, match, ontology, &replaced);
    if (from_data && row.match == "user_map") row.match = "data";
    if (from_model && row.match == "user_map") row.match = "model";
    if (row.mapped()) row.alternatives = mapper.alternatives_within(label, row.cl_id);
    for (const auto& id : row.alternatives) row.alternative_names.push_back(ontology->label(id));
    evaluation.truth_labels.push_back(std::move(row));
  }
  for (const auto& [label, count] : count_labels(prediction)) {
    const auto [match, from_model] = map_prediction(label);
    LabelMappingRow row = mapping_row(label, count, match, ontology, &replaced);
    if (from_model && row.match == "user_map") row.match = "model";
    evaluation.prediction_labels.push_back(std::move(row));
  }
  std::sort(replaced.begin(), replaced.end());
  replaced.erase(std::unique(replaced.begin(), replaced.end()), replaced.end());
  if (!replaced.empty()) {
    evaluation.warnings.push_back(fmt::format("{} label{} map{} to an obsolete Cell Ontology term, read as its replacement: {}", replaced.size(),
                                              replaced.size() == 1 ? "" : "s", replaced.size() == 1 ? "s" : "", detail::some_of(replaced, 6)));
  }
  std::sort(overridden.begin(), overridden.end());
  overridden.erase(std::unique(overridden.begin(), overridden.end()), overridden.end());
  if (!overridden.empty()) {
    evaluation.warnings.push_back(fmt::format("the --label-map TSV gives {} label{} another Cell Ontology id than the model recorded for {}; "
                                              "the label map's id is used: {}",
                                              overridden.size(), overridden.size() == 1 ? "" : "s", overridden.size() == 1 ? "it" : "them",
                                              detail::some_of(overridden, 8)));
  }
  for (const auto* side : {&evaluation.truth_labels, &evaluation.prediction_labels}) {
    for (const auto& row : *side) {
      if (row.match == "unknown_id") {
        evaluation.warnings.push_back(fmt::format("{} label '{}' ({} cells) looks like a Cell Ontology id but is not in {}",
                                                  side == &evaluation.truth_labels ? "truth" : "predicted", row.label, row.n_cells,
                                                  ontology != nullptr ? ontology->source() : "the ontology"));
      }
    }
  }

  // ---- what the flat metrics compare ---------------------------------------------------------
  // (over the cells with a prediction: Unassigned cells say nothing of the vocabulary)
  const std::set<std::string> truth_set(truth.begin(), truth.end());
  const auto predicted_cells = static_cast<std::size_t>(std::count_if(prediction.begin(), prediction.end(), [](const std::string& label) {
    return label != kUnassigned && label != kNoPrediction;
  }));
  const auto shared_cells = static_cast<std::size_t>(std::count_if(prediction.begin(), prediction.end(), [&](const std::string& label) {
    return label != kUnassigned && label != kNoPrediction && truth_set.count(label) > 0;
  }));
  const double shared_share = predicted_cells == 0 ? 1.0 : static_cast<double>(shared_cells) / static_cast<double>(predicted_cells);
  // Truth labels that are all numbers, none with a CL id: cluster ids (obs leiden,
  // seurat_clusters; -1 for DBSCAN's noise), not cell types. Compared as labels (the confusion
  // matrix is then which labels each cluster got, under their own names), and a warning names
  // each cluster's majority.
  const bool truth_clusters =
      !truth_set.empty() &&
      std::all_of(truth_set.begin(), truth_set.end(), [](const std::string& label) { return detail::whole_number(label).has_value(); }) &&
      mapped_share(evaluation.truth_labels) == 0.0;
  switch (options.compare) {
    case CompareOn::kLabels:
      evaluation.compared_on_ontology = false;
      evaluation.compare_reason = "asked for";
      break;
    case CompareOn::kOntology:
      evaluation.compared_on_ontology = true;
      evaluation.compare_reason = "asked for";
      break;
    case CompareOn::kAuto:
      if (truth_clusters) {
        evaluation.compared_on_ontology = false;
        evaluation.compare_reason = "the truth labels are numbers: cluster ids, not cell types";
      } else if (ontology == nullptr) {
        // Without the ontology's graph the labels' CL ids (a label map, the data's ids, the
        // model's) still compare, when the two vocabularies differ and most cells of each have one.
        evaluation.compared_on_ontology =
            shared_share < 0.5 && mapped_share(evaluation.truth_labels) >= 0.5 && mapped_share(evaluation.prediction_labels) >= 0.5;
        evaluation.compare_reason =
            evaluation.compared_on_ontology
                ? fmt::format("{:.1f}% of the cells with a prediction are predicted a label among the truth labels; their Cell Ontology "
                              "ids compared as they are: no ontology, so no ontology-aware metrics",
                              100.0 * shared_share)
                : "no ontology";
      } else {
        evaluation.compared_on_ontology = shared_share < 0.5;
        evaluation.compare_reason = fmt::format("{:.1f}% of the cells with a prediction are predicted a label among the truth labels", 100.0 * shared_share);
      }
      break;
  }

  std::map<std::string, std::string> truth_name;       // label -> class name used in the metrics
  std::map<std::string, std::string> prediction_name;
  EvaluationOptions evaluation_options;
  evaluation_options.ontology = ontology;
  evaluation_options.top_k = options.top_k;
  const auto note_id = [&](const std::string& name, const std::string& id) {
    const auto [entry, inserted] = evaluation_options.cl_ids.emplace(name, id);
    if (!inserted && entry->second != id) {
      evaluation.warnings.push_back(fmt::format("label '{}' maps to {} as a truth label but to {} as a prediction; {} is used for both",
                                                name, entry->second, id, entry->second));
    }
  };
  for (const auto* side : {&evaluation.truth_labels, &evaluation.prediction_labels}) {
    auto& names = side == &evaluation.truth_labels ? truth_name : prediction_name;
    for (const auto& row : *side) {
      std::string name = row.label;
      // (without the ontology a side's names may come from a label map and the other's not: ids)
      if (evaluation.compared_on_ontology && row.mapped()) name = row.cl_label.empty() || ontology == nullptr ? row.cl_id : row.cl_label;
      names[row.label] = name;
      if (row.mapped()) note_id(name, row.cl_id);
    }
  }
  // The alternatives of each truth label as read, per cell (two labels may be one class).
  for (const auto& row : evaluation.truth_labels) {
    if (row.mapped() && !row.alternatives.empty()) evaluation_options.alternatives[row.label] = row.alternatives;
  }
  std::vector<std::string> truth_classes(truth.size());
  std::vector<std::string> prediction_classes(prediction.size());
  for (std::size_t i = 0; i < truth.size(); ++i) {
    truth_classes[i] = truth_name.at(truth[i]);
    prediction_classes[i] = prediction_name.at(prediction[i]);
  }
  const auto class_of_probability_column = [&](const std::string& label) {
    if (!evaluation.compared_on_ontology) {  // (its spelling as the labels are evaluated: a prediction's "b cell" for "B cell")
      const auto spelled = class_spelling.find(label);
      return spelled == class_spelling.end() ? label : spelled->second;
    }
    LabelMappingRow row = mapping_row(label, 0, map_prediction(label).first, ontology);
    return row.mapped() ? (row.cl_label.empty() || ontology == nullptr ? row.cl_id : row.cl_label) : label;
  };

  // ---- evaluate all cells and each group ------------------------------------------------------
  const auto evaluate_subset = [&](const std::vector<std::size_t>& positions) {
    std::vector<std::string> subset_truth;
    std::vector<std::string> subset_prediction;
    std::vector<std::size_t> rows;
    EvaluationOptions subset_options = evaluation_options;
    for (const std::size_t k : positions) {
      subset_truth.push_back(truth_classes[k]);
      subset_prediction.push_back(prediction_classes[k]);
      rows.push_back(cells[k]);
      if (!evaluation_options.alternatives.empty()) subset_options.truth_readings.push_back(truth[k]);
    }
    ProbabilityMatrix probabilities;
    if (!probability_key.empty()) {
      probabilities = probability_matrix(probability_values, probability_classes, rows, class_of_probability_column);
      subset_options.probabilities = &probabilities;
    }
    return evaluate(subset_truth, subset_prediction, subset_options);
  };
  std::vector<std::size_t> all(cells.size());
  for (std::size_t k = 0; k < all.size(); ++k) all[k] = k;
  evaluation.sets.push_back({"all cells", evaluate_subset(all)});
  {  // truth and predictions in different vocabularies: every flat metric is 0, say why
    const std::set<std::string> truth_set(truth_classes.begin(), truth_classes.end());
    const bool shared = std::any_of(prediction_classes.begin(), prediction_classes.end(),
                                    [&](const std::string& name) { return name != kUnassigned && truth_set.count(name) > 0; });
    const bool all_unassigned = std::all_of(prediction_classes.begin(), prediction_classes.end(), [](const std::string& name) { return name == kUnassigned; });
    if (all_unassigned && !truth_classes.empty()) {
      evaluation.warnings.push_back("every cell's prediction is Unassigned: accuracy and F1 are 0 (annotate with a lower --min-score)");
    } else if (truth_clusters && !shared) {
      // (each cluster's most frequent prediction, clusters in numeric order; ties: the label first in text order)
      std::map<std::string, std::map<std::string, std::size_t>> by_cluster;
      for (std::size_t i = 0; i < truth.size(); ++i) ++by_cluster[truth[i]][prediction[i]];
      std::vector<std::string> clusters;  // (in text order, then by value: the tables' order)
      for (const auto& [cluster, counts] : by_cluster) clusters.push_back(cluster);
      detail::sort_numbers_first(clusters, [](const std::string& cluster) -> const std::string& { return cluster; });
      std::vector<std::string> majorities;
      constexpr std::size_t kMaxClustersNamed = 30;
      for (const std::string& cluster : clusters) {
        if (majorities.size() == kMaxClustersNamed) {
          majorities.push_back(fmt::format("... ({} clusters)", clusters.size()));
          break;
        }
        const auto& counts = by_cluster.at(cluster);
        std::size_t cells_in = 0;
        auto best = counts.begin();
        for (auto it = counts.begin(); it != counts.end(); ++it) {
          cells_in += it->second;
          if (it->second > best->second) best = it;
        }
        majorities.push_back(fmt::format("{} -> {} ({:.0f}% of {})", cluster, best->first,
                                         100.0 * static_cast<double>(best->second) / static_cast<double>(cells_in), cells_in));
      }
      evaluation.warnings.push_back(fmt::format(
          "the truth labels are numbers, cluster ids rather than cell types: accuracy and F1 against them are 0 by construction; "
          "the confusion matrix (--report, --json) shows the labels each cluster got, and its most frequent one is: {} "
          "(`celltyper annotate --over-clustering obs:COLUMN` writes it per cell as celltyper_majority_vote)",
          fmt::join(majorities, ", ")));
    } else if (!shared && !truth_classes.empty()) {
      // Most cells of both sides with a CL id: the labels compared as asked (--compare labels)
      // would compare as ids; compared as terms already, the two name terms at other depths.
      const bool ids = mapped_share(evaluation.truth_labels) >= 0.5 && mapped_share(evaluation.prediction_labels) >= 0.5;
      evaluation.warnings.push_back(fmt::format(
          "no prediction names a truth class (truth e.g. '{}', predictions e.g. '{}'): accuracy and F1 are 0 by construction; {}",
          truth_classes.front(), prediction_classes.front(),
          !ids ? "map both to Cell Ontology ids with --label-map TSV (columns label, cl_id)"
          : !evaluation.compared_on_ontology
              ? "both sides' labels have Cell Ontology ids: --compare ontology (or the default, auto) compares those"
              : "the two name Cell Ontology terms at other depths: corrected accuracy and macro-F1 credit a prediction at or below its "
                "truth, and hierarchical F measures how near the terms are"));
    }
    if (ontology != nullptr) {  // predictions at a term above a truth class (annotate --hierarchical): a class of their own in macro-F1
      std::set<TermIndex> above_truth;  // strict ancestors of the truth classes' terms
      std::set<TermIndex> truth_terms;
      const auto term_of = [&](const std::string& name) -> std::optional<TermIndex> {
        const auto id = evaluation_options.cl_ids.find(name);
        if (id == evaluation_options.cl_ids.end()) return std::nullopt;
        const auto index = ontology->find_index(id->second);
        return index ? std::optional<TermIndex>(ontology->canonical(*index)) : std::nullopt;
      };
      for (const auto& name : truth_set) {
        if (const auto term = term_of(name)) {
          truth_terms.insert(*term);
          for (const TermIndex ancestor : ontology->ancestor_indices(*term)) {
            if (ancestor != *term) above_truth.insert(ancestor);
          }
        }
      }
      std::map<std::string, std::size_t> predicted_cells;  // (each distinct label judged once)
      for (const auto& name : prediction_classes) ++predicted_cells[name];
      std::map<std::string, std::size_t> coarser;
      for (const auto& [name, count] : predicted_cells) {
        if (name == kUnassigned || truth_set.count(name) != 0) continue;
        const auto term = term_of(name);
        if (term && truth_terms.count(*term) == 0 && above_truth.count(*term) != 0) coarser[name] = count;
      }
      if (!coarser.empty()) {
        std::vector<std::string> named;
        std::size_t cells = 0;
        for (const auto& [name, count] : coarser) {
          cells += count;
          if (named.size() < 5) named.push_back(fmt::format("'{}' ({} cells)", name, count));
        }
        evaluation.warnings.push_back(fmt::format(
            "{} cell{} predicted at a term above truth classes and no truth cell has ({}{}): macro-F1 averages over truth and predicted "
            "labels (as scikit-learn's classification_report), so each such label is a class with F1 0, in corrected macro-F1 too (which "
            "credits a prediction at or below the truth); hierarchical F and the relation shares credit them",
            cells, cells == 1 ? " is" : "s are", fmt::join(named, ", "), coarser.size() > named.size() ? ", ..." : ""));
      }
    }
    const auto n_unassigned = static_cast<std::size_t>(std::count(prediction.begin(), prediction.end(), kUnassigned));
    if (n_unassigned > 0 && !all_unassigned) {
      // Which truth labels they are (a type the references lack, left Unassigned by annotate
      // --unassign-unlike or --min-score, is the answer hoped for): the most often Unassigned.
      std::map<std::string, std::pair<std::size_t, std::size_t>> by_truth;  // label -> (Unassigned, cells)
      for (std::size_t i = 0; i < truth.size(); ++i) {
        auto& [unassigned, cells] = by_truth[truth[i]];
        ++cells;
        if (prediction[i] == kUnassigned) ++unassigned;
      }
      std::vector<std::pair<std::string, std::pair<std::size_t, std::size_t>>> ranked;
      for (const auto& entry : by_truth) {
        if (entry.second.first > 0) ranked.push_back(entry);
      }
      std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
      std::vector<std::string> named;
      for (std::size_t k = 0; k < std::min<std::size_t>(ranked.size(), 6); ++k) {
        const auto& [label, counts] = ranked[k];
        named.push_back(fmt::format("'{}' {} of {} ({:.0f}%)", label, counts.first, counts.second,
                                    100.0 * static_cast<double>(counts.first) / static_cast<double>(counts.second)));
      }
      evaluation.warnings.push_back(fmt::format(
          "{} of {} cells are Unassigned: the flat metrics count them as errors (and 'Unassigned' as a class of F1 0 in macro averages, "
          "scikit-learn's convention for a label predicted and never true){}; by truth label: {}{}",
          n_unassigned, prediction.size(),
          evaluation.sets.front().result.ontology.available
              ? ", the Cell Ontology metrics (corrected accuracy and macro-F1, hierarchical P / R / F, LCA distance) leave them out: they "
                "name no Cell Ontology term"
              : "",
          fmt::join(named, ", "), ranked.size() > named.size() ? ", ..." : ""));
    }
    // Predictions finer than the truth (a fine model on coarse truth labels: pbmc3k's types on
    // savercat's "T/NK cells"): errors for the flat metrics, right for the corrected ones.
    if (const OntologyMetrics& o = evaluation.sets.front().result.ontology; o.available && o.n_mapped > 0) {
      const std::size_t finer = o.relation_counts[static_cast<std::size_t>(TermRelation::kPredictionIsDescendant)];
      if (finer > 0 && 100 * finer >= o.n_mapped) {
        evaluation.warnings.push_back(fmt::format(
            "{} of {} cells ({:.0f}%) are predicted a term below their truth's (finer than their truth label): the flat "
            "metrics (accuracy, F1) count them as errors, corrected accuracy and macro-F1 count them as right",
            finer, o.n_mapped, 100.0 * static_cast<double>(finer) / static_cast<double>(o.n_mapped)));
      }
    }
    // Ontology metrics of a few cells (the others' labels map to no term) say little of the whole.
    // (cells without a prediction, Unassigned ones included, are left out: no map names them)
    const auto n_predicted = static_cast<std::size_t>(std::count_if(prediction.begin(), prediction.end(), [](const std::string& label) {
      return label != kUnassigned && label != kNoPrediction;
    }));
    if (const OntologyMetrics& o = evaluation.sets.front().result.ontology; o.available && o.n_mapped > 0 && 2 * o.n_mapped < n_predicted) {
      const LabelMappingRow* most = nullptr;  // the unmapped label of the most cells
      for (const auto* side : {&evaluation.truth_labels, &evaluation.prediction_labels}) {
        for (const auto& row : *side) {
          if (row.mapped() || row.label == kUnassigned || row.label == kNoPrediction) continue;
          if (most == nullptr || row.n_cells > most->n_cells) most = &row;
        }
      }
      evaluation.warnings.push_back(fmt::format(
          "the Cell Ontology metrics describe {} of the {} cells with a prediction ({:.0f}%): the others' truth or prediction maps to no "
          "term{}; --label-map TSV (columns label, cl_id) names them",
          o.n_mapped, n_predicted, 100.0 * static_cast<double>(o.n_mapped) / static_cast<double>(n_predicted),
          most == nullptr ? std::string() : fmt::format(" (e.g. '{}', {} cells)", most->label, most->n_cells)));
    }
  }
  // ---- truth types the model has no class for (UnseenTypes) ---------------------------------
  if (model_classes && !model_classes->empty() && prediction_column.starts_with("celltyper_")) {
    UnseenTypes unseen;
    unseen.n_model_classes = model_classes->size();
    std::set<std::string> class_keys;  // (names ignoring letter case, as the labels are read)
    std::vector<TermIndex> class_terms;
    std::set<std::string> class_ids;   // (without the ontology: ids compared as they are)
    for (const auto& name : *model_classes) {
      class_keys.insert(label_spelling_key(name));
      const LabelMappingRow row = mapping_row(name, 0, map_prediction(name).first, ontology);
      if (!row.mapped()) continue;
      class_ids.insert(row.cl_id);
      if (ontology == nullptr) continue;
      if (const auto index = ontology->find_index(row.cl_id)) class_terms.push_back(ontology->canonical(*index));
    }
    const auto related_to_a_class = [&](const std::string& id) {
      if (ontology == nullptr) return class_ids.count(id) != 0;
      const auto index = ontology->find_index(id);
      if (!index) return false;
      const TermIndex term = ontology->canonical(*index);
      return std::any_of(class_terms.begin(), class_terms.end(), [&](TermIndex c) {
        return c == term || ontology->is_ancestor(c, term) || ontology->is_ancestor(term, c);
      });
    };
    std::map<std::string, std::size_t> label_row;  // an unseen truth label -> its row in unseen.labels
    for (const auto& row : evaluation.truth_labels) {
      if (class_keys.count(label_spelling_key(row.label)) != 0) continue;
      if (row.mapped() && (related_to_a_class(row.cl_id) ||
                           std::any_of(row.alternatives.begin(), row.alternatives.end(), related_to_a_class))) {
        continue;
      }
      label_row.emplace(row.label, unseen.labels.size());
      unseen.labels.push_back({row.label, row.cl_id, 0, 0, {}});
    }
    // (an Unassigned cell has no CL id: celltyper_ontology_id's missing values are Unassigned;
    // elsewhere a cell without a prediction says nothing and is left out)
    const bool missing_is_unassigned = prediction_column == "celltyper_ontology_id";
    // The similarity check's flags, when written: whether --unassign-unlike could have left the
    // cells of these types Unassigned (the warning below).
    std::optional<Column> flagged;
    if (std::find(obs_columns.begin(), obs_columns.end(), "celltyper_unlike_reference") != obs_columns.end()) {
      try {
        DataFrame flags = source.read_obs_columns({"celltyper_unlike_reference"});
        flagged = std::move(flags.columns.front());
      } catch (const InputError&) {  // (another tool's column of that name, unreadable: no word of it)
      }
    }
    std::size_t n_flagged = 0;  // cells of these types flagged unlike every reference type
    std::vector<std::map<std::string, std::size_t>> named(unseen.labels.size());
    for (std::size_t k = 0; k < truth.size(); ++k) {
      if (prediction[k] == kNoPrediction && !missing_is_unassigned) continue;
      const bool unassigned = prediction[k] == kUnassigned || prediction[k] == kNoPrediction;
      const auto found = label_row.find(truth[k]);
      if (found == label_row.end()) {
        ++unseen.n_other_cells;
        if (unassigned) ++unseen.n_other_unassigned;
        continue;
      }
      UnseenTypeLabel& label = unseen.labels[found->second];
      ++label.n_cells;
      ++unseen.n_cells;
      if (flagged && !flagged->is_missing(cells[k]) && flagged->value_as_string(cells[k]) == "True") ++n_flagged;
      if (unassigned) {
        ++label.n_unassigned;
        ++unseen.n_unassigned;
      } else {
        ++named[found->second][prediction[k]];
      }
    }
    for (std::size_t j = 0; j < unseen.labels.size(); ++j) {
      std::vector<std::pair<std::string, std::size_t>> counts(named[j].begin(), named[j].end());
      std::stable_sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
      if (counts.size() > 3) counts.resize(3);
      unseen.labels[j].named_as = std::move(counts);
    }
    std::erase_if(unseen.labels, [](const UnseenTypeLabel& label) { return label.n_cells == 0; });  // (every cell without a prediction)
    std::stable_sort(unseen.labels.begin(), unseen.labels.end(), [](const auto& a, const auto& b) { return a.n_cells > b.n_cells; });
    if (unseen.n_cells > 0 && unseen.n_unassigned == 0) {
      std::vector<std::string> names;
      for (std::size_t j = 0; j < std::min<std::size_t>(unseen.labels.size(), 4); ++j) names.push_back(fmt::format("'{}'", unseen.labels[j].label));
      evaluation.warnings.push_back(fmt::format(
          "{} cells of {} truth label{} the model has no class for ({}{}) are all named one of its classes, none Unassigned: {}",
          unseen.n_cells, unseen.labels.size(), unseen.labels.size() == 1 ? "" : "s", fmt::join(names, ", "),
          unseen.labels.size() > names.size() ? ", ..." : "",
          flagged && n_flagged == 0
              ? "the unlike-reference check flagged none of them (obs celltyper_unlike_reference), so `celltyper annotate --unassign-unlike` "
                "leaves them labelled too (types close to the reference's pass it); their scores may tell (--min-score)"
              : "`celltyper annotate --unassign-unlike` leaves cells unlike every reference type Unassigned ('types the reference lacks' "
                "measures how many it leaves)"));
    }
    evaluation.unseen_types = std::move(unseen);
  }
  // celltyper's own prediction beside its probabilities may differ from their most probable class
  // (--hierarchical terms, Unassigned under --min-score): the ranking metrics describe the classifier.
  if (own_prediction && !probability_key.empty() && prediction_column != "celltyper_flat_label") {
    std::size_t argmax_agrees = 0;
    for (std::size_t k = 0; k < cells.size(); ++k) {
      const float* p = probability_values.row(static_cast<std::int64_t>(cells[k]));
      const auto best = static_cast<std::size_t>(std::max_element(p, p + probability_values.cols) - p);
      const std::string& name = probability_classes[best];
      const auto id = model_cl_ids.find(name);
      if (prediction[k] == name || (id != model_cl_ids.end() && prediction[k] == id->second)) ++argmax_agrees;
    }
    if (100 * argmax_agrees < 99 * cells.size()) {
      evaluation.warnings.push_back(fmt::format(
          "{}top-k accuracy and mean reciprocal rank rank the classifier's probabilities (obsm:{}): their most probable class is obs:{} "
          "on {} of {} cells (the others: coarser terms of --hierarchical, or cells left Unassigned), so top-1 accuracy is not "
          "the accuracy of obs:{}",
          kNotePrefix, probability_key, prediction_column, argmax_agrees, cells.size(), prediction_column));
    }
  }
  if (group_values != nullptr) {
    std::map<std::string, std::vector<std::size_t>> groups;
    for (std::size_t k = 0; k < cells.size(); ++k) {
      const std::size_t row = cells[k];
      groups[group_value(*group_values, row)].push_back(k);
    }
    // (numbers in numeric order, "2" before "10": clusters, donors numbered; then text)
    std::vector<std::pair<std::string, std::vector<std::size_t>>> ordered(groups.begin(), groups.end());
    detail::sort_numbers_first(ordered, [](const auto& group) -> const std::string& { return group.first; });
    for (const auto& [name, positions] : ordered) evaluation.sets.push_back({name, evaluate_subset(positions)});
  }

  // ---- the cell map ------------------------------------------------------------------------
  std::string embedding_key;
  if (options.embedding == "auto") {
    for (const char* candidate : {"X_celltyper", "celltyper_probabilities", "X_pca"}) {
      if (has_obsm(candidate)) {
        embedding_key = candidate;
        break;
      }
    }
  } else if (options.embedding != "none" && !options.embedding.empty()) {
    embedding_key = strip_prefix(options.embedding, "obsm", "embedding");
    if (!has_obsm(embedding_key)) {
      throw InputError(fmt::format("{}: no obsm matrix '{}' for the cell map (available: {})", path, embedding_key, join(obsm_keys)));
    }
  }
  if (!embedding_key.empty()) {
    const DenseMatrix embedding = embedding_key == probability_key ? probability_values : source.read_obsm(embedding_key);
    const std::vector<std::size_t> sample = subsample_rows(cells.size(), options.max_map_points, options.seed);
    std::vector<std::size_t> rows;
    rows.reserve(sample.size());
    for (const std::size_t k : sample) rows.push_back(cells[k]);
    try {
      if (embedding.cols < 2) throw InputError(fmt::format("obsm:{} has {} column; the map needs at least 2", embedding_key, embedding.cols));
      const PrincipalComponents pca = principal_components(embedding, 2, &rows);
      EmbeddingMap map;
      map.source = "obsm:" + embedding_key;
      map.n_cells = cells.size();
      map.explained_variance_ratio = {pca.explained_variance_ratio[0], pca.explained_variance_ratio[1]};
      for (std::size_t i = 0; i < sample.size(); ++i) {
        map.x.push_back(pca.coordinates[2 * i]);
        map.y.push_back(pca.coordinates[2 * i + 1]);
        map.truth.push_back(truth_classes[sample[i]]);
        map.prediction.push_back(prediction_classes[sample[i]]);
      }
      if (options.umap && rows.size() >= 3) evaluation.umap = umap_map(embedding, rows, map, kMaxUmapCells, options.seed);
      evaluation.embedding = std::move(map);
    } catch (const InputError& error) {
      if (options.embedding != "auto") throw;
      evaluation.warnings.push_back(fmt::format("no cell map: {}", error.what()));
    }
  }
  return evaluation;
}

double UnseenTypes::unassigned_share() const {
  return n_cells == 0 ? 0.0 : static_cast<double>(n_unassigned) / static_cast<double>(n_cells);
}

double UnseenTypes::other_unassigned_share() const {
  return n_other_cells == 0 ? 0.0 : static_cast<double>(n_other_unassigned) / static_cast<double>(n_other_cells);
}

double UnseenTypes::precision() const {
  return n_all_unassigned() == 0 ? 0.0 : static_cast<double>(n_unassigned) / static_cast<double>(n_all_unassigned());
}

double UnseenTypes::f1() const {
  const double p = precision();
  const double r = unassigned_share();
  return p + r == 0.0 ? 0.0 : 2.0 * p * r / (p + r);
}

nlohmann::json to_json(const UnseenTypes& unseen) {
  nlohmann::json labels = nlohmann::json::array();
  for (const auto& label : unseen.labels) {
    nlohmann::json named = nlohmann::json::array();
    for (const auto& [name, count] : label.named_as) named.push_back({{"label", name}, {"n_cells", count}});
    labels.push_back({{"label", label.label},
                      {"cl_id", label.cl_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(label.cl_id)},
                      {"n_cells", label.n_cells},
                      {"n_unassigned", label.n_unassigned},
                      {"named_as", std::move(named)}});
  }
  const auto share_or_null = [](std::size_t of, double share) { return of == 0 ? nlohmann::json(nullptr) : nlohmann::json(share); };
  const std::size_t unassigned = unseen.n_all_unassigned();
  return {{"n_model_classes", unseen.n_model_classes},
          {"n_cells", unseen.n_cells},
          {"n_unassigned", unseen.n_unassigned},
          {"unassigned_share", share_or_null(unseen.n_cells, unseen.unassigned_share())},
          {"n_other_cells", unseen.n_other_cells},
          {"n_other_unassigned", unseen.n_other_unassigned},
          {"other_unassigned_share", share_or_null(unseen.n_other_cells, unseen.other_unassigned_share())},
          {"precision", share_or_null(unassigned, unseen.precision())},
          {"f1", share_or_null(unseen.n_cells * unassigned, unseen.f1())},
          {"labels", std::move(labels)}};
}

std::string format_unseen_types(const UnseenTypes& unseen) {
  const auto percent = [](std::size_t part, std::size_t of) { return of == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(of); };
  std::string out;
  if (unseen.labels.empty()) {
    return fmt::format("every truth label is a class of the model ({} classes) or above or below one in the Cell Ontology; Unassigned: {} "
                       "of {} cells ({:.1f}%)\n",
                       unseen.n_model_classes, unseen.n_other_unassigned, unseen.n_other_cells,
                       percent(unseen.n_other_unassigned, unseen.n_other_cells));
  }
  out += fmt::format("{} truth label{} of {} cells name{} no class of the model ({} classes) nor a Cell Ontology term above or below one\n",
                     unseen.labels.size(), unseen.labels.size() == 1 ? "" : "s", unseen.n_cells, unseen.labels.size() == 1 ? "s" : "",
                     unseen.n_model_classes);
  out += fmt::format("Unassigned      {} of their {} cells ({:.1f}%); {}\n", unseen.n_unassigned, unseen.n_cells,
                     percent(unseen.n_unassigned, unseen.n_cells),
                     unseen.n_other_cells == 0 ? std::string("no cell of another truth label")
                                               : fmt::format("{} of the {} other cells ({:.1f}%)", unseen.n_other_unassigned,
                                                             unseen.n_other_cells, percent(unseen.n_other_unassigned, unseen.n_other_cells)));
  const std::size_t unassigned = unseen.n_all_unassigned();
  if (unassigned > 0) {
    out += fmt::format("precision       {} of the {} Unassigned cells are of these types ({:.1f}%); F1 {:.4f}\n", unseen.n_unassigned, unassigned,
                       percent(unseen.n_unassigned, unassigned), unseen.f1());
  }
  if (std::any_of(unseen.labels.begin(), unseen.labels.end(), [](const UnseenTypeLabel& label) { return label.cl_id.empty(); })) {
    out += "(a label without a CL id that names no class counts as a type the model lacks: one naming a type it has under another "
           "name needs its id, --label-map TSV)\n";
  }
  constexpr std::size_t kMaxLabels = 20;
  for (std::size_t j = 0; j < unseen.labels.size(); ++j) {
    if (j == kMaxLabels) {
      out += fmt::format("  ... and {} more labels (--json lists every one)\n", unseen.labels.size() - kMaxLabels);
      break;
    }
    const UnseenTypeLabel& label = unseen.labels[j];
    std::vector<std::string> named;
    for (const auto& [name, count] : label.named_as) named.push_back(fmt::format("'{}' {}", name, count));
    out += fmt::format("  '{}'{}: {} cells, {} Unassigned ({:.1f}%){}\n", label.label, label.cl_id.empty() ? " (no CL id)" : "", label.n_cells,
                       label.n_unassigned, percent(label.n_unassigned, label.n_cells),
                       named.empty() ? std::string()
                                     : fmt::format("; {} {}", label.n_unassigned == 0 ? "named" : "the others named", fmt::join(named, ", ")));
  }
  return out;
}

nlohmann::json to_json(const DatasetEvaluation& evaluation) {
  nlohmann::json json;
  json["input"] = evaluation.input;
  json["truth"] = evaluation.truth;
  json["prediction"] = evaluation.prediction;
  json["probabilities"] = evaluation.probabilities.empty() ? nlohmann::json(nullptr) : nlohmann::json(evaluation.probabilities);
  json["group"] = evaluation.group.empty() ? nlohmann::json(nullptr) : nlohmann::json(evaluation.group);
  json["ontology"] = evaluation.ontology_source.empty()
                         ? nlohmann::json(nullptr)
                         : nlohmann::json{{"source", evaluation.ontology_source}, {"version", evaluation.ontology_version}};
  json["compared_on"] = evaluation.compared_on_ontology ? "ontology" : "labels";
  json["compare_reason"] = evaluation.compare_reason;
  json["n_cells_in_file"] = evaluation.n_cells_in_file;
  json["n_missing_truth"] = evaluation.n_missing_truth;
  json["n_missing_prediction"] = evaluation.n_missing_prediction;
  json["label_mapping"] = {{"truth", mapping_json(evaluation.truth_labels)}, {"prediction", mapping_json(evaluation.prediction_labels)}};
  json["unmapped"] = {{"truth", unmapped_json(evaluation.truth_labels)}, {"prediction", unmapped_json(evaluation.prediction_labels)}};
  json["overall"] = to_json(evaluation.sets.front().result);
  json["unseen_types"] = evaluation.unseen_types ? to_json(*evaluation.unseen_types) : nlohmann::json(nullptr);
  json["groups"] = nlohmann::json::array();
  for (std::size_t s = 1; s < evaluation.sets.size(); ++s) {
    json["groups"].push_back({{"group", evaluation.sets[s].name}, {"metrics", to_json(evaluation.sets[s].result)}});
  }
  if (evaluation.umap) json["umap"] = {{"source", evaluation.umap->source}, {"n_points", evaluation.umap->x.size()}};
  if (evaluation.embedding) {
    const EmbeddingMap& map = *evaluation.embedding;
    json["embedding"] = {{"source", map.source},
                         {"method", map.method},
                         {"explained_variance_ratio", {map.explained_variance_ratio[0], map.explained_variance_ratio[1]}},
                         {"n_cells", map.n_cells},
                         {"n_points", map.x.size()}};
  } else {
    json["embedding"] = nullptr;
  }
  json["warnings"] = evaluation.warnings;
  return json;
}

std::string format_report(const DatasetEvaluation& evaluation) {
  std::string out;
  out += fmt::format("input          {}\ntruth          {}\nprediction     {}\n", evaluation.input, evaluation.truth, evaluation.prediction);
  out += fmt::format("compared on    {} ({})\n", evaluation.compared_on_ontology ? "Cell Ontology terms" : "label strings",
                     evaluation.compare_reason);
  if (!evaluation.probabilities.empty()) out += fmt::format("probabilities  {}\n", evaluation.probabilities);
  if (!evaluation.ontology_source.empty()) {
    out += fmt::format("ontology       {}{}\n", evaluation.ontology_source,
                       evaluation.ontology_version.empty() ? "" : " (" + evaluation.ontology_version + ")");
  }
  out += fmt::format("cells          {} evaluated of {} ({} without truth)\n", evaluation.sets.front().result.n_cells,
                     evaluation.n_cells_in_file, evaluation.n_missing_truth);
  if (!evaluation.ontology_source.empty()) {
    for (const auto* side : {&evaluation.truth_labels, &evaluation.prediction_labels}) {
      const bool is_truth = side == &evaluation.truth_labels;
      std::size_t labels = 0;
      std::size_t cells = 0;
      for (const auto& row : *side) {
        if (row.mapped()) continue;
        ++labels;
        cells += row.n_cells;
      }
      out += fmt::format("{} labels mapped to CL: {} of {}", is_truth ? "truth     " : "prediction", side->size() - labels, side->size());
      if (labels > 0) {
        out += fmt::format("; unmapped: {}", fmt::join(unmapped_descriptions(*side), ", "));
        if (labels > 1) out += fmt::format(" ({} cells in all)", cells);
      }
      out += '\n';
    }
  }
  for (const auto& warning : evaluation.warnings) out += warning.starts_with(kNotePrefix) ? warning + "\n" : fmt::format("warning: {}\n", warning);
  for (std::size_t s = 0; s < evaluation.sets.size(); ++s) {
    const EvaluatedSet& set = evaluation.sets[s];
    out += s == 0 ? fmt::format("\n== all cells ==\n") : fmt::format("\n== {} = {} ==\n", evaluation.group, set.name);
    out += format_report(set.result);
    if (s == 0 && evaluation.unseen_types) {
      out += "\n== types the reference lacks ==\n";
      out += format_unseen_types(*evaluation.unseen_types);
    }
  }
  return out;
}

ReportContent report_content(const DatasetEvaluation& evaluation) {
  ReportContent content;
  content.title = fmt::format("celltyper evaluation: {}", std::filesystem::path(evaluation.input).filename().string());
  content.details.emplace_back("input", evaluation.input);
  content.details.emplace_back("truth", evaluation.truth);
  content.details.emplace_back("prediction", evaluation.prediction);
  content.details.emplace_back("compared on", fmt::format("{} ({})", evaluation.compared_on_ontology ? "Cell Ontology terms" : "label strings",
                                                          evaluation.compare_reason));
  if (!evaluation.probabilities.empty()) content.details.emplace_back("probabilities", evaluation.probabilities);
  if (!evaluation.group.empty()) content.details.emplace_back("groups", evaluation.group);
  if (!evaluation.ontology_source.empty()) {
    content.details.emplace_back("ontology", evaluation.ontology_source +
                                                 (evaluation.ontology_version.empty() ? "" : " (" + evaluation.ontology_version + ")"));
  }
  content.details.emplace_back("cells", fmt::format("{} evaluated of {} ({} without truth)", evaluation.sets.front().result.n_cells,
                                                    evaluation.n_cells_in_file, evaluation.n_missing_truth));
  for (std::size_t s = 0; s < evaluation.sets.size(); ++s) {
    const EvaluatedSet& set = evaluation.sets[s];
    content.sections.push_back({s == 0 ? set.name : evaluation.group + " = " + set.name, set.result});
  }
  content.truth_labels = evaluation.truth_labels;
  content.prediction_labels = evaluation.prediction_labels;
  content.unseen_types = evaluation.unseen_types;
  content.embedding = evaluation.embedding;
  content.umap = evaluation.umap;
  content.warnings = evaluation.warnings;
  return content;
}

}  // namespace celltyper
