// The seam between layers and kernels: one op table (Backend<T>) that the CPU
// and CUDA backends both implement, in the spirit of ggml's backends and
// llm.c's twin files. Layers and models never call a kernel directly: they
// ask their ParamStore for its backend and call ops on it, so the forward and
// backward of a layer read the same whatever the device.
//
// Memory. Every pointer an op takes lives on the backend's device. Buf<E> is
// a growable array on one device (a std::vector that knows where it lives);
// the flat parameter, gradient and optimizer buffers, every activation a
// layer saves and every recurrent state are Bufs. Host data crosses only at
// the model's edge (token ids and targets in, logits and scalars out).
//
// Complex arrays (S4/S4D) are passed as interleaved (re, im) pairs of T: the
// memory of std::complex<T>, which device code cannot use.
//
// The CPU backend (T = float, double) is the reference every other backend
// is tested against. The CUDA backend is fp32 only and exists when the build
// has CUDA and a device is present; backend_for() says why not otherwise.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mambakit/ops/attention.h"
#include "mambakit/ops/conv1d.h"
#include "mambakit/ops/dplr_kernel.h"
#include "mambakit/ops/fft_conv.h"
#include "mambakit/ops/optim.h"
#include "mambakit/ops/rope.h"
#include "mambakit/ops/s4d_kernel.h"
#include "mambakit/ops/selective_scan.h"
#include "mambakit/tensor.h"

namespace mk {

Device parse_device(const std::string& name);  // "cpu" | "cuda"; throws mk::Error otherwise
const char* device_name(Device d);

// Raw memory of one device.
class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  virtual Device device() const = 0;
  virtual void* alloc_bytes(size_t bytes) = 0;  // zero-filled
  virtual void free_bytes(void* p) = 0;
  virtual void upload_bytes(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download_bytes(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy_bytes(void* dst, const void* src, size_t bytes) = 0;
  virtual void zero_bytes(void* p, size_t bytes) = 0;
  // Waits for queued work (no-op on the CPU).
  virtual void synchronize() {}
};

// Memory of the CPU (always there).
DeviceMemory& cpu_memory();

// A growable array of E on one device. resize() keeps the contents (like
// std::vector) and zero-fills what it adds; capacity grows geometrically, so
// a KV cache grown token by token costs amortised O(1) copies.
template <typename E>
class Buf {
 public:
  Buf() = default;
  explicit Buf(DeviceMemory& mem, size_t n = 0) : mem_(&mem) { resize(n); }
  ~Buf() { release(); }
  Buf(const Buf& o) : mem_(o.mem_) {
    resize(o.n_);
    if (n_) mem_->copy_bytes(p_, o.p_, n_ * sizeof(E));
  }
  Buf& operator=(const Buf& o) {
    if (this != &o) {
      Buf tmp(o);
      swap(tmp);
    }
    return *this;
  }
  Buf(Buf&& o) noexcept { swap(o); }
  Buf& operator=(Buf&& o) noexcept {
    if (this != &o) {
      release();
      swap(o);
    }
    return *this;
  }
  void swap(Buf& o) noexcept {
    std::swap(mem_, o.mem_);
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(cap_, o.cap_);
  }

  // Moves to another device's memory (contents copied through the host when
  // the devices differ).
  void bind(DeviceMemory& mem);
  DeviceMemory* memory() const { return mem_; }
  // Sets the device (if not yet bound or different: contents move) and size.
  void resize(DeviceMemory& mem, size_t n) {
    if (mem_ != &mem) bind(mem);
    resize(n);
  }
  void resize(size_t n);
  // Size n, every element zero.
  void assign_zero(DeviceMemory& mem, size_t n) {
    resize(mem, n);
    if (n_) mem_->zero_bytes(p_, n_ * sizeof(E));
  }
  void clear() { n_ = 0; }

  E* data() { return p_; }
  const E* data() const { return p_; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }

  std::vector<E> to_host() const {
    std::vector<E> h(n_);
    if (n_) mem_->download_bytes(h.data(), p_, n_ * sizeof(E));
    return h;
  }
  void to_host(E* dst) const {
    if (n_) mem_->download_bytes(dst, p_, n_ * sizeof(E));
  }
  // Size n, contents from host memory.
  void from_host(DeviceMemory& mem, const E* src, size_t n) {
    resize(mem, n);
    if (n) mem_->upload_bytes(p_, src, n * sizeof(E));
  }

 private:
  void release() {
    if (p_) mem_->free_bytes(p_);
    p_ = nullptr;
    n_ = cap_ = 0;
  }
  DeviceMemory* mem_ = nullptr;
  E* p_ = nullptr;
  size_t n_ = 0, cap_ = 0;
};

// The op table. Shapes and semantics are those of the CPU ops named in the
// comments (mambakit/ops/*.h); "written" outputs are overwritten,
// "accumulated" ones added to.
template <typename T>
class Backend : public DeviceMemory {
 public:
  // Matrix products with bf16 operands (fp32 accumulation, fp32 data and
  // master weights): train.precision bf16. Returns false where the backend
  // has no such mode (the CPU), which then stays in fp32. The setting
  // belongs to the backend, so it holds for every model of the process on
  // that device (the trainer sets it from train.precision).
  virtual bool set_bf16_matmuls(bool on) { return !on; }
  virtual bool bf16_matmuls() const { return false; }

  // --- elementwise (ops/elementwise.h) ------------------------------------
  virtual void add(const T* a, const T* b, T* y, size_t n) = 0;        // y = a + b
  virtual void axpy(T alpha, const T* x, T* y, size_t n) = 0;         // y += alpha x
  virtual void scale(T alpha, T* y, size_t n) = 0;                    // y *= alpha
  virtual void neg_exp(const T* x, T* y, size_t n) = 0;               // y = -exp(x)
  virtual void mul_acc(const T* a, const T* b, T* y, size_t n) = 0;   // y += a b
  // dst[r, d0 + j] = src[r, c0 + j], j < w
  virtual void copy_cols(const T* src, size_t rows, size_t src_stride, size_t c0, size_t w, T* dst,
                         size_t dst_stride, size_t d0) = 0;
  // y[b, len-1-t, :] = x[b, t, :]  (batch, len, width); not in place
  virtual void reverse_time(const T* x, T* y, size_t batch, size_t len, size_t width) = 0;
  virtual void channel_scale_forward(const T* x, const T* D, T* y, size_t rows, size_t H) = 0;
  virtual void channel_scale_backward(const T* dy, const T* x, const T* D, T* dx, T* dD,
                                      size_t rows, size_t H) = 0;
  // --- activations (ops/activations.h, ops/gated.h) -------------------------
  virtual void silu_forward(const T* x, T* y, size_t n) = 0;
  virtual void silu_backward(const T* dy, const T* x, T* dx, size_t n) = 0;
  virtual void softplus_forward(const T* x, T* y, size_t n) = 0;
  virtual void softplus_backward(const T* dy, const T* x, T* dx, size_t n) = 0;
  virtual void gelu_forward(const T* x, T* y, size_t n) = 0;
  virtual void gelu_backward(const T* dy, const T* x, T* dx, size_t n) = 0;
  virtual void glu_forward(const T* x, T* y, size_t rows, size_t w) = 0;
  virtual void glu_backward(const T* dy, const T* x, T* dx, size_t rows, size_t w) = 0;
  virtual void swiglu_forward(const T* g, const T* u, T* y, size_t n) = 0;
  virtual void swiglu_backward(const T* dy, const T* g, const T* u, T* dg, T* du, size_t n) = 0;
  // --- dense (ops/matmul.h, ops/rmsnorm.h, ops/embedding.h) -----------------
  virtual void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
                    const T* B, int ldb, T beta, T* C, int ldc) = 0;
  virtual void linear_forward(const T* x, const T* W, const T* b, T* y, int rows, int in,
                              int out) = 0;
  virtual void linear_backward(const T* dy, const T* x, const T* W, T* dx, T* dW, T* db, int rows,
                               int in, int out) = 0;
  // y = softplus(x W^T + b); the backward takes the forward's y
  // (ops/linear_softplus.h).
  virtual void linear_softplus_forward(const T* x, const T* W, const T* b, T* y, int rows, int in,
                                       int out) = 0;
  virtual void linear_softplus_backward(const T* dy, const T* y, const T* x, const T* W, T* dx,
                                        T* dW, T* db, int rows, int in, int out) = 0;
  virtual void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, int rows, int dim,
                               T eps) = 0;
  virtual void rmsnorm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw,
                                int rows, int dim) = 0;
  virtual void embedding_forward(const int32_t* ids, const T* table, T* out, int n, int vocab,
                                 int dim) = 0;
  virtual void embedding_backward(const int32_t* ids, const T* dout, T* dtable, int n, int vocab,
                                  int dim) = 0;
  // --- Mamba (ops/conv1d.h, ops/selective_scan.h; layouts of the CPU op) ----
  virtual void conv1d_forward(const ops::Conv1dShape& s, const T* x, const T* w, const T* bias,
                              T* y) = 0;
  virtual void conv1d_backward(const ops::Conv1dShape& s, const T* dy, const T* x, const T* w,
                               T* dx, T* dw, T* dbias) = 0;
  // y = silu(conv(x) + bias); the backward recomputes the pre-activation.
  virtual void conv1d_silu_forward(const ops::Conv1dShape& s, const T* x, const T* w,
                                   const T* bias, T* y) = 0;
  virtual void conv1d_silu_backward(const ops::Conv1dShape& s, const T* dy, const T* x,
                                    const T* w, const T* bias, T* dx, T* dw, T* dbias) = 0;
  virtual void conv1d_step(int B, int D, int K, const T* x_t, T* state, const T* w,
                           const T* bias, T* y_t) = 0;
  // Elements of the chunk-state buffer the forward fills for the backward.
  virtual size_t scan_states_size(int batch, int len, int dim, int dstate) = 0;
  virtual void selective_scan_forward(const ops::SelectiveScanParams<T>& p, T* out,
                                      T* chunk_states) = 0;
  virtual void selective_scan_backward(const ops::SelectiveScanParams<T>& p,
                                       const T* chunk_states, const T* dout,
                                       const ops::SelectiveScanGrads<T>& g) = 0;
  virtual void selective_scan_step(int batch, int dim, int dstate, const T* u_t, const T* delta_t,
                                   const T* A, const T* B_t, const T* C_t, const T* Dskip,
                                   const T* z_t, T* state, T* out_t) = 0;
  // --- attention (ops/attention.h, ops/rope.h) -------------------------------
  virtual void attention_forward(const ops::AttentionParams<T>& p) = 0;
  virtual void attention_backward(const ops::AttentionParams<T>& p, const T* dout, T* dq, T* dk,
                                  T* dv) = 0;
  virtual void rope_forward(const ops::RopeShape& s, const T* x, T* y) = 0;
  virtual void rope_backward(const ops::RopeShape& s, const T* dy, T* dx) = 0;
  // --- S4 / S4D (ops/fft_conv.h, s4d_kernel.h, dplr_kernel.h, ssm_prepare.h) -
  virtual void fft_conv_forward(const ops::FftConvShape& s, const T* u, const T* K,
                                const T* Krev, T* y) = 0;
  virtual void fft_conv_backward(const ops::FftConvShape& s, const T* dy, const T* u, const T* K,
                                 const T* Krev, T* du, T* dK, T* dKrev) = 0;
  virtual void ssm_diag_prepare(int H, int N2, const T* log_dt, const T* log_A_real,
                                const T* A_imag, T* dt, T* A) = 0;
  virtual void ssm_diag_prepare_backward(int H, int N2, const T* dt, const T* A, const T* ddt,
                                         const T* dA, T* g_log_dt, T* g_log_A_real,
                                         T* g_A_imag) = 0;
  virtual void s4d_kernel_forward(const ops::S4DKernelShape& s, const T* dt, const T* A,
                                  const T* C, T* K) = 0;
  virtual void s4d_kernel_backward(const ops::S4DKernelShape& s, const T* dt, const T* A,
                                   const T* C, const T* dK, T* ddt, T* dA, T* dC) = 0;
  virtual void s4d_step(const ops::S4DKernelShape& s, int batch, const T* dt, const T* A,
                        const T* C, const T* u, T* state, T* y) = 0;
  virtual void dplr_kernel_forward(const ops::DplrKernelShape& s, const T* dt, const T* Lambda,
                                   const T* P, const T* B, const T* C, T* K) = 0;
  virtual void dplr_kernel_backward(const ops::DplrKernelShape& s, const T* dt, const T* Lambda,
                                    const T* P, const T* B, const T* C, const T* dK, T* ddt,
                                    T* dLambda, T* dP, T* dB, T* dC) = 0;
  virtual void dplr_step(const ops::DplrKernelShape& s, int batch, const T* dt, const T* Lambda,
                         const T* P, const T* B, const T* C, const T* u, T* state, T* y) = 0;
  // --- heads (ops/pair_features.h, ops/elementwise.h, ops/softmax_xent.h) ---
  virtual void pair_features_forward(const T* u, const T* v, T* f, int pairs, int d) = 0;
  virtual void pair_features_backward(const T* df, const T* u, const T* v, T* du, T* dv,
                                      int pairs, int d) = 0;
  virtual void sequence_pool_forward(const T* h, const int32_t* lengths, T* pooled, int B, int L,
                                     int D, bool last) = 0;
  virtual void sequence_pool_backward(const T* dpooled, const int32_t* lengths, T* dh, int B,
                                      int L, int D, bool last) = 0;
  // Returns the summed loss (a scalar to the host); dlogits may alias logits.
  virtual double softmax_xent(const T* logits, const int32_t* targets, T* losses, T* dlogits,
                              int rows, int V, T grad_scale) = 0;
  // --- optimizer (ops/optim.h) -----------------------------------------------
  virtual void adamw_update(T* p, const T* g, T* m, T* v, size_t n, const ops::AdamWHyper& h,
                            long step, bool decay) = 0;
  virtual double global_norm(const T* g, size_t n) = 0;
  virtual double clip_grad_norm(T* g, size_t n, double max_norm) = 0;
};

// The backend of a device. CPU: always. CUDA: T = float in a CUDA build with
// a visible device; otherwise throws mk::Error saying why.
template <typename T>
Backend<T>& backend_for(Device d);

// Whether backend_for(Device::cuda) would succeed, and if not, why.
bool cuda_backend_available(std::string* why = nullptr);

extern template class Buf<float>;
extern template class Buf<double>;
extern template class Buf<int32_t>;

}  // namespace mk
