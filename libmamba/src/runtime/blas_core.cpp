// OpenBLAS's kernel set, and the restart that replaces a pre-AVX2 one
// (blas_core.h).
#include "mambakit/blas_core.h"

#include <strings.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// OpenBLAS's own query, weak so that another BLAS still links (then null).
extern "C" char* openblas_get_corename(void) __attribute__((weak));

namespace mk {
namespace {

constexpr const char* kReplacedVar = "MAMBAKIT_BLAS_CORE_REPLACED";

// OpenBLAS's x86-64 kernel sets without AVX2 kernels (the names
// openblas_get_corename gives). A name not listed, including any a later
// OpenBLAS adds, is left alone.
bool pre_avx2_core(const std::string& core) {
  static const char* const kOld[] = {
      "Unknown", "Katmai",  "Coppermine", "Northwood",    "Prescott",  "Banias",
      "Atom",    "Core2",   "Penryn",     "Dunnington",   "Nehalem",   "Athlon",
      "Opteron", "Opteron_SSE3", "Barcelona", "Nano",     "Sandybridge", "Bobcat",
      "Bulldozer", "Piledriver", "Steamroller", "Excavator"};
  for (const char* name : kOld)
    if (strcasecmp(core.c_str(), name) == 0) return true;
  return false;
}

bool under_valgrind() {
  const char* pre = std::getenv("LD_PRELOAD");
  return pre && std::strstr(pre, "vgpreload");
}

}  // namespace

std::string blas_core_name() {
  if (!openblas_get_corename) return "";
  const char* name = openblas_get_corename();
  return name ? name : "";
}

std::string better_blas_core(const std::string& core, Isa widest) {
  if (core.empty() || !pre_avx2_core(core)) return "";
  if (widest == Isa::avx512) return "SkylakeX";
  return widest == Isa::avx2 ? "Haswell" : "";
}

bool blas_core_narrower_than_cpu(const std::string& core, Isa widest) {
  if (core.empty() || widest == Isa::scalar) return false;
  if (pre_avx2_core(core)) return true;
  return widest == Isa::avx512 &&
         (strcasecmp(core.c_str(), "Haswell") == 0 || strcasecmp(core.c_str(), "Zen") == 0);
}

void restart_with_better_blas_core(char** argv) {
  const char* user = std::getenv("OPENBLAS_CORETYPE");
  if (user) return;  // the user's choice (or this is the restarted program)
  const std::string core = blas_core_name();
  const std::string better = better_blas_core(core, supported_isas().back());
  if (better.empty() || under_valgrind()) return;
  // The program's own path, not /proc/self/exe itself: exec names the
  // process after the file (ps and top would show "exe").
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len > 0) {
    self[len] = '\0';
    setenv("OPENBLAS_CORETYPE", better.c_str(), 1);
    setenv(kReplacedVar, core.c_str(), 1);
    execv(self, argv);
  }
  // Still here: the exec failed. Go on with OpenBLAS's kernels, and say so.
  const int err = errno;  // from readlink or execv
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(kReplacedVar);
  std::fprintf(stderr,
               "note: OpenBLAS runs its %s kernels (no AVX2) on this %s CPU, and restarting with "
               "better ones failed (%s); set OPENBLAS_CORETYPE=%s for faster matrix products\n",
               core.c_str(), isa_name(supported_isas().back()), std::strerror(err),
               better.c_str());
}

std::string blas_core_origin() {
  const std::string core = blas_core_name();
  if (core.empty()) return "not OpenBLAS";
  const char* set = std::getenv("OPENBLAS_CORETYPE");
  if (!set) return "OpenBLAS's choice";
  const char* replaced = std::getenv(kReplacedVar);
  const Isa widest = supported_isas().back();
  if (!replaced || !*replaced) {
    std::string s = std::string("OPENBLAS_CORETYPE=") + set + " (the environment)";
    if (blas_core_narrower_than_cpu(core, widest))
      s += std::string(": narrower kernels than this ") + isa_name(widest) +
           " CPU runs; unset it to let OpenBLAS choose";
    return s;
  }
  std::string s = std::string("OPENBLAS_CORETYPE=") + set + ", set by mambakit: OpenBLAS chose " +
                  replaced + " (no AVX2 kernels) on this " + isa_name(widest) + " CPU";
  if (!better_blas_core(core, widest).empty()) s += ", but this OpenBLAS ignored it";
  return s;
}

std::string blas_core_description() {
  const std::string core = blas_core_name();
  return core.empty() ? blas_core_origin() : core + " (" + blas_core_origin() + ")";
}

}  // namespace mk
