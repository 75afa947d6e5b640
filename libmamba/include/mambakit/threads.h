// CPU thread count for everything libmamba runs. There is one pool, OpenMP's:
// Debian's OpenBLAS runs a pthread pool of its own sized to the machine, so
// it is kept at one thread and the matrix products split their work over the
// OpenMP threads (ops/matmul.h). Two pools awake at once oversubscribe the
// cores (measured on a 2-core machine: two one-thread runs side by side spent
// a third of their time in kernel context switches, and one two-thread run
// trained slower than with one thread).
#pragma once

namespace mk {

// n > 0: use n threads; n <= 0: OpenMP's default (OMP_NUM_THREADS or the
// core count). Either way OpenBLAS is set to one thread.
void set_cpu_threads(int n);

}  // namespace mk
