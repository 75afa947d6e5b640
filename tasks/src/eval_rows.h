// The evaluation windows of a window sampler (DNA, audio, token shards) read
// into rows of `width` tokens: windows `stride` apart, at most max_windows
// (0: all). Shared by the DNA and audio language-model tasks.
#pragma once
#include <cstdint>
#include <vector>

namespace mk::tasks {

template <typename Sampler>
std::vector<std::vector<int32_t>> eval_rows(const Sampler& s, int64_t width, int64_t stride,
                                            size_t max_windows) {
  std::vector<std::vector<int32_t>> rows;
  for (const auto& w : s.eval_windows(stride, max_windows)) {
    rows.emplace_back(size_t(width));
    s.fetch(w, rows.back().data());
  }
  return rows;
}

}  // namespace mk::tasks
