// Rotary position embedding on CUDA, as mambakit/ops/rope.h (HF Llama's
// rotate_half layout, angles in double), fp32 only, device pointers.
// x, y (B, L, heads, head_dim) contiguous; head_dim even; token t at
// position pos0 + t. Bad shapes are refused with mk::Error.
#pragma once

#include "mambakit/cuda/device.h"
#include "mambakit/ops/rope.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;

// y = rotate(x); y may alias x.
void rope_forward(const mk::ops::RopeShape& s, const float* x, float* y, stream_t stream = nullptr);

// dx = rotate^-1(dy); dx may alias dy.
void rope_backward(const mk::ops::RopeShape& s, const float* dy, float* dx,
                   stream_t stream = nullptr);

}  // namespace mk::ops::cuda
