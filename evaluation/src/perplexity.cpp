#include "mambakit/evaluation/perplexity.h"

#include <algorithm>
#include <cmath>

#include "mambakit/tasks/language.h"

namespace mk::eval {

double NllResult::bits() const { return nll / std::log(2.0); }
double NllResult::perplexity() const { return std::exp(nll); }

NllResult evaluate_nll(SequenceModel<float>& model, const std::vector<uint8_t>& tokens,
                       int seq_len, int batch, size_t max_windows) {
  return evaluate_nll(model, tasks::TokenStream(std::vector<int32_t>(tokens.begin(), tokens.end())), seq_len,
                      batch, max_windows);
}

NllResult evaluate_nll(SequenceModel<float>& model, const tasks::TokenStream& tokens,
                       int seq_len, int batch, size_t max_windows) {
  NllResult r;
  double sum = 0;
  for (const auto& b : tasks::eval_windows(tokens, seq_len, batch, max_windows)) {
    model.forward(b.ids.data(), b.batch, b.len);
    const double n = double(b.batch) * b.len;
    sum += model.loss(b.targets.data()) * n;
    r.tokens += n;
  }
  r.nll = r.tokens > 0 ? sum / r.tokens : 0;
  return r;
}

namespace {

void check_metric_names(const tasks::Task& task, const std::vector<std::string>& metrics) {
  const auto known = task.metric_names();
  for (const auto& m : metrics)
    if (std::find(known.begin(), known.end(), m) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw tasks::ConfigError("unknown metric '" + m + "' for task '" + task.name() + "' (known: " +
                               list + ")" + tasks::did_you_mean(m, known));
    }
}

// Batches i with i % stride == first into acc.
void score_batches(SequenceModel<float>& model, const std::vector<tasks::TokenBatch>& batches, size_t first,
                   size_t stride, tasks::MetricAccumulator& acc) {
  for (size_t i = first; i < batches.size(); i += stride) {
    const auto& b = batches[i];
    model.forward(b.ids.data(), b.batch, b.len, b.lengths_or_null());
    acc.add(b, model.logits().data(), model.logit_width());
  }
}

std::map<std::string, double> chosen(const std::map<std::string, double>& all,
                                     const std::vector<std::string>& metrics) {
  if (metrics.empty()) return all;
  std::map<std::string, double> out;
  for (const auto& m : metrics) out[m] = all.at(m);
  return out;
}

}  // namespace

std::map<std::string, double> evaluate_task(SequenceModel<float>& model, const tasks::Task& task,
                                            const std::string& split,
                                            const std::vector<std::string>& metrics, int batch,
                                            size_t max_sequences) {
  check_metric_names(task, metrics);
  auto acc = task.metrics();
  score_batches(model, task.eval_batches(split, batch, max_sequences), 0, 1, *acc);
  return chosen(acc->result(), metrics);
}

std::map<std::string, double> evaluate_task(SequenceModel<float>& model, const tasks::Task& task,
                                            const std::string& split,
                                            const std::vector<std::string>& metrics, int batch,
                                            size_t max_sequences, dist::Communicator& comm) {
  check_metric_names(task, metrics);
  auto acc = task.metrics();
  const auto batches = task.eval_batches(split, batch, max_sequences);
  // Whether the sums exist depends on the task and labels alone, so every
  // rank decides the same way.
  if (comm.size() == 1 || acc->sums().empty()) {
    score_batches(model, batches, 0, 1, *acc);
    return chosen(acc->result(), metrics);
  }
  score_batches(model, batches, size_t(comm.rank()), size_t(comm.size()), *acc);
  std::vector<double> s = acc->sums();
  comm.sum(s.data(), s.size());
  acc->set_sums(s.data());
  return chosen(acc->result(), metrics);
}

}  // namespace mk::eval
