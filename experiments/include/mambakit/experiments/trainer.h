// The experiment runner's training loop, task-agnostic: the task (tasks/)
// supplies batches, targets and metrics; the loop does gradient
// accumulation, the learning-rate schedule, AdamW, clipping, evaluation,
// best-checkpoint tracking, checkpoints (atomic, last K kept), resume with
// bit-identical losses, SIGINT/SIGTERM handling, progress, metrics.jsonl,
// summary.json and the loss plot. See run_dir.h for the files of a run.
//
// Data parallelism (mambakit/dist): under mpirun/srun every rank builds the
// same Trainer, draws the same global batches from the same seeded stream and
// trains on its own part of each (tasks::batch_part), its gradient weighted
// by its share of the batch's targets; one bucketed all-reduce per step sums
// the gradients, so every rank takes the same optimizer step, equal to one
// process's on the whole batch up to the order of float sums. Rank 0 alone
// writes the run directory.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mambakit/dist/communicator.h"
#include "mambakit/dist/grad_reducer.h"
#include "mambakit/experiments/config.h"
#include "mambakit/experiments/run_dir.h"
#include "mambakit/models/sampler.h"
#include "mambakit/models/sequence_model.h"
#include "mambakit/tasks/task.h"

namespace mk::exp {

// The options of the flag form `mambakit train --data FILE --out DIR ...`,
// shorthand for the built-in byte-level language-model config.
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
  long save_every = 0;        // 0: only at the end
  size_t eval_windows = 256;  // validation windows scored at the end (0 = all)
};

// The built-in language-model config the flag form stands for.
RunConfig language_config(const TrainOptions& o);

class Trainer {
 public:
  // A fresh run: creates the task and initialises the model from train.seed.
  // Throws ConfigError for config mistakes only the task can see.
  explicit Trainer(const RunConfig& cfg);
  explicit Trainer(const TrainOptions& opts) : Trainer(language_config(opts)) {}

  // Continues the run in cfg.output.dir from its newest checkpoint: model,
  // optimizer moments, sampler RNG, step and best-metric state. cfg may
  // change train/eval/output keys (e.g. raise train.steps); model, task and
  // data must match the run's config.yaml (ConfigError otherwise). Takes the
  // directory's lock first (an mk::Error naming the holder's pid when another
  // process writes it). A run whose start ended before its first checkpoint
  // begins again from step 0, with a note.
  static std::unique_ptr<Trainer> resume(const RunConfig& cfg);
  // Same, with the config read from run_dir/config.yaml (train.steps raised
  // to new_steps when > 0).
  static std::unique_ptr<Trainer> resume(const std::string& run_dir, long new_steps = 0);

  // One optimizer step (grad_accum micro-batches). Returns the mean training
  // loss; a non-finite loss or gradient skips the update (the step still
  // counts, and the batch is consumed) and is returned as it is.
  double step();
  long steps_done() const { return step_; }
  long total_steps() const { return total_steps_; }
  double lr_at(long step) const;  // 0-based step
  int consecutive_nonfinite() const { return nonfinite_run_; }
  long nonfinite_steps() const { return nonfinite_total_; }

  const RunConfig& config() const { return cfg_; }
  SequenceModel<float>& model() { return *model_; }
  tasks::Task& task() { return *task_; }

  // Claims cfg.output.dir for a fresh run (run() does it when not done
  // yet): takes its lock (RunDirSession; an mk::Error naming the holder's pid
  // when another process writes it), then: an empty or new directory is
  // used as it is; one whose start ended before its first checkpoint is
  // started again; one that holds a run is refused (ConfigError) unless
  // output.overwrite, which builds the new run beside it and replaces it at
  // the first checkpoint. Overwrite refuses (mk::Error) a directory holding
  // files that are not a run's, or the config file being read.
  void claim_run_dir();
  // Where the run's files go now (output.dir, or the staging directory of
  // an overwrite before its first checkpoint).
  std::string write_dir() const { return session_ ? session_->write_dir() : cfg_.output.dir; }

  // Writes checkpoints/step_N (atomically) into run_dir, points the
  // top-level files at it and prunes to output.keep_last.
  void save(const std::string& run_dir);

  // The task's metrics on a split (names without the split prefix); empty
  // `metrics` = the config's eval.metrics (or the task's defaults).
  std::map<std::string, double> evaluate(const std::string& split,
                                         const std::vector<std::string>& metrics = {});
  // Bits per byte on the validation split (language task).
  double validation_bpb();

  // Trains to total_steps() with progress, eval, checkpoints, metrics.jsonl,
  // and at the end summary.json, the plot and sample.txt. until > 0 stops
  // after that step (with a checkpoint; the schedule still runs to
  // train.steps), for running a long job in pieces with --resume. Returns
  // the summary. On SIGINT/SIGTERM: finishes the step, saves, writes the
  // summary and returns (interrupted_by() tells which signal); a second
  // signal ends the process at once with 128 + its number.
  nlohmann::json run(long until = 0);
  int interrupted_by() const { return signal_; }

  // The job this trainer is part of (dist::world(): one rank unless started
  // by an MPI launcher with train.distributed on).
  int rank() const { return comm_->rank(); }
  int world_size() const { return comm_->size(); }
  // Throws mk::Error on every rank when the ranks' parameters or optimizer
  // moments differ (a hash compared with rank 0's).
  void check_replicas_agree(const std::string& when);

 private:
  struct Init {};
  Trainer(const RunConfig& cfg, Init);  // task and model, no weights yet
  void evaluate_and_track(MetricsLog& log);
  void save_run();  // save(write_dir()), then an overwrite's staged run goes into place
  void save_best();
  void save_tokenizer(const std::string& model_dir) const;
  void place_on_device();
  void write_confusion(const std::string& dir);
  nlohmann::json summary(double wall_seconds) const;
  nlohmann::json state_json() const;
  // This rank's part of one global micro-batch: forward and backward with
  // the gradient weighted by the part's share of the targets. Returns the
  // part's contribution to the global mean loss.
  double train_on_part(const tasks::TokenBatch& global, int accum, bool last_micro_batch);
  // After the backward: sums the gradients and the loss over the ranks and
  // agrees on a stop signal. Returns the global loss.
  double reduce_over_ranks(double local_loss);
  bool writes_run_dir() const { return comm_->rank() == 0; }
  void print_start_line(const std::string& dir) const;

  dist::Communicator* comm_ = &dist::world();
  std::unique_ptr<dist::GradReducer> reducer_;  // when world_size() > 1
  int agreed_signal_ = 0;      // a stop signal seen by any rank this step
  double comm_seconds_ = 0;    // waiting for gradient sums, this session

  RunConfig cfg_;
  std::unique_ptr<tasks::Task> task_;
  std::unique_ptr<SequenceModel<float>> model_;
  Buf<float> m_, v_;  // AdamW moments, on the model's device
  std::vector<std::string> eval_metrics_;  // without split prefix
  std::string best_metric_;                // with prefix, e.g. val_loss
  bool best_higher_ = false;
  long total_steps_ = 0;
  long step_ = 0, opt_step_ = 0;
  int nonfinite_run_ = 0;
  long nonfinite_total_ = 0;
  double tokens_ = 0;         // trained on, all sessions
  double prior_seconds_ = 0;  // wall time of earlier sessions
  double last_norm_ = 0;
  // Time inside training steps in this session (no evaluation, checkpoints
  // or generation): all of them, and the steady state after the first
  // kSteadyWarmup steps (summary.json's steady_tokens_per_second).
  static constexpr long kSteadyWarmup = 3;
  long session_steps_ = 0, steady_steps_ = 0;
  double session_train_seconds_ = 0, session_train_tokens_ = 0;
  double steady_seconds_ = 0, steady_tokens_ = 0;
  long last_eval_step_ = -1, last_save_step_ = -1;
  nlohmann::json last_eval_ = nlohmann::json::object();
  nlohmann::json best_ = nullptr;  // {"step", "value", "metrics"}
  int signal_ = 0;
  bool resumed_ = false;
  std::unique_ptr<RunDirSession> session_;  // the lock on output.dir, while this trainer writes it
  std::chrono::steady_clock::time_point session_start_ = std::chrono::steady_clock::now();
};

// Generates up to `tokens` tokens after `prompt` by recurrent steps; stops
// after the first token in stop_ids (an end-of-sequence id), which is the
// last one returned.
std::vector<int32_t> generate_tokens(SequenceModel<float>& model, const std::vector<int32_t>& prompt,
                                     int tokens, const SamplingOptions& so, uint64_t seed,
                                     const std::vector<int32_t>& stop_ids = {});

// `mambakit eval`: the run's config.yaml, the model of `checkpoint` ("latest",
// "best", "step_N" or a directory), metrics on a split. Returns one JSON
// object {"run", "checkpoint", "step", "split", "<split>_<metric>": value}.
nlohmann::json evaluate_run(const std::string& run_dir, const std::string& split,
                            const std::vector<std::string>& metrics, const std::string& checkpoint,
                            long max_sequences, int batch);
// A run directory's config.yaml (mk::Error when there is none), its
// data.tokenizer pointed at the run's own copy of the tokenizer where the
// run holds one, so its models read text as they were trained to.
RunConfig load_run_config(const std::string& run_dir);
// The model directory a checkpoint name refers to (see evaluate_run).
std::string checkpoint_dir(const std::string& run_dir, const std::string& checkpoint);
// The training step a model directory was saved at (from its
// trainer_state.json or best.json), or null if neither says.
nlohmann::json checkpoint_step(const std::string& model_dir);

// Device check for train.device/precision: "cpu" always; "cuda" in a build
// without CUDA falls back to the CPU with a note; "cuda" with CUDA built but
// no GPU visible is an mk::Error. Returns notes to print.
std::vector<std::string> check_device(const RunConfig& cfg);

}  // namespace mk::exp
