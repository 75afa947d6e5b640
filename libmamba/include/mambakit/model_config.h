// Model hyper-parameters. Field meanings follow HF's MambaConfig so that a
// checkpoint's config.json interchanges with transformers.
#pragma once
#include <cstdint>
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

  // Non-Mamba mixers (written to config.json as "mambakit_<name>" only when
  // they differ from these defaults).
  int n_heads = 0;             // attention heads; 0 means max(1, d_model / 64)
  double rope_theta = 10000.0; // RoPE base of the attention mixer
  int mlp_hidden = 0;          // SwiGLU width; 0 means 8/3 * d_model rounded up to a multiple of 8
  int s4_d_state = 64;         // S4/S4D state size N (N/2 complex conjugate-pair states)
  std::string s4d_init = "lin";  // S4D A init: "lin" (A = -1/2 + i pi n) or "inv"
  // Head: n_classes == 0 is the LM head tied to the embedding (logits per
  // position over the vocabulary); n_classes > 0 is a sequence classifier
  // (pooling over positions, then a Linear d_model -> n_classes with bias,
  // parameters "classifier.weight"/"classifier.bias").
  int n_classes = 0;
  std::string pooling = "mean";  // classifier pooling: "mean" or "last"
  // A classifier of document pairs (LRA Retrieval's two-tower model): a
  // batch of 2P sequences holds the first documents of P pairs, then their
  // second documents; both towers share every weight. Each document is
  // pooled to u or v, and the head is the published LRA combination
  // [u, v, u*v, u-v] -> Linear(4 d_model -> d_model) -> GELU -> Linear(->
  // n_classes), parameters "classifier.dense.{weight,bias}" and
  // "classifier.{weight,bias}". Needs n_classes > 0.
  bool pair_classifier = false;
  // Both directions (no recurrent step then): S4/S4D add an anti-causal
  // kernel, Mamba a second Mamba on the reversed sequence; attention and MLP
  // are unchanged.
  bool bidirectional = false;

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
  int n_heads_resolved() const { return n_heads > 0 ? n_heads : (d_model >= 64 ? d_model / 64 : 1); }
  int mlp_hidden_resolved() const {
    return mlp_hidden > 0 ? mlp_hidden : int((int64_t(8) * d_model + 23) / 24 * 8);
  }
  bool uses_mixer(const std::string& kind) const {
    for (const auto& m : mixers) if (m == kind) return true;
    return false;
  }
  // Throws mk::Error naming the offending field when a value is out of range.
  void validate() const;
};

}  // namespace mk
