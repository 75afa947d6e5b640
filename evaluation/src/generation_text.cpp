// Text generation metrics: distinct-n, n-gram repetition, BLEU, self-BLEU.
// n-grams are keyed by their tokens joined with a unit separator (0x1f), which
// byte- and word-level tokens of generated text do not contain in practice.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "mambakit/error.h"
#include "mambakit/evaluation/generation_metrics.h"

namespace mk::eval {

namespace {

using Counts = std::unordered_map<std::string, int>;

std::string key(const Tokens& t, size_t i, int n) {
  std::string k = t[i];
  for (int j = 1; j < n; ++j) (k += '\x1f') += t[i + j];
  return k;
}

size_t ngram_total(const Tokens& t, int n) { return t.size() >= size_t(n) ? t.size() - n + 1 : 0; }

Counts ngram_counts(const Tokens& t, int n) {
  Counts c;
  for (size_t i = 0; i < ngram_total(t, n); ++i) ++c[key(t, i, n)];
  return c;
}

void check_n(int n, const char* fn) {
  if (n < 1) throw Error(std::string(fn) + ": n must be >= 1");
}

// One sample's n-gram counts for n = 1..max_n.
struct Profile {
  size_t len = 0;
  std::vector<Counts> counts;  // [n-1]
};

Profile profile(const Tokens& t, int max_n) {
  Profile p;
  p.len = t.size();
  for (int n = 1; n <= max_n; ++n) p.counts.push_back(ngram_counts(t, n));
  return p;
}

double bleu_of(const Profile& hyp, const std::vector<const Profile*>& refs, int max_n,
               double epsilon) {
  if (hyp.len == 0 || refs.empty()) return 0;
  double log_p = 0;
  for (int n = 1; n <= max_n; ++n) {
    double matches = 0;
    for (const auto& [g, cnt] : hyp.counts[n - 1]) {
      int best = 0;  // clip by the most times any one reference has the n-gram
      for (const Profile* r : refs) {
        auto it = r->counts[n - 1].find(g);
        if (it != r->counts[n - 1].end()) best = std::max(best, it->second);
      }
      matches += std::min(cnt, best);
    }
    if (n == 1 && matches == 0) return 0;
    double total = double(std::max<size_t>(1, hyp.len >= size_t(n) ? hyp.len - n + 1 : 0));
    log_p += std::log((matches > 0 ? matches : epsilon) / total) / max_n;
  }
  // Closest reference length, the shorter on ties.
  size_t r = refs[0]->len;
  for (const Profile* p : refs) {
    long d = std::labs(long(p->len) - long(hyp.len)), best = std::labs(long(r) - long(hyp.len));
    if (d < best || (d == best && p->len < r)) r = p->len;
  }
  double c = double(hyp.len);
  double bp = c > double(r) ? 1.0 : std::exp(1.0 - double(r) / c);
  return bp * std::exp(log_p);
}

}  // namespace

Tokens words(const std::string& text) {
  Tokens out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace((unsigned char)text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !std::isspace((unsigned char)text[j])) ++j;
    if (j > i) out.push_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

Tokens chars(const std::string& text) {
  Tokens out;
  out.reserve(text.size());
  for (char c : text) out.emplace_back(1, c);
  return out;
}

double distinct_n(const std::vector<Tokens>& samples, int n) {
  check_n(n, "distinct_n");
  std::unordered_set<std::string> seen;
  size_t total = 0;
  for (const auto& s : samples) {
    total += ngram_total(s, n);
    for (size_t i = 0; i < ngram_total(s, n); ++i) seen.insert(key(s, i, n));
  }
  return total ? double(seen.size()) / double(total) : 0.0;
}

double repetition_rate(const std::vector<Tokens>& samples, int n) {
  check_n(n, "repetition_rate");
  double sum = 0;
  size_t counted = 0;
  for (const auto& s : samples) {
    size_t total = ngram_total(s, n);
    if (!total) continue;
    sum += 1.0 - double(ngram_counts(s, n).size()) / double(total);
    ++counted;
  }
  return counted ? sum / double(counted) : 0.0;
}

double bleu(const Tokens& hypothesis, const std::vector<Tokens>& references, int max_n,
            double epsilon) {
  check_n(max_n, "bleu");
  if (references.empty()) throw Error("bleu: no references");
  Profile h = profile(hypothesis, max_n);
  std::vector<Profile> r;
  for (const auto& t : references) r.push_back(profile(t, max_n));
  std::vector<const Profile*> refs;
  for (const auto& p : r) refs.push_back(&p);
  return bleu_of(h, refs, max_n, epsilon);
}

double self_bleu(const std::vector<Tokens>& samples, int max_n, double epsilon) {
  check_n(max_n, "self_bleu");
  if (samples.size() < 2) throw Error("self_bleu: needs at least 2 samples");
  std::vector<Profile> p;
  for (const auto& s : samples) p.push_back(profile(s, max_n));
  double sum = 0;
  std::vector<const Profile*> others;
  for (size_t i = 0; i < p.size(); ++i) {
    others.clear();
    for (size_t j = 0; j < p.size(); ++j)
      if (j != i) others.push_back(&p[j]);
    sum += bleu_of(p[i], others, max_n, epsilon);
  }
  return sum / double(p.size());
}

TextGenMetrics text_generation_metrics(const std::vector<Tokens>& samples) {
  TextGenMetrics m;
  m.distinct_1 = distinct_n(samples, 1);
  m.distinct_2 = distinct_n(samples, 2);
  m.distinct_3 = distinct_n(samples, 3);
  m.rep_4 = repetition_rate(samples, 4);
  m.self_bleu = samples.size() >= 2 ? self_bleu(samples) : 0.0;
  return m;
}

std::map<std::string, double> TextGenMetrics::to_map() const {
  return {{"distinct_1", distinct_1}, {"distinct_2", distinct_2}, {"distinct_3", distinct_3},
          {"rep_4", rep_4},           {"self_bleu", self_bleu}};
}

}  // namespace mk::eval
