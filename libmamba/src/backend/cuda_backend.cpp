// The CUDA backend (fp32): every op of the table is the CUDA kernel of the
// same name (libmamba/src/kernels/cuda, headers mambakit/ops/cuda/*.h), on
// the default stream, so ops run in the order the layers issue them and only
// the scalar-returning ones (loss, norm) wait for the device.
//
// One adaptation lives here: the fused selective scan wants time contiguous
// ((B, D, L) and (B, N, L)) while layers keep the CPU's (B, L, D) rows, so
// the scan transposes its inputs in and its outputs back (a few extra passes
// over (B, L, D) against the scan's L*N work per channel).
#ifdef MAMBAKIT_HAVE_CUDA

#include <cuda_runtime_api.h>

#include <string>

#include "mambakit/backend.h"
#include "mambakit/cuda/device.h"
#include "mambakit/error.h"
#include "mambakit/ops/cuda/activations.h"
#include "mambakit/ops/cuda/attention.h"
#include "mambakit/ops/cuda/conv1d.h"
#include "mambakit/ops/cuda/elementwise.h"
#include "mambakit/ops/cuda/embedding.h"
#include "mambakit/ops/cuda/matmul.h"
#include "mambakit/ops/cuda/optim.h"
#include "mambakit/ops/cuda/rmsnorm.h"
#include "mambakit/ops/cuda/rope.h"
#include "mambakit/ops/cuda/selective_scan.h"
#include "mambakit/ops/cuda/softmax_xent.h"
#include "mambakit/ops/cuda/ssm_conv.h"

namespace mk {

namespace {

namespace cu = ops::cuda;
using mk::cuda::DeviceBuffer;

class CudaBackend final : public Backend<float> {
  bool bf16_ = false;

 public:
  Device device() const override { return Device::cuda; }
  void* alloc_bytes(size_t b) override {
    void* p = mk::cuda::device_alloc(b ? b : 1);
    mk::cuda::memset_async(p, 0, b);
    return p;
  }
  void free_bytes(void* p) override { mk::cuda::device_free(p); }
  void upload_bytes(void* d, const void* s, size_t b) override { mk::cuda::copy_to_device(d, s, b); }
  void download_bytes(void* d, const void* s, size_t b) override { mk::cuda::copy_to_host(d, s, b); }
  void copy_bytes(void* d, const void* s, size_t b) override {
    MK_CUDA_CHECK(cudaMemcpyAsync(d, s, b, cudaMemcpyDeviceToDevice, nullptr));
  }
  void zero_bytes(void* p, size_t b) override { mk::cuda::memset_async(p, 0, b); }
  void synchronize() override { mk::cuda::synchronize(); }

  void add(const float* a, const float* b, float* y, size_t n) override { cu::add(a, b, y, n); }
  void axpy(float alpha, const float* x, float* y, size_t n) override { cu::axpy(alpha, x, y, n); }
  void scale(float alpha, float* y, size_t n) override { cu::scale(alpha, y, n); }
  void neg_exp(const float* x, float* y, size_t n) override { cu::neg_exp(x, y, n); }
  void mul_acc(const float* a, const float* b, float* y, size_t n) override { cu::mul_acc(a, b, y, n); }
  void copy_cols(const float* src, size_t rows, size_t ss, size_t c0, size_t w, float* dst, size_t ds,
                 size_t d0) override {
    cu::copy_cols(src, rows, ss, c0, w, dst, ds, d0);
  }
  void reverse_time(const float* x, float* y, size_t batch, size_t len, size_t width) override {
    cu::reverse_time(x, y, batch, len, width);
  }
  void channel_scale_forward(const float* x, const float* D, float* y, size_t rows, size_t H) override {
    cu::channel_scale_forward(x, D, y, rows, H);
  }
  void channel_scale_backward(const float* dy, const float* x, const float* D, float* dx, float* dD,
                              size_t rows, size_t H) override {
    cu::channel_scale_backward(dy, x, D, dx, dD, rows, H);
  }

  void silu_forward(const float* x, float* y, size_t n) override { cu::silu_forward(x, y, n); }
  void silu_backward(const float* dy, const float* x, float* dx, size_t n) override {
    cu::silu_backward(dy, x, dx, n);
  }
  void softplus_forward(const float* x, float* y, size_t n) override { cu::softplus_forward(x, y, n); }
  void softplus_backward(const float* dy, const float* x, float* dx, size_t n) override {
    cu::softplus_backward(dy, x, dx, n);
  }
  void gelu_forward(const float* x, float* y, size_t n) override { cu::gelu_forward(x, y, n); }
  void gelu_backward(const float* dy, const float* x, float* dx, size_t n) override {
    cu::gelu_backward(dy, x, dx, n);
  }
  void glu_forward(const float* x, float* y, size_t rows, size_t w) override { cu::glu_forward(x, y, rows, w); }
  void glu_backward(const float* dy, const float* x, float* dx, size_t rows, size_t w) override {
    cu::glu_backward(dy, x, dx, rows, w);
  }
  void swiglu_forward(const float* g, const float* u, float* y, size_t n) override {
    cu::swiglu_forward(g, u, y, n);
  }
  void swiglu_backward(const float* dy, const float* g, const float* u, float* dg, float* du,
                       size_t n) override {
    cu::swiglu_backward(dy, g, u, dg, du, n);
  }

  bool set_bf16_matmuls(bool on) override {
    bf16_ = on;
    return true;
  }
  bool bf16_matmuls() const override { return bf16_; }
  void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
            int ldb, float beta, float* C, int ldc) override {
    if (bf16_)
      cu::gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
      cu::gemm<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void linear_forward(const float* x, const float* W, const float* b, float* y, int rows, int in,
                      int out) override {
    if (bf16_)
      cu::linear_forward_bf16(x, W, b, y, rows, in, out);
    else
      cu::linear_forward<float>(x, W, b, y, rows, in, out);
  }
  void linear_backward(const float* dy, const float* x, const float* W, float* dx, float* dW, float* db,
                       int rows, int in, int out) override {
    if (bf16_)
      cu::linear_backward_bf16(dy, x, W, dx, dW, db, rows, in, out);
    else
      cu::linear_backward<float>(dy, x, W, dx, dW, db, rows, in, out);
  }
  // The product and the softplus apart (cuBLAS does the product).
  void linear_softplus_forward(const float* x, const float* W, const float* b, float* y, int rows,
                               int in, int out) override {
    linear_forward(x, W, b, y, rows, in, out);
    cu::softplus_forward(y, y, size_t(rows) * out);
  }
  void linear_softplus_backward(const float* dy, const float* y, const float* x, const float* W,
                                float* dx, float* dW, float* db, int rows, int in,
                                int out) override {
    DeviceBuffer<float> g(size_t(rows) * out);
    cu::softplus_backward_from_output(dy, y, g.data(), g.size());
    linear_backward(g.data(), x, W, dx, dW, db, rows, in, out);
  }
  void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int rows, int dim,
                       float eps) override {
    cu::rmsnorm_forward<float>(x, w, y, rstd, rows, dim, eps);
  }
  void rmsnorm_backward(const float* dy, const float* x, const float* w, const float* rstd, float* dx,
                        float* dw, int rows, int dim) override {
    cu::rmsnorm_backward<float>(dy, x, w, rstd, dx, dw, rows, dim);
  }
  void embedding_forward(const int32_t* ids, const float* table, float* out, int n, int vocab,
                         int dim) override {
    cu::embedding_forward<float>(ids, table, out, n, vocab, dim);
  }
  void embedding_backward(const int32_t* ids, const float* dout, float* dtable, int n, int vocab,
                          int dim) override {
    cu::embedding_backward<float>(ids, dout, dtable, n, vocab, dim);
  }

  void conv1d_forward(const ops::Conv1dShape& s, const float* x, const float* w, const float* bias,
                      float* y) override {
    cu::conv1d_causal_forward<float>(s, x, w, bias, y);
  }
  void conv1d_backward(const ops::Conv1dShape& s, const float* dy, const float* x, const float* w,
                       float* dx, float* dw, float* dbias) override {
    cu::conv1d_causal_backward<float>(s, dy, x, w, dx, dw, dbias);
  }
  void conv1d_silu_forward(const ops::Conv1dShape& s, const float* x, const float* w,
                           const float* bias, float* y) override {
    cu::conv1d_causal_silu_forward<float>(s, x, w, bias, y);
  }
  void conv1d_silu_backward(const ops::Conv1dShape& s, const float* dy, const float* x,
                            const float* w, const float* bias, float* dx, float* dw,
                            float* dbias) override {
    cu::conv1d_causal_silu_backward<float>(s, dy, x, w, bias, dx, dw, dbias);
  }
  void conv1d_step(int B, int D, int K, const float* x_t, float* state, const float* w, const float* bias,
                   float* y_t) override {
    cu::conv1d_causal_step<float>(B, D, K, x_t, state, w, bias, y_t);
  }

  size_t scan_states_size(int b, int l, int d, int n) override {
    return cu::selective_scan_states_size(b, l, d, n);
  }
  // Time-major copies of the scan's sequence inputs.
  struct ScanInputs {
    DeviceBuffer<float> u, delta, z, B, C;
    cu::SelectiveScanParams<float> p;
  };
  static void to_time_major(const ops::SelectiveScanParams<float>& p, ScanInputs& s) {
    const size_t BL = size_t(p.batch) * p.len, nd = BL * p.dim, nn = BL * p.dstate;
    s.u = DeviceBuffer<float>(nd);
    s.delta = DeviceBuffer<float>(nd);
    s.B = DeviceBuffer<float>(nn);
    s.C = DeviceBuffer<float>(nn);
    cu::transpose(p.u, s.u.data(), p.batch, p.len, p.dim);
    cu::transpose(p.delta, s.delta.data(), p.batch, p.len, p.dim);
    cu::transpose(p.Bm, s.B.data(), p.batch, p.len, p.dstate);
    cu::transpose(p.Cm, s.C.data(), p.batch, p.len, p.dstate);
    if (p.z) {
      s.z = DeviceBuffer<float>(nd);
      cu::transpose(p.z, s.z.data(), p.batch, p.len, p.dim);
    }
    s.p.batch = p.batch; s.p.len = p.len; s.p.dim = p.dim; s.p.dstate = p.dstate;
    s.p.u = s.u.data(); s.p.delta = s.delta.data(); s.p.A = p.A;
    s.p.Bm = s.B.data(); s.p.Cm = s.C.data(); s.p.Dskip = p.Dskip;
    s.p.z = p.z ? s.z.data() : nullptr;
  }
  void selective_scan_forward(const ops::SelectiveScanParams<float>& p, float* out,
                              float* states) override {
    ScanInputs s;
    to_time_major(p, s);
    DeviceBuffer<float> y(size_t(p.batch) * p.len * p.dim);
    cu::selective_scan_forward(s.p, y.data(), states, nullptr);
    cu::transpose(y.data(), out, p.batch, p.dim, p.len);
  }
  void selective_scan_backward(const ops::SelectiveScanParams<float>& p, const float* states,
                               const float* dout, const ops::SelectiveScanGrads<float>& g) override {
    ScanInputs s;
    to_time_major(p, s);
    const size_t nd = size_t(p.batch) * p.len * p.dim, nn = size_t(p.batch) * p.len * p.dstate;
    DeviceBuffer<float> dy(nd), du(nd), ddelta(nd), dz(p.z ? nd : 0), dB(nn), dC(nn);
    cu::transpose(dout, dy.data(), p.batch, p.len, p.dim);
    cu::SelectiveScanGrads<float> tg;
    tg.du = du.data(); tg.ddelta = ddelta.data(); tg.dA = g.dA; tg.dB = dB.data(); tg.dC = dC.data();
    tg.dD = g.dD; tg.dz = p.z ? dz.data() : nullptr;
    cu::selective_scan_backward(s.p, states, dy.data(), tg);
    cu::transpose(du.data(), g.du, p.batch, p.dim, p.len);
    cu::transpose(ddelta.data(), g.ddelta, p.batch, p.dim, p.len);
    if (p.z && g.dz) cu::transpose(dz.data(), g.dz, p.batch, p.dim, p.len);
    cu::transpose(dB.data(), g.dB, p.batch, p.dstate, p.len);
    cu::transpose(dC.data(), g.dC, p.batch, p.dstate, p.len);
  }
  void selective_scan_step(int batch, int dim, int dstate, const float* u_t, const float* delta_t,
                           const float* A, const float* B_t, const float* C_t, const float* Dskip,
                           const float* z_t, float* state, float* out_t) override {
    cu::selective_scan_step<float>(batch, dim, dstate, u_t, delta_t, A, B_t, C_t, Dskip, z_t, state,
                                   out_t);
  }

  void attention_forward(const ops::AttentionParams<float>& p) override { cu::attention_forward(p); }
  void attention_backward(const ops::AttentionParams<float>& p, const float* dout, float* dq, float* dk,
                          float* dv) override {
    cu::attention_backward(p, dout, dq, dk, dv);
  }
  void rope_forward(const ops::RopeShape& s, const float* x, float* y) override { cu::rope_forward(s, x, y); }
  void rope_backward(const ops::RopeShape& s, const float* dy, float* dx) override {
    cu::rope_backward(s, dy, dx);
  }

  void fft_conv_forward(const ops::FftConvShape& s, const float* u, const float* K, const float* Krev,
                        float* y) override {
    cu::fft_conv_forward(s, u, K, Krev, y);
  }
  void fft_conv_backward(const ops::FftConvShape& s, const float* dy, const float* u, const float* K,
                         const float* Krev, float* du, float* dK, float* dKrev) override {
    cu::fft_conv_backward(s, dy, u, K, Krev, du, dK, dKrev);
  }
  void ssm_diag_prepare(int H, int N2, const float* log_dt, const float* log_A_real, const float* A_imag,
                        float* dt, float* A) override {
    cu::ssm_diag_prepare(H, N2, log_dt, log_A_real, A_imag, dt, A);
  }
  void ssm_diag_prepare_backward(int H, int N2, const float* dt, const float* A, const float* ddt,
                                 const float* dA, float* g_log_dt, float* g_log_A_real,
                                 float* g_A_imag) override {
    cu::ssm_diag_prepare_backward(H, N2, dt, A, ddt, dA, g_log_dt, g_log_A_real, g_A_imag);
  }
  void s4d_kernel_forward(const ops::S4DKernelShape& s, const float* dt, const float* A, const float* C,
                          float* K) override {
    cu::s4d_kernel_forward(s, dt, A, C, K);
  }
  void s4d_kernel_backward(const ops::S4DKernelShape& s, const float* dt, const float* A, const float* C,
                           const float* dK, float* ddt, float* dA, float* dC) override {
    cu::s4d_kernel_backward(s, dt, A, C, dK, ddt, dA, dC);
  }
  void s4d_step(const ops::S4DKernelShape& s, int batch, const float* dt, const float* A, const float* C,
                const float* u, float* state, float* y) override {
    cu::s4d_step(s, batch, dt, A, C, u, state, y);
  }
  void dplr_kernel_forward(const ops::DplrKernelShape& s, const float* dt, const float* Lambda,
                           const float* P, const float* B, const float* C, float* K) override {
    cu::dplr_kernel_forward(s, dt, Lambda, P, B, C, K);
  }
  void dplr_kernel_backward(const ops::DplrKernelShape& s, const float* dt, const float* Lambda,
                            const float* P, const float* B, const float* C, const float* dK, float* ddt,
                            float* dLambda, float* dP, float* dB, float* dC) override {
    cu::dplr_kernel_backward(s, dt, Lambda, P, B, C, dK, ddt, dLambda, dP, dB, dC);
  }
  void dplr_step(const ops::DplrKernelShape& s, int batch, const float* dt, const float* Lambda,
                 const float* P, const float* B, const float* C, const float* u, float* state,
                 float* y) override {
    cu::dplr_step(s, batch, dt, Lambda, P, B, C, u, state, y);
  }

  void pair_features_forward(const float* u, const float* v, float* f, int pairs, int d) override {
    cu::pair_features_forward(u, v, f, pairs, d);
  }
  void pair_features_backward(const float* df, const float* u, const float* v, float* du, float* dv,
                              int pairs, int d) override {
    cu::pair_features_backward(df, u, v, du, dv, pairs, d);
  }
  void sequence_pool_forward(const float* h, const int32_t* lengths, float* pooled, int B, int L, int D,
                             bool last) override {
    cu::sequence_pool_forward(h, lengths, pooled, B, L, D, last);
  }
  void sequence_pool_backward(const float* dpooled, const int32_t* lengths, float* dh, int B, int L,
                              int D, bool last) override {
    cu::sequence_pool_backward(dpooled, lengths, dh, B, L, D, last);
  }
  double softmax_xent(const float* logits, const int32_t* targets, float* losses, float* dlogits, int rows,
                      int V, float grad_scale) override {
    return cu::softmax_xent<float>(logits, targets, losses, dlogits, rows, V, grad_scale);
  }

  void adamw_update(float* p, const float* g, float* m, float* v, size_t n, const ops::AdamWHyper& h,
                    long step, bool decay) override {
    cu::adamw_update(p, g, m, v, n, h, step, decay);
  }
  double global_norm(const float* g, size_t n) override { return cu::global_norm(g, n); }
  double clip_grad_norm(float* g, size_t n, double max_norm) override {
    return cu::clip_grad_norm(g, n, max_norm);
  }
};

}  // namespace

bool cuda_backend_usable(std::string* why) {
  if (mk::cuda::device_available()) return true;
  if (why) *why = "no CUDA GPU is visible (" + mk::cuda::device_unavailable_reason() + ")";
  return false;
}

Backend<float>& cuda_backend_float() {
  static CudaBackend be;
  return be;
}

}  // namespace mk

#endif  // MAMBAKIT_HAVE_CUDA
