// Google Benchmark: the non-scan work of a Mamba training step, at the size
// of the model tools/reference/bench_vs_transformers.py trains (d_model 256,
// 4 layers, d_inner 512, d_state 16, dt_rank 16, vocab 256, batch 8 x 256
// tokens = 2048 rows):
//   - the four activation loops (softplus and SiLU, forward and backward)
//     over 2048 x 512 x 4 floats, every layer's worth at once;
//   - the causal conv and its SiLU, forward and backward, fused (what a
//     Mamba layer runs) and as the two ops apart, for all four layers
//     (each layer's (8, 256, 512) input is its own, as in training);
//   - dt_proj and its softplus the same way (linear_softplus against
//     linear then softplus);
//   - every matrix product of the step, as Linear calls it: the forward,
//     and the backward's dx and dW products (linear_backward), per layer
//     shape, through OpenBLAS (amx:0) and on AMX tiles (amx:1, where the
//     CPU has them). FLOP/s is 2 x rows x in x out per product;
//   - the core's peak: independent FMAs with AVX2 and with AVX-512 on one
//     thread (FmaPeak), the ceiling the products' FLOP/s are read against.
// The products' times summed over the step (x 4 layers, lm_head once) are
// the floor of a training step that any kernel work elsewhere cannot go
// below; bench/README.md records them. Threads: OMP_NUM_THREADS (the
// products split their output over the OpenMP threads, one single-threaded
// BLAS call per block, as in training).
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <random>
#include <string>
#include <vector>

#include "mambakit/blas_core.h"
#include "mambakit/cpu_isa.h"
#include "mambakit/ops/activations.h"
#include "mambakit/ops/conv1d.h"
#include "mambakit/ops/linear_softplus.h"
#include "mambakit/ops/matmul.h"

namespace {

constexpr int kRows = 8 * 256;  // batch x tokens
constexpr size_t kActElems = size_t(kRows) * 512 * 4;

std::vector<float> random_floats(size_t n, float scale, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

// Arguments of the activations spread over where the exp and log1p
// branches of both functions matter (|x| up to about 10).
struct ActData {
  std::vector<float> x = random_floats(kActElems, 3.f, 1), dy = random_floats(kActElems, 1.f, 2),
                     out = std::vector<float>(kActElems);
};
// One instance of each benchmark's data, made on first use.
template <class Data>
Data& bench_data() {
  static Data d;
  return d;
}

template <class F>
void run_activation(benchmark::State& state, F f) {
  auto& d = bench_data<ActData>();
  for (auto _ : state) {
    f(d);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(kActElems));
}

void BM_SoftplusForward(benchmark::State& s) {
  run_activation(s, [](ActData& d) {
    mk::ops::softplus_forward(d.x.data(), d.out.data(), kActElems);
  });
}
void BM_SoftplusBackward(benchmark::State& s) {
  run_activation(s, [](ActData& d) {
    mk::ops::softplus_backward(d.dy.data(), d.x.data(), d.out.data(), kActElems);
  });
}
void BM_SiluForward(benchmark::State& s) {
  run_activation(s, [](ActData& d) { mk::ops::silu_forward(d.x.data(), d.out.data(), kActElems); });
}
void BM_SiluBackward(benchmark::State& s) {
  run_activation(s, [](ActData& d) {
    mk::ops::silu_backward(d.dy.data(), d.x.data(), d.out.data(), kActElems);
  });
}
// Four layers' conv inputs, weights and gradients (B 8, L 256, D 512, K 4).
struct ConvData {
  static constexpr int kLayers = 4;
  const mk::ops::Conv1dShape shape{8, 256, 512, 4};
  const size_t n = size_t(kRows) * 512;
  std::vector<float> x = random_floats(n * kLayers, 1.f, 3), dy = random_floats(n * kLayers, 1.f, 4),
                     w = random_floats(512 * 4, 0.5f, 5), bias = random_floats(512, 0.5f, 6),
                     y = std::vector<float>(n * kLayers), pre = std::vector<float>(n * kLayers),
                     dx = std::vector<float>(n * kLayers), dw = std::vector<float>(512 * 4),
                     db = std::vector<float>(512);
};
// f(d, l) for each of Data's kLayers layers per iteration; items: the
// layers' n outputs each.
template <class Data, class F>
void run_layers(benchmark::State& state, F f) {
  auto& d = bench_data<Data>();
  for (auto _ : state) {
    for (int l = 0; l < Data::kLayers; ++l) f(d, l);
    benchmark::DoNotOptimize(d.y.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(d.n) * Data::kLayers);
}
void run_conv(benchmark::State& state, void (*f)(ConvData&, size_t)) {
  run_layers<ConvData>(state, [f](ConvData& d, int l) { f(d, l * d.n); });
}

void BM_ConvSiluFusedForward(benchmark::State& s) {
  run_conv(s, [](ConvData& d, size_t o) {
    mk::ops::conv1d_silu_forward(d.shape, d.x.data() + o, d.w.data(), d.bias.data(), d.y.data() + o);
  });
}
void BM_ConvSiluApartForward(benchmark::State& s) {
  run_conv(s, [](ConvData& d, size_t o) {
    mk::ops::conv1d_causal_forward(d.shape, d.x.data() + o, d.w.data(), d.bias.data(),
                                   d.pre.data() + o);
    mk::ops::silu_forward(d.pre.data() + o, d.y.data() + o, d.n);
  });
}
void BM_ConvSiluFusedBackward(benchmark::State& s) {
  run_conv(s, [](ConvData& d, size_t o) {
    mk::ops::conv1d_silu_backward(d.shape, d.dy.data() + o, d.x.data() + o, d.w.data(),
                                  d.bias.data(), d.dx.data() + o, d.dw.data(), d.db.data());
  });
}
// Apart, the backward reads the saved pre-activation (the fused one
// recomputes it).
void BM_ConvSiluApartBackward(benchmark::State& s) {
  run_conv(s, [](ConvData& d, size_t o) {
    mk::ops::silu_backward(d.dy.data() + o, d.pre.data() + o, d.y.data() + o, d.n);
    mk::ops::conv1d_causal_backward(d.shape, d.y.data() + o, d.x.data() + o, d.w.data(),
                                    d.dx.data() + o, d.dw.data(), d.db.data());
  });
}
BENCHMARK(BM_ConvSiluFusedForward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ConvSiluApartForward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ConvSiluFusedBackward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ConvSiluApartBackward)->Unit(benchmark::kMillisecond);

// Four layers' dt_proj (dt_rank 16 -> d_inner 512) and its softplus: fused
// (what a Mamba layer runs: the forward writes delta alone, the backward
// takes softplus's gradient from it) and as the product and the activation
// apart (the forward also writes the pre-activation, the backward reads
// it). Bias near -4, where Mamba's initialisation puts it.
struct DtProjData {
  static constexpr int kLayers = 4, kIn = 16, kOut = 512;
  const size_t n = size_t(kRows) * kOut;
  std::vector<float> x = random_floats(size_t(kRows) * kIn * kLayers, 1.f, 7),
                     w = random_floats(size_t(kOut) * kIn, 0.25f, 8),
                     bias = std::vector<float>(kOut, -4.f),
                     dy = random_floats(n * kLayers, 1.f, 9), y = std::vector<float>(n * kLayers),
                     pre = std::vector<float>(n * kLayers), g = std::vector<float>(n),
                     dx = std::vector<float>(size_t(kRows) * kIn), dw = std::vector<float>(kOut * kIn),
                     db = std::vector<float>(kOut);
};
// f(d, x offset, y offset) per layer.
void run_dt_proj(benchmark::State& state, void (*f)(DtProjData&, size_t, size_t)) {
  run_layers<DtProjData>(state, [f](DtProjData& d, int l) {
    f(d, size_t(l) * kRows * DtProjData::kIn, l * d.n);
  });
}

void BM_DtProjSoftplusFusedForward(benchmark::State& s) {
  run_dt_proj(s, [](DtProjData& d, size_t xo, size_t o) {
    mk::ops::linear_softplus_forward(d.x.data() + xo, d.w.data(), d.bias.data(), d.y.data() + o,
                                     kRows, DtProjData::kIn, DtProjData::kOut);
  });
}
void BM_DtProjSoftplusApartForward(benchmark::State& s) {
  run_dt_proj(s, [](DtProjData& d, size_t xo, size_t o) {
    mk::ops::linear_forward(d.x.data() + xo, d.w.data(), d.bias.data(), d.pre.data() + o, kRows,
                            DtProjData::kIn, DtProjData::kOut);
    mk::ops::softplus_forward(d.pre.data() + o, d.y.data() + o, d.n);
  });
}
void BM_DtProjSoftplusFusedBackward(benchmark::State& s) {
  run_dt_proj(s, [](DtProjData& d, size_t xo, size_t o) {
    mk::ops::linear_softplus_backward(d.dy.data() + o, d.y.data() + o, d.x.data() + xo,
                                      d.w.data(), d.dx.data(), d.dw.data(), d.db.data(), kRows,
                                      DtProjData::kIn, DtProjData::kOut);
  });
}
void BM_DtProjSoftplusApartBackward(benchmark::State& s) {
  run_dt_proj(s, [](DtProjData& d, size_t xo, size_t o) {
    mk::ops::softplus_backward(d.dy.data() + o, d.pre.data() + o, d.g.data(), d.n);
    mk::ops::linear_backward(d.g.data(), d.x.data() + xo, d.w.data(), d.dx.data(), d.dw.data(),
                             d.db.data(), kRows, DtProjData::kIn, DtProjData::kOut);
  });
}
BENCHMARK(BM_DtProjSoftplusFusedForward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DtProjSoftplusApartForward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DtProjSoftplusFusedBackward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DtProjSoftplusApartBackward)->Unit(benchmark::kMillisecond);

BENCHMARK(BM_SoftplusForward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SoftplusBackward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SiluForward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SiluBackward)->Unit(benchmark::kMillisecond);

// One Linear of the model: y = x W^T (+ b) over kRows rows.
struct LinearData {
  int in, out;
  bool bias;
  std::vector<float> x, W, b, y, dy, dx, dW, db;
  LinearData(int in_, int out_, bool bias_)
      : in(in_),
        out(out_),
        bias(bias_),
        x(random_floats(size_t(kRows) * in_, 1.f, 3)),
        W(random_floats(size_t(out_) * in_, 0.05f, 4)),
        b(size_t(out_), 0.f),
        y(size_t(kRows) * out_),
        dy(random_floats(size_t(kRows) * out_, 1.f, 5)),
        dx(size_t(kRows) * in_),
        dW(size_t(out_) * in_),
        db(size_t(out_)) {}
};

void set_flops(benchmark::State& state, const LinearData& d, int products) {
  state.counters["FLOP/s"] = benchmark::Counter(
      2.0 * kRows * d.in * d.out * products * double(state.iterations()),
      benchmark::Counter::kIsRate);
}

// range(3): the products on AMX tiles (1) or in BLAS (0). False (and the
// run marked skipped) where the CPU has no AMX or MAMBAKIT_ISA is below
// avx512.
bool use_amx(benchmark::State& state) {
  const bool amx = state.range(3) != 0;
  if (amx && !mk::cpu_has_amx()) {
    state.SkipWithError("this CPU or kernel has no AMX with bfloat16");
    return false;
  }
  mk::set_amx_products_for_testing(amx);
  if (amx && !mk::amx_products_active()) {
    state.SkipWithError("AMX products need the avx512 ISA (MAMBAKIT_ISA chose another)");
    return false;
  }
  return true;
}

// range(0), range(1), range(2): in and out features, whether it has a bias.
void BM_LinearForward(benchmark::State& state) {
  LinearData d(int(state.range(0)), int(state.range(1)), state.range(2) != 0);
  if (!use_amx(state)) return;
  for (auto _ : state) {
    mk::ops::linear_forward(d.x.data(), d.W.data(), d.bias ? d.b.data() : nullptr, d.y.data(),
                            kRows, d.in, d.out);
    benchmark::ClobberMemory();
  }
  set_flops(state, d, 1);
}
// dx and dW (and db), as a layer's backward calls it.
void BM_LinearBackward(benchmark::State& state) {
  LinearData d(int(state.range(0)), int(state.range(1)), state.range(2) != 0);
  if (!use_amx(state)) return;
  for (auto _ : state) {
    mk::ops::linear_backward(d.dy.data(), d.x.data(), d.W.data(), d.dx.data(), d.dW.data(),
                             d.bias ? d.db.data() : nullptr, kRows, d.in, d.out);
    benchmark::ClobberMemory();
  }
  set_flops(state, d, 2);
}

// in_proj (256 -> 2 x 512), x_proj (512 -> 16 + 2 x 16), dt_proj (16 -> 512,
// the only one with a bias), out_proj (512 -> 256), lm_head (256 -> 256
// vocabulary); each with its products in BLAS and on AMX tiles.
void model_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"in", "out", "bias", "amx"});
  for (int amx : {0, 1}) {
    b->Args({256, 1024, 0, amx});
    b->Args({512, 48, 0, amx});
    b->Args({16, 512, 1, amx});
    b->Args({512, 256, 0, amx});
    b->Args({256, 256, 0, amx});
  }
  b->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_LinearForward)->Apply(model_shapes);
BENCHMARK(BM_LinearBackward)->Apply(model_shapes);

// The core's multiply-add peak: 12 independent chains of FMAs (more than the
// FMA latency times the FMA ports of any current x86 core, so the loop is
// bound by throughput alone), each FMA counted as 2 FLOPs per lane. The
// functions carry their own target flags: the file is built for plain
// x86-64, and each runs only where the CPU supports it.
constexpr int kFmaChains = 12;
constexpr long kFmaSteps = 1L << 20;

// One body for both widths: V is the vector type, P the prefix of its
// intrinsics (_mm256, _mm512).
#define MK_FMA_CHAINS(NAME, TARGET, V, P)                                          \
  __attribute__((target(TARGET))) float NAME(float x, float y) {                   \
    V acc[kFmaChains];                                                             \
    for (int i = 0; i < kFmaChains; ++i) acc[i] = P##_set1_ps(float(i));           \
    const V a = P##_set1_ps(x), b = P##_set1_ps(y);                                \
    for (long s = 0; s < kFmaSteps; ++s)                                           \
      for (int i = 0; i < kFmaChains; ++i) acc[i] = P##_fmadd_ps(acc[i], a, b);    \
    V sum = acc[0];                                                                \
    for (int i = 1; i < kFmaChains; ++i) sum = P##_add_ps(sum, acc[i]);            \
    return P##_cvtss_f32(sum);                                                     \
  }
MK_FMA_CHAINS(fma_chains_avx2, "avx2,fma", __m256, _mm256)
MK_FMA_CHAINS(fma_chains_avx512, "avx512f", __m512, _mm512)
#undef MK_FMA_CHAINS

bool cpu_runs(mk::Isa isa) {
  for (mk::Isa s : mk::supported_isas())
    if (s == isa) return true;
  return false;
}

void BM_FmaPeak(benchmark::State& state, mk::Isa isa) {
  if (!cpu_runs(isa)) {
    state.SkipWithError((std::string("this CPU does not run ") + mk::isa_name(isa)).c_str());
    return;
  }
  const int lanes = isa == mk::Isa::avx512 ? 16 : 8;
  // x < 1 keeps the chains bounded (they converge to y / (1 - x)); the
  // operands go through memory the compiler cannot see into, so it cannot
  // fold the loop.
  float x = 0.999f, y = 1e-4f;
  for (auto _ : state) {
    benchmark::DoNotOptimize(x);
    benchmark::DoNotOptimize(y);
    float r = isa == mk::Isa::avx512 ? fma_chains_avx512(x, y) : fma_chains_avx2(x, y);
    benchmark::DoNotOptimize(r);
  }
  state.counters["FLOP/s"] = benchmark::Counter(
      2.0 * lanes * kFmaChains * double(kFmaSteps) * double(state.iterations()),
      benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_FmaPeak, avx2, mk::Isa::avx2)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_FmaPeak, avx512, mk::Isa::avx512)->Unit(benchmark::kMillisecond);

}  // namespace

// BENCHMARK_MAIN, after the restart that gives OpenBLAS AVX2 or AVX-512
// kernels on a CPU it does not know (blas_core.h); the kernel set is printed
// in the context lines.
int main(int argc, char** argv) {
  mk::restart_with_better_blas_core(argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("blas_core", mk::blas_core_description());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
