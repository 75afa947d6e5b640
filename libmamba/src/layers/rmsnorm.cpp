#include "mambakit/layers/rmsnorm.h"

#include <algorithm>


namespace mk {

template <typename T>
void RMSNorm<T>::declare(ParamStore<T>& ps, const std::string& name, int d, double epsilon) {
  dim = d;
  eps = T(epsilon);
  w = ps.declare(name, {d}, false);
}

template <typename T>
void RMSNorm<T>::init(ParamStore<T>& ps) const {
  std::fill(ps.data() + w, ps.data() + w + dim, T(1));
}

template <typename T>
void RMSNorm<T>::forward(ParamStore<T>& ps, const T* x, T* y, int rows) {
  rstd.resize(ps.backend(), rows);
  ps.backend().rmsnorm_forward(x, ps.data() + w, y, rstd.data(), rows, dim, eps);
}

template <typename T>
void RMSNorm<T>::backward(ParamStore<T>& ps, const T* dy, const T* x, T* dx, int rows) const {
  ps.backend().rmsnorm_backward(dy, x, ps.data() + w, rstd.data(), dx, ps.grad() + w, rows, dim);
}

template struct RMSNorm<float>;
template struct RMSNorm<double>;

}  // namespace mk
