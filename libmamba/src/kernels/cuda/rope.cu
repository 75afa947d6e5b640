// RoPE on CUDA (see mambakit/ops/cuda/rope.h). A thread owns one (t, i)
// pair of the angle table: it forms cos and sin of (pos0 + t) theta^(-2i/Dh)
// in double, as the CPU op does, rounds them to float, and rotates that pair
// in every head of its batch rows (grid y). Consecutive threads take
// consecutive i: the loads and stores of a head are coalesced. Each pair is
// read and written by one thread, so y may alias x.
#include <algorithm>
#include <string>

#include "common.cuh"
#include "mambakit/ops/cuda/rope.h"

namespace mk::ops::cuda {

using namespace mk::cuda::detail;

namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads) rope_kernel(const float* x, float* y, int batch,
                                                        int len, int heads, int hd, int64_t pos0,
                                                        double theta, double sign) {
  const int half = hd / 2;
  const int64_t pairs = int64_t(len) * half;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < pairs;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int t = int(idx / half), i = int(idx % half);
    const double freq = pow(theta, -2.0 * i / hd);
    const double ang = double(pos0 + t) * freq;
    double sd, cd;
    sincos(ang, &sd, &cd);
    const float c = float(cd), s = float(sign * sd);
    for (int b = blockIdx.y; b < batch; b += gridDim.y) {
      const size_t row = (size_t(b) * len + t) * size_t(heads) * hd;
      for (int h = 0; h < heads; ++h) {
        const size_t at = row + size_t(h) * hd + i;
        const float a = x[at], bb = x[at + half];
        y[at] = a * c - bb * s;
        y[at + half] = bb * c + a * s;
      }
    }
  }
}

void rotate(const RopeShape& s, const float* x, float* y, double sign, stream_t stream,
            const char* where) {
  MK_CHECK(s.batch > 0 && s.len > 0 && s.heads > 0 && s.head_dim > 0 && s.head_dim % 2 == 0,
           std::string(where) + ": bad shape (head_dim " + std::to_string(s.head_dim) +
               " must be even and positive)");
  MK_CHECK(x && y, std::string(where) + ": x and y are required");
  require_device(where);
  const size_t pairs = size_t(s.len) * size_t(s.head_dim / 2);
  const dim3 grid(grid_for(pairs, kThreads), unsigned(std::min(s.batch, 65535)));
  rope_kernel<<<grid, kThreads, 0, stream>>>(x, y, s.batch, s.len, s.heads, s.head_dim, s.pos0,
                                              s.theta, sign);
  MK_CUDA_LAUNCH_CHECK(where);
}

}  // namespace

void rope_forward(const RopeShape& s, const float* x, float* y, stream_t stream) {
  rotate(s, x, y, 1.0, stream, "cuda::rope_forward");
}

void rope_backward(const RopeShape& s, const float* dy, float* dx, stream_t stream) {
  rotate(s, dy, dx, -1.0, stream, "cuda::rope_backward");
}

}  // namespace mk::ops::cuda
