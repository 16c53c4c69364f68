// Internal to the OpenAI transports (src/genes/openai_*.cpp): libcurl set-up, API keys, URLs,
// server error messages, Retry-After, backoff, and one synchronous request with retries (the
// Batch API's file and batch calls; embeddings and chat completions use the concurrent loop in
// openai_client.cpp).
#pragma once

#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "celltyper/openai.hpp"

namespace celltyper::openai::detail {

/// curl_global_init once per process; throws IoError when it fails.
void initialise_curl();

/// Throws InputError on bad `HttpClientOptions` (timeouts, attempts, backoff, concurrency).
void validate_http_options(const HttpClientOptions& options);

/// The key to send: `options.api_key`, else $OPENAI_API_KEY, else "" (InputError for
/// api.openai.com, which needs one).
std::string resolve_api_key(const HttpClientOptions& options);

/// `base_url` + "/" + `path`, without doubled slashes.
std::string join_url(std::string base_url, std::string_view path);

/// The server's error message from a response body (JSON `error.message`, else its start).
std::string server_message(const std::string& body);

/// Seconds from a Retry-After value: a number of seconds or an HTTP date.
std::optional<double> parse_retry_after(std::string value);

/// Update `seconds` from one response header line when it is `retry-after-ms` (preferred) or
/// `retry-after` (case-insensitive names).
void read_retry_after_header(std::string_view line, std::optional<double>& seconds);

/// Whether an HTTP status is worth retrying: 408, 409, 429 and 5xx.
bool is_retryable_status(long status);

/// Delay before the retry after attempt `attempt` (1-based): `retry_after` when given (capped
/// by max_retry_after_seconds), else uniform in [0, min(max_backoff, initial * 2^(attempt-1))].
double retry_delay_seconds(const HttpClientOptions& options, int attempt, std::optional<double> retry_after,
                           std::mt19937_64& random);

/// The InputError for HTTP 401/403: "check your API key".
[[noreturn]] void throw_key_rejected(const std::string& url, long status, const std::string& message);

/// One synchronous HTTP request.
struct HttpCall {
  std::string method = "GET";  ///< "GET" or "POST"
  std::string path;            ///< relative to the base URL, e.g. "files" or "batches/batch_abc"
  std::string json_body;       ///< POST: the JSON body (when `upload_file` is empty)
  /// POST multipart/form-data with the field purpose=batch and this file as the field `file`.
  std::string upload_file;
  /// Write a 2xx body to this file (through `<path>.part`, renamed when complete) instead of
  /// returning it.
  std::string download_to;
  std::string what;  ///< what the request does, for messages ("upload of batch-00001.jsonl")
};

/// The answer to an HttpCall.
struct HttpReply {
  long status = 0;   ///< HTTP status (2xx)
  std::string body;  ///< the body, "" when downloaded to a file
};

/// Send `call` until it gets a 2xx answer. Retries HTTP 408/409/429/5xx, timeouts, connection
/// errors and cut downloads with `retry_delay_seconds`, at most `options.max_attempts` attempts,
/// then IoError naming `call.what` and the last error. HTTP 401/403 -> `throw_key_rejected` at
/// once; any other status -> InputError with the server's message. `before_retry`, when set, is
/// called before each retry and may return a reply to end with instead (e.g. after finding
/// that a timed-out request did take effect).
HttpReply call_with_retries(const HttpCall& call, const HttpClientOptions& options,
                            const std::function<std::optional<HttpReply>()>& before_retry = {});

}  // namespace celltyper::openai::detail
