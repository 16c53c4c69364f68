// The crash guard (crash_guard.hpp): only static buffers and async-signal-safe calls in the handler.
#include <celltyper/crash_guard.hpp>

#include <hdf5.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace celltyper {
namespace {

constexpr std::size_t kPart = 1000;
char g_file[kPart + 1] = {};
char g_object[kPart + 1] = {};
// Per thread: a crash in another thread while one holds the HDF5 lock is not the library's.
thread_local int g_depth = 0;
constexpr int kGuarded[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};

void copy_part(char* into, std::string_view from) {
  const std::size_t n = std::min(from.size(), kPart);
  if (n > 0) std::memcpy(into, from.data(), n);  // an empty view may hold a null pointer
  into[n] = '\0';
}

void write_all(const char* text) {
  std::size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t written = ::write(STDERR_FILENO, text, left);
    if (written <= 0) return;
    text += written;
    left -= static_cast<std::size_t>(written);
  }
}

const char* signal_name(int signal_number) {
  switch (signal_number) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    default: return "a signal";
  }
}

extern "C" void crash_handler(int signal_number) {
  remove_output_temporaries();
  if (g_depth > 0 && g_file[0] != '\0') {
    write_all("celltyper: error: ");
    write_all(g_file);
    if (g_object[0] != '\0') {
      write_all(":");
      write_all(g_object);
    }
    write_all(": the file is corrupt (the HDF5 library crashed reading it, ");
    write_all(signal_name(signal_number));
    write_all("); re-download or re-export it\n");
    ::_exit(2);
  }
  write_all("celltyper: internal error: ");
  write_all(signal_name(signal_number));
  write_all(" (a bug in celltyper: please report it with the command that caused it)\n");
  // SA_RESETHAND restored the default action: returning re-executes the faulting instruction,
  // which now ends the process with the signal (and a core dump where enabled).
  if (signal_number == SIGFPE || signal_number == SIGILL) ::raise(signal_number);
}

}  // namespace

void install_crash_guard() {
  static std::once_flag once;
  std::call_once(once, [] {
    static char stack[1 << 16];
    stack_t alternate{};
    alternate.ss_sp = stack;
    alternate.ss_size = sizeof(stack);
    ::sigaltstack(&alternate, nullptr);
    for (const int signal_number : kGuarded) {
      struct sigaction action {};
      action.sa_handler = crash_handler;
      sigemptyset(&action.sa_mask);
      action.sa_flags = SA_RESETHAND | SA_ONSTACK;
      ::sigaction(signal_number, &action, nullptr);
    }
  });
}

void note_hdf5_object(std::string_view file, std::string_view object) {
  copy_part(g_file, file);
  copy_part(g_object, object);
}

void enter_hdf5() noexcept { ++g_depth; }
void leave_hdf5() noexcept { --g_depth; }

void skip_hdf5_exit_cleanup() { (void)H5dont_atexit(); }

}  // namespace celltyper
