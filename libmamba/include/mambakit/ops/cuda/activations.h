// Elementwise activations on CUDA, as mambakit/ops/activations.h: device
// pointers, T = float or bf16 (arithmetic in fp32), same semantics (softplus
// switches to the identity above 20, as PyTorch). Fused forms elsewhere:
// softplus(delta + bias) inside the selective scan, SiLU after the causal
// conv (conv1d.h), the silu(z) gate inside the scan.
#pragma once
#include <cstddef>

#include "mambakit/cuda/device.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;

template <typename T>
void silu_forward(const T* x, T* y, size_t n, stream_t stream = nullptr);
// dx = dy * silu'(x)  (written)
template <typename T>
void silu_backward(const T* dy, const T* x, T* dx, size_t n, stream_t stream = nullptr);
template <typename T>
void softplus_forward(const T* x, T* y, size_t n, stream_t stream = nullptr);
// dx = dy * sigmoid(x)  (written; exactly dy above the threshold)
template <typename T>
void softplus_backward(const T* dy, const T* x, T* dx, size_t n, stream_t stream = nullptr);
// The same from the forward's output y = softplus(x): dx = dy * (1 - exp(-y))
template <typename T>
void softplus_backward_from_output(const T* dy, const T* y, T* dx, size_t n,
                                   stream_t stream = nullptr);

// fp32 <-> bf16 (round to nearest even), e.g. a bf16 copy of fp32 master
// weights for the matmuls.
void cast(const float* in, mk::cuda::bf16* out, size_t n, stream_t stream = nullptr);
void cast(const mk::cuda::bf16* in, float* out, size_t n, stream_t stream = nullptr);

}  // namespace mk::ops::cuda
