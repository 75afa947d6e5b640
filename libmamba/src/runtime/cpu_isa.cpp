// Runtime choice of the ISA of the hand-vectorised CPU kernels (cpu_isa.h).
#include "mambakit/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <string>

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

}  // namespace mk
