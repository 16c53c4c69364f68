/// The CLI's process group. MPI is initialised only when the process was started by an MPI
/// launcher (mpirun / mpiexec / srun --mpi=pmix), detected from its environment, so a plain run
/// never pays MPI's start-up; libmpi is linked into the executable only (never the library).
#pragma once

#include <celltyper/communicator.hpp>

namespace celltyper::cli {

/// Whether an MPI launcher started this process (OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK set).
bool launched_by_mpi();

/// Under an MPI launcher (with several processes, or a rank but no size: PMIx), a command that has no multi-process mode
/// (anything but catalog, embed, extract and train --distributed) would run whole in every
/// process, each writing the same outputs: returns true on every process but the first, which
/// should then exit at once; the first prints a warning saying so. False otherwise.
bool redundant_process_under_mpi(int argc, const char* const* argv);

/// MPI's world when launched by an MPI launcher (initialised on the first call), otherwise a
/// single-process group.
Communicator& world();

/// Called by main() with the exit code: finalises MPI after success; after a failure on one rank
/// of several, aborts them all (the others may be waiting in a collective). Returns `exit_code`.
int finish_processes(int exit_code);

}  // namespace celltyper::cli
