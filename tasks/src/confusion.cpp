#include "mambakit/tasks/confusion.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "mambakit/error.h"

namespace mk::tasks {

ConfusionMatrix::ConfusionMatrix(int classes) : n_(classes), m_(size_t(classes) * size_t(classes), 0) {
  MK_CHECK(classes > 0, "confusion matrix: needs at least one class");
}

void ConfusionMatrix::add(int truth, int predicted) {
  MK_CHECK(truth >= 0 && truth < n_ && predicted >= 0 && predicted < n_,
           "confusion matrix: class pair (" + std::to_string(truth) + ", " + std::to_string(predicted) +
               ") outside the " + std::to_string(n_) + " classes");
  ++m_[size_t(truth) * n_ + predicted];
}

void ConfusionMatrix::add(const TokenBatch& b, const float* logits, int vocab) {
  MK_CHECK(b.is_classification(), "confusion matrix: the batch has no labels");
  MK_CHECK(vocab == n_, "confusion matrix: logits have " + std::to_string(vocab) + " classes, expected " +
                            std::to_string(n_));
  for (size_t i = 0; i < b.labels.size(); ++i) {  // one logits row per label (pairs: batch / 2)
    if (b.labels[i] < 0) continue;
    const float* l = logits + i * size_t(vocab);
    add(b.labels[i], int(std::max_element(l, l + vocab) - l));
  }
}

long ConfusionMatrix::total() const {
  long t = 0;
  for (long c : m_) t += c;
  return t;
}

long ConfusionMatrix::row_total(int truth) const {
  long t = 0;
  for (int p = 0; p < n_; ++p) t += count(truth, p);
  return t;
}

double ConfusionMatrix::accuracy() const {
  long trace = 0;
  for (int c = 0; c < n_; ++c) trace += count(c, c);
  const long t = total();
  return t > 0 ? double(trace) / double(t) : std::numeric_limits<double>::quiet_NaN();
}

double ConfusionMatrix::balanced_accuracy() const {
  double sum = 0;
  int rows = 0;
  for (int c = 0; c < n_; ++c) {
    const long r = row_total(c);
    if (r == 0) continue;
    sum += double(count(c, c)) / double(r);
    ++rows;
  }
  return rows > 0 ? sum / rows : std::numeric_limits<double>::quiet_NaN();
}

namespace {
std::vector<std::string> names_or_numbers(const std::vector<std::string>& names, int n) {
  if (int(names.size()) == n) return names;
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(std::to_string(i));
  return out;
}
}  // namespace

nlohmann::json ConfusionMatrix::to_json(const std::vector<std::string>& names_in) const {
  const auto names = names_or_numbers(names_in, n_);
  nlohmann::json rows = nlohmann::json::array(), recall = nlohmann::json::object();
  for (int t = 0; t < n_; ++t) {
    nlohmann::json row = nlohmann::json::array();
    for (int p = 0; p < n_; ++p) row.push_back(count(t, p));
    rows.push_back(row);
    const long r = row_total(t);
    recall[names[size_t(t)]] = r > 0 ? nlohmann::json(double(count(t, t)) / double(r)) : nlohmann::json(nullptr);
  }
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"classes", names},
          {"rows", "true class"},
          {"columns", "predicted class"},
          {"matrix", rows},
          {"total", total()},
          {"accuracy", num(accuracy())},
          {"balanced_accuracy", num(balanced_accuracy())},
          {"recall", recall}};
}

std::string ConfusionMatrix::to_text(const std::vector<std::string>& names_in) const {
  const auto names = names_or_numbers(names_in, n_);
  size_t w = 9;  // "true\\pred"
  for (const auto& s : names) w = std::max(w, s.size());
  std::string out;
  char buf[64];
  auto pad = [&](const std::string& s) { return std::string(w > s.size() ? w - s.size() : 0, ' ') + s; };
  out = pad("true\\pred");
  for (const auto& s : names) out += "  " + pad(s);
  out += "  " + pad("recall") + "\n";
  for (int t = 0; t < n_; ++t) {
    out += pad(names[size_t(t)]);
    for (int p = 0; p < n_; ++p) out += "  " + pad(std::to_string(count(t, p)));
    const long r = row_total(t);
    if (r > 0) std::snprintf(buf, sizeof buf, "%.3f", double(count(t, t)) / double(r));
    else std::snprintf(buf, sizeof buf, "-");
    out += "  " + pad(buf) + "\n";
  }
  std::snprintf(buf, sizeof buf, "accuracy %.4f, balanced accuracy %.4f, %ld windows", accuracy(),
                balanced_accuracy(), total());
  out += buf;
  out += "\n";
  return out;
}

std::vector<std::string> class_names(const Task& task) {
  if (const auto* n = dynamic_cast<const NamedClasses*>(&task)) return n->class_names();
  std::vector<std::string> out;
  for (int i = 0; i < task.num_classes(); ++i) out.push_back(std::to_string(i));
  return out;
}

}  // namespace mk::tasks
