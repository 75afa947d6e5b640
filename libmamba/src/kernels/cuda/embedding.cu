// Token embedding on CUDA: one block row per token, threads over the
// embedding dimension (coalesced row copies). Bad ids are flagged on the
// device and reported by the host call.
#include <algorithm>

#include "common.cuh"
#include "mambakit/ops/cuda/embedding.h"

namespace mk::ops::cuda {

using mk::cuda::bf16;
using namespace mk::cuda::detail;

namespace {

constexpr int kThreads = 128;
// The flag's initial value: memset to bytes 0x7f, above any position.
constexpr int kNoBad = 0x7f7f7f7f;

// bad: the lowest position holding an id outside [0, vocab) (kNoBad: none).
template <typename T>
__global__ void embedding_fwd_kernel(const int32_t* ids, const T* table, T* out, int n, int vocab,
                                     int dim, int* bad) {
  for (int i = blockIdx.x; i < n; i += gridDim.x) {
    const int id = ids[i];
    T* dst = out + size_t(i) * dim;
    if (id < 0 || id >= vocab) {
      if (threadIdx.x == 0) atomicMin(bad, i);
      for (int j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = from_float<T>(0.f);
      continue;
    }
    const T* src = table + size_t(id) * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = src[j];
  }
}

template <typename T>
__global__ void embedding_bwd_kernel(const int32_t* ids, const T* dout, float* dtable, int n,
                                     int vocab, int dim, int* bad) {
  for (int i = blockIdx.x; i < n; i += gridDim.x) {
    const int id = ids[i];
    if (id < 0 || id >= vocab) {
      if (threadIdx.x == 0) atomicMin(bad, i);
      continue;
    }
    const T* src = dout + size_t(i) * dim;
    float* dst = dtable + size_t(id) * dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) atomicAdd(dst + j, to_float(src[j]));
  }
}

// Reads the flag back (synchronising) and throws on a bad id.
void report_bad_id(const char* where, const int* bad_dev, const int32_t* ids, int vocab,
                   stream_t stream) {
  int bad = kNoBad;
  mk::cuda::copy_to_host(&bad, bad_dev, sizeof bad, stream);
  if (bad == kNoBad) return;
  int32_t id = 0;
  mk::cuda::copy_to_host(&id, ids + bad, sizeof id, stream);
  throw Error(std::string(where) + ": token id " + std::to_string(id) + " at position " +
              std::to_string(bad) + " is outside the vocabulary [0, " + std::to_string(vocab) +
              ")");
}

void check_args(const char* where, const void* ids, const void* a, const void* b, int n,
                int vocab, int dim) {
  MK_CHECK(n >= 0 && vocab > 0 && dim > 0,
           std::string(where) + ": bad sizes n=" + std::to_string(n) + " vocab=" +
               std::to_string(vocab) + " dim=" + std::to_string(dim));
  MK_CHECK(n == 0 || (ids && a && b), std::string(where) + ": null pointer");
  require_device(where);
}

}  // namespace

template <typename T>
void embedding_forward(const int32_t* ids, const T* table, T* out, int n, int vocab, int dim,
                       stream_t stream) {
  check_args("cuda::embedding_forward", ids, table, out, n, vocab, dim);
  if (n == 0) return;
  mk::cuda::DeviceBuffer<int> bad(1, stream);
  bad.fill_bytes(0x7f, stream);  // kNoBad
  const unsigned blocks = unsigned(std::min(n, 65535 * 8));
  embedding_fwd_kernel<T><<<blocks, kThreads, 0, stream>>>(ids, table, out, n, vocab, dim,
                                                           bad.data());
  MK_CUDA_LAUNCH_CHECK("cuda::embedding_forward");
  report_bad_id("cuda::embedding_forward", bad.data(), ids, vocab, stream);
}

template <typename T>
void embedding_backward(const int32_t* ids, const T* dout, float* dtable, int n, int vocab,
                        int dim, stream_t stream) {
  check_args("cuda::embedding_backward", ids, dout, dtable, n, vocab, dim);
  if (n == 0) return;
  mk::cuda::DeviceBuffer<int> bad(1, stream);
  bad.fill_bytes(0x7f, stream);
  const unsigned blocks = unsigned(std::min(n, 65535 * 8));
  embedding_bwd_kernel<T><<<blocks, kThreads, 0, stream>>>(ids, dout, dtable, n, vocab, dim,
                                                           bad.data());
  MK_CUDA_LAUNCH_CHECK("cuda::embedding_backward");
  report_bad_id("cuda::embedding_backward", bad.data(), ids, vocab, stream);
}

#define MK_INSTANTIATE(T)                                                                     \
  template void embedding_forward<T>(const int32_t*, const T*, T*, int, int, int, stream_t); \
  template void embedding_backward<T>(const int32_t*, const T*, float*, int, int, int, stream_t);
MK_INSTANTIATE(float)
MK_INSTANTIATE(bf16)
#undef MK_INSTANTIATE

}  // namespace mk::ops::cuda
