// AdamW against an independent transcription of the PyTorch AdamW update;
// gradient norm and clipping; the cosine learning-rate schedule.
#include "mambakit/ops/optim.h"

#include "mambakit/error.h"
#include "test_util.h"

using namespace mk;
using namespace mk::test;

namespace {

// torch.optim.AdamW, as documented (amsgrad=False, maximize=False):
//   theta <- theta - gamma*lambda*theta
//   m <- b1 m + (1-b1) g ;  v <- b2 v + (1-b2) g^2
//   m_hat = m/(1-b1^t) ;  v_hat = v/(1-b2^t)
//   theta <- theta - gamma * m_hat / (sqrt(v_hat) + eps)
struct RefAdamW {
  std::vector<double> theta, m, v;
  void step(const std::vector<double>& g, const ops::AdamWHyper& h, int t, bool decay) {
    for (size_t i = 0; i < theta.size(); ++i) {
      if (decay) theta[i] -= h.lr * h.weight_decay * theta[i];
      m[i] = h.beta1 * m[i] + (1 - h.beta1) * g[i];
      v[i] = h.beta2 * v[i] + (1 - h.beta2) * g[i] * g[i];
      double m_hat = m[i] / (1 - std::pow(h.beta1, t));
      double v_hat = v[i] / (1 - std::pow(h.beta2, t));
      theta[i] -= h.lr * m_hat / (std::sqrt(v_hat) + h.eps);
    }
  }
};

}  // namespace

TEST(AdamW, MatchesPyTorchEquations) {
  const size_t n = 40000;  // large enough for the threaded path
  ops::AdamWHyper h;
  h.lr = 3e-3;
  h.beta1 = 0.9;
  h.beta2 = 0.95;
  h.eps = 1e-8;
  h.weight_decay = 0.1;
  for (bool decay : {true, false}) {
    auto p0 = randn<double>(n, 1);
    RefAdamW ref{p0, std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
    std::vector<double> p = p0, m(n, 0.0), v(n, 0.0);
    std::vector<float> pf(p0.begin(), p0.end()), mf(n, 0.f), vf(n, 0.f);
    for (int t = 1; t <= 6; ++t) {
      auto g = randn<double>(n, 100 + t, t == 3 ? 1e-6 : 1.0);  // include tiny gradients
      std::vector<float> gf(g.begin(), g.end());
      ref.step(g, h, t, decay);
      ops::adamw_update<double>(p.data(), g.data(), m.data(), v.data(), n, h, t, decay);
      ops::adamw_update<float>(pf.data(), gf.data(), mf.data(), vf.data(), n, h, t, decay);
    }
    EXPECT_TRUE(all_close(p, ref.theta, 1e-14, 1e-12)) << "decay=" << decay;
    EXPECT_TRUE(all_close(m, ref.m, 1e-15, 1e-12));
    EXPECT_TRUE(all_close(v, ref.v, 1e-15, 1e-12));
    EXPECT_TRUE(all_close(pf, ref.theta, 1e-6, 1e-5)) << "float, decay=" << decay;
  }
}

TEST(AdamW, DecayOnlyWhenRequested) {
  // Zero gradient and zero moments: the Adam step is 0, so only the decay moves p.
  const size_t n = 5;
  ops::AdamWHyper h;
  h.lr = 0.01;
  h.weight_decay = 0.5;
  auto p0 = randn<double>(n, 2);
  std::vector<double> g(n, 0.0), m(n, 0.0), v(n, 0.0);
  std::vector<double> p = p0;
  ops::adamw_update<double>(p.data(), g.data(), m.data(), v.data(), n, h, 1, false);
  EXPECT_TRUE(all_close(p, p0, 0));
  ops::adamw_update<double>(p.data(), g.data(), m.data(), v.data(), n, h, 2, true);
  for (size_t i = 0; i < n; ++i) EXPECT_NEAR(p[i], p0[i] * (1 - 0.01 * 0.5), 1e-15);
  EXPECT_THROW(ops::adamw_update<double>(p.data(), g.data(), m.data(), v.data(), n, h, 0, true),
               mk::Error);
}

TEST(GradNorm, GlobalNormAndClipping) {
  const size_t n = 40009;  // several reduction blocks, threaded path
  auto g = randn<float>(n, 3);
  double want = 0;
  for (float x : g) want += double(x) * x;
  want = std::sqrt(want);
  EXPECT_NEAR(ops::global_norm(g.data(), n), want, 1e-10 * want);

  // Above the limit: scaled to exactly max_norm, direction kept, old norm returned.
  auto c = g;
  const double max_norm = want / 4;
  EXPECT_NEAR(ops::clip_grad_norm(c.data(), n, max_norm), want, 1e-10 * want);
  EXPECT_NEAR(ops::global_norm(c.data(), n), max_norm, 1e-6 * max_norm);
  for (size_t i = 0; i < n; i += 997) EXPECT_NEAR(c[i], g[i] * 0.25f, 1e-6);

  // Below the limit: untouched.
  auto u = g;
  ops::clip_grad_norm(u.data(), n, want * 2);
  EXPECT_TRUE(all_close(u, g, 0));
}

TEST(CosineLR, WarmupDecayEndpointsAndMonotonicity) {
  const long warmup = 10, total = 100;
  const double hi = 1e-3, lo = 1e-5;
  EXPECT_GT(ops::cosine_lr(0, warmup, total, hi, lo), 0.0);
  EXPECT_NEAR(ops::cosine_lr(0, warmup, total, hi, lo), hi / warmup, 1e-18);
  EXPECT_NEAR(ops::cosine_lr(warmup - 1, warmup, total, hi, lo), hi, 1e-18);
  EXPECT_NEAR(ops::cosine_lr(warmup, warmup, total, hi, lo), hi, 1e-18);
  EXPECT_NEAR(ops::cosine_lr((warmup + total) / 2, warmup, total, hi, lo), (hi + lo) / 2, 1e-15);
  EXPECT_NEAR(ops::cosine_lr(total, warmup, total, hi, lo), lo, 1e-18);
  EXPECT_NEAR(ops::cosine_lr(total + 50, warmup, total, hi, lo), lo, 1e-18);
  for (long s = 1; s < warmup; ++s)
    EXPECT_GT(ops::cosine_lr(s, warmup, total, hi, lo), ops::cosine_lr(s - 1, warmup, total, hi, lo));
  for (long s = warmup + 1; s <= total + 5; ++s) {
    double cur = ops::cosine_lr(s, warmup, total, hi, lo);
    EXPECT_LE(cur, ops::cosine_lr(s - 1, warmup, total, hi, lo)) << "step " << s;
    EXPECT_GE(cur, lo);
  }
  // No warmup: starts at lr_max.
  EXPECT_NEAR(ops::cosine_lr(0, 0, total, hi, lo), hi, 1e-18);
}
