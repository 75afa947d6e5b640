#include "mambakit/layers/hippo.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "mambakit/error.h"

namespace mk {

using cd = std::complex<double>;

void hippo_legs(int N, std::vector<double>& A, std::vector<double>& B) {
  MK_CHECK(N > 0, "hippo_legs: N must be positive, got " + std::to_string(N));
  A.assign(size_t(N) * N, 0.0);
  B.resize(N);
  for (int n = 0; n < N; ++n) {
    B[n] = std::sqrt(2.0 * n + 1);
    for (int k = 0; k < n; ++k) A[size_t(n) * N + k] = -std::sqrt(2.0 * n + 1) * std::sqrt(2.0 * k + 1);
    A[size_t(n) * N + n] = -(n + 1.0);
  }
}

// Each rotation J (unitary, acting on columns p, q) zeroes H[p][q]: a phase
// makes H[p][q] real, then the classical real Jacobi rotation (Rutishauser's
// formulas) diagonalises the 2x2 block. Converges quadratically.
void hermitian_eig(int n, std::vector<cd> H, std::vector<double>& w, std::vector<cd>& V) {
  MK_CHECK(n > 0 && H.size() == size_t(n) * n, "hermitian_eig: H must be (n, n)");
  V.assign(size_t(n) * n, 0.0);
  for (int i = 0; i < n; ++i) V[size_t(i) * n + i] = 1.0;
  auto at = [&](int i, int j) -> cd& { return H[size_t(i) * n + j]; };
  double total = 0;
  for (const cd& x : H) total += std::norm(x);
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) off += std::norm(at(p, q));
    if (off <= 1e-30 * total) break;
    for (int p = 0; p < n; ++p) {
      for (int q = p + 1; q < n; ++q) {
        const cd h = at(p, q);
        const double ah = std::abs(h);
        if (ah == 0) continue;
        const cd ph = h / ah;  // e^{i phi}
        const double theta = (at(q, q).real() - at(p, p).real()) / (2 * ah);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        // J = diag(1, conj(ph)) [[c, s], [-s, c]]
        const cd jpp = c, jpq = s, jqp = -s * std::conj(ph), jqq = c * std::conj(ph);
        for (int k = 0; k < n; ++k) {  // H <- H J, V <- V J
          const cd hp = at(k, p), hq = at(k, q);
          at(k, p) = hp * jpp + hq * jqp;
          at(k, q) = hp * jpq + hq * jqq;
          cd& vp = V[size_t(k) * n + p];
          cd& vq = V[size_t(k) * n + q];
          const cd v0 = vp, v1 = vq;
          vp = v0 * jpp + v1 * jqp;
          vq = v0 * jpq + v1 * jqq;
        }
        for (int k = 0; k < n; ++k) {  // H <- J^* H
          const cd hp = at(p, k), hq = at(q, k);
          at(p, k) = std::conj(jpp) * hp + std::conj(jqp) * hq;
          at(q, k) = std::conj(jpq) * hp + std::conj(jqq) * hq;
        }
        at(p, q) = at(q, p) = 0;
        at(p, p) = at(p, p).real();
        at(q, q) = at(q, q).real();
      }
    }
  }
  // Sort ascending.
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int a, int b) { return at(a, a).real() < at(b, b).real(); });
  w.resize(n);
  std::vector<cd> Vs(size_t(n) * n);
  for (int j = 0; j < n; ++j) {
    w[j] = at(idx[j], idx[j]).real();
    for (int k = 0; k < n; ++k) Vs[size_t(k) * n + j] = V[size_t(k) * n + idx[j]];
  }
  V.swap(Vs);
}

HippoNplr hippo_legs_nplr(int N) {
  MK_CHECK(N >= 2 && N % 2 == 0, "hippo_legs_nplr: N must be even and >= 2, got " + std::to_string(N));
  std::vector<double> A, B;
  hippo_legs(N, A, B);
  std::vector<double> p(N);
  for (int n = 0; n < N; ++n) p[n] = std::sqrt(n + 0.5);
  // -i (S + I/2), S = A + p p^T: Hermitian since S + I/2 is skew-symmetric.
  std::vector<cd> Hm(size_t(N) * N);
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) {
      const double sij = A[size_t(i) * N + j] + p[i] * p[j] + (i == j ? 0.5 : 0.0);
      Hm[size_t(i) * N + j] = cd(0, -1) * sij;
    }
  std::vector<double> mu;
  std::vector<cd> V;
  hermitian_eig(N, Hm, mu, V);
  // Ascending: the upper half holds mu > 0 (LegS has no zero eigenvalue for even N).
  const int N2 = N / 2;
  MK_CHECK(mu[N2] > 1e-8, "hippo_legs_nplr: unexpected zero eigenvalue");
  HippoNplr r;
  r.N = N;
  r.Lambda.resize(N2);
  r.P.assign(N2, 0.0);
  r.B.assign(N2, 0.0);
  r.V.resize(size_t(N) * N2);
  for (int j = 0; j < N2; ++j) {
    const int col = N2 + j;
    r.Lambda[j] = cd(-0.5, mu[col]);
    for (int k = 0; k < N; ++k) {
      const cd v = V[size_t(k) * N + col];
      r.V[size_t(k) * N2 + j] = v;
      r.P[j] += std::conj(v) * p[k];
      r.B[j] += std::conj(v) * B[k];
    }
  }
  return r;
}

}  // namespace mk
