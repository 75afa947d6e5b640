// The linear layer fused with its softplus (ops/linear_softplus.h): float
// through the per-ISA kernels that mk::active_isa() chose, double as the
// product then the softplus (and, backwards, the softplus's gradient from
// the output, then the product's backward).
#include "mambakit/ops/linear_softplus.h"

#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "activations_isa.h"
#include "transpose.h"
#include "mambakit/error.h"
#include "mambakit/ops/activations.h"
#include "mambakit/ops/matmul.h"

namespace mk::ops {

namespace {

void check_shape(int rows, int in, int out, const char* where) {
  MK_CHECK(rows >= 0 && in >= 1 && out >= 0,
           std::string(where) + ": bad shape rows=" + std::to_string(rows) + " in=" +
               std::to_string(in) + " out=" + std::to_string(out));
}

// softplus'(x) = sigmoid(x) = 1 - exp(-softplus(x)) = -expm1(-y); above the
// threshold y is x and the gradient exactly 1 (as softplus_backward).
double softplus_grad_from_output(double y) { return y > 20 ? 1.0 : -std::expm1(-y); }

}  // namespace

template <typename T>
void linear_softplus_forward(const T* x, const T* W, const T* b, T* y, int rows, int in, int out) {
  check_shape(rows, in, out, "linear_softplus_forward");
  if (rows == 0 || out == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    const std::vector<float> wt = transposed(W, out, in);  // (in, out)
    active_activation_kernels().linear_softplus_forward(x, wt.data(), b, y, rows, in, out);
  } else {
    linear_forward(x, W, b, y, rows, in, out);
    softplus_forward(y, y, size_t(rows) * out);
  }
}

template <typename T>
void linear_softplus_backward(const T* dy, const T* y, const T* x, const T* W, T* dx, T* dW, T* db,
                              int rows, int in, int out) {
  check_shape(rows, in, out, "linear_softplus_backward");
  if (rows == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    // Uninitialised: the kernel zeroes the partial sums it uses.
    const std::unique_ptr<float[]> scratch(new float[linear_softplus_scratch_size(rows, in, out)]);
    active_activation_kernels().linear_softplus_backward(dy, y, x, W, dx, rows, in, out,
                                                         scratch.get());
    // The sums of dW^T and db over all rows, at the start of the scratch.
    for (int d = 0; d < out; ++d)
      for (int k = 0; k < in; ++k) dW[size_t(d) * in + k] += scratch[size_t(k) * out + d];
    if (db)
      for (int d = 0; d < out; ++d) db[d] += scratch[size_t(in) * out + d];
  } else {
    // The activation's gradient from y, then the product's backward.
    std::vector<T> g(size_t(rows) * out);
    for (size_t i = 0; i < g.size(); ++i) g[i] = dy[i] * softplus_grad_from_output(y[i]);
    linear_backward(g.data(), x, W, dx, dW, db, rows, in, out);
  }
}

#define MK_INSTANTIATE(T)                                                                  \
  template void linear_softplus_forward<T>(const T*, const T*, const T*, T*, int, int, int); \
  template void linear_softplus_backward<T>(const T*, const T*, const T*, const T*, T*, T*, \
                                            T*, int, int, int);
MK_INSTANTIATE(float)
MK_INSTANTIATE(double)
#undef MK_INSTANTIATE

}  // namespace mk::ops
