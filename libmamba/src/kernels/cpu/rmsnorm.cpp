// RMSNorm: y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps), per row.
#include "mambakit/ops/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "interleaved_sum.h"

namespace mk::ops {

template <typename T>
void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, int rows, int dim, T eps) {
#pragma omp parallel for schedule(static) if (size_t(rows) * dim > (1u << 15))
  for (int r = 0; r < rows; ++r) {
    const T* xr = x + size_t(r) * dim;
    T* yr = y + size_t(r) * dim;
    const double ss = interleaved_sum(dim, [xr](int j) { return double(xr[j]) * xr[j]; });
    const T rs = T(1.0 / std::sqrt(ss / dim + double(eps)));
    rstd[r] = rs;
    for (int j = 0; j < dim; ++j) yr[j] = xr[j] * rs * w[j];
  }
}

// With r = rstd and c = sum_i dy_i w_i x_i:
//   dx_j = r * w_j * dy_j - r^3 * x_j * c / dim,   dw_j += sum_rows dy_j * x_j * r.
// dw is summed per block of kRowBlock rows, in the same pass over dy and x
// as dx, and then over the blocks in order: one pass over the inputs (a
// thread per run of columns walking every row re-read them once per run,
// from L3 at training sizes), and sums that do not depend on the thread
// count.
template <typename T>
void rmsnorm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw, int rows,
                      int dim) {
  constexpr int kRowBlock = 64;
  const int n_blocks = (rows + kRowBlock - 1) / kRowBlock;
  std::vector<T> part(size_t(n_blocks) * dim);  // per block: its rows' dw terms, summed
#pragma omp parallel for schedule(static) if (size_t(rows) * dim > (1u << 15))
  for (int blk = 0; blk < n_blocks; ++blk) {
    T* pw = part.data() + size_t(blk) * dim;
    for (int r = blk * kRowBlock; r < std::min(rows, (blk + 1) * kRowBlock); ++r) {
      const T* xr = x + size_t(r) * dim;
      const T* dyr = dy + size_t(r) * dim;
      T* dxr = dx + size_t(r) * dim;
      const T rs = rstd[r];
      const double c =
          interleaved_sum(dim, [=](int j) { return double(dyr[j]) * w[j] * xr[j]; });
      const T k = T(double(rs) * rs * rs * c / dim);
      for (int j = 0; j < dim; ++j) {
        dxr[j] = rs * w[j] * dyr[j] - k * xr[j];
        pw[j] += dyr[j] * xr[j] * rs;
      }
    }
  }
  std::vector<T> total(dim, T(0));
  for (int blk = 0; blk < n_blocks; ++blk) {
    const T* pw = part.data() + size_t(blk) * dim;
    for (int j = 0; j < dim; ++j) total[j] += pw[j];
  }
  for (int j = 0; j < dim; ++j) dw[j] += total[j];
}

template void rmsnorm_forward<float>(const float*, const float*, float*, float*, int, int, float);
template void rmsnorm_forward<double>(const double*, const double*, double*, double*, int, int,
                                      double);
template void rmsnorm_backward<float>(const float*, const float*, const float*, const float*,
                                      float*, float*, int, int);
template void rmsnorm_backward<double>(const double*, const double*, const double*, const double*,
                                       double*, double*, int, int);

}  // namespace mk::ops
