// Helpers for the mixer tests (S4D, S4, attention, MLP, hybrids): the
// finite-difference check of a mixer's input and every parameter, and the
// comparison of a mixer's recurrent step() with its full forward().
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "mambakit/layers/mixer.h"
#include "test_util.h"

namespace mk::test {

// A mixer declared under "mixer" into its own ParamStore, initialised.
template <typename T>
struct MixerUnderTest {
  ParamStore<T> ps;
  std::unique_ptr<Mixer<T>> mixer;
  MixerUnderTest(const std::string& kind, const ModelConfig& cfg, uint64_t seed = 3) {
    mixer = make_mixer<T>(kind);
    mixer->declare(ps, "mixer", cfg);
    ps.finalize();
    std::mt19937_64 rng(seed);
    mixer->init(ps, rng, cfg.n_layer);
  }
  T* param(const std::string& name) { return ps.param("mixer." + name); }
};

// Adds N(0, scale) noise to every parameter (moving them off symmetric
// inits, so a wrong gradient cannot hide).
template <typename T>
void perturb_params(ParamStore<T>& ps, unsigned seed, double scale) {
  auto noise = randn<double>(ps.size(), seed, scale);
  for (size_t i = 0; i < ps.size(); ++i) ps.data()[i] += T(noise[i]);
}

// Finite-difference check of every parameter in ps against ps.grad(), which
// the caller filled with one backward of loss(). scale_override: see
// grad_check (whole models pass their largest gradient).
inline void check_param_gradients(ParamStore<double>& ps, const std::function<double()>& loss,
                                  double tol, size_t max_checks, double scale_override = 0) {
  for (const auto& e : ps.entries()) {
    std::vector<double> p(ps.data() + e.offset, ps.data() + e.offset + e.numel);
    std::vector<double> g(ps.grad() + e.offset, ps.grad() + e.offset + e.numel);
    auto f = [&] {
      std::copy(p.begin(), p.end(), ps.data() + e.offset);
      return loss();
    };
    EXPECT_TRUE(grad_check(e.name, p, g, f, tol, max_checks, 1e-3, 1e-10, scale_override));
    std::copy(p.begin(), p.end(), ps.data() + e.offset);
  }
}

// The largest |gradient| in the store.
inline double max_abs_grad(const ParamStore<double>& ps) {
  double m = 0;
  for (size_t i = 0; i < ps.size(); ++i) m = std::max(m, std::fabs(ps.grad()[i]));
  return m;
}

// Logits of a SequenceModel stepped token by token over ids (B, L) from a
// fresh state (left in *state if given), laid out as the full forward's
// (B, L, V).
template <typename Model>
std::vector<float> stepped_logits(Model& model, const std::vector<int32_t>& ids, int B, int L,
                                  typename Model::State* state = nullptr) {
  const int V = model.config().vocab_size;
  typename Model::State local = model.make_state(B);
  typename Model::State& st = state ? *state : local;
  std::vector<float> out(size_t(B) * L * V), lt(size_t(B) * V);
  std::vector<int32_t> tok(B);
  for (int t = 0; t < L; ++t) {
    for (int b = 0; b < B; ++b) tok[b] = ids[size_t(b) * L + t];
    model.step(tok.data(), st, lt.data());
    for (int b = 0; b < B; ++b)
      std::copy_n(lt.data() + size_t(b) * V, V, out.data() + (size_t(b) * L + t) * V);
  }
  return out;
}

// Loss = sum(out * r) over a random r; checks dx and every parameter.
inline void check_mixer_gradients(Mixer<double>& mixer, ParamStore<double>& ps, int dm, int B, int L,
                                  unsigned seed, double tol = 1e-6, size_t max_checks = 100) {
  std::vector<double> x = randn<double>(size_t(B) * L * dm, seed);
  std::vector<double> r = randn<double>(x.size(), seed + 1);
  std::vector<double> out(x.size()), dx(x.size());
  auto loss = [&] {
    mixer.forward(ps, x.data(), out.data(), B, L);
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += out[i] * r[i];
    return s;
  };
  loss();
  ps.zero_grad();
  mixer.backward(ps, r.data(), dx.data());
  std::vector<double> gx = dx;
  EXPECT_TRUE(grad_check("mixer input", x, gx, loss, tol, max_checks));
  check_param_gradients(ps, loss, tol, max_checks);
}

// Runs forward on x (B, L, dm), then step() token by token from a fresh
// state; returns (full, stepped) outputs, both (B, L, dm).
template <typename T>
std::pair<std::vector<T>, std::vector<T>> forward_and_steps(Mixer<T>& mixer, ParamStore<T>& ps,
                                                            const std::vector<T>& x, int dm, int B,
                                                            int L) {
  std::vector<T> full(x.size()), stepped(x.size());
  mixer.forward(ps, x.data(), full.data(), B, L);
  MixerState<T> st = mixer.make_state(B);
  std::vector<T> xt(size_t(B) * dm), ot(size_t(B) * dm);
  for (int t = 0; t < L; ++t) {
    for (int b = 0; b < B; ++b)
      std::copy_n(x.data() + (size_t(b) * L + t) * dm, dm, xt.data() + size_t(b) * dm);
    mixer.step(ps, xt.data(), ot.data(), st, B);
    for (int b = 0; b < B; ++b)
      std::copy_n(ot.data() + size_t(b) * dm, dm, stepped.data() + (size_t(b) * L + t) * dm);
  }
  EXPECT_EQ(st.pos, L);
  return {full, stepped};
}

// max |a - b| / max |b|
template <typename T>
double max_rel_error(const std::vector<T>& a, const std::vector<T>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return den > 0 ? num / den : num;
}

}  // namespace mk::test
