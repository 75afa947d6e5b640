// Sums in double over a row or block, fast and in a fixed order.
#pragma once

namespace mk::ops {

// sum_{j < n} term(j) in double, as 8 interleaved partial sums added in a
// fixed order at the end. One running sum is a chain of dependent adds (a
// 256-wide RMSNorm row took about 1,000 cycles); 8 independent ones
// vectorise. The order depends only on n, never on the thread count.
template <typename Index, typename Term>
double interleaved_sum(Index n, Term term) {
  constexpr int kLanes = 8;
  double part[kLanes] = {};
  Index j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) part[k] += term(j + k);
  double s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  for (; j < n; ++j) s += term(j);
  return s;
}

}  // namespace mk::ops
