// Regression tests for defects in the experiment readers found while
// fuzzing them (fuzz/fuzz_yaml_config.cpp, fuzz/fuzz_trainer_state.cpp, or
// the review that wrote those harnesses; fuzz/README.md lists them all).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "mambakit/error.h"
#include "mambakit/experiments/config.h"
#include "mambakit/experiments/trainer_state.h"

using mk::exp::parse_config;
using mk::exp::parse_trainer_state;

namespace {

::testing::AssertionResult rejects(const std::function<void()>& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const mk::Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts)
      if (msg.find(p) == std::string::npos) return ::testing::AssertionFailure() << "lacks '" << p << "': " << msg;
    if (msg.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "spans lines: " << msg;
    if (msg.find("json.exception") != std::string::npos) return ::testing::AssertionFailure() << "raw: " << msg;
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "not an mk::Error: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception";
}

const std::string kConfig =
    "model: {d_model: 16, n_layer: 1}\n"
    "data: {seq_len: 16}\n"
    "train: {steps: 1, batch_size: 1, lr: 1.0e-3}\n"
    "output: {dir: runs/x}\n"
    "task:\n"
    "  name: selective_copying\n";

const std::string kState = R"({"step": 7, "opt_step": 7, "sampler_state": "1 2"})";

}  // namespace

// YAML aliases refer to nodes instead of copying them: nine lines of
// aliases describe 10^9 values ("billion laughs"), which the task options'
// copy into JSON expanded until memory ran out; an alias inside its own
// anchor is a cycle, which recursed until the stack overflowed.
TEST(FuzzFindings, YamlAliasesCannotExpandWithoutBound) {
  std::string bomb = kConfig + "  laughs:\n    a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    const char prev = char(c - 1);
    bomb += std::string("    ") + c + ": &" + c + " [";
    for (int k = 0; k < 10; ++k) bomb += std::string(k ? ", " : "") + "*" + prev;
    bomb += "]\n";
  }
  EXPECT_TRUE(rejects([&] { parse_config(bomb, "bomb.yaml"); }, {"bomb.yaml:7", "task.laughs", "value too large"}));
  EXPECT_TRUE(rejects([&] { parse_config(kConfig + "  cycle: &c [*c]\n", "cycle.yaml"); },
                      {"cycle.yaml:7", "task.cycle", "nested deeper"}));
  // Plain nesting and a few aliases are copied as before.
  const mk::exp::RunConfig c = parse_config(kConfig + "  opts: &o [1, {a: [2]}]\n  more: [*o, *o]\n", "ok.yaml");
  EXPECT_EQ(c.task_options.at("more").dump(), R"([[1,{"a":[2]}],[1,{"a":[2]}]])");
}

// trainer_state.json fields were read with nlohmann's conversions: a
// string where a number belongs gave raw library text, a float step was
// truncated, and a NaN metric (written as null) failed on resume.
TEST(FuzzFindings, TrainerStateFieldsAreChecked) {
  const mk::exp::TrainerState s = parse_trainer_state(kState, "ts.json");
  EXPECT_EQ(s.step, 7);
  EXPECT_EQ(s.sampler_state, "1 2");
  EXPECT_TRUE(s.best.is_null());
  EXPECT_TRUE(rejects([&] { parse_trainer_state(R"({"step": "7", "opt_step": 7, "sampler_state": ""})", "ts.json"); },
                      {"ts.json", "\"step\"", "expected an integer"}));
  EXPECT_TRUE(rejects([&] { parse_trainer_state(R"({"step": 7.5, "opt_step": 7, "sampler_state": ""})", "ts.json"); },
                      {"ts.json", "\"step\""}));
  EXPECT_TRUE(rejects([&] { parse_trainer_state(R"({"step": -1, "opt_step": 7, "sampler_state": ""})", "ts.json"); },
                      {"ts.json", "\"step\"", "out of range"}));
  EXPECT_TRUE(rejects([&] { parse_trainer_state(R"({"step": 1, "opt_step": 7})", "ts.json"); },
                      {"ts.json", "missing field \"sampler_state\""}));
  EXPECT_TRUE(rejects([&] { parse_trainer_state(R"({"step": 1, "opt_step": 1, "sampler_state": "", "last_eval": []})", "ts.json"); },
                      {"ts.json", "\"last_eval\"", "expected an object"}));
  EXPECT_TRUE(rejects([&] { parse_trainer_state(R"({"step": 1, "opt_step": 1, "sampler_state": "", "best": {"step": 1}})", "ts.json"); },
                      {"ts.json", "\"best\"", "missing \"value\""}));
  EXPECT_TRUE(rejects([&] { parse_trainer_state("{\"step\": 1e999}", "ts.json"); }, {"ts.json", "invalid JSON"}));
  const mk::exp::TrainerState n = parse_trainer_state(
      R"({"step": 1, "opt_step": 1, "sampler_state": "", "last_eval": {"val_loss": null}, "best": {"step": 1, "value": 2.5, "metrics": {"val_bpb": null}}})",
      "ts.json");
  EXPECT_TRUE(std::isnan(n.last_eval["val_loss"].get<double>()));
  EXPECT_TRUE(std::isnan(n.best["metrics"]["val_bpb"].get<double>()));
  EXPECT_EQ(n.best["value"].get<double>(), 2.5);
}
