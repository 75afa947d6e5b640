// Rotary position embedding (RoPE, Su et al.), HF Llama's "rotate_half"
// layout: within each head, element i < Dh/2 pairs with i + Dh/2 and the
// pair is rotated by the angle pos * theta^(-2i/Dh). Angles are computed in
// double, so long positions keep their precision in fp32.
#pragma once

namespace mk::ops {

struct RopeShape {
  int batch = 0, len = 0, heads = 0, head_dim = 0;  // x is (B, L, heads, head_dim)
  long pos0 = 0;          // position of token 0 (token t is at pos0 + t)
  double theta = 10000.0; // base
};

// y = rotate(x); y may alias x.
template <typename T>
void rope_forward(const RopeShape& s, const T* x, T* y);

// dx = rotate^-1(dy) (the rotation's transpose); dx may alias dy.
template <typename T>
void rope_backward(const RopeShape& s, const T* dy, T* dx);

}  // namespace mk::ops
