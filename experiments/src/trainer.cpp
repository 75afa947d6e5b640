#include "mambakit/experiments/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "mambakit/error.h"
#include "mambakit/evaluation/perplexity.h"
#include "mambakit/io/atomic_file.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/io/model_io.h"
#include "mambakit/io/safetensors.h"

namespace mk::exp {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json options_to_json(const TrainOptions& o) {
  return json{{"data", o.data},         {"out", o.out},
              {"seq_len", o.seq_len},   {"batch", o.batch},
              {"steps", o.steps},       {"lr", o.lr},
              {"min_lr", o.min_lr},     {"warmup", o.warmup},
              {"weight_decay", o.weight_decay}, {"clip", o.clip},
              {"seed", o.seed},         {"train_fraction", o.train_fraction},
              {"log_every", o.log_every}, {"save_every", o.save_every},
              {"eval_windows", o.eval_windows}};
}

TrainOptions options_from_json(const json& j, const std::string& where) {
  try {
    TrainOptions o;
    o.data = j.at("data");
    o.out = j.at("out");
    o.seq_len = j.at("seq_len");
    o.batch = j.at("batch");
    o.steps = j.at("steps");
    o.lr = j.at("lr");
    o.min_lr = j.at("min_lr");
    o.warmup = j.at("warmup");
    o.weight_decay = j.at("weight_decay");
    o.clip = j.at("clip");
    o.seed = j.at("seed");
    o.train_fraction = j.at("train_fraction");
    o.log_every = j.at("log_every");
    o.save_every = j.at("save_every");
    o.eval_windows = j.at("eval_windows");
    return o;
  } catch (const json::exception& e) {
    throw Error(where + ": " + e.what());
  }
}

std::string format_eta(double seconds) {
  char buf[32];
  long s = long(seconds + 0.5);
  std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

}  // namespace

void Trainer::load_data() {
  split_ = data::split_bytes(data::read_bytes(opts_.data), opts_.train_fraction,
                             size_t(opts_.seq_len) + 2, opts_.data);
  sampler_ = std::make_unique<tasks::WindowSampler>(&split_.train, opts_.seq_len, opts_.seed);
}

Trainer::Trainer(const TrainOptions& opts) : opts_(opts) {
  MK_CHECK(opts.batch > 0 && opts.seq_len > 0 && opts.steps >= 0 && opts.lr > 0,
           "train: batch, seq-len and lr must be positive, steps non-negative");
  load_data();
  model_ = std::make_unique<SequenceModel<float>>(opts_.model);
  model_->init(opts_.seed);
  m_.assign(model_->num_params(), 0.f);
  v_.assign(model_->num_params(), 0.f);
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& dir, long new_steps) {
  const std::string state_path = dir + "/trainer_state.json";
  json st;
  try {
    st = json::parse(read_text_file(state_path));
  } catch (const json::exception& e) {
    throw Error(state_path + ": " + e.what());
  }
  std::unique_ptr<Trainer> t(new Trainer());
  t->opts_ = options_from_json(st.at("options"), state_path);
  t->opts_.out = dir;
  if (new_steps > 0) t->opts_.steps = new_steps;
  t->load_data();
  t->model_ = load_model(dir);
  t->opts_.model = t->model_->config();
  t->step_ = st.at("step").get<long>();
  t->sampler_->set_rng_state(st.at("sampler_rng").get<std::string>());
  SafetensorsData opt = read_safetensors(dir + "/optimizer.safetensors");
  const size_t n = t->model_->num_params();
  for (const char* name : {"adam.m", "adam.v"})
    if (size_t(opt.get(name).numel()) != n || opt.get(name).dtype() != DType::f32)
      throw Error(dir + "/optimizer.safetensors: '" + name + "' does not match the model's " +
                  std::to_string(n) + " parameters");
  t->m_.assign(opt.get("adam.m").data<float>(), opt.get("adam.m").data<float>() + n);
  t->v_.assign(opt.get("adam.v").data<float>(), opt.get("adam.v").data<float>() + n);
  return t;
}

double Trainer::step() {
  auto& ps = model_->params();
  tasks::TokenBatch b = sampler_->next(opts_.batch);
  ps.zero_grad();
  model_->forward(b.ids.data(), b.batch, b.len);
  const double loss = model_->backward(b.targets.data());
  last_grad_norm_ = ops::clip_grad_norm(ps.grad(), ps.size(), opts_.clip);
  ops::AdamWHyper h;
  h.lr = ops::cosine_lr(step_, opts_.warmup, opts_.steps, opts_.lr, opts_.min_lr);
  h.weight_decay = opts_.weight_decay;
  ++step_;
  for (const auto& e : ps.entries())
    ops::adamw_update(ps.data() + e.offset, ps.grad() + e.offset, m_.data() + e.offset,
                      v_.data() + e.offset, e.numel, h, step_, e.decay);
  return loss;
}

void Trainer::save(const std::string& dir) const {
  fs::create_directories(dir);
  save_model(dir, *model_);
  const Shape s{long(m_.size())};
  write_safetensors(dir + "/optimizer.safetensors",
                        {{"adam.m", Tensor::borrow(const_cast<float*>(m_.data()), s, DType::f32)},
                         {"adam.v", Tensor::borrow(const_cast<float*>(v_.data()), s, DType::f32)}});
  json st{{"step", step_}, {"sampler_rng", sampler_->rng_state()},
          {"options", options_to_json(opts_)}};
  atomic_write_text(dir + "/trainer_state.json", st.dump(2) + "\n");
}

double Trainer::validation_bpb() {
  return eval::evaluate_nll(*model_, split_.val, opts_.seq_len, opts_.batch, opts_.eval_windows)
      .bits();
}

void Trainer::run() {
  const bool tty = isatty(fileno(stderr));
  std::fprintf(stderr, "train: %s, %zu train / %zu val bytes, model %zu parameters, %ld steps of %d x %d\n",
               opts_.data.c_str(), split_.train.size(), split_.val.size(), model_->num_params(),
               opts_.steps, opts_.batch, opts_.seq_len);
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const long first = step_;
  double smooth = 0;
  while (step_ < opts_.steps) {
    const double loss = step();
    if (!std::isfinite(loss)) throw Error("train: loss is not finite at step " + std::to_string(step_));
    smooth = step_ == first + 1 ? loss : 0.9 * smooth + 0.1 * loss;
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    const double tok_s = double(step_ - first) * opts_.batch * opts_.seq_len / secs;
    const double eta = secs / double(step_ - first) * double(opts_.steps - step_);
    const double lr = ops::cosine_lr(step_ - 1, opts_.warmup, opts_.steps, opts_.lr, opts_.min_lr);
    if (tty || step_ % opts_.log_every == 0 || step_ == opts_.steps) {
      std::fprintf(stderr, "%sstep %ld/%ld  loss %.4f (%.3f bpb)  lr %.2e  |g| %.2f  %.0f tok/s  ETA %s%s",
                   tty ? "\r" : "", step_, opts_.steps, smooth, smooth / std::log(2.0), lr,
                   last_grad_norm_, tok_s, format_eta(eta).c_str(), tty ? "\033[K" : "\n");
      std::fflush(stderr);
    }
    if (opts_.save_every > 0 && step_ % opts_.save_every == 0) save(opts_.out);
  }
  if (tty) std::fprintf(stderr, "\n");
  save(opts_.out);
  std::fprintf(stderr, "train: %.1f s, checkpoint in %s\n",
               std::chrono::duration<double>(clock::now() - t0).count(), opts_.out.c_str());
}

}  // namespace mk::exp
