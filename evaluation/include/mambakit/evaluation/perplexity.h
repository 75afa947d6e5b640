// Perplexity family: mean negative log-likelihood per token in nats, and its
// conversions (bits per token = nll / ln 2; perplexity = exp(nll)); and the
// task-generic evaluation the experiment runner and `mambakit eval` use.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

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
NllResult evaluate_nll(SequenceModel<float>& model, const std::vector<uint8_t>& tokens,
                       int seq_len, int batch, size_t max_windows);

// Runs the model over a task's evaluation batches of `split` (at most
// max_sequences sequences, 0 = all) and returns the task's metrics, only
// those named in `metrics` (all of the task's when empty). An unknown metric
// name is a tasks::ConfigError listing the task's metrics.
std::map<std::string, double> evaluate_task(SequenceModel<float>& model, const tasks::Task& task,
                                            const std::string& split,
                                            const std::vector<std::string>& metrics, int batch,
                                            size_t max_sequences);

}  // namespace mk::eval
