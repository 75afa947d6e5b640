#pragma once

namespace mk::ops {

// y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps), per row.
// x, y (rows, dim); w (dim); rstd (rows) is saved for the backward.
template <typename T>
void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, int rows, int dim, T eps);

// dx (written), dw (accumulated).
template <typename T>
void rmsnorm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw, int rows,
                      int dim);

}  // namespace mk::ops
