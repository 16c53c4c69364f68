// Direct HTTP client for OpenAI-compatible servers over libcurl's multi interface: one thread,
// bounded concurrency, retries with exponential backoff and full jitter, fsynced checkpoints.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_set>

#include <fmt/format.h>

#include "celltyper/error.hpp"
#include "celltyper/gene_text.hpp"
#include "io/curl_api.hpp"
#include "celltyper/openai.hpp"
#include "genes/openai_http.hpp"
#include "text_lists.hpp"

namespace celltyper::openai {
namespace {

using detail::initialise_curl;
using detail::is_retryable_status;
using detail::join_url;
using detail::read_retry_after_header;
using detail::resolve_api_key;
using detail::retry_delay_seconds;
using detail::server_message;
using detail::throw_key_rejected;
using detail::validate_http_options;

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxIdsInMessage = 5;

/// A response that cannot be used (bad JSON, wrong shape): retried like a server error.
class BadResponse : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// "a, b, c (+7 more)".
std::string list_ids(const IdAndText& items, const std::vector<std::size_t>& indices) {
  celltyper::detail::Examples ids(kMaxIdsInMessage);
  for (const std::size_t index : indices) ids.add_with([&] { return items[index].first; });
  return ids.str();
}

void validate_items(const IdAndText& items) {
  std::unordered_set<std::string_view> seen;
  seen.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& [id, text] = items[i];
    if (id.empty()) throw InputError(fmt::format("item {} has an empty id", i));
    if (!seen.insert(id).second) throw InputError(fmt::format("id {} appears more than once (item {})", id, i));
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw InputError(fmt::format("the text of {} is empty", id));
  }
}

/// Work still to do: some items (indices into the caller's items) sent in one request.
struct Job {
  std::vector<std::size_t> items;
  int attempt = 0;  ///< attempts made so far
  Clock::time_point not_before{};
  std::string last_error;
};

/// One request in flight.
struct Transfer {
  Job job;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string request_body;
  std::string response_body;
  std::optional<double> retry_after_seconds;
  char error_buffer[CURL_ERROR_SIZE] = {};

  Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  ~Transfer() {
    if (easy != nullptr) curl_api().curl_easy_cleanup(easy);
    if (headers != nullptr) curl_api().curl_slist_free_all(headers);
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* self) {
    static_cast<Transfer*>(self)->response_body.append(data, size * count);
    return size * count;
  }

  static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* self) {
    read_retry_after_header(std::string_view(data, size * count), static_cast<Transfer*>(self)->retry_after_seconds);
    return size * count;
  }
};

/// A curl multi handle and the transfers attached to it; detaches and frees them all on exit,
/// also when an error unwinds the request loop.
class TransferSet {
 public:
  TransferSet() : multi_(curl_api().curl_multi_init()) {
    if (multi_ == nullptr) throw IoError("cannot create a libcurl multi handle");
  }
  TransferSet(const TransferSet&) = delete;
  TransferSet& operator=(const TransferSet&) = delete;
  ~TransferSet() {
    for (auto& transfer : active_) curl_api().curl_multi_remove_handle(multi_, transfer->easy);
    active_.clear();
    curl_api().curl_multi_cleanup(multi_);
  }
  [[nodiscard]] CURLM* multi() const { return multi_; }
  [[nodiscard]] std::size_t size() const { return active_.size(); }
  void add(std::unique_ptr<Transfer> transfer) {
    if (curl_api().curl_multi_add_handle(multi_, transfer->easy) != CURLM_OK) throw IoError("cannot add a libcurl transfer");
    active_.push_back(std::move(transfer));
  }
  /// Detach the transfer of `easy` and hand it over.
  std::unique_ptr<Transfer> remove(CURL* easy) {
    const auto found = std::find_if(active_.begin(), active_.end(), [&](const auto& t) { return t->easy == easy; });
    std::unique_ptr<Transfer> transfer = std::move(*found);
    active_.erase(found);
    curl_api().curl_multi_remove_handle(multi_, easy);
    return transfer;
  }

 private:
  CURLM* multi_;
  std::vector<std::unique_ptr<Transfer>> active_;
};

/// What a request loop does with its jobs.
struct RequestHooks {
  std::string url;   ///< full endpoint URL
  std::string what;  ///< "embedding" / "chat completion", for messages
  /// Request body for some items.
  std::function<nlohmann::json(const std::vector<std::size_t>&)> make_body;
  /// Use a 2xx response for some items (parse, checkpoint, keep). Throws BadResponse when the
  /// response cannot be used (retried), anything else to stop.
  std::function<void(const std::vector<std::size_t>&, const nlohmann::json&)> accept;
};

struct RequestCounts {
  std::size_t n_requests = 0;
  std::size_t n_retries = 0;
};

/// Run `jobs` against the server until all are done or an error stops the run.
RequestCounts run_requests(std::deque<Job> jobs, const IdAndText& items, const HttpClientOptions& options,
                           const RequestHooks& hooks, std::size_t done, std::size_t total) {
  initialise_curl();
  const std::string api_key = resolve_api_key(options);
  RequestCounts counts;
  if (options.on_progress) options.on_progress(done, total);
  if (jobs.empty()) return counts;

  TransferSet transfers;
  std::vector<Job> retries;  // jobs waiting for their backoff to pass
  std::vector<std::pair<std::string, std::string>> rejected;  // (id, server message) of texts refused alone
  bool any_success = false;
  Clock::time_point paused_until{};
  std::mt19937_64 random(std::random_device{}());
  const auto to_duration = [](double seconds) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  };

  auto start = [&](Job job) {
    auto transfer = std::make_unique<Transfer>();
    ++job.attempt;
    ++counts.n_requests;
    if (job.attempt > 1) ++counts.n_retries;
    transfer->job = std::move(job);
    transfer->request_body = hooks.make_body(transfer->job.items).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    transfer->easy = curl_api().curl_easy_init();
    if (transfer->easy == nullptr) throw IoError("cannot create a libcurl handle");
    transfer->headers = curl_api().curl_slist_append(transfer->headers, "Content-Type: application/json");
    transfer->headers = curl_api().curl_slist_append(transfer->headers, "Expect:");
    if (!api_key.empty())
      transfer->headers = curl_api().curl_slist_append(transfer->headers, ("Authorization: Bearer " + api_key).c_str());
    CURL* easy = transfer->easy;
    curl_api().curl_easy_setopt(easy, CURLOPT_URL, hooks.url.c_str());
    curl_api().curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers);
    curl_api().curl_easy_setopt(easy, CURLOPT_POSTFIELDS, transfer->request_body.c_str());
    curl_api().curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(transfer->request_body.size()));
    curl_api().curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::on_body);
    curl_api().curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
    curl_api().curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
    curl_api().curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer.get());
    curl_api().curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error_buffer);
    curl_api().curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_api().curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(std::ceil(options.request_timeout_seconds * 1000)));
    curl_api().curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::ceil(options.connect_timeout_seconds * 1000)));
    curl_api().curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_api().curl_easy_setopt(easy, CURLOPT_USERAGENT, "celltyper/" CELLTYPER_VERSION);
    transfers.add(std::move(transfer));
  };

  auto retry = [&](Job job, std::string error, std::optional<double> retry_after, bool rate_limited) {
    if (job.attempt >= options.max_attempts)
      throw IoError(fmt::format("{} request for {} failed {} times (at {}); last error: {}", hooks.what,
                                list_ids(items, job.items), job.attempt, hooks.url, error));
    const double delay = retry_delay_seconds(options, job.attempt, retry_after, random);
    const auto now = Clock::now();
    job.not_before = now + to_duration(delay);
    if (rate_limited && retry_after) paused_until = std::max(paused_until, job.not_before);
    job.last_error = std::move(error);
    retries.push_back(std::move(job));
  };

  auto finish = [&](std::unique_ptr<Transfer> transfer, CURLcode code) {
    Job& job = transfer->job;
    if (code != CURLE_OK) {
      if (code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL)
        throw InputError(fmt::format("cannot use the URL {}: {}", hooks.url, curl_api().curl_easy_strerror(code)));
      const std::string detail = transfer->error_buffer[0] != '\0' ? transfer->error_buffer : curl_api().curl_easy_strerror(code);
      retry(std::move(job), fmt::format("{} ({})", curl_api().curl_easy_strerror(code), detail), std::nullopt, false);
      return;
    }
    long status = 0;
    curl_api().curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      nlohmann::json body;
      try {
        body = nlohmann::json::parse(transfer->response_body);
      } catch (const nlohmann::json::exception& error) {
        retry(std::move(job), fmt::format("unreadable response ({} bytes): {}", transfer->response_body.size(), error.what()),
              std::nullopt, false);
        return;
      }
      try {
        hooks.accept(job.items, body);
      } catch (const BadResponse& error) {
        retry(std::move(job), fmt::format("unusable response: {}", error.what()), std::nullopt, false);
        return;
      }
      any_success = true;
      done += job.items.size();
      if (options.on_progress) options.on_progress(done, total);
      return;
    }
    const std::string message = server_message(transfer->response_body);
    if (status == 401 || status == 403) throw_key_rejected(hooks.url, status, message);
    if (is_retryable_status(status)) {
      retry(std::move(job), fmt::format("HTTP {}: {}", status, message), transfer->retry_after_seconds, status == 429);
      return;
    }
    if (status == 400 || status == 413 || status == 422) {
      if (job.items.size() > 1) {  // find the culprit: split the request in halves
        const auto middle = job.items.begin() + static_cast<std::ptrdiff_t>(job.items.size() / 2);
        jobs.push_front(Job{{middle, job.items.end()}, 0, {}, {}});
        jobs.push_front(Job{{job.items.begin(), middle}, 0, {}, {}});
      } else {
        rejected.emplace_back(items[job.items.front()].first, fmt::format("HTTP {}: {}", status, message));
      }
      return;
    }
    throw InputError(fmt::format("{} answered HTTP {} ({}); check the base URL and the model name", hooks.url, status,
                                 message));
  };

  while (!jobs.empty() || !retries.empty() || transfers.size() > 0) {
    auto now = Clock::now();
    const std::size_t limit = any_success ? static_cast<std::size_t>(options.max_concurrent_requests) : 1;
    while (transfers.size() < limit && now >= paused_until) {
      auto ready = std::min_element(retries.begin(), retries.end(),
                                    [](const Job& a, const Job& b) { return a.not_before < b.not_before; });
      if (ready != retries.end() && ready->not_before <= now) {
        Job job = std::move(*ready);
        retries.erase(ready);
        start(std::move(job));
      } else if (!jobs.empty()) {
        Job job = std::move(jobs.front());
        jobs.pop_front();
        start(std::move(job));
      } else {
        break;
      }
    }
    int running = 0;
    if (curl_api().curl_multi_perform(transfers.multi(), &running) != CURLM_OK) throw IoError("libcurl multi transfer failed");
    int queued = 0;
    while (CURLMsg* message = curl_api().curl_multi_info_read(transfers.multi(), &queued)) {
      if (message->msg != CURLMSG_DONE) continue;
      const CURLcode code = message->data.result;
      finish(transfers.remove(message->easy_handle), code);
    }
    if (jobs.empty() && retries.empty() && transfers.size() == 0) break;
    // Wait for network activity, or until the next retry or the end of a pause.
    now = Clock::now();
    Clock::time_point wake = now + std::chrono::seconds(1);
    const bool can_start = transfers.size() < (any_success ? static_cast<std::size_t>(options.max_concurrent_requests) : 1);
    if (can_start) {
      if (!jobs.empty()) wake = std::min(wake, std::max(now, paused_until));
      for (const auto& job : retries) wake = std::min(wake, std::max(job.not_before, paused_until));
    }
    const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count();
    if (wait_ms > 0 && curl_api().curl_multi_poll(transfers.multi(), nullptr, 0, static_cast<int>(wait_ms), nullptr) != CURLM_OK)
      throw IoError("libcurl poll failed");
  }

  if (!rejected.empty()) {
    celltyper::detail::Examples refusals(kMaxIdsInMessage);
    for (const auto& refused : rejected) refusals.add_with([&refused] { return fmt::format("{} ({})", refused.first, refused.second); });
    const std::string text = refusals.str("; ");
    throw InputError(fmt::format("{} refused the text of {} gene(s): {}; {}", hooks.url, rejected.size(), text,
                                 options.checkpoint_path.empty()
                                     ? "the other results are discarded (a checkpoint path keeps them)"
                                     : "all other genes are done and checkpointed"));
  }
  return counts;
}

/// A result's key in a checkpoint: the item's id and a hash of what was sent for it, so that a
/// changed text (other sections, an enrichment, another prompt) is asked for again instead of
/// taking the answer to the old one.
std::string checkpoint_key(const std::string& id, std::string_view sent) { return id + "#" + ContentHasher().field(sent).hex(); }

/// A warning for answers a checkpoint keeps under a bare id (written before answers were keyed by
/// their text): not reused, since their texts cannot be checked; "" when there are none.
std::string unkeyed_answers_warning(const StoredResults& stored, const std::string& path) {
  std::size_t n = 0;
  for (const auto& [key, vector] : stored.embeddings) n += key.find('#') == std::string::npos ? 1 : 0;
  for (const auto& [key, text] : stored.texts) n += key.find('#') == std::string::npos ? 1 : 0;
  if (n == 0) return {};
  return fmt::format("{}: {} answers were written by an older celltyper without the hash of their text and are not reused (asked again)",
                     path, n);
}

}  // namespace

EmbedTextsResult embed_texts(const IdAndText& items, const EmbedTextsOptions& options) {
  const EmbeddingRequestOptions& request = options.request;
  validate_items(items);
  validate_http_options(options.http);
  resolve_api_key(options.http);  // no key for api.openai.com: fail before creating the checkpoint
  if (request.inputs_per_request == 0 || request.inputs_per_request > 2048)
    throw InputError(fmt::format("inputs per request must be 1..2048, not {}", request.inputs_per_request));
  embedding_request_body({"check"}, request);  // validates model and dimensions

  EmbedTextsResult result;
  std::unique_ptr<ResultsStore> store;
  std::map<std::string, std::vector<float>> fresh;  // results when there is no checkpoint
  std::size_t vector_length = request.dimensions > 0 ? static_cast<std::size_t>(request.dimensions) : 0;
  if (!options.http.checkpoint_path.empty()) {
    store = std::make_unique<ResultsStore>(options.http.checkpoint_path, ResultKind::kEmbedding, request.model,
                                           request.dimensions);
    result.warnings = store->results().warnings;
    if (std::string old = unkeyed_answers_warning(store->results(), options.http.checkpoint_path); !old.empty()) {
      result.warnings.push_back(std::move(old));
    }
    if (vector_length == 0 && !store->results().embeddings.empty())
      vector_length = store->results().embeddings.begin()->second.size();
  }
  std::vector<std::string> keys;  // checkpoint key of each item
  keys.reserve(items.size());
  for (const auto& [id, text] : items) keys.push_back(checkpoint_key(id, text));
  std::vector<std::size_t> todo;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (store && store->results().contains(keys[i])) {
      ++result.n_from_checkpoint;
    } else {
      todo.push_back(i);
    }
  }
  // Group texts into requests: at most inputs_per_request texts and max_characters_per_request.
  std::deque<Job> jobs;
  for (std::size_t begin = 0; begin < todo.size();) {
    std::size_t end = begin;
    std::size_t characters = 0;
    while (end < todo.size() && end - begin < request.inputs_per_request) {
      const std::size_t length = items[todo[end]].second.size();
      if (end > begin && characters + length > request.max_characters_per_request) break;
      characters += length;
      ++end;
    }
    jobs.push_back(Job{{todo.begin() + static_cast<std::ptrdiff_t>(begin), todo.begin() + static_cast<std::ptrdiff_t>(end)}, 0, {}, {}});
    begin = end;
  }

  RequestHooks hooks;
  hooks.url = join_url(options.http.base_url, "embeddings");
  hooks.what = "embedding";
  hooks.make_body = [&](const std::vector<std::size_t>& indices) {
    std::vector<std::string_view> texts;
    texts.reserve(indices.size());
    for (const std::size_t i : indices) texts.emplace_back(items[i].second);
    return embedding_request_body(texts, request);
  };
  hooks.accept = [&](const std::vector<std::size_t>& indices, const nlohmann::json& body) {
    std::vector<std::vector<float>> vectors;
    try {
      vectors = parse_embedding_response(body, indices.size(), request.dimensions);
    } catch (const InputError& error) {
      throw BadResponse(error.what());
    }
    if (vector_length == 0) vector_length = vectors.front().size();
    if (vectors.front().size() != vector_length)
      throw BadResponse(fmt::format("vectors of {} dimensions after vectors of {}", vectors.front().size(), vector_length));
    std::vector<std::pair<std::string, std::vector<float>>> results;
    results.reserve(indices.size());
    for (std::size_t k = 0; k < indices.size(); ++k) results.emplace_back(keys[indices[k]], std::move(vectors[k]));
    if (store) {
      store->append_embeddings(results);
    } else {
      for (std::size_t k = 0; k < indices.size(); ++k) fresh.insert_or_assign(items[indices[k]].first, std::move(results[k].second));
    }
  };
  const RequestCounts counts = run_requests(std::move(jobs), items, options.http, hooks, result.n_from_checkpoint, items.size());
  result.n_requests = counts.n_requests;
  result.n_retries = counts.n_retries;

  if (store) {
    StoredResults stored = store->take_results();
    for (std::size_t i = 0; i < items.size(); ++i) {
      auto found = stored.embeddings.find(keys[i]);
      if (found != stored.embeddings.end()) result.embeddings.emplace(items[i].first, std::move(found->second));
    }
  } else {
    result.embeddings = std::move(fresh);
  }
  return result;
}

CompleteTextsResult complete_texts(const IdAndText& items, const CompleteTextsOptions& options) {
  const ChatRequestOptions& request = options.request;
  validate_items(items);
  validate_http_options(options.http);
  resolve_api_key(options.http);  // no key for api.openai.com: fail before creating the checkpoint
  chat_request_body("check", request);  // validates model and temperature

  CompleteTextsResult result;
  std::unique_ptr<ResultsStore> store;
  std::map<std::string, std::string> fresh;
  if (!options.http.checkpoint_path.empty()) {
    store = std::make_unique<ResultsStore>(options.http.checkpoint_path, ResultKind::kText, request.model, 0);
    result.warnings = store->results().warnings;
    if (std::string old = unkeyed_answers_warning(store->results(), options.http.checkpoint_path); !old.empty()) {
      result.warnings.push_back(std::move(old));
    }
  }
  std::vector<std::string> keys;  // checkpoint key of each item: its id and the whole request (prompt, system message, model)
  keys.reserve(items.size());
  for (const auto& [id, prompt] : items) keys.push_back(checkpoint_key(id, chat_request_body(prompt, request).dump()));
  std::deque<Job> jobs;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (store && store->results().contains(keys[i])) {
      ++result.n_from_checkpoint;
    } else {
      jobs.push_back(Job{{i}, 0, {}, {}});
    }
  }

  RequestHooks hooks;
  hooks.url = join_url(options.http.base_url, "chat/completions");
  hooks.what = "chat completion";
  hooks.make_body = [&](const std::vector<std::size_t>& indices) {
    return chat_request_body(items[indices.front()].second, request);
  };
  hooks.accept = [&](const std::vector<std::size_t>& indices, const nlohmann::json& body) {
    std::string text;
    try {
      text = parse_chat_response(body);
    } catch (const InputError& error) {
      throw BadResponse(error.what());
    }
    const std::string& id = items[indices.front()].first;
    if (body["choices"][0].value("finish_reason", nlohmann::json()) == "length")
      result.warnings.push_back(fmt::format("the completion for {} was cut at the token limit", id));
    if (store) {
      store->append_texts({{keys[indices.front()], text}});
    } else {
      fresh.insert_or_assign(id, std::move(text));
    }
  };
  const RequestCounts counts = run_requests(std::move(jobs), items, options.http, hooks, result.n_from_checkpoint, items.size());
  result.n_requests = counts.n_requests;
  result.n_retries = counts.n_retries;

  if (store) {
    StoredResults stored = store->take_results();
    for (std::size_t i = 0; i < items.size(); ++i) {
      auto found = stored.texts.find(keys[i]);
      if (found != stored.texts.end()) result.texts.emplace(items[i].first, std::move(found->second));
    }
  } else {
    result.texts = std::move(fresh);
  }
  return result;
}

}  // namespace celltyper::openai
