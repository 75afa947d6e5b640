// Confusion matrix of a classification task: rows are the true class,
// columns the predicted one (argmax of the logits), so the diagonal holds the
// correct predictions. Written into a run as confusion.json and printed as a
// table by `mambakit train` and `mambakit eval` for classification tasks.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mambakit/tasks/task.h"

namespace mk::tasks {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int classes);

  int classes() const { return n_; }
  // One prediction; throws on a class outside [0, classes).
  void add(int truth, int predicted);
  // The argmax of each row of logits (one row per label, vocab) against the
  // batch's labels.
  void add(const TokenBatch& b, const float* logits, int vocab);

  long count(int truth, int predicted) const { return m_[size_t(truth) * n_ + predicted]; }
  long total() const;
  long row_total(int truth) const;
  double accuracy() const;           // trace / total (NaN when empty)
  double balanced_accuracy() const;  // mean recall over the classes that occur
  // The counts, row-major, as numbers (data-parallel evaluation adds them up
  // over the ranks), and setting them back.
  std::vector<double> sums() const { return std::vector<double>(m_.begin(), m_.end()); }
  void set_sums(const double* s) {
    for (size_t i = 0; i < m_.size(); ++i) m_[i] = long(s[i]);
  }

  // {"classes": [...], "rows": "true class", "columns": "predicted class",
  //  "matrix": [[...]], "accuracy", "balanced_accuracy", "recall": {...}}.
  nlohmann::json to_json(const std::vector<std::string>& names) const;
  // A fixed-width table with the class names, rows = truth, and each row's recall.
  std::string to_text(const std::vector<std::string>& names) const;

 private:
  int n_;
  std::vector<long> m_;
};

// Implemented by classification tasks whose classes have names.
class NamedClasses {
 public:
  virtual ~NamedClasses() = default;
  virtual std::vector<std::string> class_names() const = 0;
};

// The task's class names, or "0", "1", ... when it has none.
std::vector<std::string> class_names(const Task& task);

}  // namespace mk::tasks
