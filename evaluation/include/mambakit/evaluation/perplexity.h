// Perplexity family: mean negative log-likelihood per token in nats, and its
// conversions (bits per token = nll / ln 2; perplexity = exp(nll)).
#pragma once
#include <cstdint>
#include <vector>

#include "mambakit/models/sequence_model.h"

namespace mk::eval {

struct NllResult {
  double nll = 0;       // mean nats per token
  double tokens = 0;    // tokens scored
  double bits() const;  // bits per token (per byte for byte-level text)
  double perplexity() const;
};

// Scores the consecutive windows of a token stream (up to max_windows).
NllResult evaluate_nll(SequenceModel<float>& model, const std::vector<uint8_t>& tokens,
                       int seq_len, int batch, size_t max_windows);

}  // namespace mk::eval
