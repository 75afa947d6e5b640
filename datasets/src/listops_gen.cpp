// ListOps generator (Nangia & Bowman 2018, as configured for LRA): random
// operator trees over digits, written in the published bracketed form.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unordered_set>

#include "lra_util.h"
#include "mambakit/datasets/lra.h"

namespace mk::data::lra {

namespace {

const char* kOps[4] = {"[MIN", "[MAX", "[MED", "[SM"};

int apply_op(int op, std::vector<int> v) {
  switch (op) {
    case 0: return *std::min_element(v.begin(), v.end());
    case 1: return *std::max_element(v.begin(), v.end());
    case 2: {  // int(np.median(v)): the mean of the middle pair for an even count, truncated
      std::sort(v.begin(), v.end());
      size_t m = v.size() / 2;
      return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
    }
    default: {
      int s = 0;
      for (int x : v) s += x;
      return s % 10;
    }
  }
}

struct TreeGen {
  const ListOpsConfig& cfg;
  detail::Rng& rng;
  int length = 0;  // tokens so far (digits + operators + closing brackets)

  // Appends the subtree's text to out and returns its value, or -1 once the
  // tree has reached max_length tokens (it would be rejected anyway).
  int node(int depth, std::string& out) {
    bool op = depth < cfg.max_depth && rng.uniform() < cfg.op_prob;
    if (!op) {
      int v = rng.below(10);
      out += char('0' + v);
      ++length;
      return length >= cfg.max_length ? -1 : v;
    }
    length += 2;  // the operator and its ']'
    int nargs = rng.range(2, cfg.max_args);
    int which = rng.below(4);
    // (((op a0) a1) ... ]) : one '(' per argument plus one for the ']'.
    for (int i = 0; i <= nargs; ++i) out += "( ";
    out += kOps[which];
    std::vector<int> vals;
    for (int i = 0; i < nargs; ++i) {
      out += ' ';
      int v = node(depth + 1, out);
      if (v < 0) return -1;
      vals.push_back(v);
      out += " )";
    }
    out += " ] )";
    return length >= cfg.max_length ? -1 : apply_op(which, vals);
  }
};

}  // namespace

std::vector<ListOpsExample> generate_listops(size_t n, const ListOpsConfig& cfg, uint64_t seed) {
  if (cfg.max_args < 2 || cfg.max_depth < 1 || cfg.min_length + 1 >= cfg.max_length ||
      !(cfg.op_prob > 0 && cfg.op_prob < 1))
    throw Error("generate_listops: need max_args >= 2, max_depth >= 1, min_length + 1 < "
                "max_length and 0 < op_prob < 1");
  detail::Rng rng(seed);
  std::vector<ListOpsExample> out;
  std::unordered_set<std::string> seen;
  size_t attempts = 0, max_attempts = 100000 + 10000 * n;
  while (out.size() < n) {
    if (++attempts > max_attempts)
      throw Error("generate_listops: found only " + std::to_string(out.size()) + " of " +
                  std::to_string(n) + " distinct expressions with " +
                  std::to_string(cfg.min_length) + " < tokens < " +
                  std::to_string(cfg.max_length) + "; widen the length bounds");
    TreeGen g{cfg, rng};
    ListOpsExample e;
    int v = g.node(1, e.source);
    if (v < 0 || g.length <= cfg.min_length) continue;
    if (!seen.insert(e.source).second) continue;
    e.target = v;
    e.length = g.length;
    out.push_back(std::move(e));
  }
  return out;
}

void write_listops_tsv(const std::string& path, const std::vector<ListOpsExample>& examples) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot create file");
  f << "Source\tTarget\n";
  for (const auto& e : examples) f << e.source << '\t' << e.target << '\n';
  if (!f) throw Error(path + ": write error");
}

void write_listops_release(const std::string& dir, size_t n_train, size_t n_val, size_t n_test,
                           const ListOpsConfig& cfg, uint64_t seed) {
  std::filesystem::create_directories(dir);
  auto all = generate_listops(n_train + n_val + n_test, cfg, seed);
  auto part = [&](size_t a, size_t b) {
    return std::vector<ListOpsExample>(all.begin() + a, all.begin() + b);
  };
  write_listops_tsv(dir + "/basic_train.tsv", part(0, n_train));
  write_listops_tsv(dir + "/basic_val.tsv", part(n_train, n_train + n_val));
  write_listops_tsv(dir + "/basic_test.tsv", part(n_train + n_val, all.size()));
}

}  // namespace mk::data::lra
