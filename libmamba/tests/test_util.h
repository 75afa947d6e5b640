// Shared helpers for the numeric tests: deterministic random inputs, array
// comparison that prints the first values and the maximum difference, and
// finite-difference gradient checks in double precision.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace mk::test {

template <typename T>
std::vector<T> randn(size_t n, unsigned seed, double scale = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  std::vector<T> v(n);
  for (auto& x : v) x = T(d(rng));
  return v;
}

template <typename T>
std::vector<T> uniform(size_t n, unsigned seed, double lo, double hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = T(d(rng));
  return v;
}

// Compares two arrays elementwise: passes when |a-b| <= atol + rtol*|b| for
// all elements. On failure prints the first values and the worst element.
template <typename TA, typename TB>
::testing::AssertionResult all_close(const TA* a, const TB* b, size_t n, double atol,
                                     double rtol = 0.0) {
  double worst = 0, worst_excess = -1;
  size_t worst_i = 0;
  for (size_t i = 0; i < n; ++i) {
    double da = double(a[i]), db = double(b[i]);
    double diff = std::fabs(da - db);
    double excess = diff - (atol + rtol * std::fabs(db));
    if (!(diff == diff)) excess = INFINITY;  // NaN
    if (diff > worst || excess > worst_excess) {
      if (excess > worst_excess) { worst_excess = excess; worst_i = i; }
      worst = std::max(worst, diff);
    }
  }
  if (worst_excess <= 0) return ::testing::AssertionSuccess() << "max abs diff " << worst;
  std::ostringstream os;
  os << "max abs diff " << worst << " (atol " << atol << ", rtol " << rtol << ") at index "
     << worst_i << ": " << double(a[worst_i]) << " vs " << double(b[worst_i]) << "\n first values:";
  for (size_t i = 0; i < std::min<size_t>(n, 6); ++i)
    os << " (" << double(a[i]) << ", " << double(b[i]) << ")";
  return ::testing::AssertionFailure() << os.str();
}

template <typename TA, typename TB>
::testing::AssertionResult all_close(const std::vector<TA>& a, const std::vector<TB>& b,
                                     double atol, double rtol = 0.0) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << "size " << a.size() << " vs " << b.size();
  return all_close(a.data(), b.data(), a.size(), atol, rtol);
}

// Finite-difference check of an analytic gradient, in double.
// loss(): evaluates the scalar loss at the current contents of x.
// Checks up to max_checks coordinates of x (spread evenly) with the
// fourth-order central difference (f(-2e) - 8f(-e) + 8f(e) - f(2e)) / 12e,
// whose truncation error is O(e^4), at two steps, e and e/10, keeping the
// closer: a large step loses strongly curved coordinates to truncation, a
// small one loses weak coordinates to round-off; a wrong gradient fails both. Per coordinate the relative error is
// |fd - an| / max(|fd| + |an|, floor), with floor = max(abs_floor,
// 1e-4 * the largest |an| of the tensor): a component four orders of
// magnitude below the tensor's largest is judged against that scale, since
// finite differences cannot resolve it more finely. scale_override replaces
// that largest |an| (e.g. by the whole model's, where a tensor's own
// gradients are all far below round-off of the loss).
inline ::testing::AssertionResult grad_check(const std::string& what, std::vector<double>& x,
                                             const std::vector<double>& analytic,
                                             const std::function<double()>& loss,
                                             double tol = 1e-6, size_t max_checks = 64,
                                             double eps = 1e-3, double abs_floor = 1e-10,
                                             double scale_override = 0) {
  if (x.size() != analytic.size())
    return ::testing::AssertionFailure() << what << ": gradient size mismatch";
  size_t n = x.size();
  double scale = 0;
  for (double g : analytic) scale = std::max(scale, std::fabs(g));
  if (scale_override > 0) scale = scale_override;
  const double floor = std::max(abs_floor, 1e-4 * scale);
  size_t stride = std::max<size_t>(1, n / std::max<size_t>(1, max_checks));
  double worst = 0;
  size_t worst_i = 0;
  double worst_fd = 0, worst_an = 0;
  for (size_t i = 0; i < n; i += stride) {
    const double keep = x[i];
    auto at = [&](double d) {
      x[i] = keep + d;
      return loss();
    };
    auto central = [&](double e) { return (at(-2 * e) - 8 * at(-e) + 8 * at(e) - at(2 * e)) / (12 * e); };
    const double fd1 = central(eps), fd2 = central(eps / 10);
    x[i] = keep;
    const double fd = std::fabs(fd1 - analytic[i]) < std::fabs(fd2 - analytic[i]) ? fd1 : fd2;
    double rel = std::fabs(fd - analytic[i]) / std::max(std::fabs(fd) + std::fabs(analytic[i]), floor);
    if (rel > worst || rel != rel) { worst = rel; worst_i = i; worst_fd = fd; worst_an = analytic[i]; }
  }
  if (worst <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max relative error " << worst << " at " << worst_i
                                       << " (finite difference " << worst_fd << ", analytic "
                                       << worst_an << ", gradient scale " << scale << ")";
}

}  // namespace mk::test
