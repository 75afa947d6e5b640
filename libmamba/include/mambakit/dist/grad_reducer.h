// Sums the flat gradient buffer over the ranks in buckets, starting each
// bucket as soon as the backward has finished writing it, so communication
// overlaps the rest of the backward (as PyTorch DDP's buckets do).
//
// The backward reports a watermark: every gradient at offset >= ready_from
// is final (SequenceModel::set_grad_ready_hook; the layers run last to
// first, and the parameters are laid out first to last, so the watermark
// only falls). Buckets are fixed slices of the buffer, started from the end
// down, the same order on every rank whatever the timing.
#pragma once
#include <cstddef>

#include "mambakit/dist/communicator.h"

namespace mk::dist {

class GradReducer {
 public:
  // grad: n floats on device d. bucket_floats: elements per bucket (the
  // one at the end of the buffer may be shorter).
  GradReducer(Communicator& comm, float* grad, size_t n, Device d, size_t bucket_floats);
  // Starts the buckets lying wholly at or above ready_from.
  void ready(size_t ready_from);
  // Starts the rest and waits for all: the buffer then holds the sum.
  void finish();
  size_t buckets() const { return (n_ + bucket_ - 1) / bucket_; }

 private:
  Communicator& comm_;
  float* grad_;
  size_t n_, bucket_;
  Device device_;
  size_t started_ = 0;  // buckets started, counted from the end of the buffer
};

}  // namespace mk::dist
