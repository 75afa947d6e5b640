// Internal: a row-major (rows, cols) array transposed to (cols, rows), for
// the ops that hand a per-ISA kernel its weights with the output channels
// contiguous (the conv's taps, the narrow and fused linear layers).
#pragma once

#include <vector>

namespace mk::ops {

template <typename T>
std::vector<T> transposed(const T* a, int rows, int cols) {
  std::vector<T> t(size_t(rows) * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) t[size_t(c) * rows + r] = a[size_t(r) * cols + c];
  return t;
}

}  // namespace mk::ops
