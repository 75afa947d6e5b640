// Tensor: a typed, shaped view of memory. Storage is shared between views, so
// slicing and reshaping never copy. Layers work on raw pointers inside their
// params structs; Tensor is the currency of the public API and of checkpoint
// I/O, where dtype and shape must travel with the data.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mk {

enum class DType { f32, f64, i32, bf16, u8 };
enum class Device { cpu, cuda };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
template <typename T> DType dtype_of();

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-filled storage on the CPU.
  Tensor(Shape shape, DType dtype);
  static Tensor zeros(Shape shape, DType dtype) { return Tensor(std::move(shape), dtype); }
  // Wraps memory owned elsewhere (the caller keeps it alive).
  static Tensor borrow(void* data, Shape shape, DType dtype);

  const Shape& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? i + shape_.size() : i); }
  int ndim() const { return int(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const { return Device::cpu; }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool defined() const { return base_ != nullptr; }
  bool is_contiguous() const;

  void* raw() { return base_ + offset_; }
  const void* raw() const { return base_ + offset_; }
  template <typename T> T* data() { check_dtype(dtype_of<T>()); return static_cast<T*>(raw()); }
  template <typename T> const T* data() const { check_dtype(dtype_of<T>()); return static_cast<const T*>(raw()); }

  // Rows [begin, end) of dimension 0, sharing storage.
  Tensor slice(int64_t begin, int64_t end) const;
  // Same storage, new shape (contiguous tensors only; one -1 is inferred).
  Tensor reshape(Shape shape) const;
  // A contiguous copy (of a possibly strided view).
  Tensor clone() const;

 private:
  void check_dtype(DType want) const;
  std::shared_ptr<std::vector<unsigned char>> storage_;
  unsigned char* base_ = nullptr;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  std::vector<int64_t> strides_;  // elements
  DType dtype_ = DType::f32;
};

}  // namespace mk
