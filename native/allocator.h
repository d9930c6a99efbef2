// A caching CPU allocator for LibTorch tensors.
//
// Why: the addon computes on libuv worker threads, and glibc gives each such thread its own malloc arena. An arena
// other than the main one grows in 64 MiB heaps that it unmaps as soon as they are empty, so every training step
// hands its whole working set (hundreds of MB of activations) back to the kernel and then page-faults it in again,
// zero-filled. Measured on a 2-core Xeon: 29% of a training step's time in the kernel (clear_page), against 7% for
// the same step in PyTorch, whose work runs on the main thread and so in the main arena. Keeping freed large blocks
// for reuse takes the step from 39 to 55 images/s there (bench/RESULTS.md).
//
// What it does: blocks of at least 1 MiB that are freed while a training step runs (CpuCacheScope) are kept for
// reuse by a later request of the same size; every request is served from the cache when it can be. Scoring does
// not add to the cache: it gained only 3% from it and its peak memory grew by half (bench/RESULTS.md). Two bounds
// keep memory honest:
//   * the cached bytes never exceed a limit (HVAE_CPU_CACHE_MB, default min(4 GiB, a quarter of RAM);
//     setCpuCache({ maxBytes }) at run time; 0 turns caching off), and
//   * a request that misses the cache first evicts old blocks until live + cached + request fits in 1.5x the peak
//     live size seen so far, so the cache cannot grow the footprint far beyond what the process needed at its
//     busiest (the slack lets a repeated step be served entirely from the cache; see allocator.cc).
// Small blocks go straight to the C library. HVAE_CPU_CACHE_MB=0 at start-up leaves LibTorch's own allocator in place.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hvae {

struct CpuCacheStats {
  bool installed = false;     // whether this allocator serves LibTorch's CPU tensors
  size_t maxBytes = 0;        // the limit on cached bytes
  size_t cachedBytes = 0;     // bytes held for reuse now
  size_t cachedBlocks = 0;
  size_t liveBytes = 0;       // bytes in large blocks held by tensors now
  size_t peakLiveBytes = 0;   // the most live bytes seen
  uint64_t hits = 0;          // large requests served from the cache
  uint64_t misses = 0;        // large requests that went to the C library
};

// While one of these is alive on any thread, freed large blocks are kept for reuse (trainStep holds one).
class CpuCacheScope {
 public:
  CpuCacheScope();
  ~CpuCacheScope();
  CpuCacheScope(const CpuCacheScope&) = delete;
  CpuCacheScope& operator=(const CpuCacheScope&) = delete;
};

// Installs the allocator as LibTorch's CPU allocator (once; later calls do nothing). Reads HVAE_CPU_CACHE_MB.
void installCpuCachingAllocator();
// Sets the limit on cached bytes, releasing cached blocks above it (0 releases all and disables caching).
void setCpuCacheLimit(size_t bytes);
// Releases every cached block to the C library (which may return it to the system).
void emptyCpuCache();
CpuCacheStats cpuCacheStats();

}  // namespace hvae
