// mambakit's byte-level BPE trainer: GPT-2 pre-tokenization, word counts,
// then greedy merges of the most frequent adjacent pair. Pair counts are
// kept up to date incrementally (only the words holding the merged pair are
// revisited) and a lazy max-heap finds the next pair, so a merge costs time
// proportional to the words it touches, not to the corpus.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "mambakit/datasets/tokenizer.h"
#include "mambakit/datasets/tokenizer_train.h"
#include "mambakit/error.h"
#include "mambakit/io/atomic_file.h"
#include "tokenizer_bpe_common.h"

namespace mk::data {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr int kMaxVocab = 1 << 24;
constexpr size_t kBlockBytes = 8 << 20;  // files are read in blocks cut at a newline

uint64_t pair_key(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }
int32_t left_of(uint64_t key) { return int32_t(key >> 32); }
int32_t right_of(uint64_t key) { return int32_t(key & 0xFFFFFFFFu); }

struct Word {
  std::vector<int32_t> symbols;
  uint64_t count;
};

// A pair's count when it was queued; stale once the count has changed.
struct Queued {
  int64_t count;
  uint64_t pair;
  // The top is the largest count, then the smallest (left, right) ids.
  bool operator<(const Queued& o) const { return count != o.count ? count < o.count : pair > o.pair; }
};

class BpeTrainer {
 public:
  explicit BpeTrainer(const BpeTrainOptions& o);
  size_t count_file(const std::string& path);  // the file's size in bytes
  void train();
  void write(const std::string& out_dir) const;
  int vocab_size() const { return int(tokens_.size()); }

 private:
  void count_block(const std::string& text);
  void build_words();
  void merge(uint64_t pair, int32_t result);
  int32_t token_for(int32_t left, int32_t right);
  void report(size_t merges_done, int64_t count, bool force);

  BpeTrainOptions options_;
  bpe::LiteralSplitter specials_;
  std::unordered_map<std::string, uint64_t> word_counts_;
  std::vector<Word> words_;
  std::vector<std::string> tokens_;  // by id, byte-level spelling
  std::unordered_map<std::string, int32_t> ids_;
  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::unordered_set<uint64_t> merged_pairs_;
  uint64_t merge_steps_ = 0;
  std::unordered_map<uint64_t, int64_t> pair_counts_;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where_;  // pair -> words that held it
  std::vector<uint64_t> last_visit_;                           // per word: the merge that last visited it
  std::priority_queue<Queued> queue_;
  Clock::time_point started_ = Clock::now(), last_report_ = Clock::now();
};

BpeTrainer::BpeTrainer(const BpeTrainOptions& o) : options_(o) {
  for (const auto& s : o.special_tokens) {
    if (s.empty()) throw mk::Error("special tokens cannot be empty");
    if (ids_.count(s)) throw mk::Error("special token \"" + s + "\" is listed twice");
    specials_.add(s, int32_t(tokens_.size()));
    ids_[s] = int32_t(tokens_.size());
    tokens_.push_back(s);
  }
  for (int b = 0; b < 256; ++b) {
    const std::string& spelling = bpe::byte_chars()[b];
    if (ids_.count(spelling))
      throw mk::Error("special token \"" + spelling + "\" clashes with the byte-level token of byte " +
                      std::to_string(b));
    ids_[spelling] = int32_t(tokens_.size());
    tokens_.push_back(spelling);
  }
}

size_t BpeTrainer::count_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::error_code ec;
  if (!f || !fs::is_regular_file(path, ec)) throw mk::Error(path + ": no such file");
  std::string block(kBlockBytes, '\0'), rest;
  size_t bytes = 0;
  while (f) {
    f.read(block.data(), std::streamsize(kBlockBytes));
    block.resize(size_t(f.gcount()));
    // Finish the current line so no word is cut in two.
    if (f && std::getline(f, rest)) block += rest + (f.eof() ? "" : "\n");
    bytes += block.size();
    count_block(block);
    block.resize(kBlockBytes);
  }
  if (options_.progress)
    options_.progress("read " + path + ": " + std::to_string(bytes) + " bytes, " + std::to_string(word_counts_.size()) +
                      " distinct words so far");
  return bytes;
}

// Special tokens in the text separate words and are never merged into.
void BpeTrainer::count_block(const std::string& text) {
  specials_.split(text, [&](std::string_view piece, int32_t id) {
    if (id >= 0) return;
    for (const std::string& w : gpt2_pretokenize(std::string(piece))) ++word_counts_[w];
  });
}

void BpeTrainer::build_words() {
  std::vector<std::pair<std::string, uint64_t>> sorted(word_counts_.begin(), word_counts_.end());
  std::sort(sorted.begin(), sorted.end());  // the hash map's order must not leak into the result
  word_counts_.clear();
  const int32_t first_byte_id = int32_t(options_.special_tokens.size());
  for (const auto& [w, count] : sorted) {
    Word word{{}, count};
    for (unsigned char b : w) word.symbols.push_back(first_byte_id + b);
    for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
      const uint64_t p = pair_key(word.symbols[i], word.symbols[i + 1]);
      pair_counts_[p] += int64_t(count);
      where_[p].push_back(uint32_t(words_.size()));
    }
    words_.push_back(std::move(word));
  }
  last_visit_.assign(words_.size(), UINT64_MAX);
  for (const auto& [p, count] : pair_counts_) queue_.push({count, p});
}

void BpeTrainer::train() {
  build_words();
  const size_t target = size_t(options_.vocab_size);
  while (tokens_.size() < target && !queue_.empty()) {
    const Queued top = queue_.top();
    queue_.pop();
    const auto it = pair_counts_.find(top.pair);
    if (it == pair_counts_.end() || it->second != top.count) continue;  // stale
    if (top.count < 1) break;
    const int32_t result = token_for(left_of(top.pair), right_of(top.pair));
    // A pair merged before can come back when a later merge re-spelled one
    // of its tokens; it is merged again but listed once (HF would keep the
    // last rank of a repeated merge, mambakit the first).
    if (merged_pairs_.insert(top.pair).second) merges_.emplace_back(left_of(top.pair), right_of(top.pair));
    merge(top.pair, result);
    report(merges_.size(), top.count, false);
  }
  report(merges_.size(), 0, true);
}

// The id of left+right, a new token unless another merge already spelled it.
int32_t BpeTrainer::token_for(int32_t left, int32_t right) {
  const std::string spelling = tokens_[left] + tokens_[right];
  const auto [it, added] = ids_.emplace(spelling, int32_t(tokens_.size()));
  if (added) tokens_.push_back(spelling);
  return it->second;
}

// Replaces every occurrence of pair in the words holding it, left to right,
// and updates the counts of the pairs around each occurrence.
void BpeTrainer::merge(uint64_t pair, int32_t result) {
  const int32_t a = left_of(pair), b = right_of(pair);
  const uint64_t stamp = ++merge_steps_;
  std::unordered_map<uint64_t, int64_t> delta;
  const std::vector<uint32_t> holders = std::move(where_[pair]);
  where_.erase(pair);
  for (uint32_t w : holders) {
    if (last_visit_[w] == stamp) continue;  // listed twice
    last_visit_[w] = stamp;
    std::vector<int32_t>& s = words_[w].symbols;
    const int64_t count = int64_t(words_[w].count);
    std::vector<int32_t> merged;
    merged.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
        merged.push_back(result);
        ++i;
      } else {
        merged.push_back(s[i]);
      }
    }
    if (merged.size() == s.size()) continue;  // no longer holds the pair
    for (size_t i = 0; i + 1 < s.size(); ++i) delta[pair_key(s[i], s[i + 1])] -= count;
    for (size_t i = 0; i + 1 < merged.size(); ++i) {
      const uint64_t p = pair_key(merged[i], merged[i + 1]);
      delta[p] += count;
      if (merged[i] == result || merged[i + 1] == result) where_[p].push_back(w);
    }
    s = std::move(merged);
  }
  for (const auto& [p, d] : delta) {
    if (d == 0) continue;
    int64_t& c = pair_counts_[p];
    c += d;
    if (c > 0) queue_.push({c, p});
  }
  pair_counts_.erase(pair);
}

void BpeTrainer::report(size_t merges_done, int64_t count, bool force) {
  if (!options_.progress) return;
  const auto now = Clock::now();
  if (!force && now - last_report_ < std::chrono::seconds(2)) return;
  last_report_ = now;
  const double s = std::chrono::duration<double>(now - started_).count();
  std::string line = "merges " + std::to_string(merges_done) + ", vocabulary " + std::to_string(tokens_.size()) + "/" +
                     std::to_string(options_.vocab_size);
  if (!force) line += ", last pair seen " + std::to_string(count) + " times";
  char t[32];
  std::snprintf(t, sizeof t, " (%.1f s)", s);
  options_.progress(line + t);
}

ordered_json byte_level(bool add_prefix_space) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", true}, {"use_regex", true}};
}

// As HF tokenizers writes a trained BPE, with merges in the "a b" form
// that every version of tokenizers reads (byte-level tokens hold no space).
void BpeTrainer::write(const std::string& out_dir) const {
  ordered_json added = ordered_json::array();
  for (size_t i = 0; i < options_.special_tokens.size(); ++i)
    added.push_back({{"id", i}, {"content", tokens_[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  ordered_json vocab = ordered_json::object();
  for (size_t i = 0; i < tokens_.size(); ++i) vocab[tokens_[i]] = i;
  ordered_json merges = ordered_json::array();
  for (const auto& [l, r] : merges_) merges.push_back(tokens_[l] + " " + tokens_[r]);
  ordered_json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                        {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                        {"vocab", std::move(vocab)}, {"merges", std::move(merges)}};
  const ordered_json j = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
                          {"added_tokens", std::move(added)}, {"normalizer", nullptr},
                          {"pre_tokenizer", byte_level(false)}, {"post_processor", nullptr},
                          {"decoder", byte_level(true)}, {"model", std::move(model)}};
  fs::create_directories(out_dir);
  mk::atomic_write_text((fs::path(out_dir) / "tokenizer.json").string(), j.dump(2) + "\n");
  ordered_json config = {{"tokenizer_class", "PreTrainedTokenizerFast"}};
  if (ids_.count("<|endoftext|>")) config["bos_token"] = config["eos_token"] = "<|endoftext|>";
  mk::atomic_write_text((fs::path(out_dir) / "tokenizer_config.json").string(), config.dump(2) + "\n");
}

}  // namespace

TrainReport train_bpe(const std::vector<std::string>& files, const std::string& out_dir, const BpeTrainOptions& o) {
  const int floor = 256 + int(o.special_tokens.size());
  if (o.vocab_size < floor || o.vocab_size > kMaxVocab)
    throw mk::Error("vocabulary size " + std::to_string(o.vocab_size) + " is outside [" + std::to_string(floor) + ", " +
                    std::to_string(kMaxVocab) + "] (256 bytes + " + std::to_string(o.special_tokens.size()) +
                    " special tokens at least)");
  if (files.empty()) throw mk::Error("no input files to train on");
  const auto start = Clock::now();
  BpeTrainer trainer(o);
  TrainReport r;
  for (const auto& f : files) r.input_bytes += trainer.count_file(f);
  if (r.input_bytes == 0) throw mk::Error("the input files are empty");
  trainer.train();
  trainer.write(out_dir);
  r.path = (fs::path(out_dir) / "tokenizer.json").string();
  r.vocab_size = trainer.vocab_size();
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

}  // namespace mk::data
