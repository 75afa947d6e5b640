// Audio through libsndfile (WAV, FLAC, OGG/Vorbis, MP3 where the installed
// libsndfile reads it, ...) and libsamplerate: down-mixed to mono, resampled
// to the configured rate, quantised to 256 classes by 8-bit mu-law (as in
// SaShiMi / Mamba's YouTubeMix piano task) or linearly; windows of length L
// over a folder of files, split into train/val/test by whole files.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "mambakit/datasets/windows.h"

namespace mk::data {

struct AudioInfo {
  int sample_rate = 0;
  int channels = 0;
  int64_t frames = 0;
  std::string format;  // libsndfile's name of the container, e.g. "WAV (Microsoft)"
  double seconds() const { return sample_rate ? double(frames) / sample_rate : 0.0; }
};

// Header of an audio file. Throws mk::Error naming the file when it is
// missing, empty, corrupt or of a format libsndfile cannot read.
AudioInfo audio_info(const std::string& path);

enum class ResampleQuality { Best, Medium, Fastest };

struct AudioReadOptions {
  int sample_rate = 16000;     // output rate; 0 keeps the file's own rate
  int expect_sample_rate = 0;  // 0: any rate (resampled); else other rates are an error
  int expect_channels = 0;     // 0: any count (down-mixed); else other counts are an error
  ResampleQuality quality = ResampleQuality::Medium;
};

// Samples of a file as mono floats in [-1, 1] at opts.sample_rate (the
// channel average; resampled with libsamplerate when the rates differ).
std::vector<float> read_audio(const std::string& path, const AudioReadOptions& opts = {});
// Mono resampling with libsamplerate. from_rate == to_rate copies.
std::vector<float> resample(const std::vector<float>& x, int from_rate, int to_rate,
                            ResampleQuality quality = ResampleQuality::Medium);

// Writes interleaved samples (frames * channels) as a WAV file through
// libsndfile: bits 16 or 24 (PCM, clipped to [-1, 1]) or 32 (float).
// Atomic: the file appears complete or not at all.
void write_wav(const std::string& path, const float* samples, size_t frames, int sample_rate,
               int channels = 1, int bits = 16);
void write_wav(const std::string& path, const std::vector<float>& mono, int sample_rate, int bits = 16);

// --- quantisation to 256 classes ---------------------------------------------
enum class Quantization { MuLaw, Linear };
constexpr int kAudioClasses = 256;
Quantization parse_quantization(const std::string& s);  // "mulaw" | "mu-law" | "linear"
std::string quantization_name(Quantization q);

// mu-law (mu = 255): y = sign(x) ln(1 + mu|x|) / ln(1 + mu), then 256 even
// steps of y in [-1, 1]. Inputs are clamped to [-1, 1]; NaN counts as 0.
uint8_t mulaw_encode(float x);
float mulaw_decode(int q);
// Linear: 256 even steps of x in [-1, 1].
uint8_t linear_encode(float x);
float linear_decode(int q);
void quantize(const float* x, size_t n, Quantization q, uint8_t* out);
std::vector<uint8_t> quantize(const std::vector<float>& x, Quantization q);
// Class ids (0..255, e.g. generated tokens) back to samples; throws on ids out of range.
std::vector<float> dequantize(const int32_t* ids, size_t n, Quantization q);

// --- corpora -------------------------------------------------------------------
// Names with an extension libsndfile reads (queried from the library, plus
// the usual aliases such as .ogg and .mp3 where those formats are present).
bool is_audio_file_name(const std::string& name);
// Audio files under a folder (recursively), sorted.
std::vector<std::string> audio_files(const std::string& dir);

struct AudioCorpusOptions {
  AudioReadOptions read;
  Quantization quantization = Quantization::MuLaw;
  // Fractions of the files for train, val[, test] when the input is not a
  // folder with train/ val/ [test/] subfolders (see AudioCorpus).
  std::vector<double> split{0.8, 0.1, 0.1};
  uint64_t seed = 1;  // which files go where
};

struct AudioFile {
  std::string path;
  std::vector<uint8_t> tokens;  // quantised samples at the corpus rate
};

// Every input file decoded and quantised in memory (one byte per sample: an
// hour at 16 kHz is 58 MB). Inputs are files and folders. A single folder
// holding train/ and val/ (and optionally test/) subfolders keeps that
// split (the layout of tools/make-piano-corpus.sh); otherwise the files are
// shuffled with the seed and split by file, so no file is in two splits.
class AudioCorpus {
 public:
  AudioCorpus(const std::vector<std::string>& inputs, const AudioCorpusOptions& opts = {});

  const std::vector<std::string>& splits() const { return split_names_; }
  // Throws naming the split if unknown ("valid"/"validation" mean "val").
  const std::vector<AudioFile>& files(const std::string& split) const;
  int64_t samples(const std::string& split) const;
  int sample_rate() const { return rate_; }
  Quantization quantization() const { return quant_; }

 private:
  std::vector<std::string> split_names_;
  std::vector<std::vector<AudioFile>> files_;
  int rate_;
  Quantization quant_;
};

// Windows of window_len samples of one split, uniform over all starts that
// keep the window inside one file; deterministic per seed.
class AudioWindowSampler {
 public:
  AudioWindowSampler(const AudioCorpus& corpus, const std::string& split, int64_t window_len, uint64_t seed);

  int64_t window_len() const { return index_.window_len(); }
  uint64_t total_starts() const { return index_.total_starts(); }
  WindowPos next(int32_t* out);  // segment = file index in corpus.files(split)
  void fetch(const WindowPos& w, int32_t* out) const;
  // Consecutive windows `stride` apart in every file, at most max (0 = all).
  std::vector<WindowPos> eval_windows(int64_t stride, size_t max_windows) const {
    return index_.tile(stride, max_windows);
  }

  std::string rng_state() const { return rng_state_text(rng_); }
  void set_rng_state(const std::string& s) { set_rng_state_text(rng_, s, "audio window sampler"); }

 private:
  const std::vector<AudioFile>* files_;
  WindowIndex index_;
  std::mt19937_64 rng_;
};

}  // namespace mk::data
