// Causal depthwise conv1d: forward against the defining sum, backward by
// finite differences, and the recurrent step against the full forward; the
// conv fused with its SiLU against the two run apart.
#include "mambakit/ops/conv1d.h"

#include <omp.h>

#include <cmath>

#include "mambakit/cpu_isa.h"
#include "mambakit/ops/activations.h"

#include "test_util.h"

using namespace mk;
using namespace mk::test;

namespace {

// y[b,t,d] = bias[d] + sum_k w[d,k] x[b,t-(K-1)+k,d], zero padding on the left.
std::vector<double> conv_ref(const ops::Conv1dShape& s, const std::vector<double>& x,
                             const std::vector<double>& w, const std::vector<double>& bias) {
  std::vector<double> y(size_t(s.B) * s.L * s.D);
  for (int b = 0; b < s.B; ++b)
    for (int t = 0; t < s.L; ++t)
      for (int d = 0; d < s.D; ++d) {
        double acc = bias.empty() ? 0.0 : bias[d];
        for (int k = 0; k < s.K; ++k) {
          int src = t - (s.K - 1) + k;
          if (src >= 0) acc += w[d * s.K + k] * x[(size_t(b) * s.L + src) * s.D + d];
        }
        y[(size_t(b) * s.L + t) * s.D + d] = acc;
      }
  return y;
}

struct Case {
  int B, L, D, K;
};

const Case kCases[] = {{2, 9, 5, 4}, {2, 7, 3, 1}, {1, 6, 4, 3}, {3, 2, 4, 4} /* L < K */,
                       {2, 40, 70, 4} /* several channel chunks */,
                       {2, 64, 130, 4} /* big enough for the threaded path */,
                       {5, 53, 67, 4} /* threaded, rows not a multiple of the row blocks */};

}  // namespace

TEST(Conv1d, ForwardMatchesDefinition) {
  for (const Case& c : kCases) {
    ops::Conv1dShape s{c.B, c.L, c.D, c.K};
    auto x = randn<double>(size_t(c.B) * c.L * c.D, 1), w = randn<double>(c.D * c.K, 2),
         bias = randn<double>(c.D, 3);
    std::vector<double> y(x.size(), NAN);
    ops::conv1d_causal_forward<double>(s, x.data(), w.data(), bias.data(), y.data());
    EXPECT_TRUE(all_close(y, conv_ref(s, x, w, bias), 1e-13)) << "K=" << c.K << " L=" << c.L;
    ops::conv1d_causal_forward<double>(s, x.data(), w.data(), nullptr, y.data());
    EXPECT_TRUE(all_close(y, conv_ref(s, x, w, {}), 1e-13)) << "no bias, K=" << c.K;
    std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), bf(bias.begin(), bias.end()),
        yf(x.size());
    ops::conv1d_causal_forward<float>(s, xf.data(), wf.data(), bf.data(), yf.data());
    EXPECT_TRUE(all_close(yf, conv_ref(s, x, w, bias), 1e-5)) << "float, K=" << c.K;
  }
}

// Inputs, a random output gradient r (the loss is sum(y r)) and the
// gradients `backward` gives for them, checked against finite differences of
// `forward`; returned for further checks.
struct GradCase {
  std::vector<double> x, w, bias, r, dx, dw, db;
};
template <class Forward, class Backward>
GradCase check_grads(const Case& c, unsigned seed, Forward forward, Backward backward) {
  const ops::Conv1dShape s{c.B, c.L, c.D, c.K};
  const size_t n = size_t(c.B) * c.L * c.D;
  GradCase g{randn<double>(n, seed), randn<double>(c.D * c.K, seed + 1),
             randn<double>(c.D, seed + 2), randn<double>(n, seed + 3), std::vector<double>(n, NAN),
             std::vector<double>(c.D * c.K, 0.0), std::vector<double>(c.D, 0.0)};
  auto loss = [&]() {
    std::vector<double> y(n);
    forward(s, g.x.data(), g.w.data(), g.bias.data(), y.data());
    double acc = 0;
    for (size_t i = 0; i < n; ++i) acc += y[i] * g.r[i];
    return acc;
  };
  backward(s, g.r.data(), g.x.data(), g.w.data(), g.bias.data(), g.dx.data(), g.dw.data(),
           g.db.data());
  EXPECT_TRUE(grad_check("dx K=" + std::to_string(c.K), g.x, g.dx, loss));
  EXPECT_TRUE(grad_check("dw K=" + std::to_string(c.K), g.w, g.dw, loss));
  EXPECT_TRUE(grad_check("dbias K=" + std::to_string(c.K), g.bias, g.db, loss));
  return g;
}

TEST(Conv1d, BackwardFiniteDifferences) {
  for (const Case& c : kCases) {
    const GradCase g = check_grads(
        c, 4, ops::conv1d_causal_forward<double>,
        [](const ops::Conv1dShape& s, const double* dy, const double* x, const double* w,
           const double*, double* dx, double* dw, double* db) {
          ops::conv1d_causal_backward<double>(s, dy, x, w, dx, dw, db);
        });
    // dw and dbias accumulate; a null dbias is skipped.
    const ops::Conv1dShape s{c.B, c.L, c.D, c.K};
    std::vector<double> dx(g.dx.size()), dw2 = g.dw;
    ops::conv1d_causal_backward<double>(s, g.r.data(), g.x.data(), g.w.data(), dx.data(),
                                        dw2.data(), nullptr);
    for (size_t i = 0; i < g.dw.size(); ++i) EXPECT_NEAR(dw2[i], 2 * g.dw[i], 1e-10);
  }
}

TEST(Conv1d, StepTokenByTokenEqualsForward) {
  for (const Case& c : kCases) {
    ops::Conv1dShape s{c.B, c.L, c.D, c.K};
    auto x = randn<double>(size_t(c.B) * c.L * c.D, 8), w = randn<double>(c.D * c.K, 9),
         bias = randn<double>(c.D, 10);
    std::vector<double> y(x.size());
    ops::conv1d_causal_forward<double>(s, x.data(), w.data(), bias.data(), y.data());
    std::vector<double> state(size_t(c.B) * c.D * c.K, 0.0), xt(c.B * c.D), yt(c.B * c.D);
    std::vector<double> y_step(x.size());
    for (int t = 0; t < c.L; ++t) {
      for (int b = 0; b < c.B; ++b)
        for (int d = 0; d < c.D; ++d) xt[b * c.D + d] = x[(size_t(b) * c.L + t) * c.D + d];
      ops::conv1d_causal_step<double>(c.B, c.D, c.K, xt.data(), state.data(), w.data(),
                                      bias.data(), yt.data());
      for (int b = 0; b < c.B; ++b)
        for (int d = 0; d < c.D; ++d) y_step[(size_t(b) * c.L + t) * c.D + d] = yt[b * c.D + d];
    }
    EXPECT_TRUE(all_close(y_step, y, 1e-13)) << "K=" << c.K << " L=" << c.L;
    // The state ends holding the last K inputs, oldest first (zeros before t=0).
    for (int k = 0; k < c.K; ++k) {
      int t = c.L - c.K + k;
      double want = t >= 0 ? x[(size_t(0) * c.L + t) * c.D + 0] : 0.0;
      EXPECT_EQ(state[k], want) << "k=" << k;
    }
  }
}

// The backward sums the weight and bias gradients over fixed blocks of rows,
// so one, two or three threads give the same bits (dx as well).
TEST(Conv1d, BackwardSameOnAnyThreadCount) {
  for (const Case& c : {Case{2, 64, 130, 4}, Case{5, 53, 67, 4}, Case{3, 300, 33, 3}}) {
    ops::Conv1dShape s{c.B, c.L, c.D, c.K};
    const size_t n = size_t(c.B) * c.L * c.D;
    const auto x = randn<float>(n, 21), w = randn<float>(c.D * c.K, 22), dy = randn<float>(n, 23);
    const auto dw0 = randn<float>(c.D * c.K, 24), db0 = randn<float>(c.D, 25);
    const int saved = omp_get_max_threads();
    std::vector<std::vector<float>> dxs, dws, dbs;
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      std::vector<float> dx(n, NAN), dw = dw0, db = db0;  // dw, db accumulate onto these
      ops::conv1d_causal_backward<float>(s, dy.data(), x.data(), w.data(), dx.data(), dw.data(),
                                         db.data());
      dxs.push_back(dx);
      dws.push_back(dw);
      dbs.push_back(db);
    }
    omp_set_num_threads(saved);
    for (size_t i = 1; i < dxs.size(); ++i) {
      EXPECT_TRUE(all_close(dxs[i], dxs[0], 0)) << "B=" << c.B << " L=" << c.L;
      EXPECT_TRUE(all_close(dws[i], dws[0], 0)) << "B=" << c.B << " L=" << c.L;
      EXPECT_TRUE(all_close(dbs[i], dbs[0], 0)) << "B=" << c.B << " L=" << c.L;
    }
  }
}

// ---------------------------------------------------------------------------
// The conv fused with its SiLU (the Mamba block's conv): forward and
// backward against the conv and the SiLU run one after the other in double,
// on every ISA this machine has; the backward also by finite differences.
// ---------------------------------------------------------------------------

namespace {

double silu_d(double v) { return v / (1 + std::exp(-v)); }

// Shapes for the fused kernels: every K they are built for and one they
// fall back for; L < K; channels not a multiple of the vector; sequences
// that start and end inside a block of rows; the threaded path.
const Case kSiluCases[] = {{2, 9, 5, 4},    {2, 7, 3, 1},    {1, 6, 4, 3},    {3, 2, 4, 4},
                           {2, 5, 17, 2},   {2, 40, 70, 4},  {5, 53, 67, 4},  {2, 64, 130, 4},
                           {3, 100, 33, 3}, {1, 3, 3, 4},    {2, 12, 9, 6} /* K > 4 */};

// y = silu(conv(x)) and, for the loss sum(y r), dx, dw and dbias, in double
// through the unfused ops.
struct SiluRef {
  std::vector<double> y, dx, dw, db;
};
SiluRef silu_ref(const ops::Conv1dShape& s, const std::vector<double>& x,
                 const std::vector<double>& w, const std::vector<double>& bias,
                 const std::vector<double>& r) {
  const size_t n = x.size();
  SiluRef out;
  std::vector<double> pre = conv_ref(s, x, w, bias), g(n);
  out.y.resize(n);
  for (size_t i = 0; i < n; ++i) {
    out.y[i] = silu_d(pre[i]);
    const double sg = 1 / (1 + std::exp(-pre[i]));
    g[i] = r[i] * sg * (1 + pre[i] * (1 - sg));
  }
  out.dx.assign(n, 0.0);
  out.dw.assign(w.size(), 0.0);
  out.db.assign(bias.size(), 0.0);
  ops::conv1d_causal_backward<double>(s, g.data(), x.data(), w.data(), out.dx.data(),
                                      out.dw.data(), out.db.data());
  return out;
}

}  // namespace

TEST(Conv1dSilu, DoubleMatchesConvThenSilu) {
  for (const Case& c : kSiluCases) {
    ops::Conv1dShape s{c.B, c.L, c.D, c.K};
    const size_t n = size_t(c.B) * c.L * c.D;
    auto x = randn<double>(n, 31), w = randn<double>(c.D * c.K, 32), bias = randn<double>(c.D, 33),
         r = randn<double>(n, 34);
    const SiluRef ref = silu_ref(s, x, w, bias, r);
    std::vector<double> y(n, NAN), dx(n, NAN), dw(w.size(), 0.0), db(c.D, 0.0);
    ops::conv1d_silu_forward<double>(s, x.data(), w.data(), bias.data(), y.data());
    ops::conv1d_silu_backward<double>(s, r.data(), x.data(), w.data(), bias.data(), dx.data(),
                                      dw.data(), db.data());
    EXPECT_TRUE(all_close(y, ref.y, 1e-13)) << "K=" << c.K << " L=" << c.L;
    EXPECT_TRUE(all_close(dx, ref.dx, 1e-12)) << "K=" << c.K << " L=" << c.L;
    EXPECT_TRUE(all_close(dw, ref.dw, 1e-12)) << "K=" << c.K << " L=" << c.L;
    EXPECT_TRUE(all_close(db, ref.db, 1e-12)) << "K=" << c.K << " L=" << c.L;
  }
}

TEST(Conv1dSilu, BackwardFiniteDifferences) {
  for (const Case& c : {Case{2, 9, 5, 4}, Case{1, 6, 4, 3}, Case{3, 2, 4, 4}})
    check_grads(c, 41, ops::conv1d_silu_forward<double>, ops::conv1d_silu_backward<double>);
}

// float, on every ISA the machine has, against the double reference; dw
// and dbias accumulate onto what they hold; a null bias and dbias work.
TEST(Conv1dSilu, FloatMatchesReferenceOnEveryIsa) {
  for (Isa isa : supported_isas()) {
    ScopedIsa scoped(isa);
    for (const Case& c : kSiluCases) {
      ops::Conv1dShape s{c.B, c.L, c.D, c.K};
      const size_t n = size_t(c.B) * c.L * c.D;
      auto x = randn<double>(n, 51), w = randn<double>(c.D * c.K, 52),
           bias = randn<double>(c.D, 53), r = randn<double>(n, 54);
      auto dw0 = randn<double>(c.D * c.K, 55), db0 = randn<double>(c.D, 56);
      const SiluRef ref = silu_ref(s, x, w, bias, r);
      auto f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
      std::vector<float> xf = f(x), wf = f(w), bf = f(bias), rf = f(r), dwf = f(dw0), dbf = f(db0);
      std::vector<float> y(n, NAN), dx(n, NAN);
      ops::conv1d_silu_forward<float>(s, xf.data(), wf.data(), bf.data(), y.data());
      ops::conv1d_silu_backward<float>(s, rf.data(), xf.data(), wf.data(), bf.data(), dx.data(),
                                       dwf.data(), dbf.data());
      std::vector<double> dw_want = ref.dw, db_want = ref.db;
      for (size_t i = 0; i < dw_want.size(); ++i) dw_want[i] += dw0[i];
      for (size_t i = 0; i < db_want.size(); ++i) db_want[i] += db0[i];
      const std::string where = std::string(isa_name(isa)) + " B=" + std::to_string(c.B) +
                                " L=" + std::to_string(c.L) + " D=" + std::to_string(c.D) +
                                " K=" + std::to_string(c.K);
      EXPECT_TRUE(all_close(y, ref.y, 1e-5)) << where;
      EXPECT_TRUE(all_close(dx, ref.dx, 1e-5)) << where;
      EXPECT_TRUE(all_close(dwf, dw_want, 1e-4)) << where;
      EXPECT_TRUE(all_close(dbf, db_want, 1e-4)) << where;

      // No bias: the pre-activation is the conv alone; no dbias to fill.
      const SiluRef nb = silu_ref(s, x, w, std::vector<double>(c.D, 0.0), r);
      std::vector<float> dw2(wf.size(), 0.f);
      ops::conv1d_silu_forward<float>(s, xf.data(), wf.data(), nullptr, y.data());
      ops::conv1d_silu_backward<float>(s, rf.data(), xf.data(), wf.data(), nullptr, dx.data(),
                                       dw2.data(), nullptr);
      EXPECT_TRUE(all_close(y, nb.y, 1e-5)) << "no bias, " << where;
      EXPECT_TRUE(all_close(dx, nb.dx, 1e-5)) << "no bias, " << where;
      EXPECT_TRUE(all_close(dw2, nb.dw, 1e-4)) << "no bias, " << where;
    }
  }
}

// The fused kernels form every value as the unfused float ops do (the
// conv, then the SiLU; the SiLU's backward, then the conv's), in the same
// order, so they give those ops' bits, on every ISA and thread count.
TEST(Conv1dSilu, FloatSameBitsAsTheOpsApartOnEveryIsaAndThreadCount) {
  for (const Case& c : {Case{2, 64, 130, 4}, Case{5, 53, 67, 4}, Case{3, 300, 33, 3},
                        Case{4, 3, 40, 4}}) {
    ops::Conv1dShape s{c.B, c.L, c.D, c.K};
    const size_t n = size_t(c.B) * c.L * c.D;
    const auto x = randn<float>(n, 61), w = randn<float>(c.D * c.K, 62),
               bias = randn<float>(c.D, 63), dy = randn<float>(n, 64),
               dw0 = randn<float>(c.D * c.K, 65), db0 = randn<float>(c.D, 66);
    const int saved = omp_get_max_threads();
    for (Isa isa : supported_isas()) {
      ScopedIsa scoped(isa);
      for (int threads : {1, 2, 3}) {
        omp_set_num_threads(threads);
        std::vector<float> pre(n), y_apart(n), g(n), dx_apart(n, NAN), dw_apart = dw0,
                                                     db_apart = db0;
        ops::conv1d_causal_forward<float>(s, x.data(), w.data(), bias.data(), pre.data());
        ops::silu_forward<float>(pre.data(), y_apart.data(), n);
        ops::silu_backward<float>(dy.data(), pre.data(), g.data(), n);
        ops::conv1d_causal_backward<float>(s, g.data(), x.data(), w.data(), dx_apart.data(),
                                           dw_apart.data(), db_apart.data());
        std::vector<float> y(n, NAN), dx(n, NAN), dw = dw0, db = db0;
        ops::conv1d_silu_forward<float>(s, x.data(), w.data(), bias.data(), y.data());
        ops::conv1d_silu_backward<float>(s, dy.data(), x.data(), w.data(), bias.data(),
                                         dx.data(), dw.data(), db.data());
        const std::string where = std::string(isa_name(isa)) + " threads=" +
                                  std::to_string(threads) + " B=" + std::to_string(c.B) +
                                  " L=" + std::to_string(c.L);
        EXPECT_TRUE(all_close(y, y_apart, 0)) << where;
        EXPECT_TRUE(all_close(dx, dx_apart, 0)) << where;
        EXPECT_TRUE(all_close(dw, dw_apart, 0)) << where;
        EXPECT_TRUE(all_close(db, db_apart, 0)) << where;
      }
    }
    omp_set_num_threads(saved);
  }
}
