// config.json <-> ModelConfig: round trip, configs written by transformers,
// rejection of options mambakit does not implement, and validate().
#include "mambakit/io/model_io.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "mambakit/io/atomic_file.h"

namespace mk {
namespace {

using json = nlohmann::json;
using test::ScratchDir;
using test::spit;
using test::throws_error;

void expect_same(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.d_model, b.d_model);
  EXPECT_EQ(a.n_layer, b.n_layer);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.d_state, b.d_state);
  EXPECT_EQ(a.expand, b.expand);
  EXPECT_EQ(a.d_conv, b.d_conv);
  EXPECT_EQ(a.dt_rank_resolved(), b.dt_rank_resolved());
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.dt_min, b.dt_min);
  EXPECT_EQ(a.dt_max, b.dt_max);
  EXPECT_EQ(a.dt_init_floor, b.dt_init_floor);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(a.pad_token_id, b.pad_token_id);
}

ModelConfig unusual_config() {
  ModelConfig c;
  c.d_model = 96;
  c.n_layer = 3;
  c.vocab_size = 1000;
  c.d_state = 8;
  c.expand = 3;
  c.d_conv = 3;
  c.dt_rank = 7;
  c.norm_eps = 1e-6;
  c.dt_min = 2e-3;
  c.dt_max = 0.05;
  c.dt_init_floor = 1e-5;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.pad_token_id = -1;
  return c;
}

TEST(ModelIo, RoundTrip) {
  ScratchDir dir;
  const std::string path = dir.file("config.json");
  const ModelConfig c = unusual_config();
  write_model_config(path, c);
  expect_same(read_model_config(path), c);
  // Defaults too, with dt_rank resolved on the way out.
  ModelConfig d;
  write_model_config(path, d);
  ModelConfig back = read_model_config(path);
  expect_same(back, d);
  EXPECT_EQ(back.dt_rank, 4);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"config.json"});
}

TEST(ModelIo, WritesTheFieldsTransformersExpects) {
  ScratchDir dir;
  const std::string path = dir.file("config.json");
  write_model_config(path, unusual_config());
  const std::string text = read_text_file(path);
  EXPECT_NE(text.find("\n  \""), std::string::npos) << "not pretty-printed";
  json j = json::parse(text);
  EXPECT_EQ(j["model_type"], "mamba");
  EXPECT_EQ(j["architectures"], json::array({"MambaForCausalLM"}));
  EXPECT_EQ(j["hidden_size"], 96);
  EXPECT_EQ(j["num_hidden_layers"], 3);
  EXPECT_EQ(j["state_size"], 8);
  EXPECT_EQ(j["expand"], 3);
  EXPECT_EQ(j["intermediate_size"], 288);
  EXPECT_EQ(j["conv_kernel"], 3);
  EXPECT_EQ(j["time_step_rank"], 7);
  EXPECT_EQ(j["layer_norm_epsilon"], 1e-6);
  EXPECT_EQ(j["use_bias"], false);
  EXPECT_EQ(j["use_conv_bias"], true);
  EXPECT_EQ(j["residual_in_fp32"], true);
  EXPECT_EQ(j["tie_word_embeddings"], true);
  EXPECT_EQ(j["hidden_act"], "silu");
  EXPECT_EQ(j["time_step_init_scheme"], "random");
  EXPECT_EQ(j["time_step_scale"], 1.0);
  EXPECT_EQ(j["initializer_range"], 0.1);
  EXPECT_EQ(j["rescale_prenorm_residual"], false);
  EXPECT_EQ(j["use_cache"], true);
  EXPECT_EQ(j["bos_token_id"], 1);
  EXPECT_TRUE(j["pad_token_id"].is_null());
}

// As transformers writes it, with keys mambakit does not use.
const char* kTransformersConfig = R"({
  "architectures": ["MambaForCausalLM"],
  "bos_token_id": 0,
  "conv_kernel": 4,
  "dtype": "float32",
  "eos_token_id": [0],
  "expand": 2,
  "fused_add_norm": true,
  "hidden_act": "silu",
  "hidden_size": 768,
  "initializer_range": 0.1,
  "intermediate_size": 1536,
  "layer_norm_epsilon": 1e-05,
  "model_type": "mamba",
  "n_layer": 24,
  "num_hidden_layers": 24,
  "pad_token_id": null,
  "rescale_prenorm_residual": false,
  "residual_in_fp32": true,
  "rms_norm": true,
  "state_size": 16,
  "time_step_floor": 0.0001,
  "time_step_init_scheme": "random",
  "time_step_max": 0.1,
  "time_step_min": 0.001,
  "time_step_rank": "auto",
  "time_step_scale": 1.0,
  "torch_dtype": "float32",
  "transformers_version": "4.39.0.dev0",
  "use_bias": false,
  "use_cache": true,
  "use_conv_bias": true,
  "use_mambapy": false,
  "vocab_size": 50280
})";

TEST(ModelIo, ReadsTransformersConfig) {
  ScratchDir dir;
  const std::string path = dir.file("config.json");
  spit(path, kTransformersConfig);
  ModelConfig c = read_model_config(path);
  EXPECT_EQ(c.d_model, 768);
  EXPECT_EQ(c.n_layer, 24);
  EXPECT_EQ(c.vocab_size, 50280);
  EXPECT_EQ(c.d_inner(), 1536);
  EXPECT_EQ(c.dt_rank_resolved(), 48);
  EXPECT_EQ(c.norm_eps, 1e-5);
  EXPECT_EQ(c.eos_token_id, 0);
  EXPECT_EQ(c.pad_token_id, -1);
}

TEST(ModelIo, ReadsTheHfFixtureConfig) {
  const std::string path =
      std::string(MAMBAKIT_SOURCE_DIR) + "/libmamba/tests/data/hf_mamba_tiny/config.json";
  ModelConfig c = read_model_config(path);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.d_state, 16);
  EXPECT_EQ(c.d_inner(), 128);
  EXPECT_EQ(c.d_conv, 4);
  EXPECT_EQ(c.dt_rank_resolved(), 4);
  EXPECT_EQ(c.norm_eps, 1e-5);
}

TEST(ModelIo, RejectsUnsupportedOptions) {
  ScratchDir dir;
  const std::string path = dir.file("config.json");
  auto with = [&](const char* key, json value) {
    json j = json::parse(kTransformersConfig);
    j[key] = value;
    spit(path, j.dump());
  };
  with("use_bias", true);
  EXPECT_TRUE(throws_error([&] { read_model_config(path); }, {path, "use_bias", "not supported"}));
  with("use_conv_bias", false);
  EXPECT_TRUE(throws_error([&] { read_model_config(path); }, {path, "use_conv_bias", "not supported"}));
  with("tie_word_embeddings", false);
  EXPECT_TRUE(throws_error([&] { read_model_config(path); }, {path, "tie_word_embeddings", "not supported"}));
  with("hidden_act", "gelu");
  EXPECT_TRUE(throws_error([&] { read_model_config(path); }, {path, "hidden_act", "gelu"}));
  with("model_type", "mamba2");
  EXPECT_TRUE(throws_error([&] { read_model_config(path); }, {path, "model_type", "mamba2"}));
}

TEST(ModelIo, RejectsBadFields) {
  ScratchDir dir;
  const std::string path = dir.file("config.json");
  auto reads_badly = [&](const std::function<void(json&)>& edit, std::initializer_list<std::string> why) {
    json j = json::parse(kTransformersConfig);
    edit(j);
    spit(path, j.dump());
    std::vector<std::string> parts(why);
    parts.push_back(path);
    try {
      read_model_config(path);
    } catch (const Error& e) {
      for (const auto& p : parts)
        if (std::string(e.what()).find(p) == std::string::npos)
          return ::testing::AssertionFailure() << "message lacks \"" << p << "\": " << e.what();
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "accepted";
  };
  EXPECT_TRUE(reads_badly([](json& j) { j.erase("hidden_size"); }, {"missing", "hidden_size"}));
  EXPECT_TRUE(reads_badly([](json& j) { j["hidden_size"] = "768"; }, {"hidden_size", "integer"}));
  EXPECT_TRUE(reads_badly([](json& j) { j["hidden_size"] = 768.5; }, {"hidden_size", "integer"}));
  EXPECT_TRUE(reads_badly([](json& j) { j["num_hidden_layers"] = 1e12; }, {"num_hidden_layers"}));
  EXPECT_TRUE(reads_badly([](json& j) { j["num_hidden_layers"] = 5000000000LL; }, {"num_hidden_layers", "out of range"}));
  EXPECT_TRUE(reads_badly([](json& j) { j["state_size"] = 0; }, {"d_state", "state_size", "positive"}));
  EXPECT_TRUE(reads_badly([](json& j) { j["layer_norm_epsilon"] = "small"; }, {"layer_norm_epsilon", "number"}));
  EXPECT_TRUE(reads_badly([](json& j) { j["intermediate_size"] = 1000; }, {"intermediate_size", "1536"}));
  EXPECT_TRUE(reads_badly([](json& j) { j["bos_token_id"] = 50280; }, {"bos_token_id", "vocabulary"}));
  EXPECT_TRUE(reads_badly([](json& j) { j["use_bias"] = "no"; }, {"use_bias", "boolean"}));

  spit(path, "{\"hidden_size\": 64,");
  EXPECT_TRUE(throws_error([&] { read_model_config(path); }, {path, "invalid JSON"}));
  spit(path, "[1, 2]");
  EXPECT_TRUE(throws_error([&] { read_model_config(path); }, {path, "expected a JSON object"}));
  spit(path, R"({"d_model": 768, "n_layer": 24, "vocab_size": 50277, "ssm_cfg": {}})");
  EXPECT_TRUE(throws_error([&] { read_model_config(path); }, {path, "hidden_size", "mamba_ssm"}));
  EXPECT_TRUE(throws_error([&] { read_model_config(dir.file("nope.json")); }, {"nope.json", "No such file"}));
}

TEST(ModelConfig, Validate) {
  ModelConfig ok;
  EXPECT_NO_THROW(ok.validate());
  auto bad = [](const std::function<void(ModelConfig&)>& edit, const std::string& field) {
    ModelConfig c;
    edit(c);
    return throws_error([&] { c.validate(); }, {field});
  };
  EXPECT_TRUE(bad([](ModelConfig& c) { c.d_model = 0; }, "d_model"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.n_layer = -2; }, "n_layer"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.vocab_size = 0; }, "vocab_size"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.d_conv = 0; }, "d_conv"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.dt_rank = -1; }, "dt_rank"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.expand = 1 << 30; }, "d_inner"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.norm_eps = 0; }, "norm_eps"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.dt_max = 1e-4; }, "dt_max"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.dt_min = -1; }, "dt_min"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.dt_init_floor = -1; }, "dt_init_floor"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.eos_token_id = 256; }, "eos_token_id"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.pad_token_id = -2; }, "pad_token_id"));
  EXPECT_TRUE(bad([](ModelConfig& c) { c.pair_classifier = true; }, "pair_classifier"));
}

// The pair-classifier flag: written only when set, read back, and checked.
TEST(ModelIo, PairClassifierFlag) {
  ScratchDir dir;
  const std::string path = dir.file("config.json");
  ModelConfig c;
  c.n_classes = 2;
  write_model_config(path, c);
  EXPECT_FALSE(json::parse(read_text_file(path)).contains("mambakit_pair_classifier"));
  EXPECT_FALSE(read_model_config(path).pair_classifier);
  c.pair_classifier = true;
  write_model_config(path, c);
  EXPECT_EQ(json::parse(read_text_file(path))["mambakit_pair_classifier"], true);
  const ModelConfig back = read_model_config(path);
  EXPECT_TRUE(back.pair_classifier);
  EXPECT_EQ(back.n_classes, 2);

  json j = json::parse(read_text_file(path));
  j["mambakit_pair_classifier"] = "yes";
  spit(path, j.dump());
  EXPECT_TRUE(throws_error([&] { read_model_config(path); }, {path, "mambakit_pair_classifier", "boolean"}));
  j["mambakit_pair_classifier"] = true;
  j.erase("mambakit_n_classes");
  spit(path, j.dump());
  EXPECT_TRUE(throws_error([&] { read_model_config(path); }, {path, "pair_classifier", "n_classes"}));
}

// An all-Mamba model that runs both ways (an LRA classifier) keeps its second
// direction through config.json: without the flag, loading would build a
// one-way model and drop the reverse weights.
TEST(ModelIo, BidirectionalMambaRoundTrip) {
  ScratchDir dir;
  const std::string path = dir.file("config.json");
  ModelConfig c;
  c.n_classes = 10;
  c.pooling = "mean";
  write_model_config(path, c);
  EXPECT_FALSE(json::parse(read_text_file(path)).contains("mambakit_bidirectional"));
  EXPECT_FALSE(read_model_config(path).bidirectional);
  c.bidirectional = true;
  ASSERT_TRUE(c.all_mamba());
  write_model_config(path, c);
  EXPECT_EQ(json::parse(read_text_file(path))["mambakit_bidirectional"], true);
  const ModelConfig back = read_model_config(path);
  EXPECT_TRUE(back.bidirectional);
  expect_same(back, c);
}


}  // namespace
}  // namespace mk
