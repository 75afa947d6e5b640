// Training throughput of the demo model (what `make demo` trains).
#pragma once
#include <string>

namespace mk::exp {

struct TrainBenchConfig {
  int threads = 0;
  int steps = 5;
};

// Runs warm-up + timed training steps on random bytes; returns a JSON line
// with tokens_per_s, ms_per_step and the model size.
std::string run_train_bench(const TrainBenchConfig& c);

}  // namespace mk::exp
