#include "mambakit/datasets/dna.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "fs_util.h"
#include "mambakit/error.h"

namespace mk::data {
namespace dna {
namespace {

std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> t;
  t.fill(-1);
  auto set = [&](const char* chars, int8_t id) {
    for (const char* c = chars; *c; ++c) {
      t[(unsigned char)*c] = id;
      t[(unsigned char)std::tolower(*c)] = id;
    }
  };
  set("A", A);
  set("C", C);
  set("G", G);
  set("TU", T);
  set("NRYSWKMBDHVX-", N);
  return t;
}
const std::array<int8_t, 256> kTable = make_table();

}  // namespace

int32_t base_id(unsigned char c) { return kTable[c]; }

void encode(const char* s, size_t n, int32_t* out, const std::string& where, int64_t offset) {
  for (size_t i = 0; i < n; ++i) {
    int32_t id = kTable[(unsigned char)s[i]];
    if (id < 0) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "byte 0x%02x", (unsigned char)s[i]);
      throw Error(where + " position " + std::to_string(offset + int64_t(i)) + ": " + buf +
                  " is not a nucleotide code");
    }
    out[i] = id;
  }
}

std::vector<int32_t> encode(const std::string& s, const std::string& where) {
  std::vector<int32_t> out(s.size());
  encode(s.data(), s.size(), out.data(), where);
  return out;
}

std::string token_name(int32_t id) {
  static const char* names[kVocabSize] = {"A", "C", "G", "T", "N", "[PAD]", "[BOS]", "[EOS]", "[CLS]"};
  if (id < 0 || id >= kVocabSize)
    throw Error("DNA token id " + std::to_string(id) + " out of range [0, " + std::to_string(kVocabSize) + ")");
  return names[id];
}

std::string decode(const int32_t* ids, size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out += token_name(ids[i]);
  return out;
}

std::string decode(const std::vector<int32_t>& ids) { return decode(ids.data(), ids.size()); }

void reverse_complement(int32_t* ids, size_t n) {
  std::reverse(ids, ids + n);
  for (size_t i = 0; i < n; ++i)
    if (ids[i] >= A && ids[i] <= T) ids[i] = T - ids[i];
}

std::vector<int32_t> reverse_complement(std::vector<int32_t> ids) {
  reverse_complement(ids.data(), ids.size());
  return ids;
}

}  // namespace dna

// --- BED and intervals ------------------------------------------------------

namespace {

bool parse_i64(const std::string& s, int64_t* v) {
  if (s.empty()) return false;
  size_t i = 0;
  int64_t x = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    if (x > (INT64_MAX - 9) / 10) return false;
    x = x * 10 + (s[i] - '0');
  }
  *v = x;
  return true;
}

std::string canonical_split(const std::string& s) {
  if (s == "valid" || s == "validation") return "val";
  return s;
}

}  // namespace

std::vector<GenomicInterval> read_bed(const std::string& path) {
  fs::require_file(path, "BED file");
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open BED file");
  std::vector<GenomicInterval> out;
  std::string line;
  int64_t no = 0;
  while (std::getline(in, line)) {
    ++no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#' || line.rfind("track", 0) == 0 || line.rfind("browser", 0) == 0)
      continue;
    std::vector<std::string> cols;
    std::istringstream ls(line);
    for (std::string c; ls >> c;) cols.push_back(c);
    const std::string where = path + ":" + std::to_string(no);
    if (cols.empty()) continue;
    if (cols.size() < 3)
      throw Error(where + ": a BED line needs at least 3 columns (chrom start end), found " +
                  std::to_string(cols.size()));
    GenomicInterval iv;
    iv.seq = cols[0];
    if (!parse_i64(cols[1], &iv.beg)) throw Error(where + ": start '" + cols[1] + "' is not a non-negative integer");
    if (!parse_i64(cols[2], &iv.end)) throw Error(where + ": end '" + cols[2] + "' is not a non-negative integer");
    if (iv.end <= iv.beg)
      throw Error(where + ": empty interval (end " + cols[2] + " <= start " + cols[1] + ")");
    if (cols.size() >= 4) iv.split = canonical_split(cols[3]);
    iv.where = where;
    out.push_back(std::move(iv));
  }
  if (in.bad()) throw Error(path + ": read error");
  if (out.empty()) throw Error(path + ": BED file has no intervals");
  return out;
}

void check_intervals(const FastaReader& fasta, const std::vector<GenomicInterval>& intervals) {
  for (const auto& iv : intervals) {
    const std::string where = iv.where.empty() ? fasta.path() : iv.where;
    int s = fasta.find(iv.seq);
    if (s < 0) throw Error(where + ": sequence '" + iv.seq + "' is not in " + fasta.path());
    int64_t len = fasta.sequences()[s].length;
    if (iv.beg < 0 || iv.end > len || iv.end <= iv.beg)
      throw Error(where + ": interval " + iv.seq + ":" + std::to_string(iv.beg) + "-" + std::to_string(iv.end) +
                  " is outside the sequence (length " + std::to_string(len) + ")");
  }
}

std::vector<GenomicInterval> whole_sequences(const FastaReader& fasta) {
  std::vector<GenomicInterval> out;
  for (const auto& s : fasta.sequences()) out.push_back(GenomicInterval{s.name, 0, s.length, "", fasta.path()});
  return out;
}

std::vector<GenomicInterval> select_split(const std::vector<GenomicInterval>& intervals,
                                          const std::string& split, const std::string& source) {
  std::vector<GenomicInterval> out;
  const std::string want = canonical_split(split);
  for (const auto& iv : intervals)
    if (iv.split == want) out.push_back(iv);
  if (out.empty()) throw Error(source + ": no interval of split '" + split + "' (4th BED column)");
  return out;
}

std::map<std::string, std::vector<GenomicInterval>> split_intervals(
    const std::vector<GenomicInterval>& intervals, const std::vector<double>& fractions) {
  const auto names = split_names(fractions.size());
  double sum = 0;
  for (double f : fractions) {
    if (!(f >= 0)) throw Error("split: fractions must be >= 0");
    sum += f;
  }
  if (std::fabs(sum - 1.0) > 1e-6) throw Error("split: fractions must sum to 1, got " + std::to_string(sum));
  std::map<std::string, std::vector<GenomicInterval>> out;
  for (const auto& n : names) out[n];
  for (const auto& iv : intervals) {
    const int64_t len = iv.end - iv.beg;
    double acc = 0;
    int64_t prev = iv.beg;
    for (size_t k = 0; k < names.size(); ++k) {
      acc += fractions[k];
      int64_t cut = k + 1 == names.size() ? iv.end : iv.beg + int64_t(std::llround(acc * double(len)));
      cut = std::min(std::max(cut, prev), iv.end);
      if (cut > prev) {
        GenomicInterval part = iv;
        part.beg = prev, part.end = cut, part.split = names[k];
        out[names[k]].push_back(part);
      }
      prev = cut;
    }
  }
  return out;
}

// --- sampler -----------------------------------------------------------------

DnaWindowSampler::DnaWindowSampler(const FastaReader& fasta, std::vector<GenomicInterval> intervals,
                                   int64_t window_len, uint64_t seed, double rc_prob)
    : fasta_(&fasta), intervals_(std::move(intervals)), rc_prob_(rc_prob), rng_(seed) {
  if (window_len < 1) throw Error(fasta.path() + ": window length must be >= 1");
  if (!(rc_prob >= 0 && rc_prob <= 1)) throw Error("DNA sampler: reverse-complement probability must be in [0, 1]");
  if (intervals_.empty()) throw Error(fasta.path() + ": no intervals to sample windows from");
  check_intervals(fasta, intervals_);
  std::vector<int64_t> lengths;
  for (const auto& iv : intervals_) {
    seq_of_.push_back(fasta.find(iv.seq));
    lengths.push_back(iv.end - iv.beg);
  }
  index_ = WindowIndex(lengths, window_len);
  if (index_.total_starts() == 0) {
    int64_t longest = *std::max_element(lengths.begin(), lengths.end());
    throw Error(fasta.path() + ": no interval is as long as a window (" + std::to_string(window_len) +
                " bases; the longest of " + std::to_string(intervals_.size()) + " is " +
                std::to_string(longest) + ")");
  }
}

DnaWindow DnaWindowSampler::next_window() {
  WindowPos p = index_.sample(rng_);
  DnaWindow w;
  w.seq = seq_of_[p.segment];
  w.beg = intervals_[p.segment].beg + p.start;
  // Always draw, so the stream of positions does not depend on rc_prob.
  w.rc = uniform_unit(rng_) < rc_prob_;
  return w;
}

void DnaWindowSampler::fetch(const DnaWindow& w, int32_t* out) const {
  const int64_t L = index_.window_len();
  fasta_->fetch_tokens(w.seq, w.beg, w.beg + L, out);
  if (w.rc) dna::reverse_complement(out, size_t(L));
}

DnaWindow DnaWindowSampler::next(int32_t* out) {
  DnaWindow w = next_window();
  fetch(w, out);
  return w;
}

std::vector<int32_t> DnaWindowSampler::next() {
  std::vector<int32_t> out(size_t(index_.window_len()));
  next(out.data());
  return out;
}

std::vector<DnaWindow> DnaWindowSampler::eval_windows(int64_t stride, size_t max_windows) const {
  std::vector<DnaWindow> out;
  for (const WindowPos& p : index_.tile(stride, max_windows))
    out.push_back(DnaWindow{seq_of_[p.segment], intervals_[p.segment].beg + p.start, false});
  return out;
}

}  // namespace mk::data
