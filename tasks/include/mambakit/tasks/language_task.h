// The `language` task: next-token prediction on text.
//   data.path       one or more text files, read as bytes and concatenated;
//                   or one folder made by `mambakit prepare text` (token
//                   shards, memory-mapped; its splits are the folder's)
//   data.tokenizer  tokenizer.json (byte-level BPE), a SentencePiece .model,
//                   or a folder holding one; unset: bytes (vocabulary 256).
//                   A prepared folder brings its own tokenizer.
//   data.split      contiguous train / val [/ test] fractions of the bytes,
//                   each part tokenized on its own (text files only)
//   data.seq_len    window length in tokens; training draws random windows
//                   (WindowSampler), evaluation scores consecutive windows
// Metrics: loss (nats per token), bpb (bits per byte of text: the NLL over
// the bytes the scored tokens stand for), ppl (per token), accuracy (per
// token). With bytes, tokens are bytes and bpb is loss / ln 2.
#pragma once
#include <memory>

#include "mambakit/datasets/tokenizer.h"
#include "mambakit/tasks/task.h"

namespace mk::tasks {

class LanguageTask : public Task {
 public:
  explicit LanguageTask(const TaskSpec& spec);

  std::string name() const override { return "language"; }
  int vocab_size() const override { return tokenizer_->vocab_size(); }
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

  // The tokens of a split ("train", "val", "test").
  const TokenStream& split_tokens(const std::string& split) const;
  const data::Tokenizer& tokenizer() const { return *tokenizer_; }
  // Where the tokenizer was read from ("bytes" for bytes): what a run
  // directory copies so its models read text the same way.
  const std::string& tokenizer_source() const { return tokenizer_source_; }
  // Bytes of text each token id stands for (Tokenizer::token_bytes).
  const std::vector<uint32_t>& token_bytes() const { return token_bytes_; }
  // Bytes the tokens [beg, beg + n) of a split stand for.
  double bytes_of(const std::vector<int32_t>& ids, size_t beg, size_t n) const;

 private:
  void load_text(const TaskSpec& spec);
  void load_prepared(const TaskSpec& spec, const std::string& dir);
  size_t index_of(const std::string& split) const;

  int seq_len_;
  std::unique_ptr<data::Tokenizer> tokenizer_;
  std::string tokenizer_source_ = "bytes";
  std::vector<uint32_t> token_bytes_;
  std::vector<std::string> split_names_;
  std::vector<TokenStream> parts_;  // train, val[, test]
  std::unique_ptr<WindowSampler> sampler_;
};

std::unique_ptr<Task> make_language_task(const TaskSpec& spec);

}  // namespace mk::tasks
