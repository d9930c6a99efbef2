#include "allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>


namespace hvae {

namespace {

constexpr size_t kAlignment = 64;               // as c10::alloc_cpu (AVX-512 loads)
constexpr size_t kLargeBlock = size_t{1} << 20; // blocks of at least 1 MiB are cached
constexpr size_t kRounding = size_t{1} << 16;   // large requests are rounded up to 64 KiB

std::atomic<int> gCachingScopes{0};

size_t defaultLimit() {
  if (const char* e = std::getenv("HVAE_CPU_CACHE_MB")) {
    try {
      const long long mb = std::stoll(e);
      return mb <= 0 ? 0 : static_cast<size_t>(mb) << 20;
    } catch (...) {
    }
  }
  const long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
  const size_t quarter = pages > 0 && pageSize > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(pageSize) / 4 : 0;
  const size_t cap = size_t{4} << 30;
  return quarter == 0 ? cap : std::min(cap, quarter);
}

void* alignedAlloc(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, kAlignment, n) != 0 || p == nullptr) {
    throw std::bad_alloc();
  }
  return p;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(size_t limit) : limit_(limit) {}

  // c10::Allocator changed between LibTorch versions: allocate() is const in 1.13 and non-const from 2.3, and 2.3
  // added a pure virtual copy_data(). Declaring allocate() both ways and copy_data() without `override` matches
  // both interfaces without version checks (compat.h points here).
  c10::DataPtr allocate(size_t n) const { return self().allocateBlock(n); }
  c10::DataPtr allocate(size_t n) { return allocateBlock(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const {
    if (count > 0) std::memcpy(dest, src, count);
  }

  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::deleteBlock; }

  static CachingCpuAllocator* instance;

  void setLimit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = bytes;
    evictLocked(limit_);
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mu_);
    evictLocked(0);
  }

  CpuCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    CpuCacheStats s;
    s.installed = true;
    s.maxBytes = limit_;
    s.cachedBytes = cached_;
    s.cachedBlocks = lru_.size();
    s.liveBytes = live_;
    s.peakLiveBytes = peakLive_;
    s.hits = hits_;
    s.misses = misses_;
    return s;
  }

 private:
  struct Cached {
    void* ptr;
    size_t size;
  };
  using Lru = std::list<Cached>;  // oldest first

  // allocate() is const in LibTorch 1.13's c10::Allocator; the cache is this object's mutable state.
  CachingCpuAllocator& self() const { return const_cast<CachingCpuAllocator&>(*this); }

  c10::DataPtr allocateBlock(size_t n) {
    if (n == 0) return {nullptr, nullptr, &CachingCpuAllocator::deleteBlock, c10::Device(c10::DeviceType::CPU)};
    void* p = n >= kLargeBlock ? takeLarge(n) : alignedAlloc(n);
    return {p, p, &CachingCpuAllocator::deleteBlock, c10::Device(c10::DeviceType::CPU)};
  }

  static void deleteBlock(void* p) {
    if (p != nullptr) instance->release(p);
  }

  void* takeLarge(size_t n) {
    const size_t size = (n + kRounding - 1) / kRounding * kRounding;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = bySize_.find(size);
      if (it != bySize_.end()) {
        Lru::iterator entry = it->second;
        void* p = entry->ptr;
        const size_t got = entry->size;
        bySize_.erase(it);
        lru_.erase(entry);
        cached_ -= got;
        noteLiveLocked(p, got);
        ++hits_;
        return p;
      }
      ++misses_;
      // Keep the footprint within 1.5x the busiest moment seen: release old blocks first. (The slack matters: with
      // none, each miss evicts a block that a later request of the same step needs, and the misses never stop.)
      while (!lru_.empty() && live_ + cached_ + size > std::max(peakLive_ + peakLive_ / 2, size)) evictOldestLocked();
    }
    void* p = alignedAlloc(size);
    std::lock_guard<std::mutex> lock(mu_);
    noteLiveLocked(p, size);
    return p;
  }

  void noteLiveLocked(void* p, size_t size) {
    sizes_[p] = size;
    live_ += size;
    peakLive_ = std::max(peakLive_, live_);
  }

  void release(void* p) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = sizes_.find(p);
      if (it != sizes_.end()) {
        const size_t size = it->second;
        sizes_.erase(it);
        live_ -= size;
        if (size <= limit_ && gCachingScopes.load(std::memory_order_relaxed) > 0) {
          if (cached_ + size > limit_) evictLocked(limit_ - size);
          lru_.push_back({p, size});
          bySize_.emplace(size, std::prev(lru_.end()));
          cached_ += size;
          return;
        }
      }
    }
    std::free(p);  // a small block, or a large one that the limit does not let us keep
  }

  void evictOldestLocked() {
    Cached c = lru_.front();
    auto range = bySize_.equal_range(c.size);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == lru_.begin()) {
        bySize_.erase(it);
        break;
      }
    }
    lru_.pop_front();
    cached_ -= c.size;
    std::free(c.ptr);
  }

  void evictLocked(size_t keep) {
    while (!lru_.empty() && cached_ > keep) evictOldestLocked();
  }

  std::mutex mu_;
  size_t limit_;
  size_t cached_ = 0, live_ = 0, peakLive_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
  Lru lru_;
  std::multimap<size_t, Lru::iterator> bySize_;
  std::unordered_map<void*, size_t> sizes_;  // live large blocks
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;
std::once_flag gInstallOnce;

}  // namespace

CpuCacheScope::CpuCacheScope() { gCachingScopes.fetch_add(1); }
CpuCacheScope::~CpuCacheScope() { gCachingScopes.fetch_sub(1); }

void installCpuCachingAllocator() {
  std::call_once(gInstallOnce, [] {
    const size_t limit = defaultLimit();
    if (limit == 0) return;  // HVAE_CPU_CACHE_MB=0: keep LibTorch's allocator
    // Never destroyed: tensors may outlive every static destructor, and their deleter calls into this object.
    CachingCpuAllocator::instance = new CachingCpuAllocator(limit);
    // Priority 1 wins over LibTorch's default CPU allocator (registered at 0). Tensors that already exist keep
    // their own deleters, so installing late is safe.
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/1);
  });
}

void setCpuCacheLimit(size_t bytes) {
  if (CachingCpuAllocator::instance != nullptr) CachingCpuAllocator::instance->setLimit(bytes);
}

void emptyCpuCache() {
  if (CachingCpuAllocator::instance != nullptr) CachingCpuAllocator::instance->empty();
}

CpuCacheStats cpuCacheStats() {
  if (CachingCpuAllocator::instance == nullptr) return {};
  return CachingCpuAllocator::instance->stats();
}

}  // namespace hvae
