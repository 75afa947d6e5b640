// Runtime choice of the ISA of the hand-vectorised CPU kernels (cpu_isa.h).
#include "mambakit/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <string>

#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "mambakit/error.h"

namespace mk {
namespace {

bool cpu_has(Isa isa) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  switch (isa) {
    case Isa::scalar:
      return true;
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("fma");
  }
  return false;
#else
  return isa == Isa::scalar;
#endif
}

// The chosen ISA, decided on first use (a throwing initialiser is retried
// on the next call, so a bad MAMBAKIT_ISA fails every call, not only the first).
std::atomic<int>& current() {
  static std::atomic<int> isa{int(isa_from_env_value(std::getenv("MAMBAKIT_ISA")))};
  return isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "unknown";
}

std::vector<Isa> supported_isas() {
  static const std::vector<Isa> list = [] {
    std::vector<Isa> v;
    for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512})
      if (cpu_has(i)) v.push_back(i);
    return v;
  }();
  return list;
}

std::string supported_isa_list() {
  std::string s;
  for (Isa i : supported_isas()) s += std::string(s.empty() ? "" : ", ") + isa_name(i);
  return s;
}

std::optional<Isa> isa_from_name(const std::string& name) {
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (name == isa_name(i)) return i;
  return std::nullopt;
}

Isa isa_from_env_value(const char* value) {
  if (!value || !*value) return supported_isas().back();
  const std::optional<Isa> isa = isa_from_name(value);
  if (!isa)
    throw Error(std::string("MAMBAKIT_ISA=") + value +
                ": unknown ISA (expected scalar, avx2 or avx512; this CPU supports: " +
                supported_isa_list() + ")");
  MK_CHECK(cpu_has(*isa), std::string("MAMBAKIT_ISA=") + value + ": this CPU lacks " +
                              isa_name(*isa) + " (it supports: " + supported_isa_list() + ")");
  return *isa;
}

Isa active_isa() { return Isa(current().load(std::memory_order_relaxed)); }

void set_isa_for_testing(Isa isa) {
  MK_CHECK(cpu_has(isa), std::string("set_isa_for_testing: this CPU lacks ") + isa_name(isa) +
                             " (it supports: " + supported_isa_list() + ")");
  current().store(int(isa), std::memory_order_relaxed);
}

namespace {

// CPUID's AMX-TILE, AMX-BF16 and AVX512-BF16 bits, and the kernel's leave to
// use tile data (Linux asks each process to request it: without it the
// first tile instruction faults).
bool detect_amx() {
#if defined(__GNUC__) && defined(__x86_64__)
  if (!cpu_has(Isa::avx512)) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool tile = d & (1u << 24), bf16 = d & (1u << 22);
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  const bool avx512_bf16 = a & (1u << 5);
  if (!tile || !bf16 || !avx512_bf16) return false;
  constexpr long kReqXcompPerm = 0x1023, kXfeatureTileData = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureTileData) == 0;
#else
  return false;
#endif
}

// 1: products on AMX tiles, 0: in BLAS; from MAMBAKIT_AMX (unset: 1 where
// the CPU has AMX) until set_amx_products_for_testing.
std::atomic<int>& amx_choice() {
  static std::atomic<int> on{[] {
    const char* v = std::getenv("MAMBAKIT_AMX");
    if (!v || !*v) return int(cpu_has_amx());
    const std::string s = v;
    if (s == "0") return 0;
    if (s == "1") {
      MK_CHECK(cpu_has_amx(), "MAMBAKIT_AMX=1: this CPU or kernel has no AMX with bfloat16 "
                              "(AMX-TILE, AMX-BF16, AVX512-BF16 and the kernel's leave to use tiles)");
      return 1;
    }
    throw Error("MAMBAKIT_AMX=" + s + ": expected 0 (products through BLAS) or 1 (on AMX tiles)");
  }()};
  return on;
}

}  // namespace

bool cpu_has_amx() {
  static const bool has = detect_amx();
  return has;
}

bool amx_products_active() {
  // Both read (and so checked) on every call, whatever the other says.
  const bool chosen = amx_choice().load(std::memory_order_relaxed) == 1;
  return active_isa() == Isa::avx512 && chosen;
}

const char* float_products_name() { return amx_products_active() ? "amx" : "blas"; }

void set_amx_products_for_testing(bool on) {
  MK_CHECK(!on || cpu_has_amx(), "set_amx_products_for_testing: this CPU or kernel has no AMX");
  amx_choice().store(on ? 1 : 0, std::memory_order_relaxed);
}

}  // namespace mk
