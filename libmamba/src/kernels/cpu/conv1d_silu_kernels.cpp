// The Mamba block's causal depthwise conv fused with its SiLU, for float,
// compiled once per ISA with the activation loops (libmamba/CMakeLists.txt;
// MK_ACT_NS names the copy's namespace). ops::conv1d_silu_forward and
// _backward (conv1d.cpp) call these through the activation table for
// kernels of up to kConvSiluMaxK taps.
//
// Why fused: apart, the conv writes its output, the SiLU reads it back and
// writes the activation, and the backward reads and writes every element
// once more per op; at training sizes (B L D of millions) each pass goes to
// L3 or memory. Fused, the forward reads x and writes y; the backward
// recomputes the pre-activation from x (K multiply-adds, cheaper than a
// pass over a saved copy), and reads dy and x and writes dx once.
//
// Layout of the work: as conv1d.cpp, rows (b, t) in order with the channels
// innermost (the vectorised loops) and contiguous rows streamed once, in
// fixed blocks of kRowBlock rows that threads share out; a row's taps read
// the K-1 rows before it, just streamed. The backward keeps each block's
// activation gradients of the last K rows in a ring (K rows of D, in L1
// or L2) to form dx, which needs those of the K-1 rows after a row.
//
// Bits: the pre-activation is formed as conv1d_causal_forward forms it
// (bias, then the taps in order) and the SiLU by the formulas of
// activation_math.h, with no FP contraction here or there, so the forward
// gives the bits of those two ops on every ISA. The backward forms the
// SiLU's gradient by the same formula, adds dx's K terms in
// conv1d_causal_backward's order and sums dw and dbias over the same blocks
// of rows in the same order, so it gives the bits of silu_backward then
// conv1d_causal_backward, whatever the thread count.
#include "activation_math.h"
#include "activations_isa.h"

namespace mk::ops::MK_ACT_NS {
namespace {

constexpr size_t kRowBlock = kConvSiluRowBlock;

// Below this many multiply-adds a call runs on one thread.
constexpr size_t kParallelMin = size_t(1) << 16;

// The pre-activation of row `row` (time t) into pre: bias, then the taps in
// order, those before t = 0 skipped (as conv1d_causal_forward skips them).
template <int K>
inline void pre_activation(const float* x, const float* wt, const float* bias, size_t row, int t,
                           int D, float* pre) {
  const float* xr = x + row * D;  // the row's own input (tap K-1)
  if (t >= K - 1) {
#pragma omp simd
    for (int d = 0; d < D; ++d) {
      float acc = bias ? bias[d] : 0.f;
      for (int k = 0; k < K; ++k) acc = acc + wt[size_t(k) * D + d] * xr[(k - (K - 1)) * D + d];
      pre[d] = acc;
    }
  } else {
    for (int d = 0; d < D; ++d) pre[d] = bias ? bias[d] : 0.f;
    for (int k = K - 1 - t; k < K; ++k) {
      const float* xk = xr + (k - (K - 1)) * D;
      const float* wk = wt + size_t(k) * D;
#pragma omp simd
      for (int d = 0; d < D; ++d) pre[d] = pre[d] + wk[d] * xk[d];
    }
  }
}

template <int K>
void forward_k(const Conv1dShape& s, const float* x, const float* wt, const float* bias,
               float* y) {
  const int L = s.L, D = s.D;
  const size_t n_rows = size_t(s.B) * L, n_blocks = (n_rows + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) if (n_rows * D * K > kParallelMin)
  for (size_t blk = 0; blk < n_blocks; ++blk) {
    const size_t r1 = n_rows < (blk + 1) * kRowBlock ? n_rows : (blk + 1) * kRowBlock;
    for (size_t row = blk * kRowBlock; row < r1; ++row) {
      float* yr = y + row * D;
      pre_activation<K>(x, wt, bias, row, int(row % size_t(L)), D, yr);
#pragma omp simd
      for (int d = 0; d < D; ++d) yr[d] = yr[d] * act_math::sigmoid_f(yr[d]);
    }
  }
}

// dx of row s (time t) from the ring of activation gradients: terms k = 0
// (the latest, g at s+K-1) first, as conv1d_causal_backward adds them; g
// past the end of the sequence is absent.
template <int K>
inline void dx_row(const float* ring, const float* wt, size_t s, int t, int L, int D, float* dx) {
  float* dxr = dx + s * D;
  const int k0 = t + K - L > 0 ? t + K - L : 0;
  if (k0 == 0) {
#pragma omp simd
    for (int d = 0; d < D; ++d) {
      float acc = 0.f;
      for (int k = 0; k < K; ++k)
        acc = acc + wt[size_t(k) * D + d] * ring[((s + K - 1 - k) % K) * D + d];
      dxr[d] = acc;
    }
  } else {
    for (int d = 0; d < D; ++d) dxr[d] = 0.f;
    for (int k = k0; k < K; ++k) {
      const float* gk = ring + ((s + K - 1 - k) % K) * D;
      const float* wk = wt + size_t(k) * D;
#pragma omp simd
      for (int d = 0; d < D; ++d) dxr[d] = dxr[d] + wk[d] * gk[d];
    }
  }
}

// One block of rows [r0, r1): dx of its rows written; its sums of dw (K
// rows of D, transposed) and dbias (D) written to part; ring is K rows of D.
template <int K>
void backward_block(const Conv1dShape& s, const float* dy, const float* x, const float* wt,
                    const float* bias, float* dx, size_t r0, size_t r1, float* part,
                    float* ring) {
  const int L = s.L, D = s.D;
  float* gb = part + size_t(K) * D;
  for (size_t i = 0; i < size_t(K + 1) * D; ++i) part[i] = 0.f;
  // The rows whose g the block needs: its own, and up to K-1 after its last
  // within that row's sequence.
  const size_t last = r1 - 1, seq_end = last - last % size_t(L) + size_t(L) - 1;
  const size_t q_end = (last + K - 1 < seq_end ? last + K - 1 : seq_end) + 1;
  for (size_t q = r0; q < q_end; ++q) {
    const int t = int(q % size_t(L));
    float* g = ring + (q % K) * D;
    pre_activation<K>(x, wt, bias, q, t, D, g);
    const float* dyr = dy + q * D;
#pragma omp simd
    for (int d = 0; d < D; ++d) g[d] = dyr[d] * act_math::silu_grad_f(g[d]);
    if (q < r1) {
      // dw[d,k] += g x[t-(K-1)+k]; dbias += g.
#pragma omp simd
      for (int d = 0; d < D; ++d) gb[d] = gb[d] + g[d];
      for (int k = K - 1 - t > 0 ? K - 1 - t : 0; k < K; ++k) {
        const float* xk = x + (q - (K - 1) + k) * D;
        float* pk = part + size_t(k) * D;
#pragma omp simd
        for (int d = 0; d < D; ++d) pk[d] = pk[d] + g[d] * xk[d];
      }
    }
    // Rows of the block whose dx is complete now: q-(K-1) in mid sequence,
    // and at a sequence's last row the rows after that, whose later g are
    // past the sequence's end.
    auto complete = [&](size_t sr) {
      if (sr >= r0 && sr < r1) dx_row<K>(ring, wt, sr, int(sr % size_t(L)), L, D, dx);
    };
    if (t >= K - 1) complete(q - (K - 1));
    if (K > 1 && t == L - 1)
      for (size_t sr = q - size_t(t < K - 2 ? t : K - 2); sr <= q; ++sr) complete(sr);
  }
}

template <int K>
void backward_k(const Conv1dShape& s, const float* dy, const float* x, const float* wt,
                const float* bias, float* dx, float* dw, float* dbias, float* scratch) {
  const int D = s.D;
  const size_t n_rows = size_t(s.B) * s.L, n_blocks = (n_rows + kRowBlock - 1) / kRowBlock;
  const size_t per_block = size_t(2 * K + 1) * D;  // partial sums (K + 1 rows), ring (K rows)
#pragma omp parallel for schedule(static) if (n_rows * D * K > kParallelMin)
  for (size_t blk = 0; blk < n_blocks; ++blk) {
    const size_t r0 = blk * kRowBlock, r1 = n_rows < r0 + kRowBlock ? n_rows : r0 + kRowBlock;
    float* part = scratch + blk * per_block;
    backward_block<K>(s, dy, x, wt, bias, dx, r0, r1, part, part + size_t(K + 1) * D);
  }
  // Each entry summed over the blocks in order from zero, then added to dw
  // (dbias): conv1d_causal_backward's sums, the same on any thread count.
  const size_t n_sums = size_t(K + 1) * D;
  float* total = scratch + n_blocks * per_block;
  for (size_t i = 0; i < n_sums; ++i) total[i] = 0.f;
  for (size_t blk = 0; blk < n_blocks; ++blk) {
    const float* part = scratch + blk * per_block;
#pragma omp simd
    for (size_t i = 0; i < n_sums; ++i) total[i] = total[i] + part[i];
  }
  for (int d = 0; d < D; ++d) {
    for (int k = 0; k < K; ++k) dw[size_t(d) * K + k] += total[size_t(k) * D + d];
    if (dbias) dbias[d] += total[size_t(K) * D + d];
  }
}

}  // namespace

void conv1d_silu_forward_f32(const Conv1dShape& s, const float* x, const float* wt,
                             const float* bias, float* y) {
  switch (s.K) {
    case 1: return forward_k<1>(s, x, wt, bias, y);
    case 2: return forward_k<2>(s, x, wt, bias, y);
    case 3: return forward_k<3>(s, x, wt, bias, y);
    default: return forward_k<4>(s, x, wt, bias, y);  // the caller keeps K <= kConvSiluMaxK
  }
}

void conv1d_silu_backward_f32(const Conv1dShape& s, const float* dy, const float* x,
                              const float* wt, const float* bias, float* dx, float* dw,
                              float* dbias, float* scratch) {
  switch (s.K) {
    case 1: return backward_k<1>(s, dy, x, wt, bias, dx, dw, dbias, scratch);
    case 2: return backward_k<2>(s, dy, x, wt, bias, dx, dw, dbias, scratch);
    case 3: return backward_k<3>(s, dy, x, wt, bias, dx, dw, dbias, scratch);
    default: return backward_k<4>(s, dy, x, wt, bias, dx, dw, dbias, scratch);
  }
}

}  // namespace mk::ops::MK_ACT_NS
