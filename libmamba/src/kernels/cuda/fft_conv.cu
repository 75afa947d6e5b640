// FFT long convolution on CUDA (see ops/cuda/ssm_conv.h and the CPU
// reference kernels/cpu/fft_conv.cpp).
//
// Forward:  k rows (H, n)   <- circular kernels (causal taps at 0..L-1,
//                               anti-causal tap m at n-m, Krev[0] joins K[0])
//           Kf (H, nf)      <- R2C(k)
//           x  (B*H, n)     <- u (B, L, H) transposed, zero padded to n
//           X  (B*H, nf)    <- R2C(x);  X *= Kf / n
//           x               <- C2R(X);  y (B, L, H) <- first L of each row
// Backward: Y <- R2C(pad(dy)), X <- R2C(pad(u)); per (h, f), in batch order,
//           acc = sum_b Y conj(X) / n and Y <- Y conj(Kf) / n;
//           du <- C2R(Y) (first L), dk <- C2R(acc): dK = dk[0..L),
//           dKrev[0] = dk[0], dKrev[m] = dk[n-m].
// Any n >= 2L - 1 makes the circular convolution linear and keeps the
// anti-causal lags (n-m >= n-L+1 >= L) apart from the causal ones; n is the
// smallest even size >= 2L with no prime factor above 7.
#include <cuda_runtime.h>

#include <string>

#include "common.cuh"
#include "cufft_plans.cuh"
#include "mambakit/ops/cuda/ssm_conv.h"

namespace mk::ops::cuda {

using namespace mk::cuda::detail;
using mk::cuda::DeviceBuffer;

namespace {

constexpr int kThreads = 256;
constexpr int kTile = 32, kTileRows = 8;

void check(const FftConvShape& s, const char* where) {
  MK_CHECK(s.batch > 0 && s.len > 0 && s.channels > 0,
           std::string(where) + ": sizes must be positive (B=" + std::to_string(s.batch) +
               ", L=" + std::to_string(s.len) + ", H=" + std::to_string(s.channels) + ")");
  MK_CHECK(s.len <= (1 << 28), std::string(where) + ": L=" + std::to_string(s.len) + " too long");
  MK_CHECK((s.channels + kTile - 1) / kTile <= 65535,
           std::string(where) + ": H=" + std::to_string(s.channels) + " too large");
  require_device(where);
}

// k[h, j] over the circular length n (see the file comment).
__global__ void circular_kernel_kernel(int H, int L, int n, const float* K, const float* Krev,
                                       float* k) {
  const size_t total = size_t(H) * n;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const int h = int(i / n), j = int(i % n);
    const size_t row = size_t(h) * L;
    float v = j < L ? K[row + j] : 0.f;
    if (Krev) {
      if (j == 0) v += Krev[row];
      else if (j > n - L) v = Krev[row + (n - j)];  // j >= n-L+1 >= L+1: no causal tap here
    }
    k[i] = v;
  }
}

// x[(b*H + h)*n + t] = t < L ? a[(b*L + t)*H + h] : 0, for t < n.
// Grid: x = (n tiles) * B, y = H tiles; block (32, 8).
__global__ void pad_transpose_kernel(const float* a, float* x, int L, int H, int n, int n_tiles) {
  __shared__ float tile[kTile][kTile + 1];  // [t][h]
  const int b = blockIdx.x / n_tiles, t0 = (blockIdx.x % n_tiles) * kTile, h0 = blockIdx.y * kTile;
  for (int i = threadIdx.y; i < kTile; i += kTileRows) {
    const int t = t0 + i, h = h0 + threadIdx.x;
    tile[i][threadIdx.x] = (t < L && h < H) ? a[(size_t(b) * L + t) * H + h] : 0.f;
  }
  __syncthreads();
  for (int i = threadIdx.y; i < kTile; i += kTileRows) {
    const int h = h0 + i, t = t0 + threadIdx.x;
    if (h < H && t < n) x[(size_t(b) * H + h) * n + t] = tile[threadIdx.x][i];
  }
}

// a[(b*L + t)*H + h] = x[(b*H + h)*n + t], for t < L.
// Grid: x = (L tiles) * B, y = H tiles; block (32, 8).
__global__ void unpad_transpose_kernel(const float* x, float* a, int L, int H, int n, int l_tiles) {
  __shared__ float tile[kTile][kTile + 1];  // [h][t]
  const int b = blockIdx.x / l_tiles, t0 = (blockIdx.x % l_tiles) * kTile, h0 = blockIdx.y * kTile;
  for (int i = threadIdx.y; i < kTile; i += kTileRows) {
    const int h = h0 + i, t = t0 + threadIdx.x;
    if (h < H && t < L) tile[i][threadIdx.x] = x[(size_t(b) * H + h) * n + t];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < kTile; i += kTileRows) {
    const int t = t0 + i, h = h0 + threadIdx.x;
    if (t < L && h < H) a[(size_t(b) * L + t) * H + h] = tile[threadIdx.x][i];
  }
}

__device__ __forceinline__ float2 cmulf(float2 a, float2 b) {
  return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
__device__ __forceinline__ float2 cmul_conjf(float2 a, float2 b) {  // a conj(b)
  return make_float2(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y);
}

// X[(b*H + h), f] *= Kf[h, f] / n.
__global__ void spectral_mul_kernel(float2* X, const float2* Kf, size_t rows, int H, int nf,
                                    float inv_n) {
  const size_t total = rows * nf;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const size_t r = i / nf;
    const int f = int(i % nf), h = int(r % H);
    const float2 v = cmulf(X[i], Kf[size_t(h) * nf + f]);
    X[i] = make_float2(v.x * inv_n, v.y * inv_n);
  }
}

// Per (h, f): acc[h, f] = sum_b Y conj(X) / n (b in order), Y <- Y conj(Kf) / n.
__global__ void spectral_bwd_kernel(float2* Y, const float2* X, const float2* Kf, float2* acc,
                                    int B, int H, int nf, float inv_n) {
  const size_t total = size_t(H) * nf;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const float2 kf = Kf[i];
    float ar = 0.f, ai = 0.f;
    for (int b = 0; b < B; ++b) {
      const size_t j = size_t(b) * total + i;  // ((b*H + h)*nf + f)
      const float2 y = Y[j], x = X[j];
      const float2 p = cmul_conjf(y, x);
      ar += p.x;
      ai += p.y;
      const float2 d = cmul_conjf(y, kf);
      Y[j] = make_float2(d.x * inv_n, d.y * inv_n);
    }
    acc[i] = make_float2(ar * inv_n, ai * inv_n);
  }
}

// dK[h, j] = dk[h, j]; dKrev[h, 0] = dk[h, 0], dKrev[h, m] = dk[h, n-m].
__global__ void kernel_grad_kernel(int H, int L, int n, const float* dk, float* dK, float* dKrev) {
  const size_t total = size_t(H) * L;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total;
       i += size_t(gridDim.x) * blockDim.x) {
    const int h = int(i / L), j = int(i % L);
    const float* row = dk + size_t(h) * n;
    dK[i] = row[j];
    if (dKrev) dKrev[i] = j == 0 ? row[0] : row[n - j];
  }
}

struct Sizes {
  int B, L, H, n, nf;
  size_t rows;
};

Sizes sizes_of(const FftConvShape& s) {
  Sizes z;
  z.B = s.batch;
  z.L = s.len;
  z.H = s.channels;
  z.n = fft_good_size(2LL * s.len);
  z.nf = z.n / 2 + 1;
  z.rows = size_t(z.B) * z.H;
  return z;
}

// Kf (H, nf) from K, Krev; k is (H, n) scratch.
void kernel_spectra(const Sizes& z, const float* K, const float* Krev, float* k, float2* Kf,
                    stream_t stream) {
  circular_kernel_kernel<<<grid_for(size_t(z.H) * z.n, kThreads), kThreads, 0, stream>>>(
      z.H, z.L, z.n, K, Krev, k);
  MK_CUDA_LAUNCH_CHECK("fft_conv: circular kernel");
  fft_exec(FftKind::R2C, z.n, z.H, k, Kf, stream);
}

void pad(const Sizes& z, const float* a, float* x, stream_t stream) {
  const int n_tiles = (z.n + kTile - 1) / kTile;
  const dim3 grid(unsigned(size_t(n_tiles) * z.B), unsigned((z.H + kTile - 1) / kTile));
  MK_CHECK(size_t(n_tiles) * z.B < (1ULL << 31), "fft_conv: B*2L too large");
  pad_transpose_kernel<<<grid, dim3(kTile, kTileRows), 0, stream>>>(a, x, z.L, z.H, z.n, n_tiles);
  MK_CUDA_LAUNCH_CHECK("fft_conv: pad transpose");
}

void unpad(const Sizes& z, const float* x, float* a, stream_t stream) {
  const int l_tiles = (z.L + kTile - 1) / kTile;
  const dim3 grid(unsigned(size_t(l_tiles) * z.B), unsigned((z.H + kTile - 1) / kTile));
  unpad_transpose_kernel<<<grid, dim3(kTile, kTileRows), 0, stream>>>(x, a, z.L, z.H, z.n, l_tiles);
  MK_CUDA_LAUNCH_CHECK("fft_conv: unpad transpose");
}

}  // namespace

void fft_conv_forward(const FftConvShape& s, const float* u, const float* K, const float* Krev,
                      float* y, stream_t stream) {
  check(s, "cuda fft_conv_forward");
  const Sizes z = sizes_of(s);
  DeviceBuffer<float> k(size_t(z.H) * z.n, stream), x(z.rows * z.n, stream);
  DeviceBuffer<float2> Kf(size_t(z.H) * z.nf, stream), X(z.rows * z.nf, stream);
  kernel_spectra(z, K, Krev, k.data(), Kf.data(), stream);
  pad(z, u, x.data(), stream);
  fft_exec(FftKind::R2C, z.n, (long long)z.rows, x.data(), X.data(), stream);
  spectral_mul_kernel<<<grid_for(z.rows * z.nf, kThreads), kThreads, 0, stream>>>(
      X.data(), Kf.data(), z.rows, z.H, z.nf, 1.f / float(z.n));
  MK_CUDA_LAUNCH_CHECK("fft_conv_forward: spectral product");
  fft_exec(FftKind::C2R, z.n, (long long)z.rows, X.data(), x.data(), stream);
  unpad(z, x.data(), y, stream);
}

void fft_conv_backward(const FftConvShape& s, const float* dy, const float* u, const float* K,
                       const float* Krev, float* du, float* dK, float* dKrev, stream_t stream) {
  check(s, "cuda fft_conv_backward");
  MK_CHECK(!Krev || dKrev, "cuda fft_conv_backward: a bidirectional convolution needs dKrev");
  const Sizes z = sizes_of(s);
  DeviceBuffer<float> k(size_t(z.H) * z.n, stream), x(z.rows * z.n, stream);
  DeviceBuffer<float2> Kf(size_t(z.H) * z.nf, stream), acc(size_t(z.H) * z.nf, stream),
      X(z.rows * z.nf, stream), Y(z.rows * z.nf, stream);
  kernel_spectra(z, K, Krev, k.data(), Kf.data(), stream);
  pad(z, dy, x.data(), stream);
  fft_exec(FftKind::R2C, z.n, (long long)z.rows, x.data(), Y.data(), stream);
  pad(z, u, x.data(), stream);
  fft_exec(FftKind::R2C, z.n, (long long)z.rows, x.data(), X.data(), stream);
  spectral_bwd_kernel<<<grid_for(size_t(z.H) * z.nf, kThreads), kThreads, 0, stream>>>(
      Y.data(), X.data(), Kf.data(), acc.data(), z.B, z.H, z.nf, 1.f / float(z.n));
  MK_CUDA_LAUNCH_CHECK("fft_conv_backward: spectral products");
  fft_exec(FftKind::C2R, z.n, (long long)z.rows, Y.data(), x.data(), stream);
  unpad(z, x.data(), du, stream);
  fft_exec(FftKind::C2R, z.n, z.H, acc.data(), k.data(), stream);
  kernel_grad_kernel<<<grid_for(size_t(z.H) * z.L, kThreads), kThreads, 0, stream>>>(
      z.H, z.L, z.n, k.data(), dK, Krev ? dKrev : nullptr);
  MK_CUDA_LAUNCH_CHECK("fft_conv_backward: kernel gradients");
}

}  // namespace mk::ops::cuda
