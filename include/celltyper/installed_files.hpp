/// @file installed_files.hpp
/// Files scripts/setup.sh installs beside the executable: the default gene store, the Cell
/// Ontology, the RefSeq gene summaries and the USE-lite encoder, under `share/celltyper/`.
#pragma once

#include <filesystem>
#include <string_view>
#include <vector>

namespace celltyper {

/// The `share/celltyper` folders that exist beside the code running, in the order they are
/// searched: the running executable's folder (build/celltyper: build/share/celltyper), then,
/// when this code is loaded from a module (the Python module build/python/celltyper/_core*.so,
/// whose executable is the interpreter), the folder two levels above the module's.
std::vector<std::filesystem::path> installed_share_folders();

/// `<folder>/<name>` in the first installed share folder where it exists (a file or a folder),
/// or an empty path when none holds it.
std::filesystem::path installed_file(std::string_view name);

}  // namespace celltyper
