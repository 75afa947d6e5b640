// SequenceModel: embedding -> n_layer residual blocks -> RMSNorm -> LM head
// tied to the embedding. Block: h = h + mixer(RMSNorm(h)), the mixer of each
// layer chosen by ModelConfig::mixers (Mamba by default). All parameters
// live in one ParamStore, named as HF's MambaForCausalLM:
//   backbone.embeddings.weight
//   backbone.layers.{i}.norm.weight
//   backbone.layers.{i}.mixer.{in_proj.weight, conv1d.weight, conv1d.bias,
//       x_proj.weight, dt_proj.weight, dt_proj.bias, A_log, D, out_proj.weight}
//   backbone.norm_f.weight
// conv1d.weight is stored (Di, 1, K) as in PyTorch.
// With n_classes > 0 the LM head is replaced by a sequence classifier
// (pooling, then classifier.weight/bias); with pair_classifier too, by the
// two-tower pair classifier (see ModelConfig::pair_classifier), which adds
// classifier.dense.weight/bias.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "mambakit/layers/mixer.h"
#include "mambakit/layers/rmsnorm.h"
#include "mambakit/model_config.h"
#include "mambakit/params.h"

namespace mk {

template <typename T>
class SequenceModel {
 public:
  explicit SequenceModel(const ModelConfig& cfg);

  // The parameters (names, shapes, offsets) a model of cfg declares, without
  // allocating them: what a checkpoint must hold, checked before the model
  // is built (a config.json claiming a huge model is refused, not allocated).
  static std::vector<ParamEntry> layout(const ModelConfig& cfg);

  const ModelConfig& config() const { return cfg_; }
  ParamStore<T>& params() { return ps_; }
  const ParamStore<T>& params() const { return ps_; }
  size_t num_params() const { return ps_.size(); }

  // Random initialisation (deterministic in seed). On the CPU only: init or
  // load first, then move the model with to().
  void init(uint64_t seed);

  // Moves the parameters (and every buffer from here on) to device d.
  // Throws mk::Error if the device has no backend (e.g. cuda without a GPU).
  void to(Device d) { ps_.to(d); }
  Device device() const { return ps_.device(); }

  // ids (B, L) -> logits, kept inside (logits()). Saves activations.
  //   LM head:         logits (B, L, V), targets (B, L)
  //   classifier head: logits (B, n_classes), targets (B)
  //   pair classifier: B = 2P even; rows [0, P) are the first documents of
  //                    the pairs, rows [P, 2P) the second ones (pair p is
  //                    rows p and P + p); logits (P, n_classes), targets (P)
  // lengths (B), optional, for the classifier: sequence b is ids[b, :len_b]
  // (the rest is padding, excluded from the pooling).
  void forward(const int32_t* ids, int batch, int len, const int32_t* lengths = nullptr);
  // A host copy of the logits (downloaded from the device on first call
  // after a forward).
  const std::vector<T>& logits() const;
  bool is_classifier() const { return cfg_.n_classes > 0; }
  bool is_pair_classifier() const { return cfg_.pair_classifier; }
  // Rows and width of logits() after the last forward.
  int logit_rows() const { return is_classifier() ? (is_pair_classifier() ? B_ / 2 : B_) : B_ * L_; }
  int logit_width() const { return is_classifier() ? cfg_.n_classes : cfg_.vocab_size; }
  // A classifier's penultimate features after the last forward: the input
  // of its final Linear layer, one row of d_model values per logits row.
  // For the one-sequence classifier that is the pooled sequence (B, Dm);
  // for the pair classifier the GELU hidden layer of the head (P, Dm),
  // computed from [u, v, u*v, u-v]. Empty for the LM head.
  const std::vector<T>& features() const;
  int feature_width() const { return cfg_.d_model; }

  // Mean cross-entropy of the last forward's logits against targets
  // (target < 0 ignored), and the full backward: gradients are ACCUMULATED
  // into params().grad(), scaled by grad_scale (1/accumulation steps).
  // Returns the mean loss over non-ignored targets.
  double backward(const int32_t* targets, double grad_scale = 1.0);

  // Called during backward() with a watermark: every gradient at offset >=
  // ready_from in params().grad() is final for this backward (a data-parallel
  // reducer starts summing those while the earlier layers compute). Calls
  // come with falling watermarks, the last with 0. Empty: none.
  using GradReadyHook = std::function<void(size_t ready_from)>;
  void set_grad_ready_hook(GradReadyHook hook) { grad_ready_ = std::move(hook); }

  // Loss only (no gradient), after forward.
  double loss(const int32_t* targets) const;

  // Recurrent generation: O(1) memory per token.
  struct State {
    std::vector<MixerState<T>> layers;
    int batch = 0;
  };
  State make_state(int batch) const;
  // ids_t (B) -> logits_t (B, V) (host memory); state advanced. LM head only.
  void step(const int32_t* ids_t, State& st, T* logits_t);

 private:
  struct DeclareOnly {};
  SequenceModel(const ModelConfig& cfg, DeclareOnly);
  void pool_forward();
  void pool_backward(const T* dpooled, T* dhf);
  // Uploads targets (host, logit_rows()) and counts the non-ignored ones.
  long upload_targets(const int32_t* targets) const;
  void pair_head_forward();
  // d logits (P, C) -> d pooled (2P, Dm), written; head gradients accumulated.
  void pair_head_backward(const T* dlogits, T* dpooled);
  void grads_ready(size_t from) const {
    if (grad_ready_) grad_ready_(from);
  }
  ModelConfig cfg_;
  ParamStore<T> ps_;
  // Offsets where layer i's parameters and the final norm's begin (the
  // watermarks of the grad-ready hook).
  std::vector<size_t> layer_begin_;
  size_t norm_f_begin_ = 0;
  GradReadyHook grad_ready_;
  size_t emb_ = 0, cls_w_ = 0, cls_b_ = 0, dense_w_ = 0, dense_b_ = 0;
  std::vector<RMSNorm<T>> norms_;
  std::vector<std::unique_ptr<Mixer<T>>> mixers_;
  RMSNorm<T> norm_f_;

  // Activations and scratch, on the parameters' device.
  int B_ = 0, L_ = 0;
  std::vector<int32_t> lengths_;  // host copy
  Buf<int32_t> ids_, lengths_dev_;
  mutable Buf<int32_t> targets_;
  mutable Buf<T> losses_;
  Buf<T> pooled_;  // (B, Dm)
  // Pair head: pair_in_ (P, 4Dm) = [u, v, u*v, u-v], dense_ (P, Dm) its
  // Linear, hidden_ (P, Dm) = GELU(dense_).
  Buf<T> pair_in_, dense_, hidden_;
  std::vector<Buf<T>> resid_;   // n_layer + 1 residual streams (B*L, Dm)
  std::vector<Buf<T>> normed_;  // per layer normalised input (B*L, Dm)
  Buf<T> hf_, logits_, mix_out_, dh_, dtmp_, dnorm_, dpooled_, dhead_a_, dhead_b_, dhead_c_;
  Buf<T> step_h_, step_n_, step_o_, step_logits_;
  Buf<int32_t> step_ids_;
  // Host mirrors for logits() and features().
  mutable std::vector<T> logits_host_, features_host_;
  mutable bool logits_fresh_ = false, features_fresh_ = false;
};

extern template class SequenceModel<float>;
extern template class SequenceModel<double>;

}  // namespace mk
