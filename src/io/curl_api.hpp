/// Internal: libcurl's C API, loaded with dlopen on first use (remote reads, the OpenAI client).
/// Linked, libcurl brought ~30 libraries (TLS, Kerberos, LDAP, RTMP, ...) whose loading and
/// initialisers cost every celltyper process ~40 ms, though few commands touch the network.
/// Include this header instead of <curl/curl.h> and call `curl_api().curl_easy_setopt(...)`.
#pragma once

// No GCC type-checking macros: they would rewrite `curl_api().curl_easy_setopt(...)`.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "io/dynamic_api.hpp"

namespace celltyper {

#define CELLTYPER_CURL_FUNCTIONS(X)                                                                                   \
  X(curl_global_init) X(curl_easy_init) X(curl_easy_cleanup) X(curl_easy_reset) X(curl_easy_setopt)                  \
  X(curl_easy_perform) X(curl_easy_getinfo) X(curl_easy_strerror) X(curl_slist_append) X(curl_slist_free_all)         \
  X(curl_mime_init) X(curl_mime_free) X(curl_mime_addpart) X(curl_mime_name) X(curl_mime_data) X(curl_mime_filedata)  \
  X(curl_mime_type) X(curl_multi_init) X(curl_multi_cleanup) X(curl_multi_add_handle) X(curl_multi_remove_handle)     \
  X(curl_multi_perform) X(curl_multi_poll) X(curl_multi_info_read) X(curl_getdate)

struct CurlApi {
  CELLTYPER_CURL_FUNCTIONS(CELLTYPER_DYNAMIC_POINTER)
};

/// libcurl's functions (loaded once, then kept); UnsupportedError saying what to install when
/// the library is missing.
const CurlApi& curl_api();

}  // namespace celltyper
