// Tests of the direct OpenAI client against tests/genes/fake_openai_server.py: retries, faults,
// bad keys, rejected texts, checkpoints that survive kills and full disks.
#include <celltyper/error.hpp>
#include <celltyper/openai.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "genes/fake_openai_server.hpp"
#include "support/test_support.hpp"

namespace celltyper::openai {
namespace {

using test::TempDir;

constexpr int kDimensions = 16;

using test::answered_texts;
using test::FakeServer;
using test::fake_vector;
using test::read_log;
using test::requested_texts;

IdAndText make_genes(int n, int first = 0) {
  IdAndText items;
  for (int i = first; i < first + n; ++i)
    items.emplace_back(fmt::format("G{:04}", i), fmt::format("Gene G{:04}: a summary of gene number {}.", i, i));
  return items;
}

std::string text_of(const std::string& id) {
  const int number = std::stoi(id.substr(1));
  return fmt::format("Gene {}: a summary of gene number {}.", id, number);
}

/// Ids in a checkpoint file with how many lines each has.
std::map<std::string, int> checkpoint_ids(const std::string& path) {
  std::map<std::string, int> ids;
  std::ifstream file(path);
  std::string line;
  bool header = true;
  while (std::getline(file, line)) {
    if (header) {
      header = false;
      continue;
    }
    ++ids[nlohmann::json::parse(line)["id"].get<std::string>()];
  }
  return ids;
}

EmbedTextsOptions fast_options(const FakeServer& server, const std::string& checkpoint) {
  EmbedTextsOptions options;
  options.request.model = "fake-embedding";
  options.request.dimensions = kDimensions;
  options.request.inputs_per_request = 4;
  options.http.base_url = server.base_url();
  options.http.api_key = "test-key";
  options.http.max_concurrent_requests = 3;
  options.http.request_timeout_seconds = 5;
  options.http.initial_backoff_seconds = 0.01;
  options.http.max_backoff_seconds = 0.05;
  options.http.checkpoint_path = checkpoint;
  return options;
}

void expect_embeddings(const std::map<std::string, std::vector<float>>& embeddings, const IdAndText& items) {
  ASSERT_EQ(embeddings.size(), items.size());
  for (const auto& [id, text] : items) {
    ASSERT_TRUE(embeddings.contains(id)) << id;
    EXPECT_EQ(embeddings.at(id), fake_vector(text, kDimensions)) << id;
  }
}

/// The message of the exception of type E that `action` throws ("" when none).
template <typename E, typename F>
std::string message_of(F&& action) {
  try {
    action();
  } catch (const E& error) {
    return error.what();
  }
  return {};
}

class OpenAiClient : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("NO_PROXY", "127.0.0.1", 1);
    setenv("no_proxy", "127.0.0.1", 1);
  }
  TempDir directory_;
};

TEST_F(OpenAiClient, EveryGeneGetsOneEmbeddingThroughFaultsAndResumeRequestsOnlyNewGenes) {
  const std::string checkpoint = directory_.file("checkpoint.jsonl");
  const IdAndText genes = make_genes(30);
  std::size_t last_done = 0;
  std::size_t progress_calls = 0;
  {
    FakeServer server(directory_.file("log1.jsonl"),
                      {"--faults", R"([{"status":429,"retry_after":0.05},{"status":500},{"truncate":true},{"delay":2.5},)"
                                   R"({"status":503}])"});
    EmbedTextsOptions options = fast_options(server, checkpoint);
    options.http.request_timeout_seconds = 1.0;  // the delayed answer comes too late
    options.http.on_progress = [&](std::size_t done, std::size_t total) {
      EXPECT_EQ(total, genes.size());
      EXPECT_GE(done, last_done);
      last_done = done;
      ++progress_calls;
    };
    const EmbedTextsResult result = embed_texts(genes, options);
    expect_embeddings(result.embeddings, genes);
    EXPECT_EQ(result.n_from_checkpoint, 0u);
    EXPECT_GE(result.n_retries, 5u);  // more only if the loaded machine made a request time out
    EXPECT_EQ(result.n_requests, 8u + result.n_retries);
    EXPECT_EQ(last_done, genes.size());
    EXPECT_EQ(progress_calls, 1u + 8u);
  }
  // Each gene was answered exactly once and stored exactly once.
  for (const auto& [text, count] : answered_texts(read_log(directory_.file("log1.jsonl")))) EXPECT_EQ(count, 1) << text;
  EXPECT_EQ(answered_texts(read_log(directory_.file("log1.jsonl"))).size(), genes.size());
  for (const auto& [id, count] : checkpoint_ids(checkpoint)) EXPECT_EQ(count, 1) << id;
  EXPECT_EQ(checkpoint_ids(checkpoint).size(), genes.size());

  // Resume with 5 more genes: only those are requested.
  const IdAndText more = make_genes(35);
  FakeServer server(directory_.file("log2.jsonl"));
  const EmbedTextsResult result = embed_texts(more, fast_options(server, checkpoint));
  expect_embeddings(result.embeddings, more);
  EXPECT_EQ(result.n_from_checkpoint, 30u);
  const auto requested = requested_texts(read_log(directory_.file("log2.jsonl")));
  EXPECT_EQ(requested.size(), 5u);
  for (const auto& [id, text] : make_genes(5, 30)) EXPECT_TRUE(requested.contains(text)) << id;
  EXPECT_EQ(checkpoint_ids(checkpoint).size(), more.size());
}

TEST_F(OpenAiClient, KillMidRunLosesNothingAndResumeRequestsNothingFinished) {
  const std::string checkpoint = directory_.file("checkpoint.jsonl");
  const std::string log = directory_.file("log1.jsonl");
  const IdAndText genes = make_genes(40);
  std::map<std::string, int> finished_before_resume;
  {
    FakeServer server(log, {"--delay", "0.1"});
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      try {
        EmbedTextsOptions options = fast_options(server, checkpoint);
        options.request.inputs_per_request = 2;
        options.http.max_concurrent_requests = 2;
        embed_texts(genes, options);
        _exit(0);
      } catch (...) {
        _exit(1);
      }
    }
    // Kill the child once the server has answered a few requests.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (answered_texts(read_log(log)).size() < 10 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status)) << "the child finished before it was killed";
    finished_before_resume = checkpoint_ids(checkpoint);  // fsynced, complete lines only
  }
  EXPECT_GE(finished_before_resume.size(), 4u);
  EXPECT_LT(finished_before_resume.size(), genes.size());

  FakeServer server(directory_.file("log2.jsonl"));
  const EmbedTextsResult result = embed_texts(genes, fast_options(server, checkpoint));
  expect_embeddings(result.embeddings, genes);
  EXPECT_EQ(result.n_from_checkpoint, finished_before_resume.size());
  const auto answered = answered_texts(read_log(directory_.file("log2.jsonl")));
  for (const auto& [id, count] : finished_before_resume) EXPECT_FALSE(answered.contains(text_of(id))) << id;
  EXPECT_EQ(answered.size() + finished_before_resume.size(), genes.size());
  for (const auto& [text, count] : answered) EXPECT_EQ(count, 1) << text;
  const auto stored = checkpoint_ids(checkpoint);
  EXPECT_EQ(stored.size(), genes.size());
  for (const auto& [id, count] : stored) EXPECT_EQ(count, 1) << id;
}

TEST_F(OpenAiClient, BadKeyFailsAtOnceWithOneRequest) {
  const std::string log = directory_.file("log.jsonl");
  FakeServer server(log, {"--api-key", "right-key"});
  EmbedTextsOptions options = fast_options(server, directory_.file("checkpoint.jsonl"));
  options.http.api_key = "wrong-key";
  options.http.max_concurrent_requests = 4;
  const std::string message = message_of<InputError>([&] { embed_texts(make_genes(20), options); });
  EXPECT_NE(message.find("HTTP 401"), std::string::npos) << message;
  EXPECT_NE(message.find("check your API key"), std::string::npos) << message;
  EXPECT_EQ(read_log(log).size(), 1u);

  // The key comes from OPENAI_API_KEY unless the option gives one.
  options.http.api_key.clear();
  setenv("OPENAI_API_KEY", "right-key", 1);
  EXPECT_EQ(embed_texts(make_genes(3), options).embeddings.size(), 3u);
  setenv("OPENAI_API_KEY", "wrong-key", 1);
  options.http.api_key = "right-key";
  EXPECT_EQ(embed_texts(make_genes(4), options).embeddings.size(), 4u);
  unsetenv("OPENAI_API_KEY");

  // No key at all is refused before any request to api.openai.com.
  options.http.api_key.clear();
  options.http.base_url = "https://api.openai.com/v1";
  EXPECT_NE(message_of<InputError>([&] { embed_texts(make_genes(1), options); }).find("OPENAI_API_KEY"),
            std::string::npos);
}

TEST_F(OpenAiClient, HonoursRetryAfter) {
  const std::string log = directory_.file("log.jsonl");
  FakeServer server(log, {"--faults", R"([{"status":429,"retry_after":0.4}])"});
  const auto start = std::chrono::steady_clock::now();
  const EmbedTextsResult result = embed_texts(make_genes(1), fast_options(server, ""));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(result.embeddings.size(), 1u);
  EXPECT_EQ(result.n_retries, 1u);
  EXPECT_GE(seconds, 0.4);
  EXPECT_EQ(read_log(log).size(), 2u);
}

TEST_F(OpenAiClient, GivesUpAfterMaxAttemptsNamingTheGenes) {
  const std::string log = directory_.file("log.jsonl");
  FakeServer server(log, {"--faults", R"([{"status":500},{"status":502},{"status":500}])"});
  EmbedTextsOptions options = fast_options(server, directory_.file("checkpoint.jsonl"));
  options.http.max_attempts = 3;
  const std::string message = message_of<IoError>([&] { embed_texts(make_genes(2), options); });
  EXPECT_NE(message.find("G0000, G0001"), std::string::npos) << message;
  EXPECT_NE(message.find("3 times"), std::string::npos) << message;
  EXPECT_NE(message.find("HTTP 500"), std::string::npos) << message;
  EXPECT_EQ(read_log(log).size(), 3u);
}

TEST_F(OpenAiClient, RejectedTextIsNamedAndEverythingElseIsDone) {
  const std::string checkpoint = directory_.file("checkpoint.jsonl");
  FakeServer server(directory_.file("log.jsonl"), {"--reject-substring", "POISON"});
  IdAndText genes = make_genes(10);
  genes[6].second += " POISON";
  EmbedTextsOptions options = fast_options(server, checkpoint);
  options.request.inputs_per_request = 8;
  const std::string message = message_of<InputError>([&] { embed_texts(genes, options); });
  EXPECT_NE(message.find("G0006 (HTTP 400"), std::string::npos) << message;
  EXPECT_NE(message.find("1 gene(s)"), std::string::npos) << message;
  const auto stored = checkpoint_ids(checkpoint);
  EXPECT_EQ(stored.size(), 9u);
  EXPECT_FALSE(stored.contains("G0006"));
}

TEST_F(OpenAiClient, Base64ResponsesAndNoCheckpoint) {
  FakeServer server(directory_.file("log.jsonl"));
  EmbedTextsOptions options = fast_options(server, "");
  options.request.base64 = true;
  const IdAndText genes = make_genes(9);
  expect_embeddings(embed_texts(genes, options).embeddings, genes);
}

TEST_F(OpenAiClient, CompletesChatTextsResumably) {
  const std::string checkpoint = directory_.file("chat.jsonl");
  IdAndText prompts;
  const std::vector<std::pair<std::string, std::string>> symbols_and_names = {
      {"CD3E", "CD3 epsilon"}, {"MS4A1", "membrane spanning 4-domains A1"}, {"ALB", "albumin"}};
  for (const auto& [symbol, name] : symbols_and_names)
    prompts.emplace_back(symbol, enrichment_prompt(symbol, name, ""));
  CompleteTextsOptions options;
  options.request.model = "fake-chat";
  options.http.api_key = "test-key";
  options.http.checkpoint_path = checkpoint;
  options.http.initial_backoff_seconds = 0.01;
  {
    FakeServer server(directory_.file("log1.jsonl"), {"--faults", R"([{"status":500}])"});
    options.http.base_url = server.base_url();
    const CompleteTextsResult result = complete_texts(prompts, options);
    ASSERT_EQ(result.texts.size(), prompts.size());
    for (const auto& [id, prompt] : prompts) EXPECT_EQ(result.texts.at(id), "ENRICHED[" + prompt + "]");
    EXPECT_EQ(result.n_retries, 1u);
  }
  FakeServer server(directory_.file("log2.jsonl"));
  options.http.base_url = server.base_url();
  const CompleteTextsResult again = complete_texts(prompts, options);
  EXPECT_EQ(again.n_from_checkpoint, prompts.size());
  EXPECT_EQ(again.n_requests, 0u);
  for (const auto& [id, prompt] : prompts) EXPECT_EQ(again.texts.at(id), "ENRICHED[" + prompt + "]");
}

TEST_F(OpenAiClient, WriteFailureKeepsEverythingStored) {
  const std::string checkpoint = directory_.file("checkpoint.jsonl");
  const IdAndText genes = make_genes(20);
  {
    FakeServer server(directory_.file("log1.jsonl"));
    embed_texts(make_genes(2), fast_options(server, checkpoint));  // creates the store
    const auto size = std::filesystem::file_size(checkpoint);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // A file-size limit makes writes fail like a full disk (EFBIG instead of ENOSPC).
      signal(SIGXFSZ, SIG_IGN);
      const rlim_t limit = static_cast<rlim_t>(size + 1000);
      const rlimit rlimit_value{limit, limit};
      setrlimit(RLIMIT_FSIZE, &rlimit_value);
      try {
        EmbedTextsOptions options = fast_options(server, checkpoint);
        options.request.inputs_per_request = 1;
        embed_texts(genes, options);
        _exit(1);
      } catch (const IoError& error) {
        _exit(std::string(error.what()).find("cannot write results store") != std::string::npos ? 42 : 2);
      } catch (...) {
        _exit(3);
      }
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 42);
  }
  // What was stored is intact: complete lines only, readable.
  const StoredResults stored = read_results_store(checkpoint);
  EXPECT_TRUE(stored.warnings.empty());
  EXPECT_GT(stored.embeddings.size(), 2u);
  EXPECT_LT(stored.embeddings.size(), genes.size());
  for (const auto& [key, vector] : stored.embeddings) {  // (keyed by id and a hash of the text: "G0001#...")
    EXPECT_EQ(vector, fake_vector(text_of(key.substr(0, key.find('#'))), kDimensions)) << key;
  }

  FakeServer server(directory_.file("log2.jsonl"));
  const EmbedTextsResult result = embed_texts(genes, fast_options(server, checkpoint));
  expect_embeddings(result.embeddings, genes);
  EXPECT_EQ(result.n_from_checkpoint, stored.embeddings.size());
  const auto requested = requested_texts(read_log(directory_.file("log2.jsonl")));
  for (const auto& [id, vector] : stored.embeddings) EXPECT_FALSE(requested.contains(text_of(id))) << id;
}

TEST_F(OpenAiClient, TruncatedLastCheckpointLineIsIgnoredWithAWarning) {
  const std::string checkpoint = directory_.file("checkpoint.jsonl");
  const IdAndText genes = make_genes(8);
  FakeServer server(directory_.file("log.jsonl"));
  embed_texts(make_genes(5), fast_options(server, checkpoint));
  std::ofstream(checkpoint, std::ios::app) << R"({"id":"G0005","embedding":"AAAA)";  // a crash mid-write
  const EmbedTextsResult result = embed_texts(genes, fast_options(server, checkpoint));
  expect_embeddings(result.embeddings, genes);
  EXPECT_EQ(result.n_from_checkpoint, 5u);
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_NE(result.warnings[0].find("checkpoint.jsonl:7: ignoring a truncated last line"), std::string::npos)
      << result.warnings[0];
  const StoredResults stored = read_results_store(checkpoint);  // repaired: no warning now
  EXPECT_TRUE(stored.warnings.empty());
  EXPECT_EQ(stored.embeddings.size(), genes.size());
}

TEST_F(OpenAiClient, RefusesACheckpointOfAnotherModelOrInUse) {
  const std::string checkpoint = directory_.file("checkpoint.jsonl");
  FakeServer server(directory_.file("log.jsonl"));
  EmbedTextsOptions options = fast_options(server, checkpoint);
  embed_texts(make_genes(2), options);
  options.request.dimensions = 8;
  EXPECT_NE(message_of<InputError>([&] { embed_texts(make_genes(2), options); }).find("use another file"),
            std::string::npos);
  const ResultsStore holder(checkpoint, ResultKind::kEmbedding, "fake-embedding", kDimensions);
  options.request.dimensions = kDimensions;
  EXPECT_NE(message_of<InputError>([&] { embed_texts(make_genes(2), options); }).find("in use by another process"),
            std::string::npos);
}

TEST_F(OpenAiClient, ValidatesInputsBeforeAnyRequest) {
  FakeServer server(directory_.file("log.jsonl"));
  EmbedTextsOptions options = fast_options(server, "");
  EXPECT_NE(message_of<InputError>([&] { embed_texts({{"A", "x"}, {"A", "y"}}, options); }).find("id A appears more than once"),
            std::string::npos);
  EXPECT_NE(message_of<InputError>([&] { embed_texts({{"A", " "}}, options); }).find("text of A is empty"),
            std::string::npos);
  options.request.inputs_per_request = 3000;
  EXPECT_NE(message_of<InputError>([&] { embed_texts({{"A", "x"}}, options); }).find("1..2048"), std::string::npos);
  EXPECT_TRUE(read_log(directory_.file("log.jsonl")).empty());
}

}  // namespace
}  // namespace celltyper::openai
