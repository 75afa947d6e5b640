// Token embedding lookup and its scatter-add backward.
#include "mambakit/ops/embedding.h"

#include <algorithm>
#include <string>

#include "mambakit/error.h"

namespace mk::ops {

namespace {

// Checked up front, outside any parallel region (exceptions cannot leave one).
void check_ids(const char* where, const int32_t* ids, int n, int vocab) {
  for (int i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      throw Error(std::string(where) + ": token id " + std::to_string(ids[i]) + " at position " +
                  std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(vocab) +
                  ")");
}

}  // namespace

template <typename T>
void embedding_forward(const int32_t* ids, const T* table, T* out, int n, int vocab, int dim) {
  check_ids("embedding_forward", ids, n, vocab);
#pragma omp parallel for schedule(static) if (size_t(n) * dim > (1u << 16))
  for (int i = 0; i < n; ++i) {
    const T* src = table + size_t(ids[i]) * dim;
    std::copy(src, src + dim, out + size_t(i) * dim);
  }
}

template <typename T>
void embedding_backward(const int32_t* ids, const T* dout, T* dtable, int n, int vocab, int dim) {
  check_ids("embedding_backward", ids, n, vocab);
  // Repeated ids would race if threads split the positions; they split the
  // columns instead (in runs of kCols), each thread going through all
  // positions in order: the sums of one thread.
  constexpr int kCols = 32;
#pragma omp parallel for schedule(static) if (size_t(n) * dim > (1u << 16))
  for (int c0 = 0; c0 < dim; c0 += kCols) {
    const int c1 = std::min(dim, c0 + kCols);
    for (int i = 0; i < n; ++i) {
      T* dst = dtable + size_t(ids[i]) * dim;
      const T* src = dout + size_t(i) * dim;
      for (int j = c0; j < c1; ++j) dst[j] += src[j];
    }
  }
}

template void embedding_forward<float>(const int32_t*, const float*, float*, int, int, int);
template void embedding_forward<double>(const int32_t*, const double*, double*, int, int, int);
template void embedding_backward<float>(const int32_t*, const float*, float*, int, int, int);
template void embedding_backward<double>(const int32_t*, const double*, double*, int, int, int);

}  // namespace mk::ops
