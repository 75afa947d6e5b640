// LRA generators. ListOps: every expression evaluates to its label under an
// independent evaluator (a stack machine over the tokens, written here), and
// the files written read back. Pathfinder: the label agrees with a flood fill
// of the drawn pixels between the two markers, and the release layout reads
// back through read_pathfinder.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include "mambakit/datasets/lra.h"
#include "mambakit/error.h"

namespace fs = std::filesystem;
using namespace mk::data::lra;

namespace {

struct StackEval {
  int value = -1;
  int tokens = 0;        // without parentheses
  int max_nesting = 0;
  bool ok = true;
  std::string why;
};

// Evaluates the bracketed source with an explicit stack of open operators:
// an operator token opens a frame, digits append to the top frame, ']'
// closes it and appends its value to the frame below. Parentheses only group
// and must balance.
StackEval stack_eval(const std::string& source, int max_args) {
  StackEval r;
  struct Frame {
    std::string op;
    std::vector<int> args;
  };
  std::vector<Frame> st;
  std::vector<int> top_level;
  int parens = 0;
  std::istringstream in(source);
  std::string t;
  auto fail = [&](const std::string& why) {
    r.ok = false;
    r.why = why;
  };
  while (r.ok && in >> t) {
    if (t == "(") { ++parens; continue; }
    if (t == ")") { if (--parens < 0) fail("unbalanced )"); continue; }
    ++r.tokens;
    if (t == "[MIN" || t == "[MAX" || t == "[MED" || t == "[SM") {
      st.push_back({t, {}});
      r.max_nesting = std::max(r.max_nesting, int(st.size()));
    } else if (t == "]") {
      if (st.empty()) { fail("] without operator"); break; }
      Frame f = st.back();
      st.pop_back();
      auto& a = f.args;
      if (a.size() < 2 || int(a.size()) > max_args) { fail("arity " + std::to_string(a.size())); break; }
      int v;
      if (f.op == "[MIN") v = *std::min_element(a.begin(), a.end());
      else if (f.op == "[MAX") v = *std::max_element(a.begin(), a.end());
      else if (f.op == "[SM") { v = 0; for (int x : a) v = (v + x) % 10; }
      else {  // median: sort, middle element or floor of the middle pair's mean
        std::sort(a.begin(), a.end());
        size_t n = a.size();
        v = n % 2 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
      }
      (st.empty() ? top_level : st.back().args).push_back(v);
    } else if (t.size() == 1 && t[0] >= '0' && t[0] <= '9') {
      (st.empty() ? top_level : st.back().args).push_back(t[0] - '0');
    } else {
      fail("bad token " + t);
    }
  }
  if (r.ok && (parens != 0 || !st.empty() || top_level.size() != 1)) fail("not one closed tree");
  if (r.ok) r.value = top_level[0];
  return r;
}

std::string temp_dir(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("mk_lragen_" + std::to_string(getpid()) + "_" + tag);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

}  // namespace

TEST(ListOpsGenerator, StackEvaluatorSanity) {
  // Hand-checked: MED of (1, 8, 3, 6) = floor((3 + 6) / 2) = 4; SM(4, 9, 9) = 2.
  EXPECT_EQ(stack_eval("( ( ( ( ( [MED 1 ) 8 ) 3 ) 6 ) ] )", 10).value, 4);
  EXPECT_EQ(stack_eval("[SM 4 [MAX 9 2 ] 9 ]", 10).value, 2);
  EXPECT_FALSE(stack_eval("[SM 4 ]", 10).ok);
}

TEST(ListOpsGenerator, LabelsMatchIndependentEvaluator) {
  ListOpsConfig small;  // the small config's bounds
  small.min_length = 20;
  small.max_length = 512;
  ListOpsConfig published;  // 500 < tokens < 2000
  for (auto [cfg, n] : {std::make_pair(small, size_t(300)), std::make_pair(published, size_t(30))}) {
    auto ex = generate_listops(n, cfg, 11);
    ASSERT_EQ(ex.size(), n);
    std::set<std::string> distinct;
    std::set<int> labels;
    int ops_nested = 0;
    for (const auto& e : ex) {
      StackEval r = stack_eval(e.source, cfg.max_args);
      ASSERT_TRUE(r.ok) << r.why << " in " << e.source.substr(0, 80);
      EXPECT_EQ(r.value, e.target) << e.source.substr(0, 200);
      EXPECT_EQ(r.tokens, e.length);
      EXPECT_GT(r.tokens, cfg.min_length);
      EXPECT_LT(r.tokens, cfg.max_length);
      EXPECT_LE(r.max_nesting, cfg.max_depth - 1);  // operators only while depth < max_depth
      ops_nested += r.max_nesting > 1;
      distinct.insert(e.source);
      labels.insert(e.target);
    }
    EXPECT_EQ(distinct.size(), n);
    EXPECT_GE(labels.size(), 5u);  // labels spread over the digits
    EXPECT_GT(ops_nested, int(n) / 2);
  }
  // Deterministic in the seed.
  EXPECT_EQ(generate_listops(5, small, 3)[4].source, generate_listops(5, small, 3)[4].source);
  EXPECT_NE(generate_listops(5, small, 3)[0].source, generate_listops(5, small, 4)[0].source);
}

TEST(ListOpsGenerator, ReleaseFilesReadBack) {
  std::string dir = temp_dir("listops");
  ListOpsConfig cfg;
  cfg.min_length = 10;
  cfg.max_length = 100;
  write_listops_release(dir, 20, 5, 5, cfg, 5);
  auto ex = generate_listops(30, cfg, 5);
  Dataset train = read_listops(dir + "/basic_train.tsv");
  Dataset test = read_listops(dir + "/basic_test.tsv");
  ASSERT_EQ(train.examples.size(), 20u);
  ASSERT_EQ(read_listops(dir + "/basic_val.tsv").examples.size(), 5u);
  ASSERT_EQ(test.examples.size(), 5u);
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(train.examples[i].label, ex[i].target);
    EXPECT_EQ(int(train.examples[i].tokens.size()), ex[i].length);
  }
  EXPECT_EQ(test.examples[4].label, ex[29].target);
  fs::remove_all(dir);
}

namespace {

// 8-connected flood fill over non-zero pixels from (x0, y0); true if it
// reaches (x1, y1).
bool connected(const GrayImage& g, int x0, int y0, int x1, int y1) {
  std::vector<char> seen(g.pixels.size(), 0);
  std::vector<std::pair<int, int>> stack{{x0, y0}};
  auto px = [&](int x, int y) { return g.pixels[size_t(y) * g.width + x]; };
  if (!px(x0, y0)) return false;
  seen[size_t(y0) * g.width + x0] = 1;
  while (!stack.empty()) {
    auto [x, y] = stack.back();
    stack.pop_back();
    if (x == x1 && y == y1) return true;
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) {
        int nx = x + dx, ny = y + dy;
        if (nx < 0 || ny < 0 || nx >= g.width || ny >= g.height) continue;
        size_t i = size_t(ny) * g.width + nx;
        if (seen[i] || !g.pixels[i]) continue;
        seen[i] = 1;
        stack.push_back({nx, ny});
      }
  }
  return false;
}

}  // namespace

TEST(PathfinderGenerator, LabelsAgreeWithFloodFill) {
  struct Case {
    int size, contour, n;
  };
  for (Case c : {Case{16, 8, 200}, Case{32, 14, 200}, Case{128, 14, 10}}) {
    PathfinderConfig cfg = PathfinderConfig::for_size(c.size, c.contour);
    int positives = 0;
    for (int i = 0; i < c.n; ++i) {
      PathfinderSample s = generate_pathfinder(cfg, 42, uint64_t(i));
      ASSERT_EQ(s.image.width, c.size);
      ASSERT_EQ(s.image.pixels.size(), size_t(c.size) * c.size);
      int lit = 0;
      for (uint8_t p : s.image.pixels) lit += p != 0;
      // Two snakes (at least contour_length pixels each) are drawn.
      EXPECT_GE(lit, 2 * c.contour) << "size " << c.size << " sample " << i;
      EXPECT_LT(lit, c.size * c.size / 2);
      bool conn = connected(s.image, s.marker_x[0], s.marker_y[0], s.marker_x[1], s.marker_y[1]);
      EXPECT_EQ(conn, s.label == 1) << "size " << c.size << " sample " << i;
      positives += s.label;
    }
    EXPECT_GT(positives, c.n / 5) << c.size;  // a fair coin
    EXPECT_LT(positives, c.n - c.n / 5) << c.size;
  }
  // Independent of the other indices, deterministic in (seed, index).
  auto cfg = PathfinderConfig::for_size(32);
  EXPECT_EQ(generate_pathfinder(cfg, 1, 7).image.pixels, generate_pathfinder(cfg, 1, 7).image.pixels);
  EXPECT_NE(generate_pathfinder(cfg, 1, 7).image.pixels, generate_pathfinder(cfg, 1, 8).image.pixels);
}

TEST(PathfinderGenerator, ImpossibleConfigIsAnError) {
  PathfinderConfig cfg = PathfinderConfig::for_size(16, 14);
  cfg.num_distractors = 40;
  EXPECT_THROW(generate_pathfinder(cfg, 1, 0), mk::Error);
}

TEST(PathfinderGenerator, ReleaseLayoutReadsBack) {
  std::string root = temp_dir("pathfinder");
  PathfinderConfig cfg = PathfinderConfig::for_size(16, 8);
  write_pathfinder_release(root, 20, cfg, 9, 8);  // imgs/0..2, metadata/0..2.npy
  EXPECT_TRUE(fs::exists(root + "/imgs/2/sample_3.png"));
  EXPECT_TRUE(fs::exists(root + "/metadata/2.npy"));
  Dataset d = read_pathfinder(root, {}, 16);
  ASSERT_EQ(d.examples.size(), 20u);
  EXPECT_EQ(d.max_len, 256);
  for (size_t i = 0; i < 20; ++i) {
    PathfinderSample s = generate_pathfinder(cfg, 9, i);
    EXPECT_EQ(d.examples[i].label, s.label) << i;
    EXPECT_EQ(d.examples[i].tokens, s.image.pixels) << i;
  }
  fs::remove_all(root);
}
