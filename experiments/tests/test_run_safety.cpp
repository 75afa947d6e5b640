// Run directories and where things are written, and the limits checked
// before a run starts, through the CLI: thread counts range-checked, shard
// manifests that point outside their folder refused.
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
      EXPECT_NE(msg.find("not a file name inside the shard directory"), std::string::npos) << msg;
      EXPECT_EQ(msg.find("root:"), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace mk::exp
