#include "mambakit/io/checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "mambakit/error.h"
#include "mambakit/io/model_io.h"
#include "mambakit/io/safetensors.h"

namespace mk {

namespace fs = std::filesystem;

void save_model(const std::string& dir, const SequenceModel<float>& model) {
  fs::create_directories(dir);
  // A host copy of the flat buffer (the parameters may live on the GPU): the
  // bytes written are the same whichever device trained the model.
  const auto& ps = model.params();
  std::vector<float> host = ps.host_data();
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& e : ps.entries())
    tensors.emplace_back(e.name, Tensor::borrow(host.data() + e.offset, e.shape, DType::f32));
  write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  write_model_config(dir + "/config.json", model.config());
}

void load_params(const std::string& path, SequenceModel<float>& model) {
  SafetensorsData st = read_safetensors(path);
  auto& ps = model.params();
  MK_CHECK(ps.device() == Device::cpu, path + ": load parameters before moving the model to the GPU");
  for (const auto& e : ps.entries()) {
    if (!st.has(e.name)) throw Error(path + ": missing tensor '" + e.name + "'");
    const Tensor& t = st.get(e.name);
    if (t.shape() != e.shape)
      throw Error(path + ": tensor '" + e.name + "' has shape " + shape_str(t.shape()) +
                  ", the model expects " + shape_str(e.shape));
    if (t.dtype() != DType::f32)
      throw Error(path + ": tensor '" + e.name + "' has dtype " + dtype_name(t.dtype()) +
                  ", expected a floating-point tensor");
    const float* src = t.data<float>();
    for (size_t i = 0; i < e.numel; ++i)
      if (!std::isfinite(src[i]))
        throw Error(path + ": tensor '" + e.name + "' holds a non-finite value at element " +
                    std::to_string(i));
    std::memcpy(ps.data() + e.offset, src, e.numel * sizeof(float));
  }
  // A tied head may be stored explicitly; it must then equal the embedding.
  if (st.has("lm_head.weight")) {
    const Tensor& h = st.get("lm_head.weight");
    const auto& emb = ps.entry("backbone.embeddings.weight");
    if (h.shape() != emb.shape || h.dtype() != DType::f32 ||
        std::memcmp(h.data<float>(), ps.data() + emb.offset, emb.numel * sizeof(float)) != 0)
      throw Error(path + ": lm_head.weight differs from the embedding, but mambakit ties them");
  }
}

std::unique_ptr<SequenceModel<float>> load_model(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error(dir + ": not a model directory");
  ModelConfig cfg = read_model_config(dir + "/config.json");
  auto model = std::make_unique<SequenceModel<float>>(cfg);
  load_params(dir + "/model.safetensors", *model);
  return model;
}

}  // namespace mk
