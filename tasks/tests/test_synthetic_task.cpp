// The synthetic tasks (selective copying, induction heads) as runner tasks:
// batches obey each task's definition, the sampler is deterministic and
// resumable, evaluation splits are fixed and have the lengths they name, and
// the metrics match a hand count on hand-made logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "mambakit/tasks/synthetic_task.h"
#include "mambakit/tasks/task.h"

namespace mk::tasks {
namespace {

TaskSpec spec(const std::string& name, int len = 64, uint64_t seed = 3) {
  TaskSpec s;
  s.name = name;
  s.data.seq_len = len;
  s.seed = seed;
  s.section_where = "x.yaml:7";
  s.options = nlohmann::json::object();
  return s;
}

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return std::string("config: ") + e.what();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(SyntheticTask, RegisteredByName) {
  for (const char* n : {"selective_copying", "induction_heads"}) {
    auto t = make_task(spec(n));
    EXPECT_EQ(t->name(), n);
    EXPECT_EQ(t->vocab_size(), 16);
    EXPECT_EQ(t->seq_len(), 64);
    EXPECT_EQ(t->num_classes(), 0);
  }
}

TEST(SyntheticTask, SelectiveCopyingBatchesRecallTheDataTokensInOrder) {
  auto s = spec("selective_copying", 48);
  s.options = {{"n_data", 5}, {"vocab", 10}};
  auto t = make_task(s);
  const auto b = t->next_train_batch(8);
  ASSERT_EQ(b.batch, 8);
  ASSERT_EQ(b.len, 48);
  ASSERT_EQ(b.ids.size(), 8u * 48);
  ASSERT_EQ(b.targets.size(), 8u * 48);
  for (int s = 0; s < 8; ++s) {
    const int32_t* ids = &b.ids[s * 48];
    const int32_t* tg = &b.targets[s * 48];
    std::vector<int32_t> data, scored;
    for (int i = 0; i < 48; ++i) {
      ASSERT_GE(ids[i], 0);
      ASSERT_LT(ids[i], 10);
      if (i < 48 - 5) {
        EXPECT_NE(ids[i], 9) << "marker inside the noise region";
        EXPECT_EQ(tg[i], -1) << "scored position inside the noise region";
        if (ids[i] != 0) data.push_back(ids[i]);
      } else {
        EXPECT_EQ(ids[i], 9) << "expected a marker at " << i;
        scored.push_back(tg[i]);
      }
    }
    EXPECT_EQ(data.size(), 5u);
    EXPECT_EQ(scored, data) << "targets must be the data tokens in order";
  }
}

TEST(SyntheticTask, InductionHeadsBatchesRecallTheTokenAfterTheTrigger) {
  auto t = make_task(spec("induction_heads", 40));
  const auto b = t->next_train_batch(16);
  for (int s = 0; s < 16; ++s) {
    const int32_t* ids = &b.ids[s * 40];
    const int32_t* tg = &b.targets[s * 40];
    for (int i = 0; i < 39; ++i) EXPECT_EQ(tg[i], -1);
    EXPECT_EQ(ids[39], 15);
    const auto first = std::find(ids, ids + 39, 15) - ids;
    ASSERT_LT(first, 38) << "the first trigger needs a token after it";
    EXPECT_EQ(std::count(ids, ids + 40, 15), 2);
    EXPECT_EQ(tg[39], ids[first + 1]);
    for (int i = 0; i < 40; ++i) EXPECT_GE(ids[i], 1);
  }
}

TEST(SyntheticTask, DeterministicPerSeedAndResumable) {
  auto a = make_task(spec("selective_copying", 64, 5));
  auto b = make_task(spec("selective_copying", 64, 5));
  auto c = make_task(spec("selective_copying", 64, 6));
  const auto a1 = a->next_train_batch(4);
  EXPECT_EQ(a1.ids, b->next_train_batch(4).ids);
  EXPECT_NE(a1.ids, c->next_train_batch(4).ids);

  // A sampler restored from a's state draws what a draws next.
  const std::string state = a->sampler_state();
  const auto a2 = a->next_train_batch(4);
  auto r = make_task(spec("selective_copying", 64, 99));
  r->set_sampler_state(state);
  const auto r2 = r->next_train_batch(4);
  EXPECT_EQ(r2.ids, a2.ids);
  EXPECT_EQ(r2.targets, a2.targets);
  EXPECT_NE(a2.ids, a1.ids);
  EXPECT_NE(error_of([&] { r->set_sampler_state("not a state"); }), "");
}

TEST(SyntheticTask, EvalSplitsAreFixedAndIndependentOfTheTrainingSeed) {
  auto a = make_task(spec("induction_heads", 32, 1));
  auto b = make_task(spec("induction_heads", 32, 2));
  a->next_train_batch(8);  // training draws do not move evaluation data
  const auto va = a->eval_batches("val", 10, 0);
  const auto vb = b->eval_batches("val", 10, 0);
  ASSERT_EQ(va.size(), vb.size());
  size_t n = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    EXPECT_EQ(va[i].ids, vb[i].ids);
    n += va[i].batch;
  }
  EXPECT_EQ(n, 512u);  // val_size default
  EXPECT_EQ(va[0].ids, a->eval_batches("val", 10, 0)[0].ids);
  EXPECT_NE(va[0].ids, a->eval_batches("test", 10, 0)[0].ids);

  const auto capped = a->eval_batches("val", 4, 10);
  ASSERT_EQ(capped.size(), 3u);
  EXPECT_EQ(capped[2].batch, 2);
  EXPECT_TRUE(std::equal(capped[0].ids.begin(), capped[0].ids.end(), va[0].ids.begin()));
}

TEST(SyntheticTask, ExtrapolationSplitsHaveTheirLengths) {
  auto s = spec("induction_heads", 64);
  s.options = {{"eval_lengths", {256, 1024}}, {"val_size", 6}};
  auto t = make_task(s);
  const auto splits = t->splits();
  for (const char* name : {"val", "test", "val_L256", "val_L1024", "test_L256", "test_L1024", "extrapolation",
                           "test_extrapolation"})
    EXPECT_NE(std::find(splits.begin(), splits.end(), name), splits.end()) << name;

  for (const auto& b : t->eval_batches("val_L1024", 4, 0)) {
    EXPECT_EQ(b.len, 1024);
    EXPECT_EQ(b.ids.size(), size_t(b.batch) * 1024);
    EXPECT_EQ(b.targets[size_t(b.batch) * 1024 - 1] >= 1, true);
  }
  // extrapolation = val at 64, then each eval length, the same examples as
  // the per-length splits.
  const auto all = t->eval_batches("extrapolation", 4, 0);
  std::vector<int> lens;
  for (const auto& b : all) lens.push_back(b.len);
  EXPECT_EQ(lens, (std::vector<int>{64, 64, 256, 256, 1024, 1024}));
  EXPECT_EQ(all[4].ids, t->eval_batches("val_L1024", 4, 0)[0].ids);
  EXPECT_EQ(all[0].ids, t->eval_batches("val", 4, 0)[0].ids);
  // The test side: the same lengths, other examples.
  const auto test_all = t->eval_batches("test_extrapolation", 4, 0);
  ASSERT_EQ(test_all.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(test_all[i].len, all[i].len);
    EXPECT_NE(test_all[i].ids, all[i].ids);
  }
  EXPECT_EQ(test_all[4].ids, t->eval_batches("test_L1024", 4, 0)[0].ids);
  EXPECT_EQ(test_all[0].ids, t->eval_batches("test", 4, 0)[0].ids);

  const auto names = t->metric_names();
  for (const char* m : {"accuracy", "loss", "seq_accuracy", "accuracy_L64", "accuracy_L256", "accuracy_L1024"})
    EXPECT_NE(std::find(names.begin(), names.end(), m), names.end()) << m;

  const std::string err = error_of([&] { t->eval_batches("val_L512", 4, 0); });
  EXPECT_NE(err.find("config: "), std::string::npos) << err;
  EXPECT_NE(err.find("val_L512"), std::string::npos) << err;
  // Without eval_lengths there is no extrapolation split.
  EXPECT_NE(error_of([] { make_task(spec("induction_heads"))->eval_batches("extrapolation", 4, 0); }), "");
}

// A batch of 2 sequences of length len with the given targets, and logits
// that put 5.0 on `predict[i]` at every position i (0 elsewhere).
struct HandMade {
  TokenBatch b;
  std::vector<float> logits;
};
HandMade hand_made(int len, const std::vector<int>& targets, const std::vector<int>& predict, int vocab) {
  HandMade h;
  h.b.batch = int(targets.size()) / len;
  h.b.len = len;
  h.b.ids.assign(targets.size(), 1);
  h.b.targets.assign(targets.begin(), targets.end());
  h.logits.assign(targets.size() * vocab, 0.f);
  for (size_t i = 0; i < targets.size(); ++i) h.logits[i * vocab + predict[i]] = 5.f;
  return h;
}

TEST(SyntheticTask, MetricsMatchAHandCount) {
  auto s = spec("selective_copying", 4);
  s.options = {{"n_data", 2}, {"vocab", 4}, {"eval_lengths", {6, 8}}};
  auto t = make_task(s);
  auto m = t->metrics();
  // Length 4: sequence 0 scores 2 positions, both right; sequence 1 scores
  // 2, one right. Length 6: one sequence, 1 scored position, wrong.
  auto a = hand_made(4, {-1, -1, 1, 2, /**/ -1, -1, 3, 1}, {0, 0, 1, 2, /**/ 0, 0, 3, 2}, 4);
  auto b = hand_made(6, {-1, -1, -1, -1, -1, 3}, {3, 3, 3, 3, 3, 0}, 4);
  m->add(a.b, a.logits.data(), 4);
  m->add(b.b, b.logits.data(), 4);
  const auto r = m->result();
  EXPECT_DOUBLE_EQ(r.at("accuracy"), 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(r.at("seq_accuracy"), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.at("accuracy_L4"), 3.0 / 4.0);
  EXPECT_DOUBLE_EQ(r.at("accuracy_L6"), 0.0);
  EXPECT_TRUE(std::isnan(r.at("accuracy_L8"))) << "no sequence of length 8 was scored";
  // Loss: -log softmax of the target; right: 5 - log(e^5 + 3), wrong: 0 - log(e^5 + 3).
  const double z = std::log(std::exp(5.0) + 3.0);
  EXPECT_NEAR(r.at("loss"), (3 * (z - 5.0) + 2 * z) / 5.0, 1e-6);
  EXPECT_TRUE(t->higher_is_better("accuracy_L8"));
  EXPECT_TRUE(t->higher_is_better("seq_accuracy"));
  EXPECT_FALSE(t->higher_is_better("loss"));
}

TEST(SyntheticTask, ConfigMistakesNameTheKey) {
  auto typo = spec("selective_copying");
  typo.options = {{"n_dta", 4}};
  typo.where["n_dta"] = "x.yaml:9";
  std::string e = error_of([&] { make_task(typo); });
  EXPECT_NE(e.find("x.yaml:9"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'n_data'"), std::string::npos) << e;

  auto too_many = spec("selective_copying", 20);
  too_many.options = {{"n_data", 16}};
  e = error_of([&] { make_task(too_many); });
  EXPECT_NE(e.find("config: "), std::string::npos) << e;
  EXPECT_NE(e.find("K <= L/2"), std::string::npos) << e;

  auto bad_len = spec("induction_heads");
  bad_len.options = {{"eval_lengths", {1024, "long"}}};
  e = error_of([&] { make_task(bad_len); });
  EXPECT_NE(e.find("eval_lengths"), std::string::npos) << e;

  auto small_vocab = spec("induction_heads");
  small_vocab.options = {{"vocab", 3}};
  EXPECT_NE(error_of([&] { make_task(small_vocab); }).find("task.vocab"), std::string::npos);

  auto files = spec("induction_heads");
  files.data.paths = {"data/kjv.txt"};
  EXPECT_NE(error_of([&] { make_task(files); }).find("reads no files"), std::string::npos);

  // induction_heads takes no K.
  auto k = spec("induction_heads");
  k.options = {{"n_data", 4}};
  EXPECT_NE(error_of([&] { make_task(k); }).find("unknown key 'task.n_data'"), std::string::npos);
}

TEST(SyntheticTask, EncodeDecodeRoundTrip) {
  auto t = make_task(spec("induction_heads"));
  const std::vector<int32_t> ids = {1, 15, 3, 0};
  EXPECT_EQ(t->decode(ids), "1 15 3 0");
  EXPECT_EQ(t->encode("1 15  3\n0"), ids);
  EXPECT_NE(error_of([&] { t->encode("1 16"); }), "");
  EXPECT_NE(error_of([&] { t->encode("x"); }), "");
}

}  // namespace
}  // namespace mk::tasks
