// Run directories and where things are written, through the CLI: one writer
// per run directory (an flock on RUN/.lock; readers take none), an overwrite
// that replaces the old run only once the new one has a checkpoint (a
// tokenizer run's tokenizer files included), starts
// that failed before their first checkpoint started again, outputs that
// would replace a run's or model's files refused, shard manifests that point
// outside their folder refused, thread counts range-checked, a second signal
// that ends training at once and a hung gnuplot that does not hang it.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "mambakit/datasets/shards.h"
#include "mambakit/error.h"
#include "mambakit/experiments/run_dir.h"
#include "run_util.h"

namespace mk::exp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::read_file;
using test::run_cli;
using test::TempDir;

const std::string kNoPlot = " --set output.plot=false";

size_t lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

// A finished tiny run in d/run (4 steps, checkpoints at 2 and 4).
struct FinishedRun {
  TempDir d;
  std::string corpus, cfg, run;
  explicit FinishedRun(const std::string& name) : d(name) {
    corpus = test::write_corpus(d);
    run = d / "run";
    cfg = test::write_config(d, corpus, run, 4);
    const auto r = run_cli("train " + cfg + " --set output.save_every=2" + kNoPlot);
    EXPECT_EQ(r.code, 0) << r.output;
  }
};

// --- threads ------------------------------------------------------------------------

// Thread counts below 1 or above what the machine can use are refused
// before any work (100000 crashed libgomp); OMP_NUM_THREADS, the user's
// environment, is clamped with a note instead.
TEST(Threads, CountsAreRangeChecked) {
  FinishedRun f("threads");
  const std::string tiny = " --d-model 16 --n-layer 1 --d-state 4 --seq-len 8 --batch 1 --steps 1 --warmup 0";
  struct Case {
    std::string cmd, needle;
  } cases[] = {
      {"train " + f.cfg + " --set output.dir=" + (f.d / "t1") + " --set train.threads=100000", "train.threads 100000"},
      {"train " + f.cfg + " --set output.dir=" + (f.d / "t2") + " --threads 100000", "--threads 100000"},
      {"train " + f.cfg + " --set output.dir=" + (f.d / "t3") + " --threads 0", "at least 1"},
      {"train " + f.cfg + " --set output.dir=" + (f.d / "t4") + " --threads -4", "at least 1"},
      {"train --data " + f.corpus + " --out " + (f.d / "t5") + " --threads 100000", "--threads 100000"},
      {"eval " + f.run + " --threads 100000", "--threads 100000"},
      {"generate " + f.run + " --threads 100000", "--threads 100000"},
      {"lra listops --small --threads 100000", "--threads 100000"},
      {"bench train --threads 100000" + tiny, "--threads 100000"},
      {"bench train --compare-threads 1,100000" + tiny, "--compare-threads 100000"},
      {"bench mixers --threads 100000", "--threads 100000"},
  };
  for (const auto& c : cases) {
    const auto r = run_cli(c.cmd);
    EXPECT_EQ(r.code, 2) << c.cmd << ": " << r.output;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.cmd << ": " << r.output;
    EXPECT_EQ(lines(r.output), 1u) << c.cmd << ": " << r.output;
  }
  for (const char* d : {"t1", "t2", "t3", "t4", "t5"}) EXPECT_FALSE(fs::exists(f.d / d)) << d;
  const auto r = run_cli("bench train --json" + tiny, "OMP_NUM_THREADS=100000");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("note: OMP_NUM_THREADS asks for 100000 threads"), std::string::npos) << r.output;
  const auto ok = run_cli("bench train --json --threads 1" + tiny, "", true);
  EXPECT_EQ(ok.code, 0) << ok.output;
}

// --- shard manifests -------------------------------------------------------------

// A manifest whose file entries leave the shard folder is refused before
// any of them is opened.
TEST(ShardManifest, FileEntriesCannotLeaveTheFolder) {
  TempDir d("manifest_escape");
  ASSERT_EQ(run_cli("prepare text " + test::write_corpus(d) + " --out " + (d / "shards")).code, 0);
  std::ofstream(d / "secret.txt") << "root:x:0:0:the first bytes of a file that is not a shard";
  const json good = json::parse(read_file(d / "shards/manifest.json"));
  for (const std::string bad : {"../secret.txt", "/etc/passwd", "../../../../../../etc/passwd", "sub/../../secret.txt",
                                "..", ""}) {
    SCOPED_TRACE(bad);
    json m = good;
    m["splits"]["val"]["file"] = bad;
    std::ofstream(d / "shards/manifest.json") << m.dump();
    try {
      mk::data::open_prepared(d / "shards");
      ADD_FAILURE() << "opened a manifest pointing at " << bad;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("not a file name beside the manifest"), std::string::npos) << msg;
      EXPECT_EQ(msg.find("root:"), std::string::npos) << msg;
    }
  }
}

// --- run directories: helpers ---------------------------------------------------

// Every regular file under dir (the lock aside) with its bytes: a run is
// untouched when this is unchanged.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != kLockFile)
      out[fs::relative(e.path(), dir).string()] = read_file(e.path().string());
  return out;
}

// Hidden siblings .<name>.new.<pid> that an overwrite builds beside a run.
std::vector<std::string> staging_dirs(const std::string& run) {
  std::vector<std::string> out;
  const std::string prefix = "." + fs::path(run).filename().string() + ".new.";
  for (const auto& e : fs::directory_iterator(fs::path(run).parent_path()))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().string());
  return out;
}

bool log_has(const std::string& log, const std::string& needle) {
  return read_file(log).find(needle) != std::string::npos;
}

// --- the lock ------------------------------------------------------------------

// While a run trains, every other writer is refused in one line naming the
// holder's pid; every reader works; the run is not disturbed.
TEST(RunLock, SecondWriterIsRefusedAndReadersWork) {
  TempDir d("lock");
  const std::string corpus = test::write_corpus(d), run = d / "run";
  const std::string cfg = test::write_config(d, corpus, run, 1000000);
  const pid_t pid = test::spawn_cli({"train", cfg, "--set", "output.save_every=2", "--set", "output.plot=false"},
                                    {}, d / "log.txt");
  ASSERT_TRUE(test::wait_for([&] { return !latest_checkpoint(run).empty(); })) << read_file(d / "log.txt");
  EXPECT_EQ(read_file(run + "/" + kLockFile), std::to_string(pid) + "\n");

  const std::string writers[] = {
      "train " + cfg + " --resume",
      "train " + cfg,
      "train " + cfg + " --set output.overwrite=true",
      "train --data " + corpus + " --out " + run + " --steps 2",  // the flag form overwrites
      "train --out " + run + " --resume",
  };
  for (const auto& w : writers) {
    const auto r = run_cli(w);
    EXPECT_EQ(r.code, 1) << w << ": " << r.output;
    EXPECT_NE(r.output.find("(pid " + std::to_string(pid) + ")"), std::string::npos) << w << ": " << r.output;
    EXPECT_NE(r.output.find(".lock"), std::string::npos) << r.output;
    EXPECT_EQ(lines(r.output), 1u) << w << ": " << r.output;
  }
  EXPECT_TRUE(staging_dirs(run).empty()) << "a refused overwrite builds nothing";

  const std::string readers[] = {
      "eval " + run + " --max-sequences 2",
      "info " + run,
      "generate " + run + " --tokens 3",
      "logits " + run + " --text abc --out " + (d / "l.npy"),
      "plot " + run + " --out " + (d / "curves"),
  };
  for (const auto& rd : readers) {
    if (rd.rfind("plot", 0) == 0 && !fs::exists("/usr/bin/gnuplot")) continue;
    const auto r = run_cli(rd);
    EXPECT_EQ(r.code, 0) << rd << ": " << r.output;
  }

  kill(pid, SIGTERM);
  EXPECT_EQ(test::wait_child(pid), 128 + SIGTERM) << read_file(d / "log.txt");
  // Released when the writer ends: the run continues.
  const long step = json::parse(read_file(run + "/summary.json"))["steps"];
  const auto r = run_cli("train " + cfg + " --resume --set train.steps=" + std::to_string(step + 2) + kNoPlot);
  EXPECT_EQ(r.code, 0) << r.output;
}

// The kernel drops the lock of a killed writer: no stale lock to clear.
TEST(RunLock, KilledWriterLeavesNoStaleLock) {
  TempDir d("lock_kill");
  const std::string run = d / "run";
  const std::string cfg = test::write_config(d, test::write_corpus(d), run, 1000000);
  const pid_t pid = test::spawn_cli({"train", cfg, "--set", "output.save_every=2"}, {}, d / "log.txt");
  ASSERT_TRUE(test::wait_for([&] { return !latest_checkpoint(run).empty(); })) << read_file(d / "log.txt");
  kill(pid, SIGKILL);
  EXPECT_EQ(test::wait_child(pid), 128 + SIGKILL);
  EXPECT_TRUE(fs::exists(run + "/" + kLockFile));
  EXPECT_FALSE(RunDirLock::held(run));
  const auto r = run_cli("train " + cfg + " --resume --set train.steps=" +
                         std::to_string(list_checkpoints(run).back().first + 1) + kNoPlot);
  EXPECT_EQ(r.code, 0) << r.output;
}

// The lock file is not a file of the run: a directory holding only it takes
// a fresh run, and an overwrite does not count it as a user's file.
TEST(RunLock, TheLockFileIsNotRunContent) {
  TempDir d("lock_entry");
  const std::string run = d / "run";
  fs::create_directories(run);
  { RunDirLock lock(run); }
  EXPECT_TRUE(fs::exists(run + "/" + kLockFile));
  EXPECT_FALSE(holds_run(run));
  EXPECT_EQ(non_run_files(run), "");
  const std::string cfg = test::write_config(d, test::write_corpus(d), run, 2);
  auto r = run_cli("train " + cfg + kNoPlot);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(non_run_files(run), "");
  r = run_cli("train " + cfg + " --set output.overwrite=true" + kNoPlot);
  EXPECT_EQ(r.code, 0) << r.output;
  // A second lock in the same process is refused too (flock is per open file).
  RunDirLock held(run);
  EXPECT_THROW(RunDirLock again(run), Error);
}

// --- overwrite -------------------------------------------------------------------

// A successful overwrite replaces the old run whole: its checkpoints go, the
// new run's files are in place, nothing is left beside it.
TEST(Overwrite, ReplacesTheOldRunAtTheFirstCheckpoint) {
  FinishedRun old("ow_ok");
  ASSERT_EQ(list_checkpoints(old.run).size(), 2u);
  const auto r = run_cli("train " + old.cfg + " --set output.overwrite=true --set train.steps=3" + kNoPlot);
  ASSERT_EQ(r.code, 0) << r.output;
  std::vector<long> steps;
  for (const auto& [s, p] : list_checkpoints(old.run)) steps.push_back(s);
  EXPECT_EQ(steps, std::vector<long>{3});
  EXPECT_EQ(json::parse(read_file(old.run + "/summary.json"))["steps"], 3);
  EXPECT_EQ(json::parse(read_file(old.run + "/trainer_state.json"))["step"], 3);
  EXPECT_TRUE(staging_dirs(old.run).empty());
  EXPECT_EQ(non_run_files(old.run), "");
}

// A new run that fails before its first checkpoint leaves the old run as it
// was, and whatever it built beside it is gone (at once, or at the next start
// for a killed process).
TEST(Overwrite, FailureBeforeTheFirstCheckpointLeavesTheOldRunUntouched) {
  struct Case {
    const char* name;
    std::vector<std::string> env;
    int signal;  // 0: the process fails by itself
    int code;
  } cases[] = {
      {"out of memory", {"MAMBAKIT_TEST_FAIL_AT_STEP=3"}, 0, 1},
      {"Ctrl-C", {}, SIGINT, 130},
      {"SIGTERM", {}, SIGTERM, 143},
      {"killed", {}, SIGKILL, 128 + SIGKILL},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    FinishedRun old(std::string("ow_fail_") + std::to_string(c.code));
    const auto before = snapshot(old.run);
    const pid_t pid = test::spawn_cli({"train", old.cfg, "--set", "output.overwrite=true", "--set",
                                       "train.steps=1000000", "--set", "output.save_every=0"},
                                      c.env, old.d / "log.txt");
    if (c.signal) {
      // Wait until the new run trains in its staging directory.
      ASSERT_TRUE(test::wait_for([&] {
        for (const auto& s : staging_dirs(old.run))
          if (read_metrics(s + "/metrics.jsonl").size() >= 3) return true;
        return false;
      })) << read_file(old.d / "log.txt");
      kill(pid, c.signal);
    }
    EXPECT_EQ(test::wait_child(pid), c.code) << read_file(old.d / "log.txt");
    EXPECT_EQ(snapshot(old.run), before) << read_file(old.d / "log.txt");
    if (c.signal == SIGINT || c.signal == SIGTERM) {
      EXPECT_TRUE(log_has(old.d / "log.txt", "keeps the run it held")) << read_file(old.d / "log.txt");
    }
    if (c.signal != SIGKILL) {
      EXPECT_TRUE(staging_dirs(old.run).empty());
    }
    // The next session clears a killed one's staging directory.
    const auto r = run_cli("train " + old.cfg + " --resume --set train.steps=5" + kNoPlot);
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("resuming at step 4"), std::string::npos) << r.output;
    EXPECT_TRUE(staging_dirs(old.run).empty());
  }
}

// output.overwrite (and the flag form, which always overwrites) deletes only
// a run's own files: anything else in the directory, a config.yaml mambakit
// did not write, a model directory that is not a run, or the config file
// being read, makes it refuse in one line and touch nothing.
TEST(Overwrite, RefusesToDeleteFilesThatAreNotARuns) {
  struct Case {
    const char* name;
    std::function<void(const FinishedRun&)> setup;
    std::function<std::string(const FinishedRun&)> command;
    std::string needle;
  } cases[] = {
      {"a user file in the run",
       [](const FinishedRun& f) { std::ofstream(f.run + "/notes.txt") << "mine"; },
       [](const FinishedRun& f) { return "train " + f.cfg + " --set output.overwrite=true"; }, "notes.txt"},
      {"a user file in best/",
       [](const FinishedRun& f) { std::ofstream(f.run + "/best/keep.bin") << "mine"; },
       [](const FinishedRun& f) { return "train " + f.cfg + " --set output.overwrite=true"; }, "best/keep.bin"},
      {"the config being read",
       [](const FinishedRun&) {},
       [](const FinishedRun& f) { return "train " + f.run + "/config.yaml --set output.overwrite=true"; },
       "the config being read"},
      {"the flag form over a model directory",
       [](const FinishedRun& f) {
         fs::create_directories(f.d / "model");
         for (const char* x : {"config.json", "model.safetensors", "tokenizer.json"})
           fs::copy_file(f.run + "/" + (std::string(x) == "tokenizer.json" ? "config.json" : x), f.d / "model/" + x);
       },
       [](const FinishedRun& f) { return "train --data " + f.corpus + " --out " + (f.d / "model") + " --steps 2"; },
       "no config.yaml"},
      {"a hand-written config.yaml",
       [](const FinishedRun& f) { fs::copy_file(f.cfg, f.run + "/config.yaml", fs::copy_options::overwrite_existing); },
       [](const FinishedRun& f) { return "train " + f.cfg + " --set output.overwrite=true"; },
       "not one mambakit wrote"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    FinishedRun f("ow_refuse");
    c.setup(f);
    const std::string target = std::string(c.name).find("model directory") != std::string::npos ? f.d / "model" : f.run;
    const auto before = snapshot(target);
    const auto r = run_cli(c.command(f));
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << r.output;
    EXPECT_EQ(lines(r.output), 1u) << r.output;
    EXPECT_EQ(snapshot(target), before);
    EXPECT_TRUE(staging_dirs(target).empty());
  }
}

// A language run with a tokenizer: the tokenizer files (at the top, in each
// checkpoint and in best/) are a run's own. A failed overwrite leaves them
// as they were, a successful one brings the new run's copy, a resume keeps
// writing it, and no --out or overwrite takes them away.
TEST(Overwrite, ATokenizerRunKeepsItsTokenizerThroughOverwriteAndResume) {
  const std::string bpe = std::string(MAMBAKIT_SOURCE_DIR) + "/datasets/tests/data/bpe_tiny";
  TempDir d("ow_tokenizer");
  fs::copy(bpe, d / "tok");
  const std::string corpus = test::write_corpus(d), run = d / "run";
  const std::string cfg = test::write_config(d, corpus, run, 4) + " --set data.tokenizer=" + (d / "tok") +
                          " --set eval.every=2 --set output.save_every=2" + kNoPlot;
  const auto tokenizer_intact = [&](const std::string& dir) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      EXPECT_EQ(read_file(dir + "/" + f), read_file(bpe + "/" + f)) << dir << "/" << f;
  };
  auto r = run_cli("train " + cfg);
  ASSERT_EQ(r.code, 0) << r.output;
  for (const std::string& dir : {run, run + "/checkpoints/step_4", run + "/best"}) tokenizer_intact(dir);
  EXPECT_EQ(non_run_files(run), "");

  // An overwrite that fails before its first checkpoint: nothing changes.
  const auto before = snapshot(run);
  r = run_cli("train " + cfg + " --set output.overwrite=true --set train.steps=1000000 --set output.save_every=0",
              "MAMBAKIT_TEST_FAIL_AT_STEP=2");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_EQ(snapshot(run), before);
  EXPECT_TRUE(staging_dirs(run).empty());

  // One that succeeds: the new run, with its own copy of the tokenizer.
  r = run_cli("train " + cfg + " --set output.overwrite=true --set train.steps=3");
  ASSERT_EQ(r.code, 0) << r.output;
  std::vector<long> steps;
  for (const auto& [st, p] : list_checkpoints(run)) steps.push_back(st);
  EXPECT_EQ(steps, (std::vector<long>{2, 3}));  // the new run's; the old step_4 is gone
  for (const std::string& dir : {run, run + "/checkpoints/step_2", run + "/checkpoints/step_3", run + "/best"})
    tokenizer_intact(dir);
  EXPECT_EQ(non_run_files(run), "");
  EXPECT_TRUE(staging_dirs(run).empty());

  // Resumed: every new checkpoint carries it too.
  r = run_cli("train " + cfg + " --resume --set train.steps=5");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming at step 3"), std::string::npos) << r.output;
  for (const std::string& dir : {run, run + "/checkpoints/step_5", run + "/best"}) tokenizer_intact(dir);

  // An overwrite that reads its tokenizer from the run it would replace, and
  // outputs that would write over the run's tokenizer, are refused.
  const auto done = snapshot(run);
  const std::string step = list_checkpoints(run).back().second;
  for (const std::string& tok : {run, step}) {
    r = run_cli("train " + cfg + " --set output.overwrite=true --set data.tokenizer=" + tok);
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find("the tokenizer being read"), std::string::npos) << r.output;
    EXPECT_EQ(lines(r.output), 1u) << r.output;
  }
  const std::string refused[] = {
      "generate " + run + " --tokens 2 --out " + run + "/tokenizer.json",
      "generate " + run + " --tokens 2 --out " + run + "/tokenizer_config.json",
      "prepare text " + corpus + " --tokenizer " + (d / "tok") + " --out " + run,
      "tokenizer train --model bpe --vocab 300 --out " + run + " " + corpus,
  };
  for (const auto& cmd : refused) {
    r = run_cli(cmd);
    EXPECT_EQ(r.code, 2) << cmd << ": " << r.output;
    EXPECT_NE(r.output.find("refusing to write"), std::string::npos) << cmd << ": " << r.output;
  }
  EXPECT_EQ(snapshot(run), done);
  EXPECT_TRUE(staging_dirs(run).empty());

  // The run reads text through its own copy, with the original gone.
  fs::remove_all(d / "tok");
  r = run_cli("eval " + run + " --max-sequences 2");
  EXPECT_EQ(r.code, 0) << r.output;
}

// --- failed starts -------------------------------------------------------------

// A start that failed or was killed before its first checkpoint leaves
// config.yaml and metrics.jsonl; neither a fresh start nor --resume is
// blocked by them: both begin the run again from step 0.
TEST(FailedStart, FreshStartAndResumeBeginAgain) {
  struct Case {
    const char* how;
    bool resume;
  } cases[] = {{"fails", false}, {"fails", true}, {"killed", false}, {"killed", true}};
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.how) + (c.resume ? ", then --resume" : ", then a fresh start"));
    TempDir d("failed_start");
    const std::string run = d / "run";
    const std::string cfg = test::write_config(d, test::write_corpus(d), run, 6);
    if (std::string(c.how) == "fails") {
      const auto r = run_cli("train " + cfg + kNoPlot, "MAMBAKIT_TEST_FAIL_AT_STEP=3");
      EXPECT_EQ(r.code, 1) << r.output;
      EXPECT_NE(r.output.find("mambakit train: error: out of memory"), std::string::npos) << r.output;
    } else {
      const pid_t pid = test::spawn_cli({"train", cfg}, {"MAMBAKIT_TEST_STALL_AT_STEP=3"}, d / "log.txt");
      ASSERT_TRUE(test::wait_for([&] { return log_has(d / "log.txt", "test stall at step 3"); }));
      kill(pid, SIGKILL);
      EXPECT_EQ(test::wait_child(pid), 128 + SIGKILL);
    }
    ASSERT_TRUE(fs::exists(run + "/config.yaml"));
    ASSERT_TRUE(fs::exists(run + "/metrics.jsonl"));
    ASSERT_TRUE(latest_checkpoint(run).empty());
    const auto r = run_cli("train " + cfg + (c.resume ? " --resume" : "") + kNoPlot);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find(c.resume ? "starting from step 0" : "starting it again"), std::string::npos) << r.output;
    const json s = json::parse(read_file(run + "/summary.json"));
    EXPECT_EQ(s["steps"], 6);
    EXPECT_EQ(s["finished"], true);
    // metrics.jsonl holds the new start only: each step once.
    long train_records = 0;
    for (const auto& rec : read_metrics(run + "/metrics.jsonl")) train_records += rec["type"] == "train";
    EXPECT_EQ(train_records, 6);
  }
}

// --- outputs --------------------------------------------------------------------

// An --out that is, by its real path, a file of a run or model directory or
// lies in a checkpoint directory is a usage error, and the file stays.
TEST(Outputs, NeverOverARunsOrModelsFiles) {
  FinishedRun f("outputs");
  const std::string run = f.run;
  fs::create_symlink(run + "/model.safetensors", f.d / "link.bin");
  const std::string step = list_checkpoints(run).back().second;
  const std::string refused[] = {
      "generate " + run + " --tokens 2 --out " + run + "/model.safetensors",
      "generate " + run + " --tokens 2 --out " + run + "/optimizer.safetensors",
      "generate " + run + " --tokens 2 --out " + run + "/config.json",
      "generate " + run + " --tokens 2 --out " + run + "/trainer_state.json",
      "generate " + run + " --tokens 2 --out " + run + "/config.yaml",
      "generate " + run + " --tokens 2 --out " + run + "/../run/./model.safetensors",
      "generate " + run + " --tokens 2 --out " + (f.d / "link.bin"),
      "generate " + run + " --tokens 2 --out " + step + "/sample.txt",
      "generate " + run + " --tokens 2 --out " + run + "/best/model.safetensors",
      "generate " + run + " --tokens 2 --out " + run + "/checkpoints/new.txt",
      "logits " + run + " --text ab --out " + run + "/model.safetensors",
      "plot " + run + " --out " + step + "/loss",
      "tokenizer train --model bpe --vocab 300 --out " + run + " " + f.corpus,
  };
  const auto before = snapshot(run);
  for (const auto& cmd : refused) {
    const auto r = run_cli(cmd);
    EXPECT_EQ(r.code, 2) << cmd << ": " << r.output;
    EXPECT_NE(r.output.find("refusing to write"), std::string::npos) << cmd << ": " << r.output;
    EXPECT_EQ(lines(r.output), 1u) << cmd << ": " << r.output;
  }
  EXPECT_EQ(snapshot(run), before);
  EXPECT_TRUE(fs::is_symlink(f.d / "link.bin"));
  // Anything else in a run directory is the user's to write.
  const auto ok = run_cli("generate " + run + " --tokens 2 --out " + run + "/generated.txt");
  EXPECT_EQ(ok.code, 0) << ok.output;
  EXPECT_TRUE(fs::exists(run + "/generated.txt"));
}

// prepare --out DIR replaces only what an earlier prepare wrote there.
TEST(Outputs, PrepareKeepsAUsersFilesOfItsNames) {
  TempDir d("prepare_out");
  const std::string corpus = test::write_corpus(d);
  fs::create_directories(d / "mine");
  std::ofstream(d / "mine/manifest.json") << "{\"my\": \"notes\"}";
  auto r = run_cli("prepare text " + corpus + " --out " + (d / "mine"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("not a mambakit shard manifest"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(d / "mine/manifest.json"), "{\"my\": \"notes\"}");
  // An earlier prepare's folder is replaced as before.
  ASSERT_EQ(run_cli("prepare text " + corpus + " --out " + (d / "shards")).code, 0);
  r = run_cli("prepare text " + corpus + " --out " + (d / "shards"));
  EXPECT_EQ(r.code, 0) << r.output;
}

// --- signals and the plot -------------------------------------------------------------

// The first SIGINT or SIGTERM finishes the step and saves; a second one
// while a step hangs ends the process at once with 128 + its number.
TEST(Signals, ASecondSignalStopsAHungStepAtOnce) {
  const std::pair<int, int> cases[] = {{SIGTERM, SIGINT}, {SIGINT, SIGTERM}, {SIGINT, SIGINT}};
  for (const auto& [first, second] : cases) {
    SCOPED_TRACE(std::to_string(first) + " then " + std::to_string(second));
    TempDir d("second_signal");
    const std::string run = d / "run", log = d / "log.txt";
    const std::string cfg = test::write_config(d, test::write_corpus(d), run, 100);
    const pid_t pid = test::spawn_cli({"train", cfg, "--set", "output.save_every=1"}, {"MAMBAKIT_TEST_STALL_AT_STEP=4"}, log);
    ASSERT_TRUE(test::wait_for([&] { return log_has(log, "test stall at step 4"); })) << read_file(log);
    kill(pid, first);
    ASSERT_TRUE(test::wait_for([&] { return log_has(log, "signal again to stop at once"); })) << read_file(log);
    kill(pid, second);
    EXPECT_EQ(test::wait_child(pid), 128 + second) << read_file(log);
    EXPECT_TRUE(log_has(log, "second signal: stopping now")) << read_file(log);
    // The checkpoints written before stay loadable, and the run continues.
    EXPECT_EQ(list_checkpoints(run).back().first, 3);
    const auto r = run_cli("train " + cfg + " --resume --set train.steps=5" + kNoPlot);
    EXPECT_EQ(r.code, 0) << r.output;
  }
}

// A gnuplot that never finishes is killed after MAMBAKIT_PLOT_TIMEOUT
// seconds: training still ends (exit 0, with a note) and `plot` fails in one
// line.
TEST(Signals, AHungGnuplotDoesNotHangTraining) {
  TempDir d("hung_plot");
  const std::string fake = d / "gnuplot";
  std::ofstream(fake) << "#!/bin/sh\nexec sleep 600\n";
  fs::permissions(fake, fs::perms::owner_all);
  const std::string env = "MAMBAKIT_GNUPLOT=" + fake + " MAMBAKIT_PLOT_TIMEOUT=0.2";
  const std::string cfg = test::write_config(d, test::write_corpus(d), d / "run", 2);
  auto r = run_cli("train " + cfg, env);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("no loss plot: gnuplot did not finish within 0.2 s"), std::string::npos) << r.output;
  r = run_cli("plot " + (d / "run"), env);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("did not finish"), std::string::npos) << r.output;
  EXPECT_EQ(lines(r.output), 1u) << r.output;
  for (const auto& e : fs::directory_iterator(d / "run"))
    EXPECT_EQ(e.path().filename().string().find(".plot."), std::string::npos) << e.path();
}

}  // namespace
}  // namespace mk::exp
