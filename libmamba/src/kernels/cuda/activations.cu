// Elementwise activations and fp32 <-> bf16 casts on CUDA: grid-stride loops,
// one element per thread per step (coalesced; these are bandwidth-bound).
#include "common.cuh"
#include "mambakit/ops/cuda/activations.h"

namespace mk::ops::cuda {

using mk::cuda::bf16;
using namespace mk::cuda::detail;

namespace {

constexpr int kThreads = 256;

enum class Act { SiluFwd, SiluBwd, SoftplusFwd, SoftplusBwd, SoftplusBwdFromOutput };

// y = f(x) (dy null) or dx = dy * f'(x); SoftplusBwdFromOutput: x is the
// forward's output y = softplus(pre) and f'(pre) = 1 - exp(-y).
template <Act kAct, typename T>
__global__ void act_kernel(const T* x, const T* dy, T* out, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const float v = to_float(x[i]);
    float r;
    if constexpr (kAct == Act::SiluFwd) {
      r = v * sigmoidf_(v);
    } else if constexpr (kAct == Act::SiluBwd) {
      const float s = sigmoidf_(v);
      r = to_float(dy[i]) * s * (1.f + v * (1.f - s));
    } else if constexpr (kAct == Act::SoftplusFwd) {
      r = softplusf_(v);
    } else if constexpr (kAct == Act::SoftplusBwd) {
      r = v > 20.f ? to_float(dy[i]) : to_float(dy[i]) * sigmoidf_(v);
    } else {
      r = v > 20.f ? to_float(dy[i]) : to_float(dy[i]) * -expm1f(-v);
    }
    out[i] = from_float<T>(r);
  }
}

template <Act kAct, typename T>
void run(const char* what, const T* x, const T* dy, T* out, size_t n, stream_t stream) {
  if (n == 0) return;
  MK_CHECK(x && out && (dy || kAct == Act::SiluFwd || kAct == Act::SoftplusFwd),
           std::string(what) + ": null pointer");
  require_device(what);
  act_kernel<kAct, T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, dy, out, n);
  MK_CUDA_LAUNCH_CHECK(what);
}

template <typename Tin, typename Tout>
__global__ void cast_kernel(const Tin* in, Tout* out, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    out[i] = from_float<Tout>(to_float(in[i]));
}

}  // namespace

template <typename T>
void silu_forward(const T* x, T* y, size_t n, stream_t stream) {
  run<Act::SiluFwd, T>("cuda::silu_forward", x, nullptr, y, n, stream);
}
template <typename T>
void silu_backward(const T* dy, const T* x, T* dx, size_t n, stream_t stream) {
  run<Act::SiluBwd, T>("cuda::silu_backward", x, dy, dx, n, stream);
}
template <typename T>
void softplus_forward(const T* x, T* y, size_t n, stream_t stream) {
  run<Act::SoftplusFwd, T>("cuda::softplus_forward", x, nullptr, y, n, stream);
}
template <typename T>
void softplus_backward(const T* dy, const T* x, T* dx, size_t n, stream_t stream) {
  run<Act::SoftplusBwd, T>("cuda::softplus_backward", x, dy, dx, n, stream);
}

template <typename T>
void softplus_backward_from_output(const T* dy, const T* y, T* dx, size_t n, stream_t stream) {
  run<Act::SoftplusBwdFromOutput, T>("cuda::softplus_backward_from_output", y, dy, dx, n, stream);
}

void cast(const float* in, bf16* out, size_t n, stream_t stream) {
  if (n == 0) return;
  require_device("cuda::cast");
  cast_kernel<float, bf16><<<grid_for(n, kThreads), kThreads, 0, stream>>>(in, out, n);
  MK_CUDA_LAUNCH_CHECK("cuda::cast");
}
void cast(const bf16* in, float* out, size_t n, stream_t stream) {
  if (n == 0) return;
  require_device("cuda::cast");
  cast_kernel<bf16, float><<<grid_for(n, kThreads), kThreads, 0, stream>>>(in, out, n);
  MK_CUDA_LAUNCH_CHECK("cuda::cast");
}

#define MK_INSTANTIATE(T)                                                          \
  template void silu_forward<T>(const T*, T*, size_t, stream_t);                   \
  template void silu_backward<T>(const T*, const T*, T*, size_t, stream_t);        \
  template void softplus_forward<T>(const T*, T*, size_t, stream_t);               \
  template void softplus_backward<T>(const T*, const T*, T*, size_t, stream_t);        \
  template void softplus_backward_from_output<T>(const T*, const T*, T*, size_t, stream_t);
MK_INSTANTIATE(float)
MK_INSTANTIATE(bf16)
#undef MK_INSTANTIATE

}  // namespace mk::ops::cuda
