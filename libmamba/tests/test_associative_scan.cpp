// Every scan algorithm against the sequential one, for prefix sums and for
// the (non-commutative) SSM operator; the SSM scan against the recurrence.
#include "mambakit/ops/associative_scan.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

using namespace mk::ops;

// 70001 is above the parallel threshold, so the OpenMP paths run too.
const std::vector<size_t> kSizes = {0, 1, 2, 3, 7, 64, 1000, 4097, 70001};
const ScanAlgo kAlgos[] = {ScanAlgo::Sequential, ScanAlgo::Blelloch, ScanAlgo::ChunkedParallel};

const char* algo_name(ScanAlgo a) {
  switch (a) {
    case ScanAlgo::Sequential:
      return "sequential";
    case ScanAlgo::Blelloch:
      return "blelloch";
    default:
      return "chunked";
  }
}

template <typename T>
std::vector<T> random_ints(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<T> v(n);
  for (auto& x : v) x = T(rng());
  return v;
}

std::vector<SsmElem<double>> random_ssm(size_t n, unsigned seed) {
  const auto a = mk::test::uniform<double>(n, seed, 0.5, 1.0);
  const auto b = mk::test::randn<double>(n, seed + 1);
  std::vector<SsmElem<double>> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = {a[i], b[i]};
  return v;
}

// Integer prefix sums (wrapping) are exact: every algorithm must agree bit
// for bit with the sequential scan.
TEST(AssociativeScan, PrefixSumsExact) {
  for (size_t n : kSizes) {
    const auto in = random_ints<uint64_t>(n, 3 + unsigned(n));
    std::vector<uint64_t> ref(n);
    inclusive_scan_sequential(in.data(), ref.data(), n, AddOp<uint64_t>());
    uint64_t run = 0;
    for (size_t i = 0; i < n; ++i) {
      run += in[i];
      ASSERT_EQ(ref[i], run) << "n=" << n << " i=" << i;
    }
    for (ScanAlgo algo : kAlgos) {
      std::vector<uint64_t> out(n, 7);
      inclusive_scan(algo, in.data(), out.data(), n, AddOp<uint64_t>());
      EXPECT_EQ(out, ref) << algo_name(algo) << " n=" << n;
    }
  }
}

TEST(AssociativeScan, PrefixSumsDouble) {
  for (size_t n : kSizes) {
    const auto in = mk::test::randn<double>(n, 5 + unsigned(n));
    std::vector<double> ref(n);
    inclusive_scan_sequential(in.data(), ref.data(), n, AddOp<double>());
    for (ScanAlgo algo : kAlgos) {
      std::vector<double> out(n);
      inclusive_scan(algo, in.data(), out.data(), n, AddOp<double>());
      // Regrouping changes the rounding; sums of n unit normals stay O(sqrt n).
      EXPECT_TRUE(mk::test::all_close(out, ref, 1e-12 * double(n + 1)))
          << algo_name(algo) << " n=" << n;
    }
  }
}

// With wrapping integer arithmetic the SSM operator is exactly associative,
// so any misordering of the non-commutative operands shows as a mismatch.
TEST(AssociativeScan, SsmOperatorExactOnIntegers) {
  using E = SsmElem<uint64_t>;
  for (size_t n : kSizes) {
    const auto a = random_ints<uint64_t>(n, 11 + unsigned(n));
    const auto b = random_ints<uint64_t>(n, 12 + unsigned(n));
    std::vector<E> in(n);
    for (size_t i = 0; i < n; ++i) in[i] = {a[i], b[i]};
    std::vector<E> ref(n);
    inclusive_scan_sequential(in.data(), ref.data(), n, SsmOp<uint64_t>());
    for (ScanAlgo algo : kAlgos) {
      std::vector<E> out(n);
      inclusive_scan(algo, in.data(), out.data(), n, SsmOp<uint64_t>());
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[i].a, ref[i].a) << algo_name(algo) << " n=" << n << " i=" << i;
        ASSERT_EQ(out[i].b, ref[i].b) << algo_name(algo) << " n=" << n << " i=" << i;
      }
    }
  }
}

TEST(AssociativeScan, SsmMatchesRecurrence) {
  for (size_t n : kSizes) {
    const auto in = random_ssm(n, 21 + unsigned(n));
    // Direct recurrence h_t = a_t h_{t-1} + b_t, h_{-1} = 0; and prod a.
    std::vector<double> h(n), prod(n);
    double hv = 0, pv = 1;
    for (size_t i = 0; i < n; ++i) {
      hv = in[i].a * hv + in[i].b;
      pv *= in[i].a;
      h[i] = hv;
      prod[i] = pv;
    }
    for (ScanAlgo algo : kAlgos) {
      std::vector<SsmElem<double>> out(n);
      inclusive_scan(algo, in.data(), out.data(), n, SsmOp<double>());
      std::vector<double> ob(n), oa(n);
      for (size_t i = 0; i < n; ++i) {
        ob[i] = out[i].b;
        oa[i] = out[i].a;
      }
      EXPECT_TRUE(mk::test::all_close(ob, h, 1e-12, 1e-12)) << algo_name(algo) << " n=" << n;
      EXPECT_TRUE(mk::test::all_close(oa, prod, 1e-300, 1e-12)) << algo_name(algo) << " n=" << n;
    }
  }
}

// Chunk counts that do not divide n, exceed n, or are 1, independent of the
// number of threads; and in-place operation.
TEST(AssociativeScan, ChunkedAnyChunkCountAndInPlace) {
  for (size_t n : {1, 2, 5, 64, 1000}) {
    const auto a = random_ints<uint64_t>(n, 31);
    const auto b = random_ints<uint64_t>(n, 32);
    std::vector<SsmElem<uint64_t>> in(n);
    for (size_t i = 0; i < n; ++i) in[i] = {a[i], b[i]};
    std::vector<SsmElem<uint64_t>> ref(n);
    inclusive_scan_sequential(in.data(), ref.data(), n, SsmOp<uint64_t>());
    for (int chunks : {1, 2, 3, 7, 64, int(n) + 5}) {
      auto out = in;  // in place
      inclusive_scan_chunked(out.data(), out.data(), n, SsmOp<uint64_t>(), chunks);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(out[i].a, ref[i].a) << "chunks=" << chunks << " n=" << n << " i=" << i;
        ASSERT_EQ(out[i].b, ref[i].b) << "chunks=" << chunks << " n=" << n << " i=" << i;
      }
    }
    auto out = in;
    inclusive_scan_blelloch(out.data(), out.data(), n, SsmOp<uint64_t>());
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i].b, ref[i].b) << "blelloch in place n=" << n;
  }
}

}  // namespace
