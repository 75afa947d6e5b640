// The perplexity family: strided sliding-window NLL over documents, the
// bootstrap confidence interval of a per-token mean, and unit conversions.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "mambakit/error.h"
#include "mambakit/evaluation/perplexity.h"

namespace mk::eval {

namespace {

// One window: input tokens doc[start, start + len), scoring the targets at
// positions first..start + len of the document.
struct Window {
  size_t doc = 0, start = 0, first = 0;
  int len = 0;
  size_t scored() const { return start + size_t(len) + 1 - first; }
};

std::vector<Window> plan_windows(const std::vector<std::vector<int32_t>>& docs, int window,
                                 int stride, size_t max_tokens) {
  std::vector<Window> out;
  size_t total = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    const size_t n = docs[d].size();
    if (n < 2) continue;  // nothing to predict
    size_t next = 1;      // the next target position not yet scored
    for (size_t s = 0;; s += size_t(stride)) {
      Window w{d, s, std::max(next, s + 1), int(std::min<size_t>(size_t(window), n - 1 - s))};
      const size_t end = s + size_t(w.len);  // last target position
      if (w.first <= end) {
        if (max_tokens > 0 && total + w.scored() > max_tokens) {
          const size_t keep = max_tokens - total;  // > 0: total < max_tokens here
          w.len -= int(w.scored() - keep);
          out.push_back(w);
          return out;
        }
        total += w.scored();
        out.push_back(w);
        if (max_tokens > 0 && total == max_tokens) return out;
      }
      next = end + 1;
      if (end >= n - 1) break;
    }
  }
  return out;
}

// -log softmax(logits)[target], in double.
double token_nll(const float* l, int vocab, int target) {
  float mx = l[0];
  for (int v = 1; v < vocab; ++v) mx = std::max(mx, l[v]);
  double s = 0;
  for (int v = 0; v < vocab; ++v) s += std::exp(double(l[v]) - double(mx));
  return double(mx) + std::log(s) - double(l[target]);
}

}  // namespace

double WindowedNll::total_nll() const {
  double s = 0;
  for (double v : nll_sum) s += v;
  return s;
}
double WindowedNll::total_count() const {
  double s = 0;
  for (double v : count) s += v;
  return s;
}

double WindowedNll::total_units() const {
  double s = 0;
  for (double v : units) s += v;
  return s;
}
double WindowedNll::mean() const {
  const double n = total_count();
  return n > 0 ? total_nll() / n : std::nan("");
}

WindowedNll sliding_window_nll(SequenceModel<float>& model,
                               const std::vector<std::vector<int32_t>>& docs,
                               const SlidingWindowOptions& o) {
  MK_CHECK(!model.is_classifier(), "sliding_window_nll: the model has a classifier head, not an LM head");
  MK_CHECK(o.window > 0, "sliding_window_nll: window must be positive, got " + std::to_string(o.window));
  const int stride = o.stride > 0 ? o.stride : o.window;
  MK_CHECK(stride <= o.window, "sliding_window_nll: stride " + std::to_string(stride) +
                                   " is larger than the window " + std::to_string(o.window) +
                                   " (tokens between windows would never be scored)");
  MK_CHECK(o.batch > 0, "sliding_window_nll: batch must be positive");
  const int V = model.config().vocab_size;
  for (size_t d = 0; d < docs.size(); ++d)
    for (size_t i = 0; i < docs[d].size(); ++i)
      MK_CHECK(docs[d][i] >= 0 && docs[d][i] < V,
               "sliding_window_nll: document " + std::to_string(d) + ", token " + std::to_string(i) +
                   ": id " + std::to_string(docs[d][i]) + " outside the vocabulary of " + std::to_string(V));

  const std::vector<Window> windows = plan_windows(docs, o.window, stride, o.max_tokens);
  WindowedNll r;
  r.nll_sum.assign(windows.size(), 0);
  r.count.assign(windows.size(), 0);
  if (o.token_units) r.units.assign(windows.size(), 0);
  r.doc.resize(windows.size());
  // Batches of windows of one length (all but the last of a document have
  // length `window`).
  std::map<int, std::vector<size_t>> by_len;
  for (size_t i = 0; i < windows.size(); ++i) by_len[windows[i].len].push_back(i), r.doc[i] = windows[i].doc;
  std::vector<int32_t> ids;
  for (const auto& [len, members] : by_len) {
    for (size_t b0 = 0; b0 < members.size(); b0 += size_t(o.batch)) {
      const size_t nb = std::min(members.size() - b0, size_t(o.batch));
      ids.resize(nb * size_t(len));
      for (size_t j = 0; j < nb; ++j) {
        const Window& w = windows[members[b0 + j]];
        std::copy_n(docs[w.doc].begin() + long(w.start), len, ids.begin() + long(j * size_t(len)));
      }
      model.forward(ids.data(), int(nb), len);
      const float* logits = model.logits().data();
      for (size_t j = 0; j < nb; ++j) {
        const size_t wi = members[b0 + j];
        const Window& w = windows[wi];
        const auto& doc = docs[w.doc];
        double s = 0, u = 0;
        for (size_t t = w.first; t <= w.start + size_t(len); ++t) {
          const size_t i = t - w.start - 1;  // the input position predicting token t
          s += token_nll(logits + (j * size_t(len) + i) * size_t(V), V, doc[t]);
          if (o.token_units && size_t(doc[t]) < o.token_units->size()) u += (*o.token_units)[size_t(doc[t])];
        }
        r.nll_sum[wi] = s;
        if (o.token_units) r.units[wi] = u;
        r.count[wi] = double(w.scored());
      }
    }
  }
  return r;
}

BootstrapCI bootstrap_ratio_ci(const std::vector<double>& sums, const std::vector<double>& counts,
                               int resamples, double level, uint64_t seed) {
  MK_CHECK(sums.size() == counts.size() && !sums.empty(),
           "bootstrap_ratio_ci: need as many sums as counts, and at least one unit (got " +
               std::to_string(sums.size()) + " and " + std::to_string(counts.size()) + ")");
  MK_CHECK(resamples > 0, "bootstrap_ratio_ci: resamples must be positive");
  MK_CHECK(level > 0 && level < 1, "bootstrap_ratio_ci: level must be in (0, 1)");
  double S = 0, N = 0;
  for (size_t i = 0; i < sums.size(); ++i) S += sums[i], N += counts[i];
  MK_CHECK(N > 0, "bootstrap_ratio_ci: the counts sum to zero");
  BootstrapCI ci;
  ci.estimate = S / N;
  ci.level = level;
  ci.resamples = resamples;
  std::mt19937_64 rng(seed);
  const size_t n = sums.size();
  std::vector<double> ratios;
  ratios.reserve(size_t(resamples));
  for (int r = 0; r < resamples; ++r) {
    double s = 0, c = 0;
    for (size_t i = 0; i < n; ++i) {
      const size_t k = size_t(rng() % n);
      s += sums[k];
      c += counts[k];
    }
    if (c > 0) ratios.push_back(s / c);  // a resample of empty units has no ratio
  }
  MK_CHECK(!ratios.empty(), "bootstrap_ratio_ci: every resample had a zero count");
  std::sort(ratios.begin(), ratios.end());
  auto quantile = [&](double q) {
    const double pos = q * double(ratios.size() - 1);
    const size_t a = size_t(std::floor(pos)), b = std::min(ratios.size() - 1, a + 1);
    return ratios[a] + (pos - double(a)) * (ratios[b] - ratios[a]);
  };
  ci.lo = quantile((1 - level) / 2);
  ci.hi = quantile((1 + level) / 2);
  return ci;
}

double nll_per_token(double total_nats, double tokens) {
  MK_CHECK(tokens > 0, "nll_per_token: no tokens");
  return total_nats / tokens;
}
double perplexity_of(double total_nats, double tokens) {
  return std::exp(nll_per_token(total_nats, tokens));
}
double bits_per_unit(double total_nats, double units) {
  MK_CHECK(units > 0, "bits_per_unit: no units (bytes, bases or samples)");
  return total_nats / (units * std::log(2.0));
}

}  // namespace mk::eval
