// fuzz_replay HARNESS FILE_OR_DIR...: runs one harness over files (a
// directory: each regular file in it, in name order), as libFuzzer would run
// them, without libFuzzer. ctest replays every committed corpus this way
// (fuzz/CMakeLists.txt). A failing input aborts the process (a sanitizer
// report, an expect_error check) or escapes as an exception; either fails
// the test, naming the file.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#define MK_FUZZ_TARGET(name) extern "C" int mk_fuzz_##name(const uint8_t* data, size_t size);
#include "fuzz_registry.inc"
#undef MK_FUZZ_TARGET

namespace {

struct Target {
  const char* name;
  int (*run)(const uint8_t*, size_t);
};

const Target kTargets[] = {
#define MK_FUZZ_TARGET(name) {#name, mk_fuzz_##name},
#include "fuzz_registry.inc"
#undef MK_FUZZ_TARGET
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s HARNESS FILE_OR_DIR...\nharnesses:", argv[0]);
    for (const Target& t : kTargets) std::fprintf(stderr, " %s", t.name);
    std::fprintf(stderr, "\n");
    return 2;
  }
  const Target* target = nullptr;
  for (const Target& t : kTargets)
    if (std::strcmp(t.name, argv[1]) == 0) target = &t;
  if (!target) {
    std::fprintf(stderr, "%s: no harness named '%s'\n", argv[0], argv[1]);
    return 2;
  }
  std::vector<std::string> files;
  for (int i = 2; i < argc; ++i) {
    if (std::filesystem::is_directory(argv[i])) {
      std::vector<std::string> in_dir;
      for (const auto& e : std::filesystem::directory_iterator(argv[i]))
        if (e.is_regular_file()) in_dir.push_back(e.path().string());
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else {
      files.push_back(argv[i]);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "%s: no input files\n", argv[0]);
    return 2;
  }
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "%s: cannot read %s\n", argv[0], f.c_str());
      return 2;
    }
    try {
      target->run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s %s: %s: uncaught exception: %s\n", argv[0], target->name, f.c_str(), e.what());
      return 1;
    }
  }
  std::printf("%s: %zu inputs, no finding\n", target->name, files.size());
  return 0;
}
