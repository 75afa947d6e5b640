// Regression tests for what fuzz/fuzz_mc_jsonl.cpp found in the evaluation
// readers (see fuzz/README.md). Each input is the smallest form of the
// finding; the reader must answer with a one-line mk::Error naming the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "mambakit/error.h"
#include "mambakit/evaluation/multiple_choice.h"

namespace fs = std::filesystem;

namespace {

std::string write_tmp(const std::string& name, const std::string& content) {
  fs::path p = fs::temp_directory_path() / ("mk_fuzzfind_" + std::to_string(getpid()) + "_" + name);
  std::ofstream(p, std::ios::binary) << content;
  return p.string();
}

}  // namespace

// A number beyond double's range is not a JSON parse_error but an
// out_of_range error, which escaped read_mc_jsonl as a raw nlohmann
// exception.
TEST(FuzzFindings, McJsonlNumberOutOfRange) {
  const std::string path =
      write_tmp("range.jsonl", "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"gold\": 1e999}\n");
  try {
    mk::eval::read_mc_jsonl(path);
    ADD_FAILURE() << "expected an error";
  } catch (const mk::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path + ":1: invalid JSON"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("json.exception"), std::string::npos) << msg;
  }
  fs::remove(path);
}
