// The synthetic-task experiments through the runner: the shipped configs
// load and build their task and model, a short run writes a run directory
// that `mambakit eval` (evaluate_run) scores at the extrapolation lengths,
// and `bench mixers` measures every mixer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "mambakit/experiments/bench_mixers.h"
#include "mambakit/experiments/config.h"
#include "mambakit/experiments/trainer.h"

namespace mk::exp {
namespace {

namespace fs = std::filesystem;

const fs::path kExperiments = fs::path(__FILE__).parent_path().parent_path();

TEST(SyntheticRuns, ShippedConfigsBuildTheirTaskAndModel) {
  for (const char* name : {"selective_copying_mamba", "selective_copying_s4d", "induction_heads_mamba",
                           "induction_heads_attention", "induction_heads_attention_only"}) {
    SCOPED_TRACE(name);
    RunConfig cfg = load_config((kExperiments / (std::string(name) + ".yaml")).string());
    Trainer t(cfg);
    EXPECT_EQ(t.task().seq_len(), 256);
    EXPECT_EQ(t.task().vocab_size(), 16);
    EXPECT_EQ(t.model().config().d_model, 64);
    EXPECT_EQ(cfg.output.dir, "runs/" + std::string(name));
  }
  // Mamba and its baseline train with the same budget.
  const auto a = load_config((kExperiments / "selective_copying_mamba.yaml").string());
  const auto b = load_config((kExperiments / "selective_copying_s4d.yaml").string());
  EXPECT_EQ(a.train.steps, b.train.steps);
  EXPECT_EQ(a.train.batch_size, b.train.batch_size);
  EXPECT_EQ(a.model.n_layer, b.model.n_layer);
  const auto c = load_config((kExperiments / "induction_heads_mamba.yaml").string());
  const auto d = load_config((kExperiments / "induction_heads_attention.yaml").string());
  EXPECT_EQ(c.train.steps, d.train.steps);
  EXPECT_EQ(c.train.batch_size, d.train.batch_size);
}

TEST(SyntheticRuns, EvalReportsAccuracyAtEveryExtrapolationLength) {
  const fs::path dir = fs::temp_directory_path() / ("mambakit_synth_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const std::string yaml = "model:\n  mixer: mamba\n  d_model: 16\n  n_layer: 1\n  d_state: 4\n"
                           "task:\n  name: induction_heads\n  vocab: 6\n  eval_lengths: [48]\n  val_size: 8\n"
                           "data:\n  seq_len: 16\n"
                           "train:\n  steps: 3\n  batch_size: 4\n  lr: 1.0e-3\n  warmup: 1\n"
                           "eval:\n  metrics: [accuracy, loss]\n"
                           "output:\n  dir: " + (dir / "run").string() + "\n  log_every: 1\n  plot: false\n";
  RunConfig cfg = parse_config(yaml, "ih.yaml");
  Trainer t(cfg);
  const auto summary = t.run();
  EXPECT_TRUE(summary.at("final").contains("val_accuracy")) << summary.dump();

  const auto r = evaluate_run((dir / "run").string(), "extrapolation", {"accuracy_L16", "accuracy_L48", "accuracy"},
                              "latest", -1, 0);
  for (const char* k : {"extrapolation_accuracy_L16", "extrapolation_accuracy_L48", "extrapolation_accuracy"}) {
    ASSERT_TRUE(r.contains(k)) << r.dump();
    const double v = r.at(k).get<double>();
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
  }
  // 8 sequences at each length, one scored token each: accuracies are eighths,
  // and the overall one is their mean.
  const double a16 = r.at("extrapolation_accuracy_L16"), a48 = r.at("extrapolation_accuracy_L48");
  EXPECT_DOUBLE_EQ(a16 * 8, std::round(a16 * 8));
  EXPECT_NEAR(r.at("extrapolation_accuracy").get<double>(), (a16 + a48) / 2, 1e-12);
  // The per-length split is the same examples as that part of extrapolation.
  const auto v48 = evaluate_run((dir / "run").string(), "val_L48", {"accuracy"}, "latest", -1, 0);
  EXPECT_DOUBLE_EQ(v48.at("val_L48_accuracy").get<double>(), a48);
  fs::remove_all(dir);
}

TEST(BenchMixers, MeasuresEveryMixerAndLengthWithRatiosToMamba) {
  MixerBenchConfig c;
  c.d_model = 32;
  c.lengths = {256, 2048};
  c.gen_contexts = {32};
  c.gen_tokens = 4;
  c.min_seconds = 0.001;
  c.max_repeats = 2;
  const auto r = run_mixer_bench(c);
  ASSERT_EQ(r.costs.size(), 8u);
  for (const auto& k : r.costs) {
    SCOPED_TRACE(k.mixer + " L=" + std::to_string(k.len));
    EXPECT_GT(k.seconds, 0);
    EXPECT_NEAR(k.us_per_token, 1e6 * k.seconds / k.len, 1e-9 * k.us_per_token);
  }
  ASSERT_EQ(r.gen.size(), 2u);  // mamba and attention
  EXPECT_EQ(r.gen[0].mixer, "mamba");
  EXPECT_EQ(r.gen[1].mixer, "attention");
  for (const auto& g : r.gen) EXPECT_GT(g.tokens_per_s, 0);

  const std::string text = r.to_text();
  EXPECT_NE(text.find("1.00x"), std::string::npos) << text;
  const auto j = r.to_json();
  EXPECT_EQ(j.at("forward_backward").size(), 8u);
  EXPECT_EQ(j.at("d_model"), 32);

  if (!r.memory_measured) GTEST_SKIP() << "peak RSS cannot be reset here (/proc/self/clear_refs)";
  // Mamba saves O(L) activations (about 14 x L x 2 d_model floats): the
  // measured peak must grow with L and be of that order.
  const MixerCost *m256 = nullptr, *m2048 = nullptr;
  for (const auto& k : r.costs)
    if (k.mixer == "mamba") (k.len == 256 ? m256 : m2048) = &k;
  ASSERT_TRUE(m256 && m2048);
  EXPECT_GT(m2048->peak_bytes, 3 * m256->peak_bytes) << m256->peak_bytes << " vs " << m2048->peak_bytes;
  const double floats_per_token = m2048->bytes_per_token / 4;
  EXPECT_GT(floats_per_token, 4 * 64) << "less than a few activations of d_inner 64 per token";
  EXPECT_LT(floats_per_token, 100 * 64) << "far more than the saved activations";

  MixerBenchConfig bad = c;
  bad.mixers = {"mamba", "lstm"};
  EXPECT_THROW(run_mixer_bench(bad), Error);
}

}  // namespace
}  // namespace mk::exp
