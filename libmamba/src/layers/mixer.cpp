#include "mambakit/layers/mixer.h"

#include "mambakit/error.h"
#include "mambakit/layers/attention_mixer.h"
#include "mambakit/layers/bidirectional_mixer.h"
#include "mambakit/layers/mamba_mixer.h"
#include "mambakit/layers/mlp_mixer.h"
#include "mambakit/layers/s4_mixer.h"
#include "mambakit/layers/s4d_mixer.h"

namespace mk {

std::vector<std::string> mixer_kinds() { return {"mamba", "s4d", "s4", "attention", "mlp"}; }

template <typename T>
std::unique_ptr<Mixer<T>> make_mixer(const std::string& kind) {
  if (kind == "mamba") return std::make_unique<MambaMixer<T>>();
  if (kind == "s4d") return std::make_unique<S4DMixer<T>>();
  if (kind == "s4") return std::make_unique<S4Mixer<T>>();
  if (kind == "attention") return std::make_unique<AttentionMixer<T>>();
  if (kind == "mlp") return std::make_unique<MLPMixer<T>>();
  std::string known;
  for (const auto& k : mixer_kinds()) known += (known.empty() ? "" : ", ") + k;
  throw Error("unknown mixer '" + kind + "' (known: " + known + ")");
}

template <typename T>
std::unique_ptr<Mixer<T>> make_layer_mixer(const std::string& kind, const ModelConfig& cfg) {
  if (cfg.bidirectional && kind == "mamba") return std::make_unique<BidirectionalMixer<T>>(kind);
  return make_mixer<T>(kind);
}

template std::unique_ptr<Mixer<float>> make_mixer<float>(const std::string&);
template std::unique_ptr<Mixer<double>> make_mixer<double>(const std::string&);
template std::unique_ptr<Mixer<float>> make_layer_mixer<float>(const std::string&, const ModelConfig&);
template std::unique_ptr<Mixer<double>> make_layer_mixer<double>(const std::string&, const ModelConfig&);

}  // namespace mk
