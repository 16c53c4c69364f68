// Shared pieces of the OpenAI transports and one synchronous request with retries (libcurl easy
// interface), used by the Batch API's file and batch calls.
#include "genes/openai_http.hpp"
#include "io/curl_api.hpp"


#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "celltyper/error.hpp"

namespace celltyper::openai::detail {

void initialise_curl() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_api().curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw IoError("cannot initialise libcurl");
  });
}

void validate_http_options(const HttpClientOptions& options) {
  if (options.base_url.empty()) throw InputError("the base URL is empty");
  if (options.max_concurrent_requests < 1)
    throw InputError(fmt::format("max concurrent requests must be >= 1, not {}", options.max_concurrent_requests));
  if (!(options.request_timeout_seconds > 0) || !(options.connect_timeout_seconds > 0))
    throw InputError("request and connect timeouts must be positive");
  if (options.max_attempts < 1) throw InputError(fmt::format("max attempts must be >= 1, not {}", options.max_attempts));
  if (!(options.initial_backoff_seconds >= 0) || !(options.max_backoff_seconds >= 0) ||
      !(options.max_retry_after_seconds >= 0))
    throw InputError("backoff times must not be negative");
}

std::string resolve_api_key(const HttpClientOptions& options) {
  if (!options.api_key.empty()) return options.api_key;
  const char* key = std::getenv("OPENAI_API_KEY");
  if (key != nullptr && *key != '\0') return key;
  if (options.base_url.find("api.openai.com") != std::string::npos)
    throw InputError("no OpenAI API key: set the environment variable OPENAI_API_KEY (the command line takes no key: other users "
                     "of the machine could read it in the process list)");
  return {};
}

std::string join_url(std::string base_url, std::string_view path) {
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  return base_url + "/" + std::string(path);
}

std::string server_message(const std::string& body) {
  try {
    const auto json = nlohmann::json::parse(body);
    if (json.is_object() && json.contains("error")) {
      const auto& error = json["error"];
      if (error.is_object() && error.contains("message") && error["message"].is_string()) return error["message"].get<std::string>();
      if (error.is_string()) return error.get<std::string>();
    }
  } catch (const nlohmann::json::exception&) {
  }
  std::string text = body.substr(0, 200);
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text.empty() ? "(empty response)" : text;
}

std::optional<double> parse_retry_after(std::string value) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.erase(value.begin());
  if (value.empty()) return std::nullopt;
  char* end = nullptr;
  const double seconds = std::strtod(value.c_str(), &end);
  if (end != nullptr && *end == '\0') return std::isfinite(seconds) ? std::optional(std::max(0.0, seconds)) : std::nullopt;
  const time_t when = curl_api().curl_getdate(value.c_str(), nullptr);
  if (when < 0) return std::nullopt;
  return std::max(0.0, std::difftime(when, std::time(nullptr)));
}

void read_retry_after_header(std::string_view line, std::optional<double>& seconds) {
  auto value_of = [&](std::string_view name) -> std::optional<std::string> {
    if (line.size() <= name.size() || line[name.size()] != ':') return std::nullopt;
    for (std::size_t i = 0; i < name.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return std::nullopt;
    return std::string(line.substr(name.size() + 1));
  };
  if (auto value = value_of("retry-after-ms")) {
    if (auto milliseconds = parse_retry_after(*value)) seconds = *milliseconds / 1000.0;
  } else if (auto seconds_value = value_of("retry-after")) {
    if (!seconds) seconds = parse_retry_after(*seconds_value);
  }
}

bool is_retryable_status(long status) { return status == 408 || status == 409 || status == 429 || status >= 500; }

double retry_delay_seconds(const HttpClientOptions& options, int attempt, std::optional<double> retry_after,
                           std::mt19937_64& random) {
  if (retry_after) return std::min(*retry_after, options.max_retry_after_seconds);
  const double ceiling =
      std::min(options.max_backoff_seconds, options.initial_backoff_seconds * std::pow(2.0, attempt - 1));
  return std::uniform_real_distribution<double>(0.0, std::max(ceiling, 0.0))(random);
}

void throw_key_rejected(const std::string& url, long status, const std::string& message) {
  throw InputError(fmt::format("{} answered HTTP {} ({}): check your API key (the environment variable OPENAI_API_KEY) "
                               "and its permissions",
                               url, status, message));
}

namespace {

/// State of one attempt of an HttpCall.
struct Attempt {
  CURL* easy = nullptr;
  std::string body;  ///< the body (returned, or the error body of a download)
  std::FILE* file = nullptr;  ///< download target (the .part file), 2xx bodies only
  bool write_failed = false;
  int write_errno = 0;
  std::optional<double> retry_after;

  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* self) {
    auto* attempt = static_cast<Attempt*>(self);
    const std::size_t bytes = size * count;
    long status = 0;
    curl_api().curl_easy_getinfo(attempt->easy, CURLINFO_RESPONSE_CODE, &status);
    if (attempt->file != nullptr && status >= 200 && status < 300) {
      if (std::fwrite(data, 1, bytes, attempt->file) != bytes) {
        attempt->write_failed = true;
        attempt->write_errno = errno;
        return 0;  // stops the transfer
      }
      return bytes;
    }
    attempt->body.append(data, bytes);
    return bytes;
  }

  static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* self) {
    read_retry_after_header(std::string_view(data, size * count), static_cast<Attempt*>(self)->retry_after);
    return size * count;
  }
};

struct CurlDeleter {
  void operator()(CURL* easy) const { curl_api().curl_easy_cleanup(easy); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_api().curl_slist_free_all(list); }
};
struct MimeDeleter {
  void operator()(curl_mime* mime) const { curl_api().curl_mime_free(mime); }
};
struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

}  // namespace

HttpReply call_with_retries(const HttpCall& call, const HttpClientOptions& options,
                            const std::function<std::optional<HttpReply>()>& before_retry) {
  initialise_curl();
  validate_http_options(options);
  const std::string api_key = resolve_api_key(options);
  const std::string url = join_url(options.base_url, call.path);
  const bool bulk = !call.upload_file.empty() || !call.download_to.empty();
  if (!call.upload_file.empty()) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(call.upload_file, error))
      throw IoError(fmt::format("cannot upload {}: not a readable file", call.upload_file));
  }
  const std::string part_path = call.download_to.empty() ? "" : call.download_to + ".part";
  std::mt19937_64 random(std::random_device{}());

  for (int attempt_number = 1;; ++attempt_number) {
    Attempt attempt;
    std::unique_ptr<CURL, CurlDeleter> easy(curl_api().curl_easy_init());
    if (!easy) throw IoError("cannot create a libcurl handle");
    attempt.easy = easy.get();
    std::unique_ptr<std::FILE, FileCloser> file;
    if (!part_path.empty()) {
      file.reset(std::fopen(part_path.c_str(), "wb"));
      if (!file) throw IoError(fmt::format("cannot create {}: {}", part_path, std::strerror(errno)));
      attempt.file = file.get();
    }
    curl_slist* raw_headers = nullptr;
    raw_headers = curl_api().curl_slist_append(raw_headers, "Expect:");
    if (call.method == "POST" && call.upload_file.empty()) raw_headers = curl_api().curl_slist_append(raw_headers, "Content-Type: application/json");
    if (!api_key.empty()) raw_headers = curl_api().curl_slist_append(raw_headers, ("Authorization: Bearer " + api_key).c_str());
    const std::unique_ptr<curl_slist, SlistDeleter> headers(raw_headers);
    std::unique_ptr<curl_mime, MimeDeleter> mime;
    char error_buffer[CURL_ERROR_SIZE] = {};

    CURL* handle = easy.get();
    curl_api().curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
    curl_api().curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.get());
    if (call.method == "POST") {
      if (!call.upload_file.empty()) {
        mime.reset(curl_api().curl_mime_init(handle));
        curl_mimepart* purpose = curl_api().curl_mime_addpart(mime.get());
        curl_api().curl_mime_name(purpose, "purpose");
        curl_api().curl_mime_data(purpose, "batch", CURL_ZERO_TERMINATED);
        curl_mimepart* part = curl_api().curl_mime_addpart(mime.get());
        curl_api().curl_mime_name(part, "file");
        if (curl_api().curl_mime_filedata(part, call.upload_file.c_str()) != CURLE_OK)
          throw IoError(fmt::format("cannot read {} for upload", call.upload_file));
        curl_api().curl_mime_type(part, "application/jsonl");
        curl_api().curl_easy_setopt(handle, CURLOPT_MIMEPOST, mime.get());
      } else {
        curl_api().curl_easy_setopt(handle, CURLOPT_POSTFIELDS, call.json_body.c_str());
        curl_api().curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(call.json_body.size()));
      }
    } else {
      curl_api().curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
    }
    curl_api().curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, &Attempt::on_body);
    curl_api().curl_easy_setopt(handle, CURLOPT_WRITEDATA, &attempt);
    curl_api().curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, &Attempt::on_header);
    curl_api().curl_easy_setopt(handle, CURLOPT_HEADERDATA, &attempt);
    curl_api().curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer);
    curl_api().curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    const long timeout_ms = static_cast<long>(std::ceil(options.request_timeout_seconds * 1000));
    if (bulk) {  // big files: give up on a stalled transfer, not on a long one
      curl_api().curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_api().curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME, std::max(1L, timeout_ms / 1000));
    } else {
      curl_api().curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, timeout_ms);
    }
    curl_api().curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::ceil(options.connect_timeout_seconds * 1000)));
    curl_api().curl_easy_setopt(handle, CURLOPT_ACCEPT_ENCODING, "");
    curl_api().curl_easy_setopt(handle, CURLOPT_USERAGENT, "celltyper/" CELLTYPER_VERSION);

    const CURLcode code = curl_api().curl_easy_perform(handle);
    long status = 0;
    curl_api().curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
    std::string error;
    if (attempt.write_failed) {
      file.reset();
      std::error_code ignored;
      std::filesystem::remove(part_path, ignored);
      throw IoError(fmt::format("cannot write {} ({}): {}", part_path, call.what, std::strerror(attempt.write_errno)));
    }
    if (code != CURLE_OK) {
      if (code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL)
        throw InputError(fmt::format("cannot use the URL {}: {}", url, curl_api().curl_easy_strerror(code)));
      if (code == CURLE_READ_ERROR) throw IoError(fmt::format("cannot read {} for upload", call.upload_file));
      error = fmt::format("{} ({})", curl_api().curl_easy_strerror(code), error_buffer[0] != '\0' ? error_buffer : "no detail");
    } else if (status >= 200 && status < 300) {
      HttpReply reply{status, std::move(attempt.body)};
      if (file) {
        const bool flushed = std::fflush(file.get()) == 0;
        file.reset();
        std::error_code rename_error;
        if (!flushed) throw IoError(fmt::format("cannot write {}: {}", part_path, std::strerror(errno)));
        std::filesystem::rename(part_path, call.download_to, rename_error);
        if (rename_error)
          throw IoError(fmt::format("cannot rename {} to {}: {}", part_path, call.download_to, rename_error.message()));
      }
      return reply;
    } else {
      const std::string message = server_message(attempt.body);
      if (status == 401 || status == 403) throw_key_rejected(url, status, message);
      if (!is_retryable_status(status))
        throw InputError(fmt::format("{} ({}) answered HTTP {}: {}", url, call.what, status, message));
      error = fmt::format("HTTP {}: {}", status, message);
    }
    if (attempt_number >= options.max_attempts) {
      file.reset();
      if (!part_path.empty()) {
        std::error_code ignored;
        std::filesystem::remove(part_path, ignored);
      }
      throw IoError(fmt::format("{} failed {} times (at {}); last error: {}", call.what, attempt_number, url, error));
    }
    const double delay = retry_delay_seconds(options, attempt_number, attempt.retry_after, random);
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    if (before_retry) {
      if (auto reply = before_retry()) return *reply;
    }
  }
}

}  // namespace celltyper::openai::detail
