// Picks the next token from logits: temperature, then top-k, then top-p
// (nucleus) filtering. temperature <= 0 means greedy (argmax).
#pragma once
#include <cstdint>
#include <random>

namespace mk {

struct SamplingOptions {
  double temperature = 1.0;
  int top_k = 0;       // 0: no top-k filter
  double top_p = 1.0;  // 1: no nucleus filter
};

int32_t sample_token(const float* logits, int vocab, const SamplingOptions& opt,
                     std::mt19937_64& rng);

}  // namespace mk
