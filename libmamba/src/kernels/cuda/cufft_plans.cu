// The cuFFT plan cache (see cufft_plans.cuh).
#include <cuda_runtime.h>
#include <cufft.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "common.cuh"
#include "cufft_plans.cuh"
#include "mambakit/error.h"
#include "mambakit/ops/cuda/ssm_conv.h"

namespace mk::cuda::detail {

namespace {

const char* cufft_name(cufftResult r) {
  switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "cufftResult";
  }
}

void check_cufft(cufftResult r, const char* what, int n, long long batch) {
  if (r != CUFFT_SUCCESS)
    throw Error(std::string("cuFFT ") + what + " (n=" + std::to_string(n) + ", batch=" +
                std::to_string(batch) + "): " + cufft_name(r) + " (" + std::to_string(int(r)) + ")");
}

struct Plan {
  cufftHandle handle = 0;
  bool made = false;
  std::mutex m;  // serialises SetStream + Exec
  ~Plan() {
    if (made) cufftDestroy(handle);
  }
};

using Key = std::tuple<int, stream_t, int, int, long long>;  // device, stream, kind, n, batch

std::mutex& map_mutex() {
  static std::mutex m;
  return m;
}
std::map<Key, std::unique_ptr<Plan>>& plans() {
  static auto* p = new std::map<Key, std::unique_ptr<Plan>>();  // never destroyed: no teardown
  return *p;                                                     // order issues at exit
}

cufftType type_of(FftKind k) {
  switch (k) {
    case FftKind::R2C: return CUFFT_R2C;
    case FftKind::C2R: return CUFFT_C2R;
    case FftKind::D2Z: return CUFFT_D2Z;
    default: return CUFFT_Z2D;
  }
}

Plan& get_plan(FftKind kind, int n, long long batch, stream_t stream) {
  int device = 0;
  MK_CUDA_CHECK(cudaGetDevice(&device));
  const Key key{device, stream, int(kind), n, batch};
  std::lock_guard<std::mutex> lock(map_mutex());
  auto& m = plans();
  auto it = m.find(key);
  if (it != m.end()) return *it->second;
  auto p = std::make_unique<Plan>();
  check_cufft(cufftCreate(&p->handle), "cufftCreate", n, batch);
  p->made = true;
  const bool to_complex = kind == FftKind::R2C || kind == FftKind::D2Z;
  long long len = n, real_row = n, cplx_row = n / 2 + 1;
  long long in_row = to_complex ? real_row : cplx_row, out_row = to_complex ? cplx_row : real_row;
  size_t work = 0;
  check_cufft(cufftMakePlanMany64(p->handle, 1, &len, &in_row, 1, in_row, &out_row, 1, out_row,
                                  type_of(kind), batch, &work),
              "plan", n, batch);
  Plan& ref = *p;
  m.emplace(key, std::move(p));
  return ref;
}

// Length 1: the transform is the identity (cuFFT may refuse the size).
template <typename R>
__global__ void length_one_kernel(bool to_complex, long long batch, const R* in, R* out) {
  for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < batch;
       b += (long long)gridDim.x * blockDim.x) {
    if (to_complex) {
      out[2 * b] = in[b];
      out[2 * b + 1] = R(0);
    } else {
      out[b] = in[2 * b];
    }
  }
}

}  // namespace

void fft_exec(FftKind kind, int n, long long batch, const void* in, void* out, stream_t stream) {
  MK_CHECK(n >= 1 && batch >= 1, "fft_exec: bad size n=" + std::to_string(n) + ", batch=" +
                                     std::to_string(batch));
  if (n == 1) {
    const bool to_complex = kind == FftKind::R2C || kind == FftKind::D2Z;
    const unsigned blocks = grid_for(size_t(batch), 256);
    if (kind == FftKind::R2C || kind == FftKind::C2R)
      length_one_kernel<float><<<blocks, 256, 0, stream>>>(
          to_complex, batch, static_cast<const float*>(in), static_cast<float*>(out));
    else
      length_one_kernel<double><<<blocks, 256, 0, stream>>>(
          to_complex, batch, static_cast<const double*>(in), static_cast<double*>(out));
    MK_CUDA_LAUNCH_CHECK("fft_exec: length 1");
    return;
  }
  Plan& p = get_plan(kind, n, batch, stream);
  std::lock_guard<std::mutex> lock(p.m);
  check_cufft(cufftSetStream(p.handle, reinterpret_cast<cudaStream_t>(stream)), "set stream", n,
              batch);
  // cuFFT takes non-const inputs; the forward transforms do not write them.
  void* src = const_cast<void*>(in);
  cufftResult r;
  switch (kind) {
    case FftKind::R2C:
      r = cufftExecR2C(p.handle, static_cast<cufftReal*>(src), static_cast<cufftComplex*>(out));
      break;
    case FftKind::C2R:
      r = cufftExecC2R(p.handle, static_cast<cufftComplex*>(src), static_cast<cufftReal*>(out));
      break;
    case FftKind::D2Z:
      r = cufftExecD2Z(p.handle, static_cast<cufftDoubleReal*>(src),
                       static_cast<cufftDoubleComplex*>(out));
      break;
    default:
      r = cufftExecZ2D(p.handle, static_cast<cufftDoubleComplex*>(src),
                       static_cast<cufftDoubleReal*>(out));
      break;
  }
  check_cufft(r, "exec", n, batch);
}

void fft_plans_clear() {
  std::lock_guard<std::mutex> lock(map_mutex());
  plans().clear();
}

int fft_good_size(long long at_least) {
  long long n = at_least < 2 ? 2 : at_least;
  if (n % 2) ++n;
  for (;; n += 2) {
    long long m = n;
    for (int p : {2, 3, 5, 7})
      while (m % p == 0) m /= p;
    if (m == 1) break;
  }
  MK_CHECK(n <= (1LL << 30), "fft size " + std::to_string(n) + " is too large");
  return int(n);
}

}  // namespace mk::cuda::detail

namespace mk::ops::cuda {

void fft_plan_cache_clear() { mk::cuda::detail::fft_plans_clear(); }

}  // namespace mk::ops::cuda
