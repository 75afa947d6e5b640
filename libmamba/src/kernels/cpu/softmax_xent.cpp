// Fused, max-subtracted softmax cross-entropy and log-softmax, row by row.
#include "mambakit/ops/softmax_xent.h"

#include <cmath>
#include <string>
#include <vector>

#include "mambakit/error.h"
#include "vec_math.h"

namespace mk::ops {

namespace {

// logsumexp(x) = max + log(sum exp(x_j - max)): the max is subtracted so
// large logits never overflow, and kept apart from the small log term so
// that x_j - max stays exact even for logits of magnitude 1e4 in float.
template <typename T>
struct LogSumExp {
  T max;
  double log_sum;
};

// float: the vectorisable exp (vec_math.h); double keeps libm.
inline float exp_i(float x) { return vmath::exp_f(x); }
inline double exp_i(double x) { return std::exp(x); }

// The reductions are over SIMD lanes (omp simd): a fixed order for a given
// build, whatever the thread count.
template <typename T>
LogSumExp<T> row_logsumexp(const T* x, int V) {
  T m = x[0];
#pragma omp simd reduction(max : m)
  for (int j = 1; j < V; ++j) m = x[j] > m ? x[j] : m;
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int j = 0; j < V; ++j) s += double(exp_i(x[j] - m));
  return {m, std::log(s)};
}

inline bool parallel_rows(int rows, int V) { return rows > 1 && size_t(rows) * V > (1u << 14); }

}  // namespace

template <typename T>
double softmax_xent(const T* logits, const int32_t* targets, T* losses, T* dlogits, int rows,
                    int V, T grad_scale) {
  MK_CHECK(V > 0, "softmax_xent: vocabulary size " + std::to_string(V) + " must be positive");
  for (int r = 0; r < rows; ++r)  // checked before the parallel loop (no throws inside)
    if (targets[r] >= V)
      throw Error("softmax_xent: target " + std::to_string(targets[r]) + " at row " +
                  std::to_string(r) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
  // Per-row losses in double, summed in order afterwards: deterministic
  // whatever the thread count.
  std::vector<double> row_loss(rows, 0.0);
#pragma omp parallel for schedule(static) if (parallel_rows(rows, V))
  for (int r = 0; r < rows; ++r) {
    const T* x = logits + size_t(r) * V;
    T* g = dlogits ? dlogits + size_t(r) * V : nullptr;
    const int tgt = targets[r];
    if (tgt < 0) {
      losses[r] = T(0);
      if (g)
        for (int j = 0; j < V; ++j) g[j] = T(0);
      continue;
    }
    const LogSumExp<T> lse = row_logsumexp(x, V);
    // Read x[tgt] before g (which may alias x) is written.
    const double loss = (double(lse.max) - double(x[tgt])) + lse.log_sum;
    row_loss[r] = loss;
    losses[r] = T(loss);
    if (g) {
      const T m = lse.max, ls = T(lse.log_sum);
      // g is often x itself (in place): each lane reads x[j] before writing
      // g[j], so SIMD is safe, which the vectoriser cannot prove alone.
#pragma omp simd
      for (int j = 0; j < V; ++j) g[j] = exp_i((x[j] - m) - ls) * grad_scale;
      g[tgt] -= grad_scale;
    }
  }
  double total = 0;
  for (int r = 0; r < rows; ++r) total += row_loss[r];
  return total;
}

template <typename T>
void log_softmax(const T* in, T* out, int rows, int V) {
  MK_CHECK(V > 0, "log_softmax: vocabulary size " + std::to_string(V) + " must be positive");
#pragma omp parallel for schedule(static) if (parallel_rows(rows, V))
  for (int r = 0; r < rows; ++r) {
    const T* x = in + size_t(r) * V;
    T* y = out + size_t(r) * V;
    const LogSumExp<T> lse = row_logsumexp(x, V);
    const T m = lse.max, ls = T(lse.log_sum);
    for (int j = 0; j < V; ++j) y[j] = (x[j] - m) - ls;
  }
}

template double softmax_xent<float>(const float*, const int32_t*, float*, float*, int, int, float);
template double softmax_xent<double>(const double*, const int32_t*, double*, double*, int, int,
                                     double);
template void log_softmax<float>(const float*, float*, int, int);
template void log_softmax<double>(const double*, double*, int, int);

}  // namespace mk::ops
