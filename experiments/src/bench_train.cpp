#include "mambakit/experiments/bench_train.h"

#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <vector>

#include "mambakit/backend.h"
#include "mambakit/error.h"
#include "mambakit/models/sequence_model.h"
#include "mambakit/ops/optim.h"
#include "mambakit/threads.h"

namespace mk::exp {

namespace {

using Clock = std::chrono::steady_clock;

// "mamba", "mamba,attention" or "[mamba, attention]": the mixer names.
std::vector<std::string> mixer_pattern(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(cur);
    cur.clear();
  };
  for (char ch : s) {
    if (ch == ',') flush();
    else if (ch != ' ' && ch != '[' && ch != ']' && ch != '\t') cur += ch;
  }
  flush();
  return out;
}

long peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return long(u.ru_maxrss) * 1024;  // Linux reports kilobytes
}

}  // namespace

TrainBenchResult run_train_bench(const TrainBenchConfig& c) {
  if (c.batch < 1 || c.seq_len < 1) throw Error("bench train: --batch and --seq-len must be >= 1");
  if (c.warmup < 0 || c.steps < 0) throw Error("bench train: --warmup and --steps must be >= 0");
  ModelConfig cfg;
  cfg.d_model = c.d_model;
  cfg.n_layer = c.n_layer;
  cfg.d_state = c.d_state;
  cfg.expand = c.expand;
  cfg.mixers = mixer_pattern(c.mixer);
  if (cfg.mixers.empty()) throw Error("bench train: --mixer: give at least one mixer name");
  if (int(cfg.mixers.size()) > cfg.n_layer)
    throw Error("bench train: --mixer lists " + std::to_string(cfg.mixers.size()) +
                " mixers but --n-layer is " + std::to_string(cfg.n_layer));
  return run_train_bench(cfg, c);
}

TrainBenchResult run_train_bench(const ModelConfig& cfg, const TrainBenchConfig& c) {
  if (c.batch < 1 || c.seq_len < 1) throw Error("bench train: --batch and --seq-len must be >= 1");
  if (c.warmup < 0 || c.steps < 0) throw Error("bench train: --warmup and --steps must be >= 0");
  const Device dev = parse_device(c.device);

  set_cpu_threads(c.threads);
  TrainBenchResult r;
  r.config = c;
  r.threads = omp_get_max_threads();

  SequenceModel<float> model(cfg);
  model.init(c.seed);
  model.to(dev);
  auto& ps = model.params();
  Backend<float>& be = ps.backend();
  Buf<float> m, v;
  m.assign_zero(be, model.num_params());
  v.assign_zero(be, model.num_params());
  r.params = model.num_params();

  const int B = c.batch, L = c.seq_len, V = cfg.vocab_size;
  std::mt19937 rng(uint32_t(c.seed));
  std::vector<int32_t> ids(size_t(B) * L), tgt(size_t(B) * L);
  for (auto& t : ids) t = int32_t(rng() % uint32_t(V));
  for (auto& t : tgt) t = int32_t(rng() % uint32_t(V));

  // The training step of Trainer::step: forward, backward, clip, AdamW.
  ops::AdamWHyper h;
  long opt_step = 0;
  auto one_step = [&] {
    ps.zero_grad();
    model.forward(ids.data(), B, L);
    model.backward(tgt.data());
    be.clip_grad_norm(ps.grad(), ps.size(), 1.0);
    ++opt_step;
    for (const auto& e : ps.entries())
      be.adamw_update(ps.data() + e.offset, ps.grad() + e.offset, m.data() + e.offset,
                      v.data() + e.offset, e.numel, h, opt_step, e.decay);
    be.synchronize();
  };

  for (int s = 0; s < c.warmup; ++s) one_step();
  const auto t0 = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  if (c.steps > 0) {
    for (int s = 0; s < c.steps; ++s) one_step();
    r.steps = c.steps;
  } else {
    // As many steps as fit in c.seconds, at least 3.
    while (r.steps < 3 || elapsed() < c.seconds) {
      one_step();
      ++r.steps;
    }
  }
  r.seconds = elapsed();
  r.ms_per_step = 1e3 * r.seconds / r.steps;
  r.tokens_per_s = r.seconds > 0 ? double(B) * L * r.steps / r.seconds : 0.0;
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

nlohmann::json TrainBenchResult::to_json() const {
  const auto& c = config;
  return nlohmann::json{{"benchmark", "train_step"},
                        {"d_model", c.d_model},
                        {"n_layer", c.n_layer},
                        {"d_state", c.d_state},
                        {"expand", c.expand},
                        {"mixer", c.mixer},
                        {"batch", c.batch},
                        {"seq_len", c.seq_len},
                        {"device", c.device},
                        {"threads", threads},
                        {"params", params},
                        {"warmup_steps", c.warmup},
                        {"steps", steps},
                        {"seconds", seconds},
                        {"ms_per_step", ms_per_step},
                        {"tokens_per_s", tokens_per_s},
                        {"peak_rss_bytes", peak_rss_bytes}};
}

std::string TrainBenchResult::to_text() const {
  const auto& c = config;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "mambakit bench train: %s x %d layers, d_model %d, %zu parameters, batch %d x %d tokens, "
                "%s, %d thread%s\n"
                "  %d timed steps after %d warm-up: %.1f ms/step, %.0f tokens/s; peak RSS %.1f MiB\n",
                c.mixer.c_str(), c.n_layer, c.d_model, params, c.batch, c.seq_len, c.device.c_str(),
                threads, threads == 1 ? "" : "s", steps, c.warmup, ms_per_step, tokens_per_s,
                double(peak_rss_bytes) / (1024.0 * 1024.0));
  return buf;
}

}  // namespace mk::exp
