#include "mambakit/datasets/synthetic.h"

#include <algorithm>
#include <string>

#include "mambakit/error.h"

namespace mk::data {

namespace {

// Uniform integer in [lo, hi] by modulo (portable across standard libraries,
// unlike uniform_int_distribution; the bias is < 2^-50 here).
int draw(std::mt19937_64& rng, int lo, int hi) { return lo + int(rng() % uint64_t(hi - lo + 1)); }

}  // namespace

SyntheticExample make_selective_copying(const SelectiveCopyingSpec& s, std::mt19937_64& rng) {
  if (s.vocab < 4) throw Error("selective copying: vocab must be >= 4, got " + std::to_string(s.vocab));
  if (s.n_data < 1 || 2 * s.n_data > s.len)
    throw Error("selective copying: need 1 <= K <= L/2, got K=" + std::to_string(s.n_data) +
                " L=" + std::to_string(s.len));
  const int region = s.len - s.n_data, marker = s.vocab - 1;
  SyntheticExample ex;
  ex.ids.assign(s.len, 0);
  ex.targets.assign(s.len, -1);
  // K distinct positions in the region, by a partial Fisher-Yates shuffle.
  std::vector<int> pos(region);
  for (int i = 0; i < region; ++i) pos[i] = i;
  for (int i = 0; i < s.n_data; ++i) std::swap(pos[i], pos[draw(rng, i, region - 1)]);
  std::sort(pos.begin(), pos.begin() + s.n_data);
  for (int i = 0; i < s.n_data; ++i) {
    const int tok = draw(rng, 1, s.vocab - 2);
    ex.ids[pos[i]] = tok;
    ex.ids[region + i] = marker;
    // The output for data token i is read at marker i.
    ex.targets[region + i] = tok;
  }
  return ex;
}

SyntheticExample make_induction_heads(const InductionHeadsSpec& s, std::mt19937_64& rng) {
  if (s.vocab < 4) throw Error("induction heads: vocab must be >= 4, got " + std::to_string(s.vocab));
  if (s.len < 4) throw Error("induction heads: length must be >= 4, got " + std::to_string(s.len));
  const int trigger = s.vocab - 1;
  SyntheticExample ex;
  ex.ids.resize(s.len);
  ex.targets.assign(s.len, -1);
  for (auto& t : ex.ids) t = draw(rng, 1, s.vocab - 2);
  // The first trigger sits anywhere before the final one, with its target
  // right after it; the trigger token appears nowhere else.
  const int at = draw(rng, 0, s.len - 3);
  const int x = draw(rng, 1, s.vocab - 2);
  ex.ids[at] = trigger;
  ex.ids[at + 1] = x;
  ex.ids[s.len - 1] = trigger;
  ex.targets[s.len - 1] = x;
  return ex;
}

}  // namespace mk::data
