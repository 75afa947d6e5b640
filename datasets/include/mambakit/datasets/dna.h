// DNA tokens, genomic intervals (BED) and the window sampler of the DNA
// pretraining recipe (HyenaDNA / Mamba on HG38: windows of length L drawn
// uniformly from the intervals of a BED file, optionally reverse-complemented).
#pragma once
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "mambakit/datasets/fasta.h"
#include "mambakit/datasets/windows.h"

namespace mk::data {

// Character tokenizer. Bases take the first ids so that complement(b) = 3 - b
// and a k-mer of bases is a base-4 number (the Markov baseline relies on it).
namespace dna {
enum Token : int32_t { A = 0, C = 1, G = 2, T = 3, N = 4, PAD = 5, BOS = 6, EOS = 7, CLS = 8 };
constexpr int kVocabSize = 9;
constexpr int kBases = 4;

// The id of a residue character: a c g t (soft-masked lower case is kept as
// upper case), U/u as T, the IUPAC ambiguity codes R Y S W K M B D H V N and
// X and the gap '-' as N; -1 for anything else.
int32_t base_id(unsigned char c);
// Throws mk::Error "<where> position <offset + i>: byte 0x.. is not a nucleotide code".
void encode(const char* s, size_t n, int32_t* out, const std::string& where, int64_t offset = 0);
std::vector<int32_t> encode(const std::string& s, const std::string& where = "DNA text");
// "ACGTN" letters; specials as [PAD] [BOS] [EOS] [CLS]; throws on ids >= kVocabSize.
std::string decode(const int32_t* ids, size_t n);
std::string decode(const std::vector<int32_t>& ids);
std::string token_name(int32_t id);
// Reverses and complements in place (A<->T, C<->G); N and specials keep their id.
void reverse_complement(int32_t* ids, size_t n);
std::vector<int32_t> reverse_complement(std::vector<int32_t> ids);
}  // namespace dna

struct GenomicInterval {
  std::string seq;    // sequence (chromosome) name
  int64_t beg = 0;    // 0-based, inclusive
  int64_t end = 0;    // exclusive
  std::string split;  // optional 4th BED column ("train", "valid", "test", ...)
  std::string where;  // "file:line" it came from, for messages
};

// A BED file: chrom, start, end [, split or name]; '#', 'track' and 'browser'
// lines and blank lines are skipped. Throws "<file>:<line>: <reason>" for
// fewer than 3 columns, non-numeric or negative coordinates, end <= start.
std::vector<GenomicInterval> read_bed(const std::string& path);
// Throws (with the interval's where) when an interval names a sequence the
// reader lacks or runs past its end.
void check_intervals(const FastaReader& fasta, const std::vector<GenomicInterval>& intervals);
// One interval per sequence of the file.
std::vector<GenomicInterval> whole_sequences(const FastaReader& fasta);
// The intervals whose split column is `split`; "val" and "valid"/
// "validation" are the same split. Throws naming `source` when none match.
std::vector<GenomicInterval> select_split(const std::vector<GenomicInterval>& intervals,
                                          const std::string& split, const std::string& source);
// Cuts every interval contiguously by fractions (summing to 1): the first
// part to "train", then "val", then "test" (2 or 3 fractions), so held-out
// bases never occur in training windows. Parts keep their interval's seq.
std::map<std::string, std::vector<GenomicInterval>> split_intervals(
    const std::vector<GenomicInterval>& intervals, const std::vector<double>& fractions);

struct DnaWindow {
  int seq = 0;       // sequence index in the reader
  int64_t beg = 0;   // 0-based start in that sequence
  bool rc = false;   // reverse-complemented
};

// Windows of window_len bases drawn uniformly over all starts that keep the
// window inside one interval (intervals shorter than window_len are never
// used; the constructor throws when none is long enough), each
// reverse-complemented with probability rc_prob. Deterministic per seed.
// LM tasks ask for seq_len + 1 bases (inputs plus the shifted targets).
class DnaWindowSampler {
 public:
  DnaWindowSampler(const FastaReader& fasta, std::vector<GenomicInterval> intervals,
                   int64_t window_len, uint64_t seed, double rc_prob = 0.0);

  int64_t window_len() const { return index_.window_len(); }
  uint64_t total_starts() const { return index_.total_starts(); }
  const std::vector<GenomicInterval>& intervals() const { return intervals_; }

  DnaWindow next_window();
  // Draws a window and writes its window_len tokens to out.
  DnaWindow next(int32_t* out);
  std::vector<int32_t> next();
  // Tokens of any window (reverse-complemented when w.rc).
  void fetch(const DnaWindow& w, int32_t* out) const;
  // Deterministic evaluation windows, never reverse-complemented:
  // consecutive windows `stride` apart in every interval (at most max, 0 = all).
  std::vector<DnaWindow> eval_windows(int64_t stride, size_t max_windows) const;

  std::string rng_state() const { return rng_state_text(rng_); }
  void set_rng_state(const std::string& s) { set_rng_state_text(rng_, s, "DNA window sampler"); }

 private:
  const FastaReader* fasta_;
  std::vector<GenomicInterval> intervals_;
  std::vector<int> seq_of_;  // reader index of each interval's sequence
  WindowIndex index_;
  double rc_prob_;
  std::mt19937_64 rng_;
};

}  // namespace mk::data
