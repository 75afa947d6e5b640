#include "scan_bench.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "mambakit/backend.h"
#include "mambakit/cpu_isa.h"
#include "mambakit/error.h"
#include "mambakit/ops/selective_scan.h"
#include "scan_baseline_loop.h"

namespace mk::bench {
namespace {

using Clock = std::chrono::steady_clock;
using ops::SelectiveScanGrads;
using ops::SelectiveScanParams;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Inputs, output, dout and gradients of one problem. Both approaches use the
// same buffers; only their state storage differs.
struct Problem {
  int B, L, D, N;
  size_t bld;
  int stagger;
  std::vector<float> u, delta, A, Bm, Cm, Dskip, z, out, dout;
  std::vector<float> du, ddelta, dA, dB, dC, dD, dz;
  float* out_p = nullptr;   // out and dout where they start (see place)
  float* dout_p = nullptr;
  SelectiveScanParams<float> p;
  SelectiveScanGrads<float> g;

  // Buffers of mambakit's CPU allocator holding the (B, L, D) arrays when
  // stagger is -1 (as a model's layers hold theirs).
  std::vector<Buf<float>> held;

  // Array i of the (B, L, D) ones, moved to i * stagger bytes (mod 4096)
  // past a 4 KiB boundary inside a larger vector; when stagger is -1, into
  // a buffer of mambakit's CPU allocator, where a layer's arrays lie.
  // Returns where its elements start.
  float* place(std::vector<float>& v, int i) {
    if (v.empty()) return v.data();
    if (stagger < 0) {
      held.emplace_back(cpu_memory(), v.size());
      std::copy(v.begin(), v.end(), held.back().data());
      std::vector<float>().swap(v);  // not used again
      return held.back().data();
    }
    std::vector<float> room(v.size() + 8192 / sizeof(float));
    const auto at = reinterpret_cast<std::uintptr_t>(room.data());
    const std::uintptr_t page = (at + 4095) & ~std::uintptr_t(4095);
    float* start = reinterpret_cast<float*>(page + (size_t(i) * size_t(stagger)) % 4096);
    std::copy(v.begin(), v.end(), start);
    v.swap(room);
    return start;
  }

  explicit Problem(const ScanBenchConfig& c)
      : B(c.batch),
        L(c.len),
        D(c.d_inner),
        N(c.d_state),
        bld(size_t(c.batch) * c.len * c.d_inner),
        stagger(c.stagger_bytes) {
    const size_t bln = size_t(B) * L * N;
    std::mt19937 rng(c.seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::uniform_real_distribution<float> unif(std::log(1e-3f), std::log(1e-1f));
    auto fill_normal = [&](std::vector<float>& v, size_t n) {
      v.resize(n);
      for (auto& x : v) x = normal(rng);
    };
    fill_normal(u, bld);
    delta.resize(bld);
    for (auto& x : delta) x = std::exp(unif(rng));
    A.resize(size_t(D) * N);
    for (int d = 0; d < D; ++d)
      for (int n = 0; n < N; ++n) A[size_t(d) * N + n] = -float(n + 1);
    fill_normal(Bm, bln);
    fill_normal(Cm, bln);
    fill_normal(dout, bld);
    if (c.with_D) Dskip.assign(D, 1.f);
    if (c.with_z) fill_normal(z, bld);
    out.resize(bld);
    du.resize(bld);
    ddelta.resize(bld);
    dB.resize(bln);
    dC.resize(bln);
    dA.resize(size_t(D) * N);
    if (c.with_D) dD.resize(D);
    if (c.with_z) dz.resize(bld);

    p.batch = B;
    p.len = L;
    p.dim = D;
    p.dstate = N;
    p.u = place(u, 0);
    p.delta = place(delta, 1);
    p.A = A.data();
    p.Bm = Bm.data();
    p.Cm = Cm.data();
    p.Dskip = c.with_D ? Dskip.data() : nullptr;
    p.z = c.with_z ? place(z, 2) : nullptr;
    out_p = place(out, 3);
    dout_p = place(dout, 4);
    g.du = place(du, 5);
    g.ddelta = place(ddelta, 6);
    g.dA = dA.data();
    g.dB = dB.data();
    g.dC = dC.data();
    g.dD = c.with_D ? dD.data() : nullptr;
    g.dz = c.with_z ? place(dz, 7) : nullptr;
  }

  // Bytes of the tensors common to both approaches.
  size_t fwd_bytes() const {  // inputs + output
    const size_t n_bld = p.z ? 4 : 3;  // u, delta, z, out
    return (n_bld * bld + A.size() + Bm.size() + Cm.size() + Dskip.size()) * sizeof(float);
  }
  size_t bwd_bytes() const {  // dout + gradients
    const size_t n_bld = g.dz ? 4 : 3;  // dout, du, ddelta, dz
    return (n_bld * bld + dA.size() + dB.size() + dC.size() + dD.size()) * sizeof(float);
  }
};

// Best-of-repeats times (ms) of fwd alone, of fwd followed by bwd, and of
// other (the baseline; a no-op returns 0), one of each per repetition: the
// ratios between them come from the same stretch of time, so a burst of
// load from another job on the machine slows all of them or none.
struct TripleMs {
  double fwd, both, other;
};
template <class Fwd, class Bwd, class Other>
TripleMs time_interleaved(int repeats, Fwd fwd, Bwd bwd, Other other) {
  fwd();  // warm-up: first touch of every buffer, thread pool start
  bwd();
  other();
  const double inf = std::numeric_limits<double>::infinity();
  TripleMs best{inf, inf, inf};
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    fwd();
    const double f = ms_since(t0);
    bwd();
    const double fb = ms_since(t0);
    const auto t1 = Clock::now();
    other();
    best.fwd = std::min(best.fwd, f);
    best.both = std::min(best.both, fb);
    best.other = std::min(best.other, ms_since(t1));
  }
  return best;
}

template <class Fwd, class Bwd>
std::pair<double, double> time_pair(int repeats, Fwd fwd, Bwd bwd) {
  const TripleMs t = time_interleaved(repeats, fwd, bwd, [] {});
  return {t.fwd, t.both};
}

// Restores the OpenMP thread count on scope exit.
struct ThreadScope {
  int saved;
  explicit ThreadScope(int threads) : saved(omp_get_max_threads()) {
    if (threads > 0) omp_set_num_threads(threads);
  }
  ~ThreadScope() { omp_set_num_threads(saved); }
};

}  // namespace

ScanBenchResult run_scan_bench(const ScanBenchConfig& c) {
  MK_CHECK(c.batch > 0 && c.d_inner > 0 && c.d_state > 0 && c.len > 0,
           "bench scan: batch, d_inner, d_state and len must be positive");
  MK_CHECK(c.repeats > 0, "bench scan: repeats must be positive, got " + std::to_string(c.repeats));
  MK_CHECK(c.threads >= 0, "bench scan: threads must be >= 0 (0 = OpenMP default)");
  MK_CHECK(c.stagger_bytes == -1 ||
               (c.stagger_bytes >= 0 && c.stagger_bytes < 4096 && c.stagger_bytes % 4 == 0),
           "bench scan: stagger must be -1 (as allocated) or a multiple of 4 bytes below 4096, got " +
               std::to_string(c.stagger_bytes));
  ThreadScope scope(c.threads);

  ScanBenchResult r;
  r.config = c;
  r.threads_used = omp_get_max_threads();
  Problem pr(c);
  const double B = c.batch, L = c.len, D = c.d_inner, N = c.d_state;
  r.updates = B * L * D * N;

  // Fused.
  std::vector<float> chunk_states(ops::selective_scan_states_size(c.batch, c.len, c.d_inner,
                                                                   c.d_state));
  auto fused_fwd = [&] {
    ops::selective_scan_forward(pr.p, pr.out_p, chunk_states.data(), (float*)nullptr);
  };
  auto fused_bwd = [&] {
    ops::selective_scan_backward(pr.p, chunk_states.data(), pr.dout_p, pr.g);
  };
  // The plain loop (the baseline, needs AVX2) is timed between the fused
  // kernels' repetitions.
  const auto isas = supported_isas();
  const bool baseline = std::find(isas.begin(), isas.end(), Isa::avx2) != isas.end();
  std::vector<float> y(baseline ? pr.bld : 0);
  ops::SelectiveScanParams<float> plain = pr.p;
  plain.z = nullptr;
  plain.Dskip = nullptr;
  const TripleMs t = time_interleaved(c.repeats, fused_fwd, fused_bwd, [&] {
    if (baseline) plain_scan_forward(plain, y.data());
  });
  r.fused_fwd_ms = t.fwd;
  r.fused_fwdbwd_ms = t.both;
  // out holds the fused forward's output (the backward reads it not; the
  // baseline writes y).
  const std::vector<float> fused_out(pr.out_p, pr.out_p + pr.bld);

  r.fused_state_bytes = chunk_states.size() * sizeof(float);
  r.fused_fwd_bytes = pr.fwd_bytes() + r.fused_state_bytes;
  r.fused_fwdbwd_bytes = r.fused_fwd_bytes + pr.bwd_bytes() +
                         ops::selective_scan_backward_workspace_bytes<float>(
                             c.batch, c.len, c.d_inner, c.d_state, r.threads_used);
  r.fwd_updates_per_s = r.updates / (r.fused_fwd_ms * 1e-3);
  r.isa = isa_name(active_isa());
  if (baseline) {
    r.baseline_fwd_ms = t.other;
    r.baseline_updates_per_s = r.updates / (r.baseline_fwd_ms * 1e-3);
    r.fused_over_baseline = r.baseline_fwd_ms / r.fused_fwd_ms;
  }
  r.fwdbwd_over_fwd = r.fused_fwdbwd_ms / r.fused_fwd_ms;

  // Naive: same buffers plus every state.
  r.naive_state_bytes = size_t(r.updates) * sizeof(float);
  r.naive_fwd_bytes = pr.fwd_bytes() + r.naive_state_bytes;
  r.naive_fwdbwd_bytes = r.naive_fwd_bytes + pr.bwd_bytes() +
                         ops::selective_scan_naive_backward_workspace_bytes<float>(
                             c.batch, c.len, c.d_inner, c.d_state, r.threads_used);
  r.fused_scan_bytes = r.fused_state_bytes + ops::selective_scan_backward_workspace_bytes<float>(
                                                  c.batch, c.len, c.d_inner, c.d_state, r.threads_used);
  r.naive_scan_bytes = r.naive_state_bytes + ops::selective_scan_naive_backward_workspace_bytes<float>(
                                                  c.batch, c.len, c.d_inner, c.d_state, r.threads_used);
  r.naive_over_fused_memory = double(r.naive_scan_bytes) / double(r.fused_scan_bytes);
  r.naive_over_fused_fwd_memory = double(r.naive_fwd_bytes) / double(r.fused_fwd_bytes);
  r.naive_over_fused_fwdbwd_memory = double(r.naive_fwdbwd_bytes) / double(r.fused_fwdbwd_bytes);
  r.naive_over_fused_state_memory = double(r.naive_state_bytes) / double(r.fused_state_bytes);
  if (c.naive) {
    std::vector<float> states(size_t(r.updates));
    auto naive_fwd = [&] { ops::selective_scan_naive_forward(pr.p, pr.out_p, states.data()); };
    auto naive_bwd = [&] {
      ops::selective_scan_naive_backward(pr.p, states.data(), pr.dout_p, pr.g);
    };
    std::tie(r.naive_fwd_ms, r.naive_fwdbwd_ms) = time_pair(c.repeats, naive_fwd, naive_bwd);
    r.naive_over_fused_time = r.naive_fwdbwd_ms / r.fused_fwdbwd_ms;
    r.naive_over_fused_fwd_time = r.naive_fwd_ms / r.fused_fwd_ms;
    double max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < fused_out.size(); ++i) {
      max_ref = std::max(max_ref, double(std::fabs(pr.out_p[i])));
      max_diff = std::max(max_diff, double(std::fabs(fused_out[i] - pr.out_p[i])));
    }
    r.max_rel_diff = max_diff / std::max(max_ref, 1e-30);
  }
  return r;
}

std::string ScanBenchResult::to_json() const {
  nlohmann::json j;
  j["config"] = {{"batch", config.batch},     {"d_inner", config.d_inner},
                 {"d_state", config.d_state}, {"len", config.len},
                 {"threads", config.threads}, {"repeats", config.repeats},
                 {"with_z", config.with_z},   {"with_D", config.with_D},
                 {"naive", config.naive},     {"seed", config.seed},
                 {"stagger_bytes", config.stagger_bytes}};
  j["threads_used"] = threads_used;
  j["updates"] = updates;
  j["fused_fwd_ms"] = fused_fwd_ms;
  j["fused_fwdbwd_ms"] = fused_fwdbwd_ms;
  j["isa"] = isa;
  j["fwd_updates_per_s"] = fwd_updates_per_s;
  j["baseline_fwd_ms"] = baseline_fwd_ms;
  j["baseline_updates_per_s"] = baseline_updates_per_s;
  j["fused_over_baseline"] = fused_over_baseline;
  j["fwdbwd_over_fwd"] = fwdbwd_over_fwd;
  j["fused_fwd_bytes"] = fused_fwd_bytes;
  j["naive_fwd_bytes"] = naive_fwd_bytes;
  j["fused_fwdbwd_bytes"] = fused_fwdbwd_bytes;
  j["naive_fwdbwd_bytes"] = naive_fwdbwd_bytes;
  j["fused_state_bytes"] = fused_state_bytes;
  j["naive_state_bytes"] = naive_state_bytes;
  j["fused_scan_bytes"] = fused_scan_bytes;
  j["naive_scan_bytes"] = naive_scan_bytes;
  j["naive_over_fused_memory"] = naive_over_fused_memory;
  j["naive_over_fused_fwd_memory"] = naive_over_fused_fwd_memory;
  j["naive_over_fused_fwdbwd_memory"] = naive_over_fused_fwdbwd_memory;
  j["naive_over_fused_state_memory"] = naive_over_fused_state_memory;
  j["memory_method"] = "computed from buffer sizes (benchmark allocations + kernel workspace)";
  if (config.naive) {
    j["naive_fwd_ms"] = naive_fwd_ms;
    j["naive_fwdbwd_ms"] = naive_fwdbwd_ms;
    j["naive_over_fused_time"] = naive_over_fused_time;
    j["naive_over_fused_fwd_time"] = naive_over_fused_fwd_time;
    j["max_rel_diff"] = max_rel_diff;
  } else {
    j["naive_over_fused_time"] = nullptr;  // not measured
  }
  return j.dump();
}

std::string ScanBenchResult::to_text() const {
  char buf[512];
  std::string out;
  const double mb = 1.0 / (1 << 20);
  std::snprintf(buf, sizeof buf,
                "selective scan B=%d D=%d N=%d L=%d, %d threads, %s kernels\n",
                config.batch, config.d_inner, config.d_state, config.len, threads_used,
                isa.c_str());
  out += buf;
  if (config.stagger_bytes >= 0) {
    std::snprintf(buf, sizeof buf, "  arrays at i * %d bytes past a 4 KiB boundary\n",
                  config.stagger_bytes);
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "  fused  fwd %8.2f ms  fwd+bwd %8.2f ms  (%.2f G updates/s, fwd+bwd/fwd %.2f)\n",
                fused_fwd_ms, fused_fwdbwd_ms, fwd_updates_per_s * 1e-9, fwdbwd_over_fwd);
  out += buf;
  if (baseline_fwd_ms > 0) {
    std::snprintf(buf, sizeof buf,
                  "  plain loop (-O3 -ffast-math, AVX2) fwd %8.2f ms (%.2f G updates/s); "
                  "fused/plain speed %.2fx\n",
                  baseline_fwd_ms, baseline_updates_per_s * 1e-9, fused_over_baseline);
    out += buf;
  }
  if (config.naive) {
    std::snprintf(buf, sizeof buf,
                  "  naive  fwd %8.2f ms  fwd+bwd %8.2f ms  (naive/fused fwd+bwd time %.1fx)\n",
                  naive_fwd_ms, naive_fwdbwd_ms, naive_over_fused_time);
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "  scan memory (states + workspace): fused %.1f MB, naive %.1f MB (%.1fx)\n"
                "  with the caller's tensors (fwd+bwd): fused %.1f MB, naive %.1f MB (%.2fx)\n",
                fused_scan_bytes * mb, naive_scan_bytes * mb, naive_over_fused_memory,
                fused_fwdbwd_bytes * mb, naive_fwdbwd_bytes * mb, naive_over_fused_fwdbwd_memory);
  out += buf;
  return out;
}

}  // namespace mk::bench
