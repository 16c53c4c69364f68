/// @file extract.hpp
/// `celltyper extract`: embed only the fragments (row ranges) listed in a selection.json
/// (selection.hpp) and write one training matrix, an h5ad that `celltyper train --reference`
/// takes directly:
///
///   obsm/X_celltyper   [n_cells x dims] float32 cell embeddings (GenePT-w, embed_dataset.hpp)
///   obs/<label>        categorical labels ("" = unlabelled, as missing)
///   obs/source_file    categorical path of the source file; obs/source_row int64 row in it;
///   obs/source_obs_name, obs/celltyper_embedding_empty
///   var                the genes that contributed to some embedding (index = Entrez id,
///                      columns entrez_id, symbol): the gene rows a trained model keeps
///   X                  empty (n_cells x n_genes, no stored values): the expression stays in the sources
///   uns/celltyper_embedding  provenance of the embedding (gene store identity, dims, ...)
///   uns/celltyper_extract    the selection, options and per-file embedding settings
///
/// Cells appear in selection order (fragment by fragment), so the output does not depend on how
/// the fragments were shared between processes (communicator.hpp).
#pragma once

#include <celltyper/embed_dataset.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace celltyper {

/// One fragment of a selection.
struct FragmentRef {
  std::string path;
  std::int64_t row_start = 0;
  std::int64_t row_end = 0;
};

/// A parsed selection.json.
struct SelectionFile {
  std::string path;                    ///< where it was read from
  std::string label_column;
  std::vector<FragmentRef> fragments;  ///< in file order
  nlohmann::json document;             ///< the whole file
};

/// Read and validate selection.json (format "celltyper-selection"); InputError names the file
/// and the field.
SelectionFile read_selection(const std::string& path);

/// Options of `extract_fragments`.
struct ExtractOptions {
  std::string label_column;            ///< obs column of the labels (default: the selection's)
  EmbedOptions embed;                  ///< matrix, normalisation, dims, threads, memory cap (rows is set per file)
  std::string key = "X_celltyper";     ///< obsm key of the output
  /// A file that cannot be read (missing, corrupt, without the label column, fewer rows than
  /// selected) is left out with a warning and recorded in `ExtractedCells::skipped` (and the
  /// output's uns), instead of stopping the run (`extract --skip-unreadable`).
  bool skip_unreadable = false;
  /// Called as the share's selected cells are embedded: cells done, cells of the share.
  std::function<void(std::int64_t done, std::int64_t total)> progress;
  /// obs columns copied to the training matrix beside the labels (as text categories; a cell of a
  /// file without the column, or with a missing value, has none). kKeepObsAuto stands for the
  /// columns train and cv read when a file has them: the label's Cell Ontology ids
  /// (`<label>_ontology_term_id`, CELLxGENE's cell_type_ontology_term_id), `donor_id` and `assay`
  /// (for `cv --group obs:donor_id`); a named column no selected file has is warned about.
  static constexpr std::string_view kKeepObsAuto = "auto";
  std::vector<std::string> keep_obs{std::string(kKeepObsAuto)};
};

/// Embedded cells of some fragments, in fragment order (one process's share, or all of them).
struct ExtractedCells {
  int dims = 0;
  std::vector<float> values;                 ///< [n x dims] row-major
  std::vector<std::uint8_t> empty;           ///< 1 = zero vector (no expressed gene with a vector)
  std::vector<std::string> labels;           ///< "" = unlabelled
  std::vector<std::string> files;            ///< source path per cell
  std::vector<std::int64_t> rows;            ///< row in the source file
  std::vector<std::string> obs_names;        ///< obs name in the source file
  /// Per kept obs column (ExtractOptions::keep_obs, "auto" expanded), a value per cell ("" = none).
  std::map<std::string, std::vector<std::string>> kept_obs;
  std::vector<std::int64_t> genes;           ///< Entrez ids of genes with a vector in some source, sorted
  nlohmann::json file_info = nlohmann::json::object();  ///< per path: matrix, normalisation, gene column...
  std::vector<std::string> warnings;
  /// Files left out under ExtractOptions::skip_unreadable, in selection order: {"path", "error",
  /// "n_cells" (the fragments' rows), "counts" (label -> selected cells, from the selection)}.
  nlohmann::json skipped = nlohmann::json::array();
  double seconds = 0;                        ///< embedding time of this share
  [[nodiscard]] std::int64_t n_cells() const { return static_cast<std::int64_t>(labels.size()); }
  /// Append `other` (the next share in order).
  void append(ExtractedCells&& other);
  /// Bytes for sending to another process, and back.
  [[nodiscard]] std::string serialize() const;
  static ExtractedCells deserialize(const std::string& bytes);
};

/// What the extracted files lacked of the obs columns ExtractOptions::keep_obs names (not "auto"):
/// a warning per column, naming the files without it (or saying that none has it).
std::vector<std::string> kept_obs_warnings(const ExtractedCells& cells);

/// The local files of `selection` that do not exist, in selection order (a cheap check made
/// before any cell is embedded: a catalogue or selection older than the files).
std::vector<std::string> missing_selection_files(const SelectionFile& selection);

/// Embed fragments [first, last) of `selection`: each file is opened once for its consecutive
/// fragments, its label column read from obs and only the fragments' rows of its matrix read.
/// A file that cannot be read throws (InputError or IoError naming it, and --skip-unreadable),
/// or is left out under `options.skip_unreadable`.
ExtractedCells extract_fragments(const SelectionFile& selection, std::size_t first, std::size_t last, const GeneTable& table,
                                 const GeneVectorSource& source, const ExtractOptions& options);

/// Write the training matrix (see the file comment) through a temporary file renamed into place.
void write_training_h5ad(const std::string& output, const SelectionFile& selection, const ExtractedCells& cells,
                         const GeneTable& table, const GeneVectorSource& source, const ExtractOptions& options);

/// uns key that marks a training matrix written by `write_training_h5ad`.
inline constexpr const char* kExtractUnsKey = "celltyper_extract";

}  // namespace celltyper
