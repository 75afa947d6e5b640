// CUDA device plumbing: is there a device, error checking, a caching
// allocator, an RAII device buffer and an RAII stream. Only built (and only
// to be included) when MAMBAKIT_HAVE_CUDA is defined.
//
// Nothing here touches the GPU at static-initialisation time, and every
// runtime call's error code is checked: on a machine with the CUDA toolkit
// but no driver or no GPU, device_available() returns false with a reason,
// and anything that needs a device throws mk::Error instead of crashing.
#pragma once
#include <cuda_bf16.h>

#include <cstddef>
#include <string>
#include <utility>

struct CUstream_st;  // cudaStream_t is CUstream_st*; this header avoids cuda_runtime.h

namespace mk::cuda {

using stream_t = CUstream_st*;  // nullptr: the legacy default stream
using bf16 = __nv_bfloat16;

// True when the runtime reports at least one usable device. Checked once
// (the answer is cached); never throws, never aborts without a driver.
bool device_available();
// Why device_available() is false (the runtime's own message, e.g. "CUDA
// driver version is insufficient" or "no CUDA-capable device"); "" if true.
std::string device_unavailable_reason();
// "NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB)" for the current device.
std::string device_description();

// Throws mk::Error("<what> (<file>:<line>): <CUDA error name>: <message>")
// when code (a cudaError_t) is not cudaSuccess.
void check(int code, const char* what, const char* file, int line);
#define MK_CUDA_CHECK(expr) ::mk::cuda::check(int(expr), #expr, __FILE__, __LINE__)

// Caching allocator. Device memory is requested from cudaMalloc in rounded
// sizes and, when freed, kept for reuse by a later allocation of the same
// rounded size on the same stream (so reuse is ordered after every kernel
// that used the block on that stream, without a synchronisation). On
// cudaMalloc failure the cache is released and the allocation retried once.
// Thread-safe.
void* device_alloc(size_t bytes, stream_t stream = nullptr);
void device_free(void* ptr);
// Returns every cached (free) block to the driver.
void empty_cache();
struct AllocatorStats {
  size_t in_use = 0;   // bytes handed out and not freed
  size_t cached = 0;   // bytes held for reuse
  size_t peak = 0;     // maximum of in_use
  size_t n_malloc = 0; // cudaMalloc calls made
};
AllocatorStats allocator_stats();

// Host <-> device copies on a stream; synchronous with respect to the host
// (they return once the copy is done), so host buffers may be reused at once.
void copy_to_device(void* dst, const void* src, size_t bytes, stream_t stream = nullptr);
void copy_to_host(void* dst, const void* src, size_t bytes, stream_t stream = nullptr);
void memset_async(void* dst, int value, size_t bytes, stream_t stream = nullptr);
void synchronize(stream_t stream = nullptr);

// A typed device array from the caching allocator, freed on destruction.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n, stream_t stream = nullptr)
      : n_(n), ptr_(n ? static_cast<T*>(device_alloc(n * sizeof(T), stream)) : nullptr) {}
  ~DeviceBuffer() { device_free(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : n_(o.n_), ptr_(o.ptr_) { o.n_ = 0; o.ptr_ = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      device_free(ptr_);
      n_ = std::exchange(o.n_, 0);
      ptr_ = std::exchange(o.ptr_, nullptr);
    }
    return *this;
  }

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }

  // Whole-buffer copies from / to host memory (host holds size() elements).
  void upload(const T* host, stream_t s = nullptr) { copy_to_device(ptr_, host, bytes(), s); }
  void download(T* host, stream_t s = nullptr) const { copy_to_host(host, ptr_, bytes(), s); }
  void fill_bytes(int value, stream_t s = nullptr) { memset_async(ptr_, value, bytes(), s); }

 private:
  size_t n_ = 0;
  T* ptr_ = nullptr;
};

// An owned, non-blocking CUDA stream.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  stream_t get() const { return s_; }
  void synchronize() const;

 private:
  stream_t s_ = nullptr;
};

}  // namespace mk::cuda
