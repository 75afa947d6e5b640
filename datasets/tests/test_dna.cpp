// DNA tokens, reverse complement, BED intervals and the window sampler:
// windows stay inside the allowed intervals, cover them uniformly, and are
// deterministic per seed.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

#include "mambakit/datasets/dna.h"
#include "seqdata_test_util.h"

namespace {
namespace dna = mk::data::dna;
using mk::data::DnaWindow;
using mk::data::DnaWindowSampler;
using mk::data::FastaOptions;
using mk::data::FastaReader;
using mk::data::GenomicInterval;
using mk::test::TempDir;
using mk::test::throws_error;
using mk::test::write_file;

TEST(DnaTokens, CharacterMapping) {
  EXPECT_EQ(dna::encode("ACGTN"), (std::vector<int32_t>{dna::A, dna::C, dna::G, dna::T, dna::N}));
  EXPECT_EQ(dna::encode("acgtn"), dna::encode("ACGTN")) << "soft-masked bases keep their base";
  EXPECT_EQ(dna::encode("Uu"), (std::vector<int32_t>{dna::T, dna::T}));
  for (char c : std::string("RYSWKMBDHVXrysw-"))
    EXPECT_EQ(dna::base_id((unsigned char)c), dna::N) << c;
  for (char c : std::string("EFIJLOPQZ*0 \n>"))
    EXPECT_EQ(dna::base_id((unsigned char)c), -1) << c;
  EXPECT_TRUE(throws_error([] { dna::encode("ACGTQ", "chr9"); }, {"chr9 position 4", "0x51"}));
  std::vector<int32_t> ids{dna::BOS, dna::A, dna::C, dna::N, dna::EOS, dna::PAD, dna::CLS};
  EXPECT_EQ(dna::decode(ids), "[BOS]ACN[EOS][PAD][CLS]");
  EXPECT_TRUE(throws_error([] { dna::decode(std::vector<int32_t>{9}); }, {"out of range"}));
  EXPECT_EQ(dna::kVocabSize, 9);
}

TEST(DnaTokens, ReverseComplement) {
  EXPECT_EQ(dna::decode(dna::reverse_complement(dna::encode("AACGTN"))), "NACGTT");
  EXPECT_EQ(dna::decode(dna::reverse_complement(dna::encode("GATTACA"))), "TGTAATC");
  // Specials keep their id; an involution on random input.
  std::mt19937 rng(3);
  std::vector<int32_t> v(1001);
  for (auto& x : v) x = int32_t(rng() % dna::kVocabSize);
  auto rc = dna::reverse_complement(v);
  for (size_t i = 0; i < v.size(); ++i) {
    int32_t a = v[v.size() - 1 - i];
    EXPECT_EQ(rc[i], a <= dna::T ? dna::T - a : a);
  }
  EXPECT_EQ(dna::reverse_complement(rc), v);
}

TEST(Bed, ParsesAndReportsBadLines) {
  TempDir d;
  write_file(d.file("a.bed"), "# comment\ntrack name=x\nchr1\t10\t20\ttrain\n\nchr2 0 5 valid\nchr1\t30\t40\n");
  auto iv = mk::data::read_bed(d.file("a.bed"));
  ASSERT_EQ(iv.size(), 3u);
  EXPECT_EQ(iv[0].seq, "chr1");
  EXPECT_EQ(iv[0].beg, 10);
  EXPECT_EQ(iv[0].end, 20);
  EXPECT_EQ(iv[0].split, "train");
  EXPECT_EQ(iv[1].split, "val") << "'valid' is the val split";
  EXPECT_EQ(iv[1].where, d.file("a.bed") + ":5");
  EXPECT_EQ(iv[2].split, "");

  const std::vector<std::pair<std::string, std::string>> bad{
      {"chr1 10\n", "at least 3 columns"}, {"chr1 x 20\n", "start 'x'"}, {"chr1 5 -3\n", "end '-3'"},
      {"chr1 20 20\n", "empty interval"}, {"# only a comment\n", "no intervals"}};
  for (const auto& [text, why] : bad) {
    write_file(d.file("b.bed"), "chr1 0 5\n" + text);
    std::vector<std::string> want{d.file("b.bed"), why};
    if (why != "no intervals") want.push_back(":2:");
    else write_file(d.file("b.bed"), text);
    EXPECT_TRUE(throws_error([&] { mk::data::read_bed(d.file("b.bed")); }, {want[0], want[1]})) << text;
  }
  EXPECT_TRUE(throws_error([&] { mk::data::read_bed(d.file("none.bed")); }, {d.file("none.bed")}));
}

// A genome of a few sequences with known content.
struct Genome {
  TempDir dir;
  std::map<std::string, std::string> seqs;
  std::string path;
  Genome() {
    std::mt19937 rng(5);
    std::string text;
    for (auto [name, len] : std::vector<std::pair<std::string, int>>{{"chr1", 5000}, {"chr2", 3000}, {"chrX", 800}}) {
      std::string s;
      for (int i = 0; i < len; ++i) s += "ACGTacgtN"[rng() % 9];
      seqs[name] = s;
      text += ">" + name + "\n";
      for (size_t i = 0; i < s.size(); i += 60) text += s.substr(i, 60) + "\n";
    }
    path = dir.file("g.fa");
    write_file(path, text);
  }
  FastaOptions opts() const {
    FastaOptions o;
    o.cache_dir = dir.file("cache");
    o.verbose = false;
    return o;
  }
};

TEST(DnaSampler, WindowsStayInsideBedIntervalsAndCoverThemUniformly) {
  Genome g;
  FastaReader fa(g.path, g.opts());
  write_file(g.dir.file("r.bed"), "chr1 100 400\nchr1 1000 1100\nchr2 2000 2900\nchrX 0 50\n");
  auto iv = mk::data::read_bed(g.dir.file("r.bed"));
  const int64_t L = 64;
  DnaWindowSampler s(fa, iv, L, /*seed=*/7);
  // Starts per interval: 237, 37, 837; the 50-base interval is too short.
  EXPECT_EQ(s.total_starts(), uint64_t(237 + 37 + 837));
  std::map<size_t, int> hits;
  std::vector<int32_t> buf(static_cast<size_t>(L));
  const int draws = 20000;
  for (int k = 0; k < draws; ++k) {
    DnaWindow w = s.next(buf.data());
    const std::string& name = fa.sequences()[size_t(w.seq)].name;
    bool inside = false;
    for (size_t i = 0; i < iv.size(); ++i)
      if (iv[i].seq == name && w.beg >= iv[i].beg && w.beg + L <= iv[i].end) inside = true, ++hits[i];
    ASSERT_TRUE(inside) << name << ":" << w.beg << " is outside every interval";
    ASSERT_EQ(buf, dna::encode(g.seqs[name].substr(size_t(w.beg), size_t(L))));
  }
  EXPECT_EQ(hits.count(3), 0u) << "an interval shorter than the window is never used";
  // Frequencies proportional to the number of starts (5 standard deviations).
  const double starts[3] = {237, 37, 837}, total = 237 + 37 + 837;
  for (size_t i = 0; i < 3; ++i) {
    double p = starts[i] / total, mean = draws * p, sd = std::sqrt(draws * p * (1 - p));
    EXPECT_NEAR(hits[i], mean, 5 * sd) << "interval " << i;
  }
}

TEST(DnaSampler, DeterministicPerSeedAndResumable) {
  Genome g;
  FastaReader fa(g.path, g.opts());
  auto iv = mk::data::whole_sequences(fa);
  DnaWindowSampler a(fa, iv, 100, 42, 0.5), b(fa, iv, 100, 42, 0.5), c(fa, iv, 100, 43, 0.5);
  int same_c = 0;
  for (int k = 0; k < 50; ++k) {
    DnaWindow wa = a.next_window(), wb = b.next_window(), wc = c.next_window();
    EXPECT_TRUE(wa.seq == wb.seq && wa.beg == wb.beg && wa.rc == wb.rc);
    same_c += wa.seq == wc.seq && wa.beg == wc.beg;
  }
  EXPECT_LT(same_c, 5) << "another seed draws other windows";
  std::string state = a.rng_state();
  auto x = a.next(), y = a.next();
  a.set_rng_state(state);
  EXPECT_EQ(a.next(), x);
  EXPECT_EQ(a.next(), y);
  EXPECT_TRUE(throws_error([&] { a.set_rng_state("garbage"); }, {"sampler state"}));
}

TEST(DnaSampler, ReverseComplementAugmentation) {
  Genome g;
  FastaReader fa(g.path, g.opts());
  auto iv = mk::data::whole_sequences(fa);
  DnaWindowSampler all(fa, iv, 50, 1, 1.0), half(fa, iv, 50, 1, 0.5);
  std::vector<int32_t> buf(50);
  for (int k = 0; k < 20; ++k) {
    DnaWindow w = all.next(buf.data());
    EXPECT_TRUE(w.rc);
    const std::string& name = fa.sequences()[size_t(w.seq)].name;
    EXPECT_EQ(buf, dna::reverse_complement(dna::encode(g.seqs[name].substr(size_t(w.beg), 50))));
  }
  int rc = 0;
  for (int k = 0; k < 4000; ++k) rc += half.next_window().rc;
  EXPECT_NEAR(rc, 2000, 5 * std::sqrt(1000.0));
}

TEST(DnaSampler, SplitIntervalsAreDisjointAndCoverEverything) {
  Genome g;
  FastaReader fa(g.path, g.opts());
  auto parts = mk::data::split_intervals(mk::data::whole_sequences(fa), {0.8, 0.1, 0.1});
  ASSERT_EQ(parts.size(), 3u);
  std::map<std::string, std::vector<int>> owner;
  for (const auto& s : fa.sequences()) owner[s.name].assign(size_t(s.length), 0);
  int64_t n_val = 0;
  for (const auto& [split, ivs] : parts)
    for (const auto& iv : ivs) {
      EXPECT_EQ(iv.split, split);
      for (int64_t p = iv.beg; p < iv.end; ++p) ++owner[iv.seq][size_t(p)];
      if (split == "val") n_val += iv.end - iv.beg;
    }
  for (const auto& [name, v] : owner)
    for (int c : v) ASSERT_EQ(c, 1) << name << ": every base in exactly one split";
  EXPECT_NEAR(double(n_val), 0.1 * double(fa.total_length()), 3);
  EXPECT_TRUE(throws_error([] { mk::data::split_intervals({}, {0.5, 0.6}); }, {"sum to 1"}));
}

TEST(DnaSampler, BadIntervalsAndShortWindowsAreErrors) {
  Genome g;
  FastaReader fa(g.path, g.opts());
  write_file(g.dir.file("bad.bed"), "chr1 0 100\nchr9 0 10\n");
  auto bad = mk::data::read_bed(g.dir.file("bad.bed"));
  EXPECT_TRUE(throws_error([&] { DnaWindowSampler s(fa, bad, 10, 1); }, {g.dir.file("bad.bed") + ":2", "'chr9'"}));
  write_file(g.dir.file("far.bed"), "chrX 700 900\n");
  auto far = mk::data::read_bed(g.dir.file("far.bed"));
  EXPECT_TRUE(throws_error([&] { DnaWindowSampler s(fa, far, 10, 1); }, {"far.bed:1", "outside", "length 800"}));
  EXPECT_TRUE(throws_error([&] { DnaWindowSampler s(fa, mk::data::whole_sequences(fa), 6000, 1); },
                           {"no interval is as long as a window", "6000", "5000"}));
  write_file(g.dir.file("split.bed"), "chr1 0 100 train\nchr2 0 100 test\n");
  auto sp = mk::data::read_bed(g.dir.file("split.bed"));
  EXPECT_EQ(mk::data::select_split(sp, "test", "split.bed").size(), 1u);
  EXPECT_TRUE(throws_error([&] { mk::data::select_split(sp, "val", "split.bed"); }, {"split.bed", "'val'"}));
}

TEST(DnaSampler, EvalWindowsAreConsecutiveInsideIntervals) {
  Genome g;
  FastaReader fa(g.path, g.opts());
  DnaWindowSampler s(fa, {GenomicInterval{"chr2", 100, 1100, "", ""}}, 300, 1, 1.0);
  auto w = s.eval_windows(300, 0);
  ASSERT_EQ(w.size(), 3u);
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(w[i].beg, 100 + 300 * int64_t(i));
    EXPECT_FALSE(w[i].rc);
  }
  EXPECT_EQ(s.eval_windows(300, 2).size(), 2u);
  EXPECT_EQ(s.eval_windows(100, 0).size(), 8u);
}

}  // namespace
