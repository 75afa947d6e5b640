// Experiment configs (YAML): parse_config with its schema checks, and the
// resolved dump of a config that parses, which must parse back.
#include "fuzz_common.h"
#include "mambakit/experiments/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source = "fuzz.yaml";
  const std::string text(reinterpret_cast<const char*>(data), size);
  mk::exp::RunConfig cfg;
  try {
    cfg = mk::exp::parse_config(text, source);
  } catch (const mk::Error& e) {  // ConfigError is an mk::Error
    fuzz::expect_error(e, source);
    return 0;
  }
  const std::string dumped = mk::exp::dump_config(cfg);
  try {
    mk::exp::parse_config(dumped, "resolved.yaml");
  } catch (const mk::Error& e) {
    std::fprintf(stderr, "fuzz: the resolved dump of a valid config does not parse back:\n%s\n--- dump:\n%s\n",
                 e.what(), dumped.c_str());
    std::abort();
  }
  return 0;
}
