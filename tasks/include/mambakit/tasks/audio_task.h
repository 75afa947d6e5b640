// `audio`: autoregressive modelling of 8-bit quantised audio, the SaShiMi /
// Mamba YouTubeMix setup (Mamba paper Section 4.4) at small scale.
//   data.path   audio files and folders (any format libsndfile reads; a
//               folder with train/ val/ [test/] subfolders keeps that split),
//               or one folder made by `mambakit prepare audio`
//   data.split  fractions of the files for train, val[, test] (whole files)
//               when the input has no split folders
//   task.sample_rate         rate the audio is resampled to (default 16000)
//   task.quantization        mulaw (default, mu = 255) | linear: 256 classes
//   task.expect_sample_rate  0 (default): any rate is resampled; else a
//                            file at another rate is an error naming it
//   task.expect_channels     0 (default): channels are averaged; else a file
//                            with another count is an error naming it
//   task.split_seed          which files go where (default 1)
// Windows of seq_len + 1 samples inside one file. Metrics: loss (nats per
// sample), bits (bits per sample), ppl, accuracy, unigram_bits: the entropy
// of the empirical class distribution of the scored targets themselves,
// the best any model that ignores context can do on them.
#pragma once
#include <map>
#include <memory>

#include "mambakit/datasets/audio.h"
#include "mambakit/datasets/shards.h"
#include "mambakit/tasks/task.h"

namespace mk::tasks {

// The options generation needs without loading the corpus.
struct AudioTaskOptions {
  int sample_rate = 16000;
  data::Quantization quantization = data::Quantization::MuLaw;
  int expect_sample_rate = 0;
  int expect_channels = 0;
  uint64_t split_seed = 1;
};
// Reads and checks the task options (ConfigError naming the key).
AudioTaskOptions audio_task_options(const TaskSpec& spec);

class AudioTask : public Task {
 public:
  explicit AudioTask(const TaskSpec& spec);

  std::string name() const override { return "audio"; }
  int vocab_size() const override { return data::kAudioClasses; }
  int seq_len() const override { return seq_len_; }

  TokenBatch next_train_batch(int batch) override;
  std::string sampler_state() const override;
  void set_sampler_state(const std::string& s) override;
  double train_tokens() const override { return double(train_samples_); }

  std::vector<std::string> splits() const override { return splits_; }
  std::vector<TokenBatch> eval_batches(const std::string& split, int batch,
                                       size_t max_sequences) const override;
  std::vector<std::string> metric_names() const override {
    return {"loss", "bits", "ppl", "accuracy", "unigram_bits"};
  }
  std::vector<std::string> default_metrics() const override { return {"loss", "bits", "unigram_bits"}; }
  std::unique_ptr<MetricAccumulator> metrics() const override;

  // Prompts come from audio files (mambakit generate --prompt-file); text
  // prompts are class ids separated by spaces. decode writes ids that way.
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;

  int sample_rate() const { return rate_; }
  data::Quantization quantization() const { return opts_.quantization; }

 private:
  int seq_len_;
  AudioTaskOptions opts_;
  int rate_;
  std::vector<std::string> splits_;
  int64_t train_samples_ = 0;
  std::unique_ptr<data::AudioCorpus> corpus_;
  std::unique_ptr<data::AudioWindowSampler> sampler_;
  std::map<std::string, data::ShardReader> shards_;
  std::unique_ptr<data::ShardWindowSampler> shard_sampler_;
};

std::unique_ptr<Task> make_audio_task(const TaskSpec& spec);

}  // namespace mk::tasks
