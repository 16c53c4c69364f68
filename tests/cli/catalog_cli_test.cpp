// End-to-end tests of `celltyper catalog`, `celltyper query` and remote paths on the command
// line: real data in, Parquet catalogue out, SQL in three formats, and one clear line for bad
// SQL, missing files and HTTP errors.
#include "support/http_servers.hpp"
#include "support/test_support.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace celltyper {
namespace {

using nlohmann::json;

std::size_t count_lines(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

TEST(CatalogCli, CatalogueThenQueryCellsPerType) {
  CELLTYPER_REQUIRE_SHARED(pbmc3k, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_SHARED(savercat, "savercat-pbmc-3tech/pbmc_prep_3tech.h5ad");
  test::TempDir out;
  const auto catalog = test::run_cli({"catalog", pbmc3k, savercat, "--obs", "celltype,tech", "--out", out.file("catalog"), "--qc", "--threads", "2"});
  ASSERT_EQ(catalog.exit_code, 0) << catalog.err;
  EXPECT_NE(catalog.out.find("catalogued 2 files"), std::string::npos) << catalog.out;
  EXPECT_NE(catalog.out.find("2 new, 0 already there, 0 failed"), std::string::npos) << catalog.out;
  EXPECT_TRUE(std::filesystem::is_directory(out.file("catalog/files")));

  const std::string sql = "SELECT regexp_extract(file, '[^/]+$') AS file, category AS cell_type, n_cells FROM obs_categories "
                          "WHERE \"column\" = 'celltype' ORDER BY file, n_cells DESC, cell_type";
  const auto table = test::run_cli({"query", out.file("catalog"), sql});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("pbmc3k_seurat_annotated.h5ad  Naive CD4 T       697"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("(12 rows)"), std::string::npos) << table.out;  // 9 pbmc3k types + 3 savercat

  const auto csv = test::run_cli({"query", out.file("catalog"), sql, "--csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(count_lines(csv.out), 13u);
  EXPECT_NE(csv.out.find("pbmc3k_seurat_annotated.h5ad,Platelet,14\n"), std::string::npos) << csv.out;

  const auto js = test::run_cli({"query", out.file("catalog"), "SELECT metric, median FROM cell_qc WHERE file LIKE '%pbmc3k%' ORDER BY metric", "--json"});
  ASSERT_EQ(js.exit_code, 0) << js.err;
  const json rows = json::parse(js.out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["metric"], "total_counts");
  EXPECT_EQ(rows[1]["median"], 2213.0);
  // Lists are JSON arrays (a name holding ", " stays one name), and JSON text in a table or CSV.
  const auto lists = test::run_cli({"query", out.file("catalog"), "SELECT obs_columns FROM files WHERE path LIKE '%pbmc3k%'", "--json"});
  ASSERT_EQ(lists.exit_code, 0) << lists.err;
  const json listed = json::parse(lists.out);
  ASSERT_EQ(listed.size(), 1u);
  ASSERT_TRUE(listed[0]["obs_columns"].is_array()) << lists.out;
  EXPECT_EQ(listed[0]["obs_columns"][0], "celltype");
  const auto as_csv = test::run_cli({"query", out.file("catalog"), "SELECT obs_columns[1:2] AS first FROM files WHERE path LIKE '%pbmc3k%'", "--csv"});
  EXPECT_NE(as_csv.out.find("\"[\"\"celltype\"\",\"\"seurat_clusters\"\"]\""), std::string::npos) << as_csv.out;

  // Run again: everything is already there.
  const auto again = test::run_cli({"catalog", pbmc3k, savercat, "--obs", "celltype,tech", "--out", out.file("catalog"), "--qc"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("0 new, 2 already there"), std::string::npos) << again.out;
  // Asked with other obs columns, the files are read again, and not counted as new.
  const auto other_obs = test::run_cli({"catalog", pbmc3k, savercat, "--obs", "celltype", "--out", out.file("catalog"), "--qc"});
  ASSERT_EQ(other_obs.exit_code, 0) << other_obs.err;
  EXPECT_NE(other_obs.out.find("0 new, 2 read again (modified since, or asked with other --obs / --qc), 0 already there"), std::string::npos)
      << other_obs.out;
  // A file touched (modified time changed) is read again too.
  const std::string copy = out.file("copy.h5ad");
  std::filesystem::copy_file(test::fixture("h5ad/full.h5ad"), copy);
  ASSERT_EQ(test::run_cli({"catalog", copy, "--out", out.file("small")}).exit_code, 0);
  std::filesystem::last_write_time(copy, std::filesystem::last_write_time(copy) + std::chrono::seconds(5));
  const auto touched = test::run_cli({"catalog", copy, "--out", out.file("small")});
  ASSERT_EQ(touched.exit_code, 0) << touched.err;
  EXPECT_NE(touched.out.find("0 new, 1 read again (modified since"), std::string::npos) << touched.out;
}

TEST(CatalogCli, FailedFileIsReportedNotFatal) {
  test::TempDir out;
  const std::string good = test::fixture("h5ad/full.h5ad");
  const std::string bad = test::fixture("h5ad/bad_truncated.h5ad");
  auto result = test::run_cli({"catalog", good, bad, "--out", out.file("c"), "-q"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("1 new, 0 already there, 1 failed"), std::string::npos) << result.out;
  EXPECT_NE(result.err.find("bad_truncated.h5ad"), std::string::npos) << result.err;
  // The worker thread's HDF5 error records are released: nothing from libhdf5 at exit (it used
  // to print "HDF5: infinite loop closing library" and leak them).
  EXPECT_EQ(result.err.find("HDF5:"), std::string::npos) << result.err;
  result = test::run_cli({"catalog", good, bad, "--out", out.file("c"), "-q", "--fail-on-error"});
  EXPECT_EQ(result.exit_code, 2) << result.err;  // every failure a bad file: bad input, as for one file
  EXPECT_NE(result.err.find("celltyper: error: 1 of 2 files could not be catalogued"), std::string::npos) << result.err;
  // Each failure is said once (as it happens, or at the end under --quiet).
  for (const auto* flags : {"-q", ""}) {
    std::vector<std::string> args = {"catalog", good, bad, "--out", out.file("d")};
    if (*flags != '\0') args.emplace_back(flags);
    result = test::run_cli(args);
    const auto first = result.err.find("skipped " + bad);
    EXPECT_NE(first, std::string::npos) << result.err;
    EXPECT_EQ(result.err.find(bad, first + 8 + bad.size()), std::string::npos) << result.err;
  }
}

TEST(CatalogCli, BadSqlAndMissingCatalogueGiveOneLine) {
  test::TempDir out;
  ASSERT_EQ(test::run_cli({"catalog", test::fixture("h5ad/full.h5ad"), "--out", out.file("c"), "-q"}).exit_code, 0);
  auto result = test::run_cli({"query", out.file("c"), "SELEKT 1"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(result.err.rfind("celltyper: error: SQL error:", 0), 0u) << result.err;
  result = test::run_cli({"query", out.file("c"), "SELECT no_such_column FROM files"});  // DuckDB's several lines, as one
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(count_lines(result.err), 1u) << result.err;
  EXPECT_NE(result.err.find("no_such_column"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("LINE 1"), std::string::npos) << result.err;
  result = test::run_cli({"query", out.file("nowhere"), "SELECT 1"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_EQ(count_lines(result.err), 1u) << result.err;
  result = test::run_cli({"catalog", out.file("*.nothing"), "--out", out.file("c")});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("no file matches"), std::string::npos) << result.err;
}

TEST(RemoteCli, InspectOverHttpAndErrors) {
  test::NginxServer server({{"fixtures", test::fixture("h5ad")}});
  if (!server.running()) GTEST_SKIP() << "nginx is not installed or did not start";
  const auto local = test::run_cli({"inspect", test::fixture("h5ad/full.h5ad"), "--json", "--no-genes"});
  const auto remote = test::run_cli({"inspect", server.url("fixtures", "full.h5ad"), "--json", "--no-genes"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  json a = json::parse(local.out);
  json b = json::parse(remote.out);
  EXPECT_GT(b["remote"]["requests"].get<int>(), 0);
  EXPECT_GT(b["remote"]["bytes_fetched"].get<int>(), 0);
  b.erase("remote");
  a.erase("file");
  b.erase("file");
  EXPECT_EQ(a, b);

  const auto missing = test::run_cli({"inspect", server.url("fixtures", "missing.h5ad"), "--no-genes"});
  EXPECT_EQ(missing.exit_code, 2);  // a missing file, as a local one
  EXPECT_EQ(missing.err, "celltyper: error: " + server.url("fixtures", "missing.h5ad") + ": HTTP 404 Not Found\n");
  const auto forbidden = test::run_cli({"inspect", server.url("forbidden-deny", "x.h5ad"), "--no-genes"});
  EXPECT_EQ(forbidden.exit_code, 3);
  EXPECT_EQ(forbidden.err, "celltyper: error: " + server.url("forbidden-deny", "x.h5ad") + ": HTTP 403 Forbidden\n");

  test::TempDir out;
  const auto catalog = test::run_cli({"catalog", server.url("fixtures", "full.h5ad"), server.url("fixtures", "missing.h5ad"), "--out",
                                      out.file("c"), "--block-size", "4K", "-q"});
  EXPECT_EQ(catalog.exit_code, 0) << catalog.err;
  EXPECT_NE(catalog.out.find("remote: "), std::string::npos) << catalog.out;
  EXPECT_NE(catalog.err.find("HTTP 404 Not Found"), std::string::npos) << catalog.err;
}


TEST(CatalogCli, KilledRunKeepsFinishedFilesAndResumes) {
  test::NginxServer server({{"fixtures", test::fixture("h5ad")}});
  if (!server.running()) GTEST_SKIP() << "nginx is not installed or did not start";
  // The third file never answers: the run is killed (SIGKILL) while it waits for it.
  test::ScriptedServer stall([](const std::string&, int) -> std::optional<std::string> { return std::nullopt; });
  test::TempDir out;
  const std::string catalog = out.file("c");
  const std::vector<std::string> first_run{server.url("fixtures", "full.h5ad"), server.url("fixtures", "csr_float32.h5ad"),
                                           stall.url("/never.h5ad")};
  const pid_t child = ::fork();
  if (child == 0) {
    ::setenv("CELLTYPER_REMOTE_TIMEOUT", "120", 1);
    std::vector<std::string> args{CELLTYPER_CLI_PATH, "catalog", first_run[0], first_run[1], first_run[2], "--out", catalog, "--threads", "1", "-q"};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(CELLTYPER_CLI_PATH, argv.data());
    ::_exit(127);
  }
  const auto parts = [&] {
    std::size_t n = 0;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(catalog + "/files", error)) {
      n += entry.path().filename().string().rfind("part-", 0) == 0 ? 1 : 0;
    }
    return n;
  };
  for (int i = 0; i < 600 && parts() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the catalogue finished before it was killed";
  EXPECT_EQ(parts(), 2u);
  const auto kept = test::run_cli({"query", catalog, "SELECT count(*) AS n FROM files WHERE status = 'ok'", "--csv"});
  EXPECT_EQ(kept.out, "n\n2\n") << kept.err;

  const auto resumed = test::run_cli({"catalog", first_run[0], first_run[1], server.url("fixtures", "csc_int32.h5ad"), "--out", catalog, "-q"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("1 new, 2 already there, 0 failed"), std::string::npos) << resumed.out;
}

}  // namespace
}  // namespace celltyper
