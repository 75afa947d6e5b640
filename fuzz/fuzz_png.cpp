// PNG through libpng's simplified API (read_png: any PNG to 8-bit gray), the
// image reader of Pathfinder / Path-X.
#include "fuzz_common.h"
#include "mambakit/datasets/lra.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("image.png", data, size);
  try {
    const mk::data::lra::GrayImage img = mk::data::lra::read_png(path);
    if (img.pixels.size() != size_t(img.width) * size_t(img.height)) {
      std::fprintf(stderr, "fuzz: %dx%d image with %zu pixels\n", img.width, img.height, img.pixels.size());
      std::abort();
    }
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
  return 0;
}
