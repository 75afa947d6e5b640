// Tensor views (slice, reshape, borrow, clone), ParamStore's flat buffers and
// the CPU allocator under them.
#include "mambakit/tensor.h"

#include <cstdint>
#include <vector>

#include "mambakit/backend.h"
#include "mambakit/error.h"
#include "mambakit/params.h"
#include "test_util.h"

using namespace mk;

namespace {

// The message of the mk::Error thrown by f ("" if none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const mk::Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST(DType, SizesNamesAndMapping) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::f64), 8u);
  EXPECT_EQ(dtype_size(DType::i32), 4u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::u8), 1u);
  EXPECT_STREQ(dtype_name(DType::bf16), "bf16");
  EXPECT_EQ(dtype_of<float>(), DType::f32);
  EXPECT_EQ(dtype_of<double>(), DType::f64);
  EXPECT_EQ(dtype_of<int32_t>(), DType::i32);
  EXPECT_EQ(dtype_of<uint8_t>(), DType::u8);
  EXPECT_EQ(shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_str({2, 3}), "(2, 3)");
  EXPECT_EQ(shape_str({}), "()");
}

TEST(Tensor, ZeroFilledContiguous) {
  Tensor t({2, 3, 4}, DType::f32);
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(t.strides(), (std::vector<int64_t>{12, 4, 1}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.dim(-1), 4);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(t.data<float>()[i], 0.f);
  EXPECT_FALSE(Tensor().defined());
}

TEST(Tensor, SliceSharesStorage) {
  Tensor t({4, 3}, DType::f64);
  double* d = t.data<double>();
  for (int i = 0; i < 12; ++i) d[i] = i;
  Tensor s = t.slice(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_EQ(s.data<double>(), d + 3);
  s.data<double>()[0] = -1;  // visible through the parent
  EXPECT_EQ(d[3], -1);
  EXPECT_EQ(t.slice(4, 4).numel(), 0);
  EXPECT_TRUE(contains(error_of([&] { t.slice(2, 5); }), "(4, 3)"));
  EXPECT_THROW(t.slice(3, 2), mk::Error);
  EXPECT_THROW(t.slice(-1, 2), mk::Error);
  // A slice outlives its parent: storage is shared, not borrowed.
  Tensor keep;
  {
    Tensor tmp({3}, DType::f32);
    tmp.data<float>()[2] = 7.f;
    keep = tmp.slice(2, 3);
  }
  EXPECT_EQ(keep.data<float>()[0], 7.f);
}

TEST(Tensor, ReshapeInfersAndChecks) {
  Tensor t({2, 3, 4}, DType::f32);
  Tensor r = t.reshape({-1, 4});
  EXPECT_EQ(r.shape(), (Shape{6, 4}));
  EXPECT_EQ(r.strides(), (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(r.raw(), t.raw());
  r.data<float>()[5] = 2.5f;
  EXPECT_EQ(t.data<float>()[5], 2.5f);
  // A slice reshaped keeps its offset.
  Tensor s = t.slice(1, 2).reshape({3, 4});
  EXPECT_EQ(s.data<float>(), t.data<float>() + 12);
  EXPECT_TRUE(contains(error_of([&] { t.reshape({5, -1}); }), "(5, -1)"));
  EXPECT_TRUE(contains(error_of([&] { t.reshape({7, 4}); }), "(7, 4)"));
  EXPECT_THROW(t.reshape({-1, -1}), mk::Error);
  EXPECT_THROW(t.reshape({-2, 12}), mk::Error);
}

TEST(Tensor, CloneIsIndependent) {
  Tensor t({2, 2}, DType::i32);
  t.data<int32_t>()[3] = 9;
  Tensor c = t.clone();
  EXPECT_NE(c.raw(), t.raw());
  EXPECT_EQ(c.data<int32_t>()[3], 9);
  c.data<int32_t>()[3] = 1;
  EXPECT_EQ(t.data<int32_t>()[3], 9);
  Tensor cs = t.slice(1, 2).clone();
  EXPECT_EQ(cs.shape(), (Shape{1, 2}));
  EXPECT_EQ(cs.data<int32_t>()[1], 9);
}

TEST(Tensor, BorrowAndDtypeCheck) {
  std::vector<float> buf(6, 1.5f);
  Tensor b = Tensor::borrow(buf.data(), {2, 3}, DType::f32);
  EXPECT_EQ(b.data<float>(), buf.data());
  b.data<float>()[4] = 3.f;
  EXPECT_EQ(buf[4], 3.f);
  EXPECT_EQ(b.slice(1, 2).data<float>(), buf.data() + 3);
  std::string msg = error_of([&] { b.data<double>(); });
  EXPECT_TRUE(contains(msg, "f32") && contains(msg, "f64")) << msg;
}

TEST(ParamStore, FlatBuffersAndViews) {
  ParamStore<float> ps;
  EXPECT_EQ(ps.declare("a.weight", {3, 2}, true), 0u);
  EXPECT_EQ(ps.declare("a.bias", {3}, false), 6u);
  EXPECT_EQ(ps.declare("norm.weight", {4}, false), 9u);
  EXPECT_EQ(ps.size(), 13u);
  EXPECT_FALSE(ps.finalized());
  ps.finalize();
  EXPECT_TRUE(ps.finalized());
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(ps.data()[i], 0.f);

  Tensor w = ps.view("a.weight"), gb = ps.grad_view("a.bias");
  EXPECT_EQ(w.shape(), (Shape{3, 2}));
  EXPECT_EQ(w.data<float>(), ps.data());
  EXPECT_EQ(gb.data<float>(), ps.grad() + 6);
  EXPECT_EQ(ps.param("norm.weight"), ps.data() + 9);
  w.data<float>()[5] = 4.f;
  EXPECT_EQ(ps.data()[5], 4.f);
  gb.data<float>()[1] = 2.f;
  EXPECT_EQ(ps.grad("a.bias")[1], 2.f);
  ps.zero_grad();
  EXPECT_EQ(ps.grad()[7], 0.f);

  EXPECT_TRUE(ps.entry("a.weight").decay);
  EXPECT_FALSE(ps.entry("a.bias").decay);
  EXPECT_EQ(ps.entries().size(), 3u);
  EXPECT_TRUE(ps.has("a.bias"));
  EXPECT_TRUE(contains(error_of([&] { ps.entry("nope"); }), "nope"));
  EXPECT_THROW(ps.view("nope"), mk::Error);
  EXPECT_THROW(ps.declare("late", {1}, true), mk::Error);
}

TEST(ParamStore, DuplicateNameAndViewBeforeFinalize) {
  ParamStore<double> ps;
  ps.declare("x", {2}, true);
  EXPECT_TRUE(contains(error_of([&] { ps.declare("x", {3}, true); }), "x"));
  EXPECT_THROW(ps.declare("x", {3}, true), mk::Error);
  EXPECT_THROW(ps.view("x"), mk::Error);
  ps.finalize();
  EXPECT_EQ(ps.view("x").dtype(), DType::f64);
}

// mambakit's CPU allocator: small and large buffers are 64-byte aligned and
// zero-filled; large ones (2 MiB and more, huge pages) start at offsets
// modulo 4 KiB that differ from one buffer to the next, so that the same
// element of two activation arrays never shares its low 12 address bits
// (buffer.cpp); growing keeps the contents; freeing gives the memory back
// (run under a sanitizer or valgrind, a wrong pointer would show here).
TEST(CpuMemory, AlignedZeroedAndLargeBuffersStaggered) {
  const size_t big = (size_t(2) << 20) / sizeof(float) + 123;  // just over 2 MiB
  std::vector<Buf<float>> bufs;
  std::vector<size_t> offsets;
  for (int i = 0; i < 6; ++i) {
    bufs.emplace_back(cpu_memory(), big);
    const auto at = reinterpret_cast<std::uintptr_t>(bufs.back().data());
    EXPECT_EQ(at % 64, 0u) << "buffer " << i;
    offsets.push_back(at % 4096);
    const float* p = bufs.back().data();
    EXPECT_EQ(p[0], 0.f);
    EXPECT_EQ(p[big / 2], 0.f);
    EXPECT_EQ(p[big - 1], 0.f);
  }
  for (size_t i = 0; i < offsets.size(); ++i)
    for (size_t j = i + 1; j < offsets.size(); ++j)
      EXPECT_NE(offsets[i], offsets[j]) << "buffers " << i << " and " << j;
  // Small buffers: aligned, zeroed; growing one past 2 MiB keeps what it held.
  Buf<float> small(cpu_memory(), 100);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(small.data()) % 64, 0u);
  for (size_t i = 0; i < 100; ++i) {
    EXPECT_EQ(small.data()[i], 0.f);
    small.data()[i] = float(i);
  }
  small.resize(big);
  for (size_t i = 0; i < 100; ++i) EXPECT_EQ(small.data()[i], float(i));
  EXPECT_EQ(small.data()[big - 1], 0.f);
  bufs.clear();  // each large buffer handed back by its own start
}
