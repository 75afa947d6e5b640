// Tokenizers: byte-level BPE against ids from HF tokenizers (fixture made by
// tools/reference/make_tokenizer_fixtures.py), lossless round trips of any
// byte string, special tokens, one-line errors for tokenizer.json content
// mambakit does not implement, the byte tokenizer, SentencePiece training
// and use, mambakit's own BPE trainer, and load_tokenizer's choices.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "mambakit/datasets/tokenizer.h"
#include "mambakit/datasets/tokenizer_train.h"
#include "seqdata_test_util.h"

namespace {
using namespace mk::data;
using json = nlohmann::json;
using mk::test::read_file;
using mk::test::TempDir;
using mk::test::throws_error;
using mk::test::write_file;

const std::string kFixtureDir = std::string(MAMBAKIT_SOURCE_DIR) + "/datasets/tests/data/bpe_tiny";

const json& fixture() {
  static const json j = json::parse(read_file(kFixtureDir + "/expected.json"));
  return j;
}

std::string show(const std::string& s) { return json(s).dump().substr(0, 80); }

std::vector<int32_t> ids_of(const json& case_, const char* key) { return case_.at(key).get<std::vector<int32_t>>(); }

// Random byte strings: arbitrary bytes (mostly invalid UTF-8), and
// splices of fixture strings with random bytes between them.
std::vector<std::string> random_byte_strings(unsigned seed, int count) {
  std::mt19937 rng(seed);
  const auto& cases = fixture()["cases"];
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    std::string s;
    const int parts = 1 + int(rng() % 6);
    for (int p = 0; p < parts; ++p) {
      if (rng() % 2) {
        const std::string t = cases[rng() % cases.size()]["text"];
        s += t.substr(0, 200);
      } else {
        for (int k = int(rng() % 40); k > 0; --k) s += char(rng() % 256);
      }
    }
    out.push_back(s);
  }
  return out;
}

// The fixture's tokenizer.json with one JSON change, in a temp dir.
std::string edited_fixture(const TempDir& d, const std::function<void(json&)>& edit) {
  json j = json::parse(read_file(kFixtureDir + "/tokenizer.json"));
  edit(j);
  const std::string path = d.file("tokenizer.json");
  write_file(path, j.dump());
  return path;
}

// Deterministic pseudo-English with some accents, CJK and digits.
std::string generated_text(size_t bytes, unsigned seed) {
  static const char* syllables[] = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "the", "and", "ing", "er",
                                    "qu", "z", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "42", "ph"};
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < bytes) {
    std::string line;
    for (int w = 3 + int(rng() % 12); w > 0; --w) {
      for (int k = 1 + int(rng() % 3); k > 0; --k) line += syllables[rng() % (sizeof syllables / sizeof *syllables)];
      line += (rng() % 9 == 0) ? ", " : " ";
    }
    line.back() = '.';
    s += line + "\n";
  }
  return s;
}

::testing::AssertionResult one_line_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  auto r = throws_error(f, parts);
  if (!r) return r;
  try {
    f();
  } catch (const mk::Error& e) {
    if (std::string(e.what()).find('\n') != std::string::npos)
      return ::testing::AssertionFailure() << "message spans lines: " << e.what();
  }
  return r;
}

// --- byte-level BPE against HF tokenizers -------------------------------------

TEST(TokenizerBpe, SameIdsAsHfForEveryFixtureString) {
  const auto tok = load_tokenizer(kFixtureDir);
  ASSERT_EQ(tok->name(), "bpe");
  EXPECT_EQ(tok->vocab_size(), fixture()["vocab_size"].get<int>());
  int same = 0, total = 0;
  for (const auto& c : fixture()["cases"]) {
    const std::string text = c["text"];
    const auto ids = tok->encode(text);
    ++total;
    if (ids == ids_of(c, "ids")) ++same;
    else ADD_FAILURE() << "ids differ from HF's for " << show(text);
  }
  std::printf("identical ids for %d of %d fixture strings\n", same, total);
  EXPECT_EQ(same, total);
}

TEST(TokenizerBpe, PreTokenizerSplitsLikeHf) {
  for (const auto& c : fixture()["cases"]) {
    std::vector<std::string> ours;
    for (const auto& piece : gpt2_pretokenize(c["text"])) ours.push_back(byte_level_spelling(piece));
    EXPECT_EQ(ours, c["pretokens"].get<std::vector<std::string>>()) << show(c["text"]);
  }
}

TEST(TokenizerBpe, DecodeInvertsEncodeForFixtureStrings) {
  const auto tok = load_tokenizer(kFixtureDir);
  for (const auto& c : fixture()["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(tok->decode(tok->encode(text)), text) << show(text);
    EXPECT_EQ(tok->decode(ids_of(c, "ids")), text) << "decoding HF's ids of " << show(text);
  }
}

TEST(TokenizerBpe, DecodeInvertsEncodeForRandomByteStrings) {
  const auto tok = load_tokenizer(kFixtureDir);
  for (const auto& s : random_byte_strings(7, 400)) {
    const auto ids = tok->encode(s);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok->vocab_size());
    ASSERT_EQ(tok->decode(ids), s) << show(s);
  }
  // Pre-tokens always concatenate back to the text.
  for (const auto& s : random_byte_strings(8, 200)) {
    std::string joined;
    for (const auto& p : gpt2_pretokenize(s)) joined += p;
    ASSERT_EQ(joined, s);
  }
}

TEST(TokenizerBpe, SpecialAndAddedTokens) {
  const auto tok = load_tokenizer(kFixtureDir + "/tokenizer.json");
  const auto& special = fixture()["special_ids"];
  const int32_t eot = special["<|endoftext|>"], pad = special["<|padding|>"], spaces = special["    "];
  EXPECT_EQ(tok->token_to_id("<|endoftext|>"), eot);
  EXPECT_EQ(tok->id_to_token(eot), "<|endoftext|>");
  EXPECT_EQ(tok->eos_id(), eot);  // from tokenizer_config.json
  EXPECT_EQ(tok->bos_id(), eot);
  EXPECT_EQ(tok->decode({eot, pad}), "<|endoftext|><|padding|>");
  EXPECT_EQ(tok->decode({spaces}), "    ");
  // Matched verbatim before BPE, anywhere in the text.
  const auto ids = tok->encode("ab<|endoftext|>cd");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), eot), 1);
  EXPECT_EQ(tok->encode("<|endoftext|>"), std::vector<int32_t>{eot});
  // Vocabulary spellings: GPT-2's byte characters.
  EXPECT_EQ(tok->id_to_token(*tok->token_to_id("\xc4\xa0")), "\xc4\xa0");  // "Ġ" = space
  EXPECT_EQ(tok->decode({*tok->token_to_id("\xc4\xa0")}), " ");
  EXPECT_FALSE(tok->token_to_id("no such token"));
}

TEST(TokenizerBpe, EosAndBosFromConfigOrEndOfText) {
  TempDir d;
  std::filesystem::copy_file(kFixtureDir + "/tokenizer.json", d.file("tokenizer.json"));
  const auto tok = load_tokenizer(d.path());
  EXPECT_EQ(tok->eos_id(), fixture()["special_ids"]["<|endoftext|>"].get<int32_t>());
  EXPECT_EQ(tok->bos_id(), tok->eos_id());
  // tokenizer_config.json overrides, in either spelling; null means none.
  write_file(d.file("tokenizer_config.json"), R"({"eos_token": {"content": "<|padding|>"}, "bos_token": null})");
  const auto configured = load_tokenizer(d.path());
  EXPECT_EQ(configured->eos_id(), fixture()["special_ids"]["<|padding|>"].get<int32_t>());
  EXPECT_FALSE(configured->bos_id());
}

TEST(TokenizerBpe, IdsOutsideTheVocabularyAreErrors) {
  const auto tok = load_tokenizer(kFixtureDir);
  EXPECT_TRUE(one_line_error([&] { tok->decode({5, tok->vocab_size()}); }, {"token id 1001", "outside"}));
  EXPECT_TRUE(one_line_error([&] { tok->decode({-1}); }, {"token id -1"}));
  EXPECT_TRUE(one_line_error([&] { tok->id_to_token(99999); }, {"99999"}));
}

TEST(TokenizerBpe, MergesAsStringsGiveTheSameIds) {
  TempDir d;
  const std::string path = edited_fixture(d, [](json& j) {
    json merges = json::array();
    for (const auto& m : j["model"]["merges"])
      merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    j["model"]["merges"] = merges;
  });
  const auto tok = load_tokenizer(path);
  for (const auto& c : fixture()["cases"]) EXPECT_EQ(tok->encode(c["text"]), ids_of(c, "ids")) << show(c["text"]);
}

TEST(TokenizerBpe, AddPrefixSpaceAndNoRegexAsHf) {
  TempDir d;
  const auto prefixed =
      load_tokenizer(edited_fixture(d, [](json& j) { j["pre_tokenizer"]["add_prefix_space"] = true; }));
  for (const auto& c : fixture()["cases"])
    EXPECT_EQ(prefixed->encode(c["text"]), ids_of(c, "prefix_space_ids")) << show(c["text"]);
  const auto whole = load_tokenizer(edited_fixture(d, [](json& j) { j["pre_tokenizer"]["use_regex"] = false; }));
  for (const auto& c : fixture()["cases"])
    EXPECT_EQ(whole->encode(c["text"]), ids_of(c, "no_regex_ids")) << show(c["text"]);
}

// GPT-NeoX's tokenizer.json asks for NFC. mambakit honours it for texts NFC
// leaves alone and refuses the others rather than tokenizing them wrongly.
TEST(TokenizerBpe, NfcNormalizerGivesHfIdsOrRefuses) {
  TempDir d;
  const auto tok = load_tokenizer(edited_fixture(d, [](json& j) { j["normalizer"] = {{"type", "NFC"}}; }));
  int same = 0, refused = 0;
  for (const auto& c : fixture()["cases"]) {
    const std::string text = c["text"];
    const bool ascii = std::all_of(text.begin(), text.end(), [](char ch) { return (unsigned char)ch < 0x80; });
    try {
      EXPECT_EQ(tok->encode(text), ids_of(c, "nfc_ids")) << show(text);
      EXPECT_FALSE(c["nfc_changes"].get<bool>()) << "NFC changes " << show(text) << " but it was not refused";
      ++same;
    } catch (const mk::Error& e) {
      EXPECT_NE(std::string(e.what()).find("NFC"), std::string::npos) << e.what();
      EXPECT_FALSE(ascii) << "NFC never changes ASCII, yet " << show(text) << " was refused";
      ++refused;
    }
  }
  std::printf("NFC tokenizer: %d strings with HF's ids, %d refused\n", same, refused);
}

TEST(TokenizerBpe, UnsupportedContentIsAOneLineError) {
  TempDir d;
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& j) { j["model"]["type"] = "WordPiece"; }, "model WordPiece is not supported"},
      {[](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, "normalizer Lowercase is not supported"},
      {[](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "normalizer NFKC"},
      {[](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "pre_tokenizer Whitespace is not supported"},
      {[](json& j) { j["pre_tokenizer"] = nullptr; }, "pre_tokenizer null"},
      {[](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "decoder WordPiece"},
      {[](json& j) { j["post_processor"] = {{"type", "TemplateProcessing"}}; }, "post_processor TemplateProcessing"},
      {[](json& j) { j["added_tokens"][0]["lstrip"] = true; }, "uses lstrip"},
      {[](json& j) { j["model"]["dropout"] = 0.1; }, "dropout"},
      {[](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }, "continuing_subword_prefix"},
      {[](json& j) { j["model"]["merges"][3] = json::array({"zzz", "q"}); }, "merge 3"},
      {[](json& j) { j["model"]["merges"][2] = "a b c"; }, "merge 2"},
      {[](json& j) { j["model"]["vocab"].erase("\xc4\xa0"); }, "byte 32"},
      {[](json& j) { j.erase("model"); }, "no \"model\""},
  };
  for (const auto& [edit, expected] : cases) {
    const std::string path = edited_fixture(d, edit);
    EXPECT_TRUE(one_line_error([&] { load_tokenizer(path); }, {path, expected})) << expected;
  }
  write_file(d.file("tokenizer.json"), "{\"model\": [1, 2");
  EXPECT_TRUE(one_line_error([&] { load_tokenizer(d.path()); }, {"not valid JSON"}));
}

// --- bytes ---------------------------------------------------------------------------

TEST(TokenizerBytes, IdsAreByteValues) {
  const auto tok = make_byte_tokenizer();
  EXPECT_EQ(tok->name(), "bytes");
  EXPECT_EQ(tok->vocab_size(), 256);
  EXPECT_EQ(tok->encode("A\xff\n"), (std::vector<int32_t>{65, 255, 10}));
  EXPECT_EQ(tok->decode({104, 105}), "hi");
  EXPECT_EQ(tok->token_to_id("A"), 65);
  EXPECT_FALSE(tok->token_to_id("AB"));
  EXPECT_EQ(tok->id_to_token(66), "B");
  EXPECT_FALSE(tok->eos_id());
  for (const auto& s : random_byte_strings(3, 100)) ASSERT_EQ(tok->decode(tok->encode(s)), s);
  EXPECT_TRUE(one_line_error([&] { tok->decode({256}); }, {"token id 256", "256"}));
}

// --- load_tokenizer ------------------------------------------------------------------

TEST(TokenizerLoad, PicksByWhatThePathHolds) {
  TempDir d;
  EXPECT_EQ(load_tokenizer(d.path())->name(), "bytes");  // neither file
  EXPECT_EQ(load_tokenizer("bytes")->name(), "bytes");
  EXPECT_EQ(load_tokenizer(kFixtureDir)->name(), "bpe");
  EXPECT_TRUE(one_line_error([&] { load_tokenizer(d.file("missing")); }, {"missing", "no such file"}));
  write_file(d.file("notes.txt"), "x");
  EXPECT_TRUE(one_line_error([&] { load_tokenizer(d.file("notes.txt")); }, {"notes.txt", "not a tokenizer"}));
  write_file(d.file("a.model"), "not a protobuf");
  EXPECT_TRUE(one_line_error([&] { load_tokenizer(d.path()); }, {"a.model", "not a SentencePiece model"}));
  write_file(d.file("b.model"), "x");
  EXPECT_TRUE(one_line_error([&] { load_tokenizer(d.path()); }, {"2 SentencePiece"}));
}

// --- SentencePiece ---------------------------------------------------------------

const std::vector<std::string> kRoundTrips = {
    "kalo mine the ruvi.", "  two leading spaces and   runs  ", "tabs\tand\nnewlines\n\n",
    "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
    "emoji \xf0\x9f\x98\x80 unseen \xe4\xb8\xad",
    "1234567890",
};

TEST(TokenizerSentencePiece, TrainEncodeDecodeRoundTrip) {
  TempDir d;
  write_file(d.file("corpus.txt"), generated_text(80000, 1));
  for (const std::string type : {"bpe", "unigram"}) {
    SentencePieceTrainOptions o;
    o.vocab_size = 400;
    o.model_type = type;
    const std::string out = d.file("spm_" + type);
    const auto r = train_sentencepiece({d.file("corpus.txt")}, out, o);
    EXPECT_EQ(r.vocab_size, 400);
    EXPECT_EQ(r.path, out + "/tokenizer.model");
    const auto tok = load_tokenizer(out);
    ASSERT_EQ(tok->name(), "sentencepiece");
    EXPECT_EQ(tok->vocab_size(), 400);
    EXPECT_TRUE(tok->eos_id() && tok->bos_id());
    for (const auto& s : kRoundTrips) EXPECT_EQ(tok->decode(tok->encode(s)), s) << type << ": " << show(s);
    const std::string sample = generated_text(2000, 9);
    const auto ids = tok->encode(sample);
    EXPECT_LT(ids.size(), sample.size() / 2) << type << ": learned pieces should cover several bytes each";
    for (int32_t id : {0, 5, 399}) EXPECT_EQ(tok->token_to_id(tok->id_to_token(id)), id);
    EXPECT_FALSE(tok->token_to_id("no such piece"));
    EXPECT_TRUE(one_line_error([&] { tok->decode({400}); }, {"token id 400"}));
  }
}

TEST(TokenizerSentencePiece, TrainingErrorsAreOneLine) {
  TempDir d;
  write_file(d.file("small.txt"), "tiny corpus\n");
  SentencePieceTrainOptions o;
  o.vocab_size = 5000;
  EXPECT_TRUE(one_line_error([&] { train_sentencepiece({d.file("small.txt")}, d.file("out"), o); }, {"SentencePiece"}));
  EXPECT_TRUE(one_line_error([&] { train_sentencepiece({d.file("none.txt")}, d.file("out"), o); },
                             {"none.txt", "no such file"}));
  o.model_type = "char";
  EXPECT_TRUE(one_line_error([&] { train_sentencepiece({d.file("small.txt")}, d.file("out"), o); }, {"char"}));
  EXPECT_FALSE(std::filesystem::exists(d.file("out/tokenizer.model")));
}

// --- mambakit's BPE trainer ------------------------------------------------------

TEST(TokenizerBpeTrainer, OutputLoadsAndRoundTrips) {
  TempDir d;
  const std::string corpus = generated_text(60000, 2) + "<|endoftext|>" + generated_text(20000, 3);
  write_file(d.file("corpus.txt"), corpus);
  BpeTrainOptions o;
  o.vocab_size = 600;
  const auto r = train_bpe({d.file("corpus.txt")}, d.file("bpe"), o);
  EXPECT_EQ(r.vocab_size, 600);
  EXPECT_EQ(r.input_bytes, corpus.size());
  const auto tok = load_tokenizer(d.file("bpe"));
  ASSERT_EQ(tok->name(), "bpe");
  EXPECT_EQ(tok->vocab_size(), 600);
  EXPECT_EQ(tok->token_to_id("<|endoftext|>"), 0);
  EXPECT_EQ(tok->eos_id(), 0);
  for (const auto& c : fixture()["cases"]) EXPECT_EQ(tok->decode(tok->encode(c["text"])), c["text"].get<std::string>());
  for (const auto& s : random_byte_strings(11, 200)) ASSERT_EQ(tok->decode(tok->encode(s)), s) << show(s);
  // The special token stays whole and is never merged into.
  const auto ids = tok->encode(corpus);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 1);
  EXPECT_LT(ids.size(), corpus.size() / 3) << "merges should compress the training text";
  // Frequent syllables became single tokens.
  EXPECT_EQ(tok->encode(" the").size(), 1u);
}

TEST(TokenizerBpeTrainer, DeterministicAndStopsWhenNothingIsLeftToMerge) {
  TempDir d;
  write_file(d.file("corpus.txt"), generated_text(20000, 4));
  BpeTrainOptions o;
  o.vocab_size = 400;
  train_bpe({d.file("corpus.txt")}, d.file("a"), o);
  train_bpe({d.file("corpus.txt")}, d.file("b"), o);
  EXPECT_EQ(read_file(d.file("a/tokenizer.json")), read_file(d.file("b/tokenizer.json")));
  // "abab...": merges run out long before 5000 tokens.
  write_file(d.file("tiny.txt"), "abababab abab");
  o.vocab_size = 5000;
  const auto r = train_bpe({d.file("tiny.txt")}, d.file("tiny"), o);
  EXPECT_LT(r.vocab_size, 270);
  // Every training word ended as one token.
  const auto tiny = load_tokenizer(d.file("tiny"));
  EXPECT_EQ(tiny->encode("abababab").size(), 1u);
  EXPECT_EQ(tiny->encode(" abab").size(), 1u);
}

TEST(TokenizerBpeTrainer, ErrorsAreOneLine) {
  TempDir d;
  write_file(d.file("c.txt"), "some text\n");
  BpeTrainOptions o;
  o.vocab_size = 200;
  EXPECT_TRUE(one_line_error([&] { train_bpe({d.file("c.txt")}, d.file("o"), o); }, {"vocabulary size 200", "257"}));
  o.vocab_size = 300;
  EXPECT_TRUE(
      one_line_error([&] { train_bpe({d.file("missing.txt")}, d.file("o"), o); }, {"missing.txt", "no such file"}));
  write_file(d.file("empty.txt"), "");
  EXPECT_TRUE(one_line_error([&] { train_bpe({d.file("empty.txt")}, d.file("o"), o); }, {"empty"}));
  EXPECT_FALSE(std::filesystem::exists(d.file("o/tokenizer.json")));
}

}  // namespace
