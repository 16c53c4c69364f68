// Remote reads (http:// and s3:// through nginx on loopback): byte ranges and whole h5ad files
// equal local reads exactly, obs-only access transfers a small part of the file, and 404 / 403 /
// stalls / truncated bodies / 5xx give one clear error. SigV4 is checked against AWS's
// documented "GET Object" example.
#include <celltyper/error.hpp>
#include <celltyper/h5ad.hpp>
#include <celltyper/remote.hpp>

#include "io/s3.hpp"
#include "support/http_servers.hpp"
#include "support/test_support.hpp"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace celltyper {
namespace {

using test::NginxServer;
using test::ScriptedServer;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Sets environment variables for the scope of a test, restoring them afterwards.
class ScopedEnvironment {
 public:
  void set(const char* name, const std::string& value) {
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(name, value.c_str(), 1);
  }
  void unset(const char* name) {
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    ::unsetenv(name);
  }
  ~ScopedEnvironment() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

/// nginx serving ../shared/data under /data/ and tests/data/h5ad under /fixtures/.
std::unique_ptr<NginxServer> start_nginx() {
  std::map<std::string, std::string> roots{{"fixtures", test::fixture("h5ad")}};
  const std::string shared = test::shared_data("");
  if (!shared.empty()) roots["data"] = shared;
  auto server = std::make_unique<NginxServer>(roots);
  if (!server->running()) return nullptr;
  return server;
}

#define CELLTYPER_REQUIRE_NGINX(server)                                        \
  const auto server = start_nginx();                                           \
  if (!server) GTEST_SKIP() << "nginx is not installed or did not start (apt-get install nginx)"

RemoteOptions quick_options(std::size_t block_bytes = 4096) {
  RemoteOptions options;
  options.block_bytes = block_bytes;
  options.cache_bytes = std::size_t{8} << 20;
  options.max_retries = 2;
  options.backoff_initial_seconds = 0.01;
  options.stall_timeout_seconds = 1;
  options.connect_timeout_seconds = 2;
  return options;
}

template <typename Value>
void expect_blocks_equal(const CsrRows<Value>& a, const CsrRows<Value>& b) {
  ASSERT_EQ(a.n_rows, b.n_rows);
  ASSERT_EQ(a.indptr.size(), b.indptr.size());
  EXPECT_TRUE(std::equal(a.indptr.begin(), a.indptr.end(), b.indptr.begin()));
  ASSERT_EQ(a.indices.size(), b.indices.size());
  EXPECT_TRUE(std::equal(a.indices.begin(), a.indices.end(), b.indices.begin()));
  ASSERT_EQ(a.values.size(), b.values.size());
  if (!a.values.empty()) EXPECT_EQ(std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(Value)), 0);  // bit-exact
}

void expect_frames_equal(const DataFrame& a, const DataFrame& b) {
  EXPECT_EQ(a.index_name, b.index_name);
  EXPECT_EQ(a.index, b.index);
  ASSERT_EQ(a.columns.size(), b.columns.size());
  for (std::size_t c = 0; c < a.columns.size(); ++c) {
    const Column& x = a.columns[c];
    const Column& y = b.columns[c];
    SCOPED_TRACE(x.name);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.dtype, y.dtype);
    EXPECT_EQ(x.strings, y.strings);
    EXPECT_EQ(x.codes, y.codes);
    EXPECT_EQ(x.categories, y.categories);
    EXPECT_EQ(x.integers, y.integers);
    EXPECT_EQ(x.booleans, y.booleans);
    EXPECT_EQ(x.mask, y.mask);
    ASSERT_EQ(x.numbers.size(), y.numbers.size());
    if (!x.numbers.empty()) EXPECT_EQ(std::memcmp(x.numbers.data(), y.numbers.data(), x.numbers.size() * sizeof(double)), 0);
  }
}

/// Everything a reader can read from `local` equals what it reads from `url`.
void expect_remote_equals_local(const std::string& local_path, const std::string& url, const RemoteOptions& options) {
  H5adOpenOptions local_options;
  H5adOpenOptions remote_options;
  remote_options.remote = options;
  const H5adFile local(local_path, local_options);
  const H5adFile remote(url, remote_options);
  EXPECT_EQ(remote.n_obs(), local.n_obs());
  EXPECT_EQ(remote.n_vars(), local.n_vars());
  EXPECT_EQ(remote.file_bytes(), local.file_bytes());
  expect_frames_equal(remote.read_obs(), local.read_obs());
  expect_frames_equal(remote.read_var(), local.read_var());
  EXPECT_EQ(remote.matrix_sources(), local.matrix_sources());
  for (const auto& key : local.keys("obsm")) {
    const DenseMatrix a = local.read_obsm(key);
    const DenseMatrix b = remote.read_obsm(key);
    EXPECT_EQ(a.values, b.values) << key;
  }
  for (const auto& source : local.matrix_sources()) {
    SCOPED_TRACE(source);
    const auto a = local.open_matrix(source);
    const auto b = remote.open_matrix(source);
    const std::int64_t n = a->info().n_rows;
    for (const std::int64_t step : {n, std::max<std::int64_t>(1, n / 7)}) {
      for (std::int64_t first = 0; first < n; first += step) {
        const std::int64_t count = std::min(step, n - first);
        CsrBlockF64 x;
        CsrBlockF64 y;
        a->read_rows(first, count, x);
        b->read_rows(first, count, y);
        expect_blocks_equal(x, y);
        CsrBlock x32;
        CsrBlock y32;
        a->read_rows(first, count, x32);
        b->read_rows(first, count, y32);
        expect_blocks_equal(x32, y32);
      }
    }
  }
  EXPECT_GT(remote.remote_stats().requests, 0);
  EXPECT_EQ(local.remote_stats().requests, 0);
}

// ---- AWS Signature V4 and s3:// mapping ---------------------------------------------------

TEST(S3Signing, MatchesAwsGetObjectExample) {
  // AWS S3 API reference, "Signature Calculations for the Authorization Header: Transferring
  // Payload in a Single Chunk (AWS Signature Version 4)", example "GET Object".
  detail::AwsCredentials credentials{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  detail::SigV4Request request;
  request.canonical_uri = "/test.txt";
  request.payload_hash = detail::sha256_hex("");
  request.headers = {{"host", "examplebucket.s3.amazonaws.com"},
                     {"range", "bytes=0-9"},
                     {"x-amz-content-sha256", request.payload_hash},
                     {"x-amz-date", "20130524T000000Z"}};
  EXPECT_EQ(request.payload_hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const auto signature = detail::sign_sigv4(request, credentials, "us-east-1", "s3", "20130524T000000Z");
  EXPECT_EQ(signature.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signature.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(signature.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(signature.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(S3Signing, RequestHeadersSignTheSameExample) {
  detail::S3Settings settings;
  settings.credentials = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  detail::S3Location location;
  location.host = "examplebucket.s3.amazonaws.com";
  location.canonical_uri = "/test.txt";
  const auto headers = detail::s3_request_headers(location, settings, "bytes=0-9", "20130524T000000Z");
  ASSERT_FALSE(headers.empty());
  EXPECT_NE(headers[0].find("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"), std::string::npos);
  settings.credentials = {};
  EXPECT_TRUE(detail::s3_request_headers(location, settings, "bytes=0-9", "20130524T000000Z").empty());  // anonymous
  settings.credentials = {"AKID", "SECRET", "TOKEN"};
  const auto with_token = detail::s3_request_headers(location, settings, "bytes=0-9", "20130524T000000Z");
  EXPECT_NE(with_token[0].find("x-amz-security-token"), std::string::npos);  // signed
  EXPECT_EQ(with_token.back(), "x-amz-security-token: TOKEN");
}

TEST(S3Url, MapsToVirtualHostedAndPathStyle) {
  detail::S3Settings settings;
  settings.region = "us-west-2";
  auto location = detail::resolve_s3_url("s3://cellxgene-census-public-us-west-2/cell-census/2023-12-15/h5ads/a b+c.h5ad", settings);
  EXPECT_EQ(location.bucket, "cellxgene-census-public-us-west-2");
  EXPECT_EQ(location.key, "cell-census/2023-12-15/h5ads/a b+c.h5ad");
  EXPECT_EQ(location.host, "cellxgene-census-public-us-west-2.s3.us-west-2.amazonaws.com");
  EXPECT_EQ(location.canonical_uri, "/cell-census/2023-12-15/h5ads/a%20b%2Bc.h5ad");
  EXPECT_EQ(location.url, "https://cellxgene-census-public-us-west-2.s3.us-west-2.amazonaws.com/cell-census/2023-12-15/h5ads/a%20b%2Bc.h5ad");

  location = detail::resolve_s3_url("s3://my.dotted.bucket/x.h5ad", settings);
  EXPECT_EQ(location.url, "https://s3.us-west-2.amazonaws.com/my.dotted.bucket/x.h5ad");
  EXPECT_EQ(location.host, "s3.us-west-2.amazonaws.com");

  settings.endpoint = "http://127.0.0.1:9000";
  location = detail::resolve_s3_url("s3://bucket/dir/file.h5ad", settings);
  EXPECT_EQ(location.url, "http://127.0.0.1:9000/bucket/dir/file.h5ad");
  EXPECT_EQ(location.host, "127.0.0.1:9000");
  EXPECT_EQ(location.canonical_uri, "/bucket/dir/file.h5ad");

  settings.endpoint = "https://storage.example.org:443/prefix";
  location = detail::resolve_s3_url("s3://bucket/file.h5ad", settings);
  EXPECT_EQ(location.url, "https://storage.example.org:443/prefix/bucket/file.h5ad");
  EXPECT_EQ(location.host, "storage.example.org");
  EXPECT_EQ(location.canonical_uri, "/prefix/bucket/file.h5ad");

  EXPECT_THROW((void)detail::resolve_s3_url("s3://bucket-only", settings), InputError);
  EXPECT_THROW((void)detail::resolve_s3_url("s3:///key", settings), InputError);
  EXPECT_EQ(detail::aws_uri_encode("a/b c~._-*", true), "a/b%20c~._-%2A");
  EXPECT_EQ(detail::aws_uri_encode("a/b", false), "a%2Fb");
}

TEST(S3Url, EnvironmentChoosesRegionEndpointAndCredentials) {
  ScopedEnvironment environment;
  environment.set("AWS_REGION", "eu-central-1");
  environment.set("CELLTYPER_S3_ENDPOINT", "http://localhost:1234/");
  environment.set("AWS_ACCESS_KEY_ID", "AKID");
  environment.set("AWS_SECRET_ACCESS_KEY", "SECRET");
  environment.unset("AWS_NO_SIGN_REQUEST");
  auto settings = detail::S3Settings::from_environment();
  EXPECT_EQ(settings.region, "eu-central-1");
  EXPECT_EQ(settings.endpoint, "http://localhost:1234");
  EXPECT_FALSE(settings.credentials.anonymous());
  environment.set("AWS_NO_SIGN_REQUEST", "1");
  EXPECT_TRUE(detail::S3Settings::from_environment().credentials.anonymous());
}

TEST(RemotePath, Recognised) {
  EXPECT_TRUE(is_remote_path("http://x/y.h5ad"));
  EXPECT_TRUE(is_remote_path("https://x/y.h5ad"));
  EXPECT_TRUE(is_remote_path("s3://b/k.h5ad"));
  EXPECT_FALSE(is_remote_path("/data/http://x"));
  EXPECT_FALSE(is_remote_path("file.h5ad"));
}

// ---- byte ranges over nginx ----------------------------------------------------------------

TEST(RemoteFile, RangesEqualTheLocalBytes) {
  CELLTYPER_REQUIRE_NGINX(server);
  const std::string local = test::fixture("h5ad/csr_float32_gzip.h5ad");
  const std::string bytes = read_bytes(local);
  RemoteFile remote(server->url("fixtures", "csr_float32_gzip.h5ad"), quick_options(1024));
  ASSERT_EQ(remote.size(), bytes.size());
  std::mt19937_64 random(7);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t offset = random() % bytes.size();
    const std::size_t length = 1 + random() % std::min<std::size_t>(bytes.size() - offset, trial % 3 == 0 ? 9000 : 1500);
    std::string out(length, '\0');
    remote.read(offset, length, out.data());
    ASSERT_EQ(out, bytes.substr(offset, length)) << "offset " << offset << " length " << length;
  }
  std::string whole(bytes.size(), '\0');
  remote.read(0, bytes.size(), whole.data());
  EXPECT_EQ(whole, bytes);
  const RemoteStats stats = remote.stats();
  EXPECT_GT(stats.cache_hits, 0);
  EXPECT_GT(stats.requests, 1);
  EXPECT_EQ(stats.retries, 0);
  char byte = 0;
  EXPECT_THROW(remote.read(bytes.size(), 1, &byte), IoError);  // past the end
}

TEST(RemoteFile, CacheLimitIsRespectedAndResultsStayExact) {
  CELLTYPER_REQUIRE_NGINX(server);
  const std::string bytes = read_bytes(test::fixture("h5ad/full.h5ad"));
  RemoteOptions options = quick_options(1024);
  options.cache_bytes = 2048;  // two blocks
  RemoteFile remote(server->url("fixtures", "full.h5ad"), options);
  for (std::size_t offset = 0; offset + 700 < bytes.size(); offset += 613) {
    std::string out(700, '\0');
    remote.read(offset, 700, out.data());
    ASSERT_EQ(out, bytes.substr(offset, 700));
  }
}

// ---- whole h5ad files -------------------------------------------------------------------------

TEST(RemoteH5ad, FixturesReadExactlyAsLocal) {
  CELLTYPER_REQUIRE_NGINX(server);
  for (const char* name : {"csr_float32_gzip.h5ad", "csc_int32_gzip.h5ad", "dense_float64_gzip.h5ad", "full.h5ad", "legacy_v07.h5ad",
                           "csr_float32_idx64.h5ad"}) {
    SCOPED_TRACE(name);
    expect_remote_equals_local(test::fixture(std::string("h5ad/") + name), server->url("fixtures", name), quick_options(2048));
  }
}

TEST(RemoteH5ad, Pbmc3kReadsExactlyAsLocal) {
  CELLTYPER_REQUIRE_SHARED(local, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_NGINX(server);
  expect_remote_equals_local(local, server->url("data", "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad"), RemoteOptions{});
}

TEST(RemoteH5ad, SecondSharedFileReadsExactlyAsLocal) {
  CELLTYPER_REQUIRE_SHARED(local, "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad");
  CELLTYPER_REQUIRE_NGINX(server);
  expect_remote_equals_local(local, server->url("data", "pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad"), RemoteOptions{});
}

TEST(RemoteH5ad, ObsOnlyTransfersUnderAQuarterOfPbmc3k) {
  CELLTYPER_REQUIRE_SHARED(local, "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad");
  CELLTYPER_REQUIRE_NGINX(server);
  const H5adFile file(server->url("data", "pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad"));
  const DataFrame obs = file.read_obs_columns({"celltype"});
  const Column& labels = obs.at("celltype", "obs");
  std::int64_t naive = 0;
  for (std::size_t row = 0; row < labels.size(); ++row) naive += labels.value_as_string(row) == "Naive CD4 T" ? 1 : 0;
  EXPECT_EQ(naive, 697);
  const RemoteStats stats = file.remote_stats();
  const double fraction = static_cast<double>(stats.bytes_fetched) / static_cast<double>(file.file_bytes());
  EXPECT_LT(fraction, 0.25) << stats.bytes_fetched << " of " << file.file_bytes() << " bytes in " << stats.requests << " requests";
  RecordProperty("obs_only_fraction", std::to_string(fraction));
}

TEST(RemoteH5ad, S3UrlThroughEndpointOverrideAnonymousAndSigned) {
  CELLTYPER_REQUIRE_NGINX(server);
  ScopedEnvironment environment;
  environment.set("CELLTYPER_S3_ENDPOINT", server->base_url());
  environment.unset("AWS_ENDPOINT_URL_S3");
  environment.unset("AWS_ACCESS_KEY_ID");
  environment.unset("AWS_SECRET_ACCESS_KEY");
  environment.unset("AWS_SESSION_TOKEN");
  environment.unset("AWS_NO_SIGN_REQUEST");
  // s3://fixtures/full.h5ad -> <endpoint>/fixtures/full.h5ad (path style), served by nginx.
  expect_remote_equals_local(test::fixture("h5ad/full.h5ad"), "s3://fixtures/full.h5ad", quick_options(2048));
  EXPECT_EQ(server->access_log().find("auth=\"AWS4-HMAC-SHA256"), std::string::npos);  // anonymous
  environment.set("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
  environment.set("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  environment.set("AWS_REGION", "us-east-1");
  const H5adFile file("s3://fixtures/full.h5ad");
  EXPECT_GT(file.n_obs(), 0);
  EXPECT_NE(server->access_log().find("auth=\"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), std::string::npos);
}

// ---- failures: one clear line naming the URL and the problem ---------------------------------

TEST(RemoteErrors, NotFoundNamesUrlAndStatus) {
  CELLTYPER_REQUIRE_NGINX(server);
  const std::string url = server->url("fixtures", "no_such_file.h5ad");
  try {
    const H5adFile file(url, H5adOpenOptions{.remote = quick_options()});
    FAIL() << "opened a missing file";
  } catch (const InputError& error) {  // a missing file (exit 2), as a local one
    const std::string message = error.what();
    EXPECT_NE(message.find(url), std::string::npos) << message;
    EXPECT_NE(message.find("HTTP 404 Not Found"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos);
  }
}

TEST(RemoteErrors, ForbiddenByDenyAndByReturn) {
  CELLTYPER_REQUIRE_NGINX(server);
  for (const char* prefix : {"forbidden-deny", "forbidden-return"}) {
    const std::string url = server->url(prefix, "x.h5ad");
    try {
      RemoteFile file(url, quick_options());
      FAIL() << "opened " << url;
    } catch (const IoError& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find(url), std::string::npos) << message;
      EXPECT_NE(message.find("HTTP 403 Forbidden"), std::string::npos) << message;
    }
  }
  // 403 is not retried. nginx may write a request's log line after answering it: wait for both.
  std::string log = server->access_log();
  for (int attempt = 0; attempt < 20 && std::count(log.begin(), log.end(), '\n') < 2; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    log = server->access_log();
  }
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 2) << log;
}

TEST(RemoteErrors, NotAnHdf5File) {
  CELLTYPER_REQUIRE_NGINX(server);
  try {
    const H5adFile file(server->url("fixtures", "bad_not_hdf5.h5ad"), H5adOpenOptions{.remote = quick_options()});
    FAIL();
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("not an HDF5 file"), std::string::npos) << error.what();
  }
}

TEST(RemoteErrors, StalledServerTimesOut) {
  ScriptedServer server([](const std::string&, int) -> std::optional<std::string> { return std::nullopt; });
  RemoteOptions options = quick_options();
  options.max_retries = 1;
  const auto start = std::chrono::steady_clock::now();
  try {
    RemoteFile file(server.url("/slow.h5ad"), options);
    FAIL();
  } catch (const IoError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(server.url("/slow.h5ad")), std::string::npos) << message;
    EXPECT_NE(message.find("timed out"), std::string::npos) << message;
    EXPECT_NE(message.find("after 2 attempts"), std::string::npos) << message;
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
}

TEST(RemoteErrors, TruncatedResponseIsRetriedThenReported) {
  const std::string content(10000, 'x');
  ScriptedServer server([&](const std::string& request, int) -> std::optional<std::string> {
    std::string full = ScriptedServer::partial_content(request, content);
    return full.substr(0, full.size() - 100);  // Content-Length promises 100 bytes more than sent
  });
  RemoteOptions options = quick_options();
  try {
    RemoteFile file(server.url("/short.h5ad"), options);
    FAIL();
  } catch (const IoError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("truncated response"), std::string::npos) << message;
    EXPECT_NE(message.find(server.url("/short.h5ad")), std::string::npos) << message;
  }
  EXPECT_EQ(server.requests(), options.max_retries + 1);
}

TEST(RemoteErrors, ServerErrorsAreRetriedWithBackoff) {
  const std::string content = read_bytes(test::fixture("h5ad/full.h5ad"));
  ScriptedServer server([&](const std::string& request, int number) -> std::optional<std::string> {
    if (number % 3 == 0) return std::string("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return ScriptedServer::partial_content(request, content);
  });
  RemoteFile file(server.url("/flaky.h5ad"), quick_options(1024));
  std::string out(content.size(), '\0');
  file.read(0, content.size(), out.data());
  EXPECT_EQ(out, content);
  EXPECT_GT(file.stats().retries, 0);

  ScriptedServer down([](const std::string&, int) -> std::optional<std::string> {
    return std::string("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  });
  try {
    RemoteFile broken(down.url("/down.h5ad"), quick_options());
    FAIL();
  } catch (const IoError& error) {
    EXPECT_NE(std::string(error.what()).find("HTTP 500 Internal Server Error (after 3 attempts)"), std::string::npos) << error.what();
  }
}

TEST(RemoteErrors, ConnectionRefused) {
  const int port = test::free_port();
  try {
    RemoteFile file("http://127.0.0.1:" + std::to_string(port) + "/x.h5ad", quick_options());
    FAIL();
  } catch (const IoError& error) {
    EXPECT_NE(std::string(error.what()).find("after 3 attempts"), std::string::npos) << error.what();
  }
}

TEST(RemoteOptionsTest, EnvironmentOverrides) {
  ScopedEnvironment environment;
  environment.set("CELLTYPER_REMOTE_BLOCK_BYTES", "65536");
  environment.set("CELLTYPER_REMOTE_CACHE_BYTES", "1048576");
  environment.set("CELLTYPER_REMOTE_TIMEOUT", "3");
  environment.set("CELLTYPER_REMOTE_RETRIES", "7");
  const RemoteOptions options = RemoteOptions::from_environment();
  EXPECT_EQ(options.block_bytes, 65536u);
  EXPECT_EQ(options.cache_bytes, 1048576u);
  EXPECT_EQ(options.stall_timeout_seconds, 3.0);
  EXPECT_EQ(options.max_retries, 7);
  environment.set("CELLTYPER_REMOTE_BLOCK_BYTES", "lots");
  EXPECT_THROW((void)RemoteOptions::from_environment(), InputError);
}

}  // namespace
}  // namespace celltyper
