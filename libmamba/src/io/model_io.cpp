#include "mambakit/io/model_io.h"

#include <climits>
#include <nlohmann/json.hpp>

#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/io/atomic_file.h"

namespace mk {
namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw Error(path + ": " + why);
}

// Typed field access: each getter names the file and the field on failure.
class Fields {
 public:
  Fields(const std::string& path, const json& j) : path_(path), j_(j) {}

  bool has(const char* key) const { return j_.contains(key); }

  int integer(const char* key) const {
    if (!has(key)) missing(key);
    const json& v = j_.at(key);
    if (!v.is_number_integer()) wrong(key, "an integer", v);
    return in_range(key, v);
  }
  int integer(const char* key, int fallback) const { return has(key) ? integer(key) : fallback; }

  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (!v.is_number()) wrong(key, "a number", v);
    return v.get<double>();
  }

  // A token id: an integer, null (-1: none) or, for eos, a list (its first).
  int token(const char* key, int fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    if (v.is_null()) return -1;
    if (v.is_array()) {
      if (v.empty()) return -1;
      if (!v[0].is_number_integer()) wrong(key, "an integer, null or a list of integers", v);
      return in_range(key, v[0]);
    }
    return integer(key);
  }

  // Rejects an option mambakit does not implement.
  void require_bool(const char* key, bool supported) const {
    if (!has(key)) return;
    const json& v = j_.at(key);
    if (!v.is_boolean()) wrong(key, "a boolean", v);
    if (v.get<bool>() != supported)
      fail(path_, "\"" + std::string(key) + "\": " + v.dump() + " is not supported by mambakit (only " +
                      (supported ? "true" : "false") + ")");
  }

  void require_string(const char* key, const char* supported) const {
    if (!has(key)) return;
    const json& v = j_.at(key);
    if (!v.is_string()) wrong(key, "a string", v);
    if (v.get<std::string>() != supported)
      fail(path_, "\"" + std::string(key) + "\": " + v.dump() + " is not supported by mambakit (only \"" +
                      supported + "\")");
  }

 private:
  // An integer json value as int, refused (not wrapped) outside int's range.
  int in_range(const char* key, const json& v) const {
    if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(INT_MAX)
                               : (v.get<int64_t>() < INT_MIN || v.get<int64_t>() > INT_MAX))
      fail(path_, "field \"" + std::string(key) + "\": " + v.dump() + " is out of range");
    return v.get<int>();
  }
  [[noreturn]] void missing(const char* key) const {
    std::string hint = j_.contains("d_model") ? " (this looks like a mamba_ssm config; mambakit reads "
                                                "HF transformers' MambaConfig)"
                                              : "";
    fail(path_, "missing required field \"" + std::string(key) + "\"" + hint);
  }
  [[noreturn]] void wrong(const char* key, const char* want, const json& v) const {
    fail(path_, "field \"" + std::string(key) + "\": expected " + want + ", got " + v.type_name() + " " + v.dump());
  }
  const std::string& path_;
  const json& j_;
};

json token_json(int id) { return id < 0 ? json(nullptr) : json(id); }

}  // namespace

ModelConfig read_model_config(const std::string& path) {
  const std::string text = read_text_file(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& ex) {
    fail(path, "invalid JSON: " + library_what(ex));
  }
  if (!j.is_object()) fail(path, std::string("expected a JSON object, got ") + j.type_name());
  const Fields f(path, j);

  f.require_string("model_type", "mamba");
  f.require_bool("use_bias", false);
  f.require_bool("use_conv_bias", true);
  f.require_bool("tie_word_embeddings", true);
  f.require_string("hidden_act", "silu");

  ModelConfig c;
  c.d_model = f.integer("hidden_size");
  c.n_layer = f.integer("num_hidden_layers");
  c.vocab_size = f.integer("vocab_size");
  c.d_state = f.integer("state_size", c.d_state);
  c.expand = f.integer("expand", c.expand);
  c.d_conv = f.integer("conv_kernel", c.d_conv);
  if (f.has("time_step_rank") && j["time_step_rank"] != "auto") c.dt_rank = f.integer("time_step_rank");
  else c.dt_rank = 0;
  c.norm_eps = f.number("layer_norm_epsilon", c.norm_eps);
  c.dt_min = f.number("time_step_min", c.dt_min);
  c.dt_max = f.number("time_step_max", c.dt_max);
  c.dt_init_floor = f.number("time_step_floor", c.dt_init_floor);
  c.bos_token_id = f.token("bos_token_id", c.bos_token_id);
  c.eos_token_id = f.token("eos_token_id", c.eos_token_id);
  c.pad_token_id = f.token("pad_token_id", c.pad_token_id);

  // mambakit's own key: the mixer of each layer for non-Mamba and hybrid
  // models (transformers ignores it; such models load only here).
  if (f.has("mambakit_mixers")) {
    const json& m = j["mambakit_mixers"];
    if (!m.is_array()) fail(path, "\"mambakit_mixers\" must be a list of mixer names");
    for (const auto& k : m) {
      if (!k.is_string()) fail(path, "\"mambakit_mixers\" must be a list of mixer names");
      c.mixers.push_back(k.get<std::string>());
    }
  }
  // Options of the non-Mamba mixers, present only where not the default.
  c.n_heads = f.integer("mambakit_n_heads", c.n_heads);
  c.rope_theta = f.number("mambakit_rope_theta", c.rope_theta);
  c.mlp_hidden = f.integer("mambakit_mlp_hidden", c.mlp_hidden);
  c.s4_d_state = f.integer("mambakit_s4_d_state", c.s4_d_state);
  if (f.has("mambakit_s4d_init")) {
    if (!j["mambakit_s4d_init"].is_string()) fail(path, "\"mambakit_s4d_init\" must be a string");
    c.s4d_init = j["mambakit_s4d_init"].get<std::string>();
  }
  if (f.has("mambakit_bidirectional")) {
    if (!j["mambakit_bidirectional"].is_boolean()) fail(path, "\"mambakit_bidirectional\" must be a boolean");
    c.bidirectional = j["mambakit_bidirectional"].get<bool>();
  }
  c.n_classes = f.integer("mambakit_n_classes", c.n_classes);
  if (f.has("mambakit_pooling")) {
    if (!j["mambakit_pooling"].is_string()) fail(path, "\"mambakit_pooling\" must be a string");
    c.pooling = j["mambakit_pooling"].get<std::string>();
  }
  if (f.has("mambakit_pair_classifier")) {
    if (!j["mambakit_pair_classifier"].is_boolean()) fail(path, "\"mambakit_pair_classifier\" must be a boolean");
    c.pair_classifier = j["mambakit_pair_classifier"].get<bool>();
  }
  // transformers derives intermediate_size from expand; a file where they
  // disagree was edited by hand and is ambiguous.
  if (f.has("intermediate_size")) {
    const int inter = f.integer("intermediate_size");
    if (int64_t(inter) != int64_t(c.expand) * c.d_model)
      fail(path, "\"intermediate_size\" " + std::to_string(inter) + " != expand * hidden_size = " +
                     std::to_string(int64_t(c.expand) * c.d_model));
  }
  try {
    c.validate();
  } catch (const Error& e) {
    fail(path, e.what());
  }
  return c;
}

void write_model_config(const std::string& path, const ModelConfig& cfg) {
  cfg.validate();
  // json objects keep keys sorted, as transformers writes them.
  json j = {
      {"model_type", "mamba"},
      {"architectures", {"MambaForCausalLM"}},
      {"hidden_size", cfg.d_model},
      {"num_hidden_layers", cfg.n_layer},
      {"vocab_size", cfg.vocab_size},
      {"state_size", cfg.d_state},
      {"expand", cfg.expand},
      {"intermediate_size", cfg.d_inner()},
      {"conv_kernel", cfg.d_conv},
      {"time_step_rank", cfg.dt_rank_resolved()},
      {"layer_norm_epsilon", cfg.norm_eps},
      {"time_step_min", cfg.dt_min},
      {"time_step_max", cfg.dt_max},
      {"time_step_floor", cfg.dt_init_floor},
      {"time_step_init_scheme", "random"},
      {"time_step_scale", 1.0},
      {"use_bias", false},
      {"use_conv_bias", true},
      {"residual_in_fp32", true},
      {"tie_word_embeddings", true},
      {"hidden_act", "silu"},
      {"initializer_range", 0.1},
      {"rescale_prenorm_residual", false},
      {"bos_token_id", token_json(cfg.bos_token_id)},
      {"eos_token_id", token_json(cfg.eos_token_id)},
      {"pad_token_id", token_json(cfg.pad_token_id)},
      {"use_cache", true},
  };
  if (!cfg.all_mamba()) {
    j["mambakit_mixers"] = cfg.mixers;
    const ModelConfig def;
    if (cfg.n_heads != def.n_heads) j["mambakit_n_heads"] = cfg.n_heads;
    if (cfg.rope_theta != def.rope_theta) j["mambakit_rope_theta"] = cfg.rope_theta;
    if (cfg.mlp_hidden != def.mlp_hidden) j["mambakit_mlp_hidden"] = cfg.mlp_hidden;
    if (cfg.s4_d_state != def.s4_d_state) j["mambakit_s4_d_state"] = cfg.s4_d_state;
    if (cfg.s4d_init != def.s4d_init) j["mambakit_s4d_init"] = cfg.s4d_init;
  }
  // Any mixer may run both ways (an all-Mamba classifier too): the second
  // direction's weights are only loaded when the file says so.
  if (cfg.bidirectional) j["mambakit_bidirectional"] = true;
  // A classifier head (not an HF MambaForCausalLM: loads only here).
  if (cfg.n_classes > 0) {
    j["mambakit_n_classes"] = cfg.n_classes;
    j["mambakit_pooling"] = cfg.pooling;
    if (cfg.pair_classifier) j["mambakit_pair_classifier"] = true;
  }
  atomic_write_text(path, j.dump(2) + "\n");
}

}  // namespace mk
