#include "mambakit/layers/linear.h"


namespace mk {

template <typename T>
void Linear<T>::declare(ParamStore<T>& ps, const std::string& name, int in_features,
                        int out_features, bool bias, bool decay_weight) {
  in = in_features;
  out = out_features;
  w = ps.declare(name + ".weight", {out, in}, decay_weight);
  b = bias ? ps.declare(name + ".bias", {out}, false) : SIZE_MAX;
}

template <typename T>
void Linear<T>::forward(ParamStore<T>& ps, const T* x, T* y, int rows) const {
  const T* bias = b == SIZE_MAX ? nullptr : ps.data() + b;
  ps.backend().linear_forward(x, ps.data() + w, bias, y, rows, in, out);
}

template <typename T>
void Linear<T>::backward(ParamStore<T>& ps, const T* dy, const T* x, T* dx, int rows) const {
  T* db = b == SIZE_MAX ? nullptr : ps.grad() + b;
  ps.backend().linear_backward(dy, x, ps.data() + w, dx, ps.grad() + w, db, rows, in, out);
}

template <typename T>
Linear<T> Linear<T>::rows(int r0, int r1) const {
  Linear<T> s = *this;
  s.out = r1 - r0;
  s.w = w + size_t(r0) * in;
  s.b = b == SIZE_MAX ? SIZE_MAX : b + r0;
  return s;
}

template struct Linear<float>;
template struct Linear<double>;

}  // namespace mk
