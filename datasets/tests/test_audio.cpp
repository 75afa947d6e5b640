// Audio: mu-law and linear quantisation error bounds, WAV round trips,
// down-mixing and resampling, corpora split by file, windows, bad files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <set>

#include "mambakit/datasets/audio.h"
#include "seqdata_test_util.h"
#include "../../libmamba/tests/test_util.h"

namespace {
using namespace mk::data;
using mk::test::TempDir;
using mk::test::throws_error;
using mk::test::write_file;

std::vector<float> sine(double freq, int rate, size_t n, double amp = 0.5, double phase = 0) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = float(amp * std::sin(2 * M_PI * freq * double(i) / rate + phase));
  return x;
}

TEST(AudioQuant, MuLawErrorBoundAndRoundTrip) {
  // Half a step in the companded domain (1/mu) bounds the error relative to
  // |x| + 1/mu by (1 + mu)^(1/mu) - 1, the derivative of the expansion.
  const double mu = 255, rel = std::pow(1 + mu, 1 / mu) - 1;
  auto xs = mk::test::uniform<float>(100000, 1, -1.0, 1.0);
  xs.insert(xs.end(), {-1.f, 1.f, 0.f, 1e-6f, -1e-6f, 0.5f});
  double worst = 0;
  for (float x : xs) {
    double err = std::fabs(mulaw_decode(mulaw_encode(x)) - x);
    double bound = (std::fabs(x) + 1 / mu) * rel + 1e-6;
    ASSERT_LE(err, bound) << "x = " << x;
    worst = std::max(worst, err);
  }
  EXPECT_GT(worst, 0.5 * (1 + 1 / mu) * rel) << "the bound is close to tight near |x| = 1";
  // Small amplitudes are resolved far finer than linear 8-bit could.
  EXPECT_LT(std::fabs(mulaw_decode(mulaw_encode(0.001f)) - 0.001f), 2e-4);
  for (int q = 0; q < 256; ++q) EXPECT_EQ(mulaw_encode(mulaw_decode(q)), q) << "decode then encode is the identity";
  for (int q = 1; q < 256; ++q) EXPECT_LT(mulaw_decode(q - 1), mulaw_decode(q));
  EXPECT_EQ(mulaw_encode(-1.f), 0);
  EXPECT_EQ(mulaw_encode(1.f), 255);
  EXPECT_EQ(mulaw_encode(7.f), 255) << "clamped";
  EXPECT_EQ(mulaw_encode(std::nanf("")), mulaw_encode(0.f));
}

TEST(AudioQuant, LinearErrorBound) {
  auto xs = mk::test::uniform<float>(100000, 2, -1.0, 1.0);
  for (float x : xs) ASSERT_LE(std::fabs(linear_decode(linear_encode(x)) - x), 1.0 / 255 + 1e-6) << x;
  for (int q = 0; q < 256; ++q) EXPECT_EQ(linear_encode(linear_decode(q)), q);
  std::vector<int32_t> ids{0, 128, 255};
  auto y = dequantize(ids.data(), ids.size(), Quantization::Linear);
  EXPECT_FLOAT_EQ(y[0], -1.f);
  EXPECT_FLOAT_EQ(y[2], 1.f);
  std::vector<int32_t> bad{3, 256};
  EXPECT_TRUE(throws_error([&] { dequantize(bad.data(), bad.size(), Quantization::MuLaw); }, {"256", "position 1"}));
  EXPECT_EQ(parse_quantization("mulaw"), Quantization::MuLaw);
  EXPECT_TRUE(throws_error([] { parse_quantization("alaw"); }, {"'alaw'"}));
}

TEST(AudioIo, WavWriteReadRoundTrip) {
  TempDir d;
  auto x = mk::test::uniform<float>(16000, 3, -0.99, 0.99);
  write_wav(d.file("a16.wav"), x, 16000, 16);
  write_wav(d.file("a32.wav"), x, 16000, 32);
  auto info = audio_info(d.file("a16.wav"));
  EXPECT_EQ(info.sample_rate, 16000);
  EXPECT_EQ(info.channels, 1);
  EXPECT_EQ(info.frames, 16000);
  EXPECT_NE(info.format.find("WAV"), std::string::npos) << info.format;
  AudioReadOptions keep;
  keep.sample_rate = 0;
  auto y16 = read_audio(d.file("a16.wav"), keep), y32 = read_audio(d.file("a32.wav"), keep);
  ASSERT_EQ(y16.size(), x.size());
  EXPECT_TRUE(mk::test::all_close(y16.data(), x.data(), x.size(), 1.0 / 32768 + 1e-7));
  EXPECT_TRUE(mk::test::all_close(y32.data(), x.data(), x.size(), 0.0));
  for (const auto& f : mk::test::files_in(d.path())) EXPECT_EQ(f.find(".tmp."), std::string::npos) << f;
  EXPECT_TRUE(throws_error([&] { write_wav(d.file("x.wav"), x, 16000, 12); }, {"bits"}));
  EXPECT_TRUE(throws_error([&] { write_wav(d.file("no/such/dir/x.wav"), x, 16000); }, {"no/such/dir/x.wav"}));
}

TEST(AudioIo, StereoIsDownMixedAndResampled) {
  TempDir d;
  const int rate = 44100;
  const size_t n = 44100;
  auto left = sine(440, rate, n, 0.6), right = sine(440, rate, n, 0.2);
  std::vector<float> inter(2 * n);
  for (size_t i = 0; i < n; ++i) inter[2 * i] = left[i], inter[2 * i + 1] = right[i];
  write_wav(d.file("st.wav"), inter.data(), n, rate, 2, 32);

  AudioReadOptions same;
  same.sample_rate = 0;
  auto mono = read_audio(d.file("st.wav"), same);
  ASSERT_EQ(mono.size(), n);
  for (size_t i = 0; i < n; i += 97) ASSERT_NEAR(mono[i], 0.5f * (left[i] + right[i]), 1e-6);

  auto y = read_audio(d.file("st.wav"));  // 16 kHz default
  EXPECT_NEAR(double(y.size()), 16000.0, 2.0);
  // Still a 440 Hz sine of amplitude 0.4: least-squares fit away from the edges.
  double ss = 0, sc = 0, cc = 0, ys = 0, yc = 0;
  const size_t lo = 200, hi = y.size() - 200;
  for (size_t i = lo; i < hi; ++i) {
    double t = 2 * M_PI * 440 * double(i) / 16000, s = std::sin(t), c = std::cos(t);
    ss += s * s, sc += s * c, cc += c * c, ys += y[i] * s, yc += y[i] * c;
  }
  double det = ss * cc - sc * sc, a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
  EXPECT_NEAR(std::hypot(a, b), 0.4, 0.01);
  double res = 0;
  for (size_t i = lo; i < hi; ++i) {
    double t = 2 * M_PI * 440 * double(i) / 16000;
    res += std::pow(y[i] - a * std::sin(t) - b * std::cos(t), 2);
  }
  EXPECT_LT(std::sqrt(res / double(hi - lo)), 0.005) << "RMS residual of the 440 Hz fit";
}

TEST(AudioIo, BadFilesAndUnexpectedFormats) {
  TempDir d;
  EXPECT_TRUE(throws_error([&] { read_audio(d.file("none.wav")); }, {d.file("none.wav"), "No such file"}));
  write_file(d.file("zero.wav"), "");
  EXPECT_TRUE(throws_error([&] { read_audio(d.file("zero.wav")); }, {d.file("zero.wav"), "empty"}));
  std::mt19937 rng(4);
  std::string junk;
  for (int i = 0; i < 5000; ++i) junk += char(rng());
  write_file(d.file("junk.wav"), junk);
  EXPECT_TRUE(throws_error([&] { read_audio(d.file("junk.wav")); }, {d.file("junk.wav"), "cannot read audio"}));
  // A real WAV cut inside its header.
  write_wav(d.file("ok.wav"), sine(300, 8000, 800), 8000);
  write_file(d.file("cut.wav"), mk::test::read_file(d.file("ok.wav")).substr(0, 30));
  EXPECT_TRUE(throws_error([&] { read_audio(d.file("cut.wav")); }, {d.file("cut.wav")}));

  AudioReadOptions o;
  o.expect_sample_rate = 16000;
  EXPECT_TRUE(throws_error([&] { read_audio(d.file("ok.wav"), o); }, {d.file("ok.wav"), "8000 Hz", "expects 16000 Hz"}));
  std::vector<float> st(200, 0.1f);
  write_wav(d.file("st.wav"), st.data(), 100, 16000, 2);
  AudioReadOptions m;
  m.expect_channels = 1;
  EXPECT_TRUE(throws_error([&] { read_audio(d.file("st.wav"), m); }, {d.file("st.wav"), "2 channel(s)", "expects 1"}));
  EXPECT_NO_THROW(read_audio(d.file("ok.wav")));
}

// Six files of different lengths in a flat folder.
std::vector<std::string> make_files(const TempDir& d, const std::string& sub, int n, int rate) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string p = d.file(sub + "/f" + std::to_string(i) + ".wav");
    std::filesystem::create_directories(d.file(sub));
    write_wav(p, sine(200 + 50 * i, rate, size_t(3000 + 500 * i), 0.8), rate);
    out.push_back(p);
  }
  return out;
}

TEST(AudioCorpusTest, SplitByFileAndWindowsMatchTheFiles) {
  TempDir d;
  auto files = make_files(d, "flat", 6, 16000);
  write_file(d.file("flat/readme.txt"), "not audio");
  AudioCorpusOptions o;
  o.split = {0.6, 0.2, 0.2};
  AudioCorpus c({d.file("flat")}, o);
  EXPECT_EQ(c.splits(), (std::vector<std::string>{"train", "val", "test"}));
  EXPECT_EQ(c.files("train").size(), 4u);
  EXPECT_EQ(c.files("val").size(), 1u);
  EXPECT_EQ(c.files("test").size(), 1u);
  std::set<std::string> seen;
  for (const auto& s : c.splits())
    for (const auto& f : c.files(s)) {
      EXPECT_TRUE(seen.insert(f.path).second) << f.path << " in two splits";
      EXPECT_EQ(f.tokens, quantize(read_audio(f.path), Quantization::MuLaw));
    }
  EXPECT_EQ(seen.size(), 6u);

  AudioWindowSampler smp(c, "train", 1024, 5);
  std::vector<int32_t> buf(1024);
  for (int k = 0; k < 200; ++k) {
    WindowPos w = smp.next(buf.data());
    const auto& f = c.files("train")[w.segment];
    ASSERT_LE(w.start + 1024, int64_t(f.tokens.size()));
    for (int i = 0; i < 1024; i += 111) ASSERT_EQ(buf[size_t(i)], f.tokens[size_t(w.start + i)]);
  }
  // Same seed, same windows; the state resumes.
  AudioWindowSampler a(c, "train", 512, 8), b(c, "train", 512, 8);
  std::vector<int32_t> x(512), y(512);
  for (int k = 0; k < 10; ++k) {
    a.next(x.data()), b.next(y.data());
    ASSERT_EQ(x, y);
  }
  auto ev = smp.eval_windows(1024, 0);
  for (const auto& w : ev) EXPECT_EQ(w.start % 1024, 0);
  EXPECT_TRUE(throws_error([&] { AudioWindowSampler s(c, "test", 1 << 20, 1); }, {"no file is as long"}));
}

TEST(AudioCorpusTest, SplitFoldersAreKeptAndRatesConverted) {
  TempDir d;
  make_files(d, "c/train", 2, 8000);
  make_files(d, "c/val", 1, 8000);
  make_files(d, "c/test", 1, 8000);
  AudioCorpusOptions o;
  o.quantization = Quantization::Linear;
  AudioCorpus c({d.file("c")}, o);
  EXPECT_EQ(c.files("train").size(), 2u);
  EXPECT_EQ(c.files("valid").size(), 1u);
  EXPECT_EQ(c.files("test")[0].path, d.file("c/test/f0.wav"));
  EXPECT_NEAR(double(c.files("test")[0].tokens.size()), 6000.0, 2.0) << "8 kHz resampled to 16 kHz";
  EXPECT_EQ(c.sample_rate(), 16000);
  o.read.expect_sample_rate = 16000;
  EXPECT_TRUE(throws_error([&] { AudioCorpus bad({d.file("c")}, o); }, {"f0.wav", "8000 Hz"}));
  EXPECT_TRUE(throws_error([&] { c.files("dev"); }, {"'dev'"}));
  std::filesystem::create_directories(d.file("empty"));
  EXPECT_TRUE(throws_error([&] { AudioCorpus e({d.file("empty")}); }, {d.file("empty"), "no audio files"}));
  EXPECT_TRUE(is_audio_file_name("x.FLAC"));
  EXPECT_TRUE(is_audio_file_name("x.ogg"));
  EXPECT_FALSE(is_audio_file_name("x.txt"));
}

}  // namespace
