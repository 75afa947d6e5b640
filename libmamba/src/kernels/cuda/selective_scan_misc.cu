// Selective scan on CUDA: parameter checks, sizes, the recurrent step and the
// naive baseline that materialises every state (for tests and benchmarks).
#include <string>

#include "selective_scan_common.cuh"

namespace mk::ops::cuda {

using mk::cuda::bf16;
using namespace mk::cuda::detail;

int selective_scan_chunk_len(int len) {
  return scan_detail::threads_for_len(len) * scan_detail::kItems;
}

size_t selective_scan_states_size(int batch, int len, int dim, int dstate) {
  const int chunk = selective_scan_chunk_len(len);
  const size_t n_chunks = (size_t(len) + chunk - 1) / chunk;
  return size_t(batch) * dim * n_chunks * dstate;
}

namespace {

void check_stride(const char* name, SeqStride s, int batch, int rows, int len) {
  if (s.batch == 0 && s.row == 0) return;  // contiguous
  MK_CHECK(s.row >= len && (batch == 1 || s.batch >= int64_t(rows) * s.row),
           std::string("cuda::selective_scan: stride of ") + name + " (batch " +
               std::to_string(s.batch) + ", row " + std::to_string(s.row) +
               ") overlaps its rows: the GPU layout is (B, rows, L) with L contiguous, "
               "so row stride >= L = " + std::to_string(len) + " and batch stride >= rows * row");
}

}  // namespace

template <typename T>
void selective_scan_check(const SelectiveScanParams<T>& p) {
  MK_CHECK(p.batch > 0 && p.len > 0 && p.dim > 0 && p.dstate > 0,
           "cuda::selective_scan: sizes must be positive, got batch " + std::to_string(p.batch) +
               ", len " + std::to_string(p.len) + ", dim " + std::to_string(p.dim) +
               ", dstate " + std::to_string(p.dstate));
  MK_CHECK(p.dstate <= kMaxDState,
           "cuda::selective_scan: dstate " + std::to_string(p.dstate) +
               " is not supported (1.." + std::to_string(kMaxDState) + ")");
  MK_CHECK(p.batch <= 65535, "cuda::selective_scan: batch " + std::to_string(p.batch) +
                                 " exceeds the grid's 65535 rows");
  const char* missing = !p.u       ? "u"
                        : !p.delta ? "delta"
                        : !p.A     ? "A"
                        : !p.Bm    ? "B"
                        : !p.Cm    ? "C"
                                   : nullptr;
  MK_CHECK(!missing, std::string("cuda::selective_scan: input ") + (missing ? missing : "") +
                         " is null (u, delta, A, B, C are required; D, z, delta_bias optional)");
  check_stride("u", p.u_stride, p.batch, p.dim, p.len);
  check_stride("delta", p.delta_stride, p.batch, p.dim, p.len);
  check_stride("B", p.B_stride, p.batch, p.dstate, p.len);
  check_stride("C", p.C_stride, p.batch, p.dstate, p.len);
  if (p.z) check_stride("z", p.z_stride, p.batch, p.dim, p.len);
}

// ---------------------------------------------------------------------------
// Recurrent step: one thread per (b, d), the N states in a loop.
// ---------------------------------------------------------------------------
namespace {

template <typename T>
__global__ void scan_step_kernel(int B, int D, int N, const T* u_t, const T* delta_t,
                                 const float* A, const T* B_t, const T* C_t, const float* Dskip,
                                 const T* z_t, float* state, T* out_t) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < size_t(B) * D;
       i += size_t(gridDim.x) * blockDim.x) {
    const int b = int(i / D), d = int(i % D);
    const float dl = to_float(delta_t[i]), uu = to_float(u_t[i]);
    float* h = state + i * N;
    float y = Dskip ? Dskip[d] * uu : 0.f;
    for (int n = 0; n < N; ++n) {
      const float hn = fmaf(expf(dl * A[size_t(d) * N + n]), h[n],
                            dl * uu * to_float(B_t[size_t(b) * N + n]));
      h[n] = hn;
      y = fmaf(to_float(C_t[size_t(b) * N + n]), hn, y);
    }
    if (z_t) {
      const float z = to_float(z_t[i]);
      y *= z * sigmoidf_(z);
    }
    out_t[i] = from_float<T>(y);
  }
}

}  // namespace

template <typename T>
void selective_scan_step(int batch, int dim, int dstate, const T* u_t, const T* delta_t,
                         const float* A, const T* B_t, const T* C_t, const float* Dskip,
                         const T* z_t, float* state, T* out_t, stream_t stream) {
  MK_CHECK(batch > 0 && dim > 0 && dstate > 0, "cuda::selective_scan_step: sizes must be positive");
  MK_CHECK(u_t && delta_t && A && B_t && C_t && state && out_t,
           "cuda::selective_scan_step: u_t, delta_t, A, B_t, C_t, state and out_t are required");
  require_device("cuda::selective_scan_step");
  constexpr int kThreads = 256;
  scan_step_kernel<T><<<grid_for(size_t(batch) * dim, kThreads), kThreads, 0, stream>>>(
      batch, dim, dstate, u_t, delta_t, A, B_t, C_t, Dskip, z_t, state, out_t);
  MK_CUDA_LAUNCH_CHECK("selective_scan_step");
}

// ---------------------------------------------------------------------------
// Naive baseline: states (B, D, L, N) in global memory.
// ---------------------------------------------------------------------------
namespace {

using scan_detail::resolve_stride;

struct NaiveArgs {
  int B, L, D, N;
  const float *u, *delta, *A, *Bm, *Cm, *Dskip, *z;
  SeqStride us, ds, bs, cs, zs;
};

NaiveArgs naive_args(const SelectiveScanParams<float>& p) {
  MK_CHECK(!p.delta_softplus && !p.delta_bias,
           "cuda::selective_scan_naive: delta_softplus / delta_bias are not supported by the "
           "naive baseline (pass delta already positive)");
  return {p.batch, p.len, p.dim, p.dstate, p.u, p.delta, p.A, p.Bm, p.Cm, p.Dskip, p.z,
          resolve_stride(p.u_stride, p.dim, p.len), resolve_stride(p.delta_stride, p.dim, p.len),
          resolve_stride(p.B_stride, p.dstate, p.len), resolve_stride(p.C_stride, p.dstate, p.len),
          resolve_stride(p.z_stride, p.dim, p.len)};
}

__device__ __forceinline__ size_t at(SeqStride s, int b, int r, int t) {
  return size_t(b) * s.batch + size_t(r) * s.row + t;
}

// One thread per (b, d, n) walks t, storing every h.
__global__ void naive_states_kernel(NaiveArgs a, float* states) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= size_t(a.B) * a.D * a.N) return;
  const int n = int(i % a.N), d = int(i / a.N % a.D), b = int(i / a.N / a.D);
  const float A = a.A[size_t(d) * a.N + n];
  float h = 0.f;
  for (int t = 0; t < a.L; ++t) {
    const float dl = a.delta[at(a.ds, b, d, t)], uu = a.u[at(a.us, b, d, t)];
    h = fmaf(expf(dl * A), h, dl * uu * a.Bm[at(a.bs, b, n, t)]);
    states[((size_t(b) * a.D + d) * a.L + t) * a.N + n] = h;
  }
}

// One thread per (b, d, t): y = C . h + D u, gated.
__global__ void naive_output_kernel(NaiveArgs a, const float* states, float* out) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= size_t(a.B) * a.D * a.L) return;
  const int t = int(i % a.L), d = int(i / a.L % a.D), b = int(i / a.L / a.D);
  const float* h = states + i * a.N;  // i = (b*D + d)*L + t
  const float uu = a.u[at(a.us, b, d, t)];
  float y = a.Dskip ? a.Dskip[d] * uu : 0.f;
  for (int n = 0; n < a.N; ++n) y = fmaf(a.Cm[at(a.cs, b, n, t)], h[n], y);
  if (a.z) {
    const float z = a.z[at(a.zs, b, d, t)];
    y *= z * sigmoidf_(z);
  }
  out[i] = y;
}

// One thread per (b, d, n) walks t backwards; sums over n (du, ddelta) and
// over d (dB, dC) by atomics.
__global__ void naive_backward_kernel(NaiveArgs a, const float* states, const float* dout,
                                      float* du, float* ddelta, float* dA, float* dB,
                                      float* dC) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= size_t(a.B) * a.D * a.N) return;
  const int n = int(i % a.N), d = int(i / a.N % a.D), b = int(i / a.N / a.D);
  const float A = a.A[size_t(d) * a.N + n];
  const size_t row = (size_t(b) * a.D + d) * a.L;
  float r = 0.f, dA_acc = 0.f;  // r = a_{t+1} dL/dh_{t+1}
  for (int t = a.L - 1; t >= 0; --t) {
    const float dl = a.delta[at(a.ds, b, d, t)], uu = a.u[at(a.us, b, d, t)];
    float dy = dout[row + t];
    if (a.z) {
      const float z = a.z[at(a.zs, b, d, t)];
      dy *= z * sigmoidf_(z);
    }
    const float Bn = a.Bm[at(a.bs, b, n, t)], Cn = a.Cm[at(a.cs, b, n, t)];
    const float h = states[(row + t) * a.N + n];
    const float hp = t > 0 ? states[(row + t - 1) * a.N + n] : 0.f;
    const float ea = expf(dl * A);
    const float s = fmaf(Cn, dy, r);
    atomicAdd(du + row + t, s * dl * Bn);
    atomicAdd(ddelta + row + t, s * (hp * ea * A + Bn * uu));
    atomicAdd(dB + (size_t(b) * a.N + n) * a.L + t, s * dl * uu);
    atomicAdd(dC + (size_t(b) * a.N + n) * a.L + t, dy * h);
    dA_acc += s * hp * ea * dl;
    r = ea * s;
  }
  atomicAdd(dA + size_t(d) * a.N + n, dA_acc);
}

// One thread per (b, d, t): the skip and gate terms.
__global__ void naive_backward_skip_kernel(NaiveArgs a, const float* states, const float* dout,
                                           float* du, float* dD, float* dz) {
  const size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i >= size_t(a.B) * a.D * a.L) return;
  const int t = int(i % a.L), d = int(i / a.L % a.D), b = int(i / a.L / a.D);
  const float uu = a.u[at(a.us, b, d, t)];
  float dy = dout[i];
  if (a.z) {
    const float z = a.z[at(a.zs, b, d, t)], sg = sigmoidf_(z);
    float y = a.Dskip ? a.Dskip[d] * uu : 0.f;
    for (int n = 0; n < a.N; ++n) y = fmaf(a.Cm[at(a.cs, b, n, t)], states[i * a.N + n], y);
    dz[i] = dout[i] * y * sg * (1.f + z * (1.f - sg));
    dy *= z * sg;
  }
  if (a.Dskip) {
    du[i] += a.Dskip[d] * dy;
    atomicAdd(dD + d, dy * uu);
  }
}

}  // namespace

void selective_scan_naive_forward(const SelectiveScanParams<float>& p, float* out, float* states,
                                  stream_t stream) {
  selective_scan_check(p);
  MK_CHECK(out && states, "cuda::selective_scan_naive_forward: out and states are required");
  require_device("cuda::selective_scan_naive_forward");
  const NaiveArgs a = naive_args(p);
  constexpr int kThreads = 128;
  const size_t bdn = size_t(a.B) * a.D * a.N, bdl = size_t(a.B) * a.D * a.L;
  naive_states_kernel<<<unsigned((bdn + kThreads - 1) / kThreads), kThreads, 0, stream>>>(a, states);
  MK_CUDA_LAUNCH_CHECK("selective_scan_naive_forward (states)");
  naive_output_kernel<<<unsigned((bdl + kThreads - 1) / kThreads), kThreads, 0, stream>>>(a, states, out);
  MK_CUDA_LAUNCH_CHECK("selective_scan_naive_forward (output)");
}

void selective_scan_naive_backward(const SelectiveScanParams<float>& p, const float* states,
                                   const float* dout, const SelectiveScanGrads<float>& g,
                                   stream_t stream) {
  selective_scan_check(p);
  MK_CHECK(states && dout && g.du && g.ddelta && g.dA && g.dB && g.dC &&
               (!p.Dskip || g.dD) && (!p.z || g.dz),
           "cuda::selective_scan_naive_backward: states, dout, du, ddelta, dA, dB, dC (and dD "
           "with Dskip, dz with z) are required");
  require_device("cuda::selective_scan_naive_backward");
  const NaiveArgs a = naive_args(p);
  constexpr int kThreads = 128;
  const size_t bdn = size_t(a.B) * a.D * a.N, bdl = size_t(a.B) * a.D * a.L;
  const size_t bnl = size_t(a.B) * a.N * a.L;
  mk::cuda::memset_async(g.du, 0, bdl * sizeof(float), stream);
  mk::cuda::memset_async(g.ddelta, 0, bdl * sizeof(float), stream);
  mk::cuda::memset_async(g.dB, 0, bnl * sizeof(float), stream);
  mk::cuda::memset_async(g.dC, 0, bnl * sizeof(float), stream);
  naive_backward_kernel<<<unsigned((bdn + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      a, states, dout, g.du, g.ddelta, g.dA, g.dB, g.dC);
  MK_CUDA_LAUNCH_CHECK("selective_scan_naive_backward");
  naive_backward_skip_kernel<<<unsigned((bdl + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      a, states, dout, g.du, g.dD, g.dz);
  MK_CUDA_LAUNCH_CHECK("selective_scan_naive_backward (skip)");
}

template void selective_scan_check<float>(const SelectiveScanParams<float>&);
template void selective_scan_check<bf16>(const SelectiveScanParams<bf16>&);
template void selective_scan_step<float>(int, int, int, const float*, const float*, const float*,
                                         const float*, const float*, const float*, const float*,
                                         float*, float*, stream_t);
template void selective_scan_step<bf16>(int, int, int, const bf16*, const bf16*, const float*,
                                        const bf16*, const bf16*, const float*, const bf16*,
                                        float*, bf16*, stream_t);

}  // namespace mk::ops::cuda
