#include "mambakit/datasets/markov.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "mambakit/error.h"

namespace mk::data {

MarkovModel::MarkovModel(int order, int alphabet, double prior)
    : order_(order), alphabet_(alphabet), prior_(prior) {
  if (!(prior >= 0)) throw Error("Markov model: prior strength must be >= 0 (0 = Witten-Bell)");
  if (order < 0) throw Error("Markov model: order must be >= 0, got " + std::to_string(order));
  if (alphabet < 2) throw Error("Markov model: alphabet must have >= 2 symbols");
  double entries = std::pow(double(alphabet), order + 1);
  if (entries > double(1 << 26))
    throw Error("Markov model: alphabet " + std::to_string(alphabet) + " at order " + std::to_string(order) +
                " needs " + std::to_string(uint64_t(entries)) + " counts (limit 2^26); lower the order");
  size_t ctx = 1;
  for (int j = 0; j <= order; ++j) {
    counts_.emplace_back(ctx * size_t(alphabet), 0);
    totals_.emplace_back(ctx, 0);
    distinct_.emplace_back(ctx, 0);
    ctx *= size_t(alphabet);
  }
}

void MarkovModel::fit(const int32_t* ids, size_t n) {
  int avail = 0;  // valid symbols just before i
  for (size_t i = 0; i < n; ++i) {
    const int32_t x = ids[i];
    if (x < 0 || x >= alphabet_) {
      avail = 0;
      continue;
    }
    // Context of length j: ids[i-j..i-1] as a base-alphabet number, most recent lowest.
    size_t c = 0, scale = 1;
    const int top = std::min(avail, order_);
    for (int j = 0; j <= top; ++j) {
      if (j > 0) c += size_t(ids[i - size_t(j)]) * scale, scale *= size_t(alphabet_);
      uint32_t& cnt = counts_[size_t(j)][c * size_t(alphabet_) + size_t(x)];
      if (cnt == 0) ++distinct_[size_t(j)][c];
      ++cnt;
      ++totals_[size_t(j)][c];
    }
    ++avail;
  }
}

double MarkovModel::prob_at(const int32_t* ids, size_t i, int avail) const {
  const int32_t x = ids[i];
  double p = 1.0 / alphabet_;
  size_t c = 0, scale = 1;
  const int top = std::min(avail, order_);
  for (int j = 0; j <= top; ++j) {
    if (j > 0) c += size_t(ids[i - size_t(j)]) * scale, scale *= size_t(alphabet_);
    const double tot = totals_[size_t(j)][c];
    if (tot == 0) break;  // longer contexts are unseen too
    const double t = prior_ > 0 ? prior_ : double(distinct_[size_t(j)][c]);
    p = (counts_[size_t(j)][c * size_t(alphabet_) + size_t(x)] + t * p) / (tot + t);
  }
  return p;
}

MarkovModel::Score MarkovModel::score(const int32_t* ids, size_t n) const {
  Score s;
  int avail = 0;
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= alphabet_) {
      avail = 0;
      s.skipped += 1;
      continue;
    }
    s.bits -= std::log2(prob_at(ids, i, avail));
    s.symbols += 1;
    ++avail;
  }
  return s;
}

double MarkovModel::prob(const int32_t* ctx, int len, int x) const {
  if (len < 0 || len > order_) throw Error("Markov model: context length " + std::to_string(len) + " > order");
  if (x < 0 || x >= alphabet_) throw Error("Markov model: symbol " + std::to_string(x) + " outside the alphabet");
  std::vector<int32_t> seq(ctx, ctx + len);
  for (int32_t v : seq)
    if (v < 0 || v >= alphabet_) throw Error("Markov model: context symbol outside the alphabet");
  seq.push_back(x);
  return prob_at(seq.data(), size_t(len), len);
}

}  // namespace mk::data
