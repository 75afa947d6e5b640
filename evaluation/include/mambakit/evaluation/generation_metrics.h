// Quality of generated samples, per modality: text (distinct-n, 4-gram
// repetition, self-BLEU), DNA (k-mer spectrum divergence, GC content), audio
// (mu-law code histogram divergence, spectral flatness and RMS energy), and
// the classifier-based scores of SaShiMi's SC09 evaluation (IS, mIS, AM, FID)
// given a classifier's class probabilities and features.
//
// Divergences are Jensen-Shannon in bits (log base 2, so within [0, 1]).
// Bad input (empty sets, mismatched sizes) throws mk::Error naming the
// function and the problem.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mk::eval {

// ------------------------------------------------------------------ Text ---
using Tokens = std::vector<std::string>;
Tokens words(const std::string& text);  // split on whitespace
Tokens chars(const std::string& text);  // one token per byte

// Distinct n-grams over all samples / total n-grams over all samples
// (Li et al. 2016); 0 when there are no n-grams.
double distinct_n(const std::vector<Tokens>& samples, int n);
// Mean over samples (with at least one n-gram) of 1 - unique/total n-grams
// within the sample: the fraction of n-grams repeating an earlier one
// (Welleck et al. 2020, seq-rep-n).
double repetition_rate(const std::vector<Tokens>& samples, int n = 4);
// Sentence BLEU (Papineni et al. 2002) of one hypothesis against references:
// clipped n-gram precisions for n = 1..max_n, uniform weights, brevity
// penalty against the closest reference length (ties: the shorter), and
// "method 1" smoothing: a precision with no matches counts epsilon matches.
// 0 when no unigram matches at all.
double bleu(const Tokens& hypothesis, const std::vector<Tokens>& references, int max_n = 4,
            double epsilon = 0.1);
// Mean over samples of BLEU-max_n of the sample against all the others
// (Zhu et al. 2018); higher means less diverse. Needs >= 2 samples.
double self_bleu(const std::vector<Tokens>& samples, int max_n = 4, double epsilon = 0.1);

struct TextGenMetrics {
  double distinct_1 = 0, distinct_2 = 0, distinct_3 = 0, rep_4 = 0, self_bleu = 0;
  std::map<std::string, double> to_map() const;
};
TextGenMetrics text_generation_metrics(const std::vector<Tokens>& samples);

// ------------------------------------------------------------------- DNA ---
// Normalised counts (4^k entries, A C G T order, first base most
// significant) of the k-mers of the sequences, case-insensitive; windows
// with any other character (N, ...) are skipped.
std::vector<double> kmer_spectrum(const std::vector<std::string>& seqs, int k);
// JS divergence in bits of two histograms (normalised here; same size,
// non-negative, non-zero sums).
double js_divergence(const std::vector<double>& p, const std::vector<double>& q);
// (G + C) / (A + C + G + T), case-insensitive; 0 with no ACGT.
double gc_content(const std::vector<std::string>& seqs);

struct DnaGenMetrics {
  std::vector<double> kmer_jsd;  // [k-1] for k = 1..max_k
  double gc = 0;                 // generated
  double gc_reference = 0;       // held-out
  double gc_deviation = 0;       // |gc - gc_reference|
  double gc_sample_std = 0;      // std of the per-sample GC contents (generated)
  std::map<std::string, double> to_map() const;
};
DnaGenMetrics dna_generation_metrics(const std::vector<std::string>& generated,
                                     const std::vector<std::string>& held_out, int max_k = 6);

// ----------------------------------------------------------------- Audio ---
// 8-bit mu-law code -> [-1, 1] (SaShiMi's decoder: y = 2 c/255 - 1,
// x = sign(y) ((1 + 255)^|y| - 1) / 255).
float mu_law_decode(uint8_t code);
// Normalised histogram of the 256 codes.
std::vector<double> code_histogram(const std::vector<std::vector<uint8_t>>& codes);

// Per-frame statistics over all frames of all signals: spectral flatness
// (geometric / arithmetic mean of the Hann-windowed power spectrum, power
// floored at 1e-10 as librosa does) and RMS energy. Frames of `frame`
// samples (a power of two) every `hop`; a signal shorter than a frame is one
// zero-padded frame.
struct FrameStats {
  double flatness_mean = 0, flatness_std = 0, rms_mean = 0, rms_std = 0;
  size_t frames = 0;
};
FrameStats frame_stats(const std::vector<std::vector<float>>& signals, int frame = 512,
                       int hop = 256);

struct AudioGenMetrics {
  double code_jsd = 0;  // JS divergence of the code histograms, generated vs reference
  FrameStats generated, reference;
  std::map<std::string, double> to_map() const;
};
AudioGenMetrics audio_generation_metrics(const std::vector<std::vector<uint8_t>>& generated,
                                         const std::vector<std::vector<uint8_t>>& reference,
                                         int frame = 512, int hop = 256);

// ------------------------------------------------ Classifier-based scores ---
// probs: (n, c) row-major class probabilities of n samples (rows are
// renormalised; must be non-negative with positive sums). Natural logs.
// IS = exp(E_x KL(p(y|x) || p(y))), p(y) the mean of the rows.
double inception_score(const std::vector<double>& probs, size_t n, size_t c);
// Modified IS (Gurumurthy et al. 2017): exp(E KL(p(y|x_i) || p(y|x_j))) over
// ordered pairs i != j with the same argmax class (within-class diversity).
// Pairs are pooled over classes; 1 when no class has two samples.
double modified_inception_score(const std::vector<double>& probs, size_t n, size_t c);
// AM score (Zhou et al. 2018): KL(prior || p(y)) + E_x H(p(y|x)), prior the
// training class distribution (uniform when empty). Lower is better.
double am_score(const std::vector<double>& probs, size_t n, size_t c,
                const std::vector<double>& prior = {});
// Frechet distance between Gaussians fit to two feature sets (n1, d) and
// (n2, d), row-major: |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), with
// unbiased covariances (n - 1). Needs n1, n2 >= 2.
double frechet_distance(const std::vector<double>& feats1, size_t n1,
                        const std::vector<double>& feats2, size_t n2, size_t d);
// The same from means (d) and covariances (d, d). tr (S1 S2)^(1/2) is
// computed as the sum of square roots of the eigenvalues of the symmetric
// S1^(1/2) S2 S1^(1/2) (same spectrum as S1 S2), via symmetric
// eigendecompositions (LAPACK dsyev); tiny negative eigenvalues from
// rounding are clamped to 0.
double frechet_distance(const std::vector<double>& mu1, const std::vector<double>& cov1,
                        const std::vector<double>& mu2, const std::vector<double>& cov2,
                        size_t d);
// Mean (d) and unbiased covariance (d, d) of (n, d) row-major features.
void mean_cov(const std::vector<double>& feats, size_t n, size_t d, std::vector<double>& mu,
              std::vector<double>& cov);
// Eigenvalues (ascending) of a symmetric (d, d) matrix and, if vecs is not
// null, its eigenvectors as the columns of the (d, d) row-major *vecs:
// vecs[i*d + k] is component i of eigenvector k (A V = V diag(w)).
std::vector<double> symmetric_eigen(const std::vector<double>& a, size_t d,
                                    std::vector<double>* vecs = nullptr);

struct ClassifierScores {
  double is = 0, mis = 0, am = 0, fid = 0;
  std::map<std::string, double> to_map() const;
};
// All four: probs (n, c) of generated samples; features (n, d) of generated
// and (n_ref, d) of reference samples; prior as for am_score.
ClassifierScores classifier_scores(const std::vector<double>& probs, size_t n, size_t c,
                                   const std::vector<double>& feats, size_t d,
                                   const std::vector<double>& ref_feats, size_t n_ref,
                                   const std::vector<double>& prior = {});

}  // namespace mk::eval
