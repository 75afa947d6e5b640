// A training run's memory, estimated from its config before anything is
// allocated, and compared with what the machine has free: an oversized
// model or batch is refused with one line naming the estimate, the memory
// available and the config key that drives the estimate most, instead of
// ending in std::bad_alloc (or the OOM killer) minutes later.
//
// The estimate is a floor, not a ceiling: it counts the buffers the layers
// keep for one training step (libmamba/src/layers, models/sequence_model.cpp)
// and leaves out what is small or transient (the data set, tokenizer,
// evaluation, allocator slack). Per row r = batch * seq_len (float32, 4
// bytes each; D d_model, E = expand D, N d_state, R dt_rank, V vocab,
// F mlp width, h heads):
//   parameters P (count_params), gradients P, AdamW moments 2P
//   model       (2 n_layer + 6) D per row (residual streams, normed inputs,
//               the mixer output, final norm, backward scratch) + V logits
//               per row (language models) + 1 loss
//   mamba       11 E + 3 R + 8 N per row (x, z, conv out, u, dt, delta, y,
//               x_proj out, dt_in, B, C and their gradients) + the scan's
//               chunk states E N per selective_scan_chunk_len() steps
//               (16; doubled when bidirectional)
//   attention   9 D + h per row (q, k, v, o, their gradients, lse)
//   mlp         6 F per row
//   s4 / s4d    8 D per row + 2 kernels of D seq_len per copy
//   workspace   the selective scan backward's per-thread buffers
//               (selective_scan_backward_workspace_bytes)
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "mambakit/model_config.h"

namespace mk::exp {

struct RunConfig;

struct MemoryEstimate {
  double params = 0, grads = 0, moments = 0, activations = 0, workspace = 0;  // bytes
  double total() const { return params + grads + moments + activations + workspace; }
};

// The estimate for a model (vocab_size and n_classes resolved) trained on
// micro-batches of `batch` sequences of `seq_len` tokens (pair tasks: 2
// sequences per example) with `threads` threads. Doubles throughout: a
// config of absurd sizes gives a large number, never an overflow.
MemoryEstimate estimate_train_memory(const ModelConfig& m, double batch, double seq_len, int threads);

// The parameter count of count_params() in doubles (no overflow for any
// int sizes).
double count_params_estimate(const ModelConfig& m);

// Bytes this process could still allocate: MemAvailable plus SwapFree from
// /proc/meminfo (nullopt where it cannot be read). MAMBAKIT_MEM_AVAILABLE
// (bytes) replaces it, for tests.
std::optional<double> available_memory();

// "1.5 GiB", "812 MiB", "3.2 TiB".
std::string format_bytes(double bytes);

// Refuses (tasks::ConfigError, one line, at the place of the key that
// drives the estimate most) a training run whose estimate exceeds the
// available memory. m is cfg.model with vocab_size and n_classes resolved;
// batch is the per-rank micro-batch in sequences.
void check_train_memory(const RunConfig& cfg, const ModelConfig& m, double batch, double seq_len, int threads);

}  // namespace mk::exp
