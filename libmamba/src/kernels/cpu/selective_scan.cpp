// CPU selective scan: the public entry points. They check the arguments and
// call the copy of the kernels (selective_scan_kernels.cpp, compiled once
// per ISA) that mk::active_isa() chose at run time.
#include "mambakit/ops/selective_scan.h"

#include <algorithm>
#include <string>

#include "mambakit/error.h"
#include "isa_dispatch.h"
#include "selective_scan_isa.h"

namespace mk::ops {
namespace {

template <typename T>
const ScanKernels<T>& kernels();
template <>
const ScanKernels<float>& kernels<float>() {
  return active_isa_table(scan_scalar::kernels_f32, scan_avx2::kernels_f32,
                          scan_avx512::kernels_f32);
}
template <>
const ScanKernels<double>& kernels<double>() {
  return active_isa_table(scan_scalar::kernels_f64, scan_avx2::kernels_f64,
                          scan_avx512::kernels_f64);
}

void check_grads_present(bool ok, const char* what) {
  MK_CHECK(ok, std::string("selective_scan_backward: gradient pointer ") + what +
                   " is null (all gradients of the given inputs are required)");
}

}  // namespace

int selective_scan_chunk_len() { return kScanChunk; }

size_t selective_scan_states_size(int batch, int len, int dim, int dstate) {
  const size_t n_chunks = (size_t(len) + kScanChunk - 1) / kScanChunk;
  return size_t(batch) * n_chunks * size_t(dim) * size_t(dstate);
}

template <typename T>
size_t selective_scan_backward_workspace_bytes(int batch, int len, int dim, int dstate,
                                               int threads) {
  return kernels<T>().backward_workspace_bytes(batch, len, dim, dstate, threads);
}

template <typename T>
size_t selective_scan_naive_backward_workspace_bytes(int batch, int len, int dim, int dstate,
                                                     int threads) {
  const size_t work = size_t(batch) * len * dim * dstate;
  const size_t nt =
      work < kScanParallelMinWork ? 1 : size_t(std::max(1, std::min(threads, dim)));
  return nt * (2 * size_t(batch) * len * dstate + 2 * size_t(dstate)) * sizeof(T);
}

template <typename T>
void selective_scan_check(const SelectiveScanParams<T>& p) {
  MK_CHECK(p.batch > 0 && p.len > 0 && p.dim > 0 && p.dstate > 0,
           "selective_scan: sizes must be positive, got batch " + std::to_string(p.batch) +
               ", len " + std::to_string(p.len) + ", dim " + std::to_string(p.dim) +
               ", dstate " + std::to_string(p.dstate));
  const char* missing = !p.u       ? "u"
                        : !p.delta ? "delta"
                        : !p.A     ? "A"
                        : !p.Bm    ? "B"
                        : !p.Cm    ? "C"
                                   : nullptr;
  MK_CHECK(!missing, std::string("selective_scan: input ") + (missing ? missing : "") +
                         " is null (u, delta, A, B, C are required; D and z are optional)");
  MK_CHECK(size_t(p.batch) * p.len * p.dim < (size_t(1) << 62),
           "selective_scan: tensor too large for size_t indexing");
}

template <typename T>
void selective_scan_forward(const SelectiveScanParams<T>& p, T* out, T* chunk_states,
                            T* final_state) {
  selective_scan_check(p);
  MK_CHECK(out, "selective_scan_forward: out is null");
  kernels<T>().forward(p, out, chunk_states, final_state);
}

template <typename T>
void selective_scan_backward(const SelectiveScanParams<T>& p, const T* chunk_states,
                             const T* dout, const SelectiveScanGrads<T>& g) {
  selective_scan_check(p);
  MK_CHECK(chunk_states, "selective_scan_backward: chunk_states is null (run the forward with "
                         "a chunk_states buffer of selective_scan_states_size elements)");
  MK_CHECK(dout, "selective_scan_backward: dout is null");
  check_grads_present(g.du, "du");
  check_grads_present(g.ddelta, "ddelta");
  check_grads_present(g.dA, "dA");
  check_grads_present(g.dB, "dB");
  check_grads_present(g.dC, "dC");
  check_grads_present(!p.Dskip || g.dD, "dD");
  check_grads_present(!p.z || g.dz, "dz");
  kernels<T>().backward(p, chunk_states, dout, g);
}

template <typename T>
void selective_scan_step(int batch, int dim, int dstate, const T* u_t, const T* delta_t,
                         const T* A, const T* B_t, const T* C_t, const T* Dskip, const T* z_t,
                         T* state, T* out_t) {
  MK_CHECK(batch > 0 && dim > 0 && dstate > 0, "selective_scan_step: sizes must be positive");
  MK_CHECK(u_t && delta_t && A && B_t && C_t && state && out_t,
           "selective_scan_step: u_t, delta_t, A, B_t, C_t, state and out_t are required");
  kernels<T>().step(batch, dim, dstate, u_t, delta_t, A, B_t, C_t, Dskip, z_t, state, out_t);
}

template <typename T>
void selective_scan_naive_forward(const SelectiveScanParams<T>& p, T* out, T* states) {
  selective_scan_check(p);
  MK_CHECK(out && states, "selective_scan_naive_forward: out and states are required");
  kernels<T>().naive_forward(p, out, states);
}

template <typename T>
void selective_scan_naive_backward(const SelectiveScanParams<T>& p, const T* states,
                                   const T* dout, const SelectiveScanGrads<T>& g) {
  selective_scan_check(p);
  MK_CHECK(states && dout, "selective_scan_naive_backward: states and dout are required");
  check_grads_present(g.du && g.ddelta && g.dA && g.dB && g.dC, "du/ddelta/dA/dB/dC");
  check_grads_present(!p.Dskip || g.dD, "dD");
  check_grads_present(!p.z || g.dz, "dz");
  kernels<T>().naive_backward(p, states, dout, g);
}

#define MK_INSTANTIATE_SCAN(T)                                                                  \
  template void selective_scan_check<T>(const SelectiveScanParams<T>&);                         \
  template void selective_scan_forward<T>(const SelectiveScanParams<T>&, T*, T*, T*);           \
  template void selective_scan_backward<T>(const SelectiveScanParams<T>&, const T*, const T*,   \
                                           const SelectiveScanGrads<T>&);                       \
  template void selective_scan_step<T>(int, int, int, const T*, const T*, const T*, const T*,   \
                                       const T*, const T*, const T*, T*, T*);                   \
  template void selective_scan_naive_forward<T>(const SelectiveScanParams<T>&, T*, T*);         \
  template void selective_scan_naive_backward<T>(const SelectiveScanParams<T>&, const T*,       \
                                                 const T*, const SelectiveScanGrads<T>&);       \
  template size_t selective_scan_backward_workspace_bytes<T>(int, int, int, int, int);          \
  template size_t selective_scan_naive_backward_workspace_bytes<T>(int, int, int, int, int);

MK_INSTANTIATE_SCAN(float)
MK_INSTANTIATE_SCAN(double)
#undef MK_INSTANTIATE_SCAN

}  // namespace mk::ops
