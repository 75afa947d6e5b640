// The perplexity family: a uniform model's perplexity is the vocabulary
// size; unit conversions on hand-computed cases; strided sliding windows
// against full-context and per-token brute force scoring; the bootstrap.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "mambakit/evaluation/perplexity.h"

namespace mk::eval {
namespace {

ModelConfig small_config(const std::string& mixer = "mamba") {
  ModelConfig c;
  c.d_model = 16;
  c.n_layer = 2;
  c.d_state = 4;
  c.vocab_size = 23;
  c.mixers = {mixer};
  c.s4_d_state = 8;
  return c;
}

std::vector<int32_t> random_tokens(size_t n, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(rng() % unsigned(vocab));
  return t;
}

// -log p(doc[t] | doc[from..t-1]) by one forward over exactly that context.
double brute_nll(SequenceModel<float>& m, const std::vector<int32_t>& doc, size_t from, size_t t) {
  const int len = int(t - from);
  m.forward(doc.data() + from, 1, len);
  const int V = m.config().vocab_size;
  const float* l = m.logits().data() + size_t(len - 1) * V;
  double mx = l[0], s = 0;
  for (int v = 1; v < V; ++v) mx = std::max(mx, double(l[v]));
  for (int v = 0; v < V; ++v) s += std::exp(double(l[v]) - mx);
  return mx + std::log(s) - double(l[doc[t]]);
}

TEST(PerplexityFamily, UniformModelHasPerplexityEqualToTheVocabularySize) {
  for (int V : {2, 23, 256}) {
    ModelConfig c = small_config();
    c.vocab_size = V;
    SequenceModel<float> m(c);
    m.init(3);
    // A zero final norm makes every hidden state 0, so the tied head's
    // logits are all 0: the uniform distribution over V tokens.
    const auto& e = m.params().entry("backbone.norm_f.weight");
    std::fill_n(m.params().data() + e.offset, e.numel, 0.f);
    SlidingWindowOptions o;
    o.window = 16;
    o.stride = 8;
    const auto r = sliding_window_nll(m, {random_tokens(100, V, 1), random_tokens(37, V, 2)}, o);
    EXPECT_EQ(r.total_count(), 99.0 + 36.0);
    EXPECT_NEAR(perplexity_of(r.total_nll(), r.total_count()), double(V), 1e-9 * V);
    EXPECT_NEAR(r.mean(), std::log(double(V)), 1e-12);
    EXPECT_NEAR(bits_per_unit(r.total_nll(), r.total_count()), std::log2(double(V)), 1e-12);
  }
}

TEST(PerplexityFamily, ConversionsMatchHandComputedCases) {
  // 100 byte-level tokens at 2 nats each: 2 / ln 2 = 2.8853900817779268 bits per byte.
  EXPECT_NEAR(bits_per_unit(200.0, 100.0), 2.8853900817779268, 1e-12);
  EXPECT_NEAR(nll_per_token(200.0, 100.0), 2.0, 1e-15);
  EXPECT_NEAR(perplexity_of(200.0, 100.0), 7.38905609893065, 1e-12);  // e^2
  // 50 subword tokens at 3 nats covering 200 bytes: 150 / (200 ln 2) bits per byte.
  EXPECT_NEAR(bits_per_unit(150.0, 200.0), 1.0820212806667225, 1e-12);
  // A uniform byte model: ln 256 nats per byte is exactly 8 bits per byte.
  EXPECT_NEAR(bits_per_unit(10 * std::log(256.0), 10.0), 8.0, 1e-12);
  // Uniform over A C G T: 2 bits per base; 8-bit mu-law uniform: 8 bits per sample.
  EXPECT_NEAR(bits_per_unit(1000 * std::log(4.0), 1000.0), 2.0, 1e-12);
  EXPECT_THROW(bits_per_unit(1.0, 0.0), Error);
  EXPECT_THROW(nll_per_token(1.0, 0.0), Error);
}

TEST(PerplexityFamily, WindowCoveringTheSequenceGivesTheFullContextNll) {
  for (const std::string mixer : {"mamba", "s4d", "attention"}) {
    SequenceModel<float> m(small_config(mixer));
    m.init(7);
    const auto doc = random_tokens(41, 23, 4);
    // Full context: one forward over all 40 inputs.
    m.forward(doc.data(), 1, 40);
    std::vector<int32_t> targets(doc.begin() + 1, doc.end());
    const double full = m.loss(targets.data());
    for (int window : {40, 64, 1000}) {
      SlidingWindowOptions o;
      o.window = window;
      o.stride = window / 2;
      const auto r = sliding_window_nll(m, {doc}, o);
      ASSERT_EQ(r.nll_sum.size(), 1u) << mixer << " window " << window;
      EXPECT_EQ(r.total_count(), 40.0);
      EXPECT_NEAR(r.mean(), full, 1e-5) << mixer << " window " << window;
    }
  }
}

TEST(PerplexityFamily, EveryTargetIsScoredOnceWithItsWindowsContext) {
  SequenceModel<float> m(small_config());
  m.init(11);
  const std::vector<std::vector<int32_t>> docs = {random_tokens(30, 23, 5), random_tokens(9, 23, 6),
                                                  random_tokens(1, 23, 7)};
  const int W = 8, S = 3;
  // Brute force: target t of a document is scored in the first window
  // (starts 0, S, 2S, ...) whose inputs reach it, i.e. start + W >= t.
  double expect = 0, n = 0;
  for (const auto& d : docs)
    for (size_t t = 1; t < d.size(); ++t) {
      size_t start = 0;
      while (start + W < t) start += S;
      expect += brute_nll(m, d, start, t);
      n += 1;
    }
  SlidingWindowOptions o;
  o.window = W;
  o.stride = S;
  o.batch = 3;
  const auto r = sliding_window_nll(m, docs, o);
  EXPECT_EQ(r.total_count(), n);
  EXPECT_NEAR(r.total_nll(), expect, 1e-4 * n);
  // Units follow the documents in order; the one-token document adds none.
  EXPECT_TRUE(std::is_sorted(r.doc.begin(), r.doc.end()));
  EXPECT_EQ(r.doc.back(), 1u);
  // Capped: the first 20 targets only, the same values as the brute force.
  o.max_tokens = 20;
  const auto capped = sliding_window_nll(m, docs, o);
  EXPECT_EQ(capped.total_count(), 20.0);
  double first20 = 0;
  for (size_t t = 1; t <= 20; ++t) {
    size_t start = 0;
    while (start + W < t) start += S;
    first20 += brute_nll(m, docs[0], start, t);
  }
  EXPECT_NEAR(capped.total_nll(), first20, 1e-4 * 20);
}

TEST(PerplexityFamily, DisjointWindowsAgreeWithTheTaskEvaluator) {
  SequenceModel<float> m(small_config());
  m.init(13);
  std::vector<uint8_t> bytes(8 * 12 + 1);
  std::mt19937 rng(9);
  for (auto& b : bytes) b = uint8_t(rng() % 23);
  const NllResult ref = evaluate_nll(m, bytes, 12, 3, 0);  // windows of 12 (+1 target)
  SlidingWindowOptions o;
  o.window = 12;  // stride 0 = window: disjoint windows
  const auto r = sliding_window_nll(m, {std::vector<int32_t>(bytes.begin(), bytes.end())}, o);
  EXPECT_EQ(r.total_count(), ref.tokens);
  EXPECT_EQ(r.nll_sum.size(), 8u);
  EXPECT_NEAR(r.mean(), ref.nll, 1e-5);
}

TEST(PerplexityFamily, RejectsBadOptionsAndTokens) {
  SequenceModel<float> m(small_config());
  m.init(1);
  SlidingWindowOptions o;
  o.window = 4;
  o.stride = 5;
  EXPECT_THROW(sliding_window_nll(m, {random_tokens(10, 23, 1)}, o), Error);
  o.stride = 2;
  EXPECT_THROW(sliding_window_nll(m, {{1, 2, 23}}, o), Error);
  EXPECT_THROW(sliding_window_nll(m, {{1, -1, 2}}, o), Error);
}

TEST(Bootstrap, RatioIntervalBehaves) {
  // Identical units: every resample has the same ratio.
  const auto flat = bootstrap_ratio_ci({2, 2, 2, 2}, {1, 1, 1, 1}, 200);
  EXPECT_DOUBLE_EQ(flat.estimate, 2.0);
  EXPECT_DOUBLE_EQ(flat.lo, 2.0);
  EXPECT_DOUBLE_EQ(flat.hi, 2.0);
  // Varied units: the interval brackets the estimate, is deterministic in
  // the seed, and narrows with four times the units (about half as wide).
  std::mt19937 rng(3);
  std::normal_distribution<double> g(3.0, 1.0);
  std::vector<double> s, c;
  for (int i = 0; i < 400; ++i) s.push_back(g(rng) * 10), c.push_back(10);
  const std::vector<double> s100(s.begin(), s.begin() + 100), c100(c.begin(), c.begin() + 100);
  const auto a = bootstrap_ratio_ci(s100, c100, 2000, 0.95, 5);
  const auto b = bootstrap_ratio_ci(s100, c100, 2000, 0.95, 5);
  const auto big = bootstrap_ratio_ci(s, c, 2000, 0.95, 5);
  EXPECT_EQ(a.lo, b.lo);
  EXPECT_EQ(a.hi, b.hi);
  EXPECT_LT(a.lo, a.estimate);
  EXPECT_GT(a.hi, a.estimate);
  // The normal-theory half width of a mean of 100 N(3, 1): 1.96 * 0.1.
  EXPECT_NEAR((a.hi - a.lo) / 2, 0.196, 0.05);
  EXPECT_LT(big.hi - big.lo, 0.7 * (a.hi - a.lo));
  // A wider level gives a wider interval.
  const auto w99 = bootstrap_ratio_ci(s100, c100, 2000, 0.99, 5);
  EXPECT_GT(w99.hi - w99.lo, a.hi - a.lo);
  EXPECT_THROW(bootstrap_ratio_ci({}, {}, 10), Error);
  EXPECT_THROW(bootstrap_ratio_ci({1}, {0}, 10), Error);
  EXPECT_THROW(bootstrap_ratio_ci({1}, {1}, 10, 1.5), Error);
}

}  // namespace
}  // namespace mk::eval
