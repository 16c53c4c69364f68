// Writing an output file safely (temporary file, fsync, rename; special targets; signals; stale
// temporaries): the one mechanism every writer uses. See output_file.hpp.
#include <celltyper/gene_store.hpp>
#include <celltyper/crash_guard.hpp>
#include <celltyper/error.hpp>
#include <celltyper/output_file.hpp>

#include <fmt/format.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>

namespace celltyper {

namespace fs = std::filesystem;

namespace {

// ---- temporary paths removed on a signal ------------------------------------------------------
// A fixed table, so that the handler touches only static memory and async-signal-safe calls:
// a slot is 0 (free), 1 (being filled or emptied) or 2 (holds a path to unlink).

constexpr int kSlots = 64;
constexpr std::size_t kSlotPathBytes = 4096;

struct Slot {
  std::atomic<int> state{0};
  char path[kSlotPathBytes] = {};
};

std::array<Slot, kSlots>& slots() {
  static std::array<Slot, kSlots> table;
  return table;
}

constexpr std::array<int, 4> kCleanedSignals{SIGINT, SIGTERM, SIGHUP, SIGPIPE};

extern "C" void remove_temporaries_and_reraise(int signal_number) {
  remove_output_temporaries();
  // SA_RESETHAND restored the default action; the re-raised signal is delivered when the handler
  // returns, so the process ends as it would have without us (exit status "killed by SIGTERM").
  ::raise(signal_number);
}

/// Install the handler for the signals whose action is still the default (an inherited "ignore",
/// e.g. SIGHUP under nohup, or another component's handler is left alone).
void install_signal_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    (void)slots();  // construct the table before any handler can run
    for (const int signal_number : kCleanedSignals) {
      struct sigaction current {};
      if (::sigaction(signal_number, nullptr, &current) != 0) continue;
      if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) continue;
      struct sigaction action {};
      action.sa_handler = remove_temporaries_and_reraise;
      sigemptyset(&action.sa_mask);
      action.sa_flags = SA_RESETHAND;
      ::sigaction(signal_number, &action, nullptr);
    }
  });
}

/// Slot index holding `path`, or -1 when the table is full or the path too long (the file is then
/// still removed on exceptions and by the next run's sweep, only not on a signal).
int register_temporary(const std::string& path) {
  install_signal_handlers();
  if (path.size() >= kSlotPathBytes) return -1;
  for (int i = 0; i < kSlots; ++i) {
    Slot& slot = slots()[static_cast<std::size_t>(i)];
    int expected = 0;
    if (slot.state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
      std::memcpy(slot.path, path.c_str(), path.size() + 1);
      slot.state.store(2, std::memory_order_release);
      return i;
    }
  }
  return -1;
}

void unregister_temporary(int index) {
  if (index < 0) return;
  Slot& slot = slots()[static_cast<std::size_t>(index)];
  slot.state.store(1, std::memory_order_release);
  slot.path[0] = '\0';
  slot.state.store(0, std::memory_order_release);
}

}  // namespace

void remove_output_temporaries() noexcept {
  for (auto& slot : slots()) {
    if (slot.state.load(std::memory_order_acquire) == 2) ::unlink(slot.path);
  }
  for (auto& slot : slots()) {  // then the scratch directories the files were in (SignalCleanup)
    if (slot.state.load(std::memory_order_acquire) == 2) ::rmdir(slot.path);
  }
}

SignalCleanup::SignalCleanup(const std::string& path) : slot_(register_temporary(path)) {}
SignalCleanup::~SignalCleanup() { unregister_temporary(slot_); }

namespace {

// ---- targets ------------------------------------------------------------------------------------

/// `path` with every symlink of its last component followed (the link's final target, which may
/// not exist yet). Throws InputError on a loop.
fs::path follow_symlinks(const std::string& path) {
  fs::path current(path);
  for (int hops = 0; hops < 40; ++hops) {
    struct stat info {};
    if (::lstat(current.c_str(), &info) != 0 || !S_ISLNK(info.st_mode)) return current;
    std::error_code error;
    const fs::path link = fs::read_symlink(current, error);
    if (error) throw IoError(fmt::format("{}: cannot read the symbolic link: {}", path, error.message()));
    current = link.is_absolute() ? link : current.parent_path() / link;
  }
  throw InputError(fmt::format("{}: too many levels of symbolic links", path));
}

fs::path directory_of(const fs::path& path) { return path.has_parent_path() ? path.parent_path() : fs::path("."); }

std::string describe_file_type(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISFIFO(mode)) return "a FIFO";
  return "a special file";
}

std::string temporary_name(const std::string& name) {
  std::random_device device;
  return fmt::format(".{}.tmp-{}-{:08x}", name, ::getpid(), device());
}

/// Remove `.NAME.tmp-PID-*` in `directory` of processes that are gone.
std::size_t sweep(const fs::path& directory, const std::string& name) {
  const std::string prefix = fmt::format(".{}.tmp-", name);
  std::error_code error;
  fs::directory_iterator entries(directory, error);
  if (error) return 0;
  std::size_t removed = 0;
  for (const auto& entry : entries) {
    const std::string file = entry.path().filename().string();
    if (file.size() <= prefix.size() || file.compare(0, prefix.size(), prefix) != 0) continue;
    const char* begin = file.c_str() + prefix.size();
    const char* end = file.c_str() + file.size();
    long pid = 0;
    const auto [next, status] = std::from_chars(begin, end, pid);
    if (status != std::errc() || next == begin || next == end || *next != '-' || pid <= 0) continue;
    if (pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    struct stat info {};
    if (::lstat(entry.path().c_str(), &info) != 0 || !S_ISREG(info.st_mode)) continue;
    if (fs::remove(entry.path(), error)) ++removed;
  }
  return removed;
}

/// fsync a directory so that a rename in it is durable (best effort).
void sync_directory(const fs::path& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

/// A replaced target at least this large (allocated bytes) is freed in the background.
constexpr std::int64_t kBackgroundFreeBytes = std::int64_t{64} << 20;

/// When `target` is a regular file of at least kBackgroundFreeBytes with no other link, give it a
/// second name `.NAME.tmp-PID-replaced-RANDOM` beside it and return that name: the rename that
/// replaces the target then only drops a link, and `free_in_background` frees the blocks. Freeing
/// is what a rename over a large file waits for otherwise: 0.5 s per 700 MB on ext4 mounted with
/// `discard`, which trims the blocks as the file goes. Empty when not worth it or not possible
/// (no hard links on this file system): the rename frees the file as before.
std::string keep_replaced_file(const fs::path& target) {
  struct stat info {};
  if (::lstat(target.c_str(), &info) != 0 || !S_ISREG(info.st_mode) || info.st_nlink != 1) return {};
  if (static_cast<std::int64_t>(info.st_blocks) * 512 < kBackgroundFreeBytes) return {};
  std::random_device device;
  const fs::path kept = directory_of(target) / fmt::format(".{}.tmp-{}-replaced-{:08x}", target.filename().string(), ::getpid(), device());
  if (::link(target.c_str(), kept.c_str()) != 0) return {};
  return kept.string();
}

/// Unlink `path` in a detached grandchild process, so that the caller does not wait for the file
/// system to free its blocks; synchronously when no process can be made. Between fork and _exit
/// the children make async-signal-safe calls only (this process may have other threads). The
/// grandchild leaves the terminal's process group (a Ctrl-C right after the command does not stop
/// it) and takes default signal actions (our handler would unlink this process's temporaries);
/// should it die first anyway, the name is one `sweep` removes (its PID is this process's).
void free_in_background(const std::string& path) {
  const pid_t child = ::fork();
  if (child == 0) {
    if (::fork() == 0) {
      // No descriptor of ours stays open in it: a pipe to our stdout or stderr (a shell pipeline,
      // a caller capturing the output) must reach end-of-file when we exit, not when it does.
      if (::close_range(0, ~0U, 0) != 0) {
        for (int fd = 0; fd < 1024; ++fd) (void)::close(fd);
      }
      (void)::setsid();
      for (const int signal_number : kCleanedSignals) {
        struct sigaction action {};
        action.sa_handler = SIG_DFL;
        sigemptyset(&action.sa_mask);
        (void)::sigaction(signal_number, &action, nullptr);
      }
      (void)::unlink(path.c_str());
    }
    ::_exit(0);
  }
  if (child < 0) {
    (void)::unlink(path.c_str());
    return;
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
}

/// Write all of `size` bytes at `data` to `fd`; false with errno set on failure.
bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

namespace {

/// Where and how an output is written, or the error a writer would meet (no file touched).
struct OutputTarget {
  fs::path target;                  ///< after following symlinks
  fs::path directory;               ///< of the temporary file
  bool writes_through = false;
  std::optional<mode_t> keep_mode;  ///< permissions of the regular file being replaced
};

OutputTarget inspect_target(const std::string& path) {
  if (path.empty()) throw InputError("empty output path");
  OutputTarget out;
  out.target = follow_symlinks(path);
  struct stat info {};
  if (::stat(out.target.c_str(), &info) == 0) {
    if (S_ISCHR(info.st_mode) || S_ISFIFO(info.st_mode)) {
      out.writes_through = true;
    } else if (!S_ISREG(info.st_mode)) {
      throw InputError(fmt::format("{}: the output path is {}; give a file name (celltyper writes regular files, and writes through "
                                   "character devices such as /dev/null and FIFOs)",
                                   path, describe_file_type(info.st_mode)));
    } else {
      out.keep_mode = info.st_mode & 07777;
    }
  } else if (errno == EACCES) {
    throw IoError(fmt::format("{}: cannot write: permission denied", path));
  }
  if (out.writes_through) {
    std::error_code error;
    out.directory = fs::temp_directory_path(error);
    if (error) out.directory = "/tmp";
    return out;
  }
  out.directory = directory_of(out.target);
  struct stat directory_info {};
  if (::stat(out.directory.c_str(), &directory_info) != 0) {
    throw IoError(fmt::format("{}: cannot create: {} ({})", path, std::strerror(errno), out.directory.string()));
  }
  if (!S_ISDIR(directory_info.st_mode)) throw IoError(fmt::format("{}: cannot create: {} is not a directory", path, out.directory.string()));
  if (::access(out.directory.c_str(), W_OK | X_OK) != 0) {
    throw IoError(fmt::format("{}: cannot create: {} in {}", path,
                              errno == EROFS ? "read-only file system" : errno == EACCES ? "permission denied" : std::strerror(errno),
                              out.directory.string()));
  }
  return out;
}

}  // namespace

// ---- checking outputs before the work ----------------------------------------------------------

std::string refuse_symlinked_default(std::string path) {
  std::error_code error;
  if (fs::is_symlink(path, error)) {
    const fs::path target = fs::read_symlink(path, error);
    throw InputError(fmt::format("{}: the default output name is a symbolic link (to {}): not followed for a name celltyper chose; remove it, "
                                 "or name the output (--out / --csv) to write through it",
                                 path, error ? std::string("an unreadable target") : target.string()));
  }
  return path;
}

void check_outputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs) {
  (void)source_date_epoch();  // (a malformed SOURCE_DATE_EPOCH, which outputs record, before the work)
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    for (std::size_t j = i + 1; j < outputs.size(); ++j) {
      if (outputs[i].empty() || outputs[j].empty()) continue;
      std::error_code error_i;
      std::error_code error_j;
      const fs::path a = fs::weakly_canonical(fs::absolute(outputs[i]), error_i);
      const fs::path b = fs::weakly_canonical(fs::absolute(outputs[j]), error_j);
      if (!error_i && !error_j && a == b) {
        throw InputError(fmt::format("{}: the same file is given for two outputs ({} and {})", outputs[i], outputs[i], outputs[j]));
      }
    }
  }
  for (const auto& output : outputs) {
    if (output.empty()) continue;
    struct stat out_info {};
    if (::stat(output.c_str(), &out_info) != 0) continue;  // does not exist yet
    for (const auto& input : inputs) {
      if (input.empty()) continue;
      struct stat in_info {};
      if (::stat(input.c_str(), &in_info) != 0) continue;
      if (in_info.st_dev == out_info.st_dev && in_info.st_ino == out_info.st_ino) {
        throw InputError(input == output
                             ? fmt::format("{}: the output is an input of this command; choose another output path", output)
                             : fmt::format("{}: the output is the same file as the input {}; choose another output path", output, input));
      }
    }
  }
  for (const auto& output : outputs) {
    if (output.empty()) continue;
    if (output == "-") throw InputError("-: this output cannot go to standard output; give a file name");
    (void)inspect_target(output);  // (what OutputFile would refuse, now; no sweep: under MPI, other hosts' live temporaries)
  }
}

// ---- OutputFile -----------------------------------------------------------------------------------

struct OutputFile::Impl {
  std::string path;          ///< as given
  fs::path target;           ///< after following symlinks
  std::string temporary;
  bool writes_through = false;
  std::optional<mode_t> keep_mode;  ///< permissions of the regular file being replaced
  int slot = -1;
  bool committed = false;
};


OutputFile::OutputFile(std::string path) : impl_(std::make_unique<Impl>()) {
  OutputTarget target = inspect_target(path);
  impl_->path = std::move(path);
  impl_->target = std::move(target.target);
  impl_->writes_through = target.writes_through;
  impl_->keep_mode = target.keep_mode;
  const std::string name = impl_->target.filename().string();
  sweep(target.directory, name);
  impl_->temporary = (target.directory / temporary_name(name)).string();
  impl_->slot = register_temporary(impl_->temporary);
}

OutputFile::~OutputFile() {
  if (!impl_) return;
  if (!impl_->committed) discard();
  unregister_temporary(impl_->slot);
}

const std::string& OutputFile::path() const { return impl_->path; }
const std::string& OutputFile::temporary() const { return impl_->temporary; }
bool OutputFile::writes_through() const { return impl_->writes_through; }
bool OutputFile::committed() const { return impl_->committed; }

void OutputFile::discard() noexcept {
  if (impl_->committed) return;
  ::unlink(impl_->temporary.c_str());
}

void OutputFile::flush_temporary() {
  if (impl_->committed) throw InputError(fmt::format("{}: already written", impl_->path));
  const int fd = ::open(impl_->temporary.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(fmt::format("{}: cannot open the finished temporary file {}: {}", impl_->path, impl_->temporary, std::strerror(errno)));
  const bool synced = ::fsync(fd) == 0;
  const int saved = errno;
  if (synced && impl_->keep_mode) (void)::fchmod(fd, *impl_->keep_mode);
  ::close(fd);
  if (!synced) {
    discard();
    throw IoError(fmt::format("{}: cannot write: {}", impl_->path, std::strerror(saved)));
  }
}

void OutputFile::publish() {
  if (impl_->writes_through) {
    const int from = ::open(impl_->temporary.c_str(), O_RDONLY | O_CLOEXEC);
    const int to = from < 0 ? -1 : ::open(impl_->target.c_str(), O_WRONLY | O_CLOEXEC);
    const int saved = errno;
    if (from < 0 || to < 0) {
      if (from >= 0) ::close(from);
      discard();
      throw IoError(fmt::format("{}: cannot open for writing: {}", impl_->path, std::strerror(saved)));
    }
    std::array<char, 1 << 16> buffer{};
    bool ok = true;
    int error_number = 0;
    for (;;) {
      const ssize_t n = ::read(from, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ok = n == 0;
        error_number = errno;
        break;
      }
      if (!write_all(to, buffer.data(), static_cast<std::size_t>(n))) {
        ok = false;
        error_number = errno;
        break;
      }
    }
    ::close(from);
    ::close(to);
    discard();
    if (!ok) throw IoError(fmt::format("{}: cannot write: {}", impl_->path, std::strerror(error_number)));
  } else {
    const std::string replaced = keep_replaced_file(impl_->target);
    if (::rename(impl_->temporary.c_str(), impl_->target.c_str()) != 0) {
      const int saved = errno;
      if (!replaced.empty()) ::unlink(replaced.c_str());
      discard();
      throw IoError(fmt::format("{}: cannot move the finished file into place: {}", impl_->path, std::strerror(saved)));
    }
    sync_directory(directory_of(impl_->target));
    if (!replaced.empty()) free_in_background(replaced);
  }
  impl_->committed = true;
  unregister_temporary(impl_->slot);
  impl_->slot = -1;
}

void OutputFile::commit() {
  flush_temporary();
  publish();
}

void commit_together(const std::vector<OutputFile*>& outputs) {
  std::vector<OutputFile*> list;
  for (OutputFile* output : outputs) {
    if (output != nullptr) list.push_back(output);
  }
  try {
    for (OutputFile* output : list) output->flush_temporary();
  } catch (...) {
    for (OutputFile* output : list) output->discard();
    throw;
  }
  // Renames can be undone (the new file removed again), a write through a device cannot: last.
  std::stable_partition(list.begin(), list.end(), [](const OutputFile* output) { return !output->writes_through(); });
  for (std::size_t i = 0; i < list.size(); ++i) {
    try {
      list[i]->publish();
    } catch (...) {
      for (std::size_t j = 0; j < i; ++j) ::unlink(list[j]->impl_->target.c_str());
      for (std::size_t j = i + 1; j < list.size(); ++j) list[j]->discard();
      throw;
    }
  }
}

void write_output_file(const std::string& path, std::string_view content) {
  OutputFile output(path);
  const int fd = ::open(output.temporary().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw IoError(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  const bool ok = write_all(fd, content.data(), content.size());
  const int saved = errno;
  ::close(fd);
  if (!ok) throw IoError(fmt::format("{}: cannot write: {}", path, std::strerror(saved)));
  output.commit();
}

std::size_t sweep_stale_temporaries(const std::string& path) {
  const fs::path target = follow_symlinks(path);
  return sweep(directory_of(target), target.filename().string());
}

}  // namespace celltyper
