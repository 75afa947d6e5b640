// What `generate` and `logits` need to run a checkpoint made elsewhere (HF
// transformers' MambaForCausalLM) as well as mambakit's own byte models:
//   - token ids in: a .npy file of ids, each id checked against the vocabulary;
//   - text <-> ids for a model directory: the seam where a tokenizer plugs in;
//   - the defaults of DIR/generation_config.json (transformers' GenerationConfig).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mambakit/model_config.h"

namespace mk::exp {

// A 1-D .npy file of int32 or int64 token ids. mk::Error naming the file
// for any other dtype or rank (or a value outside int32).
std::vector<int32_t> read_ids_npy(const std::string& path);

// mk::Error "<what>: token id X at position i is outside the vocabulary of
// N tokens" for the first id not in [0, vocab_size). Nothing is ever masked
// or wrapped into range.
void check_ids_in_vocab(const std::vector<int32_t>& ids, int vocab_size, const std::string& what);

// --- text <-> ids: the tokenizer seam -------------------------------------------
// A model directory holding a tokenizer (tokenizer.json, or a SentencePiece
// .model; mk::data::load_tokenizer) reads and writes text through it. Without
// one, a byte model (vocabulary of at most 256) reads and writes text as
// bytes, and for a larger vocabulary text_to_ids refuses with a one-line
// mk::Error telling the user to give ids (`ids_flag`) and ids_to_text returns
// nullopt (the caller then prints ids). Ids are never wrapped into bytes.
bool is_byte_model(const ModelConfig& cfg);
std::vector<int32_t> text_to_ids(const std::string& model_dir, const ModelConfig& cfg, const std::string& text,
                                 const std::string& ids_flag);
std::optional<std::string> ids_to_text(const std::string& model_dir, const ModelConfig& cfg,
                                       const std::vector<int32_t>& ids);

// --- generation_config.json ------------------------------------------------------
// The fields of transformers' GenerationConfig that map onto mambakit's
// sampler, as transformers reads them: absent fields take transformers'
// defaults (do_sample false, temperature 1, top_k 50, top_p 1), so a
// directory with this file generates greedily unless it says do_sample.
struct GenerationDefaults {
  bool do_sample = false;
  double temperature = 1.0;
  int top_k = 50;
  double top_p = 1.0;
  std::optional<int> max_new_tokens, max_length;
  // eos_token_id: an id or a list of ids (generation stops after any);
  // nullopt where the file does not say, an empty list for null.
  std::optional<std::vector<int32_t>> eos_ids;
};

// Reads DIR/generation_config.json. Settings transformers would honour but
// mambakit does not implement (beam search, repetition penalty, min_p, ...)
// raise mk::Error naming the file and the field, as do ill-typed fields;
// other keys (transformers_version, bos/pad ids, use_cache, ...) are ignored.
GenerationDefaults read_generation_config(const std::string& path);

}  // namespace mk::exp
