/// @file parallel.hpp
/// Minimal deterministic parallelism: work is split into items; which thread runs an item
/// never changes a result, because items write disjoint outputs.
#pragma once

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace celltyper {

/// CPUs this process may run on: its affinity mask (taskset, a SLURM or cgroup cpuset, `docker
/// --cpuset-cpus`), else every hardware thread. Read once.
inline int available_cpus() {
  static const int cpus = [] {
    cpu_set_t mask;
    CPU_ZERO(&mask);
    if (sched_getaffinity(0, sizeof(mask), &mask) == 0 && CPU_COUNT(&mask) > 0) return CPU_COUNT(&mask);
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return cpus;
}

namespace detail {
inline std::atomic<int>& default_threads_setting() {
  static std::atomic<int> threads{0};
  return threads;
}
}  // namespace detail

/// The process-wide meaning of "0 threads" (`--threads N` of the command line sets it, so that
/// work not given a count, such as reading a file, keeps to N too); 0 restores available_cpus().
inline void set_default_threads(int threads) { detail::default_threads_setting().store(std::max(threads, 0)); }

/// Threads to use for `requested` (0 = the default set above, else every CPU this process may use).
inline int resolve_threads(int requested) {
  if (requested > 0) return requested;
  const int set = detail::default_threads_setting().load();
  return set > 0 ? set : available_cpus();
}

/// Run `work(item, worker)` for item in [0, n_items) on up to `num_threads` threads (dynamic
/// scheduling); `worker` in [0, threads) identifies the thread, for per-thread scratch space.
/// The first exception thrown by any item is rethrown on the caller's thread after all
/// threads stop.
template <typename Work>
void parallel_for_workers(std::int64_t n_items, int num_threads, Work&& work) {
  const int threads = static_cast<int>(std::min<std::int64_t>(resolve_threads(num_threads), std::max<std::int64_t>(n_items, 1)));
  if (threads <= 1) {
    for (std::int64_t i = 0; i < n_items; ++i) work(i, 0);
    return;
  }
  std::atomic<std::int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto run = [&](int worker) {
    while (true) {
      const std::int64_t i = next.fetch_add(1);
      if (i >= n_items) return;
      try {
        work(i, worker);
      } catch (...) {
        std::lock_guard lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        next.store(n_items);
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads) - 1);
  for (int t = 1; t < threads; ++t) pool.emplace_back(run, t);
  run(0);
  for (auto& thread : pool) thread.join();
  if (failure) std::rethrow_exception(failure);
}

/// `parallel_for_workers` without the worker id.
template <typename Work>
void parallel_for(std::int64_t n_items, int num_threads, Work&& work) {
  parallel_for_workers(n_items, num_threads, [&work](std::int64_t item, int) { work(item); });
}

}  // namespace celltyper
