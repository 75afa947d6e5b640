// trainer_state.json: the training position a checkpoint resumes from
// (written by Trainer::save, read by Trainer::resume).
//   {"format": 1, "step": N, "opt_step": N, "total_steps": N,
//    "sampler_state": "<the task's sampler state>", "nonfinite_run": N,
//    "nonfinite_total": N, "tokens": X, "wall_seconds": X,
//    "best": null | {"step": N, "value": X, "metrics": {...}},
//    "last_eval": {"<split>_<metric>": X, ...}, "last_eval_step": N}
// A NaN is written as null (JSON has no NaN) and read back as NaN.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace mk::exp {

struct TrainerState {
  long step = 0, opt_step = 0;
  std::string sampler_state;
  int nonfinite_run = 0;
  long nonfinite_total = 0;
  double tokens = 0, wall_seconds = 0;
  nlohmann::json best = nullptr;                     // null or {"step", "value", "metrics"}
  nlohmann::json last_eval = nlohmann::json::object();  // metric -> number
  long last_eval_step = -1;
};

// Throws mk::Error "<path>: <field>: <reason>" for a missing file, invalid
// JSON, a missing required field (step, opt_step, sampler_state), a field of
// the wrong type or out of range.
TrainerState read_trainer_state(const std::string& path);
TrainerState parse_trainer_state(const std::string& text, const std::string& path);

}  // namespace mk::exp
