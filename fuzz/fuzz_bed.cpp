// BED intervals (read_bed: the regions of `prepare fasta --bed` and the DNA
// tasks).
#include "fuzz_common.h"
#include "mambakit/datasets/dna.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("regions.bed", data, size);
  try {
    for (const auto& iv : mk::data::read_bed(path)) (void)(iv.end - iv.beg);
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
  return 0;
}
