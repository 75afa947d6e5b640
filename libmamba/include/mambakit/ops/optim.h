// Optimizer kernels over flat buffers.
#pragma once
#include <cstddef>

namespace mk::ops {

struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
};

// One AdamW step on n contiguous elements, with bias correction for step
// number `step` (1-based). Decoupled weight decay (p -= lr*wd*p) is applied
// only when `decay` is true (callers pass false for norms, biases, A_log, D).
template <typename T>
void adamw_update(T* p, const T* g, T* m, T* v, size_t n, const AdamWHyper& h, long step,
                  bool decay);

// sqrt(sum g^2), accumulated in double.
template <typename T>
double global_norm(const T* g, size_t n);

// If the global norm exceeds max_norm, scales g in place by max_norm/norm.
// Returns the norm before clipping.
template <typename T>
double clip_grad_norm(T* g, size_t n, double max_norm);

// Linear warmup from 0 to lr_max over `warmup` steps, then cosine decay to
// lr_min at `total` steps (constant lr_min after). step is 0-based.
double cosine_lr(long step, long warmup, long total, double lr_max, double lr_min);

}  // namespace mk::ops
