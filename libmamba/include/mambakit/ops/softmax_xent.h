// Fused, numerically stable softmax cross-entropy over a vocabulary.
#pragma once
#include <cstdint>

namespace mk::ops {

// logits (rows, V); targets (rows), target < 0 means "ignore this row".
// losses (rows): -log softmax(logits)[target] (0 for ignored rows).
// If dlogits is non-null it receives (softmax - onehot(target)) * grad_scale
// (zero rows for ignored targets); dlogits may alias logits.
// Returns the sum of the losses over non-ignored rows (in double).
template <typename T>
double softmax_xent(const T* logits, const int32_t* targets, T* losses, T* dlogits, int rows,
                    int V, T grad_scale);

// Row-wise log-softmax (for sampling and evaluation): out may alias in.
template <typename T>
void log_softmax(const T* in, T* out, int rows, int V);

}  // namespace mk::ops
