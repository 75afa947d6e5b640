// config.json of a model directory (HF MambaConfig fields), read and
// validated; a config that reads is then loaded as a model directory beside
// the real weights of libmamba/tests/data/hf_mamba_tiny (load_model: the
// layout is checked against the weights before anything is allocated).
#include <filesystem>

#include "fuzz_common.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/io/model_io.h"

namespace {

const std::string& model_dir() {
  static const std::string dir = [] {
    const std::string d = fuzz::scratch_dir() + "/model";
    std::filesystem::create_directories(d);
    std::filesystem::copy_file(MAMBAKIT_SOURCE_DIR "/libmamba/tests/data/hf_mamba_tiny/model.safetensors",
                               d + "/model.safetensors", std::filesystem::copy_options::overwrite_existing);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = model_dir();
  const std::string path = fuzz::write_file("model/config.json", data, size);
  try {
    const mk::ModelConfig cfg = mk::read_model_config(path);
    (void)cfg.dt_rank_resolved();
    (void)cfg.mlp_hidden_resolved();
    if (cfg.uses_mixer("attention")) (void)cfg.n_heads_resolved();
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
    return 0;
  }
  try {
    mk::LoadOptions opt;
    opt.warn = [](const std::string&) {};
    (void)mk::load_model(dir, opt)->num_params();
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, dir);
  }
  return 0;
}
