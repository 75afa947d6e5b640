// The interface every sequence mixer implements (Mamba, S4D, S4, attention,
// MLP): a residual block is h = h + mixer(RMSNorm(h)), whatever the mixer.
// Each mixer declares its parameters into the model's flat buffer under a
// prefix ("backbone.layers.N.mixer"), saves what its backward needs during
// forward (and says so in its header), and offers a recurrent step for
// generation with a state it sizes itself.
#pragma once
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mambakit/model_config.h"
#include "mambakit/params.h"

namespace mk {

// Per-layer recurrent state: a mixer decides what its buffers hold (Mamba:
// conv window and SSM state; attention: the KV cache; MLP: nothing).
// make_state() creates them on the CPU; step() moves them to the device of
// the parameters on first use.
template <typename T>
struct MixerState {
  std::vector<Buf<T>> bufs;
  long pos = 0;  // tokens consumed so far
};

template <typename T>
class Mixer {
 public:
  virtual ~Mixer() = default;
  virtual void declare(ParamStore<T>& ps, const std::string& prefix, const ModelConfig& cfg) = 0;
  virtual void init(ParamStore<T>& ps, std::mt19937_64& rng, int n_layer) const = 0;
  // x (B, L, Dm) -> out (B, L, Dm); x must stay alive until backward.
  virtual void forward(ParamStore<T>& ps, const T* x, T* out, int batch, int len) = 0;
  // dout (B, L, Dm) -> dx (B, L, Dm) written; parameter gradients accumulated.
  virtual void backward(ParamStore<T>& ps, const T* dout, T* dx) = 0;
  virtual MixerState<T> make_state(int batch) const = 0;
  // x_t (B, Dm) -> out_t (B, Dm); state advanced.
  virtual void step(ParamStore<T>& ps, const T* x_t, T* out_t, MixerState<T>& st, int batch) = 0;
};

// Creates a mixer by name ("mamba", ...); throws mk::Error listing the known
// names for an unknown one.
template <typename T>
std::unique_ptr<Mixer<T>> make_mixer(const std::string& kind);

// The mixer of one layer of a model: make_mixer(kind), except that with
// cfg.bidirectional a Mamba layer becomes a BidirectionalMixer (a second,
// reversed Mamba); S4/S4D read the flag themselves (an anti-causal kernel),
// attention and MLP ignore it.
template <typename T>
std::unique_ptr<Mixer<T>> make_layer_mixer(const std::string& kind, const ModelConfig& cfg);

// The names make_mixer accepts.
std::vector<std::string> mixer_kinds();

}  // namespace mk
