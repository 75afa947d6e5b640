// The float SiLU and softplus loops, forward and backward, and -exp(x),
// compiled once per ISA (libmamba/CMakeLists.txt; MK_ACT_NS names the
// copy's namespace). They are plain loops over the formulas of
// activation_math.h, which GCC vectorises: four lanes with the x86-64
// baseline, eight with AVX2, sixteen with AVX-512. In a small Mamba's
// training step the four activation loops took about a tenth of the time
// with four lanes. The copies compute the same bits
// (no FP contraction, see activation_math.h); only their width differs.
// As in selective_scan_kernels.cpp, nothing here may define a symbol that
// another object defines too: helpers are static or in the anonymous
// namespace.
#include <omp.h>

#include <algorithm>

#include "activation_math.h"
#include "activations_isa.h"

namespace mk::ops::MK_ACT_NS {
namespace {

// Below this many elements a loop runs on one thread.
constexpr size_t kParallelMin = size_t(1) << 16;

// Elements per block of a thread's range, and how many blocks ahead of the
// one at hand its streams are prefetched. The loops below do a few dozen
// vector operations per element and read and write one or two floats:
// measured on an Intel Xeon with AMX (bench/README.md), the hardware
// prefetchers left softplus's forward waiting on its loads out of cache
// (1.8 ns per element over 4 M floats against 0.9 in L2, AVX-512; AVX2 2.6
// against 1.3, and SiLU's forward 1.3 against 0.75); prefetching four
// blocks of 256 ahead brings both to within 10% of their in-cache rate.
constexpr size_t kBlock = 256;
constexpr size_t kAheadBlocks = 4;
constexpr size_t kPrefetchMin = size_t(1) << 17;

// [begin, end) of this thread's share of n elements (static, in whole
// 16-float lines so no two threads write one cache line).
inline void thread_range(size_t n, size_t& begin, size_t& end) {
  const size_t lines = (n + 15) / 16;
  const size_t nt = size_t(omp_get_num_threads()), tid = size_t(omp_get_thread_num());
  begin = std::min(n, lines * tid / nt * 16);
  end = std::min(n, lines * (tid + 1) / nt * 16);
}

// body(i0, i1) over [0, n) in blocks of kBlock, on the OpenMP team when n
// is large; before each block the lines of in0, in1 (may be null) and out
// kAheadBlocks blocks ahead, within the thread's range, are
// prefetched when the arrays are too large for L2 (in L2 the prefetches
// only cost: 3-7% at 16 K to 64 K floats). body is a plain loop over the
// formulas, which GCC vectorises.
template <class Body>
void blocked_loop(size_t n, const float* in0, const float* in1, float* out, Body body) {
  const bool prefetch = n > kPrefetchMin;
#pragma omp parallel if (n > kParallelMin)
  {
    size_t begin, end;
    thread_range(n, begin, end);
    for (size_t i0 = begin; i0 < end; i0 += kBlock) {
      const size_t i1 = std::min(end, i0 + kBlock);
      const size_t p1 = prefetch ? std::min(end, i1 + kAheadBlocks * kBlock) : 0;
      for (size_t j = i0 + kAheadBlocks * kBlock; j < p1; j += 16) {
        __builtin_prefetch(in0 + j);
        if (in1) __builtin_prefetch(in1 + j);
        __builtin_prefetch(out + j, 1);
      }
      body(i0, i1);
    }
  }
}

void silu_forward(const float* x, float* y, size_t n) {
  blocked_loop(n, x, nullptr, y, [=](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) y[i] = x[i] * act_math::sigmoid_f(x[i]);
  });
}

void silu_backward(const float* dy, const float* x, float* dx, size_t n) {
  blocked_loop(n, dy, x, dx, [=](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) dx[i] = dy[i] * act_math::silu_grad_f(x[i]);
  });
}

void softplus_forward(const float* x, float* y, size_t n) {
  blocked_loop(n, x, nullptr, y, [=](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) y[i] = act_math::softplus_f(x[i]);
  });
}

void softplus_backward(const float* dy, const float* x, float* dx, size_t n) {
  blocked_loop(n, dy, x, dx, [=](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) dx[i] = dy[i] * act_math::softplus_grad_f(x[i]);
  });
}

void neg_exp(const float* x, float* y, size_t n) {
  blocked_loop(n, x, nullptr, y, [=](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) y[i] = -vmath::exp_f(x[i]);
  });
}

const ActivationKernels kKernels{silu_forward,
                                 silu_backward,
                                 softplus_forward,
                                 softplus_backward,
                                 neg_exp,
                                 conv1d_silu_forward_f32,
                                 conv1d_silu_backward_f32,
                                 linear_softplus_forward_f32,
                                 linear_softplus_backward_f32,
                                 narrow_linear_forward_f32};

}  // namespace

const ActivationKernels& activation_kernels_f32() { return kKernels; }

}  // namespace mk::ops::MK_ACT_NS
