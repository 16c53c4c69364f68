// Small file helpers shared by the gene readers (tables, texts, GO, imported embeddings).
#pragma once

#include <string>
#include <string_view>

namespace celltyper {

/// The whole content of `path`; `what` names the file in errors ("cannot open gene list P: ...").
/// Throws IoError.
std::string read_whole_file(const std::string& path, std::string_view what);

/// The SQLite URI that opens `path` read-only and immutable (no locking, no journal): the path
/// percent-encoded in a `file:` URI.
std::string read_only_sqlite_uri(const std::string& path);

}  // namespace celltyper
