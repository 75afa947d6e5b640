// LRA readers: small files in each published format (written here) parse to
// the expected tokens and labels; malformed rows give errors naming the file
// and the row.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "mambakit/datasets/lra.h"
#include "mambakit/error.h"

namespace fs = std::filesystem;
using namespace mk::data::lra;

namespace {

// A fresh directory per test, removed afterwards.
class LraReaders : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mk_lra_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& content) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  fs::path dir_;
};

// Runs f, expects an mk::Error whose message contains every one of parts.
template <typename F>
void expect_error(F f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected mk::Error containing '" << parts[0] << "'";
  } catch (const mk::Error& e) {
    std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg;
  }
}

std::vector<uint8_t> u8(std::initializer_list<int> v) { return std::vector<uint8_t>(v.begin(), v.end()); }

}  // namespace

TEST_F(LraReaders, ListOpsParsesReleaseRows) {
  // Python's csv writer ends rows with \r\n; parentheses are dropped.
  auto p = write("basic_train.tsv",
                 "Source\tTarget\r\n"
                 "( ( ( [MAX 2 ) 9 ) ] )\t9\r\n"
                 "( ( ( ( [SM 4 ) ( ( ( [MIN 7 ) 3 ) ] ) ) 8 ) ] )\t5\n");
  Dataset d = read_listops(p);
  ASSERT_EQ(d.examples.size(), 2u);
  EXPECT_EQ(d.vocab_size, 15);
  EXPECT_EQ(d.num_classes, 10);
  EXPECT_EQ(d.max_len, kListOpsLen);
  EXPECT_EQ(d.examples[0].tokens, u8({11, 2, 9, 14}));  // [MAX 2 9 ]
  EXPECT_EQ(d.examples[0].label, 9);
  EXPECT_EQ(d.examples[1].tokens, u8({13, 4, 10, 7, 3, 14, 8, 14}));
  EXPECT_EQ(d.examples[1].label, 5);
  // max_len truncates, max_examples stops early.
  Dataset t = read_listops(p, {3, 1});
  ASSERT_EQ(t.examples.size(), 1u);
  EXPECT_EQ(t.examples[0].tokens, u8({11, 2, 9}));
}

TEST_F(LraReaders, ListOpsMalformedRowsNameFileAndRow) {
  auto cols = write("a.tsv", "Source\tTarget\n( [MIN 1 2 ] )\t1\n[MIN 1 2 ]\t1\t7\n");
  expect_error([&] { read_listops(cols); }, {cols + ":3", "2 tab-separated columns", "got 3"});
  auto range = write("b.tsv", "Source\tTarget\n[MAX 1 2 ]\t12\n");
  expect_error([&] { read_listops(range); }, {range + ":2", "label 12 out of range [0, 10)"});
  auto tok = write("c.tsv", "Source\tTarget\n[MAX 1 [FOO 2 ]\t1\n");
  expect_error([&] { read_listops(tok); }, {tok + ":2", "unknown ListOps token '[FOO'"});
  auto label = write("d.tsv", "[MAX 1 2 ]\tx\n");
  expect_error([&] { read_listops(label); }, {label + ":1", "not an integer"});
  expect_error([&] { read_listops((dir_ / "missing.tsv").string()); }, {"missing.tsv", "cannot open"});
}

TEST_F(LraReaders, TextTsvIsByteLevel) {
  auto p = write("text.train.tsv", "label\ttext\n1\tab\tc\n0\t\xff\x01z\n2\thello\r\n");
  Dataset d = read_text_tsv(p);
  ASSERT_EQ(d.examples.size(), 3u);
  EXPECT_EQ(d.examples[0].label, 1);
  EXPECT_EQ(d.examples[0].tokens, u8({'a', 'b', '\t', 'c'}));  // text runs to the line end
  EXPECT_EQ(d.examples[1].tokens, u8({0xff, 0x01, 'z'}));
  EXPECT_EQ(d.examples[2].tokens, u8({'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(d.num_classes, 3);
  EXPECT_EQ(d.max_len, kTextLen);
  EXPECT_EQ(read_text_tsv(p, {2, 0}).examples[2].tokens, u8({'h', 'e'}));

  auto bad = write("bad.tsv", "1\tok\nno tab here\n");
  expect_error([&] { read_text_tsv(bad); }, {bad + ":2", "2 tab-separated columns"});
  auto neg = write("neg.tsv", "1\tok\n-1\tno\n");
  expect_error([&] { read_text_tsv(neg); }, {neg + ":2", "out of range"});
}

TEST_F(LraReaders, ImdbDirectoryLayout) {
  write("train/neg/0_3.txt", "bad film");
  write("train/neg/1_2.txt", "worse");
  write("train/pos/0_9.txt", "great");
  write("train/unsup/0_0.txt", "ignored");
  Dataset d = read_imdb_dir((dir_ / "train").string());
  ASSERT_EQ(d.examples.size(), 3u);
  EXPECT_EQ(d.examples[0].label, 0);
  EXPECT_EQ(std::string(d.examples[1].tokens.begin(), d.examples[1].tokens.end()), "worse");
  EXPECT_EQ(d.examples[2].label, 1);
  expect_error([&] { read_imdb_dir((dir_ / "test").string()); }, {"neg", "no such directory"});
}

TEST_F(LraReaders, RetrievalPairsAreTwoTower) {
  auto p = write("new_aan_pairs.train.tsv",
                 "1.0\tP01-1\tP02-2\tfirst paper\tsecond\n0\tA\tB\tx\tyz\n");
  Dataset d = read_retrieval(p, {5, 0});
  ASSERT_EQ(d.examples.size(), 2u);
  EXPECT_TRUE(d.two_tower);
  EXPECT_EQ(d.examples[0].label, 1);
  EXPECT_EQ(d.examples[0].tokens, u8({'f', 'i', 'r', 's', 't'}));  // truncated to 5
  EXPECT_EQ(d.examples[0].tokens2, u8({'s', 'e', 'c', 'o', 'n'}));
  EXPECT_EQ(d.examples[1].label, 0);
  EXPECT_EQ(d.examples[1].tokens2, u8({'y', 'z'}));
  EXPECT_EQ(read_retrieval(p).max_len, kRetrievalLen);

  auto cols = write("bad.tsv", "1\ta\tb\tonly one text\n");
  expect_error([&] { read_retrieval(cols); }, {cols + ":1", "5 tab-separated columns", "got 4"});
  auto label = write("bad2.tsv", "0\ta\tb\tx\ty\n2\ta\tb\tx\ty\n");
  expect_error([&] { read_retrieval(label); }, {label + ":2", "label 2 out of range [0, 2)"});
}

TEST_F(LraReaders, Cifar10BinaryToGrayscale) {
  // Two records: label, then R, G, B planes of 1024 bytes.
  std::string rec0(3073, '\0'), rec1(3073, '\0');
  rec0[0] = 3;
  rec0[1 + 0] = char(200);                    // pixel 0: pure red 200
  rec0[1 + 1] = rec0[1 + 1024 + 1] = rec0[1 + 2048 + 1] = char(77);  // pixel 1: gray 77
  rec0[1 + 2048 + 1023] = char(255);          // last pixel: pure blue 255
  rec1[0] = 9;
  for (int i = 0; i < 3072; ++i) rec1[1 + i] = char(255);
  auto p = write("data_batch_1.bin", rec0 + rec1);
  Dataset d = read_cifar10({p});
  ASSERT_EQ(d.examples.size(), 2u);
  EXPECT_EQ(d.max_len, 1024);
  EXPECT_EQ(d.examples[0].label, 3);
  ASSERT_EQ(d.examples[0].tokens.size(), 1024u);
  EXPECT_EQ(d.examples[0].tokens[0], 60);     // round(0.2989 * 200) = round(59.78)
  EXPECT_EQ(d.examples[0].tokens[1], 77);     // weights sum to 0.9999
  EXPECT_EQ(d.examples[0].tokens[1023], 29);  // round(0.1140 * 255) = round(29.07)
  EXPECT_EQ(d.examples[0].tokens[500], 0);
  EXPECT_EQ(d.examples[1].tokens[700], 255);

  auto trunc = write("short.bin", rec0 + rec1.substr(0, 100));
  expect_error([&] { read_cifar10({trunc}); }, {trunc, "truncated CIFAR-10 batch", "record 1"});
  std::string bad = rec1;
  bad[0] = 10;
  auto label = write("label.bin", rec0 + bad);
  expect_error([&] { read_cifar10({label}); }, {label, "record 1", "label 10 out of range"});
  EXPECT_EQ(cifar10_files("/x", "train").size(), 5u);
  EXPECT_EQ(cifar10_files("/x", "test")[0], "/x/test_batch.bin");
}

namespace {

std::string be32(uint32_t v) {
  return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

void write_gz(const std::string& path, const std::string& data) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, data.data(), unsigned(data.size())), int(data.size()));
  gzclose(f);
}

}  // namespace

TEST_F(LraReaders, IdxPlainAndGzip) {
  // 3 images of 2x2, labels 4 5 6.
  std::string images = be32(0x803) + be32(3) + be32(2) + be32(2);
  for (int i = 0; i < 12; ++i) images += char(i * 20);
  std::string labels = be32(0x801) + be32(3) + "\x04\x05\x06";
  auto ip = write("img-idx3-ubyte", images);
  auto lp = (dir_ / "lab-idx1-ubyte.gz").string();
  write_gz(lp, labels);  // gzip'd labels, plain images: both go through zlib
  Dataset d = read_idx(ip, lp);
  ASSERT_EQ(d.examples.size(), 3u);
  EXPECT_EQ(d.max_len, 4);
  EXPECT_EQ(d.num_classes, 7);
  EXPECT_EQ(d.examples[2].label, 6);
  EXPECT_EQ(d.examples[1].tokens, u8({80, 100, 120, 140}));

  auto magic = write("m-idx3", be32(0x802) + images.substr(4));
  expect_error([&] { read_idx(magic, lp); }, {magic, "bad IDX magic 0x00000802", "0x00000803"});
  auto trunc = write("t-idx3", images.substr(0, images.size() - 3));
  expect_error([&] { read_idx(trunc, lp); }, {trunc, "truncated IDX data", "item 2"});
  auto few = (dir_ / "few.gz").string();
  write_gz(few, be32(0x801) + be32(2) + "\x01\x02");
  expect_error([&] { read_idx(ip, few); }, {few, "2 labels for 3 images"});
}

TEST(LraFashionMnist, DebianPackageTestSplit) {
  if (!fs::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  Dataset d = read_fashion_mnist(kFashionMnistDir, "test");
  ASSERT_EQ(d.examples.size(), 10000u);
  EXPECT_EQ(d.max_len, 784);
  EXPECT_EQ(d.num_classes, 10);
  std::vector<int> per_class(10, 0);
  double mean = 0;
  for (const auto& e : d.examples) {
    ASSERT_EQ(e.tokens.size(), 784u);
    per_class[e.label]++;
    for (uint8_t px : e.tokens) mean += px;
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], 1000) << c;  // the test split is balanced
  mean /= 784.0 * 10000;
  EXPECT_GT(mean, 30);  // real images: mostly dark background, not empty or saturated
  EXPECT_LT(mean, 120);
}

TEST_F(LraReaders, PngRoundTripAndUnreadable) {
  GrayImage g;
  g.width = 5, g.height = 3;
  for (int i = 0; i < 15; ++i) g.pixels.push_back(uint8_t(i * 17));
  auto p = (dir_ / "x.png").string();
  write_png(p, g);
  GrayImage r = read_png(p);
  EXPECT_EQ(r.width, 5);
  EXPECT_EQ(r.height, 3);
  EXPECT_EQ(r.pixels, g.pixels);
  auto junk = write("junk.png", "not a png at all");
  expect_error([&] { read_png(junk); }, {junk, "cannot read PNG"});
}

TEST_F(LraReaders, PathfinderReleaseLayout) {
  auto img = [](int v) {
    GrayImage g;
    g.width = g.height = 4;
    g.pixels.assign(16, uint8_t(v));
    return g;
  };
  fs::create_directories(dir_ / "imgs/0");
  fs::create_directories(dir_ / "imgs/1");
  write_png((dir_ / "imgs/0/sample_0.png").string(), img(10));
  write_png((dir_ / "imgs/0/sample_1.png").string(), img(20));
  write_png((dir_ / "imgs/1/sample_0.png").string(), img(30));
  // metadata/10.npy must come after metadata/2.npy (numeric order).
  write("metadata/2.npy", "imgs/0 sample_0.png 0 1 14 2\nimgs/0 sample_1.png 1 0 14 2\n");
  write("metadata/10.npy", "imgs/1 sample_0.png 0 1 14 2\n");
  Dataset d = read_pathfinder(dir_.string());
  ASSERT_EQ(d.examples.size(), 3u);
  EXPECT_EQ(d.max_len, 16);
  EXPECT_EQ(d.examples[0].label, 1);
  EXPECT_EQ(d.examples[1].label, 0);
  EXPECT_EQ(d.examples[1].tokens[5], 20);
  EXPECT_EQ(d.examples[2].tokens[0], 30);
  expect_error([&] { read_pathfinder(dir_.string(), {}, 32); }, {"2.npy:1", "expected 32x32"});

  write("metadata/10.npy", "imgs/1 sample_0.png 0\n");
  expect_error([&] { read_pathfinder(dir_.string()); }, {"10.npy:1", "at least 4 fields"});
  write("metadata/10.npy", "imgs/1 sample_0.png 0 2\n");
  expect_error([&] { read_pathfinder(dir_.string()); }, {"10.npy:1", "label 2 out of range"});
  write("imgs/1/empty.png", "");
  write("metadata/10.npy", "imgs/1 sample_0.png 0 1\nimgs/1 empty.png 1 0\n");
  expect_error([&] { read_pathfinder(dir_.string()); }, {"10.npy:2", "empty.png", "cannot read PNG"});
  ReadOptions skip;
  skip.skip_empty_images = true;
  Dataset s = read_pathfinder(dir_.string(), skip);
  EXPECT_EQ(s.examples.size(), 3u);
  EXPECT_EQ(s.skipped, 1u);
  write("imgs/1/broken.png", "\x89PNG\r\n\x1a\n truncated");
  write("metadata/10.npy", "imgs/1 sample_0.png 0 1\nimgs/1 broken.png 1 0\n");
  expect_error([&] { read_pathfinder(dir_.string()); },
               {"10.npy:2", "broken.png", "cannot read PNG"});
}

TEST(LraSplits, DeterministicDisjointCover) {
  Dataset d;
  d.name = "pathfinder";
  for (int i = 0; i < 100; ++i) {
    Example e;
    e.tokens = {uint8_t(i)};
    e.label = i % 2;
    d.examples.push_back(e);
  }
  Splits a = split_dataset(d, 0.1, 0.1, 7), b = split_dataset(d, 0.1, 0.1, 7);
  EXPECT_EQ(a.val.examples.size(), 10u);
  EXPECT_EQ(a.test.examples.size(), 10u);
  EXPECT_EQ(a.train.examples.size(), 80u);
  std::set<int> seen;
  for (const Dataset* part : {&a.train, &a.val, &a.test})
    for (const auto& e : part->examples) seen.insert(e.tokens[0]);
  EXPECT_EQ(seen.size(), 100u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(a.val.examples[i].tokens, b.val.examples[i].tokens);
  bool shuffled = false;
  for (size_t i = 0; i < 80; ++i) shuffled |= a.train.examples[i].tokens[0] != int(i + 20);
  EXPECT_TRUE(shuffled);
  EXPECT_THROW(split_dataset(d, 0.6, 0.5, 1), mk::Error);
}
