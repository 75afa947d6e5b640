#include "mambakit/experiments/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>
#include <variant>

#include "mambakit/io/atomic_file.h"
#include "mambakit/layers/mixer.h"
#include "mambakit/threads.h"

namespace mk::exp {

namespace {

using json = nlohmann::json;
constexpr double kInf = std::numeric_limits<double>::infinity();

// A pointer to the RunConfig field a key sets; the alternative is the type.
using Ref = std::variant<int*, long*, double*, bool*, std::string*, std::vector<std::string>*,
                         std::vector<double>*>;

struct Range {
  double lo = -kInf, hi = kInf;
  bool lo_open = false;  // lo itself excluded
};
const Range kAnyNumber{};
const Range kPositive{0, kInf, true};
const Range kNonNegative{0, kInf, false};
const Range kAtLeastOne{1, kInf, false};
const Range kFraction{0, 1, true};  // (0, 1]

// Checks that need more than a range (run after all keys are set).
using Extra = void (*)(const RunConfig&, const std::string& key);

struct Key {
  const char* key;
  bool required;
  Ref (*ref)(RunConfig&);
  const char* doc;
  Range range = {};
  std::vector<std::string> choices = {};
  std::vector<std::string> aliases = {};  // other spellings, for "did you mean"
  Extra extra = nullptr;
};

constexpr bool kRequired = true, kOptional = false;

#define MK_REF(member) [](RunConfig& c) -> Ref { return &c.member; }

void check_mixers(const RunConfig& c, const std::string& key);
void check_split(const RunConfig& c, const std::string& key);
void check_steps(const RunConfig& c, const std::string& key);
void check_min_lr(const RunConfig& c, const std::string& key);
void check_output_dir(const RunConfig& c, const std::string& key);
void check_threads(const RunConfig& c, const std::string& key);

// THE schema. Order = order of the resolved dump and of the help text.
const std::vector<Key>& schema() {
  static const std::vector<Key> keys = {
      {"description", kOptional, MK_REF(description), "free text: what this experiment is"},
      // model
      {"model.mixer", kOptional, MK_REF(model.mixers),
       "mixer of each layer, one name or a pattern repeated over the layers, e.g. "
       "[mamba, mamba, attention]",
       {}, {}, {"mixers", "layers", "layer_type", "layer_types", "block", "type"}, &check_mixers},
      {"model.d_model", kRequired, MK_REF(model.d_model), "model width", kPositive, {},
       {"hidden_size", "dim", "width", "d_hidden"}},
      {"model.n_layer", kRequired, MK_REF(model.n_layer), "number of residual blocks", kPositive, {},
       {"n_layers", "num_layers", "num_hidden_layers", "layers_count", "depth"}},
      {"model.d_state", kOptional, MK_REF(model.d_state), "SSM state size N per channel", kPositive,
       {}, {"state_size", "n_state", "state_dim"}},
      {"model.expand", kOptional, MK_REF(model.expand), "d_inner = expand * d_model", kPositive, {},
       {"expansion", "expand_factor"}},
      {"model.d_conv", kOptional, MK_REF(model.d_conv), "causal conv1d kernel width", kPositive, {},
       {"conv_kernel", "conv_size", "kernel_size"}},
      {"model.dt_rank", kOptional, MK_REF(model.dt_rank), "rank of the dt projection (0: ceil(d_model/16))",
       kNonNegative, {}, {"time_step_rank"}},
      {"model.vocab_size", kOptional, MK_REF(model.vocab_size),
       "vocabulary (0: the task's, e.g. 256 for bytes)", kNonNegative, {}, {"vocab", "n_vocab"}},
      {"model.norm_eps", kOptional, MK_REF(model.norm_eps), "RMSNorm epsilon", kPositive, {},
       {"eps", "layer_norm_epsilon"}},
      {"model.dt_min", kOptional, MK_REF(model.dt_min), "smallest initial dt", kPositive, {},
       {"time_step_min"}},
      {"model.dt_max", kOptional, MK_REF(model.dt_max), "largest initial dt", kPositive, {},
       {"time_step_max"}},
      {"model.dt_init_floor", kOptional, MK_REF(model.dt_init_floor), "floor of the initial dt",
       kNonNegative, {}, {"time_step_floor"}},
      // options of the non-Mamba mixers
      {"model.n_heads", kOptional, MK_REF(model.n_heads),
       "attention heads (0: max(1, d_model / 64))", kNonNegative, {}, {"n_head", "num_heads", "heads"}},
      {"model.rope_theta", kOptional, MK_REF(model.rope_theta), "RoPE base of the attention mixer",
       kPositive, {}, {"rope_base", "theta"}},
      {"model.mlp_hidden", kOptional, MK_REF(model.mlp_hidden),
       "SwiGLU width of the mlp mixer (0: 8/3 d_model, rounded up to 8)", kNonNegative, {},
       {"d_ff", "ffn_dim", "hidden_dim", "intermediate_size"}},
      {"model.s4_d_state", kOptional, MK_REF(model.s4_d_state), "S4/S4D state size N", kPositive, {},
       {"s4_state", "s4d_state", "s4_n"}},
      {"model.s4d_init", kOptional, MK_REF(model.s4d_init), "S4D initialisation of A", {},
       {"lin", "inv"}, {"s4_init", "init"}},
      {"model.bidirectional", kOptional, MK_REF(model.bidirectional),
       "both directions, for classification: S4/S4D add an anti-causal kernel, Mamba a second Mamba on "
       "the reversed sequence (attention stays causal; no generation then)", {}, {},
       {"bidir", "bidirection"}},
      {"model.init_from", kOptional, MK_REF(init_from),
       "run or model directory whose model.safetensors initialises this model (fine-tuning; a "
       "classifier's head stays fresh when the source is a language model)",
       {}, {}, {"pretrained", "load_from", "init_checkpoint", "initialize_from", "finetune_from"}},
      // task
      {"task.name", kRequired, MK_REF(task_name),
       "task module (other keys of this section are the task's own options)", {}, {},
       {"task", "type", "kind"}},
      // data
      {"data.path", kOptional, MK_REF(data.paths), "input file(s), read in order",
       {}, {}, {"paths", "file", "files", "data", "input"}},
      {"data.seq_len", kRequired, MK_REF(data.seq_len), "tokens per training window", kPositive, {},
       {"seq_length", "sequence_length", "block_size", "context", "context_length", "max_len", "len"}},
      {"data.tokenizer", kOptional, MK_REF(data.tokenizer),
       "language task: tokenizer.json, SentencePiece .model, or a folder holding one (unset: bytes)", {}, {},
       {"tokeniser", "vocab_file", "tokenizer_path", "spm_model"}},
      {"data.split", kOptional, MK_REF(data.split),
       "train, val[, test] fractions of the data (one number: train, the rest val)", kFraction, {},
       {"splits", "train_fraction", "fractions"}, &check_split},
      // train
      {"train.steps", kOptional, MK_REF(train.steps),
       "optimizer steps (required unless train.epochs is set)", kNonNegative, {},
       {"max_steps", "iters", "iterations", "num_steps", "total_steps", "n_steps"}, &check_steps},
      {"train.epochs", kOptional, MK_REF(train.epochs),
       "passes over the training data (used when train.steps is 0)", kNonNegative, {},
       {"epoch", "num_epochs", "n_epochs"}},
      {"train.batch_size", kRequired, MK_REF(train.batch_size), "sequences per micro-batch",
       kPositive, {}, {"batch", "bs", "micro_batch_size", "batch_sz"}},
      {"train.grad_accum", kOptional, MK_REF(train.grad_accum),
       "micro-batches per optimizer step (effective batch = batch_size * grad_accum)", kAtLeastOne,
       {}, {"grad_accumulation", "gradient_accumulation_steps", "accumulate", "accum_steps",
            "grad_accumulation_steps"}},
      {"train.lr", kRequired, MK_REF(train.lr), "peak learning rate", kPositive, {},
       {"learning_rate", "lr_max", "max_lr", "peak_lr"}},
      {"train.min_lr", kOptional, MK_REF(train.min_lr), "final learning rate of the decay",
       kNonNegative, {}, {"lr_min", "final_lr", "end_lr"}, &check_min_lr},
      {"train.schedule", kOptional, MK_REF(train.schedule), "learning-rate decay after warmup", {},
       {"cosine", "linear", "constant"}, {"lr_schedule", "scheduler", "decay"}},
      {"train.warmup", kOptional, MK_REF(train.warmup), "linear warmup steps", kNonNegative, {},
       {"warmup_steps", "warm_up", "warmup_iters"}},
      {"train.weight_decay", kOptional, MK_REF(train.weight_decay), "AdamW decoupled weight decay",
       kNonNegative, {}, {"wd", "decay"}},
      {"train.clip", kOptional, MK_REF(train.clip), "max global gradient norm (0: no clipping)",
       kNonNegative, {}, {"grad_clip", "clip_grad", "max_grad_norm", "clip_norm", "gradient_clip"}},
      {"train.beta1", kOptional, MK_REF(train.beta1), "AdamW beta1", {0, 1, false}, {}, {"b1"}},
      {"train.beta2", kOptional, MK_REF(train.beta2), "AdamW beta2", {0, 1, false}, {}, {"b2"}},
      {"train.eps", kOptional, MK_REF(train.eps), "AdamW epsilon", kPositive, {},
       {"epsilon", "adam_eps"}},
      {"train.seed", kOptional, MK_REF(train.seed), "random seed (initialisation and batches)",
       kNonNegative, {}, {"random_seed", "rng_seed"}},
      {"train.device", kOptional, MK_REF(train.device), "where to train", {}, {"cpu", "cuda"},
       {"devices", "gpu", "accelerator"}},
      {"train.precision", kOptional, MK_REF(train.precision),
       "fp32, or bf16 matmuls with fp32 master weights (CUDA)", {}, {"fp32", "bf16"},
       {"dtype", "mixed_precision", "amp"}},
      {"train.threads", kOptional, MK_REF(train.threads), "CPU threads (0: OMP_NUM_THREADS; at most 4x the online cores)",
       kNonNegative, {}, {"num_threads", "n_threads"}, &check_threads},
      {"train.distributed", kOptional, MK_REF(train.distributed),
       "data parallelism over the ranks of mpirun/srun (auto: on when started by an MPI launcher); "
       "batch_size stays the global batch", {}, {"auto", "off"},
       {"data_parallel", "ddp", "distributed_training"}},
      {"train.bucket_mb", kOptional, MK_REF(train.bucket_mb),
       "data parallelism: MB of gradients per all-reduce bucket (smaller: more overlap with the "
       "backward, more messages)", kPositive, {}, {"bucket_size_mb", "bucket_cap_mb", "allreduce_bucket_mb"}},
      {"train.check_replicas_every", kOptional, MK_REF(train.check_replicas_every),
       "data parallelism, debugging: compare a hash of every rank's parameters every N steps (0: at "
       "start-up only)", kNonNegative, {}, {"check_params_every", "replica_check_every"}},
      {"train.max_nonfinite", kOptional, MK_REF(train.max_nonfinite),
       "stop after this many non-finite losses in a row (each such step is skipped)", kAtLeastOne,
       {}, {"max_nan", "nan_tolerance", "max_skipped"}},
      // eval
      {"eval.every", kOptional, MK_REF(eval.every), "steps between evaluations (0: at the end only)",
       kNonNegative, {}, {"eval_every", "interval", "freq", "frequency", "every_steps"}},
      {"eval.split", kOptional, MK_REF(eval.split), "split evaluated during training", {}, {},
       {"splits", "on"}},
      {"eval.metrics", kOptional, MK_REF(eval.metrics),
       "metrics to report (empty: the task's defaults)", {}, {}, {"metric"}},
      {"eval.max_sequences", kOptional, MK_REF(eval.max_sequences),
       "sequences scored per evaluation (0: the whole split)", kNonNegative, {},
       {"max_windows", "windows", "eval_windows", "max_batches", "sequences", "limit"}},
      {"eval.batch_size", kOptional, MK_REF(eval.batch_size), "evaluation batch (0: train.batch_size)",
       kNonNegative, {}, {"batch", "bs"}},
      {"eval.best_metric", kOptional, MK_REF(eval.best_metric),
       "metric that picks best/ (default <split>_<first metric>, e.g. val_loss)", {}, {},
       {"best", "monitor", "metric_for_best_model"}},
      {"eval.best_mode", kOptional, MK_REF(eval.best_mode),
       "whether the best value is the smallest or largest (auto: max for accuracy)", {},
       {"auto", "min", "max"}, {"mode"}},
      // generate
      {"generate.prompt", kOptional, MK_REF(generate.prompt), "prompt text", {}, {}, {"text"}},
      {"generate.tokens", kOptional, MK_REF(generate.tokens),
       "tokens to sample into sample.txt at the end of training (0: none)", kNonNegative, {},
       {"length", "len", "max_tokens", "n_tokens", "max_new_tokens"}},
      {"generate.temperature", kOptional, MK_REF(generate.temperature),
       "sampling temperature (0: greedy)", kNonNegative, {}, {"temp", "t"}},
      {"generate.top_k", kOptional, MK_REF(generate.top_k), "keep the k most likely tokens (0: all)",
       kNonNegative, {}, {"topk", "k"}},
      {"generate.top_p", kOptional, MK_REF(generate.top_p), "nucleus sampling mass", kFraction, {},
       {"topp", "p", "nucleus"}},
      {"generate.seed", kOptional, MK_REF(generate.seed), "sampling seed", kNonNegative, {},
       {"random_seed"}},
      // output
      {"output.dir", kRequired, MK_REF(output.dir), "run directory", {}, {},
       {"out", "run_dir", "path", "directory", "out_dir", "output_dir"}, &check_output_dir},
      {"output.overwrite", kOptional, MK_REF(output.overwrite),
       "replace an existing run in output.dir (otherwise that is an error; --resume continues it)",
       {}, {}, {"force", "clobber"}},
      {"output.log_every", kOptional, MK_REF(output.log_every),
       "steps between train lines in metrics.jsonl and the log", kAtLeastOne, {},
       {"log_interval", "print_every", "log_freq"}},
      {"output.save_every", kOptional, MK_REF(output.save_every),
       "steps between checkpoints (0: at the end only)", kNonNegative, {},
       {"checkpoint_every", "ckpt_every", "save_interval", "save_steps"}},
      {"output.keep_last", kOptional, MK_REF(output.keep_last),
       "checkpoints kept under checkpoints/", kAtLeastOne, {},
       {"keep", "save_total_limit", "max_checkpoints", "keep_checkpoints"}},
      {"output.plot", kOptional, MK_REF(output.plot), "write loss.png and loss.svg (needs gnuplot)",
       {}, {}, {"plots", "plotting"}},
  };
  return keys;
}

#undef MK_REF

const std::vector<std::string>& sections() {
  static const std::vector<std::string> s = {"model", "task",     "data",  "train",
                                             "eval",  "generate", "output"};
  return s;
}
const std::vector<std::string> kRequiredSections = {"model", "task", "data", "train", "output"};

const Key* find_key(const std::string& full) {
  for (const auto& k : schema())
    if (full == k.key) return &k;
  return nullptr;
}

std::string section_of(const std::string& full) {
  const auto dot = full.find('.');
  return dot == std::string::npos ? "" : full.substr(0, dot);
}
std::string leaf_of(const std::string& full) {
  const auto dot = full.find('.');
  return dot == std::string::npos ? full : full.substr(dot + 1);
}

// The schema key a misspelt `section.leaf` most likely meant: by edit
// distance to each key's leaf and aliases, a key of another section costing
// one edit more.
std::string suggest_key(const std::string& section, const std::string& leaf) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  const size_t limit = std::max<size_t>(2, leaf.size() / 3);
  for (const auto& k : schema()) {
    const std::string ks = section_of(k.key), kl = leaf_of(k.key);
    std::vector<std::string> names = k.aliases;
    names.push_back(kl);
    for (const auto& n : names) {
      // The distance is at least the difference in length: names that
      // cannot come within the limit are skipped (the same answer, without
      // a quadratic comparison per name for a long mistyped key).
      const size_t gap = leaf.size() > n.size() ? leaf.size() - n.size() : n.size() - leaf.size();
      if (gap > limit) continue;
      size_t d = tasks::edit_distance(leaf, n) + (ks == section ? 0 : 1);
      if (d < best_d) best_d = d, best = k.key;
    }
  }
  return best_d <= limit && best_d <= leaf.size() ? best : "";
}

std::string type_name(const Ref& r) {
  switch (r.index()) {
    case 0:
    case 1: return "an integer";
    case 2: return "a number";
    case 3: return "true or false";
    case 4: return "a string";
    case 5: return "a string or a list of strings";
    default: return "a number or a list of numbers";
  }
}

std::string short_type(const Ref& r) {
  static const char* names[] = {"int", "int", "float", "bool", "string", "string list", "float list"};
  return names[r.index()];
}

std::string fmt_double(double v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string place(const std::string& source, const YAML::Mark& m) {
  return m.is_null() ? source : source + ":" + std::to_string(m.line + 1);
}

std::string node_text(const YAML::Node& n) {
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "nothing";
}

[[noreturn]] void bad_type(const std::string& where, const std::string& key, const Ref& r,
                           const YAML::Node& n) {
  throw ConfigError(where + ": " + key + ": expected " + type_name(r) + ", got " + node_text(n));
}

bool parse_long(const std::string& s, long& v) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  v = std::strtol(s.c_str(), &end, 10);
  return *end == '\0' && errno == 0;
}

bool parse_double(const std::string& s, double& v) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return *end == '\0' && errno == 0 && std::isfinite(v);
}

bool parse_bool(std::string s, bool& v) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  if (s == "true" || s == "yes" || s == "on") return v = true, true;
  if (s == "false" || s == "no" || s == "off") return v = false, true;
  return false;
}

// Sets the field behind k from a YAML node, checking its type.
void assign(const Key& k, RunConfig& c, const YAML::Node& n, const std::string& where) {
  const Ref r = k.ref(c);
  const bool scalar = n.IsScalar();
  if (auto* p = std::get_if<int*>(&r)) {
    long v;
    if (!scalar || !parse_long(n.Scalar(), v)) bad_type(where, k.key, r, n);
    if (v < INT_MIN || v > INT_MAX) throw ConfigError(where + ": " + k.key + ": " + n.Scalar() + " is out of range");
    **p = int(v);
  } else if (auto* p = std::get_if<long*>(&r)) {
    if (!scalar || !parse_long(n.Scalar(), **p)) bad_type(where, k.key, r, n);
  } else if (auto* p = std::get_if<double*>(&r)) {
    if (!scalar || !parse_double(n.Scalar(), **p)) bad_type(where, k.key, r, n);
  } else if (auto* p = std::get_if<bool*>(&r)) {
    if (!scalar || !parse_bool(n.Scalar(), **p)) bad_type(where, k.key, r, n);
  } else if (auto* p = std::get_if<std::string*>(&r)) {
    if (!scalar) bad_type(where, k.key, r, n);
    **p = n.Scalar();
  } else if (auto* p = std::get_if<std::vector<std::string>*>(&r)) {
    (*p)->clear();
    if (scalar) {
      (*p)->push_back(n.Scalar());
    } else if (n.IsSequence()) {
      for (const auto& e : n) {
        if (!e.IsScalar()) bad_type(where, k.key, r, n);
        (*p)->push_back(e.Scalar());
      }
    } else {
      bad_type(where, k.key, r, n);
    }
  } else if (auto* p = std::get_if<std::vector<double>*>(&r)) {
    (*p)->clear();
    double v;
    if (scalar) {
      if (!parse_double(n.Scalar(), v)) bad_type(where, k.key, r, n);
      (*p)->push_back(v);
    } else if (n.IsSequence()) {
      for (const auto& e : n) {
        if (!e.IsScalar() || !parse_double(e.Scalar(), v)) bad_type(where, k.key, r, n);
        (*p)->push_back(v);
      }
    } else {
      bad_type(where, k.key, r, n);
    }
  }
}

// Task options keep their YAML types: quoted scalars are strings; plain ones
// become integers, numbers, booleans or null where they read as such.
// A YAML alias refers to a node rather than copying it, so a few lines can
// describe an exponentially large tree ("billion laughs"); the copy into
// JSON stops at kMaxOptionValues values, and at kMaxOptionDepth levels (an
// alias inside its own anchor, `&a [*a]`, is a cycle).
constexpr size_t kMaxOptionValues = 1 << 16;
constexpr int kMaxOptionDepth = 64;

json to_json(const YAML::Node& n, const std::string& where, size_t& budget, int depth) {
  if (budget == 0)
    throw ConfigError(where + ": value too large (more than " + std::to_string(kMaxOptionValues) +
                      " entries once its YAML aliases are expanded)");
  if (depth > kMaxOptionDepth)
    throw ConfigError(where + ": value nested deeper than " + std::to_string(kMaxOptionDepth) +
                      " levels (or a YAML alias that contains itself)");
  --budget;
  if (n.IsSequence()) {
    json a = json::array();
    for (const auto& e : n) a.push_back(to_json(e, where, budget, depth + 1));
    return a;
  }
  if (n.IsMap()) {
    json o = json::object();
    for (const auto& kv : n) o[kv.first.Scalar()] = to_json(kv.second, where, budget, depth + 1);
    return o;
  }
  if (!n.IsScalar()) return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted
  long l;
  double d;
  if (parse_long(s, l)) return l;
  if (parse_double(s, d)) return d;
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  if (s == "~" || s == "null") return nullptr;
  return s;
}

json to_json(const YAML::Node& n, const std::string& where) {
  size_t budget = kMaxOptionValues;
  return to_json(n, where, budget, 0);
}

void emit_json(YAML::Emitter& e, const json& j) {
  if (j.is_object()) {
    e << YAML::BeginMap;
    for (auto it = j.begin(); it != j.end(); ++it) {
      e << YAML::Key << it.key() << YAML::Value;
      emit_json(e, it.value());
    }
    e << YAML::EndMap;
  } else if (j.is_array()) {
    e << YAML::Flow << YAML::BeginSeq;
    for (const auto& x : j) emit_json(e, x);
    e << YAML::EndSeq;
  } else if (j.is_string()) {
    e << YAML::DoubleQuoted << j.get<std::string>();
  } else if (j.is_number_float()) {
    e << fmt_double(j.get<double>());
  } else if (j.is_number()) {
    e << j.dump();
  } else if (j.is_boolean()) {
    e << (j.get<bool>() ? "true" : "false");
  } else {
    e << YAML::Null;
  }
}

void emit_value(YAML::Emitter& e, const Ref& r) {
  std::visit(
      [&](auto* p) {
        using V = std::decay_t<decltype(*p)>;
        if constexpr (std::is_same_v<V, int> || std::is_same_v<V, long>) {
          e << std::to_string(*p);
        } else if constexpr (std::is_same_v<V, double>) {
          e << fmt_double(*p);
        } else if constexpr (std::is_same_v<V, bool>) {
          e << (*p ? "true" : "false");
        } else if constexpr (std::is_same_v<V, std::string>) {
          e << YAML::DoubleQuoted << *p;
        } else if constexpr (std::is_same_v<V, std::vector<std::string>>) {
          if (p->size() == 1) {
            e << YAML::DoubleQuoted << (*p)[0];
          } else {
            e << YAML::Flow << YAML::BeginSeq;
            for (const auto& s : *p) e << YAML::DoubleQuoted << s;
            e << YAML::EndSeq;
          }
        } else {
          e << YAML::Flow << YAML::BeginSeq;
          for (double d : *p) e << fmt_double(d);
          e << YAML::EndSeq;
        }
      },
      r);
}

std::string value_text(const Ref& r) {
  YAML::Emitter e;
  emit_value(e, r);
  return e.c_str();
}

void check_range(const Key& k, const RunConfig& c, double v) {
  const Range& r = k.range;
  const bool low = r.lo_open ? !(v > r.lo) : !(v >= r.lo);
  if (!low && !(v > r.hi)) return;
  std::string want;
  if (r.hi == kInf) want = std::string(r.lo_open ? "> " : ">= ") + fmt_double(r.lo);
  else want = std::string("in ") + (r.lo_open ? "(" : "[") + fmt_double(r.lo) + ", " + fmt_double(r.hi) + "]";
  if (r.lo == 0 && r.hi == kInf) want = r.lo_open ? "> 0" : ">= 0";
  if (r.lo == 1 && r.hi == kInf) want = ">= 1";
  std::ostringstream got;
  got << v;
  throw ConfigError(c.where_of(k.key) + ": " + k.key + " must be " + want + ", got " + got.str());
}

void check_mixers(const RunConfig& c, const std::string& key) {
  const auto known = mixer_kinds();
  if (c.model.mixers.empty())
    throw ConfigError(c.where_of(key) + ": " + key + ": give at least one mixer (known: " + join(known) + ")");
  for (const auto& m : c.model.mixers)
    if (std::find(known.begin(), known.end(), m) == known.end())
      throw ConfigError(c.where_of(key) + ": " + key + ": unknown mixer '" + m + "' (known: " +
                        join(known) + ")" + tasks::did_you_mean(m, known));
  if (int(c.model.mixers.size()) > c.model.n_layer)
    throw ConfigError(c.where_of(key) + ": " + key + " lists " + std::to_string(c.model.mixers.size()) +
                      " mixers but model.n_layer is " + std::to_string(c.model.n_layer) +
                      " (a pattern repeats over the layers, so it can not be longer)");
}

void check_split(const RunConfig& c, const std::string& key) {
  const auto& s = c.data.split;
  double sum = 0;
  for (double f : s) sum += f;
  if (s.empty() || s.size() > 3)
    throw ConfigError(c.where_of(key) + ": " + key + ": expected 1 to 3 fractions (train, val, test), got " +
                      std::to_string(s.size()));
  if (sum > 1 + 1e-9)
    throw ConfigError(c.where_of(key) + ": " + key + ": the fractions add up to " + fmt_double(sum) +
                      ", more than 1");
}

void check_steps(const RunConfig& c, const std::string& key) {
  if (c.train.steps <= 0 && !(c.train.epochs > 0)) {
    const bool given = c.where.count("train.steps") || c.where.count("train.epochs");
    throw ConfigError(c.where_of(given ? "train.steps" : "train") + ": " +
                      (given ? "train.steps must be > 0 (or train.epochs > 0)"
                             : "missing required key 'train.steps' (or 'train.epochs')"));
  }
}

void check_min_lr(const RunConfig& c, const std::string& key) {
  if (c.train.min_lr > c.train.lr)
    throw ConfigError(c.where_of(key) + ": " + key + " (" + fmt_double(c.train.min_lr) +
                      ") is larger than train.lr (" + fmt_double(c.train.lr) + ")");
}

void check_output_dir(const RunConfig& c, const std::string& key) {
  if (c.output.dir.empty()) throw ConfigError(c.where_of(key) + ": " + key + " must not be empty");
}

// A huge count crashes libgomp's pool; refused before any work.
void check_threads(const RunConfig& c, const std::string& key) {
  if (c.train.threads == 0) return;  // 0: OpenMP's default
  const std::string why = cpu_threads_problem(c.train.threads, key);
  if (!why.empty()) throw ConfigError(c.where_of(key) + ": " + why);
}

[[noreturn]] void unknown_key(const std::string& where, const std::string& section,
                              const std::string& leaf) {
  const std::string full = section.empty() ? leaf : section + "." + leaf;
  std::string msg = where + ": unknown key '" + full + "'";
  const std::string s = suggest_key(section, leaf);
  if (!s.empty()) msg += " (did you mean '" + s + "'?)";
  throw ConfigError(msg);
}

void set_section(RunConfig& c, const std::string& section, const YAML::Node& node,
                 const std::string& where) {
  c.where[section] = where;
  if (node.IsNull()) return;  // an empty section: all defaults
  if (!node.IsMap())
    throw ConfigError(where + ": section '" + section + "' must be a mapping of keys, got " + node_text(node));
  std::set<std::string> seen;
  for (const auto& kv : node) {
    const std::string leaf = kv.first.Scalar();
    const std::string full = section + "." + leaf;
    const std::string kw = place(c.source, kv.first.Mark());
    if (!seen.insert(leaf).second) throw ConfigError(kw + ": duplicate key '" + full + "'");
    if (section == "task" && leaf != "name") {
      c.task_options[leaf] = to_json(kv.second, kw + ": task." + leaf);
      c.task_where[leaf] = kw;
      continue;
    }
    const Key* k = find_key(full);
    if (!k) unknown_key(kw, section, leaf);
    if (kv.second.IsNull()) throw ConfigError(kw + ": " + full + ": missing value");
    assign(*k, c, kv.second, kw);
    c.where[full] = kw;
  }
}

void check_required(const RunConfig& c) {
  for (const auto& s : kRequiredSections) {
    bool any = c.where.count(s) != 0;
    for (const auto& k : schema())
      if (section_of(k.key) == s && c.where.count(k.key)) any = true;
    if (!any) throw ConfigError(c.source + ": missing required section '" + s + "'");
  }
  for (const auto& k : schema())
    if (k.required && !c.where.count(k.key)) {
      const std::string s = section_of(k.key);
      throw ConfigError(c.where_of(s) + ": missing required key '" + k.key + "'" +
                        (c.where.count(s) ? " in section '" + s + "'" : ""));
    }
}

}  // namespace

std::string RunConfig::where_of(const std::string& key) const {
  auto it = where.find(key);
  return it != where.end() ? it->second : source;
}

tasks::TaskSpec RunConfig::task_spec() const {
  tasks::TaskSpec s;
  s.name = task_name;
  s.options = task_options;
  s.where = task_where;
  s.where["name"] = where_of("task.name");
  s.section_where = where_of("task");
  s.data = data;
  for (const char* k : {"path", "seq_len", "split", "tokenizer"}) s.data_where[k] = where_of(std::string("data.") + k);
  s.data_where[""] = where_of("data");
  s.seed = uint64_t(train.seed);
  return s;
}

RunConfig parse_config(const std::string& text, const std::string& source,
                       const std::vector<std::string>& overrides) {
  RunConfig c;
  c.source = source;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(place(source, e.mark) + ": YAML syntax error: " + e.msg);
  }
  if (!root || root.IsNull()) throw ConfigError(source + ": the config is empty");
  if (!root.IsMap())
    throw ConfigError(place(source, root.Mark()) +
                      ": a config is a mapping of sections (model:, task:, data:, train:, output:, ...)");
  std::set<std::string> seen;
  for (const auto& kv : root) {
    const std::string name = kv.first.Scalar();
    const std::string where = place(source, kv.first.Mark());
    if (!seen.insert(name).second) throw ConfigError(where + ": duplicate section '" + name + "'");
    if (const Key* k = find_key(name)) {  // a top-level key (description)
      if (kv.second.IsNull()) throw ConfigError(where + ": " + name + ": missing value");
      assign(*k, c, kv.second, where);
      c.where[name] = where;
    } else if (std::find(sections().begin(), sections().end(), name) != sections().end()) {
      set_section(c, name, kv.second, where);
    } else {
      std::vector<std::string> tops = sections();
      tops.push_back("description");
      std::string msg = where + ": unknown section '" + name + "'";
      std::string m = tasks::closest_match(name, tops);
      if (m.empty()) m = suggest_key("", name);  // e.g. `lr:` at the top level
      throw ConfigError(msg + (m.empty() ? " (sections: " + join(sections()) + ")"
                                         : " (did you mean '" + m + "'?)"));
    }
  }
  for (const auto& o : overrides) apply_override(c, o);
  check_required(c);
  validate(c);
  return c;
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_config(read_text_file(path), path, overrides);
}

void apply_override(RunConfig& c, const std::string& assignment) {
  const std::string where = "--set " + assignment;
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(where + ": expected KEY=VALUE, e.g. --set train.lr=1e-3");
  const std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  const std::string section = section_of(key), leaf = leaf_of(key);
  if (section.empty() && !find_key(key)) {
    if (std::find(sections().begin(), sections().end(), key) != sections().end())
      throw ConfigError(where + ": --set takes one key, like " + key + ".<key>=VALUE");
    unknown_key(where, "", key);
  }
  if (!section.empty() && std::find(sections().begin(), sections().end(), section) == sections().end()) {
    const std::string m = tasks::closest_match(section, sections());
    throw ConfigError(where + ": unknown section '" + section + "'" +
                      (m.empty() ? "" : " (did you mean '" + m + "." + leaf + "'?)"));
  }
  // Values are YAML (numbers, [lists], true); a string key takes the text as is.
  auto parse_value = [&]() {
    try {
      YAML::Node n = YAML::Load(value);
      if (!n || n.IsNull()) throw ConfigError(where + ": missing value after '='");
      return n;
    } catch (const YAML::Exception& e) {
      throw ConfigError(where + ": cannot read the value: " + e.msg);
    }
  };
  if (section == "task" && leaf != "name") {
    c.task_options[leaf] = to_json(parse_value(), where + ": task." + leaf);
    c.task_where[leaf] = where;
    return;
  }
  const Key* k = find_key(key);
  if (!k) unknown_key(where, section, leaf);
  const Ref r = k->ref(c);
  if (std::holds_alternative<std::string*>(r)) {
    *std::get<std::string*>(r) = value;
  } else if (std::holds_alternative<std::vector<std::string>*>(r) && value.rfind('[', 0) != 0) {
    *std::get<std::vector<std::string>*>(r) = {value};  // one name or path, taken as is
  } else {
    assign(*k, c, parse_value(), where);
  }
  c.where[key] = where;
}

void validate(RunConfig& c) {
  // One fraction: the train part, the rest validation.
  if (c.data.split.size() == 1 && c.data.split[0] < 1) c.data.split.push_back(1 - c.data.split[0]);
  for (const auto& k : schema()) {
    const Ref r = k.ref(c);
    if (auto* p = std::get_if<int*>(&r)) check_range(k, c, **p);
    if (auto* p = std::get_if<long*>(&r)) check_range(k, c, double(**p));
    if (auto* p = std::get_if<double*>(&r)) check_range(k, c, **p);
    if (auto* p = std::get_if<std::vector<double>*>(&r))
      for (double v : **p) check_range(k, c, v);
    if (auto* p = std::get_if<std::string*>(&r); p && !k.choices.empty() &&
        std::find(k.choices.begin(), k.choices.end(), **p) == k.choices.end())
      throw ConfigError(c.where_of(k.key) + ": " + k.key + ": '" + **p + "' is not one of " +
                        join(k.choices) + tasks::did_you_mean(**p, k.choices));
  }
  for (const auto& k : schema())
    if (k.extra) k.extra(c, k.key);
  if (!c.data.tokenizer.empty() && c.task_name != "language")
    throw ConfigError(c.where_of("data.tokenizer") + ": data.tokenizer: task '" + c.task_name +
                      "' has its own vocabulary; a tokenizer applies to the language task");
  try {
    ModelConfig m = c.model;
    if (m.vocab_size == 0) m.vocab_size = 256;  // the task decides; any valid value checks the rest
    m.validate();
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError(c.where_of("model") + ": model: " + e.what());
  }
}

std::string dump_config(const RunConfig& cfg) {
  RunConfig& c = const_cast<RunConfig&>(cfg);  // refs are read only here
  YAML::Emitter e;
  e << YAML::Comment("Resolved config of this run, written by mambakit (source: " + cfg.source + ")");
  e << YAML::BeginMap;
  std::string open;
  for (const auto& k : schema()) {
    const std::string s = section_of(k.key);
    if (s != open) {
      if (!open.empty()) e << YAML::EndMap;
      if (!s.empty()) e << YAML::Key << s << YAML::Value << YAML::BeginMap;
      open = s;
    }
    e << YAML::Key << leaf_of(k.key) << YAML::Value;
    emit_value(e, k.ref(c));
    if (k.key == std::string("task.name"))
      for (auto it = cfg.task_options.begin(); it != cfg.task_options.end(); ++it) {
        e << YAML::Key << it.key() << YAML::Value;
        emit_json(e, it.value());
      }
  }
  if (!open.empty()) e << YAML::EndMap;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

std::map<std::string, std::string> config_values(const RunConfig& cfg) {
  RunConfig& c = const_cast<RunConfig&>(cfg);
  std::map<std::string, std::string> out;
  for (const auto& k : schema()) out[k.key] = value_text(k.ref(c));
  for (auto it = cfg.task_options.begin(); it != cfg.task_options.end(); ++it)
    out["task." + it.key()] = it.value().dump();
  return out;
}

std::vector<KeyInfo> config_keys() {
  RunConfig defaults;
  std::vector<KeyInfo> out;
  for (const auto& k : schema()) {
    KeyInfo i;
    i.key = k.key;
    const Ref r = k.ref(defaults);
    i.type = short_type(r);
    i.default_value = k.required ? "" : value_text(r);
    i.doc = k.doc;
    if (!k.choices.empty()) i.doc += " (" + join(k.choices, " | ") + ")";
    i.required = k.required;
    out.push_back(i);
  }
  return out;
}

std::string config_help() {
  std::ostringstream os;
  os << "mambakit experiment config keys (section.key: type [default] - meaning; * = required).\n"
     << "Set them in the YAML file or with --set section.key=value.\n";
  for (const auto& k : config_keys()) {
    os << "  " << (k.required ? "* " : "  ") << k.key << ": " << k.type;
    if (!k.required) os << " [" << k.default_value << "]";
    os << " - " << k.doc << "\n";
  }
  os << "Other keys under task: are the task's own options.\n";
  return os.str();
}

std::string missing_data_problem(const RunConfig& cfg, bool* unreadable) {
  if (unreadable) *unreadable = false;
  namespace fs = std::filesystem;
  for (const auto& path : cfg.data.paths) {
    if (path.empty()) continue;
    std::error_code ec;
    const auto st = fs::status(path, ec);
    if (fs::exists(st)) {
      // /dev/zero, a FIFO or a terminal would be read until memory runs out.
      if (!fs::is_regular_file(st) && !fs::is_directory(st)) {
        if (unreadable) *unreadable = true;
        return cfg.where_of("data.path") + ": data.path '" + path +
               "' is not a regular file or a folder (a device, pipe or socket cannot be a data set)";
      }
      continue;
    }
    const fs::path p(path);
    std::string where = p.is_absolute() ? std::string()
                                        : " (a relative path resolves against the current directory, " +
                                              fs::current_path(ec).string() + ")";
    // The data sets the shipped configs name, and what makes each.
    const std::string n = p.lexically_normal().generic_string();
    auto under = [&](const char* prefix) { return n.find(prefix) != std::string::npos; };
    std::string how;
    if (under("data/english/"))
      how = "`make data` makes it (tools/make-english-corpus.sh)";
    else if (under("data/kjv.txt") || under("data/dna/") || under("data/piano"))
      how = "`make data` makes it (tools/fetch-data.sh)";
    else if (under("data/lra_man"))
      how = "tools/make-manpage-lra.sh makes it";
    else if (under("data/shards/"))
      how = "`mambakit prepare text|fasta|audio INPUT --out DIR` makes token shards (mambakit prepare --help)";
    else if (under("lra_release") || under("aclImdb") || under("cifar-10-batches"))
      how = "it is downloaded, not made: see experiments/README.md (LRA: tasks, configs, `mambakit lra`); "
            "`mambakit lra TASK --small` trains on generated or local data";
    else
      how = "`make data` makes the data sets the shipped configs name; for your own data give an existing "
            "file or folder";
    return cfg.where_of("data.path") + ": data.path '" + path + "' does not exist" + where + "; " + how;
  }
  return "";
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

}  // namespace mk::exp
