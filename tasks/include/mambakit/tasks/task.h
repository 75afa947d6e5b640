// The task interface: what turns a dataset into training batches, evaluation
// batches and metrics, so the experiment runner's loop knows nothing of text,
// DNA or audio. A task is created by name from the `task` section of an
// experiment config (plus the `data` section) through a registry; new task
// modules add one line to tasks/src/registry.cpp, or call register_task()
// at run time (tests do).
//
// Batches are LM-style: ids (B, L) and per-position targets (B, L), with -1
// meaning "no target here" (padding, the prompt part of a copying task). A
// classification task's batches carry one label per example (see
// TokenBatch::labels; a pair task's examples are two rows each).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mambakit/error.h"
#include "mambakit/tasks/language.h"

namespace mk::tasks {

// A mistake in a config (unknown key, wrong type, bad value): the CLI reports
// it as a usage error (exit code 2). The message names file, line and key.
struct ConfigError : Error {
  using Error::Error;
};

// The `data` section of an experiment config.
struct DataSpec {
  std::vector<std::string> paths;     // input files (read in order, concatenated)
  int seq_len = 256;                  // tokens per training window
  std::vector<double> split{0.9, 0.1};  // train / val [/ test] fractions, contiguous
  std::string tokenizer;              // language task: tokenizer file or folder ("" = bytes)
};

// Everything a task factory sees.
struct TaskSpec {
  std::string name;
  nlohmann::json options = nlohmann::json::object();  // the task section without `name`
  std::map<std::string, std::string> where;  // option -> "file:line" (or "--set ...")
  std::string section_where;                 // "file:line" of the task section
  DataSpec data;
  std::map<std::string, std::string> data_where;  // "path" / "split" / ... -> "file:line"
  uint64_t seed = 1;

  // "file:line" of an option (the section's place when the option has none).
  std::string where_of(const std::string& option) const;
  std::string data_where_of(const std::string& key) const;
  // Throws ConfigError for any option not in `known`, with a "did you mean".
  void check_options(const std::vector<std::string>& known) const;
};

// Accumulates a task's metrics over evaluation batches.
class MetricAccumulator {
 public:
  virtual ~MetricAccumulator() = default;
  // The model's logits on batch b: (B, L, V) per position, or (labels, C)
  // for a classification batch (b.labels set: B rows, or B/2 for pairs);
  // vocab is V or C.
  virtual void add(const TokenBatch& b, const float* logits, int vocab) = 0;
  // Metric name -> value, for the names the task lists in metric_names().
  virtual std::map<std::string, double> result() const = 0;
  // Data-parallel evaluation: the running sums as numbers (as many, in the
  // same order, on every rank for one task and split), and replacing them by
  // the sums over the ranks. Empty: this accumulator cannot be merged, and
  // each rank scores the whole split instead.
  virtual std::vector<double> sums() const { return {}; }
  virtual void set_sums(const double* s) {}
};

// Cross-entropy and argmax accuracy over the positions with a target >= 0
// (over the sequences' labels for a classification batch):
// loss (mean nats per target), bits (loss / ln 2), ppl (exp loss), accuracy.
// Sums in double; log-sum-exp per position, so no overflow.
class TokenMetrics : public MetricAccumulator {
 public:
  void add(const TokenBatch& b, const float* logits, int vocab) override;
  std::map<std::string, double> result() const override;
  std::vector<double> sums() const override { return {nll_, correct_, n_}; }
  void set_sums(const double* s) override { nll_ = s[0], correct_ = s[1], n_ = s[2]; }
  static constexpr size_t kSums = 3;
  double targets() const { return n_; }

 private:
  double nll_ = 0, correct_ = 0, n_ = 0;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  virtual int vocab_size() const = 0;
  virtual int seq_len() const = 0;
  // Sequence classification: the number of classes (0: per-position targets,
  // the LM head) and how the classifier pools positions ("mean" or "last").
  // A classification task's batches carry labels (and lengths if padded).
  virtual int num_classes() const { return 0; }
  virtual std::string pooling() const { return "mean"; }
  // True where the classification batches hold pairs of sequences (LRA
  // Retrieval's two-tower mode): a batch of P examples has 2P rows, the
  // first sequences of the pairs, then the second ones (example p is rows
  // p and P + p), 2P lengths and P labels. The model is then a pair
  // classifier (ModelConfig::pair_classifier), and the batch size of
  // next_train_batch / eval_batches counts pairs.
  virtual bool pair_inputs() const { return false; }

  // --- training ---
  // The next training batch; advances the sampler (and nothing else).
  virtual TokenBatch next_train_batch(int batch) = 0;
  // The sampler's position as text, for checkpoints; set_ restores it so a
  // resumed run draws exactly the batches it would have drawn.
  virtual std::string sampler_state() const = 0;
  virtual void set_sampler_state(const std::string& state) = 0;
  // Tokens in one pass over the training split (train.epochs -> steps);
  // 0 where the data is generated and has no epochs.
  virtual double train_tokens() const { return 0; }

  // --- evaluation ---
  // The splits this task can evaluate ("train", "val", "test", ...).
  virtual std::vector<std::string> splits() const = 0;
  // Deterministic batches of a split (the same every call): at most
  // max_sequences sequences (0 = the whole split), batch at a time.
  // Throws ConfigError naming the split if the task has no such split.
  virtual std::vector<TokenBatch> eval_batches(const std::string& split, int batch,
                                               size_t max_sequences) const = 0;
  // The metrics metrics() reports, and those reported when a config does not
  // choose (the first is the default for best-checkpoint tracking).
  virtual std::vector<std::string> metric_names() const = 0;
  virtual std::vector<std::string> default_metrics() const = 0;
  // True where larger is better (accuracy), false where smaller is (loss).
  virtual bool higher_is_better(const std::string& metric) const;
  virtual std::unique_ptr<MetricAccumulator> metrics() const = 0;

  // --- generation ---
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
};

// --- data parallelism ---
// The targets a batch's loss averages over: targets >= 0 for per-position
// batches, labels >= 0 for classification batches.
long scored_targets(const TokenBatch& b);
// Part `part` of `parts` of a batch, split by examples (rows; pairs for a
// pair batch, whose rows p and P + p stay together): examples
// [part*E/parts, (part+1)*E/parts), so the parts are disjoint, cover the
// batch, and differ in size by at most one. May be empty (batch 0).
TokenBatch batch_part(const TokenBatch& b, int part, int parts);

using TaskFactory = std::function<std::unique_ptr<Task>(const TaskSpec&)>;

struct TaskInfo {
  std::string name;
  std::string doc;  // one line, for `mambakit --help`
  TaskFactory make;
};

// The registered tasks: the built-ins of registry.cpp, then run-time ones.
std::vector<TaskInfo> task_infos();
std::vector<std::string> task_names();
// Adds (or replaces) a task by name.
void register_task(const TaskInfo& info);
// Creates spec.name; an unknown name is a ConfigError with a "did you mean".
std::unique_ptr<Task> make_task(const TaskSpec& spec);

// --- helpers shared by config readers ---
// Levenshtein distance.
size_t edit_distance(const std::string& a, const std::string& b);
// The candidate nearest to `given` if it is near enough to be a likely typo,
// else "".
std::string closest_match(const std::string& given, const std::vector<std::string>& candidates);
// " (did you mean 'x'?)" or "".
std::string did_you_mean(const std::string& given, const std::vector<std::string>& candidates);

}  // namespace mk::tasks
