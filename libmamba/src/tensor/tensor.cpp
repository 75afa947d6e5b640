// Tensor: shape/stride bookkeeping over shared byte storage.
#include "mambakit/tensor.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "mambakit/error.h"

namespace mk {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i32: return 4;
    case DType::bf16: return 2;
    case DType::u8: return 1;
  }
  throw Error("dtype_size: unknown dtype " + std::to_string(int(t)));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::bf16: return "bf16";
    case DType::u8: return "u8";
  }
  return "unknown";
}

template <> DType dtype_of<float>() { return DType::f32; }
template <> DType dtype_of<double>() { return DType::f64; }
template <> DType dtype_of<int32_t>() { return DType::i32; }
template <> DType dtype_of<uint8_t>() { return DType::u8; }

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + ")";
}

namespace {

std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// Dimensions are non-negative and, zeros aside, multiply within int64, so
// neither the element count nor a stride can overflow.
void check_shape(const Shape& s, const char* where) {
  int64_t nonzero = 1;
  for (int64_t d : s) {
    MK_CHECK(d >= 0, std::string(where) + ": negative dimension in shape " + shape_str(s));
    MK_CHECK(d == 0 || nonzero <= INT64_MAX / d, std::string(where) + ": shape " + shape_str(s) + " has too many elements");
    if (d != 0) nonzero *= d;
  }
}

}  // namespace

Tensor::Tensor(Shape shape, DType dtype) : shape_(std::move(shape)), dtype_(dtype) {
  check_shape(shape_, "Tensor");
  strides_ = contiguous_strides(shape_);
  // At least one byte so that an empty tensor is still defined().
  storage_ = std::make_shared<std::vector<unsigned char>>(std::max<size_t>(1, nbytes()), 0);
  base_ = storage_->data();
}

Tensor Tensor::borrow(void* data, Shape shape, DType dtype) {
  check_shape(shape, "Tensor::borrow");
  MK_CHECK(data != nullptr || shape_numel(shape) == 0,
           "Tensor::borrow: null pointer for shape " + shape_str(shape));
  Tensor t;
  t.base_ = static_cast<unsigned char*>(data);
  t.shape_ = std::move(shape);
  t.strides_ = contiguous_strides(t.shape_);
  t.dtype_ = dtype;
  return t;
}

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    // A dimension of size 1 is never stepped over, so its stride is free.
    if (shape_[i] != 1 && strides_[i] != expect) return false;
    expect *= shape_[i];
  }
  return true;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  MK_CHECK(defined(), "Tensor::slice: undefined tensor");
  MK_CHECK(ndim() >= 1, "Tensor::slice: cannot slice a 0-d tensor");
  MK_CHECK(0 <= begin && begin <= end && end <= shape_[0],
           "Tensor::slice: rows [" + std::to_string(begin) + ", " + std::to_string(end) +
               ") out of range for shape " + shape_str(shape_));
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.offset_ += size_t(begin * strides_[0]) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  MK_CHECK(defined(), "Tensor::reshape: undefined tensor");
  MK_CHECK(is_contiguous(), "Tensor::reshape: tensor of shape " + shape_str(shape_) +
                                " is not contiguous (clone() it first)");
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      MK_CHECK(infer < 0, "Tensor::reshape: more than one -1 in " + shape_str(shape));
      infer = int(i);
    } else {
      MK_CHECK(shape[i] >= 0, "Tensor::reshape: invalid dimension in " + shape_str(shape));
      known *= shape[i];
    }
  }
  const int64_t n = numel();
  if (infer >= 0) {
    MK_CHECK(known != 0 && n % known == 0, "Tensor::reshape: cannot infer -1 in " +
                                               shape_str(shape) + " for " + std::to_string(n) +
                                               " elements of shape " + shape_str(shape_));
    shape[infer] = n / known;
  }
  MK_CHECK(shape_numel(shape) == n, "Tensor::reshape: shape " + shape_str(shape_) + " (" +
                                        std::to_string(n) + " elements) cannot become " +
                                        shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.strides_ = contiguous_strides(t.shape_);
  return t;
}

Tensor Tensor::clone() const {
  MK_CHECK(defined(), "Tensor::clone: undefined tensor");
  Tensor out(shape_, dtype_);
  const size_t es = dtype_size(dtype_);
  if (is_contiguous()) {
    std::memcpy(out.raw(), raw(), nbytes());
    return out;
  }
  // Strided view: walk the elements in row-major order with an index counter.
  const int64_t n = numel();
  std::vector<int64_t> idx(shape_.size(), 0);
  const unsigned char* src = static_cast<const unsigned char*>(raw());
  unsigned char* dst = static_cast<unsigned char*>(out.raw());
  for (int64_t e = 0; e < n; ++e) {
    int64_t off = 0;
    for (size_t i = 0; i < idx.size(); ++i) off += idx[i] * strides_[i];
    std::memcpy(dst + e * es, src + off * es, es);
    for (size_t i = idx.size(); i-- > 0;) {
      if (++idx[i] < shape_[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

void Tensor::check_dtype(DType want) const {
  if (want != dtype_)
    throw Error(std::string("Tensor::data: tensor of shape ") + shape_str(shape_) + " has dtype " +
                dtype_name(dtype_) + ", requested " + dtype_name(want));
}

}  // namespace mk
