#include "mambakit/experiments/bench_mixers.h"

#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <sstream>

#include "mambakit/error.h"
#include "mambakit/layers/mixer.h"
#include "mambakit/model_config.h"
#include "mambakit/params.h"
#include "mambakit/process_memory.h"
#include "mambakit/threads.h"

namespace mk::exp {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A freshly built, initialised one-layer mixer with its parameters.
struct Layer {
  ModelConfig cfg;
  ParamStore<float> ps;
  std::unique_ptr<Mixer<float>> mixer;
  Layer(const std::string& kind, int d_model, unsigned seed) {
    cfg.d_model = d_model;
    cfg.n_layer = 1;
    cfg.mixers = {kind};
    cfg.validate();
    mixer = make_mixer<float>(kind);
    mixer->declare(ps, "backbone.layers.0.mixer", cfg);
    ps.finalize();
    std::mt19937_64 rng(seed);
    mixer->init(ps, rng, 1);
  }
};

std::vector<float> randn(size_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void check_config(const MixerBenchConfig& c) {
  MK_CHECK(c.d_model > 0, "bench mixers: --d-model must be positive");
  MK_CHECK(!c.mixers.empty(), "bench mixers: no mixers to measure");
  for (int L : c.lengths) MK_CHECK(L > 0, "bench mixers: lengths must be positive, got " + std::to_string(L));
  for (int n : c.gen_contexts) MK_CHECK(n >= 0, "bench mixers: contexts must be >= 0");
  MK_CHECK(c.gen_tokens > 0, "bench mixers: generation tokens must be positive");
  const auto known = mixer_kinds();
  for (const auto& m : c.mixers)
    if (std::find(known.begin(), known.end(), m) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw Error("bench mixers: unknown mixer '" + m + "' (known: " + list + ")");
    }
}

// Thread pools (OpenMP, OpenBLAS) and their buffers come to life on first
// use; one small forward+backward of every mixer first keeps them out of
// the measured memory.
void warm_up(const MixerBenchConfig& c) {
  for (const auto& m : c.mixers) {
    Layer l(m, c.d_model, c.seed);
    std::mt19937_64 rng(c.seed);
    const int L = 64;
    auto x = randn(size_t(L) * c.d_model, rng), dy = randn(x.size(), rng);
    std::vector<float> y(x.size()), dx(x.size());
    l.mixer->forward(l.ps, x.data(), y.data(), 1, L);
    l.mixer->backward(l.ps, dy.data(), dx.data());
  }
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string ratio(double v, double ref) {
  return ref > 0 && v >= 0 ? fmt("%.2fx", v / ref) : "n/a";
}

}  // namespace

MixerCost measure_mixer(const std::string& mixer, int d_model, int len, const MixerBenchConfig& c) {
  Layer l(mixer, d_model, c.seed);
  std::mt19937_64 rng(c.seed + uint64_t(len));
  const size_t n = size_t(len) * d_model;  // (1, L, Dm)
  auto x = randn(n, rng), dy = randn(n, rng);
  std::vector<float> y(n), dx(n);

  MixerCost r;
  r.mixer = mixer;
  r.len = len;
  // Memory: freed heap pages go back to the kernel first, so whatever the
  // layer touches during its first forward+backward shows in the peak.
  malloc_trim(0);
  const bool can = reset_peak_rss();
  const long base = proc_status_kb("VmRSS");
  auto t0 = Clock::now();
  l.mixer->forward(l.ps, x.data(), y.data(), 1, len);
  l.mixer->backward(l.ps, dy.data(), dx.data());
  const double first = seconds_since(t0);
  const long peak = proc_status_kb("VmHWM");
  r.peak_bytes = can && base >= 0 && peak >= 0 ? 1024.0 * double(std::max(0L, peak - base)) : -1;
  r.bytes_per_token = r.peak_bytes >= 0 ? r.peak_bytes / len : -1;

  // Time: the best of the repeats (buffers now allocated, as in training).
  // A first call that alone took long (attention or S4 at large L) is its
  // own measurement: first-touch page faults are then a tiny part of it,
  // and repeating would keep the default run from finishing in minutes.
  r.seconds = first;
  double total = first;
  const bool long_call = first > 4 * c.min_seconds;
  while (!long_call && r.repeats < c.max_repeats && (r.repeats == 0 || total < c.min_seconds)) {
    t0 = Clock::now();
    l.mixer->forward(l.ps, x.data(), y.data(), 1, len);
    l.mixer->backward(l.ps, dy.data(), dx.data());
    const double s = seconds_since(t0);
    total += s;
    r.seconds = r.repeats == 0 ? s : std::min(r.seconds, s);
    ++r.repeats;
  }
  r.us_per_token = 1e6 * r.seconds / len;
  return r;
}

GenCost measure_generation(const std::string& mixer, int d_model, int context, const MixerBenchConfig& c) {
  Layer l(mixer, d_model, c.seed);
  std::mt19937_64 rng(c.seed);
  // A few different inputs, cycled, stand in for the embeddings of tokens.
  const int kInputs = 16;
  auto xs = randn(size_t(kInputs) * d_model, rng);
  std::vector<float> y(d_model);
  auto filled = l.mixer->make_state(1);
  for (int p = 0; p < context; ++p)
    l.mixer->step(l.ps, xs.data() + size_t(p % kInputs) * d_model, y.data(), filled, 1);
  // The best of a few blocks of gen_tokens steps, each from a copy of the
  // filled state (so attention's context does not drift upwards), keeps a
  // busy machine's pauses out of the rate.
  double best = 0, total = 0;
  for (int rep = 0; rep < 20 * c.max_repeats && (rep == 0 || total < c.min_seconds); ++rep) {
    auto st = filled;
    const auto t0 = Clock::now();
    for (int i = 0; i < c.gen_tokens; ++i)
      l.mixer->step(l.ps, xs.data() + size_t(i % kInputs) * d_model, y.data(), st, 1);
    const double s = seconds_since(t0);
    total += s;
    best = rep == 0 ? s : std::min(best, s);
  }
  GenCost g;
  g.mixer = mixer;
  g.context = context;
  g.tokens_per_s = c.gen_tokens / best;
  return g;
}

MixerBenchResult run_mixer_bench(const MixerBenchConfig& c) {
  check_config(c);
  set_cpu_threads(c.threads);
  MixerBenchResult r;
  r.config = c;
  r.threads = omp_get_max_threads();
  warm_up(c);
  for (int L : c.lengths)
    for (const auto& m : c.mixers) {
      r.costs.push_back(measure_mixer(m, c.d_model, L, c));
      r.memory_measured = r.memory_measured && r.costs.back().peak_bytes >= 0;
    }
  // Generation: the mixers with a recurrent step of their own kind of state.
  for (int ctx : c.gen_contexts)
    for (const auto& m : c.mixers)
      if (m == "mamba" || m == "attention") r.gen.push_back(measure_generation(m, c.d_model, ctx, c));
  return r;
}

nlohmann::json MixerBenchResult::to_json() const {
  nlohmann::json costs = nlohmann::json::array(), gens = nlohmann::json::array();
  for (const auto& k : this->costs) {
    nlohmann::json j{{"mixer", k.mixer}, {"len", k.len}, {"seconds", k.seconds},
                     {"us_per_token", k.us_per_token}, {"repeats", k.repeats}};
    j["peak_bytes"] = k.peak_bytes >= 0 ? nlohmann::json(k.peak_bytes) : nlohmann::json(nullptr);
    j["bytes_per_token"] = k.peak_bytes >= 0 ? nlohmann::json(k.bytes_per_token) : nlohmann::json(nullptr);
    costs.push_back(j);
  }
  for (const auto& g : gen) gens.push_back({{"mixer", g.mixer}, {"context", g.context}, {"tokens_per_s", g.tokens_per_s}});
  return {{"benchmark", "mixers"},
          {"d_model", config.d_model},
          {"batch", 1},
          {"layers", 1},
          {"threads", threads},
          {"memory", memory_measured ? "peak RSS growth over forward+backward (VmHWM after clear_refs)"
                                     : "not measured (/proc/self/clear_refs not writable)"},
          {"forward_backward", costs},
          {"generation", gens}};
}

std::string MixerBenchResult::to_text() const {
  std::ostringstream o;
  o << "mambakit bench mixers: one layer, d_model " << config.d_model << ", batch 1, " << threads
    << (threads == 1 ? " thread\n" : " threads\n");
  o << "forward+backward: best of up to " << config.max_repeats << " runs; memory = growth of the peak "
    << "resident set over the first forward+backward of a fresh layer (saved activations + scratch)\n\n";
  char line[160];
  std::snprintf(line, sizeof line, "%7s  %-10s %13s %9s %14s %9s\n", "L", "mixer", "time/token",
                "vs mamba", "memory/token", "vs mamba");
  o << line;
  for (const auto& k : costs) {
    const MixerCost* ref = nullptr;
    for (const auto& m : costs)
      if (m.mixer == "mamba" && m.len == k.len) ref = &m;
    const std::string mem = k.peak_bytes >= 0 ? fmt("%.2f KiB", k.bytes_per_token / 1024) : "n/a";
    std::snprintf(line, sizeof line, "%7d  %-10s %10.2f us %9s %14s %9s\n", k.len, k.mixer.c_str(),
                  k.us_per_token, ref ? ratio(k.us_per_token, ref->us_per_token).c_str() : "",
                  mem.c_str(), ref ? ratio(k.bytes_per_token, ref->bytes_per_token).c_str() : "");
    o << line;
  }
  if (!gen.empty()) {
    o << "\ngeneration: best block of " << config.gen_tokens
      << " recurrent steps after the context (Mamba: fixed-size state; attention: KV cache)\n";
    std::snprintf(line, sizeof line, "%7s  %-10s %13s %9s\n", "context", "mixer", "tokens/s", "vs mamba");
    o << line;
    for (const auto& g : gen) {
      const GenCost* ref = nullptr;
      for (const auto& m : gen)
        if (m.mixer == "mamba" && m.context == g.context) ref = &m;
      std::snprintf(line, sizeof line, "%7d  %-10s %13.0f %9s\n", g.context, g.mixer.c_str(), g.tokens_per_s,
                    ref ? ratio(g.tokens_per_s, ref->tokens_per_s).c_str() : "");
      o << line;
    }
  }
  return o.str();
}

}  // namespace mk::exp
