// Training the language task with a tokenizer, through the CLI: the run
// and each checkpoint carry the tokenizer, eval's perplexity family and the
// trainer's own evaluation agree on bits per byte, generate reads and writes
// text through it, prepared BPE shards train, and a resumed run refuses a
// tokenizer that changed under it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <cmath>

#include "run_util.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using mk::test::read_file;
using mk::test::run_cli;
using mk::test::TempDir;

const std::string kBpe = std::string(MAMBAKIT_SOURCE_DIR) + "/datasets/tests/data/bpe_tiny";

std::string bpe_config(const TempDir& d, const std::string& data, const std::string& tokenizer,
                       const std::string& out, long steps) {
  const std::string cfg = mk::test::write_config(d, data, out, steps, fs::path(out).filename().string() + ".yaml");
  return cfg + " --set data.tokenizer=" + tokenizer + " --set eval.every=2 --set output.save_every=2";
}

TEST(LanguageBpeCli, RunCarriesItsTokenizerAndBitsPerByteAgree) {
  TempDir d("bpe_run");
  fs::copy(kBpe, d / "tok");
  const std::string corpus = mk::test::write_corpus(d), run = d / "run";
  const auto t = run_cli("train " + bpe_config(d, corpus, d / "tok", run, 4));
  ASSERT_EQ(t.code, 0) << t.output;
  // The run, its latest checkpoint and best/ each hold the tokenizer.
  for (const std::string& dir : {run, run + "/checkpoints/step_4", run + "/best"})
    EXPECT_EQ(read_file(dir + "/tokenizer.json"), read_file(kBpe + "/tokenizer.json")) << dir;
  const json cfg = json::parse(read_file(run + "/config.json"));
  EXPECT_EQ(cfg["vocab_size"], 1001);

  // The trainer's evaluation (task metrics) and eval's perplexity family
  // (sliding windows) count the bytes separately; on the same windows they
  // must give the same bits per byte.
  const json summary = json::parse(read_file(run + "/summary.json"));
  const double trained_bpb = summary["final"]["val_bpb"].get<double>();
  const auto e = run_cli("eval " + run + " --metrics bpb,nll --no-summary", "", true);
  ASSERT_EQ(e.code, 0) << e.output;
  const std::string out = e.output.substr(0, e.output.find_last_not_of('\n') + 1);
  const json ev = json::parse(out.substr(out.find_last_of('\n') + 1));  // the last line is JSON
  EXPECT_NEAR(ev["val_bpb"].get<double>(), trained_bpb, 1e-9 * trained_bpb);
  const double bytes_per_token = ev["val_bytes"].get<double>() / ev["val_tokens"].get<double>();
  EXPECT_GT(bytes_per_token, 2.0);  // BPE tokens, not bytes
  EXPECT_NEAR(ev["val_bpb"].get<double>(), ev["val_nll"].get<double>() / std::log(2.0) / bytes_per_token, 1e-9);

  // Generation goes through the run's tokenizer: ids on the last line, all
  // inside the 1001-token vocabulary.
  const auto g = run_cli("generate " + run + " --prompt 'In the' --tokens 6 --temperature 0 --print-ids");
  ASSERT_EQ(g.code, 0) << g.output;
  std::string last = g.output.substr(0, g.output.find_last_not_of('\n') + 1);
  last = last.substr(last.find_last_of('\n') == std::string::npos ? 0 : last.find_last_of('\n') + 1);
  std::istringstream in(last);
  int n = 0;
  for (int id; in >> id; ++n) EXPECT_TRUE(id >= 0 && id < 1001) << id;
  EXPECT_EQ(n, 6) << g.output;
  // The same run's tokenizer is found from a checkpoint directory too.
  const auto g2 = run_cli("generate " + run + "/checkpoints/step_4 --prompt 'In the' --tokens 6 --temperature 0");
  EXPECT_EQ(g2.code, 0) << g2.output;
}

TEST(LanguageBpeCli, PreparedShardsTrainAndAResumeRefusesAChangedTokenizer) {
  TempDir d("bpe_shards");
  fs::copy(kBpe, d / "tok");
  const std::string corpus = mk::test::write_corpus(d);
  const auto p = run_cli("prepare text " + corpus + " --tokenizer " + (d / "tok") + " --split 0.9,0.1 --out " +
                         (d / "shards"));
  ASSERT_EQ(p.code, 0) << p.output;
  EXPECT_NE(p.output.find("vocab 1001"), std::string::npos) << p.output;
  const std::string run = d / "run";
  const auto t = run_cli("train " + mk::test::write_config(d, d / "shards", run, 2) + " --set eval.every=2");
  ASSERT_EQ(t.code, 0) << t.output;
  EXPECT_TRUE(fs::exists(run + "/tokenizer.json"));

  // A run trained from text with tok/, whose tokenizer is then replaced.
  const std::string run2 = d / "run2";
  ASSERT_EQ(run_cli("train " + bpe_config(d, corpus, d / "tok", run2, 2)).code, 0);
  const auto tr = run_cli("tokenizer train --model bpe --vocab 300 --out " + (d / "tok") + " " + corpus);
  ASSERT_EQ(tr.code, 0) << tr.output;
  const auto r = run_cli("train " + bpe_config(d, corpus, d / "tok", run2, 4) + " --resume");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("different one"), std::string::npos) << r.output;
}

TEST(LanguageBpeCli, TokenizerKeyBelongsToTheLanguageTask) {
  TempDir d("bpe_key");
  const std::string cfg = mk::test::write_config(d, mk::test::write_corpus(d), d / "run", 2);
  const auto r = run_cli("train " + cfg + " --set task.name=selective_copying --set data.tokenizer=" + kBpe);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("data.tokenizer"), std::string::npos) << r.output;
}

}  // namespace
