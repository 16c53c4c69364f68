// Batch jobs: a directory that carries one set of Batch API requests from request files to a
// complete results store, over several runs and rounds (see openai.hpp for the layout).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "celltyper/error.hpp"
#include "celltyper/openai.hpp"
#include "celltyper/output_file.hpp"
#include "text_lists.hpp"

namespace celltyper::openai {
namespace {

namespace fs = std::filesystem;

constexpr const char* kJobFormat = "celltyper-openai-batch-job";
constexpr const char* kJobFile = "job.json";
constexpr const char* kItemsFile = "items.jsonl";
constexpr const char* kResultsFile = "results.jsonl";
constexpr const char* kStateFile = "state.json";
constexpr const char* kFilePrefix = "batch";
constexpr std::size_t kMaxInMessage = 5;

std::string dump(const nlohmann::json& json, int indent = -1) {
  return json.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json read_json(const fs::path& path, const char* what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw IoError(fmt::format("cannot read {} {}: {}", what, path.string(), std::strerror(errno)));
  try {
    return nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    throw InputError(fmt::format("{} {} is not valid JSON: {}", what, path.string(), error.what()));
  }
}

const char* endpoint_url(BatchEndpoint endpoint) {
  return endpoint == BatchEndpoint::kEmbeddings ? "/v1/embeddings" : "/v1/chat/completions";
}

std::string round_name(std::size_t number) { return fmt::format("round-{:03}", number); }

/// "a, b, c (+7 more)".
template <typename Container>
std::string list_some(const Container& values) {
  return detail::some_of(values, kMaxInMessage);
}

/// job.json: BatchJobInfo plus the request options of later rounds.
struct JobFile {
  BatchJobInfo info;
  BatchWriteOptions write;  ///< endpoint, request options, limits
};

nlohmann::json job_json(const JobFile& job) {
  const BatchWriteOptions& write = job.write;
  return {{"format", kJobFormat},
          {"version", 1},
          {"endpoint", endpoint_url(job.info.endpoint)},
          {"model", job.info.model},
          {"dimensions", job.info.dimensions},
          {"n_items", job.info.n_items},
          {"embedding",
           {{"inputs_per_request", write.embedding.inputs_per_request},
            {"max_characters_per_request", write.embedding.max_characters_per_request},
            {"base64", write.embedding.base64}}},
          {"chat",
           {{"temperature", write.chat.temperature},
            {"system_message", write.chat.system_message},
            {"max_completion_tokens", write.chat.max_completion_tokens}}},
          {"limits",
           {{"max_requests_per_file", write.limits.max_requests_per_file},
            {"max_bytes_per_file", write.limits.max_bytes_per_file},
            {"max_embedding_inputs_per_file", write.limits.max_embedding_inputs_per_file}}},
          {"metadata", job.info.metadata},
          {"rounds", job.info.rounds}};
}

JobFile read_job(const std::string& directory) {
  const fs::path path = fs::path(directory) / kJobFile;
  if (!fs::exists(path))
    throw InputError(fmt::format("{} is not a batch job directory (no {}): write the requests first", directory, kJobFile));
  const nlohmann::json json = read_json(path, "batch job file");
  try {
    if (!json.is_object() || json.value("format", "") != kJobFormat) throw InputError("");
    JobFile job;
    job.info.directory = directory;
    const std::string endpoint = json.at("endpoint").get<std::string>();
    if (endpoint == "/v1/embeddings") {
      job.info.endpoint = BatchEndpoint::kEmbeddings;
    } else if (endpoint == "/v1/chat/completions") {
      job.info.endpoint = BatchEndpoint::kChatCompletions;
    } else {
      throw InputError("");
    }
    job.info.model = json.at("model").get<std::string>();
    job.info.dimensions = json.at("dimensions").get<int>();
    job.info.n_items = json.at("n_items").get<std::size_t>();
    job.info.metadata = json.value("metadata", nlohmann::json());
    job.info.rounds = json.at("rounds").get<std::vector<std::string>>();
    BatchWriteOptions& write = job.write;
    write.endpoint = job.info.endpoint;
    write.embedding.model = job.info.model;
    write.embedding.dimensions = job.info.dimensions;
    write.embedding.inputs_per_request = json.at("embedding").at("inputs_per_request").get<std::size_t>();
    write.embedding.max_characters_per_request = json.at("embedding").at("max_characters_per_request").get<std::size_t>();
    write.embedding.base64 = json.at("embedding").at("base64").get<bool>();
    write.chat.model = job.info.model;
    write.chat.temperature = json.at("chat").at("temperature").get<double>();
    write.chat.system_message = json.at("chat").at("system_message").get<std::string>();
    write.chat.max_completion_tokens = json.at("chat").at("max_completion_tokens").get<int>();
    write.limits.max_requests_per_file = json.at("limits").at("max_requests_per_file").get<std::size_t>();
    write.limits.max_bytes_per_file = json.at("limits").at("max_bytes_per_file").get<std::size_t>();
    write.limits.max_embedding_inputs_per_file = json.at("limits").at("max_embedding_inputs_per_file").get<std::size_t>();
    return job;
  } catch (const nlohmann::json::exception& error) {
    throw InputError(fmt::format("{} is not a celltyper batch job file: {}", path.string(), error.what()));
  } catch (const InputError&) {
    throw InputError(fmt::format("{} is not a celltyper batch job file (format \"{}\" with endpoint, model, rounds)",
                                 path.string(), kJobFormat));
  }
}

void save_job(const JobFile& job) { write_output_file((fs::path(job.info.directory) / kJobFile).string(), dump(job_json(job), 1) + "\n"); }

/// A round's manifest, as needed here.
struct RoundManifest {
  std::vector<std::string> files;                                  ///< request file names, in order
  std::vector<std::vector<std::string>> file_ids;                  ///< per file: ids of its requests
  std::unordered_map<std::string, std::size_t> file_of_custom_id;  ///< custom_id -> file index
};

fs::path manifest_path(const fs::path& round) { return round / (std::string(kFilePrefix) + "-manifest.json"); }

RoundManifest read_round_manifest(const fs::path& round) {
  const fs::path path = manifest_path(round);
  const nlohmann::json json = read_json(path, "batch manifest");
  RoundManifest manifest;
  try {
    manifest.files = json.at("files").get<std::vector<std::string>>();
    manifest.file_ids.resize(manifest.files.size());
    for (const auto& request : json.at("requests")) {
      const auto file = request.at("file").get<std::size_t>();
      if (file >= manifest.files.size()) throw InputError(fmt::format("batch manifest {}: file index {} out of range", path.string(), file));
      for (const auto& id : request.at("ids")) manifest.file_ids[file].push_back(id.get<std::string>());
      manifest.file_of_custom_id.emplace(request.at("custom_id").get<std::string>(), file);
    }
  } catch (const nlohmann::json::exception& error) {
    throw InputError(fmt::format("batch manifest {} is malformed: {}", path.string(), error.what()));
  }
  return manifest;
}

/// state.json of a round: per request file, what the Batch API knows of it.
struct FileState {
  std::string input_file_id;
  BatchInfo batch;           ///< batch.id empty = no batch yet
  bool downloaded = false;   ///< output and error files downloaded (batch finished)
};

std::map<std::string, FileState> read_state(const fs::path& round) {
  std::map<std::string, FileState> state;
  const fs::path path = round / kStateFile;
  if (!fs::exists(path)) return state;
  const nlohmann::json json = read_json(path, "batch state file");
  try {
    for (const auto& [file, entry] : json.at("files").items()) {
      FileState& file_state = state[file];
      file_state.input_file_id = entry.value("input_file_id", "");
      file_state.downloaded = entry.value("downloaded", false);
      if (entry.contains("batch") && entry["batch"].is_object()) {
        const auto& batch = entry["batch"];
        file_state.batch.id = batch.value("id", "");
        file_state.batch.status = batch.value("status", "");
        file_state.batch.endpoint = batch.value("endpoint", "");
        file_state.batch.input_file_id = file_state.input_file_id;
        file_state.batch.output_file_id = batch.value("output_file_id", "");
        file_state.batch.error_file_id = batch.value("error_file_id", "");
        file_state.batch.n_total = batch.value("n_total", std::size_t{0});
        file_state.batch.n_completed = batch.value("n_completed", std::size_t{0});
        file_state.batch.n_failed = batch.value("n_failed", std::size_t{0});
        file_state.batch.errors = batch.value("errors", "");
      }
    }
  } catch (const nlohmann::json::exception& error) {
    throw InputError(fmt::format("batch state file {} is malformed: {}", path.string(), error.what()));
  }
  return state;
}

void save_state(const fs::path& round, const std::map<std::string, FileState>& state) {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [file, entry] : state) {
    nlohmann::json json = {{"input_file_id", entry.input_file_id}, {"downloaded", entry.downloaded}};
    if (!entry.batch.id.empty()) {
      json["batch"] = {{"id", entry.batch.id},
                       {"status", entry.batch.status},
                       {"endpoint", entry.batch.endpoint},
                       {"output_file_id", entry.batch.output_file_id},
                       {"error_file_id", entry.batch.error_file_id},
                       {"n_total", entry.batch.n_total},
                       {"n_completed", entry.batch.n_completed},
                       {"n_failed", entry.batch.n_failed},
                       {"errors", entry.batch.errors}};
    }
    files[file] = std::move(json);
  }
  write_output_file((round / kStateFile).string(), dump({{"files", std::move(files)}}, 1) + "\n");
}

std::string stem_of(const std::string& request_file) {
  return request_file.size() > 6 && request_file.ends_with(".jsonl") ? request_file.substr(0, request_file.size() - 6) : request_file;
}

/// Output and error files in a round directory: every *.jsonl that is not one of its request files.
std::vector<std::string> round_output_files(const fs::path& round, const RoundManifest& manifest) {
  const std::set<std::string> requests(manifest.files.begin(), manifest.files.end());
  std::vector<std::string> outputs;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(round, error)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || !name.ends_with(".jsonl") || name.starts_with(".") || requests.contains(name)) continue;
    outputs.push_back(entry.path().string());
  }
  if (error) throw IoError(fmt::format("cannot list {}: {}", round.string(), error.message()));
  std::sort(outputs.begin(), outputs.end());
  return outputs;
}

/// Write round `number` of `job` for `items` and record it in job.json.
std::string write_round(JobFile& job, const IdAndText& items, std::size_t number, bool one_input_per_request) {
  const std::string name = round_name(number);
  const fs::path round = fs::path(job.info.directory) / name;
  std::error_code error;
  if (fs::exists(round)) fs::remove_all(round, error);  // left by a run that stopped before recording it
  if (error) throw IoError(fmt::format("cannot remove the unfinished round {}: {}", round.string(), error.message()));
  BatchWriteOptions options = job.write;
  options.file_prefix = kFilePrefix;
  options.custom_id_prefix = number > 1 ? fmt::format("r{}-", number) : "";
  options.results_store.clear();
  if (one_input_per_request) options.embedding.inputs_per_request = 1;
  write_batch_requests(items, round.string(), options);
  job.info.rounds.push_back(name);
  save_job(job);
  return name;
}

/// Whether every id of `ids` is in `answered`.
bool all_in(const std::vector<std::string>& ids, const std::unordered_set<std::string>& answered) {
  return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return answered.contains(id); });
}

/// Ids with a success or failure line in the outputs of a round (no results store is written).
std::unordered_set<std::string> answered_ids(const fs::path& round, const RoundManifest& manifest) {
  std::unordered_set<std::string> answered;
  const auto outputs = round_output_files(round, manifest);
  if (outputs.empty()) return answered;
  BatchParseOptions options;
  options.manifest_file = manifest_path(round).string();
  const BatchParseResult parsed = parse_batch_output(outputs, options);
  for (const auto& [id, vector] : parsed.embeddings) answered.insert(id);
  for (const auto& [id, text] : parsed.texts) answered.insert(id);
  for (const auto& failure : parsed.failures) answered.insert(failure.ids.begin(), failure.ids.end());
  return answered;
}

bool is_client_error(int status) { return status >= 400 && status < 500 && status != 408 && status != 409 && status != 429; }

}  // namespace

std::string BatchJobInfo::results_path() const { return (fs::path(directory) / kResultsFile).string(); }

BatchJobInfo create_batch_job(const IdAndText& items, const std::string& directory, const BatchWriteOptions& options,
                              const nlohmann::json& metadata) {
  if (items.empty()) throw InputError("a batch job needs at least one item");
  const fs::path root(directory);
  if (fs::exists(root / kJobFile))
    throw InputError(fmt::format("{} already holds a batch job: collect it (or submit it), or choose another directory",
                                 directory));
  std::error_code error;
  fs::create_directories(root, error);
  if (error) throw IoError(fmt::format("cannot create directory {}: {}", directory, error.message()));
  JobFile job;
  job.write = options;
  job.info.directory = directory;
  job.info.endpoint = options.endpoint;
  const bool embeddings = options.endpoint == BatchEndpoint::kEmbeddings;
  job.info.model = embeddings ? options.embedding.model : options.chat.model;
  job.info.dimensions = embeddings ? options.embedding.dimensions : 0;
  job.info.n_items = items.size();
  job.info.metadata = metadata;

  // The round's request files validate the items (ids, texts, sizes) before anything is kept.
  const fs::path first = root / round_name(1);
  if (fs::exists(first)) fs::remove_all(first, error);
  BatchWriteOptions round_options = options;
  round_options.file_prefix = kFilePrefix;
  round_options.custom_id_prefix.clear();
  round_options.results_store.clear();
  write_batch_requests(items, first.string(), round_options);
  job.info.rounds.push_back(round_name(1));

  std::string lines = dump({{"celltyper_batch_items", 1}, {"n_items", items.size()}}) + "\n";
  for (const auto& [id, text] : items) lines += dump({{"id", id}, {"text", text}}) + "\n";
  write_output_file((root / kItemsFile).string(), lines);
  save_job(job);  // last: a directory with job.json is a complete job
  return job.info;
}

BatchJobInfo open_batch_job(const std::string& directory) { return read_job(directory).info; }

IdAndText read_batch_job_items(const std::string& directory) {
  const fs::path path = fs::path(directory) / kItemsFile;
  std::ifstream file(path, std::ios::binary);
  if (!file) throw IoError(fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
  IdAndText items;
  std::string line;
  std::size_t number = 0;
  while (std::getline(file, line)) {
    ++number;
    if (line.empty()) continue;
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& error) {
      throw InputError(fmt::format("{}:{}: not a JSON line: {}", path.string(), number, error.what()));
    }
    if (json.contains("celltyper_batch_items")) continue;
    if (!json.value("id", nlohmann::json()).is_string() || !json.value("text", nlohmann::json()).is_string())
      throw InputError(fmt::format("{}:{}: expected {{\"id\": ..., \"text\": ...}}", path.string(), number));
    items.emplace_back(json["id"].get<std::string>(), json["text"].get<std::string>());
  }
  const JobFile job = read_job(directory);
  if (items.size() != job.info.n_items)
    throw InputError(fmt::format("{} holds {} items, job.json says {}: the job directory is damaged", path.string(),
                                 items.size(), job.info.n_items));
  return items;
}

BatchSubmitResult submit_batch_job(const std::string& directory, const HttpClientOptions& options,
                                   const std::function<void(const std::string&)>& on_line) {
  const JobFile job = read_job(directory);
  BatchSubmitResult result;
  const auto say = [&](const std::string& line) {
    if (on_line) on_line(line);
  };
  for (const auto& name : job.info.rounds) {
    const fs::path round = fs::path(directory) / name;
    const RoundManifest manifest = read_round_manifest(round);
    auto state = read_state(round);
    std::optional<std::unordered_set<std::string>> answered;  // read only when needed
    for (std::size_t f = 0; f < manifest.files.size(); ++f) {
      const std::string& file = manifest.files[f];
      FileState& entry = state[file];
      if (!entry.batch.id.empty()) {
        ++result.n_already_submitted;
        continue;
      }
      if (!answered) answered = answered_ids(round, manifest);
      if (!manifest.file_ids[f].empty() && all_in(manifest.file_ids[f], *answered)) {
        ++result.n_answered;
        continue;
      }
      const std::string path = (round / file).string();
      if (entry.input_file_id.empty()) {
        entry.input_file_id = upload_batch_file(path, options);
        save_state(round, state);
        ++result.n_uploaded;
        say(fmt::format("uploaded {}/{} as {}", name, file, entry.input_file_id));
      }
      const nlohmann::json metadata = {{"celltyper_job", fs::path(directory).filename().string()},
                                       {"round", name},
                                       {"file", file}};
      entry.batch = create_batch(entry.input_file_id, job.info.endpoint, metadata, options);
      entry.batch.input_file_id = entry.input_file_id;
      save_state(round, state);
      ++result.n_created;
      say(fmt::format("batch {} for {}/{}: {}", entry.batch.id, name, file, entry.batch.status));
    }
  }
  return result;
}

std::string BatchCollectResult::summary() const {
  std::string text = fmt::format("{} of {} done", n_done, n_items);
  if (!pending.empty()) text += fmt::format(", {} batches running", pending.size());
  if (!awaiting.empty()) text += fmt::format(", {} request files not submitted and without output", awaiting.size());
  if (!failures.empty()) text += fmt::format(", {} requests failed", failures.size());
  if (!missing.empty()) text += fmt::format(", {} ids without any answer", missing.size());
  if (!malformed.empty()) text += fmt::format(", {} malformed output lines", malformed.size());
  text += "\n";
  for (std::size_t i = 0; i < pending.size() && i < kMaxInMessage; ++i) text += fmt::format("  running: {}\n", pending[i]);
  for (std::size_t i = 0; i < awaiting.size() && i < kMaxInMessage; ++i) text += fmt::format("  awaiting: {}\n", awaiting[i]);
  for (const auto& problem : batch_problems) text += fmt::format("  batch: {}\n", problem);
  for (std::size_t i = 0; i < failures.size() && i < kMaxInMessage; ++i) {
    const auto& failure = failures[i];
    text += fmt::format("  failed {} ({}): {}{} {}\n", failure.custom_id, list_some(failure.ids),
                        failure.status_code != 0 ? fmt::format("HTTP {} ", failure.status_code) : "", failure.code,
                        failure.message);
  }
  if (!missing.empty()) text += fmt::format("  no answer: {}\n", list_some(missing));
  for (std::size_t i = 0; i < malformed.size() && i < kMaxInMessage; ++i) text += fmt::format("  malformed: {}\n", malformed[i].to_string());
  for (const auto& warning : warnings) text += fmt::format("  warning: {}\n", warning);
  if (!new_round.empty()) text += fmt::format("  wrote {} for the ids without a result\n", new_round);
  return text;
}

BatchCollectResult collect_batch_job(const std::string& directory, const BatchCollectOptions& options) {
  if (options.max_rounds < 1) throw InputError("max rounds must be at least 1");
  if (!(options.poll_interval_seconds > 0)) throw InputError("the poll interval must be positive");
  if (!(options.wait_seconds >= 0)) throw InputError("the wait time must not be negative");
  JobFile job = read_job(directory);
  const IdAndText items = read_batch_job_items(directory);
  const auto say = [&](const std::string& line) {
    if (options.on_line) options.on_line(line);
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options.wait_seconds);
  if (options.submit) submit_batch_job(directory, options.http, options.on_line);

  std::string new_round;  // written by this call
  for (;;) {
    BatchCollectResult result;
    result.new_round = new_round;
    result.n_items = items.size();
    std::unordered_set<std::string> open_ids;  // ids of running batches and of files awaiting output
    std::vector<std::vector<BatchFailure>> round_failures;
    for (const auto& name : job.info.rounds) {
      const fs::path round = fs::path(directory) / name;
      const RoundManifest manifest = read_round_manifest(round);
      auto state = read_state(round);

      // Poll and download.
      for (const auto& file : manifest.files) {
        auto found = state.find(file);
        if (found == state.end() || found->second.batch.id.empty()) continue;
        FileState& entry = found->second;
        if (options.use_api && !entry.downloaded) {
          if (!entry.batch.finished()) {
            const std::string input_file_id = entry.input_file_id;
            entry.batch = retrieve_batch(entry.batch.id, options.http);
            entry.input_file_id = input_file_id;
            save_state(round, state);
          }
          if (entry.batch.finished()) {
            const std::string stem = stem_of(file);
            if (!entry.batch.output_file_id.empty())
              download_file(entry.batch.output_file_id, (round / (stem + ".output.jsonl")).string(), options.http);
            if (!entry.batch.error_file_id.empty())
              download_file(entry.batch.error_file_id, (round / (stem + ".errors.jsonl")).string(), options.http);
            entry.downloaded = true;
            save_state(round, state);
            say(fmt::format("batch {} ({}/{}) {}: {} of {} requests completed, {} failed", entry.batch.id, name, file,
                            entry.batch.status, entry.batch.n_completed, entry.batch.n_total, entry.batch.n_failed));
          }
        }
        if (!entry.batch.finished()) {
          result.pending.push_back(fmt::format("{}/{}: {} {} ({}/{})", name, file, entry.batch.id, entry.batch.status,
                                               entry.batch.n_completed, entry.batch.n_total));
        } else if (entry.batch.status != "completed") {
          result.batch_problems.push_back(fmt::format("{}/{}: {} {}{}", name, file, entry.batch.id, entry.batch.status,
                                                      entry.batch.errors.empty() ? "" : ": " + entry.batch.errors));
        }
      }

      // Parse every output and error file of the round into the results store.
      std::unordered_set<std::string> answered;
      const auto outputs = round_output_files(round, manifest);
      round_failures.emplace_back();
      if (!outputs.empty()) {
        BatchParseOptions parse_options;
        parse_options.manifest_file = manifest_path(round).string();
        parse_options.results_store = job.info.results_path();
        BatchParseResult parsed = parse_batch_output(outputs, parse_options);
        for (const auto& [id, vector] : parsed.embeddings) answered.insert(id);
        for (const auto& [id, text] : parsed.texts) answered.insert(id);
        for (auto& failure : parsed.failures) {
          answered.insert(failure.ids.begin(), failure.ids.end());
          round_failures.back().push_back(std::move(failure));
        }
        for (auto& line : parsed.malformed) result.malformed.push_back(std::move(line));
        for (auto& warning : parsed.warnings) result.warnings.push_back(std::move(warning));
      }
      for (std::size_t f = 0; f < manifest.files.size(); ++f) {
        const auto found = state.find(manifest.files[f]);
        const bool submitted = found != state.end() && !found->second.batch.id.empty();
        const bool running = submitted && !found->second.batch.finished();
        const bool waiting = !submitted && !all_in(manifest.file_ids[f], answered);
        if (waiting) result.awaiting.push_back(fmt::format("{}/{}", name, manifest.files[f]));
        if (running || waiting) open_ids.insert(manifest.file_ids[f].begin(), manifest.file_ids[f].end());
      }
    }

    // What is done, failed, missing.
    std::unordered_set<std::string> done;
    if (fs::exists(job.info.results_path())) {
      const StoredResults stored = read_results_store(job.info.results_path());
      for (const auto& [id, vector] : stored.embeddings) done.insert(id);
      for (const auto& [id, text] : stored.texts) done.insert(id);
      for (const auto& warning : stored.warnings) result.warnings.push_back(warning);
    }
    IdAndText not_done;
    for (const auto& item : items) {
      if (done.contains(item.first)) {
        ++result.n_done;
      } else {
        not_done.push_back(item);
      }
    }
    std::unordered_set<std::string> explained = open_ids;  // latest round's failure first
    for (auto round = round_failures.rbegin(); round != round_failures.rend(); ++round) {
      for (const auto& failure : *round) {
        const bool relevant = std::any_of(failure.ids.begin(), failure.ids.end(), [&](const std::string& id) {
          return !done.contains(id) && !explained.contains(id);
        });
        if (!relevant) continue;
        explained.insert(failure.ids.begin(), failure.ids.end());
        result.failures.push_back(failure);
      }
    }
    for (const auto& [id, text] : not_done)
      if (!explained.contains(id)) result.missing.push_back(id);
    result.complete = not_done.empty();
    if (result.complete) return result;

    const bool time_left = std::chrono::steady_clock::now() < deadline;
    if (!result.pending.empty() || !result.awaiting.empty()) {
      if (result.pending.empty() || !time_left || !options.use_api) return result;
      say(fmt::format("{}; polling again in {:.0f} s", result.summary().substr(0, result.summary().find('\n')),
                      options.poll_interval_seconds));
      std::this_thread::sleep_for(std::chrono::duration<double>(options.poll_interval_seconds));
      continue;
    }
    // Every round is finished: the rest goes into a new round.
    if (job.info.rounds.size() >= options.max_rounds) {
      result.warnings.push_back(fmt::format("{} ids still have no result after {} rounds (the most allowed)",
                                            not_done.size(), job.info.rounds.size()));
      return result;
    }
    const bool isolate = std::any_of(result.failures.begin(), result.failures.end(),
                                     [](const BatchFailure& failure) { return is_client_error(failure.status_code); });
    new_round = result.new_round = write_round(job, not_done, job.info.rounds.size() + 1, isolate);
    say(fmt::format("wrote {} for the {} ids without a result{}", new_round, not_done.size(),
                    isolate ? " (one input per request, to isolate refused texts)" : ""));
    if (!options.submit) return result;
    submit_batch_job(directory, options.http, options.on_line);
    if (!time_left || !options.use_api) return result;
  }
}

}  // namespace celltyper::openai
