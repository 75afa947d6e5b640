// The baseline the CPU scan kernels are measured against: the selective
// scan forward (y only, no gate, no skip term) written as the plain loop
// nest anyone would write first, (b, d) in parallel, then t, then n, and
// left to the compiler. bench/CMakeLists.txt compiles this file alone with
// -O3 -ffast-math -mavx2 -mfma, so GCC vectorises the n loop, expf
// included (glibc's libmvec): what a compiler gives for free on an AVX2
// machine. It is only called when the CPU has AVX2 and FMA.
#include "scan_baseline_loop.h"

#include <cmath>

#include "mambakit/error.h"

namespace mk::bench {

void plain_scan_forward(const ops::SelectiveScanParams<float>& p, float* y) {
  const int Bn = p.batch, L = p.len, D = p.dim, N = p.dstate;
  MK_CHECK(N <= kPlainScanMaxState, "plain_scan_forward: d_state must be <= " +
                                        std::to_string(kPlainScanMaxState));
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < Bn; ++b)
    for (int d = 0; d < D; ++d) {
      float h[kPlainScanMaxState] = {};
      const float* A = p.A + size_t(d) * N;
      for (int t = 0; t < L; ++t) {
        const size_t row = size_t(b) * L + t;
        const float dl = p.delta[row * D + d], du = dl * p.u[row * D + d];
        const float* Bt = p.Bm + row * N;
        const float* Ct = p.Cm + row * N;
        float acc = 0.f;
        for (int n = 0; n < N; ++n) {
          h[n] = std::exp(dl * A[n]) * h[n] + du * Bt[n];
          acc += Ct[n] * h[n];
        }
        y[row * D + d] = acc;
      }
    }
}

}  // namespace mk::bench
