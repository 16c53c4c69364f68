// build_catalog: files in parallel, one set of Parquet parts per finished file, resume.
#include <celltyper/catalog.hpp>
#include <celltyper/error.hpp>
#include <celltyper/output_file.hpp>
#include <celltyper/parallel.hpp>

#include "corpus/catalog_record.hpp"
#include "corpus/duckdb_util.hpp"

#include <fmt/format.h>
#include <fnmatch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace celltyper {

namespace fs = std::filesystem;
using corpus::detail::Appender;
using corpus::detail::DuckDb;
using corpus::detail::duckdb_api;
using corpus::detail::FileRecord;
using corpus::detail::sql_literal;

namespace {

/// FNV-1a 64-bit hash of a path, as 16 hex digits: the name of the file's Parquet parts.
std::string part_id(const std::string& path) {
  std::uint64_t hash = 14695981039346656037ull;
  for (const char c : path) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return fmt::format("{:016x}", hash);
}

const CatalogTable& table(const std::string& name) {
  for (const auto& t : catalog_schema()) {
    if (name == t.name) return t;
  }
  throw std::logic_error("no catalogue table " + name);
}

std::string create_table_sql(const CatalogTable& t, const std::string& name) {
  std::string sql = fmt::format("CREATE OR REPLACE TEMP TABLE {} (", name);
  for (std::size_t i = 0; i < t.columns.size(); ++i) {
    sql += fmt::format("{}\"{}\" {}", i == 0 ? "" : ", ", t.columns[i].name, t.columns[i].sql_type);
  }
  return sql + ")";
}

/// Writes each file's rows as Parquet parts (one writer at a time).
class CatalogWriter {
 public:
  explicit CatalogWriter(fs::path dir) : dir_(std::move(dir)) {
    for (const auto& t : catalog_schema()) {
      std::error_code error;
      fs::create_directories(dir_ / t.name, error);
      if (error) throw IoError(fmt::format("cannot create catalogue directory {}: {}", (dir_ / t.name).string(), error.message()));
    }
  }

  void write(const FileRecord& record) {
    std::lock_guard lock(mutex_);
    const std::string id = part_id(record.path);
    // Child tables first, the files row last: a files part marks the file as complete.
    remove_part("obs_categories", id);
    remove_part("cell_qc", id);
    if (record.status == "ok") {
      write_categories(record, id);
      if (record.qc) write_qc(record, id);
    }
    write_files_row(record, id);
  }

 private:
  void remove_part(const char* name, const std::string& id) {
    std::error_code error;
    fs::remove(dir_ / name / fmt::format("part-{}.parquet", id), error);
  }

  /// COPY the staging table to dir/name/part-<id>.parquet through a temporary name.
  void copy_out(const std::string& staging, const char* name, const std::string& id) {
    const fs::path final_path = dir_ / name / fmt::format("part-{}.parquet", id);
    OutputFile output(final_path.string());
    db_.execute(fmt::format("COPY {} TO {} (FORMAT PARQUET)", staging, sql_literal(output.temporary())),
                fmt::format("cannot write {}", final_path.string()));
    output.commit();
  }

  void write_categories(const FileRecord& record, const std::string& id) {
    db_.execute(create_table_sql(table("obs_categories"), "staging_obs_categories"), "DuckDB: create table");
    {
      Appender rows(db_, "staging_obs_categories");
      for (const auto& row : record.categories) {
        rows.text(row.file).text(row.column).text_or_null(row.category).integer(row.n_cells).end_row();
      }
      rows.close();
    }
    copy_out("staging_obs_categories", "obs_categories", id);
  }

  void write_qc(const FileRecord& record, const std::string& id) {
    db_.execute(create_table_sql(table("cell_qc"), "staging_cell_qc"), "DuckDB: create table");
    {
      Appender rows(db_, "staging_cell_qc");
      for (const auto& row : record.qc_rows) {
        rows.text(record.path).text(record.qc_matrix).text(row.metric).integer(row.n_cells);
        for (const double value : {row.min, row.q05, row.q25, row.median, row.q75, row.q95, row.max, row.mean}) {
          if (std::isnan(value)) {
            rows.null();
          } else {
            rows.real(value);
          }
        }
        rows.real_list(row.histogram_lower).integer_list(row.histogram_counts).end_row();
      }
      rows.close();
    }
    copy_out("staging_cell_qc", "cell_qc", id);
  }

  void write_files_row(const FileRecord& r, const std::string& id) {
    db_.execute(create_table_sql(table("files"), "staging_files"), "DuckDB: create table");
    {
      Appender row(db_, "staging_files");
      const bool ok = r.status == "ok";
      row.text(r.path).text(r.status);
      if (ok) {
        row.null();
      } else {
        row.text(r.error);
      }
      if (r.size_bytes > 0 || ok) {
        row.integer(static_cast<std::int64_t>(r.size_bytes));
      } else {
        row.null();
      }
      if (r.modified_unix) {
        row.integer(*r.modified_unix);
      } else {
        row.null();
      }
      if (ok) {
        row.integer(r.n_obs).integer(r.n_vars).text(r.x_source).text(r.x_encoding).text(r.x_dtype);
        if (r.x_index_dtype.empty()) {
          row.null();
        } else {
          row.text(r.x_index_dtype);
        }
        row.integer(r.x_nnz).integer_list(r.x_chunks).text(r.x_compression).integer(r.x_stored_bytes).text(r.encoding_version);
        row.text_list(r.obs_columns).text_list(r.var_columns).text_list(r.obsm_keys).text_list(r.layers_keys).text_list(r.uns_keys);
        row.boolean(r.has_raw);
      } else {
        for (int i = 0; i < 17; ++i) row.null();  // n_obs .. has_raw
      }
      row.text(r.obs_request).text_list(r.obs_columns_catalogued).text_list(r.obs_columns_missing).text_list(r.obs_columns_skipped);
      row.boolean(r.qc);
      if (r.qc) {
        row.text(r.qc_matrix);
      } else {
        row.null();
      }
      row.integer(r.remote.bytes_fetched).integer(r.remote.requests).real(r.seconds).text(r.catalogued_at).text(CELLTYPER_VERSION);
      row.end_row();
      row.close();
    }
    copy_out("staging_files", "files", id);
  }

  fs::path dir_;
  std::mutex mutex_;
  DuckDb db_{1};
};

/// What an earlier run recorded for a path (files rows with status 'ok').
struct Previous {
  std::optional<std::int64_t> size_bytes;
  std::optional<std::int64_t> modified_unix;
  std::string obs_request;
  bool qc = false;
};

/// `SELECT <columns> FROM <the files parts of the catalogue in dir> <where>`, `row(result, r)`
/// called for each row; nothing when the catalogue has no files part yet.
template <typename Row>
void for_each_files_row(const fs::path& dir, const std::string& columns, const std::string& where, Row row) {
  std::error_code error;
  bool any = false;
  for (const auto& entry : fs::directory_iterator(dir / "files", error)) {
    if (entry.path().extension() == ".parquet" && entry.path().filename().string().rfind("part-", 0) == 0) any = true;
  }
  if (!any) return;
  DuckDb db(1);
  std::string message;
  auto result = db.try_query(fmt::format("SELECT {} FROM read_parquet({}, union_by_name = true) {}", columns,
                                         sql_literal((dir / "files" / "part-*.parquet").string()), where),
                             message);
  if (!result) throw IoError(fmt::format("cannot read the existing catalogue in {}: {}", dir.string(), message));
  const idx_t rows = duckdb_api().duckdb_row_count(&*result);
  for (idx_t r = 0; r < rows; ++r) row(*result, r);
  duckdb_api().duckdb_destroy_result(&*result);
}

std::map<std::string, Previous> previous_runs(const fs::path& dir) {
  std::map<std::string, Previous> out;
  for_each_files_row(dir, "path, size_bytes, modified_unix, obs_request, qc", "WHERE status = 'ok'", [&out](duckdb_result& result, idx_t r) {
    char* path = duckdb_api().duckdb_value_varchar(&result, 0, r);
    char* request = duckdb_api().duckdb_value_varchar(&result, 3, r);
    Previous previous;
    if (!duckdb_api().duckdb_value_is_null(&result, 1, r)) previous.size_bytes = duckdb_api().duckdb_value_int64(&result, 1, r);
    if (!duckdb_api().duckdb_value_is_null(&result, 2, r)) previous.modified_unix = duckdb_api().duckdb_value_int64(&result, 2, r);
    previous.obs_request = request != nullptr ? request : "";
    previous.qc = duckdb_api().duckdb_value_boolean(&result, 4, r);
    if (path != nullptr) out[path] = previous;
    duckdb_api().duckdb_free(path);
    duckdb_api().duckdb_free(request);
  });
  return out;
}

/// Whether `path` was catalogued before with what is asked now (and is unchanged, locally).
bool already_done(const std::map<std::string, Previous>& previous, const std::string& path, const CatalogOptions& options) {
  const auto it = previous.find(path);
  if (it == previous.end()) return false;
  const Previous& p = it->second;
  if (p.obs_request != corpus::detail::obs_request_text(options.obs_columns)) return false;
  if (options.qc && !p.qc) return false;
  if (!is_remote_path(path)) {
    std::error_code error;
    const auto size = fs::file_size(path, error);
    if (error || !p.size_bytes || static_cast<std::int64_t>(size) != *p.size_bytes) return false;
    const auto modified = fs::last_write_time(path, error);
    if (error) return false;
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::file_clock::to_sys(modified).time_since_epoch()).count();
    if (!p.modified_unix || seconds != *p.modified_unix) return false;
  }
  return true;
}

bool has_glob(const std::string& text) { return text.find_first_of("*?[") != std::string::npos; }

void glob_walk(const fs::path& base, const std::vector<std::string>& parts, std::size_t index, std::vector<std::string>& out) {
  std::error_code error;
  if (index == parts.size()) {
    if (fs::is_regular_file(base, error)) out.push_back(base.string());
    return;
  }
  const std::string& part = parts[index];
  if (part == "**") {
    glob_walk(base, parts, index + 1, out);  // zero directories
    for (const auto& entry : fs::recursive_directory_iterator(base, error)) {
      if (entry.is_directory(error)) glob_walk(entry.path(), parts, index + 1, out);
    }
    return;
  }
  if (!has_glob(part)) {
    glob_walk(base / part, parts, index + 1, out);
    return;
  }
  for (const auto& entry : fs::directory_iterator(base.empty() ? fs::path(".") : base, error)) {
    const std::string name = entry.path().filename().string();
    // POSIX shell matching of one path component (* ? [...]); dot files only when asked.
    if (::fnmatch(part.c_str(), name.c_str(), FNM_PERIOD) == 0) glob_walk(base.empty() ? fs::path(name) : base / name, parts, index + 1, out);
  }
}

/// Whether the components `names[j..]` of a path match the glob components `pattern[i..]` (as
/// glob_walk expands them: `**` is any number of directories, other components by fnmatch).
bool glob_matches(const std::vector<std::string>& pattern, std::size_t i, const std::vector<std::string>& names, std::size_t j) {
  if (i == pattern.size()) return j == names.size();
  if (pattern[i] == "**") {
    for (std::size_t k = j; k < names.size(); ++k) {
      if (glob_matches(pattern, i + 1, names, k)) return true;
    }
    return false;
  }
  if (j == names.size()) return false;
  const bool same = has_glob(pattern[i]) ? ::fnmatch(pattern[i].c_str(), names[j].c_str(), FNM_PERIOD) == 0 : pattern[i] == names[j];
  return same && glob_matches(pattern, i + 1, names, j + 1);
}

/// Whether catalogue input `input` (a directory or glob) names local file `path`.
bool input_covers(const std::string& input, const std::string& path) {
  if (is_remote_path(input) || is_remote_path(path)) return false;
  if (has_glob(input)) {
    const fs::path pattern(input);
    const fs::path file(path);
    if (pattern.root_path() != file.root_path()) return false;
    std::vector<std::string> parts;
    std::vector<std::string> names;
    for (const auto& part : pattern.relative_path()) parts.push_back(part.string());
    for (const auto& name : file.relative_path()) names.push_back(name.string());
    return glob_matches(parts, 0, names, 0);
  }
  std::error_code error;
  if (!fs::is_directory(input, error) || fs::path(path).extension() != ".h5ad") return false;
  const fs::path below = fs::path(path).lexically_normal().lexically_relative(fs::path(input).lexically_normal());
  return !below.empty() && below != "." && *below.begin() != "..";
}

/// Every path the catalogue in `dir` has a files row for.
std::vector<std::string> catalogued_paths(const fs::path& dir) {
  std::vector<std::string> out;
  for_each_files_row(dir, "path", "", [&out](duckdb_result& result, idx_t r) {
    char* path = duckdb_api().duckdb_value_varchar(&result, 0, r);
    if (path != nullptr) out.emplace_back(path);
    duckdb_api().duckdb_free(path);
  });
  return out;
}

}  // namespace

std::vector<std::string> drop_gone_files(const std::string& out_dir, const std::vector<std::string>& inputs) {
  // Per input: the catalogued paths it covers that are gone, and whether any it covers is there.
  // A relative input none of whose earlier files exists from here is most likely run from another
  // directory than before (paths are kept as given): its entries stay.
  std::vector<std::vector<std::string>> gone(inputs.size());
  std::vector<bool> any_there(inputs.size(), false);
  for (const std::string& path : catalogued_paths(out_dir)) {
    if (is_remote_path(path)) continue;
    std::error_code error;
    const bool exists = fs::exists(path, error);
    if (error) continue;  // (cannot tell: a permission, a stale network mount; not gone)
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (!input_covers(inputs[i], path)) continue;
      if (exists) {
        any_there[i] = true;
      } else {
        gone[i].push_back(path);
      }
    }
  }
  std::vector<std::string> dropped;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (fs::path(inputs[i]).is_relative() && !any_there[i]) continue;
    dropped.insert(dropped.end(), gone[i].begin(), gone[i].end());
  }
  std::sort(dropped.begin(), dropped.end());
  dropped.erase(std::unique(dropped.begin(), dropped.end()), dropped.end());
  for (const std::string& path : dropped) {
    std::error_code error;
    // The files part first: without it the file counts as not catalogued (as mid-write).
    const std::string id = part_id(path);
    for (const char* name : {"files", "obs_categories", "cell_qc"}) {
      const fs::path part = fs::path(out_dir) / name / fmt::format("part-{}.parquet", id);
      fs::remove(part, error);
      if (error) throw IoError(fmt::format("cannot remove {}: {}", part.string(), error.message()));
    }
  }
  return dropped;
}

std::vector<std::string> expand_catalog_inputs(const std::vector<std::string>& inputs, std::vector<std::string>* unmatched) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  std::vector<std::string> empty;  // inputs that matched nothing
  const auto nothing = [&](std::string message) {
    if (unmatched == nullptr) throw InputError(message);
    empty.push_back(std::move(message));
  };
  const auto add = [&](const std::string& path) {
    if (seen.insert(path).second) out.push_back(path);
  };
  for (const auto& input : inputs) {
    if (is_remote_path(input)) {
      add(input);
      continue;
    }
    std::error_code error;
    std::vector<std::string> matches;
    if (has_glob(input)) {
      const fs::path pattern(input);
      std::vector<std::string> parts;
      for (const auto& part : pattern.relative_path()) parts.push_back(part.string());
      glob_walk(pattern.root_path(), parts, 0, matches);
      if (matches.empty()) nothing(fmt::format("{}: no file matches", input));
    } else if (fs::is_directory(input, error)) {
      for (const auto& entry : fs::recursive_directory_iterator(input, error)) {
        if (entry.is_regular_file(error) && entry.path().extension() == ".h5ad") matches.push_back(entry.path().string());
      }
      if (matches.empty()) nothing(fmt::format("{}: no .h5ad file in this directory", input));
    } else {
      matches.push_back(input);  // a missing file is reported per file (status 'error')
    }
    std::sort(matches.begin(), matches.end());
    for (const auto& match : matches) add(match);
  }
  if (out.empty() && !empty.empty()) throw InputError(fmt::format("nothing to catalogue: {}", fmt::join(empty, "; ")));
  if (unmatched != nullptr) unmatched->insert(unmatched->end(), empty.begin(), empty.end());
  return out;
}

void CatalogResult::tally() {
  n_ok = n_read_again = n_resumed = n_failed = 0;
  file_bytes = 0;
  remote = {};
  for (const auto& file : files) {
    if (file.resumed) {
      ++n_resumed;
    } else if (file.ok) {
      ++n_ok;
      if (file.read_again) ++n_read_again;
      file_bytes += file.file_bytes;
    } else {
      ++n_failed;
    }
    remote += file.remote;
  }
}

CatalogResult build_catalog(const std::vector<std::string>& paths, const std::string& out_dir, const CatalogOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (out_dir.empty()) throw InputError("the catalogue directory (--out) is empty");
  CatalogWriter writer(out_dir);
  const auto previous = options.resume ? previous_runs(out_dir) : std::map<std::string, Previous>{};

  CatalogResult result;
  result.files.resize(paths.size());
  std::vector<std::size_t> todo;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    result.files[i].path = paths[i];
    if (options.resume && already_done(previous, paths[i], options)) {
      result.files[i].ok = true;
      result.files[i].resumed = true;
    } else {
      result.files[i].read_again = options.resume && previous.count(paths[i]) != 0;
      todo.push_back(i);
    }
  }

  std::mutex report_mutex;
  std::size_t done = 0;
  const auto report = [&](std::size_t index) {
    std::lock_guard lock(report_mutex);
    ++done;
    if (options.on_file_done) options.on_file_done(result.files[index], done, paths.size());
  };
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (result.files[i].resumed) report(i);
  }

  std::atomic<std::size_t> next{0};
  std::exception_ptr fatal;
  std::mutex fatal_mutex;
  const auto work = [&] {
    while (true) {
      const std::size_t k = next++;
      if (k >= todo.size()) return;
      {
        std::lock_guard lock(fatal_mutex);
        if (fatal) return;
      }
      const std::size_t index = todo[k];
      const FileRecord record = corpus::detail::catalogue_file(paths[index], options);
      CatalogFileOutcome& outcome = result.files[index];
      outcome.ok = record.status == "ok";
      outcome.error = record.error;
      outcome.error_code = record.error_code;
      outcome.n_obs = record.n_obs;
      outcome.file_bytes = record.size_bytes;
      outcome.remote = record.remote;
      outcome.seconds = record.seconds;
      try {
        writer.write(record);
      } catch (...) {  // the catalogue itself cannot be written: stop
        std::lock_guard lock(fatal_mutex);
        if (!fatal) fatal = std::current_exception();
        return;
      }
      report(index);
    }
  };
  auto threads = static_cast<unsigned>(resolve_threads(options.num_threads));
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(todo.size(), 1)));
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) pool.emplace_back(work);
    for (auto& thread : pool) thread.join();
  }
  if (fatal) std::rethrow_exception(fatal);

  result.tally();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace celltyper
