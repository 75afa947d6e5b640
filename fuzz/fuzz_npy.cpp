// NumPy .npy (read_npy: logits --ids-file, the reference fixtures).
#include "fuzz_common.h"
#include "mambakit/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("array.npy", data, size);
  try {
    const mk::Tensor t = mk::read_npy(path);
    (void)t.numel();
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
  return 0;
}
