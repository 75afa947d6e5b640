// The two-tower feature combination of LRA Retrieval (Tay et al.): for
// pooled document vectors u (P, d) and v (P, d), f = [u, v, u*v, u-v]
// (P, 4d), and its backward.
#pragma once

namespace mk::ops {

template <typename T> void pair_features_forward(const T* u, const T* v, T* f, int pairs, int d);
// du, dv (P, d) written from df (P, 4d).
template <typename T>
void pair_features_backward(const T* df, const T* u, const T* v, T* du, T* dv, int pairs, int d);

}  // namespace mk::ops
