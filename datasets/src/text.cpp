#include "mambakit/datasets/text.h"

#include <fstream>
#include <iterator>

#include "mambakit/error.h"

namespace mk::data {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw Error(path + ": read error");
  if (bytes.empty()) throw Error(path + ": file is empty");
  return bytes;
}

ByteSplit split_bytes(const std::vector<uint8_t>& bytes, double train_fraction, size_t min_part,
                      const std::string& source) {
  if (!(train_fraction > 0 && train_fraction < 1))
    throw Error(source + ": train fraction must be in (0, 1)");
  size_t n_train = size_t(double(bytes.size()) * train_fraction);
  if (n_train < min_part || bytes.size() - n_train < min_part)
    throw Error(source + ": too small (" + std::to_string(bytes.size()) +
                " bytes) for a train/validation split with windows of " +
                std::to_string(min_part) + " bytes");
  ByteSplit s;
  s.train.assign(bytes.begin(), bytes.begin() + n_train);
  s.val.assign(bytes.begin() + n_train, bytes.end());
  return s;
}

}  // namespace mk::data
