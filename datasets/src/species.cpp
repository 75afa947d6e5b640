#include "mambakit/datasets/species.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "fs_util.h"
#include "mambakit/error.h"

namespace mk::data {
namespace {

std::string strip_sequence_ext(std::string name) {
  for (int k = 0; k < 2; ++k) {
    size_t dot = name.find_last_of('.');
    if (dot == std::string::npos || dot == 0) break;
    std::string ext = name.substr(dot + 1);
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (ext == "gz" || ext == "bgz" || is_sequence_file_name("x." + ext)) name.resize(dot);
    else break;
  }
  return name;
}

}  // namespace

std::vector<SpeciesClass> species_classes(const std::vector<std::string>& paths) {
  std::vector<std::string> trimmed;
  std::vector<std::vector<std::string>> parts;
  for (const auto& p : paths) {
    std::string t = p;
    while (t.size() > 1 && t.back() == '/') t.pop_back();
    trimmed.push_back(t);
    std::vector<std::string> comp;
    for (size_t at = 0; at <= t.size();) {
      size_t slash = t.find('/', at);
      if (slash == std::string::npos) slash = t.size();
      if (slash > at) comp.push_back(t.substr(at, slash - at));
      at = slash + 1;
    }
    parts.push_back(comp);
  }
  // Drop trailing components all paths share, so .../E.Coli/references and
  // .../H.Pylori/references are named E.Coli and H.Pylori.
  size_t drop = 0;
  for (;; ++drop) {
    if (parts.size() < 2) break;
    bool same = true;
    for (const auto& c : parts)
      same = same && c.size() > drop + 1 && c[c.size() - 1 - drop] == parts[0][parts[0].size() - 1 - drop];
    if (!same) break;
  }
  std::vector<SpeciesClass> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < paths.size(); ++i) {
    const auto& c = parts[i];
    std::string name = c.empty() ? trimmed[i] : strip_sequence_ext(c[c.size() - 1 - drop]);
    if (!seen.insert(name).second)
      throw Error(paths[i] + ": two species classes would both be named '" + name + "'");
    out.push_back(SpeciesClass{name, trimmed[i]});
  }
  return out;
}

StrainUnit parse_strain_unit(const std::string& s) {
  if (s == "auto") return StrainUnit::Auto;
  if (s == "file") return StrainUnit::File;
  if (s == "record") return StrainUnit::Record;
  throw Error("strain unit '" + s + "': expected auto, file or record");
}

SpeciesDataset::SpeciesDataset(std::vector<SpeciesClass> classes, const SpeciesOptions& opts)
    : classes_(std::move(classes)), split_names_(split_names(opts.split.size())) {
  if (classes_.size() < 2) throw Error("species classification needs at least 2 classes, got " + std::to_string(classes_.size()));
  double sum = 0;
  for (double f : opts.split) {
    if (!(f >= 0)) throw Error("species split: fractions must be >= 0");
    sum += f;
  }
  if (std::fabs(sum - 1) > 1e-6) throw Error("species split: fractions must sum to 1");
  by_split_.resize(split_names_.size());
  std::mt19937_64 rng(opts.seed);

  for (size_t label = 0; label < classes_.size(); ++label) {
    const SpeciesClass& cls = classes_[label];
    const bool folder = fs::is_dir(cls.path);
    std::vector<std::string> files;
    if (folder) {
      files = fs::list_files(cls.path, is_sequence_file_name);
      if (files.empty()) throw Error(cls.path + ": class '" + cls.name + "': no FASTA/FASTQ files in this folder");
    } else {
      fs::require_file(cls.path, "FASTA file of class '" + cls.name + "'");
      files = {cls.path};
    }
    StrainUnit unit = opts.unit == StrainUnit::Auto ? (folder ? StrainUnit::File : StrainUnit::Record) : opts.unit;

    std::vector<Strain> strains;
    for (const auto& f : files) {
      int file = int(readers_.size());
      readers_.emplace_back(f, opts.fasta);
      const auto& seqs = readers_.back().sequences();
      if (unit == StrainUnit::File) {
        Strain s{int(label), f, file, {}, 0};
        for (size_t i = 0; i < seqs.size(); ++i) s.records.push_back(int(i)), s.length += seqs[i].length;
        strains.push_back(std::move(s));
      } else {
        for (size_t i = 0; i < seqs.size(); ++i)
          strains.push_back(Strain{int(label), f + ":" + seqs[i].name, file, {int(i)}, seqs[i].length});
      }
    }
    if (strains.size() < 2 && split_names_.size() > 1 && sum - opts.split[0] > 0)
      throw Error(cls.path + ": class '" + cls.name + "' has only one strain; a split by strain needs at least 2 " +
                  "(a folder with one FASTA per strain, or one multi-record FASTA with strain unit 'record')");

    // A seeded Fisher-Yates shuffle (our own, for the same split everywhere).
    std::sort(strains.begin(), strains.end(), [](const Strain& a, const Strain& b) { return a.name < b.name; });
    for (size_t i = strains.size(); i > 1; --i) std::swap(strains[i - 1], strains[uniform_index(rng, i)]);
    auto counts = split_counts(strains.size(), opts.split);
    size_t at = 0;
    for (size_t k = 0; k < counts.size(); ++k) {
      std::vector<Strain> part(strains.begin() + long(at), strains.begin() + long(at + counts[k]));
      std::sort(part.begin(), part.end(), [](const Strain& a, const Strain& b) { return a.name < b.name; });
      for (auto& s : part) by_split_[k].push_back(std::move(s));
      at += counts[k];
    }
  }
}

std::vector<std::string> SpeciesDataset::class_names() const {
  std::vector<std::string> out;
  for (const auto& c : classes_) out.push_back(c.name);
  return out;
}

const std::vector<Strain>& SpeciesDataset::strains(const std::string& split) const {
  std::string s = split == "valid" || split == "validation" ? "val" : split;
  for (size_t k = 0; k < split_names_.size(); ++k)
    if (split_names_[k] == s) return by_split_[k];
  throw Error("species dataset has no split '" + split + "'");
}

SpeciesWindowSampler::SpeciesWindowSampler(const SpeciesDataset& ds, const std::string& split,
                                           int64_t window_len, uint64_t seed, double rc_prob,
                                           bool balance_classes)
    : ds_(&ds), strains_(&ds.strains(split)), window_len_(window_len), rc_prob_(rc_prob),
      balance_(balance_classes), rng_(seed) {
  if (window_len < 1) throw Error("species sampler: window length must be >= 1");
  std::vector<std::vector<Segment>> segs(size_t(ds.num_classes()));
  std::vector<std::vector<int64_t>> lens(size_t(ds.num_classes()));
  for (size_t i = 0; i < strains_->size(); ++i) {
    const Strain& s = (*strains_)[i];
    for (int r : s.records) {
      segs[size_t(s.label)].push_back(Segment{int(i), s.file, r});
      lens[size_t(s.label)].push_back(ds.reader(s.file).sequences()[size_t(r)].length);
    }
  }
  std::vector<int64_t> weights;
  for (int c = 0; c < ds.num_classes(); ++c) {
    WindowIndex idx(lens[size_t(c)], window_len);
    if (idx.total_starts() == 0) continue;
    labels_.push_back(c);
    segs_.push_back(std::move(segs[size_t(c)]));
    index_.push_back(std::move(idx));
    weights.push_back(int64_t(index_.back().total_starts()));
  }
  if (labels_.empty())
    throw Error("species split '" + split + "': no strain is as long as a window of " + std::to_string(window_len));
  class_weight_ = WindowIndex(weights, 1);
}

LabeledWindow SpeciesWindowSampler::draw(std::mt19937_64& rng, int k) const {
  WindowPos p = index_[size_t(k)].sample(rng);
  const Segment& s = segs_[size_t(k)][p.segment];
  LabeledWindow w;
  w.label = labels_[size_t(k)];
  w.strain = s.strain, w.file = s.file, w.seq = s.seq, w.beg = p.start;
  w.rc = uniform_unit(rng) < rc_prob_;
  return w;
}

LabeledWindow SpeciesWindowSampler::next_window() {
  size_t k = balance_ ? size_t(uniform_index(rng_, labels_.size())) : class_weight_.sample(rng_).segment;
  return draw(rng_, int(k));
}

void SpeciesWindowSampler::fetch(const LabeledWindow& w, int32_t* out) const {
  ds_->reader(w.file).fetch_tokens(w.seq, w.beg, w.beg + window_len_, out);
  if (w.rc) dna::reverse_complement(out, size_t(window_len_));
}

int SpeciesWindowSampler::next(int32_t* out) {
  LabeledWindow w = next_window();
  fetch(w, out);
  return w.label;
}

std::vector<LabeledWindow> SpeciesWindowSampler::eval_windows(size_t per_class, uint64_t seed) const {
  std::mt19937_64 rng(seed);
  std::vector<LabeledWindow> out;
  for (size_t i = 0; i < per_class; ++i)
    for (size_t k = 0; k < labels_.size(); ++k) {
      LabeledWindow w = draw(rng, int(k));
      w.rc = false;
      out.push_back(w);
    }
  return out;
}

}  // namespace mk::data
