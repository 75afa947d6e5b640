// Training FLOPs of a SequenceModel op by op (see models/flops.h for the
// formulas and conventions).
#include "mambakit/models/flops.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "mambakit/error.h"

namespace mk {

namespace {

double fft_flops(double n) { return n > 1 ? 2.5 * n * std::log2(n) : 0.0; }

class Builder {
 public:
  explicit Builder(FlopCount& fc) : fc_(fc) {}
  void where(std::string w) { where_ = std::move(w); }
  // backward = factor * forward; units as the backend counts them.
  void op(const std::string& name, const std::string& kind, double fwd, double bwd,
          const std::string& unit = "", double fwd_units = 0, double bwd_units = 0) {
    fc_.ops.push_back(OpFlops{where_, name, kind, fwd, bwd, unit, fwd_units, bwd_units});
  }
  // A matrix product of `macs` multiply-adds: backward = its dX and dW products.
  void matmul(const std::string& name, double macs) {
    op(name, "matmul", 2 * macs, 4 * macs, "matmul_macs", macs, 2 * macs);
  }
  void elementwise(const std::string& name, double fwd, double bwd_factor = 2) {
    op(name, "elementwise", fwd, bwd_factor * fwd);
  }

 private:
  FlopCount& fc_;
  std::string where_;
};

void mamba_ops(Builder& b, const ModelConfig& c, double B, double L) {
  const double R = B * L, D = c.d_model, E = c.d_inner(), N = c.d_state, r = c.dt_rank_resolved(),
               K = c.d_conv;
  b.matmul("in_proj", R * D * 2 * E);
  b.op("conv1d", "conv", 2 * R * E * K, 4 * R * E * K, "conv_macs", R * E * K, 2 * R * E * K);
  b.elementwise("conv_silu", 4 * R * E);
  b.matmul("x_proj", R * E * (r + 2 * N));
  b.matmul("dt_proj", R * r * E);
  b.elementwise("softplus", 3 * R * E);
  b.op("selective_scan", "scan", 9 * R * E * N, 18 * R * E * N, "scan_updates", R * E * N, R * E * N);
  b.elementwise("skip_gate", 7 * R * E);
  b.matmul("out_proj", R * E * D);
}

// S4 and S4D: the SSM kernel (once per micro-batch), the FFT convolution,
// then the S4 repository's block: D skip, GELU, output_linear H -> 2H, GLU.
void ssm_conv_ops(Builder& b, const ModelConfig& c, double B, double L, bool dplr) {
  const double H = c.d_model, N2 = c.s4_d_state / 2, cp = c.bidirectional ? 2 : 1, R = B * L;
  const double terms = cp * H * N2 * L;
  if (dplr) {
    const double nf = std::floor(L / 2) + 1;
    const double fwd = H * (40 * cp * L * N2 + nf * N2 * (60 + 44 * cp)) + cp * H * fft_flops(L);
    b.op("ssm_kernel", "ssm_kernel", fwd, 2 * fwd, "kernel_terms", terms, terms);
  } else {
    b.op("ssm_kernel", "ssm_kernel", (4 * cp + 6) * H * N2 * L, 14 * cp * H * N2 * L, "kernel_terms",
         terms, terms);
  }
  const double n = 2 * L, f = fft_flops(n);
  b.op("fft_conv", "fft", H * f + B * H * (2 * f + 8 * (L + 1)),
       2 * H * f + 2 * H * (L + 1) + B * H * (3 * f + 16 * (L + 1)), "fft_transforms", H * (1 + 2 * B),
       H * (2 + 3 * B));
  b.elementwise("d_skip", 2 * R * H);
  b.elementwise("gelu", 8 * R * H);
  b.matmul("output_linear", R * H * 2 * H);
  b.elementwise("glu", 5 * R * H);
}

void attention_ops(Builder& b, const ModelConfig& c, double B, double L) {
  const double D = c.d_model, h = c.n_heads_resolved(), R = B * L;
  const double P = L * (L + 1) / 2;  // visible (query, key) pairs per sequence and head
  b.matmul("qkv_proj", 3 * R * D * D);
  b.elementwise("rope", 2 * 3 * R * D, 1);
  // The backend counts the attention kernels' multiply-adds as one unit:
  // scores and values together in the forward; the backward as it runs
  // (op_counter.h), here its model part (see test_flops.cpp for the rest).
  b.op("scores", "attention", 2 * B * P * D, 4 * B * P * D, "attention_macs", B * P * D, 2 * B * P * D);
  b.elementwise("softmax", 5 * B * h * P);
  b.op("attn_values", "attention", 2 * B * P * D, 4 * B * P * D, "attention_macs", B * P * D,
       2 * B * P * D);
  b.matmul("o_proj", R * D * D);
}

void mlp_ops(Builder& b, const ModelConfig& c, double B, double L) {
  const double D = c.d_model, F = c.mlp_hidden_resolved(), R = B * L;
  b.matmul("gate_up_proj", 2 * R * D * F);
  b.elementwise("swiglu", 5 * R * F);
  b.matmul("down_proj", R * F * D);
}

void norm_op(Builder& b, double R, double D) {
  b.op("norm", "norm", 4 * R * D, 8 * R * D, "norm_elements", R * D, R * D);
}

}  // namespace

double FlopCount::forward() const {
  double s = 0;
  for (const auto& o : ops) s += o.forward;
  return s;
}

double FlopCount::backward() const {
  double s = 0;
  for (const auto& o : ops) s += o.backward;
  return s;
}

double FlopCount::forward_of_kind(const std::string& kind) const {
  double s = 0;
  for (const auto& o : ops) s += o.kind == kind ? o.forward : 0;
  return s;
}

double FlopCount::backward_of_kind(const std::string& kind) const {
  double s = 0;
  for (const auto& o : ops) s += o.kind == kind ? o.backward : 0;
  return s;
}

double FlopCount::forward_units(const std::string& unit) const {
  double s = 0;
  for (const auto& o : ops) s += o.unit == unit ? o.forward_units : 0;
  return s;
}

double FlopCount::backward_units(const std::string& unit) const {
  double s = 0;
  for (const auto& o : ops) s += o.unit == unit ? o.backward_units : 0;
  return s;
}

std::string FlopCount::table() const {
  // Rows keyed by (where with the layer number dropped, op), in first-seen order.
  std::vector<std::pair<std::string, std::string>> order;
  std::map<std::pair<std::string, std::string>, std::pair<double, double>> sum;
  for (const auto& o : ops) {
    std::string w = o.where;
    if (w.rfind("layer ", 0) == 0) {
      const auto open = w.find('(');
      w = open == std::string::npos ? "layers" : "layers " + w.substr(open);
    }
    const auto key = std::make_pair(w, o.op);
    if (!sum.count(key)) order.push_back(key);
    sum[key].first += o.forward;
    sum[key].second += o.backward;
  }
  const double t = tokens();
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-22s %-16s %14s %14s %7s\n", "where", "op", "fwd/token", "bwd/token",
                "share");
  out += buf;
  const double all = total();
  for (const auto& k : order) {
    const auto& [f, b] = sum[k];
    std::snprintf(buf, sizeof buf, "%-22s %-16s %14.4g %14.4g %6.1f%%\n", k.first.c_str(), k.second.c_str(),
                  f / t, b / t, all > 0 ? 100 * (f + b) / all : 0.0);
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "%-22s %-16s %14.4g %14.4g  (train %.4g FLOPs per token)\n", "total", "",
                forward() / t, backward() / t, per_token());
  out += buf;
  return out;
}

FlopCount count_flops(const ModelConfig& cfg, int seq_len, int batch) {
  cfg.validate();
  MK_CHECK(seq_len > 0 && batch > 0, "count_flops: seq_len and batch must be positive, got " +
                                         std::to_string(seq_len) + " and " + std::to_string(batch));
  FlopCount fc;
  fc.batch = batch;
  fc.seq_len = seq_len;
  Builder b(fc);
  const double B = batch, L = seq_len, R = B * L, D = cfg.d_model, V = cfg.vocab_size;

  b.where("embedding");
  b.op("embedding", "elementwise", 0, R * D);
  for (int i = 0; i < cfg.n_layer; ++i) {
    const std::string& kind = cfg.mixer_of(i);
    b.where("layer " + std::to_string(i) + " (" + kind + ")");
    norm_op(b, R, D);
    if (kind == "mamba") mamba_ops(b, cfg, B, L);
    else if (kind == "s4d") ssm_conv_ops(b, cfg, B, L, false);
    else if (kind == "s4") ssm_conv_ops(b, cfg, B, L, true);
    else if (kind == "attention") attention_ops(b, cfg, B, L);
    else if (kind == "mlp") mlp_ops(b, cfg, B, L);
    else throw Error("count_flops: no FLOP formula for mixer '" + kind + "'");
    b.elementwise("residual", R * D, 1);
  }
  b.where("final norm");
  norm_op(b, R, D);
  b.where("head");
  if (cfg.n_classes > 0) {
    const double C = cfg.n_classes;
    b.op("pooling", "elementwise", R * D, R * D);
    if (cfg.pair_classifier) {
      const double pairs = B / 2;
      b.elementwise("pair_features", pairs * 4 * D);
      b.matmul("classifier_dense", pairs * 4 * D * D);
      b.elementwise("gelu", pairs * 8 * D);
      b.matmul("classifier", pairs * D * C);
      b.op("softmax_xent", "loss", 4 * pairs * C, 2 * pairs * C);
    } else {
      b.matmul("classifier", B * D * C);
      b.op("softmax_xent", "loss", 4 * B * C, 2 * B * C);
    }
  } else {
    b.matmul("lm_head", R * D * V);
    b.op("softmax_xent", "loss", 4 * R * V, 2 * R * V);
  }
  return fc;
}

double train_flops_per_token(const ModelConfig& cfg, int seq_len, int batch) {
  return count_flops(cfg, seq_len, batch).per_token();
}

size_t count_params(const ModelConfig& cfg) {
  cfg.validate();
  const size_t D = size_t(cfg.d_model), V = size_t(cfg.vocab_size);
  size_t n = V * D + D;  // embedding (tied head) and the final norm
  for (int i = 0; i < cfg.n_layer; ++i) {
    const std::string& kind = cfg.mixer_of(i);
    n += D;  // the block's norm
    if (kind == "mamba") {
      const size_t E = size_t(cfg.d_inner()), N = size_t(cfg.d_state), r = size_t(cfg.dt_rank_resolved()),
                   K = size_t(cfg.d_conv);
      n += D * 2 * E + E * K + E + E * (r + 2 * N) + r * E + E + E * N + E + E * D;
    } else if (kind == "s4d" || kind == "s4") {
      MK_CHECK(cfg.s4_d_state >= 2 && cfg.s4_d_state % 2 == 0,
               kind + " mixer: s4_d_state must be even, got " + std::to_string(cfg.s4_d_state));
      const size_t H = D, N2 = size_t(cfg.s4_d_state / 2), copies = cfg.bidirectional ? 2 : 1;
      n += H + 2 * H * N2 + copies * H * N2 * 2;  // log_dt, log_A_real, A_imag, C
      if (kind == "s4") n += 2 * H * N2 * 2;      // P, B
      n += H + 2 * H * H + 2 * H;                 // D, output_linear
    } else if (kind == "attention") {
      const int h = cfg.n_heads_resolved();
      MK_CHECK(cfg.d_model % h == 0 && (cfg.d_model / h) % 2 == 0,
               "attention mixer: d_model " + std::to_string(cfg.d_model) + " must split into " +
                   std::to_string(h) + " heads of even size (RoPE)");
      n += 4 * D * D;
    } else if (kind == "mlp") {
      n += 3 * D * size_t(cfg.mlp_hidden_resolved());
    } else {
      throw Error("count_params: unknown mixer '" + kind + "'");
    }
  }
  if (cfg.n_classes > 0) {
    const size_t C = size_t(cfg.n_classes);
    if (cfg.pair_classifier) n += 4 * D * D + D;
    n += C * D + C;
  }
  return n;
}

}  // namespace mk
