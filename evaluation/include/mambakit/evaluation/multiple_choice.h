// Zero-shot multiple choice in the manner of lm-evaluation-harness: each
// choice is scored by the model's log-likelihood of "delimiter + choice"
// after the context; the prediction is the best summed log-likelihood (acc)
// and the best log-likelihood per byte of the choice (acc_norm, the
// harness's length normalisation by the choice's character count).
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace mk::eval {

struct McItem {
  std::string context;
  std::vector<std::string> choices;
  int gold = 0;
};

// JSON Lines, one object per line: {"context": str, "choices": [str, ...],
// "gold": int}; blank lines are skipped. Throws mk::Error "<file>:<line>:
// <why>" for invalid JSON, missing or mistyped keys, fewer than 2 choices or
// gold out of range.
std::vector<McItem> read_mc_jsonl(const std::string& path);

// log p(continuation | context) under the model, in nats (summed over the
// continuation's tokens).
using LoglikFn = std::function<double(const std::string& context,
                                      const std::string& continuation)>;

struct McItemScore {
  std::vector<double> loglik;  // per choice
  int pred = 0;                // argmax loglik (first on ties)
  int pred_norm = 0;           // argmax loglik / bytes of the choice
};
McItemScore score_mc_item(const McItem& item, const LoglikFn& loglik,
                          const std::string& delimiter = " ");

struct McResult {
  size_t n = 0;
  double acc = 0, acc_norm = 0;
  double acc_stderr = 0, acc_norm_stderr = 0;  // sample std of correctness / sqrt(n)
  std::vector<McItemScore> items;
};
McResult score_multiple_choice(const std::vector<McItem>& items, const LoglikFn& loglik,
                               const std::string& delimiter = " ");

}  // namespace mk::eval
