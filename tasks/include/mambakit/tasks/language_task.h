// The `language` task: next-byte prediction on text files.
//   data.path   one or more files, read as bytes and concatenated
//   data.split  contiguous train / val [/ test] fractions of those bytes
//   data.seq_len  window length; training draws random windows
//               (WindowSampler), evaluation scores consecutive windows
// Options (task section): tokenizer: byte (the only one so far).
// Metrics: loss (nats per byte), bpb (bits per byte), ppl, accuracy.
#pragma once
#include <memory>

#include "mambakit/tasks/task.h"

namespace mk::tasks {

class LanguageTask : public Task {
 public:
  explicit LanguageTask(const TaskSpec& spec);

  std::string name() const override { return "language"; }
  int vocab_size() const override { return 256; }
  int seq_len() const override { return seq_len_; }

  TokenBatch next_train_batch(int batch) override { return sampler_->next(batch); }
  std::string sampler_state() const override { return sampler_->rng_state(); }
  void set_sampler_state(const std::string& s) override { sampler_->set_rng_state(s); }
  double train_tokens() const override { return double(parts_[0].size() - 1); }

  std::vector<std::string> splits() const override;
  std::vector<TokenBatch> eval_batches(const std::string& split, int batch,
                                       size_t max_sequences) const override;
  std::vector<std::string> metric_names() const override;
  std::vector<std::string> default_metrics() const override { return {"loss", "bpb"}; }
  std::unique_ptr<MetricAccumulator> metrics() const override;

  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;

  // The bytes of a split ("train", "val", "test").
  const std::vector<uint8_t>& split_bytes(const std::string& split) const;

 private:
  int seq_len_;
  std::vector<std::vector<uint8_t>> parts_;  // train, val[, test]
  std::unique_ptr<WindowSampler> sampler_;
};

std::unique_ptr<Task> make_language_task(const TaskSpec& spec);

}  // namespace mk::tasks
