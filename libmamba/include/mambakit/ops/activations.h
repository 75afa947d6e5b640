#pragma once
#include <cstddef>

namespace mk::ops {

// silu(x) = x * sigmoid(x)
template <typename T> void silu_forward(const T* x, T* y, size_t n);
// dx = dy * silu'(x)  (written)
template <typename T> void silu_backward(const T* dy, const T* x, T* dx, size_t n);

// softplus(x) = log(1 + exp(x)), computed without overflow (x for x > 20,
// as PyTorch's threshold).
template <typename T> void softplus_forward(const T* x, T* y, size_t n);
// dx = dy * sigmoid(x)  (written)
template <typename T> void softplus_backward(const T* dy, const T* x, T* dx, size_t n);

// Scalar forms for fused loops elsewhere.
template <typename T> T silu(T x);
template <typename T> T softplus(T x);
template <typename T> T sigmoid(T x);

}  // namespace mk::ops
