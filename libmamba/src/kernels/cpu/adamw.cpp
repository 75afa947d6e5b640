// AdamW, global gradient norm and norm clipping over flat buffers.
#include "mambakit/ops/optim.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "interleaved_sum.h"
#include "mambakit/error.h"

namespace mk::ops {

namespace {
constexpr size_t kParallelMin = size_t(1) << 15;
constexpr size_t kBlock = 4096;  // fixed reduction blocks: same sum for any thread count
}  // namespace

// Same order as torch.optim.AdamW: decay the weights first, then the
// bias-corrected Adam step  p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
template <typename T>
void adamw_update(T* p, const T* g, T* m, T* v, size_t n, const AdamWHyper& h, long step,
                  bool decay) {
  MK_CHECK(step >= 1, "adamw_update: step " + std::to_string(step) + " must be >= 1 (1-based)");
  const double bc1 = 1.0 - std::pow(h.beta1, double(step));
  const double bc2 = 1.0 - std::pow(h.beta2, double(step));
  const T b1 = T(h.beta1), b2 = T(h.beta2), one_b1 = T(1.0 - h.beta1), one_b2 = T(1.0 - h.beta2);
  const T step_size = T(h.lr / bc1), inv_sqrt_bc2 = T(1.0 / std::sqrt(bc2)), eps = T(h.eps);
  const T keep = decay ? T(1.0 - h.lr * h.weight_decay) : T(1);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T mi = b1 * m[i] + one_b1 * gi;
    const T vi = b2 * v[i] + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * keep - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

template <typename T>
double global_norm(const T* g, size_t n) {
  const size_t n_blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> part(n_blocks, 0.0);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (size_t b = 0; b < n_blocks; ++b) {
    const size_t end = std::min(n, (b + 1) * kBlock);
    const T* gb = g + b * kBlock;
    part[b] = interleaved_sum(end - b * kBlock, [gb](size_t i) { return double(gb[i]) * gb[i]; });
  }
  double total = 0;
  for (double s : part) total += s;
  return std::sqrt(total);
}

template <typename T>
double clip_grad_norm(T* g, size_t n, double max_norm) {
  const double norm = global_norm(g, n);
  if (norm > max_norm && norm > 0) {
    const T scale = T(max_norm / norm);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (size_t i = 0; i < n; ++i) g[i] *= scale;
  }
  return norm;
}

#define MK_INSTANTIATE(T)                                                                  \
  template void adamw_update<T>(T*, const T*, T*, T*, size_t, const AdamWHyper&, long, bool); \
  template double global_norm<T>(const T*, size_t);                                        \
  template double clip_grad_norm<T>(T*, size_t, double);
MK_INSTANTIATE(float)
MK_INSTANTIATE(double)
#undef MK_INSTANTIATE

}  // namespace mk::ops
