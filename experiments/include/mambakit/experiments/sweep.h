// `mambakit sweep SPEC.yaml`: a grid of training runs from one base config,
// one run directory each (OUT/<name>), resumable, with a summary table
// (OUT/sweep.csv, OUT/sweep.md, OUT/sweep.json) and a log-log plot of the
// held-out metric against training FLOPs with a fitted power law per
// architecture (OUT/sweep.png, .svg).
//
// The spec (experiments/scaling_text.yaml is one):
//   description: free text
//   base: CONFIG.yaml            the config every run starts from: a path relative to
//                                the spec's folder (paths inside the config stay relative
//                                to where mambakit runs), or an inline mapping holding
//                                the config itself
//   out: runs/NAME               where the runs go (default: the base's output.dir)
//   metric: val_bpb              the summary.json "final" value the table reports
//   budget:                      optional: train.steps per run from its size
//     tokens_per_param: 20       steps = ceil(tokens_per_param * params / tokens per step)
//     tokens: 1.0e6              ... or a fixed number of training tokens per run
//     min_steps: 50              at least this many steps
//     warmup_fraction: 0.1       train.warmup = round(fraction * steps)
//   axes:                        one factor per key: the grid is their product
//     model.mixer:               a mapping: label -> value (the label names the run) ...
//       mamba: mamba
//       transformer: [attention, mlp]
//     train.lr: [1.0e-3, 3.0e-3] ... or a list (labels made from the values)
//   zip:                         groups of keys that take their i-th values together
//     size:
//       labels: [xs, s, m, l]    optional
//       model.d_model: [64, 96, 128, 192]
//       model.n_layer: [2, 4, 4, 6]
//   runs:                        explicit points, one more factor of the product
//     - {name: wide, model.d_model: 256, model.n_layer: 2}
//   anchors:                     published reference rows printed in sweep.md
//     - {model: "Mamba-130M", params: 1.3e8, pile_ppl: 10.56}
//   jobs: 2                      runs trained at the same time (default 1), each in a
//                                `mambakit sweep --only NAME` process of its own; with
//                                train.threads: 1 two jobs use two cores without the
//                                threads of one run waiting on each other

// A run's name joins the labels of its values with '_' (e.g. mamba_xs). Every
// run's config is parsed and checked (keys, values, the metric, the run
// names, any run directory already there) before the first run starts.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "mambakit/experiments/config.h"

namespace mk::exp {

// One value of a grid factor: the config keys it sets (key, value as YAML
// text) and its label in run names.
struct SweepValue {
  std::string label;
  std::vector<std::pair<std::string, std::string>> sets;
  std::string where;  // spec file:line
};

// A factor of the grid: an axis (one key), a zip group, or the runs list.
struct SweepFactor {
  std::string name;
  std::vector<SweepValue> values;
};

struct SweepBudget {
  double tokens_per_param = 0;
  double tokens = 0;
  long min_steps = 1;
  double warmup_fraction = -1;  // < 0: the base's train.warmup
  bool active() const { return tokens_per_param > 0 || tokens > 0; }
};

struct SweepSpec {
  std::string source;  // the spec file
  std::string description;
  std::string base_text, base_source;
  std::string out;
  std::string metric = "val_bpb";
  int jobs = 1;  // runs trained at the same time, each its own process
  SweepBudget budget;
  std::vector<SweepFactor> factors;
  // Published rows for sweep.md: (column, text) pairs in the spec's order.
  std::vector<std::vector<std::pair<std::string, std::string>>> anchors;
  std::vector<std::string> sets;            // --set, applied to every run after the grid's keys
  std::map<std::string, std::string> where;  // spec key -> "file:line"
  std::string where_of(const std::string& key) const;
};

// One grid point, planned.
struct SweepRun {
  std::string name, dir;
  std::string arch;    // the label of the value that set model.mixer, else the mixer pattern
  std::string mixer;   // the pattern, e.g. "attention+mlp"
  std::string where;   // the spec places of its values
  std::vector<std::string> overrides;                            // key=value, in order
  std::vector<std::pair<std::string, std::string>> grid_values;  // the grid's keys and values
  RunConfig config;    // resolved; train.steps from the budget
  size_t params = 0;
  double tokens_per_step = 0, flops_per_token = 0;
  long steps = 0;
  double tokens = 0, train_flops = 0;  // planned
};

// Reads a spec; --set values (`key=value`) apply to every run. Errors:
// ConfigError naming the file, the line and the key (with "did you mean").
SweepSpec parse_sweep_spec(const std::string& yaml, const std::string& source,
                           const std::vector<std::string>& sets = {});
SweepSpec load_sweep_spec(const std::string& path, const std::vector<std::string>& sets = {});

// The runs of the grid in order, every config parsed and validated, the
// task built once per distinct task and data to size the model, steps from
// the budget. ConfigError for any mistake (no run has started).
std::vector<SweepRun> plan_sweep(const SweepSpec& spec);

struct SweepOptions {
  bool dry_run = false;
  std::vector<std::string> only;  // run names; empty: all
  double time_seconds = 0;        // > 0 with dry_run: time each run's training step this long
  int jobs = 0;                   // > 0: instead of the spec's jobs
  // For jobs > 1: how to start a run's own process (the spec file, the
  // --set and --out given), and whether this is such a process (trains its
  // one --only run, writes no tables).
  std::string spec_path;
  std::vector<std::string> sets;
  std::string out_flag;
  bool child = false;
};

// Plans, checks the run directories already there, then trains each run that
// is not finished (resuming interrupted ones), rewriting the table after
// each. Returns the exit code: 0, 1 when a run failed (the others still
// ran), 128 + signal when interrupted (rerun the same command to go on).
int run_sweep(const SweepSpec& spec, const SweepOptions& o);

// `mambakit sweep SPEC.yaml [--set K=V ...] [--dry-run [--time S]] [--only NAME ...] [--out DIR] [--jobs N]`.
int cmd_sweep(const std::vector<std::string>& args);

// Least-squares fit of log y = log a + b log x over points with x, y > 0
// (y = a x^b). False with fewer than two distinct x.
bool fit_power_law(const std::vector<std::pair<double, double>>& xy, double* a, double* b, double* r2 = nullptr);

}  // namespace mk::exp
