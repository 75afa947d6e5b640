// Perplexity family: mean negative log-likelihood per token in nats, and its
// conversions (bits per token = nll / ln 2; perplexity = exp(nll)); and the
// task-generic evaluation the experiment runner and `mambakit eval` use.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mambakit/dist/communicator.h"
#include "mambakit/models/sequence_model.h"
#include "mambakit/tasks/task.h"

namespace mk::eval {

struct NllResult {
  double nll = 0;       // mean nats per token
  double tokens = 0;    // tokens scored
  double bits() const;  // bits per token (per byte for byte-level text)
  double perplexity() const;
};

// Scores the consecutive windows of a token stream (up to max_windows).
NllResult evaluate_nll(SequenceModel<float>& model, const tasks::TokenStream& tokens,
                       int seq_len, int batch, size_t max_windows);
// The same over a byte stream (token id = byte).
NllResult evaluate_nll(SequenceModel<float>& model, const std::vector<uint8_t>& tokens,
                       int seq_len, int batch, size_t max_windows);

// --- the perplexity family over documents, with sliding windows -----------
//
// A document is a token stream; every token but the first is scored, by a
// causal LM, given the tokens before it in its window. Windows hold at most
// `window` input tokens and start every `stride` tokens (HF's strided
// evaluation): window k feeds tokens [k*stride, k*stride + window) and
// scores only the targets no earlier window scored, so each target is
// scored once, with at least window - stride tokens of context (all tokens
// before it in the first window). stride == window: disjoint windows;
// window >= document length - 1: one window, the full-context NLL.
struct SlidingWindowOptions {
  int window = 256;   // input tokens per window (the model's training length)
  int stride = 0;     // 0: = window
  int batch = 8;      // windows per forward
  size_t max_tokens = 0;  // score at most this many targets in all (0: all)
  // Units of text (bytes) each token id stands for; when set, each window
  // also sums the units of the targets it scores (WindowedNll::units).
  const std::vector<uint32_t>* token_units = nullptr;
};

// The scored pieces: per window, its summed NLL (nats) and target count, in
// document order; the bootstrap resamples these units.
struct WindowedNll {
  std::vector<double> nll_sum;  // (windows) nats
  std::vector<double> count;    // (windows) targets scored
  std::vector<size_t> doc;      // (windows) document index
  std::vector<double> units;    // (windows) units of the scored targets (with token_units)
  double total_nll() const;
  double total_count() const;
  double total_units() const;
  double mean() const;          // nats per token (total / count)
};

// Scores documents (token ids < the model's vocabulary; a target id < 0 is
// skipped, as the tasks' -1) with the sliding windows above. The model must
// have the LM head.
WindowedNll sliding_window_nll(SequenceModel<float>& model,
                               const std::vector<std::vector<int32_t>>& docs,
                               const SlidingWindowOptions& o);

// Percentile bootstrap of a ratio estimator sum(x) / sum(n) over units
// (windows or documents): `resamples` resamples of the units with
// replacement, deterministic in seed. lo/hi are the (1-level)/2 and
// (1+level)/2 quantiles (linear interpolation) of the resampled ratios.
struct BootstrapCI {
  double estimate = 0, lo = 0, hi = 0;
  double level = 0.95;
  int resamples = 0;
};
BootstrapCI bootstrap_ratio_ci(const std::vector<double>& sums, const std::vector<double>& counts,
                               int resamples, double level = 0.95, uint64_t seed = 1);

// Conversions of a total NLL (nats) over `tokens` tokens that encode `units`
// units (bytes of text, bases of DNA, samples of audio):
//   nll per token = total / tokens, perplexity = exp(nll per token),
//   bits per unit = total / (units ln 2).
double nll_per_token(double total_nats, double tokens);
double perplexity_of(double total_nats, double tokens);
double bits_per_unit(double total_nats, double units);

// Runs the model over a task's evaluation batches of `split` (at most
// max_sequences sequences, 0 = all) and returns the task's metrics, only
// those named in `metrics` (all of the task's when empty). An unknown metric
// name is a tasks::ConfigError listing the task's metrics.
std::map<std::string, double> evaluate_task(SequenceModel<float>& model, const tasks::Task& task,
                                            const std::string& split,
                                            const std::vector<std::string>& metrics, int batch,
                                            size_t max_sequences);
// The same over the ranks of a data-parallel job: rank r scores batches r,
// r + size, r + 2 size, ... and the accumulators' sums are added up over the
// ranks, so every rank returns the whole split's metrics (equal to the
// single-process ones up to the order of the double sums). A task whose
// accumulator has no sums (MetricAccumulator::sums) is scored whole on
// every rank.
std::map<std::string, double> evaluate_task(SequenceModel<float>& model, const tasks::Task& task,
                                            const std::string& split,
                                            const std::vector<std::string>& metrics, int batch,
                                            size_t max_sequences, dist::Communicator& comm);

}  // namespace mk::eval
