/// @file output_file.hpp
/// Writing an output file safely, in one place (STYLE.md: "Never lose the user's data"). Every
/// writer of celltyper (h5ad copies and new files, models, gene stores, .npy / HDF5 embeddings,
/// CSV, JSON, HTML reports, catalogue parts) writes through an `OutputFile`:
///
/// - the content goes to a temporary file `.NAME.tmp-PID-RANDOM` beside the target, which is
///   fsynced and renamed onto the target by `commit()`; until then the target is untouched; a
///   large regular file it replaces (64 MiB or more) is freed by a detached process, so that the
///   command does not wait for the file system to release its blocks;
/// - a symlink at the target is followed: its final target is written and the link stays;
/// - a character device (e.g. `/dev/null`) or a FIFO at the target is written through: the
///   finished content (staged in the system temp folder) is copied into it by `commit()`;
///   a directory, block device or socket is refused (InputError, exit 2);
/// - the temporary file is removed when the object dies uncommitted (an exception), and on
///   SIGINT, SIGTERM, SIGHUP or SIGPIPE (a handler unlinks every registered temporary path,
///   then re-raises the signal with its default action);
/// - temporary files of this target left by dead processes (SIGKILL, a crash) are removed when
///   the next `OutputFile` for the same target is made.
///
/// A command checks its outputs with `check_outputs` before it starts working.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace celltyper {

/// The checks a command makes on its outputs before it starts working, so that no work is lost to
/// an output that cannot be written. Throws InputError (one line naming both paths) when one of
/// `outputs` is the same file as one of `inputs` (same device and inode, so a hard link or
/// another spelling of the path such as `./x`, `d/../x` or a symlink is caught; inputs that do
/// not exist are skipped) or when two outputs are one file; then, per output, what `OutputFile`
/// would refuse: "-" (standard output: a command that takes it passes "" instead), a directory,
/// block device or socket (InputError), a folder that does not exist or cannot be written in
/// (IoError). Empty strings are skipped. A malformed SOURCE_DATE_EPOCH (utc_timestamp) is an
/// InputError here too.
void check_outputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs);

/// `path`, an output name celltyper derived from an input's (annotate's INPUT.celltyper.h5ad):
/// InputError when it is a symbolic link. A link the user names is followed (above), but one
/// planted where celltyper will write by default (a shared folder: another user's link to a file
/// of the one running it) is not.
std::string refuse_symlinked_default(std::string path);

/// A scratch path (a file, or an empty directory: directories go after the files) removed if
/// SIGINT, SIGTERM, SIGHUP or SIGPIPE ends the process while this lives, as the temporaries of
/// output files are (the owner removes it otherwise). Not copyable or movable.
class SignalCleanup {
 public:
  explicit SignalCleanup(const std::string& path);
  ~SignalCleanup();
  SignalCleanup(const SignalCleanup&) = delete;
  SignalCleanup& operator=(const SignalCleanup&) = delete;

 private:
  int slot_ = -1;
};

/// One output file being written; see the file comment. Not copyable or movable (its temporary
/// path is registered with the signal handler); hold it in a `std::unique_ptr` or `std::optional`.
class OutputFile {
 public:
  /// Checks the target (InputError for a directory, block device, socket or symlink loop;
  /// IoError when its directory does not exist), sweeps stale temporaries of dead processes
  /// beside it, and registers the temporary path. Creates no file.
  explicit OutputFile(std::string path);
  /// Removes the temporary file unless `commit()` succeeded.
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  /// The path as given by the user (for messages).
  [[nodiscard]] const std::string& path() const;
  /// The file the writer creates and fills (it does not exist before).
  [[nodiscard]] const std::string& temporary() const;
  /// True when the target is a character device or FIFO that `commit()` writes through.
  [[nodiscard]] bool writes_through() const;
  [[nodiscard]] bool committed() const;

  /// fsync the finished temporary file, rename it onto the target (or copy it into a device /
  /// FIFO target) and fsync the directory. Throws IoError; the temporary file is then removed.
  void commit();
  /// Remove the temporary file now (idempotent, never throws).
  void discard() noexcept;

 private:
  friend void commit_together(const std::vector<OutputFile*>& outputs);
  void flush_temporary();
  void publish();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Commit several outputs of one command together (e.g. annotate's h5ad and CSV): every
/// temporary file is flushed first (a failure removes them all and leaves every target
/// untouched), then they are renamed in order, written-through targets last. Null entries are
/// skipped. Throws IoError.
void commit_together(const std::vector<OutputFile*>& outputs);

/// Write `content` to `path` through an `OutputFile`. Throws IoError / InputError.
void write_output_file(const std::string& path, std::string_view content);

/// Remove temporary files `.NAME.tmp-PID-*` of `path` (NAME its file name) beside it whose
/// process PID is no longer running; returns how many were removed. `OutputFile` calls it.
std::size_t sweep_stale_temporaries(const std::string& path);

}  // namespace celltyper
