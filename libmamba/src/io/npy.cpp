// NPY reader/writer. The header is a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// which we parse with a small tokenizer accepting exactly that grammar.
#include "mambakit/io/npy.h"

#include <cctype>
#include <cstring>
#include <limits>

#include "mambakit/error.h"
#include "mambakit/io/atomic_file.h"

namespace mk {
namespace {

const char kMagic[] = "\x93NUMPY";  // 6 bytes
constexpr size_t kMagicLen = 6;

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw Error(path + ": " + why);
}

const char* descr_of(DType t) {
  switch (t) {
    case DType::f32: return "<f4";
    case DType::f64: return "<f8";
    case DType::i32: return "<i4";
    case DType::u8: return "|u1";
    default: return nullptr;
  }
}

struct Header {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
  bool has_descr = false, has_order = false, has_shape = false;
};

// Recursive-descent parser of the header dict.
class HeaderParser {
 public:
  HeaderParser(const std::string& path, const std::string& s) : path_(path), s_(s) {}

  Header parse() {
    Header h;
    expect('{');
    skip_ws();
    while (peek() != '}') {
      std::string key = quoted();
      expect(':');
      if (key == "descr") {
        h.descr = quoted();
        h.has_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = boolean();
        h.has_order = true;
      } else if (key == "shape") {
        h.shape = tuple();
        h.has_shape = true;
      } else {
        bad("unexpected key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') ++pos_;
      else if (peek() != '}') bad("expected ',' or '}'");
      skip_ws();
    }
    ++pos_;
    skip_ws();
    if (pos_ != s_.size()) bad("trailing characters after the dict");
    if (!h.has_descr || !h.has_order || !h.has_shape)
      fail(path_, "NPY header lacks one of 'descr', 'fortran_order', 'shape': " + s_);
    return h;
  }

 private:
  [[noreturn]] void bad(const std::string& why) {
    fail(path_, "malformed NPY header (" + why + " at offset " + std::to_string(pos_) + "): " + s_);
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace((unsigned char)s_[pos_])) ++pos_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string quoted() {
    skip_ws();
    char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    size_t end = s_.find(q, pos_ + 1);
    if (end == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return out;
  }
  bool boolean() {
    skip_ws();
    if (s_.compare(pos_, 4, "True") == 0) { pos_ += 4; return true; }
    if (s_.compare(pos_, 5, "False") == 0) { pos_ += 5; return false; }
    bad("expected True or False");
  }
  Shape tuple() {
    expect('(');
    Shape shape;
    skip_ws();
    while (peek() != ')') {
      if (!std::isdigit((unsigned char)peek())) bad("expected a non-negative integer dimension");
      int64_t v = 0;
      while (std::isdigit((unsigned char)peek())) {
        int digit = s_[pos_++] - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) bad("dimension too large");
        v = v * 10 + digit;
      }
      if (peek() == 'L') ++pos_;  // Python 2 long literals
      shape.push_back(v);
      skip_ws();
      if (peek() == ',') ++pos_;
      else if (peek() != ')') bad("expected ',' or ')'");
      skip_ws();
    }
    ++pos_;
    return shape;
  }

  const std::string& path_;
  const std::string& s_;
  size_t pos_ = 0;
};

// Python tuple syntax: "()", "(3,)", "(3, 4)".
std::string shape_tuple(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

}  // namespace

void write_npy(const std::string& path, const Tensor& t) {
  MK_CHECK(t.defined(), path + ": write_npy: undefined tensor");
  const char* descr = descr_of(t.dtype());
  if (!descr) fail(path, std::string("write_npy: dtype ") + dtype_name(t.dtype()) + " has no NPY equivalent");
  std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " +
                     shape_tuple(t.shape()) + ", }";
  // magic(6) + version(2) + header_len(2) + dict + spaces + '\n' = 64k.
  size_t total = kMagicLen + 4 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  if (dict.size() > 65535) fail(path, "write_npy: shape too long for an NPY v1.0 header");
  const Tensor c = t.is_contiguous() ? t : t.clone();
  atomic_write(path, [&](std::ostream& os) {
    os.write(kMagic, kMagicLen);
    const unsigned char ver_len[4] = {1, 0, (unsigned char)(dict.size() & 0xff), (unsigned char)(dict.size() >> 8)};
    os.write(reinterpret_cast<const char*>(ver_len), 4);
    os.write(dict.data(), std::streamsize(dict.size()));
    os.write(static_cast<const char*>(c.raw()), std::streamsize(c.nbytes()));
  });
}

Tensor read_npy(const std::string& path) {
  const std::string bytes = read_text_file(path);
  auto u8 = [&](size_t i) { return uint32_t((unsigned char)bytes[i]); };
  if (bytes.size() < kMagicLen + 4 || bytes.compare(0, kMagicLen, kMagic, kMagicLen) != 0)
    fail(path, "not an NPY file (missing the \\x93NUMPY magic)");
  const uint32_t major = u8(6);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = u8(8) | (u8(9) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(path, "NPY file truncated in its header length");
    header_len = u8(8) | (u8(9) << 8) | (u8(10) << 16) | (u8(11) << 24);
    header_start = 12;
  } else {
    fail(path, "unsupported NPY format version " + std::to_string(major) + "." + std::to_string(u8(7)));
  }
  if (header_len > bytes.size() - header_start)
    fail(path, "NPY header length " + std::to_string(header_len) + " exceeds the file size (" +
                   std::to_string(bytes.size()) + " bytes)");
  const std::string text = bytes.substr(header_start, header_len);
  const Header h = HeaderParser(path, text).parse();

  if (h.fortran_order) fail(path, "Fortran-order arrays are not supported (save with C order)");
  DType dtype;
  bool from_i64 = false;
  if (h.descr == "<f4") dtype = DType::f32;
  else if (h.descr == "<f8") dtype = DType::f64;
  else if (h.descr == "<i4") dtype = DType::i32;
  else if (h.descr == "|u1" || h.descr == "<u1") dtype = DType::u8;
  else if (h.descr == "<i8") { dtype = DType::i32; from_i64 = true; }
  else fail(path, "unsupported NPY dtype '" + h.descr + "' (supported: <f4, <f8, <i4, <i8, |u1)");

  const size_t elem = from_i64 ? 8 : dtype_size(dtype);
  const size_t data_start = header_start + header_len;
  const size_t avail = bytes.size() - data_start;
  // numel without overflow: anything past what the file holds is "too big".
  const uint64_t max_numel = avail / elem + 1;
  // The dimensions other than zeros must multiply within int64 even for an
  // empty array: a Tensor's strides are their products.
  uint64_t nonzero = 1;
  for (int64_t d : h.shape) {
    if (d == 0) continue;
    if (uint64_t(d) > uint64_t(std::numeric_limits<int64_t>::max()) / nonzero)
      fail(path, "shape " + shape_str(h.shape) + " has too many elements");
    nonzero *= uint64_t(d);
  }
  uint64_t numel = 1;
  bool too_big = false;
  for (int64_t d : h.shape)
    if (d == 0) numel = 0;  // an empty array needs no bytes
  for (int64_t d : h.shape) {
    if (numel == 0) break;
    if (uint64_t(d) > max_numel / numel) { too_big = true; break; }  // checked before it can wrap
    numel *= uint64_t(d);
  }
  if (too_big || numel * elem != avail)
    fail(path, "data is " + std::to_string(avail) + " bytes but shape " + shape_str(h.shape) + " of '" +
                   h.descr + "' needs " + (too_big ? std::string("more") : std::to_string(numel * elem)) +
                   " (file truncated?)");

  Tensor t(h.shape, dtype);
  const char* src = bytes.data() + data_start;
  if (!from_i64) {
    if (avail) std::memcpy(t.raw(), src, avail);
    return t;
  }
  int32_t* out = t.data<int32_t>();
  for (uint64_t i = 0; i < numel; ++i) {
    int64_t v;
    std::memcpy(&v, src + 8 * i, 8);
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
      fail(path, "int64 value " + std::to_string(v) + " at index " + std::to_string(i) + " does not fit in int32");
    out[i] = int32_t(v);
  }
  return t;
}

}  // namespace mk
