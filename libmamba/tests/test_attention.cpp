// Attention mixer (Transformer++): the tiled online-softmax attention
// against a naive softmax (and its logsumexp), RoPE properties, finite-
// difference gradients (op across tile boundaries, and the whole mixer), and
// KV-cache generation against the full forward of an [attention, mlp] model.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mambakit/error.h"
#include "mambakit/layers/attention_mixer.h"
#include "mambakit/models/sequence_model.h"
#include "mambakit/ops/attention.h"
#include "mambakit/ops/rope.h"
#include "mixer_test_util.h"
#include "test_util.h"

namespace mk {
namespace {

// (B, L, H, Dh) layout parameters for q, k, v, o.
template <typename T>
ops::AttentionParams<T> dense_params(int B, int L, int H, int Dh, const T* q, const T* k, const T* v, T* o,
                                     T* lse) {
  ops::AttentionParams<T> p;
  p.batch = B; p.len_q = L; p.len_k = L; p.heads = H; p.head_dim = Dh;
  p.scale = T(1.0 / std::sqrt(double(Dh)));
  p.q = q; p.o = o; p.q_sb = long(L) * H * Dh; p.q_st = long(H) * Dh;
  p.k = k; p.v = v; p.kv_sb = p.q_sb; p.kv_st = p.q_st;
  p.lse = lse;
  return p;
}

TEST(Attention, TiledOnlineSoftmaxEqualsNaiveSoftmax) {
  const int B = 2, L = 150, H = 2, Dh = 8;  // L spans three key tiles
  const size_t n = size_t(B) * L * H * Dh;
  auto q = test::randn<double>(n, 1, 2.0), k = test::randn<double>(n, 2), v = test::randn<double>(n, 3);
  std::vector<double> o(n), lse(size_t(B) * H * L), want(n), want_lse(lse.size());
  ops::attention_forward(dense_params(B, L, H, Dh, q.data(), k.data(), v.data(), o.data(), lse.data()));
  const double scale = 1.0 / std::sqrt(double(Dh));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < L; ++i) {
        auto at = [&](const std::vector<double>& a, int t, int d) { return a[((size_t(b) * L + t) * H + h) * Dh + d]; };
        std::vector<double> s(i + 1);
        double mx = -1e300;
        for (int j = 0; j <= i; ++j) {
          s[j] = 0;
          for (int d = 0; d < Dh; ++d) s[j] += scale * at(q, i, d) * at(k, j, d);
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (int j = 0; j <= i; ++j) z += std::exp(s[j] - mx);
        want_lse[(size_t(b) * H + h) * L + i] = mx + std::log(z);
        for (int d = 0; d < Dh; ++d) {
          double acc = 0;
          for (int j = 0; j <= i; ++j) acc += std::exp(s[j] - mx) / z * at(v, j, d);
          want[((size_t(b) * L + i) * H + h) * Dh + d] = acc;
        }
      }
  EXPECT_TRUE(test::all_close(o, want, 1e-12));
  EXPECT_TRUE(test::all_close(lse, want_lse, 1e-12));
}

TEST(Attention, LargeScoresStayFinite) {
  // Scores of ~1e4 overflow a naive exp; the online softmax subtracts the max.
  const int B = 1, L = 100, H = 1, Dh = 4;
  auto q = test::randn<float>(L * Dh, 4, 100.0f), k = test::randn<float>(L * Dh, 5, 100.0f);
  auto v = test::randn<float>(L * Dh, 6);
  std::vector<float> o(L * Dh), lse(L);
  ops::attention_forward(dense_params(B, L, H, Dh, q.data(), k.data(), v.data(), o.data(), lse.data()));
  for (float x : o) EXPECT_TRUE(std::isfinite(x));
  for (float x : lse) EXPECT_TRUE(std::isfinite(x));
}

TEST(Attention, BackwardMatchesFiniteDifferencesAcrossTiles) {
  const int B = 1, L = 70, H = 2, Dh = 4;
  const size_t n = size_t(B) * L * H * Dh;
  auto q = test::randn<double>(n, 7), k = test::randn<double>(n, 8), v = test::randn<double>(n, 9);
  auto r = test::randn<double>(n, 10);
  std::vector<double> o(n), lse(size_t(B) * H * L), dq(n), dk(n), dv(n);
  auto loss = [&] {
    ops::attention_forward(dense_params(B, L, H, Dh, q.data(), k.data(), v.data(), o.data(), lse.data()));
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += o[i] * r[i];
    return s;
  };
  loss();
  ops::attention_backward(dense_params(B, L, H, Dh, q.data(), k.data(), v.data(), o.data(), lse.data()),
                          r.data(), dq.data(), dk.data(), dv.data());
  EXPECT_TRUE(test::grad_check("dq", q, dq, loss, 1e-7, 60));
  EXPECT_TRUE(test::grad_check("dk", k, dk, loss, 1e-7, 60));
  EXPECT_TRUE(test::grad_check("dv", v, dv, loss, 1e-7, 60));
}

TEST(Rope, RotationIsRelativeAndInvertible) {
  const int B = 1, L = 40, H = 2, Dh = 8;
  const size_t n = size_t(L) * H * Dh;
  // Same vector at every position: q_m . k_n must depend on m - n only.
  auto one_q = test::randn<double>(H * Dh, 11), one_k = test::randn<double>(H * Dh, 12);
  std::vector<double> q(n), k(n);
  for (int t = 0; t < L; ++t)
    for (int i = 0; i < H * Dh; ++i) { q[t * H * Dh + i] = one_q[i]; k[t * H * Dh + i] = one_k[i]; }
  const ops::RopeShape rs{B, L, H, Dh, 5, 10000.0};
  std::vector<double> rq(n), rk(n), back(n);
  ops::rope_forward(rs, q.data(), rq.data());
  ops::rope_forward(rs, k.data(), rk.data());
  auto dotp = [&](int m, int nn) {
    double s = 0;
    for (int d = 0; d < Dh; ++d) s += rq[m * H * Dh + d] * rk[nn * H * Dh + d];
    return s;
  };
  EXPECT_NEAR(dotp(10, 3), dotp(30, 23), 1e-9);
  EXPECT_NEAR(dotp(7, 7), dotp(39, 39), 1e-9);
  // Norm-preserving, and position 0 (pos0 = 0) is the identity.
  double n0 = 0, n1 = 0;
  for (size_t i = 0; i < n; ++i) { n0 += q[i] * q[i]; n1 += rq[i] * rq[i]; }
  EXPECT_NEAR(n0, n1, 1e-9);
  ops::rope_backward(rs, rq.data(), back.data());
  EXPECT_TRUE(test::all_close(back, q, 1e-12));
  std::vector<double> r0(H * Dh);
  ops::rope_forward(ops::RopeShape{1, 1, H, Dh, 0, 10000.0}, one_q.data(), r0.data());
  EXPECT_TRUE(test::all_close(r0, one_q, 0.0));
  // HF's rotate_half: the pair (i, i + Dh/2) turns by pos * theta^(-2i/Dh).
  std::vector<double> e(Dh, 0.0), re(Dh);
  e[1] = 1;
  ops::rope_forward(ops::RopeShape{1, 1, 1, Dh, 3, 10000.0}, e.data(), re.data());
  const double ang = 3 * std::pow(10000.0, -2.0 / Dh);
  EXPECT_NEAR(re[1], std::cos(ang), 1e-12);
  EXPECT_NEAR(re[1 + Dh / 2], std::sin(ang), 1e-12);
}

ModelConfig attn_config() {
  ModelConfig c;
  c.d_model = 8;
  c.n_heads = 2;
  c.vocab_size = 13;
  c.n_layer = 2;
  c.mixers = {"attention", "mlp"};
  return c;
}

TEST(AttentionMixer, GradientsMatchFiniteDifferences) {
  ModelConfig cfg = attn_config();
  test::MixerUnderTest<double> m("attention", cfg, 21);
  test::check_mixer_gradients(*m.mixer, m.ps, cfg.d_model, 2, 9, 22);
}

TEST(AttentionMixer, ParameterNamesAndDefaults) {
  ModelConfig cfg = attn_config();
  test::MixerUnderTest<float> m("attention", cfg);
  for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
    EXPECT_EQ(m.ps.entry(std::string("mixer.") + n + ".weight").shape, (Shape{8, 8}));
    EXPECT_TRUE(m.ps.entry(std::string("mixer.") + n + ".weight").decay);
  }
  EXPECT_EQ(m.ps.entries().size(), 4u);  // no biases
  ModelConfig d;
  d.d_model = 768;
  EXPECT_EQ(d.n_heads_resolved(), 12);  // head size 64 by default
  d.d_model = 8;
  EXPECT_EQ(d.n_heads_resolved(), 1);
  ModelConfig bad = attn_config();
  bad.n_heads = 3;
  EXPECT_THROW(bad.validate(), Error);
}

TEST(AttentionMixer, StepWithKvCacheEqualsForward) {
  ModelConfig cfg = attn_config();
  test::MixerUnderTest<double> m("attention", cfg, 31);
  const int B = 2, L = 80;
  auto x = test::randn<double>(size_t(B) * L * cfg.d_model, 32);
  auto [full, stepped] = test::forward_and_steps(*m.mixer, m.ps, x, cfg.d_model, B, L);
  EXPECT_TRUE(test::all_close(stepped, full, 1e-12));
}

TEST(TransformerPP, KvCacheGenerationReproducesFullForwardLogits) {
  ModelConfig cfg;
  cfg.d_model = 32;
  cfg.n_heads = 4;
  cfg.n_layer = 4;  // [attention, mlp] x 2
  cfg.vocab_size = 256;
  cfg.mixers = {"attention", "mlp"};
  SequenceModel<float> model(cfg);
  model.init(41);
  test::perturb_params(model.params(), 42, 0.02);
  const int B = 2, L = 96, V = cfg.vocab_size;
  std::mt19937 rng(43);
  std::vector<int32_t> ids(B * L);
  for (auto& t : ids) t = int32_t(rng() % V);
  model.forward(ids.data(), B, L);
  std::vector<float> full = model.logits();
  auto st = model.make_state(B);
  std::vector<float> stepped = test::stepped_logits(model, ids, B, L, &st);
  EXPECT_TRUE(test::all_close(stepped, full, 1e-4));
  EXPECT_EQ(st.layers[0].bufs[0].size(), size_t(L) * B * cfg.d_model);  // the K cache grew per token
}

}  // namespace
}  // namespace mk
