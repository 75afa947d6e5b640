#include "mambakit/model_config.h"

#include <climits>
#include <cmath>

#include "mambakit/error.h"

namespace mk {
namespace {

void check_positive(int v, const char* field, const char* hf_name) {
  if (v <= 0)
    throw Error(std::string("ModelConfig: ") + field + " (" + hf_name + ") must be positive, got " +
                std::to_string(v));
}

void check_token(int v, int vocab, const char* field) {
  // -1 stands for "none" (null in config.json).
  if (v < -1 || v >= vocab)
    throw Error(std::string("ModelConfig: ") + field + " " + std::to_string(v) +
                " is outside the vocabulary [0, " + std::to_string(vocab) + ") (use -1 for none)");
}

}  // namespace

void ModelConfig::validate() const {
  check_positive(d_model, "d_model", "hidden_size");
  check_positive(n_layer, "n_layer", "num_hidden_layers");
  check_positive(vocab_size, "vocab_size", "vocab_size");
  check_positive(d_state, "d_state", "state_size");
  check_positive(expand, "expand", "expand");
  check_positive(d_conv, "d_conv", "conv_kernel");
  if (dt_rank < 0)
    throw Error("ModelConfig: dt_rank (time_step_rank) must be >= 0 (0 = ceil(d_model/16)), got " +
                std::to_string(dt_rank));
  // Layers index with int: products of sizes must not overflow.
  if (int64_t(expand) * d_model > INT_MAX / 2)
    throw Error("ModelConfig: d_inner = expand * d_model = " + std::to_string(int64_t(expand) * d_model) +
                " is too large");
  if (!(std::isfinite(norm_eps) && norm_eps > 0))
    throw Error("ModelConfig: norm_eps (layer_norm_epsilon) must be positive and finite, got " +
                std::to_string(norm_eps));
  if (!(std::isfinite(dt_min) && dt_min > 0))
    throw Error("ModelConfig: dt_min (time_step_min) must be positive, got " + std::to_string(dt_min));
  if (!(std::isfinite(dt_max) && dt_max >= dt_min))
    throw Error("ModelConfig: dt_max (time_step_max) " + std::to_string(dt_max) +
                " must be >= dt_min " + std::to_string(dt_min));
  if (!(std::isfinite(dt_init_floor) && dt_init_floor >= 0))
    throw Error("ModelConfig: dt_init_floor (time_step_floor) must be >= 0, got " +
                std::to_string(dt_init_floor));
  // Non-Mamba mixers: checked only where a layer uses them, so that a pure
  // Mamba config never fails on a field it ignores.
  if (n_heads < 0) throw Error("ModelConfig: n_heads must be >= 0 (0 = d_model/64), got " + std::to_string(n_heads));
  if (uses_mixer("attention")) {
    const int h = n_heads_resolved();
    if (d_model % h != 0 || (d_model / h) % 2 != 0)
      throw Error("ModelConfig: attention needs d_model (" + std::to_string(d_model) +
                  ") divisible by n_heads (" + std::to_string(h) + ") into an even head size (RoPE)");
    if (!(std::isfinite(rope_theta) && rope_theta > 0))
      throw Error("ModelConfig: rope_theta must be positive, got " + std::to_string(rope_theta));
  }
  if (mlp_hidden < 0)
    throw Error("ModelConfig: mlp_hidden must be >= 0 (0 = 8/3 d_model), got " + std::to_string(mlp_hidden));
  if (uses_mixer("s4") || uses_mixer("s4d")) {
    if (s4_d_state < 2 || s4_d_state % 2 != 0)
      throw Error("ModelConfig: s4_d_state must be even and >= 2 (N/2 conjugate pairs), got " +
                  std::to_string(s4_d_state));
    if (s4d_init != "lin" && s4d_init != "inv")
      throw Error("ModelConfig: s4d_init must be \"lin\" or \"inv\", got \"" + s4d_init + "\"");
  }
  if (pair_classifier && n_classes <= 0)
    throw Error("ModelConfig: pair_classifier needs a classifier head (n_classes > 0), got n_classes " +
                std::to_string(n_classes));
  check_token(bos_token_id, vocab_size, "bos_token_id");
  check_token(eos_token_id, vocab_size, "eos_token_id");
  check_token(pad_token_id, vocab_size, "pad_token_id");
}

}  // namespace mk
