// LRA image formats: CIFAR-10 binary batches and IDX images + labels (plain
// or gzip, through zlib). PNG has its own harness (fuzz_png.cpp).
//
// IDX needs two files: the input is the images file followed by the labels
// file, split at the last IDX labels magic (00 00 08 01), so a seed is simply
// `cat images labels`. The same bytes are also read as one CIFAR-10 batch.
#include <cstring>

#include "fuzz_common.h"
#include "mambakit/datasets/lra.h"

namespace lra = mk::data::lra;

namespace {

template <class F>
void run(const std::string& path, F read) {
  try {
    read();
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lra::ReadOptions o;
  o.max_examples = 64;

  static const uint8_t kLabelsMagic[4] = {0, 0, 8, 1};
  size_t cut = size;
  for (size_t i = size >= 4 ? size - 4 + 1 : 0; i-- > 0;)
    if (std::memcmp(data + i, kLabelsMagic, 4) == 0) {
      cut = i;
      break;
    }
  const std::string images = fuzz::write_file("images-idx3-ubyte", data, cut);
  const std::string labels = fuzz::write_file("labels-idx1-ubyte", data + cut, size - cut);
  try {
    lra::read_idx(images, labels, o);
  } catch (const mk::Error& e) {
    const std::string msg = e.what();
    if (msg.find(images) == std::string::npos && msg.find(labels) == std::string::npos) fuzz::expect_error(e, images);
    fuzz::expect_error(e, "");
  }

  const std::string all = fuzz::write_file("batch.bin", data, size);
  run(all, [&] { lra::read_cifar10({all}, o); });
  return 0;
}
