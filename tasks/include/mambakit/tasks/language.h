// Language modelling on a byte stream: random windows of seq_len + 1 bytes
// become (input, next-byte target) pairs. The sampler's RNG state is part of
// a checkpoint, so a resumed run draws exactly the batches it would have.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace mk::tasks {

struct TokenBatch {
  int batch = 0, len = 0;
  std::vector<int32_t> ids;      // (batch, len)
  std::vector<int32_t> targets;  // (batch, len), -1 = no target
  // Classification batches only (tasks with num_classes() > 0): one label per
  // example, and each sequence's true length (batch) when shorter sequences
  // are padded to len (empty: all have length len). An example is one
  // sequence (labels: batch), or for a pair task (Task::pair_inputs) rows p
  // and batch/2 + p (labels: batch/2). Code scoring labels iterates
  // labels.size(), never batch.
  std::vector<int32_t> labels;
  std::vector<int32_t> lengths;
  bool is_classification() const { return !labels.empty(); }
  const int32_t* lengths_or_null() const { return lengths.empty() ? nullptr : lengths.data(); }
  // What the model's loss compares its logits with.
  const int32_t* loss_targets() const { return labels.empty() ? targets.data() : labels.data(); }
};

class WindowSampler {
 public:
  WindowSampler(const std::vector<uint8_t>* tokens, int seq_len, uint64_t seed);
  TokenBatch next(int batch);
  std::string rng_state() const;
  void set_rng_state(const std::string& s);

 private:
  const std::vector<uint8_t>* tokens_;
  int seq_len_;
  std::mt19937_64 rng_;
};

// The consecutive, non-overlapping windows of a token stream, for
// evaluation: window i covers tokens [i*len, (i+1)*len] (the +1 is the last
// target). At most max_windows windows (0 = all).
std::vector<TokenBatch> eval_windows(const std::vector<uint8_t>& tokens, int seq_len, int batch,
                                     size_t max_windows);

}  // namespace mk::tasks
