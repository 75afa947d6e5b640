// Byte-level language-model training on one text file: the loop behind
// `mambakit train`. A run directory holds the model (config.json +
// model.safetensors, loadable by HF transformers), the optimizer moments
// (optimizer.safetensors) and trainer_state.json (step, sampler RNG, the
// options), so --resume continues with bit-identical losses.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mambakit/datasets/text.h"
#include "mambakit/model_config.h"
#include "mambakit/models/sequence_model.h"
#include "mambakit/ops/optim.h"
#include "mambakit/tasks/language.h"

namespace mk::exp {

struct TrainOptions {
  std::string data;  // text file
  std::string out;   // run directory
  ModelConfig model;
  int seq_len = 256;
  int batch = 16;
  long steps = 600;
  double lr = 3e-3;
  double min_lr = 3e-4;
  long warmup = 30;
  double weight_decay = 0.1;
  double clip = 1.0;
  uint64_t seed = 1;
  double train_fraction = 0.9;
  long log_every = 10;
  long save_every = 0;     // 0: only at the end
  size_t eval_windows = 256;  // validation windows scored at the end (0 = all)
};

class Trainer {
 public:
  // Fresh run: reads the data, initialises the model from opts.seed.
  explicit Trainer(const TrainOptions& opts);
  // Continues the run saved in dir (options from its trainer_state.json;
  // steps may be raised by passing new_steps > 0).
  static std::unique_ptr<Trainer> resume(const std::string& dir, long new_steps = 0);

  // One optimizer step on one batch; returns the training loss (nats/byte).
  double step();
  long steps_done() const { return step_; }
  const TrainOptions& options() const { return opts_; }
  SequenceModel<float>& model() { return *model_; }

  // Writes model, optimizer state and trainer state into dir (atomically,
  // file by file; trainer_state.json last, so a half-finished save is never
  // taken for a complete one).
  void save(const std::string& dir) const;

  // Validation bits per byte on the held-out split.
  double validation_bpb();

  // Runs to opts.steps with a progress line; saves at the end.
  void run();

 private:
  Trainer() = default;
  void load_data();
  TrainOptions opts_;
  data::ByteSplit split_;
  std::unique_ptr<SequenceModel<float>> model_;
  std::unique_ptr<tasks::WindowSampler> sampler_;
  std::vector<float> m_, v_;
  long step_ = 0;
  double last_grad_norm_ = 0;
};

}  // namespace mk::exp
