// Experiment configs: one YAML file per experiment, sections
//   model     the network (mixer per layer, d_model, n_layer, d_state, ...)
//   task      name + the task's own options (validated by the task)
//   data      paths, seq_len, split
//   train     steps/epochs, batch, lr schedule, optimizer, seed, device
//   eval      how often, which split and metrics, best-checkpoint metric
//   generate  optional sample at the end of training (and `generate` defaults)
//   output    run directory, logging and checkpoint cadence
// Every key is declared once, in the schema table of config.cpp (name, type,
// default, required, doc, checks, aliases). Parsing, unknown-key detection
// with "did you mean", --set overrides, validation, the resolved dump and
// `mambakit train --help-config` all read that one table.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mambakit/model_config.h"
#include "mambakit/tasks/task.h"

namespace mk::exp {

using tasks::ConfigError;

struct TrainConfig {
  long steps = 0;        // optimizer steps (or derived from epochs)
  double epochs = 0;     // passes over the task's training tokens (0: use steps)
  int batch_size = 16;   // sequences per micro-batch
  int grad_accum = 1;    // micro-batches per optimizer step
  double lr = 3e-3;
  double min_lr = 0;
  std::string schedule = "cosine";  // cosine | linear | constant (after warmup)
  long warmup = 0;
  double weight_decay = 0.1;
  double clip = 1.0;     // global gradient norm (0: no clipping)
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  long seed = 1;
  std::string device = "cpu";       // cpu | cuda
  std::string precision = "fp32";   // fp32 | bf16 (bf16: CUDA matmuls only)
  int threads = 0;                  // 0: OMP_NUM_THREADS
  int max_nonfinite = 5;            // stop after this many non-finite steps in a row
  // Data parallelism (mpirun/srun): batch_size stays the global micro-batch,
  // each rank trains on its share of it.
  std::string distributed = "auto";  // auto (on under an MPI launcher) | off
  double bucket_mb = 4;              // gradient all-reduce bucket size
  long check_replicas_every = 0;     // debug: compare the ranks' parameters every N steps
};

struct EvalConfig {
  long every = 0;                    // steps between evaluations (0: at the end only)
  std::string split = "val";
  std::vector<std::string> metrics;  // empty: the task's defaults
  long max_sequences = 256;          // sequences scored per evaluation (0: whole split)
  int batch_size = 0;                // 0: train.batch_size
  std::string best_metric;           // "": <split>_<first metric>
  std::string best_mode = "auto";    // auto | min | max
};

struct GenerateConfig {
  std::string prompt;
  int tokens = 0;  // > 0: write sample.txt at the end of training
  double temperature = 1.0;
  int top_k = 0;
  double top_p = 1.0;
  long seed = 0;
};

struct OutputConfig {
  std::string dir;
  bool overwrite = false;  // replace a finished or interrupted run in dir
  long log_every = 10;     // steps between metrics.jsonl train lines
  long save_every = 0;     // steps between checkpoints (0: at the end only)
  int keep_last = 3;       // checkpoints kept under checkpoints/
  bool plot = true;        // loss.png / loss.svg (needs gnuplot)
};

struct RunConfig {
  RunConfig() {
    model.mixers = {"mamba"};
    model.vocab_size = 0;  // the task's
  }
  std::string description;
  ModelConfig model;
  // model.init_from: a run (or model) directory whose weights start this run.
  std::string init_from;
  std::string task_name;
  nlohmann::json task_options = nlohmann::json::object();
  tasks::DataSpec data;
  TrainConfig train;
  EvalConfig eval;
  GenerateConfig generate;
  OutputConfig output;

  std::string source;  // the config file ("<command line>" for the flag form)
  std::map<std::string, std::string> where;       // key -> "file:line" or "--set k=v"
  std::map<std::string, std::string> task_where;  // task option -> place

  // Where a key's value came from, for error messages (the file itself for
  // defaults).
  std::string where_of(const std::string& key) const;
  // The spec the task registry builds the task from.
  tasks::TaskSpec task_spec() const;
};

// Reads, overrides (`a.b=c`, applied in order), validates. Errors are
// ConfigError "<file>:<line>: <what> (did you mean ...)"; a missing file is
// an mk::Error.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
RunConfig parse_config(const std::string& yaml, const std::string& source,
                       const std::vector<std::string>& overrides = {});
// One `--set key=value` on an already parsed config (validate() afterwards).
void apply_override(RunConfig& cfg, const std::string& assignment);
// Range, choice and cross-key checks (model.mixer against the registered
// mixers, ...). parse_config/load_config call it.
void validate(RunConfig& cfg);
// The resolved config as YAML (every key, defaults included); parse_config
// of it gives the same config.
std::string dump_config(const RunConfig& cfg);

// Every key's value as YAML text ("model.d_model" -> "128"; task options as
// "task.<option>"), for comparing configs.
std::map<std::string, std::string> config_values(const RunConfig& cfg);

// "" when every data.path exists; else one line for the first that does
// not: where it was set, that a relative path resolves against the current
// directory (named), and the command that makes it (`make data`, the tools/
// script of that data set, `mambakit prepare`).
// *unreadable (if given) is set when the problem is a path that exists but
// is no file or folder (a device such as /dev/zero): refuse that before the
// task reads it; report a missing path once the task has failed on it, so
// that config mistakes (an unknown task) come first.
std::string missing_data_problem(const RunConfig& cfg, bool* unreadable = nullptr);

// The schema, for help text and docs.
struct KeyInfo {
  std::string key, type, default_value, doc;
  bool required = false;
};
std::vector<KeyInfo> config_keys();
std::string config_help();

// The strings of v with sep between them (lists in messages, mixer names).
std::string join(const std::vector<std::string>& v, const std::string& sep = ", ");

}  // namespace mk::exp
