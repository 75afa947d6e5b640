// Model hyper-parameters. Field meanings follow HF's MambaConfig so that a
// checkpoint's config.json interchanges with transformers.
#pragma once
#include <string>
#include <vector>

namespace mk {

struct ModelConfig {
  int d_model = 64;      // hidden_size
  int n_layer = 2;       // num_hidden_layers
  int vocab_size = 256;  // vocab_size (byte level by default)
  int d_state = 16;      // state_size
  int expand = 2;        // expand (d_inner = expand * d_model)
  int d_conv = 4;        // conv_kernel
  int dt_rank = 0;       // time_step_rank; 0 means ceil(d_model / 16)
  double norm_eps = 1e-5;  // layer_norm_epsilon
  // Initialisation of dt (HF: time_step_min/max/floor, time_step_init_scheme).
  double dt_min = 1e-3, dt_max = 1e-1, dt_init_floor = 1e-4;
  int bos_token_id = 0, eos_token_id = 0, pad_token_id = 0;

  // Mixer of each layer, repeated cyclically over n_layer ("mamba", "s4d",
  // "attention", ...). Empty: every layer is Mamba (the HF-compatible case).
  std::vector<std::string> mixers;

  int d_inner() const { return expand * d_model; }
  const std::string& mixer_of(int layer) const {
    static const std::string mamba = "mamba";
    return mixers.empty() ? mamba : mixers[layer % mixers.size()];
  }
  bool all_mamba() const {
    for (const auto& m : mixers) if (m != "mamba") return false;
    return true;
  }
  int dt_rank_resolved() const { return dt_rank > 0 ? dt_rank : (d_model + 15) / 16; }
  // Throws mk::Error naming the offending field when a value is out of range.
  void validate() const;
};

}  // namespace mk
