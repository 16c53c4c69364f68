#include <celltyper/error.hpp>
#include <celltyper/loom.hpp>
#include <celltyper/tenx.hpp>

#include "io/hdf5_open.hpp"
#include "io/hdf5_util.hpp"
#include "io/matrix_readers.hpp"
#include "io/utf8.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <span>
#include <unordered_set>

namespace celltyper {

using h5::Handle;

namespace {

/// Row attributes that name genes, in order of preference: symbols first (what the gene table
/// resolves best and scanpy shows), then ids.
/// (anndata's write_loom names the attribute after var's index: var_names, or the index's name.)
constexpr const char* kGeneNameAttributes[] = {"Gene",        "gene_name",   "gene_names", "GeneName",     "Gene_Name",       "gene_symbols",
                                               "gene_symbol", "Symbol",      "symbol",     "feature_name", "gene_short_name", "gene",
                                               "genes",       "var_names",   "features",   "Accession",    "gene_ids",        "ensembl_ids",
                                               "gene_id",     "ensembl_id",  "feature_id"};
/// Column attributes that name cells.
constexpr const char* kCellNameAttributes[] = {"CellID",   "obs_names", "cell_names", "CellId",       "cell_id", "cell_ids",
                                               "barcode",  "barcodes",  "Barcode",    "cell_barcode", "cell",    "cells"};

/// Decode XML numeric character references ("&#947;", "&#x3b3;"), which loompy 2 wrote for
/// every non-ASCII character ('xmlcharrefreplace'); anything else is kept as it is.
std::string decode_character_references(const std::string& text) {
  if (text.find("&#") == std::string::npos) return text;
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t semicolon = text.compare(i, 2, "&#") == 0 ? text.find(';', i + 2) : std::string::npos;
    if (semicolon != std::string::npos && semicolon - i <= 10) {
      const bool hex = text[i + 2] == 'x' || text[i + 2] == 'X';
      const std::string digits = text.substr(i + (hex ? 3 : 2), semicolon - i - (hex ? 3 : 2));
      char* end = nullptr;
      const unsigned long value = digits.empty() ? 0 : std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
      if (!digits.empty() && end == digits.c_str() + digits.size() && value > 0 && value <= 0x10FFFF) {
        detail::append_utf8(out, static_cast<std::uint32_t>(value));
        i = semicolon + 1;
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

/// The 1-D attributes of `group` (row_attrs / col_attrs) of length `length`, in the file's order.
/// Multi-dimensional attributes (embeddings) and unsupported types are left out; an attribute of
/// another length is an error naming it.
std::vector<Column> read_attributes(hid_t file, const std::string& group, std::int64_t length, const char* side,
                                    const std::string& path) {
  std::vector<Column> columns;
  if (h5::object_type(file, group) != H5O_TYPE_GROUP) return columns;
  const Handle attributes = h5::open_group(file, group, path);
  for (const std::string& name : h5::list_members(attributes.get())) {
    if (h5::object_type(attributes.get(), name) != H5O_TYPE_DATASET) continue;
    const Handle dataset = h5::open_dataset(attributes.get(), name, path);
    const std::vector<std::int64_t> shape = h5::dataset_shape(dataset.get());
    if (shape.size() != 1) continue;
    if (shape[0] != length) {
      throw InputError(fmt::format("{}: /{}/{} has {} values but the matrix has {} {}", path, group, name, shape[0], length, side));
    }
    try {
      Column column = h5::read_array_column(dataset.get(), name);
      for (std::string& value : column.strings) value = decode_character_references(value);
      columns.push_back(std::move(column));
    } catch (const UnsupportedError&) {
      // e.g. a compound attribute: not a column celltyper can use
    }
  }
  return columns;
}

/// Move the first column named in `names` holding text out of `columns` (nullopt when none).
std::optional<Column> take_name_column(std::vector<Column>& columns, std::span<const char* const> names) {
  for (const char* name : names) {
    const auto found = std::find_if(columns.begin(), columns.end(), [&](const Column& column) {
      return column.name == name && column.kind == ColumnKind::kString;
    });
    if (found == columns.end()) continue;
    Column column = std::move(*found);
    columns.erase(found);
    return column;
  }
  return std::nullopt;
}

/// The one text attribute of `columns` whose values are all different (an index written under a
/// name of its own, as anndata's write_loom writes var's index named "ensembl" or "hgnc"), taken
/// out; none when no text attribute or several qualify.
std::optional<Column> take_unique_text_column(std::vector<Column>& columns) {
  auto found = columns.end();
  for (auto it = columns.begin(); it != columns.end(); ++it) {
    if (it->kind != ColumnKind::kString) continue;
    std::unordered_set<std::string_view> seen(it->strings.begin(), it->strings.end());
    if (seen.size() != it->strings.size()) continue;
    if (found != columns.end()) return std::nullopt;  // (two candidates: no guess)
    found = it;
  }
  if (found == columns.end()) return std::nullopt;
  Column column = std::move(*found);
  columns.erase(found);
  return column;
}

class LoomDataset final : public Dataset {
 public:
  explicit LoomDataset(const std::string& path) : path_(path) {
    require_readable(path, "loom file");
    {
      auto lock = h5::hdf5_lock();
      h5::silence_hdf5_errors();
      if (H5Fis_hdf5(path.c_str()) <= 0) throw InputError(fmt::format("{}: not an HDF5 file", path));
    }
    h5::OpenFile opened = h5::open_file_readonly(path);
    auto lock = h5::hdf5_lock();
    file_ = std::move(opened.file);
    if (!file_) h5::throw_open_failure(path, path);
    if (h5::object_type(file_.get(), "matrix") != H5O_TYPE_DATASET) throw InputError(fmt::format("{}: a loom file needs a /matrix dataset", path));
    const MatrixInfo main = describe("matrix", "X");
    n_genes_ = main.n_cols;
    n_cells_ = main.n_rows;
    sources_.emplace("X", std::pair{std::string("matrix"), main});
    order_.emplace_back("X");
    if (h5::object_type(file_.get(), "layers") == H5O_TYPE_GROUP) {
      const Handle layers = h5::open_group(file_.get(), "layers", path);
      for (const std::string& name : h5::list_members(layers.get())) {
        if (h5::object_type(layers.get(), name) != H5O_TYPE_DATASET) continue;
        const std::string stored = "layers/" + name;
        const MatrixInfo info = describe(stored, stored);
        if (info.n_rows != n_cells_ || info.n_cols != n_genes_) {
          throw InputError(fmt::format("{}: /{} is {} x {} (genes x cells) but /matrix is {} x {}", path, stored, info.n_cols, info.n_rows,
                                       n_genes_, n_cells_));
        }
        sources_.emplace(stored, std::pair{stored, info});
        order_.push_back(stored);
      }
    }
    // var: the row attributes, indexed by gene names.
    std::vector<Column> genes = read_attributes(file_.get(), "row_attrs", n_genes_, "genes (rows)", path);
    std::optional<Column> gene_names = take_name_column(genes, kGeneNameAttributes);
    if (!gene_names) gene_names = take_unique_text_column(genes);
    if (!gene_names) {
      std::vector<std::string> names;
      for (const Column& column : genes) names.push_back(column.name);
      throw InputError(fmt::format("{}: no gene names: /row_attrs holds {} but none of Gene, gene_name, var_names, Accession, gene_ids ...", path,
                                   names.empty() ? std::string("no 1-D attribute") : fmt::format("{}", fmt::join(names, ", "))));
    }
    var_.index_name = gene_names->name;
    var_.index = make_unique_names(gene_names->strings);
    var_.columns = std::move(genes);
    var_.origin = path + ":/row_attrs";
    // obs: the column attributes (text as categories), indexed by cell names.
    std::vector<Column> cells = read_attributes(file_.get(), "col_attrs", n_cells_, "cells (columns)", path);
    std::optional<Column> cell_names = take_name_column(cells, kCellNameAttributes);
    if (cell_names) {
      obs_.index_name = cell_names->name;
      obs_.index = std::move(cell_names->strings);
    } else {
      // Row numbers (of a sane count: a shape claimed by a damaged file must not make us make up
      // billions of names).
      constexpr std::int64_t kMaxGeneratedIndex = 10'000'000;
      if (n_cells_ > kMaxGeneratedIndex) {
        throw InputError(fmt::format("{}: /col_attrs names no cell (CellID, obs_names, ...), and names for {} cells will not be made up", path,
                                     n_cells_));
      }
      for (std::int64_t i = 0; i < n_cells_; ++i) obs_.index.push_back(std::to_string(i));
    }
    for (Column& column : cells) {
      if (column.kind == ColumnKind::kString) column = Column::categorical(column.name, column.strings);
      obs_.columns.push_back(std::move(column));
    }
    obs_.origin = path + ":/col_attrs";
  }
  ~LoomDataset() override {
    auto lock = h5::hdf5_lock();
    file_.reset();
  }

  const std::string& path() const override { return path_; }
  std::string format() const override { return "loom"; }
  std::int64_t n_obs() const override { return n_cells_; }
  std::int64_t n_vars() const override { return n_genes_; }
  DataFrame read_obs() const override { return obs_; }
  DataFrame read_var() const override { return var_; }
  std::vector<std::string> matrix_sources() const override { return order_; }
  MatrixInfo matrix_info(const std::string& source) const override { return find(source).second; }
  std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override {
    const auto& [stored, info] = find(source);
    // A chunk is decoded whole: loompy's are 64 x 64 (16 KB); one over 64 MiB (a hostile shape, or
    // chunks far wider than the matrix) is refused rather than allocated on every core. Checked
    // here, for the matrix read: an odd layer does not make the file unreadable.
    if (info.chunks.size() == 2) {
      constexpr double kMaxChunkBytes = 64.0 * 1024 * 1024;
      const double bytes = static_cast<double>(info.chunks[0]) * static_cast<double>(info.chunks[1]) * 8.0;
      if (bytes > kMaxChunkBytes) {
        throw InputError(fmt::format("{}: /{} is stored in chunks of {} x {} values, over the 64 MiB celltyper decodes at once (re-save it "
                                     "with loompy's 64 x 64 chunks)",
                                     path_, stored, info.chunks[0], info.chunks[1]));
      }
    }
    return detail::open_dense_columns_reader(file_.get(), path_, stored, info);
  }

 private:
  /// What `stored` (a 2-D genes x cells dataset) holds, as the cells x genes matrix `source`.
  MatrixInfo describe(const std::string& stored, const std::string& source) const {
    const Handle data = h5::open_dataset(file_.get(), stored, path_);
    const std::vector<std::int64_t> shape = h5::dataset_shape(data.get());
    if (shape.size() != 2) throw InputError(fmt::format("{}: /{} must be a 2-D matrix (genes x cells), not {}-D", path_, stored, shape.size()));
    constexpr std::int64_t kMaxSide = 2147483647;
    if (shape[0] > kMaxSide || shape[1] > kMaxSide) throw InputError(fmt::format("{}: /{} has a side over 2^31 - 1", path_, stored));
    MatrixInfo info;
    info.source = source;
    info.encoding = MatrixEncoding::kDense;
    info.n_rows = shape[1];
    info.n_cols = shape[0];
    info.nnz = shape[0] * shape[1];  // both below 2^31: no overflow
    info.value_dtype = h5::dtype_name(data.get());
    if (info.value_dtype.rfind("int", 0) != 0 && info.value_dtype.rfind("uint", 0) != 0 && info.value_dtype.rfind("float", 0) != 0) {
      throw InputError(fmt::format("{}: /{} holds {} values, not numbers", path_, stored, info.value_dtype));
    }
    info.compression = h5::compression_name(data.get());
    info.chunks = h5::chunk_shape(data.get());
    info.stored_bytes = h5::storage_bytes(data.get());
    return info;
  }

  const std::pair<std::string, MatrixInfo>& find(const std::string& source) const {
    const auto found = sources_.find(source);
    if (found == sources_.end()) {
      throw InputError(fmt::format("{}: no matrix '{}' in this loom file (available: {})", path_, source, fmt::join(order_, ", ")));
    }
    return found->second;
  }

  std::string path_;
  Handle file_;
  std::int64_t n_genes_ = 0;
  std::int64_t n_cells_ = 0;
  std::map<std::string, std::pair<std::string, MatrixInfo>> sources_;  ///< source -> (stored dataset, info)
  std::vector<std::string> order_;                                     ///< X, then the layers in file order
  DataFrame obs_;
  DataFrame var_;
};

}  // namespace

bool is_loom(const std::string& path) {
  if (is_remote_path(path)) return false;
  auto lock = h5::hdf5_lock();
  h5::silence_hdf5_errors();
  if (H5Fis_hdf5(path.c_str()) <= 0) return false;
  const Handle file = h5::open_file_readonly(path).file;
  if (!file) return false;
  if (h5::object_type(file.get(), "matrix") != H5O_TYPE_DATASET) return false;
  return h5::object_type(file.get(), "row_attrs") == H5O_TYPE_GROUP || h5::object_type(file.get(), "col_attrs") == H5O_TYPE_GROUP;
}

std::unique_ptr<Dataset> open_loom(const std::string& path) { return std::make_unique<LoomDataset>(path); }

}  // namespace celltyper
