// safetensors: the whole-file reader (read_safetensors) and the memory-mapped
// one that checkpoints load through (MappedSafetensors::read_f32).
#include <vector>

#include "fuzz_common.h"
#include "mambakit/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("model.safetensors", data, size);
  try {
    mk::SafetensorsData st = mk::read_safetensors(path);
    for (const auto& name : st.names()) (void)st.get(name).numel();
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
  try {
    mk::MappedSafetensors m(path);
    std::vector<float> buf;
    for (const auto& t : m.tensors()) {
      // The header's sizes were checked against the file, so this buffer is
      // bounded by the input size.
      buf.resize(size_t(t.numel));
      m.read_f32(t.name, buf.data());
    }
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
  return 0;
}
