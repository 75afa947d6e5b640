#pragma once
#include <cstdint>

namespace mk::ops {

// out (n, dim) = table[ids[i]] ; table (vocab, dim). Throws mk::Error on an
// id outside [0, vocab).
template <typename T>
void embedding_forward(const int32_t* ids, const T* table, T* out, int n, int vocab, int dim);

// dtable[ids[i]] += dout[i] (accumulated, ids may repeat).
template <typename T>
void embedding_backward(const int32_t* ids, const T* dout, T* dtable, int n, int vocab, int dim);

}  // namespace mk::ops
