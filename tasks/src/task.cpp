#include "mambakit/tasks/task.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace mk::tasks {

std::string TaskSpec::where_of(const std::string& option) const {
  auto it = where.find(option);
  return it != where.end() ? it->second : section_where;
}

std::string TaskSpec::data_where_of(const std::string& key) const {
  auto it = data_where.find(key);
  if (it != data_where.end()) return it->second;
  it = data_where.find("");
  return it != data_where.end() ? it->second : section_where;
}

void TaskSpec::check_options(const std::vector<std::string>& known) const {
  for (auto it = options.begin(); it != options.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    std::string msg = where_of(it.key()) + ": unknown key 'task." + it.key() + "' for task '" +
                      name + "'";
    std::vector<std::string> full;
    for (const auto& k : known) full.push_back(k);
    msg += did_you_mean(it.key(), full);
    if (known.empty()) msg += " (this task takes no options)";
    throw ConfigError(msg);
  }
}

void TokenMetrics::add(const TokenBatch& b, const float* logits, int vocab) {
  const size_t n = b.is_classification() ? b.labels.size() : size_t(b.batch) * b.len;
  const int32_t* targets = b.loss_targets();
  for (size_t i = 0; i < n; ++i) {
    const int t = targets[i];
    if (t < 0) continue;
    MK_CHECK(t < vocab, "metrics: target " + std::to_string(t) + " outside the vocabulary of " +
                            std::to_string(vocab));
    const float* l = logits + i * size_t(vocab);
    int arg = 0;
    for (int v = 1; v < vocab; ++v)
      if (l[v] > l[arg]) arg = v;
    double s = 0;
    for (int v = 0; v < vocab; ++v) s += std::exp(double(l[v]) - double(l[arg]));
    nll_ += double(l[arg]) + std::log(s) - double(l[t]);
    correct_ += arg == t;
    n_ += 1;
  }
}

std::map<std::string, double> TokenMetrics::result() const {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double loss = n_ > 0 ? nll_ / n_ : nan;
  return {{"loss", loss},
          {"bits", loss / std::log(2.0)},
          {"ppl", std::exp(loss)},
          {"accuracy", n_ > 0 ? correct_ / n_ : nan}};
}

long scored_targets(const TokenBatch& b) {
  const size_t n = b.is_classification() ? b.labels.size() : b.targets.size();
  const int32_t* t = b.loss_targets();
  long c = 0;
  for (size_t i = 0; i < n; ++i) c += t[i] >= 0;
  return c;
}

namespace {

// Appends rows [r0, r1) of `from` (ids, targets, lengths) to `to`.
void append_rows(const TokenBatch& from, size_t r0, size_t r1, TokenBatch& to) {
  const size_t L = size_t(from.len);
  to.ids.insert(to.ids.end(), from.ids.begin() + r0 * L, from.ids.begin() + r1 * L);
  if (!from.targets.empty())  // classification batches may carry labels only
    to.targets.insert(to.targets.end(), from.targets.begin() + r0 * L, from.targets.begin() + r1 * L);
  if (!from.lengths.empty())
    to.lengths.insert(to.lengths.end(), from.lengths.begin() + r0, from.lengths.begin() + r1);
  to.batch += int(r1 - r0);
}

}  // namespace

TokenBatch batch_part(const TokenBatch& b, int part, int parts) {
  MK_CHECK(parts >= 1 && part >= 0 && part < parts, "batch_part: part " + std::to_string(part) +
                                                        " of " + std::to_string(parts));
  const bool pairs = b.is_classification() && 2 * b.labels.size() == size_t(b.batch);
  const size_t examples = pairs ? b.labels.size() : size_t(b.batch);
  const size_t e0 = examples * size_t(part) / size_t(parts), e1 = examples * size_t(part + 1) / size_t(parts);
  TokenBatch out;
  out.len = b.len;
  if (pairs) {  // the first documents of the pairs, then the second ones
    append_rows(b, e0, e1, out);
    append_rows(b, examples + e0, examples + e1, out);
  } else {
    append_rows(b, e0, e1, out);
  }
  if (b.is_classification()) out.labels.assign(b.labels.begin() + long(e0), b.labels.begin() + long(e1));
  return out;
}

bool Task::higher_is_better(const std::string& metric) const {
  return metric.find("acc") != std::string::npos;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(const std::string& given, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& c : candidates) {
    const size_t d = edit_distance(given, c);
    if (d < best_d) best_d = d, best = c;
  }
  // A typo changes a few characters; allow about one edit in three.
  const size_t limit = std::max<size_t>(2, std::min(given.size(), best.size()) / 3);
  return best_d <= limit && best_d < given.size() ? best : "";
}

std::string did_you_mean(const std::string& given, const std::vector<std::string>& candidates) {
  const std::string m = closest_match(given, candidates);
  return m.empty() ? "" : " (did you mean '" + m + "'?)";
}

}  // namespace mk::tasks
