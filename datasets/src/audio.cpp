#include "mambakit/datasets/audio.h"

#include <samplerate.h>
#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>

#include "fs_util.h"
#include "mambakit/error.h"
#include "mambakit/io/atomic_file.h"

namespace mk::data {
namespace {

struct SndCloser {
  void operator()(SNDFILE* f) const {
    if (f) sf_close(f);
  }
};
using SndPtr = std::unique_ptr<SNDFILE, SndCloser>;

SndPtr open_audio(const std::string& path, SF_INFO* info) {
  fs::require_file(path, "audio file");
  if (fs::file_size(path) == 0) throw Error(path + ": empty audio file (0 bytes)");
  std::memset(info, 0, sizeof *info);
  SndPtr f(sf_open(path.c_str(), SFM_READ, info));
  if (!f) throw Error(path + ": cannot read audio: " + sf_strerror(nullptr) + " (corrupt, or a format libsndfile lacks)");
  if (info->channels < 1 || info->samplerate < 1)
    throw Error(path + ": audio header declares " + std::to_string(info->channels) + " channels at " +
                std::to_string(info->samplerate) + " Hz");
  return f;
}

std::string format_name(int format) {
  SF_FORMAT_INFO fi;
  fi.format = format & SF_FORMAT_TYPEMASK;
  if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &fi, sizeof fi) == 0 && fi.name) return fi.name;
  return "unknown";
}

int converter(ResampleQuality q) {
  switch (q) {
    case ResampleQuality::Best: return SRC_SINC_BEST_QUALITY;
    case ResampleQuality::Fastest: return SRC_SINC_FASTEST;
    default: return SRC_SINC_MEDIUM_QUALITY;
  }
}

// libsndfile virtual I/O over a growing string, so a WAV is assembled in
// memory and then written by atomic_write.
struct MemFile {
  std::string buf;
  sf_count_t pos = 0;
};
sf_count_t mem_len(void* u) { return sf_count_t(static_cast<MemFile*>(u)->buf.size()); }
sf_count_t mem_seek(sf_count_t off, int whence, void* u) {
  auto* m = static_cast<MemFile*>(u);
  sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : sf_count_t(m->buf.size());
  if (base + off < 0) return -1;
  m->pos = base + off;
  return m->pos;
}
sf_count_t mem_read(void* p, sf_count_t n, void* u) {
  auto* m = static_cast<MemFile*>(u);
  sf_count_t avail = std::max<sf_count_t>(0, sf_count_t(m->buf.size()) - m->pos);
  n = std::min(n, avail);
  std::memcpy(p, m->buf.data() + m->pos, size_t(n));
  m->pos += n;
  return n;
}
sf_count_t mem_write(const void* p, sf_count_t n, void* u) {
  auto* m = static_cast<MemFile*>(u);
  if (size_t(m->pos + n) > m->buf.size()) m->buf.resize(size_t(m->pos + n));
  std::memcpy(&m->buf[size_t(m->pos)], p, size_t(n));
  m->pos += n;
  return n;
}
sf_count_t mem_tell(void* u) { return static_cast<MemFile*>(u)->pos; }

const std::set<std::string>& audio_extensions() {
  static std::set<std::string> exts;
  static std::once_flag once;
  std::call_once(once, [] {
    int n = 0;
    sf_command(nullptr, SFC_GET_FORMAT_MAJOR_COUNT, &n, sizeof n);
    for (int i = 0; i < n; ++i) {
      SF_FORMAT_INFO fi;
      fi.format = i;
      if (sf_command(nullptr, SFC_GET_FORMAT_MAJOR, &fi, sizeof fi) != 0 || !fi.extension) continue;
      std::string e = fi.extension;
      if (e == "raw") continue;  // headerless: nothing says its rate or channels
      exts.insert(e);
      if (e == "oga") exts.insert({"ogg", "opus"});
      if (e == "aiff") exts.insert("aif");
      if (e == "au") exts.insert("snd");
      if (e == "m1a") exts.insert({"mp3", "mp2"});
    }
  });
  return exts;
}

std::string canonical_split(const std::string& s) {
  return s == "valid" || s == "validation" ? "val" : s;
}

}  // namespace

AudioInfo audio_info(const std::string& path) {
  SF_INFO info;
  SndPtr f = open_audio(path, &info);
  return AudioInfo{info.samplerate, info.channels, int64_t(info.frames), format_name(info.format)};
}

std::vector<float> resample(const std::vector<float>& x, int from_rate, int to_rate, ResampleQuality q) {
  if (from_rate < 1 || to_rate < 1) throw Error("resample: sample rates must be positive");
  if (from_rate == to_rate || x.empty()) return x;
  const double ratio = double(to_rate) / double(from_rate);
  // libsamplerate's limit, checked before the output is allocated.
  if (ratio > 256 || ratio < 1.0 / 256)
    throw Error("resample: " + std::to_string(from_rate) + " Hz to " + std::to_string(to_rate) +
                " Hz is a ratio outside libsamplerate's [1/256, 256]");
  std::vector<float> out(size_t(std::ceil(double(x.size()) * ratio)) + 16);
  SRC_DATA d;
  std::memset(&d, 0, sizeof d);
  d.data_in = x.data();
  d.input_frames = long(x.size());
  d.data_out = out.data();
  d.output_frames = long(out.size());
  d.src_ratio = ratio;
  d.end_of_input = 1;
  int err = src_simple(&d, converter(q), 1);
  if (err) throw Error(std::string("resample: libsamplerate: ") + src_strerror(err));
  out.resize(size_t(d.output_frames_gen));
  return out;
}

std::vector<float> read_audio(const std::string& path, const AudioReadOptions& opts) {
  SF_INFO info;
  SndPtr f = open_audio(path, &info);
  if (opts.expect_sample_rate && info.samplerate != opts.expect_sample_rate)
    throw Error(path + ": sample rate " + std::to_string(info.samplerate) + " Hz, but the configuration expects " +
                std::to_string(opts.expect_sample_rate) + " Hz");
  if (opts.expect_channels && info.channels != opts.expect_channels)
    throw Error(path + ": " + std::to_string(info.channels) + " channel(s), but the configuration expects " +
                std::to_string(opts.expect_channels));
  if (info.frames <= 0) throw Error(path + ": no audio frames");
  const int ch = info.channels;
  std::vector<float> mono;
  // The header's frame count is a claim: reserve at most one frame per byte
  // of the file (compressed formats may hold more; the vector grows then).
  mono.reserve(size_t(std::min<int64_t>(info.frames, fs::file_size(path))));
  // Reads of at most 16K samples whatever the channel count (libsndfile
  // allows thousands of channels), and no larger than the file's frames.
  const sf_count_t chunk = std::max<sf_count_t>(1, std::min<sf_count_t>(info.frames, 16384 / ch));
  std::vector<float> buf(size_t(chunk) * size_t(ch));
  for (;;) {
    sf_count_t got = sf_readf_float(f.get(), buf.data(), chunk);
    if (got <= 0) break;
    for (sf_count_t i = 0; i < got; ++i) {
      float s = 0;
      for (int c = 0; c < ch; ++c) s += buf[size_t(i) * size_t(ch) + size_t(c)];
      mono.push_back(s / float(ch));
    }
  }
  if (sf_error(f.get()) != SF_ERR_NO_ERROR)
    throw Error(path + ": audio decoding failed after " + std::to_string(mono.size()) + " frames: " + sf_strerror(f.get()));
  if (mono.empty()) throw Error(path + ": no audio frames could be decoded (truncated file?)");
  const int rate = opts.sample_rate ? opts.sample_rate : info.samplerate;
  try {
    return resample(mono, info.samplerate, rate, opts.quality);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

void write_wav(const std::string& path, const float* samples, size_t frames, int sample_rate, int channels, int bits) {
  if (sample_rate < 1 || channels < 1) throw Error(path + ": WAV needs a positive sample rate and channel count");
  SF_INFO info;
  std::memset(&info, 0, sizeof info);
  info.samplerate = sample_rate;
  info.channels = channels;
  switch (bits) {
    case 16: info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16; break;
    case 24: info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_24; break;
    case 32: info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT; break;
    default: throw Error(path + ": WAV bits must be 16, 24 or 32 (float), got " + std::to_string(bits));
  }
  MemFile mem;
  SF_VIRTUAL_IO vio{mem_len, mem_seek, mem_read, mem_write, mem_tell};
  SndPtr f(sf_open_virtual(&vio, SFM_WRITE, &info, &mem));
  if (!f) throw Error(path + ": libsndfile cannot start a WAV: " + sf_strerror(nullptr));
  sf_command(f.get(), SFC_SET_CLIPPING, nullptr, SF_TRUE);
  if (sf_writef_float(f.get(), samples, sf_count_t(frames)) != sf_count_t(frames))
    throw Error(path + ": libsndfile failed to encode the samples: " + sf_strerror(f.get()));
  f.reset();  // finishes the header
  atomic_write_text(path, mem.buf);
}

void write_wav(const std::string& path, const std::vector<float>& mono, int sample_rate, int bits) {
  write_wav(path, mono.data(), mono.size(), sample_rate, 1, bits);
}

// --- quantisation --------------------------------------------------------------

namespace {
constexpr double kMu = kAudioClasses - 1;
inline double clamp_sample(float x) { return x == x ? std::clamp(double(x), -1.0, 1.0) : 0.0; }
inline uint8_t to_class(double y) {  // y in [-1, 1]
  return uint8_t(std::clamp(std::floor((y + 1) * 0.5 * kMu + 0.5), 0.0, kMu));
}
}  // namespace

uint8_t mulaw_encode(float x) {
  double v = clamp_sample(x);
  double y = std::copysign(std::log1p(kMu * std::fabs(v)) / std::log1p(kMu), v);
  return to_class(y);
}

float mulaw_decode(int q) {
  double y = 2.0 * q / kMu - 1.0;
  return float(std::copysign((std::pow(1.0 + kMu, std::fabs(y)) - 1.0) / kMu, y));
}

uint8_t linear_encode(float x) { return to_class(clamp_sample(x)); }
float linear_decode(int q) { return float(2.0 * q / kMu - 1.0); }

Quantization parse_quantization(const std::string& s) {
  if (s == "mulaw" || s == "mu-law" || s == "mu_law") return Quantization::MuLaw;
  if (s == "linear") return Quantization::Linear;
  throw Error("audio quantization '" + s + "': expected mulaw or linear");
}

std::string quantization_name(Quantization q) { return q == Quantization::MuLaw ? "mulaw" : "linear"; }

void quantize(const float* x, size_t n, Quantization q, uint8_t* out) {
  if (q == Quantization::MuLaw)
    for (size_t i = 0; i < n; ++i) out[i] = mulaw_encode(x[i]);
  else
    for (size_t i = 0; i < n; ++i) out[i] = linear_encode(x[i]);
}

std::vector<uint8_t> quantize(const std::vector<float>& x, Quantization q) {
  std::vector<uint8_t> out(x.size());
  quantize(x.data(), x.size(), q, out.data());
  return out;
}

std::vector<float> dequantize(const int32_t* ids, size_t n, Quantization q) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= kAudioClasses)
      throw Error("dequantize: audio class " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                  " is outside [0, 256)");
    out[i] = q == Quantization::MuLaw ? mulaw_decode(ids[i]) : linear_decode(ids[i]);
  }
  return out;
}

// --- corpora ---------------------------------------------------------------------

bool is_audio_file_name(const std::string& name) {
  size_t dot = name.find_last_of('.');
  if (dot == std::string::npos) return false;
  std::string e = name.substr(dot + 1);
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return audio_extensions().count(e) > 0;
}

std::vector<std::string> audio_files(const std::string& dir) { return fs::list_files(dir, is_audio_file_name); }

AudioCorpus::AudioCorpus(const std::vector<std::string>& inputs, const AudioCorpusOptions& opts)
    : rate_(opts.read.sample_rate), quant_(opts.quantization) {
  if (inputs.empty()) throw Error("audio corpus: no input files or folders");
  std::vector<std::vector<std::string>> parts;
  const std::string& first = inputs[0];
  if (inputs.size() == 1 && fs::is_dir(first) && fs::is_dir(first + "/train") &&
      (fs::is_dir(first + "/val") || fs::is_dir(first + "/valid"))) {
    // The folder already says which file is in which split.
    split_names_ = {"train", "val"};
    if (fs::is_dir(first + "/test")) split_names_.push_back("test");
    for (const auto& s : split_names_) {
      std::string d = first + "/" + s;
      if (s == "val" && !fs::is_dir(d)) d = first + "/valid";
      parts.push_back(audio_files(d));
      if (parts.back().empty()) throw Error(d + ": no audio files in this split folder");
    }
  } else {
    std::vector<std::string> all;
    for (const auto& in : inputs) {
      if (fs::is_dir(in)) {
        auto f = audio_files(in);
        if (f.empty()) throw Error(in + ": no audio files (by extension) in this folder");
        all.insert(all.end(), f.begin(), f.end());
      } else {
        fs::require_file(in, "audio file");
        all.push_back(in);
      }
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    split_names_ = split_names(opts.split.size());
    std::mt19937_64 rng(opts.seed);
    for (size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[uniform_index(rng, i)]);
    auto counts = split_counts(all.size(), opts.split);
    size_t at = 0;
    for (size_t c : counts) {
      parts.emplace_back(all.begin() + long(at), all.begin() + long(at + c));
      std::sort(parts.back().begin(), parts.back().end());
      at += c;
    }
  }
  for (const auto& p : parts) {
    files_.emplace_back();
    for (const auto& path : p) files_.back().push_back(AudioFile{path, quantize(read_audio(path, opts.read), quant_)});
  }
  if (rate_ == 0 && !files_.empty() && !files_[0].empty()) rate_ = audio_info(files_[0][0].path).sample_rate;
}

const std::vector<AudioFile>& AudioCorpus::files(const std::string& split) const {
  const std::string s = canonical_split(split);
  for (size_t k = 0; k < split_names_.size(); ++k)
    if (split_names_[k] == s) return files_[k];
  throw Error("audio corpus has no split '" + split + "'");
}

int64_t AudioCorpus::samples(const std::string& split) const {
  int64_t n = 0;
  for (const auto& f : files(split)) n += int64_t(f.tokens.size());
  return n;
}

AudioWindowSampler::AudioWindowSampler(const AudioCorpus& corpus, const std::string& split, int64_t window_len,
                                       uint64_t seed)
    : files_(&corpus.files(split)), rng_(seed) {
  if (files_->empty()) throw Error("audio split '" + split + "' has no files");
  std::vector<int64_t> lengths;
  for (const auto& f : *files_) lengths.push_back(int64_t(f.tokens.size()));
  index_ = WindowIndex(lengths, window_len);
  if (index_.total_starts() == 0)
    throw Error("audio split '" + split + "': no file is as long as a window of " + std::to_string(window_len) +
                " samples (longest " + std::to_string(*std::max_element(lengths.begin(), lengths.end())) + ")");
}

void AudioWindowSampler::fetch(const WindowPos& w, int32_t* out) const {
  const uint8_t* t = (*files_)[w.segment].tokens.data() + w.start;
  for (int64_t i = 0; i < index_.window_len(); ++i) out[i] = t[i];
}

WindowPos AudioWindowSampler::next(int32_t* out) {
  WindowPos w = index_.sample(rng_);
  fetch(w, out);
  return w;
}

}  // namespace mk::data
