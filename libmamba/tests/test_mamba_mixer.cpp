// MambaMixer and SequenceModel: finite-difference gradients in double for the
// layer and the whole model, and recurrent step() against the full forward.
#include <gtest/gtest.h>

#include <random>

#include "mambakit/layers/mamba_mixer.h"
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

}  // namespace
}  // namespace mk
