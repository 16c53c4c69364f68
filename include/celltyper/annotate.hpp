/// @file annotate.hpp
/// Training cell-type models on labelled reference datasets (`celltyper train`) and annotating
/// query datasets with them (`celltyper annotate`).
///
/// Training: every reference is turned into features — GenePT-w cell embeddings with the gene
/// store (embed_dataset.hpp), or log1p-CP10k over a panel of the references' most variable genes
/// (expression_features.hpp) — cells with a missing label or empty features are dropped, a validation split is held out (whole
/// groups when a group column is given, else a stratified random share of each class), the
/// classifier is trained on the rest and scored on the held-out cells, then retrained on all cells
/// with the same hyperparameters: the saved model uses every labelled cell, and its validation
/// metrics estimate the accuracy of that procedure.
///
/// Annotation: the query's features are computed with the model's own gene vectors or panel
/// (model_file.hpp), the
/// classifier's probabilities are averaged over models (classes united by name; a class missing
/// from a model gets probability 0 there), and each cell gets the most probable class, or
/// "Unassigned" when that probability is below `min_score` or its embedding is empty.
#pragma once

#include <celltyper/calibration.hpp>
#include <celltyper/classifier.hpp>
#include <celltyper/dataset.hpp>
#include <celltyper/embed_dataset.hpp>
#include <celltyper/expression_features.hpp>
#include <celltyper/gene_store.hpp>
#include <celltyper/gene_table.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/metrics.hpp>
#include <celltyper/model_file.hpp>
#include <celltyper/ontology.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace celltyper {

/// Label given to cells below the score threshold or without any matched gene.
inline constexpr const char* kUnassigned = "Unassigned";

/// The score a CL term must reach in hierarchical prediction when no `min_score` is given.
inline constexpr double kHierarchicalMinScore = 0.5;

/// Options of `train_model`.
/// Group column value meaning "each reference file is a group" (`train --group file`: validation
/// holds out whole references; `cv --group file`: leave-one-file-out).
inline constexpr const char* kGroupByFile = "file";

struct TrainOptions {
  /// Warn when labels get no Cell Ontology id, or ids from the ontology's names that look wrong (two
  /// labels of one term, an odd synonym): cv's folds map labels without the user's label map, and cv
  /// reports its unmapped labels once itself.
  bool warn_unmapped_labels = true;
  std::vector<std::string> references;    ///< .h5ad files with labelled cells
  /// A table of per-cell metadata (read_cell_table) joined to every reference's obs by cell name
  /// (`--obs`: labels kept beside a GEO count table); "" = none.
  std::string cell_table;
  /// Optional per-reference row masks (same order as `references`; an empty mask = every row):
  /// cells with 0 are left out entirely (cross-validation folds).
  std::vector<std::vector<std::uint8_t>> cell_masks;
  /// Optional per-reference matrix ("X", "raw", a layer), same order as `references`; empty =
  /// `embed.matrix` for every reference.
  std::vector<std::string> matrices;
  /// Label replacements applied when reading the label column (e.g. harmonisation to CL labels).
  std::map<std::string, std::string> label_renames;
  std::string label_column;               ///< obs column with the cell types; or several, comma-separated, each reference reading the first it has (label_column_of)
  std::string group_column;               ///< obs column of groups (donor, batch) held out whole, or kGroupByFile; "" = none
  std::string classifier = "logreg";      ///< a ClassifierSpec type
  /// kFeaturesExpression (log1p-CP10k panel; the default: best across datasets in
  /// bench/panels) or kFeaturesGenept (GenePT-w cell embeddings)
  std::string features = kFeaturesExpression;
  int n_genes = 3000;                     ///< expression route: panel size (most variable genes of the references)
  HyperParameters hyperparameters;        ///< overrides of the spec's defaults
  EmbedOptions embed;                     ///< matrix (layer), dims, threads, gene column
  double validation_fraction = 0.2;       ///< share of cells (or groups' cells) held out; 0 = no validation
  /// Calibrate the probabilities: a temperature fitted on the validation cells' probabilities
  /// (calibration.hpp), kept in the model; off, or without validation cells, the model gives the
  /// back end's probabilities.
  bool calibrate = true;
  /// The fit on every cell starts from scratch with the configured epochs (boosting rounds): the
  /// validation split only reports and calibrates (reference mode, so that its model is the one
  /// a refit trains). Off (train): it starts from the validation fit and stops where that scored best.
  bool final_fit_from_scratch = false;
  std::uint64_t seed = 0;                 ///< validation split (and randomised back ends)
  int num_threads = 0;                    ///< 0 = all hardware threads; never changes the model
  std::string label_map;                  ///< label -> CL id table (label_map_to_cell_ontology.tsv); "" = none
  std::string label_map_dataset;          ///< `dataset` rows of the table to prefer ("" = any)
  std::function<void(const std::string&)> log;  ///< progress messages (may be empty)
  /// Per-epoch progress of iterative classifiers (FitOptions::on_epoch) with "phase":
  /// "validation" (the fit scored on held-out cells, early-stopped) or "final" (all cells).
  std::function<void(const nlohmann::json&)> on_epoch;
  DataParallel data_parallel;             ///< `train --distributed`: gradient all-reduce (mlp only)
  /// When not empty: the only genes (Entrez ids, any order) the model may use: GenePT-w
  /// embeddings are built from them alone and the expression panel is chosen among them. Set
  /// to a query's genes so that a model trained on a large panel means the same on a query
  /// with a small one (`train --restrict-genes QUERY.h5ad`).
  std::vector<std::int64_t> restrict_genes;
  /// Labelled reference cells (class-balanced) the model keeps with every gene the references
  /// measured, so that `annotate` can refit it on the genes a query shares (ReferenceSample);
  /// 0 = none.
  std::int64_t reference_sample_cells = 20000;
  /// Pooling references labelled at different depths of the Cell Ontology (`train
  /// --harmonize-labels`): every label is replaced by its CL term's name (through `label_map` and
  /// `ontology`), the classes are the most specific terms present, and a cell labelled with a
  /// coarser term T trains on the summed probability of the classes at or below T
  /// (FitOptions::label_sets; logreg and mlp; xgboost and knn leave such cells out).
  bool harmonize_labels = false;
  /// With `harmonize_labels`: keep every term as a class of its own (flat pooled training).
  bool flat_labels = false;
  /// The Cell Ontology (not owned; may be null): the classes' CL ids for labels that are CL ids,
  /// term names or exact synonyms (after `label_map` and the data's ontology-term-id column, such
  /// as CELLxGENE's cell_type_ontology_term_id), and the terms of `harmonize_labels` (null: the
  /// label map and the data's ids alone, flat).
  const Ontology* ontology = nullptr;
  /// Weight cells so that every reference counts equally in the loss (each reference's cells
  /// sum to n / references), on top of class balancing.
  bool balance_references = false;
  /// The genes are the references' var names as written (letter case aside), not the gene
  /// table's (`own_gene_names_table`): the expression route only. Without it, only references that
  /// the table hardly names (under a tenth of their gene vars: another species' ids) train so.
  bool own_gene_names = false;
  /// Several references whose genes differ (a gene a reference did not measure is not a zero
  /// count): "impute" (the expression route's default) uses every gene of any reference, gives a
  /// reference's cells the mean of the references that measured a gene they lack (a neutral 0
  /// after standardisation, so they neither push nor pull its weights) and sums library sizes over
  /// the shared genes only; "shared" uses only the genes every reference measured (the GenePT-w
  /// route always does); "all" treats unmeasured genes as zeros.
  std::string gene_pooling = "impute";
  /// Depth augmentation (the default; expression route, references holding counts): every
  /// labelled reference cell also trains as a binomially thinned copy of itself, each count kept
  /// with a probability drawn per cell uniformly from [augment_depth_low, augment_depth_high],
  /// weighing `augment_depth_weight` of a reference cell, so the model has seen each type at the
  /// shallower depths and sparser detection of other chemistries and protocols (bench/panels,
  /// bench/pooled). The copies only train: validation scores reference cells, and a copy of a
  /// held-out cell is never trained on (LabelledFeatures::augmented_from).
  bool augment_depth = true;
  double augment_depth_low = 0.1;
  double augment_depth_high = 0.5;
  double augment_depth_weight = 0.3;
  /// At most this many thinned copies per reference (0: a copy of every cell). A larger reference
  /// has a random subset of its cells copied (the same for the same file, cells and seed), each
  /// copy weighing augment_depth_weight x cells / copies: the copies weigh what copies of every
  /// cell would, at a bounded cost (a 100k-cell reference trains on 120k rows, not 200k).
  std::int64_t augment_depth_max_copies = 20000;
  /// Whether the references hold counts (what depth augmentation may thin): -1 = found by scanning
  /// each reference's first cells (train), 0 / 1 = as given (a refit: as the model's training
  /// found, whatever the sample's own cells look like).
  int references_hold_counts = -1;
  /// Expression features are kept in compressed rows (their log1p values are ~90% zeros; pooled
  /// references store the genes imputed for them beside their own), and logistic regression and
  /// the MLP train on the stored values: a million-cell reference's features take ~2 GB instead
  /// of 12. true: the dense n x panel matrix, as the GenePT-w route always is (the same model
  /// either way).
  bool dense_features = false;
  /// Labels that are coarse in every reference, with the classes each may be (label sets given
  /// directly rather than derived from the ontology: the refit of a mixed-granularity model's
  /// reference sample).
  std::map<std::string, std::vector<std::string>> coarse_label_sets;
};

/// Whether `dataset` is a training matrix written by `celltyper extract` (extract.hpp): its cells
/// carry GenePT-w embeddings in obsm, X holds no expression.
bool is_extract_output(const Dataset& dataset);
/// The cell embeddings a `celltyper extract` training matrix carries in obsm ([n_obs x dims] in
/// `values`, empty flags in `empty`; the store's genes its var measured in `used_genes`; what was
/// read in `info`), to use instead of embedding X (which holds no values there). Returns false for
/// any other dataset. Throws InputError when the embeddings were made with another gene store or
/// `requested_dims` (> 0) differs.
bool read_precomputed_embeddings(const Dataset& dataset, const GeneStore& store, int requested_dims, std::vector<float>& values,
                                 std::vector<std::uint8_t>& empty, std::set<std::int64_t>& used_genes, nlohmann::json& info);

/// The Entrez ids of the genes in `path`: the var of an .h5ad (resolved through `table` with
/// `options`, e.g. its gene column), or a text file with one gene id or symbol per line ('#'
/// comments). Throws InputError when nothing resolves.
std::vector<std::int64_t> genes_of(const std::string& path, const GeneTable& table, const GeneResolveOptions& options = {});

/// The Entrez ids of the genes detected (a non-zero value) in `rows` of `matrix` ("X", "raw" or a
/// layer) of `dataset`, var names resolved through `table` with `options`: the genes a group of
/// cells of a pooled file really measured (`cv --restrict-genes held-out`). Streams the matrix
/// within `memory_limit_bytes`.
std::vector<std::int64_t> detected_genes(const Dataset& dataset, const std::string& matrix, const std::vector<std::size_t>& rows,
                                         const GeneTable& table, const GeneResolveOptions& options,
                                         std::size_t memory_limit_bytes = std::size_t{32} << 20);

/// Outcome of `train_model`.
struct TrainResult {
  CellTypeModel model;
  std::int64_t n_cells = 0;               ///< cells used for the final fit
  std::int64_t n_dropped_unlabelled = 0;  ///< cells with a missing label
  std::int64_t n_dropped_empty = 0;       ///< cells with no matched gene expressed
  /// train_for_query: genes of the references (union), and of them the query's.
  std::int64_t n_reference_genes = 0;
  std::int64_t n_shared_genes = 0;
  std::int64_t n_validation = 0;          ///< held-out cells (0 = no validation)
  bool has_validation = false;
  EvaluationResult validation;            ///< metrics on the held-out cells (their probabilities calibrated)
  /// The calibration temperature fitted on the held-out cells (TrainOptions::calibrate; n_cells 0
  /// when none: no validation, too few cells, or calibration off), which the model's classifier applies.
  TemperatureFit calibration;
  std::vector<std::string> warnings;
};

/// Embed the references with `store` (resolving var names with `table`), split, train, validate
/// and retrain. Throws InputError when the label column is missing, fewer than 2 classes remain,
/// a class has a single cell ("drop or merge it"), or no gene overlaps the store.
TrainResult train_model(const TrainOptions& options, const GeneStore& store, const GeneTable& table);

/// `train_model` on datasets already open or held in memory (MemoryDataset), in place of
/// `options.references` (which is ignored); every other option applies.
TrainResult train_model(const std::vector<const Dataset*>& references, const TrainOptions& options, const GeneStore& store,
                        const GeneTable& table);

/// Embed `dataset` with the gene vectors of `model` into row-major [n_obs x dims]; `empty` gets
/// 1 for cells without any matched gene expressed.
std::vector<float> embed_with_model(const Dataset& dataset, const CellTypeModel& model, const GeneTable& table,
                                    const EmbedOptions& options, std::vector<std::uint8_t>* empty = nullptr,
                                    EmbedResult* result = nullptr);

/// The classifier features of `dataset` for `model` (its feature route): row-major
/// [n_obs x model.n_features()]; `empty` gets 1 for cells without usable expression; warnings
/// are appended.
std::vector<float> model_features(const Dataset& dataset, const CellTypeModel& model, const GeneTable& table, const EmbedOptions& options,
                                  std::vector<std::uint8_t>& empty, std::vector<std::string>& warnings);

/// `model_features` one block at a time, in row order: memory is bounded by the block cap, not
/// by the number of cells (what `annotate_dataset` uses).
void stream_model_features(const Dataset& dataset, const CellTypeModel& model, const GeneTable& table, const EmbedOptions& options,
                           const FeatureBlockCallback& callback, std::vector<std::string>& warnings);

/// ExpressionOptions with the matrix, normalisation, threads, memory cap and gene column of `embed`.
ExpressionOptions expression_options(const EmbedOptions& embed);
/// The same for the features of `model`: its query's logs of unknown normalisation as the model
/// read its reference's (ExpressionOptions::log_transformed_as_is).
ExpressionOptions expression_options(const EmbedOptions& embed, const CellTypeModel& model);

/// How much of a model's genes a query measures.
struct ModelCoverage {
  std::int64_t n_model_genes = 0;     ///< genes the model knows: its reference sample's (else its panel / gene rows)
  std::int64_t n_measured = 0;        ///< of them, genes among the query's vars
  /// Share of the references' expression the measured genes carry (mean over the sampled
  /// reference cells of the measured genes' share of each cell's counts); without a reference
  /// sample, the share of the model's genes measured.
  double mass = 1;
  std::vector<double> class_mass;     ///< the same per class (model.class_names order); empty without a sample
  std::int64_t n_features_genes = 0;  ///< genes behind the classifier's features (panel, or gene rows)
  std::int64_t n_features_measured = 0;
  [[nodiscard]] double feature_share() const {
    return n_features_genes == 0 ? 1.0 : static_cast<double>(n_features_measured) / static_cast<double>(n_features_genes);
  }
};

/// Coverage of `model` by a query measuring `query_genes` (Entrez ids, ascending).
ModelCoverage model_coverage(const CellTypeModel& model, const std::vector<std::int64_t>& query_genes);

/// When a query is a panel padded with zeros (annotate_dataset, cv's held-out groups): of the
/// genes that every reference class (two at least, of kPaddingMinClassCells cells each) detects
/// in kPaddingMinRate of its cells, at least kPaddingMinAbsent and kPaddingMinShare of those the
/// query's vars name have no count in kPaddingMinCells or more query cells with counts, while
/// the ones it detects are detected, in the median, in kPaddingMinQueryRate of its cells (a
/// shallow query misses genes by depth, not by panel).
inline constexpr std::size_t kPaddingMinAbsent = 3;
inline constexpr double kPaddingMinShare = 0.05;
inline constexpr double kPaddingMinQueryRate = 0.25;
inline constexpr double kPaddingMinRate = 0.5;
inline constexpr std::int64_t kPaddingMinClassCells = 10;
inline constexpr std::int64_t kPaddingMinCells = 40;

/// Genes (Entrez ids, ascending) of `model`'s reference sample that every class with at least
/// `min_cells` sampled cells detects (a non-zero value) in at least `min_rate` of its cells:
/// genes no query of these types lacks, by which var columns of zeros betray a panel padded
/// with zeros. Empty without a reference sample.
std::vector<std::int64_t> ubiquitous_genes(const CellTypeModel& model, double min_rate = kPaddingMinRate,
                                           std::int64_t min_cells = kPaddingMinClassCells);
/// The padding verdict of annotate_dataset and cv for one query (or held-out group): `absent`
/// ubiquitous genes its vars name have no count in its cells, and `detected_rates` holds, per
/// ubiquitous gene it detects, the share of its cells (with counts) detecting it. True when
/// absent >= kPaddingMinAbsent and >= kPaddingMinShare of them all, and the median rate is at
/// least kPaddingMinQueryRate. (Reorders `detected_rates`.)
bool looks_padded(std::size_t absent, std::vector<double>& detected_rates);

/// ubiquitous_genes as training recorded them (provenance "ubiquitous_genes"; no sample read),
/// else computed from the sample (older models).
std::vector<std::int64_t> model_ubiquitous_genes(const CellTypeModel& model);

/// Whether `model` learnt its references' values as they were (normalisation "none" for each:
/// logs of unknown normalisation before session 54, or --normalize none): a query's logs of
/// unknown normalisation are then used as they are too (ExpressionOptions::log_transformed_as_is).
bool learnt_values_as_they_were(const CellTypeModel& model);
/// Whether `model` learnt logs of unknown normalisation as they were (see above, before session 54).
bool learnt_unknown_logs(const CellTypeModel& model);
/// Warn (once) when `model` learnt logs of unknown normalisation as they were and the query's
/// features `computed` were normalised: they differ in scale.
void warn_if_scales_differ(const Dataset& dataset, const CellTypeModel& model, const ExpressionFeatures& computed,
                           const EmbedOptions& options, std::vector<std::string>& warnings);

/// Whether `model` can be refitted for a query (an expression or GenePT-w model with a reference
/// sample).
bool can_refit(const CellTypeModel& model);

/// Refit `model` on `genes` (Entrez ids): the same classifier, hyperparameters and panel size,
/// trained on the model's reference sample with the features a query measuring exactly these
/// genes can have (panel chosen among them, or cells embedded from their vectors alone; library
/// sizes summed over them): what training on the references with `--restrict-genes` gives,
/// without the reference files. Throws
/// InputError when the model has no reference sample or no gene of `genes` is in it.
///
/// Depth matching: `query_depth` (the median counts of the query's cells over the genes it shares
/// with the sample; 0 = unknown) far below the sample cells' own over those genes (a ratio r
/// under kDepthMatchRatio: an imaging panel's 150 transcripts against a scRNA-seq reference's
/// 1,000) trains the refit on the sample's cells binomially thinned to the query's depth (each
/// cell keeping a share drawn from [r/2, min(1, 2r)]; then depth-augmented as in training), so the
/// model learns the types as the query sees them. Expression models and counts only (a sample of
/// log values is used as it is); the ratio is recorded in the refitted model's provenance (refit.depth_ratio).
CellTypeModel refit_model(const CellTypeModel& model, const std::vector<std::int64_t>& genes, int num_threads,
                          const std::function<void(const std::string&)>& log = {}, double query_depth = 0);

/// The median counts of the sample's cells over `genes` (Entrez ids, ascending; the sample's own
/// genes among them): the reference depth refit_model matches a query's to. 0 for a sample of
/// log values (or none). Reads a loaded model's sample values (cell_values()).
double reference_sample_depth(const ReferenceSample& sample, const std::vector<std::int64_t>& genes);

/// Below this ratio of the query's median counts to the reference sample's (over the genes they
/// share), a refit trains on reference cells thinned to the query's depth (refit_model).
/// bench/annotate/spatial_depth.py (pbmc3k halves, a 413-gene panel, the query thinned to
/// medians of 60-500 transcripts: ratios 0.06-0.50): accuracy 0.683 / 0.755 / 0.827 / 0.876 ->
/// 0.784 / 0.838 / 0.886 / 0.896; the full panel (ratio 1) is not matched: reference cells thinned
/// to U[0.5, 1] cost 0.03 there (session 41's trial), hence the floor.
inline constexpr double kDepthMatchRatio = 0.5;

/// The same for a query that measures (nearly) all the reference's genes (model mode: no refit for
/// its genes; reference mode: the shared genes hold at least AnnotateOptions::refit_below of the
/// reference's counts), where the model's own depth augmentation already covers moderate depths.
/// pbmc3k odd cells with every gene, thinned to a share of their counts under an even-cell model
/// (3 seeds; accuracy / macro-F1 without -> with matching): 3% 0.438 / 0.276 -> 0.593 / 0.555, 15%
/// 0.701 / 0.701 -> 0.744 / 0.766, 25% 0.766 / 0.789 -> 0.800 / 0.825, 35% 0.812 / 0.848 -> 0.819 /
/// 0.858, 45% 0.844 / 0.878 -> 0.838 / 0.861 (session 53): matched below 0.4.
inline constexpr double kDepthMatchRatioAllGenes = 0.4;

/// The share of its molecules a reference cell keeps in depth matching, drawn per cell from
/// [low, high]: around the ratio r of the query's depth to the reference's (`reference_depth`, its
/// median counts over the shared genes), [r/2, min(1, 2r)], but never below what keeps a median
/// cell 10 counts (a query of a handful of counts per cell would empty the reference).
inline std::pair<double, double> depth_match_range(double ratio, double reference_depth) {
  const double floor = reference_depth > 0 ? std::min(1.0, 10.0 / reference_depth) : 1.0;
  const double low = std::max(ratio / 2, floor);
  return {low, std::max(low, std::min(1.0, 2 * ratio))};
}

/// The Entrez ids (ascending, unique) of the genes `resolved` reads.
std::vector<std::int64_t> resolved_gene_ids(const GeneResolveResult& resolved, const GeneTable& table);

/// The Entrez ids (ascending, unique) of the vars of `matrix` ("X", "raw", a layer) of `dataset`
/// that resolve through `table`.
std::vector<std::int64_t> dataset_genes(const Dataset& dataset, const std::string& matrix, const GeneTable& table,
                                        const GeneResolveOptions& options);

/// Reference mode: train on `references` restricted to the genes `query` measures (the vars of
/// `query_embed.matrix` resolved through `table` with `query_embed.genes`), as SingleR and Seurat
/// label transfer do. Every labelled cell trains the model; `options.validation_fraction` of them
/// held out first only calibrate its scores (none with `options.calibrate` off), so the model is the
/// one a refit of a saved model on these genes trains (`final_fit_from_scratch`); the other options
/// apply as given. Throws InputError when none of the query's genes resolves,
/// or when the query shares fewer than `min_shared_genes` of the references' genes (all of them
/// when they have fewer; annotate's --min-coverage gene floor, 0 with --allow-low-coverage).
TrainResult train_for_query(const std::vector<const Dataset*>& references, const Dataset& query, TrainOptions options,
                            const GeneStore& store, const GeneTable& table, const EmbedOptions& query_embed,
                            std::int64_t min_shared_genes = 20);

/// A gene table of the genes `models` know (their reference samples', else their features'), for
/// resolving a query's var names when no full gene table is available.
GeneTable models_gene_table(const std::vector<const CellTypeModel*>& models);

/// What annotating without --gene-table resolves a query's var names with, for models that
/// recorded the gene table they were trained with (provenance "gene_table", an absolute path, and
/// "gene_table_hash").
struct RecordedGeneTable {
  std::optional<GeneTable> table;  ///< the table to use instead of the default; nullopt: the default serves
  std::string message;             ///< what was chosen and why ("" when the models record nothing to say)
  bool warning = false;            ///< `message` is a warning (else a note: "note: ...")
};

/// The gene table `models` were trained with, when every model names the same one, it is not the
/// default (default_gene_table_path(); nor is CELLTYPER_GENE_TABLE set), and the file is here with
/// the content the models recorded (e.g. a mouse table given to train with --gene-table): loaded,
/// with a note. When that table is no longer here (another machine), unreadable, or another file
/// now (its content changed): the default table (`standard()`, which may give nullptr when none is
/// installed) serves only when it gives at least 90% of the models' genes (their symbols) the ids
/// the models were trained with; else the models' own genes (models_gene_table: their symbols and
/// Ensembl ids) resolve the query, since the default's ids would match other genes. Either way a
/// warning names the missing table (comparing by symbol, else by Ensembl id). A recorded
/// org.Hs.eg.sqlite is the default table of the machine the model was trained on: nullopt, no
/// message, as for every other model. `requested`, a table the user gave (--gene-table): it
/// serves (nullopt, no message), but for models trained on their references' own var names,
/// whose note then says it is not used.
RecordedGeneTable models_recorded_gene_table(const std::vector<const CellTypeModel*>& models,
                                             const std::function<const GeneTable*()>& standard, const std::string& requested = {});

/// Options of `annotate_dataset`.
struct AnnotateOptions {
  EmbedOptions embed;                   ///< matrix (layer), threads, gene column (dims come from the model)
  /// Below this probability a cell is "Unassigned". 0 (the default, as CellTypist's "best
  /// match", SingleR's labels and Seurat's predicted.id): every cell gets its most probable class,
  /// and `celltyper_score` says how sure that is. Hierarchical prediction needs a threshold:
  /// `kHierarchicalMinScore` when this is 0.
  double min_score = 0.0;
  int top_k = 0;                        ///< also report the k best labels and scores (0 = none)
  std::string over_clustering;          ///< obs column of clusters for a majority vote ("" = none)
  /// Ontology-aware prediction (needs `ontology` and classes with CL ids): the probability of a
  /// CL term is the summed probability of the classes at or below it; each cell gets the most
  /// specific term whose probability reaches `min_score` (one with no qualifying descendant; among
  /// several, the most probable; at equal probability the narrower term, of fewer descendants), so an uncertain cell
  /// gets "T cell" instead of a wrong subtype. Classes without a CL id only count for themselves.
  bool hierarchical = false;
  /// Cells that resemble none of the reference's types (Annotation::unlike_reference) are
  /// "Unassigned", as SingleR's pruned labels: their flat and hierarchical labels, before the
  /// majority vote (a cluster of them votes Unassigned). Their score, probabilities, top-k and
  /// similarity columns stay. Off by default (up to 2.3% of the cells of a query of the reference's
  /// own types are flagged, bench/novelty); a cell too shallow to judge keeps its label; needs
  /// models with reference profiles (else a warning).
  bool unassign_unlike = false;
  /// Not owned. --hierarchical's terms; and when given, every CL id of the labels gets its name
  /// (Annotation::cl_names, obs celltyper_ontology_name, as CELLxGENE's cell_type beside its id).
  const Ontology* ontology = nullptr;
  /// Refit a model that carries a reference sample on the genes the query shares
  /// with it when the query measures less than `refit_below` of the model's feature genes or of
  /// its reference expression (ModelCoverage): the classifier then sees only genes the query has.
  bool refit = true;
  double refit_below = 0.95;
  /// Refuse (InputError) a query that measures fewer than `min_coverage_genes` of a model's genes
  /// (all of them when the model knows fewer) or less than `min_coverage_mass` of its reference
  /// expression, unless `allow_low_coverage`.
  std::int64_t min_coverage_genes = 20;
  double min_coverage_mass = 0.02;
  bool allow_low_coverage = false;
  /// A warning is added when a model's coverage (mass or feature genes) is below this.
  double warn_coverage_below = 0.5;
  /// Samples of a file joined from several, some padded with zeros on genes they never measured
  /// (anndata.concat(join="outer") of a whole transcriptome and a targeted panel, a CELLxGENE
  /// Census query over datasets): "" (default) tells them by any categorical (or text) obs column
  /// of 2..64 levels, "obs:COLUMN" by that column, "none" reads the file as one panel. A padded sample's
  /// cells are annotated on the genes it measured (the models refitted on them). A column named
  /// here also gets a summary per sample (Annotation::samples) and the per-sample warnings.
  std::string group;
  std::function<void(const std::string&)> log;  ///< progress messages (may be empty)
  /// Called as the query's cells are predicted: cells done (each model's pass counting its share),
  /// of the query's cells (may be empty).
  std::function<void(std::int64_t done, std::int64_t total)> progress;
};

/// What annotation did with one model.
struct ModelUse {
  ModelCoverage coverage;
  bool refitted = false;
  std::int64_t refit_genes = 0;        ///< genes the refitted model may use
  std::int64_t refit_panel = 0;        ///< its classifier's features
  double refit_seconds = 0;
  double temperature = 1.0;            ///< the score calibration its probabilities carry (1: none)
  bool calibrated = false;             ///< whether training fitted that temperature
  std::string uncalibrated_reason;     ///< why not, when not ("trained before calibration", ...)
};

/// A ModelUse as JSON (`annotate --json`'s `models[]`, the Python result's `models`): coverage
/// (n_model_genes, n_measured, mass_coverage, n_feature_genes, n_feature_genes_measured), the
/// refit (refitted, refit_genes, refit_features, refit_seconds) and the calibration (temperature,
/// calibrated).
nlohmann::json to_json(const ModelUse& use);

/// A sample of the query padded with zeros (AnnotateOptions::group), annotated on its own genes.
struct PanelGroupUse {
  std::string column;               ///< obs column that tells the samples
  std::string level;                ///< the sample's value in it
  std::int64_t n_cells = 0;
  std::int64_t n_padded_genes = 0;  ///< the query's genes none of its cells counts
  std::vector<ModelUse> models;     ///< per model, as used on its genes (empty: too few genes, cells Unassigned)
};

/// A PanelGroupUse as JSON (`annotate --json`'s `panel_groups[]`).
nlohmann::json to_json(const PanelGroupUse& group);


/// One sample of the query (AnnotateOptions::group names the column): its labels and how sure they are.
struct SampleSummary {
  std::string column;  ///< obs column that tells the samples
  std::string level;   ///< the sample's value in it ("" for cells without one)
  std::int64_t n_cells = 0;
  std::vector<std::pair<std::string, std::int64_t>> label_counts;  ///< most frequent first
  float median_score = 0;
  std::int64_t n_low_score = 0;          ///< cells below kLowScore
  std::int64_t n_similarity_judged = 0;  ///< (with type profiles)
  std::int64_t n_unlike_reference = 0;
  std::int64_t n_low_genes = -1;         ///< cells under 200 detected genes (-1: not counted, as for the whole file)
  std::int64_t n_low_transcripts = -1;   ///< an imaging panel's cells holding 1-9 of its transcripts (-1: not counted)
};

/// A SampleSummary as JSON (`annotate --json`'s `samples[]`, the Python result's `samples`).
nlohmann::json to_json(const SampleSummary& sample);

/// Per-cell annotation of one dataset.
struct Annotation {
  std::vector<std::string> obs_names;
  std::vector<std::string> class_names;    ///< columns of `probabilities` (union over models)
  std::vector<std::string> class_cl_ids;   ///< per class, "" when unknown
  std::vector<float> probabilities;        ///< [n_obs x classes] row-major, mean over models
  std::vector<std::string> labels;         ///< best class or kUnassigned
  std::vector<float> scores;               ///< probability of the best class
  std::vector<std::string> cl_ids;         ///< CL id of `labels`, "" when unknown
  /// The Cell Ontology's name of `cl_ids` ("" when unknown; an obsolete id's replacement's name),
  /// when `has_cl_names`: AnnotateOptions::ontology given and some class has a CL id.
  std::vector<std::string> cl_names;
  bool has_cl_names = false;
  std::vector<std::vector<std::string>> top_labels;  ///< [k][cell]
  std::vector<std::vector<float>> top_scores;        ///< [k][cell]
  std::vector<std::string> majority_vote;  ///< per cell: most common label in its cluster (ties: first class)
  std::vector<std::string> flat_labels;    ///< with hierarchical prediction: the flat best class per cell (else empty)
  /// Per cell: the share of its predicted types' reference expression (class profiles weighted
  /// by the cell's probabilities, mean over models) that the query measures.
  std::vector<float> gene_coverage;
  /// Per cell (when a model carries type profiles, reference_similarity.hpp; else empty): the
  /// Spearman correlation with its best-matching reference type (the highest over models), and
  /// 1 when every model that could judge it found it below what that type's own cells reach at
  /// its depth: a cell that resembles none of the reference's types (0 also for cells too
  /// shallow to judge); `similarity_judged` 1 when some model could judge it (it detects as many
  /// of the compared genes as its best type's cells do at 1,000 counts).
  std::vector<float> similarity;
  std::vector<std::uint8_t> unlike_reference;
  std::vector<std::uint8_t> similarity_judged;
  std::int64_t n_similarity_judged = 0;    ///< cells deep enough to judge
  std::int64_t n_unlike_reference = 0;     ///< of them, cells unlike every reference type
  std::int64_t n_unassigned_unlike = 0;    ///< of those, cells AnnotateOptions::unassign_unlike left Unassigned
  /// Which optional per-cell columns the annotation has (`majority_vote`, `flat_labels`,
  /// `similarity` with `unlike_reference`): told apart from a query of zero cells, whose columns
  /// are all empty yet written, so that the outputs of a scattered query's shards join.
  bool has_majority_vote = false;
  bool has_flat_labels = false;
  bool has_similarity = false;
  std::vector<ModelUse> models;            ///< per model, in the order given
  std::vector<PanelGroupUse> panel_groups; ///< samples annotated on their own genes (AnnotateOptions::group)
  std::vector<SampleSummary> samples;      ///< per sample, when AnnotateOptions::group names a column
  std::vector<std::string> warnings;
};

/// Annotate every cell of `dataset` with the mean probabilities of `models`. `table` resolves var
/// names (pass the models' own `genes.gene_table()` when no full table is available).
Annotation annotate_dataset(const Dataset& dataset, const std::vector<const CellTypeModel*>& models, const GeneTable& table,
                            const AnnotateOptions& options);

/// Ontology-aware labels from class probabilities [n x classes] (see AnnotateOptions::hierarchical):
/// per cell the most specific CL term whose summed probability reaches `min_score`, shown with the name
/// of a class whose own term it is when that class's probability alone reaches `min_score` (the
/// likeliest such class), else with the ontology label (a term reached by summing: "lymphocyte",
/// not "T/NK cells" for B cells); kUnassigned when none (or when `skip[cell]` is set). Throws
/// InputError when no class has a CL id of `ontology`.
struct HierarchicalPrediction {
  std::vector<std::string> labels;
  std::vector<std::string> cl_ids;  ///< "" for kUnassigned or classes without an id
  std::vector<float> scores;        ///< summed probability of the chosen term (kUnassigned: the largest of any term, below the threshold)
};
HierarchicalPrediction predict_hierarchical(const std::vector<float>& probabilities, const std::vector<std::string>& class_names,
                                            const std::vector<std::string>& class_cl_ids, const Ontology& ontology, double min_score,
                                            const std::vector<std::uint8_t>& skip = {});

/// obs columns (annotation_obs_columns: celltyper_label, celltyper_score, celltyper_ontology_id,
/// celltyper_top{k}_label / _score, celltyper_majority_vote, celltyper_flat_label,
/// celltyper_gene_coverage, celltyper_similarity, celltyper_unlike_reference,
/// celltyper_similarity_judged, each when present), obsm celltyper_probabilities and uns
/// celltyper_probability_classes (JSON list of column names) for write_h5ad_with_additions; an
/// earlier annotation's obs columns (is_annotation_column) are dropped.
H5adAdditions annotation_additions(const Annotation& annotation);
/// Whether an obs column is one an annotation writes (celltyper_label, celltyper_top2_score, ...;
/// not any name starting "celltyper_"): an earlier annotation's, dropped when annotating again.
bool is_annotation_column(std::string_view name);
/// The celltyper_* obs columns of `annotation_additions` alone (also the columns of `--csv`).
std::vector<Column> annotation_obs_columns(const Annotation& annotation);

/// Predicted label -> number of cells, most common first (ties by name).
std::vector<std::pair<std::string, std::int64_t>> label_counts(const Annotation& annotation);

/// A score below which a call is uncertain (the best class has less than half the probability).
inline constexpr double kLowScore = 0.5;

/// How sure the calls are: the median of Annotation::scores and the cells scoring below kLowScore.
struct ScoreSummary {
  double median = 0.0;
  std::int64_t n_low = 0;
};
ScoreSummary summarize_scores(const std::vector<float>& scores);

/// What an annotate run did, as JSON: the celltyper version, the label counts, score and
/// resemblance summary, every warning (`more_warnings`, a front end's own, first), each model's use
/// (to_json(ModelUse), its name in `model_names`, its file's stamp, classifier, features, label
/// column and references), panel groups, samples and the options that change labels. The
/// annotated .h5ad's uns['celltyper_annotation'] (JSON text, as embed's uns['celltyper_embedding'];
/// without `timings`, the refits' seconds, so that the same command writes the same bytes), so that
/// a run can be audited from its output; `annotate --json` prints it with them.
nlohmann::json annotation_record(const Annotation& annotation, const std::vector<const CellTypeModel*>& models,
                                 const std::vector<std::string>& model_names, const AnnotateOptions& options,
                                 const std::vector<std::string>& more_warnings = {}, bool timings = true);

}  // namespace celltyper
