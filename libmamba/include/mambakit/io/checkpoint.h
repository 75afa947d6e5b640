// A model directory as HF transformers writes it: config.json (MambaConfig
// fields) and the parameters by their HF names, either in one
// model.safetensors or, as save_pretrained writes larger models, in shards
// listed by model.safetensors.index.json:
//   {"metadata": {"total_size": BYTES}, "weight_map": {tensor name: shard file}}
// with the shards (model-00001-of-00003.safetensors, ...) beside it. Weights
// may be F32, BF16 or F16 on disk; the model computes in fp32, so BF16/F16
// are widened (exactly) on load. The LM head is tied to the embedding, so
// lm_head.weight is neither written nor required (a file that carries it is
// accepted if it equals the embedding).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "mambakit/models/sequence_model.h"

namespace mk {

inline constexpr const char* kWeightsFile = "model.safetensors";
inline constexpr const char* kWeightsIndexFile = "model.safetensors.index.json";

struct SaveOptions {
  DType dtype = DType::f32;      // f32, or bf16 (rounded to nearest even)
  uint64_t max_shard_bytes = 0;  // 0: one model.safetensors; else shards of at most
                                 // this size (a larger tensor alone in its shard) + index
};

// Creates dir if needed; every file is written atomically, config.json
// last. Weights files of an earlier save that the new one does not use (a
// model.safetensors replaced by shards, or shards of another count) are
// removed.
void save_model(const std::string& dir, const SequenceModel<float>& model, const SaveOptions& opt = {});

// What load_params did, tensor by tensor.
struct LoadReport {
  std::vector<std::string> loaded;   // the model's tensors read from the checkpoint
  std::vector<std::string> kept;     // the model's tensors the checkpoint lacks (LoadOptions::may_lack)
  std::vector<std::string> ignored;  // the checkpoint's tensors the model does not have
  size_t values = 0;                 // parameters read
};

struct LoadOptions {
  // Receives each warning (a tensor in the checkpoint that the model does
  // not have, which is ignored). Unset: printed to stderr as "warning: ...".
  std::function<void(const std::string&)> warn;
  // The model's tensors the checkpoint may lack: they keep their values
  // (e.g. a fresh classifier head when fine-tuning from a language model).
  // Unset: every tensor must be there.
  std::function<bool(const std::string&)> may_lack;
  LoadReport* report = nullptr;  // filled when set
};

// The tensors of a checkpoint (a .safetensors file, or an index .json
// listing shards) from the file headers alone: nothing is read or converted.
struct CheckpointTensorInfo {
  std::string name, dtype, file;  // dtype as on disk ("F32", "BF16", ...)
  Shape shape;
  int64_t numel = 0;
};
std::vector<CheckpointTensorInfo> checkpoint_tensors(const std::string& path);

// The weights of a model directory: DIR/model.safetensors where it exists
// (transformers prefers it too), else DIR/model.safetensors.index.json.
// has_weights says whether either exists; weights_file throws mk::Error
// naming the directory when neither does.
bool has_weights(const std::string& dir);
std::string weights_file(const std::string& dir);

// Throws mk::Error naming the file and the problem (missing tensor or index
// entry, missing or truncated shard, wrong shape or dtype, non-finite
// values, unsupported config) on any mismatch. Shards are memory-mapped and
// each tensor is converted straight into the model's parameter buffer: peak
// memory is the model plus a few MB.
std::unique_ptr<SequenceModel<float>> load_model(const std::string& dir, const LoadOptions& opt = {});

// Loads the parameters of `path` (a .safetensors file, or an index .json
// listing shards) into an existing model on the CPU.
void load_params(const std::string& path, SequenceModel<float>& model, const LoadOptions& opt = {});

}  // namespace mk
