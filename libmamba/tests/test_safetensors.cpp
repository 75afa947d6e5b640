// safetensors: bit-exact round trips, conversions of the dtypes we widen,
// rejection of every kind of corrupt file, and reading the HF-written fixture.
#include "mambakit/io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "test_util.h"

namespace mk {
namespace {

using test::ScratchDir;
using test::slurp;
using test::spit;
using test::throws_error;

uint64_t le64(const std::string& b, size_t at = 0) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | (unsigned char)b[at + i];
  return v;
}

std::string u64_bytes(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((v >> (8 * i)) & 0xff);
  return s;
}

// A file from a header text and data bytes (the header padded to 8).
std::string st_file(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return u64_bytes(header.size()) + header + data;
}

template <typename T>
Tensor filled(Shape shape, const std::vector<T>& v) {
  Tensor t(shape, dtype_of<T>());
  EXPECT_EQ(size_t(t.numel()), v.size());
  std::memcpy(t.raw(), v.data(), v.size() * sizeof(T));
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(Safetensors, RoundTripIsBitExact) {
  ScratchDir dir;
  const float nan_payload = [] {
    uint32_t bits = 0x7fc01234u;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }();
  std::vector<float> f32 = test::randn<float>(15, 1);
  f32[0] = -0.0f;
  f32[1] = std::numeric_limits<float>::infinity();
  f32[2] = nan_payload;
  f32[3] = std::numeric_limits<float>::denorm_min();
  std::vector<std::pair<std::string, Tensor>> ts = {
      {"z.f32", filled<float>({3, 5}, f32)},
      {"a.f64", filled<double>({2, 3, 4}, test::randn<double>(24, 2))},
      {"m.i32", filled<int32_t>({7}, {0, 1, -1, std::numeric_limits<int32_t>::min(),
                                      std::numeric_limits<int32_t>::max(), 42, -42})},
      {"u8", filled<uint8_t>({2, 5}, {0, 1, 2, 127, 128, 200, 254, 255, 9, 10})},
      {"scalar", filled<float>({}, {3.25f})},
      {"empty", Tensor({0, 4}, DType::f32)},
  };
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", "1200"}, {"note", "ünïcode ok"}};
  const std::string path = dir.file("rt.safetensors");
  write_safetensors(path, ts, meta);

  const std::string bytes = slurp(path);
  const uint64_t n = le64(bytes);
  EXPECT_EQ(n % 8, 0u) << "header length " << n;
  EXPECT_EQ(bytes[8], '{');

  SafetensorsData back = read_safetensors(path);
  EXPECT_EQ(back.metadata, meta);
  ASSERT_EQ(back.tensors.size(), ts.size());
  for (const auto& [name, t] : ts) {
    ASSERT_TRUE(back.has(name)) << name;
    EXPECT_TRUE(same_bytes(back.get(name), t)) << name;
  }
  // Data laid out in sorted-name order (file order comes back by offset).
  std::vector<std::string> names = back.names();
  std::vector<std::string> nonempty;
  for (auto& s : names)
    if (s != "empty") nonempty.push_back(s);
  EXPECT_TRUE(std::is_sorted(nonempty.begin(), nonempty.end()));
  // The data section is exactly the packed tensors.
  size_t total = 0;
  for (const auto& kv : ts) total += kv.second.nbytes();
  EXPECT_EQ(bytes.size(), 8 + n + total);

  // Writing what we read gives the same file, byte for byte.
  write_safetensors(dir.file("rt2.safetensors"), back.tensors, back.metadata);
  EXPECT_EQ(slurp(dir.file("rt2.safetensors")), bytes);
}

TEST(Safetensors, WritesHeaderTheReferenceWay) {
  ScratchDir dir;
  const std::string path = dir.file("h.safetensors");
  write_safetensors(path, {{"b", filled<float>({2}, {1, 2})}, {"a", filled<int32_t>({1, 1}, {7})}});
  const std::string bytes = slurp(path);
  const uint64_t n = le64(bytes);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["a"]["dtype"], "I32");
  EXPECT_EQ(header["a"]["shape"], nlohmann::json::array({1, 1}));
  EXPECT_EQ(header["a"]["data_offsets"], nlohmann::json::array({0, 4}));
  EXPECT_EQ(header["b"]["data_offsets"], nlohmann::json::array({4, 12}));
  EXPECT_FALSE(header.contains("__metadata__"));
  // Padding is spaces.
  const std::string text = bytes.substr(8, n);
  EXPECT_EQ(text.find_last_not_of(' '), text.find_last_of('}'));
}

TEST(Safetensors, Bf16IsWrittenAsBf16AndReadWidened) {
  ScratchDir dir;
  Tensor t({3}, DType::bf16);
  const uint16_t raw[3] = {0x3f80, 0xc040, 0x0001};  // 1, -3, smallest subnormal
  std::memcpy(t.raw(), raw, sizeof raw);
  write_safetensors(dir.file("b.safetensors"), {{"w", t}});
  const std::string bytes = slurp(dir.file("b.safetensors"));
  EXPECT_NE(bytes.find("\"BF16\""), std::string::npos);
  Tensor back = read_safetensors(dir.file("b.safetensors")).get("w");
  ASSERT_EQ(back.dtype(), DType::f32);
  EXPECT_EQ(back.data<float>()[0], 1.0f);
  EXPECT_EQ(back.data<float>()[1], -3.0f);
  EXPECT_EQ(back.data<float>()[2], std::ldexp(1.0f, -133));
}

TEST(Safetensors, F16IsWidenedExactly) {
  ScratchDir dir;
  // The last entry is a quiet NaN, checked separately.
  const std::vector<uint16_t> h = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x8000, 0x3555, 0x7e01};
  const std::vector<float> want = {1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24), 1023 * std::ldexp(1.0f, -24),
                                   INFINITY, -INFINITY, -0.0f, 0.333251953125f};
  const std::string data(reinterpret_cast<const char*>(h.data()), h.size() * 2);
  const std::string path = dir.file("h.safetensors");
  spit(path, st_file(R"({"x":{"dtype":"F16","shape":[10],"data_offsets":[0,20]}})", data));
  Tensor t = read_safetensors(path).get("x");
  ASSERT_EQ(t.dtype(), DType::f32);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(t.data<float>()[i], want[i]) << i;
    EXPECT_EQ(std::signbit(t.data<float>()[i]), std::signbit(want[i])) << i;
  }
  EXPECT_TRUE(std::isnan(t.data<float>()[9]));
}

TEST(Safetensors, I64IsNarrowedWithRangeCheck) {
  ScratchDir dir;
  const std::string path = dir.file("i.safetensors");
  std::vector<int64_t> v = {5, -7, 2147483647, -2147483648LL};
  std::string data(reinterpret_cast<const char*>(v.data()), 32);
  spit(path, st_file(R"({"ids":{"dtype":"I64","shape":[2,2],"data_offsets":[0,32]}})", data));
  Tensor t = read_safetensors(path).get("ids");
  ASSERT_EQ(t.dtype(), DType::i32);
  EXPECT_EQ(t.shape(), Shape({2, 2}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(t.data<int32_t>()[i], v[i]);

  v[2] = int64_t(1) << 40;
  spit(path, st_file(R"({"ids":{"dtype":"I64","shape":[2,2],"data_offsets":[0,32]}})",
                     std::string(reinterpret_cast<const char*>(v.data()), 32)));
  EXPECT_TRUE(throws_error([&] { read_safetensors(path); }, {path, "ids", "1099511627776", "int32"}));
}

TEST(Safetensors, GetNamesMissingTensorAndFile) {
  ScratchDir dir;
  const std::string path = dir.file("g.safetensors");
  write_safetensors(path, {{"present", filled<float>({1}, {1})}});
  SafetensorsData d = read_safetensors(path);
  EXPECT_FALSE(d.has("absent"));
  EXPECT_TRUE(throws_error([&] { d.get("absent"); }, {path, "absent"}));
}

TEST(Safetensors, WriteRejectsBadNames) {
  ScratchDir dir;
  const std::string path = dir.file("w.safetensors");
  Tensor t = filled<float>({1}, {1});
  EXPECT_TRUE(throws_error([&] { write_safetensors(path, {{"a", t}, {"a", t}}); }, {path, "duplicate", "a"}));
  EXPECT_TRUE(throws_error([&] { write_safetensors(path, {{"", t}}); }, {path, "invalid tensor name"}));
  EXPECT_TRUE(throws_error([&] { write_safetensors(path, {{"__metadata__", t}}); }, {"__metadata__"}));
  EXPECT_TRUE(throws_error([&] { write_safetensors(path, {{"u", Tensor()}}); }, {"undefined"}));
  EXPECT_TRUE(dir.list().empty()) << "a failed write left files behind";
}

TEST(Safetensors, OverwriteReplacesAndLeavesNoTemporary) {
  ScratchDir dir;
  const std::string path = dir.file("o.safetensors");
  write_safetensors(path, {{"a", filled<float>({2}, {1, 2})}});
  write_safetensors(path, {{"b", filled<float>({1}, {3})}});
  SafetensorsData d = read_safetensors(path);
  EXPECT_FALSE(d.has("a"));
  EXPECT_EQ(d.get("b").data<float>()[0], 3.0f);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"o.safetensors"});
}

// ---- corrupt files --------------------------------------------------------

class CorruptSafetensors : public ::testing::Test {
 protected:
  // Writes `bytes` and expects reading to fail naming the file and `why`.
  ::testing::AssertionResult rejects(const std::string& bytes, std::initializer_list<std::string> why) {
    spit(path, bytes);
    std::vector<std::string> parts = {path};
    parts.insert(parts.end(), why.begin(), why.end());
    return check(parts);
  }
  ::testing::AssertionResult check(const std::vector<std::string>& parts) {
    try {
      read_safetensors(path);
    } catch (const Error& e) {
      for (const auto& p : parts)
        if (std::string(e.what()).find(p) == std::string::npos)
          return ::testing::AssertionFailure() << "message lacks \"" << p << "\": " << e.what();
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "accepted a corrupt file";
  }
  ScratchDir dir;
  std::string path = dir.file("bad.safetensors");
  const std::string data16 = std::string(16, '\x11');
};

TEST_F(CorruptSafetensors, ValidBaselineIsAccepted) {
  spit(path, st_file(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data16));
  EXPECT_EQ(read_safetensors(path).get("t").numel(), 4);
}

TEST_F(CorruptSafetensors, MissingFile) {
  EXPECT_TRUE(check({path, "No such file"}));
}

TEST_F(CorruptSafetensors, EmptyFile) { EXPECT_TRUE(rejects("", {"0 bytes", "too short"})); }

TEST_F(CorruptSafetensors, ShorterThanEightBytes) { EXPECT_TRUE(rejects(std::string("\x05\0\0\0\0", 5), {"5 bytes", "too short"})); }

TEST_F(CorruptSafetensors, HeaderLengthZero) { EXPECT_TRUE(rejects(u64_bytes(0) + "{}", {"header length is 0"})); }

TEST_F(CorruptSafetensors, HeaderLengthAbsurd) {
  EXPECT_TRUE(rejects(u64_bytes(uint64_t(1) << 40) + "{}", {"absurd"}));
  EXPECT_TRUE(rejects(u64_bytes(~uint64_t(0)) + "{}", {"absurd"}));
}

TEST_F(CorruptSafetensors, HeaderLengthLargerThanFile) {
  std::string good = st_file(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data16);
  std::string bad = u64_bytes(good.size()) + good.substr(8);
  EXPECT_TRUE(rejects(bad, {"exceeds the file size"}));
}

TEST_F(CorruptSafetensors, InvalidJson) {
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32",)", data16), {"invalid JSON"}));
  EXPECT_TRUE(rejects(st_file(R"(["not", "an object"])", ""), {"expected an object"}));
}

TEST_F(CorruptSafetensors, OffsetsPastTheEnd) {
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}})", data16),
                      {"'t'", "past the end"}));
}

TEST_F(CorruptSafetensors, BeginAfterEnd) {
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", data16),
                      {"'t'", "begin > end"}));
}

TEST_F(CorruptSafetensors, SizeDoesNotMatchShape) {
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", data16),
                      {"'t'", "12 bytes", "needs 16"}));
}

TEST_F(CorruptSafetensors, HugeShapeDoesNotOverflow) {
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""),
                      {"'t'", "too many elements"}));
}

TEST_F(CorruptSafetensors, UnknownDtype) {
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F99","shape":[4],"data_offsets":[0,16]}})", data16),
                      {"'t'", "F99"}));
}

TEST_F(CorruptSafetensors, TruncatedData) {
  std::string good = st_file(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data16);
  EXPECT_TRUE(rejects(good.substr(0, good.size() - 5), {"'t'", "truncated"}));
}

TEST_F(CorruptSafetensors, MissingOrIllTypedFields) {
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32","shape":[4]}})", data16), {"'t'", "data_offsets"}));
  EXPECT_TRUE(rejects(st_file(R"({"t":{"shape":[4],"data_offsets":[0,16]}})", data16), {"'t'", "dtype"}));
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32","data_offsets":[0,16]}})", data16), {"'t'", "shape"}));
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":4,"shape":[4],"data_offsets":[0,16]}})", data16), {"dtype"}));
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32","shape":"4","data_offsets":[0,16]}})", data16), {"shape"}));
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32","shape":[4.5],"data_offsets":[0,16]}})", data16), {"shape[0]"}));
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0]}})", data16), {"data_offsets"}));
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[-4,16]}})", data16), {"negative"}));
  EXPECT_TRUE(rejects(st_file(R"({"t":[1,2]})", data16), {"'t'", "expected an object"}));
  EXPECT_TRUE(rejects(st_file(R"({"__metadata__":{"k":5}})", ""), {"__metadata__", "k"}));
  EXPECT_TRUE(rejects(st_file(R"({"__metadata__":[]})", ""), {"__metadata__"}));
}

TEST_F(CorruptSafetensors, NegativeDimension) {
  EXPECT_TRUE(rejects(st_file(R"({"t":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}})", data16),
                      {"'t'", "negative dimension"}));
}

TEST_F(CorruptSafetensors, OverlappingTensors) {
  EXPECT_TRUE(rejects(st_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                              data16),
                      {"'a'", "'b'", "overlap"}));
}

TEST_F(CorruptSafetensors, GapsAreTolerated) {
  spit(path, st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})",
                     data16));
  EXPECT_EQ(read_safetensors(path).tensors.size(), 2u);
}

// ---- the HF-written reference checkpoint ----------------------------------

const std::string kHfDir = std::string(MAMBAKIT_SOURCE_DIR) + "/libmamba/tests/data/hf_mamba_tiny";

// The layout of HF MambaForCausalLM(hidden 64, 2 layers, vocab 256, state 16,
// expand 2, conv 4, dt_rank 4) as tools/reference/make_fixtures.py saves it.
std::map<std::string, Shape> expected_hf_params() {
  std::map<std::string, Shape> m = {{"backbone.embeddings.weight", {256, 64}},
                                    {"backbone.norm_f.weight", {64}}};
  for (int l = 0; l < 2; ++l) {
    const std::string p = "backbone.layers." + std::to_string(l) + ".";
    m[p + "norm.weight"] = {64};
    m[p + "mixer.in_proj.weight"] = {256, 64};
    m[p + "mixer.conv1d.weight"] = {128, 1, 4};
    m[p + "mixer.conv1d.bias"] = {128};
    m[p + "mixer.x_proj.weight"] = {36, 128};
    m[p + "mixer.dt_proj.weight"] = {128, 4};
    m[p + "mixer.dt_proj.bias"] = {128};
    m[p + "mixer.A_log"] = {128, 16};
    m[p + "mixer.D"] = {128};
    m[p + "mixer.out_proj.weight"] = {64, 128};
  }
  return m;
}

TEST(SafetensorsHf, ReadsTheTransformersCheckpoint) {
  SafetensorsData d = read_safetensors(kHfDir + "/model.safetensors");
  const auto want = expected_hf_params();
  EXPECT_EQ(d.tensors.size(), want.size());
  for (const auto& [name, shape] : want) {
    ASSERT_TRUE(d.has(name)) << name;
    EXPECT_EQ(d.get(name).shape(), shape) << name;
    EXPECT_EQ(d.get(name).dtype(), DType::f32) << name;
  }
  EXPECT_FALSE(d.has("lm_head.weight")) << "the tied head is not stored";
  // The fixture perturbs A_log away from log(1..N): row 0 must differ from row 1.
  const float* a = d.get("backbone.layers.0.mixer.A_log").data<float>();
  EXPECT_NE(std::memcmp(a, a + 16, 16 * sizeof(float)), 0);
}

TEST(SafetensorsHf, FixtureIsConsistent) {
  SafetensorsData m = read_safetensors(kHfDir + "/model.safetensors");
  SafetensorsData f = read_safetensors(kHfDir + "/fixture.safetensors");
  const Tensor& ids = f.get("input_ids");
  const Tensor& logits = f.get("logits");
  ASSERT_EQ(ids.dtype(), DType::i32);
  ASSERT_EQ(ids.ndim(), 1);
  const int64_t L = ids.dim(0), V = 256;
  EXPECT_EQ(logits.shape(), Shape({L, V}));
  EXPECT_EQ(f.get("loss").shape(), Shape({1}));
  // The tokens are the bytes of the sentence in the metadata.
  ASSERT_EQ(f.metadata.at("sentence").size(), size_t(L));
  for (int64_t t = 0; t < L; ++t) EXPECT_EQ(ids.data<int32_t>()[t], (unsigned char)f.metadata.at("sentence")[t]);
  // One gradient per stored parameter, of the parameter's shape.
  for (const auto& [name, p] : m.tensors) {
    ASSERT_TRUE(f.has("grad." + name)) << name;
    EXPECT_EQ(f.get("grad." + name).shape(), p.shape()) << name;
  }
  // The loss is HF's shifted mean cross-entropy of these logits.
  double loss = 0;
  const float* lg = logits.data<float>();
  for (int64_t t = 0; t + 1 < L; ++t) {
    const float* row = lg + t * V;
    double mx = row[0], s = 0;
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(row[v]) - mx);
    loss += mx + std::log(s) - row[ids.data<int32_t>()[t + 1]];
  }
  loss /= double(L - 1);
  EXPECT_NEAR(loss, f.get("loss").data<float>()[0], 1e-5);
}

}  // namespace
}  // namespace mk
