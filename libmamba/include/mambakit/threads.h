// CPU thread count for everything libmamba runs. There is one pool, OpenMP's:
// Debian's OpenBLAS runs a pthread pool of its own sized to the machine, so
// it is kept at one thread and the matrix products split their work over the
// OpenMP threads (ops/matmul.h). Two pools awake at once oversubscribe the
// cores (measured on a 2-core machine: two one-thread runs side by side spent
// a third of their time in kernel context switches, and one two-thread run
// trained slower than with one thread).
#pragma once
#include <string>

namespace mk {

// The most threads any setting may ask for: 4x the online cores, at most
// 1024. More only oversubscribes the cores, and a huge count (100000) makes
// libgomp fail to create its pool.
int max_cpu_threads();

// Why an explicit thread count n is unusable ("" when 1 <= n <=
// max_cpu_threads()). `what` names the setting in the message, e.g.
// "--threads" or "train.threads".
std::string cpu_threads_problem(long n, const std::string& what);

// n > 0: use n threads; n <= 0: OpenMP's default (OMP_NUM_THREADS or the
// core count). Either way OpenBLAS is set to one thread. A count above
// max_cpu_threads() (from n or from OMP_NUM_THREADS) is clamped to it with a
// one-line note on stderr; callers that take a count from the user check it
// with cpu_threads_problem first and refuse it.
void set_cpu_threads(int n);

}  // namespace mk
