// Language modelling on a token stream: random windows of seq_len + 1 tokens
// become (input, next-token target) pairs. The sampler's RNG state is part of
// a checkpoint, so a resumed run draws exactly the batches it would have.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace mk::data {
class ShardReader;
}

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

// The token ids of one split: held in memory (text tokenized when the task
// loads it) or read from a memory-mapped shard (`mambakit prepare text`),
// so a corpus larger than memory trains without a copy.
class TokenStream {
 public:
  TokenStream() = default;
  explicit TokenStream(std::vector<int32_t> ids) : ids_(std::move(ids)) {}
  explicit TokenStream(std::shared_ptr<const data::ShardReader> shard);
  uint64_t size() const;
  // Tokens [beg, beg + n); the range must lie inside the stream.
  void read(uint64_t beg, size_t n, int32_t* out) const;
  std::vector<int32_t> read(uint64_t beg, size_t n) const;
  std::vector<int32_t> all() const { return read(0, size_t(size())); }
  int32_t operator[](uint64_t i) const;

 private:
  std::vector<int32_t> ids_;
  std::shared_ptr<const data::ShardReader> shard_;
};

class WindowSampler {
 public:
  WindowSampler(const TokenStream* tokens, int seq_len, uint64_t seed);
  TokenBatch next(int batch);
  std::string rng_state() const;
  void set_rng_state(const std::string& s);

 private:
  const TokenStream* tokens_;
  int seq_len_;
  std::mt19937_64 rng_;
};

// The consecutive, non-overlapping windows of a token stream, for
// evaluation: window i covers tokens [i*len, (i+1)*len] (the +1 is the last
// target). At most max_windows windows (0 = all).
std::vector<TokenBatch> eval_windows(const TokenStream& tokens, int seq_len, int batch,
                                     size_t max_windows);

}  // namespace mk::tasks
