// Shared by the CUDA-vs-CPU op tests (test_cuda_*.cpp): values as the
// device type holds them, transfers, NaN poisoning, random draws, and the
// Checker that compares a GPU result with the CPU reference (relative L2
// error and worst element) and prints each op's largest errors. Only
// included where MAMBAKIT_HAVE_CUDA is defined.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mambakit/cuda/device.h"

namespace cuda_test {

using mk::cuda::bf16;
using mk::cuda::DeviceBuffer;
using Vec = std::vector<double>;

// ---------------------------------------------------------------------------
// Host helpers: values as the device type holds them, transfers, poisoning.
// ---------------------------------------------------------------------------

template <typename T> constexpr const char* type_name();
template <> constexpr const char* type_name<float>() { return "f32"; }
template <> constexpr const char* type_name<bf16>() { return "bf16"; }

template <typename T> T to_dev_type(double x);
template <> inline float to_dev_type<float>(double x) { return float(x); }
template <> inline bf16 to_dev_type<bf16>(double x) { return __float2bfloat16_rn(float(x)); }
inline double to_double(float x) { return x; }
inline double to_double(bf16 x) { return double(__bfloat162float(x)); }

// v rounded to what a T holds (the CPU reference must see the GPU's inputs).
template <typename T>
Vec rounded(Vec v) {
  for (double& x : v) x = to_double(to_dev_type<T>(x));
  return v;
}

template <typename T>
DeviceBuffer<T> upload(const Vec& host) {
  std::vector<T> tmp(host.size());
  for (size_t i = 0; i < host.size(); ++i) tmp[i] = to_dev_type<T>(host[i]);
  DeviceBuffer<T> d(host.size());
  if (!host.empty()) d.upload(tmp.data());
  return d;
}

template <typename T>
Vec download(const DeviceBuffer<T>& d) {
  std::vector<T> tmp(d.size());
  if (d.size()) d.download(tmp.data());
  Vec out(d.size());
  for (size_t i = 0; i < d.size(); ++i) out[i] = to_double(tmp[i]);
  return out;
}

// All-ones bytes are NaN in fp32 and bf16: an element the kernel fails to
// write shows up as NaN.
template <typename T>
DeviceBuffer<T> poisoned(size_t n) {
  DeviceBuffer<T> d(n);
  d.fill_bytes(0xFF);
  return d;
}

inline Vec randn(std::mt19937& rng, size_t n, double scale = 1.0) {
  std::normal_distribution<double> dist(0.0, scale);
  Vec v(n);
  for (double& x : v) x = dist(rng);
  return v;
}
inline Vec uniform(std::mt19937& rng, size_t n, double lo, double hi) {
  std::uniform_real_distribution<double> dist(lo, hi);
  Vec v(n);
  for (double& x : v) x = dist(rng);
  return v;
}
inline int pick(std::mt19937& rng, std::initializer_list<int> choices) {
  std::uniform_int_distribution<size_t> d(0, choices.size() - 1);
  return *(choices.begin() + d(rng));
}
inline int randint(std::mt19937& rng, int lo, int hi) {  // [lo, hi]
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

// ---------------------------------------------------------------------------
// Comparison: relative L2 error and worst element, per output, remembered
// for the op's summary line.
// ---------------------------------------------------------------------------

struct Checker {
  std::string op;
  double tol = 1e-5;
  std::string shape;  // current shape, for messages
  struct Worst {
    std::string what;
    double rel_l2 = 0, max_err = 0;
  };
  std::vector<Worst> worst;

  void record(const std::string& what, double rel, double max_err) {
    for (Worst& w : worst)
      if (w.what == what) {
        w.rel_l2 = std::max(w.rel_l2, rel);
        w.max_err = std::max(w.max_err, max_err);
        return;
      }
    worst.push_back({what, rel, max_err});
  }

  // Passes when ||got - ref|| <= tol ||ref|| and every element is within
  // 10 tol of the largest |ref| (NaN never passes). A zero reference needs
  // a zero result.
  void compare(const std::string& what, const Vec& got, const Vec& ref, double tol_here = -1) {
    const double t = tol_here > 0 ? tol_here : tol;
    ASSERT_EQ(got.size(), ref.size()) << op << " " << what << " [" << shape << "]: size";
    double num = 0, den = 0, max_err = 0, max_ref = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double e = std::fabs(got[i] - ref[i]);
      if (!(e == e)) {  // NaN
        max_err = INFINITY;
        worst_i = i;
        break;
      }
      num += e * e;
      den += ref[i] * ref[i];
      max_ref = std::max(max_ref, std::fabs(ref[i]));
      if (e > max_err) {
        max_err = e;
        worst_i = i;
      }
    }
    const double rel = den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
    record(what, rel, max_err);
    const bool ok = std::isfinite(max_err) && rel <= t && max_err <= 10 * t * max_ref + 1e-300;
    if (ok) return;
    std::ostringstream os;
    os << op << " " << what << " [" << shape << "]: rel L2 error " << rel << ", max abs error "
       << max_err << " at " << worst_i << " (max |ref| " << max_ref << ", tol " << t << ")";
    if (!got.empty())
      os << ": got " << got[worst_i] << " want " << ref[worst_i] << "\n  first values:";
    for (size_t i = 0; i < std::min<size_t>(got.size(), 6); ++i)
      os << " (" << got[i] << ", " << ref[i] << ")";
    ADD_FAILURE() << os.str();
  }

  void print_summary() const {
    std::printf("[cuda vs cpu] %-22s", op.c_str());
    for (const Worst& w : worst)
      std::printf("  %s: rel %.2e max %.2e;", w.what.c_str(), w.rel_l2, w.max_err);
    std::printf("  (tol %.0e)\n", tol);
  }
};

template <typename T>
double tol_for(double f32, double b16 = 1e-2) {
  return std::is_same_v<T, float> ? f32 : b16;
}


// One row of an op table: a name and the function that draws shapes and
// inputs, runs both backends and compares.
struct OpCase {
  const char* name;
  std::function<void(std::mt19937&, Checker&)> run;
};

inline void PrintTo(const OpCase& op, std::ostream* os) { *os << op.name; }

// Runs one table row with a seed drawn from its name (skips without a device).
inline void run_op_case(const OpCase& op) {
  if (!mk::cuda::device_available())
    GTEST_SKIP() << "no CUDA device: " << mk::cuda::device_unavailable_reason();
  std::seed_seq seed(op.name, op.name + std::strlen(op.name));
  std::mt19937 rng(seed);
  Checker c;
  c.op = op.name;
  op.run(rng, c);
  c.print_summary();
}

}  // namespace cuda_test
