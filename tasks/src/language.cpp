#include "mambakit/tasks/language.h"

#include <sstream>

#include "mambakit/error.h"

namespace mk::tasks {

WindowSampler::WindowSampler(const std::vector<uint8_t>* tokens, int seq_len, uint64_t seed)
    : tokens_(tokens), seq_len_(seq_len), rng_(seed) {
  MK_CHECK(seq_len > 0, "sequence length must be positive");
  MK_CHECK(tokens->size() > size_t(seq_len) + 1,
           "training data (" + std::to_string(tokens->size()) +
               " tokens) is shorter than one window of seq_len + 1 = " +
               std::to_string(seq_len + 1));
}

TokenBatch WindowSampler::next(int batch) {
  TokenBatch b;
  b.batch = batch;
  b.len = seq_len_;
  b.ids.resize(size_t(batch) * seq_len_);
  b.targets.resize(b.ids.size());
  const uint64_t span = tokens_->size() - seq_len_ - 1;
  for (int i = 0; i < batch; ++i) {
    // Modulo bias is < span / 2^64: negligible, and portable across libstdc++
    // versions unlike uniform_int_distribution.
    const size_t start = size_t(rng_() % (span + 1));
    for (int t = 0; t < seq_len_; ++t) {
      b.ids[size_t(i) * seq_len_ + t] = (*tokens_)[start + t];
      b.targets[size_t(i) * seq_len_ + t] = (*tokens_)[start + t + 1];
    }
  }
  return b;
}

std::string WindowSampler::rng_state() const {
  std::ostringstream os;
  os << rng_;
  return os.str();
}

void WindowSampler::set_rng_state(const std::string& s) {
  std::istringstream is(s);
  is >> rng_;
  if (!is) throw Error("sampler state in checkpoint is malformed");
}

std::vector<TokenBatch> eval_windows(const std::vector<uint8_t>& tokens, int seq_len, int batch,
                                     size_t max_windows) {
  std::vector<TokenBatch> out;
  size_t n = tokens.size() > 1 ? (tokens.size() - 1) / seq_len : 0;
  if (max_windows && n > max_windows) n = max_windows;
  for (size_t w = 0; w < n; w += batch) {
    TokenBatch b;
    b.batch = int(std::min<size_t>(batch, n - w));
    b.len = seq_len;
    for (int i = 0; i < b.batch; ++i) {
      size_t start = (w + i) * seq_len;
      for (int t = 0; t < seq_len; ++t) {
        b.ids.push_back(tokens[start + t]);
        b.targets.push_back(tokens[start + t + 1]);
      }
    }
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace mk::tasks
