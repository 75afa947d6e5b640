// Embedding lookup, scatter-add backward (repeated ids), id range errors.
#include "mambakit/ops/embedding.h"

#include <omp.h>

#include "mambakit/error.h"
#include "test_util.h"

using namespace mk;
using namespace mk::test;

TEST(Embedding, ForwardCopiesRows) {
  const int vocab = 7, dim = 40;
  auto table = randn<double>(vocab * dim, 1);
  std::vector<int32_t> ids(2000);  // big enough for the threaded path
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 5 + i / 3) % vocab);
  std::vector<double> out(ids.size() * dim, NAN);
  ops::embedding_forward<double>(ids.data(), table.data(), out.data(), int(ids.size()), vocab, dim);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int j = 0; j < dim; ++j) EXPECT_EQ(out[i * dim + j], table[ids[i] * dim + j]);
}

TEST(Embedding, BackwardAccumulatesRepeatedIds) {
  const int vocab = 6, dim = 3;
  std::vector<int32_t> ids = {2, 4, 2, 2, 0};
  const int n = int(ids.size());
  auto dout = randn<double>(n * dim, 2);
  auto dtable = randn<double>(vocab * dim, 3);  // accumulated onto existing values
  std::vector<double> want = dtable;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < dim; ++j) want[ids[i] * dim + j] += dout[i * dim + j];
  ops::embedding_backward<double>(ids.data(), dout.data(), dtable.data(), n, vocab, dim);
  EXPECT_TRUE(all_close(dtable, want, 1e-14));
}

TEST(Embedding, BackwardFiniteDifferences) {
  const int vocab = 5, dim = 4;
  std::vector<int32_t> ids = {1, 3, 1, 4, 0, 1};
  const int n = int(ids.size());
  auto table = randn<double>(vocab * dim, 4);
  auto r = randn<double>(n * dim, 5);
  auto loss = [&]() {
    std::vector<double> out(n * dim);
    ops::embedding_forward<double>(ids.data(), table.data(), out.data(), n, vocab, dim);
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += out[i] * r[i] * out[i];  // nonlinear in table
    return s;
  };
  std::vector<double> out(n * dim), dout(n * dim), dtable(vocab * dim, 0.0);
  ops::embedding_forward<double>(ids.data(), table.data(), out.data(), n, vocab, dim);
  for (size_t i = 0; i < out.size(); ++i) dout[i] = 2 * r[i] * out[i];
  ops::embedding_backward<double>(ids.data(), dout.data(), dtable.data(), n, vocab, dim);
  EXPECT_TRUE(grad_check("dtable", table, dtable, loss));
}

TEST(Embedding, OutOfRangeIdNamesIdAndPosition) {
  const int vocab = 4, dim = 2;
  std::vector<float> table(vocab * dim), out(3 * dim);
  for (std::vector<int32_t> ids : {std::vector<int32_t>{0, 4, 1}, std::vector<int32_t>{0, -1, 1}}) {
    try {
      ops::embedding_forward<float>(ids.data(), table.data(), out.data(), 3, vocab, dim);
      FAIL() << "no exception for id " << ids[1];
    } catch (const mk::Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(std::to_string(ids[1])), std::string::npos) << msg;
      EXPECT_NE(msg.find("position 1"), std::string::npos) << msg;
    }
  }
  std::vector<int32_t> bad = {9};
  EXPECT_THROW(ops::embedding_backward<float>(bad.data(), out.data(), table.data(), 1, vocab, dim),
               mk::Error);
}

// Threaded backward (threads split the columns): repeated ids accumulate as
// in a plain loop over the positions, the same bits on any thread count.
TEST(Embedding, BackwardSameOnAnyThreadCount) {
  const int vocab = 13, dim = 70, n = 1500;
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = int32_t((i * 7 + i / 5) % vocab);
  const auto dout = randn<float>(size_t(n) * dim, 71), dtable0 = randn<float>(vocab * dim, 72);
  std::vector<float> want = dtable0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < dim; ++j) want[size_t(ids[i]) * dim + j] += dout[size_t(i) * dim + j];
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> dtable = dtable0;
    ops::embedding_backward<float>(ids.data(), dout.data(), dtable.data(), n, vocab, dim);
    EXPECT_TRUE(all_close(dtable, want, 0)) << "threads=" << threads;
  }
  omp_set_num_threads(saved);
}
