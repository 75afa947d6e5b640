#include "mambakit/threads.h"

#include <omp.h>

// OpenBLAS's setter, declared weak so that linking against another BLAS
// (reference BLAS, BLIS) still works: there it is null and not called.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace mk {

void set_cpu_threads(int n) {
  // OpenBLAS stays at one thread whatever n is: gemm (matmul.cpp) splits
  // products over the OpenMP threads itself, so only one pool is ever awake.
  if (openblas_set_num_threads) openblas_set_num_threads(1);
  if (n <= 0) return;
  omp_set_num_threads(n);
}

}  // namespace mk
