// The metadata catalogue: every ../shared/data h5ad catalogued and queried with SQL against
// known counts, QC distributions against a naive oracle, failing files recorded and skipped,
// resume, a server killed mid-scan losing nothing, obs-only remote catalogue transfers, and the
// schema documented in docs/catalog.md.
#include <celltyper/catalog.hpp>
#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>

#include "support/http_servers.hpp"
#include "support/test_support.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace celltyper {
namespace {

namespace fs = std::filesystem;

/// Every .h5ad under ../shared/data (empty when absent).
std::vector<std::string> shared_h5ad_files() {
  const std::string root = test::shared_data("");
  if (root.empty()) return {};
  return expand_catalog_inputs({root});
}

std::int64_t as_int(const std::optional<std::string>& value) { return value ? std::stoll(*value) : -1; }

/// SELECT ... returning (key, count) pairs as a map.
std::map<std::string, std::int64_t> counts(const std::string& dir, const std::string& sql) {
  const QueryResult result = query_catalog(dir, sql);
  std::map<std::string, std::int64_t> out;
  for (const auto& row : result.rows) out[row[0].value_or("NULL")] = as_int(row[1]);
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

double naive_quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double position = q * static_cast<double>(values.size() - 1);
  const auto below = static_cast<std::size_t>(position);
  const std::size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (values[above] - values[below]) * (position - static_cast<double>(below));
}

TEST(CatalogSchema, EveryColumnIsDocumented) {
  const std::string doc = read_text(std::string(CELLTYPER_SOURCE_DIR) + "/docs/catalog.md");
  ASSERT_FALSE(doc.empty()) << "docs/catalog.md is missing";
  for (const auto& table : catalog_schema()) {
    EXPECT_NE(doc.find(std::string("`") + table.name + "`"), std::string::npos) << table.name;
    for (const auto& column : table.columns) {
      EXPECT_NE(doc.find(std::string("| `") + column.name + "` | " + column.sql_type + " |"), std::string::npos)
          << table.name << "." << column.name << " " << column.sql_type;
    }
  }
}

TEST(CatalogInputs, DirectoriesGlobsAndUrls) {
  test::TempDir dir;
  fs::create_directories(dir.path() / "a" / "b");
  for (const char* name : {"x.h5ad", "a/y.h5ad", "a/b/z.h5ad", "a/b/notes.txt"}) std::ofstream(dir.file(name)) << "x";
  const auto all = expand_catalog_inputs({dir.path().string()});
  EXPECT_EQ(all.size(), 3u);
  const auto top = expand_catalog_inputs({dir.file("*.h5ad")});
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(fs::path(top[0]).filename(), "x.h5ad");
  EXPECT_EQ(expand_catalog_inputs({dir.file("**/*.h5ad")}).size(), 3u);
  EXPECT_EQ(expand_catalog_inputs({dir.file("a/?/z.h5ad"), dir.file("a/b/z.h5ad")}).size(), 1u);  // no duplicates
  EXPECT_EQ(expand_catalog_inputs({"s3://bucket/k.h5ad", "https://h/x.h5ad"}).size(), 2u);
  EXPECT_THROW((void)expand_catalog_inputs({dir.file("*.loom")}), InputError);
  // With somewhere to say it (the command line warns), a glob that matches nothing is left out
  // and the others expanded; nothing matched at all is still an error.
  std::vector<std::string> unmatched;
  EXPECT_EQ(expand_catalog_inputs({dir.file("*.loom"), dir.path().string()}, &unmatched).size(), 3u);
  ASSERT_EQ(unmatched.size(), 1u);
  EXPECT_EQ(unmatched[0], dir.file("*.loom") + ": no file matches");
  EXPECT_THROW((void)expand_catalog_inputs({dir.file("*.loom")}, &unmatched), InputError);
}

TEST(Catalog, AllSharedDataIsQueryableWithKnownCounts) {
  const auto files = shared_h5ad_files();
  if (files.empty()) GTEST_SKIP() << "../shared/data is absent";
  test::TempDir out;
  CatalogOptions options;
  options.num_threads = 2;
  const CatalogResult result = build_catalog(files, out.path().string(), options);
  EXPECT_EQ(result.n_ok, files.size());
  EXPECT_EQ(result.n_failed, 0u);

  // One row per file, with the shapes the project's reader sees.
  const QueryResult shapes = query_catalog(out.path().string(), "SELECT path, n_obs, n_vars, status FROM files ORDER BY path");
  ASSERT_EQ(shapes.rows.size(), files.size());
  for (const auto& row : shapes.rows) {
    const H5adFile file(*row[0]);
    EXPECT_EQ(as_int(row[1]), file.n_obs()) << *row[0];
    EXPECT_EQ(as_int(row[2]), file.n_vars()) << *row[0];
    EXPECT_EQ(row[3], "ok");
  }

  // Cells per cell type per file: the counts the data README states (and anndata reports).
  const std::string pbmc3k = test::shared_data("pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const auto per_type = counts(out.path().string(), "SELECT category, n_cells FROM obs_categories WHERE \"column\" = 'celltype' AND file = '" +
                                                        pbmc3k + "' ORDER BY n_cells DESC");
  const std::map<std::string, std::int64_t> expected{{"Naive CD4 T", 697}, {"Memory CD4 T", 483}, {"CD14+ Mono", 480},
                                                     {"B", 344},           {"CD8 T", 271},        {"FCGR3A+ Mono", 162},
                                                     {"NK", 155},          {"DC", 32},            {"Platelet", 14}};
  EXPECT_EQ(per_type, expected);
  const auto tech = counts(out.path().string(),
                           "SELECT category, n_cells FROM obs_categories WHERE \"column\" = 'tech' AND file LIKE '%pbmc_prep_3tech.h5ad'");
  EXPECT_EQ(tech, (std::map<std::string, std::int64_t>{{"V2", 588}, {"V3", 865}, {"VDJ", 547}}));
  const auto study = counts(out.path().string(),
                            "SELECT category, n_cells FROM obs_categories WHERE \"column\" = 'study' AND file LIKE '%pancreas_xin_wang_log.h5ad'");
  EXPECT_EQ(study, (std::map<std::string, std::int64_t>{{"Wang2016_FluidigmC1", 501}, {"Xin2016_SMARTer", 674}}));
  const auto mouse = counts(out.path().string(),
                            "SELECT category, n_cells FROM obs_categories WHERE \"column\" = 'celltype' AND file LIKE '%actinn_train_mouse.h5ad'");
  EXPECT_EQ(mouse, (std::map<std::string, std::int64_t>{{"B cell", 477}, {"Granulocyte", 68}, {"Monocyte", 69}, {"NK cell", 74}, {"T cell", 312}}));

  // Every catalogued column accounts for every cell of its file.
  const QueryResult totals = query_catalog(out.path().string(),
                                           "SELECT c.file, c.\"column\", sum(c.n_cells) AS cells, any_value(f.n_obs) AS n_obs "
                                           "FROM obs_categories c JOIN files f ON f.path = c.file GROUP BY ALL");
  EXPECT_GE(totals.rows.size(), files.size());
  for (const auto& row : totals.rows) EXPECT_EQ(as_int(row[2]), as_int(row[3])) << *row[0] << " " << *row[1];

  // Layout facts.
  const QueryResult layout = query_catalog(out.path().string(),
                                           "SELECT x_encoding, x_dtype, list_contains(obs_columns, 'celltype'), has_raw FROM files WHERE path = '" + pbmc3k + "'");
  ASSERT_EQ(layout.rows.size(), 1u);
  EXPECT_EQ(layout.rows[0][0], "csr");
  EXPECT_EQ(layout.rows[0][1], "float32");
  EXPECT_EQ(layout.rows[0][2], "true");
  const QueryResult dense = query_catalog(out.path().string(), "SELECT count(*) FROM files WHERE x_encoding = 'dense'");
  EXPECT_EQ(dense.rows[0][0], "2");  // both pbmc68k_reduced files
}

TEST(Catalog, RequestedObsColumnsAndMissingOnes) {
  test::TempDir out;
  CatalogOptions options;
  options.obs_columns = {"cell_type", "no_such_column"};
  const std::string path = test::fixture("h5ad/full.h5ad");
  const H5adFile file(path);
  const auto names = file.obs_column_names();
  ASSERT_FALSE(names.empty());
  options.obs_columns[0] = names.front();
  const CatalogResult result = build_catalog({path}, out.path().string(), options);
  ASSERT_EQ(result.n_ok, 1u);
  const QueryResult row = query_catalog(out.path().string(),
                                        "SELECT obs_columns_catalogued, obs_columns_missing, obs_request FROM files");
  EXPECT_EQ(row.rows[0][0], "[\"" + names.front() + "\"]");  // (lists as JSON text)
  EXPECT_EQ(row.rows[0][1], "[\"no_such_column\"]");
  EXPECT_EQ(row.rows[0][2], names.front() + ",no_such_column");
  const QueryResult cells = query_catalog(out.path().string(), "SELECT sum(n_cells) FROM obs_categories");
  EXPECT_EQ(as_int(cells.rows[0][0]), file.n_obs());
}

TEST(Catalog, QcMatchesANaiveOracle) {
  CELLTYPER_REQUIRE_SHARED(path, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  test::TempDir out;
  CatalogOptions options;
  options.qc = true;
  options.obs_columns = {"celltype"};
  options.memory_limit_bytes = 1 << 20;  // many blocks
  ASSERT_EQ(build_catalog({path}, out.path().string(), options).n_ok, 1u);

  // Oracle: every row at once through the project's reader, sums and detected genes by hand.
  const H5adFile file(path);
  const auto reader = file.open_matrix("X");
  CsrBlockF64 all;
  reader->read_rows(0, file.n_obs(), all);
  std::vector<double> totals;
  std::vector<double> detected;
  for (std::int64_t r = 0; r < all.n_rows; ++r) {
    double sum = 0;
    double positive = 0;
    for (auto k = all.indptr[static_cast<std::size_t>(r)]; k < all.indptr[static_cast<std::size_t>(r + 1)]; ++k) {
      sum += all.values[static_cast<std::size_t>(k)];
      positive += all.values[static_cast<std::size_t>(k)] > 0 ? 1 : 0;
    }
    totals.push_back(sum);
    detected.push_back(positive);
  }
  const QueryResult qc = query_catalog(out.path().string(),
                                       "SELECT metric, matrix, n_cells, min, q05, q25, median, q75, q95, max, mean, histogram_counts, "
                                       "list_sum(histogram_counts) FROM cell_qc ORDER BY metric");
  ASSERT_EQ(qc.rows.size(), 2u);
  for (const auto& row : qc.rows) {
    const auto& values = *row[0] == "total_counts" ? totals : detected;
    SCOPED_TRACE(*row[0]);
    EXPECT_EQ(row[1], "X");
    EXPECT_EQ(as_int(row[2]), 2638);
    EXPECT_DOUBLE_EQ(std::stod(*row[3]), naive_quantile(values, 0));
    EXPECT_DOUBLE_EQ(std::stod(*row[4]), naive_quantile(values, 0.05));
    EXPECT_DOUBLE_EQ(std::stod(*row[5]), naive_quantile(values, 0.25));
    EXPECT_DOUBLE_EQ(std::stod(*row[6]), naive_quantile(values, 0.5));
    EXPECT_DOUBLE_EQ(std::stod(*row[7]), naive_quantile(values, 0.75));
    EXPECT_DOUBLE_EQ(std::stod(*row[8]), naive_quantile(values, 0.95));
    EXPECT_DOUBLE_EQ(std::stod(*row[9]), naive_quantile(values, 1));
    EXPECT_EQ(as_int(row[12]), 2638);
  }
  // numpy on the same file (computed when this test was written): median total counts 2213,
  // range 556..8875; genes detected 212..2413.
  EXPECT_EQ(qc.rows[1][0], "total_counts");
  EXPECT_EQ(std::stod(*qc.rows[1][6]), 2213.0);
  EXPECT_EQ(std::stod(*qc.rows[1][3]), 556.0);
  EXPECT_EQ(std::stod(*qc.rows[1][9]), 8875.0);
  EXPECT_EQ(std::stod(*qc.rows[0][3]), 212.0);
  EXPECT_EQ(std::stod(*qc.rows[0][9]), 2413.0);
}

TEST(Catalog, FailingFilesAreRecordedAndSkipped) {
  test::TempDir out;
  const std::vector<std::string> paths{test::fixture("h5ad/full.h5ad"), test::fixture("h5ad/bad_not_hdf5.h5ad"),
                                       test::fixture("h5ad/no_such_file.h5ad"), test::fixture("h5ad/csr_float32.h5ad"),
                                       test::fixture("h5ad/bad_indptr_nonmonotone.h5ad")};
  std::vector<std::string> reported;
  CatalogOptions options;
  options.on_file_done = [&](const CatalogFileOutcome& outcome, std::size_t, std::size_t total) {
    EXPECT_EQ(total, paths.size());
    reported.push_back(outcome.path);
  };
  const CatalogResult result = build_catalog(paths, out.path().string(), options);
  EXPECT_EQ(result.n_ok, 2u);
  EXPECT_EQ(result.n_failed, 3u);
  EXPECT_EQ(reported.size(), paths.size());
  const QueryResult errors = query_catalog(out.path().string(), "SELECT path, error FROM files WHERE status = 'error' ORDER BY path");
  ASSERT_EQ(errors.rows.size(), 3u);
  for (const auto& row : errors.rows) {
    ASSERT_TRUE(row[1].has_value());
    EXPECT_NE(row[1]->find(*row[0]), std::string::npos) << *row[1];  // the message names the file
  }
  EXPECT_NE(errors.rows[0][1]->find("not monotone"), std::string::npos) << *errors.rows[0][1];
  EXPECT_NE(errors.rows[1][1]->find("not an HDF5 file"), std::string::npos) << *errors.rows[1][1];
  EXPECT_NE(errors.rows[2][1]->find("no such file"), std::string::npos) << *errors.rows[2][1];

  // A second run resumes the good files and tries the failed ones again.
  const CatalogResult again = build_catalog(paths, out.path().string(), options);
  EXPECT_EQ(again.n_resumed, 2u);
  EXPECT_EQ(again.n_failed, 3u);
  EXPECT_EQ(query_catalog(out.path().string(), "SELECT count(*) FROM files").rows[0][0], "5");  // no duplicate rows
}

TEST(Catalog, ResumeRedoesChangedRequestsAndFiles) {
  test::TempDir out;
  test::TempDir inputs;
  const std::string copy = inputs.file("a.h5ad");
  fs::copy_file(test::fixture("h5ad/full.h5ad"), copy);
  CatalogOptions options;
  EXPECT_EQ(build_catalog({copy}, out.path().string(), options).n_ok, 1u);
  EXPECT_EQ(build_catalog({copy}, out.path().string(), options).n_resumed, 1u);
  options.qc = true;  // now QC is asked: redo
  EXPECT_EQ(build_catalog({copy}, out.path().string(), options).n_ok, 1u);
  EXPECT_EQ(build_catalog({copy}, out.path().string(), options).n_resumed, 1u);
  fs::copy_file(test::fixture("h5ad/csr_float32_gzip.h5ad"), copy, fs::copy_options::overwrite_existing);  // the file changed
  EXPECT_EQ(build_catalog({copy}, out.path().string(), options).n_ok, 1u);
  options.resume = false;
  EXPECT_EQ(build_catalog({copy}, out.path().string(), options).n_ok, 1u);
  EXPECT_EQ(query_catalog(out.path().string(), "SELECT count(*) FROM files").rows[0][0], "1");
  EXPECT_EQ(query_catalog(out.path().string(), "SELECT count(*) FROM cell_qc").rows[0][0], "2");
}

TEST(Catalog, FilesGoneFromADirectoryOrGlobLeaveTheCatalogue) {
  // A folder catalogued, then one file deleted and the folder catalogued again: the file's rows
  // (files, obs_categories) go; a glob does the same; a file named outright that is gone stays,
  // with status 'error', and so does a file of another input.
  test::TempDir out;
  test::TempDir inputs;
  fs::create_directories(inputs.path() / "sub");
  const std::string a = inputs.file("a.h5ad");
  const std::string b = (inputs.path() / "sub" / "b.h5ad").string();
  const std::string c = inputs.file("c.h5ad");
  for (const std::string& path : {a, b, c}) fs::copy_file(test::fixture("h5ad/full.h5ad"), path);
  const std::string folder = inputs.path().string();
  const std::string glob = folder + "/**/*.h5ad";
  ASSERT_EQ(build_catalog(expand_catalog_inputs({folder}), out.path().string()).n_ok, 3u);
  const auto rows = [&](const std::string& table) {
    return query_catalog(out.path().string(), fmt::format("SELECT count(DISTINCT {}) FROM {}", table == "files" ? "path" : "file", table)).rows[0][0];
  };
  ASSERT_EQ(rows("obs_categories"), "3");
  EXPECT_TRUE(drop_gone_files(out.path().string(), {folder}).empty());  // nothing gone: nothing removed
  fs::remove(b);
  build_catalog(expand_catalog_inputs({folder}), out.path().string());
  EXPECT_EQ(drop_gone_files(out.path().string(), {a, inputs.path().parent_path().string() + "/nowhere/*.h5ad"}), std::vector<std::string>{})
      << "neither the file a nor a glob elsewhere covers b";
  EXPECT_EQ(drop_gone_files(out.path().string(), {folder + "/"}), std::vector<std::string>{b});
  EXPECT_EQ(rows("files"), "2");
  EXPECT_EQ(rows("obs_categories"), "2");
  fs::remove(c);
  EXPECT_EQ(drop_gone_files(out.path().string(), {glob}), std::vector<std::string>{c});
  EXPECT_EQ(rows("files"), "1");
  // Named outright, a missing file is an error row and stays one.
  build_catalog({a, c}, out.path().string());
  EXPECT_TRUE(drop_gone_files(out.path().string(), {a, c}).empty());
  EXPECT_EQ(query_catalog(out.path().string(), "SELECT status FROM files ORDER BY path").rows.size(), 2u);
  // A relative folder catalogued from another working directory, where none of its earlier files
  // is: another folder of that name, not the same one emptied; its entries stay.
  test::TempDir first;
  test::TempDir second;
  for (const auto* top : {&first, &second}) fs::create_directories(top->path() / "in");
  fs::copy_file(test::fixture("h5ad/full.h5ad"), first.path() / "in" / "x.h5ad");
  fs::copy_file(test::fixture("h5ad/full.h5ad"), second.path() / "in" / "y.h5ad");
  const fs::path was = fs::current_path();
  fs::current_path(first.path());
  build_catalog(expand_catalog_inputs({"in"}), out.path().string());
  fs::current_path(second.path());
  const std::vector<std::string> elsewhere = drop_gone_files(out.path().string(), {"in"});
  fs::current_path(was);
  EXPECT_TRUE(elsewhere.empty()) << elsewhere.front();
  EXPECT_EQ(query_catalog(out.path().string(), "SELECT count(*) FROM files WHERE path = 'in/x.h5ad'").rows[0][0], "1");
}

TEST(Catalog, ServerKilledMidScanLosesNothingCatalogued) {
  test::TempDir served;
  std::vector<std::string> names;
  for (const char* fixture : {"full.h5ad", "csr_float32.h5ad", "csc_int32_gzip.h5ad", "dense_float32.h5ad", "csr_int64.h5ad", "legacy_v07.h5ad"}) {
    fs::copy_file(test::fixture(std::string("h5ad/") + fixture), served.file(fixture));
    names.emplace_back(fixture);
  }
  test::NginxServer server({{"files", served.path().string()}});
  if (!server.running()) GTEST_SKIP() << "nginx is not installed or did not start";
  std::vector<std::string> urls;
  for (const auto& name : names) urls.push_back(server.url("files", name));

  test::TempDir out;
  CatalogOptions options;
  options.num_threads = 1;
  RemoteOptions remote;
  remote.max_retries = 1;
  remote.backoff_initial_seconds = 0.01;
  remote.connect_timeout_seconds = 1;
  remote.stall_timeout_seconds = 1;
  options.remote = remote;
  std::size_t finished = 0;
  options.on_file_done = [&](const CatalogFileOutcome&, std::size_t, std::size_t) {
    if (++finished == 2) server.kill_now();  // the server dies after two files
  };
  const CatalogResult interrupted = build_catalog(urls, out.path().string(), options);
  EXPECT_EQ(interrupted.n_ok, 2u);
  EXPECT_EQ(interrupted.n_failed, urls.size() - 2);
  // A file that failed to open still counts what it cost: a first try and a retry each.
  for (const auto& file : interrupted.files) {
    if (file.ok) continue;
    EXPECT_EQ(file.remote.requests, 2) << file.path << ": " << file.error;
    EXPECT_EQ(file.remote.retries, 1) << file.path;
  }
  EXPECT_GE(interrupted.remote.retries, static_cast<std::int64_t>(urls.size() - 2));
  const QueryResult kept = query_catalog(out.path().string(), "SELECT status, count(*) FROM files GROUP BY status ORDER BY status");
  ASSERT_EQ(kept.rows.size(), 2u);
  EXPECT_EQ(kept.rows[0][0], "error");
  EXPECT_EQ(kept.rows[1][0], "ok");
  EXPECT_EQ(kept.rows[1][1], "2");

  server.start();  // back again: the next run fetches only what is missing
  ASSERT_TRUE(server.running());
  options.on_file_done = nullptr;
  const CatalogResult resumed = build_catalog(urls, out.path().string(), options);
  EXPECT_EQ(resumed.n_resumed, 2u);
  EXPECT_EQ(resumed.n_ok, urls.size() - 2);
  EXPECT_EQ(resumed.n_failed, 0u);
  EXPECT_EQ(query_catalog(out.path().string(), "SELECT count(*) FROM files WHERE status = 'ok'").rows[0][0], std::to_string(urls.size()));

  // The remote catalogue equals a local one (paths aside).
  test::TempDir local_out;
  std::vector<std::string> local_paths;
  for (const auto& name : names) local_paths.push_back(served.file(name));
  ASSERT_EQ(build_catalog(local_paths, local_out.path().string(), CatalogOptions{}).n_ok, names.size());
  const std::string sql = "SELECT regexp_extract(file, '[^/]+$') AS name, \"column\", category, n_cells FROM obs_categories ORDER BY ALL";
  EXPECT_EQ(query_catalog(out.path().string(), sql).rows, query_catalog(local_out.path().string(), sql).rows);
}

TEST(Catalog, ObsOnlyRemoteCatalogueTransfersUnderAQuarter) {
  CELLTYPER_REQUIRE_SHARED(path, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  test::NginxServer server({{"data", test::shared_data("")}});
  if (!server.running()) GTEST_SKIP() << "nginx is not installed or did not start";
  test::TempDir out;
  CatalogOptions options;
  options.obs_columns = {"celltype"};
  const std::string url = server.url("data", "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  const CatalogResult result = build_catalog({url}, out.path().string(), options);
  ASSERT_EQ(result.n_ok, 1u) << result.files[0].error;
  EXPECT_LT(static_cast<double>(result.remote.bytes_fetched), 0.25 * static_cast<double>(fs::file_size(path)));
  const QueryResult row = query_catalog(out.path().string(), "SELECT bytes_fetched, requests, size_bytes FROM files");
  EXPECT_EQ(as_int(row.rows[0][0]), result.remote.bytes_fetched);
  EXPECT_EQ(as_int(row.rows[0][2]), static_cast<std::int64_t>(fs::file_size(path)));
  EXPECT_EQ(counts(out.path().string(), "SELECT category, n_cells FROM obs_categories WHERE category = 'NK'")["NK"], 155);
}

TEST(CatalogQuery, FormatsAndErrors) {
  test::TempDir out;
  ASSERT_EQ(build_catalog({test::fixture("h5ad/full.h5ad")}, out.path().string()).n_ok, 1u);
  const QueryResult result = query_catalog(out.path().string(), "SELECT 'a,b' AS text, 42 AS number, NULL::VARCHAR AS nothing, true AS yes;");
  EXPECT_EQ(result.columns, (std::vector<std::string>{"text", "number", "nothing", "yes"}));
  EXPECT_TRUE(result.is_numeric(1));
  EXPECT_FALSE(result.is_numeric(0));
  EXPECT_EQ(format_query_csv(result), "text,number,nothing,yes\n\"a,b\",42,,true\n");
  const auto json = nlohmann::json::parse(format_query_json(result));
  EXPECT_EQ(json[0]["number"], 42);
  EXPECT_TRUE(json[0]["nothing"].is_null());
  EXPECT_EQ(json[0]["yes"], true);
  EXPECT_EQ(json[0]["text"], "a,b");
  const std::string table = format_query_table(result);
  EXPECT_NE(table.find("text  number  nothing  yes"), std::string::npos) << table;
  EXPECT_NE(table.find("a,b       42  NULL     true"), std::string::npos) << table;
  EXPECT_NE(table.find("(1 row)"), std::string::npos);
  // Statements that are not queries, lists, and empty tables of the documented schema.
  EXPECT_FALSE(query_catalog(out.path().string(), "DESCRIBE files").rows.empty());
  EXPECT_EQ(query_catalog(out.path().string(), "SELECT count(*) FROM cell_qc").rows[0][0], "0");
  EXPECT_EQ(query_catalog(out.path().string(), "SELECT obs_columns FROM files").rows[0][0]->front(), '[');
  EXPECT_THROW((void)query_catalog(out.path().string(), "SELECT nonsense FROM files"), InputError);
  EXPECT_THROW((void)query_catalog(out.path().string() + "/missing", "SELECT 1"), InputError);
  // One statement: a second would run unseen. A ';' in a string, a quoted name or a comment is none.
  try {
    (void)query_catalog(out.path().string(), "SELECT 1 AS a; SELECT 2 AS b");
    FAIL() << "two statements accepted";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("one SQL statement at a time"), std::string::npos) << error.what();
  }
  EXPECT_EQ(query_catalog(out.path().string(), "SELECT 'a;b' AS \"x;y\" /* ; */ -- ;\n;").rows[0][0], "a;b");
}

}  // namespace
}  // namespace celltyper
