// Regression tests for parser defects in the dataset readers found while
// fuzzing them (fuzz/: the harnesses, or the review of each parser that
// wrote its harness; fuzz/README.md lists them all). Each input is the
// smallest form of the finding; the reader must answer with a one-line
// mk::Error naming the file, never a crash, UB, a huge allocation or a raw
// library exception.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "mambakit/datasets/audio.h"
#include "mambakit/datasets/fasta.h"
#include "mambakit/datasets/lra.h"
#include "mambakit/datasets/shards.h"
#include "mambakit/datasets/tokenizer.h"
#include "seqdata_test_util.h"

using mk::test::TempDir;
using mk::test::write_file;
namespace lra = mk::data::lra;

namespace {

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

std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

std::string png_chunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()));
  return be32(uint32_t(data.size())) + body + be32(uint32_t(crc));
}

// An 8-bit grayscale PNG whose header claims width x height, with one row
// of pixel data.
std::string png_claiming(uint32_t width, uint32_t height) {
  std::string ihdr = be32(width) + be32(height) + std::string("\x08\x00\x00\x00\x00", 5);
  std::string raw(1 + 8, '\0');
  uLongf n = compressBound(uLong(raw.size()));
  std::string idat(n, '\0');
  compress(reinterpret_cast<Bytef*>(&idat[0]), &n, reinterpret_cast<const Bytef*>(raw.data()), uLong(raw.size()));
  idat.resize(n);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", idat) + png_chunk("IEND", "");
}

std::string le16(uint16_t v) { return {char(v & 0xff), char(v >> 8)}; }
std::string le32(uint32_t v) { return le16(uint16_t(v & 0xffff)) + le16(uint16_t(v >> 16)); }

// A 16-bit PCM WAV of `frames` zero frames.
std::string wav(uint32_t rate, uint16_t channels, uint32_t frames) {
  const std::string data(size_t(frames) * channels * 2, '\0');
  const std::string fmt = le16(1) + le16(channels) + le32(rate) + le32(rate * channels * 2) +
                          le16(uint16_t(channels * 2)) + le16(16);
  const std::string body = "WAVEfmt " + le32(uint32_t(fmt.size())) + fmt + "data" + le32(uint32_t(data.size())) + data;
  return "RIFF" + le32(uint32_t(body.size())) + body;
}

}  // namespace

// A label like 1e300 was converted to int before its range was checked
// (undefined behaviour), and any label sized the classifier head.
TEST(FuzzFindings, LraLabelsOutOfIntRange) {
  TempDir d;
  const std::string text = d.file("text.tsv");
  write_file(text, "1e300\tsome text\n");
  EXPECT_TRUE(rejects([&] { lra::read_text_tsv(text); }, {text + ":1", "label 1e300 out of range [0, 65536)"}));
  write_file(text, "0\tok\n99999999999\tno\n");
  EXPECT_TRUE(rejects([&] { lra::read_text_tsv(text); }, {text + ":2", "out of range"}));
  const std::string listops = d.file("listops.tsv");
  write_file(listops, "[MAX 1 2 ]\t-1e300\n");
  EXPECT_TRUE(rejects([&] { lra::read_listops(listops); }, {listops + ":1", "out of range [0, 10)"}));
}

// The product of an IDX header's dimensions wrapped around in 64 bits, so a
// header claiming more than the file held could pass the size check.
TEST(FuzzFindings, IdxDimensionsOverflow) {
  TempDir d;
  const std::string images = d.file("images-idx3-ubyte");
  const std::string labels = d.file("labels-idx1-ubyte");
  write_file(images, be32(0x803) + be32(0x80000000u) + be32(0xffffffffu) + be32(0xffffffffu) + "abcd");
  write_file(labels, be32(0x801) + be32(1) + "\x01");
  EXPECT_TRUE(rejects([&] { lra::read_idx(images, labels); }, {images, "truncated IDX data", "larger than the 4 bytes"}));
  // A plausible header over too little data: refused before reading more.
  write_file(images, be32(0x803) + be32(100000) + be32(28) + be32(28) + std::string(784, '\0'));
  EXPECT_TRUE(rejects([&] { lra::read_idx(images, labels); }, {images, "item 1 of 100000 is incomplete"}));
}

// A PNG header may claim up to 10^6 x 10^6 pixels; the reader allocated what
// it claimed (the 32-bit size macro wrapped, too) before reading any data.
TEST(FuzzFindings, PngClaimsMorePixelsThanItsBytes) {
  TempDir d;
  const std::string huge = d.file("huge.png");
  write_file(huge, png_claiming(1000000, 1000000));
  EXPECT_TRUE(rejects([&] { lra::read_png(huge); }, {huge, "claims 1000000x1000000 pixels", "an image may have"}));
  const std::string big = d.file("big.png");
  write_file(big, png_claiming(40000, 40000));
  EXPECT_TRUE(rejects([&] { lra::read_png(big); }, {big, "claims 40000x40000 pixels", "-byte PNG can hold"}));
  const std::string ok = d.file("ok.png");
  write_file(ok, png_claiming(8, 1));
  EXPECT_EQ(lra::read_png(ok).pixels.size(), 8u);
}

// Pathfinder metadata named its images by paths joined to the root: an
// absolute path or ".." read any file on the machine.
TEST(FuzzFindings, PathfinderImagePathsStayInsideTheRoot) {
  TempDir d;
  write_file(d.file("metadata/0.npy"), "/etc passwd 0 1\n");
  EXPECT_TRUE(rejects([&] { lra::read_pathfinder(d.path()); }, {"0.npy:1", "image path '/etc/passwd' is not inside"}));
  write_file(d.file("metadata/0.npy"), "imgs/../.. x.png 0 1\n");
  EXPECT_TRUE(rejects([&] { lra::read_pathfinder(d.path()); }, {"0.npy:1", "is not inside"}));
}

// manifest.json: a shard path could leave the directory, and mistyped
// fields were either converted with undefined behaviour (a float vocab_size)
// or reported as raw nlohmann text without the field's name.
TEST(FuzzFindings, ManifestFieldsAreChecked) {
  TempDir d;
  {
    mk::data::ShardWriter w(d.file("train.mkshard"), "text", 256, mk::data::TokenDtype::U8);
    const int32_t ids[4] = {1, 2, 3, 4};
    w.append(ids, 4);
    w.finish();
  }
  const std::string m = d.file("manifest.json");
  auto manifest = [&](const nlohmann::json& splits, const nlohmann::json& vocab) {
    write_file(m, nlohmann::json{{"format", "mambakit-token-shards"}, {"kind", "text"}, {"vocab_size", vocab},
                                 {"splits", splits}}.dump());
  };
  manifest({{"train", {{"file", "train.mkshard"}, {"tokens", 4}}}}, 256);
  EXPECT_EQ(mk::data::open_prepared(d.path()).tokens.at("train"), 4u);
  manifest({{"train", {{"file", "../train.mkshard"}, {"tokens", 4}}}}, 256);
  EXPECT_TRUE(rejects([&] { mk::data::open_prepared(d.path()); }, {m, "splits.train.file", "not a file name beside"}));
  manifest({{"train", {{"file", "train.mkshard"}, {"tokens", 4}}}}, 1e20);
  EXPECT_TRUE(rejects([&] { mk::data::open_prepared(d.path()); }, {m, "\"vocab_size\"", "expected an integer"}));
  manifest({{"train", {{"file", "train.mkshard"}, {"tokens", -4}}}}, 256);
  EXPECT_TRUE(rejects([&] { mk::data::open_prepared(d.path()); }, {m, "splits.train.tokens"}));
  manifest({{"train", {{"file", 7}, {"tokens", 4}}}}, 256);
  EXPECT_TRUE(rejects([&] { mk::data::open_prepared(d.path()); }, {m, "splits.train.file", "expected a string"}));
  manifest(nlohmann::json::array(), 256);
  EXPECT_TRUE(rejects([&] { mk::data::open_prepared(d.path()); }, {m, "\"splits\"", "expected an object"}));
}

// tokenizer.json: ids sized a table (an id of 2^31-1 asked for 2^31 strings,
// and id + 1 overflowed), a float id was converted with undefined
// behaviour, and a flag of the wrong type gave raw nlohmann text.
TEST(FuzzFindings, BpeTokenizerIdsAndFlags) {
  TempDir d;
  const std::string fixture = mk::test::read_file(std::string(MAMBAKIT_SOURCE_DIR) + "/datasets/tests/data/bpe_tiny/tokenizer.json");
  const std::string p = d.file("tokenizer.json");
  auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = nlohmann::json::parse(fixture);
    edit(j);
    write_file(p, j.dump());
  };
  edited([](nlohmann::json& j) { j["model"]["vocab"]["zz"] = 2147483647; });
  EXPECT_TRUE(rejects([&] { mk::data::load_bpe_tokenizer(p); }, {p, "has id 2147483647, beyond any vocabulary"}));
  edited([](nlohmann::json& j) { j["model"]["vocab"]["zz"] = 1e30; });
  EXPECT_TRUE(rejects([&] { mk::data::load_bpe_tokenizer(p); }, {p, "token \"zz\"", "not an integer"}));
  edited([](nlohmann::json& j) { j["added_tokens"][0]["id"] = 4294967296.0; });
  EXPECT_TRUE(rejects([&] { mk::data::load_bpe_tokenizer(p); }, {p, "added token", "not an integer"}));
  edited([](nlohmann::json& j) { j["added_tokens"][0]["special"] = 3; });
  EXPECT_TRUE(rejects([&] { mk::data::load_bpe_tokenizer(p); }, {p, "\"special\" is a number, expected true or false"}));
  edited([](nlohmann::json& j) { j["model"].erase("merges"); });
  EXPECT_TRUE(rejects([&] { mk::data::load_bpe_tokenizer(p); }, {p, "malformed tokenizer.json", "merges"}));
}

// Audio: a rate libsamplerate cannot convert from was found out only after
// the output buffer (256x the input and more) was allocated, and the error
// did not name the file; a file with many channels allocated 64K frames of
// all of them for each read.
TEST(FuzzFindings, AudioRatesAndChannels) {
  TempDir d;
  const std::string slow = d.file("one_hz.wav");
  write_file(slow, wav(1, 1, 16));
  EXPECT_TRUE(rejects([&] { mk::data::read_audio(slow); }, {slow, "1 Hz to 16000 Hz", "[1/256, 256]"}));
  const std::string wide = d.file("wide.wav");
  write_file(wide, wav(16000, 1000, 3));
  mk::data::AudioReadOptions o;
  o.sample_rate = 0;
  EXPECT_EQ(mk::data::read_audio(wide, o).size(), 3u);
}

// Found by fuzz_fasta (fuzz/corpus/fasta/crash-cr-line-after-header): a
// line holding only a CR right after the header passed the syntax check
// (blank once the CR is stripped), htslib indexed the record with 0 bases
// per line, and every fetch then divided by zero (SIGFPE inside libhts).
TEST(FuzzFindings, FastaBlankLineAfterHeader) {
  TempDir d;
  for (const std::string& text : {std::string(">a\n\r\nC"), std::string(">atJCg>t\n\r\r\nC"), std::string(">a\n\nACGT\n")}) {
    const std::string p = d.file("x.fa");
    write_file(p, text);
    mk::data::FastaOptions o;
    o.cache_dir = d.file("cache");
    o.verbose = false;
    EXPECT_TRUE(rejects([&] { mk::data::FastaReader(p, o).fetch(0, 0, 1); }, {p + ":2", "blank line between the header and the sequence"}));
    std::filesystem::remove(p + ".fai");
  }
  // Blank lines after a record's residues are still fine.
  const std::string ok = d.file("ok.fa");
  write_file(ok, ">a\nACGT\nAC\n\n>b\nGG\n\n");
  mk::data::FastaOptions o;
  o.verbose = false;
  EXPECT_EQ(mk::data::FastaReader(ok, o).fetch(1, 0, 2), "GG");
}
