// The task interface: registry, the language task's splits, batches and
// sampler state, token metrics against a hand computation, option errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "mambakit/tasks/language_task.h"
#include "mambakit/tasks/task.h"

namespace mk::tasks {
namespace {

namespace fs = std::filesystem;

// A scratch directory removed when the test program ends.
struct ScratchDir {
  fs::path path = fs::temp_directory_path() / ("mambakit_task_" + std::to_string(getpid()));
  ScratchDir() { fs::create_directories(path); }
  ~ScratchDir() { fs::remove_all(path); }
};

std::string corpus(size_t bytes) {
  static ScratchDir dir;
  static int n = 0;
  const std::string p = (dir.path / (std::to_string(n++) + ".txt")).string();
  std::ofstream f(p, std::ios::binary);
  for (size_t i = 0; i < bytes; ++i) f.put(char('a' + (i * 7 + i / 13) % 26));
  return p;
}

TaskSpec language_spec(const std::string& path, int seq_len = 16) {
  TaskSpec s;
  s.name = "language";
  s.data.paths = {path};
  s.data.seq_len = seq_len;
  s.data.split = {0.8, 0.1, 0.1};
  s.seed = 7;
  s.section_where = "x.yaml:4";
  return s;
}

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(TaskRegistry, KnowsLanguageAndSuggestsNearMisses) {
  const auto names = task_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "language"), names.end());
  TaskSpec s;
  s.name = "langauge";
  s.where["name"] = "x.yaml:5";
  try {
    make_task(s);
    FAIL() << "unknown task accepted";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("x.yaml:5"), std::string::npos) << m;
    EXPECT_NE(m.find("did you mean 'language'"), std::string::npos) << m;
  }
}

TEST(TaskRegistry, RunTimeRegistrationIsFound) {
  int made = 0;
  register_task({"unit_test_task", "a test", [&](const TaskSpec& s) -> std::unique_ptr<Task> {
                   ++made;
                   return std::make_unique<LanguageTask>(s);
                 }});
  TaskSpec s = language_spec(corpus(2000));
  s.name = "unit_test_task";
  auto t = make_task(s);
  EXPECT_EQ(made, 1);
  EXPECT_EQ(t->vocab_size(), 256);
}

TEST(LanguageTask, SplitsAreContiguousFractions) {
  const std::string p = corpus(10000);
  LanguageTask t(language_spec(p));
  ASSERT_EQ(t.splits(), (std::vector<std::string>{"train", "val", "test"}));
  EXPECT_EQ(t.split_tokens("train").size(), 8000u);
  EXPECT_EQ(t.split_tokens("val").size(), 1000u);
  EXPECT_EQ(t.split_tokens("test").size(), 1000u);
  std::ifstream f(p, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), {});
  const auto val = t.split_tokens("val").all();
  EXPECT_EQ(std::string(val.begin(), val.end()), all.substr(8000, 1000));
  EXPECT_DOUBLE_EQ(t.train_tokens(), 7999);
}

TEST(LanguageTask, EvalBatchesAreDeterministicConsecutiveWindows) {
  LanguageTask t(language_spec(corpus(10000), 16));
  auto a = t.eval_batches("val", 4, 10), b = t.eval_batches("val", 4, 10);
  ASSERT_EQ(a.size(), 3u);  // 10 windows in batches of 4
  EXPECT_EQ(a.back().batch, 2);
  const auto val = t.split_tokens("val").all();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].ids, b[i].ids);
    EXPECT_EQ(a[i].targets, b[i].targets);
  }
  // Window 5 (batch 1, row 1) starts at byte 5 * 16; targets are the next bytes.
  EXPECT_EQ(a[1].ids[16], val[80]);
  EXPECT_EQ(a[1].targets[16], val[81]);
  EXPECT_THROW(t.eval_batches("dev", 4, 1), ConfigError);
}

TEST(LanguageTask, SamplerStateRestoresTheSameBatches) {
  LanguageTask t(language_spec(corpus(5000)));
  t.next_train_batch(3);
  const std::string st = t.sampler_state();
  const auto want = t.next_train_batch(3);
  LanguageTask u(language_spec(corpus(5000)));
  u.set_sampler_state(st);
  const auto got = u.next_train_batch(3);
  EXPECT_EQ(got.ids, want.ids);
  EXPECT_EQ(got.targets, want.targets);
}

TEST(LanguageTask, BadOptionsAndDataAreReported) {
  TaskSpec s = language_spec(corpus(5000));
  s.options["tokeniser"] = "byte";
  s.where["tokeniser"] = "x.yaml:6";
  std::string m = error_of([&] { LanguageTask t(s); });
  EXPECT_NE(m.find("x.yaml:6: unknown key 'task.tokeniser'"), std::string::npos) << m;
  EXPECT_NE(m.find("did you mean 'tokenizer'"), std::string::npos) << m;

  s = language_spec(corpus(5000));
  s.data.paths.clear();
  s.data_where["path"] = "x.yaml:9";
  m = error_of([&] { LanguageTask t(s); });
  EXPECT_NE(m.find("x.yaml:9: data.path"), std::string::npos) << m;

  const std::string tiny = corpus(100);
  m = error_of([&] { LanguageTask t(language_spec(tiny, 32)); });
  EXPECT_NE(m.find(tiny), std::string::npos) << m;
  EXPECT_NE(m.find("too small"), std::string::npos) << m;
}

TEST(TokenMetrics, MatchesAHandComputationAndSkipsIgnoredTargets) {
  // Two positions, vocab 3; the second is ignored (-1).
  TokenBatch b;
  b.batch = 1;
  b.len = 3;
  b.ids = {0, 1, 2};
  b.targets = {2, -1, 0};
  const float logits[] = {1.f, 2.f, 3.f, /*ignored*/ 9.f, 9.f, 9.f, 0.5f, -1.f, 0.f};
  TokenMetrics m;
  m.add(b, logits, 3);
  auto ce = [](const float* l, int t) {
    double s = 0;
    for (int v = 0; v < 3; ++v) s += std::exp(double(l[v]));
    return std::log(s) - l[t];
  };
  const double want = (ce(logits, 2) + ce(logits + 6, 0)) / 2;
  auto r = m.result();
  EXPECT_NEAR(r["loss"], want, 1e-12);
  EXPECT_NEAR(r["bits"], want / std::log(2.0), 1e-12);
  EXPECT_NEAR(r["ppl"], std::exp(want), 1e-12);
  EXPECT_DOUBLE_EQ(r["accuracy"], 1.0);  // argmax 2 at position 0, argmax 0 at position 2
  EXPECT_EQ(m.targets(), 2);
}

TEST(DidYouMean, SuggestsOnlyNearMisses) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(closest_match("mamab", {"mamba", "s4d", "attention"}), "mamba");
  EXPECT_EQ(closest_match("attnetion", {"mamba", "s4d", "attention"}), "attention");
  EXPECT_EQ(closest_match("transformer", {"mamba", "s4d", "attention"}), "");
  EXPECT_EQ(did_you_mean("xyz", {"mamba"}), "");
}

// Data parallelism: a batch's parts are disjoint, cover it in order and
// differ by at most one example; a pair batch keeps each pair's two rows
// together; the targets the loss averages over are counted.
TEST(BatchPart, PartsCoverTheBatchAndKeepPairsTogether) {
  TokenBatch b;  // 5 rows of length 2, row r holds ids 10r, 10r + 1
  b.batch = 5, b.len = 2;
  for (int r = 0; r < 5; ++r) b.ids.insert(b.ids.end(), {10 * r, 10 * r + 1}), b.targets.insert(b.targets.end(), {r, -1});
  EXPECT_EQ(scored_targets(b), 5);
  const TokenBatch p0 = batch_part(b, 0, 2), p1 = batch_part(b, 1, 2);
  EXPECT_EQ(p0.batch, 2);
  EXPECT_EQ(p1.batch, 3);
  EXPECT_EQ(p0.ids, (std::vector<int32_t>{0, 1, 10, 11}));
  EXPECT_EQ(p1.targets, (std::vector<int32_t>{2, -1, 3, -1, 4, -1}));
  EXPECT_EQ(batch_part(b, 0, 1).ids, b.ids);
  EXPECT_EQ(batch_part(b, 0, 8).batch, 0) << "more parts than rows: some are empty";

  TokenBatch pairs;  // 3 pairs: rows 0-2 the first documents, 3-5 the second
  pairs.batch = 6, pairs.len = 1;
  pairs.ids = {0, 1, 2, 100, 101, 102};
  pairs.targets.assign(6, -1);
  pairs.lengths = {1, 1, 1, 1, 1, 1};
  pairs.labels = {7, 8, -1};
  EXPECT_EQ(scored_targets(pairs), 2);
  const TokenBatch q = batch_part(pairs, 1, 2);  // pairs [1, 3)
  EXPECT_EQ(q.batch, 4);
  EXPECT_EQ(q.ids, (std::vector<int32_t>{1, 2, 101, 102}));
  EXPECT_EQ(q.labels, (std::vector<int32_t>{8, -1}));
  EXPECT_EQ(q.lengths.size(), 4u);
  EXPECT_EQ(scored_targets(q), 1);
  EXPECT_THROW(batch_part(b, 2, 2), Error);
}

}  // namespace
}  // namespace mk::tasks
