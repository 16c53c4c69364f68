/// @file train.hpp
/// The steps of training, each taking data and returning data, so that `train`, `tune` and `cv`
/// (and the Python module) compose the same code:
///
///   labelled cells      read_labelled_cells: labels (renamed), groups and masks of every reference
///   -> features         training_features: GenePT-w embeddings or the expression panel of the
///                       usable labelled cells, plus what a model file needs (gene rows or panel,
///                       reference sample, provenance)
///   -> validation split split_validation: whole groups, or a stratified share of each class
///   -> fit              fit_model: fit on the training part, score the held-out cells, refit on
///                       every cell, assemble the CellTypeModel
///
/// `train_model` (annotate.hpp) is `fit_model(training_features(...))`. `cv` computes the
/// features once per fold and feature route and fits every configuration of that route on them;
/// `tune` computes them once and fits every trial.
#pragma once

#include <celltyper/annotate.hpp>
#include <celltyper/sparse.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace celltyper {

/// Expression models of references measuring fewer genes than this (a reference cut to its
/// highly variable genes, a targeted panel) sum a cell's library over the genes the references
/// measured, on the references and on every query (ModelPanel::size_factor_genes); references
/// of a whole transcriptome (filtered ones keep over 13,000 genes) sum it over every var.
inline constexpr std::size_t kTranscriptomeGenes = 10000;

/// Features of labelled cells of one or more references (cells with a missing or empty label, or
/// empty features, dropped), in reference then row order.
struct LabelledFeatures {
  std::vector<float> features;        ///< [n x dims] row-major float32 (empty when `sparse`)
  int dims = 0;
  /// The features in compressed rows instead (non-zero values only; TrainOptions::dense_features):
  /// sparse_features.n_rows == n(). Use the row accessors below to read either form.
  bool sparse = false;
  CsrBlock sparse_features;
  std::vector<std::string> labels;    ///< n labels
  std::vector<std::string> groups;    ///< n "path\x1fgroup" keys; empty strings without a group column
  std::vector<std::int32_t> references;  ///< n indices of the reference each cell comes from
  /// Depth augmentation (TrainOptions::augment_depth): per row, -1 for a reference cell, else the
  /// row of the cell it is a thinned copy of (copies follow every reference cell). Empty: no copies.
  std::vector<std::int64_t> augmented_from;
  /// Per reference: the weight of its copies relative to TrainOptions::augment_depth_weight (its
  /// cells / copied cells when TrainOptions::augment_depth_max_copies capped them). Empty: 1.
  std::vector<double> copy_scale;
  std::int64_t n_dropped_unlabelled = 0;
  std::int64_t n_dropped_empty = 0;
  std::vector<std::string> warnings;
  [[nodiscard]] std::int64_t n() const { return static_cast<std::int64_t>(labels.size()); }
  /// Whether row `row` is a reference cell (not a thinned copy).
  [[nodiscard]] bool is_original(std::int64_t row) const {
    return augmented_from.empty() || augmented_from[static_cast<std::size_t>(row)] < 0;
  }
  /// Reference cells (rows that are not thinned copies).
  [[nodiscard]] std::int64_t n_original() const;
  /// Append a row of `dims` features (its non-zero values when `sparse`).
  void append_row(const float* row);
  /// Row `row`'s `dims` features into `out`.
  void copy_row(std::int64_t row, float* out) const;
  /// The rows `rows`, in that order, as a dense [rows x dims] matrix.
  [[nodiscard]] std::vector<float> dense_rows(const std::vector<std::int64_t>& rows) const;
  /// Every row as a dense [n x dims] matrix (a copy when `sparse`).
  [[nodiscard]] std::vector<float> dense() const;
  /// The compressed rows as the classifiers take them (`sparse` only).
  [[nodiscard]] SparseFeatures sparse_view() const;
};

/// Datasets opened from paths (open_dataset), kept open while `views` is in use.
struct OpenedDatasets {
  std::vector<std::unique_ptr<Dataset>> owned;
  std::vector<const Dataset*> views;  ///< one per path, same order
};
/// Open every path; with a `cell_table` path, its columns are joined to each dataset's obs by
/// cell name (with_cell_table).
OpenedDatasets open_datasets(const std::vector<std::string>& paths, const std::string& cell_table = {});

/// Per label, the Cell Ontology ids its cells carry, with their cell counts.
using LabelTermIds = std::map<std::string, std::map<std::string, std::int64_t>>;

/// The column of Cell Ontology ids the CELLxGENE schema puts beside a label column:
/// "cell_type" -> "cell_type_ontology_term_id".
std::string ontology_term_id_column(const std::string& label_column);

/// The obs column a reference reads its labels from. `label_column` (TrainOptions::label_column)
/// names one column, or several separated by commas: alternatives for references whose labels
/// sit in differently named columns ("celltype,bulk_labels"), each reference reading the first
/// its obs (`present`: its column names) has. A column named exactly `label_column` is taken
/// first. Throws InputError, "WHERE: no column ..." naming the columns tried and those present,
/// when it has none.
std::string label_column_of(const std::vector<std::string>& present, const std::string& label_column, const std::string& where);

/// `label_column` (one column, or several comma-separated: label_column_of) for messages:
/// "obs:celltype", "obs:celltype,obs:bulk_labels".
std::string label_columns_text(const std::string& label_column);

/// The id column of `label_column` when obs (`present`: its column names) has it: appended to
/// `wanted` (unless there already) and returned; "" otherwise.
std::string want_term_id_column(const std::vector<std::string>& present, const std::string& label_column, std::vector<std::string>& wanted);

/// Whether the data gives `label` a CL id (`data_ids`, from most_frequent_term_ids) that
/// `ontology` (when given) has: then `match` takes that id and its term's name.
bool take_data_term_id(const std::string& label, const std::map<std::string, std::string>& data_ids, const Ontology* ontology, LabelMatch& match);

/// Add to `ids` the CL ids of `labels`' cells from `term_ids` (a column such as
/// cell_type_ontology_term_id; rows with a missing or empty label skipped, and ids that are not
/// "CL:...", such as CELLxGENE's "unknown").
void count_label_term_ids(const Column& labels, const Column& term_ids, LabelTermIds& ids,
                          const std::map<std::string, std::string>& label_renames = {},
                          const std::vector<std::uint8_t>* excluded = nullptr);

/// Each label's most frequent CL id in `ids` (ties: the smallest id). A label with several ids
/// adds a line to `warnings` naming `column`.
std::map<std::string, std::string> most_frequent_term_ids(const LabelTermIds& ids, const std::string& column,
                                                          std::vector<std::string>* warnings);

/// The labelled cells of one reference, before any feature is computed.
struct LabelledReference {
  std::string path;
  std::string label_column;             ///< the obs column its labels were read from (label_column_of)
  const Dataset* dataset = nullptr;
  std::string matrix;                   ///< the source read: "X", "raw/X", "layers/NAME" (TrainOptions::matrices or embed.matrix, resolved)
  std::string matrix_note;              ///< why "auto" did not read X (choose_counts_matrix), else ""
  /// The normalisation its features get when not "auto": logs of unknown normalisation pooled
  /// from several files read back in one base (kRelog2Cp10k when any file's values exceed natural
  /// logs of millions), not each file's own guess.
  NormalizationChoice normalization = NormalizationChoice::kAuto;
  /// The file's own dataset with the counts of `matrix` read back from its log values
  /// (recover_counts: expression route, --normalize auto); `dataset` points to it. Else null.
  std::shared_ptr<const Dataset> recovered;
  std::string recovered_note;           ///< CountsRecovery::note, else ""
  std::string recovered_warning;        ///< CountsRecovery::warning, else ""
  std::vector<std::string> labels;      ///< per cell, after TrainOptions::label_renames; "" when missing
  std::vector<std::string> groups;      ///< per cell "path\x1fgroup"; "" without a group column
  std::vector<std::uint8_t> labelled;   ///< 1 = has a label and is not masked out
  std::vector<std::uint8_t> excluded;   ///< 1 = masked out by TrainOptions::cell_masks
  std::int64_t n_unlabelled = 0;        ///< cells (not masked out) without a label (is_unlabelled)
  std::string missing_spelled;          ///< one missing-value text met among the labels ("nan"), else ""
  std::int64_t n_multi_labelled = 0;    ///< cells whose label joins types with '|' ("A|B")
  std::string multi_label_example;
  std::int64_t n_missing_group = 0;     ///< labelled cells without a value in the --group column (group kMissingGroup)
  /// The CL ids its labelled cells carry in obs's ontology-term-id column beside the label column
  /// (ontology_term_id_column), per label with their cell counts; empty without such a column.
  LabelTermIds label_term_ids;
  std::string term_id_column;  ///< that column's name when obs has it, else ""
  /// Labels that differed only in surrounding white space or letter case, made one (the most
  /// frequent spelling over every reference), as a warning; on the first reference only.
  std::string label_note;
};

/// What makes two labels one: the label without surrounding white space, in lower case, a CL id
/// with ':' ("CL_0000236", an OBO PURL's form, is "CL:0000236").
std::string label_spelling_key(std::string_view label);
/// Whether `label` is a CL id in either form ("CL:0000236", "cl_0000236 "), for messages.
bool is_cl_id_label(std::string_view label);

/// Labels equal but for surrounding white space, letter case and a CL id's CL_ ("B " and "B", "NK" and "nk"),
/// given with their cells: each such spelling -> the most frequent one, trimmed, a CL id as CL: (what training
/// reads them as). `note`, when given and something is renamed, gets a warning naming them.
/// "PATH: N cells without a label in obs:COLUMN left out", naming a label that names no type
/// (`spelled`, e.g. 'unknown') when one was seen ("" = none).
std::string unlabelled_cells_warning(const std::string& path, std::int64_t n, const std::string& column, const std::string& spelled);

std::map<std::string, std::string> label_spelling_renames(const std::map<std::string, std::int64_t>& cells, std::string* note = nullptr);

/// Step 1: labels and groups of every cell of `datasets` (options: label_column, group_column,
/// label_renames, cell_masks, matrices). Throws InputError when a column is missing or the masks
/// or matrices do not match the datasets.
std::vector<LabelledReference> read_labelled_cells(const std::vector<const Dataset*>& datasets, const TrainOptions& options);

/// A label that some references use at a coarser depth than the pool (mixed granularity).
/// How train's warning about pooled labels at different depths begins (cv reports it once, not per fold).
inline constexpr std::string_view kMixedDepthsWarning = "the references label cells at different Cell Ontology depths or with different names";

struct CoarseLabel {
  /// Per reference index where the label is coarse: the sorted classes its cells may belong to.
  std::map<std::int32_t, std::vector<std::string>> classes;
};

/// Everything `fit_model` needs: the features of the usable labelled cells and what the model
/// file records about where they came from.
struct TrainingData {
  LabelledFeatures cells;
  std::string features = kFeaturesExpression;  ///< the route: kFeaturesGenept or kFeaturesExpression
  std::vector<std::string> reference_names;    ///< paths (or names) of the references
  ModelGenes genes;                            ///< genept: gene rows of every gene seen (store prefix)
  ExpressionPanel panel;                       ///< expression: the panel genes, feature order
  ReferenceSample sample;                      ///< class-balanced reference cells (labels filled by fit_model)
  std::vector<std::string> sample_labels;      ///< label of each sample row
  std::vector<std::int32_t> sample_references; ///< reference index of each sample row
  std::set<std::string> normalizations;        ///< how each reference's features were normalised
  nlohmann::json reference_info = nlohmann::json::array();  ///< per reference: path, matrix, counts
  nlohmann::json gene_store;                   ///< GeneStore::info_json() (genept), null otherwise
  std::string gene_table_hash;
  std::string gene_table_source;
  std::size_t n_restrict_genes = 0;            ///< TrainOptions::restrict_genes, unique
  std::size_t n_shared_genes = 0;              ///< genes every reference measured (TrainOptions::shared_genes; 0 = not applied)
  /// Some reference names its genes like mouse genes, read through a table that does not
  /// (GeneResolveResult::mouse_cased_mismatch): train_model records it in the model.
  bool references_mouse_cased = false;
  /// CL id of every (harmonised) label that has one (harmonize_labels with TrainOptions::label_map,
  /// the data's ontology-term-id column and TrainOptions::ontology).
  std::map<std::string, std::string> label_cl_ids;
  /// Where each label's CL id came from: "label map", "obs:COLUMN" (the data's ontology-term-id
  /// column), "CL id", "CL name" or "CL synonym" (the ontology).
  std::map<std::string, std::string> label_cl_id_sources;
  /// Coarse labels (mixed granularity), see coarse_labels().
  std::map<std::string, CoarseLabel> coarse_labels;
  /// The classes a cell labelled `label` in reference `reference` may belong to when the label
  /// is coarse there, else null.
  [[nodiscard]] const std::vector<std::string>* coarse_classes(const std::string& label, std::int32_t reference) const;
};

/// Labels renamed to their Cell Ontology terms.
struct LabelHarmonization {
  std::map<std::string, std::string> renames;  ///< label -> its CL term's name (mapped labels only)
  std::map<std::string, std::string> cl_ids;   ///< name (harmonised, or as given) -> CL id
  /// name -> the alternatives its label names below its CL id ("T/NK cells" at lymphocyte: T
  /// cell, natural killer cell; `LabelMapper::alternatives_within`), when every label of that
  /// name reads so (evaluation's truth; a coarse label's classes in training)
  std::map<std::string, std::vector<std::string>> alternatives;
  /// label (as given) -> the alternatives it names below its CL id, per label (evaluation reads
  /// each cell's own label so: `EvaluationOptions::truth_readings`)
  std::map<std::string, std::vector<std::string>> label_alternatives;
  std::vector<std::string> unmapped;           ///< labels without a CL id, sorted
  /// unmapped labels that several terms fit ("Monocytes/Macrophages": two lowest common
  /// ancestors in the DAG) -> "id (name)" of each
  /// A misspelt --label-dataset; ids of the label map that the ontology lacks (they stay the
  /// classes' ids, but no ontology-aware step can place them).
  std::map<std::string, std::vector<std::string>> ambiguous;
  /// unmapped labels -> why, where more can be said than "no term has this name"
  /// (`LabelMatch::reason`: a slash label's too-broad common ancestor, a number)
  std::map<std::string, std::string> unmapped_reasons;
  std::vector<std::string> warnings;
};

/// Map `labels` to CL ids: first the table `label_map` (rows of `label_map_dataset` first, when
/// given), then `data_ids` (label -> the CL id the data itself gives it, e.g. CELLxGENE's
/// cell_type_ontology_term_id; an id the ontology lacks is skipped), then `ontology` (a label that
/// is a CL id, a term's name or one of its exact synonyms). Any of the three may be absent; with
/// `rename`, each mapped label is renamed to its term's name (the id when the name is unknown).
/// `sources` (optional) gets name -> where its id came from: "label map", "data", or the
/// ontology's "CL id", "CL name", "CL synonym".
/// Throws InputError when neither a table, data ids nor an ontology is given.
LabelHarmonization harmonize_labels(const std::set<std::string>& labels, const Ontology* ontology, const std::string& label_map,
                                    const std::string& label_map_dataset, bool rename,
                                    const std::map<std::string, std::string>& data_ids = {},
                                    std::map<std::string, std::string>* sources = nullptr);

/// Mixed granularity: which labels of which references train as coarse labels.
///
/// A label T of reference R (with CL id `cl_ids[T]`; labels without one stand alone) is coarse
/// in R when labels of the pool lie below T in the ontology that R did not use: R's annotators
/// stopped at T there, so its T cells may belong to any class at or below T, except the classes
/// at or below R's own other labels under T (R chose those where they applied: pbmc3k's "CD14+
/// Mono" beside its "FCGR3A+ Mono", which CL places below it, means "CD14 monocyte but not
/// FCGR3A+"; savercat's "T/NK cells" (lymphocyte) beside its "B cells" means "a lymphocyte other
/// than a B cell"). A label naming alternatives below its term (`alternatives`, from
/// LabelHarmonization: "T/NK cells" at lymphocyte) leaves only the classes at or below one of
/// them (not an innate lymphoid cell). A label is a class when some reference uses it with nothing
/// left below it; a label coarse in every reference that uses it is not a class.
/// `labels_by_reference[r]` = the labels reference r uses.
std::map<std::string, CoarseLabel> coarse_labels(const std::vector<std::set<std::string>>& labels_by_reference,
                                                 const std::map<std::string, std::string>& cl_ids, const Ontology& ontology,
                                                 const std::map<std::string, std::vector<std::string>>& alternatives = {});

/// Where a model's genes are its references' var names as written (`own_gene_names_table`): the
/// model's provenance "gene_table", and `GeneTable::source()` of that table.
inline constexpr std::string_view kOwnGeneNamesSource = "the references' own var names";

/// Whether `model` was trained on its references' own var names (its provenance says
/// kOwnGeneNamesSource): a query is then read in the model's genes, not a gene table's.
[[nodiscard]] bool trained_on_own_gene_names(const CellTypeModel& model);

/// The lowest id `own_gene_names_table` gives a name: far above every Entrez id (NCBI's reach the
/// hundreds of millions), so no gene vector or table of another species is found under it, and
/// never taken for a row number; ids stay below 2^53 (exact in a double, in JSON readers).
inline constexpr std::int64_t kOwnGeneIdBase = 1'000'000'000'000'000;

/// The id of a gene named `lower_name` (lower-cased) in a table of `own_gene_names_table`:
/// kOwnGeneIdBase + a 52-bit hash of the name (FNV-1a, SplitMix64's finaliser), the same in
/// every model and on every machine.
std::int64_t own_gene_id(std::string_view lower_name);

/// The references' var names as a gene table of their own, for references that `table` hardly
/// names: on the expression route, when under a tenth of every reference's gene vars match it
/// (another species' ids read through the human default: fly FBgn / CG numbers, zebrafish,
/// Arabidopsis AT1G01010, worm, yeast), CellTypist's way (genes are the names the data gives).
/// Each distinct name (letter case aside) of the var column the genes are read from (the gene
/// column option, else the var index) is a gene: symbol = the name (an Ensembl-like name also its
/// Ensembl id), id = own_gene_id of the lower-cased name. A model trained so records
/// kOwnGeneNamesSource, and `annotate` matches a query's var names to the model's own genes
/// (their names, ignoring case). options.own_gene_names asks for it whatever the share matched (a
/// note then, not a warning; InputError on the GenePT-w route). nullopt when `table` serves (or is
/// such a table already, or on the GenePT-w route, whose gene vectors are keyed by `table`'s ids);
/// `warning`, when given, gets what was done and why.
std::optional<GeneTable> own_gene_names_table(const std::vector<const Dataset*>& datasets, const TrainOptions& options,
                                              const GeneTable& table, std::string* warning = nullptr);

/// Step 2: features of the usable labelled cells of `datasets` (options.features picks the route;
/// options.classifier and hyperparameters are not used, so one TrainingData serves every
/// configuration of its route). Throws InputError as `train_model` does.
TrainingData training_features(const std::vector<const Dataset*>& datasets, const TrainOptions& options, const GeneStore& store,
                               const GeneTable& table);

/// Rows of a LabelledFeatures split into training and validation cells.
struct ValidationSplit {
  std::vector<std::int64_t> train_rows;       ///< sorted
  std::vector<std::int64_t> validation_rows;  ///< sorted; empty = no validation
  std::string description;                    ///< e.g. "stratified random 20% of each class"
  std::vector<std::string> held_out_groups;   ///< group names held out ("path:group" with several references)
  std::vector<std::string> warnings;
};

/// Step 3, the split of `celltyper train` for `fraction` and `seed`: whole groups held out when
/// the cells have groups (in seeded random group order until `fraction` of the cells, never every
/// group), otherwise a seeded random `fraction` of each class (at least one cell of each class
/// stays in training). `fraction` 0 = every cell trains. `group_column` only names the groups in
/// the description. Thinned copies (LabelledFeatures::augmented_from) never validate: the split is
/// made over the reference cells and each copy trains when its cell does. Throws InputError when
/// `fraction` is not in [0, 1).
ValidationSplit split_validation(const LabelledFeatures& data, double fraction, std::uint64_t seed, const std::string& group_column = "");

/// Hyperparameter defaults that depend on the feature route, applied under the values a caller
/// sets: logistic regression on the expression route uses l2 = 1 (the spec's 0.01 suits the
/// 256-d GenePT-w embeddings). Chosen by measurement: train's own held-out validation on five
/// datasets (pbmc3k accuracy 0.875 at l2 0.01, 0.913 at 1; savercat, pancreas and cellbench equal
/// or better) and the cross-dataset means of bench/panels (macro-F1 0.804 -> 0.808, hF 0.957 ->
/// 0.958; l2 3 is lower again), bench/results/panels_experiments.md.
HyperParameters route_hyperparameters(const std::string& classifier, const std::string& features);

/// Step 4: fit `options.classifier` on the training rows of `split`, score the validation rows,
/// refit on every cell (iterative back ends for the epochs or rounds that scored best) and
/// assemble the model with its provenance. Throws InputError when fewer than 2 classes remain or a
/// class has a single cell.
TrainResult fit_model(const TrainingData& data, const ValidationSplit& split, const TrainOptions& options);

/// What `train_model` does after `fit_model`, for a model that is kept (a saved cv fold model too):
/// the warnings said once (a reference's genes are resolved more than once) and kept in the
/// provenance ("training_warnings"), and references named like mouse genes recorded
/// ("reference_gene_names": annotate's species check reads it).
void finish_model(TrainResult& result, const TrainingData& data);

}  // namespace celltyper
