#include "mambakit/threads.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

// OpenBLAS's setter, declared weak so that linking against another BLAS
// (reference BLAS, BLIS) still works: there it is null and not called.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace mk {

namespace {

long online_cores() { return std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)); }

}  // namespace

int max_cpu_threads() { return int(std::min(1024L, 4 * online_cores())); }

std::string cpu_threads_problem(long n, const std::string& what) {
  if (n < 1) return what + " must be at least 1, got " + std::to_string(n);
  if (n > max_cpu_threads())
    return what + " " + std::to_string(n) + " is more than this machine can use: the limit is " +
           std::to_string(max_cpu_threads()) + " (4x the " + std::to_string(online_cores()) +
           " online cores, at most 1024)";
  return "";
}

void set_cpu_threads(int n) {
  // OpenBLAS stays at one thread whatever n is: gemm (matmul.cpp) splits
  // products over the OpenMP threads itself, so only one pool is ever awake.
  if (openblas_set_num_threads) openblas_set_num_threads(1);
  const int cap = max_cpu_threads();
  if (n > cap) {
    std::fprintf(stderr, "note: %d threads asked for; using %d (4x the online cores, at most 1024)\n", n, cap);
    n = cap;
  }
  if (n <= 0 && omp_get_max_threads() > cap) {
    // OMP_NUM_THREADS is the user's environment, not ours to refuse.
    std::fprintf(stderr, "note: OMP_NUM_THREADS asks for %d threads; using %d (4x the online cores, at most 1024)\n",
                 omp_get_max_threads(), cap);
    n = cap;
  }
  if (n <= 0) return;
  omp_set_num_threads(n);
}

}  // namespace mk
