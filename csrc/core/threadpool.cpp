// Persistent worker threads woken per parallel_for (see threadpool.h).
#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#ifdef _WIN32
#include <process.h>
#define EDGESEG_GETPID _getpid
#else
#include <unistd.h>
#define EDGESEG_GETPID getpid
#endif

namespace edgeseg {
namespace {

thread_local bool t_inside_pool = false;

int parse_env_threads() {
  const char* s = std::getenv("EDGESEG_NUM_THREADS");
  if (!s || !*s) return 0;
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 1) return 0;
  return static_cast<int>(std::min<long>(v, 1024));
}

// Worker state for one process. Never destroyed: after fork() the child leaks the parent's copy
// (its threads do not exist there) and builds a new one; at exit blocked workers just die.
struct Pool {
  std::mutex run_mu;  // serialises parallel_for callers
  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  std::vector<std::thread> workers;
  uint64_t generation = 0;
  int active = 0;  // chunks handed to workers in this generation
  int pending = 0;
  int64_t n = 0, chunk = 0;
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  std::exception_ptr error;

  void worker_loop(int id, uint64_t seen) {
    t_inside_pool = true;
    for (;;) {
      std::unique_lock<std::mutex> lk(mu);
      cv_work.wait(lk, [&] { return generation != seen; });
      seen = generation;
      if (id >= active) continue;  // not needed this round
      const int64_t b = (id + 1) * chunk, e = std::min(n, b + chunk);
      const auto* f = fn;
      lk.unlock();
      std::exception_ptr err;
      try {
        if (b < e) (*f)(b, e);
      } catch (...) {
        err = std::current_exception();
      }
      lk.lock();
      if (err && !error) error = err;
      if (--pending == 0) cv_done.notify_one();
    }
  }

  void ensure_workers(int count) {  // call with run_mu held (generation cannot change)
    while (static_cast<int>(workers.size()) < count) {
      const int id = static_cast<int>(workers.size());
      const uint64_t gen = generation;  // start after the current round (no stale job)
      workers.emplace_back([this, id, gen] { worker_loop(id, gen); });
      workers.back().detach();
    }
  }
};

std::mutex g_mu;  // guards the globals below
Pool* g_pool = nullptr;
long g_pool_pid = -1;
std::atomic<int> g_threads{0};  // 0: not yet decided

Pool* current_pool() {
  std::lock_guard<std::mutex> lk(g_mu);
  const long pid = static_cast<long>(EDGESEG_GETPID());
  if (!g_pool || g_pool_pid != pid) {  // first use, or we are a forked child
    g_pool = new Pool();               // the parent's pool (if any) is leaked on purpose
    g_pool_pid = pid;
  }
  return g_pool;
}

}  // namespace

int default_num_threads() {
  int env = parse_env_threads();
  if (env > 0) return env;
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

int get_num_threads() {
  int t = g_threads.load();
  if (t <= 0) {
    t = default_num_threads();
    g_threads.store(t);
  }
  return t;
}

void set_num_threads(int n) { g_threads.store(std::max(1, std::min(n, 1024))); }

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  min_chunk = std::max<int64_t>(1, min_chunk);
  int64_t parts = std::min<int64_t>(get_num_threads(), (n + min_chunk - 1) / min_chunk);
  if (parts <= 1 || t_inside_pool) {
    fn(0, n);
    return;
  }
  Pool* p = current_pool();
  std::lock_guard<std::mutex> run_lk(p->run_mu);
  const int64_t chunk = (n + parts - 1) / parts;
  parts = (n + chunk - 1) / chunk;
  const int helpers = static_cast<int>(parts) - 1;
  p->ensure_workers(helpers);
  {
    std::lock_guard<std::mutex> lk(p->mu);
    p->n = n;
    p->chunk = chunk;
    p->fn = &fn;
    p->active = helpers;
    p->pending = helpers;
    p->error = nullptr;
    ++p->generation;
  }
  p->cv_work.notify_all();
  std::exception_ptr mine;
  t_inside_pool = true;
  try {
    fn(0, std::min(n, chunk));
  } catch (...) {
    mine = std::current_exception();
  }
  t_inside_pool = false;
  std::exception_ptr err;
  {
    std::unique_lock<std::mutex> lk(p->mu);
    p->cv_done.wait(lk, [&] { return p->pending == 0; });
    err = p->error;
    p->error = nullptr;
    p->fn = nullptr;
  }
  if (mine) std::rethrow_exception(mine);
  if (err) std::rethrow_exception(err);
}

}  // namespace edgeseg
