// A linear layer and its softplus in one: y (rows, out) = softplus(x W^T + b),
// PyTorch's weight layout (W is (out, in), b is (out) or null). Mamba's
// dt_proj: delta from the dt_rank columns of x_proj's output.
#pragma once

namespace mk::ops {

// The backward takes dy and the forward's output y: the softplus's gradient
// is sigmoid(pre) = 1 - exp(-y), so the pre-activation is never stored
// (Mamba keeps y, delta, for the scan anyway). dx (rows, in) written
// (skipped if null); dW (out, in) and db (out) accumulated (db skipped if
// null). float runs the per-ISA fused kernels (linear_softplus_kernels.cpp);
// double runs the product and the softplus one after the other.
template <typename T>
void linear_softplus_forward(const T* x, const T* W, const T* b, T* y, int rows, int in, int out);
template <typename T>
void linear_softplus_backward(const T* dy, const T* y, const T* x, const T* W, T* dx, T* dW, T* db,
                              int rows, int in, int out);

}  // namespace mk::ops
