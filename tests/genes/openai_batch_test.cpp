// Tests of the OpenAI wire format, results stores and Batch API files (request files within the
// limits, manifests, output and error files made by tests/genes/fake_openai_server.py).
#include <celltyper/error.hpp>
#include <celltyper/openai.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/test_support.hpp"

namespace celltyper::openai {
namespace {

using test::TempDir;

/// The fake server's vector for `text` (see fake_openai_server.py).
std::vector<float> fake_vector(const std::string& text, int dimensions) {
  std::uint64_t state = 0xCBF29CE484222325ull;
  for (const unsigned char byte : text) {
    state ^= byte;
    state *= 0x100000001B3ull;
  }
  std::vector<float> vector;
  for (int i = 0; i < dimensions; ++i) {
    state += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    vector.push_back(static_cast<float>(static_cast<double>(z >> 11) * 0x1.0p-53 * 2.0 - 1.0));
  }
  return vector;
}

template <typename E, typename F>
std::string message_of(F&& action) {
  try {
    action();
  } catch (const E& error) {
    return error.what();
  }
  return {};
}

IdAndText make_genes(int n) {
  IdAndText items;
  for (int i = 0; i < n; ++i) items.emplace_back(fmt::format("{}", 1000 + i), fmt::format("Gene {}: it does thing {}.", 1000 + i, i));
  return items;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream file(path);
  std::string line;
  while (std::getline(file, line)) lines.push_back(line);
  return lines;
}

void append_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::app) << text; }

/// Every request line of `files`, checked: one JSON object per line, POST to `url`, unique custom_id.
std::vector<nlohmann::json> check_request_files(const std::vector<std::string>& files, const std::string& url) {
  std::vector<nlohmann::json> requests;
  std::set<std::string> custom_ids;
  for (const auto& path : files) {
    for (const auto& line : read_lines(path)) {
      const auto request = nlohmann::json::parse(line);
      EXPECT_TRUE(request.is_object());
      EXPECT_EQ(request.size(), 4u) << line;
      EXPECT_EQ(request["method"], "POST");
      EXPECT_EQ(request["url"], url);
      EXPECT_TRUE(request["body"].is_object());
      EXPECT_TRUE(custom_ids.insert(request["custom_id"].get<std::string>()).second) << request["custom_id"];
      requests.push_back(request);
    }
  }
  return requests;
}

TEST(OpenAiPrompt, FillsTheTemplate) {
  const std::string prompt = enrichment_prompt("CD3E", "CD3 epsilon subunit of T-cell receptor complex",
                                               "Part of the {TCR} complex.");
  EXPECT_NE(prompt.find("Gene: CD3E (CD3 epsilon subunit of T-cell receptor complex)"), std::string::npos);
  EXPECT_NE(prompt.find("Known summary: Part of the {TCR} complex."), std::string::npos);
  for (const char* section : {"Associated genes:", "Tissues:", "Cell types:", "Drugs:", "Pathways and processes:"})
    EXPECT_NE(prompt.find(section), std::string::npos) << section;
  EXPECT_NE(enrichment_prompt("X", "", "").find("Known summary: none available"), std::string::npos);

  const auto body = chat_request_body(prompt, {});
  EXPECT_EQ(body["model"], "gpt-4o-mini");
  ASSERT_EQ(body["messages"].size(), 2u);
  EXPECT_EQ(body["messages"][0]["role"], "system");
  EXPECT_EQ(body["messages"][1]["content"], prompt);
}

TEST(OpenAiWire, EmbeddingsRoundTrip) {
  const std::vector<float> vector = {0.5f, -1.25f, 3.0e-8f, 7.0f, -0.0f};
  EXPECT_EQ(parse_embedding_json(encode_embedding_base64(vector)), vector);
  EXPECT_EQ(parse_embedding_json(nlohmann::json::parse("[0.5, -1.25]")), (std::vector<float>{0.5f, -1.25f}));
  EXPECT_THROW(parse_embedding_json("abc!"), InputError);
  EXPECT_THROW(parse_embedding_json(nlohmann::json::object()), InputError);

  const auto body = nlohmann::json::parse(
      R"({"data":[{"index":1,"embedding":[3,4]},{"index":0,"embedding":[1,2]}]})");
  const auto vectors = parse_embedding_response(body, 2, 2);
  EXPECT_EQ(vectors[0], (std::vector<float>{1, 2}));
  EXPECT_EQ(vectors[1], (std::vector<float>{3, 4}));
  EXPECT_NE(message_of<InputError>([&] { parse_embedding_response(body, 3, 0); }).find("2 vectors for 3 inputs"),
            std::string::npos);
  EXPECT_NE(message_of<InputError>([&] { parse_embedding_response(body, 2, 5); }).find("expected 5"), std::string::npos);

  EmbeddingRequestOptions options;
  options.dimensions = 256;
  const auto request = embedding_request_body({"a", "b"}, options);
  EXPECT_EQ(request["model"], "text-embedding-3-large");
  EXPECT_EQ(request["dimensions"], 256);
  EXPECT_EQ(request["input"], nlohmann::json::parse(R"(["a","b"])"));
}

TEST(OpenAiBatch, EmbeddingRequestFilesRespectEveryLimit) {
  TempDir directory;
  const IdAndText genes = make_genes(25);
  BatchWriteOptions options;
  options.embedding.model = "fake-embedding";
  options.embedding.dimensions = 16;
  options.embedding.inputs_per_request = 3;
  options.limits.max_requests_per_file = 4;
  const BatchWriteResult result = write_batch_requests(genes, directory.file("by-count"), options);
  EXPECT_EQ(result.n_requests, 9u);
  EXPECT_EQ(result.n_items, 25u);
  ASSERT_EQ(result.request_files.size(), 3u);
  const auto requests = check_request_files(result.request_files, "/v1/embeddings");
  ASSERT_EQ(requests.size(), 9u);
  EXPECT_EQ(read_lines(result.request_files[0]).size(), 4u);
  EXPECT_EQ(read_lines(result.request_files[2]).size(), 1u);
  EXPECT_EQ(requests[0]["custom_id"], "emb-000000");
  EXPECT_EQ(requests[8]["custom_id"], "emb-000008");
  std::vector<std::string> texts;
  for (const auto& request : requests) {
    EXPECT_EQ(request["body"]["model"], "fake-embedding");
    EXPECT_EQ(request["body"]["dimensions"], 16);
    const auto& input = request["body"]["input"];
    if (input.is_string()) {
      texts.push_back(input.get<std::string>());
    } else {
      EXPECT_LE(input.size(), 3u);
      for (const auto& text : input) texts.push_back(text.get<std::string>());
    }
  }
  ASSERT_EQ(texts.size(), genes.size());
  for (std::size_t i = 0; i < genes.size(); ++i) EXPECT_EQ(texts[i], genes[i].second);

  // The manifest maps every custom_id to its genes, in input order.
  std::ifstream manifest_file(result.manifest_file);
  const auto manifest = nlohmann::json::parse(manifest_file);
  EXPECT_EQ(manifest["endpoint"], "/v1/embeddings");
  EXPECT_EQ(manifest["files"].size(), 3u);
  ASSERT_EQ(manifest["requests"].size(), 9u);
  EXPECT_EQ(manifest["requests"][1]["custom_id"], "emb-000001");
  EXPECT_EQ(manifest["requests"][1]["ids"], nlohmann::json::parse(R"(["1003","1004","1005"])"));

  // By bytes.
  options.limits = {};
  options.limits.max_bytes_per_file = 700;
  const BatchWriteResult by_bytes = write_batch_requests(genes, directory.file("by-bytes"), options);
  EXPECT_GT(by_bytes.request_files.size(), 2u);
  for (const auto& path : by_bytes.request_files) EXPECT_LE(std::filesystem::file_size(path), 700u) << path;
  EXPECT_EQ(check_request_files(by_bytes.request_files, "/v1/embeddings").size(), 9u);

  // By embedding inputs per file.
  options.limits = {};
  options.limits.max_embedding_inputs_per_file = 5;
  const BatchWriteResult by_inputs = write_batch_requests(genes, directory.file("by-inputs"), options);
  std::size_t total_inputs = 0;
  for (const auto& path : by_inputs.request_files) {
    std::size_t inputs = 0;
    for (const auto& request : check_request_files({path}, "/v1/embeddings"))
      inputs += request["body"]["input"].is_string() ? 1 : request["body"]["input"].size();
    EXPECT_LE(inputs, 5u) << path;
    total_inputs += inputs;
  }
  EXPECT_EQ(total_inputs, genes.size());

  // A request that cannot fit in any file; an earlier batch is never overwritten.
  options.limits = {};
  options.limits.max_bytes_per_file = 100;
  EXPECT_NE(message_of<InputError>([&] { write_batch_requests(genes, directory.file("tiny"), options); })
                .find("over the 100-byte file limit"),
            std::string::npos);
  options.limits = {};
  EXPECT_NE(message_of<InputError>([&] { write_batch_requests(genes, directory.file("by-count"), options); })
                .find("already exists"),
            std::string::npos);
}

TEST(OpenAiBatch, ChatRequestsAreOnePerGene) {
  TempDir directory;
  IdAndText prompts;
  for (const auto& [id, text] : make_genes(5)) prompts.emplace_back(id, enrichment_prompt("SYM" + id, "name", text));
  BatchWriteOptions options;
  options.endpoint = BatchEndpoint::kChatCompletions;
  options.chat.model = "fake-chat";
  options.chat.temperature = 0.0;
  options.limits.max_requests_per_file = 2;
  const BatchWriteResult result = write_batch_requests(prompts, directory.path().string(), options);
  EXPECT_EQ(result.request_files.size(), 3u);
  const auto requests = check_request_files(result.request_files, "/v1/chat/completions");
  ASSERT_EQ(requests.size(), 5u);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(requests[i]["custom_id"], "chat-" + prompts[i].first);
    EXPECT_EQ(requests[i]["body"]["model"], "fake-chat");
    EXPECT_EQ(requests[i]["body"]["temperature"], 0.0);
    EXPECT_EQ(requests[i]["body"]["messages"][1]["content"], prompts[i].second);
  }
  IdAndText repeated = prompts;
  repeated.push_back(prompts[2]);
  EXPECT_NE(message_of<InputError>([&] { write_batch_requests(repeated, directory.file("again"), options); })
                .find("id 1002 appears more than once"),
            std::string::npos);
}

TEST(OpenAiBatch, ParsesRealisticOutputWithFailuresAndMalformedLinesThenRedoesOnlyTheRest) {
  TempDir directory;
  IdAndText genes = make_genes(20);
  genes[5].second += " POISON";  // the fake batch answers HTTP 400 for this request
  BatchWriteOptions options;
  options.embedding.model = "fake-embedding";
  options.embedding.dimensions = 8;
  options.embedding.inputs_per_request = 2;
  options.limits.max_requests_per_file = 6;
  const BatchWriteResult written = write_batch_requests(genes, directory.file("round1"), options);
  ASSERT_EQ(written.request_files.size(), 2u);

  // Answer each request file as the Batch API would: every 4th request expires.
  std::vector<std::string> outputs;
  for (std::size_t f = 0; f < written.request_files.size(); ++f) {
    const std::string output = directory.file(fmt::format("output-{}.jsonl", f));
    const std::string errors = directory.file(fmt::format("errors-{}.jsonl", f));
    const auto run = test::run_program({test::system_python(),
                                        std::string(CELLTYPER_SOURCE_DIR) + "/tests/genes/fake_openai_server.py", "batch",
                                        written.request_files[f], "--output", output, "--errors", errors,
                                        "--expire-every", "4", "--reject-substring", "POISON"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    outputs.push_back(output);
    outputs.push_back(errors);
  }
  // Damage: a line that is not JSON, one with an unknown custom_id, and a download cut short.
  const auto first_output_lines = read_lines(outputs[0]).size();
  append_text(outputs[0], "{not json\n");
  append_text(outputs[0], R"({"custom_id":"emb-999999","response":{"status_code":200,"body":{}},"error":null})" "\n");
  const std::string cut = read_lines(outputs[2]).back();
  {
    auto lines = read_lines(outputs[2]);
    lines.pop_back();
    std::ofstream file(outputs[2], std::ios::trunc);
    for (const auto& line : lines) file << line << "\n";
    file << cut.substr(0, cut.size() / 2);
  }

  BatchParseOptions parse_options;
  parse_options.manifest_file = written.manifest_file;
  parse_options.results_store = directory.file("store.jsonl");
  const BatchParseResult parsed = parse_batch_output(outputs, parse_options);
  EXPECT_EQ(parsed.kind, ResultKind::kEmbedding);

  // Requests: emb-000000..emb-000005 in file 1 (4th expires: emb-000003), emb-000006..emb-000009
  // in file 2 (4th expires: emb-000009); emb-000002 holds the POISON gene 1005; the last output
  // line of file 2 (emb-000008) was cut.
  ASSERT_EQ(parsed.malformed.size(), 3u) << parsed.summary();
  EXPECT_EQ(parsed.malformed[0].to_string().rfind(outputs[0] + ":" + std::to_string(first_output_lines + 1) + ": ", 0), 0u)
      << parsed.malformed[0].to_string();
  EXPECT_NE(parsed.malformed[0].problem.find("not a JSON object"), std::string::npos);
  EXPECT_EQ(parsed.malformed[1].line, first_output_lines + 2);
  EXPECT_NE(parsed.malformed[1].problem.find("emb-999999 is not in the manifest"), std::string::npos);
  EXPECT_EQ(parsed.malformed[2].file, outputs[2]);
  EXPECT_EQ(parsed.malformed[2].line, read_lines(outputs[2]).size());

  std::map<std::string, BatchFailure> failures;
  for (const auto& failure : parsed.failures) failures.emplace(failure.custom_id, failure);
  ASSERT_EQ(failures.size(), 3u) << parsed.summary();
  EXPECT_EQ(failures["emb-000002"].status_code, 400);
  EXPECT_EQ(failures["emb-000002"].ids, (std::vector<std::string>{"1004", "1005"}));
  EXPECT_NE(failures["emb-000002"].message.find("maximum context length"), std::string::npos);
  EXPECT_EQ(failures["emb-000003"].code, "batch_expired");
  EXPECT_EQ(failures["emb-000009"].code, "batch_expired");
  EXPECT_EQ(parsed.missing, (std::vector<std::string>{"1016", "1017"}));

  EXPECT_EQ(parsed.embeddings.size(), 20u - 8u);
  for (const auto& [id, text] : genes)
    if (parsed.embeddings.contains(id)) EXPECT_EQ(parsed.embeddings.at(id), fake_vector(text, 8)) << id;
  EXPECT_NE(parsed.summary().find("12 ids succeeded, 3 requests failed, 2 ids missing, 3 malformed lines"),
            std::string::npos)
      << parsed.summary();

  // The store has the successes; the next batch holds only the 8 other genes.
  EXPECT_EQ(read_results_store(parse_options.results_store).embeddings.size(), 12u);
  options.results_store = parse_options.results_store;
  genes[5].second = "Gene 1005: fixed.";
  const BatchWriteResult redo = write_batch_requests(genes, directory.file("round2"), options);
  EXPECT_EQ(redo.n_skipped, 12u);
  EXPECT_EQ(redo.n_items, 8u);
  EXPECT_EQ(redo.n_requests, 4u);

  // A store of another model is refused.
  options.embedding.dimensions = 4;
  EXPECT_NE(message_of<InputError>([&] { write_batch_requests(genes, directory.file("round3"), options); })
                .find("not of fake-embedding (dimensions 4)"),
            std::string::npos);
}

TEST(OpenAiBatch, ChatOutputWithoutManifest) {
  TempDir directory;
  const std::string output = directory.file("output.jsonl");
  std::ofstream(output)
      << R"({"id":"batch_req_1","custom_id":"chat-7157","response":{"status_code":200,"request_id":"r1","body":)"
         R"({"choices":[{"index":0,"message":{"role":"assistant","content":"Tissues: many"}}]}},"error":null})"
         "\n"
      << R"({"id":"batch_req_2","custom_id":"chat-672","response":{"status_code":500,"request_id":"r2","body":)"
         R"({"error":{"message":"server exploded","type":"server_error"}}},"error":null})"
         "\n"
      << R"({"id":"batch_req_3","custom_id":"chat-675","response":{"status_code":200,"request_id":"r3","body":)"
         R"({"choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"no"}}]}},"error":null})"
         "\n"
      << R"({"id":"batch_req_4","custom_id":"emb-000001","response":null,"error":null})"
         "\n";
  const BatchParseResult parsed = parse_batch_output({output});
  EXPECT_EQ(parsed.kind, ResultKind::kText);
  ASSERT_EQ(parsed.texts.size(), 1u);
  EXPECT_EQ(parsed.texts.at("7157"), "Tissues: many");
  ASSERT_EQ(parsed.failures.size(), 2u);
  EXPECT_EQ(parsed.failures[0].ids, std::vector<std::string>{"672"});
  EXPECT_EQ(parsed.failures[0].status_code, 500);
  EXPECT_EQ(parsed.failures[0].message, "server exploded");
  EXPECT_NE(parsed.failures[1].message.find("refused"), std::string::npos);
  ASSERT_EQ(parsed.malformed.size(), 1u);
  EXPECT_EQ(parsed.malformed[0].line, 4u);
  EXPECT_THROW(parse_batch_output({directory.file("absent.jsonl")}), IoError);
}

TEST(OpenAiResultsStore, AppendsReadsAndRefusesMismatches) {
  TempDir directory;
  const std::string path = directory.file("store.jsonl");
  {
    ResultsStore store(path, ResultKind::kText, "chat-model", 0);
    store.append_texts({{"1", "one"}, {"2", "two\nlines"}, {"1", "again"}});
    EXPECT_EQ(store.results().texts.size(), 2u);
    EXPECT_THROW((store.append_embeddings({{"3", {1.0f}}})), InputError);
  }
  const StoredResults stored = read_results_store(path);
  EXPECT_EQ(stored.kind, ResultKind::kText);
  EXPECT_EQ(stored.model, "chat-model");
  EXPECT_EQ(stored.texts.at("2"), "two\nlines");
  EXPECT_EQ(read_lines(path).size(), 3u);
  EXPECT_NE(message_of<InputError>([&] { ResultsStore(path, ResultKind::kEmbedding, "chat-model", 0); })
                .find("use another file"),
            std::string::npos);

  // A damaged middle line is an error naming file and line.
  append_text(path, "garbage\n{\"id\":\"4\",\"text\":\"four\"}\n");
  EXPECT_NE(message_of<InputError>([&] { read_results_store(path); }).find("store.jsonl:4: not a JSON line"),
            std::string::npos);
}

}  // namespace
}  // namespace celltyper::openai
