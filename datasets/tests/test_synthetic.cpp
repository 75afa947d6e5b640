// The synthetic tasks' generators: structure, determinism, and that the
// answer is recoverable from the input by the rule the task states.
#include <gtest/gtest.h>

#include <algorithm>

#include "mambakit/datasets/synthetic.h"
#include "mambakit/error.h"

namespace mk::data {
namespace {

TEST(SelectiveCopying, TargetsAreTheDataTokensInOrder) {
  std::mt19937_64 rng(1);
  SelectiveCopyingSpec s{64, 8, 16};
  for (int rep = 0; rep < 200; ++rep) {
    auto ex = make_selective_copying(s, rng);
    ASSERT_EQ(ex.ids.size(), 64u);
    const int region = s.len - s.n_data;
    std::vector<int> data;
    for (int t = 0; t < region; ++t) {
      ASSERT_LT(ex.ids[t], s.vocab - 1);  // no marker inside the region
      if (ex.ids[t] != 0) data.push_back(ex.ids[t]);
      EXPECT_EQ(ex.targets[t], -1);
    }
    ASSERT_EQ(int(data.size()), s.n_data);
    for (int i = 0; i < s.n_data; ++i) {
      EXPECT_EQ(ex.ids[region + i], s.vocab - 1);
      EXPECT_EQ(ex.targets[region + i], data[i]);
    }
  }
}

TEST(SelectiveCopying, PositionsVaryAndSeedsReproduce) {
  std::mt19937_64 a(7), b(7);
  SelectiveCopyingSpec s{128, 16, 16};
  auto e1 = make_selective_copying(s, a), e2 = make_selective_copying(s, b);
  EXPECT_EQ(e1.ids, e2.ids);
  auto e3 = make_selective_copying(s, a);
  EXPECT_NE(e1.ids, e3.ids);
}

TEST(InductionHeads, AnswerFollowsTheEarlierTrigger) {
  std::mt19937_64 rng(3);
  InductionHeadsSpec s{100, 16};
  for (int rep = 0; rep < 200; ++rep) {
    auto ex = make_induction_heads(s, rng);
    const int trigger = s.vocab - 1;
    ASSERT_EQ(ex.ids.back(), trigger);
    auto first = std::find(ex.ids.begin(), ex.ids.end(), trigger) - ex.ids.begin();
    ASSERT_LT(first, s.len - 1);
    EXPECT_EQ(std::count(ex.ids.begin(), ex.ids.end(), trigger), 2);
    EXPECT_EQ(ex.targets.back(), ex.ids[first + 1]);
    EXPECT_EQ(std::count(ex.targets.begin(), ex.targets.end(), -1), s.len - 1);
  }
}

TEST(Synthetic, ImpossibleSpecsAreRejected) {
  std::mt19937_64 rng(0);
  EXPECT_THROW(make_selective_copying({10, 6, 16}, rng), Error);
  EXPECT_THROW(make_selective_copying({64, 8, 3}, rng), Error);
  EXPECT_THROW(make_induction_heads({3, 16}, rng), Error);
}

}  // namespace
}  // namespace mk::data
