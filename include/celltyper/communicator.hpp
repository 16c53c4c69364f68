/// @file communicator.hpp
/// Process groups for scale-out (`mpirun -n N celltyper embed|extract|train --distributed`):
/// the library sees only this interface; the MPI implementation lives in the CLI
/// (src/cli/mpi_communicator.cpp), so that libmpi is linked into the executable alone and a plain
/// run never starts MPI.
///
/// Conventions: ranks are 0..size-1; rank 0 is the root that writes outputs. Work is split into
/// contiguous shares (`contiguous_shares`) that depend only on the item weights and the number of
/// ranks, and results are gathered to the root in rank order, so an output is the same for any
/// number of ranks as long as each item's result depends only on the item (STYLE.md principle 7).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace celltyper {

/// A group of cooperating processes. Every collective (`allreduce_sum`, `broadcast`, `barrier`)
/// must be called by all ranks in the same order; `send`/`receive` are point-to-point.
class Communicator {
 public:
  virtual ~Communicator() = default;
  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;
  /// A short description for logs and provenance ("single process", "MPI: Open MPI v4.1.4").
  [[nodiscard]] virtual std::string description() const = 0;
  /// Element-wise sum over all ranks, in place, the same values on every rank.
  virtual void allreduce_sum(float* values, std::size_t count) = 0;
  virtual void allreduce_sum(double* values, std::size_t count) = 0;
  /// Root's `bytes` replace every other rank's.
  virtual void broadcast(std::string& bytes, int root) = 0;
  /// Send `bytes` to rank `destination` (any size; split into messages internally).
  virtual void send(const std::string& bytes, int destination) = 0;
  /// Receive one `send` from rank `source`.
  [[nodiscard]] virtual std::string receive(int source) = 0;
  virtual void barrier() = 0;
  /// Abort every rank after an error on one (MPI_Abort); a single process just returns.
  virtual void abort(int exit_code) = 0;

  [[nodiscard]] bool is_root() const { return rank() == 0; }
  [[nodiscard]] bool distributed() const { return size() > 1; }
};

/// The communicator of a plain run: one rank; collectives are no-ops.
class SingleProcessCommunicator final : public Communicator {
 public:
  [[nodiscard]] int rank() const override { return 0; }
  [[nodiscard]] int size() const override { return 1; }
  [[nodiscard]] std::string description() const override { return "single process"; }
  void allreduce_sum(float*, std::size_t) override {}
  void allreduce_sum(double*, std::size_t) override {}
  void broadcast(std::string&, int) override {}
  void send(const std::string& bytes, int destination) override;
  [[nodiscard]] std::string receive(int source) override;
  void barrier() override {}
  void abort(int) override {}

 private:
  std::vector<std::string> mailbox_;  ///< messages a rank sends to itself, first in first out
};

/// Split items with `weights` (>= 0, e.g. cells) into `parts` contiguous shares of nearly equal
/// total weight: share p is items [bounds[p], bounds[p+1]). An item goes to the share that
/// contains the midpoint of its weight interval, so the split depends only on the weights and
/// `parts`. Returns parts + 1 bounds.
std::vector<std::size_t> contiguous_shares(const std::vector<std::int64_t>& weights, int parts);

/// Gather one byte string per rank at the root, in rank order (other ranks get an empty vector).
/// The root's own part is moved, the others received one at a time.
std::vector<std::string> gather_to_root(Communicator& communicator, std::string mine);

}  // namespace celltyper
