// The selective scan (Mamba's S6), CPU. Per batch b, channel d, state n:
//   dA  = exp(delta[b,t,d] * A[d,n])
//   h_n = dA * h_n + delta[b,t,d] * B[b,t,n] * u[b,t,d]
//   y   = sum_n C[b,t,n] * h_n + D[d] * u[b,t,d]
//   out = y * silu(z[b,t,d])            (if z is given, else out = y)
// Hardware-aware: the forward keeps h in registers and stores it only at
// chunk boundaries (chunk_states); the backward recomputes each chunk's
// states from its saved start and runs the reverse scan. h for all
// (b, t, d, n) is never materialised (see selective_scan_naive_* for the
// version that does, kept as a reference and benchmark baseline).
#pragma once
#include <cstddef>

namespace mk::ops {

template <typename T>
struct SelectiveScanParams {
  int batch = 0, len = 0, dim = 0, dstate = 0;  // B, L, D, N
  const T* u = nullptr;      // (B, L, D)
  const T* delta = nullptr;  // (B, L, D), already positive (softplus applied)
  const T* A = nullptr;      // (D, N), negative (= -exp(A_log))
  const T* Bm = nullptr;     // (B, L, N)
  const T* Cm = nullptr;     // (B, L, N)
  const T* Dskip = nullptr;  // (D) or null
  const T* z = nullptr;      // (B, L, D) or null
};

template <typename T>
struct SelectiveScanGrads {
  T* du = nullptr;      // (B, L, D) written
  T* ddelta = nullptr;  // (B, L, D) written
  T* dA = nullptr;      // (D, N)    accumulated
  T* dB = nullptr;      // (B, L, N) written
  T* dC = nullptr;      // (B, L, N) written
  T* dD = nullptr;      // (D)       accumulated (if Dskip given)
  T* dz = nullptr;      // (B, L, D) written (if z given)
};

// Number of time steps per saved-state chunk.
int selective_scan_chunk_len();
// Elements of the chunk_states buffer: B * ceil(L / chunk_len) * D * N.
size_t selective_scan_states_size(int batch, int len, int dim, int dstate);

// Throws mk::Error if sizes or pointers are inconsistent.
template <typename T>
void selective_scan_check(const SelectiveScanParams<T>& p);

// out (B, L, D). chunk_states receives the state at the start of every chunk
// (B, n_chunks, D, N); it may be null when no backward follows (inference).
// final_state (B, D, N), if non-null, receives h after the last step (to
// continue recurrently with selective_scan_step).
template <typename T>
void selective_scan_forward(const SelectiveScanParams<T>& p, T* out, T* chunk_states,
                            T* final_state);

template <typename T>
void selective_scan_backward(const SelectiveScanParams<T>& p, const T* chunk_states,
                             const T* dout, const SelectiveScanGrads<T>& g);

// Scratch memory (bytes) selective_scan_backward allocates internally with
// `threads` OpenMP threads: per-thread dB/dC partial sums (B, L, N) and the
// per-thread chunk recompute buffers. For memory accounting (bench/).
template <typename T>
size_t selective_scan_backward_workspace_bytes(int batch, int len, int dim, int dstate,
                                               int threads);

// One recurrent step (generation). state (B, D, N) updated in place;
// u_t, delta_t, z_t, out_t: (B, D); B_t, C_t: (B, N); z_t may be null.
template <typename T>
void selective_scan_step(int batch, int dim, int dstate, const T* u_t, const T* delta_t,
                         const T* A, const T* B_t, const T* C_t, const T* Dskip, const T* z_t,
                         T* state, T* out_t);

// Reference that materialises every state: states (B, L, D, N) is filled by
// the forward and read by the backward. Same results, B*L*D*N memory.
template <typename T>
void selective_scan_naive_forward(const SelectiveScanParams<T>& p, T* out, T* states);
template <typename T>
void selective_scan_naive_backward(const SelectiveScanParams<T>& p, const T* states,
                                   const T* dout, const SelectiveScanGrads<T>& g);
// Scratch (bytes) of selective_scan_naive_backward: per-thread dB/dC partials.
template <typename T>
size_t selective_scan_naive_backward_workspace_bytes(int batch, int len, int dim, int dstate,
                                                     int threads);

}  // namespace mk::ops
