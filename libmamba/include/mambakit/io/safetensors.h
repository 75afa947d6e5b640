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
#include <cstdint>
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

// A safetensors file opened by memory mapping, for loading checkpoints
// without a second copy of their weights: the header is parsed and checked
// as read_safetensors does, and each tensor is converted from the mapped
// bytes straight into the caller's buffer. The pages read are handed back to
// the kernel as the copy goes (they stay in the page cache), so loading costs
// the destination buffer plus a few MB, however large the file.
class MappedSafetensors {
 public:
  struct Info {
    std::string name;
    std::string dtype;  // as on disk: "F32", "BF16", ...
    Shape shape;
    int64_t numel = 0;
    uint64_t begin = 0, end = 0;  // byte range in the data section
  };

  // Throws mk::Error naming the file (missing, not a safetensors file,
  // truncated, malformed header).
  explicit MappedSafetensors(const std::string& path);
  ~MappedSafetensors();
  MappedSafetensors(const MappedSafetensors&) = delete;
  MappedSafetensors& operator=(const MappedSafetensors&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<Info>& tensors() const { return tensors_; }  // in file order
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // Throws mk::Error naming the tensor and the file.
  const Info& info(const std::string& name) const;

  // Elements [first, first + count) of tensor `name` (count -1: to its
  // end) as float32 into dst: F32 copied, BF16 and F16 widened exactly.
  // Other dtypes and non-finite values raise mk::Error naming the file, the
  // tensor (and the element).
  void read_f32(const std::string& name, float* dst, int64_t first = 0, int64_t count = -1) const;

 private:
  std::string path_;
  const unsigned char* map_ = nullptr;  // the whole file
  size_t map_bytes_ = 0;
  uint64_t data_start_ = 0;
  std::vector<Info> tensors_;
  std::map<std::string, size_t> index_;
};

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
