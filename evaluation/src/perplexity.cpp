#include "mambakit/evaluation/perplexity.h"

#include <cmath>

#include "mambakit/tasks/language.h"

namespace mk::eval {

double NllResult::bits() const { return nll / std::log(2.0); }
double NllResult::perplexity() const { return std::exp(nll); }

NllResult evaluate_nll(SequenceModel<float>& model, const std::vector<uint8_t>& tokens,
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

}  // namespace mk::eval
