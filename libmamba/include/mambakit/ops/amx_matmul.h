// Float matrix products on AMX tiles (Intel Xeon from Sapphire Rapids on),
// at float accuracy.
//
// AMX multiplies bfloat16 tiles into float sums. Each float operand is split
// into three bfloat16 parts, x = x0 + x1 + x2 (x0 the nearest bfloat16 to x,
// x1 the nearest to x - x0, x2 to the rest: 24 significant bits in all), and
// op(A) op(B) is the sum of the six part products whose indices add up to at
// most 2 (A0B0, A0B1, A1B0, A0B2, A1B1, A2B0). The three left out are below
// 2^-24 of the product, so each element is as close to the exact sum as a
// float product's rounding allows (test_matmul.cpp checks it against a
// double reference and against OpenBLAS's error on the same inputs).
// At the tiles' peak the six bfloat16 products take about 0.4 of the time
// of float FMAs at theirs; in practice the models' products ran 1.5-1.8x
// faster than OpenBLAS's on one thread of such a core (bench/README.md).
//
// Limits: an infinite or NaN input gives NaN in the elements it reaches (x -
// x0 is NaN for an infinite x), where a float product may give an infinity;
// parts below FLT_MIN (x1, x2 of an |x| under about 1e-33) are flushed to
// zero by the tile unit. mk::cpu_has_amx() says whether the CPU and OS run
// these; mk::amx_products_active() whether gemm<float> uses them now.
#pragma once

namespace mk::ops {

// C = op(A) op(B) (+ C when accumulate), row-major as gemm's arguments
// (matmul.h): op(A) is M x K, op(B) K x N. Requires mk::cpu_has_amx();
// M, N, K > 0. Returns false, C untouched, where the memory for the packed
// operands (per thread, kept for later calls: 6 x min(K, 256) x min(N,
// 1024) bytes, rounded up to 32s, at most 1.5 MiB) could not be had.
bool amx_sgemm(bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
               const float* B, int ldb, bool accumulate, float* C, int ldc);

}  // namespace mk::ops
