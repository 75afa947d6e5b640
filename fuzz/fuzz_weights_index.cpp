// model.safetensors.index.json (the shard list of a sharded checkpoint):
// load_params through an index read from the input, in a directory holding
// the real bf16 shards of libmamba/tests/data/hf_mamba_sharded_bf16, into
// the model of that fixture's config.json.
#include <filesystem>

#include "fuzz_common.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/io/model_io.h"

namespace fsys = std::filesystem;

namespace {

const std::string kFixture = MAMBAKIT_SOURCE_DIR "/libmamba/tests/data/hf_mamba_sharded_bf16";

mk::SequenceModel<float>& model() {
  static const std::unique_ptr<mk::SequenceModel<float>> m = [] {
    const std::string dir = fuzz::scratch_dir() + "/ckpt";
    fsys::create_directories(dir);
    for (const auto& e : fsys::directory_iterator(kFixture))
      if (e.path().extension() == ".safetensors")
        fsys::copy_file(e.path(), dir + "/" + e.path().filename().string(), fsys::copy_options::overwrite_existing);
    return std::make_unique<mk::SequenceModel<float>>(mk::read_model_config(kFixture + "/config.json"));
  }();
  return *m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mk::SequenceModel<float>& m = model();
  const std::string path = fuzz::write_file("ckpt/model.safetensors.index.json", data, size);
  mk::LoadOptions opt;
  opt.warn = [](const std::string&) {};
  try {
    mk::load_params(path, m, opt);
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, "");
  }
  return 0;
}
