#include "mambakit/datasets/windows.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "mambakit/error.h"

namespace mk::data {

uint64_t uniform_index(std::mt19937_64& rng, uint64_t n) {
  MK_CHECK(n > 0, "uniform_index: empty range");
  // Reject the top partial block of 2^64 so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % n + 1) % n;
  uint64_t x;
  do x = rng();
  while (x > limit);
  return x % n;
}

double uniform_unit(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

std::string rng_state_text(const std::mt19937_64& rng) {
  std::ostringstream os;
  os << rng;
  return os.str();
}

void set_rng_state_text(std::mt19937_64& rng, const std::string& state, const std::string& what) {
  std::istringstream is(state);
  std::mt19937_64 r;
  is >> r;
  if (is.fail()) throw Error(what + ": sampler state is not a saved random-generator state");
  rng = r;
}

std::vector<std::string> split_names(size_t n) {
  if (n == 2) return {"train", "val"};
  if (n == 3) return {"train", "val", "test"};
  throw Error("split: expected 2 (train, val) or 3 (train, val, test) fractions, got " + std::to_string(n));
}

std::vector<size_t> split_counts(size_t n, const std::vector<double>& f) {
  std::vector<size_t> c(f.size(), 0);
  if (f.empty() || n == 0) return c;
  size_t held = 0;
  for (size_t k = f.size(); k-- > 1;) {
    if (!(f[k] > 0)) continue;
    size_t want = std::max<size_t>(1, size_t(std::llround(double(n) * f[k])));
    c[k] = std::min(want, n - 1 - held);
    held += c[k];
  }
  c[0] = n - held;
  return c;
}

WindowIndex::WindowIndex(const std::vector<int64_t>& lengths, int64_t window_len)
    : lengths_(lengths), window_len_(window_len) {
  MK_CHECK(window_len >= 1, "WindowIndex: window length must be >= 1, got " + std::to_string(window_len));
  cum_.reserve(lengths.size());
  uint64_t total = 0;
  for (int64_t len : lengths) {
    MK_CHECK(len >= 0, "WindowIndex: negative segment length");
    if (len >= window_len) total += uint64_t(len - window_len + 1);
    cum_.push_back(total);
  }
}

size_t WindowIndex::usable_segments() const {
  return size_t(std::count_if(lengths_.begin(), lengths_.end(),
                              [&](int64_t l) { return l >= window_len_; }));
}

WindowPos WindowIndex::at(uint64_t k) const {
  MK_CHECK(k < total_starts(), "WindowIndex: window " + std::to_string(k) + " out of range");
  // First segment whose cumulative count exceeds k.
  size_t s = size_t(std::upper_bound(cum_.begin(), cum_.end(), k) - cum_.begin());
  uint64_t before = s == 0 ? 0 : cum_[s - 1];
  return WindowPos{s, int64_t(k - before)};
}

std::vector<WindowPos> WindowIndex::tile(int64_t stride, size_t max_windows) const {
  MK_CHECK(stride >= 1, "WindowIndex::tile: stride must be >= 1");
  std::vector<WindowPos> out;
  for (size_t s = 0; s < lengths_.size(); ++s) {
    for (int64_t b = 0; b + window_len_ <= lengths_[s]; b += stride) {
      if (max_windows && out.size() >= max_windows) return out;
      out.push_back(WindowPos{s, b});
    }
  }
  return out;
}

}  // namespace mk::data
