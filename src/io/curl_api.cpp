#include "io/curl_api.hpp"

namespace celltyper {

const CurlApi& curl_api() {
  static const CurlApi api = CELLTYPER_LOAD_DYNAMIC_API(CurlApi, CELLTYPER_CURL_FUNCTIONS, "libcurl (remote files, the OpenAI API)",
                                                        "install libcurl4 (scripts/setup.sh does)", "libcurl.so.4", "libcurl-gnutls.so.4");
  return api;
}

}  // namespace celltyper
