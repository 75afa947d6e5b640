// Internal: the per-ISA copies of the selective scan kernels
// (selective_scan_kernels.cpp compiled three times, see
// libmamba/CMakeLists.txt) and the table selective_scan.cpp dispatches
// through. Arguments are checked by selective_scan.cpp before any entry here
// is called.
#pragma once
#include <cstddef>

#include "mambakit/ops/selective_scan.h"

namespace mk::ops {

// Steps per saved-state chunk (selective_scan_chunk_len()).
constexpr int kScanChunk = 16;
// Below this many state updates (B*L*D*N) a call runs on one thread.
constexpr size_t kScanParallelMinWork = size_t(1) << 16;

// Plain function pointers only (no member functions), so the struct itself
// generates no code in the ISA-specific objects.
template <typename T>
struct ScanKernels {
  void (*forward)(const SelectiveScanParams<T>&, T* out, T* chunk_states, T* final_state);
  void (*backward)(const SelectiveScanParams<T>&, const T* chunk_states, const T* dout,
                   const SelectiveScanGrads<T>&);
  size_t (*backward_workspace_bytes)(int batch, int len, int dim, int dstate, int threads);
  void (*step)(int batch, int dim, int dstate, const T* u_t, const T* delta_t, const T* A,
               const T* B_t, const T* C_t, const T* Dskip, const T* z_t, T* state, T* out_t);
  void (*naive_forward)(const SelectiveScanParams<T>&, T* out, T* states);
  void (*naive_backward)(const SelectiveScanParams<T>&, const T* states, const T* dout,
                         const SelectiveScanGrads<T>&);
};

#define MK_DECLARE_SCAN_ISA(ns)                  \
  namespace ns {                                 \
  const ScanKernels<float>& kernels_f32();       \
  const ScanKernels<double>& kernels_f64();      \
  }
MK_DECLARE_SCAN_ISA(scan_scalar)
MK_DECLARE_SCAN_ISA(scan_avx2)
MK_DECLARE_SCAN_ISA(scan_avx512)
#undef MK_DECLARE_SCAN_ISA

}  // namespace mk::ops
