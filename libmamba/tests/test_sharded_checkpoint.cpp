// Checkpoints as transformers writes them for larger models: safetensors
// shards listed by model.safetensors.index.json, BF16/F16 weights widened on
// load, memory-mapped loading that peaks near the weights' own size, one-line
// errors naming the file, and a warning (not an error) for a tensor the model
// does not have.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/io/safetensors.h"
#include "mambakit/process_memory.h"

namespace mk {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::ScratchDir;
using test::throws_error;

const std::string kHfDir = std::string(MAMBAKIT_SOURCE_DIR) + "/libmamba/tests/data/hf_mamba_sharded_bf16";

ModelConfig small_config() {
  ModelConfig cfg;
  cfg.d_model = 16;
  cfg.n_layer = 2;
  cfg.vocab_size = 300;
  return cfg;
}

std::unique_ptr<SequenceModel<float>> random_model(const ModelConfig& cfg, uint64_t seed) {
  auto m = std::make_unique<SequenceModel<float>>(cfg);
  m->init(seed);
  return m;
}

::testing::AssertionResult same_params(const SequenceModel<float>& a, const SequenceModel<float>& b) {
  if (a.num_params() != b.num_params()) return ::testing::AssertionFailure() << "different sizes";
  for (size_t i = 0; i < a.num_params(); ++i)
    if (std::memcmp(a.params().data() + i, b.params().data() + i, sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": " << a.params().data()[i] << " vs "
                                           << b.params().data()[i];
  return ::testing::AssertionSuccess();
}

// Round to nearest even, written independently of the library's.
float round_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t lower = u & 0xffffu, upper = u & 0xffff0000u;
  uint32_t r = upper;
  if (lower > 0x8000u || (lower == 0x8000u && (upper & 0x10000u))) r += 0x10000u;
  float out;
  std::memcpy(&out, &r, 4);
  return out;
}

json read_json(const std::string& path) { return json::parse(test::slurp(path)); }

void write_json(const std::string& path, const json& j) { test::spit(path, j.dump(2)); }

// The shard files of a sharded save, in index order.
std::vector<std::string> shard_files(const std::string& dir) {
  std::set<std::string> files;
  const json index = read_json(dir + "/" + kWeightsIndexFile);
  for (const auto& kv : index["weight_map"].items()) files.insert(kv.value().get<std::string>());
  return {files.begin(), files.end()};
}

TEST(ShardedCheckpoint, ShardedLoadEqualsUnshardedBitForBit) {
  ScratchDir d;
  auto model = random_model(small_config(), 3);
  save_model(d.file("single"), *model);
  save_model(d.file("sharded"), *model, {DType::f32, 8000});
  EXPECT_FALSE(fs::exists(d.file("sharded/model.safetensors")));
  const auto shards = shard_files(d.file("sharded"));
  ASSERT_GE(shards.size(), 3u);
  EXPECT_EQ(shards.front(), "model-00001-of-0000" + std::to_string(shards.size()) + ".safetensors");
  EXPECT_EQ(weights_file(d.file("sharded")), d.file("sharded") + "/" + kWeightsIndexFile);

  auto single = load_model(d.file("single"));
  auto sharded = load_model(d.file("sharded"));
  EXPECT_TRUE(same_params(*single, *model));
  EXPECT_TRUE(same_params(*sharded, *single));
}

TEST(ShardedCheckpoint, Bf16WeightsAreRoundedOnSaveAndWidenedExactlyOnLoad) {
  ScratchDir d;
  auto model = random_model(small_config(), 4);
  save_model(d.file("single"), *model, {DType::bf16, 0});
  save_model(d.file("sharded"), *model, {DType::bf16, 4000});
  auto single = load_model(d.file("single"));
  auto sharded = load_model(d.file("sharded"));
  EXPECT_TRUE(same_params(*sharded, *single));
  for (size_t i = 0; i < model->num_params(); ++i)
    ASSERT_EQ(single->params().data()[i], round_to_bf16(model->params().data()[i])) << "element " << i;

  // Values bf16 represents survive a bf16 round trip bit for bit.
  for (size_t i = 0; i < model->num_params(); ++i)
    model->params().data()[i] = round_to_bf16(model->params().data()[i]);
  save_model(d.file("exact"), *model, {DType::bf16, 4000});
  EXPECT_TRUE(same_params(*load_model(d.file("exact")), *model));
}

// IEEE half bits of a float that half represents exactly (normal or zero).
uint16_t exact_f16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  if ((u & 0x7fffffffu) == 0) return sign;
  const int exp = int((u >> 23) & 0xff) - 127 + 15;
  EXPECT_TRUE(exp > 0 && exp < 31 && (u & 0x1fffu) == 0) << f << " is not a normal half";
  return uint16_t(sign | (exp << 10) | ((u >> 13) & 0x3ff));
}

// A safetensors file of the model's parameters stored as F16 (values chosen
// exactly representable), written by hand: mambakit never writes F16.
void write_f16_checkpoint(const std::string& path, const SequenceModel<float>& model) {
  json header = json::object();
  std::string data;
  for (const auto& e : model.params().entries()) {
    header[e.name] = {{"dtype", "F16"}, {"shape", e.shape}, {"data_offsets", {data.size(), data.size() + 2 * e.numel}}};
    for (size_t i = 0; i < e.numel; ++i) {
      const uint16_t h = exact_f16_bits(model.params().data()[e.offset + i]);
      data.push_back(char(h & 0xff));
      data.push_back(char(h >> 8));
    }
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string len(8, '\0');
  for (int i = 0; i < 8; ++i) len[i] = char((uint64_t(text.size()) >> (8 * i)) & 0xff);
  test::spit(path, len + text + data);
}

TEST(ShardedCheckpoint, F16WeightsAreWidenedExactly) {
  ScratchDir d;
  auto model = random_model(small_config(), 5);
  // Multiples of 1/256 in (-4, 4), zeros included: at most 10 significant
  // bits, all exact in half.
  float* p = model->params().data();
  for (size_t i = 0; i < model->num_params(); ++i) p[i] = float(int(i * 7919 % 2047) - 1023) / 256.0f;
  save_model(d.path(), *model);
  write_f16_checkpoint(d.file("model.safetensors"), *model);
  EXPECT_TRUE(same_params(*load_model(d.path()), *model));
}

// Subnormals, signed zeros and the extremes of both 16-bit formats, read
// through the memory-mapped reader.
TEST(ShardedCheckpoint, MappedReaderWidensEdgeValuesExactly) {
  ScratchDir d;
  const std::vector<uint16_t> f16 = {0x0001, 0x03ff, 0x8000, 0x7bff, 0xfbff, 0x3c00};
  const std::vector<float> f16_want = {5.9604645e-8f, 6.0975552e-5f, -0.0f, 65504.0f, -65504.0f, 1.0f};
  const std::vector<uint16_t> bf16 = {0x0001, 0x8000, 0x7f7f, 0x3f80};
  const std::vector<float> bf16_want = {9.18354962e-41f, -0.0f, 3.38953139e38f, 1.0f};
  std::string data;
  for (uint16_t h : f16) data += std::string{char(h & 0xff), char(h >> 8)};
  for (uint16_t h : bf16) data += std::string{char(h & 0xff), char(h >> 8)};
  json header = {{"h", {{"dtype", "F16"}, {"shape", {6}}, {"data_offsets", {0, 12}}}},
                 {"b", {{"dtype", "BF16"}, {"shape", {4}}, {"data_offsets", {12, 20}}}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string len(8, '\0');
  len[0] = char(text.size());
  test::spit(d.file("edge.safetensors"), len + text + data);

  MappedSafetensors f(d.file("edge.safetensors"));
  std::vector<float> got(6);
  f.read_f32("h", got.data());
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(got[i], f16_want[i]) << i;
    EXPECT_EQ(std::signbit(got[i]), std::signbit(f16_want[i])) << i;
  }
  f.read_f32("b", got.data());
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(got[i], bf16_want[i]) << i;
    EXPECT_EQ(std::signbit(got[i]), std::signbit(bf16_want[i])) << i;
  }
  f.read_f32("h", got.data(), 2, 3);  // a slice
  EXPECT_EQ(got[1], 65504.0f);
}

class ShardedErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = random_model(small_config(), 6);
    save_model(dir(), *model_, {DType::bf16, 4000});
    shards_ = shard_files(dir());
    ASSERT_GE(shards_.size(), 3u);
  }
  std::string dir() const { return d_.path(); }
  std::string index() const { return d_.file(kWeightsIndexFile); }
  ScratchDir d_;
  std::unique_ptr<SequenceModel<float>> model_;
  std::vector<std::string> shards_;
};

TEST_F(ShardedErrors, MissingIndexEntryNamesTheIndexAndTheTensor) {
  json j = read_json(index());
  j["weight_map"].erase("backbone.norm_f.weight");
  write_json(index(), j);
  EXPECT_TRUE(throws_error([&] { load_model(dir()); },
                           {kWeightsIndexFile, "no weight_map entry", "backbone.norm_f.weight"}));
}

TEST_F(ShardedErrors, MissingShardFileIsNamed) {
  fs::remove(d_.file(shards_[1]));
  EXPECT_TRUE(throws_error([&] { load_model(dir()); }, {shards_[1], "missing shard file", kWeightsIndexFile}));
}

TEST_F(ShardedErrors, TruncatedShardIsNamed) {
  const std::string p = d_.file(shards_.back());
  fs::resize_file(p, fs::file_size(p) - 10);
  EXPECT_TRUE(throws_error([&] { load_model(dir()); }, {shards_.back(), "truncated"}));
}

TEST_F(ShardedErrors, ShardWithoutTheTensorItIsListedForIsNamed) {
  json j = read_json(index());
  const std::string elsewhere = j["weight_map"]["backbone.norm_f.weight"] == shards_[0] ? shards_[1] : shards_[0];
  j["weight_map"]["backbone.norm_f.weight"] = elsewhere;
  write_json(index(), j);
  EXPECT_TRUE(throws_error([&] { load_model(dir()); }, {elsewhere, "lacks tensor 'backbone.norm_f.weight'"}));
}

TEST_F(ShardedErrors, IndexCannotPointOutsideItsDirectory) {
  json j = read_json(index());
  j["weight_map"]["backbone.norm_f.weight"] = "../elsewhere.safetensors";
  write_json(index(), j);
  EXPECT_TRUE(throws_error([&] { load_model(dir()); }, {kWeightsIndexFile, "../elsewhere.safetensors"}));
  write_json(index(), json{{"metadata", json::object()}});
  EXPECT_TRUE(throws_error([&] { load_model(dir()); }, {kWeightsIndexFile, "weight_map"}));
}

TEST_F(ShardedErrors, UnknownTensorIsAWarningNamingIt) {
  const Tensor extra = Tensor::zeros({3}, DType::f32);
  write_safetensors(d_.file("extra.safetensors"), {{"backbone.extra.bias", extra}});
  json j = read_json(index());
  j["weight_map"]["backbone.extra.bias"] = "extra.safetensors";
  write_json(index(), j);
  std::vector<std::string> warnings;
  LoadOptions opt;
  opt.warn = [&](const std::string& w) { warnings.push_back(w); };
  auto loaded = load_model(dir(), opt);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("backbone.extra.bias"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("extra.safetensors"), std::string::npos) << warnings[0];
  for (size_t i = 0; i < loaded->num_params(); ++i)
    ASSERT_EQ(loaded->params().data()[i], round_to_bf16(model_->params().data()[i])) << "element " << i;
}

TEST(ShardedCheckpoint, UnknownTensorInOneFileIsAWarning) {
  ScratchDir d;
  auto model = random_model(small_config(), 7);
  save_model(d.path(), *model);
  auto& ps = model->params();
  std::vector<std::pair<std::string, Tensor>> ts;
  for (const auto& e : ps.entries()) ts.emplace_back(e.name, ps.view(e.name));
  ts.emplace_back("backbone.layers.0.mixer.rotary.inv_freq", Tensor::zeros({4}, DType::f32));
  write_safetensors(d.file("model.safetensors"), ts);
  std::vector<std::string> warnings;
  LoadOptions opt;
  opt.warn = [&](const std::string& w) { warnings.push_back(w); };
  EXPECT_TRUE(same_params(*load_model(d.path(), opt), *model));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("rotary.inv_freq"), std::string::npos) << warnings[0];
}

TEST(ShardedCheckpoint, ExplicitTiedHeadMustEqualTheEmbedding) {
  ScratchDir d;
  auto model = random_model(small_config(), 8);
  save_model(d.path(), *model);
  auto& ps = model->params();
  std::vector<std::pair<std::string, Tensor>> ts;
  for (const auto& e : ps.entries()) ts.emplace_back(e.name, ps.view(e.name));
  Tensor head = ps.view("backbone.embeddings.weight").clone();
  ts.emplace_back("lm_head.weight", head);
  write_safetensors(d.file("model.safetensors"), ts);
  EXPECT_TRUE(same_params(*load_model(d.path()), *model));
  head.data<float>()[17] += 1.0f;
  write_safetensors(d.file("model.safetensors"), ts);
  EXPECT_TRUE(throws_error([&] { load_model(d.path()); }, {"model.safetensors", "lm_head.weight differs"}));
}

TEST(ShardedCheckpoint, ResavingRemovesWeightsTheNewSaveDoesNotUse) {
  ScratchDir d;
  auto model = random_model(small_config(), 9);
  save_model(d.path(), *model, {DType::f32, 4000});
  const auto many = shard_files(d.path());
  save_model(d.path(), *model, {DType::f32, 100000});  // fewer shards
  const auto few = shard_files(d.path());
  EXPECT_LT(few.size(), many.size());
  for (const auto& f : many)
    EXPECT_EQ(fs::exists(d.file(f)), std::find(few.begin(), few.end(), f) != few.end()) << f;
  save_model(d.path(), *model);  // one file
  EXPECT_FALSE(fs::exists(d.file(kWeightsIndexFile)));
  for (const auto& f : few) EXPECT_FALSE(fs::exists(d.file(f))) << f;
  EXPECT_TRUE(same_params(*load_model(d.path()), *model));
  save_model(d.path(), *model, {DType::f32, 4000});
  EXPECT_FALSE(fs::exists(d.file("model.safetensors")));
  EXPECT_TRUE(same_params(*load_model(d.path()), *model));
}

TEST(ShardedCheckpoint, NoWeightsNamesBothFiles) {
  ScratchDir d;
  save_model(d.path(), *random_model(small_config(), 1));
  fs::remove(d.file("model.safetensors"));
  EXPECT_FALSE(has_weights(d.path()));
  EXPECT_TRUE(throws_error([&] { load_model(d.path()); }, {d.path(), "model.safetensors", kWeightsIndexFile}));
}

// The transformers-written fixture (tools/reference/make_sharded_fixture.py):
// bf16 shards load as their exact fp32 widening.
TEST(ShardedCheckpoint, TransformersShardsLoadAsTheirBf16Values) {
  auto model = load_model(kHfDir);
  EXPECT_EQ(model->config().vocab_size, 1000);
  int checked = 0;
  for (const std::string& shard : shard_files(kHfDir)) {
    const SafetensorsData st = read_safetensors(kHfDir + "/" + shard);
    for (const auto& [name, t] : st.tensors) {
      const auto& e = model->params().entry(name);
      ASSERT_EQ(size_t(t.numel()), e.numel) << name;
      EXPECT_EQ(0, std::memcmp(t.data<float>(), model->params().data() + e.offset, e.numel * sizeof(float))) << name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 22);
}

// Loading costs the model's fp32 buffer and little else: no copy of the
// checkpoint, no gradient buffer, the mapped pages handed back as they are
// read. Measured as the growth of the peak resident set (reset first).
TEST(ShardedCheckpoint, LoadingPeaksWithinOneAndAFifthOfTheWeights) {
  ScratchDir d;
  ModelConfig cfg;
  cfg.d_model = 256;
  cfg.n_layer = 2;
  cfg.vocab_size = 50000;  // 55 MB of fp32 weights: the fixed costs are small beside them
  size_t weight_bytes = 0;
  {
    auto model = random_model(cfg, 10);
    weight_bytes = model->num_params() * sizeof(float);
    save_model(d.path(), *model, {DType::bf16, 8u << 20});
  }
  if (!reset_peak_rss()) GTEST_SKIP() << "cannot reset the peak RSS (/proc/self/clear_refs)";
  const long rss_before = proc_status_kb("VmRSS");
  auto model = load_model(d.path());
  const long growth_kb = proc_status_kb("VmHWM") - rss_before;
  const double ratio = growth_kb * 1024.0 / double(weight_bytes);
  EXPECT_LE(ratio, 1.2) << "peak grew by " << growth_kb << " kB for " << weight_bytes / 1024 << " kB of weights";
  std::printf("load peak growth %.3fx the fp32 weights (%zu kB)\n", ratio, weight_bytes / 1024);
}

}  // namespace
}  // namespace mk
