// Whole models on the CUDA backend against the same models on the CPU
// backend: the same initial parameters, the same batches, the same AdamW
// steps (the trainer's step: zero grads, forward, backward, clip, AdamW over
// each parameter), and the losses must track within 1e-4 relative for 20
// steps; greedy generation through the recurrent step kernels (and the KV
// cache) must produce the same tokens. Every mixer and every head is covered
// by one gradient-parity case. Without a device the tests skip with the
// reason; without CUDA in the build the cuda device is refused in one line.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "mambakit/backend.h"
#include "mambakit/error.h"
#include "mambakit/models/sequence_model.h"

namespace mk {
namespace {

bool have_device(std::string* why) { return cuda_backend_available(why); }

#define SKIP_WITHOUT_DEVICE()                                  \
  do {                                                         \
    std::string why;                                           \
    if (!have_device(&why)) GTEST_SKIP() << "no CUDA device: " << why; \
  } while (0)

struct Batch {
  std::vector<int32_t> ids, targets, lengths;
  int batch = 0, len = 0;
};

Batch random_lm_batch(std::mt19937& rng, int batch, int len, int vocab) {
  Batch b;
  b.batch = batch;
  b.len = len;
  b.ids.resize(size_t(batch) * len);
  b.targets.resize(b.ids.size());
  for (auto& t : b.ids) t = int32_t(rng() % vocab);
  // A learnable target: the previous token, so the loss falls over the steps.
  for (size_t i = 0; i < b.ids.size(); ++i) b.targets[i] = i % len == 0 ? -1 : b.ids[i - 1];
  return b;
}

// The trainer's step (experiments/src/trainer.cpp) on either device.
struct Stepper {
  SequenceModel<float>& model;
  Buf<float> m, v;
  long t = 0;
  explicit Stepper(SequenceModel<float>& mdl) : model(mdl) {
    Backend<float>& be = model.params().backend();
    m.assign_zero(be, model.num_params());
    v.assign_zero(be, model.num_params());
  }
  double step(const Batch& b) {
    auto& ps = model.params();
    Backend<float>& be = ps.backend();
    ps.zero_grad();
    model.forward(b.ids.data(), b.batch, b.len, b.lengths.empty() ? nullptr : b.lengths.data());
    const double loss = model.backward(b.targets.data());
    be.clip_grad_norm(ps.grad(), ps.size(), 1.0);
    ops::AdamWHyper h;
    h.lr = 3e-3;
    ++t;
    for (const auto& e : ps.entries())
      be.adamw_update(ps.data() + e.offset, ps.grad() + e.offset, m.data() + e.offset, v.data() + e.offset,
                      e.numel, h, t, e.decay);
    return loss;
  }
};

double rel(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-12); }

void expect_training_tracks(const ModelConfig& cfg, int batch, int len, int steps) {
  SequenceModel<float> cpu(cfg), gpu(cfg);
  cpu.init(11);
  gpu.init(11);
  gpu.to(Device::cuda);
  Stepper sc(cpu), sg(gpu);
  std::mt19937 rng(5);
  double worst = 0, first = 0, last = 0;
  for (int s = 0; s < steps; ++s) {
    const Batch b = random_lm_batch(rng, batch, len, cfg.vocab_size);
    const double lc = sc.step(b), lg = sg.step(b);
    worst = std::max(worst, rel(lg, lc));
    if (s == 0) first = lc;
    last = lc;
    EXPECT_LT(rel(lg, lc), 1e-4) << "step " << s << ": cuda loss " << lg << ", cpu loss " << lc;
  }
  // The parameters after the steps agree too.
  const auto pc = cpu.params().host_data(), pg = gpu.params().host_data();
  double num = 0, den = 0;
  for (size_t i = 0; i < pc.size(); ++i) {
    num += (double(pg[i]) - pc[i]) * (double(pg[i]) - pc[i]);
    den += double(pc[i]) * pc[i];
  }
  std::printf("[parity] %d steps: loss %.4f -> %.4f, worst relative loss difference %.2e, "
              "parameters rel L2 %.2e\n",
              steps, first, last, worst, std::sqrt(num / den));
  EXPECT_LT(std::sqrt(num / den), 1e-3);
  EXPECT_LT(last, first) << "the loss should fall over the steps";
}

std::vector<int32_t> greedy(SequenceModel<float>& model, const std::vector<int32_t>& prompt, int n) {
  auto st = model.make_state(1);
  const int V = model.config().vocab_size;
  std::vector<float> logits(V);
  std::vector<int32_t> out;
  int32_t tok = prompt[0];
  for (size_t i = 0; i < prompt.size() + size_t(n) - 1; ++i) {
    tok = i < prompt.size() ? prompt[i] : out.back();
    model.step(&tok, st, logits.data());
    if (i + 1 >= prompt.size())
      out.push_back(int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  }
  return out;
}

void expect_same_greedy_tokens(const ModelConfig& cfg) {
  SequenceModel<float> cpu(cfg), gpu(cfg);
  cpu.init(3);
  gpu.init(3);
  gpu.to(Device::cuda);
  const std::vector<int32_t> prompt = {1, 5, 9, 2, 7};
  const auto a = greedy(cpu, prompt, 64), b = greedy(gpu, prompt, 64);
  EXPECT_EQ(a, b);
}

ModelConfig small_lm(std::vector<std::string> mixers) {
  ModelConfig c;
  c.d_model = 64;
  c.n_layer = 2;
  c.vocab_size = 48;
  c.d_state = 16;
  c.n_heads = 2;
  c.s4_d_state = 16;
  c.mixers = std::move(mixers);
  return c;
}

TEST(CudaModelParity, MambaLmTrainsLikeTheCpu) {
  SKIP_WITHOUT_DEVICE();
  expect_training_tracks(small_lm({"mamba"}), 4, 96, 20);
}

TEST(CudaModelParity, HybridMambaAttentionTrainsLikeTheCpu) {
  SKIP_WITHOUT_DEVICE();
  expect_training_tracks(small_lm({"mamba", "attention"}), 4, 96, 20);
}

TEST(CudaModelParity, GreedyGenerationIsIdentical) {
  SKIP_WITHOUT_DEVICE();
  expect_same_greedy_tokens(small_lm({"mamba"}));
  expect_same_greedy_tokens(small_lm({"mamba", "attention"}));
  expect_same_greedy_tokens(small_lm({"s4d", "mlp"}));
  expect_same_greedy_tokens(small_lm({"s4"}));
}

// One forward and backward of every mixer and head: loss and every gradient.
void expect_gradients_match(ModelConfig cfg, bool classifier, bool pair) {
  if (classifier) {
    cfg.n_classes = 3;
    cfg.pooling = "mean";
    cfg.pair_classifier = pair;
  }
  SequenceModel<float> cpu(cfg), gpu(cfg);
  cpu.init(9);
  gpu.init(9);
  gpu.to(Device::cuda);
  std::mt19937 rng(4);
  const int B = 4, L = 40;
  Batch b = random_lm_batch(rng, B, L, cfg.vocab_size);
  if (classifier) {
    b.lengths = {L, 17, 1, 33};
    b.targets.assign(pair ? B / 2 : B, 0);
    for (auto& t : b.targets) t = int32_t(rng() % 3);
  }
  for (auto* m : {&cpu, &gpu}) {
    m->params().zero_grad();
    m->forward(b.ids.data(), B, L, b.lengths.empty() ? nullptr : b.lengths.data());
  }
  const auto& lc = cpu.logits();
  const auto& lg = gpu.logits();
  ASSERT_EQ(lc.size(), lg.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < lc.size(); ++i) {
    num += (double(lg[i]) - lc[i]) * (double(lg[i]) - lc[i]);
    den += double(lc[i]) * lc[i];
  }
  EXPECT_LT(std::sqrt(num / den), 1e-4) << "logits";
  const double loss_c = cpu.backward(b.targets.data()), loss_g = gpu.backward(b.targets.data());
  EXPECT_LT(rel(loss_g, loss_c), 1e-5);
  const auto gc = cpu.params().host_grad(), gg = gpu.params().host_grad();
  for (const auto& e : cpu.params().entries()) {
    double n2 = 0, d2 = 0;
    for (size_t i = e.offset; i < e.offset + e.numel; ++i) {
      n2 += (double(gg[i]) - gc[i]) * (double(gg[i]) - gc[i]);
      d2 += double(gc[i]) * gc[i];
    }
    if (d2 == 0) {
      EXPECT_EQ(n2, 0) << e.name;
      continue;
    }
    EXPECT_LT(std::sqrt(n2 / d2), 1e-3) << e.name << ": gradient rel L2 " << std::sqrt(n2 / d2);
  }
}

TEST(CudaModelParity, EveryMixerGradientMatchesTheCpu) {
  SKIP_WITHOUT_DEVICE();
  for (const char* kind : {"mamba", "attention", "mlp", "s4d", "s4"}) {
    SCOPED_TRACE(kind);
    expect_gradients_match(small_lm({kind}), false, false);
  }
  ModelConfig bidir = small_lm({"s4d", "s4"});
  bidir.bidirectional = true;
  SCOPED_TRACE("bidirectional");
  expect_gradients_match(bidir, true, false);
}

TEST(CudaModelParity, ClassifierHeadsMatchTheCpu) {
  SKIP_WITHOUT_DEVICE();
  expect_gradients_match(small_lm({"mamba"}), true, false);
  expect_gradients_match(small_lm({"mamba", "attention"}), true, true);
}

TEST(CudaModelParity, CheckpointBytesDoNotDependOnTheDevice) {
  SKIP_WITHOUT_DEVICE();
  ModelConfig cfg = small_lm({"mamba"});
  SequenceModel<float> a(cfg);
  a.init(1);
  const auto before = a.params().host_data();
  a.to(Device::cuda);
  a.to(Device::cpu);
  EXPECT_EQ(a.params().host_data(), before);
}

TEST(CudaModelParityHost, CudaWithoutADeviceIsAOneLineError) {
  std::string why;
  if (have_device(&why)) GTEST_SKIP() << "a CUDA device is present: the refusal cannot be seen here";
  SequenceModel<float> m(small_lm({"mamba"}));
  try {
    m.to(Device::cuda);
    FAIL() << "moving to cuda without a device must throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cuda"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_EQ(m.device(), Device::cpu);
}

TEST(CudaModelParityHost, DoubleModelsStayOnTheCpu) {
  SequenceModel<double> m(small_lm({"mamba"}));
  EXPECT_THROW(m.to(Device::cuda), Error);
}

}  // namespace
}  // namespace mk
