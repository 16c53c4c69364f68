/// @file remote.hpp
/// Remote h5ad files: `http://`, `https://` and `s3://bucket/key` paths are accepted wherever a
/// local `.h5ad` path is. Files are read with HTTP Range requests (libcurl) through a block
/// cache, so that reading obs metadata transfers only the bytes HDF5 asks for, not the file.
///
/// - `s3://bucket/key` maps to `https://bucket.s3.<region>.amazonaws.com/key` (virtual-hosted
///   style), or to `<endpoint>/bucket/key` (path style) when an endpoint is set with
///   `CELLTYPER_S3_ENDPOINT` / `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`. The region comes from
///   `AWS_REGION` / `AWS_DEFAULT_REGION` (default us-east-1). Requests are anonymous (public
///   buckets such as the CELLxGENE census) unless `AWS_ACCESS_KEY_ID` and
///   `AWS_SECRET_ACCESS_KEY` are set, in which case they are signed with AWS Signature V4
///   (`AWS_SESSION_TOKEN` is sent when set; `AWS_NO_SIGN_REQUEST=1` forces anonymous).
/// - Transient failures (HTTP 5xx, 429, timeouts, connection errors, truncated bodies) are retried
///   with exponential backoff; 403 / 404 fail at once with one line naming the URL and status.
///
/// Tuning from the environment (`RemoteOptions::from_environment`): `CELLTYPER_REMOTE_BLOCK_BYTES`,
/// `CELLTYPER_REMOTE_CACHE_BYTES`, `CELLTYPER_REMOTE_TIMEOUT` (seconds without progress),
/// `CELLTYPER_REMOTE_RETRIES`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace celltyper {

/// Whether `path` names a remote file (`http://`, `https://` or `s3://`).
bool is_remote_path(std::string_view path);

/// How remote files are read.
struct RemoteOptions {
  /// Bytes per cached block: every small read fetches whole aligned blocks (64 KiB). HDF5's
  /// metadata is scattered through a file, so smaller blocks fetch fewer unneeded bytes and
  /// larger ones fewer requests: obs of pbmc3k costs 16% of the file in 15 requests at 64 KiB,
  /// 46% in 11 at 256 KiB, 6% in 18 at 16 KiB (docs/catalog.md).
  std::size_t block_bytes = std::size_t{64} << 10;
  /// Bytes of blocks kept per open file (least recently used evicted first).
  std::size_t cache_bytes = std::size_t{64} << 20;
  /// Reads of at least this many blocks bypass the cache (large matrix chunks) and fetch
  /// exactly the requested range.
  std::size_t direct_read_blocks = 4;
  /// Seconds allowed to establish a connection.
  double connect_timeout_seconds = 10;
  /// A request that receives no byte for this many seconds is abandoned (and retried).
  double stall_timeout_seconds = 30;
  /// Retries of a failed request (5xx, 429, timeout, connection error, truncated body).
  int max_retries = 4;
  /// Delay before the first retry; doubles at each further retry (capped at 8 s).
  double backoff_initial_seconds = 0.25;

  /// Defaults overridden by the CELLTYPER_REMOTE_* environment variables listed above.
  /// Throws InputError for a malformed value.
  static RemoteOptions from_environment();
};

/// Transfer counters of remote reads.
struct RemoteStats {
  std::int64_t requests = 0;       ///< HTTP requests sent (retries included)
  std::int64_t retries = 0;        ///< of which retries after a transient failure
  std::int64_t bytes_fetched = 0;  ///< response body bytes received
  std::int64_t cache_hits = 0;     ///< block reads answered from the cache

  RemoteStats& operator-=(const RemoteStats& other) {
    requests -= other.requests;
    retries -= other.retries;
    bytes_fetched -= other.bytes_fetched;
    cache_hits -= other.cache_hits;
    return *this;
  }
  RemoteStats& operator+=(const RemoteStats& other) {
    requests += other.requests;
    retries += other.retries;
    bytes_fetched += other.bytes_fetched;
    cache_hits += other.cache_hits;
    return *this;
  }
};

/// Counters summed over every remote file this process has opened.
RemoteStats remote_stats_total();

/// The part of `remote_stats_total()` made by the calling thread: what a file that failed to
/// open (no RemoteFile left to ask) cost, as the difference of two calls around the attempt.
RemoteStats remote_stats_of_this_thread();

/// One remote file read by byte ranges through a block cache. Thread-safe: several threads
/// may read at once. The constructor fetches the first block (which also tells the size), so a
/// missing or forbidden file fails there.
class RemoteFile {
 public:
  /// `url`: http(s):// or s3:// (see the file comment for how s3:// is resolved and signed).
  /// Throws IoError (404, 403, timeouts, ...) or InputError (malformed URL).
  explicit RemoteFile(std::string url, RemoteOptions options = RemoteOptions::from_environment());
  ~RemoteFile();
  RemoteFile(const RemoteFile&) = delete;
  RemoteFile& operator=(const RemoteFile&) = delete;

  /// The URL as given (s3:// stays s3://).
  [[nodiscard]] const std::string& url() const;
  /// The HTTP(S) URL requested.
  [[nodiscard]] const std::string& http_url() const;
  /// File size in bytes.
  [[nodiscard]] std::uint64_t size() const;
  /// Copy bytes [offset, offset + length) into `out`. Throws IoError on a transfer failure or a
  /// read past the end of the file.
  void read(std::uint64_t offset, std::size_t length, void* out);
  /// Transfer counters of this file.
  [[nodiscard]] RemoteStats stats() const;
  [[nodiscard]] const RemoteOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace celltyper
