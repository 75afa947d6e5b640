// The DNA and audio commands end to end through the mambakit binary, with
// tiny models: prepare + loader round trip, generation to FASTA and WAV,
// model.init_from (pretrain -> species classifier) with its confusion matrix,
// bench data, and every kind of bad input as one clear line naming the file,
// exit code 1, nothing half-written.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mambakit/datasets/audio.h"
#include "mambakit/datasets/dna.h"
#include "mambakit/datasets/fasta.h"
#include "mambakit/datasets/shards.h"
#include "mambakit/experiments/config.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/io/safetensors.h"
#include "run_util.h"

namespace mk::test {
namespace {

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

void write(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

std::string fasta_text(const std::vector<std::pair<std::string, std::string>>& recs) {
  std::string t;
  for (const auto& [name, seq] : recs) {
    t += ">" + name + "\n";
    for (size_t i = 0; i < seq.size(); i += 60) t += seq.substr(i, 60) + "\n";
  }
  return t;
}

std::vector<float> tone(size_t n, double w) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = 0.5f * float(std::sin(w * double(i)));
  return x;
}

// A small genome: chr1 3000 bases, chr2 2000.
std::string write_genome(const TempDir& d) {
  const std::string p = d / "genome.fa";
  write(p, fasta_text({{"chr1", random_bases(3000, 1)}, {"chr2", random_bases(2000, 2)}}));
  return p;
}

// A piano-like folder: train/ (two tones), val/, test/.
std::string write_audio_corpus(const TempDir& d) {
  const std::string dir = d / "audio";
  int k = 0;
  for (const char* s : {"train", "train", "val", "test"}) {
    fs::create_directories(fs::path(dir) / s);
    data::write_wav(dir + "/" + s + "/tone" + std::to_string(k) + ".wav", tone(6000, 0.02 * (k + 1)), 16000);
    ++k;
  }
  return dir;
}

std::string tiny_model() {
  return "model:\n  mixer: mamba\n  d_model: 16\n  n_layer: 2\n  d_state: 4\n";
}

std::string write_yaml(const TempDir& d, const std::string& name, const std::string& body) {
  const std::string p = d / name;
  write(p, body);
  return p;
}

std::string dna_config(const TempDir& d, const std::string& data, const std::string& out, int steps) {
  return write_yaml(d, "dna.yaml",
                    tiny_model() + "task:\n  name: dna_pretrain\n  markov_order: 2\n" +
                        "data:\n  path: " + data + "\n  seq_len: 32\n  split: [0.8, 0.1, 0.1]\n" +
                        "train:\n  steps: " + std::to_string(steps) +
                        "\n  batch_size: 2\n  lr: 5.0e-3\n  seed: 3\n" +
                        "eval:\n  max_sequences: 4\noutput:\n  dir: " + out + "\n  plot: false\n");
}

std::string audio_config(const TempDir& d, const std::string& data, const std::string& out, int steps,
                         const std::string& extra_task = "") {
  return write_yaml(d, "audio.yaml",
                    tiny_model() + "task:\n  name: audio\n  expect_channels: 1\n" + extra_task +
                        "data:\n  path: " + data + "\n  seq_len: 64\n" +
                        "train:\n  steps: " + std::to_string(steps) +
                        "\n  batch_size: 2\n  lr: 5.0e-3\n  seed: 3\n" +
                        "eval:\n  max_sequences: 4\noutput:\n  dir: " + out + "\n  plot: false\n");
}

// Exit code 1, exactly one line, naming `file` (and `also`).
void expect_file_error(const Result& r, const std::string& file, const std::string& also = "") {
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find(file), std::string::npos) << "does not name " << file << ": " << r.output;
  if (!also.empty()) {
    EXPECT_NE(r.output.find(also), std::string::npos) << "no '" << also << "': " << r.output;
  }
}

TEST(DnaAudioCli, PrepareWritesShardsTheLoadersRead) {
  TempDir d("dna_audio_prepare");
  const std::string fa = write_genome(d), out = d / "shards";
  auto r = run_cli("prepare fasta " + fa + " --out " + out + " --split 0.8,0.1,0.1", "", true);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("train 4000 tokens"), std::string::npos) << r.output;
  const auto p = data::open_prepared(out);
  EXPECT_EQ(p.kind, "dna");
  // The train shard is the first 80% of each record, in order, as tokens.
  data::FastaReader reader(fa);
  std::vector<int32_t> want = reader.fetch_tokens(0, 0, 2400), b = reader.fetch_tokens(1, 0, 1600);
  want.insert(want.end(), b.begin(), b.end());
  data::ShardReader shard(p.files.at("train"));
  EXPECT_EQ(shard.read(0, shard.size()), want);
  EXPECT_EQ(shard.segment_offsets(), (std::vector<uint64_t>{0, 2400, 4000}));
  const std::string head = read_file(p.files.at("train")).substr(0, 8);
  EXPECT_EQ(head, "MKTOKENS");
  // and the task trains from the folder
  r = run_cli("train " + dna_config(d, out, d / "run", 2));
  EXPECT_EQ(r.code, 0) << r.output;

  // audio: a folder with split folders keeps them; one byte of mu-law per sample
  const std::string audio = write_audio_corpus(d), aout = d / "audio_shards";
  r = run_cli("prepare audio " + audio + " --out " + aout + " --expect-sample-rate 16000 --expect-channels 1", "",
              true);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto ap = data::open_prepared(aout);
  EXPECT_EQ(ap.kind, "audio-mulaw");
  EXPECT_EQ(ap.sample_rate, 16000);
  EXPECT_EQ(ap.tokens.at("train"), 12000u);
  data::ShardReader val(ap.files.at("val"));
  const auto q = data::quantize(data::read_audio(audio + "/val/tone2.wav"), data::Quantization::MuLaw);
  const auto got = val.read(0, val.size());
  ASSERT_EQ(got.size(), q.size());
  for (size_t i = 0; i < q.size(); ++i) ASSERT_EQ(got[i], int32_t(q[i])) << i;
  r = run_cli("train " + audio_config(d, aout, d / "arun", 2));
  EXPECT_EQ(r.code, 0) << r.output;
}

TEST(DnaAudioCli, GenerateWritesFastaForADnaRun) {
  TempDir d("dna_audio_fasta");
  const std::string run = d / "run";
  auto r = run_cli("train " + dna_config(d, write_genome(d), run, 3));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("val_markov_bpb"), std::string::npos) << r.output;
  const std::string fa = d / "gen.fa";
  r = run_cli("generate " + run + " --tokens 130 --samples 2 --seed 4 --out " + fa);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto recs = data::read_sequences(fa);  // a valid FASTA: the reader checks every line
  ASSERT_EQ(recs.size(), 2u);
  for (const auto& rec : recs) {
    EXPECT_EQ(rec.seq.size(), 130u);
    EXPECT_EQ(rec.seq.find_first_not_of("ACGT"), std::string::npos) << rec.seq;
  }
  EXPECT_NE(recs[0].seq, recs[1].seq);
  r = run_cli("generate " + run + " --tokens 20 --prompt ACGTAC --out " + fa);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto one = data::read_sequences(fa);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].seq.size(), 26u);
  EXPECT_EQ(one[0].seq.substr(0, 6), "ACGTAC");
  // a prompt that is not DNA
  r = run_cli("generate " + run + " --tokens 20 --prompt 'AC#GT' --out " + fa);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("0x23"), std::string::npos) << r.output;
}

TEST(DnaAudioCli, GenerateWritesAWavThatLibsndfileReads) {
  TempDir d("dna_audio_wav");
  const std::string audio = write_audio_corpus(d), run = d / "run";
  auto r = run_cli("train " + audio_config(d, audio, run, 2));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("val_unigram_bits"), std::string::npos) << r.output;
  const std::string wav = d / "x.wav";
  r = run_cli("generate " + run + " --seconds 0.25 --seed 2 --out " + wav);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto info = data::audio_info(wav);
  EXPECT_EQ(info.sample_rate, 16000);
  EXPECT_EQ(info.channels, 1);
  EXPECT_EQ(info.frames, 4000);
  const auto x = data::read_audio(wav);
  double energy = 0;
  for (float v : x) energy += double(v) * v;
  EXPECT_GT(energy, 0.0) << "silent";
  // an audio prompt: its first 0.1 s, then 0.25 s of continuation
  r = run_cli("generate " + run + " --seconds 0.25 --prompt-file " + audio + "/val/tone2.wav --prompt-seconds 0.1 --out " +
              wav);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(data::audio_info(wav).frames, 1600 + 4000);
  r = run_cli("generate " + run + " --seconds 0.25");
  EXPECT_EQ(r.code, 2) << r.output;  // a WAV needs --out
}

TEST(DnaAudioCli, InitFromLoadsThePretrainedBackboneIntoAClassifier) {
  TempDir d("dna_audio_init");
  const std::string pre = d / "pre";
  auto r = run_cli("train " + dna_config(d, write_genome(d), pre, 2));
  ASSERT_EQ(r.code, 0) << r.output;
  // three species, two strains each
  std::vector<std::string> dirs;
  const char* names[] = {"alpha", "beta", "gamma"};
  for (int c = 0; c < 3; ++c) {
    dirs.push_back(d / (std::string("species/") + names[c]));
    for (int s = 0; s < 2; ++s)
      write(dirs.back() + "/s" + std::to_string(s) + ".fa",
            fasta_text({{"chr", random_bases(1200, uint64_t(10 * c + s), 0.3 + 0.2 * c)}}));
  }
  const std::string run = d / "species_run";
  std::string yaml = tiny_model() + "  init_from: " + pre + "\ntask:\n  name: dna_species\n" +
                     "data:\n  path: [" + dirs[0] + ", " + dirs[1] + ", " + dirs[2] +
                     "]\n  seq_len: 32\n  split: [0.5, 0.5]\n" +
                     "train:\n  steps: 2\n  batch_size: 4\n  lr: 5.0e-3\n  seed: 3\n" +
                     "eval:\n  max_sequences: 12\noutput:\n  dir: " + run + "\n  plot: false\n";
  const std::string cfg_path = write_yaml(d, "species.yaml", yaml);
  r = run_cli("train " + cfg_path);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("model.init_from: loaded"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("kept the fresh initialisation of classifier.weight"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("confusion matrix"), std::string::npos) << r.output;
  const auto cm = nlohmann::json::parse(read_file(run + "/confusion.json"));
  EXPECT_EQ(cm["classes"], nlohmann::json::parse(R"(["alpha","beta","gamma"])"));
  long total = 0;
  for (const auto& row : cm["matrix"]) {
    ASSERT_EQ(row.size(), 3u);
    for (const auto& c : row) total += c.get<long>();
  }
  EXPECT_EQ(total, 12);
  r = run_cli("eval " + run + " --split val", "", true);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(nlohmann::json::parse(r.output).contains("confusion")) << r.output;

  // Through the API: every backbone tensor equals the source's, the head is fresh.
  exp::RunConfig cfg = exp::load_config(cfg_path, {"output.dir=" + (d / "api_run")});
  exp::Trainer t(cfg);
  const auto src = read_safetensors(pre + "/model.safetensors");
  for (const auto& e : t.model().params().entries()) {
    if (e.name.rfind("classifier.", 0) == 0) {
      EXPECT_FALSE(src.has(e.name));
      continue;
    }
    const float* a = src.get(e.name).data<float>();
    const float* b = t.model().params().data() + e.offset;
    for (size_t i = 0; i < e.numel; ++i) ASSERT_EQ(a[i], b[i]) << e.name << "[" << i << "]";
  }
  // A source of another shape is an error naming the tensor.
  r = run_cli("train " + cfg_path + " --set model.d_model=24 --set output.dir=" + (d / "bad_run"));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(pre + "/model.safetensors: tensor 'backbone.embeddings.weight' has shape (9, 16)"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(d / "bad_run"));
}

TEST(DnaAudioCli, BenchDataComparesLoaderAndTraining) {
  TempDir d("dna_audio_bench");
  const auto r = run_cli("bench data " + dna_config(d, write_genome(d), d / "run", 2) +
                             " --seconds 0.1 --steps 1 --json",
                         "", true);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["task"], "dna_pretrain");
  EXPECT_GT(j[0]["loader_windows_per_s"].get<double>(), 0);
  EXPECT_GT(j[0]["train_windows_per_s"].get<double>(), 0);
  EXPECT_NEAR(j[0]["ratio"].get<double>(),
              j[0]["loader_windows_per_s"].get<double>() / j[0]["train_windows_per_s"].get<double>(), 1e-6);
}

// Nothing of a failed prepare is left: not the folder it would have made.
void expect_prepare_error(const TempDir& d, const std::string& kind, const std::string& input,
                          const std::string& file, const std::string& also, const std::string& flags = "") {
  const std::string out = d / "out_shards";
  const auto r = run_cli("prepare " + kind + " " + input + " --out " + out + " " + flags);
  expect_file_error(r, file, also);
  EXPECT_FALSE(fs::exists(out)) << "left " << out;
}

TEST(DnaAudioCli, BadSequenceFilesAreOneLineErrorsNamingFileAndPlace) {
  TempDir d("dna_audio_badseq");
  const std::string before = d / "before_header.fa", binary = d / "binary.fa", empty = d / "empty_record.fa",
                    fastq = d / "short_quality.fq", missing = d / "no_such.fa";
  write(before, "ACGT\n>r1\nACGT\n");
  write(binary, ">r1\nACGT\nAC\x01\x02GT\n");
  write(empty, ">r1\n>r2\nACGT\n");
  write(fastq, "@q1\nACGTACGT\n+\nIIIIIIII\n@q2\nACGT\n+\nII\n");
  expect_prepare_error(d, "fasta", before, before + ":1", "");
  expect_prepare_error(d, "fasta", binary, binary + ":3", "r1");
  expect_prepare_error(d, "fasta", empty, empty, "r1");
  expect_prepare_error(d, "fasta", fastq, fastq, "q2");
  expect_prepare_error(d, "fasta", missing, missing, "");
  // the same through `train`: no run directory, no index beside the file
  const auto r = run_cli("train " + dna_config(d, binary, d / "run", 2));
  expect_file_error(r, binary, "r1");
  EXPECT_FALSE(fs::exists(d / "run"));
  EXPECT_FALSE(fs::exists(binary + ".fai"));
}

TEST(DnaAudioCli, BadAudioFilesAreOneLineErrorsNamingTheFile) {
  TempDir d("dna_audio_badaudio");
  const std::string empty = d / "empty.wav", corrupt = d / "corrupt.wav", rate8k = d / "rate8k.wav",
                    stereo = d / "stereo.wav";
  write(empty, "");
  write(corrupt, "RIFF$$$$WAVEfmt garbage that is not a header at all");
  data::write_wav(rate8k, tone(800, 0.05), 8000);
  std::vector<float> st(2 * 800);
  for (size_t i = 0; i < st.size(); ++i) st[i] = 0.1f * float(i % 7);
  data::write_wav(stereo, st.data(), 800, 16000, 2);
  expect_prepare_error(d, "audio", empty, empty, "");
  expect_prepare_error(d, "audio", corrupt, corrupt, "");
  expect_prepare_error(d, "audio", rate8k, rate8k, "8000", "--expect-sample-rate 16000");
  expect_prepare_error(d, "audio", stereo, stereo, "channel", "--expect-channels 1");
  // through `train`, the config's expectation
  const auto r = run_cli("train " + audio_config(d, rate8k, d / "run", 2, "  expect_sample_rate: 16000\n"));
  expect_file_error(r, rate8k, "8000");
  EXPECT_FALSE(fs::exists(d / "run"));
}

TEST(DnaAudioCli, ShardsWithAWrongHeaderAreRefusedByName) {
  TempDir d("dna_audio_badshard");
  const std::string out = d / "shards";
  ASSERT_EQ(run_cli("prepare fasta " + write_genome(d) + " --out " + out + " --split 0.8,0.1,0.1").code, 0);
  const std::string shard = out + "/train.mkshard";
  std::string bytes = read_file(shard);
  const std::string good = bytes;
  bytes[0] = 'X';  // magic
  write(shard, bytes);
  auto r = run_cli("train " + dna_config(d, out, d / "run", 2));
  expect_file_error(r, shard, "magic");
  write(shard, good.substr(0, good.size() - 5));  // truncated
  r = run_cli("train " + dna_config(d, out, d / "run", 2));
  expect_file_error(r, shard, "");
  bytes = good;
  bytes[8] = 9;  // version
  write(shard, bytes);
  r = run_cli("train " + dna_config(d, out, d / "run", 2));
  expect_file_error(r, shard, "version");
  EXPECT_FALSE(fs::exists(d / "run"));
}

TEST(DnaAudioCli, ExperimentConfigsParse) {
  // The small configs and the full-scale ones (whose data paths are the
  // user's) are valid against the schema.
  for (const char* name : {"dna_pretrain", "dna_species", "audio_piano", "dna_hg38", "dna_great_apes",
                           "audio_youtubemix"}) {
    SCOPED_TRACE(name);
    const auto cfg = exp::load_config(std::string(MAMBAKIT_SOURCE_DIR) + "/experiments/" + name + ".yaml");
    EXPECT_FALSE(cfg.task_name.empty());
    EXPECT_EQ(cfg.output.dir, std::string("runs/") + name);
  }
}

}  // namespace
}  // namespace mk::test
