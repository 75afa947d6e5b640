// Data-parallel training through mpirun (2 ranks, one thread each): the
// job tracks one process on the same global batch (losses, final
// parameters and evaluation within 1e-5 relative) for a language model, a
// classifier (tiny generated ListOps) and the DNA task with an uneven split
// and gradient accumulation; a run paused with 2 ranks resumes with 1; a
// rank killed or failing ends the job with a line naming it and leaves the
// last checkpoint loadable; rank 0 alone writes the run directory.
// Every test skips, saying why, where this build has no MPI or no mpirun.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "mambakit/experiments/run_dir.h"
#include "mambakit/io/safetensors.h"
#include "run_util.h"

namespace mk::exp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::read_file;
using test::run_cli;
using test::TempDir;

constexpr double kTol = 1e-5;

// Why the MPI tests cannot run here, or "" when they can.
std::string why_no_mpi() {
  const std::string mpiexec = MAMBAKIT_MPIEXEC;
  if (mpiexec.empty()) return "this build has no MPI (install libopenmpi-dev and reconfigure)";
  if (!fs::exists(mpiexec)) return "no MPI launcher at " + mpiexec;
  if (run_cli("--version").output.find("mpi (") == std::string::npos)
    return "mambakit --version lists no MPI backend";
  return "";
}

#define SKIP_WITHOUT_MPI()                                       \
  do {                                                           \
    const std::string why = why_no_mpi();                        \
    if (!why.empty()) GTEST_SKIP() << "no MPI tests: " << why;   \
  } while (0)

// `mpirun -np N mambakit ARGS` with one OpenMP thread per rank; allowed as
// root and on more ranks than cores, with no binding (the machine is shared).
test::Result run_mpi(int ranks, const std::string& args, const std::string& env = "") {
  const std::string launcher = std::string(MAMBAKIT_MPIEXEC) + " -np " + std::to_string(ranks) +
                               " --oversubscribe --bind-to none " + MAMBAKIT_BIN;
  const std::string cmd = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " + env +
                          " " + launcher + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

test::Result run_single(const std::string& args) { return run_cli(args, "OMP_NUM_THREADS=1"); }

std::map<long, double> train_losses(const std::string& run) {
  std::map<long, double> out;
  for (const auto& r : read_metrics(run + "/metrics.jsonl"))
    if (r["type"] == "train") out[r["step"].get<long>()] = r["loss"].get<double>();
  return out;
}

double rel_diff(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-12); }

// The largest relative difference of the training losses (same steps).
double max_loss_diff(const std::string& a, const std::string& b, size_t steps) {
  const auto la = train_losses(a), lb = train_losses(b);
  EXPECT_EQ(la.size(), steps) << a;
  EXPECT_EQ(lb.size(), steps) << b;
  double worst = 0;
  for (const auto& [step, loss] : lb) {
    EXPECT_TRUE(la.count(step)) << "step " << step << " missing in " << a;
    if (la.count(step)) worst = std::max(worst, rel_diff(la.at(step), loss));
  }
  return worst;
}

// The largest over tensors of max|a - b| / max|b|: each tensor's error
// relative to its own scale (elements near zero would make an
// element-wise ratio meaningless).
double max_param_diff(const std::string& a_file, const std::string& b_file) {
  const SafetensorsData a = read_safetensors(a_file), b = read_safetensors(b_file);
  EXPECT_EQ(a.names(), b.names());
  double worst = 0;
  for (const auto& [name, tb] : b.tensors) {
    const Tensor& ta = a.get(name);
    EXPECT_EQ(ta.numel(), tb.numel()) << name;
    const float *pa = ta.data<float>(), *pb = tb.data<float>();
    double diff = 0, scale = 0;
    for (long i = 0; i < tb.numel(); ++i) {
      diff = std::max(diff, double(std::abs(pa[i] - pb[i])));
      scale = std::max(scale, double(std::abs(pb[i])));
    }
    worst = std::max(worst, diff / std::max(scale, 1e-12));
  }
  return worst;
}

// Trains `config` (its output.dir overridden) with one process and with 2
// ranks, and checks the job tracks the process; returns the 2-rank run.
std::string expect_two_ranks_track_one(const TempDir& d, const std::string& config, long steps,
                                       const std::string& sets = "") {
  const std::string one = d / "one", two = d / "two";
  auto r = run_single("train " + config + " --set output.dir=" + one + sets);
  EXPECT_EQ(r.code, 0) << r.output;
  r = run_mpi(2, "train " + config + " --set output.dir=" + two + sets);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("data-parallel over 2 ranks (mpi"), std::string::npos) << r.output;
  const double dl = max_loss_diff(two, one, size_t(steps));
  const double dp = max_param_diff(two + "/model.safetensors", one + "/model.safetensors");
  std::printf("  2 ranks vs 1 process: losses within %.2e, parameters within %.2e (relative)\n", dl, dp);
  EXPECT_LE(dl, kTol);
  EXPECT_LE(dp, kTol);
  // Evaluation is split over the ranks and summed: the same metrics.
  const json s1 = json::parse(read_file(one + "/summary.json")), s2 = json::parse(read_file(two + "/summary.json"));
  for (auto it = s1["final"].begin(); it != s1["final"].end(); ++it)
    EXPECT_LE(rel_diff(s2["final"][it.key()].get<double>(), it->get<double>()), kTol) << it.key();
  EXPECT_EQ(s2["world_size"], 2);
  EXPECT_EQ(s2["tokens"], s1["tokens"]) << "tokens count the global batch";
  return two;
}

TEST(DataParallel, VersionListsTheBackends) {
  const auto r = run_cli("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("mambakit "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("data parallelism: "), std::string::npos) << r.output;
}

TEST(DataParallel, LanguageModelTracksOneProcess) {
  SKIP_WITHOUT_MPI();
  TempDir d("dp_language");
  const std::string cfg = test::write_config(d, test::write_corpus(d), d / "unused", 20);
  const std::string two =
      expect_two_ranks_track_one(d, cfg, 20, " --set train.batch_size=4 --set output.plot=false");
  // Rank 0 alone writes: each step logged once, one summary, no strays.
  EXPECT_EQ(train_losses(two).size(), 20u);
  for (const auto& e : fs::directory_iterator(two)) {
    const std::string n = e.path().filename().string();
    EXPECT_EQ(n.find(".tmp"), std::string::npos) << n;
  }
}

TEST(DataParallel, ClassifierTracksOneProcess) {
  SKIP_WITHOUT_MPI();
  TempDir d("dp_listops");
  const std::string cfg = d / "listops.yaml";
  std::ofstream(cfg) << "model:\n  mixer: s4d\n  bidirectional: true\n  d_model: 16\n  n_layer: 2\n"
                        "  s4_d_state: 8\n"
                        "task:\n  name: lra_listops\n  cache: " << d / "data" << "\n"
                        "  generate: {n_train: 64, n_val: 16, n_test: 8, min_length: 5, max_length: 40, "
                        "max_depth: 3}\n"
                        "data:\n  seq_len: 40\n"
                        "train:\n  steps: 20\n  batch_size: 8\n  lr: 3.0e-3\n  seed: 2\n"
                        "eval:\n  metrics: [accuracy, loss]\n  max_sequences: 0\n"
                        "output:\n  dir: unused\n  log_every: 1\n  plot: false\n";
  expect_two_ranks_track_one(d, cfg, 20);
}

TEST(DataParallel, DnaWithUnevenSharesAndAccumulationTracksOneProcess) {
  SKIP_WITHOUT_MPI();
  TempDir d("dp_dna");
  std::string genome;
  uint64_t x = 7;
  for (int i = 0; i < 4000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    genome += "ACGT"[(x >> 33) & 3];
  }
  const std::string fa = d / "genome.fa";
  std::ofstream(fa) << ">chr1\n" << genome << "\n";
  const std::string cfg = d / "dna.yaml";
  // 3 windows per micro-batch: ranks take 1 and 2, weighted by their share.
  std::ofstream(cfg) << "model:\n  mixer: mamba\n  d_model: 16\n  n_layer: 2\n  d_state: 4\n"
                        "task:\n  name: dna_pretrain\n  markov_order: 2\n  rc_prob: 0.5\n"
                        "data:\n  path: " << fa << "\n  seq_len: 32\n  split: [0.8, 0.1, 0.1]\n"
                        "train:\n  steps: 20\n  batch_size: 3\n  grad_accum: 2\n  lr: 5.0e-3\n  seed: 3\n"
                        "eval:\n  max_sequences: 6\n"
                        "output:\n  dir: unused\n  log_every: 1\n  plot: false\n";
  expect_two_ranks_track_one(d, cfg, 20);
}

TEST(DataParallel, PausedWithTwoRanksResumesWithOne) {
  SKIP_WITHOUT_MPI();
  TempDir d("dp_resume");
  const std::string cfg = test::write_config(d, test::write_corpus(d), d / "unused", 20);
  const std::string straight = d / "straight", pieces = d / "pieces";
  const std::string sets = " --set train.batch_size=4 --set output.plot=false";
  auto r = run_single("train " + cfg + " --set output.dir=" + straight + sets);
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_mpi(2, "train " + cfg + " --set output.dir=" + pieces + sets + " --until 10");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_single("train " + cfg + " --set output.dir=" + pieces + sets + " --resume");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming at step 10"), std::string::npos) << r.output;
  const double dl = max_loss_diff(pieces, straight, 20);
  const double dp = max_param_diff(pieces + "/model.safetensors", straight + "/model.safetensors");
  std::printf("  2 ranks to step 10, 1 to step 20, vs 20 straight: losses %.2e, parameters %.2e\n", dl, dp);
  EXPECT_LE(dl, kTol);
  EXPECT_LE(dp, kTol);
}

// One rank dies (SIGKILL after step 7; a checkpoint every 5 steps): the job
// ends non-zero, the launcher names the rank, step_5 resumes.
TEST(DataParallel, AKilledRankEndsTheJobAndLeavesALoadableCheckpoint) {
  SKIP_WITHOUT_MPI();
  TempDir d("dp_kill");
  const std::string cfg = test::write_config(d, test::write_corpus(d), d / "run", 20);
  const std::string run = d / "run";
  auto r = run_mpi(2, "train " + cfg + " --set train.batch_size=4 --set output.save_every=5", "MAMBAKIT_TEST_FAIL=1:7:kill");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(run + "/checkpoints/step_5/trainer_state.json")) << r.output;
  r = run_single("train " + cfg + " --set train.batch_size=4 --resume");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming at step 5"), std::string::npos) << r.output;
  EXPECT_EQ(json::parse(read_file(run + "/summary.json"))["steps"], 20);
}

// A rank that raises an error: one line naming the rank and the reason,
// and a non-zero exit for the whole job.
TEST(DataParallel, AnErrorOnOneRankEndsTheJobWithOneLine) {
  SKIP_WITHOUT_MPI();
  TempDir d("dp_error");
  const std::string cfg = test::write_config(d, test::write_corpus(d), d / "run", 20);
  const auto r = run_mpi(2, "train " + cfg + " --set train.batch_size=4", "MAMBAKIT_TEST_FAIL=1:3:error");
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("mambakit train: error: rank 1 of 2: MAMBAKIT_TEST_FAIL: a failure injected after step 3"),
            std::string::npos)
      << r.output;
}

// SIGTERM reaching one rank (after step 5) stops every rank after the next
// step, the one whose sums carried the flag: one checkpoint, exit 143.
TEST(DataParallel, ASignalToOneRankStopsAllAfterTheSameStep) {
  SKIP_WITHOUT_MPI();
  TempDir d("dp_term");
  const std::string cfg = test::write_config(d, test::write_corpus(d), d / "run", 20);
  const std::string run = d / "run";
  const auto r = run_mpi(2, "train " + cfg + " --set train.batch_size=4", "MAMBAKIT_TEST_FAIL=1:5:term");
  EXPECT_EQ(r.code, 143) << r.output;
  EXPECT_NE(r.output.find("stopped by SIGTERM at step 6"), std::string::npos) << r.output;
  EXPECT_EQ(json::parse(read_file(run + "/summary.json"))["steps"], 6);
  EXPECT_TRUE(fs::exists(run + "/checkpoints/step_6/trainer_state.json"));
}

// The debug check compares every rank's parameters each N steps; equal
// replicas pass it.
TEST(DataParallel, ReplicaCheckPassesOnEqualReplicas) {
  SKIP_WITHOUT_MPI();
  TempDir d("dp_check");
  const std::string cfg = test::write_config(d, test::write_corpus(d), d / "run", 6);
  const auto r = run_mpi(2, "train " + cfg + " --set train.batch_size=4 --set train.check_replicas_every=2");
  EXPECT_EQ(r.code, 0) << r.output;
}

}  // namespace
}  // namespace mk::exp
