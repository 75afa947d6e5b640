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
template <typename T>
void rmsnorm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw, int rows,
                      int dim) {
  // dw is a sum over rows: threads split the columns (in runs of kCols),
  // each adding its columns over all rows in order, so the sums are those
  // of one thread. One region for both loops; they share no output.
  constexpr int kCols = 32;
#pragma omp parallel if (size_t(rows) * dim > (1u << 15))
  {
#pragma omp for schedule(static) nowait
    for (int r = 0; r < rows; ++r) {
      const T* xr = x + size_t(r) * dim;
      const T* dyr = dy + size_t(r) * dim;
      T* dxr = dx + size_t(r) * dim;
      const T rs = rstd[r];
      const double c =
          interleaved_sum(dim, [=](int j) { return double(dyr[j]) * w[j] * xr[j]; });
      const T k = T(double(rs) * rs * rs * c / dim);
      for (int j = 0; j < dim; ++j) dxr[j] = rs * w[j] * dyr[j] - k * xr[j];
    }
#pragma omp for schedule(static)
    for (int c0 = 0; c0 < dim; c0 += kCols) {
      const int c1 = std::min(dim, c0 + kCols);
      for (int r = 0; r < rows; ++r) {
        const T* xr = x + size_t(r) * dim;
        const T* dyr = dy + size_t(r) * dim;
        const T rs = rstd[r];
        for (int j = c0; j < c1; ++j) dw[j] += dyr[j] * xr[j] * rs;
      }
    }
  }
}

template void rmsnorm_forward<float>(const float*, const float*, float*, float*, int, int, float);
template void rmsnorm_forward<double>(const double*, const double*, double*, double*, int, int,
                                      double);
template void rmsnorm_backward<float>(const float*, const float*, const float*, const float*,
                                      float*, float*, int, int);
template void rmsnorm_backward<double>(const double*, const double*, const double*, const double*,
                                       double*, double*, int, int);

}  // namespace mk::ops
