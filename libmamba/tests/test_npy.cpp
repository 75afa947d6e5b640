// .npy: round trips, files exactly as numpy writes them, and rejection of
// headers and sizes that do not add up.
#include "mambakit/io/npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "io_test_util.h"
#include "test_util.h"

namespace mk {
namespace {

using test::ScratchDir;
using test::slurp;
using test::spit;
using test::throws_error;

// An NPY file: magic, version, little-endian header length, header, data.
std::string npy_bytes(int major, const std::string& header, const std::string& data) {
  std::string out = "\x93NUMPY";
  out += char(major);
  out += char(0);
  const size_t n = header.size();
  out += char(n & 0xff);
  out += char((n >> 8) & 0xff);
  if (major >= 2) {
    out += char((n >> 16) & 0xff);
    out += char((n >> 24) & 0xff);
  }
  return out + header + data;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

TEST(Npy, RoundTripIsBitExact) {
  ScratchDir dir;
  std::vector<Tensor> ts;
  {
    Tensor a({2, 3}, DType::f32);
    auto v = test::randn<float>(6, 3);
    std::memcpy(a.raw(), v.data(), 24);
    ts.push_back(a);
    Tensor b({5}, DType::f64);
    auto w = test::randn<double>(5, 4);
    std::memcpy(b.raw(), w.data(), 40);
    ts.push_back(b);
    Tensor c({2, 2, 2}, DType::i32);
    for (int i = 0; i < 8; ++i) c.data<int32_t>()[i] = (i - 4) * 100003;
    ts.push_back(c);
    Tensor d({4}, DType::u8);
    for (int i = 0; i < 4; ++i) d.data<uint8_t>()[i] = uint8_t(250 + i);
    ts.push_back(d);
    Tensor s({}, DType::f32);
    s.data<float>()[0] = -1.5f;
    ts.push_back(s);
    ts.push_back(Tensor({0, 3}, DType::f32));
  }
  for (size_t i = 0; i < ts.size(); ++i) {
    const std::string path = dir.file("a" + std::to_string(i) + ".npy");
    write_npy(path, ts[i]);
    const std::string bytes = slurp(path);
    const size_t header_len = (unsigned char)bytes[8] | ((unsigned char)bytes[9] << 8);
    EXPECT_EQ((10 + header_len) % 64, 0u) << "data not 64-aligned in " << path;
    EXPECT_EQ(bytes[9 + header_len], '\n');
    EXPECT_EQ(bytes.size(), 10 + header_len + ts[i].nbytes());
    Tensor back = read_npy(path);
    EXPECT_EQ(back.dtype(), ts[i].dtype()) << i;
    EXPECT_EQ(back.shape(), ts[i].shape()) << i;
    EXPECT_EQ(std::memcmp(back.raw(), ts[i].raw(), ts[i].nbytes()), 0) << i;
  }
}

TEST(Npy, WritesTheHeaderNumpyExpects) {
  ScratchDir dir;
  Tensor t({3}, DType::i32);
  write_npy(dir.file("h.npy"), t);
  const std::string bytes = slurp(dir.file("h.npy"));
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_NE(bytes.find("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }"), std::string::npos);
}

TEST(Npy, ReadsWhatNumpyWrites) {
  // np.save of np.arange(6, dtype='<f4').reshape(2, 3) with numpy 2.x: the
  // header is padded with room for the shape to grow, to 128 bytes total.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  header.append(117 - header.size(), ' ');
  header += '\n';
  ASSERT_EQ(header.size(), 118u);
  ScratchDir dir;
  const std::string path = dir.file("np.npy");
  spit(path, npy_bytes(1, header, raw<float>({0, 1, 2, 3, 4, 5})));
  Tensor t = read_npy(path);
  ASSERT_EQ(t.dtype(), DType::f32);
  EXPECT_EQ(t.shape(), Shape({2, 3}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], float(i));
}

TEST(Npy, ReadsOtherHeaderVariants) {
  ScratchDir dir;
  const std::string path = dir.file("v.npy");
  // Version 2.0 (4-byte header length), key order shuffled, no trailing comma.
  spit(path, npy_bytes(2, "{'shape': (2,), 'fortran_order': False, 'descr': '<f8'}\n", raw<double>({1.5, -2.5})));
  Tensor a = read_npy(path);
  EXPECT_EQ(a.shape(), Shape({2}));
  EXPECT_EQ(a.data<double>()[1], -2.5);
  // Python 2 long literals, a 0-d array.
  spit(path, npy_bytes(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1L, 2L), }\n", raw<int32_t>({7, 8})));
  EXPECT_EQ(read_npy(path).shape(), Shape({1, 2}));
  spit(path, npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", raw<float>({9})));
  Tensor s = read_npy(path);
  EXPECT_EQ(s.ndim(), 0);
  EXPECT_EQ(s.data<float>()[0], 9.0f);
}

TEST(Npy, Int64IsNarrowedWithRangeCheck) {
  ScratchDir dir;
  const std::string path = dir.file("i.npy");
  const std::string h = "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }\n";
  spit(path, npy_bytes(1, h, raw<int64_t>({1, -2, 2147483647})));
  Tensor t = read_npy(path);
  ASSERT_EQ(t.dtype(), DType::i32);
  EXPECT_EQ(t.data<int32_t>()[2], 2147483647);
  spit(path, npy_bytes(1, h, raw<int64_t>({1, int64_t(1) << 33, 0})));
  EXPECT_TRUE(throws_error([&] { read_npy(path); }, {path, "8589934592", "int32"}));
}

TEST(Npy, RejectsBadFiles) {
  ScratchDir dir;
  const std::string path = dir.file("bad.npy");
  const std::string f4 = raw<float>({1, 2});
  auto rejects = [&](const std::string& bytes, std::initializer_list<std::string> why) {
    spit(path, bytes);
    std::vector<std::string> parts = {path};
    parts.insert(parts.end(), why.begin(), why.end());
    try {
      read_npy(path);
    } catch (const Error& e) {
      for (const auto& p : parts)
        if (std::string(e.what()).find(p) == std::string::npos)
          return ::testing::AssertionFailure() << "message lacks \"" << p << "\": " << e.what();
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "accepted a bad file";
  };
  const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
  EXPECT_TRUE(rejects(npy_bytes(1, ok, f4).replace(1, 5, "NUMPX"), {"magic"}));
  EXPECT_TRUE(rejects("", {"magic"}));
  EXPECT_TRUE(rejects(npy_bytes(7, ok, f4), {"version 7"}));
  EXPECT_TRUE(rejects(npy_bytes(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", f4), {">f4"}));
  EXPECT_TRUE(rejects(npy_bytes(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n", f4), {"<c8"}));
  EXPECT_TRUE(rejects(npy_bytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }\n", f4), {"Fortran"}));
  EXPECT_TRUE(rejects(npy_bytes(1, ok, f4.substr(0, 6)), {"6 bytes", "needs 8"}));
  EXPECT_TRUE(rejects(npy_bytes(1, ok, f4 + "xx"), {"10 bytes", "needs 8"}));
  EXPECT_TRUE(rejects(npy_bytes(1, "{'descr': '<f4', 'shape': (2,), }\n", f4), {"fortran_order"}));
  EXPECT_TRUE(rejects(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }\n", f4),
                      {"malformed NPY header"}));
  EXPECT_TRUE(rejects(npy_bytes(1, "{'descr': '<f4', 'fortran_order': Nope, 'shape': (2,), }\n", f4),
                      {"True or False"}));
  // A shape within int64 that the 8 data bytes cannot hold (numel is not
  // computed past what the file holds, so it cannot wrap)...
  EXPECT_TRUE(rejects(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999), }\n", f4),
                      {"8 bytes", "needs more"}));
  // ...and one whose product leaves int64 altogether, refused before that.
  EXPECT_TRUE(rejects(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }\n", f4),
                      {"(99999999999, 99999999999)", "too many elements"}));
  std::string long_header = npy_bytes(1, ok, f4);
  long_header[8] = char(0xff);
  EXPECT_TRUE(rejects(long_header, {"exceeds the file size"}));
  EXPECT_TRUE(throws_error([&] { read_npy(dir.file("missing.npy")); }, {"missing.npy", "No such file"}));
}

TEST(Npy, WriteRejectsBf16) {
  ScratchDir dir;
  EXPECT_TRUE(throws_error([&] { write_npy(dir.file("b.npy"), Tensor({2}, DType::bf16)); }, {"b.npy", "bf16"}));
  EXPECT_TRUE(dir.list().empty());
}

}  // namespace
}  // namespace mk
