// Import of gene vectors computed elsewhere: TSV/CSV, .npy + gene list, HDF5 (gene store or
// named datasets). Ids are resolved through a gene table.
#include <celltyper/error.hpp>
#include <celltyper/gene_embedding.hpp>
#include <celltyper/gene_table.hpp>

#include "genes/file_text.hpp"
#include "io/hdf5_util.hpp"
#include "io/lzf_filter.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <unordered_set>

#ifndef CELLTYPER_VERSION
#define CELLTYPER_VERSION "unknown"
#endif

namespace celltyper {

namespace {

/// Rows read from a file before resolution: one id and one vector each.
struct RawRows {
  std::vector<std::string> ids;
  std::vector<float> matrix;  ///< [ids.size() x dims]
  int dims = 0;
  nlohmann::json source_provenance;  ///< a gene store's own provenance, when imported from one
};

std::vector<std::string_view> split(std::string_view line, char separator) {
  std::vector<std::string_view> fields;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t end = line.find(separator, begin);
    fields.push_back(line.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
    if (end == std::string_view::npos) return fields;
    begin = end + 1;
  }
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '"')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '"' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

bool parse_double(std::string_view text, double& value) {
  text = trim(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size() && !text.empty();
}

/// Header names of gene-id columns, in order of preference as the id to resolve.
constexpr std::array<std::string_view, 8> kIdColumns{"entrez_id", "ensembl_id", "symbol", "gene_id", "gene", "gene_symbol", "id", "name"};

RawRows read_text_rows(const std::string& path, char separator) {
  const std::string text = read_whole_file(path, "embeddings file");
  RawRows rows;
  std::size_t begin = 0;
  std::size_t line_number = 0;
  bool first = true;
  std::size_t n_fields = 0;
  std::size_t id_column = 0;
  std::vector<std::size_t> value_columns;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto fields = split(line, separator);
    if (first) {
      first = false;
      if (fields.size() < 2) {
        throw InputError(fmt::format("embeddings file {}: line {}: expected a gene id and at least one number separated by "
                                     "'{}', found one field",
                                     path, line_number, separator == '\t' ? "\\t" : ","));
      }
      n_fields = fields.size();
      double ignored = 0;
      const bool header = !parse_double(fields[1], ignored);
      // A header: id-like columns (entrez_id, symbol, ensembl_id, ...) hold names, the rest numbers.
      std::vector<bool> is_id(fields.size(), false);
      is_id[0] = true;
      if (header) {
        std::size_t best = kIdColumns.size();
        for (std::size_t j = 0; j < fields.size(); ++j) {
          std::string name(trim(fields[j]));
          std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
          const auto known = std::find(kIdColumns.begin(), kIdColumns.end(), name);
          if (known == kIdColumns.end()) continue;
          is_id[j] = true;
          if (static_cast<std::size_t>(known - kIdColumns.begin()) < best) {
            best = static_cast<std::size_t>(known - kIdColumns.begin());
            id_column = j;
          }
        }
      }
      for (std::size_t j = 0; j < fields.size(); ++j) {
        if (!is_id[j]) value_columns.push_back(j);
      }
      if (value_columns.empty()) throw InputError(fmt::format("embeddings file {}: line {}: no number columns", path, line_number));
      rows.dims = static_cast<int>(value_columns.size());
      if (header) continue;
    }
    if (fields.size() != n_fields) {
      throw InputError(fmt::format("embeddings file {}: line {} has {} values, expected {} as on the first line", path,
                                   line_number, static_cast<int>(fields.size()) - static_cast<int>(n_fields - value_columns.size()),
                                   rows.dims));
    }
    rows.ids.emplace_back(trim(fields[id_column]));
    for (const std::size_t j : value_columns) {
      double value = 0;
      if (!parse_double(fields[j], value)) {
        throw InputError(fmt::format("embeddings file {}: line {}, column {}: expected a number, found '{}'", path, line_number,
                                     j + 1, fields[j].substr(0, 40)));
      }
      rows.matrix.push_back(static_cast<float>(value));
    }
  }
  if (rows.ids.empty()) throw InputError(fmt::format("embeddings file {} holds no vectors", path));
  return rows;
}

/// Gene ids of a .npy file's rows.
std::vector<std::string> read_gene_list(const std::string& path) {
  const std::string text = read_whole_file(path, "gene list");
  std::vector<std::string> ids;
  std::size_t begin = 0;
  bool first = true;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string_view id = trim(line.substr(0, line.find('\t')));
    if (first) {
      first = false;
      static constexpr std::array<std::string_view, 5> kHeaders{"entrez_id", "symbol", "gene", "gene_id", "id"};
      if (std::find(kHeaders.begin(), kHeaders.end(), id) != kHeaders.end()) continue;
    }
    if (line.empty()) continue;
    ids.emplace_back(id);
  }
  return ids;
}

RawRows read_npy_rows(const std::string& path, const std::string& gene_list) {
  if (gene_list.empty()) {
    throw InputError(fmt::format("embeddings file {}: a .npy matrix needs a gene list (--gene-list) naming its rows", path));
  }
  const std::string bytes = read_whole_file(path, "embeddings file");
  const auto fail = [&](const std::string& problem) {
    return InputError(fmt::format("embeddings file {}: {}", path, problem));
  };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw fail("not a NumPy .npy file (bad magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_length = 0;
  std::size_t header_start = 0;
  if (major == 1) {
    header_length = static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw fail("truncated .npy header");
    for (int i = 0; i < 4; ++i) header_length |= static_cast<std::size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  } else {
    throw fail(fmt::format("unsupported .npy format version {}", major));
  }
  if (header_start + header_length > bytes.size()) throw fail("truncated .npy header");
  const std::string header = bytes.substr(header_start, header_length);
  const auto value_of = [&](std::string_view key) -> std::string {
    const std::size_t position = header.find(fmt::format("'{}'", key));
    if (position == std::string::npos) throw fail(fmt::format(".npy header has no '{}'", key));
    std::size_t begin = header.find(':', position) + 1;
    while (begin < header.size() && header[begin] == ' ') ++begin;
    std::size_t end = begin;
    if (header[begin] == '(') end = header.find(')', begin) + 1;
    else if (header[begin] == '\'') end = header.find('\'', begin + 1) + 1;
    else end = header.find_first_of(",}", begin);
    return header.substr(begin, end - begin);
  };
  const std::string descr = value_of("descr");
  const std::string fortran = value_of("fortran_order");
  const std::string shape_text = value_of("shape");
  if (fortran != "False") throw fail("the array is in Fortran order; save it in C order (np.ascontiguousarray)");
  std::size_t item_size = 0;
  if (descr == "'<f4'") item_size = 4;
  else if (descr == "'<f8'") item_size = 8;
  else throw fail(fmt::format("dtype {} is not supported (expected little-endian float32 '<f4' or float64 '<f8')", descr));
  std::vector<std::int64_t> shape;
  for (const auto part : split(std::string_view(shape_text).substr(1, shape_text.size() - 2), ',')) {
    const std::string_view number = trim(part);
    if (number.empty()) continue;
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (error != std::errc() || end != number.data() + number.size()) throw fail(fmt::format("bad shape {}", shape_text));
    shape.push_back(value);
  }
  if (shape.size() != 2 || shape[1] < 1) throw fail(fmt::format("expected a 2-D [genes x dims] array, found shape {}", shape_text));
  const std::size_t data_start = header_start + header_length;
  const std::size_t expected = static_cast<std::size_t>(shape[0]) * static_cast<std::size_t>(shape[1]) * item_size;
  if (bytes.size() - data_start != expected) {
    throw fail(fmt::format("the data is {} bytes but shape {} needs {} (truncated file?)", bytes.size() - data_start,
                           shape_text, expected));
  }
  RawRows rows;
  rows.ids = read_gene_list(gene_list);
  if (static_cast<std::int64_t>(rows.ids.size()) != shape[0]) {
    throw InputError(fmt::format("gene list {} names {} genes but {} has {} rows", gene_list, rows.ids.size(), path, shape[0]));
  }
  rows.dims = static_cast<int>(shape[1]);
  rows.matrix.resize(static_cast<std::size_t>(shape[0] * shape[1]));
  const char* data = bytes.data() + data_start;
  for (std::size_t i = 0; i < rows.matrix.size(); ++i) {
    if (item_size == 4) {
      std::memcpy(&rows.matrix[i], data + 4 * i, 4);
    } else {
      double value = 0;
      std::memcpy(&value, data + 8 * i, 8);
      rows.matrix[i] = static_cast<float>(value);
    }
  }
  return rows;
}

RawRows read_h5_rows(const std::string& path, const GeneImportOptions& options) {
  require_readable(path, "embeddings file");
  {
    auto lock = h5::hdf5_lock();
    h5::silence_hdf5_errors();
    detail::register_lzf_filter();  // h5py users may write it with compression="lzf"
    if (H5Fis_hdf5(path.c_str()) <= 0) throw InputError(fmt::format("embeddings file {}: not an HDF5 file", path));
    h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!file) h5::throw_open_failure(path, "embeddings file " + path);
    const bool is_store = h5::string_attribute(file.get(), "celltyper_format").value_or("") == "celltyper-gene-store";
    if (!is_store || !options.h5_matrix.empty() || !options.h5_ids.empty()) {
      const auto pick = [&](const std::string& chosen, std::initializer_list<const char*> defaults, const char* what) {
        if (!chosen.empty()) return chosen;
        for (const char* name : defaults) {
          if (h5::object_type(file.get(), name) == H5O_TYPE_DATASET) return std::string(name);
        }
        throw InputError(fmt::format("embeddings file {}: no {} dataset found (tried {}); name it with --h5-{}", path, what,
                                     fmt::join(defaults, ", "), std::string_view(what) == "matrix" ? "matrix" : "ids"));
      };
      const std::string matrix_name = pick(options.h5_matrix, {"embeddings", "matrix", "X"}, "matrix");
      const std::string ids_name = pick(options.h5_ids, {"genes/entrez_id", "genes/symbol", "gene_ids", "genes", "ids"}, "ids");
      RawRows rows;
      try {
        h5::Handle matrix = h5::open_dataset(file.get(), matrix_name, path);
        h5::Handle ids = h5::open_dataset(file.get(), ids_name, path);
        const auto shape = h5::dataset_shape(matrix.get());
        if (shape.size() != 2 || shape[1] < 1) {
          throw InputError(fmt::format("embeddings file {}: /{} must be 2-D [genes x dims], found shape [{}]", path, matrix_name,
                                       fmt::join(shape, " x ")));
        }
        const std::string dtype = h5::dtype_name(matrix.get());
        if (!dtype.starts_with("float") && !dtype.starts_with("int") && !dtype.starts_with("uint")) {
          throw InputError(fmt::format("embeddings file {}: /{} holds {}, expected numbers", path, matrix_name, dtype));
        }
        if (h5::is_string_dataset(ids.get())) {
          rows.ids = h5::read_strings(ids.get());
        } else {
          for (const std::int64_t id : h5::read_all_1d<std::int64_t>(ids.get())) rows.ids.push_back(std::to_string(id));
        }
        if (static_cast<std::int64_t>(rows.ids.size()) != shape[0]) {
          throw InputError(fmt::format("embeddings file {}: /{} has {} ids but /{} has {} rows: shape mismatch", path, ids_name,
                                       rows.ids.size(), matrix_name, shape[0]));
        }
        rows.dims = static_cast<int>(shape[1]);
        rows.matrix.resize(static_cast<std::size_t>(shape[0] * shape[1]));
        h5::read_rows_2d<float>(matrix.get(), 0, shape[0], shape[1], rows.matrix.data());
      } catch (const IoError& failure) {
        throw InputError(fmt::format("embeddings file {}: cannot read (truncated or corrupt?): {}", path, failure.what()));
      }
      return rows;
    }
  }
  const GeneStore store = GeneStore::load(path);
  RawRows rows;
  rows.dims = store.dims();
  rows.matrix = store.matrix();
  for (const std::int64_t id : store.entrez_ids()) rows.ids.push_back(std::to_string(id));
  rows.source_provenance = store.provenance().to_json();
  return rows;
}

std::string detect_format(const std::string& path, const std::string& requested) {
  if (!requested.empty()) {
    if (requested == "tsv" || requested == "csv" || requested == "npy" || requested == "h5") return requested;
    throw InputError(fmt::format("import: unknown format '{}' (expected tsv, csv, npy or h5)", requested));
  }
  std::string extension = std::filesystem::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
  if (extension == ".tsv" || extension == ".txt" || extension == ".tab") return "tsv";
  if (extension == ".csv") return "csv";
  if (extension == ".npy") return "npy";
  if (extension == ".h5" || extension == ".hdf5" || extension == ".he5") return "h5";
  throw InputError(fmt::format("import: cannot tell the format of {} from its extension; use --format tsv|csv|npy|h5", path));
}

}  // namespace

GeneImportResult import_gene_embeddings(const std::string& path, const GeneTable& table, const GeneImportOptions& options) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) throw IoError(fmt::format("cannot open embeddings file {}: no such file", path));
  const std::string format = detect_format(path, options.format);
  RawRows rows;
  if (format == "tsv") rows = read_text_rows(path, '\t');
  else if (format == "csv") rows = read_text_rows(path, ',');
  else if (format == "npy") rows = read_npy_rows(path, options.gene_list);
  else rows = read_h5_rows(path, options);

  GeneImportResult result;
  result.n_rows = static_cast<std::int64_t>(rows.ids.size());
  std::vector<std::int64_t> ids;
  std::vector<std::string> symbols;
  std::vector<std::string> ensembl;
  std::vector<float> matrix;
  std::unordered_set<std::int64_t> seen;
  const auto dims = static_cast<std::size_t>(rows.dims);
  for (std::size_t i = 0; i < rows.ids.size(); ++i) {
    const float* row = rows.matrix.data() + i * dims;
    bool zero = true;
    for (std::size_t j = 0; j < dims; ++j) {
      if (!std::isfinite(row[j])) {
        throw InputError(fmt::format("embeddings file {}: row {} (gene '{}') has a non-finite value at dimension {}", path, i + 1,
                                     rows.ids[i], j));
      }
      zero = zero && row[j] == 0.0F;
    }
    const std::int32_t gene = resolve_gene_name(table, rows.ids[i]);
    if (gene == kNoGene) {
      ++result.n_unresolved;
      if (result.unresolved_examples.size() < 10) result.unresolved_examples.push_back(rows.ids[i]);
      result.skipped.push_back({rows.ids[i], "", "not_in_gene_table"});
      continue;
    }
    const Gene& record = table.gene(gene);
    if (zero) {  // (before the duplicate check: a gene's later usable row is kept)
      ++result.n_zero_rows;
      result.skipped.push_back({rows.ids[i], record.symbol, "all_zero"});
      continue;
    }
    if (!seen.insert(record.entrez_id).second) {
      ++result.n_duplicates;
      if (result.duplicate_examples.size() < 10) {
        result.duplicate_examples.push_back(fmt::format("row {} '{}' -> {}", i + 1, rows.ids[i], record.symbol));
      }
      result.skipped.push_back({rows.ids[i], record.symbol, "duplicate"});
      continue;
    }
    ids.push_back(record.entrez_id);
    symbols.push_back(record.symbol);
    ensembl.push_back(record.ensembl_ids.empty() ? std::string() : record.ensembl_ids.front());
    matrix.insert(matrix.end(), row, row + dims);
  }
  if (!options.allow_unresolved && result.n_unresolved > 0) {
    throw InputError(fmt::format("embeddings file {}: {} of {} gene ids are not in the gene table {} (e.g. {})", path,
                                 result.n_unresolved, result.n_rows, table.source(), fmt::join(result.unresolved_examples, ", ")));
  }
  if (!options.allow_unresolved && result.n_duplicates > 0) {
    throw InputError(fmt::format("embeddings file {}: {} rows give a gene an earlier row already gave (e.g. {})", path, result.n_duplicates,
                                 fmt::join(result.duplicate_examples, ", ")));
  }
  if (ids.empty()) {
    throw InputError(fmt::format("embeddings file {}: none of its {} gene ids resolves to a gene of {}{}", path, result.n_rows,
                                 table.source().empty() ? "the gene table" : table.source(),
                                 result.unresolved_examples.empty() ? std::string()
                                                                    : fmt::format(" (e.g. {})", fmt::join(result.unresolved_examples, ", "))));
  }
  GeneStoreProvenance provenance;
  provenance.backend = "import";
  provenance.model = options.model.empty() ? std::filesystem::path(path).filename().string() : options.model;
  provenance.dims = rows.dims;
  provenance.gene_table_hash = table.content_hash_hex();
  provenance.species = table.species();
  provenance.created_utc = utc_timestamp();
  provenance.celltyper_version = CELLTYPER_VERSION;
  if (rows.source_provenance.is_object()) {
    provenance.text_recipe_hash = rows.source_provenance.value("text_recipe_hash", "");
    provenance.extra["source_store"] = rows.source_provenance;
  }
  provenance.extra["import"] = {{"source", path},
                                {"format", format},
                                {"gene_list", options.gene_list},
                                {"n_rows", result.n_rows},
                                {"n_imported", ids.size()},
                                {"n_unresolved", result.n_unresolved},
                                {"n_duplicates", result.n_duplicates},
                                {"n_zero_rows", result.n_zero_rows}};
  result.store = GeneStore(std::move(ids), std::move(symbols), std::move(ensembl), std::move(matrix), rows.dims, std::move(provenance));
  return result;
}

}  // namespace celltyper
