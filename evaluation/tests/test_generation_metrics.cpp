// Generation-quality metrics on examples small enough to compute by hand
// (the expected values are worked out in the comments).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mambakit/error.h"
#include "mambakit/evaluation/generation_metrics.h"

using namespace mk::eval;

TEST(TextMetrics, DistinctN) {
  std::vector<Tokens> s = {words("a b a b"), words("a c")};
  // unigrams: a b a b | a c -> 6 in all, {a, b, c} distinct: 3/6
  EXPECT_DOUBLE_EQ(distinct_n(s, 1), 0.5);
  // bigrams: ab ba ab | ac -> 4 in all, {ab, ba, ac}: 3/4
  EXPECT_DOUBLE_EQ(distinct_n(s, 2), 0.75);
  // trigrams: aba bab -> 2, both distinct
  EXPECT_DOUBLE_EQ(distinct_n(s, 3), 1.0);
  EXPECT_DOUBLE_EQ(distinct_n(s, 5), 0.0);  // no 5-grams at all
  // Byte tokens: "aab" -> a a b: 2 distinct of 3.
  EXPECT_DOUBLE_EQ(distinct_n({chars("aab")}, 1), 2.0 / 3.0);
}

TEST(TextMetrics, RepetitionRate) {
  // "a b a b": bigrams ab ba ab -> 2 unique of 3 -> 1 - 2/3 = 1/3;
  // "x y z": xy yz, no repeat -> 0; "q" has no bigram and is not counted.
  std::vector<Tokens> s = {words("a b a b"), words("x y z"), words("q")};
  EXPECT_NEAR(repetition_rate(s, 2), (1.0 / 3.0 + 0.0) / 2.0, 1e-12);
  // 4-grams of "a b c d a b c d a": abcd bcda cdab dabc abcd bcda -> 4 unique of 6.
  EXPECT_NEAR(repetition_rate({words("a b c d a b c d a")}, 4), 1.0 - 4.0 / 6.0, 1e-12);
}

TEST(TextMetrics, BleuByHand) {
  // Identical: every precision 1, no brevity penalty.
  EXPECT_NEAR(bleu(words("the cat sat on the mat"), {words("the cat sat on the mat")}), 1.0, 1e-12);
  // hyp "a b c d" vs ref "a b c e": p1 = 3/4, p2 = 2/3 (ab bc), p3 = 1/2 (abc),
  // p4 = 0 matches -> smoothed 0.1/1. BP = 1 (equal lengths).
  // BLEU = (0.75 * 2/3 * 0.5 * 0.1)^(1/4) = 0.025^(1/4) = 0.397635...
  EXPECT_NEAR(bleu(words("a b c d"), {words("a b c e")}), std::pow(0.025, 0.25), 1e-12);
  // Clipping, BLEU-1: "the the the the" vs "the cat": min(4, 1)/4; c = 4 > r = 2, BP = 1.
  EXPECT_NEAR(bleu(words("the the the the"), {words("the cat")}, 1), 0.25, 1e-12);
  // Brevity: hyp "a b" vs ref "a b c d": p1 = p2 = 1, p3 = p4 = 0.1 (no n-grams),
  // BP = exp(1 - 4/2) -> e^-1 * (0.01)^(1/4).
  EXPECT_NEAR(bleu(words("a b"), {words("a b c d")}), std::exp(-1.0) * std::pow(0.01, 0.25), 1e-12);
  // Closest reference length wins: refs of length 3 and 7 for a hyp of 4 -> r = 3, BP = 1.
  EXPECT_NEAR(bleu(words("a b c d"), {words("x y z"), words("a b c d e f g")}),
              bleu(words("a b c d"), {words("a b c d e f g"), words("x y z")}), 1e-15);
  EXPECT_NEAR(bleu(words("a b c d"), {words("x y z"), words("a b c d e f g")}), 1.0, 1e-12);
  // No unigram match: 0.
  EXPECT_EQ(bleu(words("p q"), {words("a b")}), 0.0);
}

TEST(TextMetrics, SelfBleu) {
  // Two samples, each scored against the other: both 0.025^(1/4) (above).
  EXPECT_NEAR(self_bleu({words("a b c d"), words("a b c e")}), std::pow(0.025, 0.25), 1e-12);
  // Identical samples: 1; three samples where the odd one shares nothing:
  // (1 + 1 + 0) / 3.
  EXPECT_NEAR(self_bleu({words("x y z w"), words("x y z w")}), 1.0, 1e-12);
  EXPECT_NEAR(self_bleu({words("x y z w"), words("x y z w"), words("p q r s")}), 2.0 / 3.0, 1e-12);
  EXPECT_THROW(self_bleu({words("a")}), mk::Error);
  auto m = text_generation_metrics({words("a b a b"), words("a c")});
  EXPECT_DOUBLE_EQ(m.distinct_1, 0.5);
  EXPECT_EQ(m.to_map().count("self_bleu"), 1u);
}

TEST(DnaMetrics, JsDivergenceByHand) {
  // Disjoint supports: 1 bit.
  EXPECT_NEAR(js_divergence({1, 0}, {0, 1}), 1.0, 1e-12);
  // p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4):
  // KL(p||m) = 1/2 log2(2/3) + 1/2 log2(2) = 0.5 * (-0.5849625) + 0.5 = 0.2075187
  // KL(q||m) = log2(4/3) = 0.4150375;  JSD = (0.2075187 + 0.4150375) / 2 = 0.3112781
  EXPECT_NEAR(js_divergence({0.5, 0.5}, {1, 0}), 0.311278124459, 1e-10);
  EXPECT_NEAR(js_divergence({2, 6}, {1, 3}), 0.0, 1e-15);  // normalised first
  EXPECT_THROW(js_divergence({1, 0}, {1, 0, 0}), mk::Error);
  EXPECT_THROW(js_divergence({0, 0}, {1, 0}), mk::Error);
}

TEST(DnaMetrics, KmerSpectrumAndGc) {
  // "ACGTN", k = 2: AC CG GT (TN skipped) -> 1/3 each at A*4+C = 1, C*4+G = 6, G*4+T = 11.
  auto h = kmer_spectrum({"ACgTN"}, 2);
  ASSERT_EQ(h.size(), 16u);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(h[i], (i == 1 || i == 6 || i == 11) ? 1.0 / 3 : 0.0, 1e-15);
  EXPECT_THROW(kmer_spectrum({"ANA"}, 2), mk::Error);
  // GC: "GGCA" 3 of 4, "ATNN" 0 of 2 -> 3/6.
  EXPECT_DOUBLE_EQ(gc_content({"GGCA", "ATNN"}), 0.5);

  auto same = dna_generation_metrics({"ACGTTGCA", "GGGCCCAT"}, {"ACGTTGCA", "GGGCCCAT"});
  ASSERT_EQ(same.kmer_jsd.size(), 6u);
  for (double j : same.kmer_jsd) EXPECT_NEAR(j, 0.0, 1e-12);
  // All-A against all-C: disjoint spectra at every k; GC 0 vs 1.
  auto far = dna_generation_metrics({"AAAAAAAA"}, {"CCCCCCCC"});
  for (double j : far.kmer_jsd) EXPECT_NEAR(j, 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(far.gc_deviation, 1.0);
  // Per-sample GC 1/4 and 3/4 -> population std 1/4.
  EXPECT_DOUBLE_EQ(dna_generation_metrics({"GAAA", "GGCA"}, {"ACGT"}, 1).gc_sample_std, 0.25);
}

TEST(AudioMetrics, MuLawAndHistograms) {
  EXPECT_NEAR(mu_law_decode(255), 1.0f, 1e-6);
  EXPECT_NEAR(mu_law_decode(0), -1.0f, 1e-6);
  // Code 128: y = 1/255, x = (256^(1/255) - 1) / 255 ~ 8.56e-5.
  EXPECT_NEAR(mu_law_decode(128), (std::pow(256.0, 1.0 / 255) - 1) / 255, 1e-9);
  EXPECT_NEAR(mu_law_decode(127), -mu_law_decode(128), 1e-9);  // symmetric
  std::vector<std::vector<uint8_t>> a = {{1, 1, 2}}, b = {{200, 201}};
  EXPECT_NEAR(js_divergence(code_histogram(a), code_histogram(a)), 0.0, 1e-15);
  EXPECT_NEAR(js_divergence(code_histogram(a), code_histogram(b)), 1.0, 1e-12);
}

TEST(AudioMetrics, FrameStatistics) {
  // Constant 0.5: every frame has RMS 0.5 exactly.
  FrameStats c = frame_stats({std::vector<float>(1024, 0.5f)}, 256, 256);
  EXPECT_EQ(c.frames, 4u);
  EXPECT_NEAR(c.rms_mean, 0.5, 1e-7);
  EXPECT_NEAR(c.rms_std, 0.0, 1e-7);
  // A sine on bin 16 of a 256-frame: power in ~3 bins, the rest at the floor
  // -> flatness near 0; RMS = amplitude / sqrt 2.
  std::vector<float> sine(2048);
  for (size_t i = 0; i < sine.size(); ++i) sine[i] = float(0.8 * std::sin(2 * M_PI * 16 * i / 256.0));
  FrameStats s = frame_stats({sine}, 256, 128);
  EXPECT_LT(s.flatness_mean, 1e-6);
  EXPECT_NEAR(s.rms_mean, 0.8 / std::sqrt(2.0), 1e-5);
  // White noise: exponentially distributed bin powers -> flatness near
  // exp(-gamma) = 0.561; RMS near sigma.
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.3f);
  std::vector<float> noise(1 << 15);
  for (float& x : noise) x = nd(rng);
  FrameStats w = frame_stats({noise}, 512, 256);
  EXPECT_NEAR(w.flatness_mean, 0.5615, 0.06);
  EXPECT_NEAR(w.rms_mean, 0.3, 0.01);
  // Shorter than a frame: one zero-padded frame.
  EXPECT_EQ(frame_stats({std::vector<float>(10, 1.0f)}, 64, 32).frames, 1u);
  EXPECT_THROW(frame_stats({sine}, 100, 50), mk::Error);

  auto m = audio_generation_metrics({{0, 255, 0, 255}}, {{0, 255, 0, 255}}, 4, 2);
  EXPECT_NEAR(m.code_jsd, 0.0, 1e-15);
  EXPECT_NEAR(m.generated.rms_mean, 1.0, 1e-6);  // codes 0 and 255 decode to -1 and 1
}

TEST(ClassifierScores, InceptionFamilyByHand) {
  // One-hot predictions balanced over 2 classes: p(y) = (1/2, 1/2),
  // KL(onehot || p(y)) = ln 2 for each -> IS = exp(ln 2) = 2.
  std::vector<double> onehot = {1, 0, 0, 1, 1, 0, 0, 1};
  EXPECT_NEAR(inception_score(onehot, 4, 2), 2.0, 1e-12);
  // Uniform predictions: KL 0 -> IS = 1; AM with uniform prior: KL(u || u) = 0
  // plus mean entropy ln 2.
  std::vector<double> uniform = {0.5, 0.5, 0.5, 0.5};
  EXPECT_NEAR(inception_score(uniform, 2, 2), 1.0, 1e-12);
  EXPECT_NEAR(am_score(uniform, 2, 2), std::log(2.0), 1e-12);
  // Balanced one-hot: AM = 0 + 0.
  EXPECT_NEAR(am_score(onehot, 4, 2), 0.0, 1e-12);
  // With a prior (3/4, 1/4) against p(y) = (1/2, 1/2):
  // KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.3041 - 0.1733 = 0.130812.
  EXPECT_NEAR(am_score(onehot, 4, 2, {3, 1}), 0.75 * std::log(1.5) + 0.25 * std::log(0.5), 1e-12);

  // mIS: a = (0.9, 0.1), b = (0.6, 0.4) share class 0; c = (0.2, 0.8) is alone.
  // KL(a||b) = 0.9 ln 1.5 + 0.1 ln 0.25 = 0.364919 - 0.138629 = 0.226289
  // KL(b||a) = 0.6 ln(2/3) + 0.4 ln 4   = -0.243279 + 0.554518 = 0.311239
  // mIS = exp((0.226289 + 0.311239) / 2) = exp(0.268764) = 1.308346
  std::vector<double> p = {0.9, 0.1, 0.6, 0.4, 0.2, 0.8};
  double kab = 0.9 * std::log(1.5) + 0.1 * std::log(0.25);
  double kba = 0.6 * std::log(2.0 / 3.0) + 0.4 * std::log(4.0);
  EXPECT_NEAR(modified_inception_score(p, 3, 2), std::exp((kab + kba) / 2), 1e-12);
  EXPECT_NEAR(modified_inception_score(p, 3, 2), 1.308346, 1e-6);
  EXPECT_THROW(inception_score({0.5, 0.5, -1, 2}, 2, 2), mk::Error);
  EXPECT_THROW(inception_score({0.5, 0.5, 1}, 2, 2), mk::Error);
}

TEST(ClassifierScores, FidOfOneDimensionalGaussians) {
  // x1 = {0, 2}: mean 1, unbiased var (1 + 1) / 1 = 2; x2 = {3, 7}: mean 5, var 8.
  // FID = (mu1 - mu2)^2 + s1 + s2 - 2 sqrt(s1 s2) = 16 + 2 + 8 - 2 * 4 = 18.
  EXPECT_NEAR(frechet_distance(std::vector<double>{0, 2}, 2, std::vector<double>{3, 7}, 2, 1), 18.0,
              1e-10);
}

TEST(ClassifierScores, FidWithNonCommutingCovariances) {
  // S1 = [[2, 1], [1, 2]], S2 = diag(1, 4), equal means. S1 S2 = [[2, 4], [1, 8]]
  // has positive eigenvalues l1, l2 with l1 + l2 = tr = 10 and l1 l2 = det =
  // det S1 det S2 = 3 * 4 = 12, so tr (S1 S2)^(1/2) = sqrt(l1) + sqrt(l2) =
  // sqrt(10 + 2 sqrt 12) = 4.114394. FID = tr S1 + tr S2 - 2 * 4.114394
  // = 4 + 5 - 8.228788 = 0.771212.
  std::vector<double> mu = {0, 0}, s1 = {2, 1, 1, 2}, s2 = {1, 0, 0, 4};
  double expect = 9.0 - 2 * std::sqrt(10 + 2 * std::sqrt(12.0));
  EXPECT_NEAR(frechet_distance(mu, s1, mu, s2, 2), expect, 1e-10);
  EXPECT_NEAR(frechet_distance(mu, s2, mu, s1, 2), expect, 1e-10);  // symmetric
  // Mean shift (1, 2) adds |d|^2 = 5.
  EXPECT_NEAR(frechet_distance({1, 2}, s1, mu, s2, 2), expect + 5, 1e-10);
}

TEST(ClassifierScores, FidOfAFeatureSetWithItselfIsZero) {
  std::mt19937 rng(5);
  std::normal_distribution<double> nd;
  size_t n = 200, d = 6;
  std::vector<double> f(n * d);
  for (double& x : f) x = nd(rng);
  EXPECT_NEAR(frechet_distance(f, n, f, n, d), 0.0, 1e-8);
  // Symmetric eigensolver: A V = V diag(w) on the sample covariance.
  std::vector<double> mu, cov, v;
  mean_cov(f, n, d, mu, cov);
  auto w = symmetric_eigen(cov, d, &v);
  for (size_t i = 0; i < d; ++i)
    for (size_t k = 0; k < d; ++k) {
      double av = 0;
      for (size_t j = 0; j < d; ++j) av += cov[i * d + j] * v[j * d + k];
      EXPECT_NEAR(av, v[i * d + k] * w[k], 1e-10);
    }
  for (size_t k = 1; k < d; ++k) EXPECT_LE(w[k - 1], w[k]);
  // All four at once: balanced one-hot predictions of the same n samples.
  std::vector<double> probs(n * 2, 0.0);
  for (size_t i = 0; i < n; ++i) probs[i * 2 + i % 2] = 1;
  auto s = classifier_scores(probs, n, 2, f, d, f, n);
  EXPECT_NEAR(s.is, 2.0, 1e-12);
  EXPECT_NEAR(s.mis, 1.0, 1e-12);  // identical predictions within a class
  EXPECT_NEAR(s.am, 0.0, 1e-12);
  EXPECT_NEAR(s.fid, 0.0, 1e-8);
  EXPECT_EQ(s.to_map().size(), 4u);
  EXPECT_THROW(frechet_distance(f, 1, f, n, d), mk::Error);
}
