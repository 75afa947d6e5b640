#include "mambakit/experiments/pretrained.h"

#include <climits>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "mambakit/datasets/tokenizer.h"
#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/io/atomic_file.h"
#include "mambakit/io/npy.h"

namespace mk::exp {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& why) { throw Error(path + ": " + why); }

}  // namespace

std::vector<int32_t> read_ids_npy(const std::string& path) {
  const Tensor t = read_npy(path);  // <i8 arrives as i32, range-checked
  if (t.dtype() != DType::i32)
    fail(path, std::string("token ids must be int32 or int64, not ") + dtype_name(t.dtype()));
  if (t.ndim() != 1) fail(path, "token ids must be a 1-D array, not shape " + shape_str(t.shape()));
  if (t.numel() == 0) fail(path, "holds no token ids");
  const int32_t* p = t.data<int32_t>();
  return std::vector<int32_t>(p, p + t.numel());
}

void check_ids_in_vocab(const std::vector<int32_t>& ids, int vocab_size, const std::string& what) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= vocab_size)
      throw Error(what + ": token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                  " is outside the vocabulary of " + std::to_string(vocab_size) + " tokens");
}

// --- text <-> ids -------------------------------------------------------------------

bool is_byte_model(const ModelConfig& cfg) { return cfg.vocab_size <= 256; }

namespace {

// The tokenizer stored with a model: tokenizer.json (byte-level BPE) or a
// SentencePiece *.model in its directory; none for a plain byte model.
std::unique_ptr<data::Tokenizer> model_tokenizer(const std::string& model_dir) {
  const fs::path d(model_dir);
  std::error_code ec;
  if (!fs::is_directory(d, ec)) return nullptr;
  bool found = fs::exists(d / "tokenizer.json");
  for (const auto& e : fs::directory_iterator(d, ec))
    found = found || e.path().extension() == ".model";
  return found ? data::load_tokenizer(model_dir) : nullptr;
}

}  // namespace

std::vector<int32_t> text_to_ids(const std::string& model_dir, const ModelConfig& cfg, const std::string& text,
                                 const std::string& ids_flag) {
  if (const auto tok = model_tokenizer(model_dir)) {
    const auto ids = tok->encode(text);
    check_ids_in_vocab(ids, cfg.vocab_size, model_dir + ": the " + tok->name() + " tokenizer's ids");
    return ids;
  }
  if (!is_byte_model(cfg))
    throw Error(model_dir + ": a " + std::to_string(cfg.vocab_size) +
                "-token vocabulary needs a tokenizer (tokenizer.json or a SentencePiece .model) "
                "and the directory has none; give token ids with " + ids_flag);
  std::vector<int32_t> ids(text.begin(), text.end());
  for (auto& id : ids) id = int32_t(static_cast<unsigned char>(id));
  check_ids_in_vocab(ids, cfg.vocab_size, model_dir + ": the text's bytes");
  return ids;
}

std::optional<std::string> ids_to_text(const std::string& model_dir, const ModelConfig& cfg,
                                       const std::vector<int32_t>& ids) {
  if (const auto tok = model_tokenizer(model_dir)) {
    for (int32_t id : ids)
      if (id < 0 || id >= tok->vocab_size()) return std::nullopt;  // the model's vocabulary may be padded
    return tok->decode(ids);
  }
  if (!is_byte_model(cfg)) return std::nullopt;
  std::string text;
  for (int32_t id : ids) {
    if (id < 0 || id > 255) return std::nullopt;  // never wrapped into a byte
    text.push_back(char(id));
  }
  return text;
}

// --- generation_config.json -----------------------------------------------------------

namespace {

// GenerationConfig fields that change what transformers generates and that
// mambakit's sampler does not implement, with the value that means "off".
const std::vector<std::pair<const char*, json>>& unsupported_fields() {
  static const std::vector<std::pair<const char*, json>> fields = {
      {"num_beams", 1},         {"num_beam_groups", 1},       {"penalty_alpha", nullptr},
      {"repetition_penalty", 1.0}, {"encoder_repetition_penalty", 1.0}, {"no_repeat_ngram_size", 0},
      {"min_length", 0},        {"min_new_tokens", 0},        {"typical_p", 1.0},
      {"min_p", nullptr},       {"epsilon_cutoff", 0.0},      {"eta_cutoff", 0.0},
      {"bad_words_ids", nullptr}, {"force_words_ids", nullptr}, {"suppress_tokens", nullptr},
      {"begin_suppress_tokens", nullptr}, {"forced_bos_token_id", nullptr}, {"forced_eos_token_id", nullptr},
      {"sequence_bias", nullptr}, {"guidance_scale", 1.0},    {"exponential_decay_length_penalty", nullptr},
      {"stop_strings", nullptr}, {"watermarking_config", nullptr},
  };
  return fields;
}

// A value that leaves a feature off: null, an empty list, or the default.
bool is_off(const json& v, const json& off) {
  if (v.is_null() || (v.is_array() && v.empty()) || (v.is_object() && v.empty())) return true;
  if (v.is_number() && off.is_number()) return v.get<double>() == off.get<double>();
  return v == off;
}

class GenFields {
 public:
  GenFields(const std::string& path, const json& j) : path_(path), j_(j) {}

  // The value of key when present and not null.
  const json* get(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  bool boolean(const char* key, bool fallback) const {
    const json* v = get(key);
    if (!v) return fallback;
    if (!v->is_boolean()) wrong(key, "a boolean", *v);
    return v->get<bool>();
  }
  double number(const char* key, double fallback) const {
    const json* v = get(key);
    if (!v) return fallback;
    if (!v->is_number()) wrong(key, "a number", *v);
    return v->get<double>();
  }
  std::optional<int> integer(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > INT_MAX)
      wrong(key, "a non-negative integer", *v);
    return v->get<int>();
  }
  // eos_token_id: an id, a list of ids, or null (none).
  std::optional<std::vector<int32_t>> token_list(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end()) return std::nullopt;
    std::vector<int32_t> ids;
    if (it->is_null()) return ids;
    const json list = it->is_array() ? *it : json::array({*it});
    for (const json& id : list) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT_MAX)
        wrong(key, "a token id or a list of token ids", *it);
      ids.push_back(id.get<int32_t>());
    }
    return ids;
  }
  void reject_unsupported() const {
    for (const auto& [key, off] : unsupported_fields()) {
      auto it = j_.find(key);
      if (it != j_.end() && !is_off(*it, off))
        fail(path_, "\"" + std::string(key) + "\": " + it->dump() +
                        " is not supported by mambakit's sampler (edit the file, or pass --no-generation-config)");
    }
  }

 private:
  [[noreturn]] void wrong(const char* key, const char* want, const json& v) const {
    fail(path_, "field \"" + std::string(key) + "\": expected " + want + ", got " + v.type_name() + " " + v.dump());
  }
  const std::string& path_;
  const json& j_;
};

}  // namespace

GenerationDefaults read_generation_config(const std::string& path) {
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& ex) {
    fail(path, "invalid JSON: " + library_what(ex));
  }
  if (!j.is_object()) fail(path, std::string("expected a JSON object, got ") + j.type_name());
  const GenFields f(path, j);
  f.reject_unsupported();
  GenerationDefaults g;
  g.do_sample = f.boolean("do_sample", g.do_sample);
  g.temperature = f.number("temperature", g.temperature);
  if (const auto k = f.integer("top_k")) g.top_k = *k;
  g.top_p = f.number("top_p", g.top_p);
  if (!(g.temperature >= 0)) fail(path, "field \"temperature\": must be >= 0");
  if (!(g.top_p > 0 && g.top_p <= 1)) fail(path, "field \"top_p\": must be in (0, 1]");
  g.max_new_tokens = f.integer("max_new_tokens");
  g.max_length = f.integer("max_length");
  g.eos_ids = f.token_list("eos_token_id");
  return g;
}

}  // namespace mk::exp
