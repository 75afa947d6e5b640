// Google Benchmark: fused vs naive selective scan, forward and forward+backward,
// at the Mamba-130M scan shape (d_inner 1536, d_state 16) and two lengths.
// items_per_second is state updates per second (B*L*D*N per forward); the
// counters state_MB show the state storage each approach allocates.
// (BENCHMARK_MAIN provides main; for the one-run JSON summary use
// `mambakit bench scan`, which calls run_scan_bench from scan_bench.h.)
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "mambakit/ops/selective_scan.h"

namespace {

using mk::ops::SelectiveScanGrads;
using mk::ops::SelectiveScanParams;

constexpr int kBatch = 2, kDim = 1536, kState = 16;

struct Problem {
  int L;
  std::vector<float> u, delta, A, Bm, Cm, Dskip, z, out, dout, du, ddelta, dA, dB, dC, dD, dz;
  std::vector<float> chunk_states, states;
  SelectiveScanParams<float> p;
  SelectiveScanGrads<float> g;

  explicit Problem(int len) : L(len) {
    const size_t bld = size_t(kBatch) * L * kDim, bln = size_t(kBatch) * L * kState;
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> dt(1e-3f, 1e-1f);
    auto randn = [&](size_t n) {
      std::vector<float> v(n);
      for (auto& x : v) x = normal(rng);
      return v;
    };
    u = randn(bld);
    z = randn(bld);
    dout = randn(bld);
    Bm = randn(bln);
    Cm = randn(bln);
    delta.resize(bld);
    for (auto& x : delta) x = dt(rng);
    A.resize(size_t(kDim) * kState);
    for (size_t i = 0; i < A.size(); ++i) A[i] = -float(i % kState + 1);
    Dskip.assign(kDim, 1.f);
    out.resize(bld);
    du.resize(bld);
    ddelta.resize(bld);
    dz.resize(bld);
    dB.resize(bln);
    dC.resize(bln);
    dA.resize(A.size());
    dD.resize(kDim);
    chunk_states.resize(mk::ops::selective_scan_states_size(kBatch, L, kDim, kState));
    p = {kBatch, L, kDim, kState, u.data(), delta.data(), A.data(), Bm.data(), Cm.data(),
         Dskip.data(), z.data()};
    g = {du.data(), ddelta.data(), dA.data(), dB.data(), dC.data(), dD.data(), dz.data()};
  }
  float* naive_states() {
    if (states.empty()) states.resize(size_t(kBatch) * L * kDim * kState);
    return states.data();
  }
};

// One problem per length, shared by the benchmarks (building it is slow).
Problem& problem(int L) {
  static std::map<int, std::unique_ptr<Problem>> cache;
  auto& slot = cache[L];
  if (!slot) slot = std::make_unique<Problem>(L);
  return *slot;
}

void finish(benchmark::State& state, const Problem& pr, size_t state_floats) {
  state.SetItemsProcessed(int64_t(state.iterations()) * kBatch * pr.L * kDim * kState);
  state.counters["state_MB"] = double(state_floats) * sizeof(float) / 1e6;
}

void BM_FusedForward(benchmark::State& state) {
  Problem& pr = problem(int(state.range(0)));
  for (auto _ : state)
    mk::ops::selective_scan_forward(pr.p, pr.out.data(), pr.chunk_states.data(), (float*)nullptr);
  finish(state, pr, pr.chunk_states.size());
}

void BM_FusedForwardBackward(benchmark::State& state) {
  Problem& pr = problem(int(state.range(0)));
  for (auto _ : state) {
    mk::ops::selective_scan_forward(pr.p, pr.out.data(), pr.chunk_states.data(), (float*)nullptr);
    mk::ops::selective_scan_backward(pr.p, pr.chunk_states.data(), pr.dout.data(), pr.g);
  }
  finish(state, pr, pr.chunk_states.size());
}

void BM_NaiveForward(benchmark::State& state) {
  Problem& pr = problem(int(state.range(0)));
  float* states = pr.naive_states();
  for (auto _ : state) mk::ops::selective_scan_naive_forward(pr.p, pr.out.data(), states);
  finish(state, pr, pr.states.size());
}

void BM_NaiveForwardBackward(benchmark::State& state) {
  Problem& pr = problem(int(state.range(0)));
  float* states = pr.naive_states();
  for (auto _ : state) {
    mk::ops::selective_scan_naive_forward(pr.p, pr.out.data(), states);
    mk::ops::selective_scan_naive_backward(pr.p, states, pr.dout.data(), pr.g);
  }
  finish(state, pr, pr.states.size());
}

BENCHMARK(BM_FusedForward)->Arg(512)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FusedForwardBackward)->Arg(512)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_NaiveForward)->Arg(512)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_NaiveForwardBackward)->Arg(512)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
