// Pathfinder generator (after Linsley et al. 2018, as used by LRA): curvy
// snakes of short segments, end markers, distractors; label = whether both
// markers lie on one snake. Objects never touch (a gap of background pixels
// in the 8-neighbourhood), so the label is exactly the 8-connectivity of the
// two markers through drawn pixels, which the tests check by flood fill.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "lra_util.h"
#include "mambakit/datasets/lra.h"

namespace fs = std::filesystem;

namespace mk::data::lra {

PathfinderConfig PathfinderConfig::for_size(int size, int contour_length) {
  PathfinderConfig c;
  c.size = size;
  c.contour_length = contour_length;
  c.segment_length = std::max(1.0, 0.08 * size);
  c.max_turn = 0.5;
  c.marker_radius = std::max(1, size / 32);
  c.gap = size >= 64 ? 2 : 1;
  c.num_distractors = size <= 16 ? 1 : size >= 64 ? 4 : 2;
  c.distractor_length = std::max(2, contour_length / 3);
  return c;
}

namespace {

constexpr double kPi = 3.14159265358979323846;

struct Canvas {
  int size;
  std::vector<int> owner;  // (size, size): 0 background, else object id
};

struct Point {
  int x, y;
};

// 8-connected Bresenham line from a to b (inclusive).
void line(Point a, Point b, std::vector<Point>& out) {
  int dx = std::abs(b.x - a.x), dy = -std::abs(b.y - a.y);
  int sx = a.x < b.x ? 1 : -1, sy = a.y < b.y ? 1 : -1, err = dx + dy;
  for (;;) {
    out.push_back(a);
    if (a.x == b.x && a.y == b.y) return;
    int e2 = 2 * err;
    if (e2 >= dy) { err += dy; a.x += sx; }
    if (e2 <= dx) { err += dx; a.y += sy; }
  }
}

void disc(Point c, int r, std::vector<Point>& out) {
  for (int dy = -r; dy <= r; ++dy)
    for (int dx = -r; dx <= r; ++dx)
      if (dx * dx + dy * dy <= r * r + r) out.push_back({c.x + dx, c.y + dy});
}

// The centre line of a snake of `segments` segments, or false when it ran
// out of the image (keeping `pad` pixels from the border).
bool walk(const PathfinderConfig& c, int segments, int pad, detail::Rng& rng,
          std::vector<Point>& pts) {
  double lo = pad, hi = c.size - 1 - pad;
  double x = lo + rng.uniform() * (hi - lo), y = lo + rng.uniform() * (hi - lo);
  double angle = rng.uniform() * 2 * kPi;
  pts.assign(1, {int(std::lround(x)), int(std::lround(y))});
  for (int s = 0; s < segments; ++s) {
    bool ok = false;
    for (int tries = 0; tries < 8 && !ok; ++tries) {  // turn again at the border
      double a = angle + (2 * rng.uniform() - 1) * c.max_turn;
      double nx = x + c.segment_length * std::cos(a), ny = y + c.segment_length * std::sin(a);
      if (nx < lo || nx > hi || ny < lo || ny > hi) continue;
      x = nx, y = ny, angle = a, ok = true;
    }
    if (!ok) return false;
    pts.push_back({int(std::lround(x)), int(std::lround(y))});
  }
  return true;
}

// Places one object (a snake, with discs at the chosen ends) where it keeps
// c.gap background pixels from every other object. Returns false if no spot
// was found. ends: the marker centres placed, if any.
bool place(const PathfinderConfig& c, Canvas& cv, int id, int segments, bool mark_start,
           bool mark_end, detail::Rng& rng, std::vector<Point>& ends) {
  int pad = c.marker_radius;
  std::vector<Point> centre, pix;
  for (int attempt = 0; attempt < 400; ++attempt) {
    if (!walk(c, segments, pad, rng, centre)) continue;
    pix.clear();
    for (size_t i = 1; i < centre.size(); ++i) line(centre[i - 1], centre[i], pix);
    if (mark_start) disc(centre.front(), c.marker_radius, pix);
    if (mark_end) disc(centre.back(), c.marker_radius, pix);
    bool free = true;
    for (const Point& p : pix) {
      for (int dy = -c.gap; dy <= c.gap && free; ++dy)
        for (int dx = -c.gap; dx <= c.gap && free; ++dx) {
          int x = p.x + dx, y = p.y + dy;
          if (x < 0 || y < 0 || x >= cv.size || y >= cv.size) continue;
          int o = cv.owner[size_t(y) * cv.size + x];
          free = o == 0 || o == id;
        }
      if (!free) break;
    }
    if (!free) continue;
    for (const Point& p : pix) cv.owner[size_t(p.y) * cv.size + p.x] = id;
    ends.clear();
    if (mark_start) ends.push_back(centre.front());
    if (mark_end) ends.push_back(centre.back());
    return true;
  }
  return false;
}

}  // namespace

PathfinderSample generate_pathfinder(const PathfinderConfig& c, uint64_t seed, uint64_t index) {
  if (c.size < 8 || c.contour_length < 1 || c.segment_length <= 0 || c.marker_radius < 0 ||
      c.gap < 1 || c.num_distractors < 0 || c.distractor_length < 1)
    throw Error("generate_pathfinder: bad config (size >= 8, contour_length >= 1, "
                "segment_length > 0, gap >= 1)");
  detail::Rng rng(detail::stream_seed(seed, index));
  PathfinderSample s;
  s.label = rng.uniform() < 0.5 ? 1 : 0;
  for (int restart = 0; restart < 100; ++restart) {
    Canvas cv{c.size, std::vector<int>(size_t(c.size) * c.size, 0)};
    std::vector<Point> m0, m1;
    bool ok;
    if (s.label == 1) {  // both markers on snake 1; snake 2 unmarked
      ok = place(c, cv, 1, c.contour_length, true, true, rng, m0) &&
           place(c, cv, 2, c.contour_length, false, false, rng, m1);
      if (ok) {
        m1.assign(1, m0[1]);
        m0.resize(1);
      }
    } else {  // one marker on each snake, at a random end
      bool start0 = rng.uniform() < 0.5, start1 = rng.uniform() < 0.5;
      ok = place(c, cv, 1, c.contour_length, start0, !start0, rng, m0) &&
           place(c, cv, 2, c.contour_length, start1, !start1, rng, m1);
    }
    std::vector<Point> none;
    for (int k = 0; ok && k < c.num_distractors; ++k)
      ok = place(c, cv, 3 + k, c.distractor_length, false, false, rng, none);
    if (!ok) continue;
    s.image.width = s.image.height = c.size;
    s.image.pixels.assign(cv.owner.size(), 0);
    for (size_t i = 0; i < cv.owner.size(); ++i)
      if (cv.owner[i]) s.image.pixels[i] = c.intensity;
    s.marker_x[0] = m0[0].x, s.marker_y[0] = m0[0].y;
    s.marker_x[1] = m1[0].x, s.marker_y[1] = m1[0].y;
    return s;
  }
  throw Error("generate_pathfinder: could not fit 2 snakes of " +
              std::to_string(c.contour_length) + " segments and " +
              std::to_string(c.num_distractors) + " distractors in " + std::to_string(c.size) +
              "x" + std::to_string(c.size) + "; shorten them or use fewer distractors");
}

void write_pathfinder_release(const std::string& root, size_t n, const PathfinderConfig& cfg,
                              uint64_t seed, size_t per_dir) {
  if (per_dir == 0) throw Error("write_pathfinder_release: per_dir must be > 0");
  for (size_t b = 0; b * per_dir < n; ++b) {
    std::string sub = "imgs/" + std::to_string(b);
    fs::create_directories(fs::path(root) / sub);
    fs::create_directories(fs::path(root) / "metadata");
    std::string meta = (fs::path(root) / "metadata" / (std::to_string(b) + ".npy")).string();
    std::ofstream f(meta, std::ios::binary);
    if (!f) throw Error(meta + ": cannot create file");
    for (size_t j = 0; j < per_dir && b * per_dir + j < n; ++j) {
      PathfinderSample s = generate_pathfinder(cfg, seed, b * per_dir + j);
      std::string file = "sample_" + std::to_string(j) + ".png";
      write_png((fs::path(root) / sub / file).string(), s.image);
      f << sub << ' ' << file << ' ' << j << ' ' << s.label << ' ' << cfg.contour_length << ' '
        << cfg.num_distractors << '\n';
    }
    if (!f) throw Error(meta + ": write error");
  }
}

}  // namespace mk::data::lra
