// `mambakit lra`: every experiments/lra_*.yaml parses and says what its
// name promises; a tiny generated ListOps run ends with a test-split "lra"
// block in summary.json; a tiny two-tower Retrieval run trains a pair
// classifier; `lra report` prints our rows beside the published.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "mambakit/experiments/lra.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/io/atomic_file.h"
#include "mambakit/io/checkpoint.h"

namespace mk::exp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const fs::path kExperiments = fs::path(MAMBAKIT_SOURCE_DIR) / "experiments";

// An empty scratch directory of this process under the temp dir.
fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / (name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Writes `yaml` to dir/tiny.yaml and runs it as an LRA task to the end.
json run_tiny_lra(const fs::path& dir, const std::string& yaml) {
  atomic_write_text((dir / "tiny.yaml").string(), yaml);
  LraOptions o;
  o.config = (dir / "tiny.yaml").string();
  int sig = -1;
  const json b = run_lra(o, &sig);
  EXPECT_EQ(sig, 0);
  return b;
}

TEST(LraConfigs, AllParseAndMatchTheirNames) {
  int full = 0, small = 0;
  for (const auto& e : fs::directory_iterator(kExperiments)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("lra_", 0) != 0 || e.path().extension() != ".yaml") continue;
    SCOPED_TRACE(n);
    const RunConfig c = load_config(e.path().string());
    EXPECT_TRUE(c.model.bidirectional);
    EXPECT_EQ(c.task_name.rfind("lra_", 0), 0u);
    if (n.find("_small") != std::string::npos) {
      ++small;
      EXPECT_EQ(c.model.mixers, std::vector<std::string>{"s4d"});
    } else {
      ++full;  // the published S4 setting: 6 bidirectional S4 (LegS) layers
      EXPECT_EQ(c.model.n_layer, 6);
      EXPECT_EQ(c.model.mixers, std::vector<std::string>{"s4"});
      EXPECT_EQ(c.model.s4_d_state, 64);
      const std::map<std::string, int> lengths = {{"lra_listops.yaml", 2048},   {"lra_text.yaml", 4096},
                                                  {"lra_retrieval.yaml", 4000}, {"lra_image.yaml", 1024},
                                                  {"lra_pathfinder.yaml", 1024}, {"lra_pathx.yaml", 16384},
                                                  {"lra_image_fmnist.yaml", 784}};
      if (lengths.count(n)) {
        EXPECT_EQ(c.data.seq_len, lengths.at(n));
      }
    }
    if (c.task_name == "lra_retrieval") {  // the published two-tower model
      EXPECT_EQ(c.task_options.value("mode", ""), "two_tower");
    }
  }
  EXPECT_GE(full, 6);
  EXPECT_GE(small, 3);
  for (const char* must : {"lra_listops_small.yaml", "lra_pathfinder_small.yaml", "lra_image_fmnist_small.yaml"})
    EXPECT_TRUE(fs::exists(kExperiments / must)) << must;
}

TEST(LraConfigs, TaskNamesResolveToConfigFiles) {
  LraOptions o;
  o.configs_dir = kExperiments.string();
  o.task = "listops";
  o.small = true;
  EXPECT_EQ(fs::path(lra_config_path(o)).filename(), "lra_listops_small.yaml");
  o.task = "path-x";
  o.small = false;
  EXPECT_EQ(fs::path(lra_config_path(o)).filename(), "lra_pathx.yaml");
  o.task = "listopz";
  try {
    lra_config_path(o);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'listops'"), std::string::npos) << e.what();
  }
}

TEST(LraRun, TinyGeneratedListOpsRunRecordsTestAccuracy) {
  const fs::path dir = fresh_dir("mambakit_lra_run");
  const std::string yaml =
      "description: tiny listops\n"
      "model:\n  mixer: s4d\n  bidirectional: true\n  d_model: 16\n  n_layer: 2\n  s4_d_state: 8\n"
      "task:\n  name: lra_listops\n  cache: " + (dir / "data").string() + "\n"
      "  generate: {n_train: 64, n_val: 16, n_test: 24, min_length: 5, max_length: 40, max_depth: 3}\n"
      "data:\n  seq_len: 40\n"
      "train:\n  steps: 12\n  batch_size: 8\n  lr: 3.0e-3\n"
      "eval:\n  every: 6\n  metrics: [accuracy, loss]\n  max_sequences: 0\n"
      "output:\n  dir: " + (dir / "run").string() + "\n  plot: false\n";
  const json b = run_tiny_lra(dir, yaml);
  EXPECT_EQ(b["task"], "lra_listops");
  EXPECT_EQ(b["column"], "ListOps");
  EXPECT_EQ(b["standard"], false);  // length 40, not 2048
  EXPECT_EQ(b["checkpoint"], "best");
  EXPECT_EQ(b["test_examples"], 24);
  const double acc = b["test_accuracy"], maj = b["test_majority"];
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 1.0);
  EXPECT_GE(maj, 0.1);  // 10 classes: the most frequent has at least a tenth
  // Accuracies are whole examples out of 24.
  EXPECT_NEAR(acc * 24, std::round(acc * 24), 1e-9);
  const json s = json::parse(read_text_file((dir / "run" / "summary.json").string()));
  EXPECT_EQ(s["lra"]["test_accuracy"], b["test_accuracy"]);
  EXPECT_TRUE(s.contains("steps"));  // the trainer's summary is kept

  const std::string table = lra_report({(dir / "run").string()}, "tiny");
  EXPECT_NE(table.find("ListOps"), std::string::npos);
  EXPECT_NE(table.find("tiny"), std::string::npos);
  char cell[32];
  std::snprintf(cell, sizeof cell, "%.2f*", 100 * acc);
  EXPECT_NE(table.find(cell), std::string::npos) << table;
  fs::remove_all(dir);
}

// Pathfinder at the published 32x32 and smaller is the Pathfinder column;
// longer (the small 64x64 Path-X, the published 128x128) is Path-X.
TEST(LraReport, ColumnsByTaskAndLength) {
  EXPECT_EQ(lra_column("lra_listops", 512), "ListOps");
  EXPECT_EQ(lra_column("lra_retrieval", 4000), "Retrieval");
  EXPECT_EQ(lra_column("lra_pathfinder", 256), "Pathfinder");
  EXPECT_EQ(lra_column("lra_pathfinder", 1024), "Pathfinder");
  EXPECT_EQ(lra_column("lra_pathfinder", 4096), "Path-X");
  EXPECT_EQ(lra_column("lra_pathfinder", 16384), "Path-X");
  EXPECT_EQ(lra_column("language", 1024), "");
}

// A bidirectional Mamba classifier: the best checkpoint reloads with both
// directions (every trained parameter), so the test score is the trained
// model's.
TEST(LraRun, BidirectionalMambaReloadsBothDirectionsForTest) {
  const fs::path dir = fresh_dir("mambakit_lra_mamba");
  const std::string yaml =
      "description: tiny listops, mamba\n"
      "model:\n  mixer: mamba\n  bidirectional: true\n  d_model: 16\n  n_layer: 1\n  d_state: 4\n"
      "task:\n  name: lra_listops\n  cache: " + (dir / "data").string() + "\n"
      "  generate: {n_train: 32, n_val: 8, n_test: 8, min_length: 5, max_length: 24, max_depth: 2}\n"
      "data:\n  seq_len: 24\n"
      "train:\n  steps: 4\n  batch_size: 4\n  lr: 3.0e-3\n"
      "eval:\n  every: 2\n  metrics: [accuracy, loss]\n  max_sequences: 0\n"
      "output:\n  dir: " + (dir / "run").string() + "\n  plot: false\n";
  const json b = run_tiny_lra(dir, yaml);
  EXPECT_EQ(b["mixer"], "mamba");
  LoadReport report;
  LoadOptions lo;
  lo.report = &report;
  const auto model = load_model((dir / "run" / "best").string(), lo);
  EXPECT_TRUE(report.ignored.empty()) << report.ignored.size() << " tensors ignored, first " << report.ignored.front();
  EXPECT_EQ(model->params().size(), b["parameters"].get<size_t>());
  fs::remove_all(dir);
}

// Two-tower retrieval end to end: the runner builds a pair classifier from
// the task, counts an epoch in pairs (2 rows each), writes the confusion
// matrix over pairs, and the test evaluation reloads the pair model.
TEST(LraRun, TinyTwoTowerRetrievalRunTrainsAPairClassifier) {
  const fs::path dir = fresh_dir("mambakit_lra_tower");
  fs::create_directories(dir / "data");
  // Linked pairs share their text; unlinked ones do not.
  unsigned seed = 5;
  auto text = [&] {
    std::string t;
    for (int i = 0; i < 12; ++i) t.push_back(char('a' + (seed = seed * 1103515245u + 12345u) % 26));
    return t;
  };
  for (const auto& [stem, n] : std::vector<std::pair<std::string, int>>{{"train", 32}, {"eval", 8}, {"test", 10}}) {
    std::ofstream f(dir / "data" / ("pairs." + stem + ".tsv"));
    for (int i = 0; i < n; ++i) {
      const std::string a = text();
      f << i % 2 << "\td" << i << "\te" << i << "\t" << a << "\t" << (i % 2 ? a : text()) << "\n";
    }
  }
  const std::string yaml =
      "description: tiny two-tower retrieval\n"
      "model:\n  mixer: s4d\n  bidirectional: true\n  d_model: 16\n  n_layer: 1\n  s4_d_state: 8\n"
      "task:\n  name: lra_retrieval\n  mode: two_tower\n"
      "data:\n  path: " + (dir / "data").string() + "\n  seq_len: 16\n"
      "train:\n  epochs: 1\n  batch_size: 8\n  lr: 3.0e-3\n"
      "eval:\n  every: 2\n  metrics: [accuracy, loss]\n  max_sequences: 0\n"
      "output:\n  dir: " + (dir / "run").string() + "\n  plot: false\n";
  const json b = run_tiny_lra(dir, yaml);
  EXPECT_EQ(b["column"], "Retrieval");
  EXPECT_EQ(b["seq_len"], 16);  // one document per row
  EXPECT_EQ(b["test_examples"], 10);
  const double acc = b["test_accuracy"];
  EXPECT_NEAR(acc * 10, std::round(acc * 10), 1e-9);  // whole pairs out of 10
  const fs::path run = dir / "run";
  const json s = json::parse(read_text_file((run / "summary.json").string()));
  EXPECT_EQ(s["steps"], 4);  // one epoch: 32 pairs / 8 per step
  const json model = json::parse(read_text_file((run / "config.json").string()));
  EXPECT_EQ(model["mambakit_pair_classifier"], true);
  EXPECT_EQ(model["mambakit_n_classes"], 2);
  const json cm = json::parse(read_text_file((run / "confusion.json").string()));
  EXPECT_EQ(cm["total"], 8);  // the val pairs, one prediction each
  const json ev = evaluate_run(run.string(), "test", {"accuracy"}, "best", 0, 0);
  EXPECT_NEAR(double(ev["test_accuracy"]), acc, 1e-12);
  fs::remove_all(dir);
}

TEST(LraReport, PublishedRowsAndOurAverage) {
  const fs::path dir = fs::temp_directory_path() / ("mambakit_lra_report_" + std::to_string(getpid()));
  fs::remove_all(dir);
  auto run = [&](const std::string& name, const std::string& column, double acc, bool standard,
                 const std::string& model) {
    fs::create_directories(dir / name);
    json s{{"steps", 10},
           {"lra", {{"task", "lra_x"}, {"column", column}, {"test_accuracy", acc}, {"test_majority", 0.5},
                    {"standard", standard}, {"seq_len", 256}, {"model", model}, {"description", "d"}}}};
    atomic_write_text((dir / name / "summary.json").string(), s.dump());
    return (dir / name).string();
  };
  const std::string a = run("a", "ListOps", 0.40, false, "s4d bidirectional, 4 layers"),
                    b = run("b", "Pathfinder", 0.70, true, "s4d bidirectional, 4 layers"),
                    c = run("c", "ListOps", 0.30, true, "s4d bidirectional, 4 layers"),
                    m = run("m", "ListOps", 0.20, true, "mamba bidirectional, 4 layers");
  const std::string t = lra_report({a, b, c, m});
  for (const char* s : {"Transformer", "36.37", "64.27", "57.46", "42.44", "71.40", "fail", "S4 ", "59.60",
                        "86.82", "90.90", "88.65", "94.20", "96.35", "86.09", "S5", "62.15", "98.58",
                        "40.00*", "70.00", "55.00 (2/6)", "30.00", "mambakit S4D #2", "mambakit Mamba "})
    EXPECT_NE(t.find(s), std::string::npos) << "missing '" << s << "' in\n" << t;
  EXPECT_EQ(t.find("70.00*"), std::string::npos);  // standard: no mark
  // One row per architecture: the Mamba run starts its own row instead of
  // filling the second S4D row's free cells, and its row averages alone.
  const auto mamba_row = t.substr(t.find("mambakit Mamba "), t.find('\n', t.find("mambakit Mamba ")) - t.find("mambakit Mamba "));
  EXPECT_NE(mamba_row.find("20.00 (1/6)"), std::string::npos) << mamba_row;
  EXPECT_EQ(t.find("Mamba #2"), std::string::npos) << t;
  fs::create_directories(dir / "plain");
  atomic_write_text((dir / "plain" / "summary.json").string(), "{\"steps\": 1}");
  EXPECT_THROW(lra_report({(dir / "plain").string()}), Error);
  EXPECT_THROW(lra_report({(dir / "none").string()}), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mk::exp
