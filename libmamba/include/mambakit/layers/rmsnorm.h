// RMSNorm with a learned scale. Saves its input pointer's rstd per row.
#pragma once
#include <string>
#include <vector>

#include "mambakit/params.h"

namespace mk {

template <typename T>
struct RMSNorm {
  int dim = 0;
  T eps = T(1e-5);
  size_t w = 0;
  Buf<T> rstd;  // (rows) saved by forward

  void declare(ParamStore<T>& ps, const std::string& name, int d, double epsilon);
  void init(ParamStore<T>& ps) const;  // weight = 1
  void forward(ParamStore<T>& ps, const T* x, T* y, int rows);
  // dx written, dw accumulated; x is the forward's input.
  void backward(ParamStore<T>& ps, const T* dy, const T* x, T* dx, int rows) const;
};

}  // namespace mk
