#include "mambakit/tasks/language_task.h"

#include <cmath>

#include "mambakit/datasets/text.h"

namespace mk::tasks {

namespace {

const char* kSplitNames[] = {"train", "val", "test"};

// Bits per byte from the token metrics: byte-level, so bits per token.
class ByteMetrics : public MetricAccumulator {
 public:
  void add(const TokenBatch& b, const float* logits, int vocab) override {
    tm_.add(b, logits, vocab);
  }
  std::map<std::string, double> result() const override {
    auto r = tm_.result();
    return {{"loss", r["loss"]}, {"bpb", r["bits"]}, {"ppl", r["ppl"]}, {"accuracy", r["accuracy"]}};
  }

 private:
  TokenMetrics tm_;
};

}  // namespace

LanguageTask::LanguageTask(const TaskSpec& spec) : seq_len_(spec.data.seq_len) {
  spec.check_options({"tokenizer"});
  if (spec.options.contains("tokenizer")) {
    const auto& t = spec.options["tokenizer"];
    if (!t.is_string() || t.get<std::string>() != "byte")
      throw ConfigError(spec.where_of("tokenizer") + ": task.tokenizer: only 'byte' is supported, got " +
                        t.dump());
  }
  if (spec.data.paths.empty())
    throw ConfigError(spec.data_where_of("path") +
                      ": data.path: the language task needs at least one text file");
  const auto& f = spec.data.split;
  if (f.size() < 2 || f.size() > 3)
    throw ConfigError(spec.data_where_of("split") +
                      ": data.split: the language task takes 2 or 3 fractions (train, val[, test])");
  MK_CHECK(seq_len_ > 0, "language task: data.seq_len must be positive");

  std::vector<uint8_t> bytes;
  std::string source;
  for (const auto& p : spec.data.paths) {
    auto b = data::read_bytes(p);
    bytes.insert(bytes.end(), b.begin(), b.end());
    source += (source.empty() ? "" : "+") + p;
  }
  // Contiguous parts at cumulative fraction boundaries: validation and test
  // text is text the model never trained on.
  const size_t min_part = size_t(seq_len_) + 2;
  double cum = 0;
  size_t begin = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    cum += f[i];
    const size_t end = std::min(bytes.size(), size_t(std::floor(double(bytes.size()) * cum + 1e-9)));
    if (end < begin + min_part)
      throw Error(source + ": too small (" + std::to_string(bytes.size()) + " bytes) for a " +
                  kSplitNames[i] + " split of " + std::to_string(f[i]) + " with windows of " +
                  std::to_string(min_part) + " bytes (data.seq_len + 2)");
    parts_.emplace_back(bytes.begin() + begin, bytes.begin() + end);
    begin = end;
  }
  sampler_ = std::make_unique<WindowSampler>(&parts_[0], seq_len_, spec.seed);
}

std::vector<std::string> LanguageTask::splits() const {
  return std::vector<std::string>(kSplitNames, kSplitNames + parts_.size());
}

const std::vector<uint8_t>& LanguageTask::split_bytes(const std::string& split) const {
  for (size_t i = 0; i < parts_.size(); ++i)
    if (split == kSplitNames[i]) return parts_[i];
  std::string known;
  for (const auto& s : splits()) known += (known.empty() ? "" : ", ") + s;
  throw ConfigError("language task: no split '" + split + "' (this data has: " + known +
                    "; a test split needs three data.split fractions)");
}

std::vector<TokenBatch> LanguageTask::eval_batches(const std::string& split, int batch,
                                                   size_t max_sequences) const {
  return eval_windows(split_bytes(split), seq_len_, batch, max_sequences);
}

std::vector<std::string> LanguageTask::metric_names() const {
  return {"loss", "bpb", "ppl", "accuracy"};
}

std::unique_ptr<MetricAccumulator> LanguageTask::metrics() const {
  return std::make_unique<ByteMetrics>();
}

std::vector<int32_t> LanguageTask::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

std::string LanguageTask::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (int32_t i : ids) s.push_back(char(i & 0xff));
  return s;
}

std::unique_ptr<Task> make_language_task(const TaskSpec& spec) {
  return std::make_unique<LanguageTask>(spec);
}

}  // namespace mk::tasks
