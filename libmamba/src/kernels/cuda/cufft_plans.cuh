// Cached, batched 1-D cuFFT real transforms for the S4/S4D ops. Private to
// src/kernels/cuda.
//
// Rows are contiguous: a real row holds n values, a complex row n/2+1
// (interleaved float2 / double2), rows follow each other with no gap.
// Forward transforms are unnormalised exp(-2 pi i jk/n) sums, inverse ones
// unnormalised exp(+2 pi i jk/n) sums (as FFTW); an inverse (C2R/Z2D) may
// overwrite its input.
//
// Plans are cached per (device, stream, kind, n, batch): cuFFT plans own a
// work area, so one plan must not run on two streams at once; a plan's
// enqueues (set stream + exec) are serialised by its own mutex, the map by
// another. Plan creation failures (out of memory included) throw mk::Error.
#pragma once
#include <cstddef>

#include "mambakit/cuda/device.h"

namespace mk::cuda::detail {

enum class FftKind { R2C, C2R, D2Z, Z2D };

// Runs the transform of `kind` on `batch` rows of length n from in to out
// (distinct buffers) on stream. n == 1 (the identity) runs without cuFFT.
void fft_exec(FftKind kind, int n, long long batch, const void* in, void* out, stream_t stream);

// Destroys every cached plan (no transform may be in flight).
void fft_plans_clear();

// Smallest even n >= at_least with no prime factor above 7.
int fft_good_size(long long at_least);

}  // namespace mk::cuda::detail
