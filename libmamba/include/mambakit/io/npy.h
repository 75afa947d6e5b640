// NumPy .npy files (format spec: numpy.lib.format), for handing arrays to and
// from Python tools.
#pragma once
#include <string>

#include "mambakit/tensor.h"

namespace mk {

// Writes a C-order NPY v1.0 file, header padded so the data starts at a
// multiple of 64 bytes (as numpy writes it). Supports f32 ('<f4'), f64
// ('<f8'), i32 ('<i4') and u8 ('|u1'). Atomic (temporary file + rename).
void write_npy(const std::string& path, const Tensor& t);

// Reads NPY v1.0/2.0/3.0 files of dtype <f4, <f8, <i4, |u1 (as they are) or
// <i8 (to i32, range-checked), C order. Anything else (big endian, Fortran
// order, a size that does not match the shape, a malformed header) raises
// mk::Error naming the file and the reason.
Tensor read_npy(const std::string& path);

}  // namespace mk
