// Generic inclusive scan over an array under an associative operator:
//   out[i] = in[0] o in[1] o ... o in[i]
// The operator need not be commutative (the SSM one is not): every
// algorithm keeps operands in index order and only regroups them.
//
// Algorithms:
//   sequential       one pass, n-1 operator applications.
//   blelloch         work-efficient tree scan: up-sweep (reduce) then
//                    down-sweep (distribute prefixes), ~2n applications,
//                    each tree level parallel (OpenMP) when large.
//   chunked_parallel per-thread chunks: local inclusive scans in parallel,
//                    a sequential exclusive scan of the chunk totals, then a
//                    parallel fix-up that prepends each chunk's prefix.
//
// An operator is a type with `value_type`, `value_type identity() const` and
// `value_type operator()(const value_type& x, const value_type& y) const`
// (x earlier, y later). Provided: AddOp (prefix sums) and SsmOp, the linear
// recurrence h_t = a_t h_{t-1} + b_t as elements (a, b) with
//   (a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2),
// so the b-component of the inclusive scan is h_t (with h_{-1} = 0).
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mk::ops {

template <typename T>
struct AddOp {
  using value_type = T;
  T identity() const { return T(0); }
  T operator()(const T& x, const T& y) const { return x + y; }
};

template <typename T>
struct SsmElem {
  T a, b;  // h -> a h + b
};

template <typename T>
struct SsmOp {
  using value_type = SsmElem<T>;
  value_type identity() const { return {T(1), T(0)}; }
  // Apply x first, then y: h -> y.a (x.a h + x.b) + y.b.
  value_type operator()(const value_type& x, const value_type& y) const {
    return {x.a * y.a, y.a * x.b + y.b};
  }
};

enum class ScanAlgo { Sequential, Blelloch, ChunkedParallel };

namespace scan_detail {
// Below this many elements the parallel algorithms run on one thread: the
// cost of a parallel region is worth thousands of operator applications.
constexpr std::ptrdiff_t kParallelMin = 1 << 14;

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
}  // namespace scan_detail

// out may alias in. n may be 0.
template <typename Op>
void inclusive_scan_sequential(const typename Op::value_type* in, typename Op::value_type* out,
                               size_t n, const Op& op = Op()) {
  if (n == 0) return;
  typename Op::value_type acc = in[0];
  out[0] = acc;
  for (size_t i = 1; i < n; ++i) {
    acc = op(acc, in[i]);
    out[i] = acc;
  }
}

// Blelloch's scan on a power-of-two work array padded with the identity.
// Up-sweep: node x[i+2d-1] becomes (left subtree total) o (right subtree
// total). Down-sweep from the root (set to the identity): the left child gets
// the parent's prefix, the right child gets (parent prefix) o (left total).
// That yields the exclusive scan; inclusive = exclusive[i] o in[i].
template <typename Op>
void inclusive_scan_blelloch(const typename Op::value_type* in, typename Op::value_type* out,
                             size_t n, const Op& op = Op()) {
  using V = typename Op::value_type;
  if (n == 0) return;
  size_t m = 1;
  while (m < n) m <<= 1;
  std::vector<V> x(m, op.identity());
  std::copy(in, in + n, x.begin());
  const bool par = std::ptrdiff_t(n) >= scan_detail::kParallelMin;
  (void)par;
  for (size_t d = 1; d < m; d <<= 1) {
    const std::ptrdiff_t nodes = std::ptrdiff_t(m / (2 * d));
#pragma omp parallel for schedule(static) if (par && nodes >= 1024)
    for (std::ptrdiff_t j = 0; j < nodes; ++j) {
      const size_t i = size_t(j) * 2 * d;
      x[i + 2 * d - 1] = op(x[i + d - 1], x[i + 2 * d - 1]);
    }
  }
  x[m - 1] = op.identity();
  for (size_t d = m / 2; d >= 1; d >>= 1) {
    const std::ptrdiff_t nodes = std::ptrdiff_t(m / (2 * d));
#pragma omp parallel for schedule(static) if (par && nodes >= 1024)
    for (std::ptrdiff_t j = 0; j < nodes; ++j) {
      const size_t i = size_t(j) * 2 * d;
      const V left = x[i + d - 1];
      x[i + d - 1] = x[i + 2 * d - 1];
      x[i + 2 * d - 1] = op(x[i + 2 * d - 1], left);
    }
  }
  for (size_t i = 0; i < n; ++i) out[i] = op(x[i], in[i]);
}

// Chunked parallel scan with `chunks` pieces (0: one per OpenMP thread).
// Also works (sequentially) without OpenMP. out may alias in.
template <typename Op>
void inclusive_scan_chunked(const typename Op::value_type* in, typename Op::value_type* out,
                            size_t n, const Op& op = Op(), int chunks = 0) {
  using V = typename Op::value_type;
  if (n == 0) return;
  const bool par = std::ptrdiff_t(n) >= scan_detail::kParallelMin;
  if (chunks <= 0) chunks = par ? scan_detail::max_threads() : 1;
  const size_t nc = std::min<size_t>(size_t(chunks), n);
  auto begin = [&](size_t c) { return n * c / nc; };
  std::vector<V> total(nc);
  // 1. Local inclusive scans.
#pragma omp parallel for schedule(static) if (par)
  for (std::ptrdiff_t c = 0; c < std::ptrdiff_t(nc); ++c) {
    const size_t b = begin(size_t(c)), e = begin(size_t(c) + 1);
    inclusive_scan_sequential(in + b, out + b, e - b, op);
    total[size_t(c)] = out[e - 1];
  }
  // 2. Exclusive scan of the chunk totals: prefix[c] = total[0] o ... o total[c-1].
  std::vector<V> prefix(nc);
  prefix[0] = op.identity();
  for (size_t c = 1; c < nc; ++c) prefix[c] = op(prefix[c - 1], total[c - 1]);
  // 3. Fix-up: everything before the chunk comes first.
#pragma omp parallel for schedule(static) if (par)
  for (std::ptrdiff_t c = 1; c < std::ptrdiff_t(nc); ++c) {
    const size_t b = begin(size_t(c)), e = begin(size_t(c) + 1);
    for (size_t i = b; i < e; ++i) out[i] = op(prefix[size_t(c)], out[i]);
  }
}

template <typename Op>
void inclusive_scan(ScanAlgo algo, const typename Op::value_type* in,
                    typename Op::value_type* out, size_t n, const Op& op = Op()) {
  switch (algo) {
    case ScanAlgo::Sequential:
      inclusive_scan_sequential(in, out, n, op);
      break;
    case ScanAlgo::Blelloch:
      inclusive_scan_blelloch(in, out, n, op);
      break;
    case ScanAlgo::ChunkedParallel:
      inclusive_scan_chunked(in, out, n, op);
      break;
  }
}

}  // namespace mk::ops
