#include "mambakit/tasks/language_task.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "mambakit/datasets/shards.h"
#include "mambakit/datasets/text.h"

namespace mk::tasks {

namespace fs = std::filesystem;

namespace {

const char* kSplitNames[] = {"train", "val", "test"};

// Cross-entropy per token, and bits per byte of the text the scored tokens
// stand for.
class LanguageMetrics : public MetricAccumulator {
 public:
  explicit LanguageMetrics(const std::vector<uint32_t>* token_bytes) : token_bytes_(token_bytes) {}
  void add(const TokenBatch& b, const float* logits, int vocab) override {
    tm_.add(b, logits, vocab);
    for (int32_t y : b.targets)
      if (y >= 0 && size_t(y) < token_bytes_->size()) bytes_ += (*token_bytes_)[size_t(y)];
  }
  std::map<std::string, double> result() const override {
    auto r = tm_.result();
    const double nats = r["loss"] * tm_.targets();
    const double bpb = bytes_ > 0 ? nats / (bytes_ * std::log(2.0)) : r["bits"];
    return {{"loss", r["loss"]}, {"bpb", bpb}, {"ppl", r["ppl"]}, {"accuracy", r["accuracy"]}};
  }
  std::vector<double> sums() const override {
    auto s = tm_.sums();
    s.push_back(bytes_);
    return s;
  }
  void set_sums(const double* s) override {
    tm_.set_sums(s);
    bytes_ = s[TokenMetrics::kSums];
  }

 private:
  TokenMetrics tm_;
  const std::vector<uint32_t>* token_bytes_;
  double bytes_ = 0;
};

bool is_prepared_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(fs::path(path) / "manifest.json", ec);
}

// A cut at byte `at` moved forward to the start of a UTF-8 character, so no
// split begins inside one (a tokenizer would see two broken halves).
size_t char_boundary(const std::vector<uint8_t>& bytes, size_t at) {
  while (at < bytes.size() && (bytes[at] & 0xC0) == 0x80) ++at;
  return at;
}

}  // namespace

LanguageTask::LanguageTask(const TaskSpec& spec) : seq_len_(spec.data.seq_len) {
  spec.check_options({"tokenizer"});
  if (spec.options.contains("tokenizer")) {
    const auto& t = spec.options["tokenizer"];
    if (!t.is_string() || (t.get<std::string>() != "byte" && t.get<std::string>() != "bytes"))
      throw ConfigError(spec.where_of("tokenizer") + ": task.tokenizer: only 'byte' is read here, got " +
                        t.dump() + "; give a tokenizer file or folder as data.tokenizer");
  }
  if (spec.data.paths.empty())
    throw ConfigError(spec.data_where_of("path") +
                      ": data.path: the language task needs at least one text file or a folder made by "
                      "`mambakit prepare text`");
  MK_CHECK(seq_len_ > 0, "language task: data.seq_len must be positive");
  if (spec.data.paths.size() == 1 && is_prepared_dir(spec.data.paths[0]))
    load_prepared(spec, spec.data.paths[0]);
  else
    load_text(spec);
  token_bytes_.resize(size_t(tokenizer_->vocab_size()));
  for (size_t id = 0; id < token_bytes_.size(); ++id) token_bytes_[id] = uint32_t(tokenizer_->token_bytes(int32_t(id)));
  sampler_ = std::make_unique<WindowSampler>(&parts_[0], seq_len_, spec.seed);
}

void LanguageTask::load_text(const TaskSpec& spec) {
  for (const auto& p : spec.data.paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec))
      throw ConfigError(spec.data_where_of("path") + ": data.path: " + p +
                        " is a folder but not one made by `mambakit prepare text` (no manifest.json); give text "
                        "files, or `mambakit prepare text FILES... --out DIR` first");
  }
  if (!spec.data.tokenizer.empty()) {
    try {
      tokenizer_ = data::load_tokenizer(spec.data.tokenizer);
    } catch (const Error& e) {
      throw ConfigError(spec.data_where_of("tokenizer") + ": data.tokenizer: " + e.what());
    }
    tokenizer_source_ = spec.data.tokenizer;
  } else {
    tokenizer_ = data::make_byte_tokenizer();
  }
  const bool bytes_only = tokenizer_->name() == "bytes";
  const auto& f = spec.data.split;
  if (f.size() < 2 || f.size() > 3)
    throw ConfigError(spec.data_where_of("split") +
                      ": data.split: the language task takes 2 or 3 fractions (train, val[, test])");

  std::vector<uint8_t> bytes;
  std::string source;
  for (const auto& p : spec.data.paths) {
    auto b = data::read_bytes(p);
    bytes.insert(bytes.end(), b.begin(), b.end());
    source += (source.empty() ? "" : "+") + p;
  }
  // Contiguous parts at cumulative fraction boundaries: validation and test
  // text is text the model never trained on. Each part is tokenized on its
  // own, so no token spans two parts.
  const size_t min_part = size_t(seq_len_) + 2;
  const std::string unit = bytes_only ? " bytes" : " tokens";
  double cum = 0;
  size_t begin = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    cum += f[i];
    size_t end = std::min(bytes.size(), size_t(std::floor(double(bytes.size()) * cum + 1e-9)));
    if (!bytes_only) end = char_boundary(bytes, end);
    if (end < begin) end = begin;
    std::vector<int32_t> ids;
    if (bytes_only) {
      ids.assign(bytes.begin() + long(begin), bytes.begin() + long(end));
    } else {
      try {
        ids = tokenizer_->encode(std::string(bytes.begin() + long(begin), bytes.begin() + long(end)));
      } catch (const Error& e) {
        throw Error(source + ": the " + kSplitNames[i] + " split cannot be tokenized: " + e.what());
      }
    }
    if (ids.size() < min_part)
      throw Error(source + ": too small (" + std::to_string(bytes.size()) + " bytes) for a " + kSplitNames[i] +
                  " split of " + std::to_string(f[i]) + " with windows of " + std::to_string(min_part) + unit +
                  " (data.seq_len + 2; the split holds " + std::to_string(ids.size()) + unit + ")");
    parts_.emplace_back(std::move(ids));
    split_names_.push_back(kSplitNames[i]);
    begin = end;
  }
}

void LanguageTask::load_prepared(const TaskSpec& spec, const std::string& dir) {
  const auto p = data::open_prepared(dir);
  if (p.kind != "text")
    throw ConfigError(spec.data_where_of("path") + ": data.path: " + dir + " holds '" + p.kind +
                      "' shards, not text (make it with `mambakit prepare text`)");
  tokenizer_ = data::load_tokenizer(dir);  // the folder's own: bytes when it holds none
  if (tokenizer_->name() != "bytes") tokenizer_source_ = dir;
  if (!spec.data.tokenizer.empty() && !data::same_tokenizer(spec.data.tokenizer, dir))
    throw ConfigError(spec.data_where_of("tokenizer") + ": data.tokenizer " + spec.data.tokenizer +
                      " is not the tokenizer " + dir + " was prepared with (" + tokenizer_->name() +
                      "); drop data.tokenizer, or prepare the text again with --tokenizer " + spec.data.tokenizer);
  if (uint32_t(tokenizer_->vocab_size()) != p.vocab_size)
    throw Error(dir + "/manifest.json: vocabulary " + std::to_string(p.vocab_size) + " but the folder's " +
                tokenizer_->name() + " tokenizer has " + std::to_string(tokenizer_->vocab_size()) + " tokens");
  if (p.splits.size() < 2 || p.splits[0] != "train")
    throw Error(dir + "/manifest.json: needs a train split and a held-out split");
  for (const auto& s : p.splits) {
    auto shard = std::make_shared<const data::ShardReader>(p.files.at(s));
    if (shard->size() < size_t(seq_len_) + 2)
      throw Error(p.files.at(s) + ": " + std::to_string(shard->size()) + " tokens, fewer than one window of " +
                  std::to_string(seq_len_ + 2) + " (data.seq_len + 2)");
    parts_.emplace_back(std::move(shard));
    split_names_.push_back(s);
  }
}

std::vector<std::string> LanguageTask::splits() const { return split_names_; }

size_t LanguageTask::index_of(const std::string& split) const {
  for (size_t i = 0; i < split_names_.size(); ++i)
    if (split == split_names_[i]) return i;
  std::string known;
  for (const auto& s : splits()) known += (known.empty() ? "" : ", ") + s;
  throw ConfigError("language task: no split '" + split + "' (this data has: " + known +
                    "; a test split needs three data.split fractions)");
}

const TokenStream& LanguageTask::split_tokens(const std::string& split) const { return parts_[index_of(split)]; }

double LanguageTask::bytes_of(const std::vector<int32_t>& ids, size_t beg, size_t n) const {
  double b = 0;
  for (size_t i = beg; i < beg + n && i < ids.size(); ++i)
    if (ids[i] >= 0 && size_t(ids[i]) < token_bytes_.size()) b += token_bytes_[size_t(ids[i])];
  return b;
}

std::vector<TokenBatch> LanguageTask::eval_batches(const std::string& split, int batch,
                                                   size_t max_sequences) const {
  return eval_windows(split_tokens(split), seq_len_, batch, max_sequences);
}

std::vector<std::string> LanguageTask::metric_names() const {
  return {"loss", "bpb", "ppl", "accuracy"};
}

std::unique_ptr<MetricAccumulator> LanguageTask::metrics() const {
  return std::make_unique<LanguageMetrics>(&token_bytes_);
}

std::vector<int32_t> LanguageTask::encode(const std::string& text) const { return tokenizer_->encode(text); }

std::string LanguageTask::decode(const std::vector<int32_t>& ids) const { return tokenizer_->decode(ids); }

std::unique_ptr<Task> make_language_task(const TaskSpec& spec) {
  return std::make_unique<LanguageTask>(spec);
}

}  // namespace mk::tasks
