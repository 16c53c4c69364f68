/// @file crash_guard.hpp
/// A corrupt file can crash the HDF5 library itself (libhdf5 1.10 trusts lengths recorded in a
/// file's metadata, e.g. in its global heap). The crash guard turns such a crash into the error
/// of a bad input file: when SIGSEGV, SIGBUS, SIGFPE or SIGILL arrives while celltyper's HDF5
/// layer is inside the library, it prints one line naming the file (and the object it was
/// reading), removes the temporary files of unfinished outputs and exits with code 2. A crash
/// anywhere else is a bug in celltyper: the guard says so in one line, removes the temporaries and
/// lets the signal end the process as it would have (core dump, exit status 128 + signal).
#pragma once

#include <string_view>

namespace celltyper {

/// Install the guard (once; the CLI does at start-up). Uses an alternate signal stack, so a
/// stack overflow is caught too.
void install_crash_guard();

/// Skip HDF5's own clean-up at process exit (H5dont_atexit): it closes files left open, and a
/// file whose write failed (disk full) crashes it (SIGSEGV in H5F__close_cb after the error was
/// reported, exit status lost). Every file celltyper opens is closed by its owner before. Call
/// first, before any HDF5 call (the CLI's main does; not the Python module, whose shared libhdf5
/// may be h5py's too, whose users may rely on that clean-up).
void skip_hdf5_exit_cleanup();

/// Called by the HDF5 layer: the file (and object) it is about to read, for the guard's message.
/// Keeps the first 1,000 bytes of each.
void note_hdf5_object(std::string_view file, std::string_view object = {});

/// Called by the HDF5 layer around every sequence of HDF5 calls (with its lock held): whether a
/// crash now would be the library's.
void enter_hdf5() noexcept;
void leave_hdf5() noexcept;

/// Remove the temporary files of every OutputFile not yet committed (async-signal-safe; what
/// the signal handlers call).
void remove_output_temporaries() noexcept;

}  // namespace celltyper
