// RoPE forward and backward (see ops/rope.h).
#include "mambakit/ops/rope.h"

#include <cmath>
#include <string>
#include <vector>

#include "mambakit/error.h"

namespace mk::ops {

namespace {

// Rotates every pair by sign * angle.
template <typename T>
void rotate(const RopeShape& s, const T* x, T* y, double sign) {
  MK_CHECK(s.batch > 0 && s.len > 0 && s.heads > 0 && s.head_dim > 0 && s.head_dim % 2 == 0,
           "rope: bad shape (head_dim " + std::to_string(s.head_dim) + " must be even and positive)");
  const int half = s.head_dim / 2;
  // cos/sin table (L, Dh/2)
  std::vector<T> c(size_t(s.len) * half), sn(size_t(s.len) * half);
  for (int t = 0; t < s.len; ++t)
    for (int i = 0; i < half; ++i) {
      const double freq = std::pow(s.theta, -2.0 * i / s.head_dim);
      const double a = double(s.pos0 + t) * freq;
      c[size_t(t) * half + i] = T(std::cos(a));
      sn[size_t(t) * half + i] = T(sign * std::sin(a));
    }
  const long rows = long(s.batch) * s.len;
  const size_t width = size_t(s.heads) * s.head_dim;
#pragma omp parallel for schedule(static) if (rows * long(width) > 65536)
  for (long r = 0; r < rows; ++r) {
    const int t = int(r % s.len);
    const T* ct = c.data() + size_t(t) * half;
    const T* st = sn.data() + size_t(t) * half;
    for (int h = 0; h < s.heads; ++h) {
      const T* xi = x + size_t(r) * width + size_t(h) * s.head_dim;
      T* yi = y + size_t(r) * width + size_t(h) * s.head_dim;
      for (int i = 0; i < half; ++i) {
        const T a = xi[i], b = xi[i + half];
        yi[i] = a * ct[i] - b * st[i];
        yi[i + half] = b * ct[i] + a * st[i];
      }
    }
  }
}

}  // namespace

template <typename T>
void rope_forward(const RopeShape& s, const T* x, T* y) { rotate(s, x, y, 1.0); }

template <typename T>
void rope_backward(const RopeShape& s, const T* dy, T* dx) { rotate(s, dy, dx, -1.0); }

template void rope_forward<float>(const RopeShape&, const float*, float*);
template void rope_forward<double>(const RopeShape&, const double*, double*);
template void rope_backward<float>(const RopeShape&, const float*, float*);
template void rope_backward<double>(const RopeShape&, const double*, double*);

}  // namespace mk::ops
