// Fused softmax cross-entropy on CUDA, as mambakit/ops/softmax_xent.h:
// logits T = float or bf16, statistics in fp32, losses fp32. One block per
// row (max, sum of exponentials, then the gradient in one more pass).
#pragma once
#include <cstdint>

#include "mambakit/cuda/device.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;

// logits (rows, V); targets (rows), target < 0 ignores the row.
// losses (rows) fp32: -log softmax(logits)[target] (0 for ignored rows).
// dlogits (optional, may alias logits): (softmax - onehot) * grad_scale.
// Returns the sum of the losses (summed in double on the device, in a fixed
// order). Synchronises the stream to return it, and throws mk::Error if a
// target is >= V (checked by the kernel).
template <typename T>
double softmax_xent(const T* logits, const int32_t* targets, float* losses, T* dlogits, int rows,
                    int V, float grad_scale, stream_t stream = nullptr);

// Row-wise log-softmax; out may alias in.
template <typename T>
void log_softmax(const T* in, T* out, int rows, int V, stream_t stream = nullptr);

}  // namespace mk::ops::cuda
