// `mambakit bench train`: steady-state training throughput of one model shape
// (by default the quickstart model of experiments/quickstart.yaml) on random
// byte batches, and the process's peak resident memory.
//
// Under mpirun (the process joined a job with dist::init_world) the batch is
// the global batch: each rank trains its share, the gradients are summed by
// the bucketed all-reduce of training, and the result reports the job's
// tokens/s, the time waiting for those sums, and the cost of one blocking
// all-reduce of the whole gradient buffer (for projections to more ranks).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "mambakit/model_config.h"

namespace mk::exp {

struct TrainBenchConfig {
  // The quickstart model and batch (experiments/quickstart.yaml).
  int d_model = 128;
  int n_layer = 6;
  int d_state = 16;
  int expand = 2;
  int seq_len = 256;
  int batch = 16;
  std::string mixer = "mamba";  // one name or a comma-separated pattern over the layers
  std::string device = "cpu";   // cpu | cuda
  int threads = 0;              // 0: OMP default
  int warmup = 3;               // untimed steps first
  int steps = 0;                // timed steps; 0: as many as fit in about `seconds` (at least 3)
  double seconds = 5.0;
  uint64_t seed = 1;
};

struct TrainBenchResult {
  TrainBenchConfig config;
  size_t params = 0;
  int threads = 0;      // CPU threads in use
  int steps = 0;        // timed steps
  double seconds = 0;   // their time
  double ms_per_step = 0;
  double tokens_per_s = 0;  // steady state: batch * seq_len * steps / seconds
  long peak_rss_bytes = 0;  // the process's peak resident set (VmHWM, mk::peak_rss_bytes)
  // Data parallelism (ranks > 1): the gradient buffer's size, the share of
  // step time spent waiting for its sums after the backward (the slowest
  // rank's), and one blocking all-reduce of it on its own (best of several).
  int ranks = 1;
  double grad_bytes = 0;
  double comm_fraction = 0;
  double allreduce_ms = 0;
  nlohmann::json to_json() const;
  std::string to_text() const;
};

// Builds the model, runs the warm-up steps, then the timed ones (forward,
// backward, gradient clipping at 1, AdamW, as Trainer::step does). Throws
// mk::Error for a bad shape, an unknown mixer or a missing device.
TrainBenchResult run_train_bench(const TrainBenchConfig& c);
// The same for any model config (c's model fields are ignored, and the
// result's config keeps them as given): `mambakit sweep --dry-run --time`
// times each run of a grid.
TrainBenchResult run_train_bench(const ModelConfig& cfg, const TrainBenchConfig& c);

}  // namespace mk::exp
