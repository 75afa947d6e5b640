// LRA tasks: data from generators (cached once) and from files in the
// release layouts, padded classification batches with true lengths, an
// epoch sampler that resumes exactly, deterministic evaluation batches, the
// majority-class metric, retrieval pairs in one sequence (concat) or in two
// rows (two_tower), and config errors that name what is wrong.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "mambakit/tasks/confusion.h"
#include "mambakit/tasks/lra_task.h"

namespace mk::tasks {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class LraTaskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mambakit_lra_task_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  TaskSpec listops_spec(int seq_len = 64) const {
    TaskSpec s;
    s.name = "lra_listops";
    s.options["generate"] = json{{"n_train", 40}, {"n_val", 10}, {"n_test", 12}, {"min_length", 5},
                                 {"max_length", 60}, {"max_depth", 4}, {"seed", 3}};
    s.options["cache"] = (dir_ / "listops").string();
    s.data.seq_len = seq_len;
    s.seed = 7;
    return s;
  }
  fs::path dir_;
};

TEST_F(LraTaskTest, GeneratedListOpsBatchesArePaddedWithTrueLengths) {
  LraTask t("listops", listops_spec());
  EXPECT_EQ(t.name(), "lra_listops");
  EXPECT_EQ(t.num_classes(), 10);
  EXPECT_EQ(t.vocab_size(), 16);  // 15 ListOps symbols + padding
  EXPECT_EQ(t.pad_id(), 15);
  EXPECT_EQ(t.seq_len(), 64);
  EXPECT_EQ(t.split_data("train").examples.size(), 40u);
  EXPECT_EQ(t.split_data("val").examples.size(), 10u);
  EXPECT_EQ(t.split_data("test").examples.size(), 12u);
  EXPECT_TRUE(fs::exists(dir_ / "listops" / "basic_train.tsv"));
  EXPECT_TRUE(fs::exists(dir_ / "listops" / "generate.json"));

  const TokenBatch b = t.next_train_batch(8);
  ASSERT_EQ(b.batch, 8);
  ASSERT_EQ(b.len, 64);
  ASSERT_EQ(b.labels.size(), 8u);
  ASSERT_EQ(b.lengths.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_GE(b.labels[i], 0);
    EXPECT_LT(b.labels[i], 10);
    EXPECT_GT(b.lengths[i], 5);
    EXPECT_LE(b.lengths[i], 60);
    for (int p = 0; p < 64; ++p) {
      const int32_t id = b.ids[size_t(i) * 64 + p];
      if (p < b.lengths[i]) EXPECT_LT(id, 15) << "row " << i << " position " << p;
      else EXPECT_EQ(id, 15) << "row " << i << " position " << p;
    }
  }
  for (int32_t y : b.targets) EXPECT_EQ(y, -1);  // no per-position targets
  // The tokens are the reader's: decode gives the expression back without parentheses.
  const auto& e = t.split_data("train").examples[0];
  const std::string text = t.decode(std::vector<int32_t>(e.tokens.begin(), e.tokens.end()));
  EXPECT_EQ(t.encode(text), std::vector<int32_t>(e.tokens.begin(), e.tokens.end()));

  // A second task with the same options reads the cache instead of generating.
  const auto stamp = fs::last_write_time(dir_ / "listops" / "basic_train.tsv");
  LraTask again("listops", listops_spec());
  EXPECT_EQ(fs::last_write_time(dir_ / "listops" / "basic_train.tsv"), stamp);
  EXPECT_EQ(again.split_data("test").examples[3].tokens, t.split_data("test").examples[3].tokens);
}

TEST_F(LraTaskTest, TruncatesToSeqLen) {
  LraTask t("listops", listops_spec(16));
  for (const auto& b : t.eval_batches("val", 4, 0))
    for (int32_t n : b.lengths) EXPECT_LE(n, 16);
}

TEST_F(LraTaskTest, EpochSamplerVisitsEveryExampleOnceAndResumes) {
  LraTask t("listops", listops_spec());
  // 5 batches of 8 = one epoch of 40: every example once. Examples are
  // identified by (tokens, label).
  std::multiset<std::vector<int32_t>> seen;
  for (int k = 0; k < 5; ++k) {
    const TokenBatch b = t.next_train_batch(8);
    for (int i = 0; i < 8; ++i) {
      std::vector<int32_t> row(b.ids.begin() + i * 64, b.ids.begin() + i * 64 + b.lengths[i]);
      row.push_back(b.labels[i]);
      seen.insert(row);
    }
  }
  std::multiset<std::vector<int32_t>> all;
  for (const auto& e : t.split_data("train").examples) {
    std::vector<int32_t> row(e.tokens.begin(), e.tokens.end());
    row.push_back(e.label);
    all.insert(row);
  }
  EXPECT_EQ(seen, all);
  // Resume: the state after 3 more batches, then the same next batches.
  t.next_train_batch(8);
  const std::string state = t.sampler_state();
  const TokenBatch n1 = t.next_train_batch(8), n2 = t.next_train_batch(24);  // crosses an epoch
  LraTask r("listops", listops_spec());
  r.set_sampler_state(state);
  EXPECT_EQ(r.next_train_batch(8).ids, n1.ids);
  EXPECT_EQ(r.next_train_batch(24).ids, n2.ids);
  EXPECT_THROW(r.set_sampler_state("garbage"), Error);
}

TEST_F(LraTaskTest, EvalBatchesAreDeterministicAndMetricsCountTheMajority) {
  LraTask t("listops", listops_spec());
  const auto a = t.eval_batches("test", 5, 0), b = t.eval_batches("test", 5, 0);
  ASSERT_EQ(a.size(), 3u);  // 12 examples: 5 + 5 + 2
  EXPECT_EQ(a[2].batch, 2);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].ids, b[i].ids);
  EXPECT_EQ(t.eval_batches("test", 5, 7).back().batch, 2);  // 7 = 5 + 2
  EXPECT_THROW(t.eval_batches("dev", 5, 0), ConfigError);

  // Logits that always pick class 0: accuracy is the share of label 0;
  // majority is the share of the most frequent label.
  auto acc = t.metrics();
  std::map<int, int> counts;
  for (const auto& bb : a) {
    std::vector<float> logits(size_t(bb.batch) * 10, 0.f);
    for (int i = 0; i < bb.batch; ++i) logits[size_t(i) * 10] = 5.f, ++counts[bb.labels[i]];
    acc->add(bb, logits.data(), 10);
  }
  int top = 0;
  for (const auto& [l, c] : counts) top = std::max(top, c);
  const auto m = acc->result();
  EXPECT_NEAR(m.at("accuracy"), counts[0] / 12.0, 1e-12);
  EXPECT_NEAR(m.at("majority"), top / 12.0, 1e-12);
  EXPECT_GT(m.at("loss"), 0.0);
}

TEST_F(LraTaskTest, GeneratedPathfinderSplitsAsAskedAndKeepsLevels) {
  TaskSpec s;
  s.name = "lra_pathfinder";
  s.options["generate"] = json{{"n_train", 20}, {"n_val", 4}, {"n_test", 6}, {"size", 16}, {"seed", 2}};
  s.options["cache"] = (dir_ / "pf").string();
  s.options["levels"] = 2;
  s.data.seq_len = 256;
  LraTask t("pathfinder", s);
  EXPECT_EQ(t.split_data("train").examples.size(), 20u);
  EXPECT_EQ(t.split_data("val").examples.size(), 4u);
  EXPECT_EQ(t.split_data("test").examples.size(), 6u);
  EXPECT_EQ(t.num_classes(), 2);
  EXPECT_EQ(t.vocab_size(), 3);  // 2 levels + padding
  for (const auto& e : t.split_data("train").examples) {
    EXPECT_EQ(e.tokens.size(), 256u);
    for (uint8_t v : e.tokens) EXPECT_LT(v, 2);
  }
}

TEST_F(LraTaskTest, RetrievalConcatenatesThePairWithASeparator) {
  for (const char* stem : {"train", "eval", "test"}) {
    std::ofstream f(dir_ / (std::string("pairs.") + stem + ".tsv"));
    f << "1\ta\tb\tabcdef\txyz\n0\tc\td\tqq\trrrrrrrr\n";
  }
  TaskSpec s;
  s.name = "lra_retrieval";
  s.data.paths = {dir_.string()};
  s.data.seq_len = 4;
  LraTask t("retrieval", s);
  EXPECT_EQ(t.seq_len(), 9);      // 4 + separator + 4
  EXPECT_EQ(t.vocab_size(), 258);  // bytes, padding 256, separator 257
  const auto b = t.eval_batches("test", 2, 0)[0];
  const std::vector<int32_t> row0(b.ids.begin(), b.ids.begin() + 9);
  EXPECT_EQ(row0, (std::vector<int32_t>{'a', 'b', 'c', 'd', 257, 'x', 'y', 'z', 256}));
  EXPECT_EQ(b.lengths[0], 8);
  EXPECT_EQ(b.lengths[1], 7);  // "qq" + separator + "rrrr"
  EXPECT_EQ(b.labels, (std::vector<int32_t>{1, 0}));
  EXPECT_FALSE(t.pair_inputs());
  s.options["mode"] = "three_towers";
  EXPECT_THROW(LraTask("retrieval", s), ConfigError);
}

// Two towers: P pairs -> 2P rows (first documents, then second ones), each
// padded to seq_len with its own length, and P labels; metrics and the
// confusion matrix score one logits row per label.
TEST_F(LraTaskTest, RetrievalTwoTowerBatchesHoldEachDocumentInItsOwnRow) {
  for (const char* stem : {"train", "eval", "test"}) {
    std::ofstream f(dir_ / (std::string("pairs.") + stem + ".tsv"));
    f << "1\ta\tb\tabcdef\txyz\n0\tc\td\tqq\trrrrrrrr\n1\te\tf\ts\tt\n";
  }
  TaskSpec s;
  s.name = "lra_retrieval";
  s.data.paths = {dir_.string()};
  s.data.seq_len = 4;
  s.options["mode"] = "two_tower";
  LraTask t("retrieval", s);
  EXPECT_TRUE(t.pair_inputs());
  EXPECT_EQ(t.seq_len(), 4);       // one document per row
  EXPECT_EQ(t.vocab_size(), 257);  // bytes and padding, no separator
  EXPECT_EQ(t.train_tokens(), 3.0 * 2 * 4);
  const auto batches = t.eval_batches("test", 2, 0);
  ASSERT_EQ(batches.size(), 2u);  // 3 pairs: 2 + 1
  const auto& b = batches[0];
  ASSERT_EQ(b.batch, 4);
  ASSERT_EQ(b.len, 4);
  auto row = [&](int r) { return std::vector<int32_t>(b.ids.begin() + r * 4, b.ids.begin() + (r + 1) * 4); };
  EXPECT_EQ(row(0), (std::vector<int32_t>{'a', 'b', 'c', 'd'}));
  EXPECT_EQ(row(1), (std::vector<int32_t>{'q', 'q', 256, 256}));
  EXPECT_EQ(row(2), (std::vector<int32_t>{'x', 'y', 'z', 256}));
  EXPECT_EQ(row(3), (std::vector<int32_t>{'r', 'r', 'r', 'r'}));
  EXPECT_EQ(b.lengths, (std::vector<int32_t>{4, 2, 3, 4}));
  EXPECT_EQ(b.labels, (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(b.targets.size(), b.ids.size());
  EXPECT_EQ(batches[1].batch, 2);
  EXPECT_EQ(batches[1].labels.size(), 1u);

  const TokenBatch tb = t.next_train_batch(3);
  EXPECT_EQ(tb.batch, 6);
  EXPECT_EQ(tb.labels.size(), 3u);
  EXPECT_EQ(tb.lengths.size(), 6u);

  // Logits for the P pairs only (predicting class 1 each time).
  auto acc = t.metrics();
  ConfusionMatrix cm(2);
  for (const auto& bb : batches) {
    std::vector<float> logits(bb.labels.size() * 2, 0.f);
    for (size_t i = 0; i < bb.labels.size(); ++i) logits[i * 2 + 1] = 3.f;
    acc->add(bb, logits.data(), 2);
    cm.add(bb, logits.data(), 2);
  }
  EXPECT_NEAR(acc->result().at("accuracy"), 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(acc->result().at("majority"), 2.0 / 3.0, 1e-12);
  EXPECT_EQ(cm.total(), 3);
  EXPECT_EQ(cm.count(1, 1), 2);
  EXPECT_EQ(cm.count(0, 1), 1);
}

TEST_F(LraTaskTest, ConfigMistakesAreReported) {
  TaskSpec s = listops_spec();
  s.options["poolin"] = "mean";
  s.where["poolin"] = "x.yaml:7";
  try {
    LraTask("listops", s);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("x.yaml:7"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("pooling"), std::string::npos) << e.what();
  }
  TaskSpec none;
  none.name = "lra_listops";
  none.data.seq_len = 32;
  EXPECT_THROW(LraTask("listops", none), ConfigError);  // neither data.path nor generate
  TaskSpec g = listops_spec();
  g.options["generate"]["n_trian"] = 3;
  EXPECT_THROW(LraTask("listops", g), ConfigError);
  TaskSpec p = listops_spec();
  p.options["pooling"] = "max";
  EXPECT_THROW(LraTask("listops", p), ConfigError);
  TaskSpec missing;
  missing.name = "lra_text";
  missing.data.paths = {(dir_ / "nowhere").string()};
  missing.data.seq_len = 32;
  EXPECT_THROW(LraTask("text", missing), Error);
  // The registry knows the tasks.
  TaskSpec viaRegistry = listops_spec();
  EXPECT_EQ(make_task(viaRegistry)->name(), "lra_listops");
}

TEST_F(LraTaskTest, FashionMnistWhenInstalled) {
  if (!fs::exists(std::string(data::lra::kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  TaskSpec s;
  s.name = "lra_image";
  s.data.paths = {data::lra::kFashionMnistDir};
  s.data.seq_len = 784;
  s.options["levels"] = 16;
  s.options["max_train"] = 100;
  s.options["max_eval"] = 50;
  LraTask t("image", s);
  EXPECT_EQ(t.num_classes(), 10);
  EXPECT_EQ(t.vocab_size(), 17);
  EXPECT_EQ(t.split_data("train").examples.size(), 100u);
  EXPECT_EQ(t.split_data("test").examples.size(), 50u);
  const auto b = t.next_train_batch(3);
  EXPECT_EQ(b.len, 784);
  for (int32_t n : b.lengths) EXPECT_EQ(n, 784);
  for (int32_t id : b.ids) EXPECT_LT(id, 16);
}

}  // namespace
}  // namespace mk::tasks
