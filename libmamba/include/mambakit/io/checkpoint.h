// A model directory as HF transformers writes it: config.json (MambaConfig
// fields) + model.safetensors (parameters by their HF names). The LM head is
// tied to the embedding, so lm_head.weight is neither written nor required
// (a file that carries it is accepted if it equals the embedding).
#pragma once
#include <memory>
#include <string>

#include "mambakit/models/sequence_model.h"

namespace mk {

// Creates dir if needed; both files are written atomically.
void save_model(const std::string& dir, const SequenceModel<float>& model);

// Throws mk::Error naming the file and the problem (missing tensor, wrong
// shape, non-finite values, unsupported config) on any mismatch.
std::unique_ptr<SequenceModel<float>> load_model(const std::string& dir);

// Loads the parameters of model.safetensors into an existing model.
void load_params(const std::string& path, SequenceModel<float>& model);

}  // namespace mk
