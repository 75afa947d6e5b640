// Which instruction set the hand-vectorised CPU kernels run with.
//
// Every build contains a scalar, an AVX2+FMA and an AVX-512 copy of each
// hand-vectorised kernel (the selective scan; the float SiLU and softplus
// loops), each compiled with its own flags; the rest of the library is
// built for plain x86-64 (unless MAMBAKIT_ARCH says otherwise). The copy used is chosen once, on first use,
// from CPUID: the widest the CPU supports. The environment variable
// MAMBAKIT_ISA=scalar|avx2|avx512 forces one; a value that is unknown or that
// the CPU lacks is refused with an mk::Error naming the variable.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace mk {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

// "scalar", "avx2", "avx512".
const char* isa_name(Isa isa);

// The ISAs this CPU can run, narrowest first (always contains scalar).
// avx2 needs AVX2 and FMA; avx512 needs AVX-512 F, BW, DQ and VL.
std::vector<Isa> supported_isas();

// supported_isas() as "scalar, avx2, avx512", for messages.
std::string supported_isa_list();

// The ISA called `name` (isa_name's spelling), whether or not this CPU runs
// it; nullopt for any other string.
std::optional<Isa> isa_from_name(const std::string& name);

// The ISA in use: set_isa_for_testing's if called, else MAMBAKIT_ISA's if
// set, else the widest supported. Throws mk::Error for a bad MAMBAKIT_ISA.
Isa active_isa();

// What active_isa() chooses for an environment value (null or empty: the
// widest supported). Throws mk::Error naming MAMBAKIT_ISA and the supported
// ISAs for an unknown or unsupported value.
Isa isa_from_env_value(const char* value);

// Forces `isa` for the rest of the process (tests, benchmarks); throws
// mk::Error if the CPU lacks it. Not meant to be called while kernels run on
// other threads.
void set_isa_for_testing(Isa isa);

// Float matrix products on AMX tiles (mambakit/ops/amx_matmul.h), for CPUs
// with AMX-TILE, AMX-BF16 and AVX512-BF16 (Intel Xeon from Sapphire Rapids
// on) where the kernel grants tile data to the process.
bool cpu_has_amx();

// Whether gemm<float> runs on AMX tiles now: active_isa() is avx512 (so
// MAMBAKIT_ISA=avx2 or scalar turns them off too) and MAMBAKIT_AMX is unset
// (on where cpu_has_amx()) or 1 (required: refused with an mk::Error where
// the CPU lacks it); MAMBAKIT_AMX=0 keeps every product in BLAS.
bool amx_products_active();

// "amx" where amx_products_active(), else "blas": the value of the
// float_products field of info --system --json, bench train and summary.json.
const char* float_products_name();

// Turns the AMX products on or off for the rest of the process (tests,
// benchmarks); throws mk::Error for on where !cpu_has_amx().
void set_amx_products_for_testing(bool on);

// Sets an ISA for a scope and restores the previous one.
class ScopedIsa {
 public:
  explicit ScopedIsa(Isa isa) : prev_(active_isa()) { set_isa_for_testing(isa); }
  ~ScopedIsa() { set_isa_for_testing(prev_); }
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  Isa prev_;
};

}  // namespace mk
