// Byte-level BPE from a HF tokenizer.json (GPT-2 / GPT-NeoX family).
// Encoding follows HF tokenizers step by step: added tokens are split out
// first (those with normalized=false on the raw text, then the others on the
// normalized pieces), each remaining piece is pre-tokenized with GPT-2's
// regex, spelled in GPT-2's byte characters and merged by rank.
#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "mambakit/datasets/tokenizer.h"
#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/io/atomic_file.h"
#include "tokenizer_bpe_common.h"
#include "tokenizer_unicode.h"

namespace mk::data {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Merge {
  int32_t rank;
  int32_t result;
};

uint64_t pair_key(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }

// What the tokenizer.json asks for, checked against what is implemented.
struct BpeSpec {
  bool nfc = false;
  bool add_prefix_space = false;
  bool use_regex = true;
  bool ignore_merges = false;
};

class BpeTokenizer : public Tokenizer {
 public:
  explicit BpeTokenizer(const std::string& path);

  std::string name() const override { return "bpe"; }
  int vocab_size() const override { return int(tokens_.size()); }
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string id_to_token(int32_t id) const override;
  std::optional<int32_t> token_to_id(const std::string& token) const override;

 private:
  const std::string& token_of(int32_t id) const;  // mk::Error outside the vocabulary
  [[noreturn]] void fail(const std::string& why) const { throw mk::Error(path_ + ": " + why); }
  void read_spec(const json& j);
  void read_model(const json& model);
  void read_merges(const json& merges);
  void read_added_tokens(const json& added);
  void read_special_ids();
  void set_token(int32_t id, const std::string& token, bool added);

  void check_nfc_invariant(std::string_view text) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& ids) const;
  void encode_word(const std::string& word, std::vector<int32_t>& ids) const;
  std::vector<int32_t> merge_word(const std::string& word) const;

  std::string path_;
  size_t max_tokens_ = 0;  // ids are below this (see the constructor)
  BpeSpec spec_;
  std::unordered_map<std::string, int32_t> vocab_;  // model vocabulary, byte-level spelling
  std::unordered_map<std::string, int32_t> added_;  // added tokens, as written in text
  std::vector<std::string> tokens_;                 // by id; "" where no token has the id
  std::vector<bool> is_added_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> rank and result
  std::array<int32_t, 256> byte_ids_{};
  bpe::LiteralSplitter raw_added_, normalized_added_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;  // word -> ids
};

// A field of the wrong type; the constructor adds the file.
struct FieldError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string type_of(const json& j) { return j.is_object() ? j.value("type", std::string("?")) : "?"; }

bool flag(const json& j, const char* key, bool fallback) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw FieldError(std::string("\"") + key + "\" is a " + it->type_name() + ", expected true or false");
  return it->get<bool>();
}

// A token id: an integer in [0, INT32_MAX] (a float or a huge number is not
// converted, which would be undefined).
int32_t token_id(const json& v, const std::string& what) {
  if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0) ||
      v.get<uint64_t>() > uint64_t(INT32_MAX))
    throw FieldError(what + ": id " + v.dump() + " is not an integer in [0, 2^31)");
  return int32_t(v.get<int64_t>());
}

BpeTokenizer::BpeTokenizer(const std::string& path) : path_(path) {
  json j;
  const std::string text = mk::read_text_file(path);
  // Ids index a table of tokens, so they are bounded by what the file can
  // describe: a dense vocabulary of n tokens takes more than n bytes.
  max_tokens_ = std::max<size_t>(size_t(1) << 20, text.size());
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("not valid JSON: " + mk::library_what(e));
  }
  if (!j.is_object() || !j.contains("model")) fail("not a tokenizer.json (no \"model\" section)");
  try {
    // The model first: a Unigram or WordPiece file fails for that reason.
    if (j["model"].contains("type") && type_of(j["model"]) != "BPE")
      fail("model " + type_of(j["model"]) + " is not supported (mambakit supports BPE)");
    read_spec(j);
    read_model(j["model"]);
    read_added_tokens(j.value("added_tokens", json::array()));
  } catch (const json::exception& e) {
    fail("malformed tokenizer.json: " + mk::library_what(e));
  } catch (const FieldError& e) {
    fail(std::string("malformed tokenizer.json: ") + e.what());
  }
  read_special_ids();
}

// The normalizer, pre-tokenizer, post-processor and decoder: only what
// GPT-2 / GPT-NeoX files use is accepted, anything else is refused by name.
void BpeTokenizer::read_spec(const json& j) {
  json norm = j.value("normalizer", json());
  if (type_of(norm) == "Sequence") {
    const json& list = norm.at("normalizers");
    if (list.size() > 1)
      fail("normalizer Sequence of " + std::to_string(list.size()) +
           " is not supported (mambakit supports none or NFC)");
    norm = list.empty() ? json() : list[0];
  }
  if (!norm.is_null() && type_of(norm) != "NFC")
    fail("normalizer " + type_of(norm) + " is not supported (mambakit supports none or NFC)");
  spec_.nfc = !norm.is_null();

  json pre = j.value("pre_tokenizer", json());
  if (type_of(pre) == "Sequence" && pre.at("pretokenizers").size() == 1) pre = pre["pretokenizers"][0];
  if (type_of(pre) != "ByteLevel")
    fail("pre_tokenizer " + (pre.is_null() ? std::string("null") : type_of(pre)) +
         " is not supported (mambakit supports ByteLevel, i.e. GPT-2 / GPT-NeoX byte-level BPE)");
  spec_.add_prefix_space = flag(pre, "add_prefix_space", true);
  spec_.use_regex = flag(pre, "use_regex", true);

  const json dec = j.value("decoder", json());
  if (!dec.is_null() && type_of(dec) != "ByteLevel")
    fail("decoder " + type_of(dec) + " is not supported (mambakit supports ByteLevel)");
  const json post = j.value("post_processor", json());
  if (!post.is_null() && type_of(post) != "ByteLevel")
    fail("post_processor " + type_of(post) +
         " is not supported (it adds tokens around each text; mambakit supports ByteLevel or none)");
}

void BpeTokenizer::read_model(const json& model) {
  const json dropout = model.value("dropout", json());
  if (!dropout.is_null() && dropout.get<double>() != 0.0) fail("BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json v = model.value(key, json());
    if (!v.is_null() && !v.get<std::string>().empty()) fail(std::string("BPE ") + key + " is not supported");
  }
  spec_.ignore_merges = flag(model, "ignore_merges", false);
  for (const auto& [token, id] : model.at("vocab").items()) {
    const int32_t i = token_id(id, "vocab: token \"" + token + "\"");
    set_token(i, token, false);
    vocab_[token] = i;
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = vocab_.find(bpe::byte_chars()[b]);
    if (it == vocab_.end())
      fail("vocab lacks the byte-level token for byte " + std::to_string(b) + ": not a byte-level BPE");
    byte_ids_[b] = it->second;
  }
  read_merges(model.at("merges"));
}

// Both spellings of a merge: "a b" (before tokenizers 0.20) and ["a", "b"].
void BpeTokenizer::read_merges(const json& merges) {
  int32_t rank = 0;
  for (const json& m : merges) {
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        fail("merge " + std::to_string(rank) + " \"" + s + "\" is not two tokens separated by one space");
      left = s.substr(0, space), right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2) {
      left = m[0].get<std::string>(), right = m[1].get<std::string>();
    } else {
      fail("merge " + std::to_string(rank) + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const auto l = vocab_.find(left), r = vocab_.find(right), out = vocab_.find(left + right);
    if (l == vocab_.end() || r == vocab_.end() || out == vocab_.end())
      fail("merge " + std::to_string(rank) + " (" + left + " " + right + ") uses a token missing from the vocab");
    merges_.emplace(pair_key(l->second, r->second), Merge{rank, out->second});
    ++rank;
  }
}

void BpeTokenizer::read_added_tokens(const json& added) {
  for (const json& t : added) {
    const std::string content = t.at("content").get<std::string>();
    const int32_t id = token_id(t.at("id"), "added token \"" + content + "\"");
    for (const char* key : {"lstrip", "rstrip", "single_word"})
      if (flag(t, key, false)) fail("added token \"" + content + "\" uses " + key + ", which is not supported");
    const bool special = flag(t, "special", false);
    if (id < 0) fail("added token \"" + content + "\" has a negative id");
    set_token(id, content, true);
    added_[content] = id;
    // HF's default: special tokens match the raw text, others the normalized one.
    (flag(t, "normalized", !special) ? normalized_added_ : raw_added_).add(content, id);
  }
}

void BpeTokenizer::set_token(int32_t id, const std::string& token, bool added) {
  if (size_t(id) >= max_tokens_)
    fail("token \"" + token + "\" has id " + std::to_string(id) + ", beyond any vocabulary this file can describe (" +
         std::to_string(max_tokens_) + " ids)");
  if (size_t(id) >= tokens_.size()) tokens_.resize(size_t(id) + 1), is_added_.resize(size_t(id) + 1);
  tokens_[id] = token;
  is_added_[id] = added;
}

// <|endoftext|> is both bos and eos (GPT-2, GPT-NeoX) unless
// tokenizer_config.json beside the file names them, as a string or as
// {"content": ...} (null: none).
void BpeTokenizer::read_special_ids() {
  eos_ = bos_ = token_to_id("<|endoftext|>");
  const fs::path config = fs::path(path_).parent_path() / "tokenizer_config.json";
  if (!fs::is_regular_file(config)) return;
  json c;
  try {
    c = json::parse(mk::read_text_file(config.string()));
  } catch (const json::exception& e) {
    throw mk::Error(config.string() + ": not valid JSON: " + mk::library_what(e));
  }
  const auto named = [&](const json& v) -> std::optional<int32_t> {
    if (v.is_string()) return token_to_id(v.get<std::string>());
    if (v.is_object() && v.contains("content") && v["content"].is_string())
      return token_to_id(v["content"].get<std::string>());
    return std::nullopt;
  };
  if (c.is_object() && c.contains("eos_token")) eos_ = named(c["eos_token"]);
  if (c.is_object() && c.contains("bos_token")) bos_ = named(c["bos_token"]);
}

void BpeTokenizer::check_nfc_invariant(std::string_view text) const {
  const auto cps = unicode::decode_utf8(std::string(text));
  for (size_t i = 0; i + 1 < cps.size(); ++i) {
    if (!unicode::may_change_under_nfc(cps[i].cp)) continue;
    char where[64];
    std::snprintf(where, sizeof where, "U+%04X at byte %zu", unsigned(cps[i].cp), cps[i].offset);
    fail(std::string("the text has ") + where +
         ", which NFC normalization (asked for by this tokenizer) may change; mambakit does not "
         "implement NFC: normalize the text to NFC before tokenizing");
  }
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  raw_added_.split(text, [&](std::string_view piece, int32_t id) {
    if (id >= 0) return ids.push_back(id);
    if (spec_.nfc) check_nfc_invariant(piece);
    normalized_added_.split(piece, [&](std::string_view sub, int32_t sub_id) {
      if (sub_id >= 0) return ids.push_back(sub_id);
      encode_piece(sub, ids);
    });
  });
  return ids;
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& ids) const {
  std::string text(piece);
  if (spec_.add_prefix_space && !text.empty() && text[0] != ' ') text.insert(text.begin(), ' ');
  if (!spec_.use_regex) return encode_word(text, ids);
  for (const std::string& word : gpt2_pretokenize(text)) encode_word(word, ids);
}

void BpeTokenizer::encode_word(const std::string& word, std::vector<int32_t>& ids) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(word);
    if (it != cache_.end()) return ids.insert(ids.end(), it->second.begin(), it->second.end()), void();
  }
  std::vector<int32_t> merged = merge_word(word);
  ids.insert(ids.end(), merged.begin(), merged.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() > (1u << 18)) cache_.clear();  // bounded: texts with endless distinct words
  cache_.emplace(word, std::move(merged));
}

// Applies merges lowest rank first (leftmost first among equal ranks), as
// HF does, over a linked list of symbols: O(n log n) even for long words.
std::vector<int32_t> BpeTokenizer::merge_word(const std::string& word) const {
  if (spec_.ignore_merges) {
    const auto whole = vocab_.find(byte_level_spelling(word));
    if (whole != vocab_.end()) return {whole->second};
  }
  const int n = int(word.size());
  std::vector<int32_t> sym(n);
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) sym[i] = byte_ids_[static_cast<unsigned char>(word[i])], prev[i] = i - 1, next[i] = i + 1;
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  const auto consider = [&](int pos) {
    if (pos < 0 || next[pos] >= n) return;
    const auto it = merges_.find(pair_key(sym[pos], sym[next[pos]]));
    if (it != merges_.end()) heap.push({it->second.rank, pos, sym[pos], sym[next[pos]]});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  std::vector<bool> alive(n, true);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int right = next[c.pos];
    // Stale: a neighbour merged since this candidate was queued.
    if (!alive[c.pos] || right >= n || sym[c.pos] != c.left || sym[right] != c.right) continue;
    sym[c.pos] = merges_.at(pair_key(c.left, c.right)).result;
    alive[right] = false;
    next[c.pos] = next[right];
    if (next[c.pos] < n) prev[next[c.pos]] = c.pos;
    consider(prev[c.pos]);
    consider(c.pos);
  }
  std::vector<int32_t> out;
  for (int i = 0; i < n; i = next[i]) out.push_back(sym[i]);
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    const std::string& token = token_of(id);
    if (is_added_[id]) {  // added tokens are written as the text spells them
      out += token;
      continue;
    }
    // Each character back to its byte; a token with a character outside
    // the map is passed through as UTF-8, as HF's ByteLevel decoder does.
    std::string bytes;
    const auto cps = unicode::decode_utf8(token);
    for (size_t i = 0; i + 1 < cps.size(); ++i) {
      const int b = bpe::char_to_byte(cps[i].cp);
      if (b < 0) {
        bytes = token;
        break;
      }
      bytes += char(b);
    }
    out += bytes;
  }
  return out;
}

const std::string& BpeTokenizer::token_of(int32_t id) const {
  if (id < 0 || id >= vocab_size() || tokens_[id].empty())
    fail("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(vocab_size()) +
         " tokens");
  return tokens_[id];
}

std::string BpeTokenizer::id_to_token(int32_t id) const { return token_of(id); }

std::optional<int32_t> BpeTokenizer::token_to_id(const std::string& token) const {
  if (const auto it = added_.find(token); it != added_.end()) return it->second;
  if (const auto it = vocab_.find(token); it != vocab_.end()) return it->second;
  return std::nullopt;
}

}  // namespace

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& tokenizer_json) {
  return std::make_unique<BpeTokenizer>(tokenizer_json);
}

}  // namespace mk::data
