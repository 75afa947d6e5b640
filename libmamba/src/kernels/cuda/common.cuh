// Helpers shared by the CUDA kernels: fp32/bf16 conversion, 16-byte vector
// loads and stores of a thread's consecutive items, warp and block sums,
// launch checks. Private to src/kernels/cuda.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "mambakit/cuda/device.h"
#include "mambakit/error.h"

namespace mk::cuda::detail {

constexpr unsigned kFullMask = 0xffffffffu;

__host__ __device__ __forceinline__ float to_float(float x) { return x; }
__host__ __device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }

template <typename T> __host__ __device__ __forceinline__ T from_float(float x);
template <> __host__ __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __host__ __device__ __forceinline__ bf16 from_float<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

// Elements of T in one 16-byte vector.
template <typename T> struct Vec16;
template <> struct Vec16<float> { static constexpr int kWidth = 4; };
template <> struct Vec16<bf16> { static constexpr int kWidth = 8; };

__device__ __forceinline__ void unpack16(const uint4& raw, float* out) {  // 4 floats
  out[0] = __uint_as_float(raw.x);
  out[1] = __uint_as_float(raw.y);
  out[2] = __uint_as_float(raw.z);
  out[3] = __uint_as_float(raw.w);
}
// A 32-bit word holds two bf16, the lower address in the low half; bf16 is
// the top half of a float, so widening is a shift.
__device__ __forceinline__ void unpack_bf16x2(uint32_t w, float* out) {
  out[0] = __uint_as_float(w << 16);
  out[1] = __uint_as_float(w & 0xffff0000u);
}
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const bf16 l = __float2bfloat16_rn(lo), h = __float2bfloat16_rn(hi);
  return uint32_t(__bfloat16_as_ushort(l)) | (uint32_t(__bfloat16_as_ushort(h)) << 16);
}

// Loads kItems consecutive elements p[0..kItems) as floats; elements at
// index >= valid read as 0. With vec_ok (p 16-byte aligned) and a full
// group, one 16-byte load per vector instead of kItems scalar loads.
template <int kItems, typename T>
__device__ __forceinline__ void load_items(const T* p, int valid, bool vec_ok,
                                           float (&out)[kItems]) {
  constexpr int W = Vec16<T>::kWidth;
  if constexpr (kItems % W == 0) {
    if (vec_ok && valid >= kItems) {
      const uint4* v = reinterpret_cast<const uint4*>(p);
#pragma unroll
      for (int k = 0; k < kItems / W; ++k) {
        const uint4 raw = v[k];
        if constexpr (W == 4) {
          unpack16(raw, &out[4 * k]);
        } else {
          unpack_bf16x2(raw.x, &out[8 * k]);
          unpack_bf16x2(raw.y, &out[8 * k + 2]);
          unpack_bf16x2(raw.z, &out[8 * k + 4]);
          unpack_bf16x2(raw.w, &out[8 * k + 6]);
        }
      }
      return;
    }
  }
#pragma unroll
  for (int i = 0; i < kItems; ++i) out[i] = i < valid ? to_float(p[i]) : 0.f;
}

// Stores the first `valid` of kItems floats to p[0..valid) as T.
template <int kItems, typename T>
__device__ __forceinline__ void store_items(T* p, int valid, bool vec_ok,
                                            const float (&in)[kItems]) {
  constexpr int W = Vec16<T>::kWidth;
  if constexpr (kItems % W == 0) {
    if (vec_ok && valid >= kItems) {
      uint4* v = reinterpret_cast<uint4*>(p);
#pragma unroll
      for (int k = 0; k < kItems / W; ++k) {
        uint4 raw;
        if constexpr (W == 4) {
          raw.x = __float_as_uint(in[4 * k]);
          raw.y = __float_as_uint(in[4 * k + 1]);
          raw.z = __float_as_uint(in[4 * k + 2]);
          raw.w = __float_as_uint(in[4 * k + 3]);
        } else {
          raw.x = pack_bf16x2(in[8 * k], in[8 * k + 1]);
          raw.y = pack_bf16x2(in[8 * k + 2], in[8 * k + 3]);
          raw.z = pack_bf16x2(in[8 * k + 4], in[8 * k + 5]);
          raw.w = pack_bf16x2(in[8 * k + 6], in[8 * k + 7]);
        }
        v[k] = raw;
      }
      return;
    }
  }
#pragma unroll
  for (int i = 0; i < kItems; ++i)
    if (i < valid) p[i] = from_float<T>(in[i]);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// Sum (or max) over the block, returned to every thread. blockDim.x must be
// a multiple of 32; smem holds 32 values. Ends with a barrier, so smem may be
// reused at once.
template <typename V>
__device__ __forceinline__ V block_sum(V v, V* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  V total = 0;
  for (int w = 0; w < n_warps; ++w) total += smem[w];
  __syncthreads();
  return total;
}
__device__ __forceinline__ float block_max(float v, float* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  float m = smem[0];
  for (int w = 1; w < n_warps; ++w) m = fmaxf(m, smem[w]);
  __syncthreads();
  return m;
}

// Deterministic column sums: a kernel writes per-chunk partial sums
// ws (n_chunks, width) (each chunk a fixed range of rows); this one adds
// them to out (width), chunk by chunk in order.
template <int = 0>
__global__ void add_chunk_sums_kernel(const float* ws, int n_chunks, size_t width, float* out) {
  for (size_t j = blockIdx.x * size_t(blockDim.x) + threadIdx.x; j < width;
       j += size_t(gridDim.x) * blockDim.x) {
    float s = 0.f;
    for (int c = 0; c < n_chunks; ++c) s += ws[size_t(c) * width + j];
    out[j] += s;
  }
}

// Rows per chunk of those partial sums: enough rows that a chunk's work
// outweighs its partial write, few enough that there are many chunks.
constexpr int kRowsPerChunk = 64;

// expf, not the __expf intrinsic: the intrinsic's error grows with |x|
// (2 + 1.2|x| ulp), which the derivative x s (1 - s) amplifies; these run
// once per element, not per state, so the accurate version costs nothing.
__device__ __forceinline__ float sigmoidf_(float x) { return 1.f / (1.f + expf(-x)); }
// softplus with PyTorch's threshold (identity above 20), as the CPU op.
__device__ __forceinline__ float softplusf_(float x) { return x > 20.f ? x : log1pf(expf(x)); }

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Host side: refuse to run without a device, naming the op.
inline void require_device(const char* op) {
  if (!device_available())
    throw Error(std::string(op) + ": no CUDA device: " + device_unavailable_reason());
}

inline unsigned grid_for(size_t n, int threads, size_t max_blocks = 65535u * 16u) {
  size_t blocks = (n + size_t(threads) - 1) / size_t(threads);
  if (blocks > max_blocks) blocks = max_blocks;
  return unsigned(blocks ? blocks : 1);
}

}  // namespace mk::cuda::detail

// After every launch: a bad configuration shows here, not at a later sync.
#define MK_CUDA_LAUNCH_CHECK(what) \
  ::mk::cuda::check(int(cudaGetLastError()), what, __FILE__, __LINE__)
