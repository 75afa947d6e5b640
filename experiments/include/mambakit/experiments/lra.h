// `mambakit lra`: trains a Long Range Arena task from its experiment config
// (experiments/lra_<task>[_small].yaml), scores the best checkpoint on the
// test split, and records the result in the run's summary.json under "lra";
// `mambakit lra report` prints the standard LRA table of such runs beside
// the published reference rows.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mambakit/experiments/config.h"

namespace mk::exp {

struct LraOptions {
  std::string task;                // listops, text, retrieval, image, pathfinder, pathx, or a variant (image_fmnist, ...)
  std::string data;                // data directory ("" : the config's)
  bool small = false;              // the _small config
  std::string config;              // explicit config file (overrides task/small)
  std::string configs_dir = "experiments";
  std::vector<std::string> sets;   // --set overrides
  bool resume = false;
  int threads = 0;
};

// The config file a task name and --small resolve to; ConfigError naming the
// tasks with configs in configs_dir when there is none.
std::string lra_config_path(const LraOptions& o);

// Trains (or resumes), evaluates the best checkpoint on the test split and
// merges {"lra": {...}} into summary.json. Returns that block; sets
// *interrupted to the signal number when training was interrupted (no test
// evaluation then).
nlohmann::json run_lra(const LraOptions& o, int* interrupted);

// Scores a finished run's checkpoint ("best" where it exists) on the test
// split and merges the "lra" block into its summary.json.
nlohmann::json lra_test_run(const std::string& run_dir, int batch = 0);

// One published LRA row: accuracies in percent, NaN for "fail" (Path-X).
struct LraReference {
  std::string model;
  double listops, text, retrieval, image, pathfinder, pathx;
  double avg;  // as published
};
const std::vector<LraReference>& lra_references();

// The table column of a task at a sequence length ("" for a non-LRA task).
// A Pathfinder longer than the published 32x32 (1024) is a Path-X: the
// published 128x128 (16384) or a small 64x64 (4096).
std::string lra_column(const std::string& task, int seq_len);

// The LRA table (ListOps, Text, Retrieval, Image, Pathfinder, Path-X, Avg)
// of the runs' "lra" blocks, labelled `label`, under the published rows, and
// a details line per run. Throws mk::Error for a run without an "lra" block.
std::string lra_report(const std::vector<std::string>& run_dirs, const std::string& label = "");

}  // namespace mk::exp
