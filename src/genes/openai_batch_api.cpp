// The Batch API over HTTP: upload a request file, create, retrieve and list batches, download
// output and error files.
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "celltyper/error.hpp"
#include "celltyper/openai.hpp"
#include "genes/openai_http.hpp"

namespace celltyper::openai {
namespace {

/// The JSON of a 2xx reply; InputError naming `what` when it is not JSON.
nlohmann::json parse_reply(const detail::HttpReply& reply, const std::string& what) {
  try {
    return nlohmann::json::parse(reply.body);
  } catch (const nlohmann::json::exception& error) {
    throw InputError(fmt::format("{}: the server's answer is not JSON ({})", what, error.what()));
  }
}

std::string string_field(const nlohmann::json& json, const char* key) {
  return json.contains(key) && json[key].is_string() ? json[key].get<std::string>() : std::string();
}

std::size_t count_field(const nlohmann::json& json, const char* key) {
  return json.contains(key) && json[key].is_number_unsigned() ? json[key].get<std::size_t>() : 0;
}

}  // namespace

bool BatchInfo::finished() const {
  return status == "completed" || status == "failed" || status == "expired" || status == "cancelled";
}

BatchInfo BatchInfo::from_json(const nlohmann::json& json) {
  if (!json.is_object() || !json.value("id", nlohmann::json()).is_string() ||
      !json.value("status", nlohmann::json()).is_string())
    throw InputError(fmt::format("not a Batch object (no string id and status): {}", json.dump().substr(0, 200)));
  BatchInfo info;
  info.id = json["id"].get<std::string>();
  info.status = json["status"].get<std::string>();
  info.endpoint = string_field(json, "endpoint");
  info.input_file_id = string_field(json, "input_file_id");
  info.output_file_id = string_field(json, "output_file_id");
  info.error_file_id = string_field(json, "error_file_id");
  if (json.contains("request_counts") && json["request_counts"].is_object()) {
    const auto& counts = json["request_counts"];
    info.n_total = count_field(counts, "total");
    info.n_completed = count_field(counts, "completed");
    info.n_failed = count_field(counts, "failed");
  }
  if (json.contains("errors") && json["errors"].is_object() && json["errors"].contains("data") &&
      json["errors"]["data"].is_array()) {
    for (const auto& error : json["errors"]["data"]) {
      if (!error.is_object()) continue;
      if (!info.errors.empty()) info.errors += "; ";
      if (error.contains("line") && error["line"].is_number_integer()) info.errors += fmt::format("line {}: ", error["line"].get<long>());
      const std::string code = string_field(error, "code");
      const std::string message = string_field(error, "message");
      info.errors += code.empty() ? message : fmt::format("{} ({})", message, code);
    }
  }
  return info;
}

std::string upload_batch_file(const std::string& path, const HttpClientOptions& options) {
  detail::HttpCall call;
  call.method = "POST";
  call.path = "files";
  call.upload_file = path;
  call.what = fmt::format("upload of {}", path);
  const nlohmann::json file = parse_reply(detail::call_with_retries(call, options), call.what);
  const std::string id = string_field(file, "id");
  if (id.empty()) throw InputError(fmt::format("{}: the server's answer has no file id: {}", call.what, file.dump().substr(0, 200)));
  return id;
}

BatchInfo create_batch(const std::string& input_file_id, BatchEndpoint endpoint, const nlohmann::json& metadata,
                       const HttpClientOptions& options) {
  nlohmann::json body = {{"input_file_id", input_file_id},
                         {"endpoint", endpoint == BatchEndpoint::kEmbeddings ? "/v1/embeddings" : "/v1/chat/completions"},
                         {"completion_window", "24h"}};
  if (!metadata.is_null()) body["metadata"] = metadata;
  detail::HttpCall call;
  call.method = "POST";
  call.path = "batches";
  call.json_body = body.dump();
  call.what = fmt::format("creating a batch of file {}", input_file_id);
  // Before a retry: did the failed attempt make the batch after all?
  std::optional<BatchInfo> made;
  const auto made_already = [&]() -> std::optional<detail::HttpReply> {
    try {
      made = find_batch_for_input_file(input_file_id, options, 200);
    } catch (const IoError&) {
      // The listing failed too: try creating again (the next retry checks again).
    }
    return made ? std::optional(detail::HttpReply{200, {}}) : std::nullopt;
  };
  const detail::HttpReply reply = detail::call_with_retries(call, options, made_already);
  if (made) return *made;
  return BatchInfo::from_json(parse_reply(reply, call.what));
}

BatchInfo retrieve_batch(const std::string& batch_id, const HttpClientOptions& options) {
  detail::HttpCall call;
  call.path = "batches/" + batch_id;
  call.what = fmt::format("retrieving batch {}", batch_id);
  return BatchInfo::from_json(parse_reply(detail::call_with_retries(call, options), call.what));
}

std::optional<BatchInfo> find_batch_for_input_file(const std::string& input_file_id, const HttpClientOptions& options,
                                                   std::size_t max_batches) {
  std::string after;
  std::size_t seen = 0;
  while (seen < max_batches) {
    detail::HttpCall call;
    call.path = "batches?limit=100" + (after.empty() ? std::string() : "&after=" + after);
    call.what = "listing batches";
    const nlohmann::json page = parse_reply(detail::call_with_retries(call, options), call.what);
    if (!page.is_object() || !page.contains("data") || !page["data"].is_array()) return std::nullopt;
    for (const auto& batch : page["data"]) {
      ++seen;
      if (batch.is_object() && string_field(batch, "input_file_id") == input_file_id) return BatchInfo::from_json(batch);
    }
    if (page["data"].empty() || !page.value("has_more", false)) return std::nullopt;
    after = string_field(page["data"].back(), "id");
    if (after.empty()) return std::nullopt;
  }
  return std::nullopt;
}

void download_file(const std::string& file_id, const std::string& path, const HttpClientOptions& options) {
  detail::HttpCall call;
  call.path = "files/" + file_id + "/content";
  call.download_to = path;
  call.what = fmt::format("download of file {} to {}", file_id, path);
  detail::call_with_retries(call, options);
}

}  // namespace celltyper::openai
