// The CUDA elementwise, layout and gating ops (ops/cuda/elementwise.h)
// against their CPU references, in the manner of test_cuda_backend.cpp: one
// op-table row per op, each drawing awkward and random shapes, running the
// CPU op in double on exactly the fp32 values the GPU sees, and comparing
// every output. Written outputs are poisoned with NaN first; accumulated ones
// start from the same random values on both sides. The flat ops also run at
// a 4-byte offset (the scalar, non-float4 path) and with n % 4 != 0 (the
// vector path's tail).
//
// Without a GPU the table is skipped; the host-side refusals run everywhere.
// Without CUDA in the build the file is one skipped test.
#include <gtest/gtest.h>

#ifndef MAMBAKIT_HAVE_CUDA

TEST(CudaElementwise, NotBuilt) {
  GTEST_SKIP() << "this build has no CUDA (configure with -DMAMBAKIT_CUDA=ON, or AUTO where "
                  "nvcc is installed, to build and test the CUDA kernels)";
}

#else

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "mambakit/cuda/device.h"
#include "mambakit/error.h"
#include "mambakit/ops/cuda/elementwise.h"
#include "mambakit/ops/elementwise.h"
#include "mambakit/ops/gated.h"
#include "mambakit/ops/pair_features.h"

namespace {

using namespace cuda_test;
namespace cu = mk::ops::cuda;
namespace ops = mk::ops;

// A device array of n floats that starts `off` elements into its buffer
// (off = 1: not 16-byte aligned).
struct Dev {
  DeviceBuffer<float> buf;
  size_t off = 0;
  float* p() { return buf.data() + off; }
  Vec get() const {
    const Vec all = download(buf);
    return Vec(all.begin() + long(off), all.end());
  }
};
Dev dev(const Vec& v, size_t off = 0) {
  Vec h(off, 0.0);
  h.insert(h.end(), v.begin(), v.end());
  return Dev{upload<float>(h), off};
}
Dev dev_poisoned(size_t n, size_t off = 0) { return Dev{poisoned<float>(n + off), off}; }

std::string shape_n(size_t n, size_t off) {
  return "n" + std::to_string(n) + (off ? " offset" + std::to_string(off) : "");
}

// Sizes for the flat ops: tiny, n % 4 in {1, 2, 3}, a few thousand, random.
std::vector<size_t> flat_sizes(std::mt19937& rng) {
  return {1, 3, 4, 5, 6, 1023, 4096, 65537, size_t(randint(rng, 1, 300000))};
}

// ---------------------------------------------------------------------------
// Flat elementwise ops.
// ---------------------------------------------------------------------------

void test_add(std::mt19937& rng, Checker& c) {
  c.tol = 1e-7;
  for (size_t n : flat_sizes(rng))
    for (size_t off : {0, 1}) {
      c.shape = shape_n(n, off);
      const Vec a = rounded<float>(randn(rng, n)), b = rounded<float>(randn(rng, n));
      Vec ref(n);
      ops::add<double>(a.data(), b.data(), ref.data(), n);
      Dev a_d = dev(a, off), b_d = dev(b, off), y_d = dev_poisoned(n, off);
      cu::add<float>(a_d.p(), b_d.p(), y_d.p(), n);
      c.compare("y", y_d.get(), ref);
      cu::add<float>(a_d.p(), b_d.p(), a_d.p(), n);  // in place: y = a
      c.compare("y=a", a_d.get(), ref);
      cu::add<float>(y_d.p(), b_d.p(), b_d.p(), n);  // in place: y = b (ref + b)
      Vec ref2(n);
      ops::add<double>(rounded<float>(ref).data(), b.data(), ref2.data(), n);
      c.compare("y=b", b_d.get(), ref2);
    }
  // On a non-blocking stream.
  c.shape = "n1001 stream";
  const Vec a = rounded<float>(randn(rng, 1001)), b = rounded<float>(randn(rng, 1001));
  Vec ref(1001);
  ops::add<double>(a.data(), b.data(), ref.data(), 1001);
  mk::cuda::Stream s;
  Dev a_d = dev(a), b_d = dev(b), y_d = dev_poisoned(1001);
  cu::add<float>(a_d.p(), b_d.p(), y_d.p(), 1001, s.get());
  s.synchronize();
  c.compare("y", y_d.get(), ref);
}

void test_axpy(std::mt19937& rng, Checker& c) {
  c.tol = 1e-6;
  for (size_t n : flat_sizes(rng))
    for (size_t off : {0, 1}) {
      c.shape = shape_n(n, off);
      const double alpha = rounded<float>(randn(rng, 1))[0];
      const Vec x = rounded<float>(randn(rng, n)), y0 = rounded<float>(randn(rng, n));
      Vec ref = y0;
      ops::axpy<double>(alpha, x.data(), ref.data(), n);
      Dev x_d = dev(x, off), y_d = dev(y0, off);
      cu::axpy<float>(float(alpha), x_d.p(), y_d.p(), n);
      c.compare("y", y_d.get(), ref);
    }
}

void test_scale(std::mt19937& rng, Checker& c) {
  c.tol = 1e-7;
  for (size_t n : flat_sizes(rng))
    for (size_t off : {0, 1}) {
      c.shape = shape_n(n, off);
      const double alpha = rounded<float>(randn(rng, 1))[0];
      const Vec y0 = rounded<float>(randn(rng, n));
      Vec ref = y0;
      ops::scale<double>(alpha, ref.data(), n);
      Dev y_d = dev(y0, off);
      cu::scale<float>(float(alpha), y_d.p(), n);
      c.compare("y", y_d.get(), ref);
    }
}

void test_neg_exp(std::mt19937& rng, Checker& c) {
  c.tol = 1e-6;
  for (size_t n : flat_sizes(rng))
    for (size_t off : {0, 1}) {
      c.shape = shape_n(n, off);
      const Vec x = rounded<float>(uniform(rng, n, -5.0, 3.0));
      Vec ref(n);
      ops::neg_exp<double>(x.data(), ref.data(), n);
      Dev x_d = dev(x, off), y_d = dev_poisoned(n, off);
      cu::neg_exp<float>(x_d.p(), y_d.p(), n);
      c.compare("y", y_d.get(), ref);
      cu::neg_exp<float>(x_d.p(), x_d.p(), n);  // in place
      c.compare("y=x", x_d.get(), ref);
    }
}

void test_mul_acc(std::mt19937& rng, Checker& c) {
  c.tol = 1e-6;
  for (size_t n : flat_sizes(rng))
    for (size_t off : {0, 1}) {
      c.shape = shape_n(n, off);
      const Vec a = rounded<float>(randn(rng, n)), b = rounded<float>(randn(rng, n));
      const Vec y0 = rounded<float>(randn(rng, n));
      Vec ref = y0;
      ops::mul_acc<double>(a.data(), b.data(), ref.data(), n);
      Dev a_d = dev(a, off), b_d = dev(b, off), y_d = dev(y0, off);
      cu::mul_acc<float>(a_d.p(), b_d.p(), y_d.p(), n);
      c.compare("y", y_d.get(), ref);
    }
}

// ---------------------------------------------------------------------------
// Layout.
// ---------------------------------------------------------------------------

void test_copy_cols(std::mt19937& rng, Checker& c) {
  c.tol = 1e-12;  // a copy is exact
  struct S { size_t rows, src_stride, c0, w, dst_stride, d0; };
  std::vector<S> shapes = {{1, 1, 0, 1, 1, 0},      {3, 7, 2, 3, 5, 1},
                           {64, 96, 32, 64, 160, 96}, {33, 130, 1, 127, 129, 2},
                           {1000, 3, 2, 1, 4, 3},    {5, 9, 0, 9, 9, 0}};
  {
    const size_t rows = size_t(randint(rng, 1, 500)), w = size_t(randint(rng, 1, 300));
    const size_t c0 = size_t(randint(rng, 0, 50)), d0 = size_t(randint(rng, 0, 50));
    shapes.push_back({rows, c0 + w + size_t(randint(rng, 0, 20)), c0, w,
                      d0 + w + size_t(randint(rng, 0, 20)), d0});
  }
  for (const S& s : shapes) {
    c.shape = "rows" + std::to_string(s.rows) + " src[" + std::to_string(s.c0) + "+" +
              std::to_string(s.w) + "/" + std::to_string(s.src_stride) + "] dst[" +
              std::to_string(s.d0) + "/" + std::to_string(s.dst_stride) + "]";
    const Vec src = rounded<float>(randn(rng, s.rows * s.src_stride));
    const Vec dst0 = rounded<float>(randn(rng, s.rows * s.dst_stride));  // untouched columns kept
    Vec ref = dst0;
    ops::copy_cols<double>(src.data(), s.rows, s.src_stride, s.c0, s.w, ref.data(), s.dst_stride,
                           s.d0);
    Dev src_d = dev(src), dst_d = dev(dst0);
    cu::copy_cols<float>(src_d.p(), s.rows, s.src_stride, s.c0, s.w, dst_d.p(), s.dst_stride,
                         s.d0);
    c.compare("dst", dst_d.get(), ref);
  }
}

void test_transpose(std::mt19937& rng, Checker& c) {
  c.tol = 1e-12;  // exact
  struct S { size_t batch, rows, cols; };
  std::vector<S> shapes = {{1, 1, 1},   {1, 2, 3},    {3, 33, 31},     {2, 64, 96},
                           {1, 1, 1000}, {1, 1000, 1}, {5, 37, 65},     {4, 32, 32},
                           {70000, 2, 3} /* batch past the grid's z limit */};
  shapes.push_back({size_t(randint(rng, 1, 4)), size_t(randint(rng, 1, 300)),
                    size_t(randint(rng, 1, 300))});
  for (const S& s : shapes) {
    c.shape = "batch" + std::to_string(s.batch) + " rows" + std::to_string(s.rows) + " cols" +
              std::to_string(s.cols);
    const size_t n = s.batch * s.rows * s.cols;
    const Vec x = rounded<float>(randn(rng, n));
    Vec ref(n);
    ops::transpose<double>(x.data(), ref.data(), s.batch, s.rows, s.cols);
    Dev x_d = dev(x), y_d = dev_poisoned(n);
    cu::transpose<float>(x_d.p(), y_d.p(), s.batch, s.rows, s.cols);
    c.compare("y", y_d.get(), ref);
  }
}

void test_reverse_time(std::mt19937& rng, Checker& c) {
  c.tol = 1e-12;  // exact
  struct S { size_t batch, len, width; };
  std::vector<S> shapes = {{1, 1, 1}, {1, 2, 3}, {3, 33, 31}, {2, 1000, 1}, {70000, 2, 3}};
  shapes.push_back({size_t(randint(rng, 1, 4)), size_t(randint(rng, 1, 300)),
                    size_t(randint(rng, 1, 300))});
  for (const S& s : shapes) {
    c.shape = "batch" + std::to_string(s.batch) + " len" + std::to_string(s.len) + " width" +
              std::to_string(s.width);
    const size_t n = s.batch * s.len * s.width;
    const Vec x = rounded<float>(randn(rng, n));
    Vec ref(n);
    ops::reverse_time<double>(x.data(), ref.data(), s.batch, s.len, s.width);
    Dev x_d = dev(x), y_d = dev_poisoned(n);
    cu::reverse_time<float>(x_d.p(), y_d.p(), s.batch, s.len, s.width);
    c.compare("y", y_d.get(), ref);
  }
}

// ---------------------------------------------------------------------------
// Per-channel scale.
// ---------------------------------------------------------------------------

void test_channel_scale(std::mt19937& rng, Checker& c) {
  c.tol = 1e-6;
  struct S { size_t rows, H; };
  std::vector<S> shapes = {{1, 1},    {3, 5},    {64, 64},   {130, 257},
                           {1000, 8}, {5000, 3}, {70001, 4}, {2, 1030}};
  shapes.push_back({size_t(randint(rng, 1, 3000)), size_t(randint(rng, 1, 300))});
  for (const S& s : shapes) {
    c.shape = "rows" + std::to_string(s.rows) + " H" + std::to_string(s.H);
    const size_t n = s.rows * s.H;
    const Vec x = rounded<float>(randn(rng, n)), D = rounded<float>(randn(rng, s.H));
    const Vec dy = rounded<float>(randn(rng, n));
    const Vec y0 = rounded<float>(randn(rng, n)), dx0 = rounded<float>(randn(rng, n));
    const Vec dD0 = rounded<float>(randn(rng, s.H));
    Vec y_ref = y0, dx_ref = dx0, dD_ref = dD0;
    ops::channel_scale_forward<double>(x.data(), D.data(), y_ref.data(), s.rows, s.H);
    ops::channel_scale_backward<double>(dy.data(), x.data(), D.data(), dx_ref.data(),
                                        dD_ref.data(), s.rows, s.H);
    Dev x_d = dev(x), D_d = dev(D), dy_d = dev(dy), y_d = dev(y0), dx_d = dev(dx0),
        dD_d = dev(dD0);
    cu::channel_scale_forward<float>(x_d.p(), D_d.p(), y_d.p(), s.rows, s.H);
    cu::channel_scale_backward<float>(dy_d.p(), x_d.p(), D_d.p(), dx_d.p(), dD_d.p(), s.rows,
                                      s.H);
    c.compare("y", y_d.get(), y_ref);
    c.compare("dx", dx_d.get(), dx_ref);
    c.compare("dD", dD_d.get(), dD_ref, 1e-5);
    // Deterministic: a second run from the same start gives the same bits.
    const Vec first = dD_d.get();
    Dev dD2_d = dev(dD0), dx2_d = dev(dx0);
    cu::channel_scale_backward<float>(dy_d.p(), x_d.p(), D_d.p(), dx2_d.p(), dD2_d.p(), s.rows,
                                      s.H);
    EXPECT_EQ(dD2_d.get(), first) << "channel_scale_backward dD not reproducible [" << c.shape
                                  << "]";
  }
}

// ---------------------------------------------------------------------------
// Sequence pooling.
// ---------------------------------------------------------------------------

template <bool kLast>
void test_sequence_pool(std::mt19937& rng, Checker& c) {
  c.tol = 1e-6;
  struct S { int B, L, D; };
  std::vector<S> shapes = {{1, 1, 1},    {2, 5, 3},   {4, 100, 64}, {3, 1000, 33},
                           {1, 4096, 8}, {70, 7, 4},  {5, 33, 130}};
  shapes.push_back({randint(rng, 1, 16), randint(rng, 1, 600), randint(rng, 1, 300)});
  for (size_t si = 0; si < shapes.size(); ++si) {
    const S& s = shapes[si];
    const bool no_lengths = si == 2;  // null lengths: every sequence L long
    c.shape = "B" + std::to_string(s.B) + " L" + std::to_string(s.L) + " D" +
              std::to_string(s.D) + (no_lengths ? " no-lengths" : "");
    std::vector<int32_t> len(s.B);
    for (int b = 0; b < s.B; ++b)  // random, with the extremes 1 and L among them
      len[b] = b == 0 ? s.L : b == 1 ? 1 : randint(rng, 1, s.L);
    const size_t nh = size_t(s.B) * s.L * s.D, np = size_t(s.B) * s.D;
    const Vec h = rounded<float>(randn(rng, nh)), g = rounded<float>(randn(rng, np));
    Vec pooled_ref(np), dh_ref(nh);
    const int32_t* len_h = no_lengths ? nullptr : len.data();
    ops::sequence_pool_forward<double>(h.data(), len_h, pooled_ref.data(), s.B, s.L, s.D, kLast);
    ops::sequence_pool_backward<double>(g.data(), len_h, dh_ref.data(), s.B, s.L, s.D, kLast);
    DeviceBuffer<int32_t> len_d(len.size());
    len_d.upload(len.data());
    Dev h_d = dev(h), g_d = dev(g), pooled_d = dev_poisoned(np), dh_d = dev_poisoned(nh);
    const int32_t* len_dp = no_lengths ? nullptr : len_d.data();
    cu::sequence_pool_forward<float>(h_d.p(), len_dp, pooled_d.p(), s.B, s.L, s.D, kLast);
    cu::sequence_pool_backward<float>(g_d.p(), len_dp, dh_d.p(), s.B, s.L, s.D, kLast);
    c.compare("pooled", pooled_d.get(), pooled_ref);
    c.compare("dh", dh_d.get(), dh_ref);
  }

  // An invalid length (0, or above L) cannot throw from the device: that
  // sequence's outputs are NaN, the others are right.
  const int B = 3, L = 6, D = 5;
  for (int bad : {0, L + 1}) {
    c.shape = "bad length " + std::to_string(bad);
    std::vector<int32_t> len = {2, bad, L};
    const Vec h = rounded<float>(randn(rng, size_t(B) * L * D));
    const Vec g = rounded<float>(randn(rng, size_t(B) * D));
    DeviceBuffer<int32_t> len_d(len.size());
    len_d.upload(len.data());
    Dev h_d = dev(h), g_d = dev(g), pooled_d = dev_poisoned(size_t(B) * D),
        dh_d = dev(Vec(size_t(B) * L * D, 7.0));
    cu::sequence_pool_forward<float>(h_d.p(), len_d.data(), pooled_d.p(), B, L, D, kLast);
    cu::sequence_pool_backward<float>(g_d.p(), len_d.data(), dh_d.p(), B, L, D, kLast);
    const Vec pooled = pooled_d.get(), dh = dh_d.get();
    for (int b = 0; b < B; ++b) {
      for (int j = 0; j < D; ++j)
        EXPECT_EQ(std::isnan(pooled[size_t(b) * D + j]), b == 1) << c.shape << " b" << b;
      for (int k = 0; k < L * D; ++k)
        EXPECT_EQ(std::isnan(dh[size_t(b) * L * D + k]), b == 1) << c.shape << " b" << b;
    }
  }
}

// ---------------------------------------------------------------------------
// Gated activations and pair features.
// ---------------------------------------------------------------------------

void test_gelu(std::mt19937& rng, Checker& c) {
  c.tol = 1e-6;
  for (size_t n : flat_sizes(rng))
    for (size_t off : {0, 1}) {
      c.shape = shape_n(n, off);
      const Vec x = rounded<float>(randn(rng, n, 3.0)), dy = rounded<float>(randn(rng, n));
      Vec y_ref(n), dx_ref(n);
      ops::gelu_forward<double>(x.data(), y_ref.data(), n);
      ops::gelu_backward<double>(dy.data(), x.data(), dx_ref.data(), n);
      Dev x_d = dev(x, off), dy_d = dev(dy, off), y_d = dev_poisoned(n, off),
          dx_d = dev_poisoned(n, off);
      cu::gelu_forward<float>(x_d.p(), y_d.p(), n);
      cu::gelu_backward<float>(dy_d.p(), x_d.p(), dx_d.p(), n);
      c.compare("y", y_d.get(), y_ref);
      c.compare("dx", dx_d.get(), dx_ref);
    }
}

void test_glu(std::mt19937& rng, Checker& c) {
  c.tol = 1e-6;
  struct S { size_t rows, w; };
  std::vector<S> shapes = {{1, 1}, {3, 4}, {5, 7}, {64, 128}, {33, 65}, {1000, 2}, {2, 1030}};
  shapes.push_back({size_t(randint(rng, 1, 500)), size_t(randint(rng, 1, 400))});
  for (const S& s : shapes)
    for (size_t off : {0, 1}) {
      c.shape = "rows" + std::to_string(s.rows) + " w" + std::to_string(s.w) +
                (off ? " offset1" : "");
      const size_t n = s.rows * s.w;
      const Vec x = rounded<float>(randn(rng, 2 * n, 2.0)), dy = rounded<float>(randn(rng, n));
      Vec y_ref(n), dx_ref(2 * n);
      ops::glu_forward<double>(x.data(), y_ref.data(), s.rows, s.w);
      ops::glu_backward<double>(dy.data(), x.data(), dx_ref.data(), s.rows, s.w);
      Dev x_d = dev(x, off), dy_d = dev(dy, off), y_d = dev_poisoned(n, off),
          dx_d = dev_poisoned(2 * n, off);
      cu::glu_forward<float>(x_d.p(), y_d.p(), s.rows, s.w);
      cu::glu_backward<float>(dy_d.p(), x_d.p(), dx_d.p(), s.rows, s.w);
      c.compare("y", y_d.get(), y_ref);
      c.compare("dx", dx_d.get(), dx_ref);
    }
}

void test_swiglu(std::mt19937& rng, Checker& c) {
  c.tol = 1e-6;
  for (size_t n : flat_sizes(rng))
    for (size_t off : {0, 1}) {
      c.shape = shape_n(n, off);
      const Vec g = rounded<float>(randn(rng, n, 3.0)), u = rounded<float>(randn(rng, n));
      const Vec dy = rounded<float>(randn(rng, n));
      Vec y_ref(n), dg_ref(n), du_ref(n);
      ops::swiglu_forward<double>(g.data(), u.data(), y_ref.data(), n);
      ops::swiglu_backward<double>(dy.data(), g.data(), u.data(), dg_ref.data(), du_ref.data(), n);
      Dev g_d = dev(g, off), u_d = dev(u, off), dy_d = dev(dy, off), y_d = dev_poisoned(n, off),
          dg_d = dev_poisoned(n, off), du_d = dev_poisoned(n, off);
      cu::swiglu_forward<float>(g_d.p(), u_d.p(), y_d.p(), n);
      cu::swiglu_backward<float>(dy_d.p(), g_d.p(), u_d.p(), dg_d.p(), du_d.p(), n);
      c.compare("y", y_d.get(), y_ref);
      c.compare("dg", dg_d.get(), dg_ref);
      c.compare("du", du_d.get(), du_ref);
    }
}

void test_pair_features(std::mt19937& rng, Checker& c) {
  c.tol = 1e-6;
  struct S { int pairs, d; };
  std::vector<S> shapes = {{1, 1}, {2, 3}, {5, 4}, {17, 64}, {3, 130}, {1000, 2}};
  shapes.push_back({randint(rng, 1, 200), randint(rng, 1, 300)});
  for (const S& s : shapes)
    for (size_t off : {0, 1}) {
      c.shape = "pairs" + std::to_string(s.pairs) + " d" + std::to_string(s.d) +
                (off ? " offset1" : "");
      const size_t n = size_t(s.pairs) * s.d;
      const Vec u = rounded<float>(randn(rng, n)), v = rounded<float>(randn(rng, n));
      const Vec df = rounded<float>(randn(rng, 4 * n));
      Vec f_ref(4 * n), du_ref(n), dv_ref(n);
      ops::pair_features_forward<double>(u.data(), v.data(), f_ref.data(), s.pairs, s.d);
      ops::pair_features_backward<double>(df.data(), u.data(), v.data(), du_ref.data(),
                                          dv_ref.data(), s.pairs, s.d);
      Dev u_d = dev(u, off), v_d = dev(v, off), df_d = dev(df, off), f_d = dev_poisoned(4 * n, off),
          du_d = dev_poisoned(n, off), dv_d = dev_poisoned(n, off);
      cu::pair_features_forward<float>(u_d.p(), v_d.p(), f_d.p(), s.pairs, s.d);
      cu::pair_features_backward<float>(df_d.p(), u_d.p(), v_d.p(), du_d.p(), dv_d.p(), s.pairs,
                                        s.d);
      c.compare("f", f_d.get(), f_ref);
      c.compare("du", du_d.get(), du_ref);
      c.compare("dv", dv_d.get(), dv_ref);
    }
}

std::vector<OpCase> op_table() {
  static const std::vector<OpCase> ops = {
      {"add_f32", test_add},
      {"axpy_f32", test_axpy},
      {"scale_f32", test_scale},
      {"neg_exp_f32", test_neg_exp},
      {"mul_acc_f32", test_mul_acc},
      {"copy_cols_f32", test_copy_cols},
      {"transpose_f32", test_transpose},
      {"reverse_time_f32", test_reverse_time},
      {"channel_scale_f32", test_channel_scale},
      {"sequence_pool_mean_f32", test_sequence_pool<false>},
      {"sequence_pool_last_f32", test_sequence_pool<true>},
      {"gelu_f32", test_gelu},
      {"glu_f32", test_glu},
      {"swiglu_f32", test_swiglu},
      {"pair_features_f32", test_pair_features},
  };
  return ops;
}

class CudaElementwise : public ::testing::TestWithParam<OpCase> {};

TEST_P(CudaElementwise, MatchesCpuReference) { run_op_case(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Ops, CudaElementwise, ::testing::ValuesIn(op_table()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return std::string(info.param.name);
                         });

// ---------------------------------------------------------------------------
// Host-side refusals: checked before the device is touched, so they run
// with or without one (no kernel runs: every call here throws).
// ---------------------------------------------------------------------------

template <typename F>
void expect_refused(F f, const char* want, const char* why) {
  try {
    f();
    ADD_FAILURE() << "accepted: " << why;
  } catch (const mk::Error& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << why << ": " << e.what();
  }
}

TEST(CudaElementwiseHost, RefusesBadArguments) {
  // Fake, never dereferenced device addresses.
  float* p = reinterpret_cast<float*>(uintptr_t(1) << 20);
  float* q = reinterpret_cast<float*>(uintptr_t(1) << 30);
  expect_refused([&] { cu::copy_cols<float>(p, 2, 4, 3, 2, q, 5, 0); }, "stride", "c0 + w > src_stride");
  expect_refused([&] { cu::copy_cols<float>(p, 2, 4, 0, 2, q, 5, 4); }, "stride", "d0 + w > dst_stride");
  expect_refused([&] { cu::transpose<float>(p, p + 3, 1, 4, 4); }, "overlap", "overlapping transpose");
  expect_refused([&] { cu::transpose<float>(p, p, 2, 3, 3); }, "overlap", "in-place transpose");
  expect_refused([&] { cu::reverse_time<float>(p, p + 1, 2, 3, 3); }, "overlap", "overlapping reverse_time");
  expect_refused([&] { cu::add<float>(p, nullptr, q, 10); }, "null pointer", "add with null b");
  expect_refused([&] { cu::glu_forward<float>(nullptr, q, 3, 4); }, "null pointer", "glu null x");
  expect_refused([&] { cu::sequence_pool_forward<float>(p, nullptr, q, 2, 0, 3, false); }, "bad sizes",
                 "pool L = 0");
  expect_refused([&] { cu::pair_features_forward<float>(p, p, q, -1, 3); }, "bad sizes", "pairs < 0");
  // Empty sizes are no-ops, even with null pointers and without a device.
  EXPECT_NO_THROW(cu::add<float>(nullptr, nullptr, nullptr, 0));
  EXPECT_NO_THROW(cu::transpose<float>(nullptr, nullptr, 3, 0, 5));
  EXPECT_NO_THROW(cu::sequence_pool_backward<float>(nullptr, nullptr, nullptr, 0, 4, 3, true));
}

}  // namespace

#endif  // MAMBAKIT_HAVE_CUDA
