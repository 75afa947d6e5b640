// Elementwise activations of the S4 block and the SwiGLU MLP:
//   GELU (exact, erf form, PyTorch's nn.GELU default),
//   GLU over the last dimension: out = a * sigmoid(b), [a | b] = x,
//   SwiGLU: out = silu(g) * u.
#pragma once
#include <cstddef>

namespace mk::ops {

// y = x * Phi(x)
template <typename T> void gelu_forward(const T* x, T* y, size_t n);
// dx = dy * (Phi(x) + x phi(x))  (written)
template <typename T> void gelu_backward(const T* dy, const T* x, T* dx, size_t n);

// x (rows, 2w) -> y (rows, w): y = x[:, :w] * sigmoid(x[:, w:])
template <typename T> void glu_forward(const T* x, T* y, size_t rows, size_t w);
// dy (rows, w) -> dx (rows, 2w) (written)
template <typename T> void glu_backward(const T* dy, const T* x, T* dx, size_t rows, size_t w);

// y = silu(g) * u, all (n)
template <typename T> void swiglu_forward(const T* g, const T* u, T* y, size_t n);
// dg, du (n) written
template <typename T> void swiglu_backward(const T* dy, const T* g, const T* u, T* dg, T* du, size_t n);

}  // namespace mk::ops
