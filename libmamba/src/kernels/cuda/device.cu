// Device discovery, error checking, the caching allocator and streams.
#include <cuda_runtime.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "mambakit/cuda/device.h"
#include "mambakit/error.h"

namespace mk::cuda {

namespace {

struct Availability {
  bool ok = false;
  std::string reason;
};

// Asked once. cudaGetDeviceCount is the first runtime call: without a driver
// it returns cudaErrorInsufficientDriver (or cudaErrorNoDevice) rather than
// failing hard, and the runtime stays usable for further (failing) calls.
const Availability& availability() {
  static const Availability a = [] {
    Availability r;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      r.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(e) + ": " +
                 cudaGetErrorString(e);
      cudaGetLastError();  // clear it, so later calls are judged on their own
    } else if (n == 0) {
      r.reason = "cudaGetDeviceCount reports 0 devices";
    } else {
      r.ok = true;
    }
    return r;
  }();
  return a;
}

// Sizes are rounded so that buffers of nearby sizes share cache entries:
// 512-byte steps up to 1 MiB, 2 MiB steps above.
size_t round_size(size_t bytes) {
  constexpr size_t kSmallStep = 512, kLargeStep = size_t(2) << 20, kSmallMax = size_t(1) << 20;
  const size_t step = bytes <= kSmallMax ? kSmallStep : kLargeStep;
  return (bytes + step - 1) / step * step;
}

class CachingAllocator {
 public:
  void* alloc(size_t bytes, stream_t stream) {
    if (bytes == 0) return nullptr;
    if (!device_available())
      throw Error("cuda::device_alloc(" + std::to_string(bytes) +
                  " bytes): no CUDA device: " + device_unavailable_reason());
    const size_t size = round_size(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find({stream, size});
    void* p = nullptr;
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached -= size;
    } else {
      cudaError_t e = cudaMalloc(&p, size);
      if (e == cudaErrorMemoryAllocation) {  // give the cache back and retry once
        cudaGetLastError();
        release_cache_locked();
        e = cudaMalloc(&p, size);
      }
      if (e != cudaSuccess) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        cudaGetLastError();
        throw Error("cuda::device_alloc: cudaMalloc of " + std::to_string(size) +
                    " bytes failed (" + cudaGetErrorString(e) + "); device has " +
                    std::to_string(free_b >> 20) + " MiB free of " +
                    std::to_string(total_b >> 20) + " MiB, " +
                    std::to_string(stats_.in_use >> 20) + " MiB in use by mambakit");
      }
      ++stats_.n_malloc;
    }
    live_[p] = {size, stream};
    stats_.in_use += size;
    stats_.peak = std::max(stats_.peak, stats_.in_use);
    return p;
  }

  void free(void* p) noexcept {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      std::fprintf(stderr, "mambakit: cuda::device_free of a pointer it did not allocate (%p)\n", p);
      return;
    }
    const Block b = it->second;
    live_.erase(it);
    stats_.in_use -= b.size;
    stats_.cached += b.size;
    free_[{b.stream, b.size}].push_back(p);
  }

  void empty() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cache_locked();
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  struct Block {
    size_t size;
    stream_t stream;
  };
  // Cached blocks may still be in use by queued kernels of their stream;
  // cudaFree waits for the device, so releasing is safe.
  void release_cache_locked() {
    for (auto& [key, ptrs] : free_)
      for (void* p : ptrs) cudaFree(p);
    free_.clear();
    stats_.cached = 0;
    cudaGetLastError();
  }

  std::mutex mu_;
  std::map<std::pair<stream_t, size_t>, std::vector<void*>> free_;
  std::unordered_map<void*, Block> live_;
  AllocatorStats stats_;
};

// Never destroyed: at exit the runtime may already be torn down, and freeing
// then would fail; the driver reclaims the memory with the process.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator;
  return *a;
}

}  // namespace

bool device_available() { return availability().ok; }
std::string device_unavailable_reason() { return availability().reason; }

std::string device_description() {
  if (!device_available()) return "no CUDA device (" + device_unavailable_reason() + ")";
  int dev = 0;
  MK_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  MK_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  char mem[32];
  std::snprintf(mem, sizeof mem, "%.1f GiB", double(prop.totalGlobalMem) / double(size_t(1) << 30));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
         std::to_string(prop.minor) + ", " + std::to_string(prop.multiProcessorCount) + " SMs, " +
         mem + ")";
}

void check(int code, const char* what, const char* file, int line) {
  if (code == int(cudaSuccess)) return;
  const auto e = static_cast<cudaError_t>(code);
  cudaGetLastError();  // reset non-sticky errors so the next call is judged on its own
  throw Error(std::string(what) + " (" + file + ":" + std::to_string(line) +
              "): " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

void* device_alloc(size_t bytes, stream_t stream) { return allocator().alloc(bytes, stream); }
void device_free(void* ptr) { allocator().free(ptr); }
void empty_cache() { allocator().empty(); }
AllocatorStats allocator_stats() { return allocator().stats(); }

void copy_to_device(void* dst, const void* src, size_t bytes, stream_t stream) {
  if (bytes == 0) return;
  MK_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
  MK_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void copy_to_host(void* dst, const void* src, size_t bytes, stream_t stream) {
  if (bytes == 0) return;
  MK_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
  MK_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void memset_async(void* dst, int value, size_t bytes, stream_t stream) {
  if (bytes == 0) return;
  MK_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, stream));
}

void synchronize(stream_t stream) { MK_CUDA_CHECK(cudaStreamSynchronize(stream)); }

Stream::Stream() {
  if (!device_available())
    throw Error("cuda::Stream: no CUDA device: " + device_unavailable_reason());
  MK_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
}

// Synchronised before destruction: the allocator keys cached blocks by
// stream handle, and a new stream may reuse this handle's value.
Stream::~Stream() {
  if (!s_) return;
  cudaStreamSynchronize(s_);
  cudaStreamDestroy(s_);
  cudaGetLastError();
}

void Stream::synchronize() const { MK_CUDA_CHECK(cudaStreamSynchronize(s_)); }

}  // namespace mk::cuda
