// A plain, compiler-vectorised selective scan forward: the baseline of
// `mambakit bench scan` (see scan_baseline_loop.cpp).
#pragma once
#include "mambakit/ops/selective_scan.h"

namespace mk::bench {

constexpr int kPlainScanMaxState = 256;

// y (B, L, D) = the scan's output without gate and skip term. Needs AVX2 and
// FMA (mk::supported_isas() lists Isa::avx2); d_state <= kPlainScanMaxState.
void plain_scan_forward(const ops::SelectiveScanParams<float>& p, float* y);

}  // namespace mk::bench
