// R objects saved with saveRDS, read through Rscript (rds.hpp).
#include <celltyper/error.hpp>
#include <celltyper/file_checks.hpp>
#include <celltyper/memory_dataset.hpp>
#include <celltyper/output_file.hpp>
#include <celltyper/rds.hpp>
#include <celltyper/text_matrix.hpp>

#include "io/matrix_readers.hpp"
#include "io/subprocess.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace celltyper {
namespace {

namespace fs = std::filesystem;

/// The R side: load the object, pick its counts, write them as a dgCMatrix's slots (binary: nrow,
/// ncol, p, i as int32, x as float64), the gene and cell names (one per line) and the per-cell
/// metadata (write.csv), and what was read (class, matrix).
constexpr const char* kExportScript = R"R(
# Text in and out as UTF-8 whatever the caller's locale (under LC_ALL=C write.csv would escape
# names as <U+00E9>, writeLines(useBytes) write their bytes: the two would disagree).
invisible(suppressWarnings(Sys.setlocale("LC_CTYPE", "C.UTF-8")))
args <- commandArgs(trailingOnly = TRUE)
input <- args[[1]]; out <- args[[2]]
fail <- function(message) {  # R's message in a file of its own (any language, any length)
  writeLines(enc2utf8(message), file.path(out, "error.txt"), useBytes = TRUE)
  quit(save = "no", status = 1)
}
tryCatch({
  obj <- readRDS(input)
  suppressPackageStartupMessages(library(Matrix))
  meta <- NULL
  genes <- NULL
  note <- ""
  what <- class(obj)[[1]]
  if (inherits(obj, "Seurat")) {
    suppressPackageStartupMessages(library(SeuratObject))
    assays <- names(obj@assays)
    assay <- if ("RNA" %in% assays) "RNA" else DefaultAssay(obj)
    # Seurat 5 keeps merged samples in layers counts.1, counts.2, ...: one matrix of every cell.
    if (inherits(obj[[assay]], "Assay5") && exists("JoinLayers", mode = "function")) obj[[assay]] <- JoinLayers(obj[[assay]])
    layer_of <- function(layer) {
      m <- tryCatch(suppressWarnings(if (exists("LayerData", mode = "function")) LayerData(obj, assay = assay, layer = layer)
                                     else GetAssayData(obj, assay = assay, slot = layer)), error = function(e) NULL)
      if (is.null(m) || prod(dim(m)) == 0 || (inherits(m, "sparseMatrix") && length(m@x) == 0)) NULL else m
    }
    counts <- layer_of("counts"); source <- "counts"
    if (is.null(counts)) { counts <- layer_of("data"); source <- "data" }
    if (is.null(counts)) stop("assay ", assay, " of the Seurat object holds neither counts nor data")
    meta <- obj@meta.data
    if (!is.null(colnames(counts)) && all(colnames(counts) %in% rownames(meta))) meta <- meta[colnames(counts), , drop = FALSE]
    source <- paste0("assay ", assay, ", ", source)
    if (assay == "SCT") {
      note <- paste0("the Seurat object has no RNA assay: assay SCT's ", sub("^assay SCT, ", "", source),
                     " read, SCTransform's corrected values (depth-equalised, not the sequenced counts)")
    } else if (assay == "integrated") {
      note <- paste0("the Seurat object has no RNA assay: assay integrated's ", sub("^assay integrated, ", "", source),
                     " read, batch-corrected values (not counts; they may be negative)")
    } else if (assay != "RNA") {
      note <- paste0("the Seurat object has no RNA assay: its default assay ", assay, " read")
    }
  } else if (inherits(obj, "SummarizedExperiment")) {
    suppressPackageStartupMessages(library(SummarizedExperiment))
    kinds <- assayNames(obj)
    if (length(kinds) == 0) stop("the ", what, " holds no assay")
    chosen <- if ("counts" %in% kinds) "counts" else kinds[[1]]
    counts <- assay(obj, chosen, withDimnames = TRUE)
    meta <- as.data.frame(colData(obj), optional = TRUE)
    if (is.null(colnames(counts))) {  # DropletUtils::read10xCounts leaves them NULL: its Barcode column
      colnames(counts) <- if ("Barcode" %in% names(meta)) as.character(meta$Barcode) else paste0("cell", seq_len(ncol(counts)))
    }
    if (is.null(rownames(counts))) {
      features <- as.data.frame(rowData(obj), optional = TRUE)
      for (column in c("Symbol", "symbol", "gene_name", "ID", "gene_id")) {
        if (column %in% names(features)) { rownames(counts) <- as.character(features[[column]]); break }
      }
    }
    source <- paste0("assay ", chosen)
  } else if (inherits(obj, "Matrix") || is.matrix(obj) || is.data.frame(obj)) {
    counts <- obj; source <- "matrix"
  } else {
    stop("a ", what, " object: celltyper reads Seurat objects, SingleCellExperiment objects and count matrices (genes x cells)")
  }
  if (is.data.frame(counts)) {
    # A count table read with read.csv keeps its gene names as a text column: the row names.
    text <- names(counts)[!vapply(counts, is.numeric, logical(1))]
    # (gene names are (nearly) unique; a column of cell types repeats: cell metadata, not counts)
    if (length(text) == 1 && ncol(counts) > 1 && length(unique(counts[[text]])) >= 0.9 * nrow(counts)) {
      names_column <- as.character(counts[[text]])
      counts <- as.matrix(counts[, setdiff(names(counts), text), drop = FALSE])
      rownames(counts) <- names_column
    } else if (length(text) > 0) {
      stop("a data.frame with ", length(text), ngettext(length(text), " text column (", " text columns ("), paste(head(text, 5), collapse = ", "),
           "): not a count table (cell metadata?); celltyper reads Seurat and SingleCellExperiment objects and count matrices ",
           "(genes x cells, the gene names as row names or in one text column)")
    } else {
      counts <- as.matrix(counts)
    }
  }
  if (is.matrix(counts) && !is.numeric(counts)) stop("a ", typeof(counts), " matrix: not counts (celltyper reads numeric count matrices, genes x cells)")
  if (!inherits(counts, "dgCMatrix")) counts <- as(as(as(counts, "CsparseMatrix"), "generalMatrix"), "dMatrix")
  if (is.null(rownames(counts)) || is.null(colnames(counts))) stop("the matrix has no row (gene) or column (cell) names")
  con <- file(file.path(out, "matrix.bin"), "wb")
  writeBin(as.integer(dim(counts)), con, size = 4)
  writeBin(as.integer(counts@p), con, size = 4)
  writeBin(as.integer(counts@i), con, size = 4)
  writeBin(as.double(counts@x), con, size = 8)
  close(con)
  writeLines(enc2utf8(rownames(counts)), file.path(out, "genes.txt"), useBytes = TRUE)
  writeLines(enc2utf8(colnames(counts)), file.path(out, "cells.txt"), useBytes = TRUE)
  if (!is.null(meta) && ncol(meta) > 0) {
    meta <- meta[, vapply(meta, is.atomic, logical(1)), drop = FALSE]  # list columns cannot be a table's
    rownames(meta) <- NULL  # rows are the matrix's columns, in order (cell names may repeat after cbind)
    for (column in names(meta)) if (is.character(meta[[column]])) meta[[column]] <- enc2utf8(meta[[column]])
    # Factors (seurat_clusters, cell types) stay categories: their codes go in the table, their
    # levels in factors.txt (name, ordered, count, levels: a line each), else "0".."15" read as numbers.
    factors <- character(0)
    for (column in names(meta)) {
      values <- meta[[column]]
      if (!is.factor(values)) next
      text <- enc2utf8(c(column, levels(values)))
      if (any(grepl("[\r\n]", text))) next  # (a name or level on several lines: left to write.csv)
      factors <- c(factors, text[[1]], if (is.ordered(values)) "ordered" else "unordered", length(levels(values)), text[-1])
      meta[[column]] <- as.integer(values)
    }
    if (length(factors) > 0) writeLines(factors, file.path(out, "factors.txt"), useBytes = TRUE)
    if (ncol(meta) > 0) write.csv(meta, file.path(out, "obs.csv"), fileEncoding = "UTF-8")
  }
  writeLines(c(what, source, note), file.path(out, "about.txt"), useBytes = TRUE)
}, error = function(e) fail(conditionMessage(e)))
)R";

std::vector<std::string> read_lines(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: R wrote no such file", file.string()));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

/// R's error message in its log: from the first line starting "Error" on (else the last line).
std::string r_error(const fs::path& log) {
  std::ifstream in(log);
  std::string line;
  std::string message;
  bool in_error = false;
  while (std::getline(in, line)) {
    if (line.rfind("Error", 0) == 0) in_error = true;
    if (in_error && line != "Execution halted") message += (message.empty() ? "" : " ") + line;
  }
  if (message.empty()) message = detail::last_line(log);
  if (message.size() > 600) message = message.substr(0, 600) + " ...";
  return message;
}

/// The dgCMatrix slots R wrote: genes x cells CSC, which is cells x genes CSR.
CsrBlockF64 read_matrix(const fs::path& file, std::size_t n_genes, std::size_t n_cells, const std::string& path) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in) throw IoError(fmt::format("{}: R wrote no matrix", path));
  const auto bytes = static_cast<std::uint64_t>(in.tellg());
  in.seekg(0);
  const auto fail = [&](const std::string& what) { throw InputError(fmt::format("{}: the matrix R wrote is malformed ({})", path, what)); };
  std::int32_t dims[2] = {0, 0};
  if (bytes < 8 || !in.read(reinterpret_cast<char*>(dims), 8)) fail("no dimensions");
  if (dims[0] < 0 || dims[1] < 0 || static_cast<std::size_t>(dims[0]) != n_genes || static_cast<std::size_t>(dims[1]) != n_cells) {
    fail(fmt::format("{} x {} for {} gene and {} cell names", dims[0], dims[1], n_genes, n_cells));
  }
  std::vector<std::int32_t> p(n_cells + 1);
  if (bytes < 8 + 4 * p.size() || !in.read(reinterpret_cast<char*>(p.data()), static_cast<std::streamsize>(4 * p.size()))) fail("short column pointers");
  const std::int64_t nnz = p.back();
  if (p.front() != 0 || nnz < 0 || bytes != 8 + 4 * p.size() + 12 * static_cast<std::uint64_t>(nnz)) fail("sizes disagree");
  CsrBlockF64 csr;
  csr.reset(0, static_cast<std::int64_t>(n_cells), static_cast<std::int64_t>(n_genes));
  for (std::size_t c = 1; c < p.size(); ++c) {
    if (p[c] < p[c - 1]) fail(fmt::format("column pointers decrease at cell {}", c - 1));
    csr.indptr.push_back(p[c]);
  }
  csr.indices.resize(static_cast<std::size_t>(nnz));
  csr.values.resize(static_cast<std::size_t>(nnz));
  if (!in.read(reinterpret_cast<char*>(csr.indices.data()), static_cast<std::streamsize>(4 * nnz)) ||
      !in.read(reinterpret_cast<char*>(csr.values.data()), static_cast<std::streamsize>(8 * nnz))) {
    fail("short values");
  }
  detail::check_block_indices(csr, path, "counts");  // gene indices in range, each once per cell, sorted
  return csr;
}

}  // namespace

bool is_rds_path(const std::string& path) {
  if (path.size() < 4) return false;
  std::string extension = path.substr(path.size() - 4);
  std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension == ".rds";
}

/// The factor columns of `obs` (R wrote their codes, 1-based, NA when missing) as categoricals
/// of their levels, from factors.txt: per factor its name, "ordered" or "unordered", the number
/// of levels, then the levels, a line each.
void restore_factors(const std::vector<std::string>& lines, DataFrame& obs, const std::string& path) {
  const auto bad = [&path](const std::string& why) { return InputError(fmt::format("{}: R's factor list is damaged: {}", path, why)); };
  for (std::size_t at = 0; at < lines.size();) {
    if (at + 3 > lines.size()) throw bad("a factor without its levels");
    const std::string& name = lines[at];
    const bool ordered = lines[at + 1] == "ordered";
    std::size_t n_levels = 0;
    try {
      n_levels = static_cast<std::size_t>(std::stoull(lines[at + 2]));
    } catch (const std::exception&) {
      throw bad(fmt::format("'{}' is no number of levels", lines[at + 2]));
    }
    if (at + 3 + n_levels > lines.size()) throw bad(fmt::format("factor '{}' has fewer levels than {}", name, n_levels));
    std::vector<std::string> levels(lines.begin() + static_cast<std::ptrdiff_t>(at + 3), lines.begin() + static_cast<std::ptrdiff_t>(at + 3 + n_levels));
    at += 3 + n_levels;
    Column* column = obs.find(name);
    if (column == nullptr) continue;
    Column categorical;
    categorical.name = column->name;
    categorical.kind = ColumnKind::kCategorical;
    categorical.dtype = "category";
    categorical.categories_dtype = "str";
    categorical.ordered = ordered;
    categorical.codes.reserve(column->size());
    for (std::size_t row = 0; row < column->size(); ++row) {
      if (column->is_missing(row)) {
        categorical.codes.push_back(-1);
        continue;
      }
      const std::string text = column->value_as_string(row);
      char* end = nullptr;
      const double code = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0' || code != std::floor(code) || code < 1 || code > static_cast<double>(n_levels)) {
        throw bad(fmt::format("factor '{}' has code '{}' for {} levels", name, text, n_levels));
      }
      categorical.codes.push_back(static_cast<std::int32_t>(code) - 1);
    }
    categorical.categories = std::move(levels);
    *column = std::move(categorical);
  }
}

std::unique_ptr<Dataset> open_rds(const std::string& path) {
  require_readable(path, "R data file");
  const char* configured = std::getenv("CELLTYPER_RSCRIPT");
  const bool named = configured != nullptr && *configured != '\0';
  std::string rscript = named ? std::string(configured) : detail::find_on_path({"Rscript"});
  if (named && rscript.find('/') == std::string::npos) rscript = detail::find_on_path({configured});  // a bare name: on PATH
  if (rscript.empty() || !detail::is_executable(rscript)) {
    throw UnsupportedError(fmt::format(
        "{}: reading an .rds file needs R (Rscript{}), which was not found: install R and the object's packages (Debian: apt-get install "
        "r-base-core r-cran-seurat), or {} CELLTYPER_RSCRIPT; or export the counts in R, e.g. SeuratDisk::Convert to .h5ad, or "
        "DropletUtils::write10xCounts / Matrix::writeMM to an MTX folder",
        path, named ? fmt::format(" '{}'", configured) : std::string(), named ? "correct" : "set"));
  }
  const detail::ScratchDirectory scratch("celltyper-rds");
  // What R writes there is removed if a signal ends celltyper meanwhile (R itself dies with it).
  std::vector<std::unique_ptr<SignalCleanup>> cleanup;
  for (const char* name : {"export.R", "R.log", "error.txt", "matrix.bin", "genes.txt", "cells.txt", "obs.csv", "factors.txt", "about.txt"}) {
    cleanup.push_back(std::make_unique<SignalCleanup>((scratch.path() / name).string()));
  }
  cleanup.push_back(std::make_unique<SignalCleanup>(scratch.path().string()));
  const fs::path script = scratch.path() / "export.R";
  {
    std::ofstream out(script);
    out << kExportScript;
    out.flush();
    if (!out) throw IoError(fmt::format("cannot write {} (disk full?)", script.string()));
  }
  const fs::path log = scratch.path() / "R.log";
  constexpr int kTimeoutSeconds = 3600;
  const int status = detail::run_with_timeout({rscript, "--no-save", "--no-restore", script.string(), fs::absolute(path).string(),
                                               scratch.path().string()},
                                              log, kTimeoutSeconds);
  if (status != 0) {
    std::error_code error;
    const fs::path message = scratch.path() / "error.txt";
    std::string text = fs::exists(message, error) ? detail::last_line(message) : r_error(log);
    if (text.empty()) text = "(no message)";
    // readRDS on a cut or damaged file: R's words are about connections and formats, or R crashes.
    const bool damaged = text.find("error reading from connection") != std::string::npos || text.find("unknown input format") != std::string::npos ||
                         text.find("ReadItem") != std::string::npos || text.find("decompression") != std::string::npos ||
                         text.find("irrecoverable") != std::string::npos;
    // The object's package missing from this R: the environment lacks something, as R itself would.
    if (text.find("there is no package called") != std::string::npos || text.find("unable to find required package") != std::string::npos) {
      throw UnsupportedError(fmt::format("{}: R could not load the object's package: {} (install it in the R that celltyper runs, {}: e.g. "
                                         "Debian's r-cran-seurat, r-bioc-singlecellexperiment)",
                                         path, text, rscript));
    }
    if (status >= 128 && !damaged) {  // (the OOM killer's SIGKILL on a large object, a crash)
      throw InputError(fmt::format("{}: R was killed by signal {} while exporting it (out of memory?): {}", path, status - 128, text));
    }
    throw InputError(fmt::format("{}: R could not export it (exit status {}): {}{}", path, status, text,
                                 damaged ? " (the file looks truncated or damaged: copy it again, or save it again with saveRDS)" : ""));
  }
  const std::vector<std::string> genes = read_lines(scratch.path() / "genes.txt");
  const std::vector<std::string> cells = read_lines(scratch.path() / "cells.txt");
  CsrBlockF64 matrix = read_matrix(scratch.path() / "matrix.bin", genes.size(), cells.size(), path);
  const bool integers = std::all_of(matrix.values.begin(), matrix.values.end(), [](double v) { return v == std::floor(v); });
  DataFrame var;
  var.index = genes;
  var.origin = path + " (genes)";
  DataFrame obs;
  std::error_code error;
  if (fs::exists(scratch.path() / "obs.csv", error)) {
    // One row per matrix column, in order (R wrote row numbers as names: cell names may repeat).
    obs = read_cell_table((scratch.path() / "obs.csv").string());
    if (obs.n_rows() != cells.size()) throw InputError(fmt::format("{}: R wrote metadata for {} cells and a matrix of {}", path, obs.n_rows(), cells.size()));
    if (fs::exists(scratch.path() / "factors.txt", error)) restore_factors(read_lines(scratch.path() / "factors.txt"), obs, path);
  }
  obs.index = cells;
  obs.index_name = "_index";
  obs.origin = path + " (cells)";
  const std::vector<std::string> about = read_lines(scratch.path() / "about.txt");
  const std::string read_what = about.size() >= 2 ? about[0] + ", " + about[1] : std::string("?");
  MemoryDatasetLabels labels;
  labels.format = "rds";
  labels.compression = fmt::format("rds, read by R: {}", read_what);  // e.g. "Seurat, assay RNA, counts"
  labels.value_dtype = integers ? "int64" : "float64";
  const auto file_bytes = fs::file_size(path, error);
  labels.stored_bytes = error ? 0 : static_cast<std::int64_t>(file_bytes);
  if (about.size() >= 3) labels.note = about[2];
  return std::make_unique<MemoryDataset>(path, std::move(obs), std::move(var), std::move(matrix), std::move(labels));
}

}  // namespace celltyper
