// Species classification data: the split is by whole strain, so no strain
// is in two splits; windows carry their class and come from their split's
// strains only.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "mambakit/datasets/species.h"
#include "seqdata_test_util.h"

namespace {
namespace dna = mk::data::dna;
using mk::data::SpeciesDataset;
using mk::data::SpeciesOptions;
using mk::data::SpeciesWindowSampler;
using mk::test::TempDir;
using mk::test::throws_error;
using mk::test::write_file;

std::string random_seq(std::mt19937& rng, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += "ACGT"[rng() % 4];
  return s;
}

std::string fasta(const std::vector<std::pair<std::string, std::string>>& recs) {
  std::string t;
  for (const auto& [n, s] : recs) {
    t += ">" + n + "\n";
    for (size_t i = 0; i < s.size(); i += 70) t += s.substr(i, 70) + "\n";
  }
  return t;
}

// Three classes: a folder of 5 strains (one gzip'ed, one in a subfolder, a
// chromosome and a plasmid each), a folder of 2 strains, and one
// multi-record FASTA whose 4 records are strains.
struct Fixture {
  TempDir dir;
  std::map<std::string, std::string> seq;  // "file:record" -> residues
  std::vector<std::string> class_paths;
  Fixture() {
    std::mt19937 rng(21);
    for (int i = 0; i < 5; ++i) {
      std::string chr = random_seq(rng, 2000 + 300 * size_t(i)), pl = random_seq(rng, 400);
      std::string f = dir.file(std::string("alpha/") + (i == 4 ? "sub/" : "") + "strain" + std::to_string(i) + ".fa");
      write_file(f, fasta({{"chr", chr}, {"plasmid", pl}}));
      if (i == 3) {
        mk::test::gzip_file(f, f + ".gz");
        std::filesystem::remove(f);
        f += ".gz";
      }
      seq[f + ":chr"] = chr, seq[f + ":plasmid"] = pl;
    }
    for (int i = 0; i < 2; ++i) {
      std::string s = random_seq(rng, 1500), f = dir.file("beta/b" + std::to_string(i) + ".fna");
      write_file(f, fasta({{"genome", s}}));
      seq[f + ":genome"] = s;
    }
    std::vector<std::pair<std::string, std::string>> recs;
    for (int i = 0; i < 4; ++i) recs.emplace_back("g" + std::to_string(i), random_seq(rng, 1200));
    write_file(dir.file("gamma.fasta"), fasta(recs));
    for (const auto& [n, s] : recs) seq[dir.file("gamma.fasta") + ":" + n] = s;
    class_paths = {dir.file("alpha"), dir.file("beta"), dir.file("gamma.fasta")};
  }
  SpeciesOptions opts(uint64_t seed) const {
    SpeciesOptions o;
    o.split = {0.5, 0.25, 0.25};
    o.seed = seed;
    o.fasta.cache_dir = dir.file("cache");
    o.fasta.verbose = false;
    return o;
  }
};

TEST(Species, ClassNamesFromPaths) {
  auto c = mk::data::species_classes({"/x/E.Coli/", "/y/hpylori.fasta.gz", "/z/vc.fa"});
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].name, "E.Coli");
  EXPECT_EQ(c[1].name, "hpylori");
  EXPECT_EQ(c[2].name, "vc");
  EXPECT_TRUE(throws_error([] { mk::data::species_classes({"/a/x.fa", "/b/x.fa.gz"}); }, {"'x'"}));
  auto r = mk::data::species_classes({"/ex/E.Coli/references", "/ex/H.Pylori/references/"});
  EXPECT_EQ(r[0].name, "E.Coli");
  EXPECT_EQ(r[1].name, "H.Pylori");
  EXPECT_EQ(r[1].path, "/ex/H.Pylori/references");
  EXPECT_EQ(mk::data::species_classes({"/only/one"})[0].name, "one");
}

TEST(Species, NoStrainInTwoSplits) {
  Fixture fx;
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    SpeciesDataset ds(mk::data::species_classes(fx.class_paths), fx.opts(seed));
    ASSERT_EQ(ds.num_classes(), 3);
    EXPECT_EQ(ds.class_names(), (std::vector<std::string>{"alpha", "beta", "gamma"}));
    std::map<std::string, std::string> where;  // strain -> split
    std::map<std::string, std::set<int>> labels_in;
    size_t total = 0;
    for (const auto& split : ds.splits())
      for (const auto& s : ds.strains(split)) {
        ++total;
        EXPECT_TRUE(where.emplace(s.name, split).second) << s.name << " is in " << where[s.name] << " and " << split;
        labels_in[split].insert(s.label);
      }
    EXPECT_EQ(total, 5u + 2u + 4u) << "every strain in exactly one split";
    // Files of the folder classes are strains: a file's records never split.
    std::map<int, std::string> file_split;
    for (const auto& split : ds.splits())
      for (const auto& s : ds.strains(split))
        if (s.label != 2) {
          EXPECT_TRUE(file_split.emplace(s.file, split).second);
          EXPECT_EQ(s.records.size(), ds.reader(s.file).sequences().size());
        }
    EXPECT_EQ(labels_in["train"], (std::set<int>{0, 1, 2}));
    EXPECT_EQ(labels_in["test"], (std::set<int>{0, 1, 2})) << "each class has a held-out strain";
    EXPECT_EQ(labels_in["val"], (std::set<int>{0, 2})) << "beta's 2 strains go to train and test";
  }
}

TEST(Species, WindowsComeFromTheirSplitsStrainsWithTheirLabel) {
  Fixture fx;
  SpeciesDataset ds(mk::data::species_classes(fx.class_paths), fx.opts(9));
  const int64_t L = 256;
  for (const auto& split : ds.splits()) {
    std::set<std::string> allowed;
    for (const auto& s : ds.strains(split)) allowed.insert(ds.reader(s.file).path());
    SpeciesWindowSampler smp(ds, split, L, 17, 0.5);
    std::vector<int32_t> buf(static_cast<size_t>(L));
    std::map<int, int> count;
    for (int k = 0; k < 600; ++k) {
      auto w = smp.next_window();
      smp.fetch(w, buf.data());
      const auto& st = ds.strains(split)[size_t(w.strain)];
      ASSERT_EQ(w.label, st.label);
      ASSERT_EQ(w.file, st.file);
      const std::string& path = ds.reader(w.file).path();
      ASSERT_TRUE(allowed.count(path)) << path << " is not a " << split << " strain";
      const std::string key = path + ":" + ds.reader(w.file).sequences()[size_t(w.seq)].name;
      ASSERT_TRUE(fx.seq.count(key)) << key;
      auto want = dna::encode(fx.seq[key].substr(size_t(w.beg), size_t(L)));
      if (w.rc) want = dna::reverse_complement(want);
      ASSERT_EQ(buf, want);
      ++count[w.label];
    }
    for (auto [label, n] : count) EXPECT_GT(n, 600 / int(count.size()) / 2) << "balanced classes in " << split;
  }
}

TEST(Species, EvalWindowsAreFixedAndInterleaved) {
  Fixture fx;
  SpeciesDataset ds(mk::data::species_classes(fx.class_paths), fx.opts(1));
  SpeciesWindowSampler smp(ds, "test", 128, 3);
  auto a = smp.eval_windows(4, 99);
  smp.next_window();
  auto b = smp.eval_windows(4, 99);
  ASSERT_EQ(a.size(), 12u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].label, int(i % 3));
    EXPECT_TRUE(a[i].beg == b[i].beg && a[i].seq == b[i].seq && a[i].file == b[i].file);
    EXPECT_FALSE(a[i].rc);
  }
}

TEST(Species, BadInputs) {
  Fixture fx;
  auto o = fx.opts(1);
  write_file(fx.dir.file("single/one.fa"), ">only\nACGTACGTACGT\n");
  EXPECT_TRUE(throws_error([&] { SpeciesDataset ds(mk::data::species_classes({fx.dir.file("single"), fx.dir.file("beta")}), o); },
                           {fx.dir.file("single"), "only one strain"}));
  std::filesystem::create_directories(fx.dir.file("nothing"));
  EXPECT_TRUE(throws_error([&] { SpeciesDataset ds(mk::data::species_classes({fx.dir.file("nothing"), fx.dir.file("beta")}), o); },
                           {fx.dir.file("nothing"), "no FASTA"}));
  EXPECT_TRUE(throws_error([&] { SpeciesDataset ds(mk::data::species_classes({fx.dir.file("gone.fa"), fx.dir.file("beta")}), o); },
                           {fx.dir.file("gone.fa")}));
  SpeciesDataset ds(mk::data::species_classes(fx.class_paths), o);
  EXPECT_TRUE(throws_error([&] { ds.strains("dev"); }, {"'dev'"}));
  EXPECT_TRUE(throws_error([&] { SpeciesWindowSampler s(ds, "test", 100000, 1); }, {"no strain is as long"}));
}

}  // namespace
