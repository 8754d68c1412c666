// A small persistent thread pool for row-parallel kernels.
//
// parallel_for(n, fn) splits [0, n) into at most num_threads() contiguous chunks and calls
// fn(begin, end) once per chunk; the calling thread runs the first chunk. Kernels compute every
// output element independently, so results do not depend on the thread count.
//
// - Size: set_num_threads(n), else env EDGESEG_NUM_THREADS, else std::thread::hardware_concurrency().
// - Calls from several threads at once are serialised; a nested call (from inside fn) runs inline.
// - Fork-safe: a child process that inherits the pool starts its own workers on first use.
// - An exception thrown by fn is rethrown in the caller (the first one, if several).
#pragma once

#include <cstdint>
#include <functional>

namespace edgeseg {

int get_num_threads();
// n >= 1. Takes effect for the next parallel_for.
void set_num_threads(int n);
// Threads the environment/hardware would give (EDGESEG_NUM_THREADS or hardware cores).
int default_num_threads();

// min_chunk: do not make chunks smaller than this many items (avoids waking threads for tiny work).
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                  int64_t min_chunk = 1);

// Waking a worker costs tens of microseconds (more on a busy or virtualised machine), so a chunk
// should hold at least this much work (in elements read or written, roughly; ~0.1 ms on one core).
constexpr int64_t kMinChunkWork = int64_t(1) << 18;

// Items per chunk for parallel_for when one item is `work_per_item` elements of work.
inline int64_t min_chunk_for(int64_t work_per_item) {
  return work_per_item >= kMinChunkWork ? 1 : (kMinChunkWork + work_per_item - 1) / work_per_item;
}

}  // namespace edgeseg
