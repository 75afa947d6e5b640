// Optimizer kernels over the flat fp32 buffers on CUDA, as
// mambakit/ops/optim.h (device pointers; fp32 only: master weights, grads
// and moments are fp32 whatever the activations).
#pragma once
#include <cstddef>

#include "mambakit/cuda/device.h"
#include "mambakit/ops/optim.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;
using mk::ops::AdamWHyper;

// One AdamW step on n elements (torch.optim.AdamW order: decay, then the
// bias-corrected step); step is 1-based; decay as the CPU op.
void adamw_update(float* p, const float* g, float* m, float* v, size_t n, const AdamWHyper& h,
                  long step, bool decay, stream_t stream = nullptr);

// sqrt(sum g^2): squares summed in double per block, the block sums added in
// a fixed order (deterministic). Synchronises the stream to return it.
double global_norm(const float* g, size_t n, stream_t stream = nullptr);

// Scales g by max_norm / norm if the norm exceeds max_norm; returns the norm
// before clipping.
double clip_grad_norm(float* g, size_t n, double max_norm, stream_t stream = nullptr);

}  // namespace mk::ops::cuda
