// Fused (chunked, recomputing) selective scan against the naive version that
// materialises every state; finite-difference gradients in double; the
// recurrent step against the full forward. Every check runs once per ISA the
// CPU supports (mk::supported_isas(): scalar, avx2, avx512), and the float
// kernels of each ISA are also compared with the double-precision naive scan.
#include "mambakit/ops/selective_scan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "mambakit/cpu_isa.h"
#include "mambakit/error.h"
#include "test_util.h"

namespace {

using namespace mk::ops;
using mk::test::all_close;

struct Shape {
  int B, L, D, N;
  bool z, Dskip;
};

std::string name(const Shape& s) {
  return "B" + std::to_string(s.B) + " L" + std::to_string(s.L) + " D" + std::to_string(s.D) +
         " N" + std::to_string(s.N) + (s.z ? " z" : "") + (s.Dskip ? " Dskip" : "");
}

// Awkward shapes: L not a multiple of the chunk, L = 1, batch 1, D not a
// multiple of the SIMD width, N = 1, 4, 12 (8 states and a rest, as the
// SIMD paths save states in blocks of 8), 16, 64, with and without z and D.
const std::vector<Shape> kShapes = {
    {2, 130, 37, 16, true, true},  {1, 1, 5, 4, false, true},    {1, 64, 16, 1, true, false},
    {2, 200, 33, 64, true, true},  {3, 65, 48, 16, false, false}, {1, 300, 17, 4, true, true},
    {2, 128, 16, 16, true, true},  {1, 129, 5, 16, false, true},  {2, 3, 40, 64, false, false},
    {2, 70, 24, 12, true, true},
};

template <typename T>
struct Problem {
  Shape s;
  std::vector<T> u, delta, A, Bm, Cm, Dskip, z;

  Problem(const Shape& sh, unsigned seed) : s(sh) {
    const size_t bld = size_t(s.B) * s.L * s.D, bln = size_t(s.B) * s.L * s.N;
    u = mk::test::randn<T>(bld, seed + 1);
    delta = mk::test::uniform<T>(bld, seed + 2, 0.005, 1.0);
    A = mk::test::uniform<T>(size_t(s.D) * s.N, seed + 3, -3.0, -0.05);
    // One strongly decaying state: exp(delta*A) underflows to 0 for most t,
    // which exercises the vector exp's very-negative path.
    A[0] = T(-300);
    Bm = mk::test::randn<T>(bln, seed + 4);
    Cm = mk::test::randn<T>(bln, seed + 5);
    if (s.Dskip) Dskip = mk::test::randn<T>(s.D, seed + 6);
    if (s.z) z = mk::test::randn<T>(bld, seed + 7);
  }
  SelectiveScanParams<T> params() const {
    SelectiveScanParams<T> p;
    p.batch = s.B;
    p.len = s.L;
    p.dim = s.D;
    p.dstate = s.N;
    p.u = u.data();
    p.delta = delta.data();
    p.A = A.data();
    p.Bm = Bm.data();
    p.Cm = Cm.data();
    p.Dskip = s.Dskip ? Dskip.data() : nullptr;
    p.z = s.z ? z.data() : nullptr;
    return p;
  }
  size_t bld() const { return size_t(s.B) * s.L * s.D; }
  size_t bln() const { return size_t(s.B) * s.L * s.N; }
};

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}
template <typename T>
double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (T x : v) m = std::max(m, std::fabs(double(x)));
  return m;
}

// Tolerances: float results differ from the naive ones by rounding (vector exp
// vs libm, different summation order), so they are compared relative to the
// size of the array; double results agree to near machine precision.
template <typename T>
double tol_scale() {
  return std::is_same<T, float>::value ? 1e-5 : 1e-12;
}

template <typename T>
::testing::AssertionResult close(const std::vector<T>& got, const std::vector<T>& want,
                                 double scale_mult = 1.0) {
  const double tol = tol_scale<T>() * scale_mult;
  return all_close(got, want, tol * std::max(1.0, max_abs(want)), tol);
}

// Each test runs with the ISA of its parameter forced (and restored after).
class SelectiveScanIsa : public ::testing::TestWithParam<mk::Isa> {
 protected:
  void SetUp() override { isa_.emplace(GetParam()); }
  void TearDown() override { isa_.reset(); }
  std::optional<mk::ScopedIsa> isa_;
};
INSTANTIATE_TEST_SUITE_P(EveryIsa, SelectiveScanIsa, ::testing::ValuesIn(mk::supported_isas()),
                         [](const ::testing::TestParamInfo<mk::Isa>& i) {
                           return std::string(mk::isa_name(i.param));
                         });

template <typename T>
void fused_forward_matches_naive() {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(name(s));
    Problem<T> pr(s, 11);
    auto p = pr.params();
    std::vector<T> out(pr.bld(), T(-7)), ref(pr.bld(), T(-9));
    std::vector<T> states(pr.bld() * s.N);
    std::vector<T> chunk(selective_scan_states_size(s.B, s.L, s.D, s.N));
    std::vector<T> final_state(size_t(s.B) * s.D * s.N);
    selective_scan_forward(p, out.data(), chunk.data(), final_state.data());
    selective_scan_naive_forward(p, ref.data(), states.data());
    EXPECT_TRUE(close(out, ref));

    // chunk_states (B, n_chunks, D, N): the state before the chunk's first
    // step, i.e. the naive state after step c*K-1 (zero for chunk 0).
    const int K = selective_scan_chunk_len(), nc = (s.L + K - 1) / K;
    std::vector<T> want_chunk(chunk.size(), T(0));
    for (int b = 0; b < s.B; ++b)
      for (int c = 1; c < nc; ++c)
        std::copy_n(states.data() + (size_t(b) * s.L + c * K - 1) * s.D * s.N, size_t(s.D) * s.N,
                    want_chunk.data() + (size_t(b) * nc + c) * s.D * s.N);
    EXPECT_TRUE(close(chunk, want_chunk));
    std::vector<T> want_final(final_state.size());
    for (int b = 0; b < s.B; ++b)
      std::copy_n(states.data() + (size_t(b) * s.L + s.L - 1) * s.D * s.N, size_t(s.D) * s.N,
                  want_final.data() + size_t(b) * s.D * s.N);
    EXPECT_TRUE(close(final_state, want_final));

    // Without chunk_states (inference) the output is the same.
    std::vector<T> out2(pr.bld());
    selective_scan_forward(p, out2.data(), (T*)nullptr, (T*)nullptr);
    EXPECT_TRUE(all_close(out2, out, 0.0));
  }
}
TEST_P(SelectiveScanIsa, FusedForwardMatchesNaiveFloat) { fused_forward_matches_naive<float>(); }
TEST_P(SelectiveScanIsa, FusedForwardMatchesNaiveDouble) { fused_forward_matches_naive<double>(); }

template <typename T>
struct Grads {
  std::vector<T> du, ddelta, dA, dB, dC, dD, dz;
  // Written gradients start as garbage, accumulated ones at a known offset.
  Grads(const Problem<T>& pr, unsigned seed) {
    du = mk::test::randn<T>(pr.bld(), seed);
    ddelta = mk::test::randn<T>(pr.bld(), seed + 1);
    dz = mk::test::randn<T>(pr.bld(), seed + 2);
    dB = mk::test::randn<T>(pr.bln(), seed + 3);
    dC = mk::test::randn<T>(pr.bln(), seed + 4);
    dA = std::vector<T>(size_t(pr.s.D) * pr.s.N, T(0.5));
    dD = std::vector<T>(pr.s.D, T(-0.25));
  }
  SelectiveScanGrads<T> view(const Shape& s) {
    SelectiveScanGrads<T> g;
    g.du = du.data();
    g.ddelta = ddelta.data();
    g.dA = dA.data();
    g.dB = dB.data();
    g.dC = dC.data();
    g.dD = s.Dskip ? dD.data() : nullptr;
    g.dz = s.z ? dz.data() : nullptr;
    return g;
  }
};

template <typename T>
void fused_backward_matches_naive() {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(name(s));
    Problem<T> pr(s, 23);
    auto p = pr.params();
    std::vector<T> out(pr.bld()), ref(pr.bld());
    std::vector<T> states(pr.bld() * s.N);
    std::vector<T> chunk(selective_scan_states_size(s.B, s.L, s.D, s.N));
    selective_scan_forward(p, out.data(), chunk.data(), (T*)nullptr);
    selective_scan_naive_forward(p, ref.data(), states.data());
    const std::vector<T> dout = mk::test::randn<T>(pr.bld(), 99);
    Grads<T> gf(pr, 5), gn(pr, 77);
    selective_scan_backward(p, chunk.data(), dout.data(), gf.view(s));
    selective_scan_naive_backward(p, states.data(), dout.data(), gn.view(s));
    // Sums over B*L terms (dA, dD, and dB/dC over D channels) accumulate
    // more float rounding than the pointwise outputs.
    EXPECT_TRUE(close(gf.du, gn.du, 4)) << "du";
    EXPECT_TRUE(close(gf.ddelta, gn.ddelta, 4)) << "ddelta";
    EXPECT_TRUE(close(gf.dA, gn.dA, 10)) << "dA";
    EXPECT_TRUE(close(gf.dB, gn.dB, 10)) << "dB";
    EXPECT_TRUE(close(gf.dC, gn.dC, 10)) << "dC";
    if (s.Dskip) {
      EXPECT_TRUE(close(gf.dD, gn.dD, 10)) << "dD";
    }
    if (s.z) {
      EXPECT_TRUE(close(gf.dz, gn.dz, 4)) << "dz";
    }
  }
}
TEST_P(SelectiveScanIsa, FusedBackwardMatchesNaiveFloat) { fused_backward_matches_naive<float>(); }
TEST_P(SelectiveScanIsa, FusedBackwardMatchesNaiveDouble) {
  fused_backward_matches_naive<double>();
}

// The float kernels of this ISA against the naive scan in double on the same
// (float) inputs.
Problem<double> to_double(const Problem<float>& f) {
  Problem<double> d(f.s, 0);
  auto cvt = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
  d.u = cvt(f.u);
  d.delta = cvt(f.delta);
  d.A = cvt(f.A);
  d.Bm = cvt(f.Bm);
  d.Cm = cvt(f.Cm);
  d.Dskip = cvt(f.Dskip);
  d.z = cvt(f.z);
  return d;
}
std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

TEST_P(SelectiveScanIsa, FloatMatchesDoubleReference) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(name(s));
    Problem<float> pf(s, 31);
    Problem<double> pd = to_double(pf);
    std::vector<float> out(pf.bld()), chunk(selective_scan_states_size(s.B, s.L, s.D, s.N));
    std::vector<double> ref(pf.bld()), states(pf.bld() * s.N);
    selective_scan_forward(pf.params(), out.data(), chunk.data(), (float*)nullptr);
    selective_scan_naive_forward(pd.params(), ref.data(), states.data());
    const double tol = 2e-5;
    EXPECT_TRUE(all_close(to_double(out), ref, tol * std::max(1.0, max_abs(ref)), tol)) << "out";

    const std::vector<float> dout = mk::test::randn<float>(pf.bld(), 98);
    Grads<float> gf(pf, 5);
    Grads<double> gd(pd, 5);
    gd.dA.assign(gd.dA.size(), 0.5);
    gd.dD.assign(gd.dD.size(), -0.25);
    selective_scan_backward(pf.params(), chunk.data(), dout.data(), gf.view(s));
    selective_scan_naive_backward(pd.params(), states.data(), to_double(dout).data(), gd.view(s));
    auto near = [&](const std::vector<float>& got, const std::vector<double>& want, double mult) {
      const double t = tol * mult;
      return all_close(to_double(got), want, t * std::max(1.0, max_abs(want)), t);
    };
    EXPECT_TRUE(near(gf.du, gd.du, 4)) << "du";
    EXPECT_TRUE(near(gf.ddelta, gd.ddelta, 4)) << "ddelta";
    EXPECT_TRUE(near(gf.dA, gd.dA, 10)) << "dA";
    EXPECT_TRUE(near(gf.dB, gd.dB, 10)) << "dB";
    EXPECT_TRUE(near(gf.dC, gd.dC, 10)) << "dC";
    if (s.Dskip) {
      EXPECT_TRUE(near(gf.dD, gd.dD, 10)) << "dD";
    }
    if (s.z) {
      EXPECT_TRUE(near(gf.dz, gd.dz, 4)) << "dz";
    }
  }
}

// Finite differences of loss = sum(out * r) in double.
void grad_check_shape(const Shape& s) {
  SCOPED_TRACE(name(s));
  Problem<double> pr(s, 41);
  pr.A[0] = -2.0;  // keep every state alive so each A entry has a gradient
  const std::vector<double> r = mk::test::randn<double>(pr.bld(), 3);
  std::vector<double> out(pr.bld());
  std::vector<double> chunk(selective_scan_states_size(s.B, s.L, s.D, s.N));
  // The loss is returned relative to its value at the unperturbed point (a
  // constant, so the gradient is the same): otherwise rounding the whole sum
  // to double (ulp ~ 1e-15) swamps the central difference of the smallest
  // gradients. The sum itself is kept in long double for the same reason.
  long double base = 0;
  auto loss = [&]() {
    selective_scan_forward(pr.params(), out.data(), chunk.data(), (double*)nullptr);
    long double l = 0;
    for (size_t i = 0; i < out.size(); ++i) l += (long double)out[i] * r[i];
    return double(l - base);
  };
  base = loss();
  Grads<double> g(pr, 8);
  std::fill(g.dA.begin(), g.dA.end(), 0.0);
  std::fill(g.dD.begin(), g.dD.end(), 0.0);
  selective_scan_backward(pr.params(), chunk.data(), r.data(), g.view(s));
  using mk::test::grad_check;
  EXPECT_TRUE(grad_check("u", pr.u, g.du, loss));
  EXPECT_TRUE(grad_check("delta", pr.delta, g.ddelta, loss));
  EXPECT_TRUE(grad_check("A", pr.A, g.dA, loss));
  EXPECT_TRUE(grad_check("B", pr.Bm, g.dB, loss));
  EXPECT_TRUE(grad_check("C", pr.Cm, g.dC, loss));
  if (s.Dskip) {
    EXPECT_TRUE(grad_check("D", pr.Dskip, g.dD, loss));
  }
  if (s.z) {
    EXPECT_TRUE(grad_check("z", pr.z, g.dz, loss));
  }
}

TEST_P(SelectiveScanIsa, GradCheckDouble) {
  grad_check_shape({2, 70, 5, 3, true, true});    // crosses a chunk boundary
  grad_check_shape({1, 130, 3, 16, true, true});  // the N = 16 specialisation
  grad_check_shape({2, 9, 4, 2, false, false});
}

template <typename T>
void step_matches_forward(const Shape& s, double tol) {
  SCOPED_TRACE(name(s));
  Problem<T> pr(s, 57);
  auto p = pr.params();
  std::vector<T> out(pr.bld()), final_state(size_t(s.B) * s.D * s.N);
  selective_scan_forward(p, out.data(), (T*)nullptr, final_state.data());

  const int B = s.B, L = s.L, D = s.D, N = s.N;
  std::vector<T> state(size_t(B) * D * N, T(0)), out_steps(pr.bld());
  std::vector<T> u_t(size_t(B) * D), dl_t(u_t.size()), z_t(u_t.size()), y_t(u_t.size());
  std::vector<T> B_t(size_t(B) * N), C_t(B_t.size());
  for (int t = 0; t < L; ++t) {
    for (int b = 0; b < B; ++b) {  // gather time step t of every batch row
      const size_t row = size_t(b) * L + t;
      std::copy_n(pr.u.data() + row * D, D, u_t.data() + size_t(b) * D);
      std::copy_n(pr.delta.data() + row * D, D, dl_t.data() + size_t(b) * D);
      if (s.z) std::copy_n(pr.z.data() + row * D, D, z_t.data() + size_t(b) * D);
      std::copy_n(pr.Bm.data() + row * N, N, B_t.data() + size_t(b) * N);
      std::copy_n(pr.Cm.data() + row * N, N, C_t.data() + size_t(b) * N);
    }
    selective_scan_step(B, D, N, u_t.data(), dl_t.data(), pr.A.data(), B_t.data(), C_t.data(),
                        p.Dskip, s.z ? z_t.data() : (T*)nullptr, state.data(), y_t.data());
    for (int b = 0; b < B; ++b)
      std::copy_n(y_t.data() + size_t(b) * D, D, out_steps.data() + (size_t(b) * L + t) * D);
  }
  EXPECT_TRUE(all_close(out_steps, out, tol * std::max(1.0, max_abs(out)), tol));
  EXPECT_TRUE(all_close(state, final_state, tol * std::max(1.0, max_abs(final_state)), tol));
}

TEST_P(SelectiveScanIsa, StepMatchesForward) {
  step_matches_forward<float>({2, 150, 37, 16, true, true}, 1e-5);
  step_matches_forward<float>({1, 20, 5, 4, false, false}, 1e-5);
  step_matches_forward<float>({1, 30, 9, 21, true, true}, 1e-5);  // SIMD states and a tail
  // B*D*N = 67,200 state updates per step: the step's threaded path (from
  // kScanParallelMinWork on), with more than one OpenMP thread.
  step_matches_forward<float>({2, 6, 2100, 16, true, true}, 1e-5);
  step_matches_forward<double>({2, 70, 19, 16, true, true}, 1e-12);
  step_matches_forward<double>({1, 1, 3, 64, true, false}, 1e-12);
}

// Continuing with step() from final_state equals running the forward on the
// longer sequence: the state hand-off for generation after a prompt.
TEST_P(SelectiveScanIsa, StepContinuesFromFinalState) {
  const Shape s{1, 100, 21, 16, true, true};
  Problem<double> pr(s, 61);
  const int L0 = 80, D = s.D, N = s.N;
  std::vector<double> out(pr.bld()), state(size_t(D) * N);
  selective_scan_forward(pr.params(), out.data(), (double*)nullptr, (double*)nullptr);
  auto p0 = pr.params();
  p0.len = L0;  // batch 1: the first L0 rows are the prefix
  std::vector<double> out0(size_t(L0) * D);
  selective_scan_forward(p0, out0.data(), (double*)nullptr, state.data());
  std::vector<double> y(D);
  for (int t = L0; t < s.L; ++t) {
    selective_scan_step(1, D, N, pr.u.data() + size_t(t) * D, pr.delta.data() + size_t(t) * D,
                        pr.A.data(), pr.Bm.data() + size_t(t) * N, pr.Cm.data() + size_t(t) * N,
                        pr.Dskip.data(), pr.z.data() + size_t(t) * D, state.data(), y.data());
    EXPECT_TRUE(all_close(y.data(), out.data() + size_t(t) * D, D, 1e-12, 1e-12)) << "t=" << t;
  }
}

// With A = 0 every decay factor is exactly 1 (the vector kernels compute it as
// 2^x with a polynomial that is exact at 0), so with delta = u = B = C = 1
// the state is the running count and y_t = t + 1 exactly, on every ISA and
// across chunk boundaries.
TEST_P(SelectiveScanIsa, ZeroADecaysByExactlyOne) {
  const int B = 2, L = 150, D = 19, N = 16;
  const size_t bld = size_t(B) * L * D, bln = size_t(B) * L * N;
  std::vector<float> ones_bld(bld, 1.f), ones_bln(bln, 1.f), A(size_t(D) * N, 0.f);
  SelectiveScanParams<float> p;
  p.batch = B;
  p.len = L;
  p.dim = D;
  p.dstate = N;
  p.u = ones_bld.data();
  p.delta = ones_bld.data();
  p.A = A.data();
  p.Bm = ones_bln.data();
  p.Cm = ones_bln.data();
  std::vector<float> out(bld);
  selective_scan_forward(p, out.data(), (float*)nullptr, (float*)nullptr);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < L; ++t)
      for (int d = 0; d < D; ++d)
        ASSERT_EQ(out[(size_t(b) * L + t) * D + d], float(N) * float(t + 1))
            << "b=" << b << " t=" << t << " d=" << d;
}

// Growing states: channels with A > 0 (decay factors above 1, the argument
// of the fast 2^x positive) next to the usual A < 0 and the one very
// negative state, which the fast exp's clamp keeps apart from each other
// (a signed and an unsigned minimum on the bit patterns). Short sequences
// keep the states finite.
TEST_P(SelectiveScanIsa, GrowingAndDecayingStatesMatchNaive) {
  const Shape s{2, 20, 21, 16, true, true};
  Problem<float> pr(s, 9);
  for (int d = 0; d < s.D; d += 3)
    for (int n = 1; n < s.N; n += 2) pr.A[size_t(d) * s.N + n] = 0.25f + 0.1f * float(n % 7);
  auto p = pr.params();
  std::vector<float> out(pr.bld()), ref(pr.bld()), states(pr.bld() * s.N);
  selective_scan_forward(p, out.data(), (float*)nullptr, (float*)nullptr);
  selective_scan_naive_forward(p, ref.data(), states.data());
  float biggest = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(std::isfinite(ref[i])) << "i=" << i;
    ASSERT_NEAR(out[i], ref[i], 2e-4 * std::max(1.0f, std::fabs(ref[i]))) << "i=" << i;
    biggest = std::max(biggest, std::fabs(ref[i]));
  }
  EXPECT_GT(biggest, 100.f) << "the growing states should dominate some outputs";
}

// A NaN or infinite A (a diverged model) gives what the reference gives: the
// fast decay exp is only used when A is finite, and a NaN channel must not
// turn into small numbers.
TEST_P(SelectiveScanIsa, NonFiniteAMatchesNaive) {
  const Shape s{2, 70, 21, 16, true, true};
  Problem<float> pr(s, 5);
  pr.A[size_t(3) * s.N + 2] = std::numeric_limits<float>::quiet_NaN();
  pr.A[size_t(9) * s.N + 5] = -std::numeric_limits<float>::infinity();
  auto p = pr.params();
  std::vector<float> out(pr.bld()), ref(pr.bld()), states(pr.bld() * s.N);
  selective_scan_forward(p, out.data(), (float*)nullptr, (float*)nullptr);
  selective_scan_naive_forward(p, ref.data(), states.data());
  for (size_t i = 0; i < out.size(); ++i) {
    const int d = int(i % s.D), t = int(i / s.D) % s.L;
    if (d == 3) {
      // NaN * h_{-1} = NaN * 0 is NaN in the fused kernels; the reference
      // skips that product at t = 0, so only later steps are compared.
      if (t > 0) {
        ASSERT_TRUE(std::isnan(out[i]) && std::isnan(ref[i])) << "i=" << i;
      }
    } else {
      ASSERT_NEAR(out[i], ref[i], 1e-4 * std::max(1.0f, std::fabs(ref[i]))) << "i=" << i;
    }
  }
}

TEST(SelectiveScan, RejectsBadInput) {
  Problem<float> pr({1, 4, 3, 2, false, false}, 1);
  std::vector<float> out(pr.bld()), chunk(selective_scan_states_size(1, 4, 3, 2));
  auto p = pr.params();
  p.len = 0;
  EXPECT_THROW(selective_scan_forward(p, out.data(), chunk.data(), (float*)nullptr), mk::Error);
  p = pr.params();
  p.Bm = nullptr;
  EXPECT_THROW(selective_scan_forward(p, out.data(), chunk.data(), (float*)nullptr), mk::Error);
  p = pr.params();
  SelectiveScanGrads<float> g;  // no gradient buffers
  EXPECT_THROW(selective_scan_backward(p, chunk.data(), out.data(), g), mk::Error);
  EXPECT_THROW(selective_scan_backward(p, (const float*)nullptr, out.data(), g), mk::Error);
}

}  // namespace
