// HiPPO-LegS and its normal-plus-low-rank (NPLR) form, for S4's init.
//   LegS:  A[n,k] = -sqrt(2n+1) sqrt(2k+1) (n > k), -(n+1) (n == k), 0 (n < k)
//          B[n]   = sqrt(2n+1)
//   NPLR:  A = S - p p^T with p[n] = sqrt(n + 1/2) and S = A + p p^T
//          = -1/2 I + (skew-symmetric), a normal matrix; S = V Lambda V^*
//          with Lambda = -1/2 + i mu, mu the eigenvalues of the Hermitian
//          matrix -i (S + I/2). Eigenvalues come in conjugate pairs (S is
//          real); one of each is kept (mu > 0, ascending), so V is (N, N/2)
//          and the full basis is [V, conj(V)]. In that basis
//          A = Lambda - P P^*, P = V^* p, B = V^* B (both halves conjugate).
#pragma once
#include <complex>
#include <vector>

namespace mk {

struct HippoNplr {
  int N = 0;                               // full state size (even)
  std::vector<std::complex<double>> Lambda;  // (N/2)
  std::vector<std::complex<double>> P;       // (N/2) = V^* p
  std::vector<std::complex<double>> B;       // (N/2) = V^* B
  std::vector<std::complex<double>> V;       // (N, N/2) row-major, orthonormal columns
};

// The LegS matrix A (N, N) row-major and B (N).
void hippo_legs(int N, std::vector<double>& A, std::vector<double>& B);

// The NPLR decomposition above; N even. Throws mk::Error for odd or
// non-positive N.
HippoNplr hippo_legs_nplr(int N);

// Eigen-decomposition of a Hermitian matrix (n, n) row-major by cyclic
// Jacobi rotations: eigenvalues ascending in w (n), eigenvectors as the
// columns of V (n, n) row-major, H = V diag(w) V^*.
void hermitian_eig(int n, std::vector<std::complex<double>> H, std::vector<double>& w,
                   std::vector<std::complex<double>>& V);

}  // namespace mk
