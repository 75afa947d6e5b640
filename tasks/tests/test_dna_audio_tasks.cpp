// The DNA and audio tasks: batches (shapes, shifted targets, N without a
// target), held-out windows come only from held-out data (positions for
// pretraining, whole strains for species, whole files for audio), sampler
// state round trips, the metrics against hand computations (Markov baseline,
// unigram entropy, confusion matrix), and the same task over prepared shards.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "mambakit/datasets/audio.h"
#include "mambakit/datasets/dna.h"
#include "mambakit/datasets/shards.h"
#include "mambakit/tasks/audio_task.h"
#include "mambakit/tasks/confusion.h"
#include "mambakit/tasks/dna_task.h"

namespace mk::tasks {
namespace {

namespace fs = std::filesystem;
namespace dna = data::dna;

struct Scratch {
  fs::path path = fs::temp_directory_path() / ("mambakit_dna_audio_tasks_" + std::to_string(getpid()));
  Scratch() { fs::create_directories(path); }
  ~Scratch() { fs::remove_all(path); }
  std::string operator/(const std::string& p) const { return (path / p).string(); }
};
Scratch& scratch() {
  static Scratch s;
  return s;
}

std::string random_bases(size_t n, uint64_t seed, double gc = 0.5) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    const bool strong = u(rng) < gc;
    s.push_back(strong ? (u(rng) < 0.5 ? 'G' : 'C') : (u(rng) < 0.5 ? 'A' : 'T'));
  }
  return s;
}

void write_fasta(const std::string& path, const std::vector<std::pair<std::string, std::string>>& recs) {
  std::ofstream f(path);
  for (const auto& [name, seq] : recs) {
    f << ">" << name << "\n";
    for (size_t i = 0; i < seq.size(); i += 70) f << seq.substr(i, 70) << "\n";
  }
}

TaskSpec spec_of(const std::string& name, std::vector<std::string> paths, int seq_len,
                 std::vector<double> split, nlohmann::json options = nlohmann::json::object()) {
  TaskSpec s;
  s.name = name;
  s.options = std::move(options);
  s.data.paths = std::move(paths);
  s.data.seq_len = seq_len;
  s.data.split = std::move(split);
  s.seed = 11;
  s.section_where = "t.yaml:3";
  return s;
}

// A two-record genome; record chr2 has a run of N in the middle.
std::string genome(std::string* chr1 = nullptr, std::string* chr2 = nullptr) {
  static std::string path, a, b;
  if (path.empty()) {
    a = random_bases(3000, 1);
    b = random_bases(2000, 2);
    for (int i = 900; i < 940; ++i) b[size_t(i)] = 'N';
    path = scratch() / "genome.fa";
    write_fasta(path, {{"chr1", a}, {"chr2", b}});
  }
  if (chr1) *chr1 = a;
  if (chr2) *chr2 = b;
  return path;
}

void expect_lm_batch(const TokenBatch& b, int batch, int len, int vocab) {
  ASSERT_EQ(b.batch, batch);
  ASSERT_EQ(b.len, len);
  ASSERT_EQ(b.ids.size(), size_t(batch) * len);
  ASSERT_EQ(b.targets.size(), b.ids.size());
  EXPECT_FALSE(b.is_classification());
  for (size_t i = 0; i < b.ids.size(); ++i) {
    ASSERT_GE(b.ids[i], 0);
    ASSERT_LT(b.ids[i], vocab);
    ASSERT_LT(b.targets[i], vocab);
  }
  // targets are the inputs shifted by one inside each row
  for (int r = 0; r < batch; ++r)
    for (int t = 0; t + 1 < len; ++t) {
      const int32_t next = b.ids[size_t(r) * len + t + 1], tgt = b.targets[size_t(r) * len + t];
      if (tgt >= 0) {
        ASSERT_EQ(tgt, next) << "row " << r << " position " << t;
      }
    }
}

TEST(DnaPretrainTask, BatchesAreShiftedWindowsAndNHasNoTarget) {
  DnaPretrainTask task(spec_of("dna_pretrain", {genome()}, 64, {0.8, 0.1, 0.1}));
  EXPECT_EQ(task.vocab_size(), dna::kVocabSize);
  EXPECT_EQ(task.splits(), (std::vector<std::string>{"train", "val", "test"}));
  EXPECT_EQ(task.train_tokens(), 0.8 * 5000);
  bool saw_n_input = false;
  for (int k = 0; k < 40; ++k) {
    const auto b = task.next_train_batch(8);
    expect_lm_batch(b, 8, 64, dna::kVocabSize);
    for (size_t i = 0; i < b.ids.size(); ++i) {
      if (i % 64 + 1 < 64 && b.ids[i + 1] == dna::N) {
        EXPECT_EQ(b.targets[i], -1);
      }
      if (b.targets[i] >= 0) {
        EXPECT_LT(b.targets[i], dna::kBases);
      }
      saw_n_input |= b.ids[i] == dna::N;
    }
  }
  EXPECT_TRUE(saw_n_input) << "the N run of chr2 (in its training part) was never drawn";
}

TEST(DnaPretrainTask, EvaluationWindowsAreTheHeldOutStretchesInOrder) {
  std::string a, b;
  const std::string path = genome(&a, &b);
  DnaPretrainTask task(spec_of("dna_pretrain", {path}, 50, {0.8, 0.1, 0.1}));
  // val of chr1 is [2400, 2700): windows of 51 bases, 50 apart, from 2400.
  const auto batches = task.eval_batches("val", 4, 0);
  ASSERT_FALSE(batches.empty());
  const auto first = batches[0];
  EXPECT_EQ(dna::decode(std::vector<int32_t>(first.ids.begin(), first.ids.begin() + 50)), a.substr(2400, 50));
  EXPECT_EQ(dna::decode(std::vector<int32_t>(first.ids.begin() + 50, first.ids.begin() + 100)), a.substr(2450, 50));
  // Held-out windows never overlap training bases: every window of val is
  // inside chr1[2400, 2700) or chr2[1600, 1800).
  const std::string va = a.substr(2400, 300), vb = b.substr(1600, 200);
  size_t windows = 0;
  for (const auto& bt : batches)
    for (int r = 0; r < bt.batch; ++r, ++windows) {
      const std::string w = dna::decode(std::vector<int32_t>(bt.ids.begin() + r * 50, bt.ids.begin() + (r + 1) * 50));
      EXPECT_TRUE(va.find(w) != std::string::npos || vb.find(w) != std::string::npos) << w;
    }
  EXPECT_EQ(windows, size_t((300 - 1) / 50 + (200 - 1) / 50));
  // deterministic, and max_sequences caps
  const auto again = task.eval_batches("val", 4, 0);
  ASSERT_EQ(again.size(), batches.size());
  EXPECT_EQ(again[0].ids, batches[0].ids);
  size_t capped = 0;
  for (const auto& bt : task.eval_batches("val", 4, 3)) capped += size_t(bt.batch);
  EXPECT_EQ(capped, 3u);
  EXPECT_THROW(task.eval_batches("holdout", 4, 0), ConfigError);
}

TEST(DnaPretrainTask, SamplerStateRoundTrips) {
  DnaPretrainTask task(spec_of("dna_pretrain", {genome()}, 32, {0.9, 0.1}, {{"rc_prob", 0.5}}));
  task.next_train_batch(3);
  const std::string st = task.sampler_state();
  const auto a = task.next_train_batch(5);
  task.set_sampler_state(st);
  const auto b = task.next_train_batch(5);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_THROW(task.set_sampler_state("garbage"), Error);
}

TEST(DnaPretrainTask, MarkovBaselineIsScoredOnTheModelsTargets) {
  DnaPretrainTask task(spec_of("dna_pretrain", {genome()}, 40, {0.8, 0.1, 0.1}, {{"markov_order", 2}}));
  ASSERT_NE(task.markov(), nullptr);
  auto acc = task.metrics();
  double want_bits = 0, symbols = 0;
  for (const auto& b : task.eval_batches("test", 4, 0)) {
    std::vector<float> logits(b.ids.size() * dna::kVocabSize, 0.f);  // uniform over 9 tokens
    acc->add(b, logits.data(), dna::kVocabSize);
    for (int r = 0; r < b.batch; ++r)
      for (int t = 0; t < b.len; ++t) {
        const int32_t x = b.targets[size_t(r) * b.len + t];
        if (x < 0) continue;
        // context: the up to 2 previous bases of this window
        std::vector<int32_t> ctx;
        for (int j = std::max(0, t - 1); j <= t; ++j) ctx.push_back(b.ids[size_t(r) * b.len + j]);
        want_bits -= std::log2(task.markov()->prob(ctx.data(), int(ctx.size()), x));
        symbols += 1;
      }
  }
  const auto r = acc->result();
  EXPECT_NEAR(r.at("bpb"), std::log2(9.0), 1e-9);
  EXPECT_EQ(r.at("bits"), r.at("bpb"));
  EXPECT_NEAR(r.at("markov_bpb"), want_bits / symbols, 1e-9);
  EXPECT_GT(r.at("markov_bpb"), 1.8);  // random bases: nothing to learn
  DnaPretrainTask none(spec_of("dna_pretrain", {genome()}, 40, {0.8, 0.2}, {{"markov_order", -1}}));
  EXPECT_EQ(none.markov(), nullptr);
  EXPECT_EQ(none.metrics()->result().count("markov_bpb"), 0u);
}

TEST(DnaPretrainTask, ReadsPreparedShardsLikeTheFasta) {
  const std::string dir = scratch() / "dna_shards";
  data::PrepareOptions po;
  po.split = {0.8, 0.1, 0.1};
  data::prepare_shards("fasta", {genome()}, dir, po);
  ASSERT_TRUE(is_prepared_dir(dir));
  DnaPretrainTask shards(spec_of("dna_pretrain", {dir}, 50, {0.8, 0.1, 0.1}));
  DnaPretrainTask fasta(spec_of("dna_pretrain", {genome()}, 50, {0.8, 0.1, 0.1}));
  EXPECT_EQ(shards.splits(), fasta.splits());
  EXPECT_EQ(shards.train_tokens(), fasta.train_tokens());
  const auto a = shards.eval_batches("val", 64, 0), b = fasta.eval_batches("val", 64, 0);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].ids, b[0].ids);
  EXPECT_EQ(a[0].targets, b[0].targets);
  expect_lm_batch(shards.next_train_batch(6), 6, 50, dna::kVocabSize);
  const std::string st = shards.sampler_state();
  const auto x = shards.next_train_batch(4);
  shards.set_sampler_state(st);
  EXPECT_EQ(shards.next_train_batch(4).ids, x.ids);
}

TEST(DnaPretrainTask, ConfigMistakesNameTheKey) {
  auto s = spec_of("dna_pretrain", {genome()}, 32, {0.9, 0.1}, {{"rc_prop", 0.5}});
  s.where["rc_prop"] = "t.yaml:7";
  try {
    DnaPretrainTask t(s);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("t.yaml:7"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("did you mean 'rc_prob'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DnaPretrainTask(spec_of("dna_pretrain", {genome()}, 32, {0.9, 0.1}, {{"rc_prob", 2}})), ConfigError);
  EXPECT_THROW(DnaPretrainTask(spec_of("dna_pretrain", {genome()}, 32, {0.5, 0.1})), ConfigError);
  try {  // no held-out stretch as long as a window
    DnaPretrainTask t(spec_of("dna_pretrain", {genome()}, 400, {0.95, 0.05}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("val split"), std::string::npos) << e.what();
  }
}

// --- species -----------------------------------------------------------------------

// Three species of distinct base composition, 3, 3 and 2 strains, each strain
// a unique random genome (so a window identifies its strain).
struct SpeciesFixture {
  std::vector<std::string> dirs;
  std::map<std::string, std::string> strain_seq;  // "class/strain" -> sequence
  SpeciesFixture() {
    const double gc[] = {0.3, 0.5, 0.7};
    const int strains[] = {3, 3, 2};
    const char* names[] = {"alpha", "beta", "gamma"};
    uint64_t seed = 100;
    for (int c = 0; c < 3; ++c) {
      const fs::path d = scratch().path / "species" / names[c];
      fs::create_directories(d);
      dirs.push_back(d.string());
      for (int s = 0; s < strains[c]; ++s) {
        const std::string seq = random_bases(1500, seed++, gc[c]);
        const std::string name = "strain" + std::to_string(s);
        write_fasta((d / (name + ".fa")).string(), {{name + "_chr", seq}});
        strain_seq[std::string(names[c]) + "/" + name] = seq;
      }
    }
  }
};
const SpeciesFixture& species() {
  static SpeciesFixture f;
  return f;
}

// The strain ("class/strain") a window of the fixture comes from, "" if none,
// checking both strands.
std::string strain_of(const std::string& window) {
  std::string rc = window;
  std::reverse(rc.begin(), rc.end());
  for (auto& ch : rc) ch = ch == 'A' ? 'T' : ch == 'T' ? 'A' : ch == 'C' ? 'G' : 'C';
  std::string found;
  for (const auto& [name, seq] : species().strain_seq)
    if (seq.find(window) != std::string::npos || seq.find(rc) != std::string::npos) found = name;
  return found;
}

TEST(DnaSpeciesTask, LabelsAndStrainSplitsHoldThroughTheTask) {
  DnaSpeciesTask task(spec_of("dna_species", species().dirs, 48, {0.4, 0.3, 0.3}, {{"eval_per_class", 5}}));
  EXPECT_EQ(task.num_classes(), 3);
  EXPECT_EQ(task.class_names(), (std::vector<std::string>{"alpha", "beta", "gamma"}));
  EXPECT_EQ(class_names(task), task.class_names());
  EXPECT_EQ(task.pooling(), "mean");
  const std::vector<std::string> cls = task.class_names();

  std::map<std::string, std::set<std::string>> seen;  // split -> strains its windows come from
  auto record = [&](const TokenBatch& b, const std::string& split) {
    ASSERT_TRUE(b.is_classification());
    ASSERT_EQ(b.labels.size(), size_t(b.batch));
    ASSERT_EQ(b.ids.size(), size_t(b.batch) * b.len);
    for (int32_t t : b.targets) ASSERT_EQ(t, -1);
    for (int r = 0; r < b.batch; ++r) {
      const auto w = dna::decode(std::vector<int32_t>(b.ids.begin() + r * b.len, b.ids.begin() + (r + 1) * b.len));
      const std::string strain = strain_of(w);
      ASSERT_FALSE(strain.empty()) << "window from nowhere: " << w;
      EXPECT_EQ(strain.substr(0, strain.find('/')), cls[size_t(b.labels[size_t(r)])]) << "wrong label";
      seen[split].insert(strain);
    }
  };
  for (int k = 0; k < 30; ++k) record(task.next_train_batch(8), "train");
  for (const char* sp : {"val", "test"})
    for (const auto& b : task.eval_batches(sp, 4, 0)) record(b, sp);
  // No strain in two splits, and each split's strains are what the dataset says.
  for (const char* a : {"train", "val", "test"})
    for (const char* b : {"train", "val", "test"}) {
      if (std::string(a) >= b) continue;
      for (const auto& s : seen[a]) EXPECT_EQ(seen[b].count(s), 0u) << s << " in " << a << " and " << b;
    }
  for (const char* sp : {"train", "val", "test"}) {
    std::set<std::string> expected;
    for (const auto& st : task.dataset().strains(sp)) expected.insert(cls[size_t(st.label)] + "/" + fs::path(st.name).stem().string());
    for (const auto& s : seen[sp]) EXPECT_EQ(expected.count(s), 1u) << s << " drawn for " << sp;
  }
  // every class of the test split appears, eval_per_class windows each
  size_t n = 0;
  for (const auto& b : task.eval_batches("test", 4, 0)) n += size_t(b.batch);
  EXPECT_EQ(n, 5u * 3u);
}

TEST(DnaSpeciesTask, MetricsAndConfusionMatrixFromHandMadeLogits) {
  ConfusionMatrix cm(3);
  TokenBatch b;
  b.batch = 5;
  b.len = 1;
  b.ids.assign(5, 0);
  b.targets.assign(5, -1);
  b.labels = {0, 0, 1, 2, 2};
  // predicted: 0, 1, 1, 2, 0
  const std::vector<float> logits = {3, 1, 0, /**/ 0, 2, 1, /**/ -1, 5, 4, /**/ 0, 0, 1, /**/ 9, 8, 7};
  cm.add(b, logits.data(), 3);
  EXPECT_EQ(cm.count(0, 0), 1);
  EXPECT_EQ(cm.count(0, 1), 1);
  EXPECT_EQ(cm.count(1, 1), 1);
  EXPECT_EQ(cm.count(2, 2), 1);
  EXPECT_EQ(cm.count(2, 0), 1);
  EXPECT_EQ(cm.total(), 5);
  EXPECT_DOUBLE_EQ(cm.accuracy(), 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(cm.balanced_accuracy(), (0.5 + 1.0 + 0.5) / 3.0);
  const auto j = cm.to_json({"a", "b", "c"});
  EXPECT_EQ(j["matrix"], nlohmann::json::parse("[[1,1,0],[0,1,0],[1,0,1]]"));
  EXPECT_EQ(j["classes"], nlohmann::json::parse(R"(["a","b","c"])"));
  const std::string text = cm.to_text({"a", "b", "c"});
  EXPECT_NE(text.find("accuracy 0.6000"), std::string::npos) << text;
  EXPECT_THROW(cm.add(3, 0), Error);

  // The species task's accumulator reports the same numbers.
  DnaSpeciesTask task(spec_of("dna_species", species().dirs, 48, {0.4, 0.3, 0.3}));
  auto acc = task.metrics();
  acc->add(b, logits.data(), 3);
  const auto r = acc->result();
  EXPECT_DOUBLE_EQ(r.at("accuracy"), 0.6);
  EXPECT_DOUBLE_EQ(r.at("balanced_accuracy"), 2.0 / 3.0);
  EXPECT_TRUE(std::isfinite(r.at("loss")));
}

TEST(DnaSpeciesTask, NeedsTwoClassesAndAKnownStrainUnit) {
  EXPECT_THROW(DnaSpeciesTask(spec_of("dna_species", {species().dirs[0]}, 48, {0.5, 0.5})), ConfigError);
  EXPECT_THROW(DnaSpeciesTask(spec_of("dna_species", species().dirs, 48, {0.5, 0.5}, {{"strain_unit", "genome"}})),
               ConfigError);
}

// --- audio -------------------------------------------------------------------------

// data/piano-like folder: train/ val/ test/ with tones of different pitch.
std::string audio_corpus() {
  static std::string dir;
  if (!dir.empty()) return dir;
  dir = scratch() / "audio";
  int k = 0;
  for (const char* split : {"train", "train", "val", "test"}) {
    fs::create_directories(fs::path(dir) / split);
    std::vector<float> x(4000);
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.6f * float(std::sin(0.01 * (k + 1) * double(i)));
    data::write_wav((fs::path(dir) / split / ("tone" + std::to_string(k) + ".wav")).string(), x, 16000);
    ++k;
  }
  return dir;
}

TEST(AudioTask, BatchesAreShiftedMuLawWindowsOfTheTrainingFiles) {
  AudioTask task(spec_of("audio", {audio_corpus()}, 100, {0.9, 0.1}, {{"expect_sample_rate", 16000}}));
  EXPECT_EQ(task.vocab_size(), 256);
  EXPECT_EQ(task.splits(), (std::vector<std::string>{"train", "val", "test"}));
  EXPECT_EQ(task.train_tokens(), 8000.0);
  EXPECT_EQ(task.sample_rate(), 16000);
  const auto b = task.next_train_batch(6);
  expect_lm_batch(b, 6, 100, 256);
  for (int32_t t : b.targets) EXPECT_GE(t, 0);  // every sample is a target
  // the window is mu-law of one of the two training tones
  // (read back from the 16-bit files, as the task reads them)
  std::vector<std::vector<uint8_t>> tones;
  for (int k : {0, 1})
    tones.push_back(data::quantize(
        data::read_audio((fs::path(audio_corpus()) / "train" / ("tone" + std::to_string(k) + ".wav")).string()),
        data::Quantization::MuLaw));
  auto tone = [&](int k, size_t i) { return tones[size_t(k)][i]; };
  auto from_tone = [&](int r) {
    for (int k : {0, 1})
      for (size_t s = 0; s + 100 <= 4000; ++s) {
        bool all = true;
        for (int t = 0; t < 100 && all; ++t) all = b.ids[size_t(r) * 100 + t] == int32_t(tone(k, s + size_t(t)));
        if (all) return true;
      }
    return false;
  };
  int matched = 0;
  for (int r = 0; r < 6; ++r) matched += from_tone(r);
  EXPECT_EQ(matched, 6);
}

TEST(AudioTask, UnigramEntropyIsThatOfTheScoredTargets) {
  AudioTask task(spec_of("audio", {audio_corpus()}, 100, {0.9, 0.1}));
  auto acc = task.metrics();
  std::map<int, double> hist;
  double n = 0;
  for (const auto& b : task.eval_batches("val", 8, 0)) {
    std::vector<float> logits(b.ids.size() * 256, 0.f);
    acc->add(b, logits.data(), 256);
    for (int32_t t : b.targets) hist[t] += 1, n += 1;
  }
  EXPECT_EQ(n, 39 * 100.0);  // (4000 - 1) / 100 windows of the one val file
  double h = 0;
  for (const auto& [k, c] : hist) h -= c / n * std::log2(c / n);
  const auto r = acc->result();
  EXPECT_NEAR(r.at("unigram_bits"), h, 1e-9);
  EXPECT_NEAR(r.at("bits"), 8.0, 1e-9);  // uniform logits over 256 classes
}

TEST(AudioTask, ReadsPreparedShardsAndRefusesUnexpectedRates) {
  const std::string dir = scratch() / "audio_shards";
  data::prepare_shards("audio", {audio_corpus()}, dir, {});
  AudioTask shards(spec_of("audio", {dir}, 100, {0.9, 0.1}));
  AudioTask files(spec_of("audio", {audio_corpus()}, 100, {0.9, 0.1}));
  EXPECT_EQ(shards.splits(), files.splits());
  EXPECT_EQ(shards.train_tokens(), files.train_tokens());
  const auto a = shards.eval_batches("test", 64, 0), b = files.eval_batches("test", 64, 0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].ids, b[0].ids);
  try {  // a shard folder at another rate than the config asks for
    AudioTask t(spec_of("audio", {dir}, 100, {0.9, 0.1}, {{"sample_rate", 8000}}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("16000 Hz"), std::string::npos) << e.what();
  }
  try {  // files at 16 kHz where the config expects 44.1 kHz
    AudioTask t(spec_of("audio", {audio_corpus()}, 100, {0.9, 0.1}, {{"expect_sample_rate", 44100}}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tone"), std::string::npos) << e.what();
  }
  EXPECT_THROW(AudioTask(spec_of("audio", {audio_corpus()}, 100, {0.9, 0.1}, {{"quantization", "alaw"}})),
               ConfigError);
  EXPECT_EQ(files.decode({1, 2, 255}), "1 2 255");
  EXPECT_EQ(files.encode("1 2 255"), (std::vector<int32_t>{1, 2, 255}));
  EXPECT_THROW(files.encode("hello"), ConfigError);
}

}  // namespace
}  // namespace mk::tasks
