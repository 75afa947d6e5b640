// Selective-scan benchmark: the fused (chunked, recomputing) CPU scan against
// the naive one that materialises every state, measured in one run. Used by
// `mambakit bench scan` and bench/bench_selective_scan.cpp.
#pragma once
#include <cstddef>
#include <string>

namespace mk::bench {

struct ScanBenchConfig {
  int batch = 2;
  int d_inner = 1536;  // D, channels
  int d_state = 16;    // N
  int len = 2048;      // L
  int threads = 0;     // OpenMP threads; 0 = the OpenMP default (OMP_NUM_THREADS)
  int repeats = 3;     // timed repetitions after one warm-up; the best is reported
  bool with_z = true;  // gate out = y * silu(z)
  bool with_D = true;  // skip term D * u
  bool naive = true;   // also run the naive scan (needs B*L*D*N floats of states)
  unsigned seed = 1234;
  // Where the (B, L, D) arrays lie: -1 puts them where mambakit's CPU
  // allocator puts a layer's buffers (cpu_memory(), Buf); otherwise array
  // i of u, delta, z, out, dout, du, ddelta and dz starts i * stagger_bytes
  // (mod 4096) past a 4 KiB boundary. The scan's
  // time depends on their offsets modulo 4 KiB (bench/README.md).
  int stagger_bytes = -1;
};

struct ScanBenchResult {
  ScanBenchConfig config;
  int threads_used = 0;
  double updates = 0;  // state updates per forward: B * L * D * N

  // Best-of-repeats wall times, milliseconds. "fwdbwd" is one forward followed
  // by one backward, timed together.
  double fused_fwd_ms = 0, fused_fwdbwd_ms = 0;
  double naive_fwd_ms = 0, naive_fwdbwd_ms = 0;  // 0 when config.naive is false

  std::string isa;  // the CPU scan kernels' ISA (mk::active_isa(), MAMBAKIT_ISA forces one)
  double fwd_updates_per_s = 0;          // updates / fused forward time
  // The plain compiler-vectorised loop (scan_baseline_loop.h), forward only,
  // best of the same repeats; 0 when the CPU lacks AVX2.
  double baseline_fwd_ms = 0;
  double baseline_updates_per_s = 0;
  double fused_over_baseline = 0;        // baseline fwd time / fused fwd time
  double fwdbwd_over_fwd = 0;            // fused (fwd+bwd) / fused fwd
  double naive_over_fused_time = 0;      // naive fwd+bwd / fused fwd+bwd
  double naive_over_fused_fwd_time = 0;  // naive fwd / fused fwd

  // Memory, in bytes, computed from the buffers each approach needs (the
  // allocations the benchmark makes plus the kernels' internal workspace as
  // reported by selective_scan_*_workspace_bytes), not measured by an
  // allocator hook. The tensors the caller owns either way (u, delta, z, B, C,
  // A, D, out, and for the backward dout and all gradients) count in both.
  //   fwd:    inputs + output + saved states (fused: chunk_states; naive:
  //           all B*L*D*N states)
  //   fwdbwd: fwd + dout + gradients + backward workspace
  //   states: the state storage alone, the part that differs
  size_t fused_fwd_bytes = 0, naive_fwd_bytes = 0;
  size_t fused_fwdbwd_bytes = 0, naive_fwdbwd_bytes = 0;
  //   scan:   what the scan algorithm itself holds beyond the caller's
  //           tensors, at its peak (during the backward): saved states +
  //           backward workspace. This is the memory the hardware-aware
  //           design saves, and what naive_over_fused_memory compares.
  size_t fused_state_bytes = 0, naive_state_bytes = 0;
  size_t fused_scan_bytes = 0, naive_scan_bytes = 0;
  double naive_over_fused_memory = 0;         // naive_scan_bytes / fused_scan_bytes
  double naive_over_fused_fwd_memory = 0;     // naive_fwd_bytes / fused_fwd_bytes
  double naive_over_fused_fwdbwd_memory = 0;  // naive_fwdbwd_bytes / fused_fwdbwd_bytes
  double naive_over_fused_state_memory = 0;   // naive_state_bytes / fused_state_bytes

  // Largest |fused - naive| / max|naive| over the forward output (a sanity
  // check that the two computed the same thing); -1 when naive was not run.
  double max_rel_diff = -1;

  // JSON object (one line) with every field above (keys as named here).
  std::string to_json() const;
  // A short human-readable table.
  std::string to_text() const;
};

// Runs the float scan on random inputs (delta log-uniform in [1e-3, 1e-1],
// A = -(1..N) per channel as in S4D-real init, B, C, u, z standard normal,
// D = 1). Throws mk::Error on invalid sizes.
ScanBenchResult run_scan_bench(const ScanBenchConfig& config);

}  // namespace mk::bench
