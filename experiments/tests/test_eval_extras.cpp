// `mambakit eval` extras on a tiny trained language run: the perplexity
// family with strided windows and bootstrap intervals (consistent
// conversions, intervals bracketing the estimate), generation quality from
// held-out prompts, zero-shot multiple choice, and the merge into
// summary.json.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "mambakit/experiments/evaluate.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/io/atomic_file.h"
#include "mambakit/io/checkpoint.h"

namespace mk::exp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class EvalExtras : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("mambakit_eval_extras_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    {
      std::ofstream f(dir_ / "text.txt");
      for (int i = 0; i < 400; ++i) f << "In the beginning " << i % 7 << " the word was with light.\n";
    }
    const std::string yaml = "model:\n  mixer: mamba\n  d_model: 16\n  n_layer: 1\n  d_state: 4\n"
                             "task:\n  name: language\n"
                             "data:\n  path: " + (dir_ / "text.txt").string() + "\n  seq_len: 32\n"
                             "train:\n  steps: 40\n  batch_size: 8\n  lr: 1.0e-2\n"
                             "eval:\n  max_sequences: 8\n"
                             "generate:\n  temperature: 0.8\n"
                             "output:\n  dir: " + (dir_ / "run").string() + "\n  plot: false\n";
    Trainer t(parse_config(yaml, "extras.yaml"));
    t.run();
    std::ofstream mc(dir_ / "mc.jsonl");
    mc << R"({"context": "In the beginning", "choices": ["the word was with light.", "zq xv"], "gold": 0})" << "\n"
       << R"({"context": "the word was", "choices": ["qqqq", "with light."], "gold": 1})" << "\n";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string run() { return (dir_ / "run").string(); }
  static fs::path dir_;
};
fs::path EvalExtras::dir_;

TEST_F(EvalExtras, PerplexityFamilyWithStrideAndBootstrap) {
  EvalOptions o;
  o.metrics = {"nll", "ppl", "bpb", "bits"};
  o.stride = 16;
  o.bootstrap = 300;
  o.max_sequences = 0;
  const json r = evaluate_run_full(run(), o);
  const double nll = r["val_nll"];
  EXPECT_NEAR(double(r["val_ppl"]), std::exp(nll), 1e-9);
  EXPECT_NEAR(double(r["val_bpb"]), nll / std::log(2.0), 1e-9);
  EXPECT_NEAR(double(r["val_bits"]), nll / std::log(2.0), 1e-9);
  EXPECT_LT(nll, std::log(256.0));  // it learned something
  for (const char* m : {"val_nll", "val_ppl", "val_bpb"}) {
    const auto ci = r[std::string(m) + "_ci"];
    EXPECT_LE(double(ci[0]), double(r[m])) << m;
    EXPECT_GE(double(ci[1]), double(r[m])) << m;
  }
  EXPECT_EQ(r["perplexity"]["stride"], 16);
  EXPECT_EQ(r["perplexity"]["window"], 32);
  // Disjoint windows (stride = window) give the task evaluator's loss on the same windows.
  EvalOptions d;
  d.metrics = {"nll", "loss"};
  d.max_sequences = 8;
  const json r2 = evaluate_run_full(run(), d);
  EXPECT_NEAR(double(r2["val_nll"]), double(r2["val_loss"]), 1e-5);
  const json s = json::parse(read_text_file(run() + "/summary.json"));
  EXPECT_TRUE(s.contains("steps"));
  EXPECT_TRUE(s["evaluation"]["val"].contains("val_nll_ci"));
  // A unit metric of another modality is a config error.
  EvalOptions bad;
  bad.metrics = {"bits_per_base"};
  EXPECT_THROW(evaluate_run_full(run(), bad), ConfigError);
}

TEST_F(EvalExtras, GenerationQualityAndZeroShotLandInSummary) {
  EvalOptions o;
  o.generate = 3;
  o.prompt_tokens = 8;
  o.gen_tokens = 20;
  o.judge = run();
  o.mc = (dir_ / "mc.jsonl").string();
  const json r = evaluate_run_full(run(), o);
  const json& g = r["generation"];
  EXPECT_EQ(g["samples"], 3);
  EXPECT_EQ(g["tokens"], 20);
  EXPECT_DOUBLE_EQ(double(g["temperature"]), 0.8);  // from the run's generate section
  for (const char* k : {"distinct_1", "distinct_2", "distinct_3", "rep_4", "self_bleu", "gen_ppl"}) {
    EXPECT_TRUE(g["generated"].contains(k)) << k;
    EXPECT_TRUE(g["reference"].contains(k)) << k;
  }
  EXPECT_GT(double(g["generated"]["gen_ppl"]), 1.0);
  EXPECT_EQ(r["zero_shot"]["n"], 2);
  const double acc = r["zero_shot"]["acc"];
  EXPECT_TRUE(acc == 0 || acc == 0.5 || acc == 1) << acc;
  const json s = json::parse(read_text_file(run() + "/summary.json"));
  EXPECT_EQ(s["generation"]["samples"], 3);
  EXPECT_TRUE(s["zero_shot"].contains("mc"));
  // Given a classifier checkpoint: IS, mIS, AM and FID of the samples.
  ModelConfig cc;
  cc.d_model = 8;
  cc.n_layer = 1;
  cc.d_state = 4;
  cc.n_classes = 3;
  SequenceModel<float> clf(cc);
  clf.init(2);
  save_model((dir_ / "clf").string(), clf);
  EvalOptions c = o;
  c.mc.clear();
  c.judge.clear();
  c.classifier = (dir_ / "clf").string();
  const json k = evaluate_run_full(run(), c)["generation"]["classifier"];
  EXPECT_GE(double(k["is"]), 1.0);
  EXPECT_LE(double(k["is"]), 3.0 + 1e-9);  // at most the number of classes
  EXPECT_GE(double(k["mis"]), 1.0);
  EXPECT_GE(double(k["fid"]), 0.0);
  EXPECT_TRUE(std::isfinite(double(k["fid"])));
  EXPECT_TRUE(std::isfinite(double(k["am"])));
  // FID compares the classifier's penultimate features (d_model wide), not its logits.
  EXPECT_NE(k["features"].get<std::string>().find("penultimate"), std::string::npos) << k["features"];
  EXPECT_NE(k["features"].get<std::string>().find("d_model 8"), std::string::npos) << k["features"];
  // A two-tower pair classifier cannot score single samples.
  cc.pair_classifier = true;
  SequenceModel<float> pair_clf(cc);
  pair_clf.init(3);
  save_model((dir_ / "pair_clf").string(), pair_clf);
  c.classifier = (dir_ / "pair_clf").string();
  try {
    evaluate_run_full(run(), c);
    ADD_FAILURE() << "a pair classifier was accepted as --classifier";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pairs"), std::string::npos) << e.what();
  }
  EvalOptions one;
  one.generate = 1;
  EXPECT_THROW(evaluate_run_full(run(), one), ConfigError);
}

}  // namespace
}  // namespace mk::exp
