// Synthetic tasks that separate selective from time-invariant models (the
// Mamba paper, Section 4.1). Each example is a token sequence with
// per-position targets; target -1 means "not scored".
//
// Selective copying: K data tokens are scattered at random positions of a
// region of L - K noise tokens; then K marker tokens follow, at which the
// model must output the data tokens in their order of appearance. The gaps
// vary per example, so a fixed (time-invariant) convolution cannot solve it.
//   tokens: 0 = noise, 1..V-2 = data, V-1 = marker.
//
// Induction heads: random tokens; somewhere a trigger token T is followed by
// a target token X; the sequence ends with T again, where the model must
// output X. Length-extrapolation is tested by evaluating at larger L.
//   tokens: 1..V-2 = content, V-1 = trigger (0 unused, kept as padding).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace mk::data {

struct SyntheticExample {
  std::vector<int32_t> ids;      // (L)
  std::vector<int32_t> targets;  // (L), -1 where not scored
};

struct SelectiveCopyingSpec {
  int len = 256;    // L, total sequence length including the K marker positions
  int n_data = 16;  // K
  int vocab = 16;   // V (data tokens are 1..V-2)
};

struct InductionHeadsSpec {
  int len = 256;
  int vocab = 16;
};

// Throws mk::Error for impossible specs (e.g. K > L/2, vocab < 4).
SyntheticExample make_selective_copying(const SelectiveCopyingSpec& s, std::mt19937_64& rng);
SyntheticExample make_induction_heads(const InductionHeadsSpec& s, std::mt19937_64& rng);

}  // namespace mk::data
