// Two-tower feature combination forward and backward (see ops/pair_features.h).
#include "mambakit/ops/pair_features.h"

#include <cstddef>

namespace mk::ops {

template <typename T>
void pair_features_forward(const T* u, const T* v, T* f, int pairs, int d) {
  for (int p = 0; p < pairs; ++p, u += d, v += d, f += 4 * size_t(d))
    for (int j = 0; j < d; ++j) {
      f[j] = u[j];
      f[d + j] = v[j];
      f[2 * d + j] = u[j] * v[j];
      f[3 * d + j] = u[j] - v[j];
    }
}

template <typename T>
void pair_features_backward(const T* df, const T* u, const T* v, T* du, T* dv, int pairs, int d) {
  for (int p = 0; p < pairs; ++p, u += d, v += d, du += d, dv += d, df += 4 * size_t(d))
    for (int j = 0; j < d; ++j) {
      du[j] = df[j] + df[2 * d + j] * v[j] + df[3 * d + j];
      dv[j] = df[d + j] + df[2 * d + j] * u[j] - df[3 * d + j];
    }
}

template void pair_features_forward<float>(const float*, const float*, float*, int, int);
template void pair_features_forward<double>(const double*, const double*, double*, int, int);
template void pair_features_backward<float>(const float*, const float*, const float*, float*, float*, int, int);
template void pair_features_backward<double>(const double*, const double*, const double*, double*, double*, int,
                                             int);

}  // namespace mk::ops
