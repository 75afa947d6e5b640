// S4D/S4 parameter preparation and its backward (see ops/ssm_prepare.h).
#include "mambakit/ops/ssm_prepare.h"

#include <cmath>
#include <string>

#include "mambakit/error.h"

namespace mk::ops {

namespace {

void check(int H, int N2, const char* where) {
  MK_CHECK(H > 0 && N2 > 0, std::string(where) + ": sizes must be positive (H=" +
                                std::to_string(H) + ", N/2=" + std::to_string(N2) + ")");
}

}  // namespace

template <typename T>
void ssm_diag_prepare(int H, int N2, const T* log_dt, const T* log_A_real, const T* A_imag, T* dt,
                      T* A) {
  check(H, N2, "ssm_diag_prepare");
  for (int h = 0; h < H; ++h) dt[h] = std::exp(log_dt[h]);
  const size_t n = size_t(H) * N2;
  for (size_t i = 0; i < n; ++i) {
    A[2 * i] = -std::exp(log_A_real[i]);
    A[2 * i + 1] = A_imag[i];
  }
}

template <typename T>
void ssm_diag_prepare_backward(int H, int N2, const T* dt, const T* A, const T* ddt, const T* dA,
                               T* g_log_dt, T* g_log_A_real, T* g_A_imag) {
  check(H, N2, "ssm_diag_prepare_backward");
  for (int h = 0; h < H; ++h) g_log_dt[h] += ddt[h] * dt[h];
  const size_t n = size_t(H) * N2;
  for (size_t i = 0; i < n; ++i) {
    g_log_A_real[i] += dA[2 * i] * A[2 * i];  // d Re(A) / d log_A_real = Re(A)
    g_A_imag[i] += dA[2 * i + 1];
  }
}

#define MK_SSM_PREPARE(T)                                                                       \
  template void ssm_diag_prepare<T>(int, int, const T*, const T*, const T*, T*, T*);          \
  template void ssm_diag_prepare_backward<T>(int, int, const T*, const T*, const T*, const T*, \
                                             T*, T*, T*);
MK_SSM_PREPARE(float)
MK_SSM_PREPARE(double)
#undef MK_SSM_PREPARE

}  // namespace mk::ops
