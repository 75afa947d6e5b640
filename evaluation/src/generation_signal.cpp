// DNA and audio generation metrics: k-mer spectra and GC content; mu-law
// code histograms, spectral flatness and RMS energy per frame.
#include <cmath>
#include <complex>

#include "mambakit/error.h"
#include "mambakit/evaluation/generation_metrics.h"

namespace mk::eval {

constexpr double kPi = 3.14159265358979323846;

// ------------------------------------------------------------------- DNA ---

namespace {

int base_index(char c) {
  switch (c) {
    case 'A': case 'a': return 0;
    case 'C': case 'c': return 1;
    case 'G': case 'g': return 2;
    case 'T': case 't': return 3;
    default: return -1;
  }
}

// (gc, acgt) counts of one sequence.
std::pair<size_t, size_t> gc_counts(const std::string& s) {
  size_t gc = 0, all = 0;
  for (char c : s) {
    int b = base_index(c);
    if (b < 0) continue;
    ++all;
    gc += (b == 1 || b == 2);
  }
  return {gc, all};
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / double(v.size());
}

double stddev(const std::vector<double>& v) {  // population
  if (v.size() < 2) return 0;
  double m = mean(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size()));
}

}  // namespace

std::vector<double> kmer_spectrum(const std::vector<std::string>& seqs, int k) {
  if (k < 1 || k > 12) throw Error("kmer_spectrum: k must be in [1, 12], got " + std::to_string(k));
  size_t size = size_t(1) << (2 * k), mask = size - 1;
  std::vector<double> h(size, 0.0);
  double total = 0;
  for (const auto& s : seqs) {
    size_t code = 0;
    int run = 0;  // consecutive ACGT bases ending here
    for (char c : s) {
      int b = base_index(c);
      if (b < 0) { run = 0; continue; }
      code = ((code << 2) | size_t(b)) & mask;
      if (++run >= k) { h[code] += 1; total += 1; }
    }
  }
  if (total == 0)
    throw Error("kmer_spectrum: no " + std::to_string(k) + "-mers of A/C/G/T in the sequences");
  for (double& x : h) x /= total;
  return h;
}

double js_divergence(const std::vector<double>& p, const std::vector<double>& q) {
  if (p.size() != q.size() || p.empty())
    throw Error("js_divergence: histograms of different sizes (" + std::to_string(p.size()) +
                " vs " + std::to_string(q.size()) + ") or empty");
  double sp = 0, sq = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] < 0 || q[i] < 0 || !std::isfinite(p[i]) || !std::isfinite(q[i]))
      throw Error("js_divergence: negative or non-finite entry at " + std::to_string(i));
    sp += p[i], sq += q[i];
  }
  if (sp <= 0 || sq <= 0) throw Error("js_divergence: a histogram sums to 0");
  double js = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    double a = p[i] / sp, b = q[i] / sq, m = 0.5 * (a + b);
    if (a > 0) js += 0.5 * a * std::log2(a / m);
    if (b > 0) js += 0.5 * b * std::log2(b / m);
  }
  return std::max(0.0, js);
}

double gc_content(const std::vector<std::string>& seqs) {
  size_t gc = 0, all = 0;
  for (const auto& s : seqs) {
    auto [g, a] = gc_counts(s);
    gc += g, all += a;
  }
  return all ? double(gc) / double(all) : 0.0;
}

DnaGenMetrics dna_generation_metrics(const std::vector<std::string>& generated,
                                     const std::vector<std::string>& held_out, int max_k) {
  if (generated.empty() || held_out.empty())
    throw Error("dna_generation_metrics: no generated or no held-out sequences");
  DnaGenMetrics m;
  for (int k = 1; k <= max_k; ++k)
    m.kmer_jsd.push_back(js_divergence(kmer_spectrum(generated, k), kmer_spectrum(held_out, k)));
  m.gc = gc_content(generated);
  m.gc_reference = gc_content(held_out);
  m.gc_deviation = std::fabs(m.gc - m.gc_reference);
  std::vector<double> per;
  for (const auto& s : generated) {
    auto [g, a] = gc_counts(s);
    if (a) per.push_back(double(g) / double(a));
  }
  m.gc_sample_std = stddev(per);
  return m;
}

std::map<std::string, double> DnaGenMetrics::to_map() const {
  std::map<std::string, double> out{{"gc", gc},
                                    {"gc_reference", gc_reference},
                                    {"gc_deviation", gc_deviation},
                                    {"gc_sample_std", gc_sample_std}};
  for (size_t k = 0; k < kmer_jsd.size(); ++k)
    out["kmer_jsd_" + std::to_string(k + 1)] = kmer_jsd[k];
  return out;
}

// ----------------------------------------------------------------- Audio ---

float mu_law_decode(uint8_t code) {
  double y = 2.0 * code / 255.0 - 1.0;
  double x = (std::pow(256.0, std::fabs(y)) - 1.0) / 255.0;
  return float(y < 0 ? -x : x);
}

std::vector<double> code_histogram(const std::vector<std::vector<uint8_t>>& codes) {
  std::vector<double> h(256, 0.0);
  double total = 0;
  for (const auto& s : codes)
    for (uint8_t c : s) h[c] += 1, total += 1;
  if (total == 0) throw Error("code_histogram: no codes");
  for (double& x : h) x /= total;
  return h;
}

namespace {

// In-place iterative radix-2 FFT; n a power of two.
void fft(std::vector<std::complex<double>>& a) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {  // bit reversal
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    double ang = -2 * kPi / double(len);
    std::complex<double> wl(std::cos(ang), std::sin(ang));
    for (size_t i = 0; i < n; i += len) {
      std::complex<double> w(1);
      for (size_t j = 0; j < len / 2; ++j, w *= wl) {
        auto u = a[i + j], v = a[i + j + len / 2] * w;
        a[i + j] = u + v;
        a[i + j + len / 2] = u - v;
      }
    }
  }
}

}  // namespace

FrameStats frame_stats(const std::vector<std::vector<float>>& signals, int frame, int hop) {
  if (frame < 2 || (frame & (frame - 1)) || hop < 1)
    throw Error("frame_stats: frame must be a power of two >= 2 and hop >= 1 (got frame " +
                std::to_string(frame) + ", hop " + std::to_string(hop) + ")");
  std::vector<double> window(frame);
  for (int i = 0; i < frame; ++i) window[i] = 0.5 - 0.5 * std::cos(2 * kPi * i / frame);
  std::vector<double> flat, rms;
  std::vector<std::complex<double>> buf(frame);
  for (const auto& s : signals) {
    if (s.empty()) continue;
    size_t n = s.size();
    for (size_t t = 0; t == 0 || t + size_t(frame) <= n; t += size_t(hop)) {
      double e = 0;
      for (int i = 0; i < frame; ++i) {
        double x = t + i < n ? double(s[t + i]) : 0.0;
        e += x * x;
        buf[i] = x * window[i];
      }
      rms.push_back(std::sqrt(e / frame));
      fft(buf);
      double log_sum = 0, sum = 0;
      int bins = frame / 2 + 1;
      for (int k = 0; k < bins; ++k) {
        double p = std::max(1e-10, std::norm(buf[k]));
        log_sum += std::log(p), sum += p;
      }
      flat.push_back(std::exp(log_sum / bins) / (sum / bins));
    }
  }
  if (flat.empty()) throw Error("frame_stats: no samples");
  FrameStats f;
  f.frames = flat.size();
  f.flatness_mean = mean(flat), f.flatness_std = stddev(flat);
  f.rms_mean = mean(rms), f.rms_std = stddev(rms);
  return f;
}

AudioGenMetrics audio_generation_metrics(const std::vector<std::vector<uint8_t>>& generated,
                                         const std::vector<std::vector<uint8_t>>& reference,
                                         int frame, int hop) {
  AudioGenMetrics m;
  m.code_jsd = js_divergence(code_histogram(generated), code_histogram(reference));
  auto decode = [](const std::vector<std::vector<uint8_t>>& codes) {
    std::vector<std::vector<float>> out;
    for (const auto& s : codes) {
      out.emplace_back(s.size());
      for (size_t i = 0; i < s.size(); ++i) out.back()[i] = mu_law_decode(s[i]);
    }
    return out;
  };
  m.generated = frame_stats(decode(generated), frame, hop);
  m.reference = frame_stats(decode(reference), frame, hop);
  return m;
}

std::map<std::string, double> AudioGenMetrics::to_map() const {
  return {{"code_jsd", code_jsd},
          {"flatness_mean", generated.flatness_mean},
          {"flatness_std", generated.flatness_std},
          {"rms_mean", generated.rms_mean},
          {"rms_std", generated.rms_std},
          {"ref_flatness_mean", reference.flatness_mean},
          {"ref_flatness_std", reference.flatness_std},
          {"ref_rms_mean", reference.rms_mean},
          {"ref_rms_std", reference.rms_std}};
}

}  // namespace mk::eval
