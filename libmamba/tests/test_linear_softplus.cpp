// The linear layer fused with its softplus (Mamba's dt_proj): the double op
// against the definition and finite differences; the float kernels on every
// ISA against the double definition, on shapes that leave remainders
// everywhere (channels past the vector blocks, columns past 16, rows past
// the row groups and blocks), and their bits on any thread count.
#include "mambakit/ops/linear_softplus.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "mambakit/cpu_isa.h"
#include "mambakit/error.h"

#include "test_util.h"

using namespace mk;
using namespace mk::test;

namespace {

struct Shape {
  int rows, in, out;
};

// dt_proj of the quickstart model; in and out off every vector and block
// width; one row; rows past the row blocks (128) and groups (8); in past
// 16 (the width of dx's vector columns) with an odd out.
const Shape kShapes[] = {{300, 16, 512}, {37, 5, 37},  {1, 3, 70},    {261, 33, 100},
                         {9, 16, 16},    {130, 1, 129}, {45, 17, 131}};

// y = softplus(x W^T + b) and, for the loss sum(y r), dx, dW and db, in
// double from the definition: softplus'(pre) = sigmoid(pre), formed from
// the pre-activation (the op forms it from y).
struct Ref {
  std::vector<double> y, dx, dW, db;
};
Ref reference(const Shape& s, const std::vector<double>& x, const std::vector<double>& W,
              const std::vector<double>* b, const std::vector<double>& r) {
  Ref out;
  out.y.resize(size_t(s.rows) * s.out);
  out.dx.assign(size_t(s.rows) * s.in, 0.0);
  out.dW.assign(W.size(), 0.0);
  out.db.assign(s.out, 0.0);
  for (int i = 0; i < s.rows; ++i)
    for (int d = 0; d < s.out; ++d) {
      double pre = b ? (*b)[d] : 0.0;
      for (int k = 0; k < s.in; ++k) pre += x[size_t(i) * s.in + k] * W[size_t(d) * s.in + k];
      out.y[size_t(i) * s.out + d] = pre > 20 ? pre : std::log1p(std::exp(pre));
      const double g =
          r[size_t(i) * s.out + d] * (pre > 20 ? 1.0 : 1.0 / (1.0 + std::exp(-pre)));
      out.db[d] += g;
      for (int k = 0; k < s.in; ++k) {
        out.dx[size_t(i) * s.in + k] += g * W[size_t(d) * s.in + k];
        out.dW[size_t(d) * s.in + k] += g * x[size_t(i) * s.in + k];
      }
    }
  return out;
}

// Inputs that put the pre-activation around a bias of -4 (Mamba's dt
// initialisation: softplus of it near 0.02), with a few channels past the
// threshold of 20 and a few far below 0.
struct Inputs {
  std::vector<double> x, W, b, r;
};
Inputs inputs(const Shape& s, unsigned seed) {
  Inputs in;
  in.x = randn<double>(size_t(s.rows) * s.in, seed);
  in.W = randn<double>(size_t(s.out) * s.in, seed + 1, 1.0 / std::sqrt(double(s.in)));
  in.b = randn<double>(s.out, seed + 2);
  for (int d = 0; d < s.out; ++d) in.b[d] += d % 11 == 3 ? 24.0 : d % 13 == 5 ? -30.0 : -4.0;
  in.r = randn<double>(size_t(s.rows) * s.out, seed + 3);
  return in;
}

template <typename T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

std::string where(const Shape& s) {
  return "rows=" + std::to_string(s.rows) + " in=" + std::to_string(s.in) +
         " out=" + std::to_string(s.out);
}

}  // namespace

// double: the definition, dW and db accumulated onto what they hold, dx
// written; a null bias is a zero bias and a null dx is skipped.
TEST(LinearSoftplus, DoubleMatchesDefinition) {
  for (const Shape& s : kShapes) {
    const Inputs in = inputs(s, 10);
    const Ref ref = reference(s, in.x, in.W, &in.b, in.r);
    std::vector<double> y(ref.y.size(), NAN), dx(ref.dx.size(), NAN);
    std::vector<double> dW = randn<double>(in.W.size(), 20), db = randn<double>(s.out, 21);
    std::vector<double> dW_want = dW, db_want = db;
    for (size_t i = 0; i < dW.size(); ++i) dW_want[i] += ref.dW[i];
    for (int d = 0; d < s.out; ++d) db_want[d] += ref.db[d];
    ops::linear_softplus_forward<double>(in.x.data(), in.W.data(), in.b.data(), y.data(), s.rows,
                                         s.in, s.out);
    ops::linear_softplus_backward<double>(in.r.data(), y.data(), in.x.data(), in.W.data(),
                                          dx.data(), dW.data(), db.data(), s.rows, s.in, s.out);
    EXPECT_TRUE(all_close(y, ref.y, 1e-13, 1e-13)) << where(s);
    EXPECT_TRUE(all_close(dx, ref.dx, 1e-12, 1e-12)) << where(s);
    EXPECT_TRUE(all_close(dW, dW_want, 1e-12, 1e-12)) << where(s);
    EXPECT_TRUE(all_close(db, db_want, 1e-12, 1e-12)) << where(s);

    const Ref nb = reference(s, in.x, in.W, nullptr, in.r);
    std::vector<double> dW2(in.W.size(), 0.0);
    ops::linear_softplus_forward<double>(in.x.data(), in.W.data(), nullptr, y.data(), s.rows,
                                         s.in, s.out);
    ops::linear_softplus_backward<double>(in.r.data(), y.data(), in.x.data(), in.W.data(),
                                          nullptr, dW2.data(), nullptr, s.rows, s.in, s.out);
    EXPECT_TRUE(all_close(y, nb.y, 1e-13, 1e-13)) << "no bias, " << where(s);
    EXPECT_TRUE(all_close(dW2, nb.dW, 1e-12, 1e-12)) << "no bias, " << where(s);
  }
}

// The backward of loss = sum(softplus(x W^T + b) r) by finite differences
// in x, W and b (bias near 0 here, where softplus bends most).
TEST(LinearSoftplus, BackwardFiniteDifferences) {
  const Shape s{7, 5, 9};
  Inputs in = inputs(s, 30);
  for (double& v : in.b) v = v > 10 ? 21.0 : v < -10 ? -3.0 : v + 4.0;
  auto loss = [&]() {
    std::vector<double> y(size_t(s.rows) * s.out);
    ops::linear_softplus_forward<double>(in.x.data(), in.W.data(), in.b.data(), y.data(), s.rows,
                                         s.in, s.out);
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += y[i] * in.r[i];
    return l;
  };
  std::vector<double> y(size_t(s.rows) * s.out), dx(in.x.size()), dW(in.W.size(), 0.0),
      db(s.out, 0.0);
  ops::linear_softplus_forward<double>(in.x.data(), in.W.data(), in.b.data(), y.data(), s.rows,
                                       s.in, s.out);
  ops::linear_softplus_backward<double>(in.r.data(), y.data(), in.x.data(), in.W.data(),
                                        dx.data(), dW.data(), db.data(), s.rows, s.in, s.out);
  EXPECT_TRUE(grad_check("dx", in.x, dx, loss));
  EXPECT_TRUE(grad_check("dW", in.W, dW, loss));
  EXPECT_TRUE(grad_check("db", in.b, db, loss));
}

// float, on every ISA the machine has, against the double definition: the
// forward within float rounding of its terms; the backward (whose
// softplus gradient comes from the rounded y) within a few ulps of the sum
// of its terms' sizes.
TEST(LinearSoftplus, FloatMatchesReferenceOnEveryIsa) {
  for (Isa isa : supported_isas()) {
    ScopedIsa scoped(isa);
    for (const Shape& s : kShapes) {
      const Inputs in = inputs(s, 40);
      const Ref ref = reference(s, in.x, in.W, &in.b, in.r);
      const auto x = cast<float>(in.x), W = cast<float>(in.W), b = cast<float>(in.b),
                 r = cast<float>(in.r);
      std::vector<float> y(ref.y.size(), NAN), dx(ref.dx.size(), NAN);
      std::vector<float> dW(W.size(), 0.5f), db(s.out, -0.25f);
      ops::linear_softplus_forward<float>(x.data(), W.data(), b.data(), y.data(), s.rows, s.in,
                                          s.out);
      ops::linear_softplus_backward<float>(r.data(), y.data(), x.data(), W.data(), dx.data(),
                                           dW.data(), db.data(), s.rows, s.in, s.out);
      std::vector<double> dW_want = ref.dW, db_want = ref.db;
      for (double& v : dW_want) v += 0.5;
      for (double& v : db_want) v -= 0.25;
      // Sums of up to 300 rows (dW, db) and 512 channels (dx) of O(1) terms.
      const std::string at = std::string(isa_name(isa)) + " " + where(s);
      EXPECT_TRUE(all_close(y, ref.y, 1e-6, 2e-6)) << at;
      EXPECT_TRUE(all_close(dx, ref.dx, 2e-5, 1e-5)) << at;
      EXPECT_TRUE(all_close(dW, dW_want, 1e-4, 1e-5)) << at;
      EXPECT_TRUE(all_close(db, db_want, 1e-4, 1e-5)) << at;

      // A null bias; a null dx and db are skipped.
      const Ref nb = reference(s, in.x, in.W, nullptr, in.r);
      std::vector<float> dW2(W.size(), 0.f);
      ops::linear_softplus_forward<float>(x.data(), W.data(), nullptr, y.data(), s.rows, s.in,
                                          s.out);
      ops::linear_softplus_backward<float>(r.data(), y.data(), x.data(), W.data(), nullptr,
                                           dW2.data(), nullptr, s.rows, s.in, s.out);
      EXPECT_TRUE(all_close(y, nb.y, 1e-6, 2e-6)) << "no bias, " << at;
      EXPECT_TRUE(all_close(dW2, nb.dW, 1e-4, 1e-5)) << "no bias, " << at;
    }
  }
}

// Every sum runs in an order fixed by the shape alone: one ISA gives the
// same bits on 1, 2 or 3 threads; and the AVX2 and AVX-512 copies (both
// with fused multiply-adds) the same bits as each other.
TEST(LinearSoftplus, FloatSameBitsOnAnyThreadCountAndOnAvx2AndAvx512) {
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  const int saved = omp_get_max_threads();
  for (const Shape& s : {Shape{300, 16, 512}, Shape{261, 33, 100}, Shape{1030, 7, 40}}) {
    const Inputs in = inputs(s, 50);
    const auto x = cast<float>(in.x), W = cast<float>(in.W), b = cast<float>(in.b),
               r = cast<float>(in.r);
    struct Run {
      std::vector<float> y, dx, dW, db;
    };
    auto run = [&] {
      Run o{std::vector<float>(size_t(s.rows) * s.out), std::vector<float>(x.size()),
            std::vector<float>(W.size(), 0.f), std::vector<float>(s.out, 0.f)};
      ops::linear_softplus_forward<float>(x.data(), W.data(), b.data(), o.y.data(), s.rows, s.in,
                                          s.out);
      ops::linear_softplus_backward<float>(r.data(), o.y.data(), x.data(), W.data(), o.dx.data(),
                                           o.dW.data(), o.db.data(), s.rows, s.in, s.out);
      return o;
    };
    std::vector<std::pair<Isa, Run>> one_thread;
    for (Isa isa : supported_isas()) {
      ScopedIsa scoped(isa);
      omp_set_num_threads(1);
      const Run ref = run();
      for (int threads : {2, 3}) {
        omp_set_num_threads(threads);
        const Run o = run();
        const std::string at = std::string(isa_name(isa)) + " threads=" +
                               std::to_string(threads) + " " + where(s);
        EXPECT_TRUE(same(o.y, ref.y)) << at;
        EXPECT_TRUE(same(o.dx, ref.dx)) << at;
        EXPECT_TRUE(same(o.dW, ref.dW)) << at;
        EXPECT_TRUE(same(o.db, ref.db)) << at;
      }
      one_thread.emplace_back(isa, ref);
    }
    const Run* avx2 = nullptr;
    const Run* avx512 = nullptr;
    for (const auto& [isa, o] : one_thread) {
      if (isa == Isa::avx2) avx2 = &o;
      if (isa == Isa::avx512) avx512 = &o;
    }
    if (avx2 && avx512) {
      EXPECT_TRUE(same(avx2->y, avx512->y)) << where(s);
      EXPECT_TRUE(same(avx2->dx, avx512->dx)) << where(s);
      EXPECT_TRUE(same(avx2->dW, avx512->dW)) << where(s);
      EXPECT_TRUE(same(avx2->db, avx512->db)) << where(s);
    }
  }
  omp_set_num_threads(saved);
}

// Past the threshold the forward is the identity and the gradient exactly
// dy; far below it delta underflows towards 0 and so does the gradient;
// NaN stays NaN.
TEST(LinearSoftplus, FloatExtremePreActivations) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // One row, in = 1, x = 1: the pre-activation is W + b.
  const std::vector<float> W = {30.f, 0.f, -200.f, 0.f, 0.f}, b = {0.f, 25.f, 0.f, nan, inf};
  const std::vector<float> x = {1.f}, dy(5, 2.f);
  for (Isa isa : supported_isas()) {
    ScopedIsa scoped(isa);
    std::vector<float> y(5), dx(1), dW(5, 0.f), db(5, 0.f);
    ops::linear_softplus_forward<float>(x.data(), W.data(), b.data(), y.data(), 1, 1, 5);
    EXPECT_EQ(y[0], 30.f) << isa_name(isa);
    EXPECT_EQ(y[1], 25.f) << isa_name(isa);
    EXPECT_EQ(y[2], 0.f) << isa_name(isa);
    EXPECT_TRUE(std::isnan(y[3])) << isa_name(isa);
    EXPECT_EQ(y[4], inf) << isa_name(isa);
    ops::linear_softplus_backward<float>(dy.data(), y.data(), x.data(), W.data(), dx.data(),
                                         dW.data(), db.data(), 1, 1, 5);
    EXPECT_EQ(db[0], 2.f) << isa_name(isa);
    EXPECT_EQ(db[1], 2.f) << isa_name(isa);
    EXPECT_EQ(db[2], 0.f) << isa_name(isa);
    EXPECT_TRUE(std::isnan(db[3])) << isa_name(isa);
    EXPECT_EQ(db[4], 2.f) << isa_name(isa);
  }
}

// The softplus's gradient from its output, sigmoid = 1 - exp(-y), against
// libm's expm1 in double over y from 1e-30 to past the threshold, both
// sides of the switch from the series to exp at y = 1/2: within 3 ulps
// (relative), on every ISA. One row with x = 1 and dy = 1 puts it in db.
TEST(LinearSoftplus, FloatGradientFromOutputWithinUlpsOfExpm1) {
  std::vector<float> y = {0.f, 1e-30f, 1e-12f, 1e-7f, 1e-3f, 0.1f, 0.4999999f, 0.5f, 0.5000001f,
                          1.f, 3.f, 10.f, 19.99f, 20.f, 20.01f, 50.f};
  for (float v = 1e-6f; v < 25.f; v *= 1.013f) y.push_back(v);
  const int n = int(y.size());
  const std::vector<float> x = {1.f}, W(n, 0.f), dy(n, 1.f);
  for (Isa isa : supported_isas()) {
    ScopedIsa scoped(isa);
    std::vector<float> dx(1), dW(n, 0.f), db(n, 0.f);
    ops::linear_softplus_backward<float>(dy.data(), y.data(), x.data(), W.data(), dx.data(),
                                         dW.data(), db.data(), 1, 1, n);
    for (int d = 0; d < n; ++d) {
      const double want = y[d] > 20 ? 1.0 : -std::expm1(-double(y[d]));
      ASSERT_NEAR(db[d], want, 3 * 6e-8 * want) << isa_name(isa) << " y=" << y[d];
    }
  }
}

TEST(LinearSoftplus, RefusesBadShapes) {
  float v = 0;
  EXPECT_THROW(ops::linear_softplus_forward<float>(&v, &v, nullptr, &v, -1, 1, 1), Error);
  EXPECT_THROW(ops::linear_softplus_forward<float>(&v, &v, nullptr, &v, 1, 0, 1), Error);
  EXPECT_THROW(ops::linear_softplus_backward<float>(&v, &v, &v, &v, &v, &v, nullptr, 1, 1, -2),
               Error);
}
