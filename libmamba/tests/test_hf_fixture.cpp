// The model against HF transformers' own MambaForCausalLM: a tiny random
// model saved by transformers (tools/reference/make_fixtures.py) is loaded
// through our checkpoint reader, and its logits, loss and every parameter
// gradient must match what PyTorch computed.
#include <gtest/gtest.h>

#include "mambakit/io/checkpoint.h"
#include "mambakit/io/safetensors.h"
#include "test_util.h"

namespace mk {
namespace {

const std::string kDir = std::string(MAMBAKIT_SOURCE_DIR) + "/libmamba/tests/data/hf_mamba_tiny";

TEST(HFFixture, LogitsLossAndGradientsMatchTransformers) {
  auto model = load_model(kDir);
  SafetensorsData fx = read_safetensors(kDir + "/fixture.safetensors");
  const Tensor& ids_t = fx.get("input_ids");
  const int L = int(ids_t.numel());
  const int V = model->config().vocab_size;
  std::vector<int32_t> ids(ids_t.data<int32_t>(), ids_t.data<int32_t>() + L);

  model->forward(ids.data(), 1, L);
  const Tensor& logits = fx.get("logits");
  ASSERT_EQ(logits.numel(), int64_t(L) * V);
  EXPECT_TRUE(test::all_close(model->logits().data(), logits.data<float>(), size_t(L) * V, 1e-4))
      << "logits";

  // HF's loss: mean cross-entropy of logits[t] against ids[t+1].
  std::vector<int32_t> targets(L, -1);
  for (int t = 0; t + 1 < L; ++t) targets[t] = ids[t + 1];
  auto& ps = model->params();
  ps.zero_grad();
  const double loss = model->backward(targets.data());
  EXPECT_NEAR(loss, double(fx.get("loss").data<float>()[0]), 1e-5);

  int checked = 0;
  for (const auto& e : ps.entries()) {
    const std::string gname = "grad." + e.name;
    ASSERT_TRUE(fx.has(gname)) << gname;
    const Tensor& g = fx.get(gname);
    ASSERT_EQ(size_t(g.numel()), e.numel) << e.name;
    EXPECT_TRUE(test::all_close(ps.grad() + e.offset, g.data<float>(), e.numel, 1e-4)) << e.name;
    ++checked;
  }
  EXPECT_EQ(checked, 22);
}

}  // namespace
}  // namespace mk
