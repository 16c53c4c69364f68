// Batch API files: request files within the API limits plus a manifest, and output parsing.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "celltyper/error.hpp"
#include "celltyper/openai.hpp"
#include "celltyper/output_file.hpp"
#include "text_lists.hpp"

namespace celltyper::openai {
namespace {

constexpr const char* kManifestFormat = "celltyper-openai-batch";
constexpr const char* kEmbeddingsUrl = "/v1/embeddings";
constexpr const char* kChatUrl = "/v1/chat/completions";
constexpr std::size_t kMaxIdsInMessage = 5;

/// "a, b, c (+7 more)".
std::string list_ids(const std::vector<std::string>& ids) { return detail::some_of(ids, kMaxIdsInMessage); }

/// Check ids: non-empty, distinct; texts non-empty when `require_text`.
void validate_items(const IdAndText& items, bool require_text) {
  std::unordered_set<std::string_view> seen;
  seen.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& [id, text] = items[i];
    if (id.empty()) throw InputError(fmt::format("item {} has an empty id", i));
    if (!seen.insert(id).second) throw InputError(fmt::format("id {} appears more than once (item {})", id, i));
    if (require_text && text.find_first_not_of(" \t\r\n") == std::string::npos)
      throw InputError(fmt::format("the text of {} is empty", id));
  }
}

/// One request line of a batch file.
struct BatchRequest {
  std::string custom_id;
  std::vector<std::string> ids;
  std::string line;  ///< JSON plus newline
};

std::string endpoint_url(BatchEndpoint endpoint) {
  return endpoint == BatchEndpoint::kEmbeddings ? kEmbeddingsUrl : kChatUrl;
}

/// The manifest of a batch, as read back by `parse_batch_output`.
struct Manifest {
  ResultKind kind = ResultKind::kText;
  std::string model;
  int dimensions = 0;
  std::unordered_map<std::string, std::vector<std::string>> requests;  ///< custom_id -> ids
  std::vector<std::string> all_ids;                                   ///< in request order
};

Manifest read_manifest(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw IoError(fmt::format("cannot read batch manifest {}: {}", path, std::strerror(errno)));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    throw InputError(fmt::format("batch manifest {} is not valid JSON: {}", path, error.what()));
  }
  if (!json.is_object() || json.value("format", "") != kManifestFormat || !json.contains("requests") ||
      !json["requests"].is_array() || !json.value("endpoint", nlohmann::json()).is_string() ||
      !json.value("model", nlohmann::json()).is_string())
    throw InputError(fmt::format("{} is not a celltyper batch manifest (format \"{}\" with endpoint, model, requests)",
                                 path, kManifestFormat));
  Manifest manifest;
  const std::string endpoint = json["endpoint"].get<std::string>();
  if (endpoint == kEmbeddingsUrl) {
    manifest.kind = ResultKind::kEmbedding;
  } else if (endpoint == kChatUrl) {
    manifest.kind = ResultKind::kText;
  } else {
    throw InputError(fmt::format("batch manifest {}: unsupported endpoint {}", path, endpoint));
  }
  manifest.model = json["model"].get<std::string>();
  manifest.dimensions = json.value("dimensions", 0);
  for (std::size_t i = 0; i < json["requests"].size(); ++i) {
    const auto& request = json["requests"][i];
    if (!request.is_object() || !request.value("custom_id", nlohmann::json()).is_string() ||
        !request.value("ids", nlohmann::json()).is_array() || request["ids"].empty())
      throw InputError(fmt::format("batch manifest {}: request {} needs a custom_id and a non-empty ids array", path, i));
    std::vector<std::string> ids;
    for (const auto& id : request["ids"]) {
      if (!id.is_string()) throw InputError(fmt::format("batch manifest {}: request {} has a non-string id", path, i));
      ids.push_back(id.get<std::string>());
      manifest.all_ids.push_back(ids.back());
    }
    const std::string custom_id = request["custom_id"].get<std::string>();
    if (!manifest.requests.emplace(custom_id, std::move(ids)).second)
      throw InputError(fmt::format("batch manifest {}: custom_id {} appears twice", path, custom_id));
  }
  return manifest;
}

/// Error code and message of a failed line: from `error`, else from the response body's `error`.
void describe_failure(const nlohmann::json& error_or_body, BatchFailure& failure) {
  const nlohmann::json* error = &error_or_body;
  if (error->is_object() && error->contains("error") && (*error)["error"].is_object()) error = &(*error)["error"];
  if (!error->is_object()) {
    failure.message = error->is_null() ? "" : error->dump();
    return;
  }
  if (error->contains("code") && (*error)["code"].is_string()) failure.code = (*error)["code"].get<std::string>();
  if (failure.code.empty() && error->contains("type") && (*error)["type"].is_string())
    failure.code = (*error)["type"].get<std::string>();
  if (error->contains("message") && (*error)["message"].is_string()) failure.message = (*error)["message"].get<std::string>();
}

}  // namespace

std::string MalformedLine::to_string() const { return fmt::format("{}:{}: {}", file, line, problem); }

BatchWriteResult write_batch_requests(const IdAndText& items, const std::string& directory,
                                      const BatchWriteOptions& options) {
  const bool embeddings = options.endpoint == BatchEndpoint::kEmbeddings;
  const BatchLimits& limits = options.limits;
  if (limits.max_requests_per_file == 0 || limits.max_bytes_per_file == 0 || limits.max_embedding_inputs_per_file == 0)
    throw InputError("batch limits must be positive");
  if (embeddings && (options.embedding.inputs_per_request == 0 || options.embedding.inputs_per_request > 2048))
    throw InputError(fmt::format("inputs per request must be 1..2048, not {}", options.embedding.inputs_per_request));
  if (options.file_prefix.empty() || options.file_prefix.find('/') != std::string::npos)
    throw InputError(fmt::format("batch file prefix \"{}\" must be a non-empty file name", options.file_prefix));
  validate_items(items, /* require_text = */ true);

  // Leave out what a results store already has.
  std::vector<std::size_t> todo;
  BatchWriteResult result;
  StoredResults stored;
  if (!options.results_store.empty() && std::filesystem::exists(options.results_store)) {
    stored = read_results_store(options.results_store);
    const ResultKind kind = embeddings ? ResultKind::kEmbedding : ResultKind::kText;
    const std::string& model = embeddings ? options.embedding.model : options.chat.model;
    const int dimensions = embeddings ? options.embedding.dimensions : 0;
    if (stored.kind != kind || stored.model != model || stored.dimensions != dimensions)
      throw InputError(fmt::format("results store {} holds results of model {} (dimensions {}), not of {} "
                                   "(dimensions {})",
                                   options.results_store, stored.model, stored.dimensions, model, dimensions));
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (stored.contains(items[i].first)) {
      ++result.n_skipped;
    } else {
      todo.push_back(i);
    }
  }

  // Requests.
  std::vector<BatchRequest> requests;
  const std::string url = endpoint_url(options.endpoint);
  auto add_request = [&](std::string custom_id, std::vector<std::string> ids, nlohmann::json body) {
    nlohmann::json line = {{"custom_id", custom_id}, {"method", "POST"}, {"url", url}, {"body", std::move(body)}};
    requests.push_back({std::move(custom_id), std::move(ids),
                        line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"});
  };
  if (embeddings) {
    const std::size_t group_limit = std::min(options.embedding.inputs_per_request, limits.max_embedding_inputs_per_file);
    std::size_t begin = 0;
    while (begin < todo.size()) {
      std::size_t end = begin;
      std::size_t characters = 0;
      while (end < todo.size() && end - begin < group_limit) {
        const std::size_t length = items[todo[end]].second.size();
        if (end > begin && characters + length > options.embedding.max_characters_per_request) break;
        characters += length;
        ++end;
      }
      std::vector<std::string_view> texts;
      std::vector<std::string> ids;
      for (std::size_t k = begin; k < end; ++k) {
        texts.emplace_back(items[todo[k]].second);
        ids.push_back(items[todo[k]].first);
      }
      add_request(fmt::format("{}emb-{:06}", options.custom_id_prefix, requests.size()), std::move(ids),
                  embedding_request_body(texts, options.embedding));
      begin = end;
    }
  } else {
    for (const std::size_t i : todo)
      add_request(options.custom_id_prefix + "chat-" + items[i].first, {items[i].first},
                  chat_request_body(items[i].second, options.chat));
  }
  std::unordered_set<std::string_view> custom_ids;
  for (const auto& request : requests)
    if (!custom_ids.insert(request.custom_id).second)
      throw InputError(fmt::format("custom_id {} would appear twice", request.custom_id));  // assert-like guard

  // Split into files.
  std::vector<std::vector<std::size_t>> files;
  std::size_t file_bytes = 0;
  std::size_t file_inputs = 0;
  for (std::size_t r = 0; r < requests.size(); ++r) {
    const auto& request = requests[r];
    if (request.line.size() > limits.max_bytes_per_file)
      throw InputError(fmt::format("the request for {} is {} bytes, over the {}-byte file limit", list_ids(request.ids),
                                   request.line.size(), limits.max_bytes_per_file));
    const std::size_t inputs = embeddings ? request.ids.size() : 0;
    if (files.empty() || files.back().size() >= limits.max_requests_per_file ||
        file_bytes + request.line.size() > limits.max_bytes_per_file ||
        file_inputs + inputs > limits.max_embedding_inputs_per_file) {
      files.emplace_back();
      file_bytes = 0;
      file_inputs = 0;
    }
    files.back().push_back(r);
    file_bytes += request.line.size();
    file_inputs += inputs;
  }

  // Never overwrite an earlier batch: its manifest is needed to read its output.
  const std::filesystem::path root(directory);
  std::error_code error;
  std::filesystem::create_directories(root, error);
  if (error) throw IoError(fmt::format("cannot create directory {}: {}", directory, error.message()));
  const std::filesystem::path manifest_path = root / (options.file_prefix + "-manifest.json");
  std::vector<std::filesystem::path> file_paths;
  for (std::size_t f = 0; f < files.size(); ++f)
    file_paths.push_back(root / fmt::format("{}-{:05}.jsonl", options.file_prefix, f + 1));
  for (const auto& path : file_paths)
    if (std::filesystem::exists(path))
      throw InputError(fmt::format("{} already exists; choose another directory or file prefix", path.string()));
  if (std::filesystem::exists(manifest_path))
    throw InputError(fmt::format("{} already exists; choose another directory or file prefix", manifest_path.string()));

  nlohmann::json manifest_requests = nlohmann::json::array();
  nlohmann::json manifest_files = nlohmann::json::array();
  for (std::size_t f = 0; f < files.size(); ++f) {
    std::string text;
    for (const std::size_t r : files[f]) {
      text += requests[r].line;
      manifest_requests.push_back({{"custom_id", requests[r].custom_id}, {"ids", requests[r].ids}, {"file", f}});
      result.n_items += requests[r].ids.size();
    }
    write_output_file(file_paths[f].string(), text);
    manifest_files.push_back(file_paths[f].filename().string());
    result.request_files.push_back(file_paths[f].string());
  }
  result.n_requests = requests.size();
  nlohmann::json manifest = {{"format", kManifestFormat},
                             {"version", 1},
                             {"endpoint", url},
                             {"model", embeddings ? options.embedding.model : options.chat.model},
                             {"dimensions", embeddings ? options.embedding.dimensions : 0},
                             {"files", std::move(manifest_files)},
                             {"requests", std::move(manifest_requests)}};
  write_output_file(manifest_path.string(), manifest.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  result.manifest_file = manifest_path.string();
  return result;
}

BatchParseResult parse_batch_output(const std::vector<std::string>& files, const BatchParseOptions& options) {
  BatchParseResult result;
  const bool have_manifest = !options.manifest_file.empty();
  Manifest manifest;
  if (have_manifest) manifest = read_manifest(options.manifest_file);
  if (!options.results_store.empty() && !have_manifest)
    throw InputError("writing batch results to a results store needs the batch manifest (model and dimensions)");
  result.kind = manifest.kind;

  std::unordered_map<std::string, std::size_t> failure_of;  // custom_id -> index in result.failures
  std::unordered_set<std::string> succeeded;                // custom_ids
  std::size_t n_repeated = 0;
  for (const auto& path : files) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw IoError(fmt::format("cannot read batch output {}: {}", path, std::strerror(errno)));
    std::string text;
    std::size_t line_number = 0;
    while (std::getline(file, text)) {
      ++line_number;
      if (!text.empty() && text.back() == '\r') text.pop_back();
      if (text.find_first_not_of(" \t") == std::string::npos) continue;
      auto malformed = [&](std::string problem) {
        result.malformed.push_back({path, line_number, std::move(problem)});
      };
      nlohmann::json line;
      try {
        line = nlohmann::json::parse(text);
      } catch (const nlohmann::json::exception& error) {
        malformed(fmt::format("not a JSON object ({})", error.what()));
        continue;
      }
      if (!line.is_object() || !line.contains("custom_id") || !line["custom_id"].is_string()) {
        malformed("no string \"custom_id\"");
        continue;
      }
      const std::string custom_id = line["custom_id"].get<std::string>();
      std::vector<std::string> ids;
      if (have_manifest) {
        const auto found = manifest.requests.find(custom_id);
        if (found == manifest.requests.end()) {
          malformed(fmt::format("custom_id {} is not in the manifest {}", custom_id, options.manifest_file));
          continue;
        }
        ids = found->second;
      } else if (custom_id.starts_with("chat-") && custom_id.size() > 5) {
        ids = {custom_id.substr(5)};
      } else {
        malformed(fmt::format("custom_id {} is not \"chat-<id>\"; embeddings batches need the manifest", custom_id));
        continue;
      }
      if (succeeded.contains(custom_id)) {
        ++n_repeated;
        continue;
      }
      BatchFailure failure{custom_id, ids, 0, {}, {}};
      const nlohmann::json error = line.value("error", nlohmann::json());
      const nlohmann::json response = line.value("response", nlohmann::json());
      if (!error.is_null()) {
        describe_failure(error, failure);
        if (response.is_object() && response.value("status_code", nlohmann::json()).is_number_integer())
          failure.status_code = response["status_code"].get<int>();
      } else if (!response.is_object() || !response.value("status_code", nlohmann::json()).is_number_integer()) {
        malformed(fmt::format("{}: neither an \"error\" nor a \"response\" with a \"status_code\"", custom_id));
        continue;
      } else if (response["status_code"].get<int>() != 200) {
        failure.status_code = response["status_code"].get<int>();
        describe_failure(response.value("body", nlohmann::json()), failure);
      } else {
        const nlohmann::json body = response.value("body", nlohmann::json());
        try {
          if (result.kind == ResultKind::kEmbedding) {
            auto vectors = parse_embedding_response(body, ids.size(), manifest.dimensions);
            for (std::size_t k = 0; k < ids.size(); ++k) result.embeddings.insert_or_assign(ids[k], std::move(vectors[k]));
          } else {
            result.texts.insert_or_assign(ids.front(), parse_chat_response(body));
          }
          succeeded.insert(custom_id);
          continue;
        } catch (const InputError& problem) {
          if (result.kind == ResultKind::kEmbedding) {
            malformed(fmt::format("{}: {}", custom_id, problem.what()));
            continue;
          }
          failure.status_code = 200;
          failure.code = "no_content";
          failure.message = problem.what();
        }
      }
      if (failure_of.contains(custom_id)) {
        ++n_repeated;
        continue;
      }
      failure_of.emplace(custom_id, result.failures.size());
      result.failures.push_back(std::move(failure));
    }
    if (file.bad()) throw IoError(fmt::format("cannot read batch output {}: {}", path, std::strerror(errno)));
  }
  // A request that failed in one line and succeeded in another succeeded.
  std::erase_if(result.failures, [&](const BatchFailure& failure) { return succeeded.contains(failure.custom_id); });
  if (n_repeated > 0) result.warnings.push_back(fmt::format("{} repeated custom_ids ignored", n_repeated));

  if (have_manifest) {
    std::unordered_set<std::string> failed_ids;
    for (const auto& failure : result.failures) failed_ids.insert(failure.ids.begin(), failure.ids.end());
    for (const auto& id : manifest.all_ids)
      if (!result.embeddings.contains(id) && !result.texts.contains(id) && !failed_ids.contains(id))
        result.missing.push_back(id);
  }

  if (!options.results_store.empty()) {
    ResultsStore store(options.results_store, manifest.kind, manifest.model, manifest.dimensions);
    for (auto& warning : store.results().warnings) result.warnings.push_back(warning);
    if (manifest.kind == ResultKind::kEmbedding) {
      store.append_embeddings({result.embeddings.begin(), result.embeddings.end()});
    } else {
      store.append_texts({result.texts.begin(), result.texts.end()});
    }
  }
  return result;
}

std::string BatchParseResult::summary() const {
  std::string text = fmt::format("{} ids succeeded, {} requests failed, {} ids missing, {} malformed lines\n",
                                 n_succeeded(), failures.size(), missing.size(), malformed.size());
  for (std::size_t i = 0; i < failures.size() && i < kMaxIdsInMessage; ++i)
    text += fmt::format("  failed {} ({}): HTTP {} {} {}\n", failures[i].custom_id, list_ids(failures[i].ids),
                        failures[i].status_code, failures[i].code, failures[i].message);
  if (!missing.empty()) text += fmt::format("  missing: {}\n", list_ids(missing));
  for (std::size_t i = 0; i < malformed.size() && i < kMaxIdsInMessage; ++i)
    text += fmt::format("  malformed: {}\n", malformed[i].to_string());
  for (const auto& warning : warnings) text += fmt::format("  warning: {}\n", warning);
  return text;
}

}  // namespace celltyper::openai
