#include "io/s3.hpp"

#include <celltyper/error.hpp>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "io/dynamic_api.hpp"

#include <cctype>
#include <cstdlib>
#include <ctime>

namespace celltyper::detail {

namespace {

// OpenSSL's libcrypto (SHA-256 and HMAC for request signing), loaded with dlopen on the first
// signed request: linked, it was loaded and initialised at the start of every process.
#define CELLTYPER_CRYPTO_FUNCTIONS(X) X(EVP_Digest) X(EVP_sha256) X(HMAC)

struct CryptoApi {
  CELLTYPER_CRYPTO_FUNCTIONS(CELLTYPER_DYNAMIC_POINTER)
};

const CryptoApi& crypto() {
  static const CryptoApi api = CELLTYPER_LOAD_DYNAMIC_API(CryptoApi, CELLTYPER_CRYPTO_FUNCTIONS, "OpenSSL's libcrypto (S3 request signing)",
                                                          "install libssl3 (scripts/setup.sh does)", "libcrypto.so.3", "libcrypto.so");
  return api;
}

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::string to_hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

std::string hmac_sha256(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  crypto().HMAC(crypto().EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &length);
  return std::string(reinterpret_cast<const char*>(out), length);
}

std::string percent_decode(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

}  // namespace

S3Settings S3Settings::from_environment() {
  S3Settings settings;
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (const std::string value = environment(name); !value.empty()) {
      settings.region = value;
      break;
    }
  }
  for (const char* name : {"CELLTYPER_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) {
    if (const std::string value = environment(name); !value.empty()) {
      settings.endpoint = value;
      break;
    }
  }
  while (!settings.endpoint.empty() && settings.endpoint.back() == '/') settings.endpoint.pop_back();
  const std::string no_sign = environment("AWS_NO_SIGN_REQUEST");
  if (no_sign != "1" && no_sign != "true" && no_sign != "TRUE") {
    settings.credentials.access_key_id = environment("AWS_ACCESS_KEY_ID");
    settings.credentials.secret_access_key = environment("AWS_SECRET_ACCESS_KEY");
    settings.credentials.session_token = environment("AWS_SESSION_TOKEN");
  }
  return settings;
}

std::string aws_uri_encode(const std::string& text, bool keep_slash) {
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) != 0 || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(c);
    } else {
      out += fmt::format("%{:02X}", byte);
    }
  }
  return out;
}

S3Location resolve_s3_url(const std::string& s3_url, const S3Settings& settings) {
  constexpr std::string_view kScheme = "s3://";
  if (s3_url.rfind(kScheme, 0) != 0) throw InputError(fmt::format("{}: not an s3:// URL", s3_url));
  const std::string rest = s3_url.substr(kScheme.size());
  const std::size_t slash = rest.find('/');
  S3Location location;
  location.bucket = rest.substr(0, slash);
  if (location.bucket.empty() || slash == std::string::npos || slash + 1 >= rest.size()) {
    throw InputError(fmt::format("{}: expected s3://bucket/key", s3_url));
  }
  location.key = percent_decode(rest.substr(slash + 1));
  const std::string encoded_key = aws_uri_encode(location.key, /* keep_slash = */ true);
  std::string base;
  if (!settings.endpoint.empty()) {
    base = settings.endpoint;  // path style: <endpoint>/bucket/key
    location.canonical_uri = "/" + aws_uri_encode(location.bucket, false) + "/" + encoded_key;
  } else if (location.bucket.find('.') != std::string::npos) {
    base = fmt::format("https://s3.{}.amazonaws.com", settings.region);  // dotted buckets: TLS needs path style
    location.canonical_uri = "/" + location.bucket + "/" + encoded_key;
  } else {
    base = fmt::format("https://{}.s3.{}.amazonaws.com", location.bucket, settings.region);
    location.canonical_uri = "/" + encoded_key;
  }
  const std::size_t scheme_end = base.find("://");
  if (scheme_end == std::string::npos) throw InputError(fmt::format("S3 endpoint '{}' must start with http:// or https://", base));
  std::string authority = base.substr(scheme_end + 3);
  if (const std::size_t path = authority.find('/'); path != std::string::npos) {
    // An endpoint with a path prefix: the prefix is part of the signed URI.
    location.canonical_uri = authority.substr(path) + location.canonical_uri;
    authority = authority.substr(0, path);
    base = base.substr(0, scheme_end + 3) + authority;
  }
  const std::string scheme = base.substr(0, scheme_end);
  if ((scheme == "https" && authority.size() > 4 && authority.substr(authority.size() - 4) == ":443") ||
      (scheme == "http" && authority.size() > 3 && authority.substr(authority.size() - 3) == ":80")) {
    authority = authority.substr(0, authority.rfind(':'));
  }
  location.host = authority;
  location.url = base + location.canonical_uri;
  return location;
}

std::string sha256_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  crypto().EVP_Digest(data.data(), data.size(), digest, &length, crypto().EVP_sha256(), nullptr);
  return to_hex(digest, length);
}

SigV4Signature sign_sigv4(const SigV4Request& request, const AwsCredentials& credentials, const std::string& region,
                          const std::string& service, const std::string& amz_date) {
  SigV4Signature out;
  std::string canonical_headers;
  for (const auto& [name, value] : request.headers) {  // std::map: sorted by lowercase name
    canonical_headers += name + ":" + value + "\n";
    out.signed_headers += (out.signed_headers.empty() ? "" : ";") + name;
  }
  out.canonical_request = fmt::format("{}\n{}\n{}\n{}\n{}\n{}", request.method, request.canonical_uri, request.canonical_query,
                                      canonical_headers, out.signed_headers, request.payload_hash);
  const std::string date = amz_date.substr(0, 8);
  const std::string scope = fmt::format("{}/{}/{}/aws4_request", date, region, service);
  out.string_to_sign = fmt::format("AWS4-HMAC-SHA256\n{}\n{}\n{}", amz_date, scope, sha256_hex(out.canonical_request));
  const std::string date_key = hmac_sha256("AWS4" + credentials.secret_access_key, date);
  const std::string region_key = hmac_sha256(date_key, region);
  const std::string service_key = hmac_sha256(region_key, service);
  const std::string signing_key = hmac_sha256(service_key, "aws4_request");
  const std::string signature = hmac_sha256(signing_key, out.string_to_sign);
  out.signature = to_hex(reinterpret_cast<const unsigned char*>(signature.data()), signature.size());
  out.authorization = fmt::format("AWS4-HMAC-SHA256 Credential={}/{},SignedHeaders={},Signature={}", credentials.access_key_id,
                                  scope, out.signed_headers, out.signature);
  return out;
}

std::string amz_date_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y%m%dT%H%M%SZ", &utc);
  return buffer;
}

std::vector<std::string> s3_request_headers(const S3Location& location, const S3Settings& settings, const std::string& range,
                                            const std::string& amz_date) {
  if (settings.credentials.anonymous()) return {};
  SigV4Request request;
  request.canonical_uri = location.canonical_uri;
  request.payload_hash = sha256_hex("");
  request.headers["host"] = location.host;
  if (!range.empty()) request.headers["range"] = range;
  request.headers["x-amz-content-sha256"] = request.payload_hash;
  request.headers["x-amz-date"] = amz_date;
  if (!settings.credentials.session_token.empty()) request.headers["x-amz-security-token"] = settings.credentials.session_token;
  const SigV4Signature signature = sign_sigv4(request, settings.credentials, settings.region, "s3", amz_date);
  std::vector<std::string> headers{"Authorization: " + signature.authorization,
                                   "x-amz-content-sha256: " + request.payload_hash, "x-amz-date: " + amz_date};
  if (!settings.credentials.session_token.empty()) headers.push_back("x-amz-security-token: " + settings.credentials.session_token);
  return headers;
}

}  // namespace celltyper::detail
