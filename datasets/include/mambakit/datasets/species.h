// Species classification (HyenaDNA's species task): one FASTA, or a folder of
// FASTAs, per class; windows of length L labelled with their class. The
// train/val/test split is made over whole strains, never over positions, so
// no strain (and no stretch of its genome) is in two splits.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "mambakit/datasets/dna.h"
#include "mambakit/datasets/fasta.h"
#include "mambakit/datasets/windows.h"

namespace mk::data {

struct SpeciesClass {
  std::string name;
  std::string path;  // a FASTA/FASTQ file, or a folder searched recursively for them
};

// One class per path, named by its basename without sequence extensions
// ("refs/E.Coli" -> "E.Coli", "hpylori.fa.gz" -> "hpylori"); trailing
// folder names that all paths share are skipped first, so
// ".../E.Coli/references" and ".../H.Pylori/references" become "E.Coli" and
// "H.Pylori". Throws on duplicate names.
std::vector<SpeciesClass> species_classes(const std::vector<std::string>& paths);

// What a strain is. Auto: each file of a class folder; each record of a
// class given as a single file.
enum class StrainUnit { Auto, File, Record };
StrainUnit parse_strain_unit(const std::string& s);  // "auto" | "file" | "record"

struct SpeciesOptions {
  // Fractions of each class's strains for train, val[, test]. Every held-out
  // split with a fraction > 0 gets at least one strain of each class while
  // at least one strain is left for training; a class with a single strain
  // is an error.
  std::vector<double> split{0.6, 0.2, 0.2};
  uint64_t seed = 1;  // which strains go where
  StrainUnit unit = StrainUnit::Auto;
  FastaOptions fasta;
};

struct Strain {
  int label = 0;
  std::string name;          // file path, or "path:record"
  int file = 0;              // index of its FastaReader in the dataset
  std::vector<int> records;  // the reader's sequence indices making up the strain
  int64_t length = 0;        // bases over those records
};

class SpeciesDataset {
 public:
  SpeciesDataset(std::vector<SpeciesClass> classes, const SpeciesOptions& opts = {});

  int num_classes() const { return int(classes_.size()); }
  const std::vector<SpeciesClass>& classes() const { return classes_; }
  std::vector<std::string> class_names() const;
  const std::vector<std::string>& splits() const { return split_names_; }
  // Strains of a split, by label then name. Throws naming the split if unknown.
  const std::vector<Strain>& strains(const std::string& split) const;
  const FastaReader& reader(int file) const { return readers_.at(size_t(file)); }
  size_t num_files() const { return readers_.size(); }

 private:
  std::vector<SpeciesClass> classes_;
  std::vector<std::string> split_names_;
  std::vector<std::vector<Strain>> by_split_;
  std::vector<FastaReader> readers_;
};

struct LabeledWindow {
  int label = 0;
  int strain = 0;   // index into dataset.strains(split)
  int file = 0;     // reader index
  int seq = 0;      // sequence index in that reader
  int64_t beg = 0;
  bool rc = false;
};

// Windows of one split: a class is drawn uniformly (balanced classes) or in
// proportion to its bases, then a window uniformly over the class's strains
// (windows never cross a record). Deterministic per seed.
class SpeciesWindowSampler {
 public:
  SpeciesWindowSampler(const SpeciesDataset& ds, const std::string& split, int64_t window_len,
                       uint64_t seed, double rc_prob = 0.0, bool balance_classes = true);

  int64_t window_len() const { return window_len_; }
  LabeledWindow next_window();
  // Draws a window, writes window_len tokens to out, returns the label.
  int next(int32_t* out);
  void fetch(const LabeledWindow& w, int32_t* out) const;
  // The same windows every call (drawn with `seed`, not the sampler's
  // state), classes interleaved 0, 1, ..., so any prefix stays balanced;
  // never reverse-complemented. per_class windows for each class.
  std::vector<LabeledWindow> eval_windows(size_t per_class, uint64_t seed) const;

  std::string rng_state() const { return rng_state_text(rng_); }
  void set_rng_state(const std::string& s) { set_rng_state_text(rng_, s, "species window sampler"); }

 private:
  struct Segment {
    int strain, file, seq;
  };
  LabeledWindow draw(std::mt19937_64& rng, int label) const;

  const SpeciesDataset* ds_;
  const std::vector<Strain>* strains_;
  int64_t window_len_;
  double rc_prob_;
  bool balance_;
  std::vector<int> labels_;                 // classes with windows in this split
  std::vector<std::vector<Segment>> segs_;  // per class (indexed like labels_)
  std::vector<WindowIndex> index_;          // per class
  WindowIndex class_weight_;                // for unbalanced draws: one segment per class
  std::mt19937_64 rng_;
};

}  // namespace mk::data
