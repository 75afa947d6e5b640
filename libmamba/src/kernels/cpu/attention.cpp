// Memory-efficient causal attention, forward and backward (see ops/attention.h).
#include "mambakit/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "mambakit/error.h"

namespace mk::ops {

namespace {

constexpr int kTile = 64;  // keys per tile of the online softmax

template <typename T>
void check(const AttentionParams<T>& p, const char* where) {
  MK_CHECK(p.batch > 0 && p.len_q > 0 && p.len_k > 0 && p.heads > 0 && p.head_dim > 0,
           std::string(where) + ": sizes must be positive");
  MK_CHECK(p.q && p.k && p.v && p.o, std::string(where) + ": q, k, v and o are required");
  MK_CHECK(p.len_q - 1 + p.q_offset < p.len_k,
           std::string(where) + ": the last query would see past the last key (len_q " +
               std::to_string(p.len_q) + ", q_offset " + std::to_string(p.q_offset) + ", len_k " +
               std::to_string(p.len_k) + ")");
  MK_CHECK(p.q_offset >= 0, std::string(where) + ": q_offset must be >= 0");
}

// Small problems run on one thread: waking a team costs more than they do.
template <typename T>
bool worth_threads(const AttentionParams<T>& p) {
  return long(p.batch) * p.heads * p.len_q * (p.len_k + 1) / (p.len_q == p.len_k ? 2 : 1) * p.head_dim >=
         (1L << 16);
}

template <typename T>
inline T dot(const T* a, const T* b, int n) {
  T s = 0;
  for (int d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

}  // namespace

template <typename T>
void attention_forward(const AttentionParams<T>& p) {
  check(p, "attention_forward");
  const int Dh = p.head_dim;
  const long rows = long(p.batch) * p.heads * p.len_q;
#pragma omp parallel if (worth_threads(p))
  {
    std::vector<T> s(kTile), acc(Dh);
#pragma omp for schedule(dynamic, 16)
    for (long r = 0; r < rows; ++r) {
      const int i = int(r % p.len_q), h = int((r / p.len_q) % p.heads), b = int(r / (long(p.len_q) * p.heads));
      const T* qi = p.q + b * p.q_sb + i * p.q_st + h * Dh;
      const long last = i + p.q_offset;  // last visible key
      T m = -std::numeric_limits<T>::infinity(), l = 0;
      std::fill(acc.begin(), acc.end(), T(0));
      for (long j0 = 0; j0 <= last; j0 += kTile) {
        const int n = int(std::min<long>(kTile, last + 1 - j0));
        T mt = -std::numeric_limits<T>::infinity();
        for (int jj = 0; jj < n; ++jj) {
          const T* kj = p.k + b * p.kv_sb + (j0 + jj) * p.kv_st + h * Dh;
          s[jj] = p.scale * dot(qi, kj, Dh);
          mt = std::max(mt, s[jj]);
        }
        const T mn = std::max(m, mt);
        const T corr = std::exp(m - mn);  // 0 on the first tile (m = -inf)
        l *= corr;
        for (int d = 0; d < Dh; ++d) acc[d] *= corr;
        for (int jj = 0; jj < n; ++jj) {
          const T e = std::exp(s[jj] - mn);
          l += e;
          const T* vj = p.v + b * p.kv_sb + (j0 + jj) * p.kv_st + h * Dh;
          for (int d = 0; d < Dh; ++d) acc[d] += e * vj[d];
        }
        m = mn;
      }
      T* oi = p.o + b * p.q_sb + i * p.q_st + h * Dh;
      for (int d = 0; d < Dh; ++d) oi[d] = acc[d] / l;
      if (p.lse) p.lse[(long(b) * p.heads + h) * p.len_q + i] = m + std::log(l);
    }
  }
}

// FlashAttention-2's backward with P recomputed from the saved logsumexp:
//   P_ij = exp(s_ij - lse_i), Delta_i = dO_i . O_i,
//   dV_j += P_ij dO_i,  dS_ij = P_ij (dO_i . v_j - Delta_i),
//   dQ_i += scale dS_ij k_j,  dK_j += scale dS_ij q_i.
// One thread per (b, h): it owns that head's dK and dV, so no reduction.
template <typename T>
void attention_backward(const AttentionParams<T>& p, const T* dout, T* dq, T* dk, T* dv) {
  check(p, "attention_backward");
  MK_CHECK(p.lse, "attention_backward: the forward's logsumexp (lse) is required");
  const int Dh = p.head_dim;
  const long heads = long(p.batch) * p.heads;
#pragma omp parallel for schedule(dynamic, 1) if (worth_threads(p))
  for (long bh = 0; bh < heads; ++bh) {
    const int b = int(bh / p.heads), h = int(bh % p.heads);
    for (int j = 0; j < p.len_k; ++j) {
      std::fill_n(dk + b * p.kv_sb + j * p.kv_st + h * Dh, Dh, T(0));
      std::fill_n(dv + b * p.kv_sb + j * p.kv_st + h * Dh, Dh, T(0));
    }
    for (int i = 0; i < p.len_q; ++i) {
      const long off_q = b * p.q_sb + i * p.q_st + h * Dh;
      const T* qi = p.q + off_q;
      const T* doi = dout + off_q;
      T* dqi = dq + off_q;
      std::fill_n(dqi, Dh, T(0));
      const T delta = dot(doi, p.o + off_q, Dh);
      const T lse = p.lse[bh * p.len_q + i];
      const long last = i + p.q_offset;
      for (long j = 0; j <= last; ++j) {
        const long off_k = b * p.kv_sb + j * p.kv_st + h * Dh;
        const T* kj = p.k + off_k;
        const T* vj = p.v + off_k;
        const T pij = std::exp(p.scale * dot(qi, kj, Dh) - lse);
        const T ds = pij * (dot(doi, vj, Dh) - delta) * p.scale;
        T* dkj = dk + off_k;
        T* dvj = dv + off_k;
        for (int d = 0; d < Dh; ++d) {
          dvj[d] += pij * doi[d];
          dqi[d] += ds * kj[d];
          dkj[d] += ds * qi[d];
        }
      }
    }
  }
}

template void attention_forward<float>(const AttentionParams<float>&);
template void attention_forward<double>(const AttentionParams<double>&);
template void attention_backward<float>(const AttentionParams<float>&, const float*, float*, float*, float*);
template void attention_backward<double>(const AttentionParams<double>&, const double*, double*, double*,
                                         double*);

}  // namespace mk::ops
