// MPI implementation of celltyper::Communicator (Open MPI from Debian), for the CLI only.
#include "cli/parallel.hpp"

// The C API only: Open MPI's mpi.h otherwise pulls in its deprecated C++ bindings (libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <fmt/format.h>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace celltyper::cli {

namespace {

void check(int code, const char* what) {
  if (code != MPI_SUCCESS) {
    char message[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, message, &length);
    throw std::runtime_error(fmt::format("MPI {} failed: {}", what, std::string(message, static_cast<std::size_t>(length))));
  }
}

/// Messages larger than this are split (MPI counts are int).
constexpr std::size_t kMaxMessage = std::size_t{1} << 30;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(version, &length);
    std::string text(version, static_cast<std::size_t>(length));
    library_ = text.substr(0, text.find(','));
  }
  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }
  [[nodiscard]] std::string description() const override { return fmt::format("MPI ({} processes, {})", size_, library_); }
  // Reduce at rank 0 then broadcast, so every rank gets bit-identical sums (MPI_Allreduce may
  // add in a different order on different ranks).
  void allreduce_sum(float* values, std::size_t count) override { reduce_broadcast(values, count, MPI_FLOAT); }
  void allreduce_sum(double* values, std::size_t count) override { reduce_broadcast(values, count, MPI_DOUBLE); }
  void broadcast(std::string& bytes, int root) override {
    std::uint64_t size = bytes.size();
    check(MPI_Bcast(&size, 1, MPI_UINT64_T, root, MPI_COMM_WORLD), "broadcast");
    bytes.resize(size);
    for (std::size_t offset = 0; offset < size; offset += kMaxMessage) {
      const int count = static_cast<int>(std::min(kMaxMessage, size - offset));
      check(MPI_Bcast(bytes.data() + offset, count, MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
    }
  }
  void send(const std::string& bytes, int destination) override {
    const std::uint64_t size = bytes.size();
    check(MPI_Send(&size, 1, MPI_UINT64_T, destination, 0, MPI_COMM_WORLD), "send");
    for (std::size_t offset = 0; offset < size; offset += kMaxMessage) {
      const int count = static_cast<int>(std::min(kMaxMessage, size - offset));
      check(MPI_Send(bytes.data() + offset, count, MPI_BYTE, destination, 1, MPI_COMM_WORLD), "send");
    }
  }
  [[nodiscard]] std::string receive(int source) override {
    std::uint64_t size = 0;
    check(MPI_Recv(&size, 1, MPI_UINT64_T, source, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "receive");
    std::string bytes(size, '\0');
    for (std::size_t offset = 0; offset < size; offset += kMaxMessage) {
      const int count = static_cast<int>(std::min(kMaxMessage, size - offset));
      check(MPI_Recv(bytes.data() + offset, count, MPI_BYTE, source, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "receive");
    }
    return bytes;
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "barrier"); }
  void abort(int exit_code) override { MPI_Abort(MPI_COMM_WORLD, exit_code); }
  void finalize() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

 private:
  template <typename T>
  void reduce_broadcast(T* values, std::size_t count, MPI_Datatype type) {
    for (std::size_t offset = 0; offset < count; offset += kMaxMessage / sizeof(T)) {
      const int n = static_cast<int>(std::min(kMaxMessage / sizeof(T), count - offset));
      if (rank_ == 0) {
        check(MPI_Reduce(MPI_IN_PLACE, values + offset, n, type, MPI_SUM, 0, MPI_COMM_WORLD), "reduce");
      } else {
        check(MPI_Reduce(values + offset, nullptr, n, type, MPI_SUM, 0, MPI_COMM_WORLD), "reduce");
      }
      check(MPI_Bcast(values + offset, n, type, 0, MPI_COMM_WORLD), "broadcast");
    }
  }
  int rank_ = 0;
  int size_ = 1;
  std::string library_;
};

std::unique_ptr<Communicator>& instance() {
  static std::unique_ptr<Communicator> communicator;
  return communicator;
}

}  // namespace

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

bool redundant_process_under_mpi(int argc, const char* const* argv) {
  if (!launched_by_mpi()) return false;
  const auto number = [](std::initializer_list<const char*> names) -> long {
    for (const char* name : names) {
      if (const char* value = std::getenv(name); value != nullptr && *value != '\0') return std::strtol(value, nullptr, 10);
    }
    return -1;
  };
  // (PMIx exports a rank but no size: the Slurm step's task count then; unknown: run as given)
  const long size = number({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"});
  const long rank = number({"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"});
  if (rank < 0 || size <= 1) return false;
  std::string command;
  bool distributed = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument = argv[i];
    if (argument == "--distributed") distributed = true;
    if (command.empty() && !argument.starts_with("-")) command = argument;
  }
  if (command.empty() || command == "catalog" || command == "embed" || command == "extract" || (command == "train" && distributed)) return false;
  if (rank == 0) {
    fmt::print(stderr, "warning: celltyper {} has no multi-process mode: it runs once, in the first of the {} processes the launcher started{}\n",
               command, size, command == "train" ? " (train --distributed trains across them)" : "");
  } else {
    fmt::print(stderr, "celltyper: process {} of {}: {} runs in the first process only\n", rank, size, command);
  }
  return rank != 0;
}

Communicator& world() {
  auto& communicator = instance();
  if (!communicator) {
    if (launched_by_mpi()) {
      communicator = std::make_unique<MpiCommunicator>();
    } else {
      communicator = std::make_unique<SingleProcessCommunicator>();
    }
  }
  return *communicator;
}

int finish_processes(int exit_code) {
  auto& communicator = instance();
  auto* mpi = dynamic_cast<MpiCommunicator*>(communicator.get());
  if (mpi == nullptr) return exit_code;
  if (exit_code != 0 && mpi->size() > 1) mpi->abort(exit_code);
  mpi->finalize();
  return exit_code;
}

}  // namespace celltyper::cli
