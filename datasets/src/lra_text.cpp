// LRA readers of the text formats: ListOps TSV, byte-level Text (TSV rows or
// the IMDB directory layout), Retrieval pairs TSV; and dataset splitting.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include "lra_util.h"
#include "mambakit/datasets/lra.h"

namespace fs = std::filesystem;

namespace mk::data::lra {
namespace detail {

int parse_label(const std::string& field, int num_classes, const std::string& where) {
  const char* s = field.c_str();
  char* end = nullptr;
  double v = std::strtod(s, &end);
  bool ok = !field.empty() && end == s + field.size() && std::isfinite(v) && v == std::floor(v);
  if (!ok) throw Error(where + ": label " + shown(field) + " is not an integer");
  // Checked before the conversion to int; a label also sizes the classifier
  // head, so "any" class count is still bounded.
  const int limit = num_classes > 0 ? num_classes : kMaxClasses;
  if (!(v >= 0 && v < limit))
    throw Error(where + ": label " + field + " out of range [0, " + std::to_string(limit) + ")");
  return int(v);
}

}  // namespace detail

using detail::LineReader;
using detail::parse_label;
using detail::shown;
using detail::split_tabs;

namespace {

std::vector<uint8_t> bytes_of(const std::string& text, int max_len) {
  size_t n = std::min(text.size(), size_t(max_len));
  return std::vector<uint8_t>(text.begin(), text.begin() + n);
}

bool full(const Dataset& d, const ReadOptions& o) {
  return o.max_examples > 0 && d.examples.size() >= o.max_examples;
}

void check_nonempty(const Dataset& d) {
  if (d.examples.empty()) throw Error(d.source + ": no examples");
}

}  // namespace

// ---------------------------------------------------------------- ListOps ---

const std::vector<std::string>& listops_vocab() {
  static const std::vector<std::string> v = {"0", "1", "2",    "3",    "4",    "5",   "6", "7",
                                             "8", "9", "[MIN", "[MAX", "[MED", "[SM", "]"};
  return v;
}

std::vector<uint8_t> listops_tokenize(const std::string& source, const std::string& what) {
  static const std::unordered_map<std::string, uint8_t> ids = [] {
    std::unordered_map<std::string, uint8_t> m;
    for (size_t i = 0; i < listops_vocab().size(); ++i) m[listops_vocab()[i]] = uint8_t(i);
    return m;
  }();
  std::vector<uint8_t> out;
  size_t i = 0, n = source.size();
  while (i < n) {
    while (i < n && source[i] == ' ') ++i;
    size_t j = i;
    while (j < n && source[j] != ' ') ++j;
    if (j == i) break;
    std::string tok = source.substr(i, j - i);
    i = j;
    if (tok == "(" || tok == ")") continue;  // structure only; the LRA pipelines drop them
    auto it = ids.find(tok);
    if (it == ids.end()) throw Error(what + ": unknown ListOps token " + shown(tok));
    out.push_back(it->second);
  }
  return out;
}

Dataset read_listops(const std::string& tsv_path, const ReadOptions& o) {
  Dataset d;
  d.name = "listops";
  d.source = tsv_path;
  d.vocab_size = int(listops_vocab().size());
  d.num_classes = 10;
  d.max_len = o.max_len > 0 ? o.max_len : kListOpsLen;
  LineReader r(tsv_path);
  std::string line;
  while (!full(d, o) && r.next(line)) {
    if (line.empty()) continue;
    if (r.row() == 1 && line == "Source\tTarget") continue;
    auto f = split_tabs(line);
    if (f.size() != 2)
      throw Error(r.where() + ": expected 2 tab-separated columns (Source, Target), got " +
                  std::to_string(f.size()));
    Example e;
    e.label = parse_label(f[1], 10, r.where());
    e.tokens = listops_tokenize(f[0], r.where());
    if (e.tokens.empty()) throw Error(r.where() + ": empty Source");
    if (e.tokens.size() > size_t(d.max_len)) e.tokens.resize(d.max_len);
    d.examples.push_back(std::move(e));
  }
  check_nonempty(d);
  return d;
}

// ------------------------------------------------------------------- Text ---

Dataset read_text_tsv(const std::string& tsv_path, const ReadOptions& o) {
  Dataset d;
  d.name = "text";
  d.source = tsv_path;
  d.max_len = o.max_len > 0 ? o.max_len : kTextLen;
  LineReader r(tsv_path);
  std::string line;
  int max_label = -1;
  while (!full(d, o) && r.next(line)) {
    if (line.empty()) continue;
    size_t tab = line.find('\t');
    if (tab == std::string::npos)
      throw Error(r.where() + ": expected 2 tab-separated columns (label, text), got 1");
    std::string label = line.substr(0, tab);
    if (r.row() == 1 && label == "label") continue;  // header
    Example e;
    e.label = parse_label(label, 0, r.where());
    e.tokens = bytes_of(line.substr(tab + 1), d.max_len);
    max_label = std::max(max_label, e.label);
    d.examples.push_back(std::move(e));
  }
  check_nonempty(d);
  d.num_classes = std::max(2, max_label + 1);
  return d;
}

Dataset read_imdb_dir(const std::string& split_dir, const ReadOptions& o) {
  Dataset d;
  d.name = "text";
  d.source = split_dir;
  d.max_len = o.max_len > 0 ? o.max_len : kTextLen;
  d.num_classes = 2;
  const char* classes[2] = {"neg", "pos"};
  for (int label = 0; label < 2; ++label) {
    fs::path dir = fs::path(split_dir) / classes[label];
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw Error(dir.string() + ": no such directory (IMDB layout)");
    std::vector<fs::path> files;
    for (auto& ent : fs::directory_iterator(dir))
      if (ent.path().extension() == ".txt") files.push_back(ent.path());
    std::sort(files.begin(), files.end());
    for (auto& p : files) {
      if (full(d, o)) break;
      std::ifstream f(p, std::ios::binary);
      if (!f) throw Error(p.string() + ": cannot open file");
      std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      Example e;
      e.label = label;
      e.tokens = bytes_of(text, d.max_len);
      d.examples.push_back(std::move(e));
    }
  }
  check_nonempty(d);
  return d;
}

// -------------------------------------------------------------- Retrieval ---

Dataset read_retrieval(const std::string& tsv_path, const ReadOptions& o) {
  Dataset d;
  d.name = "retrieval";
  d.source = tsv_path;
  d.max_len = o.max_len > 0 ? o.max_len : kRetrievalLen;
  d.num_classes = 2;
  d.two_tower = true;
  LineReader r(tsv_path);
  std::string line;
  while (!full(d, o) && r.next(line)) {
    if (line.empty()) continue;
    auto f = split_tabs(line);
    if (r.row() == 1 && f[0] == "label") continue;  // header, if any
    if (f.size() != 5)
      throw Error(r.where() + ": expected 5 tab-separated columns (label, id1, id2, text1, " +
                  "text2), got " + std::to_string(f.size()));
    Example e;
    e.label = parse_label(f[0], 2, r.where());
    e.tokens = bytes_of(f[3], d.max_len);
    e.tokens2 = bytes_of(f[4], d.max_len);
    d.examples.push_back(std::move(e));
  }
  check_nonempty(d);
  return d;
}

// ----------------------------------------------------------------- Splits ---

Splits split_dataset(Dataset d, double val_fraction, double test_fraction, uint64_t seed) {
  if (!(val_fraction >= 0 && test_fraction >= 0 && val_fraction + test_fraction < 1))
    throw Error(d.source + ": split fractions must be >= 0 and sum to < 1");
  size_t n = d.examples.size();
  detail::Rng rng(seed);
  for (size_t i = n; i > 1; --i)  // Fisher-Yates
    std::swap(d.examples[i - 1], d.examples[size_t(rng.uniform() * double(i))]);
  size_t n_val = size_t(std::llround(val_fraction * double(n)));
  size_t n_test = size_t(std::llround(test_fraction * double(n)));
  Splits s;
  for (Dataset* part : {&s.train, &s.val, &s.test}) {
    *part = Dataset();
    part->name = d.name;
    part->source = d.source;
    part->vocab_size = d.vocab_size;
    part->num_classes = d.num_classes;
    part->max_len = d.max_len;
    part->two_tower = d.two_tower;
  }
  auto move_range = [&](Dataset& to, size_t a, size_t b) {
    to.examples.assign(std::make_move_iterator(d.examples.begin() + a),
                       std::make_move_iterator(d.examples.begin() + b));
  };
  move_range(s.val, 0, n_val);
  move_range(s.test, n_val, n_val + n_test);
  move_range(s.train, n_val + n_test, n);
  return s;
}

}  // namespace mk::data::lra
