// evaluate_task (task metrics from logits, in double) against evaluate_nll
// (the model's own loss): two independent paths to the same validation loss.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "mambakit/evaluation/perplexity.h"
#include "mambakit/tasks/language_task.h"

namespace mk::eval {
namespace {

namespace fs = std::filesystem;

TEST(TaskEval, LanguageLossMatchesTheModelsOwnLoss) {
  const fs::path p = fs::temp_directory_path() / ("mambakit_eval_" + std::to_string(getpid()) + ".txt");
  {
    std::ofstream f(p);
    for (int i = 0; i < 300; ++i) f << "the selective scan remembers what matters " << i << "\n";
  }
  tasks::TaskSpec spec;
  spec.name = "language";
  spec.data.paths = {p.string()};
  spec.data.seq_len = 24;
  spec.data.split = {0.8, 0.2};
  tasks::LanguageTask task(spec);
  ModelConfig cfg;
  cfg.d_model = 16;
  cfg.n_layer = 1;
  SequenceModel<float> model(cfg);
  model.init(5);

  const auto m = evaluate_task(model, task, "val", {}, 3, 10);
  const NllResult ref = evaluate_nll(model, task.split_tokens("val"), 24, 3, 10);
  EXPECT_NEAR(m.at("loss"), ref.nll, 1e-5);
  EXPECT_NEAR(m.at("bpb"), ref.bits(), 1e-5);
  EXPECT_NEAR(m.at("ppl"), ref.perplexity(), 1e-4);
  EXPECT_GE(m.at("accuracy"), 0.0);
  EXPECT_LE(m.at("accuracy"), 1.0);
  // Only what was asked for; unknown names are config errors.
  EXPECT_EQ(evaluate_task(model, task, "val", {"bpb"}, 3, 2).size(), 1u);
  EXPECT_THROW(evaluate_task(model, task, "val", {"bleu"}, 3, 2), tasks::ConfigError);
  fs::remove(p);
}

}  // namespace
}  // namespace mk::eval
