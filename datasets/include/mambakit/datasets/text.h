// Byte-level text corpora: a file read whole, split into train/validation.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mk::data {

struct ByteSplit {
  std::vector<uint8_t> train, val;
};

// Reads a file as bytes. Throws mk::Error naming the file if it is missing,
// unreadable or empty.
std::vector<uint8_t> read_bytes(const std::string& path);

// The first train_fraction of the bytes for training, the rest for
// validation (a contiguous split, so validation text is unseen text).
// Throws if either part would be shorter than min_part bytes.
ByteSplit split_bytes(const std::vector<uint8_t>& bytes, double train_fraction, size_t min_part,
                      const std::string& source);

}  // namespace mk::data
