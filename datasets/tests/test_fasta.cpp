// FASTA/FASTQ through htslib: region fetches equal an independent parse of
// the file (plain, gzip re-compressed into the cache, bgzip), FASTQ quality,
// index building and caching (in the cache directory, never beside the
// input), and a clear error for each kind of bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>

#include "mambakit/datasets/dna.h"
#include "mambakit/datasets/fasta.h"
#include "seqdata_test_util.h"

namespace {
using mk::data::Compression;
using mk::data::FastaOptions;
using mk::data::FastaReader;
using mk::data::SeqFormat;
using mk::test::TempDir;
using mk::test::throws_error;
using mk::test::write_file;
namespace stdfs = std::filesystem;

struct Rec {
  std::string name, seq;
  int width;
};

// Mixed case (soft-masking), N runs and IUPAC codes, a different line width
// per record, last lines shorter.
std::vector<Rec> make_records(unsigned seed) {
  std::mt19937 rng(seed);
  const std::string alphabet = "ACGTACGTACGTacgtNnRYKMSW";
  std::vector<Rec> recs{{"chr1", "", 60}, {"chr2", "", 70}, {"tiny", "", 13}, {"chrM", "", 80}};
  const size_t lens[] = {1000, 3571, 61, 12003};
  for (size_t r = 0; r < recs.size(); ++r)
    for (size_t i = 0; i < lens[r]; ++i) recs[r].seq += alphabet[rng() % alphabet.size()];
  return recs;
}

std::string to_fasta(const std::vector<Rec>& recs) {
  std::string s;
  for (const auto& r : recs) {
    s += ">" + r.name + " some description\n";
    for (size_t i = 0; i < r.seq.size(); i += size_t(r.width)) s += r.seq.substr(i, size_t(r.width)) + "\n";
  }
  return s;
}

// The test's own straightforward FASTA parser, independent of the library.
std::map<std::string, std::string> parse_fasta(const std::string& text) {
  std::map<std::string, std::string> out;
  std::string name;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line[0] == '>') {
      name = line.substr(1, line.find_first_of(" \t") - 1);
      out[name];
    } else {
      out[name] += line;
    }
  }
  return out;
}

// Every record whole, its edges, line boundaries and random regions.
void expect_regions_match(const FastaReader& fa, const std::map<std::string, std::string>& truth, unsigned seed) {
  std::mt19937 rng(seed);
  ASSERT_EQ(fa.sequences().size(), truth.size());
  for (const auto& [name, seq] : truth) {
    const int64_t n = int64_t(seq.size());
    int idx = fa.find(name);
    ASSERT_GE(idx, 0) << name;
    EXPECT_EQ(fa.sequences()[size_t(idx)].length, n) << name;
    std::vector<std::pair<int64_t, int64_t>> regions{{0, n}, {0, 1}, {n - 1, n}, {0, std::min<int64_t>(n, 60)},
                                                     {std::min<int64_t>(n - 1, 59), std::min<int64_t>(n, 61)}};
    for (int k = 0; k < 40; ++k) {
      int64_t b = int64_t(rng() % uint64_t(n)), e = b + 1 + int64_t(rng() % uint64_t(n - b));
      regions.emplace_back(b, e);
    }
    for (auto [b, e] : regions) {
      ASSERT_EQ(fa.fetch(name, b, e), seq.substr(size_t(b), size_t(e - b))) << name << ":" << b << "-" << e;
    }
    // Tokens are the tokenizer applied to the same slice.
    int64_t b = n / 3, e = std::min<int64_t>(n, b + 500);
    EXPECT_EQ(fa.fetch_tokens(idx, b, e), mk::data::dna::encode(seq.substr(size_t(b), size_t(e - b))));
  }
}

FastaOptions opts_in(const TempDir& d) {
  FastaOptions o;
  o.cache_dir = d.file("cache");
  o.verbose = false;
  return o;
}

// The one file of the cache directory whose name ends with `suffix`.
std::string cached(const TempDir& d, const std::string& suffix) {
  std::string found;
  for (const auto& f : mk::test::files_in(d.file("cache")))
    if (f.size() >= suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0) {
      EXPECT_TRUE(found.empty()) << "two cache files end with " << suffix << ": " << found << ", " << f;
      found = f;
    }
  return found;
}

// Files of the input's folder (the cache folder aside), to show nothing was added.
std::vector<std::string> beside(const TempDir& d) {
  std::vector<std::string> out;
  for (const auto& e : stdfs::directory_iterator(d.path()))
    if (e.path().filename() != "cache") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Fasta, PlainFileRegionsMatchIndependentParseAndIndexIsCached) {
  TempDir d;
  const std::string text = to_fasta(make_records(1));
  write_file(d.file("g.fa"), text);
  FastaReader fa(d.file("g.fa"), opts_in(d));
  EXPECT_EQ(beside(d), std::vector<std::string>{"g.fa"}) << "nothing written beside the input";
  const std::string fai = cached(d, ".fai");
  ASSERT_FALSE(fai.empty()) << "index built in the cache directory";
  EXPECT_EQ(stdfs::path(fai).filename().string().rfind("g.fa.", 0), 0u) << fai;
  EXPECT_EQ(fa.compression(), Compression::None);
  EXPECT_EQ(fa.format(), SeqFormat::Fasta);
  expect_regions_match(fa, parse_fasta(text), 2);
  // The second open uses the index as it is.
  auto t = stdfs::last_write_time(fai);
  FastaReader again(d.file("g.fa"), opts_in(d));
  EXPECT_EQ(stdfs::last_write_time(fai), t);
  expect_regions_match(again, parse_fasta(text), 3);
}

// A read-only input folder is no different: the index lives in the cache.
// A fresh index the user made beside the file is read, not rewritten.
TEST(Fasta, ReadOnlyFolderAndTheUsersOwnIndex) {
  TempDir d;
  const std::string text = to_fasta(make_records(2));
  stdfs::create_directories(d.file("ro"));
  write_file(d.file("ro/g.fa"), text);
  stdfs::permissions(d.file("ro"), stdfs::perms::owner_write, stdfs::perm_options::remove);
  {
    FastaReader fa(d.file("ro/g.fa"), opts_in(d));
    expect_regions_match(fa, parse_fasta(text), 4);
  }
  stdfs::permissions(d.file("ro"), stdfs::perms::owner_write, stdfs::perm_options::add);
  EXPECT_FALSE(stdfs::exists(d.file("ro/g.fa.fai")));
  // The user's own index (a copy of ours) beside the file is used as it is.
  stdfs::copy_file(cached(d, ".fai"), d.file("ro/g.fa.fai"));
  stdfs::remove_all(d.file("cache"));
  const auto t = stdfs::last_write_time(d.file("ro/g.fa.fai"));
  FastaReader again(d.file("ro/g.fa"), opts_in(d));
  expect_regions_match(again, parse_fasta(text), 5);
  EXPECT_EQ(stdfs::last_write_time(d.file("ro/g.fa.fai")), t);
  EXPECT_TRUE(mk::test::files_in(d.file("cache")).empty()) << "the user's index served";
}

// $MAMBAKIT_CACHE picks the cache directory (before $MAMBAKIT_CACHE_DIR,
// the earlier name, and $XDG_CACHE_HOME).
TEST(Fasta, CacheDirectoryFromTheEnvironment) {
  struct Env {
    const char* name;
    const char* value;
  };
  struct Case {
    std::vector<Env> env;
    std::string want;
  } cases[] = {
      {{{"MAMBAKIT_CACHE", "/a"}, {"MAMBAKIT_CACHE_DIR", "/b"}, {"XDG_CACHE_HOME", "/c"}}, "/a"},
      {{{"MAMBAKIT_CACHE", ""}, {"MAMBAKIT_CACHE_DIR", "/b"}, {"XDG_CACHE_HOME", "/c"}}, "/b"},
      {{{"MAMBAKIT_CACHE", ""}, {"MAMBAKIT_CACHE_DIR", ""}, {"XDG_CACHE_HOME", "/c"}}, "/c/mambakit"},
  };
  std::map<std::string, std::string> saved;
  for (const char* n : {"MAMBAKIT_CACHE", "MAMBAKIT_CACHE_DIR", "XDG_CACHE_HOME"})
    if (const char* v = std::getenv(n)) saved[n] = v;
  for (const auto& c : cases) {
    for (const auto& e : c.env) setenv(e.name, e.value, 1);
    EXPECT_EQ(mk::data::default_cache_dir(), c.want);
  }
  for (const char* n : {"MAMBAKIT_CACHE", "MAMBAKIT_CACHE_DIR", "XDG_CACHE_HOME"})
    saved.count(n) ? setenv(n, saved[n].c_str(), 1) : unsetenv(n);
}

TEST(Fasta, PlainGzipIsRecompressedToBgzfInTheCacheOnce) {
  TempDir d;
  const std::string text = to_fasta(make_records(4));
  write_file(d.file("g.fa"), text);
  mk::test::gzip_file(d.file("g.fa"), d.file("g.fa.gz"));
  FastaReader fa(d.file("g.fa.gz"), opts_in(d));
  EXPECT_EQ(fa.compression(), Compression::Gzip);
  EXPECT_EQ(fa.indexed_path().rfind(d.file("cache") + "/", 0), 0u) << fa.indexed_path();
  EXPECT_TRUE(stdfs::exists(fa.indexed_path() + ".fai"));
  EXPECT_TRUE(stdfs::exists(fa.indexed_path() + ".gzi"));
  EXPECT_FALSE(stdfs::exists(d.file("g.fa.gz.fai"))) << "nothing written beside the source";
  expect_regions_match(fa, parse_fasta(text), 5);

  auto t = stdfs::last_write_time(fa.indexed_path());
  FastaReader again(d.file("g.fa.gz"), opts_in(d));
  EXPECT_EQ(again.indexed_path(), fa.indexed_path());
  EXPECT_EQ(stdfs::last_write_time(again.indexed_path()), t) << "cached copy reused";
  for (const auto& f : mk::test::files_in(d.file("cache")))
    EXPECT_EQ(f.find(".tmp."), std::string::npos) << "temporary file left: " << f;
}

TEST(Fasta, BgzipFileGetsFaiAndGzi) {
  TempDir d;
  const std::string text = to_fasta(make_records(6));
  write_file(d.file("g.fa"), text);
  mk::test::gzip_file(d.file("g.fa"), d.file("g.fa.gz"));
  std::string bgzf_copy;
  {
    FastaReader fa(d.file("g.fa.gz"), opts_in(d));
    bgzf_copy = fa.indexed_path();  // a BGZF file made by htslib
  }
  stdfs::copy_file(bgzf_copy, d.file("b.fa.gz"));
  FastaReader fa(d.file("b.fa.gz"), opts_in(d));
  EXPECT_EQ(fa.compression(), Compression::Bgzf);
  EXPECT_EQ(fa.indexed_path(), d.file("b.fa.gz"));
  EXPECT_FALSE(stdfs::exists(d.file("b.fa.gz.fai"))) << "nothing written beside the input";
  EXPECT_FALSE(stdfs::exists(d.file("b.fa.gz.gzi")));
  int fai = 0, gzi = 0;
  for (const auto& f : mk::test::files_in(d.file("cache"))) {
    const std::string n = stdfs::path(f).filename().string();
    if (n.rfind("b.fa.gz.", 0) != 0) continue;
    fai += n.size() > 4 && n.compare(n.size() - 4, 4, ".fai") == 0;
    gzi += n.size() > 4 && n.compare(n.size() - 4, 4, ".gzi") == 0;
  }
  EXPECT_EQ(fai, 1) << "the .fai of b.fa.gz in the cache";
  EXPECT_EQ(gzi, 1) << "the .gzi of b.fa.gz in the cache";
  expect_regions_match(fa, parse_fasta(text), 7);
}

TEST(Fasta, BgzipToolOutputIsRead) {
  if (std::system("command -v bgzip >/dev/null 2>&1") != 0) GTEST_SKIP() << "bgzip (package tabix) not installed";
  TempDir d;
  const std::string text = to_fasta(make_records(8));
  write_file(d.file("g.fa"), text);
  ASSERT_EQ(std::system(("bgzip -c '" + d.file("g.fa") + "' > '" + d.file("g.fa.bgz") + "'").c_str()), 0);
  FastaReader fa(d.file("g.fa.bgz"), opts_in(d));
  EXPECT_EQ(fa.compression(), Compression::Bgzf);
  expect_regions_match(fa, parse_fasta(text), 9);
}

TEST(Fasta, StaleIndexIsRebuilt) {
  TempDir d;
  write_file(d.file("g.fa"), ">a\nACGTACGT\n");
  { FastaReader fa(d.file("g.fa"), opts_in(d)); }
  const auto t = stdfs::last_write_time(cached(d, ".fai"));
  write_file(d.file("g.fa"), ">b\nTTTTGGGGCC\n>c\nA\n");
  stdfs::last_write_time(d.file("g.fa"), t + std::chrono::seconds(2));
  FastaReader fa(d.file("g.fa"), opts_in(d));
  ASSERT_EQ(fa.sequences().size(), 2u);
  EXPECT_EQ(fa.fetch("b", 0, 10), "TTTTGGGGCC");
}

TEST(Fasta, FastqSequenceAndQuality) {
  TempDir d;
  std::mt19937 rng(11);
  std::string text;
  std::map<std::string, std::pair<std::string, std::string>> truth;
  for (int r = 0; r < 20; ++r) {
    std::string name = "read" + std::to_string(r), seq, qual;
    size_t len = 30 + rng() % 120;
    for (size_t i = 0; i < len; ++i) seq += "ACGTN"[rng() % 5], qual += char('!' + rng() % 41);
    truth[name] = {seq, qual};
    text += "@" + name + " x\n" + seq + "\n+\n" + qual + "\n";
  }
  write_file(d.file("r.fq"), text);
  FastaReader fq(d.file("r.fq"), opts_in(d));
  EXPECT_EQ(fq.format(), SeqFormat::Fastq);
  ASSERT_EQ(fq.sequences().size(), 20u);
  for (const auto& [name, sq] : truth) {
    int i = fq.find(name);
    int64_t n = int64_t(sq.first.size());
    EXPECT_EQ(fq.fetch(i, 0, n), sq.first);
    EXPECT_EQ(fq.fetch(i, 5, n - 3), sq.first.substr(5, size_t(n - 8)));
    EXPECT_EQ(fq.fetch_quality(i, 5, n - 3), sq.second.substr(5, size_t(n - 8)));
  }
  auto recs = mk::data::read_sequences(d.file("r.fq"));
  ASSERT_EQ(recs.size(), 20u);
  EXPECT_EQ(recs[3].qual, truth[recs[3].name].second);
}

TEST(Fasta, RegionOutsideSequenceOrUnknownNameIsAnError) {
  TempDir d;
  write_file(d.file("g.fa"), ">a\nACGTACGT\n");
  FastaReader fa(d.file("g.fa"), opts_in(d));
  EXPECT_TRUE(throws_error([&] { fa.fetch("a", 4, 9); }, {d.file("g.fa"), "a:4-9", "outside", "length 8"}));
  EXPECT_TRUE(throws_error([&] { fa.fetch("zz", 0, 1); }, {d.file("g.fa"), "'zz'"}));
}

// Each malformed file: a clear error with file and line, and nothing left
// behind (no index, no temporary file, no cached copy).
struct BadCase {
  const char* label;
  std::string content;
  std::vector<std::string> parts;  // expected in the message (plus the file name)
};

void expect_bad(const TempDir& d, const BadCase& c, bool gz) {
  const std::string name = std::string(c.label) + (gz ? ".fa" : ".fa");
  write_file(d.file(name), c.content);
  std::string path = d.file(name);
  if (gz) {
    mk::test::gzip_file(path, path + ".gz");
    std::remove(path.c_str());
    path += ".gz";
  }
  std::vector<std::string> parts = c.parts;
  parts.push_back(path);
  std::initializer_list<std::string> dummy{};
  (void)dummy;
  bool ok = false;
  std::string msg;
  try {
    FastaReader fa(path, opts_in(d));
  } catch (const mk::Error& e) {
    msg = e.what();
    ok = true;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << c.label << ": lacks '" << p << "': " << msg;
  }
  EXPECT_TRUE(ok) << c.label << (gz ? " (gz)" : "") << ": no error";
  EXPECT_FALSE(stdfs::exists(path + ".fai")) << c.label;
  for (const auto& f : mk::test::files_in(d.path()))
    EXPECT_TRUE(f == path || f.find("/cache/") == std::string::npos) << c.label << ": left " << f;
}

TEST(Fasta, MalformedFilesGiveFileLineAndReason) {
  TempDir d;
  const std::vector<BadCase> cases{
      {"seq_before_header", "ACGTACGT\n>r1\nACGT\n", {":1:", "sequence data before any '>' header"}},
      {"binary", ">r1\nACGT\nAC\x01GT\n", {":3:", "record 'r1'", "0x01", "not a nucleotide"}},
      {"nul_bytes", std::string(">r1\nACGT\nAC\0\0", 12) + "\n", {":3:", "0x00"}},
      {"empty_record", ">r1\nACGT\n>r2\n>r3\nAC\n", {":3:", "record 'r2'", "no sequence"}},
      {"empty_last_record", ">r1\nACGT\n>r2\n", {":3:", "'r2'", "no sequence"}},
      {"unequal_lines", ">r1\nACGTACGT\nACG\nACGTACGT\n", {":4:", "unequal length"}},
      {"longer_line", ">r1\nACGT\nACGTACGT\n", {":3:", "unequal length"}},
      {"duplicate", ">r1\nACGT\n>r1\nACGT\n", {":3:", "duplicate"}},
      {"no_name", ">\nACGT\n", {":1:", "without a name"}},
      {"png", "\x89PNG\r\n\x1a\n", {":1:", "not a FASTA or FASTQ"}},
      {"protein", ">p1\nMKVLEFQ\n", {":2:", "column 4", "'L'"}},
      {"fastq_short_qual", "@r1\nACGTACGT\n+\nIIII\n@r2\nACGT\n+\nIIII\n", {"record 'r1'", "quality length 4", "sequence length 8"}},
      {"fastq_long_qual", "@r1\nACGT\n+\nIIIIII\n", {"record 'r1'", "quality length 6", "sequence length 4"}},
      {"fastq_truncated", "@r1\nACGT\n", {"record 'r1'", "ends inside the record"}},
      {"fastq_bad_header", "@r1\nACGT\n+\nIIII\nr2\nACGT\n", {":5:", "'@'"}},
  };
  for (const auto& c : cases) {
    expect_bad(d, c, false);
    expect_bad(d, c, true);
  }
}

TEST(Fasta, MissingEmptyAndCorruptFiles) {
  TempDir d;
  EXPECT_TRUE(throws_error([&] { FastaReader fa(d.file("nope.fa"), opts_in(d)); }, {d.file("nope.fa"), "No such file"}));
  EXPECT_TRUE(throws_error([&] { FastaReader fa(d.path(), opts_in(d)); }, {d.path(), "directory"}));
  write_file(d.file("empty.fa"), "");
  EXPECT_TRUE(throws_error([&] { FastaReader fa(d.file("empty.fa"), opts_in(d)); }, {d.file("empty.fa"), "empty"}));
  // A gzip file cut in half.
  write_file(d.file("g.fa"), to_fasta(make_records(12)));
  mk::test::gzip_file(d.file("g.fa"), d.file("g.fa.gz"));
  std::string gz = mk::test::read_file(d.file("g.fa.gz"));
  write_file(d.file("cut.fa.gz"), gz.substr(0, gz.size() / 2));
  EXPECT_TRUE(throws_error([&] { FastaReader fa(d.file("cut.fa.gz"), opts_in(d)); }, {d.file("cut.fa.gz"), "decompress"}));
  EXPECT_TRUE(mk::test::files_in(d.file("cache")).empty()) << "nothing half-written in the cache";
}

TEST(Fasta, StreamingReaderAgreesWithFaidx) {
  TempDir d;
  const std::string text = to_fasta(make_records(13));
  write_file(d.file("g.fa"), text);
  auto recs = mk::data::read_sequences(d.file("g.fa"));
  auto truth = parse_fasta(text);
  ASSERT_EQ(recs.size(), truth.size());
  for (const auto& r : recs) EXPECT_EQ(r.seq, truth[r.name]) << r.name;
  EXPECT_EQ(recs[1].line, 1 + 1 + int64_t((1000 + 59) / 60));
}

// The real lambda phage genome from Debian's bowtie2-examples, when installed.
TEST(Fasta, RealLambdaPhageGenome) {
  const std::string path = "/usr/share/doc/bowtie2/examples/reference/lambda_virus.fa.gz";
  if (!stdfs::exists(path)) GTEST_SKIP() << path << " absent (install bowtie2-examples)";
  TempDir d;
  std::string text;
  {
    FILE* p = popen(("gzip -dc '" + path + "'").c_str(), "r");
    ASSERT_TRUE(p);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
    ASSERT_EQ(pclose(p), 0);
  }
  FastaReader fa(path, opts_in(d));
  EXPECT_EQ(fa.compression(), Compression::Gzip);
  auto truth = parse_fasta(text);
  ASSERT_EQ(truth.size(), 1u);
  EXPECT_EQ(fa.total_length(), 48502);
  expect_regions_match(fa, truth, 14);
}

}  // namespace
