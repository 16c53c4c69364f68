#include <celltyper/error.hpp>
#include <celltyper/tenx.hpp>
#include <celltyper/text_matrix.hpp>

#include "genes/gene_names.hpp"
#include "io/matrix_readers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <numeric>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace celltyper {

namespace {

enum class Delimiter { kTab, kComma, kSemicolon, kBlanks };

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string_view trim(std::string_view field) {
  while (!field.empty() && (field.front() == ' ' || field.front() == '\t')) field.remove_prefix(1);
  while (!field.empty() && (field.back() == ' ' || field.back() == '\t')) field.remove_suffix(1);
  return field;
}

/// The fields of `line`, views into it, outer double quotes removed (a delimiter inside quotes
/// is part of the field; a doubled quote inside stays doubled: names rarely hold one).
void split_fields(std::string_view line, Delimiter delimiter, std::vector<std::string_view>& fields) {
  fields.clear();
  std::size_t position = 0;
  const std::size_t n = line.size();
  if (delimiter == Delimiter::kBlanks) {
    while (position < n) {
      while (position < n && (line[position] == ' ' || line[position] == '\t')) ++position;
      if (position == n) break;
      const std::size_t start = position;
      if (line[position] == '"') {
        const std::size_t close = line.find('"', position + 1);
        position = close == std::string_view::npos ? n : close + 1;
        fields.push_back(line.substr(start + 1, (close == std::string_view::npos ? n : close) - start - 1));
        continue;
      }
      while (position < n && line[position] != ' ' && line[position] != '\t') ++position;
      fields.push_back(line.substr(start, position - start));
    }
    return;
  }
  const char separator = delimiter == Delimiter::kTab ? '\t' : delimiter == Delimiter::kSemicolon ? ';' : ',';
  while (true) {
    std::size_t start = position;
    while (start < n && line[start] == ' ') ++start;
    if (start < n && line[start] == '"') {
      std::size_t close = start + 1;
      while (close < n && !(line[close] == '"' && (close + 1 >= n || line[close + 1] != '"'))) close += line[close] == '"' ? 2 : 1;
      fields.push_back(line.substr(start + 1, std::min(close, n) - start - 1));
      position = line.find(separator, std::min(close, n));
    } else {
      position = line.find(separator, position);
      fields.push_back(trim(line.substr(start, position == std::string_view::npos ? std::string_view::npos : position - start)));
    }
    if (position == std::string_view::npos) break;
    ++position;
  }
}

struct Line {
  std::size_t number;  ///< 1-based, as in the file
  std::string_view text;
};

/// The lines of `text` that hold a field, numbered as in the file: CR and a UTF-8 byte-order mark
/// (Excel's) removed; blank lines and Excel's rows of empty fields (",,,,") skipped.
std::vector<Line> numbered_lines(const std::string& text) {
  std::vector<Line> lines;
  const std::size_t bom = text.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0;
  std::size_t number = 0;
  for (std::size_t start = bom; start < text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t,;") != std::string_view::npos) lines.push_back({number, line});
    start = end + 1;
  }
  return lines;
}

/// Tab when `line` or `next` holds one, else comma, else semicolon (Excel in some locales), else
/// runs of blanks.
Delimiter guess_delimiter(std::string_view line, std::string_view next = {}) {
  const auto holds = [&](char c) { return line.find(c) != std::string_view::npos || next.find(c) != std::string_view::npos; };
  return holds('\t') ? Delimiter::kTab : holds(',') ? Delimiter::kComma : holds(';') ? Delimiter::kSemicolon : Delimiter::kBlanks;
}

/// `field` as a number: decimal or scientific, "NA" / "NaN" / "nan" as NaN (refused later,
/// naming the cell, as NaN in any matrix is).
bool parse_number(std::string_view field, double& value) {
  if (field.empty()) return false;
  if (field == "NA" || field == "NaN" || field == "nan") {
    value = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  const char* begin = field.data();
  if (*begin == '+') ++begin;
  const char* end = field.data() + field.size();
  const auto [stop, error] = std::from_chars(begin, end, value);
  return error == std::errc() && stop == end;
}

/// A cell barcode ("AAACCTGAGAAACCAT-1", "sample1_AAACCTGAGAAACCAT"): a run of at least 10 of
/// A, C, G, T, N.
bool barcode_like(std::string_view name) {
  std::size_t run = 0;
  for (const char character : name) {
    run = (character == 'A' || character == 'C' || character == 'G' || character == 'T' || character == 'N') ? run + 1 : 0;
    if (run >= 10) return true;
  }
  return false;
}

/// A per-cell metadata column of Seurat's or scanpy's obs (nCount_RNA, percent.mt, n_genes,
/// total_counts, seurat_clusters, leiden, S.Score, doublet_score ...), never a gene.
bool metadata_name(std::string_view name) {
  const std::string lower = genes_detail::ascii_lower(trim(name));
  static constexpr std::string_view kPrefixes[] = {"ncount_", "nfeature_", "percent.", "percent_", "pct_", "n_genes", "n_counts",
                                                   "total_counts", "log1p_", "doublet", "scrublet", "size_factor", "sizefactor"};
  static constexpr std::string_view kParts[] = {"_snn_res", "cluster", "leiden", "louvain", "umap", "tsne", "score", "orig.ident"};
  static constexpr std::string_view kNames[] = {"phase", "batch", "sample", "donor", "nuclei", "ngene", "numi", "n_umi", "mt_frac"};
  for (const std::string_view prefix : kPrefixes) {
    if (lower.rfind(prefix, 0) == 0) return true;
  }
  for (const std::string_view part : kParts) {
    if (lower.find(part) != std::string::npos) return true;
  }
  return std::find(std::begin(kNames), std::end(kNames), lower) != std::end(kNames);
}

/// A per-cell metadata column from its text values: numbers when every present value is a plain
/// number ("" and NA-like values missing; an id with a leading zero such as donor "01" stays
/// text), else categorical with the NA-like values missing.
Column metadata_column(const std::string& name, const std::vector<std::string>& values) {
  std::vector<double> numbers(values.size(), std::numeric_limits<double>::quiet_NaN());
  bool numeric = true;
  bool any = false;
  for (std::size_t i = 0; numeric && i < values.size(); ++i) {
    const std::string_view value = trim(values[i]);
    if (value.empty() || is_missing_text(value)) continue;
    const bool leading_zero = value.size() > 1 && value[0] == '0' && value[1] >= '0' && value[1] <= '9';
    numeric = !leading_zero && parse_number(value, numbers[i]);
    any = true;
  }
  if (numeric && any) return Column::from_floats(name, std::move(numbers));
  Column column = Column::categorical(name, values);
  // missing values (pandas' "", R's NA) are code -1, not categories
  std::vector<std::int32_t> new_code(column.categories.size(), -1);
  std::vector<std::string> kept;
  for (std::size_t c = 0; c < column.categories.size(); ++c) {
    if (is_missing_text(column.categories[c])) continue;
    new_code[c] = static_cast<std::int32_t>(kept.size());
    kept.push_back(column.categories[c]);
  }
  column.categories = std::move(kept);
  for (auto& code : column.codes) code = code < 0 ? -1 : new_code[static_cast<std::size_t>(code)];
  return column;
}

bool ensembl_like(std::string_view name) { return genes_detail::ensembl_gene_core(name).has_value(); }

/// Whether at least half of `names` satisfy `predicate` (a sample of up to 1,000, spread).
template <typename Predicate>
bool mostly(const std::vector<std::string>& names, Predicate predicate) {
  if (names.empty()) return false;
  const std::size_t step = std::max<std::size_t>(1, names.size() / 1000);
  std::size_t checked = 0;
  std::size_t yes = 0;
  for (std::size_t i = 0; i < names.size(); i += step, ++checked) yes += predicate(names[i]) ? 1 : 0;
  return 2 * yes >= checked;
}

class TextMatrixDataset final : public Dataset {
 public:
  explicit TextMatrixDataset(const std::string& path) : path_(path) { load(); }

  const std::string& path() const override { return path_; }
  std::string format() const override { return "text"; }
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
    return detail::make_memory_reader(matrix_, info_);  // shared, never copied
  }
  std::string reading_note() const override { return note_; }

 private:
  void check_source(const std::string& source) const {
    if (source != "X") throw InputError(fmt::format("{}: a text table has one matrix (X), not '{}'", path_, source));
  }

  void load() {
    // The table as it is laid out (rows x value columns, CSR, zeros left out), parsed while the
    // text is in memory; transposed to cells x genes after the text is freed.
    CsrBlockF64 table;
    std::vector<std::string> row_names;
    std::vector<std::string> column_names;
    std::vector<std::string> text_names;                // names of the text columns after the first
    std::vector<std::vector<std::string>> row_text;     // their values
    Delimiter delimiter = Delimiter::kBlanks;
    bool integers = true;
    bool numbered_cells = false;  // rows named by numbers (row numbers, cell indexes): they are the cells
    bool cosmx = false;           // CosMx's layout (fov, cell_ID, genes...)
    std::vector<std::string> cosmx_fov;
    std::string cosmx_fov_name;
    std::int64_t n_background = 0;  // its rows of cell_ID 0: transcripts outside every cell
    std::string corner;           // the header's name of the row names, lower-cased ("" without one)
    {
      const std::string text = detail::read_text_file(path_);
      std::vector<Line> lines = numbered_lines(text);
      // Leading '#' lines are comments, but the last of them may be the header ("#gene\tcell1 ...").
      std::size_t first_plain = 0;
      while (first_plain < lines.size() && lines[first_plain].text.front() == '#') ++first_plain;
      if (lines.size() - first_plain < 1) throw InputError(fmt::format("{}: a text table needs a header line and at least one data line", path_));
      const std::string_view probe = lines[first_plain].text;
      delimiter = guess_delimiter(probe);
      std::vector<std::string_view> fields;
      const auto count_fields = [&](std::string_view line) {
        split_fields(line, delimiter, fields);
        return fields.size();
      };
      std::size_t header_line = first_plain;
      if (first_plain > 0 && first_plain + 1 < lines.size()) {
        std::string_view hashed = lines[first_plain - 1].text;
        while (!hashed.empty() && hashed.front() == '#') hashed.remove_prefix(1);
        const std::size_t n_hashed = count_fields(hashed);
        const std::size_t n_next = count_fields(probe);
        if (n_next == count_fields(lines[first_plain + 1].text) && n_hashed > 1 && (n_hashed == n_next || n_hashed + 1 == n_next)) {
          header_line = first_plain - 1;
          lines[header_line].text = hashed;
        }
      }
      if (lines.size() < header_line + 2) throw InputError(fmt::format("{}: a text table needs a header line and at least one data line", path_));
      split_fields(lines[header_line].text, delimiter, fields);
      std::vector<std::string> header(fields.begin(), fields.end());
      const std::size_t first_data = header_line + 1;
      const std::size_t n_fields = count_fields(lines[first_data].text);
      if (header.size() == n_fields + 1 && header.back().empty()) header.pop_back();  // a trailing delimiter in the header only
      // R's write.table leaves the row names' column out of the header: the first field names the row.
      const bool no_corner = header.size() + 1 == n_fields;
      if (!no_corner) corner = genes_detail::ascii_lower(trim(header.front()));
      if (!no_corner && header.size() != n_fields) {
        throw InputError(fmt::format("{}: the header (line {}) has {} fields but line {} has {}: not a table of names and numbers", path_,
                                     lines[header_line].number, header.size(), lines[first_data].number, n_fields));
      }
      // Leading fields that are no numbers name the row: each leading column that is no number
      // in two or more of the first 100 lines (a name column may hold "NA" or number-like names
      // in most of them: GEO's descriptions, chromosomes; a count column with one damaged value
      // is still counts, and its value an error, not a reason to read the cell as a name column
      // and drop it; a table of one line: that line). A first column of numbers
      // names the row too when the header's corner is empty or an id ("", "Cell_Index",
      // "gene_id": pandas' and R's row numbers, BD Rhapsody's cell indexes) or its values rise
      // one by one.
      const std::size_t last_probe = std::min(lines.size(), first_data + 100);
      std::vector<std::size_t> text_at;  // per leading column, the lines where it is no number
      double value = 0;
      for (std::size_t l = first_data; l < last_probe; ++l) {
        split_fields(lines[l].text, delimiter, fields);
        std::size_t leading = 0;
        while (leading < fields.size() && !parse_number(fields[leading], value)) ++leading;
        if (text_at.size() < leading) text_at.resize(leading, 0);
        for (std::size_t k = 0; k < leading; ++k) ++text_at[k];
      }
      std::size_t n_text = 0;
      const std::size_t needed = std::min<std::size_t>(2, last_probe - first_data);
      while (n_text < text_at.size() && text_at[n_text] >= needed) ++n_text;
      if (no_corner) n_text = std::max<std::size_t>(n_text, 1);
      // NanoString CosMx's exprMat_file.csv: fov, cell_ID, then the genes; a cell is its fov's
      // cell_ID (ids restart in every fov), named "FOV_CELLID", both kept as metadata.
      cosmx = !no_corner && n_fields > 2 && corner == "fov" && genes_detail::ascii_lower(trim(header[1])) == "cell_id";
      if (cosmx) {
        n_text = 2;
        numbered_cells = true;
        cosmx_fov_name = std::string(trim(header.front()));
      }
      if (n_text == 0 && n_fields > 1) {
        static constexpr std::string_view kIdNames[] = {"", "index", "cell_index", "cellindex", "cell", "cells", "cell_id", "cellid",
                                                        "cell_name", "barcode", "barcodes", "cell_barcode", "gene", "genes", "gene_id",
                                                        "geneid", "gene_name", "gene_symbol", "symbol", "id", "name", "row", "rownames"};
        bool rising = last_probe - first_data >= 3;
        double previous = -std::numeric_limits<double>::infinity();
        for (std::size_t l = first_data; rising && l < last_probe; ++l) {
          split_fields(lines[l].text, delimiter, fields);
          rising = parse_number(fields[0], value) && value == std::floor(value) && value > previous;
          previous = value;
        }
        if (rising || std::find(std::begin(kIdNames), std::end(kIdNames), corner) != std::end(kIdNames)) {
          n_text = 1;
          // Genes have names: rows named by numbers are cells, unless the corner says genes (Entrez ids).
          numbered_cells = corner.find("gene") == std::string::npos && corner.find("symbol") == std::string::npos;
        }
      }
      // Per-cell metadata between the names and the counts (a Seurat or scanpy obs written beside
      // the matrix: nCount_RNA, percent.mt, seurat_clusters, a cell type after them): columns named
      // like such metadata, or holding text in the first lines, name the rows too, so that no
      // nCount_RNA is read as a gene.
      // (Not in a genes x cells table: its header names cells, which a name like "Cluster_0_AAAC"
      // would pass off as metadata.)
      const bool header_of_cells = mostly(std::vector<std::string>(header.begin() + (no_corner ? 0 : 1), header.end()), barcode_like);
      if (n_text > 0 && !header_of_cells) {
        const std::size_t kProbeFields = 64;  // metadata sits in the first columns
        std::vector<std::vector<std::string_view>> probe_fields;
        for (std::size_t l = first_data; l < last_probe; ++l) {
          split_fields(lines[l].text, delimiter, fields);
          probe_fields.emplace_back(fields.begin(), fields.begin() + static_cast<std::ptrdiff_t>(std::min(fields.size(), kProbeFields)));
        }
        while (n_text < std::min(n_fields, kProbeFields)) {
          const std::size_t at = no_corner ? n_text - 1 : n_text;
          bool text_column = metadata_name(header[at]);
          for (const auto& row : probe_fields) text_column = text_column || (n_text < row.size() && !parse_number(row[n_text], value));
          if (!text_column) break;
          ++n_text;
        }
      }
      if (n_text >= n_fields) {
        throw InputError(fmt::format("{}: line {} holds no number after its {} name fields: not a count table", path_,
                                     lines[first_data].number, n_text));
      }
      const std::size_t n_values = n_fields - n_text;
      const std::size_t n_rows = lines.size() - first_data;
      if (n_values > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()) ||
          n_rows > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
        throw InputError(fmt::format("{}: {} rows x {} columns: over 2^31 on a side", path_, n_rows, n_values));
      }
      const std::size_t header_offset = no_corner ? n_text - 1 : n_text;  // first value column's name in the header
      column_names.assign(header.begin() + static_cast<std::ptrdiff_t>(header_offset), header.end());
      for (std::size_t k = 1; k < n_text; ++k) {
        const std::size_t at = no_corner ? k - 1 : k;
        text_names.push_back(header[at].empty() ? fmt::format("column{}", k + 1) : header[at]);
      }
      row_text.resize(n_text > 0 ? n_text - 1 : 0);
      table.reset(0, 0, static_cast<std::int64_t>(n_values));
      for (std::size_t l = first_data; l < lines.size(); ++l) {
        split_fields(lines[l].text, delimiter, fields);
        if (fields.size() != n_fields) {
          throw InputError(fmt::format("{}: line {} has {} fields, line {} has {}", path_, lines[l].number, fields.size(),
                                       lines[first_data].number, n_fields));
        }
        row_names.emplace_back(cosmx ? fmt::format("{}_{}", fields[0], fields[1]) : n_text > 0 ? std::string(fields[0]) : std::to_string(row_names.size() + 1));
        if (cosmx) {
          cosmx_fov.emplace_back(fields[0]);
          if (parse_number(fields[1], value) && value == 0) ++n_background;
        }
        for (std::size_t k = 1; k < n_text; ++k) row_text[k - 1].emplace_back(fields[k]);
        for (std::size_t c = 0; c < n_values; ++c) {
          if (!parse_number(fields[n_text + c], value)) {
            throw InputError(fmt::format("{}: line {}, column {} ('{}') is not a number", path_, lines[l].number, n_text + c + 1,
                                         fields[n_text + c].substr(0, 40)));
          }
          if (value == 0) continue;
          integers = integers && value == std::floor(value);
          table.indices.push_back(static_cast<std::int32_t>(c));
          table.values.push_back(value);
        }
        table.indptr.push_back(static_cast<std::int64_t>(table.indices.size()));
        ++table.n_rows;
      }
    }

    // Which side is the cells: barcodes are cells, Ensembl ids are genes; else the longer side
    // is the genes (a GEO table of a few hundred cells x 20,000 genes, or its transpose).
    const bool rows_barcodes = mostly(row_names, barcode_like);
    const bool columns_barcodes = mostly(column_names, barcode_like);
    const bool rows_ensembl = mostly(row_names, ensembl_like);
    const bool columns_ensembl = mostly(column_names, ensembl_like);
    bool rows_are_genes = row_names.size() >= column_names.size();
    std::string why = "the longer side read as genes";
    if ((columns_barcodes && !rows_barcodes) || (rows_ensembl && !columns_ensembl)) {
      rows_are_genes = true;
      why = columns_barcodes && !rows_barcodes ? "columns named like cell barcodes" : "rows named by Ensembl ids";
    } else if ((rows_barcodes && !columns_barcodes) || (columns_ensembl && !rows_ensembl) || numbered_cells) {
      rows_are_genes = false;
      why = rows_barcodes && !columns_barcodes ? "rows named like cell barcodes"
            : numbered_cells                   ? "rows named by numbers"
                                               : "columns named by Ensembl ids";
    } else if (corner.find("gene") != std::string::npos || corner.find("symbol") != std::string::npos ||
               corner.find("feature") != std::string::npos) {
      rows_are_genes = true;
      why = fmt::format("rows named '{}'", corner);
    } else if (corner.find("cell") != std::string::npos || corner.find("barcode") != std::string::npos) {
      rows_are_genes = false;
      why = fmt::format("rows named '{}'", corner);
    }

    auto matrix = std::make_shared<CsrBlockF64>();
    if (rows_are_genes) {
      var_.index = std::move(row_names);
      for (std::size_t k = 0; k < row_text.size(); ++k) var_.columns.push_back(Column::from_strings(text_names[k], std::move(row_text[k])));
      obs_.index = std::move(column_names);
      *matrix = transpose(table);
    } else {
      obs_.index = std::move(row_names);
      if (cosmx) obs_.columns.push_back(metadata_column(cosmx_fov_name, cosmx_fov));
      // numbers (nCount_RNA, percent.mt) stay numbers; text (cell types, clusters' names) is categorical
      for (std::size_t k = 0; k < row_text.size(); ++k) obs_.columns.push_back(metadata_column(text_names[k], row_text[k]));
      var_.index = std::move(column_names);
      *matrix = std::move(table);
    }
    matrix_ = std::move(matrix);
    info_.source = std::string("X");  // not `= "X"`: GCC 12 -O3 raises a bogus -Wrestrict (GCC bug 105329)
    info_.encoding = MatrixEncoding::kCsr;
    info_.n_rows = matrix_->n_rows;
    info_.n_cols = matrix_->n_cols;
    info_.nnz = matrix_->nnz();
    info_.value_dtype = integers ? "int64" : "float64";
    info_.index_dtype = "int32";
    const char* separator = delimiter == Delimiter::kTab         ? "tab"
                            : delimiter == Delimiter::kComma     ? "comma"
                            : delimiter == Delimiter::kSemicolon ? "semicolon"
                                                                 : "blank";
    if (cosmx) why = "CosMx's fov and cell_ID columns";
    info_.compression = fmt::format("text, {}-separated, {} ({}){}", separator, rows_are_genes ? "genes x cells" : "cells x genes", why,
                                    ends_with(path_, ".gz") ? ", gzip" : "");
    if (n_background > 0) {
      note_ = fmt::format("{} of its {} rows have cell_ID 0 (CosMx's transcripts outside every cell, one row per fov): they are annotated "
                          "like cells; leave them out (cell_ID > 0) before reading their labels",
                          n_background, obs_.index.size());
    }
    info_.stored_bytes = static_cast<std::int64_t>(std::filesystem::file_size(path_));
  }

  /// Rows x columns CSR -> columns x rows CSR (column indices ascending in each new row).
  static CsrBlockF64 transpose(const CsrBlockF64& table) {
    CsrBlockF64 out;
    out.reset(0, table.n_cols, table.n_rows);
    out.indptr.assign(static_cast<std::size_t>(table.n_cols) + 1, 0);
    for (const std::int32_t column : table.indices) ++out.indptr[static_cast<std::size_t>(column) + 1];
    std::partial_sum(out.indptr.begin(), out.indptr.end(), out.indptr.begin());
    std::vector<std::int64_t> next(out.indptr.begin(), out.indptr.end() - 1);
    out.indices.resize(table.indices.size());
    out.values.resize(table.values.size());
    for (std::int64_t r = 0; r < table.n_rows; ++r) {
      for (auto k = table.indptr[static_cast<std::size_t>(r)]; k < table.indptr[static_cast<std::size_t>(r) + 1]; ++k) {
        const auto slot = static_cast<std::size_t>(next[static_cast<std::size_t>(table.indices[static_cast<std::size_t>(k)])]++);
        out.indices[slot] = static_cast<std::int32_t>(r);
        out.values[slot] = table.values[static_cast<std::size_t>(k)];
      }
    }
    return out;
  }

  std::string path_;
  DataFrame obs_;
  DataFrame var_;
  std::shared_ptr<const CsrBlockF64> matrix_;
  MatrixInfo info_;
  std::string note_;  // reading_note: CosMx's background rows
};

/// `base` with obs columns joined from a cell table (replacing same-named ones); everything else
/// is the base's. Only the columns asked for are read from the base (a CELLxGENE obs is wide).
class CellTableDataset final : public Dataset {
 public:
  CellTableDataset(std::unique_ptr<Dataset> base, std::vector<std::string> index, std::vector<Column> joined, std::vector<std::string> hidden)
      : base_(std::move(base)), index_(std::move(index)), joined_(std::move(joined)), hidden_(std::move(hidden)) {}
  const std::string& path() const override { return base_->path(); }
  std::string format() const override { return base_->format(); }
  std::int64_t n_obs() const override { return base_->n_obs(); }
  std::int64_t n_vars() const override { return base_->n_vars(); }
  DataFrame read_obs() const override { return merge(base_->read_obs()); }
  DataFrame read_obs_columns(const std::vector<std::string>& names) const override {
    std::vector<std::string> from_base;
    for (const std::string& name : names) {
      if (!is_joined(name)) from_base.push_back(name);
    }
    const std::vector<std::string> available = obs_column_names();
    for (const std::string& name : names) {
      if (std::find(available.begin(), available.end(), name) == available.end()) {
        throw InputError(fmt::format("obs of {} has no column '{}' (columns: {})", path(), name, fmt::join(available, ", ")));
      }
    }
    DataFrame frame = merge(base_->read_obs_columns(from_base));
    std::erase_if(frame.columns, [&](const Column& column) { return std::find(names.begin(), names.end(), column.name) == names.end(); });
    return frame;
  }
  std::vector<std::string> obs_column_names() const override {
    std::vector<std::string> names;
    for (const std::string& name : base_->obs_column_names()) {
      if (!is_joined(name) && !is_hidden(name)) names.push_back(name);
    }
    for (const Column& column : joined_) names.push_back(column.name);
    return names;
  }
  DataFrame read_var() const override { return base_->read_var(); }
  std::vector<std::string> matrix_sources() const override { return base_->matrix_sources(); }
  DataFrame read_var_of(const std::string& source) const override { return base_->read_var_of(source); }
  MatrixInfo matrix_info(const std::string& source) const override { return base_->matrix_info(source); }
  std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override { return base_->open_matrix(source); }
  const H5adFile* h5ad_file() const override { return base_->h5ad_file(); }
  std::string reading_note() const override { return base_->reading_note(); }

 private:
  bool is_joined(const std::string& name) const {
    return std::any_of(joined_.begin(), joined_.end(), [&](const Column& column) { return column.name == name; });
  }
  bool is_hidden(const std::string& name) const { return std::find(hidden_.begin(), hidden_.end(), name) != hidden_.end(); }
  DataFrame merge(DataFrame frame) const {
    std::erase_if(frame.columns, [&](const Column& column) { return is_joined(column.name) || is_hidden(column.name); });
    frame.columns.insert(frame.columns.end(), joined_.begin(), joined_.end());
    frame.index = index_;
    return frame;
  }

  std::unique_ptr<Dataset> base_;
  std::vector<std::string> index_;
  std::vector<Column> joined_;
  std::vector<std::string> hidden_;  ///< the base's `<column>_ontology_term_id` of replaced columns
};

}  // namespace

DataFrame read_cell_table(const std::string& path) {
  const std::string text = detail::read_text_file(path);
  std::vector<Line> lines = numbered_lines(text);
  std::erase_if(lines, [](const Line& line) { return line.text.front() == '#'; });
  if (lines.size() < 2) throw InputError(fmt::format("{}: a cell table needs a header line and at least one cell", path));
  const std::string_view first = lines.front().text;
  // (from the header and the first cell: a one-column table's header holds no delimiter)
  const Delimiter delimiter = guess_delimiter(first, lines[1].text);
  std::vector<std::string_view> fields;
  split_fields(first, delimiter, fields);
  std::vector<std::string> header(fields.begin(), fields.end());
  split_fields(lines[1].text, delimiter, fields);
  const std::size_t n_fields = fields.size();
  if (header.size() + 1 == n_fields) header.insert(header.begin(), std::string());  // R's write.table: no corner field
  if (header.size() != n_fields || n_fields < 2) {
    throw InputError(fmt::format("{}: the header (line {}) has {} fields but line {} has {}: not a table of one cell per line", path,
                                 lines.front().number, header.size(), lines[1].number, n_fields));
  }
  std::unordered_map<std::string_view, std::size_t> field_of;
  for (std::size_t k = 1; k < n_fields; ++k) {
    if (header[k].empty()) continue;
    if (const auto [at, fresh] = field_of.emplace(header[k], k); !fresh) {
      throw InputError(fmt::format("{}: the header names the column '{}' twice (fields {} and {}): one would be lost; rename one", path,
                                   header[k], at->second + 1, k + 1));
    }
  }
  DataFrame table;
  table.origin = path;
  std::vector<std::vector<std::string>> values(n_fields - 1);
  for (std::size_t l = 1; l < lines.size(); ++l) {
    split_fields(lines[l].text, delimiter, fields);
    if (fields.size() != n_fields) {
      throw InputError(fmt::format("{}: line {} has {} fields, line {} has {}", path, lines[l].number, fields.size(), lines[1].number, n_fields));
    }
    table.index.emplace_back(fields[0]);
    for (std::size_t k = 1; k < n_fields; ++k) values[k - 1].emplace_back(fields[k]);
  }
  std::unordered_map<std::string_view, std::size_t> first_line;
  for (std::size_t row = 0; row < table.index.size(); ++row) {
    if (const auto [at, fresh] = first_line.emplace(table.index[row], row); !fresh) {
      throw InputError(fmt::format("{}: the cell '{}' appears twice (rows {} and {}): cell names must be unique (barcodes of several "
                                   "samples need their sample in the name)",
                                   path, table.index[row], at->second + 1, row + 1));
    }
  }
  for (std::size_t k = 1; k < n_fields; ++k) {
    table.columns.push_back(metadata_column(header[k].empty() ? fmt::format("column{}", k + 1) : header[k], values[k - 1]));
  }
  return table;
}

std::unique_ptr<Dataset> with_cell_table(std::unique_ptr<Dataset> dataset, const DataFrame& table, const std::string& table_path) {
  std::vector<std::string> index = dataset->read_obs_columns({}).index;
  std::unordered_map<std::string_view, std::size_t> row_of;
  row_of.reserve(table.index.size());
  for (std::size_t row = 0; row < table.index.size(); ++row) row_of.emplace(table.index[row], row);
  std::vector<std::int64_t> rows(index.size(), -1);
  std::size_t matched = 0;
  for (std::size_t cell = 0; cell < index.size(); ++cell) {
    if (const auto found = row_of.find(index[cell]); found != row_of.end()) {
      rows[cell] = static_cast<std::int64_t>(found->second);
      ++matched;
    }
  }
  if (matched == 0) {
    throw InputError(fmt::format("{}: none of the {} cell names of {} (e.g. {}) is in the first column of {} (e.g. {})", table_path,
                                 index.size(), dataset->path(), index.empty() ? std::string("none") : index.front(), table_path,
                                 table.index.empty() ? std::string("none") : table.index.front()));
  }
  std::vector<Column> joined;
  std::vector<std::string> hidden;
  for (const Column& column : table.columns) {
    std::vector<std::string> values(index.size());
    for (std::size_t cell = 0; cell < rows.size(); ++cell) {
      if (rows[cell] >= 0) values[cell] = column.value_as_string(static_cast<std::size_t>(rows[cell]));  // "" = missing
    }
    joined.push_back(metadata_column(column.name, values));
    // a replaced label column's CL ids (CELLxGENE's cell_type_ontology_term_id) no longer describe it
    const std::string ids = column.name + "_ontology_term_id";
    if (std::none_of(table.columns.begin(), table.columns.end(), [&](const Column& other) { return other.name == ids; })) hidden.push_back(ids);
  }
  return std::make_unique<CellTableDataset>(std::move(dataset), std::move(index), std::move(joined), std::move(hidden));
}

bool is_text_matrix_path(const std::string& path) {
  const std::string lower = genes_detail::ascii_lower(path);  // ".CSV" too
  std::string_view name(lower);
  if (ends_with(name, ".gz")) name.remove_suffix(3);
  return ends_with(name, ".csv") || ends_with(name, ".tsv") || ends_with(name, ".txt");
}

std::unique_ptr<Dataset> open_text_matrix(const std::string& path) { return std::make_unique<TextMatrixDataset>(path); }

}  // namespace celltyper
