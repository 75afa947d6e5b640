// The CPU backend: every op of the table is the CPU kernel of the same name
// (libmamba/src/kernels/cpu). The reference all other backends are tested
// against.
#include <atomic>
#include <complex>

#include "mambakit/backend.h"
#include "mambakit/error.h"
#include "mambakit/op_counter.h"
#include "mambakit/ops/activations.h"
#include "mambakit/ops/elementwise.h"
#include "mambakit/ops/embedding.h"
#include "mambakit/ops/gated.h"
#include "mambakit/ops/linear_softplus.h"
#include "mambakit/ops/matmul.h"
#include "mambakit/ops/pair_features.h"
#include "mambakit/ops/rmsnorm.h"
#include "mambakit/ops/softmax_xent.h"
#include "mambakit/ops/ssm_prepare.h"

namespace mk {

namespace {

// The installed work counter (op_counter.h); one relaxed load per counted op
// when none is.
std::atomic<OpCounter*> g_op_counter{nullptr};

void count(const char* unit, double n) {
  if (OpCounter* c = g_op_counter.load(std::memory_order_relaxed)) c->counts[unit] += n;
}

// Visible (query, key) pairs of one head: query i sees keys 0..i+q_offset.
template <typename T>
double visible_pairs(const ops::AttentionParams<T>& p) {
  return double(p.len_q) * double(p.q_offset) + double(p.len_q) * double(p.len_q + 1) / 2;
}

template <typename T>
std::complex<T>* cx(T* p) { return reinterpret_cast<std::complex<T>*>(p); }
template <typename T>
const std::complex<T>* cx(const T* p) { return reinterpret_cast<const std::complex<T>*>(p); }

template <typename T>
class CpuBackend final : public Backend<T> {
  DeviceMemory& mem_ = cpu_memory();

 public:
  Device device() const override { return Device::cpu; }
  void* alloc_bytes(size_t b) override { return mem_.alloc_bytes(b); }
  void free_bytes(void* p) override { mem_.free_bytes(p); }
  void upload_bytes(void* d, const void* s, size_t b) override { mem_.upload_bytes(d, s, b); }
  void download_bytes(void* d, const void* s, size_t b) override { mem_.download_bytes(d, s, b); }
  void copy_bytes(void* d, const void* s, size_t b) override { mem_.copy_bytes(d, s, b); }
  void zero_bytes(void* p, size_t b) override { mem_.zero_bytes(p, b); }

  void add(const T* a, const T* b, T* y, size_t n) override { ops::add(a, b, y, n); }
  void axpy(T alpha, const T* x, T* y, size_t n) override { ops::axpy(alpha, x, y, n); }
  void scale(T alpha, T* y, size_t n) override { ops::scale(alpha, y, n); }
  void neg_exp(const T* x, T* y, size_t n) override { ops::neg_exp(x, y, n); }
  void mul_acc(const T* a, const T* b, T* y, size_t n) override { ops::mul_acc(a, b, y, n); }
  void copy_cols(const T* src, size_t rows, size_t ss, size_t c0, size_t w, T* dst, size_t ds,
                 size_t d0) override {
    ops::copy_cols(src, rows, ss, c0, w, dst, ds, d0);
  }
  void reverse_time(const T* x, T* y, size_t batch, size_t len, size_t width) override {
    ops::reverse_time(x, y, batch, len, width);
  }
  void channel_scale_forward(const T* x, const T* D, T* y, size_t rows, size_t H) override {
    ops::channel_scale_forward(x, D, y, rows, H);
  }
  void channel_scale_backward(const T* dy, const T* x, const T* D, T* dx, T* dD, size_t rows,
                              size_t H) override {
    ops::channel_scale_backward(dy, x, D, dx, dD, rows, H);
  }

  void silu_forward(const T* x, T* y, size_t n) override { ops::silu_forward(x, y, n); }
  void silu_backward(const T* dy, const T* x, T* dx, size_t n) override { ops::silu_backward(dy, x, dx, n); }
  void softplus_forward(const T* x, T* y, size_t n) override { ops::softplus_forward(x, y, n); }
  void softplus_backward(const T* dy, const T* x, T* dx, size_t n) override {
    ops::softplus_backward(dy, x, dx, n);
  }
  void gelu_forward(const T* x, T* y, size_t n) override { ops::gelu_forward(x, y, n); }
  void gelu_backward(const T* dy, const T* x, T* dx, size_t n) override { ops::gelu_backward(dy, x, dx, n); }
  void glu_forward(const T* x, T* y, size_t rows, size_t w) override { ops::glu_forward(x, y, rows, w); }
  void glu_backward(const T* dy, const T* x, T* dx, size_t rows, size_t w) override {
    ops::glu_backward(dy, x, dx, rows, w);
  }
  void swiglu_forward(const T* g, const T* u, T* y, size_t n) override { ops::swiglu_forward(g, u, y, n); }
  void swiglu_backward(const T* dy, const T* g, const T* u, T* dg, T* du, size_t n) override {
    ops::swiglu_backward(dy, g, u, dg, du, n);
  }

  void gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb,
            T beta, T* C, int ldc) override {
    count("matmul_macs", double(M) * N * K);
    ops::gemm<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void linear_forward(const T* x, const T* W, const T* b, T* y, int rows, int in, int out) override {
    count("matmul_macs", double(rows) * in * out);
    ops::linear_forward(x, W, b, y, rows, in, out);
  }
  void linear_backward(const T* dy, const T* x, const T* W, T* dx, T* dW, T* db, int rows, int in,
                       int out) override {
    count("matmul_macs", double(rows) * in * out * ((dx ? 1 : 0) + (dW ? 1 : 0)));
    ops::linear_backward(dy, x, W, dx, dW, db, rows, in, out);
  }
  void linear_softplus_forward(const T* x, const T* W, const T* b, T* y, int rows, int in,
                               int out) override {
    count("matmul_macs", double(rows) * in * out);
    ops::linear_softplus_forward(x, W, b, y, rows, in, out);
  }
  void linear_softplus_backward(const T* dy, const T* y, const T* x, const T* W, T* dx, T* dW,
                                T* db, int rows, int in, int out) override {
    count("matmul_macs", double(rows) * in * out * ((dx ? 1 : 0) + 1));
    ops::linear_softplus_backward(dy, y, x, W, dx, dW, db, rows, in, out);
  }
  void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, int rows, int dim, T eps) override {
    count("norm_elements", double(rows) * dim);
    ops::rmsnorm_forward(x, w, y, rstd, rows, dim, eps);
  }
  void rmsnorm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw, int rows,
                        int dim) override {
    count("norm_elements", double(rows) * dim);
    ops::rmsnorm_backward(dy, x, w, rstd, dx, dw, rows, dim);
  }
  void embedding_forward(const int32_t* ids, const T* table, T* out, int n, int vocab, int dim) override {
    ops::embedding_forward(ids, table, out, n, vocab, dim);
  }
  void embedding_backward(const int32_t* ids, const T* dout, T* dtable, int n, int vocab, int dim) override {
    ops::embedding_backward(ids, dout, dtable, n, vocab, dim);
  }

  void conv1d_forward(const ops::Conv1dShape& s, const T* x, const T* w, const T* bias, T* y) override {
    count("conv_macs", double(s.B) * s.L * s.D * s.K);
    ops::conv1d_causal_forward(s, x, w, bias, y);
  }
  void conv1d_backward(const ops::Conv1dShape& s, const T* dy, const T* x, const T* w, T* dx, T* dw,
                       T* dbias) override {
    count("conv_macs", double(s.B) * s.L * s.D * s.K * ((dx ? 1 : 0) + (dw ? 1 : 0)));
    ops::conv1d_causal_backward(s, dy, x, w, dx, dw, dbias);
  }
  void conv1d_silu_forward(const ops::Conv1dShape& s, const T* x, const T* w, const T* bias,
                           T* y) override {
    count("conv_macs", double(s.B) * s.L * s.D * s.K);
    ops::conv1d_silu_forward(s, x, w, bias, y);
  }
  void conv1d_silu_backward(const ops::Conv1dShape& s, const T* dy, const T* x, const T* w,
                            const T* bias, T* dx, T* dw, T* dbias) override {
    // The model's work, the dX and dW products (the recomputed forward is
    // not counted, as the scan's recompute is not).
    count("conv_macs", double(s.B) * s.L * s.D * s.K * 2);
    ops::conv1d_silu_backward(s, dy, x, w, bias, dx, dw, dbias);
  }
  void conv1d_step(int B, int D, int K, const T* x_t, T* state, const T* w, const T* bias, T* y_t) override {
    ops::conv1d_causal_step(B, D, K, x_t, state, w, bias, y_t);
  }
  size_t scan_states_size(int b, int l, int d, int n) override {
    return ops::selective_scan_states_size(b, l, d, n);
  }
  void selective_scan_forward(const ops::SelectiveScanParams<T>& p, T* out, T* states) override {
    count("scan_updates", double(p.batch) * p.len * p.dim * p.dstate);
    ops::selective_scan_forward(p, out, states, static_cast<T*>(nullptr));
  }
  void selective_scan_backward(const ops::SelectiveScanParams<T>& p, const T* states, const T* dout,
                               const ops::SelectiveScanGrads<T>& g) override {
    count("scan_updates", double(p.batch) * p.len * p.dim * p.dstate);
    ops::selective_scan_backward(p, states, dout, g);
  }
  void selective_scan_step(int batch, int dim, int dstate, const T* u_t, const T* delta_t, const T* A,
                           const T* B_t, const T* C_t, const T* Dskip, const T* z_t, T* state,
                           T* out_t) override {
    ops::selective_scan_step(batch, dim, dstate, u_t, delta_t, A, B_t, C_t, Dskip, z_t, state, out_t);
  }

  void attention_forward(const ops::AttentionParams<T>& p) override {
    // q.k and p v over the visible pairs
    count("attention_macs", double(p.batch) * p.heads * 2 * visible_pairs(p) * p.head_dim);
    ops::attention_forward(p);
  }
  void attention_backward(const ops::AttentionParams<T>& p, const T* dout, T* dq, T* dk, T* dv) override {
    // per visible pair: q.k (recomputed), dO.v, dV, dQ and dK; per query: dO.O
    count("attention_macs", double(p.batch) * p.heads *
                                (5 * visible_pairs(p) + double(p.len_q)) * p.head_dim);
    ops::attention_backward(p, dout, dq, dk, dv);
  }
  void rope_forward(const ops::RopeShape& s, const T* x, T* y) override { ops::rope_forward(s, x, y); }
  void rope_backward(const ops::RopeShape& s, const T* dy, T* dx) override { ops::rope_backward(s, dy, dx); }

  void fft_conv_forward(const ops::FftConvShape& s, const T* u, const T* K, const T* Krev, T* y) override {
    // the kernels' spectra, then per (sequence, channel) a forward and an inverse FFT
    count("fft_transforms", double(s.channels) * (1 + 2.0 * s.batch));
    ops::fft_conv_forward(s, u, K, Krev, y);
  }
  void fft_conv_backward(const ops::FftConvShape& s, const T* dy, const T* u, const T* K, const T* Krev,
                         T* du, T* dK, T* dKrev) override {
    // the kernels' spectra and the inverse FFT of each dK; per (sequence,
    // channel) the FFTs of dy and u and the inverse one of du
    count("fft_transforms", double(s.channels) * (2 + 3.0 * s.batch));
    ops::fft_conv_backward(s, dy, u, K, Krev, du, dK, dKrev);
  }
  void ssm_diag_prepare(int H, int N2, const T* log_dt, const T* log_A_real, const T* A_imag, T* dt,
                        T* A) override {
    ops::ssm_diag_prepare(H, N2, log_dt, log_A_real, A_imag, dt, A);
  }
  void ssm_diag_prepare_backward(int H, int N2, const T* dt, const T* A, const T* ddt, const T* dA,
                                 T* g_log_dt, T* g_log_A_real, T* g_A_imag) override {
    ops::ssm_diag_prepare_backward(H, N2, dt, A, ddt, dA, g_log_dt, g_log_A_real, g_A_imag);
  }
  void s4d_kernel_forward(const ops::S4DKernelShape& s, const T* dt, const T* A, const T* C, T* K) override {
    count("kernel_terms", double(s.copies) * s.channels * s.half_state * s.len);
    ops::s4d_kernel_forward(s, dt, cx(A), cx(C), K);
  }
  void s4d_kernel_backward(const ops::S4DKernelShape& s, const T* dt, const T* A, const T* C, const T* dK,
                           T* ddt, T* dA, T* dC) override {
    count("kernel_terms", double(s.copies) * s.channels * s.half_state * s.len);
    ops::s4d_kernel_backward(s, dt, cx(A), cx(C), dK, ddt, cx(dA), cx(dC));
  }
  void s4d_step(const ops::S4DKernelShape& s, int batch, const T* dt, const T* A, const T* C, const T* u,
                T* state, T* y) override {
    ops::s4d_step(s, batch, dt, cx(A), cx(C), u, cx(state), y);
  }
  void dplr_kernel_forward(const ops::DplrKernelShape& s, const T* dt, const T* Lambda, const T* P,
                           const T* B, const T* C, T* K) override {
    count("kernel_terms", double(s.copies) * s.channels * s.half_state * s.len);
    ops::dplr_kernel_forward(s, dt, cx(Lambda), cx(P), cx(B), cx(C), K);
  }
  void dplr_kernel_backward(const ops::DplrKernelShape& s, const T* dt, const T* Lambda, const T* P,
                            const T* B, const T* C, const T* dK, T* ddt, T* dLambda, T* dP, T* dB,
                            T* dC) override {
    count("kernel_terms", double(s.copies) * s.channels * s.half_state * s.len);
    ops::dplr_kernel_backward(s, dt, cx(Lambda), cx(P), cx(B), cx(C), dK, ddt, cx(dLambda), cx(dP),
                              cx(dB), cx(dC));
  }
  void dplr_step(const ops::DplrKernelShape& s, int batch, const T* dt, const T* Lambda, const T* P,
                 const T* B, const T* C, const T* u, T* state, T* y) override {
    ops::dplr_step(s, batch, dt, cx(Lambda), cx(P), cx(B), cx(C), u, cx(state), y);
  }

  void pair_features_forward(const T* u, const T* v, T* f, int pairs, int d) override {
    ops::pair_features_forward(u, v, f, pairs, d);
  }
  void pair_features_backward(const T* df, const T* u, const T* v, T* du, T* dv, int pairs, int d) override {
    ops::pair_features_backward(df, u, v, du, dv, pairs, d);
  }
  void sequence_pool_forward(const T* h, const int32_t* lengths, T* pooled, int B, int L, int D,
                             bool last) override {
    ops::sequence_pool_forward(h, lengths, pooled, B, L, D, last);
  }
  void sequence_pool_backward(const T* dpooled, const int32_t* lengths, T* dh, int B, int L, int D,
                              bool last) override {
    ops::sequence_pool_backward(dpooled, lengths, dh, B, L, D, last);
  }
  double softmax_xent(const T* logits, const int32_t* targets, T* losses, T* dlogits, int rows, int V,
                      T grad_scale) override {
    return ops::softmax_xent<T>(logits, targets, losses, dlogits, rows, V, grad_scale);
  }

  void adamw_update(T* p, const T* g, T* m, T* v, size_t n, const ops::AdamWHyper& h, long step,
                    bool decay) override {
    ops::adamw_update(p, g, m, v, n, h, step, decay);
  }
  double global_norm(const T* g, size_t n) override { return ops::global_norm(g, n); }
  double clip_grad_norm(T* g, size_t n, double max_norm) override { return ops::clip_grad_norm(g, n, max_norm); }
};

}  // namespace

OpCounter* op_counter() { return g_op_counter.load(std::memory_order_relaxed); }
void set_op_counter(OpCounter* c) { g_op_counter.store(c, std::memory_order_relaxed); }

#ifdef MAMBAKIT_HAVE_CUDA
// cuda_backend.cpp
Backend<float>& cuda_backend_float();
bool cuda_backend_usable(std::string* why);
#endif

bool cuda_backend_available(std::string* why) {
#ifdef MAMBAKIT_HAVE_CUDA
  return cuda_backend_usable(why);
#else
  if (why) *why = "this build has no CUDA support (configure with -DMAMBAKIT_CUDA=ON where nvcc is installed)";
  return false;
#endif
}

template <>
Backend<float>& backend_for<float>(Device d) {
  static CpuBackend<float> cpu;
  if (d == Device::cpu) return cpu;
  std::string why;
  if (!cuda_backend_available(&why)) throw Error("device cuda: " + why);
#ifdef MAMBAKIT_HAVE_CUDA
  return cuda_backend_float();
#else
  throw Error("device cuda: " + why);
#endif
}

template <>
Backend<double>& backend_for<double>(Device d) {
  static CpuBackend<double> cpu;
  if (d == Device::cpu) return cpu;
  throw Error("device cuda: double precision runs on the CPU only (the CUDA backend is fp32)");
}

}  // namespace mk
