// Counts of the work the CPU backend's ops are asked to do, read from the
// shapes each op is called with. They exist to check the FLOP formulas of
// models/flops.h against what a model really issues (libmamba/tests/
// test_flops.cpp), independently of those formulas. Off unless a counter is
// installed; then each counted op adds to it once per call, on the calling
// thread (layers issue ops from one thread), so install it around a
// single-threaded caller only.
//
// Units (the keys of OpCounter::counts):
//   "matmul_macs"     multiply-adds of gemm, linear_forward and linear_backward
//                     (M*N*K per product; a linear backward counts its dX and dW
//                     products, each when asked for)
//   "attention_macs"  multiply-adds of the attention kernels over the visible
//                     (query, key) pairs: forward q.k and p v; backward as the
//                     kernel runs it (q.k recomputed, dO.v, dV, dQ, dK, and dO.O)
//   "conv_macs"       multiply-adds of the depthwise causal conv1d (B*L*D*K per
//                     product: the forward, and the backward's dX and dW)
//   "scan_updates"    selective-scan state updates, B*L*D*N per call
//   "fft_transforms"  real FFTs (of 2L points) the FFT convolution runs
//   "kernel_terms"    S4/S4D kernel terms, copies*H*(N/2)*L per call
//   "norm_elements"   RMSNorm elements, rows*dim per call
#pragma once
#include <map>
#include <string>

namespace mk {

struct OpCounter {
  std::map<std::string, double> counts;
  double operator[](const std::string& unit) const {
    auto it = counts.find(unit);
    return it == counts.end() ? 0.0 : it->second;
  }
  void clear() { counts.clear(); }
};

// The installed counter (nullptr: counting off, the default).
OpCounter* op_counter();
void set_op_counter(OpCounter* c);

// Installs a counter for its lifetime.
class ScopedOpCounter {
 public:
  explicit ScopedOpCounter(OpCounter& c) : prev_(op_counter()) { set_op_counter(&c); }
  ~ScopedOpCounter() { set_op_counter(prev_); }
  ScopedOpCounter(const ScopedOpCounter&) = delete;
  ScopedOpCounter& operator=(const ScopedOpCounter&) = delete;

 private:
  OpCounter* prev_;
};

}  // namespace mk
