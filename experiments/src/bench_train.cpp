#include "mambakit/experiments/bench_train.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "mambakit/models/sequence_model.h"
#include "mambakit/ops/optim.h"

namespace mk::exp {

std::string run_train_bench(const TrainBenchConfig& c) {
  ModelConfig cfg;  // the demo model: d_model 128, 6 layers
  cfg.d_model = 128;
  cfg.n_layer = 6;
  const int B = 16, L = 256;
  SequenceModel<float> model(cfg);
  model.init(1);
  std::mt19937 rng(1);
  std::vector<int32_t> ids(B * L), tgt(B * L);
  for (auto& t : ids) t = int32_t(rng() % 256);
  for (auto& t : tgt) t = int32_t(rng() % 256);
  std::vector<float> m(model.num_params()), v(model.num_params());
  auto& ps = model.params();
  auto one_step = [&](long step) {
    ps.zero_grad();
    model.forward(ids.data(), B, L);
    model.backward(tgt.data());
    ops::clip_grad_norm(ps.grad(), ps.size(), 1.0);
    ops::AdamWHyper h;
    for (const auto& e : ps.entries())
      ops::adamw_update(ps.data() + e.offset, ps.grad() + e.offset, m.data() + e.offset,
                        v.data() + e.offset, e.numel, h, step, e.decay);
  };
  one_step(1);  // warm-up: allocations, page faults
  auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < c.steps; ++s) one_step(s + 2);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j{{"benchmark", "train_step"}, {"params", model.num_params()},
                   {"batch", B}, {"seq_len", L}, {"steps", c.steps},
                   {"ms_per_step", 1e3 * secs / c.steps},
                   {"tokens_per_s", double(B) * L * c.steps / secs}};
  return j.dump();
}

}  // namespace mk::exp
