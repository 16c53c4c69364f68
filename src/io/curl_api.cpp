#include "io/curl_api.hpp"

namespace celltyper {

const CurlApi& curl_api() {
  static const CurlApi api = [] {
    const std::string what = "libcurl (remote files, the OpenAI API)";
    void* library = corpus::detail::open_library({"libcurl.so.4", "libcurl-gnutls.so.4"}, what, "install libcurl4 (scripts/setup.sh does)");
    CurlApi loaded;
    CELLTYPER_CURL_FUNCTIONS(CELLTYPER_DYNAMIC_LOAD)
    return loaded;
  }();
  return api;
}

}  // namespace celltyper
