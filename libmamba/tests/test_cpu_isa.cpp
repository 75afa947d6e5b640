// Runtime ISA choice (cpu_isa.h): CPUID detection, MAMBAKIT_ISA parsing and
// its refusal of unknown or unsupported values.
#include "mambakit/cpu_isa.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "mambakit/error.h"

namespace {

using mk::Isa;

bool supported(Isa i) {
  const auto v = mk::supported_isas();
  return std::find(v.begin(), v.end(), i) != v.end();
}

std::string error_of(const char* value) {
  try {
    mk::isa_from_env_value(value);
  } catch (const mk::Error& e) {
    return e.what();
  }
  return "";
}

TEST(CpuIsa, SupportedListStartsWithScalarAndDefaultIsWidest) {
  const auto v = mk::supported_isas();
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v.front(), Isa::scalar);
  EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
  EXPECT_EQ(mk::isa_from_env_value(nullptr), v.back());
  EXPECT_EQ(mk::isa_from_env_value(""), v.back());
  for (Isa i : v) EXPECT_EQ(mk::isa_from_env_value(mk::isa_name(i)), i);
  EXPECT_STREQ(mk::isa_name(Isa::scalar), "scalar");
  EXPECT_STREQ(mk::isa_name(Isa::avx2), "avx2");
  EXPECT_STREQ(mk::isa_name(Isa::avx512), "avx512");
}

// Names map to ISAs whether or not this CPU runs them; anything else is
// no ISA (the callers refuse it with their own option's name).
TEST(CpuIsa, NamesAndTheSupportedList) {
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512})
    EXPECT_EQ(mk::isa_from_name(mk::isa_name(i)), i);
  for (const char* bad : {"", "AVX2", "avx2,avx512", "sse9", "avx512 "})
    EXPECT_FALSE(mk::isa_from_name(bad).has_value()) << bad;
  std::string want;
  for (Isa i : mk::supported_isas()) want += std::string(want.empty() ? "" : ", ") + mk::isa_name(i);
  EXPECT_EQ(mk::supported_isa_list(), want);
  EXPECT_EQ(mk::supported_isa_list().rfind("scalar", 0), 0u);
}

TEST(CpuIsa, UnknownValueIsRefusedClearly) {
  for (const char* bad : {"avx9", "AVX2", "sse", " avx2"}) {
    const std::string msg = error_of(bad);
    EXPECT_NE(msg.find(std::string("MAMBAKIT_ISA=") + bad + ": unknown ISA"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("expected scalar, avx2 or avx512"), std::string::npos) << msg;
    EXPECT_NE(msg.find("this CPU supports: scalar"), std::string::npos) << msg;
  }
}

TEST(CpuIsa, UnsupportedIsaIsRefused) {
  for (Isa i : {Isa::avx2, Isa::avx512}) {
    if (supported(i)) continue;
    const std::string msg = error_of(mk::isa_name(i));
    EXPECT_NE(msg.find(std::string("this CPU lacks ") + mk::isa_name(i)), std::string::npos)
        << msg;
    EXPECT_THROW(mk::set_isa_for_testing(i), mk::Error);
  }
}

TEST(CpuIsa, ScopedOverrideRestores) {
  const Isa before = mk::active_isa();
  for (Isa i : mk::supported_isas()) {
    mk::ScopedIsa scoped(i);
    EXPECT_EQ(mk::active_isa(), i);
  }
  EXPECT_EQ(mk::active_isa(), before);
}

// The real start-up path: a bad MAMBAKIT_ISA in the environment makes the
// first (and every) use of the kernels throw. Run in a fresh process so the
// choice has not been made yet.
TEST(CpuIsaDeathTest, BadEnvironmentValueIsRefused) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("MAMBAKIT_ISA", "avx9", 1);
        for (int k = 0; k < 2; ++k) {
          try {
            mk::active_isa();
          } catch (const mk::Error& e) {
            std::fprintf(stderr, "%s\n", e.what());
            continue;
          }
          std::exit(0);
        }
        std::exit(3);
      },
      ::testing::ExitedWithCode(3), "MAMBAKIT_ISA=avx9: unknown ISA");
}

}  // namespace
