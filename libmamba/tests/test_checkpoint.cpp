// Model directories beyond the HF-compatible LM: a classifier, a hybrid
// model and a pair classifier round-trip through save_model/load_model
// with their heads and mixers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "mambakit/io/checkpoint.h"

namespace mk {
namespace {

TEST(Checkpoint, ClassifierAndHybridRoundTrip) {
  namespace fs = std::filesystem;
  const std::string dir = (fs::temp_directory_path() / ("mambakit_ckpt_" + std::to_string(getpid()))).string();
  ModelConfig cfg;
  cfg.d_model = 16;
  cfg.n_layer = 3;
  cfg.mixers = {"mamba", "s4d", "attention"};
  cfg.n_classes = 5;
  cfg.pooling = "last";
  SequenceModel<float> a(cfg);
  a.init(3);
  save_model(dir, a);
  auto b = load_model(dir);
  EXPECT_EQ(b->config().n_classes, 5);
  EXPECT_EQ(b->config().pooling, "last");
  EXPECT_EQ(b->config().mixers, cfg.mixers);
  ASSERT_EQ(a.num_params(), b->num_params());
  EXPECT_EQ(0, std::memcmp(a.params().data(), b->params().data(), a.num_params() * sizeof(float)));
  EXPECT_TRUE(b->params().has("classifier.weight"));
  fs::remove_all(dir);
}

TEST(Checkpoint, PairClassifierRoundTrip) {
  namespace fs = std::filesystem;
  const std::string dir = (fs::temp_directory_path() / ("mambakit_ckpt_pair_" + std::to_string(getpid()))).string();
  ModelConfig cfg;
  cfg.d_model = 16;
  cfg.n_layer = 1;
  cfg.n_classes = 2;
  cfg.pair_classifier = true;
  SequenceModel<float> a(cfg);
  a.init(5);
  save_model(dir, a);
  auto b = load_model(dir);
  EXPECT_TRUE(b->config().pair_classifier);
  ASSERT_EQ(a.num_params(), b->num_params());
  EXPECT_EQ(0, std::memcmp(a.params().data(), b->params().data(), a.num_params() * sizeof(float)));
  EXPECT_EQ(b->params().entry("classifier.dense.weight").shape, (Shape{16, 64}));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mk
