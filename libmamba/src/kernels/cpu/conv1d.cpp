// Causal depthwise conv1d over (B, L, D) with kernel (D, K) and bias (D).
// Channels are the contiguous axis, so every loop keeps d innermost and reads
// the kernel transposed to (K, D) to vectorise over channels.
#include "mambakit/ops/conv1d.h"

#include <algorithm>
#include <string>
#include <vector>

#include "mambakit/error.h"

namespace mk::ops {

namespace {

void check_shape(const Conv1dShape& s, const char* where) {
  MK_CHECK(s.B >= 0 && s.L >= 0 && s.D >= 0 && s.K >= 1,
           std::string(where) + ": bad shape B=" + std::to_string(s.B) + " L=" +
               std::to_string(s.L) + " D=" + std::to_string(s.D) + " K=" + std::to_string(s.K));
}

template <typename T>
std::vector<T> transpose_kernel(const T* w, int D, int K) {  // (D, K) -> (K, D)
  std::vector<T> wt(size_t(K) * D);
  for (int d = 0; d < D; ++d)
    for (int k = 0; k < K; ++k) wt[size_t(k) * D + d] = w[size_t(d) * K + k];
  return wt;
}

bool big(const Conv1dShape& s) { return size_t(s.B) * s.L * s.D * s.K > (1u << 16); }

}  // namespace

template <typename T>
void conv1d_causal_forward(const Conv1dShape& s, const T* x, const T* w, const T* bias, T* y) {
  check_shape(s, "conv1d_causal_forward");
  const int L = s.L, D = s.D, K = s.K;
  const std::vector<T> wt = transpose_kernel(w, D, K);
#pragma omp parallel for collapse(2) schedule(static) if (big(s))
  for (int b = 0; b < s.B; ++b)
    for (int t = 0; t < L; ++t) {
      T* yr = y + (size_t(b) * L + t) * D;  // (D)
      if (bias) std::copy(bias, bias + D, yr);
      else std::fill(yr, yr + D, T(0));
      // Tap k reads x at time t-(K-1)+k; taps before t=0 see zero padding.
      for (int k = std::max(0, K - 1 - t); k < K; ++k) {
        const T* xr = x + (size_t(b) * L + t - (K - 1) + k) * D;
        const T* wk = wt.data() + size_t(k) * D;
        for (int d = 0; d < D; ++d) yr[d] += wk[d] * xr[d];
      }
    }
}

template <typename T>
void conv1d_causal_backward(const Conv1dShape& s, const T* dy, const T* x, const T* w, T* dx,
                            T* dw, T* dbias) {
  check_shape(s, "conv1d_causal_backward");
  const int L = s.L, D = s.D, K = s.K;
  const std::vector<T> wt = transpose_kernel(w, D, K);
  // dx[b,u,d] = sum_k w[d,k] * dy[b, u+(K-1)-k, d] over outputs inside [0, L).
#pragma omp parallel for collapse(2) schedule(static) if (big(s))
  for (int b = 0; b < s.B; ++b)
    for (int u = 0; u < L; ++u) {
      T* dxr = dx + (size_t(b) * L + u) * D;
      std::fill(dxr, dxr + D, T(0));
      for (int k = std::max(0, u + K - L); k < K; ++k) {
        const T* dyr = dy + (size_t(b) * L + u + (K - 1) - k) * D;
        const T* wk = wt.data() + size_t(k) * D;
        for (int d = 0; d < D; ++d) dxr[d] += wk[d] * dyr[d];
      }
    }
  // dw[d,k] += sum_{b,t} dy[b,t,d] * x[b,t-(K-1)+k,d]; dbias[d] += sum dy.
  // Threads split the channels (not the rows), so the sums need no merge and
  // come out the same whatever the thread count.
  constexpr int kChunk = 64;
  const int n_chunks = (D + kChunk - 1) / kChunk;
  const size_t n_rows = size_t(s.B) * L;
#pragma omp parallel for schedule(static) if (big(s) && n_chunks > 1)
  for (int c = 0; c < n_chunks; ++c) {
    const int d0 = c * kChunk, nd = std::min(kChunk, D - d0);
    std::vector<T> g(size_t(K) * kChunk, T(0)), gb(kChunk, T(0));  // (K, chunk), (chunk)
    for (size_t row = 0; row < n_rows; ++row) {
      const int t = int(row % size_t(L));
      const T* dyr = dy + row * D + d0;
      for (int d = 0; d < nd; ++d) gb[d] += dyr[d];
      for (int k = std::max(0, K - 1 - t); k < K; ++k) {
        const T* xr = x + (row - (K - 1) + k) * D + d0;
        T* gk = g.data() + size_t(k) * kChunk;
        for (int d = 0; d < nd; ++d) gk[d] += dyr[d] * xr[d];
      }
    }
    for (int d = 0; d < nd; ++d) {
      for (int k = 0; k < K; ++k) dw[size_t(d0 + d) * K + k] += g[size_t(k) * kChunk + d];
      if (dbias) dbias[d0 + d] += gb[d];
    }
  }
}

template <typename T>
void conv1d_causal_step(int B, int D, int K, const T* x_t, T* state, const T* w, const T* bias,
                        T* y_t) {
  for (int b = 0; b < B; ++b)
    for (int d = 0; d < D; ++d) {
      T* st = state + (size_t(b) * D + d) * K;  // (K), oldest first
      const T* wd = w + size_t(d) * K;
      for (int k = 0; k + 1 < K; ++k) st[k] = st[k + 1];
      st[K - 1] = x_t[size_t(b) * D + d];
      T acc = bias ? bias[d] : T(0);
      for (int k = 0; k < K; ++k) acc += wd[k] * st[k];
      y_t[size_t(b) * D + d] = acc;
    }
}

#define MK_INSTANTIATE(T)                                                                      \
  template void conv1d_causal_forward<T>(const Conv1dShape&, const T*, const T*, const T*, T*); \
  template void conv1d_causal_backward<T>(const Conv1dShape&, const T*, const T*, const T*, T*, \
                                          T*, T*);                                              \
  template void conv1d_causal_step<T>(int, int, int, const T*, T*, const T*, const T*, T*);
MK_INSTANTIATE(float)
MK_INSTANTIATE(double)
#undef MK_INSTANTIATE

}  // namespace mk::ops
