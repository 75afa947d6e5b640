// Reader and writer of the safetensors format (the checkpoint format of HF
// transformers), written from its specification:
//   [8 bytes: N, little-endian u64] [N bytes: JSON header] [data]
// The header maps each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end]} (offsets relative to the start of the data section) and may
// carry "__metadata__": {string: string}.
//
// Reading trusts nothing: every length, offset and field is checked against
// the file, and a malformed file raises mk::Error naming the file, the tensor
// and the reason. Dtypes on disk map to Tensor dtypes as
//   F32 -> f32, F64 -> f64, I32 -> i32, U8 -> u8 (copied as they are),
//   BF16, F16 -> f32 (exact widening), I64 -> i32 (range-checked).
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mambakit/tensor.h"

namespace mk {

struct SafetensorsData {
  std::string path;  // the file read, for error messages
  // In file order (by data offset).
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;

  bool has(const std::string& name) const;
  // Throws mk::Error naming the missing tensor and the file.
  const Tensor& get(const std::string& name) const;
  std::vector<std::string> names() const;
};

SafetensorsData read_safetensors(const std::string& path);

// Writes atomically (temporary file, fsync, rename). Tensors are stored in
// sorted-name order, packed; the header is padded with spaces to a multiple
// of 8 bytes so the data section is 8-byte aligned. Names must be unique,
// non-empty and not "__metadata__". Dtypes f32/f64/i32/u8/bf16 are stored as
// F32/F64/I32/U8/BF16, so a round trip is bit-exact (bf16 comes back as the
// f32 it widens to). Non-contiguous tensors are written in logical order.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace mk
