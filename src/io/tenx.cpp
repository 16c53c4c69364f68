#include <celltyper/error.hpp>
#include <celltyper/tenx.hpp>

#include "io/hdf5_open.hpp"
#include "io/hdf5_util.hpp"
#include "io/matrix_readers.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

namespace celltyper {

using h5::Handle;

std::vector<std::string> make_unique_names(const std::vector<std::string>& names) {
  std::unordered_map<std::string, int> seen;
  std::unordered_set<std::string> taken(names.begin(), names.end());
  std::vector<std::string> out = names;
  std::unordered_map<std::string, int> count;
  for (const auto& name : names) ++count[name];
  for (auto& name : out) {
    if (count[name] < 2) continue;
    const int copy = seen[name]++;
    if (copy == 0) continue;
    std::string candidate;
    int suffix = copy;
    do {
      candidate = fmt::format("{}-{}", name, suffix++);
    } while (taken.count(candidate) > 0);
    taken.insert(candidate);
    name = candidate;
  }
  return out;
}

namespace detail {

/// Whole contents of a plain or gzip-compressed text file.
std::string read_text_file(const std::filesystem::path& path, std::size_t max_bytes, bool head_only) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw InputError(fmt::format("{}: cannot open", path.string()));
  gzbuffer(file, 1 << 20);
  std::string text;
  constexpr std::size_t kBufferBytes = std::size_t{1} << 22;
  const std::unique_ptr<char[]> buffer(new char[kBufferBytes]);  // not zeroed: gzread fills it
  std::size_t line_start = 0;  // where the line being read began
  std::size_t lines = 0;
  const auto refuse = [&](const std::string& why) {
    gzclose(file);
    throw InputError(fmt::format("{}: {}: a damaged or hostile file, not read further", path.string(), why));
  };
  while (true) {
    const int n = gzread(file, buffer.get(), static_cast<unsigned>(kBufferBytes));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      throw InputError(fmt::format("{}: read error ({}); truncated gzip?", path.string(), message));
    }
    if (n == 0) break;
    const std::size_t before = text.size();
    text.append(buffer.get(), static_cast<std::size_t>(n));
    for (const char* at = text.data() + before; (at = static_cast<const char*>(std::memchr(at, '\n', static_cast<std::size_t>(text.data() + text.size() - at)))) != nullptr; ++at) {
      line_start = static_cast<std::size_t>(at - text.data()) + 1;
      ++lines;
    }
    if (text.size() - line_start > kMaxTextLineBytes) {
      refuse(fmt::format("line {} is longer than {} MiB (no table has lines that long)", lines + 1, kMaxTextLineBytes >> 20));
    }
    if (max_bytes != std::string::npos && text.size() > max_bytes) {
      if (head_only) {
        text.resize(max_bytes);
        gzclose(file);
        return text;
      }
      refuse(fmt::format("it holds more than the {} bytes its header allows", max_bytes));
    }
  }
  // zlib ends a stream cut short (an interrupted download) quietly, with what it could decode:
  // Z_BUF_ERROR says the gzip trailer never came, so the text may end on a whole line and lack the rest.
  if (gzclose(file) == Z_BUF_ERROR) {
    throw InputError(fmt::format("{}: the gzip stream ends early (truncated file, e.g. an interrupted download: `gzip -t` says the same); "
                                 "download or copy it again",
                                 path.string()));
  }
  return text;
}

}  // namespace detail

namespace {

std::vector<std::vector<std::string>> read_tsv(const std::filesystem::path& path) {
  const std::string text = detail::read_text_file(path);
  std::vector<std::vector<std::string>> rows;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) {
      std::vector<std::string> fields;
      std::size_t field_start = 0;
      while (true) {
        const std::size_t tab = line.find('\t', field_start);
        fields.emplace_back(line.substr(field_start, tab == std::string_view::npos ? std::string_view::npos : tab - field_start));
        if (tab == std::string_view::npos) break;
        field_start = tab + 1;
      }
      rows.push_back(std::move(fields));
    }
    start = end + 1;
  }
  return rows;
}

std::filesystem::path find_one(const std::filesystem::path& directory, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const auto candidate = directory / name;
    if (std::filesystem::exists(candidate)) return candidate;
  }
  return {};
}

DataFrame make_var(const std::vector<std::string>& ids, const std::vector<std::string>& names,
                   const std::vector<std::string>& types) {
  DataFrame var;
  var.index = make_unique_names(names);
  var.columns.push_back(Column::from_strings("gene_ids", ids));
  if (!types.empty()) var.columns.push_back(Column::categorical("feature_types", types));
  return var;
}

DataFrame make_obs(std::vector<std::string> barcodes) {
  DataFrame obs;
  obs.index = std::move(barcodes);
  return obs;
}

/// One tool's MTX directory: the matrix, its genes (ids, then symbols when the file has two
/// columns or a symbols file of its own) and its barcodes, and which way round the matrix is.
struct MtxLayout {
  const char* tool;
  std::initializer_list<const char*> matrix;
  std::initializer_list<const char*> features;
  std::initializer_list<const char*> symbols;  ///< a file of gene symbols beside the ids (kallisto | bustools)
  std::initializer_list<const char*> barcodes;
  bool cells_by_rows;                          ///< cells x genes (the header's first size is the cells)
};

const MtxLayout kMtxLayouts[] = {
    {"Cell Ranger / STARsolo", {"matrix.mtx.gz", "matrix.mtx"}, {"features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv"}, {},
     {"barcodes.tsv.gz", "barcodes.tsv"}, false},
    {"kallisto | bustools", {"cells_x_genes.mtx", "cells_x_genes.mtx.gz"}, {"cells_x_genes.genes.txt"}, {"cells_x_genes.genes.names.txt"},
     {"cells_x_genes.barcodes.txt"}, true},
    {"alevin-fry", {"quants_mat.mtx", "quants_mat.mtx.gz"}, {"quants_mat_cols.txt"}, {}, {"quants_mat_rows.txt"}, true},
};

class TenxMtxDataset final : public Dataset {
 public:
  explicit TenxMtxDataset(const std::string& directory) : path_(directory) {
    const std::filesystem::path dir(directory);
    const MtxLayout* layout = nullptr;
    std::filesystem::path matrix_path;
    for (const MtxLayout& candidate : kMtxLayouts) {
      if (!(matrix_path = find_one(dir, candidate.matrix)).empty()) {
        layout = &candidate;
        break;
      }
    }
    if (layout == nullptr) {
      // An output folder around the matrix (Xenium's outs/, Cell Ranger's outs/): name what is there.
      std::vector<std::string> inside;
      for (const char* name : {"cell_feature_matrix.h5", "cell_feature_matrix", "filtered_feature_bc_matrix.h5", "filtered_feature_bc_matrix",
                               "raw_feature_bc_matrix.h5", "raw_feature_bc_matrix", "cell_by_gene.csv", "Solo.out"}) {
        std::error_code error;
        if (std::filesystem::exists(dir / name, error)) inside.push_back((dir / name).string());
      }
      throw InputError(fmt::format("{}: no matrix.mtx[.gz] (Cell Ranger, STARsolo), cells_x_genes.mtx (kallisto | bustools) or quants_mat.mtx "
                                   "(alevin-fry) in this directory{}",
                                   directory, inside.empty() ? std::string() : fmt::format("; read one of these: {}", fmt::join(inside, ", "))));
    }
    const auto features_path = find_one(dir, layout->features);
    const auto barcodes_path = find_one(dir, layout->barcodes);
    if (features_path.empty()) throw InputError(fmt::format("{}: no {} beside {}", directory, *layout->features.begin(), matrix_path.filename().string()));
    if (barcodes_path.empty()) throw InputError(fmt::format("{}: no {} beside {}", directory, *layout->barcodes.begin(), matrix_path.filename().string()));
    cells_by_rows_ = layout->cells_by_rows;

    std::vector<std::string> ids;
    std::vector<std::string> names;
    std::vector<std::string> types;
    for (const auto& row : read_tsv(features_path)) {
      ids.push_back(row[0]);
      names.push_back(row.size() > 1 ? row[1] : row[0]);
      if (row.size() > 2) types.push_back(row[2]);
    }
    if (!types.empty() && types.size() != ids.size()) throw InputError(fmt::format("{}: some lines lack the feature type column", features_path.string()));
    if (const auto symbols_path = find_one(dir, layout->symbols); !symbols_path.empty()) {
      names.clear();
      for (const auto& row : read_tsv(symbols_path)) names.push_back(row[0]);
      if (names.size() != ids.size()) {
        throw InputError(fmt::format("{}: {} symbols for {} genes in {}", symbols_path.string(), names.size(), ids.size(), features_path.string()));
      }
    }
    std::vector<std::string> barcodes;
    for (const auto& row : read_tsv(barcodes_path)) barcodes.push_back(row[0]);
    var_ = make_var(ids, names, types);
    obs_ = make_obs(std::move(barcodes));
    load_matrix(matrix_path);
  }

  const std::string& path() const override { return path_; }
  std::string format() const override { return "10x-mtx"; }
  std::int64_t n_obs() const override { return static_cast<std::int64_t>(obs_.n_rows()); }
  std::int64_t n_vars() const override { return static_cast<std::int64_t>(var_.n_rows()); }
  DataFrame read_obs() const override { return obs_; }
  DataFrame read_var() const override { return var_; }
  std::vector<std::string> matrix_sources() const override { return {"X"}; }
  MatrixInfo matrix_info(const std::string& source) const override {
    check_source(source);
    return info_;
  }
  std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override {
    check_source(source);
    return detail::make_memory_reader(matrix_, info_);
  }

 private:
  void check_source(const std::string& source) const {
    if (source != "X") throw InputError(fmt::format("{}: a Cell Ranger MTX directory has one matrix (X), not '{}'", path_, source));
  }

  void load_matrix(const std::filesystem::path& file) {
    const std::string name = file.string();
    // The header's size line, from the file's first MiB, bounds what the whole may hold before
    // it is decompressed (a small .gz may expand to gigabytes): an entry line "gene cell value"
    // is at most a few dozen bytes.
    std::size_t max_bytes = std::string::npos;
    {
      const std::string head = detail::read_text_file(file, std::size_t{1} << 20, true);
      std::size_t at = 0;
      while (at < head.size() && head[at] == '%') {
        const std::size_t newline = head.find('\n', at);
        at = newline == std::string::npos ? head.size() : newline + 1;
      }
      const std::size_t newline = head.find('\n', at);
      if (at >= head.size() || newline == std::string::npos) {
        throw InputError(fmt::format("{}: no size line (rows, columns, entries) in the file's first MiB (comment lines that long?): not "
                                     "a MatrixMarket file celltyper reads",
                                     name));
      }
      {
        const std::string line = head.substr(at, newline - at);
        char* parse_end = nullptr;
        const long long rows = std::strtoll(line.c_str(), &parse_end, 10);
        const long long cols = std::strtoll(parse_end, &parse_end, 10);
        const long long entries = std::strtoll(parse_end, &parse_end, 10);
        if (rows < 0 || cols < 0 || entries < 0 || (rows > 0 && cols > 0 && entries / rows > cols) || ((rows == 0 || cols == 0) && entries > 0)) {
          throw InputError(fmt::format("{}: the header claims {} entries in a {} x {} matrix, more than it has cells", name, entries, rows, cols));
        }
        constexpr long long kMaxEntryBytes = 96;  // two indices and a double with every digit, and spaces
        if (entries < (std::numeric_limits<long long>::max() - (1 << 20)) / kMaxEntryBytes - static_cast<long long>(newline)) {
          max_bytes = static_cast<std::size_t>(newline + 1) + static_cast<std::size_t>(entries) * kMaxEntryBytes + (std::size_t{1} << 20);
        }
      }
    }
    const std::string text = detail::read_text_file(file, max_bytes);
    const char* cursor = text.data();
    const char* end = text.data() + text.size();
    auto next_line = [&] {
      while (cursor < end && *cursor != '\n') ++cursor;
      if (cursor < end) ++cursor;
    };
    if (text.rfind("%%MatrixMarket", 0) != 0) throw InputError(fmt::format("{}: not a MatrixMarket file (no %%MatrixMarket header)", name));
    std::string header(text.data(), std::find(text.data(), end, '\n'));
    std::transform(header.begin(), header.end(), header.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (header.find("coordinate") == std::string::npos) throw UnsupportedError(fmt::format("{}: only coordinate MatrixMarket files are supported", name));
    if (header.find("pattern") != std::string::npos || header.find("complex") != std::string::npos) {
      throw UnsupportedError(fmt::format("{}: pattern/complex MatrixMarket matrices are not supported", name));
    }
    // (a symmetric matrix stores half of its entries: read as a general one, the other half is lost)
    if (header.find("symmetric") != std::string::npos || header.find("hermitian") != std::string::npos) {
      throw UnsupportedError(fmt::format("{}: symmetric MatrixMarket matrices are not supported (a cells x genes matrix is 'general')", name));
    }
    while (cursor < end && *cursor == '%') next_line();
    char* parse_end = nullptr;
    const long long n_first = std::strtoll(cursor, &parse_end, 10);
    const long long n_second = std::strtoll(parse_end, &parse_end, 10);
    const long long nnz = std::strtoll(parse_end, &parse_end, 10);
    cursor = parse_end;
    next_line();
    // Which way round: the layout's, unless the sizes say otherwise (a transposed export).
    if (n_first != n_second && (cells_by_rows_ ? n_first == n_vars() && n_second == n_obs() : n_first == n_obs() && n_second == n_vars())) {
      cells_by_rows_ = !cells_by_rows_;
    }
    const long long n_genes = cells_by_rows_ ? n_second : n_first;
    const long long n_cells = cells_by_rows_ ? n_first : n_second;
    if (n_genes != n_vars() || n_cells != n_obs()) {
      throw InputError(fmt::format("{}: matrix is {} x {} but there are {} features and {} barcodes", name, n_first, n_second, n_vars(), n_obs()));
    }
    // Trust no size from the file: every entry takes at least 6 bytes ("1 1 1\n") (a count
    // beyond rows x columns was refused from the header, above).
    const auto bytes_left = static_cast<long long>(end - cursor);
    if (nnz < 0 || nnz > bytes_left / 6 + 1) {
      throw InputError(fmt::format("{}: the header claims {} entries, but the file holds at most {} ({} bytes left) in a {} x {} matrix",
                                   name, nnz, bytes_left / 6 + 1, bytes_left, n_genes, n_cells));
    }
    std::vector<std::int32_t> genes(static_cast<std::size_t>(nnz));
    std::vector<std::int32_t> cells(static_cast<std::size_t>(nnz));
    std::vector<double> values(static_cast<std::size_t>(nnz));
    for (long long k = 0; k < nnz; ++k) {
      long long gene = std::strtoll(cursor, &parse_end, 10);
      if (parse_end == cursor) throw InputError(fmt::format("{}: expected {} entries, found {} (truncated?)", name, nnz, k));
      long long cell = std::strtoll(parse_end, &parse_end, 10);
      if (cells_by_rows_) std::swap(gene, cell);
      const double value = std::strtod(parse_end, &parse_end);
      cursor = parse_end;
      if (gene < 1 || gene > n_genes || cell < 1 || cell > n_cells) {
        throw InputError(fmt::format("{}: entry {} has coordinates ({}, {}) outside {} x {}", name, k + 1, gene, cell, n_genes, n_cells));
      }
      genes[static_cast<std::size_t>(k)] = static_cast<std::int32_t>(gene - 1);
      cells[static_cast<std::size_t>(k)] = static_cast<std::int32_t>(cell - 1);
      values[static_cast<std::size_t>(k)] = value;
    }
    // Entries beyond the header's count would be left out without a word.
    while (cursor < end && std::isspace(static_cast<unsigned char>(*cursor)) != 0) ++cursor;
    if (cursor < end) {
      throw InputError(fmt::format("{}: the header says {} entries but more follow them (at byte {}: '{}'): a damaged file; export it again", name,
                                   nnz, cursor - text.data(), std::string(cursor, std::find(cursor, std::min(end, cursor + 40), '\n'))));
    }
    // Cells x genes CSR, genes ascending within each cell.
    matrix_.reset(0, n_cells, n_genes);
    matrix_.indptr.assign(static_cast<std::size_t>(n_cells) + 1, 0);
    for (const auto cell : cells) ++matrix_.indptr[static_cast<std::size_t>(cell) + 1];
    std::partial_sum(matrix_.indptr.begin(), matrix_.indptr.end(), matrix_.indptr.begin());
    std::vector<std::int64_t> order(static_cast<std::size_t>(nnz));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      const auto ua = static_cast<std::size_t>(a);
      const auto ub = static_cast<std::size_t>(b);
      return cells[ua] != cells[ub] ? cells[ua] < cells[ub] : genes[ua] < genes[ub];
    });
    // An entry stored twice (summed by some readers, the last kept by others): a damaged file, as
    // for an .h5ad or a Cell Ranger .h5.
    for (std::size_t k = 1; k < order.size(); ++k) {
      const auto a = static_cast<std::size_t>(order[k - 1]);
      const auto b = static_cast<std::size_t>(order[k]);
      if (cells[a] == cells[b] && genes[a] == genes[b]) {
        throw InputError(fmt::format("{}: the entry of feature {} and barcode {} appears twice (entries {} and {}): a damaged file; export it again",
                                     name, genes[a] + 1, cells[a] + 1, std::min(a, b) + 1, std::max(a, b) + 1));
      }
    }
    matrix_.indices.resize(static_cast<std::size_t>(nnz));
    matrix_.values.resize(static_cast<std::size_t>(nnz));
    for (std::size_t k = 0; k < order.size(); ++k) {
      matrix_.indices[k] = genes[static_cast<std::size_t>(order[k])];
      matrix_.values[k] = values[static_cast<std::size_t>(order[k])];
    }
    // (floor, not a cast to long long: a value beyond its range is undefined behaviour; fuzz finding)
    const bool integers = std::all_of(values.begin(), values.end(), [](double v) { return v == std::floor(v); });
    info_.source = std::string("X");  // not `= "X"`: GCC 12 -O3 raises a bogus -Wrestrict (GCC bug 105329)
    info_.encoding = MatrixEncoding::kCsr;
    info_.n_rows = n_cells;
    info_.n_cols = n_genes;
    info_.nnz = nnz;
    info_.value_dtype = integers ? "int64" : "float64";
    info_.index_dtype = "int32";
    info_.compression = file.extension() == ".gz" ? "mtx-text(gzip)" : "mtx-text";
    info_.stored_bytes = static_cast<std::int64_t>(std::filesystem::file_size(file));
  }

  std::string path_;
  bool cells_by_rows_ = false;  ///< the MTX holds cells x genes (kallisto | bustools, alevin-fry)
  DataFrame obs_;
  DataFrame var_;
  CsrBlockF64 matrix_;
  MatrixInfo info_;
};

class TenxH5Dataset final : public Dataset {
 public:
  explicit TenxH5Dataset(const std::string& path) : path_(path) {
    if (!is_remote_path(path)) {
      require_readable(path, "Cell Ranger .h5 file");
      auto lock = h5::hdf5_lock();
      h5::silence_hdf5_errors();
      if (H5Fis_hdf5(path.c_str()) <= 0) throw InputError(fmt::format("{}: not an HDF5 file", path));
    }
    h5::OpenFile opened = h5::open_file_readonly(path);
    remote_ = std::move(opened.remote);
    auto lock = h5::hdf5_lock();
    file_ = std::move(opened.file);
    if (!file_) h5::throw_open_failure(path, path);
    std::vector<std::string> ids;
    std::vector<std::string> names;
    std::vector<std::string> types;
    if (h5::object_type(file_.get(), "matrix") == H5O_TYPE_GROUP) {  // Cell Ranger >= 3
      group_ = "matrix";
      ids = h5::read_strings(h5::open_dataset(file_.get(), "matrix/features/id", path).get());
      names = h5::read_strings(h5::open_dataset(file_.get(), "matrix/features/name", path).get());
      if (h5::exists(file_.get(), "matrix/features/feature_type")) {
        types = h5::read_strings(h5::open_dataset(file_.get(), "matrix/features/feature_type", path).get());
      }
    } else {  // Cell Ranger 2: one group per genome
      for (const auto& member : h5::list_members(file_.get())) {
        if (h5::exists(file_.get(), member + "/gene_names")) {
          group_ = member;
          break;
        }
      }
      if (group_.empty()) throw InputError(fmt::format("{}: not a Cell Ranger .h5 (no /matrix group or genome group)", path));
      ids = h5::read_strings(h5::open_dataset(file_.get(), group_ + "/genes", path).get());
      names = h5::read_strings(h5::open_dataset(file_.get(), group_ + "/gene_names", path).get());
    }
    std::vector<std::string> barcodes = h5::read_strings(h5::open_dataset(file_.get(), group_ + "/barcodes", path).get());
    const auto shape = h5::read_all_1d<std::int64_t>(h5::open_dataset(file_.get(), group_ + "/shape", path).get());
    if (shape.size() != 2) throw InputError(fmt::format("{}: /{}/shape must have 2 entries", path, group_));
    if (shape[0] != static_cast<std::int64_t>(ids.size()) || shape[1] != static_cast<std::int64_t>(barcodes.size())) {
      throw InputError(fmt::format("{}: /{}/shape is {} x {} (genes x cells) but there are {} features and {} barcodes", path,
                                   group_, shape[0], shape[1], ids.size(), barcodes.size()));
    }
    var_ = make_var(ids, names, types);
    obs_ = make_obs(std::move(barcodes));
    Handle data = h5::open_dataset(file_.get(), group_ + "/data", path);
    Handle indices = h5::open_dataset(file_.get(), group_ + "/indices", path);
    info_.source = std::string("X");  // not `= "X"`: GCC 12 -O3 raises a bogus -Wrestrict (GCC bug 105329)
    info_.encoding = MatrixEncoding::kCsr;
    info_.n_rows = shape[1];
    info_.n_cols = shape[0];
    info_.nnz = h5::dataset_length(data.get());
    info_.value_dtype = h5::dtype_name(data.get());
    info_.index_dtype = h5::dtype_name(indices.get());
    info_.compression = h5::compression_name(data.get());
    info_.chunks = h5::chunk_shape(data.get());
    info_.stored_bytes = h5::storage_bytes(data.get()) + h5::storage_bytes(indices.get());
    (void)open_matrix("X");  // validates indptr now
  }
  ~TenxH5Dataset() override {
    auto lock = h5::hdf5_lock();
    file_.reset();
  }

  const std::string& path() const override { return path_; }
  std::string format() const override { return "10x-h5"; }
  std::int64_t n_obs() const override { return info_.n_rows; }
  std::int64_t n_vars() const override { return info_.n_cols; }
  DataFrame read_obs() const override { return obs_; }
  DataFrame read_var() const override { return var_; }
  std::vector<std::string> matrix_sources() const override { return {"X"}; }
  MatrixInfo matrix_info(const std::string& source) const override {
    check_source(source);
    return info_;
  }
  std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override {
    check_source(source);
    detail::SparseLocation where{path_, group_, MatrixEncoding::kCsr, info_.n_rows, info_.n_cols};
    return detail::open_sparse_reader(file_.get(), where, info_, std::size_t{32} << 20);
  }

 private:
  void check_source(const std::string& source) const {
    if (source != "X") throw InputError(fmt::format("{}: a Cell Ranger .h5 has one matrix (X), not '{}'", path_, source));
  }

  std::string path_;
  std::string group_;
  std::shared_ptr<RemoteFile> remote_;  // http(s):// / s3:// (declared first: outlives file_)
  Handle file_;
  DataFrame obs_;
  DataFrame var_;
  MatrixInfo info_;
};

}  // namespace

std::unique_ptr<Dataset> open_tenx_mtx(const std::string& directory) { return std::make_unique<TenxMtxDataset>(directory); }
std::unique_ptr<Dataset> open_tenx_h5(const std::string& path) { return std::make_unique<TenxH5Dataset>(path); }

bool is_tenx_h5(const std::string& path) {
  if (is_remote_path(path)) return false;  // remote datasets are read as h5ad
  auto lock = h5::hdf5_lock();
  h5::silence_hdf5_errors();
  if (H5Fis_hdf5(path.c_str()) <= 0) return false;
  Handle file = h5::open_file_readonly(path).file;
  if (!file) return false;
  if (h5::exists(file.get(), "X") || h5::exists(file.get(), "obs")) return false;  // an h5ad
  if (h5::object_type(file.get(), "matrix") == H5O_TYPE_GROUP) return true;
  for (const auto& member : h5::list_members(file.get())) {
    if (h5::exists(file.get(), member + "/gene_names")) return true;
  }
  return false;
}

}  // namespace celltyper
