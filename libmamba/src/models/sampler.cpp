#include "mambakit/models/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace mk {

int32_t sample_token(const float* logits, int vocab, const SamplingOptions& opt,
                     std::mt19937_64& rng) {
  if (opt.temperature <= 0) return int32_t(std::max_element(logits, logits + vocab) - logits);
  // Candidates sorted by logit, best first.
  std::vector<int> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  int keep = opt.top_k > 0 ? std::min(opt.top_k, vocab) : vocab;
  std::vector<double> p(keep);
  const double mx = logits[idx[0]];
  double sum = 0;
  for (int i = 0; i < keep; ++i) sum += p[i] = std::exp((logits[idx[i]] - mx) / opt.temperature);
  if (opt.top_p < 1.0) {
    double acc = 0;
    int k = 0;
    while (k < keep) {
      acc += p[k++] / sum;
      if (acc >= opt.top_p) break;
    }
    keep = k;
    p.resize(keep);
    sum = std::accumulate(p.begin(), p.end(), 0.0);
  }
  // Inverse-CDF draw from the filtered distribution.
  double u = std::generate_canonical<double, 53>(rng) * sum;
  for (int i = 0; i < keep; ++i) {
    u -= p[i];
    if (u <= 0) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace mk
