// Token shards (.mkshard): ShardReader's header, size, segment-table and
// token checks, then reads and a window sampler over what it accepted.
#include "fuzz_common.h"
#include "mambakit/datasets/shards.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("train.mkshard", data, size);
  try {
    mk::data::ShardReader sh(path, true);
    const uint64_t n = sh.size();
    if (n > 0) {
      (void)sh.at(n - 1);
      (void)sh.read(n / 2, size_t(n - n / 2));
    }
    mk::data::ShardWindowSampler sampler(sh, 4, 1);
    std::vector<int32_t> w(4);
    for (int i = 0; i < 4; ++i) sampler.next(w.data());
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
  return 0;
}
