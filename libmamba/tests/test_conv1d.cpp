// Causal depthwise conv1d: forward against the defining sum, backward by
// finite differences, and the recurrent step against the full forward.
#include "mambakit/ops/conv1d.h"

#include <omp.h>

#include "test_util.h"

using namespace mk;
using namespace mk::test;

namespace {

// y[b,t,d] = bias[d] + sum_k w[d,k] x[b,t-(K-1)+k,d], zero padding on the left.
std::vector<double> conv_ref(const ops::Conv1dShape& s, const std::vector<double>& x,
                             const std::vector<double>& w, const std::vector<double>& bias) {
  std::vector<double> y(size_t(s.B) * s.L * s.D);
  for (int b = 0; b < s.B; ++b)
    for (int t = 0; t < s.L; ++t)
      for (int d = 0; d < s.D; ++d) {
        double acc = bias.empty() ? 0.0 : bias[d];
        for (int k = 0; k < s.K; ++k) {
          int src = t - (s.K - 1) + k;
          if (src >= 0) acc += w[d * s.K + k] * x[(size_t(b) * s.L + src) * s.D + d];
        }
        y[(size_t(b) * s.L + t) * s.D + d] = acc;
      }
  return y;
}

struct Case {
  int B, L, D, K;
};

const Case kCases[] = {{2, 9, 5, 4}, {2, 7, 3, 1}, {1, 6, 4, 3}, {3, 2, 4, 4} /* L < K */,
                       {2, 40, 70, 4} /* several channel chunks */,
                       {2, 64, 130, 4} /* big enough for the threaded path */,
                       {5, 53, 67, 4} /* threaded, rows not a multiple of the row blocks */};

}  // namespace

TEST(Conv1d, ForwardMatchesDefinition) {
  for (const Case& c : kCases) {
    ops::Conv1dShape s{c.B, c.L, c.D, c.K};
    auto x = randn<double>(size_t(c.B) * c.L * c.D, 1), w = randn<double>(c.D * c.K, 2),
         bias = randn<double>(c.D, 3);
    std::vector<double> y(x.size(), NAN);
    ops::conv1d_causal_forward<double>(s, x.data(), w.data(), bias.data(), y.data());
    EXPECT_TRUE(all_close(y, conv_ref(s, x, w, bias), 1e-13)) << "K=" << c.K << " L=" << c.L;
    ops::conv1d_causal_forward<double>(s, x.data(), w.data(), nullptr, y.data());
    EXPECT_TRUE(all_close(y, conv_ref(s, x, w, {}), 1e-13)) << "no bias, K=" << c.K;
    std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), bf(bias.begin(), bias.end()),
        yf(x.size());
    ops::conv1d_causal_forward<float>(s, xf.data(), wf.data(), bf.data(), yf.data());
    EXPECT_TRUE(all_close(yf, conv_ref(s, x, w, bias), 1e-5)) << "float, K=" << c.K;
  }
}

TEST(Conv1d, BackwardFiniteDifferences) {
  for (const Case& c : kCases) {
    ops::Conv1dShape s{c.B, c.L, c.D, c.K};
    const size_t n = size_t(c.B) * c.L * c.D;
    auto x = randn<double>(n, 4), w = randn<double>(c.D * c.K, 5), bias = randn<double>(c.D, 6),
         r = randn<double>(n, 7);
    auto loss = [&]() {
      std::vector<double> y(n);
      ops::conv1d_causal_forward<double>(s, x.data(), w.data(), bias.data(), y.data());
      double acc = 0;
      for (size_t i = 0; i < n; ++i) acc += y[i] * r[i];
      return acc;
    };
    std::vector<double> dx(n, NAN), dw(c.D * c.K, 0.0), db(c.D, 0.0);
    ops::conv1d_causal_backward<double>(s, r.data(), x.data(), w.data(), dx.data(), dw.data(),
                                        db.data());
    EXPECT_TRUE(grad_check("dx K=" + std::to_string(c.K), x, dx, loss));
    EXPECT_TRUE(grad_check("dw K=" + std::to_string(c.K), w, dw, loss));
    EXPECT_TRUE(grad_check("dbias K=" + std::to_string(c.K), bias, db, loss));

    // dw and dbias accumulate; a null dbias is skipped.
    std::vector<double> dw2 = dw;
    ops::conv1d_causal_backward<double>(s, r.data(), x.data(), w.data(), dx.data(), dw2.data(),
                                        nullptr);
    for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw2[i], 2 * dw[i], 1e-10);
  }
}

TEST(Conv1d, StepTokenByTokenEqualsForward) {
  for (const Case& c : kCases) {
    ops::Conv1dShape s{c.B, c.L, c.D, c.K};
    auto x = randn<double>(size_t(c.B) * c.L * c.D, 8), w = randn<double>(c.D * c.K, 9),
         bias = randn<double>(c.D, 10);
    std::vector<double> y(x.size());
    ops::conv1d_causal_forward<double>(s, x.data(), w.data(), bias.data(), y.data());
    std::vector<double> state(size_t(c.B) * c.D * c.K, 0.0), xt(c.B * c.D), yt(c.B * c.D);
    std::vector<double> y_step(x.size());
    for (int t = 0; t < c.L; ++t) {
      for (int b = 0; b < c.B; ++b)
        for (int d = 0; d < c.D; ++d) xt[b * c.D + d] = x[(size_t(b) * c.L + t) * c.D + d];
      ops::conv1d_causal_step<double>(c.B, c.D, c.K, xt.data(), state.data(), w.data(),
                                      bias.data(), yt.data());
      for (int b = 0; b < c.B; ++b)
        for (int d = 0; d < c.D; ++d) y_step[(size_t(b) * c.L + t) * c.D + d] = yt[b * c.D + d];
    }
    EXPECT_TRUE(all_close(y_step, y, 1e-13)) << "K=" << c.K << " L=" << c.L;
    // The state ends holding the last K inputs, oldest first (zeros before t=0).
    for (int k = 0; k < c.K; ++k) {
      int t = c.L - c.K + k;
      double want = t >= 0 ? x[(size_t(0) * c.L + t) * c.D + 0] : 0.0;
      EXPECT_EQ(state[k], want) << "k=" << k;
    }
  }
}

// The backward sums the weight and bias gradients over fixed blocks of rows,
// so one, two or three threads give the same bits (dx as well).
TEST(Conv1d, BackwardSameOnAnyThreadCount) {
  for (const Case& c : {Case{2, 64, 130, 4}, Case{5, 53, 67, 4}, Case{3, 300, 33, 3}}) {
    ops::Conv1dShape s{c.B, c.L, c.D, c.K};
    const size_t n = size_t(c.B) * c.L * c.D;
    const auto x = randn<float>(n, 21), w = randn<float>(c.D * c.K, 22), dy = randn<float>(n, 23);
    const auto dw0 = randn<float>(c.D * c.K, 24), db0 = randn<float>(c.D, 25);
    const int saved = omp_get_max_threads();
    std::vector<std::vector<float>> dxs, dws, dbs;
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      std::vector<float> dx(n, NAN), dw = dw0, db = db0;  // dw, db accumulate onto these
      ops::conv1d_causal_backward<float>(s, dy.data(), x.data(), w.data(), dx.data(), dw.data(),
                                         db.data());
      dxs.push_back(dx);
      dws.push_back(dw);
      dbs.push_back(db);
    }
    omp_set_num_threads(saved);
    for (size_t i = 1; i < dxs.size(); ++i) {
      EXPECT_TRUE(all_close(dxs[i], dxs[0], 0)) << "B=" << c.B << " L=" << c.L;
      EXPECT_TRUE(all_close(dws[i], dws[0], 0)) << "B=" << c.B << " L=" << c.L;
      EXPECT_TRUE(all_close(dbs[i], dbs[0], 0)) << "B=" << c.B << " L=" << c.L;
    }
  }
}
