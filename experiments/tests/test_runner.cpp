// The experiment runner end to end, through the CLI where a process boundary
// matters: resume gives bit-identical losses, a kill mid-checkpoint leaves
// the previous checkpoint loadable, SIGTERM saves and exits 143,
// metrics.jsonl and summary.json agree; and through the Trainer API:
// non-finite losses are skipped and counted, gradient accumulation equals a
// larger batch; `bench train --json` and summary.json's steady-state
// tokens/s.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <sstream>
#include <nlohmann/json.hpp>

#include "mambakit/blas_core.h"
#include "mambakit/cpu_isa.h"
#include "mambakit/error.h"
#include "mambakit/experiments/plot.h"
#include "mambakit/experiments/run_dir.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/io/checkpoint.h"
#include "run_util.h"

namespace mk::exp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::read_file;
using test::run_cli;
using test::TempDir;

// step -> train loss, from metrics.jsonl (log_every 1).
std::map<long, double> train_losses(const std::string& run) {
  std::map<long, double> out;
  for (const auto& r : read_metrics(run + "/metrics.jsonl"))
    if (r["type"] == "train") out[r["step"].get<long>()] = r["loss"].get<double>();
  return out;
}

TEST(Runner, ResumeGivesBitIdenticalLosses) {
  TempDir d("resume");
  const std::string corpus = test::write_corpus(d);
  const std::string cfg = test::write_config(d, corpus, d / "unused", 40);
  const std::string straight = d / "straight", pieces = d / "pieces";
  auto r = run_cli("train " + cfg + " --set output.dir=" + straight);
  ASSERT_EQ(r.code, 0) << r.output;
  // 20 steps (the schedule is still that of 40), then resume for the rest.
  r = run_cli("train " + cfg + " --set output.dir=" + pieces + " --until 20");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("paused at step 20"), std::string::npos) << r.output;
  EXPECT_EQ(json::parse(read_file(pieces + "/summary.json"))["steps"], 20);
  r = run_cli("train " + cfg + " --set output.dir=" + pieces + " --resume");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming at step 20"), std::string::npos) << r.output;

  const auto a = train_losses(straight), b = train_losses(pieces);
  ASSERT_EQ(a.size(), 40u);
  ASSERT_EQ(b.size(), 40u) << "the resumed run's metrics.jsonl holds each step once";
  for (const auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
  // The end states agree to the bit as well.
  EXPECT_EQ(read_file(straight + "/model.safetensors"), read_file(pieces + "/model.safetensors"));
  EXPECT_EQ(read_file(straight + "/optimizer.safetensors"), read_file(pieces + "/optimizer.safetensors"));
  const json sa = json::parse(read_file(straight + "/summary.json")),
             sb = json::parse(read_file(pieces + "/summary.json"));
  EXPECT_EQ(sa["final"], sb["final"]);
  EXPECT_EQ(sa["tokens"], sb["tokens"]);
}

TEST(Runner, ResumeRefusesAChangedModel) {
  TempDir d("resume_changed");
  const std::string cfg = test::write_config(d, test::write_corpus(d), d / "run", 4);
  ASSERT_EQ(run_cli("train " + cfg + " --until 2").code, 0);
  const auto r = run_cli("train " + cfg + " --resume --set model.d_model=32");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--set model.d_model=32: --resume: model.d_model is 32 here but 16"),
            std::string::npos) << r.output;
  // Raising train.steps is fine.
  EXPECT_EQ(run_cli("train " + cfg + " --resume --set train.steps=6").code, 0);
  EXPECT_EQ(json::parse(read_file(d / "run/summary.json"))["steps"], 6);
}

TEST(Runner, KillMidCheckpointLeavesThePreviousOneLoadable) {
  TempDir d("kill");
  const std::string run = d / "run";
  const std::string cfg = test::write_config(d, test::write_corpus(d), run, 100000);
  // Checkpoints every 5 steps; each save sleeps 300 ms between its files.
  const pid_t pid = test::spawn_cli({"train", cfg, "--set", "output.save_every=5", "--set", "output.keep_last=5"},
                                    {"MAMBAKIT_TEST_SAVE_DELAY_MS=300"}, d / "log.txt");
  const std::string ckpts = run + "/checkpoints";
  ASSERT_TRUE(test::wait_for([&] { return fs::exists(ckpts + "/step_5/trainer_state.json"); }))
      << read_file(d / "log.txt");
  // The save of step 10 has begun when its temporary directory appears.
  auto writing = [&] {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(ckpts, ec))
      if (e.path().filename().string().rfind(".step_10.tmp.", 0) == 0) return true;
    return false;
  };
  ASSERT_TRUE(test::wait_for(writing)) << read_file(d / "log.txt");
  kill(pid, SIGKILL);
  EXPECT_EQ(test::wait_child(pid), 128 + SIGKILL);

  EXPECT_FALSE(fs::exists(ckpts + "/step_10"));
  EXPECT_EQ(latest_checkpoint(run), ckpts + "/step_5");
  auto model = load_model(ckpts + "/step_5");
  EXPECT_GT(model->num_params(), 0u);
  EXPECT_EQ(json::parse(read_file(ckpts + "/step_5/trainer_state.json"))["step"], 5);
  // The top-level model is a complete one too (that of step 5).
  EXPECT_EQ(read_file(run + "/model.safetensors"), read_file(ckpts + "/step_5/model.safetensors"));
  // And the run continues from it; the debris of the killed save is cleared.
  const auto r = run_cli("train " + cfg + " --resume --set train.steps=8");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming at step 5"), std::string::npos) << r.output;
  for (const auto& e : fs::directory_iterator(ckpts))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  EXPECT_EQ(json::parse(read_file(run + "/summary.json"))["steps"], 8);
}

TEST(Runner, SigtermSavesACheckpointAndExits143) {
  TempDir d("sigterm");
  const std::string run = d / "run";
  const std::string cfg = test::write_config(d, test::write_corpus(d), run, 1000000);
  const pid_t pid = test::spawn_cli({"train", cfg}, {}, d / "log.txt");
  ASSERT_TRUE(test::wait_for([&] { return read_metrics(run + "/metrics.jsonl").size() >= 3; }))
      << read_file(d / "log.txt");
  kill(pid, SIGTERM);
  EXPECT_EQ(test::wait_child(pid), 128 + SIGTERM) << read_file(d / "log.txt");
  const json s = json::parse(read_file(run + "/summary.json"));
  EXPECT_EQ(s["interrupted"], "SIGTERM");
  EXPECT_EQ(s["finished"], false);
  const long step = s["steps"];
  EXPECT_GE(step, 3);
  EXPECT_EQ(latest_checkpoint(run), run + "/checkpoints/step_" + std::to_string(step));
  EXPECT_NE(read_file(d / "log.txt").find("stopped by SIGTERM"), std::string::npos);
  const auto r = run_cli("train " + cfg + " --resume --set train.steps=" + std::to_string(step + 2));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(json::parse(read_file(run + "/summary.json"))["steps"], step + 2);
}

TEST(Runner, MetricsSummaryAndRunDirectory) {
  TempDir d("metrics");
  const std::string run = d / "run";
  const std::string cfg = test::write_config(d, test::write_corpus(d), run, 12);
  const auto r = run_cli("train " + cfg +
                         " --set eval.every=5 --set output.log_every=2 --set output.save_every=4"
                         " --set output.keep_last=2 --set 'eval.metrics=[loss, bpb, accuracy]'"
                         " --set generate.tokens=20 --set 'generate.prompt=the '");
  ASSERT_EQ(r.code, 0) << r.output;

  std::vector<json> train, eval;
  for (const auto& rec : read_metrics(run + "/metrics.jsonl")) (rec["type"] == "train" ? train : eval).push_back(rec);
  ASSERT_EQ(train.size(), 6u);  // steps 2, 4, ..., 12
  for (const auto& t : train) {
    for (const char* k : {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_second", "elapsed_seconds"})
      EXPECT_TRUE(t.contains(k) && t[k].is_number()) << k << " in " << t.dump();
    EXPECT_EQ(t["step"].get<long>() % 2, 0);
  }
  ASSERT_EQ(eval.size(), 3u);  // steps 5, 10 and the end (12)
  EXPECT_EQ(eval.back()["step"], 12);
  for (const auto& e : eval) {
    EXPECT_EQ(e["split"], "val");
    for (const char* k : {"val_loss", "val_bpb", "val_accuracy"}) EXPECT_TRUE(e[k].is_number()) << e.dump();
    EXPECT_NEAR(e["val_bpb"].get<double>(), e["val_loss"].get<double>() / std::log(2.0), 1e-12);
  }

  const json s = json::parse(read_file(run + "/summary.json"));
  EXPECT_EQ(s["steps"], 12);
  EXPECT_GT(s["wall_seconds"].get<double>(), 0);
  EXPECT_GT(s["tokens_per_second"].get<double>(), 0);
  EXPECT_EQ(s["tokens"].get<double>(), 12.0 * 2 * 32);
  for (const char* k : {"val_loss", "val_bpb", "val_accuracy"}) EXPECT_EQ(s["final"][k], eval.back()[k]) << k;
  const json* best = &eval[0];
  for (const auto& e : eval)
    if (e["val_loss"].get<double>() < (*best)["val_loss"].get<double>()) best = &e;
  EXPECT_EQ(s["best"]["val_loss"], (*best)["val_loss"]);
  EXPECT_EQ(s["best_step"], (*best)["step"]);
  EXPECT_EQ(json::parse(read_file(run + "/best/best.json"))["step"], (*best)["step"]);

  for (const char* f : {"config.yaml", "config.json", "model.safetensors", "optimizer.safetensors",
                        "trainer_state.json", "best/model.safetensors", "best/config.json", "sample.txt"})
    EXPECT_TRUE(fs::exists(run + "/" + f)) << f;
  EXPECT_EQ(read_file(run + "/sample.txt").rfind("the ", 0), 0u);
  // Checkpoints at 4, 8, 12; the last two kept.
  std::vector<long> steps;
  for (const auto& [st, p] : list_checkpoints(run)) steps.push_back(st);
  EXPECT_EQ(steps, (std::vector<long>{8, 12}));
  if (!find_gnuplot().empty()) {
    EXPECT_GT(fs::file_size(run + "/loss.png"), 1000u);
    EXPECT_NE(read_file(run + "/loss.svg").find("<svg"), std::string::npos);
  }
  // The resolved config is a config: the same run again from it.
  const auto again = run_cli("train " + run + "/config.yaml --set output.dir=" + (d / "again"));
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(read_file(run + "/model.safetensors"), read_file(d / "again/model.safetensors"));

  // eval and info on the run.
  const auto ev = run_cli("eval " + run + " --metrics loss,bpb,ppl", "", true);
  ASSERT_EQ(ev.code, 0) << ev.output;
  const json e = json::parse(ev.output);
  EXPECT_EQ(e["val_loss"], s["final"]["val_loss"]);  // same model, same batches
  EXPECT_NEAR(e["val_ppl"].get<double>(), std::exp(e["val_loss"].get<double>()), 1e-9);
  EXPECT_EQ(e["step"], 12);
  const auto evb = run_cli("eval " + run + " --checkpoint best", "", true);
  ASSERT_EQ(evb.code, 0) << evb.output;
  EXPECT_EQ(json::parse(evb.output)["val_loss"], s["best"]["val_loss"]);
  const auto bad = run_cli("eval " + run + " --checkpoint step_3");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.output.find("have: latest, best, step_8, step_12"), std::string::npos) << bad.output;
  const auto info = run_cli("info " + run + " --json", "", true);
  ASSERT_EQ(info.code, 0) << info.output;
  const json in = json::parse(info.output);
  EXPECT_EQ(in["parameters"].get<size_t>(), load_model(run)->num_params());
  EXPECT_EQ(in["step"], 12);
  EXPECT_EQ(in["model"]["d_model"], 16);
  // generate takes its defaults from the run's generate section.
  const auto g = run_cli("generate " + run + " --tokens 5");
  ASSERT_EQ(g.code, 0) << g.output;
  EXPECT_EQ(g.output.rfind("the ", 0), 0u) << g.output;
}

TEST(Runner, PlotsAreOptionalAndOverlay) {
  TempDir d("plot");
  const std::string cfg = test::write_config(d, test::write_corpus(d), d / "a", 3);
  // No gnuplot: the run still succeeds, with a note and no plot.
  auto r = run_cli("train " + cfg, "MAMBAKIT_GNUPLOT=/nonexistent/gnuplot");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("no loss plot: gnuplot not found"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d / "a/loss.png"));
  r = run_cli("plot " + (d / "a"), "MAMBAKIT_GNUPLOT=/nonexistent/gnuplot");
  EXPECT_EQ(r.code, 1) << r.output;
  if (find_gnuplot().empty()) GTEST_SKIP() << "gnuplot not installed: overlay not drawn";
  ASSERT_EQ(run_cli("train " + cfg + " --set output.dir=" + (d / "b") + " --set train.lr=1e-3").code, 0);
  r = run_cli("plot " + (d / "a") + " " + (d / "b") + " --out " + (d / "both"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_GT(fs::file_size(d / "both.png"), 1000u);
  const std::string svg = read_file(d / "both.svg");
  EXPECT_NE(svg.find("a train"), std::string::npos);
  EXPECT_NE(svg.find("b train"), std::string::npos);
}

TEST(Runner, HelpAndExitCodes) {
  for (const char* cmd : {"--help", "train --help", "train --help-config", "train --help-flags", "eval --help",
                          "generate --help", "info --help", "plot --help"}) {
    const auto r = run_cli(cmd);
    EXPECT_EQ(r.code, 0) << cmd << ": " << r.output;
    EXPECT_NE(r.output.find("mambakit"), std::string::npos) << cmd;
  }
  EXPECT_NE(run_cli("--help").output.find("Examples"), std::string::npos);
  EXPECT_NE(run_cli("train --help").output.find("--set"), std::string::npos);
  EXPECT_EQ(run_cli("eval").code, 2);
  EXPECT_EQ(run_cli("traim x.yaml").code, 2);
  EXPECT_NE(run_cli("traim x.yaml").output.find("did you mean 'train'"), std::string::npos);
  EXPECT_EQ(run_cli("train /nonexistent/x.yaml").code, 1);
}

// --- through the API ---------------------------------------------------------------

RunConfig tiny_config(const TempDir& d, long steps) {
  RunConfig c = load_config(test::write_config(d, test::write_corpus(d), d / "run", steps));
  c.output.plot = false;
  return c;
}

TEST(Runner, NonFiniteStepsAreSkippedCountedAndStopTheRun) {
  TempDir d("nonfinite");
  RunConfig c = tiny_config(d, 50);
  c.train.max_nonfinite = 3;
  Trainer t(c);
  t.step();
  auto& ps = t.model().params();
  float* w = ps.param("backbone.norm_f.weight");
  const float saved = w[0];
  w[0] = std::nanf("");  // every logit becomes NaN
  const std::vector<float> before(ps.data(), ps.data() + ps.size());
  EXPECT_TRUE(std::isnan(t.step()));
  EXPECT_TRUE(std::isnan(t.step()));
  EXPECT_EQ(t.consecutive_nonfinite(), 2);
  EXPECT_EQ(t.steps_done(), 3);
  EXPECT_EQ(0, std::memcmp(before.data(), ps.data(), ps.size() * sizeof(float))) << "a skipped step changed weights";
  w[0] = saved;  // recovers: the count of failures in a row resets
  EXPECT_TRUE(std::isfinite(t.step()));
  EXPECT_EQ(t.consecutive_nonfinite(), 0);
  EXPECT_EQ(t.nonfinite_steps(), 2);

  w[0] = std::nanf("");
  try {
    t.run();
    FAIL() << "run() kept going on NaN losses";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("not finite for 3 steps in a row (steps 5-7)"), std::string::npos) << m;
    EXPECT_NE(m.find("train.lr"), std::string::npos) << m;
  }
  EXPECT_EQ(t.steps_done(), 7);
  const json s = json::parse(read_file(d / "run/summary.json"));
  EXPECT_EQ(s["nonfinite_steps"], 5);
  EXPECT_EQ(latest_checkpoint(d / "run"), d / "run/checkpoints/step_7");
}

TEST(Runner, GradientAccumulationEqualsALargerBatch) {
  TempDir d("accum");
  RunConfig big = tiny_config(d, 10);
  big.train.batch_size = 4;
  RunConfig acc = big;
  acc.train.batch_size = 2;
  acc.train.grad_accum = 2;
  Trainer a(big), b(acc);
  const double la = a.step(), lb = b.step();
  EXPECT_NEAR(la, lb, 1e-5);
  const auto& pa = a.model().params();
  const auto& pb = b.model().params();
  double max_diff = 0;
  for (size_t i = 0; i < pa.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(pa.data()[i] - pb.data()[i])));
  EXPECT_LT(max_diff, 1e-5);
}

TEST(Runner, SchedulesWarmUpAndDecay) {
  TempDir d("sched");
  RunConfig c = tiny_config(d, 100);
  c.train.warmup = 10;
  c.train.lr = 1e-2;
  c.train.min_lr = 1e-3;
  for (const char* s : {"cosine", "linear", "constant"}) {
    c.train.schedule = s;
    Trainer t(c);
    EXPECT_NEAR(t.lr_at(0), 1e-3, 1e-12) << s;  // warmup: lr * 1/10
    EXPECT_NEAR(t.lr_at(9), 1e-2, 1e-12) << s;
    if (std::string(s) == "constant") {
      EXPECT_NEAR(t.lr_at(99), 1e-2, 1e-12);
    } else {
      EXPECT_NEAR(t.lr_at(100), 1e-3, 1e-9) << s;
    }
    if (std::string(s) == "linear") {
      EXPECT_NEAR(t.lr_at(55), 1e-2 + (1e-3 - 1e-2) * 45.0 / 90.0, 1e-12);
    }
  }
  c.train.steps = 0;
  c.train.epochs = 2;  // 2 passes over the training bytes in steps of 2 x 32
  Trainer e(c);
  EXPECT_EQ(e.total_steps(), long(std::ceil(2 * e.task().train_tokens() / 64.0)));
}

// train.device: cuda trains on the GPU where there is one; elsewhere (no
// CUDA in the build, or no device) it is refused before any work, in one
// line that names the setting and the reason, and the CLI exits 1.
TEST(Runner, CudaDeviceIsAcceptedOrClearlyRefused) {
  TempDir d("device");
  RunConfig c = tiny_config(d, 1);
  c.train.device = "cuda";
  c.train.precision = "bf16";
  std::string why;
  if (cuda_backend_available(&why)) {
    EXPECT_TRUE(check_device(c).empty());
    return;
  }
  try {
    check_device(c);
    FAIL() << "train.device=cuda without a device must be refused";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("train.device"), std::string::npos) << msg;
    EXPECT_NE(msg.find(why), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// eval and generate refuse a bad or unusable --device in one line, before
// reading the run.
TEST(Runner, EvalAndGenerateRefuseABadDevice) {
  TempDir d("device_flag");
  for (const char* cmd : {"eval", "generate"}) {
    const auto r = test::run_cli(std::string(cmd) + " " + (d / "no_such_run") + " --device gpu");
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find("unknown device 'gpu'"), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  std::string why;
  if (cuda_backend_available(&why)) return;
  for (const char* cmd : {"eval", "generate"}) {
    const auto r = test::run_cli(std::string(cmd) + " " + (d / "no_such_run") + " --device cuda");
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find("device cuda"), std::string::npos) << "the device is checked first: " << r.output;
  }
}

TEST(Runner, CudaWithoutADeviceExitsOneWithOneLine) {
  std::string why;
  if (cuda_backend_available(&why)) GTEST_SKIP() << "a CUDA device is present: the refusal cannot be seen";
  TempDir d("device_cli");
  const std::string cfg = test::write_config(d, test::write_corpus(d), d / "run", 5);
  const auto r = test::run_cli("train " + cfg + " --set train.device=cuda");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("train.device"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_FALSE(fs::exists(d / "run/metrics.jsonl")) << "nothing may start";
}

// `bench train --json`: one JSON object on stdout with the shape asked for,
// positive steady-state tokens/s and peak resident memory.
TEST(BenchTrain, JsonHonoursTheShapeFlags) {
  const auto r = test::run_cli(
      "bench train --json --d-model 16 --n-layer 2 --d-state 4 --seq-len 24 --batch 3 "
      "--mixer mamba,attention --threads 1 --warmup 1 --steps 2",
      "", /*stdout_only=*/true);
  ASSERT_EQ(r.code, 0) << r.output;
  const json j = json::parse(r.output);
  for (const char* k : {"tokens_per_s", "peak_rss_bytes", "ms_per_step", "seconds", "params"})
    EXPECT_TRUE(j.contains(k) && j[k].is_number() && j[k].get<double>() > 0) << k << " in " << j.dump();
  EXPECT_EQ(j["d_model"], 16);
  EXPECT_EQ(j["n_layer"], 2);
  EXPECT_EQ(j["seq_len"], 24);
  EXPECT_EQ(j["batch"], 3);
  EXPECT_EQ(j["mixer"], "mamba,attention");
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["steps"], 2);
  EXPECT_EQ(j["warmup_steps"], 1);
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_NEAR(j["tokens_per_s"].get<double>(), 3.0 * 24 * 2 / j["seconds"].get<double>(), 1e-6 * j["tokens_per_s"].get<double>());
  // A larger model has more parameters: the flags reach the model.
  const auto r2 = test::run_cli("bench train --json --d-model 32 --n-layer 3 --seq-len 8 --batch 1 --steps 1 --warmup 0",
                                "", true);
  ASSERT_EQ(r2.code, 0) << r2.output;
  EXPECT_GT(json::parse(r2.output)["params"].get<double>(), j["params"].get<double>());
}

// The peak memory `bench train` reports is its own, not the high-water mark
// of the process that started it: tools/reference/bench_vs_transformers.py
// runs it from a Python process holding torch (2.7 GB), whose peak
// getrusage's ru_maxrss carries across fork and exec. Here the parent is
// this test with 512 MB touched, the child started by fork and exec.
TEST(BenchTrain, PeakMemoryIsTheBenchmarksOwnNotItsParents) {
  const size_t parent_bytes = size_t(512) << 20;
  std::vector<char> held(parent_bytes);
  for (size_t i = 0; i < held.size(); i += 4096) held[i] = char(i >> 12);
  TempDir d("bench_rss");
  const pid_t pid = test::spawn_cli({"bench", "train", "--json", "--d-model", "16", "--n-layer", "1",
                                     "--d-state", "4", "--seq-len", "16", "--batch", "2",
                                     "--threads", "1", "--warmup", "1", "--steps", "1"},
                                    {}, d / "log");
  ASSERT_EQ(test::wait_child(pid), 0) << read_file(d / "log");
  const std::string log = read_file(d / "log");
  const size_t brace = log.find('{');
  ASSERT_NE(brace, std::string::npos) << log;
  const double peak = json::parse(log.substr(brace))["peak_rss_bytes"].get<double>();
  EXPECT_GT(peak, 0) << log;
  EXPECT_LT(peak, double(parent_bytes) / 2) << "the parent's " << parent_bytes << " bytes counted: " << log;
  EXPECT_EQ(held[4096], char(1));
}

TEST(BenchTrain, BadFlagsAreOneLineErrors) {
  const auto bad_mixer = test::run_cli("bench train --mixer nosuch --d-model 16 --n-layer 1 --steps 1");
  EXPECT_EQ(bad_mixer.code, 1) << bad_mixer.output;
  EXPECT_NE(bad_mixer.output.find("nosuch"), std::string::npos) << bad_mixer.output;
  EXPECT_EQ(std::count(bad_mixer.output.begin(), bad_mixer.output.end(), '\n'), 1) << bad_mixer.output;
  const auto bad_shape = test::run_cli("bench train --batch 0");
  EXPECT_EQ(bad_shape.code, 2) << bad_shape.output;
}

// `bench train --compare-threads 1,2`: one JSON object with a run per count,
// each with its thread count and its ratio to the first.
TEST(BenchTrain, CompareThreadsReportsEachCountAndRatio) {
  const auto r = test::run_cli(
      "bench train --json --d-model 16 --n-layer 1 --d-state 4 --seq-len 16 --batch 2 "
      "--warmup 0 --steps 1 --compare-threads 1,2",
      "", /*stdout_only=*/true);
  ASSERT_EQ(r.code, 0) << r.output;
  const json j = json::parse(r.output);
  ASSERT_TRUE(j.contains("runs") && j["runs"].size() == 2) << j.dump();
  EXPECT_EQ(j["runs"][0]["threads"], 1);
  EXPECT_EQ(j["runs"][1]["threads"], 2);
  EXPECT_DOUBLE_EQ(j["runs"][0]["speedup_vs_first"].get<double>(), 1.0);
  const double want = j["runs"][1]["tokens_per_s"].get<double>() / j["runs"][0]["tokens_per_s"].get<double>();
  EXPECT_NEAR(j["runs"][1]["speedup_vs_first"].get<double>(), want, 1e-9 * want);
  for (const char* bad : {"1", "1,x", "1,0", "1,,2"}) {
    const auto e = test::run_cli(std::string("bench train --steps 1 --compare-threads ") + bad);
    EXPECT_EQ(e.code, 2) << bad << ": " << e.output;
    EXPECT_NE(e.output.find("--compare-threads"), std::string::npos) << e.output;
  }
}

// `bench scan --isa all`: one JSON object per ISA the CPU runs, each naming
// its ISA, with the plain-loop baseline timed where the CPU has AVX2.
TEST(BenchScan, EveryIsaInOneRun) {
  const auto r = test::run_cli(
      "bench scan --json --isa all --no-naive --batch 1 --d-inner 24 --d-state 4 --len 40 "
      "--repeats 1 --threads 1",
      "", /*stdout_only=*/true);
  ASSERT_EQ(r.code, 0) << r.output;
  std::istringstream lines(r.output);
  std::vector<std::string> isas;
  for (std::string line; std::getline(lines, line);) {
    const json j = json::parse(line);
    isas.push_back(j["isa"].get<std::string>());
    EXPECT_GT(j["fused_fwd_ms"].get<double>(), 0) << line;
    EXPECT_FALSE(j["config"]["naive"].get<bool>()) << line;
    if (isas.back() != "scalar") {
      EXPECT_GT(j["baseline_fwd_ms"].get<double>(), 0) << line;
    }
  }
  std::vector<std::string> want;
  for (const mk::Isa i : mk::supported_isas()) want.push_back(mk::isa_name(i));
  EXPECT_EQ(isas, want);
  const auto bad = test::run_cli("bench scan --isa sse9 --no-naive");
  EXPECT_NE(bad.code, 0) << bad.output;
  EXPECT_NE(bad.output.find("--isa sse9: unknown"), std::string::npos) << bad.output;
  EXPECT_EQ(bad.output.find("MAMBAKIT_ISA"), std::string::npos) << bad.output;
  const auto list = test::run_cli("bench scan --isa avx2,avx512 --no-naive");
  EXPECT_NE(list.code, 0) << list.output;
  EXPECT_NE(list.output.find("--isa avx2,avx512: unknown"), std::string::npos) << list.output;
}

// `bench scan --stagger`: the arrays placed at chosen offsets modulo 4 KiB
// give the naive scan's output (checked inside the bench against the fused
// one), and a stagger that is no such offset is refused before any work.
TEST(BenchScan, StaggeredArraysGiveTheSameScan) {
  const auto r = test::run_cli(
      "bench scan --json --stagger 160 --batch 2 --d-inner 24 --d-state 4 --len 40 --repeats 1 "
      "--threads 1",
      "", /*stdout_only=*/true);
  ASSERT_EQ(r.code, 0) << r.output;
  const json j = json::parse(r.output);
  EXPECT_EQ(j["config"]["stagger_bytes"].get<int>(), 160);
  EXPECT_LT(j["max_rel_diff"].get<double>(), 1e-4) << r.output;
  for (const char* bad : {"3", "4096", "-2"}) {
    const auto e = test::run_cli(std::string("bench scan --no-naive --stagger ") + bad);
    EXPECT_NE(e.code, 0) << bad << ": " << e.output;
    EXPECT_NE(e.output.find("stagger"), std::string::npos) << bad << ": " << e.output;
  }
}

// summary.json: steady-state training tokens/s (training steps only, after
// warm-up) next to tokens over wall time (evaluation, checkpoints and
// generation included).
TEST(Summary, SteadyStateTokensPerSecond) {
  TempDir d("steady");
  const std::string run = d / "run";
  const std::string cfg = test::write_config(d, test::write_corpus(d), run, 12);
  const auto r = run_cli("train " + cfg + " --set eval.every=4 --set output.save_every=4 --set generate.tokens=20");
  ASSERT_EQ(r.code, 0) << r.output;
  const json s = json::parse(read_file(run + "/summary.json"));
  for (const char* k : {"steady_tokens_per_second", "train_seconds", "wall_seconds", "tokens_per_second"})
    ASSERT_TRUE(s.contains(k) && s[k].is_number()) << k << " in " << s.dump();
  EXPECT_EQ(s["steady_steps"], 12 - 3);  // the first 3 steps are warm-up
  // What the throughput was measured with.
  EXPECT_EQ(s.value("cpu_isa", ""), mk::isa_name(mk::active_isa())) << s.dump();
  // (The CLI may have restarted with another OpenBLAS kernel set than this
  // test process runs, blas_core.h: only its presence is compared.)
  ASSERT_TRUE(s.contains("blas_core") && s["blas_core"].is_string()) << s.dump();
  EXPECT_EQ(s["blas_core"].get<std::string>().empty(), mk::blas_core_name().empty()) << s.dump();
  const double steady = s["steady_tokens_per_second"].get<double>();
  EXPECT_GT(steady, 0);
  EXPECT_GT(s["train_seconds"].get<double>(), 0);
  EXPECT_LT(s["train_seconds"].get<double>(), s["wall_seconds"].get<double>());
  // (No comparison of the two rates: that would be a timing assertion, and
  // with a model this small a warm-up step can be as fast as a steady one.)
}

}  // namespace
}  // namespace mk::exp
