#include "mambakit/tasks/language.h"

#include <algorithm>
#include <sstream>

#include "mambakit/datasets/shards.h"
#include "mambakit/error.h"

namespace mk::tasks {

TokenStream::TokenStream(std::shared_ptr<const data::ShardReader> shard) : shard_(std::move(shard)) {}

uint64_t TokenStream::size() const { return shard_ ? shard_->size() : ids_.size(); }

void TokenStream::read(uint64_t beg, size_t n, int32_t* out) const {
  MK_CHECK(beg <= size() && n <= size() - beg, "TokenStream::read: range outside the stream");
  if (shard_) shard_->read(beg, n, out);
  else std::copy(ids_.begin() + long(beg), ids_.begin() + long(beg + n), out);
}

std::vector<int32_t> TokenStream::read(uint64_t beg, size_t n) const {
  std::vector<int32_t> out(n);
  read(beg, n, out.data());
  return out;
}

int32_t TokenStream::operator[](uint64_t i) const { return shard_ ? shard_->at(i) : ids_[size_t(i)]; }

WindowSampler::WindowSampler(const TokenStream* tokens, int seq_len, uint64_t seed)
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
  std::vector<int32_t> window(size_t(seq_len_) + 1);
  for (int i = 0; i < batch; ++i) {
    // Modulo bias is < span / 2^64: negligible, and portable across libstdc++
    // versions unlike uniform_int_distribution.
    const uint64_t start = rng_() % (span + 1);
    tokens_->read(start, window.size(), window.data());
    std::copy(window.begin(), window.end() - 1, b.ids.begin() + long(size_t(i) * seq_len_));
    std::copy(window.begin() + 1, window.end(), b.targets.begin() + long(size_t(i) * seq_len_));
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
  if (!is) throw Error("language task: the sampler state in the checkpoint's trainer_state.json is malformed");
}

std::vector<TokenBatch> eval_windows(const TokenStream& tokens, int seq_len, int batch,
                                     size_t max_windows) {
  std::vector<TokenBatch> out;
  size_t n = tokens.size() > 1 ? size_t((tokens.size() - 1) / uint64_t(seq_len)) : 0;
  if (max_windows && n > max_windows) n = max_windows;
  for (size_t w = 0; w < n; w += batch) {
    TokenBatch b;
    b.batch = int(std::min<size_t>(batch, n - w));
    b.len = seq_len;
    for (int i = 0; i < b.batch; ++i) {
      const auto window = tokens.read(uint64_t(w + i) * uint64_t(seq_len), size_t(seq_len) + 1);
      b.ids.insert(b.ids.end(), window.begin(), window.end() - 1);
      b.targets.insert(b.targets.end(), window.begin() + 1, window.end());
    }
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace mk::tasks
