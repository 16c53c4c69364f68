// Thread counts: "0 threads" means the process default (the command line's --threads), else
// every CPU of the affinity mask; parallel_for_workers keeps to it.
#include <celltyper/parallel.hpp>

#include <gtest/gtest.h>
#include <sched.h>

#include <mutex>
#include <set>
#include <thread>

namespace celltyper {
namespace {

TEST(Parallel, ZeroThreadsFollowTheProcessDefaultThenTheAffinityMask) {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  ASSERT_EQ(sched_getaffinity(0, sizeof(mask), &mask), 0);
  EXPECT_EQ(available_cpus(), CPU_COUNT(&mask));
  EXPECT_EQ(resolve_threads(0), available_cpus());
  EXPECT_EQ(resolve_threads(5), 5);

  set_default_threads(1);
  EXPECT_EQ(resolve_threads(0), 1);
  EXPECT_EQ(resolve_threads(3), 3);  // an explicit count still wins
  std::mutex mutex;
  std::set<std::thread::id> threads;
  std::set<int> workers;
  parallel_for_workers(64, 0, [&](std::int64_t, int worker) {
    std::lock_guard lock(mutex);
    threads.insert(std::this_thread::get_id());
    workers.insert(worker);
  });
  EXPECT_EQ(threads, std::set<std::thread::id>{std::this_thread::get_id()});
  EXPECT_EQ(workers, std::set<int>{0});

  set_default_threads(0);
  EXPECT_EQ(resolve_threads(0), available_cpus());
}

}  // namespace
}  // namespace celltyper
