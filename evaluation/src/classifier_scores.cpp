// Classifier-based scores of generated samples: IS, modified IS, AM score
// and the Frechet distance (FID) between Gaussians fit to feature sets.
#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "mambakit/error.h"
#include "mambakit/evaluation/generation_metrics.h"

// LAPACK's symmetric eigensolver. OpenBLAS (already linked for BLAS) carries
// LAPACK, so the Fortran symbol is declared here rather than pulling in
// LAPACKE's headers. The trailing lengths are gfortran's hidden string sizes.
extern "C" void dsyev_(const char* jobz, const char* uplo, const int* n, double* a,
                       const int* lda, double* w, double* work, const int* lwork, int* info,
                       size_t jobz_len, size_t uplo_len);

namespace mk::eval {

namespace {

constexpr double kFloor = 1e-12;  // floor of a probability inside a log

// Rows of probs, renormalised; checks the shape and the values.
std::vector<double> normalised_rows(const std::vector<double>& probs, size_t n, size_t c,
                                    const char* fn) {
  if (n == 0 || c == 0 || probs.size() != n * c)
    throw Error(std::string(fn) + ": probs has " + std::to_string(probs.size()) +
                " values, expected n*c = " + std::to_string(n) + "*" + std::to_string(c));
  std::vector<double> p(probs);
  for (size_t i = 0; i < n; ++i) {
    double s = 0;
    for (size_t j = 0; j < c; ++j) {
      double x = p[i * c + j];
      if (!(x >= 0) || !std::isfinite(x))
        throw Error(std::string(fn) + ": row " + std::to_string(i) +
                    " has a negative or non-finite probability");
      s += x;
    }
    if (s <= 0) throw Error(std::string(fn) + ": row " + std::to_string(i) + " sums to 0");
    for (size_t j = 0; j < c; ++j) p[i * c + j] /= s;
  }
  return p;
}

std::vector<double> marginal(const std::vector<double>& p, size_t n, size_t c) {
  std::vector<double> m(c, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < c; ++j) m[j] += p[i * c + j] / double(n);
  return m;
}

// KL(a || b) in nats over c entries; b floored so a zero never divides.
double kl(const double* a, const double* b, size_t c) {
  double s = 0;
  for (size_t j = 0; j < c; ++j)
    if (a[j] > 0) s += a[j] * std::log(a[j] / std::max(b[j], kFloor));
  return s;
}

}  // namespace

double inception_score(const std::vector<double>& probs, size_t n, size_t c) {
  auto p = normalised_rows(probs, n, c, "inception_score");
  auto py = marginal(p, n, c);
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += kl(&p[i * c], py.data(), c);
  return std::exp(s / double(n));
}

double modified_inception_score(const std::vector<double>& probs, size_t n, size_t c) {
  auto p = normalised_rows(probs, n, c, "modified_inception_score");
  std::vector<std::vector<size_t>> by_class(c);
  for (size_t i = 0; i < n; ++i) {
    const double* r = &p[i * c];
    by_class[size_t(std::max_element(r, r + c) - r)].push_back(i);
  }
  double s = 0, pairs = 0;
  for (const auto& members : by_class)
    for (size_t a : members)
      for (size_t b : members)
        if (a != b) s += kl(&p[a * c], &p[b * c], c), pairs += 1;
  return pairs > 0 ? std::exp(s / pairs) : 1.0;
}

double am_score(const std::vector<double>& probs, size_t n, size_t c,
                const std::vector<double>& prior) {
  auto p = normalised_rows(probs, n, c, "am_score");
  std::vector<double> q = prior;
  if (q.empty()) q.assign(c, 1.0 / double(c));
  if (q.size() != c)
    throw Error("am_score: prior has " + std::to_string(q.size()) + " classes, probs " +
                std::to_string(c));
  q = normalised_rows(q, 1, c, "am_score (prior)");
  auto py = marginal(p, n, c);
  double entropy = 0;
  for (size_t i = 0; i < n * c; ++i)
    if (p[i] > 0) entropy -= p[i] * std::log(p[i]);
  return kl(q.data(), py.data(), c) + entropy / double(n);
}

std::vector<double> symmetric_eigen(const std::vector<double>& a, size_t d,
                                    std::vector<double>* vecs) {
  if (d == 0 || a.size() != d * d)
    throw Error("symmetric_eigen: matrix has " + std::to_string(a.size()) +
                " values, expected d*d with d = " + std::to_string(d));
  std::vector<double> m(a), w(d);  // symmetric: row- and column-major agree
  int n = int(d), info = 0, lwork = -1;
  double query = 0;
  const char jobz = vecs ? 'V' : 'N', uplo = 'U';
  dsyev_(&jobz, &uplo, &n, m.data(), &n, w.data(), &query, &lwork, &info, 1, 1);
  lwork = std::max(1, int(query));
  std::vector<double> work(static_cast<size_t>(lwork));
  dsyev_(&jobz, &uplo, &n, m.data(), &n, w.data(), work.data(), &lwork, &info, 1, 1);
  if (info != 0)
    throw Error("symmetric_eigen: LAPACK dsyev failed (info " + std::to_string(info) + ")");
  if (vecs) {  // column-major eigenvectors -> row-major V with eigenvectors as columns
    vecs->assign(d * d, 0.0);
    for (size_t k = 0; k < d; ++k)
      for (size_t i = 0; i < d; ++i) (*vecs)[i * d + k] = m[k * d + i];
  }
  return w;
}

void mean_cov(const std::vector<double>& f, size_t n, size_t d, std::vector<double>& mu,
              std::vector<double>& cov) {
  if (n < 2 || d == 0 || f.size() != n * d)
    throw Error("mean_cov: need n >= 2 feature rows of d values (got " + std::to_string(f.size()) +
                " values for n = " + std::to_string(n) + ", d = " + std::to_string(d) + ")");
  mu.assign(d, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) mu[j] += f[i * d + j] / double(n);
  std::vector<double> x(f);  // centred (n, d)
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) x[i * d + j] -= mu[j];
  cov.assign(d * d, 0.0);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(d), int(d), int(n),
              1.0 / double(n - 1), x.data(), int(d), x.data(), int(d), 0.0, cov.data(), int(d));
}

double frechet_distance(const std::vector<double>& mu1, const std::vector<double>& cov1,
                        const std::vector<double>& mu2, const std::vector<double>& cov2,
                        size_t d) {
  if (mu1.size() != d || mu2.size() != d || cov1.size() != d * d || cov2.size() != d * d)
    throw Error("frechet_distance: means must have d = " + std::to_string(d) +
                " values and covariances d*d");
  double dist = 0;
  for (size_t j = 0; j < d; ++j) dist += (mu1[j] - mu2[j]) * (mu1[j] - mu2[j]);
  for (size_t j = 0; j < d; ++j) dist += cov1[j * d + j] + cov2[j * d + j];
  // A = S1^(1/2) = V diag(sqrt w) V^T
  std::vector<double> v;
  auto w = symmetric_eigen(cov1, d, &v);
  std::vector<double> vs(v), a(d * d), t(d * d), m(d * d);
  for (size_t i = 0; i < d; ++i)
    for (size_t k = 0; k < d; ++k) vs[i * d + k] *= std::sqrt(std::max(0.0, w[k]));
  const int n = int(d);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, vs.data(), n, v.data(), n,
              0.0, a.data(), n);
  // M = A S2 A, symmetric PSD with the spectrum of S1 S2.
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a.data(), n, cov2.data(),
              n, 0.0, t.data(), n);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, t.data(), n, a.data(), n,
              0.0, m.data(), n);
  for (size_t i = 0; i < d; ++i)
    for (size_t k = i + 1; k < d; ++k) m[i * d + k] = m[k * d + i] = 0.5 * (m[i * d + k] + m[k * d + i]);
  double tr_sqrt = 0;
  for (double e : symmetric_eigen(m, d)) tr_sqrt += std::sqrt(std::max(0.0, e));
  return std::max(0.0, dist - 2 * tr_sqrt);
}

double frechet_distance(const std::vector<double>& feats1, size_t n1,
                        const std::vector<double>& feats2, size_t n2, size_t d) {
  std::vector<double> mu1, c1, mu2, c2;
  mean_cov(feats1, n1, d, mu1, c1);
  mean_cov(feats2, n2, d, mu2, c2);
  return frechet_distance(mu1, c1, mu2, c2, d);
}

ClassifierScores classifier_scores(const std::vector<double>& probs, size_t n, size_t c,
                                   const std::vector<double>& feats, size_t d,
                                   const std::vector<double>& ref_feats, size_t n_ref,
                                   const std::vector<double>& prior) {
  ClassifierScores s;
  s.is = inception_score(probs, n, c);
  s.mis = modified_inception_score(probs, n, c);
  s.am = am_score(probs, n, c, prior);
  s.fid = frechet_distance(feats, n, ref_feats, n_ref, d);
  return s;
}

std::map<std::string, double> ClassifierScores::to_map() const {
  return {{"is", is}, {"mis", mis}, {"am", am}, {"fid", fid}};
}

}  // namespace mk::eval
