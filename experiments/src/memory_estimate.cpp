#include "mambakit/experiments/memory_estimate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "mambakit/experiments/config.h"
#include "mambakit/ops/selective_scan.h"
#include "mambakit/tasks/task.h"

namespace mk::exp {

namespace {

constexpr double kFloat = 4;

double mlp_hidden(const ModelConfig& m) {
  if (m.mlp_hidden > 0) return m.mlp_hidden;
  return std::ceil(8.0 * m.d_model / 3 / 8) * 8;
}

double heads(const ModelConfig& m) { return m.n_heads > 0 ? m.n_heads : (m.d_model >= 64 ? m.d_model / 64 : 1); }

double dt_rank(const ModelConfig& m) { return m.dt_rank > 0 ? m.dt_rank : std::ceil(m.d_model / 16.0); }

}  // namespace

double count_params_estimate(const ModelConfig& m) {
  const double D = m.d_model, V = m.vocab_size;
  double n = V * D + D;
  for (int i = 0; i < m.n_layer; ++i) {
    const std::string& kind = m.mixer_of(i);
    n += D;
    if (kind == "mamba") {
      const double E = double(m.expand) * D, N = m.d_state, r = dt_rank(m), K = m.d_conv;
      const double one = D * 2 * E + E * K + E + E * (r + 2 * N) + r * E + E + E * N + E + E * D;
      n += m.bidirectional ? 2 * one : one;
    } else if (kind == "s4d" || kind == "s4") {
      const double H = D, N2 = m.s4_d_state / 2, copies = m.bidirectional ? 2 : 1;
      n += H + 2 * H * N2 + copies * H * N2 * 2;
      if (kind == "s4") n += 2 * H * N2 * 2;
      n += H + 2 * H * H + 2 * H;
    } else if (kind == "attention") {
      n += 4 * D * D;
    } else if (kind == "mlp") {
      n += 3 * D * mlp_hidden(m);
    }
  }
  if (m.n_classes > 0) {
    const double C = m.n_classes;
    if (m.pair_classifier) n += 4 * D * D + D;
    n += C * D + C;
  }
  return n;
}

MemoryEstimate estimate_train_memory(const ModelConfig& m, double batch, double seq_len, int threads) {
  MemoryEstimate e;
  const double P = count_params_estimate(m);
  e.params = P * kFloat;
  e.grads = P * kFloat;
  e.moments = 2 * P * kFloat;
  const double rows = batch * seq_len, D = m.d_model;
  double per_row = (2.0 * m.n_layer + 6) * D + 1;
  if (m.n_classes == 0) per_row += m.vocab_size;  // logits (the loss gradient is written over them)
  double per_batch = 0;
  const double chunk = ops::selective_scan_chunk_len();
  bool has_mamba = false;
  for (int i = 0; i < m.n_layer; ++i) {
    const std::string& kind = m.mixer_of(i);
    const double copies = m.bidirectional ? 2 : 1;
    if (kind == "mamba") {
      has_mamba = true;
      const double E = double(m.expand) * D, N = m.d_state, r = dt_rank(m);
      per_row += copies * (11 * E + 3 * r + 8 * N);
      per_batch += copies * batch * std::ceil(seq_len / chunk) * E * N;
    } else if (kind == "attention") {
      per_row += 9 * D + heads(m);
    } else if (kind == "mlp") {
      per_row += 6 * mlp_hidden(m);
    } else if (kind == "s4" || kind == "s4d") {
      per_row += 8 * D;
      per_batch += 2 * copies * D * seq_len;
    }
  }
  e.activations = (rows * per_row + per_batch) * kFloat;
  if (has_mamba) {
    const double E = double(m.expand) * D, N = m.d_state;
    // The library's own figure where the sizes fit its ints; else its
    // dominant term, per-thread dB/dC partial sums of (B, L, N).
    if (batch < 1e9 && seq_len < 1e9 && E < 1e9 && N < 1e9 && rows * N * std::max(threads, 1) < 1e15)
      e.workspace = double(ops::selective_scan_backward_workspace_bytes<float>(int(batch), int(seq_len), int(E),
                                                                                int(N), std::max(threads, 1)));
    else
      e.workspace = 2 * rows * N * std::max(threads, 1) * kFloat;
  }
  return e;
}

std::optional<double> available_memory() {
  if (const char* v = std::getenv("MAMBAKIT_MEM_AVAILABLE"); v && *v) {
    char* end = nullptr;
    const double x = std::strtod(v, &end);
    if (end && *end == '\0' && x >= 0) return x;
  }
  std::ifstream f("/proc/meminfo");
  if (!f) return std::nullopt;
  double avail = -1, swap = 0;
  std::string key;
  double kb = 0;
  std::string unit;
  while (f >> key >> kb) {
    std::getline(f, unit);
    if (key == "MemAvailable:") avail = kb * 1024;
    if (key == "SwapFree:") swap = kb * 1024;
  }
  if (avail < 0) return std::nullopt;
  return avail + swap;
}

std::string format_bytes(double b) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (b >= 1024 && u < 6) b /= 1024, ++u;
  char buf[64];
  if (u == 0) std::snprintf(buf, sizeof buf, "%.0f %s", b, units[u]);
  else if (b >= 1e6) std::snprintf(buf, sizeof buf, "%.3g %s", b, units[u]);
  else std::snprintf(buf, sizeof buf, "%.1f %s", b, units[u]);
  return buf;
}

void check_train_memory(const RunConfig& cfg, const ModelConfig& m, double batch, double seq_len, int threads) {
  const MemoryEstimate e = estimate_train_memory(m, batch, seq_len, threads);
  const auto avail = available_memory();
  if (!avail || e.total() <= *avail) return;
  // The key that drives it most: the one whose halving saves the most.
  struct Knob {
    const char* key;
    double value;
  };
  const std::vector<Knob> knobs = {{"model.d_model", double(m.d_model)},    {"model.n_layer", double(m.n_layer)},
                                   {"model.expand", double(m.expand)},      {"model.d_state", double(m.d_state)},
                                   {"model.vocab_size", double(m.vocab_size)}, {"train.batch_size", batch},
                                   {"data.seq_len", seq_len}};
  std::string key = "model.d_model";
  double best = -1, value = m.d_model;
  for (const auto& k : knobs) {
    if (k.value < 2) continue;
    ModelConfig h = m;
    double b = batch, l = seq_len;
    const std::string name = k.key;
    if (name == "model.d_model") h.d_model = m.d_model / 2;
    else if (name == "model.n_layer") h.n_layer = m.n_layer / 2;
    else if (name == "model.expand") h.expand = m.expand / 2;
    else if (name == "model.d_state") h.d_state = m.d_state / 2;
    else if (name == "model.vocab_size") h.vocab_size = m.vocab_size / 2;
    else if (name == "train.batch_size") b = std::floor(batch / 2);
    else if (name == "data.seq_len") l = std::floor(seq_len / 2);
    if (name == "model.vocab_size" && cfg.model.vocab_size == 0) continue;  // the task's, not the config's
    if (int(h.mixers.size()) > h.n_layer) continue;
    const double saved = e.total() - estimate_train_memory(h, b, l, threads).total();
    if (saved > best) best = saved, key = name, value = k.value;
  }
  char num[32];
  std::snprintf(num, sizeof num, "%.15g", value);
  throw tasks::ConfigError(
      cfg.where_of(key) + ": " + key + " " + num + ": training needs at least " + format_bytes(e.total()) +
      " (parameters " + format_bytes(e.params) + ", gradients " + format_bytes(e.grads) + ", AdamW moments " +
      format_bytes(e.moments) + ", activations " + format_bytes(e.activations) + " for " +
      std::to_string(long(batch)) + " x " + std::to_string(long(seq_len)) + " tokens, workspace " +
      format_bytes(e.workspace) + ") but " + format_bytes(*avail) +
      " is available (MemAvailable + SwapFree); " + key + " drives the estimate most: lower it");
}

}  // namespace mk::exp
