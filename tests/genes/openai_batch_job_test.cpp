// Tests of the Batch API calls (upload, create, retrieve, list, download) and of batch job
// directories against tests/genes/fake_openai_server.py: retries, a lost answer that must not
// create a second batch, a cut download, a request file the server refuses, rounds.
#include <celltyper/error.hpp>
#include <celltyper/openai.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "genes/fake_openai_server.hpp"
#include "support/test_support.hpp"

namespace celltyper::openai {
namespace {

using test::FakeServer;
using test::TempDir;

template <typename E, typename F>
std::string message_of(F&& action) {
  try {
    action();
  } catch (const E& error) {
    return error.what();
  }
  return {};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

HttpClientOptions fast_http(const FakeServer& server) {
  HttpClientOptions http;
  http.base_url = server.base_url();
  http.api_key = "test-key";
  http.request_timeout_seconds = 1;
  http.initial_backoff_seconds = 0.01;
  http.max_backoff_seconds = 0.05;
  return http;
}

IdAndText make_genes(int n) {
  IdAndText items;
  for (int i = 0; i < n; ++i) items.emplace_back(fmt::format("{}", 100 + i), fmt::format("Gene {}: does thing {}.", 100 + i, i));
  return items;
}

class OpenAiBatchApi : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("NO_PROXY", "127.0.0.1", 1);
    setenv("no_proxy", "127.0.0.1", 1);
  }
  TempDir directory_;
};

TEST_F(OpenAiBatchApi, CallsRetryAndALostAnswerNeverMakesASecondBatch) {
  const std::string log = directory_.file("log.jsonl");
  FakeServer server(log, {"--faults", R"([{"path":"/v1/files","status":429,"retry_after":0.05},)"
                                      R"({"path":"/v1/batches","status":500,"after":true},)"
                                      R"({"path":"/v1/batches/","delay":2},)"
                                      R"({"path":"/v1/files/","truncate":true}])"});
  const HttpClientOptions http = fast_http(server);
  BatchWriteOptions write;
  write.embedding.model = "fake-embedding";
  write.embedding.dimensions = 4;
  write.embedding.inputs_per_request = 2;
  const BatchWriteResult written = write_batch_requests(make_genes(5), directory_.file("requests"), write);
  ASSERT_EQ(written.request_files.size(), 1u);

  const std::string file_id = upload_batch_file(written.request_files[0], http);
  EXPECT_FALSE(file_id.empty());
  const BatchInfo created = create_batch(file_id, BatchEndpoint::kEmbeddings, {{"job", "test"}}, http);
  EXPECT_EQ(created.input_file_id, file_id);
  EXPECT_FALSE(created.id.empty());
  const BatchInfo retrieved = retrieve_batch(created.id, http);  // the first attempt times out
  EXPECT_EQ(retrieved.id, created.id);
  EXPECT_EQ(retrieved.status, "completed");
  EXPECT_TRUE(retrieved.finished());
  EXPECT_EQ(retrieved.n_total, 3u);
  EXPECT_EQ(retrieved.n_completed, 3u);
  ASSERT_FALSE(retrieved.output_file_id.empty());
  EXPECT_TRUE(retrieved.error_file_id.empty());
  const auto found = find_batch_for_input_file(file_id, http);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, created.id);
  EXPECT_FALSE(find_batch_for_input_file("file-unknown", http).has_value());

  const std::string output = directory_.file("output.jsonl");
  download_file(retrieved.output_file_id, output, http);  // the first download is cut
  EXPECT_FALSE(std::filesystem::exists(output + ".part"));
  BatchParseOptions parse;
  parse.manifest_file = written.manifest_file;
  const BatchParseResult parsed = parse_batch_output({output}, parse);
  EXPECT_EQ(parsed.embeddings.size(), 5u) << parsed.summary();
  EXPECT_TRUE(parsed.malformed.empty()) << parsed.summary();
  for (const auto& [id, text] : make_genes(5)) EXPECT_EQ(parsed.embeddings.at(id), test::fake_vector(text, 4)) << id;

  const auto entries = test::read_log(log);
  EXPECT_EQ(test::count_requests(entries, "POST", "/v1/files"), 2);    // 429, then the upload
  EXPECT_EQ(test::count_requests(entries, "POST", "/v1/batches"), 1);  // made once, answer lost, found by listing
  EXPECT_EQ(test::count_requests(entries, "GET", "/v1/files/" + retrieved.output_file_id + "/content"), 2);

  // Unknown ids and bad keys are clear errors.
  EXPECT_NE(message_of<InputError>([&] { retrieve_batch("batch-nope", http); }).find("No batch with id batch-nope"), std::string::npos);
  HttpClientOptions wrong = http;
  wrong.api_key = "wrong";
  FakeServer strict(directory_.file("log2.jsonl"), {"--api-key", "right"});
  wrong.base_url = strict.base_url();
  EXPECT_NE(message_of<InputError>([&] { upload_batch_file(written.request_files[0], wrong); }).find("check your API key"),
            std::string::npos);
  EXPECT_EQ(test::read_log(directory_.file("log2.jsonl")).size(), 1u);
  EXPECT_NE(message_of<IoError>([&] { upload_batch_file(directory_.file("absent.jsonl"), http); }).find("absent.jsonl"),
            std::string::npos);
}

TEST_F(OpenAiBatchApi, JobOfChatRequestsRunsToTheEndOverRounds) {
  const std::string log = directory_.file("log.jsonl");
  FakeServer server(log, {"--batch-expire", "[1, 3]"});
  const std::string job = directory_.file("job");
  IdAndText prompts;
  for (const char* symbol : {"CD3E", "LYZ", "MS4A1", "PF4"}) prompts.emplace_back(symbol, enrichment_prompt(symbol, "", ""));
  BatchWriteOptions write;
  write.endpoint = BatchEndpoint::kChatCompletions;
  write.chat.model = "fake-chat";
  const BatchJobInfo info = create_batch_job(prompts, job, write, {{"kind", "test"}});
  EXPECT_EQ(info.rounds, std::vector<std::string>{"round-001"});
  EXPECT_EQ(read_batch_job_items(job), prompts);
  EXPECT_NE(message_of<InputError>([&] { create_batch_job(prompts, job, write); }).find("already holds a batch job"), std::string::npos);

  BatchCollectOptions collect;
  collect.http = fast_http(server);
  collect.max_rounds = 2;
  // Nothing submitted, no outputs: awaiting.
  BatchCollectResult result = collect_batch_job(job, collect);
  EXPECT_FALSE(result.complete);
  EXPECT_EQ(result.awaiting, std::vector<std::string>{"round-001/batch-00001.jsonl"});
  EXPECT_TRUE(result.new_round.empty());
  // Submit and collect: lines 1 and 3 expire, so round 2 gets CD3E and MS4A1; its first line
  // (line 5 of the server) runs.
  const BatchSubmitResult submitted = submit_batch_job(job, collect.http);
  EXPECT_EQ(submitted.n_uploaded, 1u);
  EXPECT_EQ(submitted.n_created, 1u);
  collect.submit = true;
  collect.wait_seconds = 30;
  collect.poll_interval_seconds = 0.05;
  result = collect_batch_job(job, collect);
  EXPECT_TRUE(result.complete) << result.summary();
  EXPECT_EQ(result.n_done, 4u);
  EXPECT_EQ(open_batch_job(job).rounds, (std::vector<std::string>{"round-001", "round-002"}));
  const StoredResults stored = read_results_store(info.results_path());
  ASSERT_EQ(stored.texts.size(), 4u);
  for (const auto& [id, prompt] : prompts) EXPECT_EQ(stored.texts.at(id), "ENRICHED[" + prompt + "]") << id;
  const std::string second = read_file(job + "/round-002/batch-00001.jsonl");
  EXPECT_NE(second.find("\"custom_id\":\"r2-chat-CD3E\""), std::string::npos) << second;
  EXPECT_NE(second.find("\"custom_id\":\"r2-chat-MS4A1\""), std::string::npos) << second;
  EXPECT_EQ(second.find("LYZ"), std::string::npos) << second;
}

TEST_F(OpenAiBatchApi, ARefusedRequestFileIsReportedAndRedoneUntilTheRoundLimit) {
  FakeServer server(directory_.file("log.jsonl"));
  const std::string job = directory_.file("job");
  BatchWriteOptions write;
  write.embedding.model = "fake-embedding";
  write.embedding.dimensions = 4;
  write.embedding.inputs_per_request = 3;
  create_batch_job(make_genes(6), job, write, nullptr);
  // Damage the request file: a repeated custom_id, which the Batch API refuses at validation.
  const std::string request_file = job + "/round-001/batch-00001.jsonl";
  std::string content = read_file(request_file);
  const std::string first_line = content.substr(0, content.find('\n') + 1);
  std::ofstream(request_file, std::ios::app) << first_line;

  BatchCollectOptions collect;
  collect.http = fast_http(server);
  collect.max_rounds = 1;
  collect.submit = true;
  BatchCollectResult result = collect_batch_job(job, collect);
  EXPECT_FALSE(result.complete);
  ASSERT_EQ(result.batch_problems.size(), 1u) << result.summary();
  EXPECT_NE(result.batch_problems[0].find("failed: line 3: The custom_id emb-000000 is not unique. (duplicate_custom_id)"),
            std::string::npos)
      << result.batch_problems[0];
  EXPECT_EQ(result.missing.size(), 6u);
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_NE(result.warnings[0].find("6 ids still have no result after 1 rounds"), std::string::npos) << result.warnings[0];
  // With one more round allowed, the untouched request file of round 2 goes through.
  collect.max_rounds = 2;
  collect.wait_seconds = 30;
  collect.poll_interval_seconds = 0.05;
  result = collect_batch_job(job, collect);
  EXPECT_TRUE(result.complete) << result.summary();
  EXPECT_EQ(result.new_round, "round-002");
  EXPECT_EQ(read_results_store(open_batch_job(job).results_path()).embeddings.size(), 6u);
}

}  // namespace
}  // namespace celltyper::openai
