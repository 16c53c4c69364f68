/// Internal: the C APIs of optional libraries, loaded with dlopen on first use (COIN-OR CBC for
/// `select`, DuckDB for the catalogue, libcurl for remote files, libcrypto for S3 signing,
/// XGBoost). Linked, they were mapped and relocated at the start of every celltyper process
/// (DuckDB alone ~74k relocations; CBC brought LAPACK and OpenBLAS, whose thread pool starts and
/// spins at load; libcurl ~30 libraries of TLS, Kerberos, LDAP) for the few commands that use them.
///
/// A user lists the functions in an X-macro and writes
///   struct Api { LIST(CELLTYPER_DYNAMIC_POINTER) };   // decltype(&::f) f = nullptr;
///   const Api& api() {
///     static const Api loaded = CELLTYPER_LOAD_DYNAMIC_API(Api, LIST, what, fix, "libx.so.1", "libx.so");
///     return loaded;
///   }
/// so every pointer has the exact type of the header's declaration, and the library is opened
/// (and each function looked up, or UnsupportedError thrown) once, on first use.
#pragma once

#include <celltyper/error.hpp>

#include <dlfcn.h>
#include <fmt/format.h>

#include <initializer_list>
#include <string>

namespace celltyper::detail {

/// The first of `candidates` that dlopen loads (kept loaded for the process); UnsupportedError
/// "`what` cannot be loaded (<dlerror>); `fix`" when none does.
inline void* open_library(std::initializer_list<const char*> candidates, const std::string& what, const std::string& fix) {
  std::string reason = "no candidate";
  for (const char* candidate : candidates) {
    if (void* library = ::dlopen(candidate, RTLD_NOW | RTLD_LOCAL)) return library;
    const char* error = ::dlerror();
    reason = error != nullptr ? error : candidate;
  }
  throw UnsupportedError(fmt::format("{} cannot be loaded ({}); {}", what, reason, fix));
}

}  // namespace celltyper::detail

/// One member per listed function, typed from its declaration in the library's header.
#define CELLTYPER_DYNAMIC_POINTER(name) decltype(&::name) name = nullptr;
/// Inside a loader with `void* library`, `std::string what` and an API struct `loaded` in scope.
#define CELLTYPER_DYNAMIC_LOAD(name)                                                 \
  loaded.name = reinterpret_cast<decltype(&::name)>(::dlsym(library, #name));        \
  if (loaded.name == nullptr) throw celltyper::UnsupportedError(fmt::format("{} has no function " #name, what));
/// An `Api` of the functions in X-macro `LIST`, from the first of the candidate library names
/// (the variadic arguments) that loads; UnsupportedError naming `what_text` and `fix_text`.
#define CELLTYPER_LOAD_DYNAMIC_API(Api, LIST, what_text, fix_text, ...)                       \
  [&]() -> Api {                                                                             \
    const std::string what = (what_text);                                                    \
    void* library = ::celltyper::detail::open_library({__VA_ARGS__}, what, (fix_text));      \
    Api loaded;                                                                              \
    LIST(CELLTYPER_DYNAMIC_LOAD)                                                             \
    return loaded;                                                                           \
  }()
