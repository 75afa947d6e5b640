// A causal mixer run in both directions (the bidirectional Mamba of
// Caduceus and Vision Mamba, for classification and other tasks that see
// the whole sequence at once):
//   out = forward(x) + reverse_time(reverse(reverse_time(x)))
// where forward and reverse are two mixers of the same kind with their own
// parameters. The forward half is declared under the prefix itself (the
// names a causal mixer of that kind has); the reverse half under
// prefix + ".reverse". Like the S4/S4D anti-causal kernel, the reverse half
// reads future inputs, so there is no recurrent step().
// Saved for the backward: what the two inner mixers save, plus the reversed
// input (the reverse mixer keeps its address).
#pragma once
#include <memory>
#include <random>
#include <string>

#include "mambakit/layers/mixer.h"

namespace mk {

template <typename T>
class BidirectionalMixer : public Mixer<T> {
 public:
  // kind: a causal mixer make_mixer() knows ("mamba").
  explicit BidirectionalMixer(const std::string& kind);
  void declare(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) override;
  void init(ParamStore<T>& ps, std::mt19937_64& rng, int n_layer) const override;
  void forward(ParamStore<T>& ps, const T* x, T* out, int batch, int len) override;
  void backward(ParamStore<T>& ps, const T* dout, T* dx) override;
  MixerState<T> make_state(int batch) const override { return {}; }
  // Throws mk::Error: the reverse half needs the future.
  void step(ParamStore<T>& ps, const T* x_t, T* out_t, MixerState<T>& st, int batch) override;

 private:
  std::string kind_;
  std::unique_ptr<Mixer<T>> forward_, reverse_;
  int dm_ = 0, B_ = 0, L_ = 0;
  Buf<T> x_rev_, out_rev_, d_rev_, dx_rev_;
};

}  // namespace mk
