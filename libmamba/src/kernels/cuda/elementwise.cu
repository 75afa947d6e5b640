// Small elementwise, layout and gating ops on CUDA (see
// mambakit/ops/cuda/elementwise.h). All bandwidth-bound: grid-stride loops
// over "units" of V = 4 consecutive floats (one float4 load/store per
// operand) when every pointer is 16-byte aligned and, for row-structured
// ops, the row length is a multiple of 4, so that a unit never straddles a
// row; V = 1 otherwise. The flat elementwise ops finish the n % 4 tail with
// scalar steps. The transpose goes through 32x33 shared-memory tiles; the
// dD reduction writes per-chunk partial sums, added in a fixed order.
#include <algorithm>
#include <string>
#include <type_traits>

#include "common.cuh"
#include "mambakit/ops/cuda/elementwise.h"

namespace mk::ops::cuda {

using namespace mk::cuda::detail;

namespace {

constexpr int kThreads = 256;

// A quiet NaN: what an output becomes when its sequence length is invalid.
__device__ __forceinline__ float qnan() { return __int_as_float(0x7fc00000); }

// V consecutive floats at p (V == 4: p is 16-byte aligned).
template <int V>
__device__ __forceinline__ void ld(const float* p, float (&v)[V]) {
  if constexpr (V == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x;
    v[1] = t.y;
    v[2] = t.z;
    v[3] = t.w;
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] = p[k];
  }
}
template <int V>
__device__ __forceinline__ void st(float* p, const float (&v)[V]) {
  if constexpr (V == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
#pragma unroll
    for (int k = 0; k < V; ++k) p[k] = v[k];
  }
}

__device__ __forceinline__ size_t thread_index() {
  return blockIdx.x * size_t(blockDim.x) + threadIdx.x;
}
__device__ __forceinline__ size_t grid_stride() { return size_t(gridDim.x) * blockDim.x; }

template <typename T>
constexpr void float_only() {
  static_assert(std::is_same_v<T, float>, "mk::ops::cuda elementwise ops are fp32 only");
}

void check_ptr(bool ok, const char* what) {
  MK_CHECK(ok, std::string(what) + ": null pointer");
}

// ---------------------------------------------------------------------------
// Flat elementwise maps: NI inputs, NO outputs, out = f(in) per element. An
// accumulating op lists its output among the inputs too; each element is
// read and written by one thread, so an output may be the same array as an
// input.
// ---------------------------------------------------------------------------

template <int NI, int NO>
struct Ptrs {
  const float* in[NI];
  float* out[NO];
};

template <int V, int NI, int NO, typename F>
__global__ void map_kernel(Ptrs<NI, NO> p, size_t n, F f) {
  const size_t n_units = n / V;
  for (size_t i = thread_index(); i < n_units; i += grid_stride()) {
    float in[NI][V], out[NO][V];
#pragma unroll
    for (int k = 0; k < NI; ++k) ld<V>(p.in[k] + i * V, in[k]);
#pragma unroll
    for (int e = 0; e < V; ++e) {
      float a[NI], o[NO];
#pragma unroll
      for (int k = 0; k < NI; ++k) a[k] = in[k][e];
      f(a, o);
#pragma unroll
      for (int k = 0; k < NO; ++k) out[k][e] = o[k];
    }
#pragma unroll
    for (int k = 0; k < NO; ++k) st<V>(p.out[k] + i * V, out[k]);
  }
  if constexpr (V > 1) {  // the last n % V elements
    for (size_t i = n_units * V + thread_index(); i < n; i += grid_stride()) {
      float a[NI], o[NO];
#pragma unroll
      for (int k = 0; k < NI; ++k) a[k] = p.in[k][i];
      f(a, o);
#pragma unroll
      for (int k = 0; k < NO; ++k) p.out[k][i] = o[k];
    }
  }
}

template <int NI, int NO, typename F>
void run_map(const char* what, const Ptrs<NI, NO>& p, size_t n, F f, stream_t stream) {
  if (n == 0) return;
  bool vec = true;
  for (int k = 0; k < NI; ++k) {
    check_ptr(p.in[k] != nullptr, what);
    vec = vec && aligned16(p.in[k]);
  }
  for (int k = 0; k < NO; ++k) {
    check_ptr(p.out[k] != nullptr, what);
    vec = vec && aligned16(p.out[k]);
  }
  require_device(what);
  if (vec)
    map_kernel<4, NI, NO, F><<<grid_for((n + 3) / 4, kThreads), kThreads, 0, stream>>>(p, n, f);
  else
    map_kernel<1, NI, NO, F><<<grid_for(n, kThreads), kThreads, 0, stream>>>(p, n, f);
  MK_CUDA_LAUNCH_CHECK(what);
}

struct AddF {  // in {a, b}
  __device__ void operator()(const float (&a)[2], float (&o)[1]) const { o[0] = a[0] + a[1]; }
};
struct AxpyF {  // in {x, y}
  float alpha;
  __device__ void operator()(const float (&a)[2], float (&o)[1]) const {
    o[0] = fmaf(alpha, a[0], a[1]);
  }
};
struct ScaleF {  // in {y}
  float alpha;
  __device__ void operator()(const float (&a)[1], float (&o)[1]) const { o[0] = alpha * a[0]; }
};
struct NegExpF {  // in {x}
  __device__ void operator()(const float (&a)[1], float (&o)[1]) const { o[0] = -expf(a[0]); }
};
struct MulAccF {  // in {a, b, y}
  __device__ void operator()(const float (&a)[3], float (&o)[1]) const {
    o[0] = fmaf(a[0], a[1], a[2]);
  }
};
// Phi by normcdff (erfc-based, accurate in the left tail where 1 + erf(.)
// cancels); the same function as 0.5 (1 + erf(x / sqrt 2)).
struct GeluFwdF {  // in {x}
  __device__ void operator()(const float (&a)[1], float (&o)[1]) const {
    o[0] = a[0] * normcdff(a[0]);
  }
};
struct GeluBwdF {  // in {dy, x}
  __device__ void operator()(const float (&a)[2], float (&o)[1]) const {
    const float x = a[1];
    const float pdf = 0.3989422804014327f * expf(-0.5f * x * x);  // 1/sqrt(2 pi) e^{-x^2/2}
    o[0] = a[0] * fmaf(x, pdf, normcdff(x));
  }
};
struct SwigluFwdF {  // in {g, u}
  __device__ void operator()(const float (&a)[2], float (&o)[1]) const {
    o[0] = a[0] * sigmoidf_(a[0]) * a[1];
  }
};
struct SwigluBwdF {  // in {dy, g, u}, out {dg, du}
  __device__ void operator()(const float (&a)[3], float (&o)[2]) const {
    const float dy = a[0], g = a[1], u = a[2], s = sigmoidf_(g);
    o[0] = dy * u * s * (1.f + g * (1.f - s));
    o[1] = dy * g * s;
  }
};

// ---------------------------------------------------------------------------
// Transpose: (batch, rows, cols) -> (batch, cols, rows), one 32x32 tile per
// block step. Loads run along cols and stores along rows, both coalesced;
// the padded tile row (33) keeps the column reads free of bank conflicts.
// ---------------------------------------------------------------------------

constexpr int kTile = 32, kTileRows = 8;  // block (32, 8): 4 elements per thread

__global__ void __launch_bounds__(kTile* kTileRows)
    transpose_kernel(const float* x, float* y, size_t batch, size_t rows, size_t cols) {
  __shared__ float tile[kTile][kTile + 1];
  const size_t tiles_r = (rows + kTile - 1) / kTile, tiles_c = (cols + kTile - 1) / kTile;
  const size_t per_batch = rows * cols;
  const int tx = threadIdx.x, ty = threadIdx.y;
  // Loop bounds depend on blockIdx only: the barriers below are uniform.
  for (size_t b = blockIdx.z; b < batch; b += gridDim.z)
    for (size_t tr = blockIdx.y; tr < tiles_r; tr += gridDim.y)
      for (size_t tc = blockIdx.x; tc < tiles_c; tc += gridDim.x) {
        const float* xb = x + b * per_batch;
        float* yb = y + b * per_batch;
        const size_t r0 = tr * kTile, c0 = tc * kTile;
        // tile[i][j] = x[b, r0 + i, c0 + j]
#pragma unroll
        for (int k = 0; k < kTile; k += kTileRows) {
          const size_t r = r0 + ty + k, c = c0 + tx;
          if (r < rows && c < cols) tile[ty + k][tx] = xb[r * cols + c];
        }
        __syncthreads();
        // y[b, c0 + i, r0 + j] = x[b, r0 + j, c0 + i] = tile[j][i]
#pragma unroll
        for (int k = 0; k < kTile; k += kTileRows) {
          const size_t c = c0 + ty + k, r = r0 + tx;
          if (c < cols && r < rows) yb[c * rows + r] = tile[tx][ty + k];
        }
        __syncthreads();
      }
}

// ---------------------------------------------------------------------------
// Per-channel scale. y[r, h] += D[h] x[r, h] over n = rows * H; with V = 4,
// H % 4 == 0, so a unit's 4 channels are consecutive within one row.
// ---------------------------------------------------------------------------

template <int V>
__global__ void channel_scale_kernel(const float* x, const float* D, float* y, size_t n,
                                     size_t H) {
  for (size_t i = thread_index(); i < n / V; i += grid_stride()) {
    const size_t e = i * V, h = e % H;
    float xv[V], dv[V], yv[V];
    ld<V>(x + e, xv);
    ld<V>(D + h, dv);
    ld<V>(y + e, yv);
#pragma unroll
    for (int k = 0; k < V; ++k) yv[k] = fmaf(dv[k], xv[k], yv[k]);
    st<V>(y + e, yv);
  }
}

// ws[c, h] = sum over chunk c's rows [c rpc, min(rows, (c+1) rpc)) of
// dy[r, h] x[r, h], rows in order.
__global__ void channel_dot_partial_kernel(const float* dy, const float* x, size_t rows,
                                           size_t H, size_t rows_per_chunk, size_t n_chunks,
                                           float* ws) {
  const size_t h = thread_index();
  if (h >= H) return;
  for (size_t c = blockIdx.y; c < n_chunks; c += gridDim.y) {
    const size_t r0 = c * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
    float s = 0.f;
    for (size_t r = r0; r < r1; ++r) s = fmaf(dy[r * H + h], x[r * H + h], s);
    ws[c * H + h] = s;
  }
}

// ---------------------------------------------------------------------------
// Sequence pooling.
// ---------------------------------------------------------------------------

constexpr int kPoolCols = 32, kPoolRows = 8;  // block (32, 8)

// Block (32 channels, 8 time lanes) per (b, channel tile): lane ty sums
// t = ty, ty + 8, ...; the 8 partial sums are added in lane order.
__global__ void __launch_bounds__(kPoolCols* kPoolRows)
    pool_fwd_kernel(const float* h, const int32_t* lengths, float* pooled, int B, int L, int D,
                    bool last) {
  __shared__ float part[kPoolRows][kPoolCols + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const size_t d = size_t(blockIdx.x) * kPoolCols + tx;
  for (int b = blockIdx.y; b < B; b += gridDim.y) {  // uniform over the block
    const int n = lengths ? lengths[b] : L;
    const bool bad = n < 1 || n > L;
    float s = 0.f;
    if (!bad && d < size_t(D)) {
      const float* hb = h + size_t(b) * L * D + d;
      if (last) {
        if (ty == 0) s = hb[size_t(n - 1) * D];
      } else {
        for (int t = ty; t < n; t += kPoolRows) s += hb[size_t(t) * D];
      }
    }
    part[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && d < size_t(D)) {
      float out;
      if (bad) {
        out = qnan();
      } else if (last) {
        out = part[0][tx];
      } else {
        float tot = 0.f;
#pragma unroll
        for (int k = 0; k < kPoolRows; ++k) tot += part[k][tx];
        out = tot / float(n);
      }
      pooled[size_t(b) * D + d] = out;
    }
    __syncthreads();
  }
}

// dh (B, L, D) written element by element; V = 4 needs D % 4 == 0.
template <int V>
__global__ void pool_bwd_kernel(const float* dpooled, const int32_t* lengths, float* dh, int B,
                                int L, int D, bool last) {
  const size_t LD = size_t(L) * D, n = size_t(B) * LD;
  for (size_t i = thread_index(); i < n / V; i += grid_stride()) {
    const size_t e = i * V, b = e / LD, rem = e - b * LD, t = rem / size_t(D),
                 d = rem - t * size_t(D);
    const int len = lengths ? lengths[b] : L;
    float out[V];
    if (len < 1 || len > L) {
#pragma unroll
      for (int k = 0; k < V; ++k) out[k] = qnan();
    } else if (last ? t == size_t(len - 1) : t < size_t(len)) {
      ld<V>(dpooled + b * size_t(D) + d, out);
      const float s = last ? 1.f : 1.f / float(len);
#pragma unroll
      for (int k = 0; k < V; ++k) out[k] *= s;
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) out[k] = 0.f;
    }
    st<V>(dh + e, out);
  }
}

// ---------------------------------------------------------------------------
// GLU over rows of 2w: unit e of y (rows, w) is row r = e / w, column j.
// ---------------------------------------------------------------------------

template <int V>
__global__ void glu_fwd_kernel(const float* x, float* y, size_t rows, size_t w) {
  const size_t n = rows * w;
  for (size_t i = thread_index(); i < n / V; i += grid_stride()) {
    const size_t e = i * V, r = e / w, j = e - r * w;
    const float* xr = x + r * 2 * w;
    float a[V], g[V], o[V];
    ld<V>(xr + j, a);
    ld<V>(xr + w + j, g);
#pragma unroll
    for (int k = 0; k < V; ++k) o[k] = a[k] * sigmoidf_(g[k]);
    st<V>(y + e, o);
  }
}

// d a = dy s, d b = dy a s (1 - s), s = sigmoid(b)
template <int V>
__global__ void glu_bwd_kernel(const float* dy, const float* x, float* dx, size_t rows,
                               size_t w) {
  const size_t n = rows * w;
  for (size_t i = thread_index(); i < n / V; i += grid_stride()) {
    const size_t e = i * V, r = e / w, j = e - r * w;
    const float* xr = x + r * 2 * w;
    float* dxr = dx + r * 2 * w;
    float a[V], g[V], gy[V], da[V], db[V];
    ld<V>(xr + j, a);
    ld<V>(xr + w + j, g);
    ld<V>(dy + e, gy);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float s = sigmoidf_(g[k]);
      da[k] = gy[k] * s;
      db[k] = gy[k] * a[k] * s * (1.f - s);
    }
    st<V>(dxr + j, da);
    st<V>(dxr + w + j, db);
  }
}

// ---------------------------------------------------------------------------
// Pair features: unit e of u, v (P, d) is pair p = e / d, column j.
// ---------------------------------------------------------------------------

template <int V>
__global__ void pair_fwd_kernel(const float* u, const float* v, float* f, size_t pairs,
                                size_t d) {
  const size_t n = pairs * d;
  for (size_t i = thread_index(); i < n / V; i += grid_stride()) {
    const size_t e = i * V, p = e / d, j = e - p * d;
    float* fr = f + p * 4 * d;
    float a[V], b[V], m[V], s[V];
    ld<V>(u + e, a);
    ld<V>(v + e, b);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      m[k] = a[k] * b[k];
      s[k] = a[k] - b[k];
    }
    st<V>(fr + j, a);
    st<V>(fr + d + j, b);
    st<V>(fr + 2 * d + j, m);
    st<V>(fr + 3 * d + j, s);
  }
}

// du = df0 + df2 v + df3, dv = df1 + df2 u - df3 (written)
template <int V>
__global__ void pair_bwd_kernel(const float* df, const float* u, const float* v, float* du,
                                float* dv, size_t pairs, size_t d) {
  const size_t n = pairs * d;
  for (size_t i = thread_index(); i < n / V; i += grid_stride()) {
    const size_t e = i * V, p = e / d, j = e - p * d;
    const float* fr = df + p * 4 * d;
    float a[V], b[V], g0[V], g1[V], g2[V], g3[V], ou[V], ov[V];
    ld<V>(u + e, a);
    ld<V>(v + e, b);
    ld<V>(fr + j, g0);
    ld<V>(fr + d + j, g1);
    ld<V>(fr + 2 * d + j, g2);
    ld<V>(fr + 3 * d + j, g3);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      ou[k] = fmaf(g2[k], b[k], g0[k]) + g3[k];
      ov[k] = fmaf(g2[k], a[k], g1[k]) - g3[k];
    }
    st<V>(du + e, ou);
    st<V>(dv + e, ov);
  }
}

// Launches kernel<4> when vec, else kernel<1>, over n elements.
#define MK_LAUNCH_V(kernel, vec, n, stream, ...)                                             \
  do {                                                                                       \
    if (vec)                                                                                 \
      kernel<4><<<grid_for(((n) + 3) / 4, kThreads), kThreads, 0, stream>>>(__VA_ARGS__);    \
    else                                                                                     \
      kernel<1><<<grid_for((n), kThreads), kThreads, 0, stream>>>(__VA_ARGS__);              \
  } while (0)

}  // namespace

// ---------------------------------------------------------------------------
// Elementwise.
// ---------------------------------------------------------------------------

template <typename T>
void add(const T* a, const T* b, T* y, size_t n, stream_t stream) {
  float_only<T>();
  run_map<2, 1>("cuda::add", {{a, b}, {y}}, n, AddF{}, stream);
}
template <typename T>
void axpy(T alpha, const T* x, T* y, size_t n, stream_t stream) {
  float_only<T>();
  run_map<2, 1>("cuda::axpy", {{x, y}, {y}}, n, AxpyF{alpha}, stream);
}
template <typename T>
void scale(T alpha, T* y, size_t n, stream_t stream) {
  float_only<T>();
  run_map<1, 1>("cuda::scale", {{y}, {y}}, n, ScaleF{alpha}, stream);
}
template <typename T>
void neg_exp(const T* x, T* y, size_t n, stream_t stream) {
  float_only<T>();
  run_map<1, 1>("cuda::neg_exp", {{x}, {y}}, n, NegExpF{}, stream);
}
template <typename T>
void mul_acc(const T* a, const T* b, T* y, size_t n, stream_t stream) {
  float_only<T>();
  run_map<3, 1>("cuda::mul_acc", {{a, b, y}, {y}}, n, MulAccF{}, stream);
}
template <typename T>
void gelu_forward(const T* x, T* y, size_t n, stream_t stream) {
  float_only<T>();
  run_map<1, 1>("cuda::gelu_forward", {{x}, {y}}, n, GeluFwdF{}, stream);
}
template <typename T>
void gelu_backward(const T* dy, const T* x, T* dx, size_t n, stream_t stream) {
  float_only<T>();
  run_map<2, 1>("cuda::gelu_backward", {{dy, x}, {dx}}, n, GeluBwdF{}, stream);
}
template <typename T>
void swiglu_forward(const T* g, const T* u, T* y, size_t n, stream_t stream) {
  float_only<T>();
  run_map<2, 1>("cuda::swiglu_forward", {{g, u}, {y}}, n, SwigluFwdF{}, stream);
}
template <typename T>
void swiglu_backward(const T* dy, const T* g, const T* u, T* dg, T* du, size_t n,
                     stream_t stream) {
  float_only<T>();
  run_map<3, 2>("cuda::swiglu_backward", {{dy, g, u}, {dg, du}}, n, SwigluBwdF{}, stream);
}

// ---------------------------------------------------------------------------
// Layout.
// ---------------------------------------------------------------------------

template <typename T>
void copy_cols(const T* src, size_t rows, size_t src_stride, size_t c0, size_t w, T* dst,
               size_t dst_stride, size_t d0, stream_t stream) {
  float_only<T>();
  const char* what = "cuda::copy_cols";
  if (rows == 0 || w == 0) return;
  check_ptr(src && dst, what);
  MK_CHECK(c0 + w <= src_stride && d0 + w <= dst_stride,
           std::string(what) + ": columns [" + std::to_string(c0) + ", " +
               std::to_string(c0 + w) + ") of stride " + std::to_string(src_stride) +
               " into [" + std::to_string(d0) + ", " + std::to_string(d0 + w) + ") of stride " +
               std::to_string(dst_stride));
  require_device(what);
  mk::cuda::check(int(cudaMemcpy2DAsync(dst + d0, dst_stride * sizeof(T), src + c0,
                                        src_stride * sizeof(T), w * sizeof(T), rows,
                                        cudaMemcpyDeviceToDevice, stream)),
                  what, __FILE__, __LINE__);
}

template <typename T>
void transpose(const T* x, T* y, size_t batch, size_t rows, size_t cols, stream_t stream) {
  float_only<T>();
  const char* what = "cuda::transpose";
  const size_t n = batch * rows * cols;
  if (n == 0) return;
  check_ptr(x && y, what);
  MK_CHECK(!(x < y + n && y < x + n), std::string(what) + ": x and y overlap (not in place)");
  require_device(what);
  const size_t tiles_r = (rows + kTile - 1) / kTile, tiles_c = (cols + kTile - 1) / kTile;
  const dim3 grid(unsigned(std::min<size_t>(tiles_c, 0x7fffffffu)),
                  unsigned(std::min<size_t>(tiles_r, 65535u)),
                  unsigned(std::min<size_t>(batch, 65535u)));
  transpose_kernel<<<grid, dim3(kTile, kTileRows), 0, stream>>>(x, y, batch, rows, cols);
  MK_CUDA_LAUNCH_CHECK(what);
}

// Element i = (b, t, j) goes to (b, len-1-t, j): reads and writes both run
// along j, so each warp moves contiguous runs.
__global__ void reverse_time_kernel(const float* x, float* y, size_t len, size_t width, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const size_t row = i / width, j = i - row * width;
    const size_t b = row / len, t = row - b * len;
    y[(b * len + (len - 1 - t)) * width + j] = x[i];
  }
}

template <typename T>
void reverse_time(const T* x, T* y, size_t batch, size_t len, size_t width, stream_t stream) {
  float_only<T>();
  const char* what = "cuda::reverse_time";
  const size_t n = batch * len * width;
  if (n == 0) return;
  check_ptr(x && y, what);
  MK_CHECK(!(x < y + n && y < x + n), std::string(what) + ": x and y overlap (not in place)");
  require_device(what);
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<size_t>((n + threads - 1) / threads, 65535u * 4));
  reverse_time_kernel<<<blocks, threads, 0, stream>>>(x, y, len, width, n);
  MK_CUDA_LAUNCH_CHECK(what);
}

// ---------------------------------------------------------------------------
// Per-channel scale.
// ---------------------------------------------------------------------------

template <typename T>
void channel_scale_forward(const T* x, const T* D, T* y, size_t rows, size_t H,
                           stream_t stream) {
  float_only<T>();
  const char* what = "cuda::channel_scale_forward";
  const size_t n = rows * H;
  if (n == 0) return;
  check_ptr(x && D && y, what);
  require_device(what);
  const bool vec = H % 4 == 0 && aligned16(x) && aligned16(D) && aligned16(y);
  MK_LAUNCH_V(channel_scale_kernel, vec, n, stream, x, D, y, n, H);
  MK_CUDA_LAUNCH_CHECK(what);
}

template <typename T>
void channel_scale_backward(const T* dy, const T* x, const T* D, T* dx, T* dD, size_t rows,
                            size_t H, stream_t stream) {
  float_only<T>();
  const char* what = "cuda::channel_scale_backward";
  const size_t n = rows * H;
  if (n == 0) return;
  check_ptr(dy && x && D && dx && dD, what);
  require_device(what);
  const bool vec = H % 4 == 0 && aligned16(dy) && aligned16(D) && aligned16(dx);
  MK_LAUNCH_V(channel_scale_kernel, vec, n, stream, dy, D, dx, n, H);
  MK_CUDA_LAUNCH_CHECK("cuda::channel_scale_backward (dx)");
  // dD: at most ~1024 chunks of >= kRowsPerChunk rows each (the split
  // depends on the shape only, so the result is run to run identical).
  const size_t rows_per_chunk = std::max<size_t>(kRowsPerChunk, (rows + 1023) / 1024);
  const size_t n_chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  const int threads = H >= size_t(kThreads) ? kThreads : int((H + 31) / 32 * 32);
  const size_t blocks_x = (H + threads - 1) / threads;
  MK_CHECK(blocks_x <= 0x7fffffffu, std::string(what) + ": H too large");
  mk::cuda::DeviceBuffer<float> ws(n_chunks * H, stream);
  const dim3 grid(unsigned(blocks_x), unsigned(std::min<size_t>(n_chunks, 65535u)));
  channel_dot_partial_kernel<<<grid, threads, 0, stream>>>(dy, x, rows, H, rows_per_chunk,
                                                           n_chunks, ws.data());
  MK_CUDA_LAUNCH_CHECK("cuda::channel_scale_backward (dD partials)");
  add_chunk_sums_kernel<><<<grid_for(H, kThreads), kThreads, 0, stream>>>(ws.data(),
                                                                         int(n_chunks), H, dD);
  MK_CUDA_LAUNCH_CHECK("cuda::channel_scale_backward (dD)");
}

// ---------------------------------------------------------------------------
// Sequence pooling.
// ---------------------------------------------------------------------------

namespace {
void check_pool(const char* what, int B, int L, int D) {
  MK_CHECK(B >= 0 && L >= 1 && D >= 0, std::string(what) + ": bad sizes B=" + std::to_string(B) +
                                           " L=" + std::to_string(L) + " D=" + std::to_string(D));
}
}  // namespace

template <typename T>
void sequence_pool_forward(const T* h, const int32_t* lengths, T* pooled, int B, int L, int D,
                           bool last, stream_t stream) {
  float_only<T>();
  const char* what = "cuda::sequence_pool_forward";
  check_pool(what, B, L, D);
  if (B == 0 || D == 0) return;
  check_ptr(h && pooled, what);
  require_device(what);
  const dim3 grid(unsigned((D + kPoolCols - 1) / kPoolCols), unsigned(std::min(B, 65535)));
  pool_fwd_kernel<<<grid, dim3(kPoolCols, kPoolRows), 0, stream>>>(h, lengths, pooled, B, L, D,
                                                                   last);
  MK_CUDA_LAUNCH_CHECK(what);
}

template <typename T>
void sequence_pool_backward(const T* dpooled, const int32_t* lengths, T* dh, int B, int L, int D,
                            bool last, stream_t stream) {
  float_only<T>();
  const char* what = "cuda::sequence_pool_backward";
  check_pool(what, B, L, D);
  const size_t n = size_t(B) * L * D;
  if (n == 0) return;
  check_ptr(dpooled && dh, what);
  require_device(what);
  const bool vec = D % 4 == 0 && aligned16(dpooled) && aligned16(dh);
  MK_LAUNCH_V(pool_bwd_kernel, vec, n, stream, dpooled, lengths, dh, B, L, D, last);
  MK_CUDA_LAUNCH_CHECK(what);
}

// ---------------------------------------------------------------------------
// GLU and pair features.
// ---------------------------------------------------------------------------

template <typename T>
void glu_forward(const T* x, T* y, size_t rows, size_t w, stream_t stream) {
  float_only<T>();
  const char* what = "cuda::glu_forward";
  const size_t n = rows * w;
  if (n == 0) return;
  check_ptr(x && y, what);
  require_device(what);
  const bool vec = w % 4 == 0 && aligned16(x) && aligned16(y);
  MK_LAUNCH_V(glu_fwd_kernel, vec, n, stream, x, y, rows, w);
  MK_CUDA_LAUNCH_CHECK(what);
}

template <typename T>
void glu_backward(const T* dy, const T* x, T* dx, size_t rows, size_t w, stream_t stream) {
  float_only<T>();
  const char* what = "cuda::glu_backward";
  const size_t n = rows * w;
  if (n == 0) return;
  check_ptr(dy && x && dx, what);
  require_device(what);
  const bool vec = w % 4 == 0 && aligned16(dy) && aligned16(x) && aligned16(dx);
  MK_LAUNCH_V(glu_bwd_kernel, vec, n, stream, dy, x, dx, rows, w);
  MK_CUDA_LAUNCH_CHECK(what);
}

template <typename T>
void pair_features_forward(const T* u, const T* v, T* f, int pairs, int d, stream_t stream) {
  float_only<T>();
  const char* what = "cuda::pair_features_forward";
  MK_CHECK(pairs >= 0 && d >= 0, std::string(what) + ": bad sizes pairs=" +
                                     std::to_string(pairs) + " d=" + std::to_string(d));
  const size_t n = size_t(pairs) * d;
  if (n == 0) return;
  check_ptr(u && v && f, what);
  require_device(what);
  const bool vec = d % 4 == 0 && aligned16(u) && aligned16(v) && aligned16(f);
  MK_LAUNCH_V(pair_fwd_kernel, vec, n, stream, u, v, f, size_t(pairs), size_t(d));
  MK_CUDA_LAUNCH_CHECK(what);
}

template <typename T>
void pair_features_backward(const T* df, const T* u, const T* v, T* du, T* dv, int pairs, int d,
                            stream_t stream) {
  float_only<T>();
  const char* what = "cuda::pair_features_backward";
  MK_CHECK(pairs >= 0 && d >= 0, std::string(what) + ": bad sizes pairs=" +
                                     std::to_string(pairs) + " d=" + std::to_string(d));
  const size_t n = size_t(pairs) * d;
  if (n == 0) return;
  check_ptr(df && u && v && du && dv, what);
  require_device(what);
  const bool vec = d % 4 == 0 && aligned16(df) && aligned16(u) && aligned16(v) &&
                   aligned16(du) && aligned16(dv);
  MK_LAUNCH_V(pair_bwd_kernel, vec, n, stream, df, u, v, du, dv, size_t(pairs), size_t(d));
  MK_CUDA_LAUNCH_CHECK(what);
}

#undef MK_LAUNCH_V

template void add<float>(const float*, const float*, float*, size_t, stream_t);
template void axpy<float>(float, const float*, float*, size_t, stream_t);
template void scale<float>(float, float*, size_t, stream_t);
template void neg_exp<float>(const float*, float*, size_t, stream_t);
template void mul_acc<float>(const float*, const float*, float*, size_t, stream_t);
template void copy_cols<float>(const float*, size_t, size_t, size_t, size_t, float*, size_t,
                               size_t, stream_t);
template void transpose<float>(const float*, float*, size_t, size_t, size_t, stream_t);
template void reverse_time<float>(const float*, float*, size_t, size_t, size_t, stream_t);
template void channel_scale_forward<float>(const float*, const float*, float*, size_t, size_t,
                                           stream_t);
template void channel_scale_backward<float>(const float*, const float*, const float*, float*,
                                            float*, size_t, size_t, stream_t);
template void sequence_pool_forward<float>(const float*, const int32_t*, float*, int, int, int,
                                           bool, stream_t);
template void sequence_pool_backward<float>(const float*, const int32_t*, float*, int, int, int,
                                            bool, stream_t);
template void gelu_forward<float>(const float*, float*, size_t, stream_t);
template void gelu_backward<float>(const float*, const float*, float*, size_t, stream_t);
template void glu_forward<float>(const float*, float*, size_t, size_t, stream_t);
template void glu_backward<float>(const float*, const float*, float*, size_t, size_t, stream_t);
template void swiglu_forward<float>(const float*, const float*, float*, size_t, stream_t);
template void swiglu_backward<float>(const float*, const float*, const float*, float*, float*,
                                     size_t, stream_t);
template void pair_features_forward<float>(const float*, const float*, float*, int, int,
                                           stream_t);
template void pair_features_backward<float>(const float*, const float*, const float*, float*,
                                            float*, int, int, stream_t);

}  // namespace mk::ops::cuda
