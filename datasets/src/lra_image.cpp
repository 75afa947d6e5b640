// LRA readers of the image formats: CIFAR-10 binary batches (grayscale),
// IDX (plain or gzip'd, through zlib), 8-bit grayscale PNG (libpng's
// simplified API, which reports errors by return value: no longjmp through
// C++ frames) and the Pathfinder/Path-X metadata + PNG layout.
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "lra_util.h"
#include "mambakit/datasets/lra.h"

namespace fs = std::filesystem;

namespace mk::data::lra {

using detail::LineReader;

// ----------------------------------------------------------------- CIFAR ---

namespace {

constexpr size_t kCifarPixels = 1024;
constexpr size_t kCifarRecord = 1 + 3 * kCifarPixels;

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open file");
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw Error(path + ": read error");
  return b;
}

// LRA's tf.image.rgb_to_grayscale weights, rounded to the nearest level.
uint8_t gray(uint8_t r, uint8_t g, uint8_t b) {
  double y = 0.2989 * r + 0.5870 * g + 0.1140 * b;
  return uint8_t(std::min(255.0, std::round(y)));
}

}  // namespace

Dataset read_cifar10(const std::vector<std::string>& batch_files, const ReadOptions& o) {
  Dataset d;
  d.name = "image";
  d.source = batch_files.empty() ? "" : batch_files.front();
  d.num_classes = 10;
  d.max_len = int(kCifarPixels);
  for (const auto& path : batch_files) {
    std::vector<uint8_t> b = read_file(path);
    if (b.empty()) throw Error(path + ": empty CIFAR-10 batch");
    if (b.size() % kCifarRecord != 0)
      throw Error(path + ": truncated CIFAR-10 batch: record " +
                  std::to_string(b.size() / kCifarRecord) + " has " +
                  std::to_string(b.size() % kCifarRecord) + " of " + std::to_string(kCifarRecord) +
                  " bytes");
    for (size_t r = 0; r < b.size() / kCifarRecord; ++r) {
      if (o.max_examples > 0 && d.examples.size() >= o.max_examples) break;
      const uint8_t* rec = b.data() + r * kCifarRecord;
      if (rec[0] >= 10)
        throw Error(path + ": record " + std::to_string(r) + ": label " + std::to_string(rec[0]) +
                    " out of range [0, 10)");
      Example e;
      e.label = rec[0];
      e.tokens.resize(kCifarPixels);
      const uint8_t* R = rec + 1;
      for (size_t i = 0; i < kCifarPixels; ++i)
        e.tokens[i] = gray(R[i], R[kCifarPixels + i], R[2 * kCifarPixels + i]);
      d.examples.push_back(std::move(e));
    }
  }
  if (d.examples.empty()) throw Error("read_cifar10: no batch files given");
  return d;
}

std::vector<std::string> cifar10_files(const std::string& dir, const std::string& split) {
  if (split == "test") return {(fs::path(dir) / "test_batch.bin").string()};
  if (split != "train") throw Error("cifar10_files: split must be train or test, not " + split);
  std::vector<std::string> out;
  for (int i = 1; i <= 5; ++i)
    out.push_back((fs::path(dir) / ("data_batch_" + std::to_string(i) + ".bin")).string());
  return out;
}

// ------------------------------------------------------------------- IDX ---

namespace {

// A file through zlib (gzread passes plain files through unchanged), read
// in pieces so that no more is held than the caller asks for.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    if (!f_) throw Error(path + ": cannot open file");
  }
  ~GzReader() { gzclose(f_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Appends up to n more bytes to out (fewer at the end of the data).
  void read(std::vector<uint8_t>& out, uint64_t n) {
    while (n > 0) {
      const unsigned want = unsigned(std::min<uint64_t>(n, buf_.size()));
      const int got = gzread(f_, buf_.data(), want);
      if (got < 0) {
        int err = 0;
        throw Error(path_ + ": gzip read error: " + gzerror(f_, &err));
      }
      if (got == 0) return;
      out.insert(out.end(), buf_.begin(), buf_.begin() + got);
      n -= uint64_t(got);
    }
  }

 private:
  std::string path_;
  gzFile f_;
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(size_t(1) << 16);
};

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

struct Idx {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> bytes;  // the header and the data it describes
  size_t offset = 0;           // of the data
};

// a * b, or UINT64_MAX where that overflows.
uint64_t saturating_mul(uint64_t a, uint64_t b) {
  return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

// Parses the header; expects unsigned bytes with `ndims` dimensions. Only
// the data the header describes is read, so neither a header claiming more
// than the file holds nor a gzip bomb allocates more than the data present.
Idx read_idx_file(const std::string& path, int ndims, const char* what) {
  Idx x;
  GzReader in(path);
  x.offset = 4 + 4 * size_t(ndims);
  in.read(x.bytes, x.offset);
  char want[16];
  std::snprintf(want, sizeof want, "0x%08x", 0x800u | unsigned(ndims));
  if (x.bytes.size() < 4) throw Error(path + ": not an IDX file (shorter than its magic)");
  uint32_t magic = be32(x.bytes.data());
  if (magic != (0x800u | unsigned(ndims))) {
    char got[16];
    std::snprintf(got, sizeof got, "0x%08x", magic);
    throw Error(path + ": bad IDX magic " + got + " (expected " + want + ": " + what + ")");
  }
  if (x.bytes.size() < x.offset) throw Error(path + ": truncated IDX header");
  uint64_t item = 1;  // bytes per item (all dimensions but the first)
  for (int i = 0; i < ndims; ++i) {
    x.dims.push_back(be32(x.bytes.data() + 4 + 4 * i));
    if (i > 0) item = saturating_mul(item, x.dims.back());
  }
  const uint64_t count = saturating_mul(x.dims[0], item);
  in.read(x.bytes, count);
  const uint64_t have = x.bytes.size() - x.offset;
  if (have < count) {
    if (item == UINT64_MAX || count == UINT64_MAX) {
      std::string shape;
      for (uint32_t d : x.dims) shape += (shape.empty() ? "" : " x ") + std::to_string(d);
      throw Error(path + ": truncated IDX data: the header's shape " + shape + " is larger than the " +
                  std::to_string(have) + " bytes of data");
    }
    throw Error(path + ": truncated IDX data: item " + std::to_string(have / item) + " of " +
                std::to_string(x.dims[0]) + " is incomplete");
  }
  return x;
}

}  // namespace

Dataset read_idx(const std::string& images_path, const std::string& labels_path,
                 const ReadOptions& o) {
  Idx im = read_idx_file(images_path, 3, "ubyte images (N, rows, cols)");
  Idx lb = read_idx_file(labels_path, 1, "ubyte labels (N)");
  if (im.dims[0] != lb.dims[0])
    throw Error(labels_path + ": " + std::to_string(lb.dims[0]) + " labels for " +
                std::to_string(im.dims[0]) + " images in " + images_path);
  Dataset d;
  d.name = "image";
  d.source = images_path;
  size_t pixels = size_t(im.dims[1]) * im.dims[2];
  if (pixels == 0 || pixels > size_t(INT_MAX))
    throw Error(images_path + ": images of " + std::to_string(im.dims[1]) + " x " + std::to_string(im.dims[2]) +
                " pixels are not a sequence the task can take");
  d.max_len = int(pixels);
  size_t n = im.dims[0];
  if (o.max_examples > 0) n = std::min(n, o.max_examples);
  int max_label = 0;
  for (size_t i = 0; i < n; ++i) {
    Example e;
    e.label = lb.bytes[lb.offset + i];
    max_label = std::max(max_label, e.label);
    const uint8_t* p = im.bytes.data() + im.offset + i * pixels;
    e.tokens.assign(p, p + pixels);
    d.examples.push_back(std::move(e));
  }
  if (d.examples.empty()) throw Error(images_path + ": no images");
  d.num_classes = max_label + 1;
  return d;
}

Dataset read_fashion_mnist(const std::string& dir, const std::string& split,
                           const ReadOptions& o) {
  if (split != "train" && split != "test")
    throw Error("read_fashion_mnist: split must be train or test, not " + split);
  std::string stem = split == "train" ? "train" : "t10k";
  auto path = [&](const std::string& name) {
    fs::path p = fs::path(dir) / (name + ".gz");
    std::error_code ec;
    if (!fs::exists(p, ec) && fs::exists(fs::path(dir) / name, ec)) p = fs::path(dir) / name;
    return p.string();
  };
  return read_idx(path(stem + "-images-idx3-ubyte"), path(stem + "-labels-idx1-ubyte"), o);
}

// ------------------------------------------------------------------- PNG ---

GrayImage read_png(const std::string& path) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str()))
    throw Error(path + ": cannot read PNG: " + img.message);
  img.format = PNG_FORMAT_GRAY;
  // The header's size is checked before the pixels are allocated: deflate
  // expands at most 1032:1 and a pixel takes at least one bit, so a file of
  // n bytes cannot hold more than 8 * 1032 * n pixels.
  const uint64_t pixels = uint64_t(img.width) * img.height;
  std::error_code ec;
  const uint64_t file_bytes = uint64_t(fs::file_size(path, ec));
  if (pixels > uint64_t(INT_MAX) || (!ec && pixels > 8 * 1032 * file_bytes)) {
    png_image_free(&img);
    throw Error(path + ": cannot read PNG: its header claims " + std::to_string(img.width) + "x" +
                std::to_string(img.height) + " pixels, more than " +
                (pixels > uint64_t(INT_MAX) ? std::string("an image may have") : "a " + std::to_string(file_bytes) +
                                                                                     "-byte PNG can hold"));
  }
  GrayImage out;
  out.width = int(img.width);
  out.height = int(img.height);
  out.pixels.resize(size_t(pixels));  // PNG_FORMAT_GRAY: one byte per pixel, no row padding
  if (!png_image_finish_read(&img, nullptr, out.pixels.data(), 0, nullptr)) {
    std::string msg = img.message;
    png_image_free(&img);
    throw Error(path + ": cannot read PNG: " + msg);
  }
  return out;
}

void write_png(const std::string& path, const GrayImage& g) {
  if (g.width <= 0 || g.height <= 0 || g.pixels.size() != size_t(g.width) * g.height)
    throw Error(path + ": write_png: pixels do not match " + std::to_string(g.width) + "x" +
                std::to_string(g.height));
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = unsigned(g.width);
  img.height = unsigned(g.height);
  img.format = PNG_FORMAT_GRAY;
  if (!png_image_write_to_file(&img, path.c_str(), 0, g.pixels.data(), 0, nullptr))
    throw Error(path + ": cannot write PNG: " + img.message);
}

// ------------------------------------------------------------ Pathfinder ---

namespace {

// metadata/*.npy in numeric order of the stem (non-numeric stems last, by name).
std::vector<fs::path> metadata_files(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(dir.string() + ": no such directory (Pathfinder layout <root>/metadata/*.npy)");
  std::vector<fs::path> files;
  for (auto& ent : fs::directory_iterator(dir))
    if (ent.path().extension() == ".npy") files.push_back(ent.path());
  auto key = [](const fs::path& p) {
    std::string s = p.stem().string();
    bool num = !s.empty() && s.size() < 18 && std::all_of(s.begin(), s.end(), ::isdigit);
    return std::make_pair(num ? std::stoll(s) : (1ll << 62), s);
  };
  std::sort(files.begin(), files.end(), [&](auto& a, auto& b) { return key(a) < key(b); });
  if (files.empty()) throw Error(dir.string() + ": no metadata files (*.npy)");
  return files;
}

}  // namespace

Dataset read_pathfinder(const std::string& root, const ReadOptions& o, int image_size) {
  Dataset d;
  d.name = "pathfinder";
  d.source = root;
  d.num_classes = 2;
  int size = image_size;
  for (const auto& meta : metadata_files(fs::path(root) / "metadata")) {
    if (o.max_examples > 0 && d.examples.size() >= o.max_examples) break;
    LineReader r(meta.string());
    std::string line;
    while (r.next(line)) {
      if (o.max_examples > 0 && d.examples.size() >= o.max_examples) break;
      std::istringstream ss(line);
      std::vector<std::string> f{std::istream_iterator<std::string>(ss),
                                 std::istream_iterator<std::string>()};
      if (f.empty()) continue;
      if (f.size() < 4)
        throw Error(r.where() + ": expected at least 4 fields (dir, file, index, label), got " +
                    std::to_string(f.size()));
      Example e;
      e.label = detail::parse_label(f[3], 2, r.where());
      const fs::path rel = fs::path(f[0]) / f[1];
      if (rel.is_absolute() || std::any_of(rel.begin(), rel.end(), [](const fs::path& c) { return c == ".."; }))
        throw Error(r.where() + ": image path " + detail::shown(rel.string()) + " is not inside " + root);
      fs::path file = fs::path(root) / rel;
      std::error_code ec;
      if (o.skip_empty_images && fs::file_size(file, ec) == 0 && !ec) {
        ++d.skipped;
        continue;
      }
      GrayImage img;
      try {
        img = read_png(file.string());
      } catch (const Error& err) {
        throw Error(r.where() + ": " + err.what());
      }
      if (size <= 0) size = img.width;
      if (img.width != size || img.height != size)
        throw Error(r.where() + ": image is " + std::to_string(img.width) + "x" +
                    std::to_string(img.height) + ", expected " + std::to_string(size) + "x" +
                    std::to_string(size));
      e.tokens = std::move(img.pixels);
      d.examples.push_back(std::move(e));
    }
  }
  if (d.examples.empty()) throw Error(root + ": no Pathfinder examples");
  d.max_len = size * size;
  return d;
}

}  // namespace mk::data::lra
