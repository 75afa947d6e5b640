// The order-k Markov baseline: bits per symbol match the entropy rate of
// sources whose entropy is known.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>

#include "mambakit/datasets/markov.h"
#include "seqdata_test_util.h"

namespace {
using mk::data::MarkovModel;
using mk::test::throws_error;

TEST(Markov, UniformIidIsTwoBits) {
  std::mt19937 rng(1);
  std::vector<int32_t> train(200000), test(50000);
  for (auto& x : train) x = int32_t(rng() % 4);
  for (auto& x : test) x = int32_t(rng() % 4);
  for (int k : {0, 2, 4}) {
    MarkovModel m(k), wb(k, 4, 0.0);
    m.fit(train), wb.fit(train);
    EXPECT_NEAR(m.score(test).bits_per_symbol(), 2.0, 0.02) << "order " << k;
    EXPECT_NEAR(wb.score(test).bits_per_symbol(), 2.0, 0.02) << "Witten-Bell, order " << k;
  }
}

TEST(Markov, HighOrderOnLittleDataBacksOff) {
  // 20k symbols leave most order-8 contexts seen once or never: the prior
  // keeps the estimate near the truth (2 bits), Witten-Bell over-trusts them.
  std::mt19937 rng(7);
  std::vector<int32_t> train(20000), test(20000);
  for (auto& x : train) x = int32_t(rng() % 4);
  for (auto& x : test) x = int32_t(rng() % 4);
  MarkovModel m(8), wb(8, 4, 0.0);
  m.fit(train), wb.fit(train);
  EXPECT_LT(m.score(test).bits_per_symbol(), 2.05);
  EXPECT_GT(wb.score(test).bits_per_symbol(), 2.1);
}

TEST(Markov, SecondOrderChainReachesItsEntropyRate) {
  // x_t depends on (x_{t-2}, x_{t-1}) through a fixed random table.
  std::mt19937 rng(2);
  std::vector<std::array<double, 4>> P(16);
  for (auto& row : P) {
    double s = 0;
    for (auto& p : row) p = std::pow(std::uniform_real_distribution<double>(0.05, 1)(rng), 3), s += p;
    for (auto& p : row) p /= s;
  }
  auto gen = [&](size_t n) {
    std::vector<int32_t> x{0, 1};
    std::uniform_real_distribution<double> u(0, 1);
    while (x.size() < n) {
      const auto& row = P[size_t(x[x.size() - 2] * 4 + x.back())];
      double r = u(rng), c = 0;
      int s = 0;
      for (; s < 3; ++s)
        if ((c += row[size_t(s)]) > r) break;
      x.push_back(s);
    }
    return x;
  };
  auto train = gen(400000), test = gen(100000);
  // Entropy rate: sum over contexts of (empirical context frequency) * H(row).
  std::vector<double> freq(16, 0);
  for (size_t i = 2; i < test.size(); ++i) freq[size_t(test[i - 2] * 4 + test[i - 1])] += 1;
  double rate = 0;
  for (size_t c = 0; c < 16; ++c)
    for (double p : P[c]) rate -= freq[c] / double(test.size() - 2) * p * std::log2(p);
  MarkovModel m0(0), m2(2), m5(5), wb2(2, 4, 0.0);
  m0.fit(train), m2.fit(train), m5.fit(train), wb2.fit(train);
  double b0 = m0.score(test).bits_per_symbol(), b2 = m2.score(test).bits_per_symbol(),
         b5 = m5.score(test).bits_per_symbol();
  EXPECT_NEAR(b2, rate, 0.01) << "entropy rate " << rate;
  EXPECT_NEAR(wb2.score(test).bits_per_symbol(), rate, 0.01) << "Witten-Bell";
  EXPECT_NEAR(b5, rate, 0.03) << "higher orders back off without overfitting much";
  EXPECT_GT(b0, rate + 0.1);
}

TEST(Markov, PeriodicSequenceIsNearlyFree) {
  std::vector<int32_t> x;
  const int32_t period[] = {0, 2, 1, 3, 3, 1, 0};
  for (int i = 0; i < 7000; ++i) x.push_back(period[i % 7]);
  MarkovModel m(6);
  m.fit(x);
  EXPECT_LT(m.score(x).bits_per_symbol(), 0.02);
}

TEST(Markov, ProbabilitiesSumToOneAndUnknownSymbolsAreSkipped) {
  std::mt19937 rng(3);
  std::vector<int32_t> x(5000);
  for (auto& v : x) v = int32_t(rng() % 3);  // symbol 3 never seen
  MarkovModel m(3), wb(3, 4, 0.0);
  m.fit(x), wb.fit(x);
  for (auto ctx : std::vector<std::vector<int32_t>>{{}, {0}, {1, 2}, {3, 3, 3}, {2, 0, 1}}) {
    double s = 0, sw = 0;
    for (int a = 0; a < 4; ++a) {
      double p = m.prob(ctx.data(), int(ctx.size()), a), q = wb.prob(ctx.data(), int(ctx.size()), a);
      EXPECT_GT(p, 0);
      EXPECT_GT(q, 0);
      s += p, sw += q;
    }
    EXPECT_NEAR(s, 1.0, 1e-12);
    EXPECT_NEAR(sw, 1.0, 1e-12);
  }
  std::vector<int32_t> with_n{0, 1, 4, 2, 8, 1};
  auto sc = m.score(with_n);
  EXPECT_EQ(sc.symbols, 4);
  EXPECT_EQ(sc.skipped, 2);
  EXPECT_TRUE(throws_error([] { MarkovModel m(13); }, {"order 13", "lower the order"}));
  EXPECT_TRUE(throws_error([] { MarkovModel m(2, 4, -1); }, {"prior"}));
  EXPECT_NO_THROW(MarkovModel(2, 256));
}

}  // namespace
