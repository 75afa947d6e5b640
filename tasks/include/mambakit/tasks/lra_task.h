// Long Range Arena tasks (Tay et al. 2021) as sequence classification:
//   lra_listops     ListOps expressions -> value 0..9        (vocab 15)
//   lra_text        byte-level documents -> class (IMDB sentiment, or the
//                   man-page stand-in: section 2 / 3 / 7)
//   lra_retrieval   document pairs -> linked or not (AAN, or man pages
//                   linked by SEE ALSO); task.mode below
//   lra_image       images pixel by pixel -> class (grayscale CIFAR-10, or
//                   any IDX set such as Fashion-MNIST)
//   lra_pathfinder  Pathfinder / Path-X images -> connected or not
//
// Where the data comes from (the `data` and `task` sections of a config):
//   data.path      the directory holding the task's files (see lra.h for the
//                  layouts each reader takes); data.seq_len is the length
//                  sequences are truncated and padded to (per document for
//                  retrieval).
//   task.generate  ListOps and Pathfinder only, used when data.path is
//                  empty: {n_train, n_val, n_test, seed, ...generator
//                  options} generates the data set into task.cache (default
//                  data/lra_gen/<task>-<hash of the options>) once, and reads
//                  it from there afterwards.
// Other options: pooling (mean | last), max_train / max_eval (keep that
// many examples of a split, drawn at random with a fixed seed; 0 = all),
// val_fraction / test_fraction (splits cut from data that ships without
// them), dataset (lra_image: auto | cifar10 | idx; lra_text: auto | tsv |
// imdb), mode (lra_retrieval: concat | two_tower, see below), levels
// (lra_image / lra_pathfinder: grey levels kept, 2..256; pixel p becomes
// p * levels / 256).
//
// Retrieval modes:
//   concat     one tower: both documents in one sequence of 2 seq_len + 1
//              tokens, separated by a separator token.
//   two_tower  the published model: each document is its own sequence of
//              seq_len tokens, both run through the same (shared) backbone
//              and pooled separately, then classified from [u, v, u*v,
//              u-v] (pair_inputs(); the model is a pair classifier). A
//              batch of P pairs has 2P rows: the first documents, then the
//              second ones, and P labels; batch_size counts pairs.
//
// Token ids are the reader's ids; id vocab (= the reader's vocab size) is the
// padding token, and for concat retrieval vocab + 1 separates the two
// documents.
// Batches are padded to the fixed task length (so a bidirectional model sees
// the same padding for an example in training and evaluation) and carry
// each sequence's true length, which the classifier's pooling uses.
// Metrics: accuracy, loss (nats per example), majority (the share of the most
// frequent label among the scored examples: the majority-class baseline).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mambakit/datasets/lra.h"
#include "mambakit/tasks/task.h"

namespace mk::tasks {

class LraTask : public Task {
 public:
  // kind: listops, text, retrieval, image, pathfinder.
  LraTask(const std::string& kind, const TaskSpec& spec);

  std::string name() const override { return "lra_" + kind_; }
  int vocab_size() const override { return vocab_; }
  int seq_len() const override { return len_; }
  int num_classes() const override { return classes_; }
  std::string pooling() const override { return pooling_; }
  bool pair_inputs() const override { return two_tower_; }

  TokenBatch next_train_batch(int batch) override;
  std::string sampler_state() const override;
  void set_sampler_state(const std::string& state) override;
  double train_tokens() const override {
    return double(train_.examples.size()) * len_ * (two_tower_ ? 2 : 1);
  }

  std::vector<std::string> splits() const override { return {"train", "val", "test"}; }
  std::vector<TokenBatch> eval_batches(const std::string& split, int batch,
                                       size_t max_sequences) const override;
  std::vector<std::string> metric_names() const override { return {"accuracy", "loss", "majority"}; }
  std::vector<std::string> default_metrics() const override { return {"accuracy", "loss"}; }
  std::unique_ptr<MetricAccumulator> metrics() const override;

  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;

  const data::lra::Dataset& split_data(const std::string& split) const;
  int pad_id() const { return pad_; }
  // Where the data was read from (the generated cache, for generated data).
  const std::string& data_dir() const { return dir_; }

 private:
  void load(const TaskSpec& spec);
  TokenBatch make_batch(const data::lra::Dataset& d, const std::vector<size_t>& idx) const;
  TokenBatch make_pair_batch(const data::lra::Dataset& d, const std::vector<size_t>& idx) const;
  std::vector<size_t> epoch_order(uint64_t epoch) const;

  std::string kind_, pooling_ = "mean", dir_;
  int len_ = 0;       // padded length of a batch
  int doc_len_ = 0;   // data.seq_len (per document for retrieval)
  bool two_tower_ = false;  // retrieval: one row per document (pair_inputs)
  int vocab_ = 0, pad_ = 0, sep_ = -1, classes_ = 0;
  uint64_t seed_ = 1;
  data::lra::Dataset train_, val_, test_;
  // Sampler: a fresh permutation of the training set per epoch, derived
  // from (seed, epoch), so the state is just (epoch, position).
  uint64_t epoch_ = 0;
  size_t pos_ = 0;
  std::vector<size_t> order_;
};

// Registry factories.
std::unique_ptr<Task> make_lra_listops_task(const TaskSpec& spec);
std::unique_ptr<Task> make_lra_text_task(const TaskSpec& spec);
std::unique_ptr<Task> make_lra_retrieval_task(const TaskSpec& spec);
std::unique_ptr<Task> make_lra_image_task(const TaskSpec& spec);
std::unique_ptr<Task> make_lra_pathfinder_task(const TaskSpec& spec);

}  // namespace mk::tasks
