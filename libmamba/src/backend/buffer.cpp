// Buf<E> (a growable array on one device), the CPU's memory, device names.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

#include <sys/mman.h>

#include "mambakit/backend.h"
#include "mambakit/error.h"

namespace mk {

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  throw Error("unknown device '" + name + "' (known: cpu, cuda)");
}

const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

namespace {

// From this size on, a buffer lies in memory aligned to 2 MiB and the
// kernel is asked to back it with huge pages (Linux's transparent huge
// pages, where they are on for madvise'd memory, as Debian's default is);
// its last part short of a whole 2 MiB stays on 4 KiB pages, so nothing is
// rounded up. The kernels walk (B, L, D) activations along L, one row of D
// floats per step: with 4 KiB pages every step or two is another page, and
// the scan's backward alone touches seven such arrays. Measured on a 2-core
// Zen 4 (bench/README.md), a one-thread training step at d_model 256, 4
// layers, batch 8 x 256: 301-307 -> 294-299 ms over eight interleaved
// rounds.
constexpr size_t kHugePage = size_t(2) << 20;

// Each large buffer starts kSlotBytes x (its slot) past its 2 MiB boundary,
// the slots taken in turn. Were they all at one offset, element (t, d) of
// every (B, L, D) array would share its address bits below 4 KiB, and on
// Intel cores a load whose low 12 bits match an earlier store still in
// flight waits for it (4K aliasing): the AVX2 scan's backward, which loads
// rows of delta, u, z and dy while it stores rows of du, ddelta and dz, took
// a fifth longer so (bench/README.md). Slots 320 bytes apart (five cache
// lines) differ by no multiple of 1024 bytes, so rows of D floats for any
// D a multiple of 256 never line up across arrays.
constexpr size_t kSlotBytes = 320;
constexpr unsigned kSlots = 12;

// 64-byte aligned, zero-filled host memory (cache lines; AVX-512 loads);
// in huge pages, at a staggered offset, from kHugePage bytes on.
class CpuMemory final : public DeviceMemory {
 public:
  Device device() const override { return Device::cpu; }
  void* alloc_bytes(size_t bytes) override {
    const size_t rounded = bytes ? (bytes + 63) / 64 * 64 : 64;
    void* p = rounded < kHugePage ? alloc_small(rounded) : alloc_large(rounded);
    std::memset(p, 0, rounded);
    return p;
  }
  void free_bytes(void* p) override {
    if (!p) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto it = bases_.find(p);
      if (it != bases_.end()) {
        p = it->second;
        bases_.erase(it);
      }
    }
    std::free(p);
  }
  void upload_bytes(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download_bytes(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_bytes(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void zero_bytes(void* p, size_t bytes) override { std::memset(p, 0, bytes); }

 private:
  static void* alloc_small(size_t bytes) {
    void* p = nullptr;
    if (::posix_memalign(&p, 64, bytes) != 0) throw std::bad_alloc();
    return p;
  }
  // At the next slot's offset past a 2 MiB boundary; bases_ keeps where the
  // allocation starts, for free_bytes.
  void* alloc_large(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t offset = kSlotBytes * (next_slot_++ % kSlots);
    void* base = nullptr;
    if (::posix_memalign(&base, kHugePage, bytes + offset) != 0) throw std::bad_alloc();
    // Advice only: where huge pages are off or none is free, 4 KiB pages.
    ::madvise(base, bytes + offset, MADV_HUGEPAGE);
    void* p = static_cast<char*>(base) + offset;
    bases_.emplace(p, base);
    return p;
  }

  std::mutex mu_;
  std::unordered_map<void*, void*> bases_;  // a large buffer's start -> its allocation
  unsigned next_slot_ = 0;
};

}  // namespace

DeviceMemory& cpu_memory() {
  // Never destroyed: buffers in other static objects may be freed after
  // this function's statics would be.
  static CpuMemory* m = new CpuMemory;
  return *m;
}

template <typename E>
void Buf<E>::resize(size_t n) {
  MK_CHECK(mem_ != nullptr || n == 0, "Buf::resize: buffer has no device");
  if (n > cap_) {
    const size_t cap = std::max(n, cap_ + cap_ / 2);
    E* p = static_cast<E*>(mem_->alloc_bytes(cap * sizeof(E)));
    if (n_) mem_->copy_bytes(p, p_, n_ * sizeof(E));
    if (p_) mem_->free_bytes(p_);
    p_ = p;
    cap_ = cap;
  } else if (n > n_) {
    mem_->zero_bytes(p_ + n_, (n - n_) * sizeof(E));
  }
  n_ = n;
}

template <typename E>
void Buf<E>::bind(DeviceMemory& mem) {
  if (mem_ == &mem) return;
  if (!mem_ || !p_) {
    mem_ = &mem;
    const size_t n = n_;
    n_ = cap_ = 0;
    p_ = nullptr;
    resize(n);
    return;
  }
  std::vector<E> host = to_host();
  release();
  mem_ = &mem;
  resize(host.size());
  if (!host.empty()) mem_->upload_bytes(p_, host.data(), host.size() * sizeof(E));
}

template class Buf<float>;
template class Buf<double>;
template class Buf<int32_t>;

}  // namespace mk
