#include "mambakit/tasks/lra_task.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "mambakit/error.h"
#include "mambakit/error_text.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace mk::tasks {

namespace lra = data::lra;
using Parts = std::initializer_list<std::pair<lra::Dataset*, const char*>>;

namespace {

// --- options ------------------------------------------------------------------

const json* option(const TaskSpec& s, const std::string& key) {
  return s.options.contains(key) ? &s.options.at(key) : nullptr;
}

std::string str_option(const TaskSpec& s, const std::string& key, const std::string& def,
                       const std::vector<std::string>& choices) {
  const json* v = option(s, key);
  if (!v) return def;
  if (!v->is_string())
    throw ConfigError(s.where_of(key) + ": task." + key + ": expected a string, got " + v->dump());
  const std::string r = v->get<std::string>();
  if (!choices.empty() && std::find(choices.begin(), choices.end(), r) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    throw ConfigError(s.where_of(key) + ": task." + key + ": '" + r + "' is not one of " + list +
                      did_you_mean(r, choices));
  }
  return r;
}

double num_option(const TaskSpec& s, const json& obj, const std::string& key, double def,
                  double lo, double hi, const std::string& where_key) {
  if (!obj.contains(key)) return def;
  const json& v = obj.at(key);
  if (!v.is_number())
    throw ConfigError(s.where_of(where_key) + ": task." + where_key + ": " + key +
                      " must be a number, got " + v.dump());
  const double d = v.get<double>();
  if (!(d >= lo && d <= hi))
    throw ConfigError(s.where_of(where_key) + ": task." + where_key + ": " + key + " = " + v.dump() +
                      " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return d;
}

double top_num(const TaskSpec& s, const std::string& key, double def, double lo, double hi) {
  return num_option(s, s.options, key, def, lo, hi, key);
}

// FNV-1a, for the default cache directory name of generated data.
std::string short_hash(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 10);
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// --- generated data -----------------------------------------------------------

// The generator keys each task accepts inside `generate:`.
const std::vector<std::string>& generate_keys(const std::string& kind) {
  static const std::vector<std::string> listops = {"n_train",   "n_val",    "n_test",   "seed",
                                                   "min_length", "max_length", "max_depth",
                                                   "max_args",  "op_prob"};
  static const std::vector<std::string> pathfinder = {
      "n_train",          "n_val",         "n_test",  "seed",          "size", "contour_length",
      "num_distractors",  "distractor_length", "segment_length", "max_turn", "marker_radius", "gap"};
  return kind == "listops" ? listops : pathfinder;
}

// Generates the data set `gen` describes into `dir` unless dir already holds
// it (dir/generate.json records the options). Writes into a temporary
// sibling first and renames it, so an interrupted generation leaves nothing
// that looks complete.
void ensure_generated(const std::string& kind, const TaskSpec& s, const json& gen,
                      const std::string& dir) {
  const std::string stamp = gen.dump();
  const fs::path marker = fs::path(dir) / "generate.json";
  if (fs::exists(marker)) {
    if (read_text(marker) == stamp + "\n") return;
    throw ConfigError(s.where_of("generate") + ": task.cache '" + dir +
                      "' holds data generated with other options (" + marker.string() +
                      "); delete it or choose another task.cache");
  }
  const auto n = [&](const char* k, double def) {
    return size_t(num_option(s, gen, k, def, 1, 1e8, "generate"));
  };
  const size_t n_train = n("n_train", 10000), n_val = n("n_val", 1000), n_test = n("n_test", 1000);
  const uint64_t seed = uint64_t(num_option(s, gen, "seed", 1, 0, 1e18, "generate"));
  const fs::path tmp = fs::path(dir + ".tmp-" + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  std::fprintf(stderr, "lra_%s: generating %zu + %zu + %zu examples into %s\n", kind.c_str(), n_train,
               n_val, n_test, dir.c_str());
  if (kind == "listops") {
    lra::ListOpsConfig c;
    c.min_length = int(num_option(s, gen, "min_length", c.min_length, 0, 1e6, "generate"));
    c.max_length = int(num_option(s, gen, "max_length", c.max_length, 2, 1e6, "generate"));
    c.max_depth = int(num_option(s, gen, "max_depth", c.max_depth, 1, 100, "generate"));
    c.max_args = int(num_option(s, gen, "max_args", c.max_args, 2, 100, "generate"));
    c.op_prob = num_option(s, gen, "op_prob", c.op_prob, 1e-6, 1 - 1e-6, "generate");
    lra::write_listops_release(tmp.string(), n_train, n_val, n_test, c, seed);
  } else {
    const int size = int(num_option(s, gen, "size", 32, 8, 4096, "generate"));
    const int contour = int(num_option(s, gen, "contour_length", 14, 1, 1000, "generate"));
    lra::PathfinderConfig c = lra::PathfinderConfig::for_size(size, contour);
    c.num_distractors = int(num_option(s, gen, "num_distractors", c.num_distractors, 0, 100, "generate"));
    c.distractor_length =
        int(num_option(s, gen, "distractor_length", c.distractor_length, 1, 1000, "generate"));
    c.segment_length = num_option(s, gen, "segment_length", c.segment_length, 0.5, 1000, "generate");
    c.max_turn = num_option(s, gen, "max_turn", c.max_turn, 0, 3.2, "generate");
    c.marker_radius = int(num_option(s, gen, "marker_radius", c.marker_radius, 0, 100, "generate"));
    c.gap = int(num_option(s, gen, "gap", c.gap, 0, 100, "generate"));
    lra::write_pathfinder_release(tmp.string(), n_train + n_val + n_test, c, seed);
  }
  std::ofstream(tmp / "generate.json") << stamp << "\n";
  fs::create_directories(fs::path(dir).parent_path().empty() ? fs::path(".") : fs::path(dir).parent_path());
  std::error_code ec;
  fs::rename(tmp, dir, ec);
  if (ec) {  // another process finished first (or dir exists but is empty)
    if (fs::exists(marker)) {
      fs::remove_all(tmp);
      return ensure_generated(kind, s, gen, dir);
    }
    throw Error("lra_" + kind + ": cannot move generated data to " + dir + ": " + ec.message());
  }
}

// Keeps `cap` examples drawn at random (fixed seed): files are often sorted
// by class (IMDB's neg/ then pos/), so the first `cap` would be one class.
void truncate(lra::Dataset& d, size_t cap) {
  if (cap == 0 || d.examples.size() <= cap) return;
  std::mt19937_64 rng(0x7c0ffee);
  for (size_t i = 0; i < cap; ++i) std::swap(d.examples[i], d.examples[i + rng() % (d.examples.size() - i)]);
  d.examples.resize(cap);
}

// The first of several file names that exists in dir.
std::string first_existing(const std::string& dir, const std::vector<std::string>& names) {
  for (const auto& n : names)
    if (fs::exists(fs::path(dir) / n)) return (fs::path(dir) / n).string();
  return "";
}

// A metric accumulator: the token metrics plus the label histogram.
class LraMetrics : public MetricAccumulator {
 public:
  explicit LraMetrics(int classes) : counts_(size_t(classes), 0.0) {}
  void add(const TokenBatch& b, const float* logits, int vocab) override {
    tm_.add(b, logits, vocab);
    for (int32_t l : b.labels)
      if (l >= 0) {
        if (size_t(l) >= counts_.size()) counts_.resize(size_t(l) + 1, 0.0);
        ++counts_[size_t(l)], ++n_;
      }
  }
  std::map<std::string, double> result() const override {
    auto r = tm_.result();
    double top = 0;
    for (double c : counts_) top = std::max(top, c);
    return {{"accuracy", r["accuracy"]},
            {"loss", r["loss"]},
            {"majority", n_ > 0 ? top / n_ : std::nan("")}};
  }
  // Labels outside [0, classes) would grow counts_ differently per rank:
  // then there are no sums to merge, and each rank scores the whole split.
  std::vector<double> sums() const override {
    if (counts_.size() != classes_) return {};
    auto s = tm_.sums();
    s.push_back(n_);
    s.insert(s.end(), counts_.begin(), counts_.end());
    return s;
  }
  void set_sums(const double* s) override {
    tm_.set_sums(s);
    n_ = s[TokenMetrics::kSums];
    std::copy(s + TokenMetrics::kSums + 1, s + TokenMetrics::kSums + 1 + classes_, counts_.begin());
  }

 private:
  TokenMetrics tm_;
  std::vector<double> counts_;  // examples per label
  size_t classes_ = counts_.size();
  double n_ = 0;
};

}  // namespace

// --- construction -----------------------------------------------------------------

LraTask::LraTask(const std::string& kind, const TaskSpec& spec) : kind_(kind), seed_(spec.seed) {
  std::vector<std::string> known = {"pooling", "max_train", "max_eval"};
  if (kind == "listops" || kind == "pathfinder") known.insert(known.end(), {"generate", "cache"});
  if (kind == "image" || kind == "text" || kind == "pathfinder") known.push_back("val_fraction");
  if (kind == "pathfinder") known.push_back("test_fraction");
  if (kind == "image" || kind == "text") known.push_back("dataset");
  if (kind == "image" || kind == "pathfinder") known.push_back("levels");
  if (kind == "retrieval") known.push_back("mode");
  spec.check_options(known);
  pooling_ = str_option(spec, "pooling", "mean", {"mean", "last"});
  doc_len_ = spec.data.seq_len;
  if (doc_len_ <= 0)
    throw ConfigError(spec.data_where_of("seq_len") + ": data.seq_len must be positive");
  load(spec);
}

void LraTask::load(const TaskSpec& s) {
  const std::string task = "lra_" + kind_;
  const bool have_path = !s.data.paths.empty();
  const json* gen = option(s, "generate");
  if (gen && !gen->is_null() && !gen->is_object())
    throw ConfigError(s.where_of("generate") + ": task.generate must be a mapping of generator "
                      "options ({n_train: 2000, ...}), got " + gen->dump());
  if (have_path) {
    if (s.data.paths.size() != 1)
      throw ConfigError(s.data_where_of("path") + ": data.path: task " + task +
                        " reads one directory, got " + std::to_string(s.data.paths.size()) + " paths");
    dir_ = s.data.paths[0];
    if (gen && !gen->is_null())
      std::fprintf(stderr, "note: %s: data.path is set, so task.generate is ignored\n", task.c_str());
  } else if (gen && !gen->is_null()) {
    for (auto it = gen->begin(); it != gen->end(); ++it) {
      const auto& keys = generate_keys(kind_);
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end())
        throw ConfigError(s.where_of("generate") + ": task.generate: unknown option '" + it.key() +
                          "' for " + task + did_you_mean(it.key(), keys));
    }
    dir_ = str_option(s, "cache", "", {});
    if (dir_.empty()) dir_ = "data/lra_gen/" + kind_ + "-" + short_hash(gen->dump());
    ensure_generated(kind_, s, *gen, dir_);
  } else {
    throw ConfigError(s.data_where_of("path") + ": data.path: task " + task +
                      " needs the data directory" +
                      (kind_ == "listops" || kind_ == "pathfinder"
                           ? std::string(" (or task.generate: {n_train: ..., n_val: ..., n_test: ...})")
                           : std::string()));
  }
  if (!fs::is_directory(dir_)) throw Error(dir_ + ": " + task + ": not a directory");

  lra::ReadOptions ro;
  ro.max_len = doc_len_;
  const double val_fraction = top_num(s, "val_fraction", 0.1, 0, 0.9);
  const uint64_t split_seed = 0x5eed;  // splits do not move with train.seed
  auto missing = [&](const std::string& what) {
    return Error(dir_ + ": " + task + ": no " + what + " in this directory");
  };

  if (kind_ == "listops") {
    for (auto [part, file] : Parts{{&train_, "basic_train.tsv"}, {&val_, "basic_val.tsv"},
                              {&test_, "basic_test.tsv"}}) {
      const std::string p = (fs::path(dir_) / file).string();
      if (!fs::exists(p)) throw missing(file);
      *part = lra::read_listops(p, ro);
    }
  } else if (kind_ == "text") {
    std::string ds = str_option(s, "dataset", "auto", {"auto", "tsv", "imdb"});
    if (ds == "auto") ds = fs::is_directory(fs::path(dir_) / "train" / "pos") ? "imdb" : "tsv";
    if (ds == "imdb") {
      auto sp = lra::split_dataset(lra::read_imdb_dir(dir_ + "/train", ro), val_fraction, 0, split_seed);
      train_ = std::move(sp.train);
      val_ = std::move(sp.val);
      test_ = lra::read_imdb_dir(dir_ + "/test", ro);
    } else {
      for (auto [part, stem] : Parts{{&train_, "train"}, {&val_, "eval"}, {&test_, "test"}}) {
        const std::string p = first_existing(dir_, {std::string("text.") + stem + ".tsv",
                                                    std::string(stem) + ".tsv"});
        if (p.empty()) throw missing(std::string("text.") + stem + ".tsv");
        *part = lra::read_text_tsv(p, ro);
      }
    }
  } else if (kind_ == "retrieval") {
    two_tower_ = str_option(s, "mode", "concat", {"concat", "two_tower"}) == "two_tower";
    for (auto [part, stem] : Parts{{&train_, "train"}, {&val_, "eval"}, {&test_, "test"}}) {
      const std::string p = first_existing(dir_, {std::string("pairs.") + stem + ".tsv",
                                                  std::string("new_aan_pairs.") + stem + ".tsv"});
      if (p.empty()) throw missing(std::string("pairs.") + stem + ".tsv or new_aan_pairs." + stem + ".tsv");
      *part = lra::read_retrieval(p, ro);
    }
  } else if (kind_ == "image") {
    std::string ds = str_option(s, "dataset", "auto", {"auto", "cifar10", "idx"});
    if (ds == "auto") ds = fs::exists(fs::path(dir_) / "data_batch_1.bin") ? "cifar10" : "idx";
    lra::Dataset full, test;
    if (ds == "cifar10") {
      full = lra::read_cifar10(lra::cifar10_files(dir_, "train"), ro);
      test = lra::read_cifar10(lra::cifar10_files(dir_, "test"), ro);
    } else {
      full = lra::read_fashion_mnist(dir_, "train", ro);
      test = lra::read_fashion_mnist(dir_, "test", ro);
    }
    auto sp = lra::split_dataset(std::move(full), val_fraction, 0, split_seed);
    train_ = std::move(sp.train);
    val_ = std::move(sp.val);
    test_ = std::move(test);
  } else if (kind_ == "pathfinder") {
    double test_fraction = top_num(s, "test_fraction", 0.1, 0, 0.9);
    double vf = val_fraction;
    const fs::path marker = fs::path(dir_) / "generate.json";
    if (!have_path && fs::exists(marker)) {
      // Generated: the split sizes the generator was asked for.
      json g;
      try {
        g = json::parse(read_text(marker));
      } catch (const json::exception& e) {
        throw Error(marker.string() + ": not valid JSON: " + library_what(e));
      }
      if (!g.is_object()) throw Error(marker.string() + ": expected a JSON object, got " + g.type_name());
      const auto count = [&](const char* k, double def) {
        const auto it = g.find(k);
        if (it == g.end()) return def;
        if (!it->is_number() || !(it->get<double>() >= 1))
          throw Error(marker.string() + ": \"" + k + "\" must be a number of examples (at least 1)");
        return it->get<double>();
      };
      const double nt = count("n_train", 10000.0), nv = count("n_val", 1000.0), ne = count("n_test", 1000.0);
      vf = nv / (nt + nv + ne);
      test_fraction = ne / (nt + nv + ne);
    }
    if (!fs::is_directory(fs::path(dir_) / "metadata")) throw missing("metadata/ directory");
    auto sp = lra::split_dataset(lra::read_pathfinder(dir_, ro), vf, test_fraction, split_seed);
    train_ = std::move(sp.train);
    val_ = std::move(sp.val);
    test_ = std::move(sp.test);
  } else {
    throw Error("LraTask: unknown kind '" + kind_ + "'");
  }

  truncate(train_, size_t(top_num(s, "max_train", 0, 0, 1e9)));
  const size_t max_eval = size_t(top_num(s, "max_eval", 0, 0, 1e9));
  truncate(val_, max_eval);
  truncate(test_, max_eval);
  for (auto [d, name] : Parts{{&train_, "train"}, {&val_, "val"}, {&test_, "test"}})
    if (d->examples.empty()) throw Error(dir_ + ": " + task + ": the " + name + " split is empty");

  int reader_vocab = std::max({train_.vocab_size, val_.vocab_size, test_.vocab_size});
  // Fewer grey levels: level = pixel * levels / 256, so an embedding table
  // of `levels` rows learns from more examples per row.
  const int levels = int(top_num(s, "levels", 256, 2, 256));
  if (levels < 256 && (kind_ == "image" || kind_ == "pathfinder")) {
    for (auto* d : {&train_, &val_, &test_})
      for (auto& e : d->examples)
        for (auto& t : e.tokens) t = uint8_t(int(t) * levels / 256);
    reader_vocab = levels;
  }
  classes_ = std::max({train_.num_classes, val_.num_classes, test_.num_classes, 2});
  pad_ = reader_vocab;
  vocab_ = reader_vocab + 1;
  len_ = doc_len_;
  if (kind_ == "retrieval" && !two_tower_) {
    sep_ = reader_vocab + 1;
    vocab_ = reader_vocab + 2;
    len_ = 2 * doc_len_ + 1;
  }
  for (auto* d : {&train_, &val_, &test_})
    for (size_t i = 0; i < d->examples.size(); ++i) {
      const auto& e = d->examples[i];
      MK_CHECK(e.label >= 0 && e.label < classes_,
               d->source + ": example " + std::to_string(i) + " has label " + std::to_string(e.label) +
                   " outside 0.." + std::to_string(classes_ - 1));
    }
  order_ = epoch_order(0);
}

// --- batches ----------------------------------------------------------------------

std::vector<size_t> LraTask::epoch_order(uint64_t epoch) const {
  std::vector<size_t> order(train_.examples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + epoch + 1);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

// Two-tower retrieval: P examples -> 2P rows, the first documents in rows
// [0, P), the second ones in [P, 2P), each padded to the document length.
TokenBatch LraTask::make_pair_batch(const lra::Dataset& d, const std::vector<size_t>& idx) const {
  const int P = int(idx.size());
  TokenBatch b;
  b.batch = 2 * P;
  b.len = len_;
  b.ids.assign(size_t(b.batch) * len_, pad_);
  b.targets.assign(b.ids.size(), -1);
  b.lengths.assign(size_t(b.batch), 1);  // an empty document is one pad token
  for (int i = 0; i < P; ++i) {
    const auto& e = d.examples[idx[size_t(i)]];
    int side = 0;
    for (const auto* doc : {&e.tokens, &e.tokens2}) {
      const int row = side++ * P + i;
      const int n = int(std::min(doc->size(), size_t(doc_len_)));
      std::copy_n(doc->begin(), n, b.ids.begin() + long(row) * len_);
      b.lengths[size_t(row)] = std::max(1, n);
    }
    b.labels.push_back(e.label);
  }
  return b;
}

TokenBatch LraTask::make_batch(const lra::Dataset& d, const std::vector<size_t>& idx) const {
  if (two_tower_) return make_pair_batch(d, idx);
  TokenBatch b;
  b.batch = int(idx.size());
  b.len = len_;
  b.ids.assign(size_t(b.batch) * len_, pad_);
  b.targets.assign(b.ids.size(), -1);
  for (int i = 0; i < b.batch; ++i) {
    const auto& e = d.examples[idx[size_t(i)]];
    int32_t* row = b.ids.data() + size_t(i) * len_;
    int n = 0;
    for (size_t t = 0; t < e.tokens.size() && n < doc_len_; ++t) row[n++] = e.tokens[t];
    if (sep_ >= 0) {
      row[n++] = sep_;
      for (size_t t = 0; t < e.tokens2.size() && t < size_t(doc_len_); ++t) row[n++] = e.tokens2[t];
    }
    b.labels.push_back(e.label);
    b.lengths.push_back(std::max(1, n));  // an empty example is one pad token
  }
  return b;
}

TokenBatch LraTask::next_train_batch(int batch) {
  MK_CHECK(batch > 0, name() + ": batch must be positive");
  std::vector<size_t> idx;
  while (int(idx.size()) < batch) {
    if (pos_ >= order_.size()) order_ = epoch_order(++epoch_), pos_ = 0;
    idx.push_back(order_[pos_++]);
  }
  return make_batch(train_, idx);
}

std::string LraTask::sampler_state() const {
  return std::to_string(epoch_) + " " + std::to_string(pos_);
}

void LraTask::set_sampler_state(const std::string& state) {
  std::istringstream ss(state);
  uint64_t e = 0;
  size_t p = 0;
  if (!(ss >> e >> p) || p > train_.examples.size())
    throw Error(name() + ": bad sampler state '" + state + "' (expected 'epoch position')");
  epoch_ = e;
  pos_ = p;
  order_ = epoch_order(epoch_);
}

const lra::Dataset& LraTask::split_data(const std::string& split) const {
  if (split == "train") return train_;
  if (split == "val") return val_;
  if (split == "test") return test_;
  throw ConfigError(name() + ": no split '" + split + "' (it has: train, val, test)" +
                    did_you_mean(split, splits()));
}

std::vector<TokenBatch> LraTask::eval_batches(const std::string& split, int batch,
                                              size_t max_sequences) const {
  MK_CHECK(batch > 0, name() + ": batch must be positive");
  const auto& d = split_data(split);
  size_t n = d.examples.size();
  if (max_sequences > 0) n = std::min(n, max_sequences);
  std::vector<TokenBatch> out;
  for (size_t i = 0; i < n; i += size_t(batch)) {
    std::vector<size_t> idx;
    for (size_t j = i; j < std::min(n, i + size_t(batch)); ++j) idx.push_back(j);
    out.push_back(make_batch(d, idx));
  }
  return out;
}

std::unique_ptr<MetricAccumulator> LraTask::metrics() const {
  return std::make_unique<LraMetrics>(num_classes());
}

// --- text <-> ids (for inspection; classification tasks do not generate) ----

std::vector<int32_t> LraTask::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  if (kind_ == "listops") {
    for (uint8_t t : lra::listops_tokenize(text, "encode")) ids.push_back(t);
  } else {
    for (unsigned char c : text) ids.push_back(c);
  }
  return ids;
}

std::string LraTask::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (int32_t i : ids) {
    if (i == pad_) continue;
    if (i == sep_) {
      s += "\t";
    } else if (kind_ == "listops") {
      const auto& v = lra::listops_vocab();
      s += (s.empty() ? "" : " ") + (i >= 0 && size_t(i) < v.size() ? v[size_t(i)] : "?");
    } else {
      s.push_back(char(i & 0xff));
    }
  }
  return s;
}

// --- factories ------------------------------------------------------------------------

std::unique_ptr<Task> make_lra_listops_task(const TaskSpec& s) {
  return std::make_unique<LraTask>("listops", s);
}
std::unique_ptr<Task> make_lra_text_task(const TaskSpec& s) {
  return std::make_unique<LraTask>("text", s);
}
std::unique_ptr<Task> make_lra_retrieval_task(const TaskSpec& s) {
  return std::make_unique<LraTask>("retrieval", s);
}
std::unique_ptr<Task> make_lra_image_task(const TaskSpec& s) {
  return std::make_unique<LraTask>("image", s);
}
std::unique_ptr<Task> make_lra_pathfinder_task(const TaskSpec& s) {
  return std::make_unique<LraTask>("pathfinder", s);
}

}  // namespace mk::tasks
