// generation_config.json of a model directory (read_generation_config).
#include "fuzz_common.h"
#include "mambakit/experiments/pretrained.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("generation_config.json", data, size);
  try {
    (void)mk::exp::read_generation_config(path);
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
  return 0;
}
