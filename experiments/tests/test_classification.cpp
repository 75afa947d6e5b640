// Sequence classification through the runner: a task that reports
// num_classes() gets a classifier head, its padded batches are pooled over
// their true lengths only, and training learns the rule.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <random>

#include "mambakit/experiments/config.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/tasks/task.h"

namespace mk::exp {
namespace {

using tasks::TokenBatch;

// Label = the first token (0..2) of a sequence of random tokens 0..3 with a
// random length in [len/2, len], padded with token 3.
class FirstTokenTask : public tasks::Task {
 public:
  explicit FirstTokenTask(const tasks::TaskSpec& s) : len_(s.data.seq_len), rng_(s.seed) {}
  std::string name() const override { return "first_token"; }
  int vocab_size() const override { return 4; }
  int seq_len() const override { return len_; }
  int num_classes() const override { return 3; }
  std::string pooling() const override { return "mean"; }
  TokenBatch next_train_batch(int batch) override { return make(batch, rng_); }
  std::string sampler_state() const override { return ""; }
  void set_sampler_state(const std::string&) override {}
  std::vector<std::string> splits() const override { return {"train", "val"}; }
  std::vector<TokenBatch> eval_batches(const std::string&, int batch, size_t) const override {
    std::mt19937_64 rng(99);
    std::vector<TokenBatch> out;
    for (int i = 0; i < 4; ++i) out.push_back(make(batch, rng));
    return out;
  }
  std::vector<std::string> metric_names() const override { return {"loss", "accuracy"}; }
  std::vector<std::string> default_metrics() const override { return {"accuracy", "loss"}; }
  std::unique_ptr<tasks::MetricAccumulator> metrics() const override {
    return std::make_unique<tasks::TokenMetrics>();
  }
  std::vector<int32_t> encode(const std::string&) const override { return {}; }
  std::string decode(const std::vector<int32_t>&) const override { return ""; }

 private:
  TokenBatch make(int batch, std::mt19937_64& rng) const {
    TokenBatch b;
    b.batch = batch;
    b.len = len_;
    b.ids.assign(size_t(batch) * len_, 3);
    b.targets.assign(b.ids.size(), -1);
    for (int i = 0; i < batch; ++i) {
      const int n = len_ / 2 + int(rng() % (len_ / 2 + 1));
      for (int t = 0; t < n; ++t) b.ids[size_t(i) * len_ + t] = int32_t(rng() % 4);
      b.ids[size_t(i) * len_] = int32_t(rng() % 3);
      b.labels.push_back(b.ids[size_t(i) * len_]);
      b.lengths.push_back(n);
    }
    return b;
  }
  int len_;
  mutable std::mt19937_64 rng_;
};

TEST(Classification, RunnerTrainsAClassifierHeadOnPaddedSequences) {
  tasks::register_task({"first_token", "test task", [](const tasks::TaskSpec& s) {
                          return std::unique_ptr<tasks::Task>(new FirstTokenTask(s));
                        }});
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("mambakit_classify_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const std::string yaml = "model:\n  mixer: mamba\n  d_model: 32\n  n_layer: 2\n  d_state: 8\n"
                           "task:\n  name: first_token\n"
                           "data:\n  seq_len: 24\n"
                           "train:\n  steps: 150\n  batch_size: 16\n  lr: 3.0e-3\n  min_lr: 3.0e-4\n"
                           "  warmup: 10\n  seed: 5\n"
                           "output:\n  dir: " + (dir / "run").string() + "\n  log_every: 1000\n";
  RunConfig cfg = parse_config(yaml, "classify.yaml");
  Trainer t(cfg);
  EXPECT_TRUE(t.model().is_classifier());
  EXPECT_EQ(t.model().config().n_classes, 3);
  const double before = t.evaluate("val").at("accuracy");
  for (int i = 0; i < 150; ++i) t.step();
  const double after = t.evaluate("val").at("accuracy");
  EXPECT_GT(after, 0.9) << "accuracy before " << before << ", after " << after;
  fs::remove_all(dir);
}

// The same rule read by a bidirectional Mamba (a second Mamba on the
// reversed sequence): it learns it too, and a next-token task refuses it.
TEST(Classification, BidirectionalMambaClassifiesAndNextTokenTasksRefuseIt) {
  tasks::register_task({"first_token", "test task", [](const tasks::TaskSpec& s) {
                          return std::unique_ptr<tasks::Task>(new FirstTokenTask(s));
                        }});
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("mambakit_classify_bi_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const std::string yaml = "model:\n  mixer: mamba\n  bidirectional: true\n  d_model: 32\n  n_layer: 2\n"
                           "  d_state: 8\ntask:\n  name: first_token\ndata:\n  seq_len: 24\n"
                           "train:\n  steps: 150\n  batch_size: 16\n  lr: 3.0e-3\n  min_lr: 3.0e-4\n"
                           "  warmup: 10\n  seed: 5\n"
                           "output:\n  dir: " + (dir / "run").string() + "\n  log_every: 1000\n";
  Trainer t(parse_config(yaml, "classify_bi.yaml"));
  EXPECT_TRUE(t.model().params().has("backbone.layers.0.mixer.reverse.in_proj.weight"));
  for (int i = 0; i < 150; ++i) t.step();
  EXPECT_GT(t.evaluate("val").at("accuracy"), 0.9);

  const std::string lm = "model:\n  mixer: mamba\n  bidirectional: true\n  d_model: 16\n  n_layer: 1\n"
                         "task:\n  name: selective_copying\ndata:\n  seq_len: 64\ntrain:\n  steps: 5\n  batch_size: 2\n  lr: 1.0e-3\n"
                         "output:\n  dir: " + (dir / "lm").string() + "\n";
  try {
    Trainer bad(parse_config(lm, "lm_bi.yaml"));
    ADD_FAILURE() << "a bidirectional next-token model was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.bidirectional"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("next token"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "lm" / "model.safetensors"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mk::exp
