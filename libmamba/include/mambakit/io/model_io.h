// config.json <-> ModelConfig, in the format of HF transformers' MambaConfig,
// so a mambakit checkpoint directory loads in transformers and vice versa.
#pragma once
#include <string>

#include "mambakit/model_config.h"

namespace mk {

// Reads a HF-style Mamba config.json. Keys mambakit does not use are
// ignored; options it does not implement (use_bias=true,
// use_conv_bias=false, tie_word_embeddings=false, a hidden_act other than
// silu, a model_type other than "mamba") are rejected, as are missing or
// ill-typed fields. A null bos/eos/pad_token_id becomes -1; an eos list
// takes its first entry. Errors name the file, the field and the reason.
ModelConfig read_model_config(const std::string& path);

// Writes every MambaConfig field transformers expects (pretty JSON,
// atomically). A token id of -1 is written as null.
void write_model_config(const std::string& path, const ModelConfig& cfg);

}  // namespace mk
