// Small elementwise and layout ops (see ops/elementwise.h): the CPU
// reference of src/kernels/cuda/elementwise.cu.
#include "mambakit/ops/elementwise.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "activations_isa.h"
#include "mambakit/error.h"

namespace mk::ops {

namespace {

constexpr size_t kParallelMin = size_t(1) << 16;

void check_pool_args(const char* where, const int32_t* lengths, int B, int L, int D) {
  MK_CHECK(B >= 0 && L >= 1 && D >= 0, std::string(where) + ": bad sizes B=" + std::to_string(B) +
                                           " L=" + std::to_string(L) + " D=" + std::to_string(D));
  if (!lengths) return;
  for (int b = 0; b < B; ++b)
    MK_CHECK(lengths[b] >= 1 && lengths[b] <= L,
             std::string(where) + ": length " + std::to_string(lengths[b]) + " of sequence " +
                 std::to_string(b) + " outside [1, " + std::to_string(L) + "]");
}

}  // namespace

template <typename T>
void add(const T* a, const T* b, T* y, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

template <typename T>
void axpy(T alpha, const T* x, T* y, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <typename T>
void scale(T alpha, T* y, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] *= alpha;
}

// float through the per-ISA loop over vmath::exp_f (within 1 ulp): a Mamba
// layer's recurrent step forms A = -exp(A_log), D x N values, at every
// token, and with glibc's scalar expf that was 30% of generation time.
template <typename T>
void neg_exp(const T* x, T* y, size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    active_activation_kernels().neg_exp(x, y, n);
  } else {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (size_t i = 0; i < n; ++i) y[i] = -std::exp(x[i]);
  }
}

template <typename T>
void mul_acc(const T* a, const T* b, T* y, size_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) y[i] += a[i] * b[i];
}

template <typename T>
void copy_cols(const T* src, size_t rows, size_t src_stride, size_t c0, size_t w, T* dst,
               size_t dst_stride, size_t d0) {
  if (rows == 0 || w == 0) return;
  MK_CHECK(c0 + w <= src_stride && d0 + w <= dst_stride,
           "copy_cols: columns [" + std::to_string(c0) + ", " + std::to_string(c0 + w) +
               ") of stride " + std::to_string(src_stride) + " into [" + std::to_string(d0) +
               ", " + std::to_string(d0 + w) + ") of stride " + std::to_string(dst_stride));
#pragma omp parallel for schedule(static) if (rows * w > kParallelMin)
  for (size_t r = 0; r < rows; ++r)
    std::copy_n(src + r * src_stride + c0, w, dst + r * dst_stride + d0);
}

// Blocked, so that both x's rows and y's rows are read/written in runs.
template <typename T>
void transpose(const T* x, T* y, size_t batch, size_t rows, size_t cols) {
  constexpr size_t kTile = 32;
  for (size_t b = 0; b < batch; ++b) {
    const T* xb = x + b * rows * cols;
    T* yb = y + b * rows * cols;
    for (size_t r0 = 0; r0 < rows; r0 += kTile)
      for (size_t c0 = 0; c0 < cols; c0 += kTile) {
        const size_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
        for (size_t c = c0; c < c1; ++c)
          for (size_t r = r0; r < r1; ++r) yb[c * rows + r] = xb[r * cols + c];
      }
  }
}

template <typename T>
void reverse_time(const T* x, T* y, size_t batch, size_t len, size_t width) {
  const size_t n = batch * len * width;
  if (n == 0) return;
  MK_CHECK(!(x < y + n && y < x + n), "reverse_time: x and y overlap (not in place)");
#pragma omp parallel for collapse(2) schedule(static) if (n > kParallelMin)
  for (size_t b = 0; b < batch; ++b)
    for (size_t t = 0; t < len; ++t)
      std::copy_n(x + (b * len + t) * width, width, y + (b * len + (len - 1 - t)) * width);
}

template <typename T>
void channel_scale_forward(const T* x, const T* D, T* y, size_t rows, size_t H) {
#pragma omp parallel for schedule(static) if (rows * H > kParallelMin)
  for (size_t r = 0; r < rows; ++r)
    for (size_t h = 0; h < H; ++h) y[r * H + h] += D[h] * x[r * H + h];
}

template <typename T>
void channel_scale_backward(const T* dy, const T* x, const T* D, T* dx, T* dD, size_t rows,
                            size_t H) {
  channel_scale_forward(dy, D, dx, rows, H);
  std::vector<T> acc(H, T(0));
  for (size_t r = 0; r < rows; ++r)
    for (size_t h = 0; h < H; ++h) acc[h] += dy[r * H + h] * x[r * H + h];
  for (size_t h = 0; h < H; ++h) dD[h] += acc[h];
}

template <typename T>
void sequence_pool_forward(const T* h, const int32_t* lengths, T* pooled, int B, int L, int D,
                           bool last) {
  check_pool_args("sequence_pool_forward", lengths, B, L, D);
  for (int b = 0; b < B; ++b) {
    T* p = pooled + size_t(b) * D;
    const int n = lengths ? lengths[b] : L;
    if (last) {
      std::copy_n(h + (size_t(b) * L + n - 1) * D, D, p);
      continue;
    }
    std::fill(p, p + D, T(0));
    for (int t = 0; t < n; ++t) {
      const T* ht = h + (size_t(b) * L + t) * D;
      for (int j = 0; j < D; ++j) p[j] += ht[j];
    }
    for (int j = 0; j < D; ++j) p[j] /= T(n);
  }
}

template <typename T>
void sequence_pool_backward(const T* dpooled, const int32_t* lengths, T* dh, int B, int L, int D,
                            bool last) {
  check_pool_args("sequence_pool_backward", lengths, B, L, D);
  std::fill(dh, dh + size_t(B) * L * D, T(0));
  for (int b = 0; b < B; ++b) {
    const T* g = dpooled + size_t(b) * D;
    const int n = lengths ? lengths[b] : L;
    const int t0 = last ? n - 1 : 0;
    const T s = last ? T(1) : T(1) / T(n);
    for (int t = t0; t < n; ++t) {
      T* d = dh + (size_t(b) * L + t) * D;
      for (int j = 0; j < D; ++j) d[j] = g[j] * s;
    }
  }
}

#define MK_ELEMENTWISE(T)                                                                    \
  template void add<T>(const T*, const T*, T*, size_t);                                      \
  template void axpy<T>(T, const T*, T*, size_t);                                            \
  template void scale<T>(T, T*, size_t);                                                     \
  template void neg_exp<T>(const T*, T*, size_t);                                            \
  template void mul_acc<T>(const T*, const T*, T*, size_t);                                  \
  template void copy_cols<T>(const T*, size_t, size_t, size_t, size_t, T*, size_t, size_t);  \
  template void transpose<T>(const T*, T*, size_t, size_t, size_t);                          \
  template void reverse_time<T>(const T*, T*, size_t, size_t, size_t);                       \
  template void channel_scale_forward<T>(const T*, const T*, T*, size_t, size_t);            \
  template void channel_scale_backward<T>(const T*, const T*, const T*, T*, T*, size_t,      \
                                          size_t);                                           \
  template void sequence_pool_forward<T>(const T*, const int32_t*, T*, int, int, int, bool); \
  template void sequence_pool_backward<T>(const T*, const int32_t*, T*, int, int, int, bool);
MK_ELEMENTWISE(float)
MK_ELEMENTWISE(double)
#undef MK_ELEMENTWISE

}  // namespace mk::ops
