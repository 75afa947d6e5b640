// The mambakit CLI on bad input: one clear line on stderr and a non-zero
// exit code (2 for usage errors, 1 for runtime errors), never a crash.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "mambakit/io/checkpoint.h"
#include "mambakit/io/npy.h"
#include "mambakit/models/sequence_model.h"

namespace {

namespace fs = std::filesystem;

struct Result {
  int code;
  std::string output;
};

Result run(const std::string& args) {
  std::string cmd = std::string(MAMBAKIT_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 512> buf;
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  int status = pclose(p);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {code, out};
}

std::string tmp(const std::string& name) {
  auto p = fs::temp_directory_path() / ("mambakit_cli_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(p);
  return p.string();
}

void expect_one_line_error(const Result& r, int code, const std::string& needle) {
  EXPECT_EQ(r.code, code) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

TEST(Cli, HelpExitsZero) {
  EXPECT_EQ(run("--help").code, 0);
  EXPECT_EQ(run("train --help").code, 0);
  EXPECT_EQ(run("generate --help").code, 0);
}

TEST(Cli, UnknownCommandAndFlagAreUsageErrors) {
  expect_one_line_error(run("frobnicate"), 2, "unknown command");
  expect_one_line_error(run("train --out x --data y --no-such-flag 3"), 2, "no-such-flag");
  expect_one_line_error(run("train --out x --data y --steps banana"), 2, "steps");
  expect_one_line_error(run("train --data y"), 2, "out");
}

TEST(Cli, MissingAndEmptyDataFilesAreRuntimeErrors) {
  std::string missing = tmp("missing.txt");
  expect_one_line_error(run("train --data " + missing + " --out " + tmp("o1")), 1, missing);
  std::string empty = tmp("empty.txt");
  std::ofstream(empty).close();
  expect_one_line_error(run("train --data " + empty + " --out " + tmp("o2")), 1, "empty");
  fs::remove(empty);
}

TEST(Cli, CorruptOrTruncatedCheckpointIsRejected) {
  std::string dir = tmp("ckpt");
  fs::create_directories(dir);
  // Not a model directory at all.
  expect_one_line_error(run("generate " + tmp("nodir") + " --tokens 3"), 1, "nodir");
  // A config.json but garbage weights.
  std::ofstream(dir + "/config.json")
      << R"({"model_type":"mamba","hidden_size":16,"num_hidden_layers":1,"vocab_size":256,)"
         R"("state_size":16,"expand":2,"conv_kernel":4,"time_step_rank":1})";
  std::ofstream(dir + "/model.safetensors") << "\x10\x00\x00\x00\x00\x00\x00\x00{not json";
  Result r = run("generate " + dir + " --tokens 3");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

TEST(Cli, TrainGenerateLogitsEndToEnd) {
  std::string dir = tmp("e2e");
  fs::create_directories(dir);
  {
    std::ofstream f(dir + "/t.txt");
    for (int i = 0; i < 200; ++i) f << "the quick brown fox jumps over the lazy dog. ";
  }
  Result t = run("train --data " + dir + "/t.txt --out " + dir + "/run --d-model 16 --n-layer 1 "
                 "--seq-len 32 --batch 2 --steps 3 --eval-windows 2");
  ASSERT_EQ(t.code, 0) << t.output;
  EXPECT_NE(t.output.find("validation bits per byte"), std::string::npos) << t.output;
  Result g = run("generate " + dir + "/run --prompt the --tokens 20 --seed 3");
  ASSERT_EQ(g.code, 0) << g.output;
  EXPECT_EQ(g.output.rfind("the", 0), 0u) << g.output;
  EXPECT_GE(g.output.size(), 23u);
  Result l = run("logits " + dir + "/run --text hello --out " + dir + "/l.npy");
  ASSERT_EQ(l.code, 0) << l.output;
  EXPECT_EQ(fs::file_size(dir + "/l.npy"), 128u + 5 * 256 * 4);
  fs::remove_all(dir);
}

// A classifier model has one row of class logits, not one row per byte;
// a two-tower model scores pairs and is refused with a clear message.
TEST(Cli, LogitsOfClassifierModels) {
  const std::string dir = tmp("clf");
  mk::ModelConfig cfg;
  cfg.d_model = 16;
  cfg.n_layer = 1;
  cfg.n_classes = 3;
  mk::SequenceModel<float> model(cfg);
  model.init(7);
  mk::save_model(dir + "/model", model);
  Result l = run("logits " + dir + "/model --text hello --out " + dir + "/l.npy");
  ASSERT_EQ(l.code, 0) << l.output;
  const mk::Tensor t = mk::read_npy(dir + "/l.npy");
  EXPECT_EQ(t.shape(), (std::vector<long>{1, 3}));

  cfg.pair_classifier = true;
  mk::SequenceModel<float> pair(cfg);
  pair.init(7);
  mk::save_model(dir + "/pair", pair);
  expect_one_line_error(run("logits " + dir + "/pair --text hello --out " + dir + "/p.npy"), 2,
                        "two-tower");
  fs::remove_all(dir);
}

}  // namespace
