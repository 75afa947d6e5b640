// OpenBLAS's kernel set (blas_core.h): which choices are replaced, by what,
// and what this process reports. The restart itself is exercised through the
// CLI (experiments/tests/test_cli.cpp, Cli.SystemInfoNamesABlasCoreWithAvx2Kernels).
#include "mambakit/blas_core.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "mambakit/ops/matmul.h"

namespace {

using mk::Isa;

TEST(BlasCore, PreAvx2KernelSetsAreReplacedByTheCpusWidest) {
  for (const char* old : {"Prescott", "PRESCOTT", "Core2", "Nehalem", "Sandybridge", "Barcelona",
                          "Excavator", "Unknown"}) {
    EXPECT_EQ(mk::better_blas_core(old, Isa::avx512), "SkylakeX") << old;
    EXPECT_EQ(mk::better_blas_core(old, Isa::avx2), "Haswell") << old;
    EXPECT_EQ(mk::better_blas_core(old, Isa::scalar), "") << old;  // nothing better to run
  }
}

TEST(BlasCore, Avx2AndAvx512ChoicesAndOtherBlasAreLeftAlone) {
  for (const char* good : {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids",
                           "SomeFutureCore"})
    for (Isa widest : {Isa::scalar, Isa::avx2, Isa::avx512})
      EXPECT_EQ(mk::better_blas_core(good, widest), "") << good;
  EXPECT_EQ(mk::better_blas_core("", Isa::avx512), "");  // not OpenBLAS
}

TEST(BlasCore, KernelSetsNarrowerThanTheCpuAreNamed) {
  EXPECT_TRUE(mk::blas_core_narrower_than_cpu("Haswell", Isa::avx512));
  EXPECT_TRUE(mk::blas_core_narrower_than_cpu("ZEN", Isa::avx512));
  EXPECT_TRUE(mk::blas_core_narrower_than_cpu("Prescott", Isa::avx512));
  EXPECT_TRUE(mk::blas_core_narrower_than_cpu("Prescott", Isa::avx2));
  EXPECT_FALSE(mk::blas_core_narrower_than_cpu("Haswell", Isa::avx2));  // as wide as the CPU
  EXPECT_FALSE(mk::blas_core_narrower_than_cpu("Prescott", Isa::scalar));
  for (const char* wide : {"SkylakeX", "Cooperlake", "SapphireRapids", "SomeFutureCore"})
    EXPECT_FALSE(mk::blas_core_narrower_than_cpu(wide, Isa::avx512)) << wide;
  EXPECT_FALSE(mk::blas_core_narrower_than_cpu("", Isa::avx512));  // not OpenBLAS
}

TEST(BlasCore, ThisProcessReportsItsKernelSetAndWhereItCameFrom) {
  // One product, so that this test links the BLAS as every program does.
  const float a = 2, b = 3;
  float c = 0;
  mk::ops::gemm(false, false, 1, 1, 1, 1.f, &a, 1, &b, 1, 0.f, &c, 1);
  ASSERT_EQ(c, 6.f);
  const std::string core = mk::blas_core_name();
  const std::string origin = mk::blas_core_origin();
  if (core.empty()) {
    EXPECT_EQ(origin, "not OpenBLAS");
    GTEST_SKIP() << "the BLAS linked is not OpenBLAS: it has no kernel set to report";
  }
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  if (!env) {
    // Tests do not restart: OpenBLAS's own choice, whatever it is.
    EXPECT_EQ(origin, "OpenBLAS's choice");
  } else {
    EXPECT_NE(origin.find(std::string("OPENBLAS_CORETYPE=") + env), std::string::npos) << origin;
  }
}

}  // namespace
