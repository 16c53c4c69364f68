/// @file error.hpp
/// Error types of celltyper. Two tiers (see STYLE.md): problems with the user's input throw a
/// subclass of `celltyper::Error` whose message names the culprit (file, dataset path, row,
/// expected vs found); broken internal invariants are `assert`s. The CLI catches `Error` once,
/// prints its message on one line and exits with `Error::exit_code()`.
#pragma once

#include <stdexcept>
#include <string>

namespace celltyper {

/// Base class of every error celltyper reports to a user.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// Process exit code the CLI uses for this error.
  [[nodiscard]] virtual int exit_code() const noexcept { return 1; }
};

/// Bad input: a malformed or inconsistent file, a missing dataset, a bad option value.
class InputError : public Error {
 public:
  using Error::Error;
  [[nodiscard]] int exit_code() const noexcept override { return 2; }
};

/// The operating system or a library failed to read or write (permissions, disk full, network).
class IoError : public Error {
 public:
  using Error::Error;
  [[nodiscard]] int exit_code() const noexcept override { return 3; }
};

/// A valid file that uses a feature celltyper does not support (yet).
class UnsupportedError : public Error {
 public:
  using Error::Error;
  [[nodiscard]] int exit_code() const noexcept override { return 4; }
};

/// Work that is not finished yet and that the same command, run again later, goes on with (an
/// OpenAI batch job still running): exit 75, sysexits' EX_TEMPFAIL, so that a polling script tells
/// "later" from a failure (`until celltyper genes embed ... --collect; do [ $? = 75 ] || exit; sleep 600; done`).
class NotFinishedError : public Error {
 public:
  using Error::Error;
  [[nodiscard]] int exit_code() const noexcept override { return 75; }
};

}  // namespace celltyper
