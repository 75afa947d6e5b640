// Linear layer (PyTorch layout: weight (out, in), optional bias (out)) as a
// view into the flat parameter buffer. Saves nothing itself: the caller keeps
// the input alive for the backward.
#pragma once
#include <string>

#include "mambakit/params.h"

namespace mk {

template <typename T>
struct Linear {
  int in = 0, out = 0;
  size_t w = 0, b = SIZE_MAX;  // offsets into the flat buffers (b: SIZE_MAX = no bias)

  void declare(ParamStore<T>& ps, const std::string& name, int in_features, int out_features,
               bool bias, bool decay_weight = true);
  // y (rows, out) = x (rows, in) W^T + b
  void forward(ParamStore<T>& ps, const T* x, T* y, int rows) const;
  // dx (rows, in) written (if non-null); dW, db accumulated.
  void backward(ParamStore<T>& ps, const T* dy, const T* x, T* dx, int rows) const;
  // Rows [r0, r1) of the weight as their own linear map (used to split a
  // fused projection, e.g. in_proj into x and z, without copying).
  Linear<T> rows(int r0, int r1) const;
};

}  // namespace mk
