// Cooperative cancellation (cancel.hpp).
#include <celltyper/cancel.hpp>

namespace celltyper {
namespace {

thread_local const std::function<bool()>* current_check = nullptr;

}  // namespace

CancelScope::CancelScope(std::function<bool()> check) : check_(std::move(check)), previous_(current_check) { current_check = &check_; }

CancelScope::~CancelScope() { current_check = previous_; }

void check_cancelled() {
  if (current_check != nullptr && (*current_check)()) throw Cancelled();
}

}  // namespace celltyper
