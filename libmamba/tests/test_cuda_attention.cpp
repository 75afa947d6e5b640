// The CUDA attention and RoPE ops against the CPU reference (run in double
// on the same fp32 inputs), in the style of test_cuda_backend.cpp:
//   - training shapes (len_q == len_k, q, k, v (B, L, H, Dh)) over awkward
//     batch, heads, lengths up to ~300 and head dims 16..128 (24, 40, 100,
//     odd 7 included), forward o and lse, backward dq, dk, dv;
//   - chunked prefill (len_q < len_k, q_offset > 0) with the KV-cache layout
//     (T, B, H, Dh) and padded rows;
//   - decoding (len_q = 1, q_offset = pos, as AttentionMixer::step: q (B, dm),
//     cache (T, B, dm)), one chunk and split over many;
//   - RoPE forward and backward with pos0 > 0, out of place and in place.
// Outputs and gradients start from random values on both sides (so an element
// the kernel fails to write, or one it writes outside the layout, differs),
// and keys no query may see are NaN (so reading one shows); the backward runs
// twice and must give the same bits (no atomics, no races). Without a GPU the
// table tests skip; the refusals of unsupported shapes are host-side and run
// everywhere. Without CUDA in the build the file is one skipped test.
#include <gtest/gtest.h>

#ifndef MAMBAKIT_HAVE_CUDA

TEST(CudaAttention, NotBuilt) {
  GTEST_SKIP() << "this build has no CUDA (configure with -DMAMBAKIT_CUDA=ON, or AUTO where "
                  "nvcc is installed, to build and test the CUDA kernels)";
}

#else

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "mambakit/cuda/device.h"
#include "mambakit/error.h"
#include "mambakit/ops/attention.h"
#include "mambakit/ops/cuda/attention.h"
#include "mambakit/ops/cuda/rope.h"
#include "mambakit/ops/rope.h"

namespace {

using namespace cuda_test;
namespace cu = mk::ops::cuda;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One attention problem. Rows are padded by q_pad / kv_pad floats after the
// heads (gaps no op may touch). cache: k, v in the KV-cache layout (T, B, ...)
// (kv_sb = row, kv_st = B * row) instead of (B, T, ...).
struct AttnCase {
  int B, H, hd, len_q, len_k;
  long q_offset;
  int q_pad = 0, kv_pad = 0;
  bool cache = false;
  double amp = 1.0;  // std of q and k (scores ~ amp^2 N(0, 1))
  bool lse = true;   // forward asked for lse (the backward always is)
  bool backward = true;
};

std::string describe(const AttnCase& s) {
  return "B" + std::to_string(s.B) + " H" + std::to_string(s.H) + " hd" + std::to_string(s.hd) +
         " len_q" + std::to_string(s.len_q) + " len_k" + std::to_string(s.len_k) + " q_offset" +
         std::to_string(s.q_offset) + (s.cache ? " cache" : "") +
         (s.q_pad || s.kv_pad ? " padded" : "") + " amp" + std::to_string(s.amp).substr(0, 3);
}

template <typename T>
void set_layout(mk::ops::AttentionParams<T>& p, const AttnCase& s) {
  const long dm = long(s.H) * s.hd;
  p.batch = s.B;
  p.len_q = s.len_q;
  p.len_k = s.len_k;
  p.heads = s.H;
  p.head_dim = s.hd;
  p.q_offset = s.q_offset;
  p.scale = T(1.0 / std::sqrt(double(s.hd)));
  p.q_st = dm + s.q_pad;
  p.q_sb = long(s.len_q) * p.q_st;
  if (s.cache) {
    p.kv_sb = dm + s.kv_pad;
    p.kv_st = long(s.B) * p.kv_sb;
  } else {
    p.kv_st = dm + s.kv_pad;
    p.kv_sb = long(s.len_k) * p.kv_st;
  }
}

// A gradient that is exactly 0 in exact arithmetic (dq and dk when every
// query sees one key: dS = P (dO.v - dO.O) with O = v) is rounding noise in
// fp32, which a relative test cannot judge: then the largest |got| must be
// below tol_abs (values are O(1)).
void compare_or_zero(Checker& c, const std::string& what, const Vec& got, const Vec& ref,
                     double tol, double tol_abs = 1e-5) {
  bool zero = true;
  for (double x : ref) zero = zero && x == 0.0;
  if (!zero) return c.compare(what, got, ref, tol);
  double worst = 0;
  for (double x : got) worst = std::isnan(x) ? INFINITY : std::max(worst, std::fabs(x));
  c.record(what + "(0)", 0.0, worst);
  EXPECT_LE(worst, tol_abs) << c.op << " " << what << " [" << c.shape << "]: should be 0";
}

void run_attention_case(std::mt19937& rng, Checker& c, const AttnCase& s, double tol_fwd,
                        double tol_bwd) {
  c.shape = describe(s);
  mk::ops::AttentionParams<double> r;
  set_layout(r, s);
  const size_t nq = size_t(s.B) * size_t(r.q_sb);
  const size_t nkv = s.cache ? size_t(s.len_k) * size_t(r.kv_st) : size_t(s.B) * size_t(r.kv_sb);
  const size_t nlse = size_t(s.B) * s.H * s.len_q;

  // Inputs: gaps and keys no query sees are NaN.
  Vec q = rounded<float>(randn(rng, nq, s.amp)), dout = rounded<float>(randn(rng, nq));
  Vec k = rounded<float>(randn(rng, nkv, s.amp)), v = rounded<float>(randn(rng, nkv));
  const long dm = long(s.H) * s.hd;
  const long last_seen = s.len_q - 1 + s.q_offset;
  for (int b = 0; b < s.B; ++b) {
    for (int i = 0; i < s.len_q; ++i)
      for (long e = dm; e < r.q_st; ++e) q[b * r.q_sb + i * r.q_st + e] = dout[b * r.q_sb + i * r.q_st + e] = kNaN;
    for (long j = 0; j < s.len_k; ++j)
      for (long e = 0; e < dm + s.kv_pad; ++e)
        if (j > last_seen || e >= dm) k[b * r.kv_sb + j * r.kv_st + e] = v[b * r.kv_sb + j * r.kv_st + e] = kNaN;
  }
  // Outputs start random, the same on both sides.
  const Vec o0 = rounded<float>(randn(rng, nq)), lse0 = rounded<float>(randn(rng, nlse));
  const Vec dq0 = rounded<float>(randn(rng, nq));
  const Vec dk0 = rounded<float>(randn(rng, nkv)), dv0 = rounded<float>(randn(rng, nkv));

  // Reference in double.
  Vec o_ref = o0, lse_ref = lse0, dq_ref = dq0, dk_ref = dk0, dv_ref = dv0;
  r.q = q.data();
  r.k = k.data();
  r.v = v.data();
  r.o = o_ref.data();
  r.lse = s.lse || s.backward ? lse_ref.data() : nullptr;
  mk::ops::attention_forward<double>(r);
  if (s.backward)
    mk::ops::attention_backward<double>(r, dout.data(), dq_ref.data(), dk_ref.data(),
                                        dv_ref.data());

  auto q_d = upload<float>(q), k_d = upload<float>(k), v_d = upload<float>(v);
  auto dout_d = upload<float>(dout);
  auto o_d = upload<float>(o0), lse_d = upload<float>(lse0), dq_d = upload<float>(dq0);
  auto dk_d = upload<float>(dk0), dv_d = upload<float>(dv0);
  mk::ops::AttentionParams<float> p;
  set_layout(p, s);
  p.q = q_d.data();
  p.k = k_d.data();
  p.v = v_d.data();
  p.o = o_d.data();
  p.lse = s.lse || s.backward ? lse_d.data() : nullptr;
  cu::attention_forward(p);
  c.compare("o", download(o_d), o_ref, tol_fwd);
  c.compare("lse", download(lse_d), lse_ref, tol_fwd);
  if (!s.backward) return;
  cu::attention_backward(p, dout_d.data(), dq_d.data(), dk_d.data(), dv_d.data());
  const Vec dq = download(dq_d), dk = download(dk_d), dv = download(dv_d);
  compare_or_zero(c, "dq", dq, dq_ref, tol_bwd);
  compare_or_zero(c, "dk", dk, dk_ref, tol_bwd);
  c.compare("dv", dv, dv_ref, tol_bwd);
  // Deterministic: a second run gives the same bits.
  auto dq2_d = upload<float>(dq0), dk2_d = upload<float>(dk0), dv2_d = upload<float>(dv0);
  cu::attention_backward(p, dout_d.data(), dq2_d.data(), dk2_d.data(), dv2_d.data());
  EXPECT_TRUE(download(dq2_d) == dq && download(dk2_d) == dk && download(dv2_d) == dv)
      << c.op << " [" << c.shape << "]: the backward differs between two runs";
}

// Training shapes: q, k, v all (B, L, H, Dh), len_q == len_k, q_offset 0.
void test_attention_train(std::mt19937& rng, Checker& c) {
  c.tol = 2e-5;
  std::vector<AttnCase> cases = {
      {1, 1, 16, 1, 1, 0},    {2, 3, 32, 1, 1, 0},    {1, 1, 16, 5, 5, 0},
      {2, 3, 32, 70, 70, 0},  {1, 2, 64, 129, 129, 0}, {3, 2, 24, 300, 300, 0},
      {2, 1, 128, 200, 200, 0}, {1, 4, 96, 65, 65, 0}, {2, 2, 40, 64, 64, 0},
      {1, 3, 100, 97, 97, 0}, {1, 1, 7, 33, 33, 0},   {2, 2, 18, 31, 31, 0},
      {1, 2, 128, 257, 257, 0}, {4, 1, 64, 300, 300, 0},
  };
  cases[5].amp = 2.0;   // peaked softmax
  cases[6].amp = 0.3;   // flat softmax
  cases[9].q_pad = 6;   // padded rows
  cases[9].kv_pad = 10;
  const int hds[] = {16, 24, 32, 40, 64, 80, 100, 128};
  for (int t = 0; t < 3; ++t) {
    const int L = randint(rng, 1, 300);
    AttnCase s{randint(rng, 1, 3), randint(rng, 1, 4), hds[randint(rng, 0, 7)], L, L, 0};
    s.amp = uniform(rng, 1, 0.5, 1.5)[0];
    cases.push_back(s);
  }
  for (const AttnCase& s : cases) run_attention_case(rng, c, s, 1e-5, 2e-5);
}

// Several queries at a causal shift against a longer key range (chunked
// prefill), in the KV-cache layout (T, B, H, Dh), padded rows; keys after the
// last query's are never seen (NaN here).
void test_attention_prefill(std::mt19937& rng, Checker& c) {
  c.tol = 2e-5;
  std::vector<AttnCase> cases = {
      {2, 2, 32, 37, 100, 63},  {1, 3, 64, 64, 64 + 65, 65}, {3, 1, 128, 5, 300, 200},
      {2, 2, 24, 100, 101, 1},  {1, 2, 96, 2, 50, 10},       {2, 1, 16, 130, 400, 170},
  };
  for (size_t t = 0; t < cases.size(); ++t) {
    cases[t].cache = t % 2 == 0;
    cases[t].q_pad = int(t % 3) * 2;
    cases[t].kv_pad = int(t % 2) * 4;
  }
  for (const AttnCase& s : cases) run_attention_case(rng, c, s, 1e-5, 2e-5);
}

// Decoding as AttentionMixer::step: one query at position pos = len_k - 1,
// q (B, H*Dh), keys and values in the cache (T, B, H*Dh). Short caches take
// one chunk, long ones (or few heads) are split over blocks.
void test_attention_decode(std::mt19937& rng, Checker& c) {
  c.tol = 1e-5;
  struct S { int B, H, hd, len_k; };
  std::vector<S> shapes = {{1, 1, 16, 1},   {2, 3, 32, 2},    {3, 2, 64, 17},   {2, 4, 128, 300},
                           {1, 1, 64, 4099}, {4, 8, 24, 1000}, {1, 2, 96, 513},  {2, 1, 100, 257},
                           {64, 8, 64, 100}};
  shapes.push_back({randint(rng, 1, 4), randint(rng, 1, 8), 2 * randint(rng, 1, 64),
                    randint(rng, 1, 3000)});
  for (size_t t = 0; t < shapes.size(); ++t) {
    const S& z = shapes[t];
    AttnCase s{z.B, z.H, z.hd, 1, z.len_k, long(z.len_k - 1)};
    s.cache = true;
    s.lse = t % 2 == 0;  // step() passes no lse
    s.backward = false;
    s.amp = t % 3 == 0 ? 2.0 : 1.0;
    run_attention_case(rng, c, s, 1e-5, 1e-5);
  }
  // A query that stops short of the cache's end (the rest unseen, NaN).
  AttnCase s{2, 2, 64, 1, 700, 450};
  s.cache = true;
  s.backward = false;
  run_attention_case(rng, c, s, 1e-5, 1e-5);
  // One query, backward too (the tiled backward at len_q = 1).
  AttnCase sb{2, 3, 32, 1, 90, 89};
  sb.cache = true;
  run_attention_case(rng, c, sb, 1e-5, 2e-5);
}

void test_rope(std::mt19937& rng, Checker& c) {
  c.tol = 1e-6;
  std::vector<mk::ops::RopeShape> shapes = {
      {1, 1, 1, 2, 0, 10000.0},       {2, 5, 3, 16, 7, 10000.0},     {3, 70, 2, 64, 12345, 10000.0},
      {1, 300, 4, 24, 1, 500000.0},   {2, 1, 8, 128, 4095, 10000.0}, {1, 33, 1, 100, 100000, 10000.0},
  };
  shapes.push_back({randint(rng, 1, 4), randint(rng, 1, 200), randint(rng, 1, 8),
                    2 * randint(rng, 1, 64), long(randint(rng, 0, 50000)), 10000.0});
  for (const mk::ops::RopeShape& s : shapes) {
    c.shape = "B" + std::to_string(s.batch) + " L" + std::to_string(s.len) + " H" +
              std::to_string(s.heads) + " hd" + std::to_string(s.head_dim) + " pos0" +
              std::to_string(s.pos0) + " theta" + std::to_string(long(s.theta));
    const size_t n = size_t(s.batch) * s.len * s.heads * s.head_dim;
    const Vec x = rounded<float>(randn(rng, n)), dy = rounded<float>(randn(rng, n));
    Vec y_ref(n), dx_ref(n);
    mk::ops::rope_forward<double>(s, x.data(), y_ref.data());
    mk::ops::rope_backward<double>(s, dy.data(), dx_ref.data());

    auto x_d = upload<float>(x), dy_d = upload<float>(dy);
    auto y_d = poisoned<float>(n), dx_d = poisoned<float>(n);
    cu::rope_forward(s, x_d.data(), y_d.data());
    cu::rope_backward(s, dy_d.data(), dx_d.data());
    c.compare("y", download(y_d), y_ref);
    c.compare("dx", download(dx_d), dx_ref);
    // In place, as AttentionMixer calls it.
    cu::rope_forward(s, x_d.data(), x_d.data());
    cu::rope_backward(s, dy_d.data(), dy_d.data());
    c.compare("y_inplace", download(x_d), y_ref);
    c.compare("dx_inplace", download(dy_d), dx_ref);
    // backward undoes forward
    cu::rope_backward(s, x_d.data(), x_d.data());
    c.compare("roundtrip", download(x_d), x, 1e-6);
  }
}

const std::vector<OpCase>& op_table() {
  static const std::vector<OpCase> ops = {
      {"attention_train_f32", test_attention_train},
      {"attention_prefill_f32", test_attention_prefill},
      {"attention_decode_f32", test_attention_decode},
      {"rope_f32", test_rope},
  };
  return ops;
}

class CudaAttention : public ::testing::TestWithParam<OpCase> {};

TEST_P(CudaAttention, MatchesCpuReference) { run_op_case(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Ops, CudaAttention, ::testing::ValuesIn(op_table()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return std::string(info.param.name);
                         });

// ---------------------------------------------------------------------------
// Host-side: unsupported shapes are refused before the device is touched, so
// these run with or without a GPU (the pointers are never dereferenced).
// ---------------------------------------------------------------------------

void expect_refused(const std::function<void()>& f, const std::string& needle, const char* why) {
  try {
    f();
    ADD_FAILURE() << "accepted: " << why;
  } catch (const mk::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << why << ": " << e.what();
    std::printf("refused (%s): %s\n", why, e.what());
  }
}

TEST(CudaAttentionHost, RefusesUnsupportedShapes) {
  static float buf[4];
  mk::ops::AttentionParams<float> p;
  p.batch = 2;
  p.len_q = p.len_k = 10;
  p.heads = 2;
  p.head_dim = 64;
  p.scale = 0.125f;
  p.q = p.k = p.v = buf;
  p.o = p.lse = buf;
  p.q_st = p.kv_st = 128;
  p.q_sb = p.kv_sb = 1280;
  auto fwd = [](mk::ops::AttentionParams<float> q) { return [q] { cu::attention_forward(q); }; };
  auto bwd = [](mk::ops::AttentionParams<float> q) {
    return [q] { cu::attention_backward(q, buf, buf, buf, buf); };
  };
  auto q = p;
  q.head_dim = 160;
  expect_refused(fwd(q), "head_dim 160", "forward head_dim 160");
  expect_refused(bwd(q), "head_dim 160", "backward head_dim 160");
  q = p;
  q.q_offset = 1;
  expect_refused(fwd(q), "past the last key", "q_offset past the keys");
  q = p;
  q.len_q = 0;
  expect_refused(fwd(q), "positive", "len_q 0");
  q = p;
  q.v = nullptr;
  expect_refused(fwd(q), "required", "v missing");
  q = p;
  q.lse = nullptr;
  expect_refused(bwd(q), "lse", "backward without lse");

  mk::ops::RopeShape rs{1, 4, 2, 7, 0, 10000.0};
  expect_refused([&] { cu::rope_forward(rs, buf, buf); }, "even", "rope head_dim 7");
  expect_refused([&] { cu::rope_backward(rs, buf, buf); }, "even", "rope backward head_dim 7");
}

}  // namespace

#endif  // MAMBAKIT_HAVE_CUDA
