#include "mambakit/tasks/audio_task.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "mambakit/tasks/dna_task.h"  // is_prepared_dir
#include "eval_rows.h"
#include "option_util.h"

namespace mk::tasks {

namespace fs = std::filesystem;

namespace {

// Token metrics plus the order-0 entropy of the scored targets: bits per
// sample of the best context-free model of exactly these samples.
class AudioMetrics : public MetricAccumulator {
 public:
  void add(const TokenBatch& b, const float* logits, int vocab) override {
    tm_.add(b, logits, vocab);
    for (int32_t t : b.targets)
      if (t >= 0 && t < data::kAudioClasses) ++hist_[size_t(t)];
  }
  std::map<std::string, double> result() const override {
    auto r = tm_.result();
    double n = 0, h = 0;
    for (double c : hist_) n += c;
    for (double c : hist_)
      if (c > 0) h -= c / n * std::log2(c / n);
    return {{"loss", r["loss"]},
            {"bits", r["bits"]},
            {"ppl", r["ppl"]},
            {"accuracy", r["accuracy"]},
            {"unigram_bits", n > 0 ? h : std::nan("")}};
  }
  std::vector<double> sums() const override {
    auto s = tm_.sums();
    s.insert(s.end(), hist_.begin(), hist_.end());
    return s;
  }
  void set_sums(const double* s) override {
    tm_.set_sums(s);
    std::copy(s + TokenMetrics::kSums, s + TokenMetrics::kSums + hist_.size(), hist_.begin());
  }

 private:
  TokenMetrics tm_;
  std::vector<double> hist_ = std::vector<double>(data::kAudioClasses, 0.0);
};

void put_window(const int32_t* w, int len, TokenBatch& b, int row) {
  const size_t o = size_t(row) * size_t(len);
  for (int t = 0; t < len; ++t) {
    b.ids[o + size_t(t)] = w[t];
    b.targets[o + size_t(t)] = w[t + 1];
  }
}

}  // namespace

AudioTaskOptions audio_task_options(const TaskSpec& spec) {
  spec.check_options({"sample_rate", "quantization", "expect_sample_rate", "expect_channels", "split_seed"});
  AudioTaskOptions o;
  o.sample_rate = int(opt::integer(spec, "sample_rate", 16000, 1000, 384000));
  o.quantization = data::parse_quantization(
      opt::text(spec, "quantization", "mulaw", {"mulaw", "mu-law", "mu_law", "linear"}));
  o.expect_sample_rate = int(opt::integer(spec, "expect_sample_rate", 0, 0, 384000));
  o.expect_channels = int(opt::integer(spec, "expect_channels", 0, 0, 64));
  o.split_seed = uint64_t(opt::integer(spec, "split_seed", 1, 0, LONG_MAX));
  return o;
}

AudioTask::AudioTask(const TaskSpec& spec) : seq_len_(spec.data.seq_len), opts_(audio_task_options(spec)) {
  rate_ = opts_.sample_rate;
  if (spec.data.paths.empty())
    throw ConfigError(spec.data_where_of("path") + ": data.path: the audio task needs audio files or folders");
  if (seq_len_ < 1) throw ConfigError(spec.data_where_of("seq_len") + ": data.seq_len must be positive");
  const int64_t W = int64_t(seq_len_) + 1;

  if (spec.data.paths.size() == 1 && is_prepared_dir(spec.data.paths[0])) {
    const std::string& path = spec.data.paths[0];
    const auto p = data::open_prepared(path);
    const std::string want = "audio-" + data::quantization_name(opts_.quantization);
    if (p.kind != want)
      throw Error(path + ": holds '" + p.kind + "' shards, but the config asks for " + want +
                  " (task.quantization; make the folder with `mambakit prepare audio`)");
    if (p.sample_rate != rate_)
      throw Error(path + ": shards are at " + std::to_string(p.sample_rate) + " Hz but task.sample_rate is " +
                  std::to_string(rate_));
    splits_ = p.splits;
    if (std::find(splits_.begin(), splits_.end(), "train") == splits_.end() || splits_.size() < 2)
      throw Error(path + "/manifest.json: needs a train split and a held-out split");
    for (const auto& s : splits_) shards_.emplace(s, data::ShardReader(p.files.at(s)));
    shard_sampler_ = std::make_unique<data::ShardWindowSampler>(shards_.at("train"), W, spec.seed);
    train_samples_ = int64_t(shards_.at("train").size());
    return;
  }

  if (spec.data.split.size() < 2 || spec.data.split.size() > 3)
    throw ConfigError(spec.data_where_of("split") +
                      ": data.split: the audio task takes 2 or 3 fractions of the files (train, val[, test])");
  data::AudioCorpusOptions co;
  co.read.sample_rate = rate_;
  co.read.expect_sample_rate = opts_.expect_sample_rate;
  co.read.expect_channels = opts_.expect_channels;
  co.quantization = opts_.quantization;
  co.split = spec.data.split;
  co.seed = opts_.split_seed;
  corpus_ = std::make_unique<data::AudioCorpus>(spec.data.paths, co);
  splits_ = corpus_->splits();
  for (const auto& s : splits_) {
    int64_t longest = 0;
    for (const auto& f : corpus_->files(s)) longest = std::max(longest, int64_t(f.tokens.size()));
    if (longest < W)
      throw Error(spec.data.paths[0] + ": no " + s + " file is as long as one window of " + std::to_string(W) +
                  " samples (data.seq_len + 1; the longest has " + std::to_string(longest) +
                  "); lower data.seq_len");
  }
  sampler_ = std::make_unique<data::AudioWindowSampler>(*corpus_, "train", W, spec.seed);
  train_samples_ = corpus_->samples("train");
}

TokenBatch AudioTask::next_train_batch(int batch) {
  TokenBatch b;
  b.batch = batch;
  b.len = seq_len_;
  b.ids.resize(size_t(batch) * size_t(seq_len_));
  b.targets.resize(b.ids.size());
  std::vector<int32_t> w(size_t(seq_len_) + 1);
  for (int i = 0; i < batch; ++i) {
    if (sampler_) sampler_->next(w.data());
    else shard_sampler_->next(w.data());
    put_window(w.data(), seq_len_, b, i);
  }
  return b;
}

std::string AudioTask::sampler_state() const {
  return sampler_ ? sampler_->rng_state() : shard_sampler_->rng_state();
}

void AudioTask::set_sampler_state(const std::string& s) {
  if (sampler_) sampler_->set_rng_state(s);
  else shard_sampler_->set_rng_state(s);
}

std::vector<TokenBatch> AudioTask::eval_batches(const std::string& split, int batch,
                                                size_t max_sequences) const {
  if (std::find(splits_.begin(), splits_.end(), split) == splits_.end()) {
    std::string have;
    for (const auto& s : splits_) have += (have.empty() ? "" : ", ") + s;
    throw ConfigError("audio task: no split '" + split + "' (this data has: " + have + ")");
  }
  const int64_t W = int64_t(seq_len_) + 1;
  // Windows seq_len apart from the start of each file: consecutive stretches.
  const auto rows = corpus_ ? eval_rows(data::AudioWindowSampler(*corpus_, split, W, 0), W, seq_len_, max_sequences)
                            : eval_rows(data::ShardWindowSampler(shards_.at(split), W, 0), W, seq_len_, max_sequences);
  std::vector<TokenBatch> out;
  for (size_t k = 0; k < rows.size(); k += size_t(batch)) {
    TokenBatch b;
    b.batch = int(std::min(rows.size() - k, size_t(batch)));
    b.len = seq_len_;
    b.ids.resize(size_t(b.batch) * size_t(seq_len_));
    b.targets.resize(b.ids.size());
    for (int i = 0; i < b.batch; ++i) put_window(rows[k + size_t(i)].data(), seq_len_, b, i);
    out.push_back(std::move(b));
  }
  return out;
}

std::unique_ptr<MetricAccumulator> AudioTask::metrics() const { return std::make_unique<AudioMetrics>(); }

std::vector<int32_t> AudioTask::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  std::istringstream is(text);
  std::string tok;
  while (is >> tok) {
    char* end = nullptr;
    const long v = std::strtol(tok.c_str(), &end, 10);
    if (*end != '\0' || v < 0 || v >= data::kAudioClasses)
      throw ConfigError("audio task: a text prompt is class ids 0-255 separated by spaces, got '" + tok +
                        "' (use `mambakit generate RUN_DIR --prompt-file x.wav` for audio prompts)");
    ids.push_back(int32_t(v));
  }
  return ids;
}

std::string AudioTask::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (int32_t i : ids) s += (s.empty() ? "" : " ") + std::to_string(i);
  return s;
}

std::unique_ptr<Task> make_audio_task(const TaskSpec& spec) { return std::make_unique<AudioTask>(spec); }

}  // namespace mk::tasks
