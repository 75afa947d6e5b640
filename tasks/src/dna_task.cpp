#include "mambakit/tasks/dna_task.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>

#include "eval_rows.h"
#include "option_util.h"

namespace mk::tasks {

namespace fs = std::filesystem;
namespace dna = data::dna;

bool is_prepared_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(fs::path(path) / "manifest.json", ec);
}

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

[[noreturn]] void no_split(const std::string& task, const std::string& split,
                           const std::vector<std::string>& have) {
  throw ConfigError(task + " task: no split '" + split + "' (this data has: " + join(have) +
                    "; a test split needs three data.split fractions)");
}

// Counts every base of one token stream (in chunks, so a chromosome never
// needs one huge buffer) into a Markov model.
template <typename Fetch>
void fit_chunked(data::MarkovModel& m, int64_t n, Fetch fetch) {
  constexpr int64_t kChunk = 1 << 20;
  std::vector<int32_t> buf;
  for (int64_t b = 0; b < n; b += kChunk) {
    const int64_t e = std::min(n, b + kChunk);
    buf.resize(size_t(e - b));
    fetch(b, e, buf.data());
    m.fit(buf.data(), buf.size());
  }
}

// Next-base metrics, and the Markov baseline scored on exactly the targets
// the model is scored on (each window from its own start, as the model sees it).
class DnaLmMetrics : public MetricAccumulator {
 public:
  explicit DnaLmMetrics(std::shared_ptr<const data::MarkovModel> m) : markov_(std::move(m)) {}

  void add(const TokenBatch& b, const float* logits, int vocab) override {
    tm_.add(b, logits, vocab);
    if (!markov_) return;
    std::vector<int32_t> w(size_t(b.len) + 1);
    for (int i = 0; i < b.batch; ++i) {
      const int32_t* ids = b.ids.data() + size_t(i) * b.len;
      std::copy(ids, ids + b.len, w.begin());
      const int32_t last = b.targets[size_t(i) * b.len + b.len - 1];
      w[size_t(b.len)] = last >= 0 ? last : dna::N;
      // Score positions 1..len: the whole window minus its first symbol,
      // which has no context (a model's first target has one token of it).
      const auto all = markov_->score(w.data(), w.size());
      const auto first = markov_->score(w.data(), 1);
      bits_ += all.bits - first.bits;
      symbols_ += all.symbols - first.symbols;
    }
  }

  std::map<std::string, double> result() const override {
    auto r = tm_.result();
    std::map<std::string, double> out{{"loss", r["loss"]},         {"bpb", r["bits"]},
                                      {"bits", r["bits"]},         {"ppl", r["ppl"]},
                                      {"accuracy", r["accuracy"]}};
    if (markov_) out["markov_bpb"] = symbols_ > 0 ? bits_ / symbols_ : std::nan("");
    return out;
  }
  std::vector<double> sums() const override {
    auto s = tm_.sums();
    s.insert(s.end(), {bits_, symbols_});
    return s;
  }
  void set_sums(const double* s) override {
    tm_.set_sums(s);
    bits_ = s[TokenMetrics::kSums], symbols_ = s[TokenMetrics::kSums + 1];
  }

 private:
  TokenMetrics tm_;
  std::shared_ptr<const data::MarkovModel> markov_;
  double bits_ = 0, symbols_ = 0;
};

class SpeciesMetrics : public MetricAccumulator {
 public:
  explicit SpeciesMetrics(int classes) : cm_(classes) {}
  void add(const TokenBatch& b, const float* logits, int vocab) override {
    tm_.add(b, logits, vocab);
    cm_.add(b, logits, vocab);
  }
  std::map<std::string, double> result() const override {
    auto r = tm_.result();
    return {{"accuracy", r["accuracy"]}, {"balanced_accuracy", cm_.balanced_accuracy()}, {"loss", r["loss"]}};
  }
  std::vector<double> sums() const override {
    auto s = tm_.sums();
    const auto c = cm_.sums();
    s.insert(s.end(), c.begin(), c.end());
    return s;
  }
  void set_sums(const double* s) override {
    tm_.set_sums(s);
    cm_.set_sums(s + TokenMetrics::kSums);
  }
  const ConfusionMatrix& confusion() const { return cm_; }

 private:
  TokenMetrics tm_;
  ConfusionMatrix cm_;
};

// Rows of fixed windows into batches of at most `batch` sequences.
template <typename Fill>
std::vector<TokenBatch> batches_of(size_t n, int batch, Fill fill) {
  std::vector<TokenBatch> out;
  for (size_t w = 0; w < n; w += size_t(batch)) {
    TokenBatch b;
    b.batch = int(std::min<size_t>(size_t(batch), n - w));
    for (int i = 0; i < b.batch; ++i) fill(w + size_t(i), b, i);
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace

// --- dna_pretrain ------------------------------------------------------------------

DnaPretrainTask::DnaPretrainTask(const TaskSpec& spec) : seq_len_(spec.data.seq_len), rc_rng_(spec.seed ^ 0x9e3779b97f4a7c15ULL) {
  spec.check_options({"bed", "rc_prob", "markov_order"});
  rc_prob_ = opt::number(spec, "rc_prob", 0.0, 0, 1);
  const int order = int(opt::integer(spec, "markov_order", 6, -1, 12));
  const std::string bed = opt::text(spec, "bed", "");
  if (spec.data.paths.size() != 1)
    throw ConfigError(spec.data_where_of("path") + ": data.path: the dna_pretrain task reads one FASTA file or one "
                      "folder made by `mambakit prepare fasta` (got " + std::to_string(spec.data.paths.size()) +
                      " paths; `mambakit prepare fasta A.fa B.fa --out DIR` puts several into one)");
  if (seq_len_ < 1) throw ConfigError(spec.data_where_of("seq_len") + ": data.seq_len must be positive");
  const std::string& path = spec.data.paths[0];
  const int64_t W = int64_t(seq_len_) + 1;
  if (order >= 0) markov_ = std::make_shared<data::MarkovModel>(order, dna::kBases);

  if (is_prepared_dir(path)) {
    if (!bed.empty())
      throw ConfigError(spec.where_of("bed") + ": task.bed applies to a FASTA file; the prepared folder " + path +
                        " already holds its intervals (give --bed to `mambakit prepare`)");
    const auto p = data::open_prepared(path);
    if (p.kind != "dna")
      throw Error(path + ": holds '" + p.kind + "' shards, not DNA (make it with `mambakit prepare fasta`)");
    splits_ = p.splits;
    if (std::find(splits_.begin(), splits_.end(), "train") == splits_.end() || splits_.size() < 2)
      throw Error(path + "/manifest.json: needs a train split and a held-out split (has: " + join(splits_) + ")");
    for (const auto& s : splits_) shards_.emplace(s, data::ShardReader(p.files.at(s)));
    const auto& train = shards_.at("train");
    shard_sampler_ = std::make_unique<data::ShardWindowSampler>(train, W, spec.seed);
    train_bases_ = int64_t(train.size());
    if (markov_) {
      const auto& off = train.segment_offsets();
      for (size_t d = 0; d + 1 < off.size(); ++d)
        fit_chunked(*markov_, int64_t(off[d + 1] - off[d]), [&](int64_t b, int64_t e, int32_t* out) {
          train.read(off[d] + uint64_t(b), size_t(e - b), out);
        });
    }
    return;
  }

  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw Error(path + ": a folder, but not one made by `mambakit prepare` (no manifest.json); give a FASTA file, "
                "or `mambakit prepare fasta FILES... --out DIR` first");
  opt::check_full_split(spec, "dna_pretrain");
  fasta_ = std::make_unique<data::FastaReader>(path);
  splits_ = data::split_names(spec.data.split.size());
  if (!bed.empty()) {
    const auto iv = data::read_bed(bed);
    data::check_intervals(*fasta_, iv);
    const bool own_split =
        std::all_of(iv.begin(), iv.end(), [](const data::GenomicInterval& i) { return !i.split.empty(); });
    if (own_split) {
      for (const auto& s : splits_) parts_[s] = data::select_split(iv, s, bed);
    } else {
      parts_ = data::split_intervals(iv, spec.data.split);
    }
  } else {
    parts_ = data::split_intervals(data::whole_sequences(*fasta_), spec.data.split);
  }
  for (const auto& s : splits_) {
    int64_t longest = 0;
    for (const auto& iv : parts_[s]) longest = std::max(longest, iv.end - iv.beg);
    if (longest < W)
      throw Error(path + ": the " + s + " split has no stretch as long as one window of " + std::to_string(W) +
                  " bases (data.seq_len + 1; its longest is " + std::to_string(longest) +
                  "); lower data.seq_len or change data.split");
  }
  sampler_ = std::make_unique<data::DnaWindowSampler>(*fasta_, parts_["train"], W, spec.seed, rc_prob_);
  for (const auto& iv : parts_["train"]) {
    train_bases_ += iv.end - iv.beg;
    if (markov_) {
      const int seq = fasta_->find(iv.seq);
      fit_chunked(*markov_, iv.end - iv.beg, [&](int64_t b, int64_t e, int32_t* out) {
        fasta_->fetch_tokens(seq, iv.beg + b, iv.beg + e, out);
      });
    }
  }
}

void DnaPretrainTask::put_window(const int32_t* w, TokenBatch& b, int row) const {
  const size_t o = size_t(row) * size_t(seq_len_);
  for (int t = 0; t < seq_len_; ++t) {
    b.ids[o + size_t(t)] = w[t];
    b.targets[o + size_t(t)] = w[t + 1] < dna::kBases ? w[t + 1] : -1;  // N: no target
  }
}

TokenBatch DnaPretrainTask::next_train_batch(int batch) {
  TokenBatch b;
  b.batch = batch;
  b.len = seq_len_;
  b.ids.resize(size_t(batch) * size_t(seq_len_));
  b.targets.resize(b.ids.size());
  std::vector<int32_t> w(size_t(seq_len_) + 1);
  for (int i = 0; i < batch; ++i) {
    if (sampler_) {
      sampler_->next(w.data());
    } else {
      shard_sampler_->next(w.data());
      if (rc_prob_ > 0 && data::uniform_unit(rc_rng_) < rc_prob_) dna::reverse_complement(w.data(), w.size());
    }
    put_window(w.data(), b, i);
  }
  return b;
}

std::string DnaPretrainTask::sampler_state() const {
  if (sampler_) return sampler_->rng_state();
  return shard_sampler_->rng_state() + "|" + data::rng_state_text(rc_rng_);
}

void DnaPretrainTask::set_sampler_state(const std::string& s) {
  if (sampler_) return sampler_->set_rng_state(s);
  const auto bar = s.find('|');
  if (bar == std::string::npos) throw Error("dna_pretrain: sampler state in the checkpoint is malformed");
  shard_sampler_->set_rng_state(s.substr(0, bar));
  data::set_rng_state_text(rc_rng_, s.substr(bar + 1), "dna_pretrain reverse-complement draws");
}

void DnaPretrainTask::check_split(const std::string& split) const {
  if (std::find(splits_.begin(), splits_.end(), split) == splits_.end()) no_split(name(), split, splits_);
}

std::vector<TokenBatch> DnaPretrainTask::eval_batches(const std::string& split, int batch,
                                                      size_t max_sequences) const {
  check_split(split);
  const int64_t W = int64_t(seq_len_) + 1;
  // Windows seq_len apart: each window's last target is the next one's first
  // input, so every base of the split (but the first) is a target once.
  const auto rows = fasta_ ? eval_rows(data::DnaWindowSampler(*fasta_, parts_.at(split), W, 0, 0.0), W, seq_len_,
                                       max_sequences)
                           : eval_rows(data::ShardWindowSampler(shards_.at(split), W, 0), W, seq_len_, max_sequences);
  return batches_of(rows.size(), batch, [&](size_t k, TokenBatch& b, int i) {
    if (i == 0) {
      b.len = seq_len_;
      b.ids.resize(size_t(b.batch) * size_t(seq_len_));
      b.targets.resize(b.ids.size());
    }
    put_window(rows[k].data(), b, i);
  });
}

std::vector<std::string> DnaPretrainTask::metric_names() const {
  std::vector<std::string> m{"loss", "bpb", "bits", "ppl", "accuracy"};
  if (markov_) m.push_back("markov_bpb");
  return m;
}

std::vector<std::string> DnaPretrainTask::default_metrics() const {
  std::vector<std::string> m{"loss", "bpb"};
  if (markov_) m.push_back("markov_bpb");
  return m;
}

std::unique_ptr<MetricAccumulator> DnaPretrainTask::metrics() const {
  return std::make_unique<DnaLmMetrics>(markov_);
}

std::vector<int32_t> DnaPretrainTask::encode(const std::string& text) const {
  return dna::encode(text, "DNA prompt");
}

std::string DnaPretrainTask::decode(const std::vector<int32_t>& ids) const { return dna::decode(ids); }

// --- dna_species ---------------------------------------------------------------------

DnaSpeciesTask::DnaSpeciesTask(const TaskSpec& spec) : seq_len_(spec.data.seq_len) {
  spec.check_options({"rc_prob", "balance", "strain_unit", "split_seed", "eval_per_class"});
  const double rc = opt::number(spec, "rc_prob", 0.5, 0, 1);
  const bool balance = opt::boolean(spec, "balance", true);
  const std::string unit = opt::text(spec, "strain_unit", "auto", {"auto", "file", "record"});
  const long split_seed = opt::integer(spec, "split_seed", 1, 0, LONG_MAX);
  eval_per_class_ = size_t(opt::integer(spec, "eval_per_class", 64, 1, 1000000));
  if (spec.data.paths.size() < 2)
    throw ConfigError(spec.data_where_of("path") + ": data.path: the dna_species task needs one FASTA file or "
                      "folder per class, at least 2 (got " + std::to_string(spec.data.paths.size()) + ")");
  if (spec.data.split.size() < 2 || spec.data.split.size() > 3)
    throw ConfigError(spec.data_where_of("split") + ": data.split: the dna_species task takes 2 or 3 fractions "
                      "of each class's strains (train, val[, test])");
  if (seq_len_ < 1) throw ConfigError(spec.data_where_of("seq_len") + ": data.seq_len must be positive");
  data::SpeciesOptions so;
  so.split = spec.data.split;
  so.seed = uint64_t(split_seed);
  so.unit = data::parse_strain_unit(unit);
  ds_ = std::make_unique<data::SpeciesDataset>(data::species_classes(spec.data.paths), so);
  // Which strain is held out where: the first thing to know about a result.
  std::string note = "dna_species: strains by split:";
  for (const auto& sp : ds_->splits()) {
    note += " " + sp + " [";
    bool first = true;
    for (const auto& st : ds_->strains(sp)) {
      std::string n = fs::path(st.name).filename().string();
      for (const char* ext : {".gz", ".bgz", ".fasta", ".fa", ".fna"})
        if (n.size() > std::strlen(ext) && n.compare(n.size() - std::strlen(ext), std::string::npos, ext) == 0)
          n.resize(n.size() - std::strlen(ext));
      note += (first ? "" : ", ") + ds_->classes()[size_t(st.label)].name + "/" + n;
      first = false;
    }
    note += "]";
  }
  std::fprintf(stderr, "%s\n", note.c_str());
  sampler_ = std::make_unique<data::SpeciesWindowSampler>(*ds_, "train", seq_len_, spec.seed, rc, balance);
}

TokenBatch DnaSpeciesTask::next_train_batch(int batch) {
  TokenBatch b;
  b.batch = batch;
  b.len = seq_len_;
  b.ids.resize(size_t(batch) * size_t(seq_len_));
  b.targets.assign(b.ids.size(), -1);
  b.labels.resize(size_t(batch));
  for (int i = 0; i < batch; ++i) b.labels[size_t(i)] = sampler_->next(b.ids.data() + size_t(i) * seq_len_);
  return b;
}

std::vector<TokenBatch> DnaSpeciesTask::eval_batches(const std::string& split, int batch,
                                                     size_t max_sequences) const {
  const auto& sp = ds_->splits();
  if (std::find(sp.begin(), sp.end(), split) == sp.end()) no_split(name(), split, sp);
  std::set<int> labels;
  for (const auto& s : ds_->strains(split)) labels.insert(s.label);
  data::SpeciesWindowSampler s(*ds_, split, seq_len_, 0, 0.0, true);
  const size_t per_class =
      max_sequences ? (max_sequences + labels.size() - 1) / std::max<size_t>(1, labels.size()) : eval_per_class_;
  auto ws = s.eval_windows(per_class, 0x5eed);  // fixed: the same windows every evaluation
  if (max_sequences && ws.size() > max_sequences) ws.resize(max_sequences);
  return batches_of(ws.size(), batch, [&](size_t k, TokenBatch& b, int i) {
    if (i == 0) {
      b.len = seq_len_;
      b.ids.resize(size_t(b.batch) * size_t(seq_len_));
      b.targets.assign(b.ids.size(), -1);
    }
    s.fetch(ws[k], b.ids.data() + size_t(i) * seq_len_);
    b.labels.push_back(ws[k].label);
  });
}

std::unique_ptr<MetricAccumulator> DnaSpeciesTask::metrics() const {
  return std::make_unique<SpeciesMetrics>(num_classes());
}

std::vector<int32_t> DnaSpeciesTask::encode(const std::string& text) const {
  return dna::encode(text, "DNA prompt");
}

std::string DnaSpeciesTask::decode(const std::vector<int32_t>& ids) const { return dna::decode(ids); }

std::unique_ptr<Task> make_dna_pretrain_task(const TaskSpec& spec) {
  return std::make_unique<DnaPretrainTask>(spec);
}

std::unique_ptr<Task> make_dna_species_task(const TaskSpec& spec) {
  return std::make_unique<DnaSpeciesTask>(spec);
}

}  // namespace mk::tasks
