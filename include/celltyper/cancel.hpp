/// @file cancel.hpp
/// Cooperative cancellation of long library calls (the stop switch of a run): the loops that
/// can run for long — streaming a matrix block by block (every embed, annotate and feature pass),
/// logistic-regression iterations, MLP epochs, boosting rounds — call `check_cancelled()` between
/// steps on the thread that made the call. A front end that wants a call to stop early installs a
/// check for that thread with a `CancelScope`; the Python module does, so that Ctrl-C (or
/// Jupyter's "interrupt kernel") stops `celltyper.train` or `annotate` within a block and raises
/// KeyboardInterrupt. Without a scope nothing is checked. A cancelled call writes nothing: files
/// are written through temporaries that its unwinding removes.
#pragma once

#include <celltyper/error.hpp>

#include <functional>

namespace celltyper {

/// Thrown by `check_cancelled()` when the current thread's check asks to stop.
class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
  [[nodiscard]] int exit_code() const noexcept override { return 130; }
};

/// Installs `check` for the current thread while alive (scopes nest: the previous one returns
/// when this one ends). `check` returns true to stop the call.
class CancelScope {
 public:
  explicit CancelScope(std::function<bool()> check);
  ~CancelScope();
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  std::function<bool()> check_;
  const std::function<bool()>* previous_ = nullptr;
};

/// Throws Cancelled when the current thread has a CancelScope whose check returns true.
void check_cancelled();

}  // namespace celltyper
