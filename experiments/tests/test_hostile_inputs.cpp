// Hostile inputs through the CLI (issue 15, "Nothing lost, nothing
// crashes"): one table, each row a command a careless or hostile user might
// type, the exit code it must end with (0 works, 1 runtime error, 2 usage or
// config error; never a crash, >= 128) and a piece of the one-line message.
// Rows follow the issue's list 1-9; the slow cases (a live training run
// signalled twice, a hung gnuplot, double Ctrl-C, sanitizers) are in
// test_run_safety.cpp, where each has its own test.
//
// Also here: "did you mean" for unknown flags on every command, `mambakit
// --version`, and the memory estimate that refuses an oversized run before
// allocating.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "mambakit/blas_core.h"
#include "mambakit/cpu_isa.h"
#include "mambakit/experiments/config.h"
#include "mambakit/experiments/memory_estimate.h"
#include "mambakit/models/flops.h"
#include "run_util.h"

namespace mk::exp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::read_file;
using test::run_cli;
using test::TempDir;

size_t lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

void write(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string genome() {
  std::mt19937_64 rng(5);
  std::string s = ">chr1\n";
  for (int i = 0; i < 3000; ++i) {
    s.push_back("ACGT"[rng() % 4]);
    if (i % 60 == 59) s.push_back('\n');
  }
  return s + "\n";
}

// Replaces {name} in s by vars[name].
std::string expand(std::string s, const std::map<std::string, std::string>& vars) {
  for (const auto& [k, v] : vars)
    for (size_t p; (p = s.find("{" + k + "}")) != std::string::npos;) s.replace(p, k.size() + 2, v);
  return s;
}

struct Row {
  const char* issue_item;  // the issue's "Why" item it covers
  std::string args;        // after `mambakit`, {placeholders} expanded
  int code;                // expected exit code: 0, 1 or 2
  std::string needle;      // a piece of the (one-line, for code != 0) message
  std::string absent = ""; // a path that must not exist afterwards ("" none)
};

TEST(HostileInputs, EveryRowEndsInItsCodeWithOneLine) {
  TempDir d("hostile");
  const std::string corpus = test::write_corpus(d);
  const std::string run = d / "run";
  const std::string cfg = test::write_config(d, corpus, run, 2);
  ASSERT_EQ(run_cli("train " + cfg + " --set output.plot=false").code, 0);
  // A DNA run (for logits and a bad generate: section), and text shards.
  write(d / "genome.fa", genome());
  write(d / "dna.yaml", "model:\n  mixer: mamba\n  d_model: 16\n  n_layer: 1\n  d_state: 4\n"
                        "task:\n  name: dna_pretrain\n"
                        "data:\n  path: " + (d / "genome.fa") + "\n  seq_len: 32\n  split: [0.8, 0.1, 0.1]\n"
                        "train:\n  steps: 1\n  batch_size: 2\n  lr: 5.0e-3\n  seed: 3\n"
                        "eval:\n  max_sequences: 2\noutput:\n  dir: " + (d / "dna_run") + "\n  plot: false\n");
  const auto dna = run_cli("train " + (d / "dna.yaml"));
  ASSERT_EQ(dna.code, 0) << dna.output;
  ASSERT_EQ(run_cli("prepare text " + corpus + " --out " + (d / "shards")).code, 0);
  // A shard manifest whose val entry points outside its folder.
  fs::create_directories(d / "evil");
  for (const char* f : {"train.mkshard", "val.mkshard"}) fs::copy_file(d / ("shards/" + std::string(f)), d / ("evil/" + std::string(f)));
  json m = json::parse(read_file(d / "shards/manifest.json"));
  m["splits"]["val"]["file"] = "../../../../../../etc/passwd";
  write(d / "evil/manifest.json", m.dump());
  // A run whose trainer_state.json says step -5, and one whose config.json
  // disagrees with its weights (a model far too large to build).
  fs::copy(run, d / "neg", fs::copy_options::recursive);
  fs::remove(d / "neg/.lock");
  {  // the run's own and every checkpoint's
    for (const auto& e : fs::recursive_directory_iterator(d / "neg"))
      if (e.path().filename() == "trainer_state.json") {
        json s = json::parse(read_file(e.path().string()));
        s["step"] = -5;
        write(e.path().string(), s.dump());
      }
  }
  fs::create_directories(d / "big_model");
  fs::copy_file(run + "/model.safetensors", d / "big_model/model.safetensors");
  {
    json c = json::parse(read_file(run + "/config.json"));
    c["d_model"] = 1000000;
    c["hidden_size"] = 1000000;
    write(d / "big_model/config.json", c.dump());
  }
  // A second run, held by a writer: this process takes its lock as a live
  // `train` would.
  const std::string live = d / "live";
  const std::string live_cfg = test::write_config(d, corpus, live, 2, "live.yaml");
  ASSERT_EQ(run_cli("train " + live_cfg + " --set output.plot=false").code, 0);
  const int lock_fd = ::open((live + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(lock_fd, 0);
  ASSERT_EQ(::flock(lock_fd, LOCK_EX | LOCK_NB), 0);
  const std::string me = std::to_string(::getpid()) + "\n";
  ASSERT_EQ(::pwrite(lock_fd, me.data(), me.size(), 0), ssize_t(me.size()));

  const std::map<std::string, std::string> vars = {
      {"d", d.path.string()}, {"run", run}, {"cfg", cfg}, {"corpus", corpus}, {"live", live},
      {"live_cfg", live_cfg}, {"dna_run", d / "dna_run"}, {"dna_cfg", d / "dna.yaml"}};
  const std::string fresh = " --set output.dir={d}/fresh --set output.plot=false";
  const std::vector<Row> rows = {
      // 1. One writer per run directory.
      {"1 second writer", "train {live_cfg} --resume", 1, "another mambakit train (pid"},
      {"1 overwrite of a live run", "train {live_cfg} --set output.overwrite=true", 1, "another mambakit train (pid"},
      {"1 flag form over a live run", "train --data {corpus} --out {live} --steps 1", 1, "another mambakit train (pid"},
      {"1 readers work during a run", "info {live}", 0, "parameters"},
      // 2. A failed start leaves nothing behind (and a missing data file
      // says what makes it).
      {"2 failed start leaves no directory", "train {cfg}" + fresh + " --set data.path={d}/missing.txt", 1,
       "does not exist", "{d}/fresh"},
      {"2 missing relative data path", "train {cfg}" + fresh + " --set data.path=data/kjv.txt", 1,
       "relative path resolves against the current directory", "{d}/fresh"},
      // 3. Thread counts.
      {"3 train.threads", "train {cfg}" + fresh + " --set train.threads=100000", 2, "train.threads 100000",
       "{d}/fresh"},
      {"3 eval --threads", "eval {run} --threads 100000", 2, "--threads 100000"},
      // 4. Errors found before training, not after it.
      {"4 bad DNA generate prompt",
       "train {dna_cfg} --set output.dir={d}/dna2 --set generate.tokens=4 --set generate.prompt=XYZ", 2,
       "generate.prompt", "{d}/dna2"},
      {"4 bidirectional next-token model", "train {cfg}" + fresh + " --set model.bidirectional=true", 2,
       "model.bidirectional", "{d}/fresh"},
      // 5. Sizes estimated before allocating.
      {"5 oversized model", "train {cfg}" + fresh + " --set model.d_model=1000000", 2, "model.d_model", "{d}/fresh"},
      {"5 oversized batch", "train {cfg}" + fresh + " --set train.batch_size=10000000", 2, "train.batch_size",
       "{d}/fresh"},
      {"5 eval --bootstrap 2e9", "eval {run} --bootstrap 2e9", 2, "--bootstrap"},
      {"5 eval --bootstrap 2000000000", "eval {run} --bootstrap 2000000000", 2, "--bootstrap 2000000000"},
      {"5 eval --generate huge", "eval {run} --generate 2000000000", 2, "--generate 2000000000"},
      {"5 generate --tokens huge", "generate {run} --tokens 2000000000", 2, "--tokens 2000000000"},
      {"5 config.json disagrees with its weights", "generate {d}/big_model --tokens 2", 1, "big_model"},
      {"5 /dev/zero as data", "train {cfg}" + fresh + " --set data.path=/dev/zero", 1,
       "/dev/zero' is not a regular file or a folder", "{d}/fresh"},
      // 6. Values checked, never silently changed.
      {"6 generate --temperature nan", "generate {run} --temperature nan", 2, "--temperature nan"},
      {"6 generate --temperature -1", "generate {run} --temperature -1", 2, "--temperature -1"},
      {"6 generate --top-k -3", "generate {run} --top-k -3", 2, "--top-k -3"},
      {"6 generate --top-p nan", "generate {run} --top-p nan", 2, "--top-p nan"},
      {"6 trainer_state step -5", "train {d}/neg/config.yaml --set output.dir={d}/neg --resume", 1, "step"},
      {"6 train.epochs 1e30", "train {cfg}" + fresh + " --set train.steps=0 --set train.epochs=1e30", 2,
       "train.epochs", "{d}/fresh"},
      {"6 eval --max-sequences -5", "eval {run} --max-sequences -5", 2, "--max-sequences -5"},
      {"6 eval --batch-size -1", "eval {run} --batch-size -1", 2, "--batch-size -1"},
      {"6 eval --temperature -2", "eval {run} --generate 2 --temperature -2", 2, "--temperature -2"},
      // 7. Writes only where they belong.
      {"7 generate --out the model", "generate {run} --tokens 2 --out {run}/model.safetensors", 2,
       "refusing to write"},
      // (The val shard is opened once training has started: the run
      // directory is left as a failed start, which test_run_safety shows
      // starts again cleanly.)
      {"7 manifest pointing at /etc/passwd", "train {cfg} --set output.dir={d}/evil_run --set data.path={d}/evil",
       1, "not a file name beside the manifest"},
      {"7 prepare fasta writes no .fai beside the input", "prepare fasta {d}/genome.fa --out {d}/fa_shards", 0,
       "prepared", "{d}/genome.fa.fai"},
      // 8. Paths that work.
      {"8 language task reads prepare text shards",
       "train {cfg} --set output.dir={d}/from_shards --set output.plot=false --set data.path={d}/shards", 0,
       "final"},
      // logits --text reads bytes: on a DNA model an id outside its
      // vocabulary is one line naming it (--ids gives DNA token ids).
      {"8 logits --text on a DNA model", "logits {dna_run} --text ACGT --out {d}/dna_logits.npy", 1,
       "outside the vocabulary of 9 tokens"},
      {"8 logits --ids on a DNA model", "logits {dna_run} --ids 1,2,3 --out {d}/dna_logits.npy", 0, ""},
      // 9. Messages: one line, the right place, the right reason.
      {"9 unknown flag", "generate {run} --temprature 0.5", 2, "did you mean '--temperature'?"},
      {"9 unknown flag on train", "train {cfg} --step 3", 2, "unknown option '--step'"},
      {"9 --set blamed on itself", "train {cfg}" + fresh + " --set train.lr=fast", 2, "--set train.lr=fast"},
      {"9 data.split of NaNs", "train {cfg}" + fresh + " --set 'data.split=[.nan,.nan]'", 2, "data.split"},
      {"9 unknown command", "trian {cfg}", 2, "did you mean 'train'?"},
  };
  for (const auto& row : rows) {
    const std::string args = expand(row.args, vars);
    SCOPED_TRACE(std::string(row.issue_item) + ": mambakit " + args);
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = run_cli(args);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(r.code, 128) << r.output;
    EXPECT_EQ(r.code, row.code) << r.output;
    if (!row.needle.empty()) {
      EXPECT_NE(r.output.find(row.needle), std::string::npos) << r.output;
    }
    if (row.code != 0) {
      EXPECT_EQ(lines(r.output), 1u) << r.output;
      EXPECT_EQ(r.output.find("std::"), std::string::npos) << r.output;
    }
    if (!row.absent.empty()) {
      EXPECT_FALSE(fs::exists(expand(row.absent, vars))) << expand(row.absent, vars);
    }
    EXPECT_LT(secs, 20) << "slow row";
  }
  ::close(lock_fd);
}

// --- did you mean, for flags ------------------------------------------------------

TEST(HostileInputs, UnknownFlagsSuggestTheClosestOnEveryCommand) {
  struct Case {
    std::string args, cmd, bad, good;
  } cases[] = {
      {"train x.yaml --resmue", "train", "--resmue", "--resume"},
      {"train --data x --out y --stpes 3", "train", "--stpes", "--steps"},
      {"eval r --bootstrp 3", "eval", "--bootstrp", "--bootstrap"},
      {"generate r --temprature 0.5", "generate", "--temprature", "--temperature"},
      {"lra listops --samll", "lra", "--samll", "--small"},
      {"lra report r --lable x", "lra report", "--lable", "--label"},
      {"bench train --d-modle 8", "bench train", "--d-modle", "--d-model"},
      {"bench mixers --lenghts 8", "bench mixers", "--lenghts", "--lengths"},
      {"bench data --secnds 1", "bench data", "--secnds", "--seconds"},
      {"prepare text x --out y --tokeniser t", "prepare", "--tokeniser", "--tokenizer"},
      {"info r --jsn", "info", "--jsn", "--json"},
      {"plot r --outt p", "plot", "--outt", "--out"},
      {"logits r --txt ab", "logits", "--txt", "--text"},
      {"tokenize t --txt ab", "tokenize", "--txt", "--text"},
      {"tokenizer train --modle bpe", "tokenizer train", "--modle", "--model"},
      {"sweep s.yaml --dry-rn", "sweep", "--dry-rn", "--dry-run"},
  };
  for (const auto& c : cases) {
    const auto r = run_cli(c.args);
    EXPECT_EQ(r.code, 2) << c.args << ": " << r.output;
    EXPECT_EQ(lines(r.output), 1u) << c.args << ": " << r.output;
    const std::string want = "unknown option '" + c.bad + "'; did you mean '" + c.good + "'? (see mambakit " +
                             c.cmd + " --help)";
    EXPECT_NE(r.output.find(want), std::string::npos) << c.args << ": " << r.output << "\nwanted: " << want;
    const std::string cmd_word = c.cmd.substr(0, c.cmd.find(' '));
    EXPECT_EQ(r.output.rfind("mambakit " + cmd_word + ": ", 0), 0u) << r.output;
  }
  // Nothing close: no suggestion, still the pointer to --help.
  const auto r = run_cli("eval r --zzzzzzzzzz 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.output.find("did you mean"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unknown option '--zzzzzzzzzz' (see mambakit eval --help)"), std::string::npos) << r.output;
}

// --- --version ------------------------------------------------------------------

TEST(HostileInputs, VersionNamesTheBuild) {
  const auto r = run_cli("--version");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("^mambakit [0-9]+\\.[0-9]+\\.[0-9]+\n"))) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("\nbuild: [A-Za-z]+"))) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("\ncpu isa: (scalar|avx2|avx512) "))) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("\ncuda: (built|not built)\n"))) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("\nmpi: (built, mpi|not built)"))) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("\nnccl: (built, nccl|not built)"))) << r.output;
  const auto forced = run_cli("--version", "MAMBAKIT_ISA=scalar");
  EXPECT_NE(forced.output.find("cpu isa: scalar (forced by MAMBAKIT_ISA)"), std::string::npos) << forced.output;
}

// Where float products run: info --system names it; a bad MAMBAKIT_AMX is
// refused before any work (and --version still prints, saying why none was
// chosen); MAMBAKIT_AMX=1 is refused where the CPU has no AMX.
TEST(HostileInputs, FloatProductsChoiceIsShownAndBadValuesRefused) {
  const auto r = run_cli("info --system --json", "", true);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j.at("float_products").get<std::string>(), mk::amx_products_active() ? "amx" : "blas");
  EXPECT_EQ(j.at("cpu_has_amx").get<bool>(), mk::cpu_has_amx());
  const auto off = run_cli("info --system --json", "MAMBAKIT_AMX=0", true);
  ASSERT_EQ(off.code, 0) << off.output;
  EXPECT_EQ(nlohmann::json::parse(off.output).at("float_products").get<std::string>(), "blas");

  const auto bad = run_cli("bench train --steps 1 --warmup 0", "MAMBAKIT_AMX=yes");
  EXPECT_EQ(bad.code, 1) << bad.output;
  EXPECT_NE(bad.output.find("MAMBAKIT_AMX=yes: expected 0"), std::string::npos) << bad.output;
  EXPECT_EQ(bad.output.find("tokens"), std::string::npos) << "no work before the refusal: " << bad.output;
  const auto version = run_cli("--version", "MAMBAKIT_AMX=yes");
  EXPECT_EQ(version.code, 0) << version.output;
  EXPECT_NE(version.output.find("float products: none chosen: MAMBAKIT_AMX=yes"), std::string::npos)
      << version.output;

  const auto want = run_cli("info --system", "MAMBAKIT_AMX=1");
  if (mk::cpu_has_amx()) {  // on, unless MAMBAKIT_ISA (inherited) chose a narrower ISA
    EXPECT_EQ(want.code, 0) << want.output;
    EXPECT_NE(want.output.find(mk::active_isa() == mk::Isa::avx512
                                   ? "float products: AMX tiles"
                                   : "float products: BLAS (AMX needs the avx512 ISA"),
              std::string::npos)
        << want.output;
  } else {
    EXPECT_EQ(want.code, 1) << want.output;
    EXPECT_NE(want.output.find("MAMBAKIT_AMX=1: this CPU or kernel has no AMX"), std::string::npos)
        << want.output;
  }
}

// OpenBLAS's kernel set: never a pre-AVX2 one on a CPU with AVX2 (mambakit
// restarts itself with OPENBLAS_CORETYPE set where OpenBLAS does not know the
// CPU, blas_core.h), and the user's OPENBLAS_CORETYPE is kept as given.
TEST(HostileInputs, SystemInfoNamesABlasCoreWithAvx2Kernels) {
  const std::string clean = "env -u OPENBLAS_CORETYPE -u MAMBAKIT_BLAS_CORE_REPLACED";
  const auto r = run_cli("info --system --json", clean, true);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  const std::string core = j.at("blas_core").get<std::string>();
  if (core.empty()) GTEST_SKIP() << "the BLAS linked is not OpenBLAS: " << r.output;
  EXPECT_EQ(mk::better_blas_core(core, mk::supported_isas().back()), "") << r.output;
  const std::string origin = j.at("blas_core_origin").get<std::string>();
  EXPECT_TRUE(origin == "OpenBLAS's choice" || origin.find("set by mambakit") != std::string::npos) << origin;

  const auto user = run_cli("info --system --json", clean + " OPENBLAS_CORETYPE=Prescott", true);
  ASSERT_EQ(user.code, 0) << user.output;
  const auto u = nlohmann::json::parse(user.output);
  EXPECT_EQ(u.at("blas_core").get<std::string>(), "Prescott") << user.output;
  // The user's choice stands, with a hint where it is narrower than the CPU.
  const std::string user_origin = u.at("blas_core_origin").get<std::string>();
  const std::string from_env = "OPENBLAS_CORETYPE=Prescott (the environment)";
  if (mk::blas_core_narrower_than_cpu("Prescott", mk::supported_isas().back())) {
    EXPECT_EQ(user_origin.rfind(from_env, 0), 0u) << user.output;
    EXPECT_NE(user_origin.find("unset it to let OpenBLAS choose"), std::string::npos) << user.output;
  } else {
    EXPECT_EQ(user_origin, from_env) << user.output;
  }
  EXPECT_NE(run_cli("--version", clean).output.find("\nblas core: " + core + " ("), std::string::npos);

  // A restarted program that still runs a pre-AVX2 set (an OpenBLAS that
  // ignores OPENBLAS_CORETYPE) says so.
  if (mk::better_blas_core("Prescott", mk::supported_isas().back()).empty()) return;  // no AVX2
  const auto ignored = run_cli("info --system --json",
                               clean + " OPENBLAS_CORETYPE=Prescott MAMBAKIT_BLAS_CORE_REPLACED=Prescott", true);
  ASSERT_EQ(ignored.code, 0) << ignored.output;
  const std::string why = nlohmann::json::parse(ignored.output).at("blas_core_origin").get<std::string>();
  EXPECT_NE(why.find("set by mambakit: OpenBLAS chose Prescott"), std::string::npos) << why;
  EXPECT_NE(why.find("but this OpenBLAS ignored it"), std::string::npos) << why;
}

// --- the memory estimate -----------------------------------------------------------

ModelConfig tiny() {
  ModelConfig m;
  m.d_model = 16;
  m.n_layer = 2;
  m.d_state = 4;
  m.vocab_size = 256;
  return m;
}

TEST(MemoryEstimate, CountsWhatTheLayersKeep) {
  for (const auto& mixers : std::vector<std::vector<std::string>>{
           {"mamba"}, {"attention"}, {"mlp"}, {"s4d"}, {"s4"}, {"mamba", "attention", "mlp", "s4d"}}) {
    ModelConfig m = tiny();
    m.n_layer = int(mixers.size());
    m.mixers = mixers;
    EXPECT_EQ(count_params_estimate(m), double(count_params(m))) << mixers[0];
    m.n_classes = 3;
    m.pair_classifier = true;
    EXPECT_EQ(count_params_estimate(m), double(count_params(m))) << mixers[0];
  }
  const ModelConfig m = tiny();
  const auto e = estimate_train_memory(m, 2, 32, 1);
  const double P = double(count_params(m));
  EXPECT_EQ(e.params, 4 * P);
  EXPECT_EQ(e.grads, 4 * P);
  EXPECT_EQ(e.moments, 8 * P);
  EXPECT_GT(e.activations, 2 * 32 * 256 * 4.0);  // the logits alone
  // Activations grow with the batch, parameters do not.
  const auto e2 = estimate_train_memory(m, 4, 32, 1);
  EXPECT_EQ(e2.params, e.params);
  EXPECT_NEAR(e2.activations / e.activations, 2.0, 0.01);
  // Absurd sizes give a large number, not an overflow.
  ModelConfig huge = m;
  huge.d_model = 1000000000;
  huge.expand = 1000;
  EXPECT_GT(estimate_train_memory(huge, 1e9, 1e9, 64).total(), 1e20);
}

TEST(MemoryEstimate, RefusesWhatCannotFitAndAcceptsANormalRun) {
  TempDir d("memory");
  const std::string cfg = test::write_config(d, test::write_corpus(d), d / "run", 1);
  const RunConfig normal = load_config(cfg);
  ModelConfig m = normal.model;
  m.vocab_size = 256;
  EXPECT_NO_THROW(check_train_memory(normal, m, 2, 32, 1));
  // d_model 1e6 is blamed on model.d_model, a batch of 1e7 on
  // train.batch_size, each at the --set that gave it; nothing is allocated
  // (the check is arithmetic).
  const RunConfig wide = load_config(cfg, {"model.d_model=1000000"});
  m = wide.model;
  m.vocab_size = 256;
  try {
    check_train_memory(wide, m, 2, 32, 1);
    ADD_FAILURE() << "d_model 1e6 accepted";
  } catch (const tasks::ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("--set model.d_model=1000000: model.d_model 1000000: training needs at least ", 0), 0u) << msg;
    EXPECT_NE(msg.find("is available"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  const RunConfig big_batch = load_config(cfg, {"train.batch_size=10000000"});
  m = big_batch.model;
  m.vocab_size = 256;
  try {
    check_train_memory(big_batch, m, 1e7, 32, 1);
    ADD_FAILURE() << "batch 1e7 accepted";
  } catch (const tasks::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.batch_size drives the estimate most"), std::string::npos) << e.what();
  }
  // The figure compared with is MemAvailable + SwapFree, or the test's own.
  ASSERT_TRUE(available_memory().has_value());
  EXPECT_GT(*available_memory(), 0);
  setenv("MAMBAKIT_MEM_AVAILABLE", "1000", 1);
  EXPECT_EQ(*available_memory(), 1000);
  EXPECT_THROW(check_train_memory(normal, normal.model, 2, 32, 1), tasks::ConfigError);
  unsetenv("MAMBAKIT_MEM_AVAILABLE");
}

}  // namespace
}  // namespace mk::exp
