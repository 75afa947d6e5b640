// Uniform window sampling over a set of segments (genome intervals, audio
// files, shard documents), shared by every reader in datasets/.
//
// A window of length L never crosses a segment boundary: segment s offers
// len_s - L + 1 start positions, and a draw picks one of all offered starts
// uniformly, so every valid window is equally likely whatever the segment it
// lies in. Segments shorter than L offer none. Draws use our own integer
// mapping of std::mt19937_64 output (not std::uniform_int_distribution,
// whose algorithm differs between standard libraries), so a seed gives the
// same windows on every platform.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace mk::data {

// Uniform integer in [0, n) from a 64-bit engine, by rejection (no modulo bias).
uint64_t uniform_index(std::mt19937_64& rng, uint64_t n);
// Uniform double in [0, 1) (53 random bits).
double uniform_unit(std::mt19937_64& rng);

// An engine's full state as text and back (for checkpoints). set_ throws
// mk::Error on text that is not a state written by rng_state_text.
std::string rng_state_text(const std::mt19937_64& rng);
void set_rng_state_text(std::mt19937_64& rng, const std::string& state, const std::string& what);

struct WindowPos {
  size_t segment = 0;  // index into the segments given to WindowIndex
  int64_t start = 0;   // offset inside the segment
};

// "train", "val"[, "test"] for 2 or 3 split fractions; throws otherwise.
std::vector<std::string> split_names(size_t n_fractions);

// How many of n items (files, strains) go to each split, for fractions
// train, val[, test]: every held-out split with a fraction > 0 gets
// max(1, round(n * f)) items (the last split first) while at least one item
// is left for training; training gets the rest.
std::vector<size_t> split_counts(size_t n, const std::vector<double>& fractions);

class WindowIndex {
 public:
  WindowIndex() = default;
  // lengths[s]: length of segment s. window_len >= 1.
  WindowIndex(const std::vector<int64_t>& lengths, int64_t window_len);

  int64_t window_len() const { return window_len_; }
  // Number of distinct window starts over all segments (0: no segment fits).
  uint64_t total_starts() const { return cum_.empty() ? 0 : cum_.back(); }
  size_t segments() const { return lengths_.size(); }
  // Segments long enough for one window.
  size_t usable_segments() const;

  // The k-th start in segment order, k in [0, total_starts()).
  WindowPos at(uint64_t k) const;
  // One uniform draw. Requires total_starts() > 0.
  WindowPos sample(std::mt19937_64& rng) const { return at(uniform_index(rng, total_starts())); }

  // Deterministic windows for evaluation: consecutive windows spaced
  // `stride` apart (stride = window_len: non-overlapping) from the start of
  // each segment, in segment order, at most max_windows (0 = all). A segment
  // shorter than the window contributes none.
  std::vector<WindowPos> tile(int64_t stride, size_t max_windows) const;

 private:
  std::vector<int64_t> lengths_;
  std::vector<uint64_t> cum_;  // cum_[s] = starts in segments 0..s
  int64_t window_len_ = 0;
};

}  // namespace mk::data
