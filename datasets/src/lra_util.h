// Internal helpers of the LRA readers and generators: a portable RNG (the
// same streams on every platform, unlike std:: distributions), line reading
// with row numbers, and field parsing with errors naming file and row.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "mambakit/error.h"

namespace mk::data::lra::detail {

// splitmix64: tiny, good enough for data generation, and fully specified.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  int below(int n) { return int(uniform() * n); }                  // [0, n)
  int range(int lo, int hi) { return lo + below(hi - lo + 1); }     // [lo, hi]
};

// Mixes a seed and an index into an independent stream seed.
inline uint64_t stream_seed(uint64_t seed, uint64_t index) {
  Rng r(seed ^ (index * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull));
  r.next();
  return r.next();
}

// Reads a text file line by line, counting rows from 1; strips a trailing \r.
class LineReader {
 public:
  explicit LineReader(const std::string& path) : path_(path), f_(path, std::ios::binary) {
    if (!f_) throw Error(path + ": cannot open file");
  }
  bool next(std::string& line) {
    if (!std::getline(f_, line)) {
      if (f_.bad()) throw Error(path_ + ": read error after row " + std::to_string(row_));
      return false;
    }
    ++row_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  }
  size_t row() const { return row_; }
  std::string where() const { return path_ + ":" + std::to_string(row_); }

 private:
  std::string path_;
  std::ifstream f_;
  size_t row_ = 0;
};

inline std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t t = line.find('\t', start);
    out.push_back(line.substr(start, t == std::string::npos ? std::string::npos : t - start));
    if (t == std::string::npos) break;
    start = t + 1;
  }
  return out;
}

// An integer label ("3", or "1.0" as pandas writes it) in [0, num_classes)
// (num_classes <= 0: in [0, kMaxClasses)). Throws "<where>: ..." otherwise.
constexpr int kMaxClasses = 1 << 16;
int parse_label(const std::string& field, int num_classes, const std::string& where);

inline std::string shown(const std::string& s, size_t n = 40) {
  return "'" + (s.size() > n ? s.substr(0, n) + "..." : s) + "'";
}

}  // namespace mk::data::lra::detail
