/// Internal: s3:// URL mapping and AWS Signature Version 4 request signing for remote reads
/// (see celltyper/remote.hpp). Method: "Signing AWS API requests" (SigV4), AWS General
/// Reference; the unit tests check the documented S3 "GET Object" example.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace celltyper::detail {

/// AWS credentials (empty access key = anonymous).
struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  ///< optional (temporary credentials)
  [[nodiscard]] bool anonymous() const { return access_key_id.empty() || secret_access_key.empty(); }
};

/// Where s3:// requests go and how they are signed, from the environment.
struct S3Settings {
  std::string region = "us-east-1";
  std::string endpoint;  ///< "" = AWS virtual-hosted style; else path style under this base URL
  AwsCredentials credentials;
  /// AWS_REGION / AWS_DEFAULT_REGION, CELLTYPER_S3_ENDPOINT / AWS_ENDPOINT_URL_S3 /
  /// AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
  /// (AWS_NO_SIGN_REQUEST=1 or true: anonymous even with credentials).
  static S3Settings from_environment();
};

/// An s3:// URL resolved to HTTP.
struct S3Location {
  std::string bucket;
  std::string key;            ///< decoded object key
  std::string url;            ///< https://... or <endpoint>/bucket/key
  std::string host;           ///< Host header value (with :port when not default)
  std::string canonical_uri;  ///< URI-encoded absolute path, as signed
};

/// Map `s3://bucket/key` with `settings`. Throws InputError for a malformed URL.
S3Location resolve_s3_url(const std::string& s3_url, const S3Settings& settings);

/// SigV4 URI encoding: every byte except A-Z a-z 0-9 - . _ ~ as %XX (uppercase); '/' kept
/// when `keep_slash`.
std::string aws_uri_encode(const std::string& text, bool keep_slash);

/// Lowercase hex SHA-256 of `data`.
std::string sha256_hex(const std::string& data);

/// One request to sign.
struct SigV4Request {
  std::string method = "GET";
  std::string canonical_uri = "/";    ///< already URI-encoded
  std::string canonical_query;        ///< already canonical (sorted, encoded); "" when none
  std::map<std::string, std::string> headers;  ///< lowercase name -> trimmed value; must include host
  std::string payload_hash;           ///< hex SHA-256 of the body (or "UNSIGNED-PAYLOAD")
};

/// The signature and its intermediate strings (for tests and debugging).
struct SigV4Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;      ///< lowercase hex
  std::string authorization;  ///< value of the Authorization header
  std::string signed_headers; ///< "host;range;x-amz-content-sha256;x-amz-date"
};

/// Sign `request` for `service` in `region` at `amz_date` ("YYYYMMDDTHHMMSSZ", UTC).
SigV4Signature sign_sigv4(const SigV4Request& request, const AwsCredentials& credentials, const std::string& region,
                          const std::string& service, const std::string& amz_date);

/// The current UTC time as "YYYYMMDDTHHMMSSZ".
std::string amz_date_now();

/// Headers ("Name: value") for a signed S3 GET of `location` with an optional Range header value
/// ("bytes=0-9"), or none when the credentials are anonymous.
std::vector<std::string> s3_request_headers(const S3Location& location, const S3Settings& settings,
                                            const std::string& range, const std::string& amz_date);

}  // namespace celltyper::detail
