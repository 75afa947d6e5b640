#include "mambakit/tasks/synthetic_task.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>

namespace mk::tasks {

namespace {

constexpr const char* kExtrapolation = "extrapolation";
constexpr const char* kTestExtrapolation = "test_extrapolation";

// FNV-1a: a stable seed for an evaluation split (the same on every machine
// and independent of train.seed, so all runs are scored on the same examples).
uint64_t stable_seed(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string length_suffix(int len) { return "_L" + std::to_string(len); }

// Token metrics overall and per sequence length, plus whole-sequence accuracy.
class SyntheticMetrics : public MetricAccumulator {
 public:
  explicit SyntheticMetrics(std::vector<int> lengths) : lengths_(std::move(lengths)) {}

  void add(const TokenBatch& b, const float* logits, int vocab) override {
    all_.add(b, logits, vocab);
    by_len_[b.len].add(b, logits, vocab);
    for (int s = 0; s < b.batch; ++s) {
      bool scored = false, right = true;
      for (int t = 0; t < b.len; ++t) {
        const size_t i = size_t(s) * b.len + t;
        const int target = b.targets[i];
        if (target < 0) continue;
        const float* l = logits + i * size_t(vocab);
        scored = true;
        right = right && int(std::max_element(l, l + vocab) - l) == target;
      }
      if (scored) seqs_ += 1, seqs_right_ += right;
    }
  }

  std::map<std::string, double> result() const override {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    auto r = all_.result();
    std::map<std::string, double> out{{"accuracy", r["accuracy"]},
                                      {"loss", r["loss"]},
                                      {"seq_accuracy", seqs_ > 0 ? seqs_right_ / seqs_ : nan}};
    for (int len : lengths_) {
      auto it = by_len_.find(len);
      out["accuracy" + length_suffix(len)] = it == by_len_.end() ? nan : it->second.result()["accuracy"];
    }
    return out;
  }
  // Overall, then one TokenMetrics per length of lengths_, then sequences.
  std::vector<double> sums() const override {
    auto s = all_.sums();
    for (int len : lengths_) {
      auto it = by_len_.find(len);
      const auto l = it == by_len_.end() ? TokenMetrics().sums() : it->second.sums();
      s.insert(s.end(), l.begin(), l.end());
    }
    s.insert(s.end(), {seqs_, seqs_right_});
    return s;
  }
  void set_sums(const double* s) override {
    all_.set_sums(s);
    s += TokenMetrics::kSums;
    for (int len : lengths_) {
      by_len_[len].set_sums(s);
      s += TokenMetrics::kSums;
    }
    seqs_ = s[0], seqs_right_ = s[1];
  }

 private:
  std::vector<int> lengths_;
  TokenMetrics all_;
  std::map<int, TokenMetrics> by_len_;
  double seqs_ = 0, seqs_right_ = 0;
};

int int_option(const TaskSpec& spec, const std::string& key, int def, int lo) {
  if (!spec.options.contains(key)) return def;
  const auto& v = spec.options[key];
  if (!v.is_number_integer())
    throw ConfigError(spec.where_of(key) + ": task." + key + ": expected an integer, got " + v.dump());
  const long x = v.get<long>();
  if (x < lo || x > (1L << 24))
    throw ConfigError(spec.where_of(key) + ": task." + key + ": must be in [" + std::to_string(lo) +
                      ", 16777216], got " + std::to_string(x));
  return int(x);
}

}  // namespace

SyntheticTask::SyntheticTask(Kind kind, const TaskSpec& spec)
    : kind_(kind), len_(spec.data.seq_len), rng_(spec.seed) {
  const bool copying = kind == Kind::kSelectiveCopying;
  if (copying)
    spec.check_options({"vocab", "n_data", "eval_lengths", "val_size"});
  else
    spec.check_options({"vocab", "eval_lengths", "val_size"});
  if (!spec.data.paths.empty())
    throw ConfigError(spec.data_where_of("path") + ": data.path: task '" + name() +
                      "' generates its data and reads no files");
  vocab_ = int_option(spec, "vocab", 16, 4);
  if (copying) n_data_ = int_option(spec, "n_data", 16, 1);
  val_size_ = int_option(spec, "val_size", 512, 1);

  lengths_ = {len_};
  if (spec.options.contains("eval_lengths")) {
    auto v = spec.options["eval_lengths"];
    if (v.is_number()) v = nlohmann::json::array({v});
    if (!v.is_array())
      throw ConfigError(spec.where_of("eval_lengths") +
                        ": task.eval_lengths: expected a list of lengths, got " + v.dump());
    for (const auto& e : v) {
      if (!e.is_number_integer() || e.get<long>() < 1 || e.get<long>() > (1L << 24))
        throw ConfigError(spec.where_of("eval_lengths") +
                          ": task.eval_lengths: expected positive integers, got " + e.dump());
      const int n = int(e.get<long>());
      if (std::find(lengths_.begin(), lengths_.end(), n) == lengths_.end()) lengths_.push_back(n);
    }
  }
  // Impossible combinations (K > L/2, L < 4, ...) fail here, not mid-run.
  for (int n : lengths_) {
    std::mt19937_64 probe(1);
    try {
      example(n, probe);
    } catch (const Error& e) {
      const std::string where = n == len_ ? spec.data_where_of("seq_len") : spec.where_of("eval_lengths");
      throw ConfigError(where + ": task '" + name() + "' at length " + std::to_string(n) + ": " + e.what());
    }
  }
}

std::string SyntheticTask::name() const {
  return kind_ == Kind::kSelectiveCopying ? "selective_copying" : "induction_heads";
}

data::SyntheticExample SyntheticTask::example(int len, std::mt19937_64& rng) const {
  if (kind_ == Kind::kSelectiveCopying) {
    data::SelectiveCopyingSpec s;
    s.len = len, s.n_data = n_data_, s.vocab = vocab_;
    return data::make_selective_copying(s, rng);
  }
  data::InductionHeadsSpec s;
  s.len = len, s.vocab = vocab_;
  return data::make_induction_heads(s, rng);
}

TokenBatch SyntheticTask::next_train_batch(int batch) {
  MK_CHECK(batch > 0, name() + ": batch must be positive, got " + std::to_string(batch));
  TokenBatch b;
  b.batch = batch, b.len = len_;
  b.ids.reserve(size_t(batch) * len_);
  b.targets.reserve(size_t(batch) * len_);
  for (int i = 0; i < batch; ++i) {
    auto ex = example(len_, rng_);
    b.ids.insert(b.ids.end(), ex.ids.begin(), ex.ids.end());
    b.targets.insert(b.targets.end(), ex.targets.begin(), ex.targets.end());
  }
  return b;
}

std::string SyntheticTask::sampler_state() const {
  std::ostringstream os;
  os << rng_;
  return os.str();
}

void SyntheticTask::set_sampler_state(const std::string& state) {
  std::istringstream is(state);
  is >> rng_;
  if (!is) throw Error(name() + ": sampler state in checkpoint is malformed");
}

std::vector<std::string> SyntheticTask::splits() const {
  std::vector<std::string> s = {"val", "test"};
  for (const char* base : {"val", "test"})
    for (size_t i = 1; i < lengths_.size(); ++i) s.push_back(base + length_suffix(lengths_[i]));
  if (lengths_.size() > 1) s.push_back(kExtrapolation), s.push_back(kTestExtrapolation);
  return s;
}

int SyntheticTask::split_length(const std::string& split) const {
  if (split == "val" || split == "test") return len_;
  if ((split == kExtrapolation || split == kTestExtrapolation) && lengths_.size() > 1) return 0;
  for (int n : lengths_)
    if (split == "val" + length_suffix(n) || split == "test" + length_suffix(n)) return n;
  const auto known = splits();
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  throw ConfigError(name() + " task: no split '" + split + "' (it has: " + list +
                    "; more lengths via task.eval_lengths)" + did_you_mean(split, known));
}

void SyntheticTask::append_split(const std::string& split, int len, int batch, size_t max_sequences,
                                 std::vector<TokenBatch>& out) const {
  MK_CHECK(batch > 0, name() + ": evaluation batch must be positive");
  std::mt19937_64 rng(stable_seed(name() + "/" + split + "/" + std::to_string(len)));
  size_t n = size_t(val_size_);
  if (max_sequences > 0) n = std::min(n, max_sequences);
  for (size_t s = 0; s < n; s += size_t(batch)) {
    TokenBatch b;
    b.batch = int(std::min(size_t(batch), n - s)), b.len = len;
    for (int i = 0; i < b.batch; ++i) {
      auto ex = example(len, rng);
      b.ids.insert(b.ids.end(), ex.ids.begin(), ex.ids.end());
      b.targets.insert(b.targets.end(), ex.targets.begin(), ex.targets.end());
    }
    out.push_back(std::move(b));
  }
}

std::vector<TokenBatch> SyntheticTask::eval_batches(const std::string& split, int batch,
                                                    size_t max_sequences) const {
  const int len = split_length(split);
  // val_L<n> holds the same examples as the length-n part of extrapolation
  // (test_L<n>: of test_extrapolation), and val_L<L> would be val.
  const std::string base = split.compare(0, 4, "test") == 0 ? "test" : "val";
  std::vector<TokenBatch> out;
  if (len > 0) {
    append_split(base, len, batch, max_sequences, out);
  } else {
    for (int n : lengths_) append_split(base, n, batch, max_sequences, out);
  }
  return out;
}

std::vector<std::string> SyntheticTask::metric_names() const {
  std::vector<std::string> m = {"accuracy", "loss", "seq_accuracy"};
  for (int n : lengths_) m.push_back("accuracy" + length_suffix(n));
  return m;
}

bool SyntheticTask::higher_is_better(const std::string& metric) const {
  return metric != "loss";
}

std::unique_ptr<MetricAccumulator> SyntheticTask::metrics() const {
  return std::make_unique<SyntheticMetrics>(lengths_);
}

std::vector<int32_t> SyntheticTask::encode(const std::string& text) const {
  std::istringstream is(text);
  std::vector<int32_t> ids;
  std::string tok;
  while (is >> tok) {
    size_t used = 0;
    long v = -1;
    try {
      v = std::stol(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != tok.size() || v < 0 || v >= vocab_)
      throw Error(name() + ": cannot encode '" + tok + "': tokens are integers in [0, " +
                  std::to_string(vocab_ - 1) + "] separated by spaces");
    ids.push_back(int32_t(v));
  }
  return ids;
}

std::string SyntheticTask::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

std::unique_ptr<Task> make_selective_copying_task(const TaskSpec& spec) {
  return std::make_unique<SyntheticTask>(SyntheticTask::Kind::kSelectiveCopying, spec);
}

std::unique_ptr<Task> make_induction_heads_task(const TaskSpec& spec) {
  return std::make_unique<SyntheticTask>(SyntheticTask::Kind::kInductionHeads, spec);
}

}  // namespace mk::tasks
