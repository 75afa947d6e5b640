// Token embedding on CUDA, as mambakit/ops/embedding.h (device pointers).
#pragma once
#include <cstdint>

#include "mambakit/cuda/device.h"

namespace mk::ops::cuda {

using mk::cuda::stream_t;

// out (n, dim) = table[ids[i]]; table (vocab, dim); T = float or bf16.
// Throws mk::Error naming the first bad position if an id is outside
// [0, vocab): the kernel flags it and the call reads the flag back, so it
// synchronises the stream (rows with a bad id are written as zeros).
template <typename T>
void embedding_forward(const int32_t* ids, const T* table, T* out, int n, int vocab, int dim,
                       stream_t stream = nullptr);

// dtable[ids[i]] += dout[i] (accumulated in fp32; ids may repeat: fp32
// atomics, so repeated ids may sum in any order). Ids are checked as above.
template <typename T>
void embedding_backward(const int32_t* ids, const T* dout, float* dtable, int n, int vocab,
                        int dim, stream_t stream = nullptr);

}  // namespace mk::ops::cuda
