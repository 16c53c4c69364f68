// Leave-one-group-out cross-validation of train + annotate configurations (cross_validation.hpp).
#include <celltyper/annotate.hpp>
#include <celltyper/matrix_summary.hpp>
#include <celltyper/cross_validation.hpp>
#include <celltyper/annotation_csv.hpp>
#include <celltyper/error.hpp>
#include <celltyper/train.hpp>

#include "splitmix64.hpp"
#include "text_lists.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <cmath>
#include <chrono>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>

namespace celltyper {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Labelled cells of one reference: label (after renames), group, and whether it passes the filter.
struct ReferenceCells {
  std::string path;
  std::vector<std::string> labels;  // "" = missing
  std::vector<std::string> groups;
  std::vector<std::uint8_t> usable;  // labelled and passing the filter
  std::vector<std::string> names;    // obs names (kept for keep_held_out)
};

/// A held-out group that is a panel padded with zeros (annotate's rule, annotate.hpp: of the genes
/// every training class detects in half its cells, a share has no count in any held-out cell
/// while the others are commonly detected there): the genes its cells detect, to train on as
/// annotate refits for such a query; empty when not padded. One pass over the references.
/// `examples` gets a few of the absent ubiquitous genes' symbols.
std::vector<std::int64_t> padded_fold_genes(const std::vector<const Dataset*>& datasets, const std::vector<ReferenceCells>& references,
                                            const std::vector<std::vector<std::uint8_t>>& train_masks,
                                            const std::vector<std::vector<std::size_t>>& test_rows, const TrainOptions& base,
                                            const GeneTable& table, std::vector<std::string>* examples) {
  // Genes (Entrez) of every reference's vars, numbered; per reference its column -> gene number.
  std::map<std::int64_t, std::size_t> number;
  std::vector<std::vector<std::int64_t>> column_gene(datasets.size());
  std::vector<std::string> matrices(datasets.size());
  std::set<std::size_t> named;  // genes the held-out cells' vars name
  for (std::size_t r = 0; r < datasets.size(); ++r) {
    matrices[r] = resolve_matrix_source(*datasets[r], !base.matrices.empty() && !base.matrices[r].empty() ? base.matrices[r] : base.embed.matrix);
    const GeneResolveResult resolved = resolve_dataset_genes(table, *datasets[r], matrices[r], base.embed.genes);
    column_gene[r].assign(resolved.gene_index.size(), -1);
    for (std::size_t column = 0; column < resolved.gene_index.size(); ++column) {
      if (resolved.gene_index[column] == kNoGene) continue;
      const auto [it, inserted] = number.emplace(table.gene(resolved.gene_index[column]).entrez_id, number.size());
      column_gene[r][column] = static_cast<std::int64_t>(it->second);
      if (!test_rows[r].empty()) named.insert(it->second);
    }
  }
  const std::size_t n_genes = number.size();
  std::map<std::string, std::size_t> class_of;  // the training cells' labels
  for (std::size_t r = 0; r < datasets.size(); ++r) {
    for (std::size_t row = 0; row < references[r].labels.size(); ++row) {
      if (train_masks[r][row] != 0 && references[r].usable[row] != 0) class_of.emplace(references[r].labels[row], class_of.size());
    }
  }
  const std::size_t n_classes = class_of.size();
  std::vector<std::int64_t> class_cells(n_classes, 0);
  std::vector<std::int32_t> class_detected(n_genes * n_classes, 0);  // [gene x class]
  std::vector<std::int64_t> held_detected(n_genes, 0);
  std::int64_t held_with_counts = 0;
  for (std::size_t r = 0; r < datasets.size(); ++r) {
    std::vector<std::uint8_t> held(references[r].labels.size(), 0);
    for (const std::size_t row : test_rows[r]) held[row] = 1;
    const std::unique_ptr<MatrixReader> reader = datasets[r]->open_matrix(matrices[r]);
    for_each_block(*reader, stream_options(*datasets[r], matrices[r], base.embed.memory_limit_bytes), [&](const CsrBlock& block) {
      for (std::int64_t i = 0; i < block.n_rows; ++i) {
        const auto row = static_cast<std::size_t>(block.first_row + i);
        const auto begin = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(i)]);
        const auto end = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(i) + 1]);
        const auto gene_at = [&](std::size_t k) {
          const auto column = static_cast<std::size_t>(block.indices[k]);
          return column < column_gene[r].size() && block.values[k] != 0 ? column_gene[r][column] : std::int64_t{-1};
        };
        if (held[row] != 0) {
          bool counts = false;
          for (std::size_t k = begin; k < end; ++k) {
            if (const std::int64_t gene = gene_at(k); gene >= 0) {
              ++held_detected[static_cast<std::size_t>(gene)];
              counts = true;
            }
          }
          held_with_counts += counts ? 1 : 0;
          continue;
        }
        if (train_masks[r][row] == 0 || references[r].usable[row] == 0) continue;
        const std::size_t c = class_of.at(references[r].labels[row]);
        ++class_cells[c];
        for (std::size_t k = begin; k < end; ++k) {
          if (const std::int64_t gene = gene_at(k); gene >= 0) ++class_detected[static_cast<std::size_t>(gene) * n_classes + c];
        }
      }
    });
  }
  if (held_with_counts < kPaddingMinCells) return {};
  std::vector<std::int64_t> entrez_of(n_genes);
  for (const auto& [entrez, g] : number) entrez_of[g] = entrez;
  std::vector<std::int64_t> lacking;
  std::vector<double> rates;  // held-out detection of the ubiquitous genes they detect
  for (const std::size_t g : named) {
    int classes = 0;
    bool every = true;
    for (std::size_t c = 0; c < n_classes && every; ++c) {
      if (class_cells[c] < kPaddingMinClassCells) continue;
      ++classes;
      every = static_cast<double>(class_detected[g * n_classes + c]) >= kPaddingMinRate * static_cast<double>(class_cells[c]);
    }
    if (classes < 2 || !every) continue;
    if (held_detected[g] == 0) {
      lacking.push_back(entrez_of[g]);
    } else {
      rates.push_back(static_cast<double>(held_detected[g]) / static_cast<double>(held_with_counts));
    }
  }
  if (!looks_padded(lacking.size(), rates)) return {};
  if (examples != nullptr) {
    std::sort(lacking.begin(), lacking.end());
    for (const std::int64_t entrez : lacking) {
      if (examples->size() == 5) break;
      if (const std::int32_t gene = table.find_entrez(entrez); gene != kNoGene) examples->push_back(table.gene(gene).symbol);
    }
  }
  std::vector<std::int64_t> detected;
  for (const std::size_t g : named) {
    if (held_detected[g] > 0) detected.push_back(entrez_of[g]);
  }
  std::sort(detected.begin(), detected.end());
  return detected;
}

/// Probabilities of the held-out cells for one model, in the order of `rows` per reference.
struct HeldOutPrediction {
  std::vector<std::string> class_names;
  std::vector<std::string> class_cl_ids;
  std::vector<float> probabilities;  // [cells x classes]
  std::vector<std::uint8_t> empty;
};

/// The most probable class per cell ("Unassigned" for empty cells).
std::vector<std::string> argmax_labels(const HeldOutPrediction& prediction) {
  const std::size_t c = prediction.class_names.size();
  std::vector<std::string> labels(prediction.empty.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (prediction.empty[i] != 0) {
      labels[i] = kUnassigned;
      continue;
    }
    const float* row = prediction.probabilities.data() + i * c;
    labels[i] = prediction.class_names[static_cast<std::size_t>(std::max_element(row, row + c) - row)];
  }
  return labels;
}

/// Mean of the members' probabilities over the union of their classes (first-seen order).
HeldOutPrediction average(const std::vector<const HeldOutPrediction*>& members) {
  HeldOutPrediction mean;
  std::map<std::string, std::size_t> column;
  for (const auto* member : members) {
    for (std::size_t c = 0; c < member->class_names.size(); ++c) {
      if (column.emplace(member->class_names[c], mean.class_names.size()).second) {
        mean.class_names.push_back(member->class_names[c]);
        mean.class_cl_ids.push_back(member->class_cl_ids[c]);
      }
    }
  }
  const std::size_t n = members.front()->empty.size();
  const std::size_t width = mean.class_names.size();
  mean.probabilities.assign(n * width, 0.0f);
  mean.empty.assign(n, 1);
  std::vector<int> used(n, 0);
  for (const auto* member : members) {
    const std::size_t c = member->class_names.size();
    for (std::size_t i = 0; i < n; ++i) {
      if (member->empty[i] != 0) continue;
      ++used[i];
      for (std::size_t k = 0; k < c; ++k) mean.probabilities[i * width + column[member->class_names[k]]] += member->probabilities[i * c + k];
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (used[i] == 0) continue;
    mean.empty[i] = 0;
    for (std::size_t k = 0; k < width; ++k) mean.probabilities[i * width + k] /= static_cast<float>(used[i]);
  }
  return mean;
}

/// The folds' probabilities of one method stacked (rows in fold order) over the union of their
/// classes (first-seen order): a class a fold's model lacks is 0, as is every probability of a
/// cell without any model gene.
ProbabilityMatrix stack_folds(std::vector<HeldOutPrediction>&& folds) {
  ProbabilityMatrix stacked;
  std::map<std::string, std::size_t> column;
  std::size_t n = 0;
  for (const auto& fold : folds) {
    n += fold.empty.size();
    for (const auto& name : fold.class_names) {
      if (column.emplace(name, stacked.class_names.size()).second) stacked.class_names.push_back(name);
    }
  }
  const std::size_t width = stacked.class_names.size();
  stacked.values.assign(n * width, 0.0F);
  std::size_t row = 0;
  for (auto& fold : folds) {
    const std::size_t c = fold.class_names.size();
    std::vector<std::size_t> to(c);
    for (std::size_t k = 0; k < c; ++k) to[k] = column.at(fold.class_names[k]);
    for (std::size_t i = 0; i < fold.empty.size(); ++i, ++row) {
      if (fold.empty[i] != 0) continue;
      for (std::size_t k = 0; k < c; ++k) stacked.values[row * width + to[k]] = fold.probabilities[i * c + k];
    }
    std::vector<float>().swap(fold.probabilities);  // (freed as it is copied)
  }
  return stacked;
}

/// `n_splits` folds (CrossValidationOptions::n_splits): each usable cell's group becomes its fold,
/// "fold 1" ... "fold k". With groups, more than k of them are pooled (GroupKFold); without
/// (`by_cells`), the cells of each label are shuffled and dealt to the folds in turn, continuing
/// across labels, so every fold holds each label's share and the folds differ by a cell at most.
/// Returns a note saying how, or "" when the groups are k or fewer (one fold each, as without).
std::string split_into_folds(std::vector<ReferenceCells>& references, int k, bool by_cells, std::uint64_t seed, const std::string& what,
                             std::map<std::string, std::vector<std::string>>& members_of) {
  const auto fold_name = [](std::size_t fold) { return fmt::format("fold {}", fold + 1); };
  const auto n_folds = static_cast<std::size_t>(k);
  if (by_cells) {
    std::map<std::string, std::vector<std::pair<std::size_t, std::size_t>>> by_label;  // label -> (reference, row)
    for (std::size_t r = 0; r < references.size(); ++r) {
      for (std::size_t row = 0; row < references[r].labels.size(); ++row) {
        if (references[r].usable[row] != 0) by_label[references[r].labels[row]].emplace_back(r, row);
      }
    }
    detail::SplitMix64 random{seed ^ 0x6376666F6C6473ULL};  // ("cvfolds")
    std::size_t dealt = 0;
    for (auto& [label, cells] : by_label) {
      for (std::size_t i = cells.size(); i > 1; --i) std::swap(cells[i - 1], cells[static_cast<std::size_t>(random.next() % i)]);
      for (const auto& [r, row] : cells) references[r].groups[row] = fold_name(dealt++ % n_folds);
    }
    return fmt::format("{}cells split into {} folds stratified by label (shuffled with the seed {})", kNotePrefix, k, seed);
  }
  std::map<std::string, std::int64_t> cells_of;
  for (const auto& cells : references) {
    for (std::size_t row = 0; row < cells.labels.size(); ++row) cells_of[cells.groups[row]] += cells.usable[row] != 0 ? 1 : 0;
  }
  std::erase_if(cells_of, [](const auto& entry) { return entry.second == 0; });
  if (cells_of.size() <= n_folds) return "";
  std::vector<std::pair<std::string, std::int64_t>> groups(cells_of.begin(), cells_of.end());
  std::stable_sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::int64_t> load(n_folds, 0);
  std::vector<std::vector<std::string>> members(n_folds);
  std::map<std::string, std::string> fold_of;
  for (const auto& [group, n] : groups) {
    const auto fold = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[fold] += n;
    members[fold].push_back(group);
    fold_of[group] = fold_name(fold);
  }
  for (std::size_t fold = 0; fold < n_folds; ++fold) members_of[fold_name(fold)] = members[fold];
  for (auto& cells : references) {
    for (std::size_t row = 0; row < cells.labels.size(); ++row) {
      if (cells.usable[row] != 0) cells.groups[row] = fold_of.at(cells.groups[row]);
    }
  }
  std::vector<std::string> parts;
  for (std::size_t fold = 0; fold < n_folds; ++fold) {
    parts.push_back(fmt::format("{}: {} ({} cells)", fold_name(fold), detail::some_of(members[fold], 4), load[fold]));
  }
  return fmt::format("{}the {} groups of {} pooled into {} folds of about equal cells: {}", kNotePrefix, groups.size(), what, k,
                     fmt::join(parts, "; "));
}

}  // namespace

std::optional<GeneTable> cv_own_gene_names_table(const std::vector<const Dataset*>& datasets, const CrossValidationOptions& options,
                                                 const GeneTable& table, std::string* warning) {
  TrainOptions probe = options.train;
  probe.features = kFeaturesExpression;
  const auto is_genept = [](const CvModelConfig& config) { return config.features != kFeaturesExpression; };
  if (std::any_of(options.configurations.begin(), options.configurations.end(), is_genept)) {
    // The GenePT-w route reads gene vectors by the table's ids: one run cannot read the genes both
    // ways (the folds' gene lists are one table's), so configurations of both routes on references
    // that would train on their own names stop here, saying what to run instead.
    const bool every_genept = std::all_of(options.configurations.begin(), options.configurations.end(), is_genept);
    if (every_genept && !options.train.own_gene_names) return std::nullopt;
    if (!options.train.own_gene_names && !own_gene_names_table(datasets, probe, table)) return std::nullopt;
    throw InputError(fmt::format(
        "cv: {}: genept configurations read gene vectors by the gene table's ids, and the expression route trains here on the "
        "references' own var names; {} (or, for GenePT-w, a gene table of the data's species (--gene-table) and a gene store built "
        "on it (celltyper genes embed))",
        options.train.own_gene_names ? "--own-gene-names"
                                     : "the gene table names under a tenth of the references' genes (another species?)",
        every_genept ? "run the expression route (--features expression)" : "run the expression configurations alone"));
  }
  return own_gene_names_table(datasets, probe, table, warning);
}

CrossValidationResult cross_validate(const CrossValidationOptions& options, const GeneStore& store, const GeneTable& table) {
  if (options.train.references.empty()) throw InputError("cv: no reference dataset given");
  // (each file opened once for the whole run)
  const OpenedDatasets opened = open_datasets(options.train.references, options.train.cell_table);
  return cross_validate(opened.views, options, store, table);
}

CrossValidationResult cross_validate(const std::vector<const Dataset*>& datasets, const CrossValidationOptions& options,
                                     const GeneStore& store, const GeneTable& given_table) {
  const TrainOptions& base = options.train;
  if (options.configurations.empty()) throw InputError("cv: no model configuration given");
  if (datasets.empty()) throw InputError("cv: no reference dataset given");
  const bool by_cells = base.group_column.empty();  // (n_splits folds of cells)
  if (by_cells && options.n_splits == 0) {
    throw InputError("cv: no group column given (--group obs:COLUMN, or --group file), nor --n-splits K (K folds of cells, stratified by "
                     "label)");
  }
  if (options.n_splits == 1 || options.n_splits < 0) throw InputError(fmt::format("cv: --n-splits {}: at least 2 folds", options.n_splits));
  if (base.group_column == base.label_column) {
    throw InputError(fmt::format("cv: the group column '{}' is the label column: each fold would hold out a whole class, which no model "
                                 "trained on the others can name; group by donor, batch or sample (--group obs:COLUMN, or --group file)",
                                 base.group_column));
  }
  // A configuration's classifier and hyperparameters, checked before any fold trains (a fold's
  // training errors skip that fold).
  for (const auto& config : options.configurations) (void)resolve_hyperparameters(find_classifier_spec(config.classifier), config.hyperparameters);
  auto log = [&](const std::string& message) {
    if (options.log) options.log(message);
  };
  CrossValidationResult result;
  // References of another species' ids than the table's: their own var names are the genes (as
  // train), for training and for the held-out cells.
  std::string own_names;
  const std::optional<GeneTable> own = cv_own_gene_names_table(datasets, options, given_table, &own_names);
  if (own) result.warnings.push_back(std::move(own_names));
  const GeneTable& table = own ? *own : given_table;
  const bool by_file = base.group_column == kGroupByFile;

  // Label harmonisation and CL ids.
  const bool can_map = options.ontology != nullptr || !base.label_map.empty();
  if (options.harmonize_labels && !can_map) throw InputError("--harmonize-labels needs --ontology or --label-map");

  // Cells of every reference.
  std::vector<ReferenceCells> references;
  std::set<std::string> all_labels;
  LabelTermIds term_ids;
  std::string term_ids_column;
  for (std::size_t r = 0; r < datasets.size(); ++r) {
    const Dataset* dataset = datasets[r];
    const std::string path = base.references.size() == datasets.size() ? base.references[r] : dataset->path();
    const std::string where = fmt::format("obs of {}", path);
    const std::vector<std::string> present = dataset->obs_column_names();
    const std::string label_column = label_column_of(present, base.label_column, where);  // (as train reads it)
    if (label_column == base.group_column) {
      throw InputError(fmt::format("cv: {}: the group column '{}' is the label column it reads: each fold would hold out a whole class, "
                                   "which no model trained on the others can name; group by donor, batch or sample (--group obs:COLUMN, or "
                                   "--group file)",
                                   path, base.group_column));
    }
    std::vector<std::string> wanted{label_column};
    if (!by_file && !by_cells) wanted.push_back(base.group_column);
    if (!options.filter_column.empty()) wanted.push_back(options.filter_column);
    // The CL ids CELLxGENE files carry beside the labels (cell_type_ontology_term_id), as train reads them.
    const std::string term_id_column = want_term_id_column(present, label_column, wanted);
    const DataFrame obs = dataset->read_obs_columns(wanted);
    const Column& labels = obs.at(label_column, where);
    const Column* groups = by_file || by_cells ? nullptr : &obs.at(base.group_column, where);
    const Column* filter = options.filter_column.empty() ? nullptr : &obs.at(options.filter_column, where);
    ReferenceCells cells;
    cells.path = path;
    if (options.keep_held_out) {
      cells.names = obs.index;
      std::vector<std::string> sorted = cells.names;
      std::sort(sorted.begin(), sorted.end());
      std::size_t repeats = 0;
      std::string example;
      for (std::size_t i = 1; i < sorted.size(); ++i) {
        if (sorted[i] != sorted[i - 1]) continue;
        ++repeats;
        if (example.empty()) example = sorted[i];
      }
      if (repeats > 0) {
        result.warnings.push_back(fmt::format("{}: {} obs name{} repeat{} an earlier one's (e.g. '{}'): the out-of-fold tables name cells "
                                              "by obs name (cv --predictions / --probabilities, Python's .predictions), which then "
                                              "names several cells; make them unique (anndata's obs_names_make_unique) to join them back",
                                              path, repeats, repeats == 1 ? "" : "s", repeats == 1 ? "s" : "", example));
      }
    }
    const auto n = static_cast<std::size_t>(dataset->n_obs());
    cells.labels.resize(n);
    cells.groups.resize(n);
    cells.usable.assign(n, 0);
    std::int64_t n_unlabelled = 0;
    std::string missing_spelled;  // (a label naming no type, such as 'unknown')
    for (std::size_t row = 0; row < n; ++row) {
      cells.groups[row] = by_file ? path : by_cells ? std::string() : group_value(*groups, row);
      if (filter != nullptr && filter->value_as_string(row) != options.filter_value) continue;
      if (labels.is_missing(row)) {
        ++n_unlabelled;
        continue;
      }
      cells.labels[row] = labels.value_as_string(row);
      if (is_unlabelled(cells.labels[row])) {
        missing_spelled = cells.labels[row].empty() ? missing_spelled : cells.labels[row];
        ++n_unlabelled;
        cells.labels[row].clear();
        continue;
      }
      cells.usable[row] = 1;
      all_labels.insert(cells.labels[row]);
    }
    if (n_unlabelled > 0) result.warnings.push_back(unlabelled_cells_warning(path, n_unlabelled, label_column, missing_spelled) + " (in no fold)");
    if (!term_id_column.empty()) {
      std::vector<std::uint8_t> unused(n);
      for (std::size_t row = 0; row < n; ++row) unused[row] = cells.usable[row] == 0 ? 1 : 0;
      count_label_term_ids(labels, obs.at(term_id_column, where), term_ids, {}, &unused);
      term_ids_column = term_id_column;
    }
    references.push_back(std::move(cells));
  }
  // Labels equal but for spaces or case are one class, as train reads them (truth included).
  std::map<std::string, std::int64_t> spelled;
  for (const auto& cells : references) {
    for (std::size_t row = 0; row < cells.labels.size(); ++row) {
      if (cells.usable[row] != 0) ++spelled[cells.labels[row]];
    }
  }
  std::string spelling_note;
  const std::map<std::string, std::string> spellings = label_spelling_renames(spelled, &spelling_note);
  if (!spellings.empty()) {
    result.warnings.push_back(fmt::format("{}: {}", label_columns_text(base.label_column), spelling_note));
    for (auto& cells : references) {
      for (auto& label : cells.labels) {
        if (const auto renamed = spellings.find(label); renamed != spellings.end()) label = renamed->second;
      }
    }
    all_labels.clear();
    for (const auto& [label, count] : spelled) all_labels.insert(spellings.count(label) != 0 ? spellings.at(label) : label);
    LabelTermIds merged;
    for (const auto& [label, counts] : term_ids) {
      for (const auto& [id, count] : counts) merged[spellings.count(label) != 0 ? spellings.at(label) : label][id] += count;
    }
    term_ids = std::move(merged);
  }
  const std::map<std::string, std::string> data_ids = most_frequent_term_ids(term_ids, term_ids_column, &result.warnings);
  std::map<std::string, std::string> renames;
  std::map<std::string, std::string> cl_ids;  // label (as trained / scored) -> CL id
  // label as read -> the alternatives it names ("T/NK cells"), and each cell's label as read
  // (labels renamed to one term may read differently: "T/NK cells" and "Lymphocytes")
  std::map<std::string, std::vector<std::string>> label_alternatives;
  std::vector<std::vector<std::string>> read_as;  // empty: no label names alternatives
  if (can_map || !data_ids.empty()) {
    // The same mapping as `train --harmonize-labels` (train.hpp).
    LabelHarmonization harmonized =
        harmonize_labels(all_labels, options.ontology, base.label_map, base.label_map_dataset, options.harmonize_labels, data_ids);
    result.warnings.insert(result.warnings.end(), harmonized.warnings.begin(), harmonized.warnings.end());
    renames = std::move(harmonized.renames);
    cl_ids = std::move(harmonized.cl_ids);
    label_alternatives = std::move(harmonized.label_alternatives);
    result.unmapped_labels = std::move(harmonized.unmapped);
    if (!label_alternatives.empty()) {  // (each cell's label as read, before renaming: its alternatives)
      read_as.resize(references.size());
      for (std::size_t r = 0; r < references.size(); ++r) read_as[r] = references[r].labels;
    }
    if (options.harmonize_labels) {
      for (auto& cells : references) {
        for (auto& label : cells.labels) {
          const auto renamed = renames.find(label);
          if (renamed != renames.end()) label = renamed->second;
        }
      }
    }
  }

  // Training reads the file's own spellings: each goes to its class's name (and harmonised term).
  for (const auto& [spelling, canonical] : spellings) {
    const auto harmonized = renames.find(canonical);
    renames[spelling] = harmonized != renames.end() ? harmonized->second : canonical;
  }

  // The genes each reference's file names (held-out cells' files: annotate's refit rule), read once.
  std::vector<std::optional<std::vector<std::int64_t>>> named_genes(references.size());
  const auto genes_named_by = [&](std::size_t r) -> const std::vector<std::int64_t>& {
    if (!named_genes[r]) {
      const std::string matrix = !base.matrices.empty() && !base.matrices[r].empty() ? base.matrices[r] : base.embed.matrix;
      named_genes[r] = dataset_genes(*datasets[r], resolve_matrix_source(*datasets[r], matrix), table, base.embed.genes);
    }
    return *named_genes[r];
  };

  // Folds.
  std::set<std::string> group_set;
  for (const auto& cells : references) {
    for (std::size_t row = 0; row < cells.labels.size(); ++row) {
      if (cells.usable[row] != 0) group_set.insert(cells.groups[row]);
    }
  }
  if (!by_file && !by_cells) {
    std::int64_t n_missing_group = 0;
    for (const auto& cells : references) {
      for (std::size_t row = 0; row < cells.labels.size(); ++row) n_missing_group += cells.usable[row] != 0 && cells.groups[row] == kMissingGroup ? 1 : 0;
    }
    if (n_missing_group > 0 && group_set.size() == 1) {
      throw InputError(fmt::format("cv: every labelled cell's value in the group column '{}' is missing: name a column that says which donor, "
                                   "batch or sample each cell is from (--group obs:COLUMN, or --group file)",
                                   base.group_column));
    }
    if (n_missing_group > 0) {
      result.warnings.push_back(fmt::format("obs:{}: {} labelled cell{} without a value form a fold of their own, '{}'", base.group_column,
                                            n_missing_group, n_missing_group == 1 ? "" : "s", kMissingGroup));
    }
  }
  std::map<std::string, std::vector<std::string>> pooled_groups;  // fold -> the groups pooled into it (n_splits with groups)
  if (options.n_splits > 0) {
    const std::string what = by_file ? std::string("the reference files") : "obs:" + base.group_column;
    const std::string note = split_into_folds(references, options.n_splits, by_cells, base.seed, what, pooled_groups);
    if (!note.empty()) {
      result.warnings.push_back(note);
      group_set.clear();
      for (const auto& cells : references) {
        for (std::size_t row = 0; row < cells.labels.size(); ++row) {
          if (cells.usable[row] != 0) group_set.insert(cells.groups[row]);
        }
      }
    }
  }
  if (group_set.size() < 2) {
    throw InputError(fmt::format("cv: the group column '{}' has {} group{} among the labelled cells: leave-one-group-out needs at least 2",
                                 base.group_column, group_set.size(), group_set.size() == 1 ? "" : "s"));
  }
  std::vector<std::string> folds = options.folds;
  if (folds.empty()) folds.assign(group_set.begin(), group_set.end());
  for (const auto& fold : folds) {
    if (group_set.count(fold) == 0) {
      std::vector<std::string> known(group_set.begin(), group_set.end());
      throw InputError(fmt::format("cv: fold '{}' is not a group of '{}' (groups: {})", fold, base.group_column, fmt::join(known, ", ")));
    }
  }

  for (const auto& config : options.configurations) result.methods.push_back(config.name());
  std::vector<std::string> routes;  // feature routes, in configuration order
  for (const auto& config : options.configurations) {
    if (std::find(routes.begin(), routes.end(), config.features) == routes.end()) routes.push_back(config.features);
  }
  const bool with_ensemble = options.ensemble && options.configurations.size() > 1;
  if (with_ensemble) result.methods.push_back("ensemble");
  if (options.hierarchical) {
    if (options.ontology == nullptr) throw InputError("cv --hierarchical needs the Cell Ontology (--ontology)");
    const std::size_t flat = result.methods.size();
    for (std::size_t m = 0; m < flat; ++m) result.methods.push_back(result.methods[m] + "+hierarchical");
  }

  // Pooled out-of-fold predictions per method (for `pooled` and the report).
  std::vector<std::string> pooled_truth;
  std::vector<std::string> pooled_read_as;  // (with read_as)
  std::map<std::string, std::vector<std::string>> pooled_predictions;
  std::map<std::string, std::string> pooled_cl_ids = cl_ids;
  std::map<std::string, RankingTally> pooled_ranking;  // flat methods: the folds' probabilities
  std::map<std::string, std::vector<HeldOutPrediction>> fold_probabilities;  // flat methods' per fold (keep_held_out)
  const auto genept = std::find_if(options.configurations.begin(), options.configurations.end(),
                                   [](const CvModelConfig& config) { return config.features == kFeaturesGenept; });
  const std::string map_configuration =
      options.keep_held_out && options.keep_held_out_map && genept != options.configurations.end() ? genept->name() : "";

  std::vector<std::string> skipped;  // why folds could not train
  // A method's training warning that folds repeat (a small class in every fold) is said once, with
  // the number of other folds: method + the warning with its numbers as '#' -> (its index in
  // result.warnings, other folds).
  std::map<std::string, std::pair<std::size_t, std::size_t>> repeated;
  const auto repeat_key = [](const std::string& method, const std::string& warning) {
    std::string key = method + '\n';
    for (const char c : warning) {
      if (std::isdigit(static_cast<unsigned char>(c)) == 0) {
        key += c;
      } else if (key.back() != '#') {
        key += '#';
      }
    }
    return key;
  };
  for (const auto& fold : folds) {
    std::vector<std::string> repeated_here;  // (counted when the fold is not skipped)
    CvFold fold_result;
    fold_result.group = fold;
    std::vector<std::vector<std::uint8_t>> train_masks;
    std::vector<std::vector<std::size_t>> test_rows;
    std::vector<std::string> truth;
    std::vector<std::string> truth_read_as;     // (each held-out cell's label as read, when read_as is kept)
    std::vector<std::int32_t> truth_reference;  // (each held-out cell's reference and row, for keep_held_out)
    std::vector<std::int64_t> truth_row;
    for (std::size_t r = 0; r < references.size(); ++r) {
      const ReferenceCells& cells = references[r];
      std::vector<std::uint8_t> mask(cells.labels.size(), 0);
      std::vector<std::size_t> rows;
      for (std::size_t row = 0; row < cells.labels.size(); ++row) {
        if (cells.usable[row] == 0) continue;
        if (cells.groups[row] == fold) {
          rows.push_back(row);
          truth.push_back(cells.labels[row]);
          if (!read_as.empty()) truth_read_as.push_back(read_as[r][row]);
          truth_reference.push_back(static_cast<std::int32_t>(r));
          truth_row.push_back(static_cast<std::int64_t>(row));
        } else {
          mask[row] = 1;
          ++fold_result.n_train;
        }
      }
      train_masks.push_back(std::move(mask));
      test_rows.push_back(std::move(rows));
    }
    fold_result.n_test = static_cast<std::int64_t>(truth.size());
    // What the other folds can teach: a fold whose training part has one class (or cell) cannot
    // train (skipped, said); held-out classes no training cell has are errors by construction.
    std::set<std::string> trained;
    for (std::size_t r = 0; r < references.size(); ++r) {
      for (std::size_t row = 0; row < train_masks[r].size(); ++row) {
        if (train_masks[r][row] != 0) trained.insert(references[r].labels[row]);
      }
    }
    if (trained.size() < 2 || fold_result.n_train < 2) {
      skipped.push_back(fmt::format("fold '{}' skipped: the other folds hold {} labelled cell{} of {} class{}, too few to train on; its {} "
                                            "cells are in no metric",
                                            fold, fold_result.n_train, fold_result.n_train == 1 ? "" : "s", trained.size(),
                                            trained.size() == 1 ? "" : "es", fold_result.n_test));
      result.warnings.push_back(skipped.back());
      continue;
    }
    if (!options.harmonize_labels) {  // (a coarse term is met by the classes below it)
      std::map<std::string, std::int64_t> unseen;
      for (const auto& label : truth) {
        if (trained.count(label) == 0) ++unseen[label];
      }
      if (!unseen.empty()) {
        std::int64_t n_unseen = 0;
        std::vector<std::string> names;
        for (const auto& [label, count] : unseen) {
          n_unseen += count;
          if (names.size() < 5) names.push_back(fmt::format("'{}' ({})", label, count));
        }
        result.warnings.push_back(fmt::format("fold '{}': {} held-out cell{} of classes no other fold has ({}{}): no model trained without "
                                              "them can name them, so they count as errors",
                                              fold, n_unseen, n_unseen == 1 ? "" : "s", fmt::join(names, ", "),
                                              unseen.size() > names.size() ? ", ..." : ""));
      }
    }
    std::vector<std::int64_t> fold_genes = base.restrict_genes;
    if (options.restrict_to_held_out_genes) {
      std::set<std::int64_t> detected;
      for (std::size_t r = 0; r < references.size(); ++r) {
        if (test_rows[r].empty()) continue;
        const std::string matrix = !base.matrices.empty() && !base.matrices[r].empty() ? base.matrices[r] : base.embed.matrix;
        const auto genes = detected_genes(*datasets[r], matrix, test_rows[r], table, base.embed.genes,
                                          base.embed.memory_limit_bytes);
        detected.insert(genes.begin(), genes.end());
      }
      if (fold_genes.empty()) {
        fold_genes.assign(detected.begin(), detected.end());
      } else {  // a fixed list too: its genes that the held-out cells detected
        std::sort(fold_genes.begin(), fold_genes.end());
        std::vector<std::int64_t> both;
        std::set_intersection(detected.begin(), detected.end(), fold_genes.begin(), fold_genes.end(), std::back_inserter(both));
        fold_genes = std::move(both);
      }
      if (fold_genes.empty()) throw InputError(fmt::format("cv: fold '{}': no gene of the gene table is detected in its held-out cells", fold));
    } else {
      // A held-out group padded with zeros is annotated on the genes it measured (annotate's rule).
      std::vector<std::string> examples;
      std::vector<std::int64_t> measured = padded_fold_genes(datasets, references, train_masks, test_rows, base, table, &examples);
      if (!measured.empty() && !fold_genes.empty()) {
        std::sort(fold_genes.begin(), fold_genes.end());
        std::vector<std::int64_t> both;
        std::set_intersection(measured.begin(), measured.end(), fold_genes.begin(), fold_genes.end(), std::back_inserter(both));
        measured = std::move(both);
      }
      if (!measured.empty()) {
        result.warnings.push_back(fmt::format(
            "fold '{}': its cells have no count for genes that every training type expresses ({}): a panel padded with zeros; "
            "trained on the {} genes they detect, as annotate does for such a query",
            fold, fmt::join(examples, ", "), measured.size()));
        fold_genes = std::move(measured);
      }
    }
    // The genes every held-out cell's file names (the query's genes, as annotate reads them), for
    // annotate's refit rule below; nothing when the genes are restricted to the held-out cells'.
    std::vector<std::int64_t> held_out_genes;
    if (!options.restrict_to_held_out_genes) {
      bool first = true;
      for (std::size_t r = 0; r < references.size(); ++r) {
        if (test_rows[r].empty()) continue;
        std::vector<std::int64_t> named = genes_named_by(r);
        if (!first) {
          std::vector<std::int64_t> both;
          std::set_intersection(held_out_genes.begin(), held_out_genes.end(), named.begin(), named.end(), std::back_inserter(both));
          named = std::move(both);
        }
        held_out_genes = std::move(named);
        first = false;
      }
      if (!fold_genes.empty()) {
        std::vector<std::int64_t> allowed = fold_genes;
        std::sort(allowed.begin(), allowed.end());
        std::vector<std::int64_t> both;
        std::set_intersection(held_out_genes.begin(), held_out_genes.end(), allowed.begin(), allowed.end(), std::back_inserter(both));
        held_out_genes = std::move(both);
      }
    }
    fold_result.n_genes = static_cast<std::int64_t>(fold_genes.size());
    log(fmt::format("fold '{}': training on {} cells, predicting {}{}", fold, fold_result.n_train, fold_result.n_test,
                    options.restrict_to_held_out_genes ? fmt::format(", on the {} genes detected in them", fold_genes.size()) : ""));

    // Features once per feature route: every configuration of a route fits on the same training
    // features and split, and predicts the same held-out features.
    std::map<std::string, HeldOutPrediction> predictions;
    std::map<std::string, double> train_seconds, predict_seconds;
    // A fold whose training part cannot train (e.g. under --harmonize-labels its coarse labels all
    // sit above one class: a single class) is skipped with the reason, as other untrainable folds.
    const std::int64_t map_rows_before = result.held_out.embedding.rows;
    const std::int64_t map_cols_before = result.held_out.embedding.cols;
    const std::size_t map_values_before = result.held_out.embedding.values.size();
    const std::string map_source_before = result.held_out.embedding_source;
    const std::size_t warnings_before = result.warnings.size();
    std::vector<CvFoldModel> fold_models;  // (keep_models: handed on once the fold is done)
    // What a kept model held out, as `inspect` says it.
    const std::string held_out_description =
        by_cells                     ? fmt::format("fold '{}' of {} folds of cells stratified by label", fold, options.n_splits)
        : pooled_groups.count(fold) ? fmt::format("fold '{}' ({} {})", fold, by_file ? "the reference files" : "obs:" + base.group_column + " groups",
                                                  detail::some_of(pooled_groups.at(fold), 6))
        : by_file                    ? fmt::format("the reference file {}", fold)
                                     : fmt::format("the cells of obs:{} = '{}'", base.group_column, fold);
    bool training_step = false;  // (an error elsewhere, e.g. in the held-out cells' features, stops the run as before)
    try {
      for (const auto& route : routes) {
        TrainOptions train = base;
        train.group_column.clear();  // validation inside a fold (if any) is stratified
        train.features = route;
        train.cell_masks = train_masks;
        train.restrict_genes = fold_genes;
        train.label_renames = renames;
        train.label_map.clear();  // CL ids are attached below from the harmonised names
        // Files labelled at different depths: a coarse term trains as the classes below it.
        train.harmonize_labels = options.harmonize_labels && options.ontology != nullptr;
        train.ontology = options.ontology;
        // (a fold's model is never refitted nor saved, unless its caller keeps it)
        if (!options.keep_models) train.reference_sample_cells = 0;
        train.warn_unmapped_labels = false;  // (result.unmapped_labels lists them once)
        train.log = nullptr;
        const CvModelConfig& first = *std::find_if(options.configurations.begin(), options.configurations.end(),
                                                   [&route](const CvModelConfig& config) { return config.features == route; });
        train.classifier = first.classifier;
        train.hyperparameters = first.hyperparameters;
        auto started = std::chrono::steady_clock::now();
        training_step = true;
        TrainingData data = training_features(datasets, train, store, table);
        // Held-out cells whose files lack part of the model's feature genes: trained on the genes
        // they name, as annotate refits a model for such a query (its default, refit_below);
        // predicted on the full model, their missing genes would read as zeros.
        if (!held_out_genes.empty()) {
          const std::vector<std::int64_t>& feature_genes = route == kFeaturesExpression ? data.panel.entrez_ids : data.genes.entrez_ids;
          const auto measured = std::count_if(feature_genes.begin(), feature_genes.end(), [&](std::int64_t entrez) {
            return std::binary_search(held_out_genes.begin(), held_out_genes.end(), entrez);
          });
          const std::size_t n_feature_genes = feature_genes.size();  // (the refit below replaces `data`, which it refers to)
          if (n_feature_genes != 0 && static_cast<double>(measured) < AnnotateOptions{}.refit_below * static_cast<double>(n_feature_genes)) {
            train.restrict_genes = held_out_genes;
            data = training_features(datasets, train, store, table);
            fold_result.n_genes = static_cast<std::int64_t>(held_out_genes.size());
            result.warnings.push_back(fmt::format(
                "{}fold '{}': its held-out cells' files name {} of the {} {} genes of a model trained on the other folds: trained "
                "restricted to the {} genes they name, as annotate refits a model for such a query",
                kNotePrefix, fold, measured, n_feature_genes, route == kFeaturesExpression ? "panel" : "model", held_out_genes.size()));
          }
        }
        training_step = false;
        // Scores calibrated as `train` calibrates them (a temperature from held-out cells of the
        // fold's training part), so that held-out scores say what annotate's will. Without
        // --validation-fraction those cells only calibrate: the fold's model is the one a fit without
        // validation trains.
        double fraction = train.validation_fraction;
        if (fraction == 0 && train.calibrate) {
          fraction = TrainOptions{}.validation_fraction;
          train.final_fit_from_scratch = true;
        }
        const ValidationSplit split = split_validation(data.cells, fraction, train.seed);
        const double features_seconds = seconds_since(started);
        // Held-out features, made with the route's first model (its genes or panel are the route's).
        std::vector<std::vector<float>> held_out_x(references.size());
        std::vector<std::uint8_t> held_out_empty;
        double held_out_seconds = 0;
        bool have_held_out = false;
        for (const auto& config : options.configurations) {
          if (config.features != route) continue;
          train.classifier = config.classifier;
          train.hyperparameters = config.hyperparameters;
          started = std::chrono::steady_clock::now();
          training_step = true;
          TrainResult trained = fit_model(data, split, train);
          training_step = false;
          train_seconds[config.name()] = features_seconds + seconds_since(started);
          for (const auto& warning : trained.warnings) {
            // (one naming a reference's file is about the file, as notes and the mixed-depths warning are: once)
            const bool about_a_file = std::any_of(datasets.begin(), datasets.end(), [&](const Dataset* dataset) {
              return warning.starts_with(dataset->path() + ": ");
            });
            if (!about_a_file && !warning.starts_with(kNotePrefix) && !warning.starts_with(kMixedDepthsWarning)) {
              const std::string key = repeat_key(config.name(), warning);
              if (repeated.count(key) != 0) {
                repeated_here.push_back(key);
              } else {
                repeated.emplace(key, std::pair(result.warnings.size(), std::size_t{0}));
                result.warnings.push_back(fmt::format("fold '{}', {}: {}", fold, config.name(), warning));
              }
            } else if (std::none_of(result.warnings.begin(), result.warnings.end(), [&](const std::string& seen) {
                         return seen == warning || (warning.starts_with(kMixedDepthsWarning) && seen.starts_with(kMixedDepthsWarning));
                       })) {
              result.warnings.push_back(warning);  // (about the files, not the fold: once)
            }
          }
          CellTypeModel& model = trained.model;
          for (std::size_t c = 0; c < model.class_names.size(); ++c) {
            const auto found = cl_ids.find(model.class_names[c]);
            model.class_cl_ids[c] = found == cl_ids.end() ? std::string() : found->second;
          }
          const auto width = static_cast<std::size_t>(model.n_features());
          if (!have_held_out) {
            started = std::chrono::steady_clock::now();
            for (std::size_t r = 0; r < references.size(); ++r) {
              if (test_rows[r].empty()) continue;
              EmbedOptions embed = base.embed;
              embed.num_threads = base.num_threads;
              if (!base.matrices.empty() && !base.matrices[r].empty()) embed.matrix = base.matrices[r];
              // A restricted model covers little of the other groups' counts in a pooled file: that
              // is what was asked for, not an error (as in train).
              if (!fold_genes.empty()) embed.min_median_coverage = 0;
              std::vector<std::uint8_t> empty;
              std::vector<std::string> warnings;
              std::vector<float> features;
              // (a `celltyper extract` training matrix: its precomputed embeddings, as train reads them)
              std::set<std::int64_t> used_genes;
              nlohmann::json info;
              if (!read_precomputed_embeddings(*datasets[r], store, static_cast<int>(width), features, empty, used_genes, info)) {
                features = model_features(*datasets[r], model, table, embed, empty, warnings);
              }
              std::vector<float>& x = held_out_x[r];
              x.reserve(test_rows[r].size() * width);
              for (const std::size_t row : test_rows[r]) {
                x.insert(x.end(), features.begin() + static_cast<std::ptrdiff_t>(row * width), features.begin() + static_cast<std::ptrdiff_t>((row + 1) * width));
                held_out_empty.push_back(empty[row]);
              }
              if (config.name() == map_configuration) {
                DenseMatrix& map = result.held_out.embedding;
                map.cols = static_cast<std::int64_t>(width);
                map.rows += static_cast<std::int64_t>(test_rows[r].size());
                map.values.insert(map.values.end(), x.begin(), x.end());
                result.held_out.embedding_source = fmt::format("held-out cells ({}-d genept)", width);
              }
            }
            held_out_seconds = seconds_since(started);
            have_held_out = true;
          }
          started = std::chrono::steady_clock::now();
          HeldOutPrediction prediction;
          prediction.class_names = model.class_names;
          prediction.class_cl_ids = model.class_cl_ids;
          prediction.empty = held_out_empty;
          for (std::size_t r = 0; r < references.size(); ++r) {
            if (test_rows[r].empty()) continue;
            const std::vector<float> p =
                model.classifier->predict_proba(held_out_x[r].data(), static_cast<std::int64_t>(test_rows[r].size()), base.num_threads);
            prediction.probabilities.insert(prediction.probabilities.end(), p.begin(), p.end());
          }
          predict_seconds[config.name()] = held_out_seconds + seconds_since(started);
          predictions[config.name()] = std::move(prediction);
          if (options.keep_models) {
            finish_model(trained, data);
            trained.model.provenance["cv_fold"] = fold;
            trained.model.provenance["cv_held_out"] = held_out_description;
            if (const auto pooled = pooled_groups.find(fold); pooled != pooled_groups.end()) {
              trained.model.provenance["cv_fold_groups"] = pooled->second;
            }
            fold_models.push_back({fold, config.name(), std::make_shared<CellTypeModel>(std::move(trained.model))});
          }
        }
      }
    } catch (const InputError& error) {
      if (!training_step) throw;
      result.held_out.embedding.rows = map_rows_before;  // (nothing of the fold kept)
      result.held_out.embedding.cols = map_cols_before;
      result.held_out.embedding.values.resize(map_values_before);
      result.held_out.embedding_source = map_source_before;
      result.warnings.resize(warnings_before);
      std::erase_if(repeated, [&](const auto& entry) { return entry.second.first >= warnings_before; });
      skipped.push_back(fmt::format("fold '{}' skipped ({}); its {} cells are in no metric", fold, error.what(), fold_result.n_test));
      result.warnings.push_back(skipped.back());
      continue;
    }
    for (const std::string& key : repeated_here) ++repeated.at(key).second;
    for (CvFoldModel& kept : fold_models) {
      if (options.model_sink) {
        options.model_sink(std::move(kept));  // (saved as each fold ends: one fold's models in memory)
      } else {
        result.models.push_back(std::move(kept));
      }
    }
    fold_models.clear();
    if (with_ensemble) {
      std::vector<const HeldOutPrediction*> members;
      double train_total = 0, predict_total = 0;
      for (const auto& config : options.configurations) {
        members.push_back(&predictions[config.name()]);
        train_total += train_seconds[config.name()];
        predict_total += predict_seconds[config.name()];
      }
      predictions["ensemble"] = average(members);
      train_seconds["ensemble"] = train_total;
      predict_seconds["ensemble"] = predict_total;
    }

    for (const auto& method : result.methods) {
      const bool hierarchical = method.size() > 13 && method.compare(method.size() - 13, 13, "+hierarchical") == 0;
      const std::string source = hierarchical ? method.substr(0, method.size() - 13) : method;
      const HeldOutPrediction& prediction = predictions.at(source);
      EvaluationOptions evaluation;
      evaluation.ontology = options.ontology;
      evaluation.cl_ids = cl_ids;
      evaluation.alternatives = label_alternatives;
      evaluation.truth_readings = truth_read_as;
      std::vector<std::string> predicted;
      std::vector<float> scores;
      ProbabilityMatrix probabilities;
      if (hierarchical) {
        HierarchicalPrediction h = predict_hierarchical(prediction.probabilities, prediction.class_names, prediction.class_cl_ids,
                                                        *options.ontology, options.min_score, prediction.empty);
        for (std::size_t i = 0; i < h.labels.size(); ++i) {
          if (!h.cl_ids[i].empty()) evaluation.cl_ids.emplace(h.labels[i], h.cl_ids[i]);
        }
        predicted = std::move(h.labels);
        scores = std::move(h.scores);
      } else {
        predicted = argmax_labels(prediction);
        if (options.keep_held_out) {
          const std::size_t c = prediction.class_names.size();
          scores.assign(predicted.size(), 0.0F);
          for (std::size_t i = 0; i < scores.size(); ++i) {
            const float* row = prediction.probabilities.data() + i * c;
            if (prediction.empty[i] == 0 && c > 0) scores[i] = *std::max_element(row, row + c);
          }
        }
        probabilities.class_names = prediction.class_names;
        probabilities.values = prediction.probabilities;
        evaluation.probabilities = &probabilities;
        pooled_ranking.try_emplace(method, evaluation.top_k).first->second.add(truth, probabilities);
      }
      CvMethodResult& scored = fold_result.methods[method];
      scored.metrics = evaluate(truth, predicted, evaluation);
      scored.train_seconds = train_seconds[source];
      scored.predict_seconds = predict_seconds[source];
      pooled_cl_ids.insert(evaluation.cl_ids.begin(), evaluation.cl_ids.end());
      auto& pooled = pooled_predictions[method];
      pooled.insert(pooled.end(), predicted.begin(), predicted.end());
      if (options.keep_held_out) {
        auto& pooled_scores = result.held_out.scores[method];
        pooled_scores.insert(pooled_scores.end(), scores.begin(), scores.end());
      }
    }
    pooled_truth.insert(pooled_truth.end(), truth.begin(), truth.end());
    pooled_read_as.insert(pooled_read_as.end(), truth_read_as.begin(), truth_read_as.end());
    if (options.keep_held_out) {
      for (const auto& method : result.methods) {  // (the flat methods' probabilities: the +hierarchical rows read them above)
        const auto flat = predictions.find(method);
        if (flat != predictions.end()) fold_probabilities[method].push_back(std::move(flat->second));
      }
      result.held_out.fold.insert(result.held_out.fold.end(), truth.size(), fold);
      result.held_out.reference.insert(result.held_out.reference.end(), truth_reference.begin(), truth_reference.end());
      result.held_out.row.insert(result.held_out.row.end(), truth_row.begin(), truth_row.end());
      for (std::size_t i = 0; i < truth_row.size(); ++i) {
        const auto& names = references[static_cast<std::size_t>(truth_reference[i])].names;
        const auto row = static_cast<std::size_t>(truth_row[i]);
        result.held_out.cell.push_back(row < names.size() ? names[row] : std::to_string(row));
      }
    }
    result.folds.push_back(std::move(fold_result));
  }
  if (result.folds.empty()) {
    throw InputError(fmt::format("cv: every fold was skipped ({})", fmt::join(skipped, "; ")));
  }
  for (const auto& [key, said] : repeated) {
    if (said.second > 0) result.warnings[said.first] += fmt::format(" (so too in {} other fold{})", said.second, said.second == 1 ? "" : "s");
  }
  EvaluationOptions evaluation;
  evaluation.ontology = options.ontology;
  evaluation.cl_ids = pooled_cl_ids;
  evaluation.alternatives = label_alternatives;
  evaluation.truth_readings = pooled_read_as;
  for (const auto& method : result.methods) {
    result.pooled[method] = evaluate(pooled_truth, pooled_predictions[method], evaluation);
    if (const auto tally = pooled_ranking.find(method); tally != pooled_ranking.end()) result.pooled[method].ranking = tally->second.result();
  }
  if (options.keep_held_out) {
    result.held_out.truth = std::move(pooled_truth);
    result.held_out.predictions = std::move(pooled_predictions);
    for (auto& [method, folds_of_method] : fold_probabilities) result.held_out.probabilities[method] = stack_folds(std::move(folds_of_method));
  }
  return result;
}

namespace {

std::string reference_name(const std::vector<std::string>& names, std::int32_t reference) {
  return reference >= 0 && static_cast<std::size_t>(reference) < names.size() ? names[static_cast<std::size_t>(reference)]
                                                                               : std::to_string(reference);
}

}  // namespace

void write_held_out_csv(const CrossValidationResult& result, const std::vector<std::string>& reference_names, std::ostream& out) {
  const auto& held = result.held_out;
  out << "obs_name,reference,fold,truth";
  for (const auto& method : result.methods) out << ',' << csv_field(method) << ',' << csv_field(method + "_score");
  out << '\n';
  for (std::size_t i = 0; i < held.truth.size(); ++i) {
    out << csv_field(held.cell[i]) << ',' << csv_field(reference_name(reference_names, held.reference[i])) << ',' << csv_field(held.fold[i])
        << ',' << csv_field(held.truth[i]);
    for (const auto& method : result.methods) {
      out << ',' << csv_field(held.predictions.at(method)[i]) << ',' << fmt::format("{:.6g}", held.scores.at(method)[i]);
    }
    out << '\n';
  }
}

void write_held_out_probabilities_csv(const CrossValidationResult& result, const std::vector<std::string>& reference_names,
                                      std::ostream& out) {
  const auto& held = result.held_out;
  std::vector<std::string> classes;
  std::map<std::string, std::size_t> column;
  std::vector<std::string> methods;
  for (const auto& method : result.methods) {
    const auto found = held.probabilities.find(method);
    if (found == held.probabilities.end()) continue;
    methods.push_back(method);
    for (const auto& name : found->second.class_names) {
      if (column.emplace(name, classes.size()).second) classes.push_back(name);
    }
  }
  out << "obs_name,reference,fold,method";
  for (const auto& name : classes) {  // (a class named as a fixed column would repeat its header)
    const bool fixed = name == "obs_name" || name == "reference" || name == "fold" || name == "method";
    out << ',' << csv_field(fixed ? "class:" + name : name);
  }
  out << '\n';
  std::vector<float> row(classes.size());
  for (const auto& method : methods) {
    const ProbabilityMatrix& matrix = held.probabilities.at(method);
    const std::size_t c = matrix.class_names.size();
    std::vector<std::size_t> to(c);
    for (std::size_t k = 0; k < c; ++k) to[k] = column.at(matrix.class_names[k]);
    for (std::size_t i = 0; i < held.truth.size(); ++i) {
      std::fill(row.begin(), row.end(), 0.0F);
      for (std::size_t k = 0; k < c; ++k) row[to[k]] = matrix.values[i * c + k];
      out << csv_field(held.cell[i]) << ',' << csv_field(reference_name(reference_names, held.reference[i])) << ',' << csv_field(held.fold[i])
          << ',' << csv_field(method);
      for (const float p : row) out << ',' << fmt::format("{:.6g}", p);
      out << '\n';
    }
  }
}

nlohmann::json CrossValidationResult::summary() const {
  nlohmann::json summary = nlohmann::json::object();
  for (const auto& method : methods) {
    double accuracy = 0, macro = 0, weighted = 0, corrected = 0, hf = 0, lca = 0, train = 0, predict = 0;
    bool ontology = true;
    for (const auto& fold : folds) {
      const CvMethodResult& r = fold.methods.at(method);
      accuracy += r.metrics.accuracy;
      macro += r.metrics.macro.f1;
      weighted += r.metrics.weighted.f1;
      train += r.train_seconds;
      predict += r.predict_seconds;
      ontology = ontology && r.metrics.ontology.available && r.metrics.ontology.n_mapped > 0;
      corrected += r.metrics.ontology.corrected_macro_f1;
      hf += r.metrics.ontology.hierarchical_f1;
      lca += r.metrics.ontology.mean_lca_distance_all;
    }
    const double n = static_cast<double>(std::max<std::size_t>(folds.size(), 1));
    nlohmann::json row = {{"accuracy", accuracy / n}, {"macro_f1", macro / n}, {"weighted_f1", weighted / n},
                          {"train_seconds", train / n}, {"predict_seconds", predict / n}};
    if (ontology) {
      row["corrected_macro_f1"] = corrected / n;
      row["hierarchical_f"] = hf / n;
      row["mean_lca_distance"] = lca / n;
    }
    summary[method] = row;
  }
  return summary;
}

nlohmann::json CrossValidationResult::to_json() const {
  nlohmann::json json = {{"methods", methods}, {"unmapped_labels", unmapped_labels}, {"warnings", warnings}, {"mean", summary()}};
  for (const auto& [method, metrics] : pooled) json["pooled"][method] = celltyper::to_json(metrics);
  json["folds"] = nlohmann::json::array();
  for (const auto& fold : folds) {
    nlohmann::json entry = {{"group", fold.group}, {"n_train", fold.n_train}, {"n_test", fold.n_test}, {"n_genes", fold.n_genes}};
    for (const auto& [method, r] : fold.methods) {
      nlohmann::json metrics = celltyper::to_json(r.metrics);
      metrics["train_seconds"] = r.train_seconds;
      metrics["predict_seconds"] = r.predict_seconds;
      entry["methods"][method] = std::move(metrics);
    }
    json["folds"].push_back(std::move(entry));
  }
  if (const OntologyCoverage coverage = ontology_coverage(); coverage.available) {
    json["ontology_coverage"] = {{"fewest", coverage.fewest}, {"most", coverage.most}, {"n_cells", coverage.n_cells}};
  }
  return json;
}

CrossValidationResult::OntologyCoverage CrossValidationResult::ontology_coverage() const {
  OntologyCoverage coverage;
  for (const auto& [method, metrics] : pooled) {
    if (!metrics.ontology.available) continue;
    const auto mapped = static_cast<std::int64_t>(metrics.ontology.n_mapped);
    coverage.fewest = coverage.available ? std::min(coverage.fewest, mapped) : mapped;
    coverage.most = coverage.available ? std::max(coverage.most, mapped) : mapped;
    coverage.n_cells = static_cast<std::int64_t>(metrics.n_cells);
    coverage.available = true;
  }
  return coverage;
}

std::vector<std::string> CrossValidationResult::ranked_methods() const {
  const nlohmann::json mean = summary();
  std::vector<std::string> ranked = methods;
  std::stable_sort(ranked.begin(), ranked.end(), [&](const std::string& a, const std::string& b) {
    return mean.at(a).at("macro_f1").get<double>() > mean.at(b).at("macro_f1").get<double>();
  });
  return ranked;
}

ReportContent report_content(const CrossValidationResult& result, std::vector<std::pair<std::string, std::string>> details,
                             std::size_t max_map_points, std::uint64_t seed) {
  ReportContent content;
  content.title = "celltyper cross-validation";
  content.details = std::move(details);
  std::int64_t cells = 0;
  std::vector<std::string> fold_sizes;
  for (const auto& fold : result.folds) {
    cells += fold.n_test;
    fold_sizes.push_back(fmt::format("{} ({} cells)", fold.group, fold.n_test));
  }
  content.details.emplace_back("folds", fmt::format("{}: {}", result.folds.size(), fmt::join(fold_sizes, ", ")));
  const std::vector<std::string> ranked = result.ranked_methods();
  const nlohmann::json mean = result.summary();
  for (const auto& method : ranked) {
    std::vector<std::string> per_fold;
    for (const auto& fold : result.folds) per_fold.push_back(fmt::format("{} {:.3f}", fold.group, fold.methods.at(method).metrics.macro.f1));
    content.details.emplace_back(method, fmt::format("macro-F1 mean {:.3f} (by fold: {})", mean.at(method).at("macro_f1").get<double>(),
                                                     fmt::join(per_fold, ", ")));
  }
  for (const auto& method : ranked) {
    const auto pooled = result.pooled.find(method);
    if (pooled == result.pooled.end()) continue;
    content.sections.push_back({fmt::format("{}, {} folds pooled", method, result.folds.size()), pooled->second});
  }
  if (content.sections.empty()) throw InputError("cv report: no pooled results (no folds were run)");
  const auto& held_out = result.held_out;
  const auto best = held_out.predictions.find(ranked.front());
  if (held_out.embedding.rows >= 2 && best != held_out.predictions.end() &&
      static_cast<std::size_t>(held_out.embedding.rows) == held_out.truth.size()) {
    const std::vector<std::size_t> rows = subsample_rows(held_out.truth.size(), max_map_points, seed);
    const PrincipalComponents pca = principal_components(held_out.embedding, 2, &rows);
    EmbeddingMap map;
    map.source = held_out.embedding_source;
    content.details.emplace_back("cell map", fmt::format("PCA of the {}, prediction by {}", held_out.embedding_source, ranked.front()));
    map.n_cells = held_out.truth.size();
    map.explained_variance_ratio = {pca.explained_variance_ratio[0], pca.explained_variance_ratio[1]};
    for (std::size_t i = 0; i < rows.size(); ++i) {
      map.x.push_back(pca.coordinates[2 * i]);
      map.y.push_back(pca.coordinates[2 * i + 1]);
      map.truth.push_back(held_out.truth[rows[i]]);
      map.prediction.push_back(best->second[rows[i]]);
    }
    if (rows.size() >= 3) content.umap = umap_map(held_out.embedding, rows, map, kMaxUmapCells, seed);
    content.embedding = std::move(map);
  }
  content.warnings = result.warnings;
  for (const auto& label : result.unmapped_labels) content.warnings.push_back(fmt::format("label without a Cell Ontology id: {}", label));
  return content;
}

std::string CrossValidationResult::format_table() const {
  std::size_t width = 6;
  for (const auto& method : methods) width = std::max(width, method.size());
  std::size_t group_width = 9;  // ("fold mean")
  for (const auto& fold : folds) group_width = std::max(group_width, fold.group.size());
  group_width = std::min<std::size_t>(group_width, 40);
  const bool ontology = !folds.empty() && folds.front().methods.begin()->second.metrics.ontology.available;
  std::string text = fmt::format("{:<{}}  {:<{}}  {:>6}  {:>8}  {:>8}  {:>8}", "method", width, "fold", group_width, "cells", "accuracy",
                                 "macro-F1", "wF1");
  if (ontology) text += fmt::format("  {:>8}  {:>6}  {:>5}", "corr-mF1", "hF", "LCA");
  text += fmt::format("  {:>7}  {:>9}\n", "train s", "predict s");
  auto row = [&](const std::string& method, const std::string& fold, std::int64_t cells, double accuracy, double macro, double weighted,
                 double corrected, double hf, double lca, double train, double predict) {
    std::string line = fmt::format("{:<{}}  {:<{}}  {:>6}  {:>8.3f}  {:>8.3f}  {:>8.3f}", method, width, fold.substr(0, group_width), group_width,
                                   cells, accuracy, macro, weighted);
    if (ontology && std::isnan(hf)) line += fmt::format("  {:>8}  {:>6}  {:>5}", "n/a", "n/a", "n/a");  // no cell mapped
    if (ontology && !std::isnan(hf)) line += fmt::format("  {:>8.3f}  {:>6.3f}  {:>5.2f}", corrected, hf, lca);
    if (std::isnan(train)) return line + fmt::format("  {:>7}  {:>9}\n", "-", "-");
    return line + fmt::format("  {:>7.2f}  {:>9.2f}\n", train, predict);
  };
  for (const auto& method : methods) {
    for (const auto& fold : folds) {
      const CvMethodResult& r = fold.methods.at(method);
      const auto& o = r.metrics.ontology;
      const double unavailable = o.n_mapped > 0 ? 0.0 : std::numeric_limits<double>::quiet_NaN();
      text += row(method, fold.group, fold.n_test, r.metrics.accuracy, r.metrics.macro.f1, r.metrics.weighted.f1,
                  o.corrected_macro_f1 + unavailable, o.hierarchical_f1 + unavailable, o.mean_lca_distance_all + unavailable,
                  r.train_seconds, r.predict_seconds);
    }
  }
  const nlohmann::json mean = summary();
  std::int64_t cells = 0;
  for (const auto& fold : folds) cells += fold.n_test;
  for (const auto& method : methods) {
    const auto& m = mean.at(method);
    const double none = std::numeric_limits<double>::quiet_NaN();  // (a fold without mapped cells: no mean)
    text += row(method, "fold mean", cells, m["accuracy"], m["macro_f1"], m["weighted_f1"], m.value("corrected_macro_f1", none),
                m.value("hierarchical_f", none), m.value("mean_lca_distance", none), m["train_seconds"], m["predict_seconds"]);
  }
  // Every held-out cell once (cell-weighted; a fold of one cell weighs one cell, not 1 / folds).
  for (const auto& method : methods) {
    const auto found = pooled.find(method);
    if (found == pooled.end()) continue;
    const EvaluationResult& p = found->second;
    const double unavailable = p.ontology.available && p.ontology.n_mapped > 0 ? 0.0 : std::numeric_limits<double>::quiet_NaN();
    text += row(method, "pooled", static_cast<std::int64_t>(p.n_cells), p.accuracy, p.macro.f1, p.weighted.f1, p.ontology.corrected_macro_f1 + unavailable,
                p.ontology.hierarchical_f1 + unavailable, p.ontology.mean_lca_distance_all + unavailable, std::numeric_limits<double>::quiet_NaN(),
                0.0);
  }
  // The classes the averages hide (pooled recall below 0.8: a rare type's misses).
  for (const auto& method : methods) {
    const auto found = pooled.find(method);
    if (found == pooled.end()) continue;
    const std::string weakest = weakest_classes(found->second.per_class);
    if (!weakest.empty()) text += fmt::format("{}: pooled recall below 0.8: {}\n", method, weakest);
  }
  if (ontology) {
    text += "(corr-mF1: corrected macro-F1, a prediction at or below the truth's term counts as right; hF: hierarchical F; LCA: mean upward "
            "distance to the lowest common ancestor over the cells mapped to Cell Ontology terms)\n";
  }
  return text;
}

}  // namespace celltyper
