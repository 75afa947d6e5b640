#include "mambakit/experiments/bench_train.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <cstdio>
#include <random>
#include <sstream>
#include <vector>

#include "mambakit/backend.h"
#include "mambakit/blas_core.h"
#include "mambakit/cpu_isa.h"
#include "mambakit/dist/communicator.h"
#include "mambakit/dist/grad_reducer.h"
#include "mambakit/error.h"
#include "mambakit/models/sequence_model.h"
#include "mambakit/ops/optim.h"
#include "mambakit/process_memory.h"
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

// One blocking all-reduce of n floats on device d: the best of `reps`, in ms.
double time_allreduce(dist::Communicator& comm, float* p, size_t n, Device d, int reps) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    comm.barrier();
    const auto t0 = Clock::now();
    comm.start_sum(p, n, d);
    comm.wait_all();
    backend_for<float>(d).synchronize();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  double b = best;
  comm.max(&b, 1);
  return 1e3 * b;
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

  // Every rank draws the global batch and trains rows [r B / W, (r+1) B / W).
  dist::Communicator& comm = dist::world();
  const int W = comm.size(), r0 = c.batch * comm.rank() / W, r1 = c.batch * (comm.rank() + 1) / W;
  const int B = r1 - r0, L = c.seq_len, V = cfg.vocab_size;
  if (B < 1) throw Error("bench train: --batch " + std::to_string(c.batch) + " gives rank " +
                         std::to_string(comm.rank()) + " no sequences; use a batch >= the number of ranks");
  std::mt19937 rng(uint32_t(c.seed));
  std::vector<int32_t> ids(size_t(c.batch) * L), tgt(size_t(c.batch) * L);
  for (auto& t : ids) t = int32_t(rng() % uint32_t(V));
  for (auto& t : tgt) t = int32_t(rng() % uint32_t(V));
  const size_t first = size_t(r0) * L;
  std::unique_ptr<dist::GradReducer> reducer;
  if (W > 1) {
    reducer = std::make_unique<dist::GradReducer>(comm, ps.grad(), ps.size(), dev, size_t(4) << 18);  // 4 MB
    model.set_grad_ready_hook([&](size_t from) { reducer->ready(from); });
  }
  double comm_seconds = 0;

  // The training step of Trainer::step: forward, backward, (all-reduce,)
  // clip, AdamW.
  ops::AdamWHyper h;
  long opt_step = 0;
  auto one_step = [&] {
    ps.zero_grad();
    model.forward(ids.data() + first, B, L);
    model.backward(tgt.data() + first, double(B) / c.batch);
    if (reducer) {
      const auto t0 = Clock::now();
      reducer->finish();
      comm_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    }
    be.clip_grad_norm(ps.grad(), ps.size(), 1.0);
    ++opt_step;
    for (const auto& e : ps.entries())
      be.adamw_update(ps.data() + e.offset, ps.grad() + e.offset, m.data() + e.offset,
                      v.data() + e.offset, e.numel, h, opt_step, e.decay);
    be.synchronize();
  };

  for (int s = 0; s < c.warmup; ++s) one_step();
  comm.barrier();
  comm_seconds = 0;
  const auto t0 = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  if (c.steps > 0) {
    for (int s = 0; s < c.steps; ++s) one_step();
    r.steps = c.steps;
  } else {
    // As many steps as fit in c.seconds, at least 3; the ranks agree on
    // when to stop (they must run the same number of all-reduces).
    for (bool more = true; more;) {
      one_step();
      ++r.steps;
      double go = r.steps < 3 || elapsed() < c.seconds ? 1.0 : 0.0;
      comm.max(&go, 1);
      more = go > 0;
    }
  }
  r.seconds = elapsed();
  double slowest[2] = {r.seconds, comm_seconds};
  comm.max(slowest, 2);
  r.seconds = slowest[0];
  r.ms_per_step = 1e3 * r.seconds / r.steps;
  r.tokens_per_s = r.seconds > 0 ? double(c.batch) * L * r.steps / r.seconds : 0.0;
  r.ranks = W;
  r.grad_bytes = double(ps.size()) * sizeof(float);
  if (W > 1) {
    model.set_grad_ready_hook(nullptr);
    r.comm_fraction = slowest[1] / r.seconds;
    r.allreduce_ms = time_allreduce(comm, ps.grad(), ps.size(), dev, 10);
  }
  r.peak_rss_bytes = mk::peak_rss_bytes();
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
                        {"cpu_isa", isa_name(active_isa())},
                        {"blas_core", blas_core_name()},
                        {"float_products", float_products_name()},
                        {"params", params},
                        {"warmup_steps", c.warmup},
                        {"steps", steps},
                        {"seconds", seconds},
                        {"ms_per_step", ms_per_step},
                        {"tokens_per_s", tokens_per_s},
                        {"peak_rss_bytes", peak_rss_bytes},
                        {"ranks", ranks},
                        {"grad_bytes", grad_bytes},
                        {"comm_fraction", comm_fraction},
                        {"allreduce_ms", allreduce_ms}};
}

std::string TrainBenchResult::to_text() const {
  const auto& c = config;
  const std::string core = blas_core_name();
  const std::string blas = (amx_products_active() ? "float products on AMX tiles, " : "") +
                           (core.empty() ? std::string("a BLAS other than OpenBLAS") : "OpenBLAS " + core);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "mambakit bench train: %s x %d layers, d_model %d, %zu parameters, batch %d x %d tokens, "
                "%s, %d thread%s (%s kernels, %s)\n"
                "  %d timed steps after %d warm-up: %.1f ms/step, %.0f tokens/s; peak RSS %.1f MiB\n",
                c.mixer.c_str(), c.n_layer, c.d_model, params, c.batch, c.seq_len, c.device.c_str(),
                threads, threads == 1 ? "" : "s", isa_name(active_isa()), blas.c_str(), steps,
                c.warmup, ms_per_step, tokens_per_s,
                double(peak_rss_bytes) / (1024.0 * 1024.0));
  std::string s = buf;
  // blas_core_origin() says so, and how to undo it, when the environment's
  // OPENBLAS_CORETYPE runs narrower kernels than the CPU.
  if (std::getenv("OPENBLAS_CORETYPE") && blas_core_narrower_than_cpu(core, supported_isas().back()))
    s += "  note: " + blas_core_origin() + "\n";
  if (ranks > 1) {
    std::snprintf(buf, sizeof buf,
                  "  data-parallel over %d ranks (global batch %d): %.1f%% of step time waiting for gradient "
                  "sums; one all-reduce of the %.2f MB gradient buffer: %.2f ms\n",
                  ranks, c.batch, 100 * comm_fraction, grad_bytes / 1e6, allreduce_ms);
    s += buf;
  }
  return s;
}

}  // namespace mk::exp
