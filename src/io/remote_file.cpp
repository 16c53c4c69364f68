// RemoteFile: byte ranges of an http(s):// or s3:// object over libcurl, through an LRU block
// cache. See celltyper/remote.hpp.
#include <celltyper/error.hpp>
#include <celltyper/remote.hpp>

#include "io/s3.hpp"
#include "io/curl_api.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace celltyper {

namespace {

std::atomic<std::int64_t> g_requests{0};
std::atomic<std::int64_t> g_retries{0};
std::atomic<std::int64_t> g_bytes{0};
std::atomic<std::int64_t> g_cache_hits{0};
thread_local RemoteStats t_stats;  // this thread's share of the counters above

void initialise_curl() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_api().curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw IoError("cannot initialise libcurl");
  });
}

std::optional<double> environment_number(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(value >= 0)) throw InputError(fmt::format("{}='{}': expected a non-negative number", name, text));
  return value;
}

/// One response: status, body and the Content-Range header.
struct Response {
  long status = 0;
  std::string body;
  std::string content_range;
  CURLcode code = CURLE_OK;
  std::string curl_error;
  std::size_t body_limit = 0;  ///< abort the transfer when the body grows past this
  bool overflow = false;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* response = static_cast<Response*>(user);
  const std::size_t n = size * count;
  if (response->body.size() + n > response->body_limit) {
    response->overflow = true;
    return 0;  // abort: the server sent more than the range asked for
  }
  response->body.append(data, n);
  return n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* response = static_cast<Response*>(user);
  const std::size_t n = size * count;
  std::string_view line(data, n);
  constexpr std::string_view kName = "content-range:";
  if (line.size() > kName.size()) {
    std::string lower(line.substr(0, kName.size()));
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == kName) {
      std::string_view value = line.substr(kName.size());
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.remove_suffix(1);
      response->content_range = std::string(value);
    }
  }
  if (line.rfind("HTTP/", 0) == 0) response->content_range.clear();  // a new response (after a redirect)
  return n;
}

/// "bytes 0-99/1234" -> {0, 99, 1234}; total -1 when "*".
struct ContentRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::int64_t total = -1;
};
std::optional<ContentRange> parse_content_range(const std::string& text) {
  ContentRange range;
  if (text.rfind("bytes ", 0) != 0) return std::nullopt;
  const char* p = text.data() + 6;
  const char* end = text.data() + text.size();
  auto r = std::from_chars(p, end, range.first);
  if (r.ec != std::errc() || r.ptr == end || *r.ptr != '-') return std::nullopt;
  r = std::from_chars(r.ptr + 1, end, range.last);
  if (r.ec != std::errc() || r.ptr == end || *r.ptr != '/') return std::nullopt;
  if (r.ptr + 1 < end && r.ptr[1] == '*') return range;
  std::uint64_t total = 0;
  r = std::from_chars(r.ptr + 1, end, total);
  if (r.ec != std::errc()) return std::nullopt;
  range.total = static_cast<std::int64_t>(total);
  return range;
}

std::string status_text(long status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

/// S3's error code from an XML error body ("<Code>NoSuchKey</Code>"), else "".
std::string s3_error_code(const std::string& body) {
  const std::size_t open = body.find("<Code>");
  const std::size_t close = body.find("</Code>");
  if (open == std::string::npos || close == std::string::npos || close < open) return "";
  return body.substr(open + 6, close - open - 6);
}

struct CurlDeleter {
  void operator()(CURL* easy) const { curl_api().curl_easy_cleanup(easy); }
};

/// One easy handle per thread, reused so that connections are kept alive between requests.
CURL* thread_easy_handle() {
  thread_local std::unique_ptr<CURL, CurlDeleter> easy;
  if (!easy) easy.reset(curl_api().curl_easy_init());
  if (!easy) throw IoError("libcurl: cannot create a transfer handle");
  curl_api().curl_easy_reset(easy.get());
  return easy.get();
}

}  // namespace

bool is_remote_path(std::string_view path) {
  return path.rfind("http://", 0) == 0 || path.rfind("https://", 0) == 0 || path.rfind("s3://", 0) == 0;
}

RemoteOptions RemoteOptions::from_environment() {
  RemoteOptions options;
  if (const auto value = environment_number("CELLTYPER_REMOTE_BLOCK_BYTES")) options.block_bytes = static_cast<std::size_t>(*value);
  if (const auto value = environment_number("CELLTYPER_REMOTE_CACHE_BYTES")) options.cache_bytes = static_cast<std::size_t>(*value);
  if (const auto value = environment_number("CELLTYPER_REMOTE_TIMEOUT")) options.stall_timeout_seconds = *value;
  if (const auto value = environment_number("CELLTYPER_REMOTE_RETRIES")) options.max_retries = static_cast<int>(*value);
  if (options.block_bytes < 512) throw InputError(fmt::format("CELLTYPER_REMOTE_BLOCK_BYTES must be >= 512, not {}", options.block_bytes));
  return options;
}

RemoteStats remote_stats_of_this_thread() { return t_stats; }

RemoteStats remote_stats_total() {
  RemoteStats stats;
  stats.requests = g_requests.load();
  stats.retries = g_retries.load();
  stats.bytes_fetched = g_bytes.load();
  stats.cache_hits = g_cache_hits.load();
  return stats;
}

struct RemoteFile::Impl {
  std::string url;
  std::string http_url;
  RemoteOptions options;
  bool s3 = false;
  detail::S3Settings s3_settings;
  detail::S3Location s3_location;
  std::uint64_t size = 0;

  mutable std::mutex mutex;  // guards the cache and the counters below
  using Block = std::shared_ptr<const std::vector<unsigned char>>;
  std::list<std::uint64_t> lru;  // most recently used first
  struct Entry {
    Block block;
    std::list<std::uint64_t>::iterator position;
  };
  std::unordered_map<std::uint64_t, Entry> cache;
  std::size_t cached_bytes = 0;
  RemoteStats stats;

  std::string describe() const { return url == http_url ? url : fmt::format("{} ({})", url, http_url); }

  /// GET bytes [first, first + length) (clamped to the file when the size is known), with
  /// retries. Returns the body; sets `size` from Content-Range on the first call.
  std::string fetch(std::uint64_t first, std::uint64_t length, bool learn_size) {
    const std::uint64_t last = first + length - 1;
    const std::string range = fmt::format("bytes={}-{}", first, last);
    std::string last_problem;
    for (int attempt = 0; attempt <= options.max_retries; ++attempt) {
      if (attempt > 0) {
        const double delay = std::min(8.0, options.backoff_initial_seconds * static_cast<double>(1u << std::min(attempt - 1, 10)));
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        ++g_retries;
        ++t_stats.retries;
        std::lock_guard lock(mutex);
        ++stats.retries;
      }
      Response response;
      response.body_limit = static_cast<std::size_t>(length);
      response.body.reserve(static_cast<std::size_t>(length));
      CURL* easy = thread_easy_handle();
      curl_slist* headers = nullptr;
      headers = curl_api().curl_slist_append(headers, ("Range: " + range).c_str());
      if (s3) {
        for (const auto& header : detail::s3_request_headers(s3_location, s3_settings, range, detail::amz_date_now())) {
          headers = curl_api().curl_slist_append(headers, header.c_str());
        }
      }
      char error_buffer[CURL_ERROR_SIZE] = {0};
      curl_api().curl_easy_setopt(easy, CURLOPT_URL, http_url.c_str());
      curl_api().curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
      curl_api().curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
      curl_api().curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 5L);
      curl_api().curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
      curl_api().curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_buffer);
      curl_api().curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout_seconds * 1000));
      curl_api().curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_api().curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, std::max(1L, static_cast<long>(options.stall_timeout_seconds + 0.5)));
      curl_api().curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
      curl_api().curl_easy_setopt(easy, CURLOPT_WRITEDATA, &response);
      curl_api().curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
      curl_api().curl_easy_setopt(easy, CURLOPT_HEADERDATA, &response);
      curl_api().curl_easy_setopt(easy, CURLOPT_USERAGENT, "celltyper/" CELLTYPER_VERSION);
      response.code = curl_api().curl_easy_perform(easy);
      curl_api().curl_slist_free_all(headers);
      curl_api().curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
      response.curl_error = error_buffer[0] != '\0' ? error_buffer : curl_api().curl_easy_strerror(response.code);
      ++g_requests;
      g_bytes += static_cast<std::int64_t>(response.body.size());
      ++t_stats.requests;
      t_stats.bytes_fetched += static_cast<std::int64_t>(response.body.size());
      {
        std::lock_guard lock(mutex);
        ++stats.requests;
        stats.bytes_fetched += static_cast<std::int64_t>(response.body.size());
      }

      if (response.overflow) {
        throw IoError(fmt::format("{}: the server sent more than the {} bytes of range {} (Range requests not honoured?)",
                                  describe(), length, range));
      }
      if (response.code != CURLE_OK && response.code != CURLE_PARTIAL_FILE) {
        // Connection refused, resolve failure, timeout, reset: transient unless it is a bad URL.
        if (response.code == CURLE_UNSUPPORTED_PROTOCOL || response.code == CURLE_URL_MALFORMAT) {
          throw InputError(fmt::format("{}: {}", describe(), response.curl_error));
        }
        last_problem = response.code == CURLE_OPERATION_TIMEDOUT
                           ? fmt::format("timed out ({}; no data for {} s)", response.curl_error, options.stall_timeout_seconds)
                           : response.curl_error;
        continue;
      }
      const long status = response.status;
      if (status == 403 || status == 401 || status == 404 || status == 410 || status == 400) {
        const std::string code = s3_error_code(response.body);
        std::string hint;
        if (s3 && status == 403) {
          hint = s3_settings.credentials.anonymous() ? " (anonymous request: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for a private bucket)"
                                                     : " (check the credentials, AWS_REGION and the bucket policy)";
        }
        std::string message = fmt::format("{}: HTTP {} {}{}{}", describe(), status, status_text(status),
                                          code.empty() ? "" : fmt::format(" ({})", code), hint);
        if (status == 404 || status == 410) throw InputError(std::move(message));  // a missing file, as a local one (exit 2)
        throw IoError(std::move(message));
      }
      if (status == 416) {
        throw IoError(fmt::format("{}: HTTP 416 Range Not Satisfiable for {} (file shorter than expected?)", describe(), range));
      }
      if (status == 429 || status == 408 || status >= 500) {
        last_problem = fmt::format("HTTP {} {}", status, status_text(status));
        continue;
      }
      if (status != 206 && status != 200) {
        throw IoError(fmt::format("{}: unexpected HTTP {} for range {}", describe(), status, range));
      }
      std::uint64_t expected = length;
      if (status == 206) {
        const auto content_range = parse_content_range(response.content_range);
        if (!content_range || content_range->first != first) {
          throw IoError(fmt::format("{}: HTTP 206 with Content-Range '{}' for {}", describe(), response.content_range, range));
        }
        if (learn_size) {
          if (content_range->total < 0) throw IoError(fmt::format("{}: the server does not tell the file size (Content-Range '{}')", describe(), response.content_range));
          size = static_cast<std::uint64_t>(content_range->total);
        }
        expected = content_range->last - content_range->first + 1;
      } else {  // 200: the whole file, accepted only when it is no longer than the range asked for
        if (first != 0) throw IoError(fmt::format("{}: the server ignored the Range header (HTTP 200 for {})", describe(), range));
        if (learn_size) size = response.body.size();
        expected = response.code == CURLE_PARTIAL_FILE ? length : response.body.size();
      }
      if (response.code == CURLE_PARTIAL_FILE || response.body.size() != expected) {
        last_problem = fmt::format("truncated response: {} of {} bytes of range {}", response.body.size(), expected, range);
        continue;
      }
      return std::move(response.body);
    }
    throw IoError(fmt::format("{}: {} (after {} attempts)", describe(), last_problem, options.max_retries + 1));
  }

  void insert(std::uint64_t index, Block block) {  // mutex held
    if (cache.count(index) != 0 || options.cache_bytes < block->size()) return;
    while (cached_bytes + block->size() > options.cache_bytes && !lru.empty()) {
      const auto victim = cache.find(lru.back());
      cached_bytes -= victim->second.block->size();
      cache.erase(victim);
      lru.pop_back();
    }
    lru.push_front(index);
    cached_bytes += block->size();
    cache.emplace(index, Entry{std::move(block), lru.begin()});
  }

  Block lookup(std::uint64_t index) {  // mutex held
    const auto it = cache.find(index);
    if (it == cache.end()) return nullptr;
    lru.splice(lru.begin(), lru, it->second.position);
    ++stats.cache_hits;
    ++g_cache_hits;
    ++t_stats.cache_hits;
    return it->second.block;
  }
};

RemoteFile::RemoteFile(std::string url, RemoteOptions options) : impl_(std::make_unique<Impl>()) {
  initialise_curl();
  if (options.block_bytes < 512) throw InputError(fmt::format("remote block size must be >= 512 bytes, not {}", options.block_bytes));
  impl_->url = std::move(url);
  impl_->options = options;
  if (impl_->url.rfind("s3://", 0) == 0) {
    impl_->s3 = true;
    impl_->s3_settings = detail::S3Settings::from_environment();
    impl_->s3_location = detail::resolve_s3_url(impl_->url, impl_->s3_settings);
    impl_->http_url = impl_->s3_location.url;
  } else if (is_remote_path(impl_->url)) {
    impl_->http_url = impl_->url;
  } else {
    throw InputError(fmt::format("{}: not a remote URL (expected http://, https:// or s3://)", impl_->url));
  }
  // The first block also tells the size (Content-Range: bytes 0-N/size).
  std::string first = impl_->fetch(0, options.block_bytes, /* learn_size = */ true);
  std::lock_guard lock(impl_->mutex);
  if (!first.empty()) impl_->insert(0, std::make_shared<const std::vector<unsigned char>>(first.begin(), first.end()));
}

RemoteFile::~RemoteFile() = default;

const std::string& RemoteFile::url() const { return impl_->url; }
const std::string& RemoteFile::http_url() const { return impl_->http_url; }
std::uint64_t RemoteFile::size() const { return impl_->size; }
const RemoteOptions& RemoteFile::options() const { return impl_->options; }

RemoteStats RemoteFile::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

void RemoteFile::read(std::uint64_t offset, std::size_t length, void* out) {
  if (length == 0) return;
  auto& impl = *impl_;
  if (offset > impl.size || length > impl.size - offset) {
    throw IoError(fmt::format("{}: read of bytes {}..{} past the end of the file ({} bytes)", impl.describe(), offset,
                              offset + length, impl.size));
  }
  auto* target = static_cast<unsigned char*>(out);
  const std::uint64_t block_bytes = impl.options.block_bytes;
  const std::uint64_t first_block = offset / block_bytes;
  const std::uint64_t last_block = (offset + length - 1) / block_bytes;
  // Large reads (matrix chunks) fetch exactly the range, leaving the cache to metadata.
  if (last_block - first_block + 1 >= impl.options.direct_read_blocks) {
    const std::string body = impl.fetch(offset, length, false);
    if (body.size() != length) {
      throw IoError(fmt::format("{}: got {} bytes for range {}-{} (file changed while reading?)", impl.describe(), body.size(), offset,
                                offset + length - 1));
    }
    std::memcpy(target, body.data(), length);
    return;
  }
  std::vector<Impl::Block> blocks(static_cast<std::size_t>(last_block - first_block + 1));
  {
    std::lock_guard lock(impl.mutex);
    for (std::uint64_t b = first_block; b <= last_block; ++b) blocks[b - first_block] = impl.lookup(b);
  }
  // Fetch each run of missing blocks with one request.
  for (std::uint64_t b = first_block; b <= last_block;) {
    if (blocks[b - first_block]) {
      ++b;
      continue;
    }
    std::uint64_t end = b;
    while (end + 1 <= last_block && !blocks[end + 1 - first_block]) ++end;
    const std::uint64_t run_first = b * block_bytes;
    const std::uint64_t run_end = std::min(impl.size, (end + 1) * block_bytes);
    const std::string body = impl.fetch(run_first, run_end - run_first, false);
    if (body.size() != run_end - run_first) {
      throw IoError(fmt::format("{}: got {} bytes for range {}-{} (file changed while reading?)", impl.describe(), body.size(), run_first,
                                run_end - 1));
    }
    std::lock_guard lock(impl.mutex);
    for (std::uint64_t k = b; k <= end; ++k) {
      const std::uint64_t from = (k - b) * block_bytes;
      const std::uint64_t n = std::min<std::uint64_t>(block_bytes, body.size() - from);
      auto block = std::make_shared<const std::vector<unsigned char>>(body.begin() + static_cast<std::ptrdiff_t>(from),
                                                                     body.begin() + static_cast<std::ptrdiff_t>(from + n));
      blocks[k - first_block] = block;
      impl.insert(k, std::move(block));
    }
    b = end + 1;
  }
  for (std::uint64_t b = first_block; b <= last_block; ++b) {
    const auto& block = *blocks[b - first_block];
    const std::uint64_t block_start = b * block_bytes;
    const std::uint64_t from = std::max(offset, block_start);
    const std::uint64_t to = std::min<std::uint64_t>(offset + length, block_start + block.size());
    if (to < from || to - block_start > block.size()) {
      throw IoError(fmt::format("{}: block {} is shorter than expected (file changed while reading?)", impl.describe(), b));
    }
    std::memcpy(target + (from - offset), block.data() + (from - block_start), to - from);
  }
}

}  // namespace celltyper
