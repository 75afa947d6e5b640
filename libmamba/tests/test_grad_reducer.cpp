// Data parallelism's building blocks, in one process: the backward's
// grad-ready watermarks (each gradient above one is final when it is
// reported), the reducer's buckets (started from the end of the buffer
// down, each once, as soon as the watermark passes it), and the
// single-process communicator.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "mambakit/dist/communicator.h"
#include "mambakit/dist/grad_reducer.h"
#include "mambakit/models/sequence_model.h"

namespace mk {
namespace {

// Records the sums it is asked for; "sums" by doubling, so a test sees
// which elements were reduced and how often.
class RecordingComm final : public dist::Communicator {
 public:
  std::vector<std::pair<size_t, size_t>> starts;  // (offset from base, count)
  float* base = nullptr;
  int waits = 0;
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string backend_name() const override { return "recording"; }
  void sum(double* x, size_t n) override {}
  void max(double* x, size_t n) override {}
  void broadcast(void*, size_t, int) override {}
  void barrier() override {}
  void start_sum(float* p, size_t n, Device) override {
    starts.push_back({size_t(p - base), n});
    for (size_t i = 0; i < n; ++i) p[i] *= 2;
  }
  void wait_all() override { ++waits; }
  [[noreturn]] void abort(int code) override { std::abort(); }
};

TEST(GradReducer, BucketsStartFromTheEndOnceEachWhenReady) {
  std::vector<float> g(10, 1.0f);
  RecordingComm comm;
  comm.base = g.data();
  dist::GradReducer r(comm, g.data(), g.size(), Device::cpu, 4);  // buckets [0,4) [4,8) [8,10)
  EXPECT_EQ(r.buckets(), 3u);
  r.ready(9);  // nothing wholly above 9
  EXPECT_TRUE(comm.starts.empty());
  r.ready(8);
  ASSERT_EQ(comm.starts.size(), 1u);
  EXPECT_EQ(comm.starts[0], std::make_pair(size_t(8), size_t(2)));
  r.ready(5);  // [4, 8) is not wholly ready yet
  EXPECT_EQ(comm.starts.size(), 1u);
  r.ready(4);
  r.ready(4);  // started once only
  ASSERT_EQ(comm.starts.size(), 2u);
  EXPECT_EQ(comm.starts[1], std::make_pair(size_t(4), size_t(4)));
  r.finish();
  ASSERT_EQ(comm.starts.size(), 3u);
  EXPECT_EQ(comm.starts[2], std::make_pair(size_t(0), size_t(4)));
  EXPECT_EQ(comm.waits, 1);
  for (float x : g) EXPECT_EQ(x, 2.0f) << "every element reduced exactly once";
  // The next step starts over.
  r.finish();
  EXPECT_EQ(comm.starts.size(), 6u);
}

// Copies of the gradient at every watermark: the part above it must
// already equal the final gradient, for an LM and a classifier head.
void expect_watermarks_are_final(ModelConfig c) {
  SequenceModel<float> m(c);
  m.init(3);
  const int B = 2, L = 6;
  std::mt19937 rng(1);
  std::vector<int32_t> ids(size_t(B) * L), tgt(size_t(B) * L), labels(B, 1);
  for (auto& t : ids) t = int32_t(rng() % uint32_t(c.vocab_size));
  for (auto& t : tgt) t = int32_t(rng() % uint32_t(c.vocab_size));
  std::vector<std::pair<size_t, std::vector<float>>> seen;
  m.set_grad_ready_hook([&](size_t from) { seen.push_back({from, m.params().host_grad()}); });
  m.params().zero_grad();
  m.forward(ids.data(), B, L);
  m.backward(c.n_classes > 0 ? labels.data() : tgt.data());
  const std::vector<float> final_grad = m.params().host_grad();
  ASSERT_EQ(seen.size(), size_t(c.n_layer) + 2) << "the head, each layer, the embedding";
  EXPECT_EQ(seen.back().first, 0u);
  for (size_t k = 0; k < seen.size(); ++k) {
    if (k > 0) {
      EXPECT_LT(seen[k].first, seen[k - 1].first) << "watermarks fall";
    }
    for (size_t i = seen[k].first; i < final_grad.size(); ++i)
      ASSERT_EQ(seen[k].second[i], final_grad[i]) << "watermark " << seen[k].first << ", element " << i;
  }
}

TEST(GradReadyHook, WatermarksOnlyReportFinalGradients) {
  ModelConfig c;
  c.d_model = 8;
  c.n_layer = 3;
  c.vocab_size = 13;
  c.d_state = 4;
  expect_watermarks_are_final(c);
  c.n_classes = 3;
  c.mixers = {"mamba", "s4d"};
  expect_watermarks_are_final(c);
}

TEST(Communicator, SingleProcessLeavesValuesAlone) {
  auto c = dist::make_single();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  double x[2] = {1.5, -2};
  c->sum(x, 2);
  c->max(x, 2);
  EXPECT_EQ(x[0], 1.5);
  EXPECT_EQ(x[1], -2);
  EXPECT_EQ(dist::fnv1a("a", 1), 0xaf63dc4c8601ec8cull);  // FNV-1a 64 of "a"
}

}  // namespace
}  // namespace mk
