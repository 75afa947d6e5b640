#include "mambakit/experiments/lra.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/evaluation/perplexity.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/io/atomic_file.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/tasks/lra_task.h"

namespace mk::exp {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::vector<std::string> kColumns = {"ListOps", "Text", "Retrieval", "Image", "Pathfinder", "Path-X"};
// The published sequence lengths of the columns.
const int kLengths[] = {2048, 4096, 4000, 1024, 1024, 16384};

int column_of(const std::string& task, int seq_len) {
  if (task == "lra_listops") return 0;
  if (task == "lra_text") return 1;
  if (task == "lra_retrieval") return 2;
  if (task == "lra_image") return 3;
  if (task == "lra_pathfinder") return seq_len > kLengths[4] ? 5 : 4;
  return -1;
}

json read_json_file(const std::string& path) {
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON (" + library_what(e) + ")");
  }
}

std::string model_text(const RunConfig& c) {
  return join(c.model.mixers, "/") + (c.model.bidirectional ? " bidirectional" : "") + ", " + std::to_string(c.model.n_layer) +
         " layers, d_model " + std::to_string(c.model.d_model);
}

}  // namespace

std::string lra_config_path(const LraOptions& o) {
  if (!o.config.empty()) {
    if (!fs::exists(o.config)) throw Error(o.config + ": no such config file");
    return o.config;
  }
  std::string task = o.task;
  if (task.rfind("lra_", 0) == 0) task = task.substr(4);
  if (task == "path-x" || task == "path_x") task = "pathx";
  const fs::path p = fs::path(o.configs_dir) / ("lra_" + task + (o.small ? "_small" : "") + ".yaml");
  if (fs::exists(p)) return p.string();
  std::vector<std::string> have;
  if (fs::is_directory(o.configs_dir))
    for (const auto& e : fs::directory_iterator(o.configs_dir)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("lra_", 0) == 0 && e.path().extension() == ".yaml")
        have.push_back(n.substr(4, n.size() - 9));
    }
  std::sort(have.begin(), have.end());
  std::string list;
  for (const auto& h : have) list += (list.empty() ? "" : ", ") + h;
  throw ConfigError("lra: no config " + p.string() +
                    (have.empty() ? " (run from the repository root, or pass --config FILE)"
                                  : " (configs in " + o.configs_dir + ": " + list + ")") +
                    tasks::did_you_mean(task + (o.small ? "_small" : ""), have));
}

std::string lra_column(const std::string& task, int seq_len) {
  const int col = column_of(task, seq_len);
  return col >= 0 ? kColumns[size_t(col)] : "";
}

json lra_test_run(const std::string& run_dir, int batch) {
  const RunConfig cfg = load_run_config(run_dir);
  auto task = tasks::make_task(cfg.task_spec());
  if (task->num_classes() == 0) throw Error(run_dir + ": task '" + task->name() + "' is not an LRA task");
  const bool have_best = fs::exists(fs::path(run_dir) / "best" / "model.safetensors");
  const std::string ckpt = have_best ? "best" : "latest";
  const std::string ckpt_dir = checkpoint_dir(run_dir, ckpt);
  // A test score from a model that dropped part of the trained weights would
  // be wrong without a word: every tensor of the checkpoint must be used.
  LoadReport loaded;
  LoadOptions lo;
  lo.report = &loaded;
  lo.warn = [](const std::string&) {};
  auto model = load_model(ckpt_dir, lo);
  if (!loaded.ignored.empty())
    throw Error(ckpt_dir + ": " + std::to_string(loaded.ignored.size()) +
                " tensors of the checkpoint are not in the model its config.json describes (first: '" +
                loaded.ignored.front() + "'); config.json and model.safetensors disagree");
  const int b = batch > 0 ? batch : cfg.eval.batch_size > 0 ? cfg.eval.batch_size : cfg.train.batch_size;
  const auto test = eval::evaluate_task(*model, *task, "test", {"accuracy", "loss", "majority"}, b, 0);
  const std::string spath = run_dir + "/summary.json";
  json s = fs::exists(spath) ? read_json_file(spath) : json::object();
  const int col = column_of(task->name(), task->seq_len());
  bool standard = col >= 0 && cfg.data.seq_len == kLengths[col];
  if (const auto* lt = dynamic_cast<const tasks::LraTask*>(task.get())) {
    const fs::path d = lt->data_dir();
    // The man-page stand-ins for Text and Retrieval are not the published data.
    if (fs::exists(d / "text.train.tsv") || fs::exists(d / "pairs.train.tsv")) standard = false;
  }
  json block{{"task", task->name()},
             {"column", col >= 0 ? kColumns[size_t(col)] : task->name()},
             {"standard", standard},
             {"description", cfg.description},
             {"model", model_text(cfg)},
             {"mixer", join(cfg.model.mixers, "/")},
             {"seq_len", task->seq_len()},
             {"checkpoint", ckpt},
             {"test_accuracy", test.at("accuracy")},
             {"test_loss", test.at("loss")},
             {"test_majority", test.at("majority")},
             {"test_examples", dynamic_cast<const tasks::LraTask*>(task.get())
                                   ? json(static_cast<const tasks::LraTask&>(*task).split_data("test").examples.size())
                                   : json(nullptr)}};
  if (const auto* lt = dynamic_cast<const tasks::LraTask*>(task.get())) block["data"] = lt->data_dir();
  for (const char* k : {"steps", "wall_seconds", "parameters", "best_step"})
    if (s.contains(k)) block[k] = s[k];
  if (s.contains("best") && s["best"].contains(cfg.eval.split + "_accuracy"))
    block["val_accuracy"] = s["best"][cfg.eval.split + "_accuracy"];
  s["lra"] = block;
  atomic_write_text(spath, s.dump(2) + "\n");
  return block;
}

json run_lra(const LraOptions& o, int* interrupted) {
  const std::string path = lra_config_path(o);
  std::vector<std::string> sets;
  if (!o.data.empty()) sets.push_back("data.path=" + o.data);
  sets.insert(sets.end(), o.sets.begin(), o.sets.end());
  RunConfig cfg = load_config(path, sets);
  if (o.threads > 0) cfg.train.threads = o.threads;
  std::fprintf(stderr, "lra: %s (%s)\n", path.c_str(), cfg.description.c_str());
  std::unique_ptr<Trainer> t;
  if (o.resume) {
    t = Trainer::resume(cfg);
  } else {
    t = std::make_unique<Trainer>(cfg);
    t->claim_run_dir();
  }
  t->run();
  if (interrupted) *interrupted = t->interrupted_by();
  if (t->interrupted_by() || t->steps_done() < t->total_steps()) return json::object();
  t.reset();  // the test evaluation reloads the best checkpoint
  const json block = lra_test_run(cfg.output.dir);
  std::fprintf(stderr, "lra: %s test accuracy %.2f%% (majority class %.2f%%), best checkpoint step %s\n",
               block["task"].get<std::string>().c_str(), 100 * block["test_accuracy"].get<double>(),
               100 * block["test_majority"].get<double>(),
               block.contains("best_step") ? block["best_step"].dump().c_str() : "?");
  return block;
}

const std::vector<LraReference>& lra_references() {
  const double fail = std::nan("");
  static const std::vector<LraReference> refs = {
      {"Transformer (Tay et al. 2021)", 36.37, 64.27, 57.46, 42.44, 71.40, fail, 54.39},
      {"S4 (Gu et al. 2022)", 59.60, 86.82, 90.90, 88.65, 94.20, 96.35, 86.09},
      {"S5 (Smith et al. 2023)", 62.15, 89.31, 91.40, 88.00, 95.33, 98.58, 87.46},
  };
  return refs;
}

namespace {

// The architecture a report row stands for: the mixers of the run's model
// ("mamba", "s4d", "mamba/attention"); older summaries name it only as the
// first word of their model text.
std::string architecture_of(const json& block) {
  if (block.contains("mixer") && block["mixer"].is_string()) return block["mixer"].get<std::string>();
  const std::string m = block.value("model", std::string("?"));
  return m.substr(0, m.find_first_of(" ,"));
}

std::string architecture_title(const std::string& a) {
  static const std::map<std::string, std::string> names = {
      {"mamba", "Mamba"}, {"s4d", "S4D"}, {"s4", "S4"}, {"attention", "attention"}, {"s4d_gated", "gated S4D"}};
  const auto it = names.find(a);
  return it == names.end() ? a : it->second;
}

}  // namespace

std::string lra_report(const std::vector<std::string>& run_dirs, const std::string& label) {
  // Our rows: one per architecture (Mamba and S4D side by side), in the order
  // first seen; a run fills its column, and a second run of the same
  // architecture and column starts another row of that architecture.
  std::vector<std::vector<json>> rows;
  std::vector<std::string> row_arch;
  std::vector<json> blocks;
  for (const auto& d : run_dirs) {
    const std::string p = d + "/summary.json";
    if (!fs::exists(p)) throw Error(d + ": no summary.json (not a finished run?)");
    const json s = read_json_file(p);
    if (!s.contains("lra"))
      throw Error(p + ": no \"lra\" block; train with `mambakit lra` or score it with `mambakit lra test " +
                  d + "`");
    json b = s["lra"];
    b["run"] = d;
    blocks.push_back(b);
    const auto it = std::find(kColumns.begin(), kColumns.end(), b.value("column", ""));
    const size_t col = it == kColumns.end() ? kColumns.size() : size_t(it - kColumns.begin());
    if (col == kColumns.size()) continue;
    const std::string arch = architecture_of(b);
    size_t r = 0;
    while (r < rows.size() && (row_arch[r] != arch || !rows[r][col].is_null())) ++r;
    if (r == rows.size()) rows.emplace_back(kColumns.size()), row_arch.push_back(arch);
    rows[r][col] = b;
  }
  char buf[256];
  std::string out;
  const char* head = "%-32s %8s %8s %9s %8s %10s %8s %8s\n";
  std::snprintf(buf, sizeof buf, head, "Model", "ListOps", "Text", "Retrieval", "Image", "Pathfinder",
                "Path-X", "Avg");
  out += buf;
  out += std::string(97, '-') + "\n";
  auto cell = [](double v) {
    char b[32];
    if (std::isnan(v)) return std::string("fail");
    std::snprintf(b, sizeof b, "%.2f", v);
    return std::string(b);
  };
  for (const auto& r : lra_references()) {
    std::snprintf(buf, sizeof buf, head, r.model.c_str(), cell(r.listops).c_str(), cell(r.text).c_str(),
                  cell(r.retrieval).c_str(), cell(r.image).c_str(), cell(r.pathfinder).c_str(),
                  cell(r.pathx).c_str(), cell(r.avg).c_str());
    out += buf;
  }
  bool any_star = false;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<std::string> cells;
    double sum = 0;
    int n = 0;
    for (const auto& b : rows[i]) {
      if (b.is_null()) {
        cells.push_back("-");
        continue;
      }
      const double acc = 100 * b["test_accuracy"].get<double>();
      sum += acc, ++n;
      const bool star = !b.value("standard", false);
      any_star = any_star || star;
      cells.push_back(cell(acc) + (star ? "*" : ""));
    }
    std::string name = (label.empty() ? std::string("mambakit") : label) + " " + architecture_title(row_arch[i]);
    const auto same = std::count(row_arch.begin(), row_arch.end(), row_arch[i]);
    if (same > 1) name += " #" + std::to_string(std::count(row_arch.begin(), row_arch.begin() + long(i) + 1, row_arch[i]));
    const std::string avg = n ? cell(sum / n) + " (" + std::to_string(n) + "/6)" : "-";
    std::snprintf(buf, sizeof buf, "%-32s %8s %8s %9s %8s %10s %8s %8s\n", name.c_str(), cells[0].c_str(),
                  cells[1].c_str(), cells[2].c_str(), cells[3].c_str(), cells[4].c_str(), cells[5].c_str(),
                  avg.c_str());
    out += buf;
  }
  out += std::string(97, '-') + "\n";
  out += "Test accuracy (%). Published rows as reported; their Avg is over the tasks they report.\n";
  if (any_star)
    out += "* not the published setting (a small, generated or stand-in variant; see below).\n";
  for (const auto& b : blocks) {
    std::snprintf(buf, sizeof buf, "  %s: %s, length %d; test %.2f%% on %s examples (majority class %.2f%%)",
                  b["run"].get<std::string>().c_str(), b.value("task", "?").c_str(), b.value("seq_len", 0),
                  100 * b.value("test_accuracy", 0.0), b.value("test_examples", json(nullptr)).dump().c_str(),
                  100 * b.value("test_majority", 0.0));
    out += buf;
    if (b.contains("val_accuracy")) {
      std::snprintf(buf, sizeof buf, ", best val %.2f%%", 100 * b["val_accuracy"].get<double>());
      out += buf;
    }
    if (b.contains("wall_seconds")) {
      std::snprintf(buf, sizeof buf, ", %ld steps in %.1f min", b.value("steps", 0L),
                    b["wall_seconds"].get<double>() / 60);
      out += buf;
    }
    out += "\n    " + b.value("model", std::string("?")) + "; " + b.value("description", std::string("")) + "\n";
  }
  return out;
}

}  // namespace mk::exp
