// CPU thread count for everything libmamba runs: OpenMP regions and the BLAS
// library's own threads. Both must be set together: Debian's OpenBLAS runs a
// pthread pool sized to the machine, so limiting OpenMP alone still wakes
// BLAS threads on every matmul, and two one-thread runs side by side then
// oversubscribe the cores (measured on a 2-core machine: a third of the time
// in kernel context switches).
#pragma once

namespace mk {

// n > 0: use n threads; n <= 0: leave the defaults (OMP_NUM_THREADS,
// OPENBLAS_NUM_THREADS or the core count).
void set_cpu_threads(int n);

}  // namespace mk
