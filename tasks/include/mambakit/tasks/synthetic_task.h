// The synthetic tasks of the Mamba paper (Section 4.1) as runner tasks:
//   selective_copying  K data tokens scattered among noise, recalled in order
//                      at K marker positions (datasets/synthetic.h)
//   induction_heads    recall the token that followed the first trigger when
//                      the trigger appears again at the end
// Examples are generated, so there are no files and no epochs:
//   data.seq_len      L, the training length
//   task.vocab        V (default 16; tokens 0..V-1, the model's vocabulary)
//   task.n_data       K, selective copying only (default 16)
//   task.eval_lengths lengths besides L to evaluate at (length extrapolation),
//                     e.g. [1024, 4096]
//   task.val_size     sequences per evaluation split and length (default 512)
// Splits: "val" and "test" (length L; fixed examples, the same for every run
// and seed, different between val and test), "val_L<n>" and "test_L<n>" for
// each n in eval_lengths, and "extrapolation" (val, then every val_L<n>) and
// "test_extrapolation" (test, then every test_L<n>). Tune on val, report test.
// Metrics: accuracy (argmax over the scored positions), loss (nats per
// scored token), seq_accuracy (sequences with every scored token right), and
// accuracy_L<n> for n = L and each eval length (the positions of sequences of
// that length; NaN in a split that has none). So
//   mambakit eval RUN --split test_extrapolation --metrics accuracy_L256,accuracy_L4096
// reports the extrapolation numbers of a trained run.
// Training batches come from a mt19937_64 seeded with train.seed; its state
// is the sampler state of a checkpoint, so a resumed run draws the same data.
#pragma once
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mambakit/datasets/synthetic.h"
#include "mambakit/tasks/task.h"

namespace mk::tasks {

class SyntheticTask : public Task {
 public:
  enum class Kind { kSelectiveCopying, kInductionHeads };
  SyntheticTask(Kind kind, const TaskSpec& spec);

  std::string name() const override;
  int vocab_size() const override { return vocab_; }
  int seq_len() const override { return len_; }

  TokenBatch next_train_batch(int batch) override;
  std::string sampler_state() const override;
  void set_sampler_state(const std::string& state) override;

  std::vector<std::string> splits() const override;
  std::vector<TokenBatch> eval_batches(const std::string& split, int batch,
                                       size_t max_sequences) const override;
  std::vector<std::string> metric_names() const override;
  std::vector<std::string> default_metrics() const override { return {"accuracy", "loss"}; }
  bool higher_is_better(const std::string& metric) const override;
  std::unique_ptr<MetricAccumulator> metrics() const override;

  // Tokens as space-separated integers (there is no text form).
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;

  // One example of length len from rng.
  data::SyntheticExample example(int len, std::mt19937_64& rng) const;
  // Every length evaluated: L, then eval_lengths.
  const std::vector<int>& lengths() const { return lengths_; }

 private:
  // The length of split, or 0 for the two extrapolation splits; ConfigError
  // if unknown.
  int split_length(const std::string& split) const;
  // val_size fixed examples of (split, length) batched.
  void append_split(const std::string& split, int len, int batch, size_t max_sequences,
                    std::vector<TokenBatch>& out) const;

  Kind kind_;
  int len_ = 256, vocab_ = 16, n_data_ = 16, val_size_ = 512;
  std::vector<int> lengths_;
  std::mt19937_64 rng_;
};

std::unique_ptr<Task> make_selective_copying_task(const TaskSpec& spec);
std::unique_ptr<Task> make_induction_heads_task(const TaskSpec& spec);

}  // namespace mk::tasks
