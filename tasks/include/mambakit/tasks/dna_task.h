// DNA tasks (the Mamba paper's Section 4.3 at small scale).
//
// `dna_pretrain`: next-base prediction.
//   data.path   one FASTA/FASTQ file (plain, gzip or bgzip), or a folder made
//               by `mambakit prepare fasta` (token shards with a manifest)
//   data.split  2 or 3 fractions summing to 1: every sequence (or BED
//               interval) is cut contiguously, train first, so held-out bases
//               never occur in training windows
//   task.bed           restrict to (and, with a 4th column, split by) the
//                      intervals of a BED file (the HyenaDNA HG38 recipe)
//   task.rc_prob       reverse-complement a training window with this
//                      probability (augmentation; default 0)
//   task.markov_order  order k of the Markov baseline fit on the training
//                      bases and scored on the same windows as the model
//                      (default 6; -1: none)
// Windows of seq_len + 1 bases; a position whose target is N (or any
// non-base) has no target, so bits per base are over A, C, G, T as in the
// Markov baseline. Metrics: loss (nats per base), bpb and bits (bits per
// base), ppl, accuracy, markov_bpb (the order-k baseline on the same targets).
//
// `dna_species`: species classification (HyenaDNA's species task, the
// stand-in for the Mamba paper's Great Apes task).
//   data.path   one FASTA file or folder per class (class names from the paths)
//   data.split  fractions of each class's strains for train, val[, test]:
//               whole strains are held out, never positions
//   task.rc_prob          reverse-complement training windows (default 0.5:
//                         the strand of a window carries no class information)
//   task.balance          draw classes uniformly (default true)
//   task.strain_unit      auto | file | record (see datasets/species.h)
//   task.split_seed       which strains go where (default 1, independent of train.seed)
//   task.eval_per_class   windows per class scored when eval.max_sequences is 0 (default 64)
// Windows of seq_len bases, mean-pooled classifier head. Metrics: accuracy,
// balanced_accuracy (mean recall over the classes of the split), loss; the
// confusion matrix comes from confusion.h.
#pragma once
#include <map>
#include <memory>
#include <random>

#include "mambakit/datasets/dna.h"
#include "mambakit/datasets/fasta.h"
#include "mambakit/datasets/markov.h"
#include "mambakit/datasets/shards.h"
#include "mambakit/datasets/species.h"
#include "mambakit/tasks/confusion.h"
#include "mambakit/tasks/task.h"

namespace mk::tasks {

// True when path is a folder written by `mambakit prepare` (has manifest.json).
bool is_prepared_dir(const std::string& path);

class DnaPretrainTask : public Task {
 public:
  explicit DnaPretrainTask(const TaskSpec& spec);

  std::string name() const override { return "dna_pretrain"; }
  int vocab_size() const override { return data::dna::kVocabSize; }
  int seq_len() const override { return seq_len_; }

  TokenBatch next_train_batch(int batch) override;
  std::string sampler_state() const override;
  void set_sampler_state(const std::string& s) override;
  double train_tokens() const override { return double(train_bases_); }

  std::vector<std::string> splits() const override { return splits_; }
  std::vector<TokenBatch> eval_batches(const std::string& split, int batch,
                                       size_t max_sequences) const override;
  std::vector<std::string> metric_names() const override;
  std::vector<std::string> default_metrics() const override;
  std::unique_ptr<MetricAccumulator> metrics() const override;

  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;

  // The Markov baseline (nullptr with markov_order -1).
  const data::MarkovModel* markov() const { return markov_.get(); }

 private:
  // One window of seq_len + 1 tokens into a batch row: ids and targets.
  void put_window(const int32_t* w, TokenBatch& b, int row) const;
  void check_split(const std::string& split) const;

  int seq_len_;
  double rc_prob_;
  std::vector<std::string> splits_;
  int64_t train_bases_ = 0;
  // FASTA source
  std::unique_ptr<data::FastaReader> fasta_;
  std::map<std::string, std::vector<data::GenomicInterval>> parts_;
  std::unique_ptr<data::DnaWindowSampler> sampler_;
  // shard source
  std::map<std::string, data::ShardReader> shards_;
  std::unique_ptr<data::ShardWindowSampler> shard_sampler_;
  std::mt19937_64 rc_rng_;  // reverse-complement draws for shard windows

  std::shared_ptr<data::MarkovModel> markov_;
};

class DnaSpeciesTask : public Task, public NamedClasses {
 public:
  explicit DnaSpeciesTask(const TaskSpec& spec);

  std::string name() const override { return "dna_species"; }
  int vocab_size() const override { return data::dna::kVocabSize; }
  int seq_len() const override { return seq_len_; }
  int num_classes() const override { return ds_->num_classes(); }
  std::string pooling() const override { return "mean"; }
  std::vector<std::string> class_names() const override { return ds_->class_names(); }

  TokenBatch next_train_batch(int batch) override;
  std::string sampler_state() const override { return sampler_->rng_state(); }
  void set_sampler_state(const std::string& s) override { sampler_->set_rng_state(s); }

  std::vector<std::string> splits() const override { return ds_->splits(); }
  std::vector<TokenBatch> eval_batches(const std::string& split, int batch,
                                       size_t max_sequences) const override;
  std::vector<std::string> metric_names() const override {
    return {"accuracy", "balanced_accuracy", "loss"};
  }
  std::vector<std::string> default_metrics() const override {
    return {"accuracy", "balanced_accuracy", "loss"};
  }
  std::unique_ptr<MetricAccumulator> metrics() const override;

  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;

  const data::SpeciesDataset& dataset() const { return *ds_; }

 private:
  int seq_len_;
  size_t eval_per_class_;
  std::unique_ptr<data::SpeciesDataset> ds_;
  std::unique_ptr<data::SpeciesWindowSampler> sampler_;
};

std::unique_ptr<Task> make_dna_pretrain_task(const TaskSpec& spec);
std::unique_ptr<Task> make_dna_species_task(const TaskSpec& spec);

}  // namespace mk::tasks
