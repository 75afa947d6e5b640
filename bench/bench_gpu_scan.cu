// GPU selective-scan benchmark: mambakit's fused scan (forward, and forward +
// backward) and the naive scan that materialises every state, at a list of
// sequence lengths; CSV on stdout (or --out, appended):
//   impl,dtype,batch,dim,dstate,seqlen,pass,ms
// Before timing, --check compares both against a sequential double-precision
// host reference on small awkward shapes (so a broken kernel is never timed
// as a fast one) and exits non-zero on a mismatch.
//
// Timing: CUDA events around each run, after warm-up; the median of several
// runs; inputs rotate over enough copies to exceed the L2 cache. An
// implementation stops at the first length whose single run exceeds
// --max-ms (or whose buffers would exceed --max-gib).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mambakit/cuda/device.h"
#include "mambakit/error.h"
#include "mambakit/ops/cuda/selective_scan.h"

namespace {

namespace cu = mk::ops::cuda;
using mk::cuda::bf16;
using mk::cuda::DeviceBuffer;

struct Options {
  std::vector<int> lengths = {512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144};
  int batch = 1, dim = 1024, dstate = 16;
  std::string dtype = "bf16";
  double max_ms = 3000, max_gib = 100;
  bool check = true, naive = true;
  std::string out;
};

void usage() {
  std::fprintf(stderr,
               "usage: bench_gpu_scan [--lengths 512,1024,...] [--batch B] [--dim D] "
               "[--dstate N] [--dtype bf16|f32] [--max-ms MS] [--max-gib G] [--no-check] "
               "[--no-naive] [--out file.csv]\n");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--lengths") {
      o.lengths.clear();
      std::stringstream ss(next());
      for (std::string t; std::getline(ss, t, ',');) o.lengths.push_back(std::stoi(t));
    } else if (a == "--batch") o.batch = std::stoi(next());
    else if (a == "--dim") o.dim = std::stoi(next());
    else if (a == "--dstate") o.dstate = std::stoi(next());
    else if (a == "--dtype") o.dtype = next();
    else if (a == "--max-ms") o.max_ms = std::stod(next());
    else if (a == "--max-gib") o.max_gib = std::stod(next());
    else if (a == "--no-check") o.check = false;
    else if (a == "--no-naive") o.naive = false;
    else if (a == "--out") o.out = next();
    else {
      usage();
      std::exit(2);
    }
  }
  if (o.dtype != "bf16" && o.dtype != "f32") {
    usage();
    std::exit(2);
  }
  return o;
}

template <typename T> __host__ __device__ T from_double(double x);
template <> __host__ __device__ float from_double<float>(double x) { return float(x); }
template <> __host__ __device__ bf16 from_double<bf16>(double x) {
  return __float2bfloat16_rn(float(x));
}
double as_double(float x) { return x; }
double as_double(bf16 x) { return double(__bfloat162float(x)); }

template <typename T>
DeviceBuffer<T> upload(const std::vector<double>& h) {
  std::vector<T> tmp(h.size());
  for (size_t i = 0; i < h.size(); ++i) tmp[i] = from_double<T>(h[i]);
  DeviceBuffer<T> d(h.size());
  d.upload(tmp.data());
  return d;
}
template <typename T>
std::vector<double> download(const DeviceBuffer<T>& d) {
  std::vector<T> tmp(d.size());
  d.download(tmp.data());
  std::vector<double> h(d.size());
  for (size_t i = 0; i < h.size(); ++i) h[i] = as_double(tmp[i]);
  return h;
}
template <typename T>
std::vector<double> rounded(std::vector<double> v) {
  for (double& x : v) x = as_double(from_double<T>(x));
  return v;
}

// ---------------------------------------------------------------------------
// Host reference in double, GPU layout: u, delta, z (B, D, L); B, C (B, N, L);
// delta already positive; every state kept.
// ---------------------------------------------------------------------------
struct HostScan {
  int B = 0, L = 0, D = 0, N = 0;
  std::vector<double> u, delta, A, Bm, Cm, Dskip, z, dout;
  std::vector<double> out, du, ddelta, dA, dB, dC, dD, dz;

  size_t s(int b, int r, int R, int t) const { return (size_t(b) * R + r) * L + t; }

  void run() {
    out.assign(u.size(), 0);
    du.assign(u.size(), 0);
    ddelta.assign(u.size(), 0);
    dz.assign(u.size(), 0);
    dA.assign(size_t(D) * N, 0);
    dD.assign(D, 0);
    dB.assign(Bm.size(), 0);
    dC.assign(Cm.size(), 0);
    std::vector<double> h(size_t(L) * N);
    for (int b = 0; b < B; ++b)
      for (int d = 0; d < D; ++d) {
        std::vector<double> y(L);
        for (int t = 0; t < L; ++t) {
          const size_t i = s(b, d, D, t);
          double acc = Dskip[d] * u[i];
          for (int n = 0; n < N; ++n) {
            const double hp = t ? h[size_t(t - 1) * N + n] : 0.0;
            const double hn = std::exp(delta[i] * A[size_t(d) * N + n]) * hp +
                              delta[i] * Bm[s(b, n, N, t)] * u[i];
            h[size_t(t) * N + n] = hn;
            acc += Cm[s(b, n, N, t)] * hn;
          }
          y[t] = acc;
          const double sg = 1 / (1 + std::exp(-z[i]));
          out[i] = acc * z[i] * sg;
        }
        std::vector<double> r(N, 0.0);  // a_{t+1} dL/dh_{t+1}
        for (int t = L - 1; t >= 0; --t) {
          const size_t i = s(b, d, D, t);
          const double sg = 1 / (1 + std::exp(-z[i]));
          dz[i] = dout[i] * y[t] * sg * (1 + z[i] * (1 - sg));
          const double dy = dout[i] * z[i] * sg;
          du[i] += Dskip[d] * dy;
          dD[d] += dy * u[i];
          for (int n = 0; n < N; ++n) {
            const double An = A[size_t(d) * N + n], a = std::exp(delta[i] * An);
            const double hp = t ? h[size_t(t - 1) * N + n] : 0.0;
            const double sn = Cm[s(b, n, N, t)] * dy + r[n];
            dC[s(b, n, N, t)] += dy * h[size_t(t) * N + n];
            dB[s(b, n, N, t)] += sn * delta[i] * u[i];
            du[i] += sn * delta[i] * Bm[s(b, n, N, t)];
            ddelta[i] += sn * (hp * a * An + Bm[s(b, n, N, t)] * u[i]);
            dA[size_t(d) * N + n] += sn * hp * a * delta[i];
            r[n] = a * sn;
          }
        }
      }
  }
};

double rel_err(const std::vector<double>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = got[i] - ref[i];
    if (!(e == e)) return INFINITY;
    num += e * e;
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Fused (T) and naive (f32) scans against the host reference; returns false
// on a mismatch.
template <typename T>
bool check_shape(int B, int L, int D, int N, unsigned seed, bool with_naive) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0, 1);
  HostScan h;
  h.B = B;
  h.L = L;
  h.D = D;
  h.N = N;
  const size_t bdl = size_t(B) * D * L, bnl = size_t(B) * N * L;
  auto gen = [&](size_t n, auto f) {
    std::vector<double> v(n);
    for (double& x : v) x = f();
    return rounded<T>(v);
  };
  h.u = gen(bdl, [&] { return nd(rng); });
  h.delta = gen(bdl, [&] { return 0.005 + ud(rng); });
  h.z = gen(bdl, [&] { return nd(rng); });
  h.dout = gen(bdl, [&] { return nd(rng); });
  h.Bm = gen(bnl, [&] { return nd(rng); });
  h.Cm = gen(bnl, [&] { return nd(rng); });
  h.A = rounded<float>(gen(size_t(D) * N, [&] { return -0.05 - 3 * ud(rng); }));
  h.Dskip = rounded<float>(gen(D, [&] { return nd(rng); }));
  h.run();

  auto u = upload<T>(h.u), delta = upload<T>(h.delta), z = upload<T>(h.z),
       dout = upload<T>(h.dout), Bm = upload<T>(h.Bm), Cm = upload<T>(h.Cm);
  auto A = upload<float>(h.A), Dskip = upload<float>(h.Dskip);
  cu::SelectiveScanParams<T> p;
  p.batch = B;
  p.len = L;
  p.dim = D;
  p.dstate = N;
  p.u = u.data();
  p.delta = delta.data();
  p.z = z.data();
  p.Bm = Bm.data();
  p.Cm = Cm.data();
  p.A = A.data();
  p.Dskip = Dskip.data();
  DeviceBuffer<T> out(bdl), du(bdl), ddelta(bdl), dz(bdl);
  DeviceBuffer<float> cs(cu::selective_scan_states_size(B, L, D, N)), dA(size_t(D) * N),
      dB(bnl), dC(bnl), dD(D);
  dA.fill_bytes(0);
  dD.fill_bytes(0);
  cu::selective_scan_forward<T>(p, out.data(), cs.data(), nullptr);
  cu::SelectiveScanGrads<T> g;
  g.du = du.data();
  g.ddelta = ddelta.data();
  g.dA = dA.data();
  g.dB = dB.data();
  g.dC = dC.data();
  g.dD = dD.data();
  g.dz = dz.data();
  cu::selective_scan_backward<T>(p, cs.data(), dout.data(), g);
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-2;
  const std::vector<std::pair<const char*, double>> errs = {
      {"out", rel_err(download(out), h.out)},   {"du", rel_err(download(du), h.du)},
      {"ddelta", rel_err(download(ddelta), h.ddelta)}, {"dz", rel_err(download(dz), h.dz)},
      {"dA", rel_err(download(dA), h.dA)},      {"dB", rel_err(download(dB), h.dB)},
      {"dC", rel_err(download(dC), h.dC)},      {"dD", rel_err(download(dD), h.dD)}};
  bool ok = true;
  std::fprintf(stderr, "check fused %s B%d L%d D%d N%d:", std::is_same_v<T, float> ? "f32" : "bf16",
               B, L, D, N);
  for (const auto& [name, e] : errs) {
    std::fprintf(stderr, " %s %.1e", name, e);
    ok = ok && e <= tol;
  }
  std::fprintf(stderr, "%s\n", ok ? "" : "  MISMATCH");
  if constexpr (std::is_same_v<T, float>) {
    if (!with_naive) return ok;
    DeviceBuffer<float> states(bdl * N), nout(bdl);
    cu::selective_scan_naive_forward(p, nout.data(), states.data());
    const double e = rel_err(download(nout), h.out);
    std::fprintf(stderr, "check naive f32 B%d L%d D%d N%d: out %.1e%s\n", B, L, D, N, e,
                 e <= 1e-4 ? "" : "  MISMATCH");
    ok = ok && e <= 1e-4;
  }
  return ok;
}

// ---------------------------------------------------------------------------
// Random inputs generated on the device (the largest runs need billions of
// values): a hash of (seed, index) gives two uniforms, Box-Muller a normal;
// shift + scale * normal, through softplus if asked.
// ---------------------------------------------------------------------------
__device__ __forceinline__ uint32_t hash32(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return uint32_t(x);
}

template <typename T>
__global__ void fill_kernel(T* p, size_t n, uint64_t seed, float scale, float shift,
                            bool softplus) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const float u1 = (hash32(seed * 0x9e3779b97f4a7c15ULL + 2 * i) + 1.f) * 2.3283064e-10f;
    const float u2 = hash32(seed * 0x9e3779b97f4a7c15ULL + 2 * i + 1) * 2.3283064e-10f;
    float v = shift + scale * sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
    if (softplus) v = v > 20.f ? v : log1pf(expf(v));
    p[i] = from_double<T>(v);
  }
}

template <typename T>
void fill(DeviceBuffer<T>& d, uint64_t seed, float scale, float shift, bool softplus = false) {
  const size_t n = d.size();
  const unsigned blocks = unsigned(std::min<size_t>((n + 255) / 256, 65535u * 8));
  fill_kernel<T><<<blocks, 256>>>(d.data(), n, seed, scale, shift, softplus);
  MK_CUDA_CHECK(cudaGetLastError());
}

// ---------------------------------------------------------------------------
// Timing.
// ---------------------------------------------------------------------------
struct Timer {
  cudaEvent_t a, b;
  Timer() {
    MK_CUDA_CHECK(cudaEventCreate(&a));
    MK_CUDA_CHECK(cudaEventCreate(&b));
  }
  ~Timer() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  template <class F>
  double ms(F&& f) {
    MK_CUDA_CHECK(cudaEventRecord(a));
    f();
    MK_CUDA_CHECK(cudaEventRecord(b));
    MK_CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    MK_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    return t;
  }
};

// Median of runs of f(k) (k: the run's index, for rotating inputs); one
// warm-up run first, then as many runs as fit ~0.3 s (3..30).
template <class F>
double median_ms(F&& f) {
  Timer timer;
  const double first = timer.ms([&] { f(0); });
  const int reps = int(std::clamp(300.0 / std::max(first, 1e-3), 3.0, 30.0));
  std::vector<double> t(reps);
  for (int i = 0; i < reps; ++i) t[i] = timer.ms([&] { f(i + 1); });
  std::sort(t.begin(), t.end());
  return t[reps / 2];
}

FILE* g_csv = stdout;
void row(const char* impl, const std::string& dtype, const Options& o, int L, const char* pass,
         double ms) {
  std::fprintf(g_csv, "%s,%s,%d,%d,%d,%d,%s,%.6g\n", impl, dtype.c_str(), o.batch, o.dim,
               o.dstate, L, pass, ms);
  std::fflush(g_csv);
  std::fprintf(stderr, "  %-16s %-5s L=%-7d %-7s %10.4f ms\n", impl, dtype.c_str(), L, pass, ms);
}

// The fused scan as the Mamba block calls it: D skip, z gate, softplus(delta
// + bias) fused.
template <typename T>
void bench_fused(const Options& o, bool& stopped) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (int L : o.lengths) {
    if (stopped) break;
    const size_t bdl = size_t(o.batch) * o.dim * L, bnl = size_t(o.batch) * o.dstate * L;
    const size_t set_bytes = (3 * bdl + 2 * bnl) * sizeof(T);
    const size_t work_bytes = 5 * bdl * sizeof(T) + 2 * bnl * sizeof(float) +
                              cu::selective_scan_states_size(o.batch, L, o.dim, o.dstate) * 4;
    // Copies of the inputs so that together they exceed the L2 (60 MB).
    const int n_sets = int(std::clamp<size_t>((size_t(256) << 20) / set_bytes, 1, 16));
    if (double(n_sets * set_bytes + work_bytes) / double(size_t(1) << 30) > o.max_gib) {
      std::fprintf(stderr, "  fused: L=%d needs more than --max-gib; stopping\n", L);
      stopped = true;
      break;
    }
    struct Set {
      DeviceBuffer<T> u, delta, z, Bm, Cm;
    };
    std::vector<Set> sets;
    uint64_t seed = 1;
    for (int s = 0; s < n_sets; ++s) {
      Set st{DeviceBuffer<T>(bdl), DeviceBuffer<T>(bdl), DeviceBuffer<T>(bdl),
             DeviceBuffer<T>(bnl), DeviceBuffer<T>(bnl)};
      fill(st.u, seed++, 1, 0);
      fill(st.delta, seed++, 1, -2);  // softplus(-2 + bias) ~ 0.1
      fill(st.z, seed++, 1, 0);
      fill(st.Bm, seed++, 1, 0);
      fill(st.Cm, seed++, 1, 0);
      sets.push_back(std::move(st));
    }
    std::vector<double> hA(size_t(o.dim) * o.dstate), hD(o.dim), hbias(o.dim);
    for (int d = 0; d < o.dim; ++d) {
      for (int n = 0; n < o.dstate; ++n) hA[size_t(d) * o.dstate + n] = -(n + 1.0);  // S4D-real
      hD[d] = 1.0;
      hbias[d] = 0.5 * nd(rng);
    }
    auto A = upload<float>(hA), Dskip = upload<float>(hD), bias = upload<float>(hbias);
    DeviceBuffer<T> out(bdl), dout(bdl), du(bdl), ddelta(bdl), dz(bdl);
    fill(dout, seed++, 1, 0);
    DeviceBuffer<float> cs(cu::selective_scan_states_size(o.batch, L, o.dim, o.dstate)),
        dA(size_t(o.dim) * o.dstate), dB(bnl), dC(bnl), dD(o.dim), dbias(o.dim);
    dA.fill_bytes(0);
    dD.fill_bytes(0);
    dbias.fill_bytes(0);
    auto params = [&](int k) {
      const Set& s = sets[size_t(k) % sets.size()];
      cu::SelectiveScanParams<T> p;
      p.batch = o.batch;
      p.len = L;
      p.dim = o.dim;
      p.dstate = o.dstate;
      p.u = s.u.data();
      p.delta = s.delta.data();
      p.z = s.z.data();
      p.Bm = s.Bm.data();
      p.Cm = s.Cm.data();
      p.A = A.data();
      p.Dskip = Dskip.data();
      p.delta_bias = bias.data();
      p.delta_softplus = true;
      return p;
    };
    cu::SelectiveScanGrads<T> g;
    g.du = du.data();
    g.ddelta = ddelta.data();
    g.dA = dA.data();
    g.dB = dB.data();
    g.dC = dC.data();
    g.dD = dD.data();
    g.dz = dz.data();
    g.ddelta_bias = dbias.data();
    const double fwd = median_ms([&](int k) {
      cu::selective_scan_forward<T>(params(k), out.data(), cs.data(), nullptr);
    });
    row("mambakit_fused", o.dtype, o, L, "fwd", fwd);
    const double fb = median_ms([&](int k) {
      const auto p = params(k);
      cu::selective_scan_forward<T>(p, out.data(), cs.data(), nullptr);
      cu::selective_scan_backward<T>(p, cs.data(), dout.data(), g);
    });
    row("mambakit_fused", o.dtype, o, L, "fwdbwd", fb);
    if (std::max(fwd, fb) > o.max_ms) stopped = true;
  }
}

// The naive scan (fp32, states (B, D, L, N) in memory).
void bench_naive(const Options& o) {
  for (int L : o.lengths) {
    const size_t bdl = size_t(o.batch) * o.dim * L, bnl = size_t(o.batch) * o.dstate * L;
    const size_t bytes = (bdl * o.dstate + 8 * bdl + 4 * bnl) * sizeof(float);
    if (double(bytes) / double(size_t(1) << 30) > o.max_gib) {
      std::fprintf(stderr, "  naive: L=%d needs %.1f GiB of states; stopping\n", L,
                   double(bytes) / double(size_t(1) << 30));
      return;
    }
    DeviceBuffer<float> u(bdl), delta(bdl), z(bdl), Bm(bnl), Cm(bnl), out(bdl), dout(bdl),
        du(bdl), ddelta(bdl), dz(bdl), dB(bnl), dC(bnl), states(bdl * o.dstate);
    fill(u, 101, 1, 0);
    fill(delta, 102, 1, -2, true);
    fill(z, 103, 1, 0);
    fill(Bm, 104, 1, 0);
    fill(Cm, 105, 1, 0);
    fill(dout, 106, 1, 0);
    std::vector<double> hA(size_t(o.dim) * o.dstate), hD(o.dim, 1.0);
    for (int d = 0; d < o.dim; ++d)
      for (int n = 0; n < o.dstate; ++n) hA[size_t(d) * o.dstate + n] = -(n + 1.0);
    auto A = upload<float>(hA), Dskip = upload<float>(hD);
    DeviceBuffer<float> dA(size_t(o.dim) * o.dstate), dD(o.dim);
    dA.fill_bytes(0);
    dD.fill_bytes(0);
    cu::SelectiveScanParams<float> p;
    p.batch = o.batch;
    p.len = L;
    p.dim = o.dim;
    p.dstate = o.dstate;
    p.u = u.data();
    p.delta = delta.data();
    p.z = z.data();
    p.Bm = Bm.data();
    p.Cm = Cm.data();
    p.A = A.data();
    p.Dskip = Dskip.data();
    cu::SelectiveScanGrads<float> g;
    g.du = du.data();
    g.ddelta = ddelta.data();
    g.dA = dA.data();
    g.dB = dB.data();
    g.dC = dC.data();
    g.dD = dD.data();
    g.dz = dz.data();
    const double fwd = median_ms(
        [&](int) { cu::selective_scan_naive_forward(p, out.data(), states.data()); });
    row("mambakit_naive", "f32", o, L, "fwd", fwd);
    const double fb = median_ms([&](int) {
      cu::selective_scan_naive_forward(p, out.data(), states.data());
      cu::selective_scan_naive_backward(p, states.data(), dout.data(), g);
    });
    row("mambakit_naive", "f32", o, L, "fwdbwd", fb);
    if (std::max(fwd, fb) > o.max_ms) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!mk::cuda::device_available()) {
    std::fprintf(stderr, "bench_gpu_scan: no CUDA device: %s\n",
                 mk::cuda::device_unavailable_reason().c_str());
    return 1;
  }
  std::fprintf(stderr, "bench_gpu_scan on %s\n", mk::cuda::device_description().c_str());
  try {
    if (o.check) {
      bool ok = true;
      // Awkward shapes: several chunks with a partial last one, d_state 1/16/64.
      ok &= check_shape<float>(2, 1500, 33, 16, 11, true);
      ok &= check_shape<float>(1, 300, 5, 1, 12, true);
      ok &= check_shape<float>(1, 2100, 3, 64, 13, true);
      ok &= check_shape<bf16>(2, 1500, 33, 16, 14, false);
      ok &= check_shape<bf16>(1, 700, 7, 5, 15, false);
      if (!ok) {
        std::fprintf(stderr, "bench_gpu_scan: results differ from the reference; not timing\n");
        return 1;
      }
    }
    if (!o.out.empty()) {
      g_csv = std::fopen(o.out.c_str(), "a");
      if (!g_csv) {
        std::fprintf(stderr, "bench_gpu_scan: cannot open %s\n", o.out.c_str());
        return 1;
      }
    }
    if (g_csv == stdout || std::ftell(g_csv) == 0) {
      std::fprintf(g_csv, "impl,dtype,batch,dim,dstate,seqlen,pass,ms\n");
    }
    bool stopped = false;
    if (o.dtype == "bf16")
      bench_fused<bf16>(o, stopped);
    else
      bench_fused<float>(o, stopped);
    if (o.naive) bench_naive(o);
    if (g_csv != stdout) std::fclose(g_csv);
  } catch (const mk::Error& e) {
    std::fprintf(stderr, "bench_gpu_scan: %s\n", e.what());
    return 1;
  }
  return 0;
}
