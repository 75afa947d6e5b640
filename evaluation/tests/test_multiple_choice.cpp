// Zero-shot multiple choice: the JSONL reader (and its errors naming file and
// line) and acc / acc_norm with a scripted log-likelihood callback.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "mambakit/error.h"
#include "mambakit/evaluation/multiple_choice.h"

namespace fs = std::filesystem;
using namespace mk::eval;

namespace {

std::string write_tmp(const std::string& name, const std::string& content) {
  fs::path p = fs::temp_directory_path() / ("mk_mc_" + std::to_string(getpid()) + "_" + name);
  std::ofstream(p, std::ios::binary) << content;
  return p.string();
}

void expect_error(const std::string& path, const std::string& where, const std::string& why) {
  try {
    read_mc_jsonl(path);
    ADD_FAILURE() << "expected an error for " << path;
  } catch (const mk::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path + ":" + where), std::string::npos) << msg;
    EXPECT_NE(msg.find(why), std::string::npos) << msg;
  }
  fs::remove(path);
}

}  // namespace

TEST(MultipleChoice, ReadsJsonl) {
  auto p = write_tmp("ok.jsonl",
                     "{\"context\": \"The sky is\", \"choices\": [\"blue\", \"green\"], \"gold\": 0}\n"
                     "\n"
                     "{\"context\": \"2+2=\", \"choices\": [\"3\", \"4\", \"five\"], \"gold\": 1}\r\n");
  auto items = read_mc_jsonl(p);
  fs::remove(p);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].context, "The sky is");
  EXPECT_EQ(items[1].choices[2], "five");
  EXPECT_EQ(items[1].gold, 1);
}

TEST(MultipleChoice, MalformedLinesNameFileAndLine) {
  std::string ok = "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n";
  expect_error(write_tmp("a.jsonl", ok + "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n"),
               "2", "gold 2 out of range [0, 2)");
  expect_error(write_tmp("b.jsonl", ok + ok + "{not json\n"), "3", "invalid JSON");
  expect_error(write_tmp("c.jsonl", "{\"context\": \"c\", \"choices\": [\"a\"], \"gold\": 0}\n"), "1",
               "at least 2 choices");
  expect_error(write_tmp("d.jsonl", "{\"context\": 3, \"choices\": [\"a\", \"b\"], \"gold\": 0}\n"), "1",
               "\"context\" must be a string");
  expect_error(write_tmp("e.jsonl", "{\"context\": \"c\", \"choices\": [\"a\", \"b\"]}\n"), "1",
               "\"gold\" must be an integer");
}

TEST(MultipleChoice, AccAndLengthNormalisedAcc) {
  // Scripted log-likelihoods of " " + choice. Item 1: "a" -2 vs "bbbb" -4:
  // acc picks "a" (-2 > -4); per byte -2/1 < -4/4 = -1, so acc_norm picks "bbbb".
  // Item 2: "yes" -1 vs "no" -3: both pick "yes".
  std::map<std::string, double> ll = {{" a", -2}, {" bbbb", -4}, {" yes", -1}, {" no", -3}};
  std::vector<std::string> contexts_seen;
  LoglikFn f = [&](const std::string& ctx, const std::string& cont) {
    contexts_seen.push_back(ctx);
    return ll.at(cont);
  };
  std::vector<McItem> items = {{"q1", {"a", "bbbb"}, 1}, {"q2", {"yes", "no"}, 0}};
  McResult r = score_multiple_choice(items, f);
  ASSERT_EQ(r.n, 2u);
  EXPECT_EQ(r.items[0].pred, 0);
  EXPECT_EQ(r.items[0].pred_norm, 1);
  EXPECT_EQ(r.items[1].pred, 0);
  EXPECT_DOUBLE_EQ(r.acc, 0.5);       // item 2 only
  EXPECT_DOUBLE_EQ(r.acc_norm, 1.0);  // both
  // stderr: sample std of (0, 1) is sqrt(1/2); / sqrt(2) -> 0.5.
  EXPECT_NEAR(r.acc_stderr, 0.5, 1e-12);
  EXPECT_NEAR(r.acc_norm_stderr, 0.0, 1e-12);
  EXPECT_EQ(contexts_seen, (std::vector<std::string>{"q1", "q1", "q2", "q2"}));
  EXPECT_EQ(r.items[0].loglik, (std::vector<double>{-2, -4}));
  // Another delimiter reaches the callback.
  McItemScore s = score_mc_item({"q", {"a", "bbbb"}, 0}, [](const std::string&, const std::string& c) {
    return c == "\na" ? 0.0 : -1.0;
  }, "\n");
  EXPECT_EQ(s.pred, 0);
}
