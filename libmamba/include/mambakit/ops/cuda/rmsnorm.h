// RMSNorm on CUDA, as mambakit/ops/rmsnorm.h (device pointers). Activations
// T = float or bf16; the weight, rstd and dw are fp32 (master weights, fp32
// statistics). One block per row; dw is reduced over rows in a fixed order
// (per-block partial sums, then one pass over them): deterministic.
#pragma once

#include "mambakit/cuda/device.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;

// y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps), per row.
// x, y (rows, dim); w (dim); rstd (rows) saved for the backward.
template <typename T>
void rmsnorm_forward(const T* x, const float* w, T* y, float* rstd, int rows, int dim, float eps,
                     stream_t stream = nullptr);

// dx (written), dw (accumulated).
template <typename T>
void rmsnorm_backward(const T* dy, const T* x, const float* w, const float* rstd, T* dx,
                      float* dw, int rows, int dim, stream_t stream = nullptr);

}  // namespace mk::ops::cuda
