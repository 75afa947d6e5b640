// The FLOP formulas of models/flops.h against the work a real model issues:
// a tiny model of each mixer kind (and a hybrid) runs one forward and one
// backward on the CPU with an OpCounter installed (op_counter.h: multiply-
// adds of every matrix product and attention kernel, conv multiply-adds,
// scan updates, FFTs, S4/S4D kernel terms and norm elements, read from the
// shapes the layers call the backend with), and each counted unit must
// equal what the formulas say that forward and that backward issue. Then the
// 6 N T identity of the matmuls, the per-token scaling, and the S4/S4D
// kernel counted once per micro-batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "mambakit/error.h"
#include "mambakit/models/flops.h"
#include "mambakit/models/sequence_model.h"
#include "mambakit/op_counter.h"

namespace mk {
namespace {

const std::vector<std::string> kUnits = {"matmul_macs", "conv_macs", "scan_updates", "fft_transforms",
                                         "kernel_terms", "norm_elements", "attention_macs"};

ModelConfig tiny(const std::vector<std::string>& mixers, int n_layer) {
  ModelConfig c;
  c.d_model = 16;
  c.n_layer = n_layer;
  c.vocab_size = 37;
  c.d_state = 4;
  c.expand = 2;
  c.d_conv = 3;
  c.n_heads = 2;
  c.s4_d_state = 8;
  c.mlp_hidden = 24;
  c.mixers = mixers;
  return c;
}

struct Counted {
  OpCounter fwd, bwd;
};

// One forward and one backward of a fresh model, counted separately.
Counted run_counted(const ModelConfig& cfg, int B, int L) {
  SequenceModel<float> model(cfg);
  model.init(3);
  std::mt19937 rng(5);
  std::vector<int32_t> ids(size_t(B) * L), tgt;
  for (auto& t : ids) t = int32_t(rng() % uint32_t(cfg.vocab_size));
  if (cfg.n_classes > 0) {
    const int rows = cfg.pair_classifier ? B / 2 : B;
    for (int i = 0; i < rows; ++i) tgt.push_back(int32_t(rng() % uint32_t(cfg.n_classes)));
  } else {
    for (auto& t : ids) tgt.push_back(int32_t((t + 1) % cfg.vocab_size));
  }
  Counted c;
  {
    ScopedOpCounter on(c.fwd);
    model.forward(ids.data(), B, L);
  }
  {
    ScopedOpCounter on(c.bwd);
    model.backward(tgt.data());
  }
  return c;
}

// Every unit the backend counted equals the formulas' units, forward and
// backward; attention's backward runs more than its model FLOPs: the kernel
// recomputes q.k for every visible pair (B P D) and forms dO.O per query
// (B L D), which model FLOPs leave out.
void expect_counts_match(const ModelConfig& cfg, int B, int L, const std::string& what) {
  const FlopCount f = count_flops(cfg, L, B);
  const Counted c = run_counted(cfg, B, L);
  int attention_layers = 0;
  for (int i = 0; i < cfg.n_layer; ++i) attention_layers += cfg.mixer_of(i) == "attention";
  const double P = double(L) * (L + 1) / 2, D = cfg.d_model;
  for (const auto& u : kUnits) {
    double want_bwd = f.backward_units(u);
    if (u == "attention_macs") want_bwd += attention_layers * B * (P * D + L * D);
    EXPECT_DOUBLE_EQ(c.fwd[u], f.forward_units(u)) << what << ": forward " << u;
    EXPECT_DOUBLE_EQ(c.bwd[u], want_bwd) << what << ": backward " << u;
  }
  for (const auto& [u, n] : c.fwd.counts)
    EXPECT_NE(std::find(kUnits.begin(), kUnits.end(), u), kUnits.end()) << what << ": unit " << u << " unchecked";
  // FLOPs are 2 per multiply-add for the counted products.
  EXPECT_DOUBLE_EQ(f.forward_of_kind("matmul"), 2 * c.fwd["matmul_macs"]) << what;
  EXPECT_DOUBLE_EQ(f.backward_of_kind("matmul"), 2 * c.bwd["matmul_macs"]) << what;
  EXPECT_DOUBLE_EQ(f.forward_of_kind("attention"), 2 * c.fwd["attention_macs"]) << what;
  EXPECT_DOUBLE_EQ(f.forward_of_kind("conv"), 2 * c.fwd["conv_macs"]) << what;
  EXPECT_DOUBLE_EQ(f.backward_of_kind("conv"), 2 * c.bwd["conv_macs"]) << what;
  EXPECT_DOUBLE_EQ(f.forward_of_kind("scan"), 9 * c.fwd["scan_updates"]) << what;
}

TEST(Flops, EachMixerMatchesTheCountedWork) {
  for (const std::string kind : {"mamba", "s4d", "s4", "attention", "mlp"})
    expect_counts_match(tiny({kind}, 2), 2, 12, kind);
  // the units each mixer owns were really counted (not 0 == 0)
  const std::vector<std::pair<std::string, std::vector<std::string>>> owns = {
      {"mamba", {"conv_macs", "scan_updates"}},
      {"s4d", {"fft_transforms", "kernel_terms"}},
      {"s4", {"fft_transforms", "kernel_terms"}},
      {"attention", {"attention_macs"}},
      {"mlp", {"matmul_macs", "norm_elements"}}};
  for (const auto& [kind, units] : owns) {
    const Counted c = run_counted(tiny({kind}, 2), 2, 12);
    for (const auto& u : units) {
      EXPECT_GT(c.fwd[u], 0) << kind << " " << u;
      EXPECT_GT(c.bwd[u], 0) << kind << " " << u;
    }
  }
}

TEST(Flops, HybridAndOddShapesMatchTheCountedWork) {
  expect_counts_match(tiny({"mamba", "attention", "s4d", "mlp", "s4"}, 5), 3, 7, "hybrid");
  ModelConfig c = tiny({"mamba", "attention"}, 4);
  c.d_model = 24;
  c.dt_rank = 5;
  c.n_heads = 3;
  expect_counts_match(c, 1, 33, "[mamba, attention], dt_rank 5, 3 heads, L 33");
  ModelConfig bi = tiny({"s4d", "s4"}, 2);
  bi.bidirectional = true;
  expect_counts_match(bi, 2, 9, "bidirectional s4d/s4");
}

TEST(Flops, ClassifierHeadsMatchTheCountedWork) {
  ModelConfig c = tiny({"s4d", "mlp"}, 2);
  c.n_classes = 5;
  expect_counts_match(c, 3, 10, "classifier");
  c.pair_classifier = true;
  expect_counts_match(c, 4, 10, "pair classifier");
}

// For attention and MLP layers the matmuls are 6 N per training token (N the
// parameters that multiply: all but the norm weights; the tied head uses the
// embedding once).
TEST(Flops, MatmulsAreSixNPerTokenForTransformers) {
  ModelConfig c = tiny({"attention", "mlp"}, 4);
  SequenceModel<float> model(c);
  size_t norms = 0;
  for (const auto& e : model.params().entries())
    if (e.name.find("norm") != std::string::npos) norms += e.numel;
  const double N = double(model.num_params() - norms);
  const FlopCount f = count_flops(c, 64, 2);
  EXPECT_DOUBLE_EQ((f.forward_of_kind("matmul") + f.backward_of_kind("matmul")) / f.tokens(), 6 * N);
  // and the attention terms grow with the context: 4 (L+1)/2 D per layer
  // and token forward (scores + values), 3x that with the backward
  const FlopCount g = count_flops(c, 128, 2);
  const double per_layer_token = [&](const FlopCount& x) {
    return (x.forward_of_kind("attention") + x.backward_of_kind("attention")) / x.tokens() / 2;
  }(g);
  EXPECT_DOUBLE_EQ(per_layer_token, 3 * 4 * (128 + 1) / 2.0 * c.d_model);
}

TEST(Flops, PerTokenIsIndependentOfBatchExceptForSsmKernels) {
  for (const std::string kind : {"mamba", "attention", "mlp"}) {
    const ModelConfig c = tiny({kind}, 2);
    EXPECT_DOUBLE_EQ(count_flops(c, 50, 1).per_token(), count_flops(c, 50, 8).per_token()) << kind;
    EXPECT_DOUBLE_EQ(train_flops_per_token(c, 50, 8), count_flops(c, 50, 8).per_token()) << kind;
  }
  // S4D builds its kernel once per micro-batch: a larger batch shares it.
  const ModelConfig s = tiny({"s4d"}, 2);
  const FlopCount one = count_flops(s, 50, 1), eight = count_flops(s, 50, 8);
  EXPECT_LT(eight.per_token(), one.per_token());
  EXPECT_DOUBLE_EQ(one.forward_of_kind("ssm_kernel"), eight.forward_of_kind("ssm_kernel"));
  // Mamba per token is linear in nothing but the width: flat in L
  const ModelConfig m = tiny({"mamba"}, 2);
  EXPECT_DOUBLE_EQ(count_flops(m, 64, 2).per_token(), count_flops(m, 4096, 2).per_token());
}

TEST(Flops, CountParamsMatchesTheBuiltModel) {
  std::vector<ModelConfig> cfgs = {tiny({"mamba"}, 3), tiny({"s4d"}, 2), tiny({"s4"}, 2),
                                   tiny({"attention", "mlp"}, 4),
                                   tiny({"mamba", "attention", "s4d", "mlp", "s4"}, 5)};
  ModelConfig odd = tiny({"mamba", "s4d"}, 2);
  odd.dt_rank = 3;
  odd.d_conv = 5;
  odd.expand = 3;
  odd.bidirectional = true;
  odd.n_classes = 4;
  cfgs.push_back(odd);
  odd.pair_classifier = true;
  cfgs.push_back(odd);
  ModelConfig big_vocab = tiny({"attention", "mlp"}, 2);
  big_vocab.vocab_size = 1000;
  big_vocab.mlp_hidden = 0;
  big_vocab.n_heads = 0;
  big_vocab.d_model = 128;
  cfgs.push_back(big_vocab);
  for (const auto& c : cfgs) {
    SequenceModel<float> model(c);
    EXPECT_EQ(count_params(c), model.num_params()) << c.mixers.size() << " mixers, " << c.n_layer << " layers";
  }
  ModelConfig bad = tiny({"attention"}, 2);
  bad.n_heads = 3;  // 16 does not split into 3 heads
  EXPECT_THROW(count_params(bad), Error);
}

TEST(Flops, TableAndErrors) {
  const FlopCount f = count_flops(tiny({"mamba", "attention"}, 2), 16, 2);
  const std::string t = f.table();
  for (const char* want : {"in_proj", "selective_scan", "scores", "o_proj", "lm_head", "total"})
    EXPECT_NE(t.find(want), std::string::npos) << want << "\n" << t;
  EXPECT_THROW(count_flops(tiny({"mamba"}, 2), 0, 1), Error);
  ModelConfig bad = tiny({"mamba"}, 2);
  bad.d_model = 0;
  EXPECT_THROW(count_flops(bad, 8, 1), Error);
}

}  // namespace
}  // namespace mk
