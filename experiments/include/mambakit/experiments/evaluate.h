// `mambakit eval` beyond the task's own metrics: the perplexity family with
// strided sliding windows and bootstrap confidence intervals, generation
// quality of samples from held-out prompts, and zero-shot multiple choice.
// Every result is printed and merged into the run's summary.json:
//   "evaluation": {"<split>": {metric: value, "<metric>_ci": [lo, hi], ...}}
//   "generation": {"samples", "prompt_tokens", "tokens", "generated": {...},
//                  "reference": {...}}   (reference: the held-out continuations)
//   "zero_shot":  {"<file stem>": {"n", "acc", "acc_norm", ...}}
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mk::exp {

struct EvalOptions {
  std::string split;                 // "": the config's eval.split
  std::vector<std::string> metrics;  // task metrics and/or the perplexity family
  std::string checkpoint = "latest";
  long max_sequences = -1;  // -1: the config's eval.max_sequences (0: all)
  int batch = 0;            // 0: the config's
  std::string device = "cpu";  // where the model runs: cpu or cuda
  // Perplexity family: ppl, nll, bits (per token), bpb / bits_per_byte
  // (text), bits_per_base (DNA), bits_per_sample (audio).
  int window = 0;      // sliding window (0: the config's data.seq_len)
  int stride = 0;      // 0: = window (disjoint windows)
  int bootstrap = 0;   // resamples for 95% intervals (0: none)
  double level = 0.95;
  uint64_t seed = 1;
  // Generation quality.
  int generate = 0;         // samples (0: none)
  int prompt_tokens = 64;   // held-out prompt length
  int gen_tokens = 0;       // tokens per sample (0: the rest of a window)
  double temperature = -1;  // < 0: the config's generate.temperature
  int top_k = -1;           // < 0: the config's
  double top_p = -1;        // < 0: the config's
  std::string judge;        // model directory scoring generative perplexity
  std::string classifier;   // classifier model directory for IS/mIS/AM/FID
  // Zero-shot multiple choice.
  std::string mc;           // JSONL task file
  std::string mc_delimiter = " ";
  bool write_summary = true;
};

// The perplexity-family metric names.
bool is_perplexity_metric(const std::string& name);

// Runs what the options ask for on run_dir and returns one JSON object:
// {"run", "checkpoint", "step", "split", "<split>_<metric>": value, ...,
//  "<split>_<metric>_ci": [lo, hi], "generation": {...}, "zero_shot": {...}}.
// Writes the results into run_dir/summary.json when write_summary.
nlohmann::json evaluate_run_full(const std::string& run_dir, const EvalOptions& o);

}  // namespace mk::exp
