// Which kernel set ("core") OpenBLAS runs the matrix products with, and the
// remedy for a CPU newer than the installed OpenBLAS.
//
// Debian's OpenBLAS is built with DYNAMIC_ARCH: as it loads, it reads the
// CPU model and picks one of its kernel sets. A model it does not know can
// get its SSE3 kernels: OpenBLAS 0.3.21 (Debian 12) runs "Prescott" on an
// Emerald Rapids Xeon (family 6, model 0xCF, AVX-512), where every product
// of a training step was then 5x slower (43 against 214 GFLOP/s,
// bench_step_ops). OpenBLAS makes that choice in its load-time constructor,
// before main, from the environment variable OPENBLAS_CORETYPE when set;
// nothing can change it afterwards. So the programs (the mambakit CLI, the
// benchmarks) call restart_with_better_blas_core(argv) first thing: when
// OpenBLAS runs kernels older than the CPU's AVX2 and the user has not set
// OPENBLAS_CORETYPE, the program executes itself again, once, with it set.
#pragma once
#include <string>

#include "mambakit/cpu_isa.h"

namespace mk {

// The kernel set OpenBLAS runs ("SkylakeX", "Haswell", "Prescott", ...), or
// "" when the BLAS linked is not OpenBLAS.
std::string blas_core_name();

// The OPENBLAS_CORETYPE value that gives a CPU whose widest ISA is `widest`
// faster kernels than `core` (OpenBLAS's own choice): "SkylakeX" with
// AVX-512, "Haswell" with AVX2. "" when `core` already has AVX2 or AVX-512
// kernels, when it is "" (not OpenBLAS) or when the CPU has no AVX2. Only a
// pre-AVX2 kernel set is replaced: a choice among its AVX2 and AVX-512 sets
// is one OpenBLAS made for a CPU it knows, and stands.
std::string better_blas_core(const std::string& core, Isa widest);

// Whether the kernel set `core` runs narrower vectors than a CPU whose
// widest ISA is `widest`: a pre-AVX2 set on an AVX2 or AVX-512 CPU, or an
// AVX2 set ("Haswell", "Zen") on an AVX-512 one. OpenBLAS never makes the
// second choice itself on a CPU it knows; an OPENBLAS_CORETYPE in the
// environment can (on a Zen 5 with AVX-512, "Haswell" ran a training step's
// products at half the speed of OpenBLAS's own "Cooperlake").
bool blas_core_narrower_than_cpu(const std::string& core, Isa widest);

// Call first in a program's main. When better_blas_core(blas_core_name(),
// widest supported ISA) is not "" and OPENBLAS_CORETYPE is unset, sets it
// (and MAMBAKIT_BLAS_CORE_REPLACED to OpenBLAS's own choice, for
// blas_core_origin) and executes the program's own file (the target of
// /proc/self/exe) with the same arguments.
// Returns when no restart is needed; also when the program runs under
// valgrind (a restarted program would leave it) or the exec fails, then
// with one note on stderr saying what to set.
void restart_with_better_blas_core(char** argv);

// Where the kernel set came from, for `mambakit info --system` and
// --version: "OpenBLAS's choice"; "OPENBLAS_CORETYPE=X (the environment)",
// followed by a hint to unset it when X is narrower than the CPU
// (blas_core_narrower_than_cpu);
// "OPENBLAS_CORETYPE=X, set by mambakit: OpenBLAS chose Prescott (no AVX2
// kernels) on this avx512 CPU"; the same with "but this OpenBLAS ignored it"
// when the set is still a pre-AVX2 one (an OpenBLAS built for one target,
// without DYNAMIC_ARCH); "not OpenBLAS".
std::string blas_core_origin();

// "SkylakeX (OpenBLAS's choice)": the set and its origin in one line, as
// --version, info --system and bench_step_ops print it ("not OpenBLAS"
// alone for another BLAS).
std::string blas_core_description();

}  // namespace mk
