// Token shards: write/read round trips for each dtype, a clear error for
// each kind of damaged shard, nothing half-written, and prepare_shards for
// text, FASTA and audio.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "mambakit/datasets/dna.h"
#include "mambakit/datasets/shards.h"
#include "seqdata_test_util.h"

namespace {
using namespace mk::data;
using mk::test::TempDir;
using mk::test::throws_error;
using mk::test::write_file;

std::vector<std::vector<int32_t>> random_docs(unsigned seed, uint32_t vocab, int docs) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(docs));
  for (auto& d : out) {
    d.resize(100 + rng() % 900);
    for (auto& x : d) x = int32_t(rng() % vocab);
  }
  return out;
}

void write_docs(const std::string& path, const std::vector<std::vector<int32_t>>& docs, uint32_t vocab, TokenDtype dt) {
  ShardWriter w(path, "test", vocab, dt);
  for (const auto& d : docs) {
    w.append(d.data(), d.size());
    w.end_segment();
  }
  w.finish();
}

TEST(Shards, RoundTripEveryDtype) {
  TempDir d;
  for (auto [dt, vocab] : std::vector<std::pair<TokenDtype, uint32_t>>{
           {TokenDtype::U8, 9}, {TokenDtype::U8, 256}, {TokenDtype::U16, 50277}, {TokenDtype::I32, 1u << 20}}) {
    auto docs = random_docs(unsigned(vocab), vocab, 5);
    const std::string p = d.file("s" + std::to_string(vocab) + ".mkshard");
    write_docs(p, docs, vocab, dt);
    ShardReader r(p);
    EXPECT_EQ(r.header().version, kShardVersion);
    EXPECT_EQ(r.header().dtype, dt);
    EXPECT_EQ(r.header().vocab_size, vocab);
    EXPECT_EQ(r.header().kind, "test");
    EXPECT_EQ(r.header().segments, 5u);
    std::vector<int32_t> all;
    std::vector<uint64_t> offsets{0};
    for (const auto& doc : docs) all.insert(all.end(), doc.begin(), doc.end()), offsets.push_back(all.size());
    ASSERT_EQ(r.size(), all.size());
    EXPECT_EQ(r.read(0, all.size()), all);
    EXPECT_EQ(r.segment_offsets(), offsets);
    EXPECT_EQ(std::filesystem::file_size(p), kShardHeaderBytes + all.size() * dtype_size(dt) + 8 * offsets.size());

    // Windows never cross a document.
    ShardWindowSampler s(r, 64, 3);
    std::vector<int32_t> buf(64);
    for (int k = 0; k < 100; ++k) {
      WindowPos w = s.next(buf.data());
      ASSERT_LE(w.start + 64, int64_t(docs[w.segment].size()));
      ASSERT_TRUE(std::equal(buf.begin(), buf.end(), docs[w.segment].begin() + w.start));
    }
  }
  for (const auto& f : mk::test::files_in(d.path())) EXPECT_EQ(f.find(".tmp."), std::string::npos) << f;
}

TEST(Shards, SingleStreamHasNoTable) {
  TempDir d;
  std::vector<uint8_t> bytes{1, 2, 3, 4, 5};
  ShardWriter w(d.file("a.mkshard"), "text", 256, TokenDtype::U8);
  w.append(bytes.data(), bytes.size());
  w.finish();
  ShardReader r(d.file("a.mkshard"));
  EXPECT_EQ(r.header().segments, 0u);
  EXPECT_EQ(r.segment_offsets(), (std::vector<uint64_t>{0, 5}));
  EXPECT_EQ(std::filesystem::file_size(d.file("a.mkshard")), kShardHeaderBytes + 5);
}

TEST(Shards, AbandonedWriterLeavesNothing) {
  TempDir d;
  {
    ShardWriter w(d.file("x.mkshard"), "dna", 9, TokenDtype::U8);
    std::vector<int32_t> ok{1, 2, 3}, bad{4, 9};
    w.append(ok.data(), ok.size());
    EXPECT_TRUE(throws_error([&] { w.append(bad.data(), bad.size()); }, {"x.mkshard", "token 9", "position 4", "[0, 9)"}));
  }
  EXPECT_TRUE(mk::test::files_in(d.path()).empty()) << "neither the shard nor its temporary file";
  // An old shard stays intact when its replacement fails.
  write_docs(d.file("y.mkshard"), random_docs(1, 9, 2), 9, TokenDtype::U8);
  auto before = mk::test::read_file(d.file("y.mkshard"));
  {
    ShardWriter w(d.file("y.mkshard"), "dna", 9, TokenDtype::U8);
    std::vector<int32_t> v{1, 2};
    w.append(v.data(), v.size());
  }
  EXPECT_EQ(mk::test::read_file(d.file("y.mkshard")), before);
  EXPECT_TRUE(throws_error([&] { ShardWriter w(d.file("z"), "a-kind-name-too-long", 9, TokenDtype::U8); }, {"longer than 15"}));
  EXPECT_TRUE(throws_error([&] { ShardWriter w(d.file("z"), "k", 300, TokenDtype::U8); }, {"does not fit"}));
}

TEST(Shards, DamagedShardsSayWhatIsWrong) {
  TempDir d;
  write_docs(d.file("good.mkshard"), random_docs(2, 9, 3), 9, TokenDtype::U8);
  const std::string good = mk::test::read_file(d.file("good.mkshard"));
  auto variant = [&](const std::string& name, const std::function<void(std::string&)>& edit) {
    std::string bytes = good;
    edit(bytes);
    write_file(d.file(name), bytes);
    return d.file(name);
  };
  std::string p;
  p = variant("magic", [](std::string& b) { std::memcpy(&b[0], "GGUF\0\0\0\0", 8); });
  EXPECT_TRUE(throws_error([&] { ShardReader r(p); }, {p, "not a mambakit token shard", "GGUF"}));
  p = variant("version", [](std::string& b) { b[8] = 7; });
  EXPECT_TRUE(throws_error([&] { ShardReader r(p); }, {p, "version 7", "newer"}));
  p = variant("dtype", [](std::string& b) { b[12] = 9; });
  EXPECT_TRUE(throws_error([&] { ShardReader r(p); }, {p, "dtype code 9"}));
  p = variant("truncated", [](std::string& b) { b.resize(b.size() - 100); });
  EXPECT_TRUE(throws_error([&] { ShardReader r(p); }, {p, "header says", "truncated or corrupt"}));
  p = variant("extra", [](std::string& b) { b += "xyz"; });
  EXPECT_TRUE(throws_error([&] { ShardReader r(p); }, {p, "but the file has"}));
  p = variant("count", [](std::string& b) { b[16] = char(b[16] + 1); });
  EXPECT_TRUE(throws_error([&] { ShardReader r(p); }, {p, "header says"}));
  p = variant("short", [](std::string& b) { b.resize(20); });
  EXPECT_TRUE(throws_error([&] { ShardReader r(p); }, {p, "shorter than the 64-byte shard header"}));
  p = variant("empty", [](std::string& b) { b.clear(); });
  EXPECT_TRUE(throws_error([&] { ShardReader r(p); }, {p, "0 bytes"}));
  p = variant("token", [](std::string& b) { b[kShardHeaderBytes + 10] = 42; });
  EXPECT_TRUE(throws_error([&] { ShardReader r(p); }, {p, "token 42 at position 10", "[0, 9)"}));
  p = variant("table", [](std::string& b) { b[b.size() - 1] = 1; });
  EXPECT_TRUE(throws_error([&] { ShardReader r(p); }, {p, "document table is corrupt"}));
  EXPECT_TRUE(throws_error([&] { ShardReader r(d.file("absent.mkshard")); }, {d.file("absent.mkshard")}));
  EXPECT_NO_THROW(ShardReader r(d.file("good.mkshard")));
}

TEST(Prepare, TextDnaAndAudio) {
  TempDir d;
  // text: two files, each cut contiguously.
  std::string t1(1000, 'a'), t2;
  for (int i = 0; i < 2000; ++i) t2 += char('A' + i % 26);
  write_file(d.file("t1.txt"), t1);
  write_file(d.file("t2.txt"), t2);
  PrepareOptions o;
  o.split = {0.8, 0.1, 0.1};
  auto r = prepare_shards("text", {d.file("t1.txt"), d.file("t2.txt")}, d.file("text"), o);
  EXPECT_EQ(r.vocab_size, 256u);
  EXPECT_EQ(r.tokens["train"] + r.tokens["val"] + r.tokens["test"], 3000u);
  EXPECT_EQ(r.tokens["train"], 2400u);
  ShardReader tr(r.files["train"]);
  auto v = tr.read(0, 800);
  EXPECT_EQ(std::string(v.begin(), v.end()), t1.substr(0, 800));
  EXPECT_EQ(tr.segment_offsets(), (std::vector<uint64_t>{0, 800, 2400}));
  auto again = open_prepared(d.file("text"));
  EXPECT_EQ(again.kind, "text");
  EXPECT_EQ(again.splits, (std::vector<std::string>{"train", "val", "test"}));
  EXPECT_EQ(again.tokens, r.tokens);

  // dna: a BED with a split column decides the split.
  std::mt19937 rng(1);
  std::string s1, s2;
  for (int i = 0; i < 3000; ++i) s1 += "ACGTN"[rng() % 5], s2 += "acgt"[rng() % 4];
  write_file(d.file("g.fa"), ">c1\n" + s1 + "\n>c2\n" + s2 + "\n");
  write_file(d.file("g.bed"), "c1 0 2000 train\nc2 0 1000 train\nc1 2000 2500 valid\nc2 2000 3000 test\n");
  o.bed = d.file("g.bed");
  o.fasta.cache_dir = d.file("cache");
  o.fasta.verbose = false;
  auto g = prepare_shards("fasta", {d.file("g.fa")}, d.file("dna"), o);
  EXPECT_EQ(g.kind, "dna");
  EXPECT_EQ(g.vocab_size, 9u);
  EXPECT_EQ(g.tokens["train"], 3000u);
  EXPECT_EQ(g.tokens["val"], 500u);
  ShardReader te(g.files["test"]);
  EXPECT_EQ(te.read(0, 1000), dna::encode(s2.substr(2000)));
  ShardReader trd(g.files["train"]);
  EXPECT_EQ(trd.segment_offsets(), (std::vector<uint64_t>{0, 2000, 3000}));
  o.bed.clear();
  auto g2 = prepare_shards("dna", {d.file("g.fa")}, d.file("dna2"), o);
  EXPECT_EQ(g2.tokens["train"], 4800u);

  // audio: a folder with split folders keeps them.
  for (const char* split : {"train", "val"}) {
    std::vector<float> x(4000);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(0.5 * std::sin(0.01 * double(i)));
    std::filesystem::create_directories(d.file(std::string("audio/") + split));
    write_wav(d.file(std::string("audio/") + split + "/a.wav"), x, 16000);
  }
  auto a = prepare_shards("audio", {d.file("audio")}, d.file("ash"), PrepareOptions{});
  EXPECT_EQ(a.kind, "audio-mulaw");
  EXPECT_EQ(a.sample_rate, 16000);
  EXPECT_EQ(a.splits, (std::vector<std::string>{"train", "val"}));
  ShardReader at(a.files["val"]);
  auto want = quantize(read_audio(d.file("audio/val/a.wav")), Quantization::MuLaw);
  auto got = at.read(0, want.size());
  EXPECT_TRUE(std::equal(want.begin(), want.end(), got.begin()));
  EXPECT_EQ(open_prepared(d.file("ash")).sample_rate, 16000);

  EXPECT_TRUE(throws_error([&] { prepare_shards("midi", {d.file("t1.txt")}, d.file("m"), o); }, {"unknown kind 'midi'"}));
  EXPECT_TRUE(throws_error([&] { prepare_shards("text", {d.file("missing.txt")}, d.file("m"), o); }, {d.file("missing.txt")}));
  EXPECT_FALSE(std::filesystem::exists(d.file("m/manifest.json")));
  for (const auto& f : mk::test::files_in(d.file("m"))) ADD_FAILURE() << "left behind: " << f;
  // A shard that does not match its manifest.
  std::filesystem::copy_file(g.files["val"], d.file("text/val.mkshard"), std::filesystem::copy_options::overwrite_existing);
  EXPECT_TRUE(throws_error([&] { open_prepared(d.file("text")); }, {"val.mkshard", "does not match"}));
}

}  // namespace
