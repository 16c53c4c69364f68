// End-to-end tests of `celltyper genes embed --backend openai|openai-batch` and `genes enrich`
// against tests/genes/fake_openai_server.py on 127.0.0.1: injected 429s, 500s and timeouts, a
// kill mid-run and resume, a bad key, the Batch API round trip (write, submit, collect, store)
// with an expired request and a lost answer, hand-downloaded outputs, a full disk, bad input.
#include "genes/fake_openai_server.hpp"
#include "support/test_support.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

namespace celltyper {
namespace {

using nlohmann::json;
using test::FakeServer;
using test::TempDir;

constexpr int kDimensions = 16;

std::string write_file(const TempDir& directory, const std::string& name, const std::string& text) {
  const std::string path = directory.file(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// A gene table of 12 real genes with short summaries; texts are built with --no-go.
struct Fixture {
  TempDir directory;
  std::string table;
  Fixture() {
    const std::vector<std::array<const char*, 4>> rows = {
        {"915", "CD3D", "CD3 delta subunit of T-cell receptor complex", "T cell receptor complex subunit."},
        {"916", "CD3E", "CD3 epsilon subunit of T-cell receptor complex", "Signal transduction in T lymphocytes."},
        {"917", "CD3G", "CD3 gamma subunit of T-cell receptor complex", "T lymphocyte development and activation."},
        {"973", "CD79A", "CD79a molecule", "B cell antigen receptor complex subunit."},
        {"974", "CD79B", "CD79b molecule", "B lymphocyte signalling with immunoglobulin."},
        {"931", "MS4A1", "membrane spanning 4-domains A1", "B lymphocyte surface molecule CD20."},
        {"4069", "LYZ", "lysozyme", "Bacteriolytic enzyme of monocytes."},
        {"929", "CD14", "CD14 molecule", "Monocyte receptor for bacterial lipopolysaccharide."},
        {"5473", "PPBP", "pro-platelet basic protein", "Platelet chemokine."},
        {"5196", "PF4", "platelet factor 4", "Platelet chemokine of alpha granules."},
        {"4818", "NKG7", "natural killer cell granule protein 7", "Granule protein of natural killer cells."},
        {"10578", "GNLY", "granulysin", "Cytotoxic granule antimicrobial protein."},
    };
    std::string text = "entrez_id\tsymbol\tname\tgene_type\tensembl_ids\taliases\trefseq_summary\n";
    for (const auto& row : rows) text += fmt::format("{}\t{}\t{}\tprotein-coding\tENSG{:011}\t\t{}\n", row[0], row[1], row[2], std::atoi(row[0]), row[3]);
    table = write_file(directory, "genes.tsv", text);
  }
  [[nodiscard]] std::vector<std::string> sources() const { return {"--gene-table", table, "--no-go"}; }
  /// Entrez id -> text, as `genes text` writes them.
  [[nodiscard]] std::map<std::string, std::string> texts() const {
    const std::string path = directory.file("reference-texts.jsonl");
    const auto result = test::run_cli(concat({"-q", "genes", "text", "--out", path}, sources()));
    EXPECT_EQ(result.exit_code, 0) << result.err;
    std::map<std::string, std::string> texts;
    for (const auto& line : read_lines(path)) {
      const json object = json::parse(line);
      if (object.contains("entrez_id")) texts[std::to_string(object["entrez_id"].get<long>())] = object["text"];
    }
    return texts;
  }
};

json info_json(const std::string& store) {
  const auto result = test::run_cli({"genes", "info", store, "--json"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return result.exit_code == 0 ? json::parse(result.out) : json();
}

/// Every vector of `store` equals the normalised fake vector of the gene's text.
void expect_fake_vectors(const std::string& store, const std::map<std::string, std::string>& texts, int dimensions,
                         const TempDir& directory) {
  const std::string prefix = directory.file("exported");
  const auto result = test::run_cli({"-q", "genes", "export", store, "--format", "tsv", "--out", prefix});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto lines = read_lines(prefix + ".tsv");
  ASSERT_EQ(lines.size(), texts.size() + 1);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::istringstream fields(lines[i]);
    std::string entrez_id;
    std::string symbol;
    std::string ensembl_id;
    std::getline(fields, entrez_id, '\t');
    std::getline(fields, symbol, '\t');
    std::getline(fields, ensembl_id, '\t');
    ASSERT_TRUE(texts.contains(entrez_id)) << entrez_id;
    EXPECT_EQ(ensembl_id, fmt::format("ENSG{:011}", std::stol(entrez_id)));
    const auto expected = test::unit(test::fake_vector(texts.at(entrez_id), dimensions));
    for (int d = 0; d < dimensions; ++d) {
      std::string value;
      std::getline(fields, value, '\t');
      EXPECT_NEAR(std::stod(value), expected[static_cast<std::size_t>(d)], 1e-6) << symbol << " dim " << d;
    }
  }
}

/// Ids in a results store with how many lines each has (a direct run's checkpoint keys a line by
/// the gene's id and a hash of the text sent, "916#0123abcd...": the id is what is counted).
std::map<std::string, int> stored_ids(const std::string& path) {
  std::map<std::string, int> ids;
  for (const auto& line : read_lines(path)) {
    const json object = json::parse(line);
    if (object.contains("id")) {
      const std::string key = object["id"].get<std::string>();
      ++ids[key.substr(0, key.find('#'))];
    }
  }
  return ids;
}

void expect_one_line_error(const test::CommandResult& result, int code, const std::string& needle) {
  EXPECT_EQ(result.exit_code, code) << result.err;
  EXPECT_NE(result.err.find(needle), std::string::npos) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

class GenesOpenAiCli : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("NO_PROXY", "127.0.0.1", 1);
    setenv("no_proxy", "127.0.0.1", 1);
    setenv("OPENAI_API_KEY", "test-key", 1);
  }
  void TearDown() override { unsetenv("OPENAI_API_KEY"); }

  /// `genes embed --backend openai` against `server` with fast retries.
  [[nodiscard]] std::vector<std::string> direct_args(const FakeServer& server, const std::string& out,
                                                     std::vector<std::string> extra = {}) const {
    return concat(concat({"genes", "embed", "--backend", "openai", "--base-url", server.base_url(), "--model", "fake-embedding",
                          "--dimensions", std::to_string(kDimensions), "--backoff", "0.02", "--out", out},
                         fixture_.sources()),
                  extra);
  }
  Fixture fixture_;
};

TEST_F(GenesOpenAiCli, DirectEmbeddingThroughFaultsGivesEveryGeneOneVectorAndResumesFromTheCheckpoint) {
  const TempDir& directory = fixture_.directory;
  const auto texts = fixture_.texts();
  ASSERT_EQ(texts.size(), 12u);
  const std::string store = directory.file("store.h5");
  const std::string log = directory.file("log1.jsonl");
  {
    FakeServer server(log, {"--api-key", "test-key", "--faults",
                            R"([{"status":429,"retry_after":0.05},{"status":500},{"delay":3},{"truncate":true},{"status":503}])"});
    const auto result = test::run_cli(direct_args(server, store, {"--batch-size", "2", "--concurrency", "2", "--timeout", "1"}));
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_NE(result.err.find("embed: 12 genes to do, 0 already in the checkpoint"), std::string::npos) << result.err;
    EXPECT_NE(result.err.find("12 genes embedded: 0 from the checkpoint"), std::string::npos) << result.err;
    EXPECT_NE(result.err.find("wrote " + store + ": 12 genes x 16 dims (openai backend"), std::string::npos) << result.err;
  }
  const auto answered = test::answered_texts(test::read_log(log));
  EXPECT_EQ(answered.size(), texts.size());
  for (const auto& [text, count] : answered) EXPECT_EQ(count, 1) << text;
  for (const auto& [id, count] : stored_ids(store + ".checkpoint.jsonl")) EXPECT_EQ(count, 1) << id;
  EXPECT_EQ(stored_ids(store + ".checkpoint.jsonl").size(), texts.size());

  const json info = info_json(store);
  EXPECT_EQ(info["backend"], "openai");
  EXPECT_EQ(info["model"], "fake-embedding");
  EXPECT_EQ(info["n_genes"], 12);
  EXPECT_EQ(info["store_dims"], kDimensions);
  EXPECT_EQ(info["extra"]["texts"]["recipe_hash"], info["text_recipe_hash"]);
  EXPECT_EQ(info["extra"]["openai"]["n_from_checkpoint"], 0);
  EXPECT_FALSE(info["created_utc"].get<std::string>().empty());
  expect_fake_vectors(store, texts, kDimensions, directory);
  const auto human = test::run_cli({"genes", "info", store});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("backend / model:   openai / fake-embedding"), std::string::npos) << human.out;

  // Again: everything comes from the checkpoint, nothing is requested, the same store results.
  FakeServer server(directory.file("log2.jsonl"), {"--api-key", "test-key"});
  const std::string again = directory.file("again.h5");
  const auto result = test::run_cli(direct_args(server, again, {"--checkpoint", store + ".checkpoint.jsonl"}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("12 genes embedded: 12 from the checkpoint, 0 requests"), std::string::npos) << result.err;
  EXPECT_TRUE(test::read_log(directory.file("log2.jsonl")).empty());
  EXPECT_EQ(info_json(again)["identity_hash"], info["identity_hash"]);

  // Other texts (the aliases section added: 12 texts change) with the same checkpoint: each is
  // asked for again, never answered by the vector of the old text.
  FakeServer changed_server(directory.file("log3.jsonl"), {"--api-key", "test-key"});
  const std::string changed = directory.file("changed.h5");
  const auto rerun = test::run_cli(direct_args(changed_server, changed, {"--checkpoint", store + ".checkpoint.jsonl", "--sections", "name,aliases"}));
  ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
  EXPECT_NE(rerun.err.find("12 genes to do, 0 already in the checkpoint"), std::string::npos) << rerun.err;
  EXPECT_EQ(test::answered_texts(test::read_log(directory.file("log3.jsonl"))).size(), 12u);
  EXPECT_NE(info_json(changed)["identity_hash"], info["identity_hash"]);
}

TEST_F(GenesOpenAiCli, KillMidRunThenResumeRequestsNothingFinished) {
  const TempDir& directory = fixture_.directory;
  const auto texts = fixture_.texts();
  const std::string store = directory.file("store.h5");
  const std::string checkpoint = store + ".checkpoint.jsonl";
  const std::string log = directory.file("log1.jsonl");
  std::map<std::string, int> finished;
  {
    FakeServer server(log, {"--delay", "0.15"});
    const pid_t child = test::spawn_cli(direct_args(server, store, {"--batch-size", "1", "--concurrency", "1"}));
    ASSERT_GT(child, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (test::answered_texts(test::read_log(log)).size() < 4 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status)) << "celltyper finished before it was killed";
    finished = stored_ids(checkpoint);
  }
  EXPECT_GE(finished.size(), 3u);
  EXPECT_LT(finished.size(), texts.size());
  EXPECT_FALSE(std::filesystem::exists(store));

  FakeServer server(directory.file("log2.jsonl"));
  const auto result = test::run_cli(direct_args(server, store, {"--batch-size", "3"}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find(fmt::format("{} genes to do, {} already in the checkpoint", texts.size() - finished.size(),
                                        finished.size())),
            std::string::npos)
      << result.err;
  const auto answered = test::answered_texts(test::read_log(directory.file("log2.jsonl")));
  for (const auto& [id, count] : finished) EXPECT_FALSE(answered.contains(texts.at(id))) << id;
  for (const auto& [text, count] : answered) EXPECT_EQ(count, 1) << text;
  EXPECT_EQ(answered.size() + finished.size(), texts.size());
  const auto stored = stored_ids(checkpoint);
  EXPECT_EQ(stored.size(), texts.size());
  for (const auto& [id, count] : stored) EXPECT_EQ(count, 1) << id;
  expect_fake_vectors(store, texts, kDimensions, directory);
}

TEST_F(GenesOpenAiCli, BadKeyGivesOneClearLineAfterOneRequest) {
  const TempDir& directory = fixture_.directory;
  const std::string log = directory.file("log.jsonl");
  FakeServer server(log, {"--api-key", "right-key"});
  const auto result = test::run_cli(concat({"-q"}, direct_args(server, directory.file("store.h5"), {"--concurrency", "4"})));
  expect_one_line_error(result, 2, "check your API key");
  EXPECT_NE(result.err.find("HTTP 401"), std::string::npos) << result.err;
  EXPECT_EQ(test::read_log(log).size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(directory.file("store.h5")));

  // The Batch API calls too: one request, one line.
  const std::string batch_dir = directory.file("job");
  auto written = test::run_cli(concat({"-q", "genes", "embed", "--backend", "openai-batch", "--batch-dir", batch_dir, "--model",
                                       "fake-embedding"},
                                      fixture_.sources()));
  ASSERT_EQ(written.exit_code, 0) << written.err;
  const auto submit = test::run_cli({"-q", "genes", "embed", "--backend", "openai-batch", "--batch-dir", batch_dir, "--submit",
                                     "--base-url", server.base_url(), "--gene-table", fixture_.table});
  expect_one_line_error(submit, 2, "check your API key");
  EXPECT_EQ(test::read_log(log).size(), 2u);
}

/// Request files of a round: one JSON object per line with exactly custom_id, method POST, url,
/// body; custom_ids unique; returns (custom_id -> number of inputs).
std::map<std::string, std::size_t> check_request_files(const std::filesystem::path& round, const std::string& url) {
  std::map<std::string, std::size_t> requests;
  for (const auto& entry : std::filesystem::directory_iterator(round)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("batch-0") || name.find("output") != std::string::npos || name.find("errors") != std::string::npos) continue;
    for (const auto& line : read_lines(entry.path().string())) {
      const json request = json::parse(line);
      EXPECT_EQ(request.size(), 4u) << line;
      EXPECT_EQ(request["method"], "POST");
      EXPECT_EQ(request["url"], url);
      EXPECT_TRUE(request["body"].is_object());
      const std::size_t inputs = request["body"].contains("input") && request["body"]["input"].is_array()
                                     ? request["body"]["input"].size()
                                     : 1;
      EXPECT_TRUE(requests.emplace(request["custom_id"].get<std::string>(), inputs).second) << request["custom_id"];
    }
  }
  return requests;
}

TEST_F(GenesOpenAiCli, BatchRoundTripWithALostAnswerAnExpiredRequestAndASecondRound) {
  const TempDir& directory = fixture_.directory;
  const auto texts = fixture_.texts();
  const std::string job = directory.file("job");
  const std::string store = directory.file("store.h5");
  const std::string log = directory.file("log.jsonl");
  // Batches run at once but report in_progress for one poll; the 2nd request line expires; the
  // first batch creation takes effect but its answer is an HTTP 500.
  FakeServer server(log, {"--api-key", "test-key", "--batch-polls", "1", "--batch-expire", "[2]", "--faults",
                          R"([{"path":"/v1/batches","status":500,"after":true}])"});
  const std::vector<std::string> batch = {"genes", "embed", "--backend", "openai-batch", "--batch-dir", job,
                                          "--base-url", server.base_url(), "--gene-table", fixture_.table, "--backoff", "0.02"};

  // 1. Write: 12 genes, 3 per request, 2 requests per file -> 2 files.
  auto result = test::run_cli(concat(concat(batch, {"--no-go", "--model", "fake-embedding", "--dimensions", "8", "--batch-size", "3",
                                                    "--max-requests-per-file", "2", "--out", store}),
                                     {}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("next: --submit"), std::string::npos) << result.err;
  const auto requests = check_request_files(std::filesystem::path(job) / "round-001", "/v1/embeddings");
  EXPECT_EQ(requests.size(), 4u);
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(job) / "round-001" / "batch-00002.jsonl"));
  EXPECT_TRUE(test::read_log(log).empty());
  // Writing again into the same directory is refused.
  expect_one_line_error(test::run_cli(concat({"-q"}, concat(batch, {"--no-go"}))), 2, "already holds a batch job");

  // 2. Submit: two uploads, two batches; the lost answer is found by listing, not created twice.
  result = test::run_cli(concat(batch, {"--submit"}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("2 files uploaded, 2 batches created"), std::string::npos) << result.err;
  auto entries = test::read_log(log);
  EXPECT_EQ(test::count_requests(entries, "POST", "/v1/files"), 2);
  EXPECT_EQ(test::count_requests(entries, "POST", "/v1/batches"), 2);
  EXPECT_EQ(test::count_requests(entries, "GET", "/v1/batches"), 1);
  const json state = json::parse(test::read_file((std::filesystem::path(job) / "round-001" / "state.json").string()));
  EXPECT_EQ(state["files"].size(), 2u);
  for (const auto& [file, entry] : state["files"].items()) EXPECT_FALSE(entry["batch"]["id"].get<std::string>().empty()) << file;
  // Submitting again does nothing.
  result = test::run_cli(concat(batch, {"--submit"}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("0 files uploaded, 0 batches created, 2 submitted before"), std::string::npos) << result.err;

  // 3. Collect: still running.
  result = test::run_cli(concat(batch, {"--collect"}));
  EXPECT_EQ(result.exit_code, 75) << result.err;
  EXPECT_NE(result.err.find("batches are still running"), std::string::npos) << result.err;

  // 4. Collect: done, but the expired request's 3 genes need a second round (not submitted).
  result = test::run_cli(concat(batch, {"--collect"}));
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_NE(result.err.find("9 of 12 done"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("batch_expired"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("add --submit"), std::string::npos) << result.err;
  const auto second = check_request_files(std::filesystem::path(job) / "round-002", "/v1/embeddings");
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second.begin()->first, "r2-emb-000000");
  EXPECT_EQ(second.begin()->second, 3u);

  // 5. Collect with --submit and --wait: round 2 runs; the store is written where the write step said.
  result = test::run_cli(concat(batch, {"--collect", "--submit", "--wait", "60", "--poll-interval", "0.1"}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("12 of 12 done"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("wrote " + store + ": 12 genes x 8 dims (openai-batch backend"), std::string::npos) << result.err;

  const json info = info_json(store);
  EXPECT_EQ(info["backend"], "openai-batch");
  EXPECT_EQ(info["model"], "fake-embedding");
  EXPECT_EQ(info["n_genes"], 12);
  EXPECT_EQ(info["extra"]["openai"]["rounds"], 2);
  EXPECT_EQ(info["text_recipe_hash"], info["extra"]["texts"]["recipe_hash"]);
  expect_fake_vectors(store, texts, 8, directory);
  // Every gene was embedded exactly once by the batches, each file uploaded and run once.
  entries = test::read_log(log);
  const auto answered = test::answered_texts(entries);
  EXPECT_EQ(answered.size(), texts.size());
  for (const auto& [text, count] : answered) EXPECT_EQ(count, 1) << text;
  EXPECT_EQ(test::count_requests(entries, "POST", "/v1/files"), 3);
  EXPECT_EQ(test::count_requests(entries, "POST", "/v1/batches"), 3);
  EXPECT_EQ(stored_ids(job + "/results.jsonl").size(), texts.size());
}

TEST_F(GenesOpenAiCli, BatchCollectReadsOutputFilesDownloadedByHand) {
  const TempDir& directory = fixture_.directory;
  const auto texts = fixture_.texts();
  const std::string job = directory.file("job");
  const std::vector<std::string> batch = {"genes", "embed", "--backend", "openai-batch", "--batch-dir", job, "--gene-table",
                                          fixture_.table};
  auto result = test::run_cli(concat(batch, {"--no-go", "--model", "fake-embedding", "--dimensions", "8", "--batch-size", "5"}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::filesystem::path round = std::filesystem::path(job) / "round-001";
  // Nothing there yet: collecting without the API says what is awaited.
  result = test::run_cli(concat(batch, {"--collect", "--no-api", "--out", directory.file("store.h5")}));
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_NE(result.err.find("awaiting: round-001/batch-00001.jsonl"), std::string::npos) << result.err;

  // The Batch API's output and error files (every 2nd request expires), as a user downloads them.
  const auto run = test::run_program({test::system_python(), test::fake_server_script(), "batch", (round / "batch-00001.jsonl").string(),
                                      "--output", (round / "batch_abc_output.jsonl").string(), "--errors",
                                      (round / "batch_abc_error.jsonl").string(), "--expire-every", "2"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::ofstream(round / "batch_abc_output.jsonl", std::ios::app) << "{not json\n";
  result = test::run_cli(concat(batch, {"--collect", "--no-api", "--out", directory.file("store.h5")}));
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_NE(result.err.find("7 of 12 done"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("1 malformed output lines"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("wrote round-002"), std::string::npos) << result.err;

  const std::filesystem::path second = std::filesystem::path(job) / "round-002";
  const auto run2 = test::run_program({test::system_python(), test::fake_server_script(), "batch", (second / "batch-00001.jsonl").string(),
                                       "--output", (second / "out.jsonl").string(), "--errors", (second / "err.jsonl").string()});
  ASSERT_EQ(run2.exit_code, 0) << run2.err;
  result = test::run_cli(concat(batch, {"--collect", "--no-api", "--out", directory.file("store.h5")}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  expect_fake_vectors(directory.file("store.h5"), texts, 8, directory);
}

TEST_F(GenesOpenAiCli, EnrichDirectlyAndThroughABatchThenTextsCarryTheEnrichment) {
  const TempDir& directory = fixture_.directory;
  const std::string log = directory.file("log.jsonl");
  FakeServer server(log, {"--faults", R"([{"status":500}])"});
  const std::string subset = write_file(directory, "subset.txt", "symbol\nCD3E\n4069\nENSG00000000931\n");
  const std::string enrichment = directory.file("enrichment.jsonl");
  auto result = test::run_cli({"genes", "enrich", "--base-url", server.base_url(), "--model", "fake-chat", "--backoff", "0.02",
                               "--gene-table", fixture_.table, "--subset", subset, "--out", enrichment});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("3 answers: 0 from the checkpoint"), std::string::npos) << result.err;
  auto lines = read_lines(enrichment);
  ASSERT_EQ(lines.size(), 4u);
  const json header = json::parse(lines[0]);
  EXPECT_EQ(header["celltyper_gene_enrichment"], 1);
  EXPECT_EQ(header["model"], "fake-chat");
  const json lyz = json::parse(lines[3]);  // ascending Entrez id: 916, 931, 4069
  EXPECT_EQ(lyz["entrez_id"], 4069);
  EXPECT_EQ(lyz["symbol"], "LYZ");
  EXPECT_EQ(lyz["text"].get<std::string>().rfind("ENRICHED[Gene: LYZ (lysozyme)\nKnown summary: Bacteriolytic enzyme of monocytes.", 0), 0u)
      << lyz["text"];
  EXPECT_EQ(test::answered_texts(test::read_log(log)).size(), 3u);

  // genes text appends it in its own section.
  const std::string texts = directory.file("texts.tsv");
  result = test::run_cli(concat({"genes", "text", "--enrichment", enrichment, "--out", texts}, fixture_.sources()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("3 with enrichment"), std::string::npos) << result.err;
  EXPECT_NE(test::read_file(texts).find("\n4069\tLYZ\tLYZ: lysozyme. Gene type: protein-coding. Summary: Bacteriolytic enzyme of monocytes. "
                                  "Enrichment: ENRICHED[Gene: LYZ (lysozyme) Known summary: Bacteriolytic enzyme of monocytes."),
            std::string::npos)
      << test::read_file(texts);

  // The same through a batch job, written as TSV, read back by genes text.
  const std::string job = directory.file("enrich-job");
  const std::string tsv = directory.file("enrichment.tsv");
  result = test::run_cli({"genes", "enrich", "--batch-dir", job, "--submit", "--base-url", server.base_url(), "--model", "fake-chat",
                          "--gene-table", fixture_.table, "--subset", subset, "--out", tsv});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  result = test::run_cli({"genes", "enrich", "--batch-dir", job, "--collect", "--base-url", server.base_url(), "--gene-table",
                          fixture_.table});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  lines = read_lines(tsv);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "entrez_id\tsymbol\ttext");
  EXPECT_EQ(lines[3].rfind("4069\tLYZ\tENRICHED[Gene: LYZ (lysozyme) Known summary:", 0), 0u) << lines[3];
  result = test::run_cli(concat({"-q", "genes", "text", "--enrichment", tsv, "--out", directory.file("texts2.tsv")}, fixture_.sources()));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(test::read_file(directory.file("texts2.tsv")).substr(test::read_file(directory.file("texts2.tsv")).find('\n')),
            test::read_file(texts).substr(test::read_file(texts).find('\n')));
  // An enrichment job is not an embedding job.
  expect_one_line_error(test::run_cli({"-q", "genes", "embed", "--backend", "openai-batch", "--batch-dir", job, "--collect",
                                       "--gene-table", fixture_.table}),
                        2, "use 'genes enrich' for that one");
}

TEST_F(GenesOpenAiCli, FullDiskStopsWithAClearErrorAndLosesNothing) {
  const TempDir& directory = fixture_.directory;
  const auto texts = fixture_.texts();
  const std::string store = directory.file("store.h5");
  const std::string checkpoint = store + ".checkpoint.jsonl";
  {
    // A file-size limit makes the checkpoint's writes fail as on a full disk (EFBIG).
    FakeServer server(directory.file("log1.jsonl"));
    std::string command = "trap '' XFSZ; ulimit -f 1; exec";
    for (const auto& arg : concat({CELLTYPER_CLI_PATH, "-q"}, direct_args(server, store, {"--batch-size", "1", "--concurrency", "1"})))
      command += " '" + arg + "'";
    const auto result = test::run_program({"bash", "-c", command});
    expect_one_line_error(result, 3, "cannot write results store");
  }
  const auto kept = stored_ids(checkpoint);
  EXPECT_GT(kept.size(), 2u);
  EXPECT_LT(kept.size(), texts.size());
  for (const auto& [id, count] : kept) EXPECT_EQ(count, 1) << id;
  EXPECT_FALSE(std::filesystem::exists(store));

  FakeServer server(directory.file("log2.jsonl"));
  const auto result = test::run_cli(direct_args(server, store));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto requested = test::requested_texts(test::read_log(directory.file("log2.jsonl")));
  for (const auto& [id, count] : kept) EXPECT_FALSE(requested.contains(texts.at(id))) << id;
  expect_fake_vectors(store, texts, kDimensions, directory);
}

TEST_F(GenesOpenAiCli, BadInputGivesOneClearLineBeforeAnyRequest) {
  const TempDir& directory = fixture_.directory;
  const std::string log = directory.file("log.jsonl");
  FakeServer server(log);
  const std::string out = directory.file("x.h5");
  expect_one_line_error(
      test::run_cli(concat({"-q"}, direct_args(server, out, {"--subset", write_file(directory, "subset.txt", "CD3E\nNOTAGENE\n12345678\n")}))),
      2, "2 gene id(s) not in the gene table");
  expect_one_line_error(
      test::run_cli({"-q", "genes", "embed", "--backend", "openai", "--base-url", server.base_url(), "--gene-table", fixture_.table,
                     "--texts", write_file(directory, "bad.jsonl", "{\"entrez_id\": 916, \"text\": \"x\"}\n{not json\n"), "--out", out}),
      2, "bad.jsonl: line 2: not valid JSON");
  expect_one_line_error(
      test::run_cli({"-q", "genes", "embed", "--backend", "openai", "--base-url", server.base_url(), "--gene-table", fixture_.table,
                     "--texts", write_file(directory, "unknown.tsv", "entrez_id\tsymbol\ttext\n916\tCD3E\tT cells.\n99999999\tFOO\tfoo.\n"),
                     "--out", out}),
      2, "1 gene(s) of the texts are not in the gene table");
  expect_one_line_error(
      test::run_cli({"-q", "genes", "embed", "--backend", "openai", "--base-url", server.base_url(), "--gene-table", fixture_.table,
                     "--texts", write_file(directory, "empty.tsv", "entrez_id\tsymbol\ttext\n916\tCD3E\t\n"), "--out", out}),
      2, "every gene text is empty");
  expect_one_line_error(test::run_cli(concat({"-q", "genes", "embed", "--backend", "openai-batch", "--out", out}, fixture_.sources())), 2,
                        "needs --batch-dir");
  expect_one_line_error(test::run_cli({"-q", "genes", "embed", "--backend", "openai-batch", "--batch-dir", directory.file("none"),
                                       "--collect", "--gene-table", fixture_.table}),
                        2, "holds no batch job to collect");
  expect_one_line_error(test::run_cli(concat({"-q", "genes", "embed", "--backend", "openai", "--batch-size", "0", "--out", out},
                                             fixture_.sources())),
                        2, "--batch-size must be 1..2048");
  expect_one_line_error(test::run_cli({"-q", "genes", "enrich", "--gene-table", fixture_.table, "--submit", "--out", out}), 2,
                        "--submit and --collect go with --batch-dir");
  EXPECT_TRUE(test::read_log(log).empty());
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace celltyper
