// `mambakit bench mixers`: the cost of one sequence mixer layer, Mamba
// against S4D, S4 and causal attention at the same d_model, batch 1.
//   - forward+backward wall time per token at each length L;
//   - peak memory per token of forward+backward, measured as the growth of
//     the process's peak resident set (VmHWM, reset through
//     /proc/self/clear_refs) over the resident set just before the first
//     forward of a freshly built layer: the activations the layer saves for
//     its backward plus its forward/backward scratch, page-granular, not the
//     parameters nor the caller's input/output/gradient buffers;
//   - generation throughput (tokens/s) of the recurrent step at a given
//     context: Mamba's constant-size state against attention's KV cache,
//     which is filled to the context by stepping first.
// Ratios are relative to Mamba.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mk::exp {

struct MixerBenchConfig {
  int d_model = 256;
  std::vector<int> lengths = {512, 2048, 8192};
  std::vector<std::string> mixers = {"mamba", "s4d", "s4", "attention"};
  std::vector<int> gen_contexts = {1024, 8192};
  int gen_tokens = 64;        // generation steps per timed block (blocks repeat for
                              // min_seconds, at most 20 x max_repeats; best kept)
  double min_seconds = 0.5;   // timing: repeat forward+backward at least this long ...
  int max_repeats = 5;        // ... but at most this often (the best time is kept)
  // One thread by default: on a shared machine OpenMP's barriers make
  // 2-thread timings of these small per-token kernels erratic (measured:
  // Mamba generation at 94 tokens/s with 2 threads vs 3500 with 1).
  int threads = 1;            // 0: OMP_NUM_THREADS
  unsigned seed = 1;
};

struct MixerCost {
  std::string mixer;
  int len = 0;
  double seconds = 0;          // best forward+backward time
  double us_per_token = 0;
  double peak_bytes = 0;       // measured peak growth; < 0 if it could not be measured
  double bytes_per_token = 0;
  int repeats = 0;             // timed runs after the first (0: the first call took
                               // over 4 x min_seconds and is the time reported)
};

struct GenCost {
  std::string mixer;
  int context = 0;
  double tokens_per_s = 0;
};

struct MixerBenchResult {
  MixerBenchConfig config;
  int threads = 0;
  bool memory_measured = true;  // false where /proc/self/clear_refs is not writable
  std::vector<MixerCost> costs;
  std::vector<GenCost> gen;
  nlohmann::json to_json() const;
  std::string to_text() const;  // the tables, ratios relative to Mamba
};

// Throws mk::Error for an unknown mixer or a non-positive size.
MixerBenchResult run_mixer_bench(const MixerBenchConfig& c);

// One measurement (exposed for tests): a fresh layer of `mixer`, random
// input, one forward+backward measured for memory (and timed), then timed
// repeats unless that first call was long.
MixerCost measure_mixer(const std::string& mixer, int d_model, int len, const MixerBenchConfig& c);
// Tokens per second of `tokens` recurrent steps after `context` steps.
GenCost measure_generation(const std::string& mixer, int d_model, int context, const MixerBenchConfig& c);

}  // namespace mk::exp
