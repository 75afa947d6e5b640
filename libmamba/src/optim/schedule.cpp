// Learning-rate schedule: linear warmup, then cosine decay.
#include "mambakit/ops/optim.h"

#include <cmath>

namespace mk::ops {

constexpr double kPi = 3.14159265358979323846;

// Warmup: step s (0-based) gets lr_max * (s+1)/warmup, so the first step
// already moves (a zero lr would waste it) and step warmup-1 reaches lr_max.
// Decay: from lr_max at step `warmup` along half a cosine to lr_min at step
// `total`; lr_min from there on.
double cosine_lr(long step, long warmup, long total, double lr_max, double lr_min) {
  if (step < warmup) return lr_max * double(step + 1) / double(warmup);
  if (step >= total) return lr_min;
  const double progress = double(step - warmup) / double(total - warmup);  // [0, 1)
  return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + std::cos(kPi * progress));
}

}  // namespace mk::ops
