// `mambakit tokenize` and `mambakit tokenizer train`: ids as HF tokenizers
// gives them (the bpe_tiny fixture), trained vocabularies that tokenize
// afterwards, and one-line errors with the project's exit codes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "run_util.h"

namespace {

using json = nlohmann::json;
using mk::test::read_file;
using mk::test::run_cli;
using mk::test::TempDir;

const std::string kFixtureDir = std::string(MAMBAKIT_SOURCE_DIR) + "/datasets/tests/data/bpe_tiny";

void expect_one_line_error(const mk::test::Result& r, int code, const std::string& needle) {
  EXPECT_EQ(r.code, code) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

std::vector<int32_t> parse_ids(const std::string& line) {
  std::istringstream in(line);
  std::vector<int32_t> ids;
  for (int32_t id; in >> id;) ids.push_back(id);
  return ids;
}

// The fixture case whose text is `text`.
std::vector<int32_t> hf_ids(const std::string& text) {
  const json fixture = json::parse(read_file(kFixtureDir + "/expected.json"));
  for (const auto& c : fixture["cases"])
    if (c["text"] == text) return c["ids"].get<std::vector<int32_t>>();
  ADD_FAILURE() << "no fixture case " << text;
  return {};
}

TEST(TokenizerCli, TokenizePrintsHfIdsCountAndBytesPerToken) {
  const std::string text = "Hello world";
  const auto r = run_cli("tokenize " + kFixtureDir + " --text '" + text + "'");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string first = r.output.substr(0, r.output.find('\n'));
  const auto ids = hf_ids(text);
  EXPECT_EQ(parse_ids(first), ids);
  char summary[128];
  std::snprintf(summary, sizeof summary, "%zu tokens, 11 bytes, %.3f bytes per token (bpe, vocabulary 1001)",
                ids.size(), 11.0 / double(ids.size()));
  EXPECT_NE(r.output.find(summary), std::string::npos) << r.output;
}

TEST(TokenizerCli, TokenizeJsonAndFile) {
  TempDir d("tok_json");
  const std::string text = "In the beginning God created the heaven and the earth.";
  {
    std::ofstream(d / "verse.txt") << text;
  }
  const auto r =
      run_cli("tokenize " + kFixtureDir + "/tokenizer.json --file " + (d / "verse.txt") + " --json", "", true);
  ASSERT_EQ(r.code, 0) << r.output;
  const json j = json::parse(r.output);
  EXPECT_EQ(j["tokenizer"], "bpe");
  EXPECT_EQ(j["ids"].get<std::vector<int32_t>>(), hf_ids(text));
  EXPECT_EQ(j["bytes"], text.size());
  EXPECT_EQ(j["tokens"], j["ids"].size());
  const auto bytes = run_cli("tokenize bytes --text hi");
  EXPECT_EQ(bytes.output.substr(0, bytes.output.find('\n')), "104 105");
}

TEST(TokenizerCli, TokenizeErrors) {
  TempDir d("tok_err");
  expect_one_line_error(run_cli("tokenize " + (d / "nowhere") + " --text x"), 1, "nowhere");
  expect_one_line_error(run_cli("tokenize " + kFixtureDir), 2, "exactly one of --text and --file");
  expect_one_line_error(run_cli("tokenize " + kFixtureDir + " --text x --frob"), 2, "frob");
  expect_one_line_error(run_cli("tokenize " + kFixtureDir + " --file " + (d / "none.txt")), 1, "none.txt");
  {
    std::ofstream(d / "tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": []}})";
  }
  expect_one_line_error(run_cli("tokenize " + d.path.string() + " --text x"), 1, "model Unigram is not supported");
}

TEST(TokenizerCli, TrainBpeThenTokenize) {
  TempDir d("tok_train_bpe");
  const std::string corpus = mk::test::write_corpus(d);
  const auto r = run_cli("tokenizer train --model bpe --vocab 300 --out " + (d / "bpe") + " " + corpus);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote " + (d / "bpe") + "/tokenizer.json: vocabulary 300"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("distinct words"), std::string::npos) << "progress lines: " << r.output;
  const auto t = run_cli("tokenize " + (d / "bpe") + " --text 'the state space model' --json", "", true);
  ASSERT_EQ(t.code, 0) << t.output;
  const json j = json::parse(t.output);
  EXPECT_EQ(j["vocab_size"], 300);
  EXPECT_LT(j["tokens"].get<int>(), 21) << "frequent words merge into longer tokens";
}

TEST(TokenizerCli, TrainSentencePieceThenTokenize) {
  TempDir d("tok_train_spm");
  const std::string corpus = mk::test::write_corpus(d);
  for (const std::string type : {"bpe", "unigram"}) {
    const std::string out = d / ("spm_" + type);
    const auto r =
        run_cli("tokenizer train --model sentencepiece --type " + type + " --vocab 300 --out " + out + " " + corpus);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_TRUE(std::filesystem::exists(out + "/tokenizer.model"));
    const auto t = run_cli("tokenize " + out + " --text 'the state space model' --json", "", true);
    ASSERT_EQ(t.code, 0) << t.output;
    EXPECT_EQ(json::parse(t.output)["tokenizer"], "sentencepiece");
  }
}

TEST(TokenizerCli, TrainErrors) {
  TempDir d("tok_train_err");
  const std::string corpus = mk::test::write_corpus(d);
  expect_one_line_error(run_cli("tokenizer train --model bpe --vocab 10 --out " + (d / "o") + " " + corpus), 1,
                        "vocabulary size 10");
  expect_one_line_error(run_cli("tokenizer train --model bpe --vocab 300 --out " + (d / "o") + " " + (d / "no.txt")), 1,
                        "no.txt");
  expect_one_line_error(run_cli("tokenizer train --model wordpiece --vocab 300 --out " + (d / "o") + " " + corpus), 2,
                        "wordpiece");
  expect_one_line_error(
      run_cli("tokenizer train --model sentencepiece --type char --vocab 300 --out " + (d / "o") + " " + corpus), 2,
      "char");
  expect_one_line_error(run_cli("tokenizer train --model bpe --vocab 300 --out " + (d / "o")), 2, "text files");
  expect_one_line_error(run_cli("tokenizer frob"), 2, "unknown subcommand");
  EXPECT_FALSE(std::filesystem::exists(d / "o"));
}

}  // namespace
