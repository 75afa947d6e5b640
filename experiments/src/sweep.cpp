// `mambakit sweep`: a grid of runs from one base config (see sweep.h).
#include "mambakit/experiments/sweep.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <thread>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>

#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/experiments/bench_train.h"
#include "mambakit/experiments/cli_options.h"
#include "mambakit/experiments/plot.h"
#include "mambakit/experiments/run_dir.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/io/atomic_file.h"
#include "mambakit/models/flops.h"

extern char** environ;

namespace mk::exp {

namespace fs = std::filesystem;
namespace po = boost::program_options;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// --- the spec -----------------------------------------------------------------

const std::vector<std::string> kSpecKeys = {"description", "base", "out",     "metric", "budget",
                                            "axes",        "zip",  "runs",    "anchors", "jobs"};
const std::vector<std::string> kBudgetKeys = {"tokens_per_param", "tokens", "min_steps", "warmup_fraction"};

std::string place(const std::string& source, const YAML::Mark& m) {
  return m.is_null() ? source : source + ":" + std::to_string(m.line + 1);
}

std::string node_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

bool parse_number(const std::string& s, double* v) {
  if (s.empty()) return false;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (*end != '\0' || !std::isfinite(d)) return false;
  if (v) *v = d;
  return true;
}

// Keeps [A-Za-z0-9._+-]; anything else becomes '-'.
std::string safe_label(const std::string& s) {
  std::string out;
  for (unsigned char c : s) out += std::isalnum(c) || c == '.' || c == '_' || c == '+' || c == '-' ? char(c) : '-';
  while (!out.empty() && out.front() == '.') out.front() = '_';
  return out;
}

std::string leaf(const std::string& key) {
  const auto dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

// The label of a value with no name: a word as it is, a number after its
// key's name (d_model64), a list joined by '+'.
std::string auto_label(const std::string& key, const YAML::Node& v) {
  if (v.IsSequence()) {
    std::vector<std::string> parts;
    for (const auto& e : v) parts.push_back(e.IsScalar() ? e.Scalar() : node_text(e));
    return safe_label(join(parts, "+"));
  }
  const std::string t = node_text(v);
  return safe_label(parse_number(t, nullptr) ? leaf(key) + t : t);
}

std::vector<std::string> known_keys() {
  std::vector<std::string> keys;
  for (const auto& k : config_keys()) keys.push_back(k.key);
  return keys;
}

// A grid key must be a config key (or a task option); the sweep owns
// output.dir.
void check_grid_key(const std::string& key, const std::string& where) {
  if (key == "output.dir")
    throw ConfigError(where + ": output.dir can not vary: the sweep puts each run in OUT/<name> (set out:)");
  if (key.rfind("task.", 0) == 0) return;
  const auto keys = known_keys();
  if (std::find(keys.begin(), keys.end(), key) != keys.end()) return;
  std::string msg = where + ": unknown config key '" + key + "'";
  const std::string m = tasks::closest_match(key, keys);
  throw ConfigError(msg + (m.empty() ? " (keys are section.key, e.g. model.d_model)" : " (did you mean '" + m + "'?)"));
}

void check_value(const std::string& key, const YAML::Node& v, const std::string& where) {
  if (!v || v.IsNull()) throw ConfigError(where + ": " + key + ": missing value");
  if (v.IsMap()) throw ConfigError(where + ": " + key + ": a value is a scalar or a list, not a mapping");
}

double positive_number(const YAML::Node& n, const std::string& what, const std::string& where) {
  double v = 0;
  if (!n.IsScalar() || !parse_number(n.Scalar(), &v))
    throw ConfigError(where + ": " + what + ": expected a number, got " + (n.IsScalar() ? "'" + n.Scalar() + "'" : "a " + std::string(n.IsMap() ? "mapping" : "list")));
  if (!(v > 0)) throw ConfigError(where + ": " + what + " must be > 0, got " + n.Scalar());
  return v;
}

SweepFactor parse_axis(const std::string& key, const YAML::Node& node, const std::string& where,
                       const std::string& source) {
  check_grid_key(key, where);
  SweepFactor f;
  f.name = key;
  if (node.IsMap()) {  // label -> value
    for (const auto& kv : node) {
      const std::string w = place(source, kv.first.Mark());
      check_value(key, kv.second, w);
      f.values.push_back({safe_label(kv.first.Scalar()), {{key, node_text(kv.second)}}, w});
    }
  } else if (node.IsSequence()) {
    for (const auto& v : node) {
      const std::string w = place(source, v.Mark().is_null() ? node.Mark() : v.Mark());
      check_value(key, v, w);
      f.values.push_back({auto_label(key, v), {{key, node_text(v)}}, w});
    }
  } else if (node.IsScalar()) {
    f.values.push_back({auto_label(key, node), {{key, node.Scalar()}}, where});
  }
  if (f.values.empty()) throw ConfigError(where + ": axes: " + key + " has no values");
  return f;
}

SweepFactor parse_zip(const std::string& name, const YAML::Node& node, const std::string& where,
                      const std::string& source) {
  if (!node.IsMap())
    throw ConfigError(where + ": zip: group '" + name + "' must map keys to lists of values (and optional labels)");
  SweepFactor f;
  f.name = name;
  std::vector<std::string> labels;
  std::vector<std::pair<std::string, YAML::Node>> keys;
  size_t n = 0;
  std::string n_key;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar(), w = place(source, kv.first.Mark());
    const YAML::Node& v = kv.second;
    if (!v.IsSequence() || v.size() == 0)
      throw ConfigError(w + ": zip: " + name + "." + key + ": expected a non-empty list of values");
    if (key == "labels") {
      for (const auto& e : v) labels.push_back(safe_label(node_text(e)));
    } else {
      check_grid_key(key, w);
      for (const auto& e : v) check_value(key, e, w);
      keys.emplace_back(key, v);
    }
    if (n == 0) n = v.size(), n_key = key;
    if (v.size() != n)
      throw ConfigError(w + ": zip: group '" + name + "': " + key + " has " + std::to_string(v.size()) +
                        " values but " + n_key + " has " + std::to_string(n) +
                        " (the i-th values go together, so the lists must be equally long)");
  }
  if (keys.empty()) throw ConfigError(where + ": zip: group '" + name + "' sets no keys");
  for (size_t i = 0; i < n; ++i) {
    SweepValue v;
    v.where = place(source, keys[0].second[i].Mark().is_null() ? keys[0].second.Mark() : keys[0].second[i].Mark());
    std::vector<std::string> parts;
    for (const auto& [key, list] : keys) {
      v.sets.emplace_back(key, node_text(list[i]));
      parts.push_back(auto_label(key, list[i]));
    }
    v.label = labels.empty() ? join(parts, "-") : labels[i];
    f.values.push_back(v);
  }
  return f;
}

SweepFactor parse_runs(const YAML::Node& node, const std::string& where, const std::string& source) {
  if (!node.IsSequence() || node.size() == 0)
    throw ConfigError(where + ": runs: expected a non-empty list of mappings ({name: ..., model.d_model: ...})");
  SweepFactor f;
  f.name = "runs";
  for (const auto& e : node) {
    const std::string w = place(source, e.Mark());
    if (!e.IsMap()) throw ConfigError(w + ": runs: each run is a mapping of config keys to values");
    SweepValue v;
    v.where = w;
    std::vector<std::string> parts;
    for (const auto& kv : e) {
      const std::string key = kv.first.Scalar(), kw = place(source, kv.first.Mark());
      if (key == "name") {
        v.label = safe_label(node_text(kv.second));
        continue;
      }
      check_grid_key(key, kw);
      check_value(key, kv.second, kw);
      v.sets.emplace_back(key, node_text(kv.second));
      parts.push_back(auto_label(key, kv.second));
    }
    if (v.sets.empty()) throw ConfigError(w + ": runs: this run sets no config key");
    if (v.label.empty()) v.label = join(parts, "-");
    f.values.push_back(v);
  }
  return f;
}

// --- planning --------------------------------------------------------------------

// Tasks built while planning, one per distinct task and data (the language
// task reads its corpus once).
struct TaskCache {
  std::map<std::string, std::unique_ptr<tasks::Task>> tasks;
  tasks::Task& get(const RunConfig& c) {
    std::string key;
    for (const auto& [k, v] : config_values(c))
      if (k.rfind("task.", 0) == 0 || k.rfind("data.", 0) == 0) key += k + "=" + v + "\n";
    auto& t = tasks[key];
    if (!t) t = tasks::make_task(c.task_spec());
    return *t;
  }
};

std::string format_eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  char buf[32];
  const long s = long(seconds + 0.5);
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3e", v);
  return buf;
}

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// --- the table ------------------------------------------------------------------

struct Row {
  const SweepRun* run = nullptr;
  std::string status;  // finished | partial | pending | failed | interrupted
  json summary;        // summary.json where there is one
  double est_seconds = std::nan(""), est_tokens_per_s = std::nan("");
  std::string note;

  double number(const char* key, double planned) const {
    return summary.is_object() && summary.contains(key) && summary[key].is_number() ? summary[key].get<double>()
                                                                                     : planned;
  }
  double params() const { return number("parameters", double(run->params)); }
  double steps() const { return number("steps", status == "finished" ? double(run->steps) : 0.0); }
  double tokens() const { return number("tokens", 0.0); }
  double train_flops() const {
    if (summary.is_object() && summary.contains("train_flops") && summary["train_flops"].is_number())
      return summary["train_flops"].get<double>();
    return tokens() * run->flops_per_token;
  }
  double wall() const { return number("wall_seconds", std::nan("")); }
  double metric(const std::string& m) const {
    if (status != "finished" || !summary.is_object()) return std::nan("");
    const auto f = summary.find("final");
    if (f == summary.end() || !f->is_object()) return std::nan("");
    const auto v = f->find(m);
    return v != f->end() && v->is_number() ? v->get<double>() : std::nan("");
  }
};

std::string disk_status(const SweepRun& r, json* summary) {
  const fs::path s = fs::path(r.dir) / "summary.json";
  *summary = nullptr;
  if (fs::exists(s)) {
    const std::string text = read_text_file(s.string());  // its errors name the file
    try {
      *summary = json::parse(text);
    } catch (const json::exception& e) {
      throw Error(s.string() + ": not valid JSON: " + library_what(e));
    }
    if (!summary->is_object()) throw Error(s.string() + ": expected a JSON object, got " + summary->type_name());
    const auto finished = summary->find("finished");
    if (finished != summary->end() && finished->is_boolean() && finished->get<bool>()) return "finished";
  }
  if (!latest_checkpoint(r.dir).empty() || fs::exists(fs::path(r.dir) / "trainer_state.json")) return "partial";
  return "pending";
}

// Keys whose change leaves a run what it was: where it is written and how
// it is evaluated, logged or run.
bool ignorable_key(const std::string& k) {
  for (const char* p : {"output.", "eval.", "generate."})
    if (k.rfind(p, 0) == 0) return true;
  return k == "description" || k == "train.threads" || k == "train.device" || k == "train.precision";
}

// A run directory that already holds a run must hold this very run.
void check_existing(const SweepRun& r, const SweepSpec& spec) {
  const std::string path = r.dir + "/config.yaml";
  if (!fs::exists(path)) return;
  json summary;
  if (disk_status(r, &summary) == "pending") return;  // nothing worth keeping: started afresh
  RunConfig saved;
  try {
    saved = load_config(path);
  } catch (const std::exception& e) {
    throw ConfigError(path + ": the run there has an unreadable config (" + e.what() + "); remove " + r.dir);
  }
  const auto a = config_values(saved), b = config_values(r.config);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  for (const auto& k : keys) {
    if (ignorable_key(k)) continue;
    const std::string va = a.count(k) ? a.at(k) : "(unset)", vb = b.count(k) ? b.at(k) : "(unset)";
    if (va == vb) continue;
    if (k == "model.vocab_size" && (va == "0" || vb == "0")) continue;  // 0: the task's
    if (k == "data.path" || k == "data.tokenizer") {
      std::error_code ec;
      if (saved.data.paths.size() == r.config.data.paths.size()) {
        bool same = true;
        for (size_t i = 0; i < saved.data.paths.size(); ++i)
          same = same && fs::equivalent(saved.data.paths[i], r.config.data.paths[i], ec);
        if (k == "data.path" && same) continue;
      }
      if (k == "data.tokenizer" && fs::equivalent(saved.data.tokenizer, r.config.data.tokenizer, ec)) continue;
    }
    throw ConfigError(spec.source + ": run '" + r.name + "': " + r.dir + " holds a run with " + k + " = " + va +
                      ", but the sweep now gives " + vb +
                      "; remove that directory to train it again, or set another out:");
  }
}

void write_outputs(const SweepSpec& spec, const std::vector<Row>& rows, bool plot, bool timed);

}  // namespace

// --- public --------------------------------------------------------------------------

std::string SweepSpec::where_of(const std::string& key) const {
  auto it = where.find(key);
  return it != where.end() ? it->second : source;
}

SweepSpec parse_sweep_spec(const std::string& text, const std::string& source,
                           const std::vector<std::string>& sets) {
  SweepSpec s;
  s.source = source;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(place(source, e.mark) + ": YAML syntax error: " + e.msg);
  }
  if (!root || !root.IsMap()) throw ConfigError(source + ": a sweep spec is a mapping (base:, axes:, ...)");
  std::set<std::string> seen;
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar(), w = place(source, kv.first.Mark());
    if (!seen.insert(key).second) throw ConfigError(w + ": duplicate key '" + key + "'");
    if (std::find(kSpecKeys.begin(), kSpecKeys.end(), key) == kSpecKeys.end()) {
      const std::string m = tasks::closest_match(key, kSpecKeys);
      throw ConfigError(w + ": unknown key '" + key + "' in a sweep spec" +
                        (m.empty() ? " (keys: " + join(kSpecKeys) + ")" : " (did you mean '" + m + "'?)"));
    }
    s.where[key] = w;
    const YAML::Node& v = kv.second;
    if (!v || v.IsNull()) throw ConfigError(w + ": " + key + ": missing value");
    auto scalar = [&](const char* what) {
      if (!v.IsScalar()) throw ConfigError(w + ": " + key + ": expected " + what);
      return v.Scalar();
    };
    if (key == "description") {
      s.description = scalar("text");
    } else if (key == "base") {
      if (v.IsMap()) {
        s.base_text = YAML::Dump(v);
        s.base_source = source + " (base)";
      } else {
        s.base_source = scalar("a config path or an inline config mapping");
        // Relative to the spec's folder, as one file naming another.
        if (fs::path(s.base_source).is_relative()) {
          const fs::path dir = fs::path(source).parent_path();
          if (!dir.empty()) s.base_source = (dir / s.base_source).lexically_normal().string();
        }
        try {
          s.base_text = read_text_file(s.base_source);
        } catch (const std::exception& e) {
          throw ConfigError(w + ": base: " + e.what());
        }
      }
    } else if (key == "out") {
      s.out = scalar("a directory");
    } else if (key == "jobs") {
      const double j = positive_number(v, "jobs", w);
      if (j != std::floor(j) || j > 64) throw ConfigError(w + ": jobs: expected a whole number from 1 to 64, got " + v.Scalar());
      s.jobs = int(j);
    } else if (key == "metric") {
      s.metric = scalar("a metric name such as val_bpb");
    } else if (key == "budget") {
      if (!v.IsMap()) throw ConfigError(w + ": budget: expected a mapping (tokens_per_param: 20, ...)");
      for (const auto& b : v) {
        const std::string bk = b.first.Scalar(), bw = place(source, b.first.Mark());
        s.where["budget." + bk] = bw;
        if (bk == "tokens_per_param") s.budget.tokens_per_param = positive_number(b.second, "budget." + bk, bw);
        else if (bk == "tokens") s.budget.tokens = positive_number(b.second, "budget." + bk, bw);
        else if (bk == "min_steps") s.budget.min_steps = long(positive_number(b.second, "budget." + bk, bw));
        else if (bk == "warmup_fraction") {
          double f = -1;
          if (!b.second.IsScalar() || !parse_number(b.second.Scalar(), &f) || f < 0 || f >= 1)
            throw ConfigError(bw + ": budget.warmup_fraction must be a number in [0, 1)");
          s.budget.warmup_fraction = f;
        } else {
          const std::string m = tasks::closest_match(bk, kBudgetKeys);
          throw ConfigError(bw + ": unknown key 'budget." + bk + "'" +
                            (m.empty() ? " (keys: " + join(kBudgetKeys) + ")" : " (did you mean 'budget." + m + "'?)"));
        }
      }
      if (s.budget.tokens_per_param > 0 && s.budget.tokens > 0)
        throw ConfigError(w + ": budget: give tokens_per_param or tokens, not both");
      if (!s.budget.active()) throw ConfigError(w + ": budget: give tokens_per_param or tokens");
    } else if (key == "axes") {
      if (!v.IsMap()) throw ConfigError(w + ": axes: expected a mapping of config keys to their values");
      for (const auto& a : v) s.factors.push_back(parse_axis(a.first.Scalar(), a.second, place(source, a.first.Mark()), source));
    } else if (key == "zip") {
      if (!v.IsMap()) throw ConfigError(w + ": zip: expected a mapping of group names to {key: [values]}");
      for (const auto& g : v) s.factors.push_back(parse_zip(g.first.Scalar(), g.second, place(source, g.first.Mark()), source));
    } else if (key == "runs") {
      s.factors.push_back(parse_runs(v, w, source));
    } else if (key == "anchors") {
      if (!v.IsSequence()) throw ConfigError(w + ": anchors: expected a list of mappings");
      for (const auto& a : v) {
        if (!a.IsMap()) throw ConfigError(place(source, a.Mark()) + ": anchors: each anchor is a mapping");
        std::vector<std::pair<std::string, std::string>> row;
        for (const auto& c : a) row.emplace_back(c.first.Scalar(), node_text(c.second));
        s.anchors.push_back(row);
      }
    }
  }
  if (!seen.count("base")) throw ConfigError(source + ": missing required key 'base' (the config every run starts from)");
  if (s.out.empty()) {
    try {
      const YAML::Node b = YAML::Load(s.base_text);
      if (b.IsMap() && b["output"] && b["output"].IsMap() && b["output"]["dir"]) s.out = b["output"]["dir"].Scalar();
    } catch (const YAML::Exception&) {
    }
    if (s.out.empty()) throw ConfigError(source + ": missing 'out' (and the base config has no output.dir)");
  }
  while (s.out.size() > 1 && s.out.back() == '/') s.out.pop_back();
  // --set: any config key but the grid's own and those the sweep decides.
  std::map<std::string, std::string> grid;
  for (const auto& f : s.factors)
    for (const auto& v : f.values)
      for (const auto& [k, val] : v.sets) grid.emplace(k, v.where);
  for (const auto& a : sets) {
    const auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) throw ConfigError("--set " + a + ": expected KEY=VALUE, e.g. --set train.lr=1e-3");
    const std::string k = a.substr(0, eq);
    if (grid.count(k))
      throw ConfigError("--set " + a + ": " + k + " varies over the grid (" + grid.at(k) +
                        "); --set applies one value to every run");
    if (k == "output.dir") throw ConfigError("--set " + a + ": the sweep writes each run to OUT/<name>; use --out");
    if (k == "train.steps" && s.budget.active())
      throw ConfigError("--set " + a + ": train.steps comes from the budget (" + s.where_of("budget") + ")");
    s.sets.push_back(a);
  }
  return s;
}

SweepSpec load_sweep_spec(const std::string& path, const std::vector<std::string>& sets) {
  return parse_sweep_spec(read_text_file(path), path, sets);
}

std::vector<SweepRun> plan_sweep(const SweepSpec& spec) {
  // The product of the factors, the first varying slowest.
  std::vector<std::vector<const SweepValue*>> points = {{}};
  for (const auto& f : spec.factors) {
    std::vector<std::vector<const SweepValue*>> next;
    for (const auto& p : points)
      for (const auto& v : f.values) {
        auto q = p;
        q.push_back(&v);
        next.push_back(q);
      }
    points.swap(next);
  }
  TaskCache cache;
  std::vector<SweepRun> runs;
  std::map<std::string, std::string> names;  // name -> where
  for (const auto& p : points) {
    SweepRun r;
    std::vector<std::string> labels, wheres;
    for (const auto* v : p) {
      labels.push_back(v->label);
      wheres.push_back(v->where);
      for (const auto& [k, val] : v->sets) {
        r.overrides.push_back(k + "=" + val);
        r.grid_values.emplace_back(k, val);
        if (k == "model.mixer") r.arch = v->label;
      }
    }
    r.name = labels.empty() ? "run" : join(labels, "_");
    r.where = wheres.empty() ? spec.source : join(wheres, ", ");
    if (r.name.empty() || r.name == "." || r.name == "..")
      throw ConfigError(r.where + ": a run name made of these labels is empty; give labels");
    if (names.count(r.name))
      throw ConfigError(r.where + ": two runs are named '" + r.name + "' (the other at " + names[r.name] +
                        "); give the values distinct labels");
    names[r.name] = r.where;
    r.dir = spec.out + "/" + r.name;
    for (const auto& a : spec.sets) r.overrides.push_back(a);
    r.overrides.push_back("output.dir=" + r.dir);
    if (spec.budget.active()) r.overrides.push_back("train.steps=1");  // until the budget sets it
    const std::string ctx = spec.source + ": run '" + r.name + "' (" + r.where + "): ";
    try {
      r.config = parse_config(spec.base_text, spec.base_source, r.overrides);
      tasks::Task& task = cache.get(r.config);
      ModelConfig m = r.config.model;
      if (m.vocab_size == 0) m.vocab_size = task.vocab_size();
      if (task.num_classes() > 0) {
        m.n_classes = task.num_classes();
        m.pooling = task.pooling();
        m.pair_classifier = task.pair_inputs();
      }
      r.params = count_params(m);
      const int rows = r.config.train.batch_size * (task.pair_inputs() ? 2 : 1);
      r.tokens_per_step = double(rows) * r.config.train.grad_accum * task.seq_len();
      r.flops_per_token = train_flops_per_token(m, task.seq_len(), rows);
      if (spec.budget.active()) {
        const double want = spec.budget.tokens > 0 ? spec.budget.tokens : spec.budget.tokens_per_param * double(r.params);
        r.config.train.steps = std::max(spec.budget.min_steps, long(std::ceil(want / r.tokens_per_step)));
        r.config.train.epochs = 0;
        r.config.where["train.steps"] = spec.where_of("budget") + " (budget)";
        if (spec.budget.warmup_fraction >= 0) {
          r.config.train.warmup = std::lround(spec.budget.warmup_fraction * double(r.config.train.steps));
          r.config.where["train.warmup"] = spec.where_of("budget.warmup_fraction") + " (budget)";
        }
        validate(r.config);
      }
      r.steps = r.config.train.steps > 0
                    ? r.config.train.steps
                    : std::max(1L, long(std::ceil(r.config.train.epochs * task.train_tokens() / r.tokens_per_step)));
      r.tokens = double(r.steps) * r.tokens_per_step;
      r.train_flops = r.tokens * r.flops_per_token;
      for (const auto& x : r.config.model.mixers) r.mixer += (r.mixer.empty() ? "" : "+") + x;
      if (r.arch.empty()) r.arch = r.mixer;
      // The metric must be one the run reports.
      std::vector<std::string> reported;
      const auto metrics = r.config.eval.metrics.empty() ? task.default_metrics() : r.config.eval.metrics;
      for (const auto& x : metrics) reported.push_back(r.config.eval.split + "_" + x);
      if (std::find(reported.begin(), reported.end(), spec.metric) == reported.end())
        throw ConfigError(spec.where_of("metric") + ": metric '" + spec.metric + "' is not reported by run '" +
                          r.name + "' (it reports " + join(reported) + ", from eval.split and eval.metrics)" +
                          tasks::did_you_mean(spec.metric, reported));
    } catch (const ConfigError& e) {
      const std::string w = e.what();
      if (w.rfind(spec.where_of("metric"), 0) == 0) throw;
      throw ConfigError(ctx + w);
    } catch (const Error& e) {
      throw ConfigError(ctx + e.what());
    }
    runs.push_back(std::move(r));
  }
  return runs;
}

bool fit_power_law(const std::vector<std::pair<double, double>>& xy, double* a, double* b, double* r2) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;
  std::set<double> xs;
  for (const auto& [x, y] : xy) {
    if (!(x > 0 && y > 0) || !std::isfinite(x) || !std::isfinite(y)) continue;
    const double lx = std::log(x), ly = std::log(y);
    n += 1, sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly, syy += ly * ly;
    xs.insert(x);
  }
  if (xs.size() < 2) return false;
  const double vx = sxx - sx * sx / n, cxy = sxy - sx * sy / n, vy = syy - sy * sy / n;
  *b = cxy / vx;
  *a = std::exp((sy - *b * sx) / n);
  if (r2) *r2 = vy > 0 ? cxy * cxy / (vx * vy) : 1.0;
  return true;
}

namespace {

struct Fit {
  std::string arch;
  size_t n = 0;
  double a = 0, b = 0, r2 = 0;
  double xmin = 0, xmax = 0;
};

std::vector<Fit> fits_of(const SweepSpec& spec, const std::vector<Row>& rows, std::vector<std::string>* archs) {
  std::map<std::string, std::vector<std::pair<double, double>>> pts;
  for (const auto& r : rows) {
    if (std::find(archs->begin(), archs->end(), r.run->arch) == archs->end()) archs->push_back(r.run->arch);
    const double y = r.metric(spec.metric), x = r.train_flops();
    if (std::isfinite(y) && x > 0 && y > 0) pts[r.run->arch].emplace_back(x, y);
  }
  std::vector<Fit> out;
  for (const auto& arch : *archs) {
    const auto& xy = pts[arch];
    Fit f;
    f.arch = arch;
    f.n = xy.size();
    if (!fit_power_law(xy, &f.a, &f.b, &f.r2)) continue;
    f.xmin = f.xmax = xy[0].first;
    for (const auto& [x, y] : xy) f.xmin = std::min(f.xmin, x), f.xmax = std::max(f.xmax, x);
    out.push_back(f);
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string md_field(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

// The grid keys shown as their own columns besides the fixed ones.
std::vector<std::string> extra_keys(const std::vector<Row>& rows) {
  std::vector<std::string> keys;
  for (const auto& r : rows)
    for (const auto& [k, v] : r.run->grid_values)
      if (k != "model.mixer" && k != "model.d_model" && k != "model.n_layer" &&
          std::find(keys.begin(), keys.end(), k) == keys.end())
        keys.push_back(k);
  return keys;
}

std::string grid_value(const SweepRun& r, const std::string& key) {
  for (const auto& [k, v] : r.grid_values)
    if (k == key) return v;
  return "";
}

std::string plot_script(const SweepSpec& spec, const std::vector<Row>& rows, const std::vector<std::string>& archs,
                        const std::vector<Fit>& fits, const std::string& png, const std::string& svg) {
  std::ostringstream g;
  g.precision(10);
  std::ostringstream plot;
  plot << "plot ";
  bool first = true;
  for (size_t i = 0; i < archs.size(); ++i) {
    std::vector<std::pair<double, double>> xy;
    for (const auto& r : rows)
      if (r.run->arch == archs[i]) {
        const double y = r.metric(spec.metric), x = r.train_flops();
        if (std::isfinite(y) && x > 0 && y > 0) xy.emplace_back(x, y);
      }
    if (xy.empty()) continue;
    std::sort(xy.begin(), xy.end());
    g << "$p" << i << " << EOD\n";
    for (const auto& [x, y] : xy) g << x << " " << y << "\n";
    g << "EOD\n";
    const std::string lc = " lc " + std::to_string(i + 1);
    plot << (first ? "" : ", ") << "$p" << i << " using 1:2 with points pt 7 ps 1.2" << lc << " title "
         << gnuplot_quote(archs[i]);
    first = false;
    for (const auto& f : fits)
      if (f.arch == archs[i]) {
        g << "$f" << i << " << EOD\n" << f.xmin << " " << f.a * std::pow(f.xmin, f.b) << "\n"
          << f.xmax << " " << f.a * std::pow(f.xmax, f.b) << "\nEOD\n";
        char t[160];
        std::snprintf(t, sizeof t, "%s: %.3g C^%.4f", archs[i].c_str(), f.a, f.b);
        plot << ", $f" << i << " using 1:2 with lines lw 2 dt 2" << lc << " title " << gnuplot_quote(t);
      }
  }
  // The title: the description up to its first colon (the rest is in sweep.md).
  std::string title = spec.description.empty() ? spec.source : spec.description;
  if (title.find(':') != std::string::npos) title.resize(title.find(':'));
  g << "set title " << gnuplot_quote(title) << " noenhanced\n"
    << "set logscale xy\nset xlabel 'training FLOPs'\nset ylabel " << gnuplot_quote(spec.metric + " (held out)")
    << " noenhanced\nset grid\nset key top right noenhanced\nset format x '%.0e'\n";
  g << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n  set terminal pngcairo size 960,600 noenhanced\n"
    << "} else {\n  set terminal png size 960,600\n}\n"
    << "set output " << gnuplot_quote(png) << "\n"
    << plot.str() << "\n"
    << "set terminal svg size 960,600 dynamic noenhanced\n"
    << "set output " << gnuplot_quote(svg) << "\n"
    << plot.str() << "\nset output\n";
  return g.str();
}

void write_outputs(const SweepSpec& spec, const std::vector<Row>& rows, bool plot, bool timed) {
  fs::create_directories(spec.out);
  const auto extras = extra_keys(rows);
  std::vector<std::string> archs;
  const auto fits = fits_of(spec, rows, &archs);

  // CSV
  std::vector<std::string> head = {"run", "arch", "status", "mixer", "d_model", "n_layer", "params", "steps",
                                   "tokens", "tokens_per_param", "train_flops", "flops_per_token",
                                   "wall_seconds"};
  if (timed) head.push_back("est_seconds");
  head.push_back(spec.metric);
  for (const auto& k : extras) head.push_back(k);
  std::string csv = join(head, ",") + "\n";
  json runs = json::array();
  for (const auto& r : rows) {
    const SweepRun& p = *r.run;
    const bool done = r.status != "pending";
    const double steps = done ? r.steps() : double(p.steps), tokens = done ? r.tokens() : p.tokens;
    const double flops = done ? r.train_flops() : p.train_flops;
    std::vector<std::string> f = {p.name,
                                  p.arch,
                                  r.status,
                                  p.mixer,
                                  std::to_string(p.config.model.d_model),
                                  std::to_string(p.config.model.n_layer),
                                  fixed(r.params(), 0),
                                  fixed(steps, 0),
                                  fixed(tokens, 0),
                                  fixed(tokens / r.params(), 3),
                                  sci(flops),
                                  sci(p.flops_per_token),
                                  fixed(r.wall(), 1)};
    if (timed) f.push_back(fixed(r.est_seconds, 1));
    f.push_back(fixed(r.metric(spec.metric), 6));
    for (const auto& k : extras) f.push_back(grid_value(p, k));
    std::vector<std::string> q;
    for (const auto& x : f) q.push_back(csv_field(x));
    csv += join(q, ",") + "\n";
    json j{{"run", p.name},       {"arch", p.arch},       {"status", r.status},    {"mixer", p.mixer},
           {"dir", p.dir},        {"params", r.params()}, {"steps", steps},        {"planned_steps", p.steps},
           {"tokens", tokens},    {"train_flops", flops}, {"flops_per_token", p.flops_per_token},
           {"planned_train_flops", p.train_flops}};
    const double m = r.metric(spec.metric), w = r.wall();
    j[spec.metric] = std::isfinite(m) ? json(m) : json(nullptr);
    j["wall_seconds"] = std::isfinite(w) ? json(w) : json(nullptr);
    if (timed) {
      j["est_seconds"] = std::isfinite(r.est_seconds) ? json(r.est_seconds) : json(nullptr);
      j["est_tokens_per_s"] = std::isfinite(r.est_tokens_per_s) ? json(r.est_tokens_per_s) : json(nullptr);
    }
    if (!r.note.empty()) j["note"] = r.note;
    json gv = json::object();
    for (const auto& [k, v] : p.grid_values) gv[k] = v;
    j["grid"] = gv;
    runs.push_back(j);
  }
  atomic_write_text(spec.out + "/sweep.csv", csv);

  // JSON
  json jf = json::array();
  for (const auto& f : fits)
    jf.push_back({{"arch", f.arch}, {"runs", f.n}, {"a", f.a}, {"b", f.b}, {"r2", f.r2}});
  atomic_write_text(spec.out + "/sweep.json",
                    json{{"spec", spec.source}, {"description", spec.description}, {"metric", spec.metric},
                         {"runs", runs}, {"fits", jf}}
                            .dump(2) + "\n");

  // Markdown
  std::ostringstream md;
  md << "# " << (spec.description.empty() ? "Sweep " + spec.source : spec.description) << "\n\n";
  md << "Spec `" << spec.source << "`, base `" << spec.base_source << "`, " << rows.size() << " runs in `" << spec.out
     << "`";
  if (spec.budget.tokens_per_param > 0) md << ", budget " << spec.budget.tokens_per_param << " tokens per parameter";
  if (spec.budget.tokens > 0) md << ", budget " << sci(spec.budget.tokens) << " tokens per run";
  md << ". Training FLOPs: model FLOPs of forward and backward over every training token "
        "(mambakit/models/flops.h).\n\n";
  std::vector<std::string> mh = {"run", "arch", "status", "params", "steps", "tokens", "tokens/param",
                                  "train FLOPs", "wall (s)"};
  if (timed) mh.push_back("est. (s)");
  mh.push_back(spec.metric);
  for (const auto& k : extras) mh.push_back(k);
  md << "| " << join(mh, " | ") << " |\n|";
  for (size_t i = 0; i < mh.size(); ++i) md << (i < 3 ? "---|" : "---:|");
  md << "\n";
  double total_est = 0, total_wall = 0, total_flops = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const SweepRun& p = *r.run;
    const bool done = r.status != "pending";
    const double tokens = done ? r.tokens() : p.tokens, flops = done ? r.train_flops() : p.train_flops;
    std::vector<std::string> f = {p.name, p.arch, r.status, fixed(r.params(), 0), fixed(done ? r.steps() : double(p.steps), 0),
                                  sci(tokens), fixed(tokens / r.params(), 2), sci(flops), fixed(r.wall(), 1)};
    if (timed) f.push_back(fixed(r.est_seconds, 0));
    f.push_back(fixed(r.metric(spec.metric), 4));
    for (const auto& k : extras) f.push_back(grid_value(p, k));
    for (auto& x : f) x = md_field(x);
    md << "| " << join(f, " | ") << " |\n";
    if (std::isfinite(r.est_seconds)) total_est += r.est_seconds;
    if (std::isfinite(r.wall())) total_wall += r.wall();
    total_flops += p.train_flops;
  }
  md << "\nPlanned training FLOPs, all runs: " << sci(total_flops) << ". Wall time so far: " << format_eta(total_wall)
     << ".";
  if (timed) md << " Estimated from timed steps (training and evaluation): " << format_eta(total_est) << ".";
  md << "\n";
  if (!fits.empty()) {
    md << "\n## Power laws (" << spec.metric << " = a * C^b, C training FLOPs, least squares in log-log)\n\n"
       << "| arch | runs | a | b | R^2 |\n|---|---:|---:|---:|---:|\n";
    for (const auto& f : fits) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "| %s | %zu | %.4g | %.4f | %.3f |\n", md_field(f.arch).c_str(), f.n, f.a, f.b,
                    f.r2);
      md << buf;
    }
  }
  if (!spec.anchors.empty()) {
    std::vector<std::string> cols;
    for (const auto& a : spec.anchors)
      for (const auto& [k, v] : a)
        if (std::find(cols.begin(), cols.end(), k) == cols.end()) cols.push_back(k);
    md << "\n## Published anchors (as reported; other data, tokenizer and scale)\n\n| " << join(cols, " | ")
       << " |\n|";
    for (size_t i = 0; i < cols.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& a : spec.anchors) {
      std::vector<std::string> f;
      for (const auto& c : cols) {
        std::string v;
        for (const auto& [k, x] : a)
          if (k == c) v = x;
        f.push_back(md_field(v));
      }
      md << "| " << join(f, " | ") << " |\n";
    }
  }
  if (plot) {
    std::string why;
    bool any = false;
    for (const auto& r : rows) any = any || std::isfinite(r.metric(spec.metric));
    if (!any) {
      why = "no finished run with " + spec.metric + " yet";
    } else if (render_gnuplot([&](const std::string& png, const std::string& svg) {
                 return plot_script(spec, rows, archs, fits, png, svg);
               }, spec.out + "/sweep", &why)) {
      md << "\n![" << spec.metric << " against training FLOPs](sweep.png)\n";
      why.clear();
    }
    if (!why.empty()) std::fprintf(stderr, "note: no sweep plot: %s\n", why.c_str());
  }
  atomic_write_text(spec.out + "/sweep.md", md.str());
}

// Times a run's training step (the bench's loop on its exact model) and
// estimates its wall time: its steps, plus its evaluations (a forward is
// about a third of a training step).
double estimate_seconds(const SweepRun& r, double seconds, TaskCache& cache, double* tokens_per_s) {
  ModelConfig m = r.config.model;
  tasks::Task& task = cache.get(r.config);
  if (m.vocab_size == 0) m.vocab_size = task.vocab_size();
  TrainBenchConfig c;
  c.batch = r.config.train.batch_size;
  c.seq_len = task.seq_len();
  c.threads = r.config.train.threads;
  c.device = r.config.train.device;
  c.warmup = 2;
  c.seconds = seconds;
  const TrainBenchResult b = run_train_bench(m, c);
  *tokens_per_s = b.tokens_per_s;
  const double micro_s = b.ms_per_step / 1e3;  // one micro-batch of c.batch sequences
  const long every = r.config.eval.every;
  const double evals = (every > 0 ? double(r.steps / every) : 0.0) + ((every == 0 || r.steps % every) ? 1 : 0);
  double eval_seqs = double(r.config.eval.max_sequences);
  if (eval_seqs == 0) {  // the whole split
    const int eb = r.config.eval.batch_size > 0 ? r.config.eval.batch_size : c.batch;
    eval_seqs = 0;
    for (const auto& batch : task.eval_batches(r.config.eval.split, eb, 0)) eval_seqs += batch.batch;
  }
  return double(r.steps) * r.config.train.grad_accum * micro_s + evals * eval_seqs / c.batch * micro_s / 3;
}

// The longest-processing-time-first schedule of durations on `jobs`
// workers: when the last one ends.
double makespan(std::vector<double> d, int jobs) {
  std::sort(d.rbegin(), d.rend());
  std::vector<double> load(size_t(std::max(1, jobs)), 0.0);
  for (double x : d) *std::min_element(load.begin(), load.end()) += x;
  return *std::max_element(load.begin(), load.end());
}

volatile std::sig_atomic_t g_sweep_signal = 0;
extern "C" void on_sweep_signal(int sig) { g_sweep_signal = sig; }

// `jobs` runs at a time, each a child process `mambakit sweep SPEC --only
// NAME` (in its own process group, output to OUT/logs/NAME.log; it gets
// SIGTERM if this process dies). The longest runs start first. SIGINT or
// SIGTERM here is passed on to the running children once (they save and
// stop), and no further run starts.
int run_parallel(const SweepSpec& spec, const SweepOptions& o, const std::vector<SweepRun>& plan,
                 std::vector<Row>& rows, const std::function<bool(const SweepRun&)>& selected, int jobs) {
  std::vector<size_t> queue;
  for (size_t i = 0; i < plan.size(); ++i)
    if (selected(plan[i]) && rows[i].status != "finished") queue.push_back(i);
  auto remaining = [&](size_t i) {
    return std::max(0.0, plan[i].train_flops - (rows[i].status == "partial" ? rows[i].train_flops() : 0.0));
  };
  std::stable_sort(queue.begin(), queue.end(), [&](size_t a, size_t b) { return remaining(a) > remaining(b); });
  for (size_t i = 0; i < plan.size(); ++i)
    if (selected(plan[i]) && rows[i].status == "finished")
      std::fprintf(stderr, "sweep: %s finished earlier (%s %s); skipped\n", plan[i].name.c_str(), spec.metric.c_str(),
                   fixed(rows[i].metric(spec.metric), 4).c_str());
  std::string exe;
  try {
    exe = fs::read_symlink("/proc/self/exe").string();
  } catch (const std::exception& e) {
    throw Error(std::string("sweep: cannot find the mambakit executable to start runs with: ") + e.what());
  }
  const std::string logs = spec.out + "/logs";
  fs::create_directories(logs);

  struct sigaction sa {}, old_int {}, old_term {};
  sa.sa_handler = on_sweep_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  g_sweep_signal = 0;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  // Runs whose train.threads is 0 follow OMP_NUM_THREADS: unless it is set,
  // each process gets its share of the cores, so that `jobs` runs do not
  // oversubscribe them (threads of one run spinning while another holds the core).
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  if (!std::getenv("OMP_NUM_THREADS")) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    env.push_back("OMP_NUM_THREADS=" + std::to_string(std::max(1u, cores / unsigned(jobs))));
  }
  const pid_t parent = ::getpid();
  std::map<pid_t, size_t> running;
  std::map<pid_t, double> started;
  const auto t0 = Clock::now();
  double flops_done = 0;
  int stop_signal = 0;
  bool failed = false;
  size_t next = 0, n_done = 0;
  const size_t n_todo = queue.size();
  auto spawn = [&](size_t i) {
    const SweepRun& p = plan[i];
    std::vector<std::string> args = {exe, "sweep", o.spec_path, "--only", p.name, "--child"};
    for (const auto& x : o.sets) args.insert(args.end(), {"--set", x});
    if (!o.out_flag.empty()) args.insert(args.end(), {"--out", o.out_flag});
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string log = logs + "/" + p.name + ".log";
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) throw Error(log + ": cannot open: " + std::strerror(errno));
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(std::string("sweep: fork failed: ") + std::strerror(errno));
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(143);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execve(exe.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(fd);
    running[pid] = i;
    started[pid] = std::chrono::duration<double>(Clock::now() - t0).count();
    const double secs = started[pid];
    double left = 0;
    for (size_t j = next; j < queue.size(); ++j) left += remaining(queue[j]);
    for (const auto& [q, k] : running) left += q == pid ? 0 : remaining(k) / 2;  // about half done
    const double rate = flops_done > 0 && secs > 0 ? flops_done / secs : 0;
    std::fprintf(stderr, "sweep: started %s (%s, %zu parameters, %ld steps, %.3e FLOPs%s), log %s; ETA %s\n",
                 p.name.c_str(), p.arch.c_str(), p.params, p.steps, p.train_flops,
                 rows[i].status == "partial" ? ", resuming" : "", log.c_str(),
                 rate > 0 ? (format_eta(left / rate) + " at " + sci(rate) + " FLOP/s so far").c_str()
                          : "after the first run");
  };

  while (next < queue.size() || !running.empty()) {
    while (!stop_signal && running.size() < size_t(jobs) && next < queue.size()) spawn(queue[next++]);
    if (running.empty()) break;
    if (g_sweep_signal) {
      const int sig = g_sweep_signal;
      g_sweep_signal = 0;
      // Each signal once to every running run: the first stops them with a
      // checkpoint, a second one at once.
      if (!stop_signal) std::fprintf(stderr, "sweep: %s: stopping the running runs (they save a checkpoint)\n",
                                     sig == SIGINT ? "SIGINT" : "SIGTERM");
      stop_signal = stop_signal ? stop_signal : sig;
      for (const auto& [q, k] : running) ::kill(q, sig);
    }
    // Polled, so that a signal arriving at any moment is passed on promptly.
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid == 0) {
      ::usleep(100000);
      continue;
    }
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (!running.count(pid)) continue;
    const size_t i = running[pid];
    running.erase(pid);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    Row& row = rows[i];
    const double before = row.status == "partial" ? row.train_flops() : 0.0;
    row.status = disk_status(plan[i], &row.summary);
    flops_done += std::max(0.0, (row.summary.is_object() ? row.train_flops() : 0.0) - before);
    const std::string log = logs + "/" + plan[i].name + ".log";
    if (code == 0 && row.status == "finished") {
      ++n_done;
      std::fprintf(stderr, "sweep: [%zu/%zu] %s finished (%s %s, %.0f s)\n", n_done, n_todo, plan[i].name.c_str(),
                   spec.metric.c_str(), fixed(row.metric(spec.metric), 4).c_str(), row.wall());
    } else if (code == 130 || code == 143) {
      row.status = "interrupted";
      if (!stop_signal) stop_signal = code - 128;  // stopped from outside: start nothing more
      std::fprintf(stderr, "sweep: %s stopped with a checkpoint at step %.0f\n", plan[i].name.c_str(), row.steps());
    } else {
      row.status = "failed";
      row.note = "exit code " + std::to_string(code) + ", see " + log;
      failed = true;
      std::fprintf(stderr, "sweep: run %s failed (exit code %d); see %s\n", plan[i].name.c_str(), code, log.c_str());
    }
    write_outputs(spec, rows, false, false);
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (stop_signal) {
    write_outputs(spec, rows, false, false);
    std::fprintf(stderr, "sweep: interrupted; run the same command again to continue\n");
    return 128 + stop_signal;
  }
  write_outputs(spec, rows, true, false);
  std::fprintf(stderr, "sweep: done in %s; table %s/sweep.md (and .csv, .json)\n",
               format_eta(std::chrono::duration<double>(Clock::now() - t0).count()).c_str(), spec.out.c_str());
  std::cout << read_text_file(spec.out + "/sweep.md");
  return failed ? 1 : 0;
}

}  // namespace

int run_sweep(const SweepSpec& spec, const SweepOptions& o) {
  const std::vector<SweepRun> plan = plan_sweep(spec);
  std::vector<std::string> names;
  for (const auto& r : plan) names.push_back(r.name);
  for (const auto& n : o.only)
    if (std::find(names.begin(), names.end(), n) == names.end())
      throw ConfigError("--only " + n + ": no run of that name in " + spec.source + " (runs: " + join(names) + ")" +
                        tasks::did_you_mean(n, names));
  const std::function<bool(const SweepRun&)> selected = [&](const SweepRun& r) {
    return o.only.empty() || std::find(o.only.begin(), o.only.end(), r.name) != o.only.end();
  };
  for (const auto& r : plan)
    if (selected(r)) check_existing(r, spec);  // the others are not touched (and may be training elsewhere)

  std::vector<Row> rows(plan.size());
  size_t n_sel = 0, n_done = 0;
  double planned = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    rows[i].run = &plan[i];
    rows[i].status = disk_status(plan[i], &rows[i].summary);
    if (!selected(plan[i])) continue;
    ++n_sel;
    if (rows[i].status == "finished") ++n_done;
    else planned += std::max(0.0, plan[i].train_flops - (rows[i].status == "partial" ? rows[i].train_flops() : 0.0));
  }
  const int jobs = o.child ? 1 : o.jobs > 0 ? o.jobs : spec.jobs;
  if (!o.child)
    std::fprintf(stderr, "sweep: %s: %zu runs%s (%zu finished), %.3e training FLOPs to go; out %s%s\n",
                 spec.source.c_str(), plan.size(),
                 o.only.empty() ? "" : (", " + std::to_string(n_sel) + " selected").c_str(), n_done, planned,
                 spec.out.c_str(), jobs > 1 ? (", " + std::to_string(jobs) + " jobs").c_str() : "");

  if (o.dry_run) {
    std::printf("%-28s %-12s %-9s %11s %8s %11s %10s %11s%s\n", "run", "arch", "status", "params", "steps", "tokens",
                "tok/param", "train FLOPs", o.time_seconds > 0 ? "    tokens/s  est. time" : "");
    double total = 0;
    TaskCache cache;
    for (auto& r : rows) {
      if (o.time_seconds > 0 && selected(*r.run) && r.status != "finished") {
        r.est_seconds = estimate_seconds(*r.run, o.time_seconds, cache, &r.est_tokens_per_s);
        total += r.est_seconds;
      }
      const SweepRun& p = *r.run;
      std::printf("%-28s %-12s %-9s %11zu %8ld %11.4g %10.2f %11.3e%s\n", p.name.c_str(), p.arch.c_str(),
                  r.status.c_str(), p.params, p.steps, p.tokens, p.tokens / double(p.params), p.train_flops,
                  std::isfinite(r.est_seconds)
                      ? (" " + std::string(12 - std::min<size_t>(12, fixed(r.est_tokens_per_s, 0).size()), ' ') +
                         fixed(r.est_tokens_per_s, 0) + "   " + format_eta(r.est_seconds))
                            .c_str()
                      : "");
      std::fflush(stdout);
    }
    if (o.time_seconds > 0) {
      std::printf("estimated wall time of the runs to go: %s one after another (timed steps at the configured "
                  "threads, plus evaluation)",
                  format_eta(total).c_str());
      if (jobs > 1) {
        std::vector<double> est;
        for (const auto& r : rows)
          if (std::isfinite(r.est_seconds)) est.push_back(r.est_seconds);
        std::printf("; %s with %d jobs (longest first)", format_eta(makespan(est, jobs)).c_str(), jobs);
      }
      std::printf("\n");
    }
    write_outputs(spec, rows, false, o.time_seconds > 0);
    std::fprintf(stderr, "sweep: dry run; wrote %s/sweep.csv and sweep.md\n", spec.out.c_str());
    return 0;
  }

  fs::create_directories(spec.out);
  if (jobs > 1) return run_parallel(spec, o, plan, rows, selected, jobs);
  const auto t0 = Clock::now();
  double flops_done = 0;  // trained in this session
  bool failed = false;
  size_t k = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    const SweepRun& p = plan[i];
    Row& row = rows[i];
    if (!selected(p)) continue;
    ++k;
    if (row.status == "finished") {
      if (!o.child)
        std::fprintf(stderr, "sweep: [%zu/%zu] %s finished earlier (%s %s); skipped\n", k, n_sel, p.name.c_str(),
                     spec.metric.c_str(), fixed(row.metric(spec.metric), 4).c_str());
      continue;
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const double rate = flops_done > 0 && secs > 0 ? flops_done / secs : 0;
    double planned = 0;  // FLOPs still to train, this run and the selected ones after it
    for (size_t j = i; j < plan.size(); ++j)
      if (selected(plan[j]) && rows[j].status != "finished")
        planned += std::max(0.0, plan[j].train_flops - (rows[j].status == "partial" ? rows[j].train_flops() : 0.0));
    std::fprintf(stderr, "sweep: [%zu/%zu] %s: %s, %zu parameters, %ld steps, %.3e FLOPs%s; ETA %s\n", k, n_sel,
                 p.name.c_str(), p.arch.c_str(), p.params, p.steps, p.train_flops,
                 row.status == "partial" ? ", resuming" : "",
                 rate > 0 ? (format_eta(planned / rate) + " at " + sci(rate) + " FLOP/s so far").c_str()
                          : "after the first run");
    const double flops_before = row.status == "partial" ? row.train_flops() : 0;
    std::unique_ptr<Trainer> t;
    json s;
    try {
      if (row.status == "partial") {
        t = Trainer::resume(p.config);
      } else {
        // The sweep's own directory, holding no checkpoint: claim_run_dir
        // (which takes the run's lock) starts a failed start again and
        // refuses files that are not a run's.
        RunConfig c = p.config;
        c.output.overwrite = true;
        t = std::make_unique<Trainer>(c);
        t->claim_run_dir();
      }
      s = t->run();
    } catch (const ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sweep: run %s failed: %s\n", p.name.c_str(), e.what());
      row.status = "failed";
      row.note = e.what();
      failed = true;
      disk_status(p, &row.summary);
      if (!o.child) write_outputs(spec, rows, false, false);
      continue;
    }
    row.summary = s;
    const int sig = t->interrupted_by();
    row.status = sig ? "interrupted" : s.value("finished", false) ? "finished" : "partial";
    t.reset();
    flops_done += std::max(0.0, row.train_flops() - flops_before);
    if (sig) {
      if (o.child) return 128 + sig;
      write_outputs(spec, rows, false, false);
      std::fprintf(stderr, "sweep: interrupted in run %s; run the same command again to continue\n", p.name.c_str());
      return 128 + sig;
    }
    if (!o.child) write_outputs(spec, rows, false, false);
  }
  if (o.child) return failed ? 1 : 0;
  write_outputs(spec, rows, true, false);
  std::fprintf(stderr, "sweep: done in %s; table %s/sweep.md (and .csv, .json)\n",
               format_eta(std::chrono::duration<double>(Clock::now() - t0).count()).c_str(), spec.out.c_str());
  std::cout << read_text_file(spec.out + "/sweep.md");
  return failed ? 1 : 0;
}

int cmd_sweep(const std::vector<std::string>& args) {
  std::string spec_path, out;
  std::vector<std::string> sets, only;
  SweepOptions o;
  po::options_description d(
      "mambakit sweep SPEC.yaml [--set KEY=VALUE ...] [--dry-run [--time S]] [--only NAME ...] [--out DIR] [--jobs N]\n"
      "Trains a grid of configs (axes, zip groups and runs over any config key of a base config),\n"
      "one run directory each (OUT/<name>). Finished runs are skipped, interrupted ones resumed:\n"
      "rerun the same command after Ctrl-C. Writes OUT/sweep.csv, sweep.md, sweep.json and\n"
      "sweep.png/svg (the metric against training FLOPs, log-log, a power law per architecture).\n\n"
      "Examples:\n"
      "  mambakit sweep experiments/scaling_text.yaml --dry-run --time 3\n"
      "  mambakit sweep experiments/scaling_text.yaml\n"
      "  mambakit sweep experiments/scaling_text.yaml --only mamba_xs --set train.threads=1\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("spec", po::value(&spec_path), "sweep spec (YAML)")
      ("set", po::value(&sets)->composing(), "override a config key in every run (repeatable)")
      ("dry-run", po::bool_switch(&o.dry_run), "plan only: parameters, steps, tokens and FLOPs of each run, and the tables")
      ("time", po::value(&o.time_seconds)->default_value(0),
       "with --dry-run: time each run's training step for this many seconds and estimate the wall time")
      ("only", po::value(&only)->composing(), "train only this run (repeatable, or comma-separated)")
      ("out", po::value(&out), "output directory instead of the spec's out:")
      ("jobs", po::value(&o.jobs)->default_value(0),
       "runs trained at the same time, each in its own process (0: the spec's jobs:, default 1)");
  po::options_description hidden;
  hidden.add_options()("child", po::bool_switch(&o.child), "a run's own process (jobs > 1)");
  po::options_description all;
  all.add(d).add(hidden);
  po::positional_options_description pos;
  pos.add("spec", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << d;
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "mambakit sweep: usage error: %s\n", option_error_text(e, d, &pos).c_str());
    return 2;
  }
  auto usage = [](const std::string& m) {
    std::fprintf(stderr, "mambakit sweep: usage error: %s\n", m.c_str());
    return 2;
  };
  if (spec_path.empty()) return usage("give a sweep spec: mambakit sweep SPEC.yaml (see --help)");
  if (o.time_seconds < 0) return usage("--time must be >= 0");
  if (o.time_seconds > 0 && !o.dry_run) return usage("--time goes with --dry-run");
  if (o.jobs < 0 || o.jobs > 64) return usage("--jobs must be from 1 to 64");
  for (const auto& x : only) {
    std::stringstream ss(x);
    std::string item;
    while (std::getline(ss, item, ','))
      if (!item.empty()) o.only.push_back(item);
  }
  SweepSpec spec = load_sweep_spec(spec_path, sets);
  if (!out.empty()) spec.out = out;
  o.spec_path = spec_path;
  o.sets = sets;
  o.out_flag = out;
  return run_sweep(spec, o);
}

}  // namespace mk::exp
