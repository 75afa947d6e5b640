// Experiment configs: the schema's parsing, defaults, --set overrides and
// resolved dump; and a set of broken YAML files (experiments/tests/configs/)
// that must each fail with a message naming file, line and key, exit code 2.
#include <gtest/gtest.h>

#include <fstream>

#include "mambakit/experiments/config.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/layers/mixer.h"
#include "run_util.h"

namespace mk::exp {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::TempDir;

const std::string kGood = R"(model:
  mixer: mamba
  d_model: 16
  n_layer: 2
task:
  name: language
data:
  path: corpus.txt
  seq_len: 32
train:
  steps: 4
  batch_size: 2
  lr: 1.0e-3
output:
  dir: runs/good
)";

std::string config_error(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    parse_config(yaml, "t.yaml", sets);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Config, ParsesKeysAndFillsDefaults) {
  RunConfig c = parse_config(kGood, "t.yaml");
  EXPECT_EQ(c.model.d_model, 16);
  EXPECT_EQ(c.model.n_layer, 2);
  EXPECT_EQ(c.model.mixers, std::vector<std::string>{"mamba"});
  EXPECT_EQ(c.model.d_state, 16);  // default
  EXPECT_EQ(c.task_name, "language");
  EXPECT_EQ(c.data.paths, std::vector<std::string>{"corpus.txt"});
  EXPECT_EQ(c.data.split, (std::vector<double>{0.9, 0.1}));
  EXPECT_EQ(c.train.steps, 4);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_EQ(c.train.schedule, "cosine");
  EXPECT_EQ(c.output.dir, "runs/good");
  EXPECT_EQ(c.where_of("train.lr"), "t.yaml:13");
  EXPECT_EQ(c.where_of("train.clip"), "t.yaml");  // a default
}

TEST(Config, OverridesParseByTheKeysType) {
  RunConfig c = parse_config(kGood, "t.yaml",
                             {"train.lr=2e-4", "model.mixer=[mamba, attention]", "model.n_layer=4",
                              "data.split=0.8", "output.plot=false", "generate.prompt=And God: said",
                              "task.tokenizer=byte"});
  EXPECT_DOUBLE_EQ(c.train.lr, 2e-4);
  EXPECT_EQ(c.model.mixers, (std::vector<std::string>{"mamba", "attention"}));
  EXPECT_EQ(c.model.n_layer, 4);
  ASSERT_EQ(c.data.split.size(), 2u);
  EXPECT_NEAR(c.data.split[1], 0.2, 1e-12);
  EXPECT_FALSE(c.output.plot);
  EXPECT_EQ(c.generate.prompt, "And God: said");
  EXPECT_EQ(c.task_options["tokenizer"], "byte");
  EXPECT_EQ(c.where_of("train.lr"), "--set train.lr=2e-4");
}

TEST(Config, OverrideErrorsNameTheOverride) {
  std::string m = config_error(kGood, {"train.lerning_rate=1"});
  EXPECT_NE(m.find("--set train.lerning_rate=1: unknown key 'train.lerning_rate' (did you mean 'train.lr'?)"),
            std::string::npos) << m;
  m = config_error(kGood, {"train.steps=many"});
  EXPECT_NE(m.find("--set train.steps=many: train.steps: expected an integer, got 'many'"), std::string::npos) << m;
  m = config_error(kGood, {"train.lr"});
  EXPECT_NE(m.find("expected KEY=VALUE"), std::string::npos) << m;
  m = config_error(kGood, {"trian.lr=1"});
  EXPECT_NE(m.find("did you mean 'train.lr'"), std::string::npos) << m;
  m = config_error(kGood, {"train.lr=0"});
  EXPECT_NE(m.find("--set train.lr=0: train.lr must be > 0"), std::string::npos) << m;
}

TEST(Config, SuggestsKeysByAliasAndAcrossSections) {
  auto with = [](const std::string& from, const std::string& to) {
    std::string y = kGood;
    y.replace(y.find(from), from.size(), to);
    return config_error(y);
  };
  EXPECT_NE(with("  lr: 1.0e-3", "  learning_rate: 1.0e-3").find("(did you mean 'train.lr'?)"), std::string::npos);
  EXPECT_NE(with("  d_model: 16", "  hidden_size: 16").find("(did you mean 'model.d_model'?)"), std::string::npos);
  EXPECT_NE(with("  batch_size: 2", "  batch_size: 2\n  seq_len: 8").find("(did you mean 'data.seq_len'?)"),
            std::string::npos);
  EXPECT_NE(with("  mixer: mamba", "  mixers: mamba").find("(did you mean 'model.mixer'?)"), std::string::npos);
  EXPECT_EQ(with("  lr: 1.0e-3", "  lr: 1.0e-3\n  zzzzqqq: 1").find("did you mean"), std::string::npos);
}

TEST(Config, ChecksValuesAndStructure) {
  auto with = [](const std::string& from, const std::string& to) {
    std::string y = kGood;
    y.replace(y.find(from), from.size(), to);
    return config_error(y);
  };
  EXPECT_NE(with("  lr: 1.0e-3", "  lr: 1.0e-3\n  lr: 2.0e-3").find("t.yaml:14: duplicate key 'train.lr'"),
            std::string::npos);
  EXPECT_NE(with("  lr: 1.0e-3", "  lr:").find("t.yaml:13: train.lr: missing value"), std::string::npos);
  EXPECT_NE(with("  lr: 1.0e-3", "  lr: [1, 2]").find("train.lr: expected a number, got a list"),
            std::string::npos);
  EXPECT_NE(with("  lr: 1.0e-3", "  lr: 1.0e-3\n  schedule: cosin").find("is not one of cosine, linear, constant (did you mean 'cosine'?)"),
            std::string::npos);
  EXPECT_NE(with("  lr: 1.0e-3", "  lr: 1.0e-3\n  min_lr: 0.1").find("train.min_lr (0.1) is larger than train.lr"),
            std::string::npos);
  EXPECT_NE(with("  mixer: mamba", "  mixer: [mamba, mamba, attention]").find("lists 3 mixers but model.n_layer is 2"),
            std::string::npos);
  EXPECT_NE(with("  seq_len: 32", "  seq_len: 32\n  split: [0.9, 0.2]").find("add up to"), std::string::npos);
  EXPECT_NE(with("output:\n  dir: runs/good", "output: runs/good").find("t.yaml:14: section 'output' must be a mapping"),
            std::string::npos);
  EXPECT_NE(with("  steps: 4\n", "").find("missing required key 'train.steps' (or 'train.epochs')"),
            std::string::npos);
  EXPECT_NE(config_error("").find("t.yaml: the config is empty"), std::string::npos);
  EXPECT_NE(config_error("- a\n- b\n").find("mapping of sections"), std::string::npos);
  // Every mixer the library registers is accepted by name.
  for (const auto& m : mixer_kinds())
    EXPECT_EQ(with("  mixer: mamba", "  mixer: " + m), "(no error)") << m;
}

TEST(Config, ResolvedDumpReadsBackToTheSameConfig) {
  RunConfig a = parse_config(kGood, "t.yaml", {"model.mixer=[mamba, attention]", "task.tokenizer=byte",
                                                "generate.prompt=say \"hi\": now", "data.split=[0.8, 0.1, 0.1]"});
  const std::string dumped = dump_config(a);
  RunConfig b = parse_config(dumped, "resolved.yaml");
  EXPECT_EQ(config_values(a), config_values(b)) << dumped;
  auto body = [](const std::string& s) { return s.substr(s.find('\n')); };  // after the comment
  EXPECT_EQ(body(dump_config(b)), body(dumped));
}

TEST(Config, HelpListsEveryKey) {
  const std::string h = config_help();
  for (const auto& k : config_keys()) EXPECT_NE(h.find(k.key), std::string::npos) << k.key;
  for (const char* fixed : {"model.mixer", "model.d_model", "model.n_layer", "model.d_state", "train.steps",
                            "train.batch_size", "train.lr", "train.seed", "train.device", "data.seq_len",
                            "output.dir"})
    EXPECT_NE(h.find(std::string(fixed) + ":"), std::string::npos) << fixed;
}

// --- the broken files, through the CLI ------------------------------------

// The 1-based line of the first line of a file containing `text`.
int line_of(const std::string& path, const std::string& text) {
  std::ifstream f(path);
  std::string line;
  for (int n = 1; std::getline(f, line); ++n)
    if (line.find(text) != std::string::npos) return n;
  return 0;
}

struct Broken {
  const char* file;
  const char* line_text;  // the line the message must point at ("" = no line)
  const char* message;
};

TEST(ConfigCli, BrokenFilesAreUsageErrorsNamingFileLineAndKey) {
  const std::string dir = std::string(MAMBAKIT_SOURCE_DIR) + "/experiments/tests/configs/";
  const Broken cases[] = {
      {"typo_key.yaml", "lerning_rate", "unknown key 'train.lerning_rate' (did you mean 'train.lr'?)"},
      {"wrong_type.yaml", "steps: lots", "train.steps: expected an integer, got 'lots'"},
      {"missing_section.yaml", "", "missing required section 'train'"},
      {"bad_mixer.yaml", "mixer:", "model.mixer: unknown mixer 'mambaa'"},
      {"negative_lr.yaml", "lr: -0.001", "train.lr must be > 0, got -0.001"},
      {"missing_key.yaml", "output:", "missing required key 'output.dir'"},
      {"unknown_task.yaml", "name: langauge", "unknown task 'langauge'"},
      {"typo_section.yaml", "trian:", "unknown section 'trian' (did you mean 'train'?)"},
      {"yaml_syntax.yaml", "task:", "YAML syntax error"},  // where the parser notices
  };
  for (const auto& c : cases) {
    const std::string path = dir + c.file;
    const auto r = run_cli("train " + path);
    EXPECT_EQ(r.code, 2) << c.file << ": " << r.output;
    std::string where = path;
    if (*c.line_text) where += ":" + std::to_string(line_of(path, c.line_text));
    EXPECT_NE(r.output.find(where + ": "), std::string::npos) << c.file << ": want " << where << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.file << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  EXPECT_NE(run_cli("train " + dir + "bad_mixer.yaml").output.find("did you mean 'mamba'"), std::string::npos);
  // The good file parses: it fails only later, at its (absent) data file, as a runtime error.
  const auto good = run_cli("train " + dir + "good.yaml --set output.dir=/nonexistent/never");
  EXPECT_EQ(good.code, 1) << good.output;
  EXPECT_NE(good.output.find("corpus.txt"), std::string::npos) << good.output;
  EXPECT_FALSE(fs::exists("/nonexistent/never"));
}

TEST(ConfigCli, TaskLevelMistakesAreUsageErrorsToo) {
  TempDir d("cfg_task");
  const std::string corpus = test::write_corpus(d);
  const std::string cfg = test::write_config(d, corpus, d / "run", 2);
  auto r = run_cli("train " + cfg + " --set task.vocabulary=9");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--set task.vocabulary=9: unknown key 'task.vocabulary'"), std::string::npos) << r.output;
  r = run_cli("train " + cfg + " --set 'eval.metrics=[loss,bpp]'");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("has no metric 'bpp'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("did you mean 'bpb'"), std::string::npos) << r.output;
  r = run_cli("train " + cfg + " --set eval.split=test");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("has no split 'test'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d / "run")) << "a rejected config must not create the run directory";
  // An existing run is not silently replaced.
  ASSERT_EQ(run_cli("train " + cfg).code, 0);
  r = run_cli("train " + cfg);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("already holds a run"), std::string::npos) << r.output;
  EXPECT_EQ(run_cli("train " + cfg + " --set output.overwrite=true").code, 0);
  // Nothing to resume is a runtime error naming the directory.
  r = run_cli("train " + cfg + " --resume --set output.dir=" + (d / "empty"));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("nothing to resume"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace mk::exp
