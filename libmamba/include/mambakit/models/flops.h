// Training FLOPs of a SequenceModel, op by op, from its ModelConfig and the
// shape of one micro-batch (batch sequences of seq_len tokens): the x axis
// of scaling-law plots (`mambakit sweep`) and summary.json's train_flops.
//
// A multiply-add is 2 FLOPs; exp, log, division and square root count 1
// each. These are model FLOPs: the work of the computation itself, not of
// recomputation that an implementation chooses (the attention, scan and
// fused conv-SiLU backwards here recompute part of their forward; that is
// not counted).
// Optimizer steps, gradient clipping and evaluation are not training FLOPs
// of the model and are left out (they do not scale with tokens).
//
// Notation: R = batch * seq_len rows, D = d_model, V = vocab_size,
// E = expand * D, N = d_state, r = dt_rank, K = d_conv, F = mlp_hidden,
// H = D channels and N2 = s4_d_state / 2 complex states for S4/S4D,
// c = 2 for bidirectional S4/S4D else 1, P = seq_len (seq_len + 1) / 2 the
// (query, key) pairs causal attention scores per sequence and head,
// FFT(n) = 2.5 n log2 n for one real FFT of n points.
//
// Forward FLOPs per micro-batch, and the backward:
//   op                 kind         forward                       backward
//   embedding          elementwise  0 (a lookup)                  R D (scatter-add)
//   norm (per layer,   norm         4 R D                         2x forward
//     and the final)
//   residual           elementwise  R D                           1x forward
//   Mamba:
//   in_proj            matmul       2 R D 2E                      2x (dX and dW)
//   conv1d             conv         2 R E K                       2x (dX and dW)
//   conv SiLU          elementwise  4 R E                         2x
//   x_proj             matmul       2 R E (r + 2N)                2x
//   dt_proj            matmul       2 R r E                       2x
//   softplus           elementwise  3 R E                         2x
//   selective_scan     scan         9 R E N  (exp(delta A), delta B u,   2x
//                                     A h + B u, C h: as mamba_ssm's
//                                     flop count of the scan)
//   skip_gate          elementwise  7 R E  (D u, y silu(z))       2x
//   out_proj           matmul       2 R E D                       2x
//   S4D / S4 (the S4 block of the S4 repository):
//   ssm_kernel (S4D)   ssm_kernel   (4c + 6) H N2 L per           14 c H N2 L (the
//                                     micro-batch (Vandermonde)      kernel's reverse)
//   ssm_kernel (S4)    ssm_kernel   H (40 c L N2 + (L/2+1) N2     2x (an estimate: the
//                                     (60 + 44 c)) + c H FFT(L)     DPLR reverse)
//                                     (an estimate of the DPLR
//                                     kernel: L structured steps,
//                                     Cauchy sums, Woodbury)
//   fft_conv           fft          H FFT(2L) + B H (2 FFT(2L)    2 H FFT(2L) + 2 H (L+1)
//                                     + 8 (L+1))                    + B H (3 FFT(2L) + 16 (L+1))
//   D skip             elementwise  2 R H                         2x
//   GELU               elementwise  8 R H                         2x
//   output_linear      matmul       2 R H 2H                      2x
//   GLU                elementwise  5 R H                         2x
//   attention (RoPE, causal; heads h of width D/h):
//   qkv_proj           matmul       3 x 2 R D D                   2x
//   rope               elementwise  2 x 3 R D (q and k)           1x (rotation back)
//   scores             attention    2 B P D  (q.k)                2x (dQ and dK)
//   softmax            elementwise  5 B h P                       2x
//   attn_values        attention    2 B P D  (p v)                2x (dP and dV)
//   o_proj             matmul       2 R D D                       2x
//   MLP (SwiGLU):
//   gate_up_proj       matmul       2 x 2 R D F                   2x
//   swiglu             elementwise  5 R F                         2x
//   down_proj          matmul       2 R F D                       2x
//   head (tied)        matmul       2 R D V                       2x
//   softmax_xent       loss         4 R V                         2 R V
// A classifier head (n_classes C > 0) replaces head and softmax_xent by
// pooling (R D, backward 1x) and its Linear layers (2x). For a model of
// attention and MLP layers the matmul FLOPs per training token are
// 6 x (parameters - norm weights), the familiar 6 N T (the tied head counts
// the embedding once); attention's scores and values come on top.
#pragma once
#include <string>
#include <vector>

#include "mambakit/model_config.h"

namespace mk {

// One op's FLOPs over one micro-batch, and the work units the CPU backend
// counts for it (op_counter.h), where it counts any.
struct OpFlops {
  std::string where;  // "embedding", "layer 3 (mamba)", "final norm", "head"
  std::string op;     // "in_proj", "selective_scan", ...
  std::string kind;   // matmul | attention | conv | scan | fft | ssm_kernel | norm | elementwise | loss
  double forward = 0, backward = 0;
  // The op_counter.h unit of this op ("" if the backend counts none) and
  // how many of them its forward and its backward issue.
  std::string unit;
  double forward_units = 0, backward_units = 0;
};

struct FlopCount {
  int batch = 0, seq_len = 0;
  std::vector<OpFlops> ops;

  double forward() const;
  double backward() const;
  double total() const { return forward() + backward(); }
  double tokens() const { return double(batch) * seq_len; }
  // Training FLOPs (forward + backward) per token of the micro-batch.
  double per_token() const { return total() / tokens(); }
  double forward_per_token() const { return forward() / tokens(); }
  // Sums over the ops of one kind (e.g. "matmul").
  double forward_of_kind(const std::string& kind) const;
  double backward_of_kind(const std::string& kind) const;
  // Sums of the counted units of one op_counter.h unit.
  double forward_units(const std::string& unit) const;
  double backward_units(const std::string& unit) const;
  // A readable breakdown: FLOPs per token by op, summed over the layers
  // that share a mixer kind.
  std::string table() const;
};

// The FLOPs of one training micro-batch of `batch` sequences of `seq_len`
// tokens (per-batch work such as S4/S4D kernel generation included once).
// Throws mk::Error for a bad config or shape.
FlopCount count_flops(const ModelConfig& cfg, int seq_len, int batch = 1);

// Training FLOPs per token at that micro-batch shape: count_flops(...).per_token().
double train_flops_per_token(const ModelConfig& cfg, int seq_len, int batch = 1);

// The parameters a SequenceModel of cfg holds (SequenceModel::num_params()),
// without building it: sizes a 1.3B-parameter grid point without allocating
// its weights. Throws mk::Error where the model could not be built (a bad
// config, attention heads that do not split d_model into even halves).
size_t count_params(const ModelConfig& cfg);

}  // namespace mk
