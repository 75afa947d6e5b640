// LRA text formats, one file through every reader of that family: ListOps
// TSV ("Source\tTarget"), byte-level Text TSV ("label\ttext"), Retrieval
// pairs TSV (label, id1, id2, text1, text2) and Pathfinder metadata lines
// (whose image paths point into a root holding one valid PNG).
#include <filesystem>

#include "fuzz_common.h"
#include "mambakit/datasets/lra.h"

namespace lra = mk::data::lra;

namespace {

const std::string& pathfinder_root() {
  static const std::string root = [] {
    const std::string r = fuzz::scratch_dir() + "/pathfinder";
    std::filesystem::create_directories(r + "/imgs/0");
    std::filesystem::create_directories(r + "/metadata");
    lra::GrayImage img;
    img.width = img.height = 4;
    img.pixels.assign(16, 0);
    img.pixels[5] = 255;
    lra::write_png(r + "/imgs/0/sample_0.png", img);
    return r;
  }();
  return root;
}

template <class F>
void run(const std::string& path, F read) {
  try {
    const lra::Dataset d = read();
    for (const auto& e : d.examples) (void)(e.tokens.size() + e.tokens2.size());
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("rows.tsv", data, size);
  lra::ReadOptions o;
  o.max_len = 64;  // truncation is part of what is tested; keeps copies short
  run(path, [&] { return lra::read_listops(path, o); });
  run(path, [&] { return lra::read_text_tsv(path, o); });
  run(path, [&] { return lra::read_retrieval(path, o); });
  (void)pathfinder_root();
  fuzz::write_file("pathfinder/metadata/0.npy", data, size);
  run(pathfinder_root(), [&] { return lra::read_pathfinder(pathfinder_root(), o); });  // names the root or meta
  return 0;
}
