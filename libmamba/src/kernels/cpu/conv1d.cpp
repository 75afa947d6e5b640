// Causal depthwise conv1d over (B, L, D) with kernel (D, K) and bias (D).
// Channels are the contiguous axis, so every loop keeps d innermost and reads
// the kernel transposed to (K, D) to vectorise over channels.
#include "mambakit/ops/conv1d.h"

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "activations_isa.h"
#include "transpose.h"
#include "mambakit/error.h"
#include "mambakit/ops/activations.h"

namespace mk::ops {

namespace {

void check_shape(const Conv1dShape& s, const char* where) {
  MK_CHECK(s.B >= 0 && s.L >= 0 && s.D >= 0 && s.K >= 1,
           std::string(where) + ": bad shape B=" + std::to_string(s.B) + " L=" +
               std::to_string(s.L) + " D=" + std::to_string(s.D) + " K=" + std::to_string(s.K));
}

bool big(const Conv1dShape& s) { return size_t(s.B) * s.L * s.D * s.K > (1u << 16); }

}  // namespace

template <typename T>
void conv1d_causal_forward(const Conv1dShape& s, const T* x, const T* w, const T* bias, T* y) {
  check_shape(s, "conv1d_causal_forward");
  const int L = s.L, D = s.D, K = s.K;
  const std::vector<T> wt = transposed(w, D, K);
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

// One pass over the rows in fixed blocks: each block writes its rows of dx
// and its own partial sums of dw and dbias, and the partials are then added
// block by block in order. The blocks do not depend on the thread count, so
// neither do the sums; the rows of a block are contiguous, so dy and x are
// read once, in order (splitting the channels instead made every thread
// stream the whole of dy and x once per chunk of channels).
template <typename T>
void conv1d_causal_backward(const Conv1dShape& s, const T* dy, const T* x, const T* w, T* dx,
                            T* dw, T* dbias) {
  check_shape(s, "conv1d_causal_backward");
  const int L = s.L, D = s.D, K = s.K;
  const std::vector<T> wt = transposed(w, D, K);
  constexpr size_t kRowBlock = 64;
  const size_t n_rows = size_t(s.B) * L, n_blocks = (n_rows + kRowBlock - 1) / kRowBlock;
  const size_t part_size = size_t(K + 1) * D;  // per block: (K, D) taps of dw, then dbias (D)
  std::vector<T> part(n_blocks * part_size), total(part_size, T(0));
#pragma omp parallel if (big(s))
  {
#pragma omp for schedule(static)
    for (size_t blk = 0; blk < n_blocks; ++blk) {
      T* g = part.data() + blk * part_size;
      T* gb = g + size_t(K) * D;
      std::fill(g, g + part_size, T(0));
      for (size_t row = blk * kRowBlock; row < std::min(n_rows, (blk + 1) * kRowBlock); ++row) {
        const int t = int(row % size_t(L));
        // dx[b,t,d] = sum_k w[d,k] dy[b, t+(K-1)-k, d] over outputs inside [0, L).
        T* dxr = dx + row * D;
        std::fill(dxr, dxr + D, T(0));
        for (int k = std::max(0, t + K - L); k < K; ++k) {
          const T* dyr = dy + (row + (K - 1) - k) * D;
          const T* wk = wt.data() + size_t(k) * D;
          for (int d = 0; d < D; ++d) dxr[d] += wk[d] * dyr[d];
        }
        // dw[d,k] += dy[b,t,d] x[b,t-(K-1)+k,d]; dbias[d] += dy[b,t,d].
        const T* dyr = dy + row * D;
        for (int d = 0; d < D; ++d) gb[d] += dyr[d];
        for (int k = std::max(0, K - 1 - t); k < K; ++k) {
          const T* xr = x + (row - (K - 1) + k) * D;
          T* gk = g + size_t(k) * D;
          for (int d = 0; d < D; ++d) gk[d] += dyr[d] * xr[d];
        }
      }
    }
    // Threads split the entries (in runs, to vectorise); each entry adds
    // the blocks in order.
    constexpr size_t kRun = 64;
#pragma omp for schedule(static)
    for (size_t i0 = 0; i0 < part_size; i0 += kRun) {
      const size_t i1 = std::min(part_size, i0 + kRun);
      for (size_t blk = 0; blk < n_blocks; ++blk) {
        const T* p = part.data() + blk * part_size;
        for (size_t i = i0; i < i1; ++i) total[i] += p[i];
      }
    }
  }
  for (int d = 0; d < D; ++d) {
    for (int k = 0; k < K; ++k) dw[size_t(d) * K + k] += total[size_t(k) * D + d];
    if (dbias) dbias[d] += total[size_t(K) * D + d];
  }
}

template <typename T>
void conv1d_silu_forward(const Conv1dShape& s, const T* x, const T* w, const T* bias, T* y) {
  check_shape(s, "conv1d_silu_forward");
  if constexpr (std::is_same_v<T, float>) {
    if (s.K <= kConvSiluMaxK) {
      const std::vector<float> wt = transposed(w, s.D, s.K);
      return active_activation_kernels().conv1d_silu_forward(s, x, wt.data(), bias, y);
    }
  }
  // The conv writes y, the SiLU overwrites it in place.
  conv1d_causal_forward(s, x, w, bias, y);
  silu_forward(y, y, size_t(s.B) * s.L * s.D);
}

template <typename T>
void conv1d_silu_backward(const Conv1dShape& s, const T* dy, const T* x, const T* w,
                          const T* bias, T* dx, T* dw, T* dbias) {
  check_shape(s, "conv1d_silu_backward");
  if constexpr (std::is_same_v<T, float>) {
    if (s.K <= kConvSiluMaxK) {
      const std::vector<float> wt = transposed(w, s.D, s.K);
      std::vector<float> scratch(conv1d_silu_scratch_size(s));
      return active_activation_kernels().conv1d_silu_backward(s, dy, x, wt.data(), bias, dx, dw,
                                                              dbias, scratch.data());
    }
  }
  // Recompute the pre-activation, turn it into its gradient in place, then
  // the conv's backward.
  const size_t n = size_t(s.B) * s.L * s.D;
  std::vector<T> g(n);
  conv1d_causal_forward(s, x, w, bias, g.data());
  silu_backward(dy, g.data(), g.data(), n);
  conv1d_causal_backward(s, g.data(), x, w, dx, dw, dbias);
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
  template void conv1d_silu_forward<T>(const Conv1dShape&, const T*, const T*, const T*, T*);   \
  template void conv1d_silu_backward<T>(const Conv1dShape&, const T*, const T*, const T*,       \
                                        const T*, T*, T*, T*);                                  \
  template void conv1d_causal_step<T>(int, int, int, const T*, T*, const T*, const T*, T*);
MK_INSTANTIATE(float)
MK_INSTANTIATE(double)
#undef MK_INSTANTIATE

}  // namespace mk::ops
