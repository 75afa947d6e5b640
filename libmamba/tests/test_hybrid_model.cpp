// Hybrid SequenceModels mixing every mixer kind: whole-model finite-
// difference gradients in double, recurrent generation against the full
// forward, parameter naming, config.json round trip of the non-Mamba
// options, and the bidirectional model's refusal to step.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>

#include "mambakit/error.h"
#include "mambakit/io/model_io.h"
#include "mambakit/models/sequence_model.h"
#include "mixer_test_util.h"
#include "test_util.h"

namespace mk {
namespace {

ModelConfig hybrid_config() {
  ModelConfig c;
  c.d_model = 8;
  c.n_layer = 5;
  c.vocab_size = 11;
  c.d_state = 4;
  c.n_heads = 2;
  c.s4_d_state = 8;
  c.mlp_hidden = 12;
  c.mixers = {"mamba", "attention", "s4d", "mlp", "s4"};
  return c;
}

// Larger dt in every SSM (Mamba's dt bias, S4/S4D's log_dt), so that their
// A, B and dt parameters move the loss well above round-off.
template <typename T>
void strengthen_dt(ParamStore<T>& ps) {
  auto u = test::uniform<double>(ps.size(), 5, 0.0, 1.0);
  for (const auto& e : ps.entries()) {
    const bool mamba = e.name.find("dt_proj.bias") != std::string::npos;
    const bool s4 = e.name.find("log_dt") != std::string::npos;
    for (size_t i = 0; mamba || s4 ? i < e.numel : false; ++i)
      ps.data()[e.offset + i] = T(mamba ? u[e.offset + i] : std::log(0.05) + 2.3 * u[e.offset + i]);
  }
}

TEST(HybridModel, WholeModelGradientsMatchFiniteDifferences) {
  ModelConfig cfg = hybrid_config();
  SequenceModel<double> model(cfg);
  model.init(7);
  test::perturb_params(model.params(), 8, 0.05);
  strengthen_dt(model.params());
  const int B = 2, L = 6;
  std::mt19937 rng(9);
  std::vector<int32_t> ids(B * L), tgt(B * L);
  for (auto& t : ids) t = int32_t(rng() % cfg.vocab_size);
  for (auto& t : tgt) t = int32_t(rng() % cfg.vocab_size);
  tgt[4] = -1;
  auto& ps = model.params();
  auto loss = [&] {
    model.forward(ids.data(), B, L);
    return model.loss(tgt.data());
  };
  ps.zero_grad();
  model.forward(ids.data(), B, L);
  model.backward(tgt.data());
  test::check_param_gradients(ps, loss, 1e-6, 40, test::max_abs_grad(ps));
}

TEST(HybridModel, StepReproducesFullForwardLogits) {
  ModelConfig cfg = hybrid_config();
  cfg.d_model = 16;
  cfg.vocab_size = 64;
  SequenceModel<float> model(cfg);
  model.init(11);
  test::perturb_params(model.params(), 12, 0.02);
  const int B = 2, L = 48, V = cfg.vocab_size;
  std::mt19937 rng(13);
  std::vector<int32_t> ids(B * L);
  for (auto& t : ids) t = int32_t(rng() % V);
  model.forward(ids.data(), B, L);
  std::vector<float> full = model.logits();
  std::vector<float> stepped = test::stepped_logits(model, ids, B, L);
  EXPECT_TRUE(test::all_close(stepped, full, 1e-4));
}

TEST(HybridModel, ParameterNamesPerMixer) {
  SequenceModel<float> model(hybrid_config());
  const auto& ps = model.params();
  EXPECT_TRUE(ps.has("backbone.layers.0.mixer.in_proj.weight"));
  EXPECT_TRUE(ps.has("backbone.layers.1.mixer.q_proj.weight"));
  EXPECT_TRUE(ps.has("backbone.layers.1.mixer.o_proj.weight"));
  EXPECT_TRUE(ps.has("backbone.layers.2.mixer.log_dt"));
  EXPECT_TRUE(ps.has("backbone.layers.2.mixer.output_linear.weight"));
  EXPECT_TRUE(ps.has("backbone.layers.3.mixer.gate_proj.weight"));
  EXPECT_TRUE(ps.has("backbone.layers.4.mixer.P"));
  EXPECT_TRUE(ps.has("backbone.layers.4.norm.weight"));
  EXPECT_FALSE(ps.has("backbone.layers.3.mixer.A_log"));
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(HybridModel, ConfigJsonCarriesOnlyNonDefaultMixerOptions) {
  const std::string path = "/tmp/mk_test_hybrid_" + std::to_string(getpid()) + "_config.json";
  ModelConfig cfg = hybrid_config();
  cfg.s4_d_state = 64;  // the default: must not be written
  write_model_config(path, cfg);
  std::string text = slurp(path);
  EXPECT_NE(text.find("mambakit_n_heads"), std::string::npos);
  EXPECT_NE(text.find("mambakit_mlp_hidden"), std::string::npos);
  EXPECT_EQ(text.find("mambakit_s4_d_state"), std::string::npos);
  EXPECT_EQ(text.find("mambakit_bidirectional"), std::string::npos);
  EXPECT_EQ(text.find("mambakit_rope_theta"), std::string::npos);

  cfg.s4_d_state = 16;
  cfg.s4d_init = "inv";
  cfg.bidirectional = true;
  cfg.rope_theta = 500000.0;
  write_model_config(path, cfg);
  const ModelConfig back = read_model_config(path);
  EXPECT_EQ(back.mixers, cfg.mixers);
  EXPECT_EQ(back.n_heads, 2);
  EXPECT_EQ(back.mlp_hidden, 12);
  EXPECT_EQ(back.s4_d_state, 16);
  EXPECT_EQ(back.s4d_init, "inv");
  EXPECT_TRUE(back.bidirectional);
  EXPECT_DOUBLE_EQ(back.rope_theta, 500000.0);

  // A pure Mamba model writes none of them, even when set.
  ModelConfig mamba;
  mamba.n_heads = 3;
  write_model_config(path, mamba);
  EXPECT_EQ(slurp(path).find("mambakit_"), std::string::npos);
  std::remove(path.c_str());
}

TEST(HybridModel, ValidateRejectsBadMixerOptions) {
  ModelConfig c = hybrid_config();
  c.s4_d_state = 7;
  EXPECT_THROW(c.validate(), Error);
  c = hybrid_config();
  c.s4d_init = "legs";
  EXPECT_THROW(c.validate(), Error);
  c = hybrid_config();
  c.mlp_hidden = -1;
  EXPECT_THROW(c.validate(), Error);
  c = hybrid_config();
  c.mixers = {"mamba", "transformer"};
  EXPECT_THROW(SequenceModel<float>{c}, Error);
}

TEST(HybridModel, BidirectionalModelTrainsButDoesNotStep) {
  ModelConfig cfg = hybrid_config();
  cfg.mixers = {"s4d", "mlp", "s4"};
  cfg.n_layer = 3;
  cfg.bidirectional = true;
  SequenceModel<float> model(cfg);
  model.init(3);
  std::vector<int32_t> ids = {1, 2, 3, 4};
  model.forward(ids.data(), 1, 4);
  EXPECT_GT(model.backward(ids.data()), 0.0);
  auto st = model.make_state(1);
  std::vector<float> logits(cfg.vocab_size);
  EXPECT_THROW(model.step(ids.data(), st, logits.data()), Error);
}

}  // namespace
}  // namespace mk
