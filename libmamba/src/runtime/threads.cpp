#include "mambakit/threads.h"

#include <omp.h>

// OpenBLAS's setter, declared weak so that linking against another BLAS
// (reference BLAS, BLIS) still works: there it is null and not called.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace mk {

void set_cpu_threads(int n) {
  if (n <= 0) return;
  omp_set_num_threads(n);
  if (openblas_set_num_threads) openblas_set_num_threads(n);
}

}  // namespace mk
