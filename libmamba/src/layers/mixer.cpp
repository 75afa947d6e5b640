#include "mambakit/layers/mixer.h"

#include "mambakit/error.h"
#include "mambakit/layers/mamba_mixer.h"

namespace mk {

std::vector<std::string> mixer_kinds() { return {"mamba"}; }

template <typename T>
std::unique_ptr<Mixer<T>> make_mixer(const std::string& kind) {
  if (kind == "mamba") return std::make_unique<MambaMixer<T>>();
  std::string known;
  for (const auto& k : mixer_kinds()) known += (known.empty() ? "" : ", ") + k;
  throw Error("unknown mixer '" + kind + "' (known: " + known + ")");
}

template std::unique_ptr<Mixer<float>> make_mixer<float>(const std::string&);
template std::unique_ptr<Mixer<double>> make_mixer<double>(const std::string&);

}  // namespace mk
