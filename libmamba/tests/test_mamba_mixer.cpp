// MambaMixer and SequenceModel: finite-difference gradients in double for the
// layer and the whole model (LM head, sequence classifier, two-tower pair
// classifier), and recurrent step() against the full forward.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mambakit/error.h"
#include "mambakit/layers/bidirectional_mixer.h"
#include "mambakit/layers/mamba_mixer.h"
#include "mambakit/ops/elementwise.h"
#include "mambakit/models/sequence_model.h"
#include "mixer_test_util.h"

namespace mk {
namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.d_model = 8;
  c.n_layer = 2;
  c.vocab_size = 11;
  c.d_state = 4;
  c.expand = 2;
  c.d_conv = 4;
  return c;
}

// Moves the parameters away from their structured init (A_log = log n,
// D = 1, norms = 1) so that a wrong gradient cannot hide behind symmetry.
// The dt biases are also raised from their init (dt ~ 0.001..0.1) to
// dt ~ 0.5..1.5, so that A, dt and B have a strong effect on the loss and
// their gradients stand well above finite-difference round-off.
template <typename T>
void perturb(ParamStore<T>& ps, unsigned seed, double scale) {
  auto noise = test::randn<double>(ps.size(), seed, scale);
  for (size_t i = 0; i < ps.size(); ++i) ps.data()[i] += T(noise[i]);
  auto u = test::uniform<double>(ps.size(), seed + 1, 0.0, 1.0);
  for (const auto& e : ps.entries())
    if (e.name.find("dt_proj.bias") != std::string::npos)
      for (size_t i = 0; i < e.numel; ++i) ps.data()[e.offset + i] = T(u[e.offset + i]);
}

TEST(MambaMixer, GradientsMatchFiniteDifferences) {
  ModelConfig cfg = tiny_config();
  test::MixerUnderTest<double> m("mamba", cfg);
  perturb(m.ps, 4, 0.1);
  test::check_mixer_gradients(*m.mixer, m.ps, cfg.d_model, 2, 7, 5, 1e-6, 200);
}

// A bidirectional Mamba mixer declared under "mixer", initialised and
// perturbed (as the plain mixer's tests do).
struct BidirectionalMambaUnderTest {
  ModelConfig cfg = tiny_config();
  ParamStore<double> ps;
  BidirectionalMixer<double> mixer{"mamba"};
  BidirectionalMambaUnderTest() {
    cfg.bidirectional = true;
    mixer.declare(ps, "mixer", cfg);
    ps.finalize();
    std::mt19937_64 rng(3);
    mixer.init(ps, rng, cfg.n_layer);
    perturb(ps, 4, 0.1);
  }
};

TEST(BidirectionalMamba, GradientsMatchFiniteDifferences) {
  BidirectionalMambaUnderTest m;
  auto& mixer = m.mixer;
  auto& ps = m.ps;
  const ModelConfig& cfg = m.cfg;
  test::check_mixer_gradients(mixer, ps, cfg.d_model, 2, 7, 5, 1e-6, 200);
}

// The two halves are plain Mambas: the forward half under the causal names,
// the reverse half under ".reverse" reading the sequence back to front.
TEST(BidirectionalMamba, IsAForwardPlusAReversedMamba) {
  BidirectionalMambaUnderTest m;
  auto& bi = m.mixer;
  auto& ps = m.ps;
  const ModelConfig& cfg = m.cfg;

  // Each half copied into a Mamba of its own.
  auto half = [&](const std::string& prefix, test::MixerUnderTest<double>& m) {
    for (const auto& e : m.ps.entries()) {
      const std::string name = prefix + e.name.substr(std::string("mixer").size());
      ASSERT_TRUE(ps.has(name)) << name;
      ASSERT_EQ(ps.entry(name).numel, e.numel) << name;
      std::copy_n(ps.param(name), e.numel, m.ps.data() + e.offset);
    }
  };
  test::MixerUnderTest<double> fwd("mamba", cfg), rev("mamba", cfg);
  half("mixer", fwd);
  half("mixer.reverse", rev);
  EXPECT_EQ(ps.size(), fwd.ps.size() + rev.ps.size());

  const int B = 2, L = 9, D = cfg.d_model;
  const auto x = test::randn<double>(size_t(B) * L * D, 6);
  std::vector<double> out(x.size()), want(x.size()), xr(x.size()), yr(x.size()), y_back(x.size());
  bi.forward(ps, x.data(), out.data(), B, L);
  fwd.mixer->forward(fwd.ps, x.data(), want.data(), B, L);
  ops::reverse_time(x.data(), xr.data(), B, L, D);
  rev.mixer->forward(rev.ps, xr.data(), yr.data(), B, L);
  ops::reverse_time(yr.data(), y_back.data(), B, L, D);
  for (size_t i = 0; i < want.size(); ++i) want[i] += y_back[i];
  EXPECT_TRUE(test::all_close(out, want, 1e-12));

  // The first output reads the last input (the causal half alone cannot).
  std::vector<double> x2 = x, out2(x.size());
  x2[size_t(L - 1) * D] += 1.0;
  bi.forward(ps, x2.data(), out2.data(), B, L);
  double moved = 0;
  for (int d = 0; d < D; ++d) moved += std::fabs(out2[size_t(d)] - out[size_t(d)]);
  EXPECT_GT(moved, 1e-6);
}

TEST(BidirectionalMamba, ModelTrainsNamesItsReverseHalfAndRefusesToStep) {
  ModelConfig cfg = tiny_config();
  cfg.bidirectional = true;
  SequenceModel<float> model(cfg);
  model.init(3);
  EXPECT_TRUE(model.params().has("backbone.layers.0.mixer.in_proj.weight"));
  EXPECT_TRUE(model.params().has("backbone.layers.1.mixer.reverse.A_log"));
  std::vector<int32_t> ids = {1, 2, 3, 4};
  model.forward(ids.data(), 1, 4);
  EXPECT_GT(model.backward(ids.data()), 0.0);
  auto st = model.make_state(1);
  std::vector<float> logits(cfg.vocab_size);
  EXPECT_THROW(model.step(ids.data(), st, logits.data()), Error);
}

TEST(SequenceModel, WholeModelGradientsMatchFiniteDifferences) {
  ModelConfig cfg = tiny_config();
  SequenceModel<double> model(cfg);
  model.init(7);
  perturb(model.params(), 8, 0.05);
  const int B = 2, L = 6;
  std::mt19937 rng(9);
  std::vector<int32_t> ids(B * L), tgt(B * L);
  for (auto& t : ids) t = int32_t(rng() % cfg.vocab_size);
  for (auto& t : tgt) t = int32_t(rng() % cfg.vocab_size);
  tgt[3] = -1;  // an ignored position
  auto& ps = model.params();
  auto loss = [&] {
    model.forward(ids.data(), B, L);
    return model.loss(tgt.data());
  };
  ps.zero_grad();
  model.forward(ids.data(), B, L);
  model.backward(tgt.data());
  // Some tensors (A_log deep in the stack) move a mean cross-entropy by
  // ~1e-8 per unit: their coordinates are judged against the model's
  // largest gradient, not their own (see grad_check).
  test::check_param_gradients(ps, loss, 1e-6, 100, test::max_abs_grad(ps));
}

TEST(SequenceModel, StepReproducesFullForwardLogits) {
  ModelConfig cfg;
  cfg.d_model = 32;
  cfg.n_layer = 2;
  cfg.vocab_size = 256;
  SequenceModel<float> model(cfg);
  model.init(11);
  perturb(model.params(), 12, 0.02);
  const int B = 2, L = 64, V = cfg.vocab_size;
  std::mt19937 rng(13);
  std::vector<int32_t> ids(B * L);
  for (auto& t : ids) t = int32_t(rng() % V);
  model.forward(ids.data(), B, L);
  std::vector<float> full = model.logits();

  std::vector<float> stepped = test::stepped_logits(model, ids, B, L);
  EXPECT_TRUE(test::all_close(stepped, full, 1e-4));
}

TEST(SequenceModel, ParameterNamesFollowHFLayout) {
  ModelConfig cfg = tiny_config();
  SequenceModel<float> model(cfg);
  const auto& ps = model.params();
  const int di = cfg.d_inner(), r = cfg.dt_rank_resolved();
  EXPECT_EQ(ps.entry("backbone.embeddings.weight").shape, (Shape{cfg.vocab_size, cfg.d_model}));
  EXPECT_EQ(ps.entry("backbone.layers.1.mixer.in_proj.weight").shape, (Shape{2 * di, cfg.d_model}));
  EXPECT_EQ(ps.entry("backbone.layers.0.mixer.conv1d.weight").shape, (Shape{di, 1, cfg.d_conv}));
  EXPECT_EQ(ps.entry("backbone.layers.0.mixer.x_proj.weight").shape, (Shape{r + 2 * cfg.d_state, di}));
  EXPECT_EQ(ps.entry("backbone.layers.0.mixer.dt_proj.weight").shape, (Shape{di, r}));
  EXPECT_EQ(ps.entry("backbone.layers.0.mixer.A_log").shape, (Shape{di, cfg.d_state}));
  EXPECT_FALSE(ps.entry("backbone.layers.0.mixer.A_log").decay);
  EXPECT_FALSE(ps.entry("backbone.layers.0.mixer.D").decay);
  EXPECT_FALSE(ps.entry("backbone.norm_f.weight").decay);
  EXPECT_TRUE(ps.entry("backbone.layers.0.mixer.out_proj.weight").decay);
  EXPECT_FALSE(ps.has("lm_head.weight"));  // tied to the embedding
}

}  // namespace
}  // namespace mk

namespace mk {
namespace {

// The sequence-classifier head: pooled features -> Linear, with padding
// excluded from the pooling; gradients by finite differences, both poolings.
void classifier_gradients(const std::string& pooling) {
  ModelConfig cfg = tiny_config();
  cfg.n_classes = 3;
  cfg.pooling = pooling;
  SequenceModel<double> model(cfg);
  model.init(21);
  perturb(model.params(), 22, 0.05);
  const int B = 3, L = 5;
  std::mt19937 rng(23);
  std::vector<int32_t> ids(B * L), lengths = {5, 3, 1}, tgt = {2, 0, 1};
  for (auto& t : ids) t = int32_t(rng() % cfg.vocab_size);
  auto& ps = model.params();
  auto loss = [&] {
    model.forward(ids.data(), B, L, lengths.data());
    return model.loss(tgt.data());
  };
  ps.zero_grad();
  model.forward(ids.data(), B, L, lengths.data());
  ASSERT_EQ(model.logit_rows(), B);
  ASSERT_EQ(model.logits().size(), size_t(B) * 3);
  model.backward(tgt.data());
  test::check_param_gradients(ps, loss, 1e-6, 60, test::max_abs_grad(ps));
  // Padding is invisible: changing tokens past a sequence's length changes
  // nothing for a causal model.
  model.forward(ids.data(), B, L, lengths.data());
  std::vector<double> before = model.logits();
  for (int t = 1; t < L; ++t) ids[2 * L + t] = (ids[2 * L + t] + 1) % cfg.vocab_size;
  model.forward(ids.data(), B, L, lengths.data());
  EXPECT_TRUE(test::all_close(model.logits(), before, 1e-14));
}

TEST(SequenceClassifier, MeanPoolingGradients) { classifier_gradients("mean"); }
TEST(SequenceClassifier, LastTokenPoolingGradients) { classifier_gradients("last"); }

// logits = features W^T + b: features() is the input of the last Linear.
template <typename T>
void expect_logits_from_features(SequenceModel<T>& model) {
  const auto& ps = model.params();
  const int rows = model.logit_rows(), C = model.logit_width(), dm = model.feature_width();
  ASSERT_EQ(model.features().size(), size_t(rows) * dm);
  const T* W = ps.data() + ps.entry("classifier.weight").offset;
  const T* bias = ps.data() + ps.entry("classifier.bias").offset;
  std::vector<T> expect(size_t(rows) * C);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < C; ++c) {
      double s = bias[c];
      for (int j = 0; j < dm; ++j) s += double(W[size_t(c) * dm + j]) * model.features()[size_t(r) * dm + j];
      expect[size_t(r) * C + c] = T(s);
    }
  EXPECT_TRUE(test::all_close(model.logits(), expect, 1e-12));
}

TEST(SequenceClassifier, FeaturesArePooledSequence) {
  ModelConfig cfg = tiny_config();
  cfg.n_classes = 3;
  SequenceModel<double> model(cfg);
  model.init(31);
  perturb(model.params(), 32, 0.05);
  std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6, 7, 8}, lengths = {4, 2};
  model.forward(ids.data(), 2, 4, lengths.data());
  expect_logits_from_features(model);
}

ModelConfig pair_config(const std::string& pooling) {
  ModelConfig cfg = tiny_config();
  cfg.n_classes = 3;
  cfg.pooling = pooling;
  cfg.pair_classifier = true;
  return cfg;
}

// The two-tower pair classifier: [u, v, u*v, u-v] -> Linear -> GELU ->
// Linear, every parameter (both towers' shared backbone and the head) by
// finite differences, both poolings.
void pair_classifier_gradients(const std::string& pooling) {
  const ModelConfig cfg = pair_config(pooling);
  SequenceModel<double> model(cfg);
  model.init(41);
  perturb(model.params(), 42, 0.1);
  ASSERT_TRUE(model.params().has("classifier.dense.weight"));
  EXPECT_EQ(model.params().entry("classifier.dense.weight").shape, (Shape{cfg.d_model, 4 * cfg.d_model}));
  EXPECT_EQ(model.params().entry("classifier.dense.bias").shape, (Shape{cfg.d_model}));
  EXPECT_EQ(model.params().entry("classifier.weight").shape, (Shape{cfg.n_classes, cfg.d_model}));
  const int P = 2, B = 2 * P, L = 5;
  std::mt19937 rng(43);
  // Rows 0, 1: first documents; rows 2, 3: second documents.
  std::vector<int32_t> ids(B * L), lengths = {5, 3, 2, 4}, tgt = {2, 0};
  for (auto& t : ids) t = int32_t(rng() % cfg.vocab_size);
  auto& ps = model.params();
  auto loss = [&] {
    model.forward(ids.data(), B, L, lengths.data());
    return model.loss(tgt.data());
  };
  ps.zero_grad();
  model.forward(ids.data(), B, L, lengths.data());
  ASSERT_EQ(model.logit_rows(), P);
  ASSERT_EQ(model.logits().size(), size_t(P) * cfg.n_classes);
  expect_logits_from_features(model);
  model.backward(tgt.data());
  for (const char* name : {"classifier.dense.weight", "classifier.dense.bias", "classifier.weight",
                           "backbone.embeddings.weight"}) {
    const auto& e = ps.entry(name);
    double norm = 0;
    for (size_t i = 0; i < e.numel; ++i) norm += std::fabs(ps.grad()[e.offset + i]);
    EXPECT_GT(norm, 0) << name << " gets no gradient";
  }
  test::check_param_gradients(ps, loss, 1e-6, 60, test::max_abs_grad(ps));
}

TEST(PairClassifier, MeanPoolingGradients) { pair_classifier_gradients("mean"); }
TEST(PairClassifier, LastTokenPoolingGradients) { pair_classifier_gradients("last"); }

// Each pair is scored on its own: permuting the pairs (moving rows p and
// P + p together) permutes the logits, a pair alone scores as in a batch,
// and the order inside a pair matters (the head sees u - v, not |u - v|).
TEST(PairClassifier, PairsAreScoredIndependently) {
  const ModelConfig cfg = pair_config("mean");
  SequenceModel<double> model(cfg);
  model.init(51);
  perturb(model.params(), 52, 0.1);
  const int P = 3, B = 2 * P, L = 6, C = cfg.n_classes;
  std::mt19937 rng(53);
  std::vector<int32_t> ids(B * L), lengths = {6, 2, 5, 3, 6, 1};
  for (auto& t : ids) t = int32_t(rng() % cfg.vocab_size);
  model.forward(ids.data(), B, L, lengths.data());
  const std::vector<double> logits = model.logits();

  // Rearranges the batch: pair p of the result is pair src[p], with its two
  // documents swapped where swap is set.
  auto rearranged = [&](const std::vector<int>& src, bool swap) {
    std::vector<int32_t> ids2(ids.size()), len2(B);
    for (int p = 0; p < P; ++p)
      for (int side = 0; side < 2; ++side) {
        const int from = (swap ? 1 - side : side) * P + src[size_t(p)], to = side * P + p;
        std::copy_n(ids.begin() + long(from) * L, L, ids2.begin() + long(to) * L);
        len2[size_t(to)] = lengths[size_t(from)];
      }
    model.forward(ids2.data(), B, L, len2.data());
    return model.logits();
  };
  const std::vector<int> perm = {2, 0, 1};
  const auto permuted = rearranged(perm, false);
  for (int p = 0; p < P; ++p)
    EXPECT_TRUE(test::all_close(permuted.data() + size_t(p) * C, logits.data() + size_t(perm[size_t(p)]) * C,
                                size_t(C), 1e-12))
        << "pair " << p;

  // Pair 1 alone: its first document, then its second.
  std::vector<int32_t> one(2 * L), one_len = {lengths[1], lengths[P + 1]};
  std::copy_n(ids.begin() + L, L, one.begin());
  std::copy_n(ids.begin() + long(P + 1) * L, L, one.begin() + L);
  model.forward(one.data(), 2, L, one_len.data());
  ASSERT_EQ(model.logit_rows(), 1);
  EXPECT_TRUE(test::all_close(model.logits().data(), logits.data() + C, size_t(C), 1e-12));

  const auto swapped = rearranged({0, 1, 2}, true);
  double diff = 0;
  for (size_t i = 0; i < logits.size(); ++i) diff = std::max(diff, std::fabs(swapped[i] - logits[i]));
  EXPECT_GT(diff, 1e-6) << "swapping the documents of each pair left the logits unchanged";

  EXPECT_THROW(model.forward(ids.data(), 5, L, lengths.data()), Error);
}

}  // namespace
}  // namespace mk
