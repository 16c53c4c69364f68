/// @file file_checks.hpp
/// Checks on input files made before any work starts, so that the first error a command reports
/// is about its inputs (and no output has been started).
#pragma once

#include <string>

namespace celltyper {

/// Throw IoError (exit code 3) naming `path` when the local file cannot be opened for reading,
/// e.g. "FILE: permission denied (cannot read the model)". `what` names the kind of file
/// ("h5ad file", "model", "gene store").
void require_readable(const std::string& path, const char* what);

}  // namespace celltyper
