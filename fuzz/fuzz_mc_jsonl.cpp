// Multiple-choice JSON Lines ({"context", "choices", "gold"} per line), the
// zero-shot evaluation input; items it accepts are scored with a stand-in
// log-likelihood.
#include "fuzz_common.h"
#include "mambakit/evaluation/multiple_choice.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("items.jsonl", data, size);
  try {
    const auto items = mk::eval::read_mc_jsonl(path);
    const auto r = mk::eval::score_multiple_choice(
        items, [](const std::string& c, const std::string& x) { return -double(c.size() % 7 + x.size()); });
    (void)r.acc;
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
  return 0;
}
