// Regression tests for parser defects in libmamba's readers found while
// fuzzing them (fuzz/: the harnesses, or the review of each parser that
// wrote its harness; fuzz/README.md lists them all). Each input is the
// smallest form of the finding; the reader must answer with a one-line
// mk::Error naming the file, never a crash, UB or a raw library exception.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/io/model_io.h"
#include "mambakit/io/npy.h"
#include "mambakit/io/safetensors.h"
#include "mambakit/tensor.h"

using mk::test::ScratchDir;
using mk::test::spit;

namespace {

// fn throws a one-line mk::Error containing every part, and no library tag.
::testing::AssertionResult rejects(const std::function<void()>& fn, std::initializer_list<std::string> parts) {
  auto r = mk::test::throws_error(fn, parts);
  if (!r) return r;
  try {
    fn();
  } catch (const mk::Error& e) {
    const std::string msg = e.what();
    if (msg.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "spans lines: " << msg;
    if (msg.find("json.exception") != std::string::npos)
      return ::testing::AssertionFailure() << "raw library text: " << msg;
  }
  return r;
}

std::string safetensors_file(const std::string& header_json, const std::string& data = "") {
  std::string out(8, '\0');
  const uint64_t n = header_json.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header_json + data;
}

std::string npy_file(const std::string& dict, const std::string& data = "") {
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += char(dict.size() & 0xff);
  out += char(dict.size() >> 8);
  return out + dict + data;
}

}  // namespace

// An empty tensor (a zero dimension) whose other dimensions multiply past
// int64: the reader accepted it (0 elements, 0 bytes) and the Tensor's
// strides then overflowed (signed overflow, UB).
TEST(FuzzFindings, SafetensorsEmptyTensorWithHugeDimensions) {
  ScratchDir d;
  const std::string p = d.file("x.safetensors");
  spit(p, safetensors_file(
              R"({"t":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}})"));
  EXPECT_TRUE(rejects([&] { mk::read_safetensors(p); }, {p, "tensor 't'", "too many elements"}));
  EXPECT_TRUE(rejects([&] { mk::MappedSafetensors m(p); }, {p, "too many elements"}));
}

TEST(FuzzFindings, NpyEmptyArrayWithHugeDimensions) {
  ScratchDir d;
  const std::string p = d.file("x.npy");
  spit(p, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4), }\n"));
  EXPECT_TRUE(rejects([&] { mk::read_npy(p); }, {p, "too many elements"}));
}

// The NPY header ends in a newline and was quoted whole in the error.
TEST(FuzzFindings, NpyHeaderErrorIsOneLine) {
  ScratchDir d;
  const std::string p = d.file("x.npy");
  spit(p, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n", std::string(8, '\0')));
  EXPECT_TRUE(rejects([&] { mk::read_npy(p); }, {p, "malformed NPY header", "\\n"}));
}

// A list-valued eos_token_id took its first entry with a plain conversion:
// 4294967296 became token 0 instead of an error.
TEST(FuzzFindings, ModelConfigTokenListOutOfRange) {
  ScratchDir d;
  const std::string p = d.file("config.json");
  spit(p, R"({"model_type":"mamba","hidden_size":16,"num_hidden_layers":1,"vocab_size":64,"eos_token_id":[4294967296]})");
  EXPECT_TRUE(rejects([&] { mk::read_model_config(p); }, {p, "eos_token_id", "out of range"}));
}

// Invalid JSON was reported with nlohmann's "[json.exception.parse_error.101]"
// tag in the message.
TEST(FuzzFindings, JsonErrorsCarryNoLibraryTag) {
  ScratchDir d;
  const std::string p = d.file("config.json");
  spit(p, "{\"hidden_size\": 1e999}");
  EXPECT_TRUE(rejects([&] { mk::read_model_config(p); }, {p, "invalid JSON"}));
  const std::string st = d.file("bad.safetensors");
  spit(st, safetensors_file("{\"a\": "));
  EXPECT_TRUE(rejects([&] { mk::read_safetensors(st); }, {st, "invalid JSON header"}));
}

// Messages quote what they read (names, keys, header fields); a newline in
// it must not split the message.
TEST(FuzzFindings, ErrorMessagesAreOneLine) {
  const mk::Error e(std::string("f.json: key \"a\nb\"\r: bad \x01 value\x7f"));
  EXPECT_STREQ(e.what(), "f.json: key \"a\\nb\"\\r: bad \\x01 value\\x7f");
  EXPECT_EQ(mk::Error::one_line(e.what()), e.what());  // idempotent: re-wrapping changes nothing
  ScratchDir d;
  const std::string p = d.file("x.safetensors");
  spit(p, safetensors_file(R"({"bad\nname":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", std::string(8, '\0')));
  EXPECT_TRUE(rejects([&] { mk::read_safetensors(p); }, {p, "bad\\nname"}));
}

TEST(FuzzFindings, LibraryWhatDropsTheTag) {
  const std::runtime_error e("[json.exception.parse_error.101] parse error at line 1: syntax error\nmore");
  EXPECT_EQ(mk::library_what(e), "parse error at line 1: syntax error");
}

// load_model allocated the model config.json describes before comparing it
// with the weights: a config claiming a 2^30-token vocabulary (or a million
// layers) beside a small checkpoint ended in std::bad_alloc. The layout is
// now checked against the checkpoint's headers first.
TEST(FuzzFindings, ModelConfigLargerThanItsWeights) {
  const std::string fixture = std::string(MAMBAKIT_SOURCE_DIR) + "/libmamba/tests/data/hf_mamba_tiny";
  ScratchDir d;
  std::filesystem::copy_file(fixture + "/model.safetensors", d.file("model.safetensors"));
  nlohmann::json cfg = nlohmann::json::parse(mk::test::slurp(fixture + "/config.json"));
  cfg["vocab_size"] = 1 << 30;
  spit(d.file("config.json"), cfg.dump());
  EXPECT_TRUE(rejects([&] { mk::load_model(d.path()); },
                      {d.file("model.safetensors"), "backbone.embeddings.weight", "(1073741824, 64)"}));
  cfg["vocab_size"] = 256;
  cfg["num_hidden_layers"] = 1000000;
  spit(d.file("config.json"), cfg.dump());
  EXPECT_TRUE(rejects([&] { mk::load_model(d.path()); }, {d.file("config.json"), "num_hidden_layers is 1000000"}));
  cfg["num_hidden_layers"] = 2;
  spit(d.file("config.json"), cfg.dump());
  EXPECT_EQ(mk::load_model(d.path())->config().vocab_size, 256);
}
