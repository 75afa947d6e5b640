// `mambakit sweep`: the spec (axes, zip groups, runs, budget) and its
// errors, planning (names, steps from the budget), the tiny grid end to end
// through the CLI (run directories, tables, train_flops in summary.json, a
// second invocation that skips every finished run, --set and a changed
// config), interrupting a sweep (SIGINT, and SIGKILL mid-run) and running
// it again to resume, each run holding its directory's lock (a locked one
// is left alone), and the scaling configs (experiments/scaling_text*.yaml)
// parsed and planned. Tiny models: each CLI test takes a second or two.
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "mambakit/experiments/config.h"
#include "mambakit/experiments/run_dir.h"
#include "mambakit/experiments/sweep.h"
#include "mambakit/models/flops.h"
#include "run_util.h"

namespace mk::exp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::read_file;
using test::run_cli;
using test::TempDir;

// A base config (tiny Mamba on a small corpus) and a spec around it.
struct Fixture {
  TempDir d;
  std::string corpus, base;
  explicit Fixture(const std::string& name) : d(name) {
    corpus = test::write_corpus(d);
    base = test::write_config(d, corpus, d / "base_out", 6, "base.yaml");
    // One thread per run: tiny models on a busy machine are fastest so.
    std::string text = read_file(base);
    text.replace(text.find("  seed: 3\n"), 10, "  seed: 3\n  threads: 1\n");
    std::ofstream(base) << text;
  }
  std::string spec(const std::string& body, const std::string& name = "spec.yaml") const {
    const std::string p = d / name;
    std::ofstream(p) << "base: " << base << "\nout: " << (d / "out") << "\n" << body;
    return p;
  }
};

std::vector<std::map<std::string, std::string>> read_csv(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::vector<std::string> head;
  std::vector<std::map<std::string, std::string>> rows;
  auto split = [](const std::string& s) {
    std::vector<std::string> v;
    std::stringstream ss(s);
    std::string x;
    while (std::getline(ss, x, ',')) v.push_back(x);
    if (!s.empty() && s.back() == ',') v.push_back("");
    return v;
  };
  if (std::getline(f, line)) head = split(line);
  while (std::getline(f, line)) {
    const auto v = split(line);
    std::map<std::string, std::string> r;
    for (size_t i = 0; i < head.size() && i < v.size(); ++i) r[head[i]] = v[i];
    rows.push_back(r);
  }
  return rows;
}

std::string expect_config_error(const std::string& spec_text, const Fixture& f,
                                const std::vector<std::string>& sets = {}) {
  try {
    plan_sweep(load_sweep_spec(f.spec(spec_text), sets));
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << spec_text;
  return "";
}

TEST(Sweep, GridOfAxesZipAndRunsWithStepsFromTheBudget) {
  Fixture f("sweep_plan");
  const SweepSpec s = load_sweep_spec(f.spec(
      "metric: val_bpb\n"
      "budget: {tokens_per_param: 3, min_steps: 4, warmup_fraction: 0.1}\n"
      "axes:\n"
      "  model.mixer: {mamba: mamba, transformer: [attention, mlp]}\n"
      "  train.lr: [1.0e-3, 3.0e-3]\n"
      "zip:\n"
      "  size:\n"
      "    labels: [xs, s]\n"
      "    model.d_model: [16, 24]\n"
      "    model.n_layer: [2, 4]\n"),
      {"train.seed=7"});
  const auto runs = plan_sweep(s);
  ASSERT_EQ(runs.size(), 8u);
  EXPECT_EQ(runs[0].name, "mamba_lr1.0e-3_xs");
  EXPECT_EQ(runs[3].name, "mamba_lr3.0e-3_s");
  EXPECT_EQ(runs[7].name, "transformer_lr3.0e-3_s");
  std::set<std::string> names;
  for (const auto& r : runs) {
    names.insert(r.name);
    EXPECT_EQ(r.dir, f.d / "out" + ("/" + r.name));
    EXPECT_EQ(r.config.output.dir, r.dir);
    EXPECT_EQ(r.config.train.seed, 7);  // --set reaches every run
    // steps = max(min_steps, ceil(3 params / (2 x 32 tokens)))
    const double tokens_per_step = 2 * 32;
    EXPECT_EQ(r.steps, std::max(4L, long(std::ceil(3.0 * double(r.params) / tokens_per_step)))) << r.name;
    EXPECT_EQ(r.config.train.steps, r.steps);
    EXPECT_EQ(r.config.train.warmup, std::lround(0.1 * double(r.steps)));
    // parameters and FLOPs from the model the run builds
    ModelConfig m = r.config.model;
    m.vocab_size = 256;
    EXPECT_EQ(r.params, count_params(m));
    EXPECT_DOUBLE_EQ(r.flops_per_token, count_flops(m, 32, 2).per_token());
    EXPECT_DOUBLE_EQ(r.train_flops, r.flops_per_token * r.tokens);
  }
  EXPECT_EQ(names.size(), 8u);
  EXPECT_EQ(runs[4].arch, "transformer");
  EXPECT_EQ(runs[4].mixer, "attention+mlp");
  EXPECT_EQ(runs[4].config.model.mixers, (std::vector<std::string>{"attention", "mlp"}));
  EXPECT_EQ(runs[1].config.model.d_model, 24);
  EXPECT_EQ(runs[1].config.model.n_layer, 4);
  EXPECT_DOUBLE_EQ(runs[2].config.train.lr, 3e-3);

  // An explicit runs list is one more factor; labels come from the values.
  const auto r2 = plan_sweep(load_sweep_spec(f.spec(
      "runs:\n"
      "  - {name: wide, model.d_model: 32}\n"
      "  - {model.d_model: 8, model.mixer: [mamba, attention]}\n")));
  ASSERT_EQ(r2.size(), 2u);
  EXPECT_EQ(r2[0].name, "wide");
  EXPECT_EQ(r2[1].name, "d_model8-mamba+attention");
  EXPECT_EQ(r2[1].steps, 6);  // no budget: the base's train.steps
}

TEST(Sweep, MistakesAreReportedBeforeAnyRunWithFileLineAndKey) {
  Fixture f("sweep_errors");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"axis:\n  model.d_model: [16]\n", "spec.yaml:3: unknown key 'axis' in a sweep spec (did you mean 'axes'?)"},
      {"axes:\n  model.dmodel: [16, 24]\n", "spec.yaml:4: unknown config key 'model.dmodel' (did you mean 'model.d_model'?)"},
      {"zip:\n  size:\n    model.d_model: [16, 24, 32]\n    model.n_layer: [2, 4]\n",
       "model.n_layer has 2 values but model.d_model has 3"},
      {"axes:\n  model.d_model: [16, 0]\n", "run 'd_model0'"},
      {"axes:\n  model.d_model: [16, 0]\n", "model.d_model must be > 0, got 0"},
      {"axes:\n  model.d_model: [16, '16']\n", "two runs are named 'd_model16'"},
      {"metric: val_bpc\n", "spec.yaml:3: metric 'val_bpc' is not reported by run 'run' (it reports val_loss, val_bpb"},
      {"metric: val_bpc\n", "did you mean 'val_bpb'?"},
      {"budget: {tokens_per_parm: 2}\n", "unknown key 'budget.tokens_per_parm' (did you mean 'budget.tokens_per_param'?)"},
      {"budget: {tokens_per_param: 2, tokens: 100}\n", "give tokens_per_param or tokens, not both"},
      {"budget: {tokens_per_param: -1}\n", "budget.tokens_per_param must be > 0"},
      {"axes:\n  output.dir: [a, b]\n", "output.dir can not vary"},
      {"axes:\n  model.mixer: [mamba, mambaa]\n", "unknown mixer 'mambaa'"},
      {"runs:\n  - {name: a}\n", "this run sets no config key"},
  };
  for (const auto& [text, want] : cases) {
    const std::string e = expect_config_error(text, f);
    EXPECT_NE(e.find(want), std::string::npos) << "got: " << e << "\nwanted: " << want;
  }
  // --set may not override what the grid varies, nor the budget's steps
  const std::string e1 = expect_config_error("axes:\n  train.lr: [1.0e-3]\n", f, {"train.lr=2e-3"});
  EXPECT_NE(e1.find("--set train.lr=2e-3: train.lr varies over the grid (" + f.d / "spec.yaml:4)"), std::string::npos)
      << e1;
  const std::string e2 = expect_config_error("budget: {tokens: 640}\n", f, {"train.steps=9"});
  EXPECT_NE(e2.find("train.steps comes from the budget"), std::string::npos) << e2;
  // a missing base
  const std::string p = f.d / "nobase.yaml";
  std::ofstream(p) << "out: x\naxes:\n  train.lr: [1.0e-3]\n";
  EXPECT_THROW(load_sweep_spec(p), ConfigError);
}

TEST(Sweep, FitPowerLawRecoversTheExponent) {
  std::vector<std::pair<double, double>> xy;
  for (double x : {1e9, 3e9, 1e10, 4e10}) xy.emplace_back(x, 7.5 * std::pow(x, -0.07));
  double a = 0, b = 0, r2 = 0;
  ASSERT_TRUE(fit_power_law(xy, &a, &b, &r2));
  EXPECT_NEAR(a, 7.5, 1e-9 * 7.5);
  EXPECT_NEAR(b, -0.07, 1e-12);
  EXPECT_NEAR(r2, 1.0, 1e-12);
  EXPECT_FALSE(fit_power_law({{1e9, 2.0}, {1e9, 1.5}}, &a, &b));  // one distinct x
}

// The 2 x 2 grid of the issue, very few steps: trains, tabulates, and a
// second invocation skips every finished run.
TEST(SweepCli, TinyGridTrainsTabulatesAndSkipsFinishedRuns) {
  Fixture f("sweep_cli");
  const std::string spec = f.spec(
      "description: tiny grid\n"
      "metric: val_bpb\n"
      "budget: {tokens: 640}\n"
      "axes:\n"
      "  model.mixer: {mamba: mamba, transformer: [attention, mlp]}\n"
      "zip:\n"
      "  size: {labels: [xs, s], model.d_model: [16, 24], model.n_layer: [2, 2]}\n"
      "anchors:\n"
      "  - {model: 'Mamba-130M (Pile)', params: 1.3e8, pile_ppl: 10.56}\n");
  const auto r = run_cli("sweep " + spec + " --set train.lr=4e-3");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("sweep: [1/4] mamba_xs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sweep: [4/4] transformer_s"), std::string::npos) << r.output;
  const std::string out = f.d / "out";
  const auto rows = read_csv(out + "/sweep.csv");
  ASSERT_EQ(rows.size(), 4u);
  for (const char* col : {"run", "arch", "status", "mixer", "d_model", "n_layer", "params", "steps", "tokens",
                          "train_flops", "wall_seconds", "val_bpb"})
    EXPECT_TRUE(rows[0].count(col)) << col;
  const std::vector<std::string> names = {"mamba_xs", "mamba_s", "transformer_xs", "transformer_s"};
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    EXPECT_EQ(row.at("run"), names[i]);
    EXPECT_EQ(row.at("status"), "finished");
    EXPECT_EQ(row.at("steps"), "10");  // 640 tokens of 2 x 32
    const std::string dir = out + "/" + names[i];
    const json s = json::parse(read_file(dir + "/summary.json"));
    EXPECT_TRUE(s["finished"].get<bool>());
    // train_flops: the formulas of the run's model over its tokens
    RunConfig cfg = load_config(dir + "/config.yaml");
    EXPECT_DOUBLE_EQ(cfg.train.lr, 4e-3);
    const double fpt = count_flops(cfg.model, 32, 2).per_token();
    EXPECT_DOUBLE_EQ(s["train_flops_per_token"].get<double>(), fpt);
    EXPECT_DOUBLE_EQ(s["train_flops"].get<double>(), fpt * 640);
    EXPECT_NEAR(std::stod(row.at("train_flops")), fpt * 640, 1e-3 * fpt * 640);
    EXPECT_EQ(std::stol(row.at("params")), s["parameters"].get<long>());
    EXPECT_NEAR(std::stod(row.at("val_bpb")), s["final"]["val_bpb"].get<double>(), 1e-5);
  }
  EXPECT_EQ(rows[2].at("mixer"), "attention+mlp");
  const std::string md = read_file(out + "/sweep.md");
  for (const char* want : {"# tiny grid", "| mamba_xs | mamba | finished |", "Power laws", "| transformer | 2 |",
                           "Published anchors", "| Mamba-130M (Pile) | 1.3e8 | 10.56 |"})
    EXPECT_NE(md.find(want), std::string::npos) << want << "\n" << md;
  const json sj = json::parse(read_file(out + "/sweep.json"));
  EXPECT_EQ(sj["fits"].size(), 2u);
  EXPECT_EQ(sj["runs"].size(), 4u);

  // Again: nothing is retrained.
  const std::string before = read_file(out + "/mamba_s/summary.json");
  const auto again = run_cli("sweep " + spec + " --set train.lr=4e-3");
  ASSERT_EQ(again.code, 0) << again.output;
  for (const auto& n : names)
    EXPECT_NE(again.output.find(n + " finished earlier"), std::string::npos) << again.output;
  EXPECT_EQ(again.output.find("train: task"), std::string::npos) << again.output;
  EXPECT_EQ(read_file(out + "/mamba_s/summary.json"), before);

  // A changed config no longer matches the runs there: refused up front.
  const auto changed = run_cli("sweep " + spec);
  EXPECT_EQ(changed.code, 2) << changed.output;
  EXPECT_NE(changed.output.find("holds a run with train.lr = 0.004, but the sweep now gives 0.005"),
            std::string::npos)
      << changed.output;
}

TEST(SweepCli, DryRunOnlyAndUsageErrors) {
  Fixture f("sweep_dry");
  const std::string spec = f.spec("budget: {tokens: 640}\naxes:\n  model.d_model: [16, 24]\n");
  const auto dry = run_cli("sweep " + spec + " --dry-run --time 0.2");
  ASSERT_EQ(dry.code, 0) << dry.output;
  EXPECT_NE(dry.output.find("estimated wall time"), std::string::npos) << dry.output;
  const auto rows = read_csv(f.d / "out/sweep.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("status"), "pending");
  EXPECT_EQ(rows[0].at("steps"), "10");
  EXPECT_FALSE(rows[0].at("est_seconds").empty());
  EXPECT_FALSE(fs::exists(f.d / "out/d_model16"));

  const auto only = run_cli("sweep " + spec + " --only d_model24");
  ASSERT_EQ(only.code, 0) << only.output;
  EXPECT_TRUE(fs::exists(f.d / "out/d_model24/summary.json"));
  EXPECT_FALSE(fs::exists(f.d / "out/d_model16"));
  EXPECT_EQ(read_csv(f.d / "out/sweep.csv")[0].at("status"), "pending");

  const auto bad = run_cli("sweep " + spec + " --only d_model23");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.output.find("--only d_model23: no run of that name"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("did you mean 'd_model24'?"), std::string::npos) << bad.output;
  EXPECT_EQ(run_cli("sweep " + spec + " --time 3").code, 2);
  EXPECT_EQ(run_cli("sweep").code, 2);
  const auto missing = run_cli("sweep " + f.d / "nope.yaml");
  EXPECT_EQ(missing.code, 1) << missing.output;

  // A run's summary.json torn mid-write: one line naming it, without
  // nlohmann's "[json.exception...]" tag.
  std::ofstream(f.d / "out/d_model24/summary.json") << "{\"finished\": tr";
  const auto torn = run_cli("sweep " + spec + " --only d_model24");
  EXPECT_EQ(torn.code, 1) << torn.output;
  EXPECT_NE(torn.output.find("d_model24/summary.json: not valid JSON: "), std::string::npos) << torn.output;
  EXPECT_EQ(torn.output.find("json.exception"), std::string::npos) << torn.output;
}

// Ctrl-C in the middle of the second run, then the same command: the first
// run is skipped, the second resumed from its checkpoint and finished.
TEST(SweepCli, InterruptedSweepResumesWhereItStopped) {
  Fixture f("sweep_sigint");
  const std::string spec = f.spec(
      "runs:\n"
      "  - {name: short, train.steps: 5}\n"
      "  - {name: long, train.steps: 1500}\n");
  const std::string out = f.d / "out";
  const pid_t pid = test::spawn_cli({"sweep", spec}, {}, f.d / "log1.txt");
  ASSERT_TRUE(test::wait_for([&] { return read_metrics(out + "/long/metrics.jsonl").size() >= 3; }))
      << read_file(f.d / "log1.txt");
  // The run being trained holds its directory's lock, as `train` does.
  EXPECT_TRUE(RunDirLock::held(out + "/long"));
  EXPECT_EQ(read_file(out + "/long/" + kLockFile), std::to_string(pid) + "\n");
  kill(pid, SIGINT);
  EXPECT_EQ(test::wait_child(pid), 130) << read_file(f.d / "log1.txt");
  const std::string log1 = read_file(f.d / "log1.txt");
  EXPECT_NE(log1.find("interrupted in run long"), std::string::npos) << log1;
  auto rows = read_csv(out + "/sweep.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("status"), "finished");
  EXPECT_EQ(rows[1].at("status"), "interrupted");
  const long stopped = json::parse(read_file(out + "/long/summary.json"))["steps"];
  ASSERT_LT(stopped, 1500);

  const auto r = run_cli("sweep " + spec);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("short finished earlier"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resuming at step " + std::to_string(stopped)), std::string::npos) << r.output;
  const json s = json::parse(read_file(out + "/long/summary.json"));
  EXPECT_EQ(s["steps"], 1500);
  EXPECT_TRUE(s["finished"].get<bool>());
  EXPECT_EQ(s["steady_steps"].get<long>() + 3, 1500 - stopped);  // this session trained only the rest
  EXPECT_DOUBLE_EQ(s["tokens"].get<double>(), 1500.0 * 64);
  rows = read_csv(out + "/sweep.csv");
  EXPECT_EQ(rows[1].at("status"), "finished");
}

// SIGKILL: the run resumes from its last checkpoint; a run directory killed
// before its first checkpoint starts afresh.
TEST(SweepCli, KilledRunResumesFromItsCheckpoint) {
  Fixture f("sweep_kill");
  const std::string spec = f.spec(
      "runs:\n"
      "  - {name: a, train.steps: 60, output.save_every: 5, output.keep_last: 2}\n"
      "  - {name: b, train.steps: 6}\n");
  const std::string out = f.d / "out";
  const pid_t pid = test::spawn_cli({"sweep", spec}, {}, f.d / "log.txt");
  ASSERT_TRUE(test::wait_for([&] { return fs::exists(out + "/a/checkpoints/step_10/trainer_state.json"); }))
      << read_file(f.d / "log.txt");
  kill(pid, SIGKILL);
  EXPECT_EQ(test::wait_child(pid), 128 + SIGKILL);
  EXPECT_FALSE(fs::exists(out + "/a/summary.json"));
  // b as a killed process may leave it: files, no checkpoint
  fs::create_directories(out + "/b");
  std::ofstream(out + "/b/metrics.jsonl") << "{\"step\": 1, \"type\": \"train\"}\n";
  fs::copy_file(out + "/a/config.yaml", out + "/b/config.yaml");

  const auto r = run_cli("sweep " + spec);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming at step"), std::string::npos) << r.output;
  EXPECT_EQ(json::parse(read_file(out + "/a/summary.json"))["steps"], 60);
  EXPECT_EQ(json::parse(read_file(out + "/b/summary.json"))["steps"], 6);
  EXPECT_EQ(read_metrics(out + "/b/metrics.jsonl").front()["step"], 1);
  EXPECT_EQ(read_csv(out + "/sweep.csv")[1].at("status"), "finished");
}

// A run directory another process is writing (it holds the lock) is not
// written twice: that run fails naming the holder's pid, the others train,
// and once the lock is released the same command trains it.
TEST(SweepCli, ARunDirectoryAnotherProcessWritesIsLeftAlone) {
  Fixture f("sweep_lock");
  const std::string spec = f.spec(
      "runs:\n"
      "  - {name: a, train.steps: 4}\n"
      "  - {name: b, train.steps: 4}\n");
  const std::string out = f.d / "out";
  {
    RunDirLock other(out + "/a");
    const auto r = run_cli("sweep " + spec);
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find("run a failed"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("(pid " + std::to_string(getpid()) + ")"), std::string::npos) << r.output;
    const auto rows = read_csv(out + "/sweep.csv");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].at("status"), "failed");
    EXPECT_EQ(rows[1].at("status"), "finished");
    EXPECT_FALSE(fs::exists(out + "/a/config.yaml"));
  }
  const auto r = run_cli("sweep " + spec);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("b finished earlier"), std::string::npos) << r.output;
  EXPECT_EQ(json::parse(read_file(out + "/a/summary.json"))["steps"], 4);
}

// jobs: 2 runs at a time, each its own process with its log; SIGINT to the
// sweep stops both with a checkpoint, and the same command resumes them.
TEST(SweepCli, ParallelJobsStopTogetherAndResume) {
  Fixture f("sweep_jobs");
  const std::string spec = f.spec(
      "jobs: 2\n"
      "runs:\n"
      "  - {name: a, train.steps: 1500}\n"
      "  - {name: b, train.steps: 1500, model.d_model: 24}\n"
      "  - {name: c, train.steps: 4}\n");
  const std::string out = f.d / "out";
  const pid_t pid = test::spawn_cli({"sweep", spec}, {}, f.d / "log1.txt");
  ASSERT_TRUE(test::wait_for([&] {
    return read_metrics(out + "/a/metrics.jsonl").size() >= 3 && read_metrics(out + "/b/metrics.jsonl").size() >= 3;
  })) << read_file(f.d / "log1.txt");
  // Each run's own process holds its directory's lock.
  for (const char* r : {"a", "b"}) {
    EXPECT_TRUE(RunDirLock::held(out + "/" + r)) << r;
    EXPECT_NE(read_file(out + "/" + r + "/" + kLockFile), std::to_string(pid) + "\n") << r;
  }
  kill(pid, SIGINT);
  EXPECT_EQ(test::wait_child(pid), 130) << read_file(f.d / "log1.txt");
  const std::string log1 = read_file(f.d / "log1.txt");
  EXPECT_NE(log1.find("stopping the running runs"), std::string::npos) << log1;
  EXPECT_EQ(log1.find("started c"), std::string::npos) << log1;  // nothing new starts
  for (const char* r : {"a", "b"}) {
    EXPECT_NE(read_file(out + "/logs/" + r + ".log").find("stopped by SIGINT"), std::string::npos) << r;
    EXPECT_FALSE(latest_checkpoint(out + "/" + r).empty()) << r;
  }
  auto rows = read_csv(out + "/sweep.csv");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].at("status"), "interrupted");
  EXPECT_EQ(rows[2].at("status"), "pending");

  const auto r = run_cli("sweep " + spec);
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* n : {"a", "b", "c"}) EXPECT_NE(r.output.find(std::string("finished (val_bpb")), std::string::npos) << n;
  EXPECT_NE(read_file(out + "/logs/a.log").find("resuming at step"), std::string::npos);
  rows = read_csv(out + "/sweep.csv");
  for (const auto& row : rows) EXPECT_EQ(row.at("status"), "finished") << row.at("run");
  EXPECT_EQ(rows[0].at("steps"), "1500");
  EXPECT_EQ(rows[2].at("steps"), "4");
}

// The scaling configs parse and plan (on a stand-in corpus: the real one is
// built by `make data`).
TEST(ScalingConfigs, TextSweepAndItsGpuConfigsPlan) {
  TempDir d("scaling_cfg");
  const std::string corpus = d / "corpus.txt";
  {
    std::ofstream f(corpus);
    for (int i = 0; i < 6000; ++i) f << "In the beginning was the word, line " << i << " of the stand-in corpus.\n";
  }
  const std::string src = MAMBAKIT_SOURCE_DIR;
  const auto cpu = plan_sweep(load_sweep_spec(src + "/experiments/scaling_text.yaml", {"data.path=" + corpus}));
  ASSERT_EQ(cpu.size(), 16u);
  std::map<std::string, int> archs;
  for (const auto& r : cpu) {
    ++archs[r.arch];
    EXPECT_GE(r.params, 80000u) << r.name;
    EXPECT_LE(r.params, 3500000u) << r.name;
    EXPECT_NEAR(r.tokens / double(r.params), 2.0, 0.05) << r.name;  // the budget: 2 tokens per parameter
    EXPECT_EQ(r.config.data.seq_len, 256);
  }
  EXPECT_EQ(archs, (std::map<std::string, int>{{"hybrid", 4}, {"mamba", 4}, {"s4d_gated", 4}, {"transformer", 4}}));
  EXPECT_EQ(cpu[0].name, "mamba_xs");
  EXPECT_EQ(cpu.back().name, "hybrid_l");
  EXPECT_EQ(cpu.back().mixer, "mamba+attention");

  const auto gpu = plan_sweep(load_sweep_spec(src + "/experiments/scaling_text_gpu.yaml",
                                              {"data.path=" + corpus, "data.tokenizer="}));
  ASSERT_EQ(gpu.size(), 16u);
  for (const auto& r : gpu) {
    EXPECT_GE(r.params, 100000000u) << r.name;
    EXPECT_LE(r.params, 1500000000u) << r.name;
    EXPECT_EQ(r.config.train.device, "cuda");
    EXPECT_EQ(r.config.data.seq_len, 2048);
    EXPECT_NEAR(r.tokens / double(r.params), 20.0, 0.1) << r.name;  // Chinchilla
  }
  EXPECT_EQ(gpu[0].name, "mamba_125m");
  EXPECT_NEAR(double(gpu[0].params), 130e6, 5e6);  // Mamba-130M's size
}

}  // namespace
}  // namespace mk::exp
