// mambakit: the command-line front end.
//   mambakit train CONFIG.yaml [--set KEY=VALUE ...] [--resume] [--until STEP]
//   mambakit train --data FILE --out DIR [model/training flags]   (shorthand)
//   mambakit eval RUN_DIR [--split S] [--metrics a,b] [--checkpoint best]
//   mambakit generate RUN_DIR --prompt TEXT --tokens N [sampling flags]
//   mambakit info RUN_DIR|MODEL_DIR|FILE.safetensors
//   mambakit plot RUN_DIR [RUN_DIR ...] [--out PREFIX]
//   mambakit logits DIR --text TEXT --out FILE.npy
//   mambakit bench scan|train [flags] [--json]
// Exit codes: 0 ok, 1 runtime error (bad file, corrupt checkpoint, ...),
// 2 usage error (unknown command or flag, bad value, config mistake);
// a training run stopped by SIGINT/SIGTERM saves a checkpoint and exits
// 128 + the signal number (130, 143), as shells report a killed command.
#include <omp.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "mambakit/error.h"
#include "mambakit/experiments/bench_train.h"
#include "mambakit/experiments/config.h"
#include "mambakit/experiments/plot.h"
#include "mambakit/experiments/run_dir.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/io/atomic_file.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/io/model_io.h"
#include "mambakit/io/npy.h"
#include "mambakit/io/safetensors.h"
#include "mambakit/models/sampler.h"
#include "mambakit/tasks/task.h"
#ifdef MAMBAKIT_HAVE_BENCH
#include "scan_bench.h"
#endif

namespace po = boost::program_options;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string top_help() {
  std::string tasks;
  for (const auto& t : mk::tasks::task_infos()) tasks += "  " + t.name + ": " + t.doc + "\n";
  return "mambakit: train, evaluate and run Mamba / S4 sequence models.\n\n"
         "Commands:\n"
         "  train      train from an experiment config (YAML), or a byte-level LM from flags\n"
         "  eval       evaluate a run's model on a split\n"
         "  generate   sample from a trained model (recurrent, O(1) memory per token)\n"
         "  info       parameters, tensor shapes and config of a run or checkpoint\n"
         "  plot       overlay the loss curves of runs (PNG + SVG, needs gnuplot)\n"
         "  logits     write a model's logits for a text as a .npy file\n"
         "  bench      benchmarks: `bench scan`, `bench train`\n\n"
         "Run `mambakit COMMAND --help` for a command's options and examples.\n"
         "Tasks:\n" + tasks +
         "Examples:\n"
         "  mambakit train experiments/quickstart.yaml\n"
         "  mambakit train experiments/quickstart.yaml --set train.steps=2000 --set model.d_model=256\n"
         "  mambakit train experiments/quickstart.yaml --resume\n"
         "  mambakit eval runs/quickstart --split val --metrics loss,bpb\n"
         "  mambakit generate runs/quickstart --prompt \"And God said\" --tokens 200\n"
         "  mambakit info runs/quickstart\n"
         "  mambakit plot runs/a runs/b --out compare\n"
         "Exit codes: 0 ok, 1 runtime error, 2 usage error; an interrupted `train` saves a\n"
         "checkpoint and exits 130 (SIGINT) or 143 (SIGTERM).\n";
}

// Parses argv (after the command word) against desc; positional names in pos.
po::variables_map parse(const std::vector<std::string>& args, const po::options_description& desc,
                        const po::positional_options_description& pos) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    if (vm.count("help") || vm.count("help-config") || vm.count("help-flags")) return vm;
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return vm;
}

void set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Runs a trainer to the end and reports; the exit code.
int finish_training(mk::exp::Trainer& t, long until) {
  const json s = t.run(until);
  const json& fin = s["final"];
  if (!fin.empty()) {
    std::string line = "final (step " + std::to_string(s["final_step"].get<long>()) + "):";
    char buf[96];
    for (auto it = fin.begin(); it != fin.end(); ++it) {
      std::snprintf(buf, sizeof buf, "  %s %.4f", it.key().c_str(), it->get<double>());
      line += buf;
    }
    std::printf("%s\n", line.c_str());
    if (fin.contains("val_bpb")) std::printf("validation bits per byte: %.4f\n", fin["val_bpb"].get<double>());
  }
  std::fflush(stdout);
  return t.interrupted_by() ? 128 + t.interrupted_by() : 0;
}

int cmd_train_config(const std::vector<std::string>& args) {
  std::string config;
  std::vector<std::string> sets;
  bool resume = false;
  long until = 0;
  int threads = 0;
  po::options_description d(
      "mambakit train CONFIG.yaml [--set KEY=VALUE ...] [--resume] [--until STEP]\n"
      "Trains the experiment a YAML config describes into its output.dir: config.yaml,\n"
      "model.safetensors + config.json, checkpoints/, best/, metrics.jsonl, summary.json,\n"
      "loss.png/svg. Ctrl-C (or SIGTERM) saves a checkpoint and exits 130 (143).\n\n"
      "Examples:\n"
      "  mambakit train experiments/quickstart.yaml\n"
      "  mambakit train experiments/quickstart.yaml --set train.lr=1e-3 --set output.dir=runs/lr1e-3\n"
      "  mambakit train experiments/quickstart.yaml --set 'model.mixer=[mamba, mamba, attention]'\n"
      "  mambakit train experiments/quickstart.yaml --resume --set train.steps=1200\n"
      "  mambakit train --data data/kjv.txt --out runs/demo --steps 600   (flag form, see --help-flags)\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("help-config", "list every config key with its type, default and meaning")
      ("help-flags", "show the flag form's options")
      ("config", po::value(&config)->required(), "experiment config (YAML)")
      ("set", po::value(&sets)->composing(), "override a config key: --set train.lr=1e-3 (repeatable)")
      ("resume", po::bool_switch(&resume), "continue the run in output.dir from its newest checkpoint")
      ("until", po::value(&until)->default_value(0),
       "stop (with a checkpoint) after this step; the schedule still runs to train.steps")
      ("threads", po::value(&threads)->default_value(0), "CPU threads (0: train.threads or OMP_NUM_THREADS)");
  po::positional_options_description pos;
  pos.add("config", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help-config")) { std::cout << mk::exp::config_help(); return 0; }
  if (vm.count("help")) { std::cout << d; return 0; }
  if (until < 0) throw UsageError("--until must be >= 0");
  mk::exp::RunConfig cfg = mk::exp::load_config(config, sets);
  if (threads > 0) cfg.train.threads = threads;
  std::unique_ptr<mk::exp::Trainer> t;
  if (resume) {
    t = mk::exp::Trainer::resume(cfg);
  } else {
    t = std::make_unique<mk::exp::Trainer>(cfg);  // first: a bad task or data file leaves no directory
    mk::exp::prepare_run_dir(cfg);
  }
  return finish_training(*t, until);
}

int cmd_train_flags(const std::vector<std::string>& args) {
  mk::exp::TrainOptions o;
  bool resume = false;
  int threads = 0;
  po::options_description d("mambakit train --data FILE --out DIR [options]\n"
                            "Shorthand for the built-in byte-level language-model config: 90/10\n"
                            "train/validation split, validation bits per byte at the end, run in DIR\n"
                            "(replaced if it exists). The config form is `mambakit train CONFIG.yaml`.\n"
                            "Options");
  d.add_options()("help,h", "show this help")
      ("help-flags", "show this help")
      ("data", po::value(&o.data), "text file to train on (required unless --resume)")
      ("out", po::value(&o.out)->required(), "run directory")
      ("resume", po::bool_switch(&resume), "continue the run saved in --out")
      ("d-model", po::value(&o.model.d_model)->default_value(128), "model width")
      ("n-layer", po::value(&o.model.n_layer)->default_value(6), "number of Mamba blocks")
      ("d-state", po::value(&o.model.d_state)->default_value(16), "SSM state size N")
      ("expand", po::value(&o.model.expand)->default_value(2), "d_inner = expand * d_model")
      ("seq-len", po::value(&o.seq_len)->default_value(256), "training window length (bytes)")
      ("batch", po::value(&o.batch)->default_value(16), "sequences per step")
      ("steps", po::value(&o.steps)->default_value(600), "optimizer steps")
      ("lr", po::value(&o.lr)->default_value(3e-3), "peak learning rate")
      ("min-lr", po::value(&o.min_lr)->default_value(3e-4), "final learning rate (cosine)")
      ("warmup", po::value(&o.warmup)->default_value(30), "linear warmup steps")
      ("weight-decay", po::value(&o.weight_decay)->default_value(0.1), "AdamW decoupled weight decay")
      ("clip", po::value(&o.clip)->default_value(1.0), "gradient clipping (global norm)")
      ("seed", po::value(&o.seed)->default_value(1), "random seed (init and batches)")
      ("save-every", po::value(&o.save_every)->default_value(0), "checkpoint every N steps (0: end only)")
      ("eval-windows", po::value(&o.eval_windows)->default_value(256), "validation windows scored (0: all)")
      ("threads", po::value(&threads)->default_value(0), "CPU threads (0: OMP_NUM_THREADS)");
  auto vm = parse(args, d, {});
  if (vm.count("help") || vm.count("help-flags")) { std::cout << d; return 0; }
  set_threads(threads);
  std::unique_ptr<mk::exp::Trainer> t;
  if (resume) {
    t = mk::exp::Trainer::resume(o.out, vm["steps"].defaulted() ? 0 : o.steps);
  } else {
    if (o.data.empty()) throw UsageError("the option '--data' is required (or use --resume)");
    mk::exp::RunConfig cfg = mk::exp::language_config(o);
    t = std::make_unique<mk::exp::Trainer>(cfg);
    mk::exp::prepare_run_dir(cfg);
  }
  return finish_training(*t, 0);
}

int cmd_train(const std::vector<std::string>& args) {
  // A first argument that is not a flag is a config file.
  if (!args.empty() && !args[0].empty() && args[0][0] != '-') return cmd_train_config(args);
  for (const auto& a : args)
    if (a == "--help" || a == "-h" || a == "--help-config") return cmd_train_config(args);
  return cmd_train_flags(args);
}

int cmd_eval(const std::vector<std::string>& args) {
  std::string dir, split, metrics, checkpoint;
  long max_sequences = -1;
  int batch = 0, threads = 0;
  po::options_description d(
      "mambakit eval RUN_DIR [--split val|test|train] [--metrics loss,bpb,ppl] [--checkpoint best]\n"
      "Evaluates a run's model with its config.yaml's task and data. Prints one line per\n"
      "metric on stderr and one JSON object on stdout.\n\n"
      "Examples:\n"
      "  mambakit eval runs/quickstart\n"
      "  mambakit eval runs/quickstart --split test --metrics loss,bpb,ppl --max-sequences 0\n"
      "  mambakit eval runs/quickstart --checkpoint best\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("run", po::value(&dir)->required(), "run directory")
      ("split", po::value(&split)->default_value(""), "split to score (default: the config's eval.split)")
      ("metrics", po::value(&metrics)->default_value(""), "comma-separated metrics (default: the config's)")
      ("checkpoint", po::value(&checkpoint)->default_value("latest"), "latest, best, step_N or a model directory")
      ("max-sequences", po::value(&max_sequences)->default_value(-1),
       "sequences to score (0: the whole split; default: the config's eval.max_sequences)")
      ("batch-size", po::value(&batch)->default_value(0), "evaluation batch (0: the config's)")
      ("threads", po::value(&threads)->default_value(0), "CPU threads (0: OMP_NUM_THREADS)");
  po::positional_options_description pos;
  pos.add("run", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  set_threads(threads);
  const json r = mk::exp::evaluate_run(dir, split, split_list(metrics), checkpoint, max_sequences, batch);
  std::string line = "eval " + dir + " (" + r["checkpoint"].get<std::string>() +
                     (r.contains("step") ? ", step " + r["step"].dump() : "") + "):";
  char buf[96];
  for (auto it = r.begin(); it != r.end(); ++it)
    if (it->is_number_float()) {
      std::snprintf(buf, sizeof buf, "  %s %.4f", it.key().c_str(), it->get<double>());
      line += buf;
    }
  std::fprintf(stderr, "%s\n", line.c_str());
  std::cout << r.dump() << "\n";
  return 0;
}

int cmd_generate(const std::vector<std::string>& args) {
  std::string dir, prompt, checkpoint, out;
  int tokens = 0, threads = 0;
  uint64_t seed = 0;
  mk::SamplingOptions so;
  po::options_description d(
      "mambakit generate RUN_DIR [--prompt TEXT] [--tokens N] [sampling options]\n"
      "Recurrent generation from a trained model (bytes in, bytes out). Defaults come from\n"
      "the run's `generate:` config section where it has one.\n\n"
      "Examples:\n"
      "  mambakit generate runs/quickstart --prompt \"And God said\" --tokens 300 --temperature 0.8\n"
      "  mambakit generate runs/quickstart --checkpoint best --top-k 40 --top-p 0.95 --seed 3\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("dir", po::value(&dir)->required(), "run or model directory")
      ("prompt", po::value(&prompt)->default_value(""), "prompt text (bytes)")
      ("tokens", po::value(&tokens)->default_value(200), "bytes to generate")
      ("temperature", po::value(&so.temperature)->default_value(1.0), "sampling temperature (0: greedy)")
      ("top-k", po::value(&so.top_k)->default_value(0), "keep the k most likely tokens (0: all)")
      ("top-p", po::value(&so.top_p)->default_value(1.0), "nucleus sampling mass")
      ("seed", po::value(&seed)->default_value(0), "random seed")
      ("checkpoint", po::value(&checkpoint)->default_value("latest"), "latest, best, step_N or a directory")
      ("out", po::value(&out)->default_value(""), "also write the text to this file")
      ("threads", po::value(&threads)->default_value(0), "CPU threads (0: OMP_NUM_THREADS)");
  po::positional_options_description pos;
  pos.add("dir", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  // Defaults from the run's config, where the command line leaves them.
  if (fs::exists(fs::path(dir) / "config.yaml")) {
    const auto cfg = mk::exp::load_config(dir + "/config.yaml");
    const auto& g = cfg.generate;
    if (vm["prompt"].defaulted()) prompt = g.prompt;
    if (vm["tokens"].defaulted() && g.tokens > 0) tokens = g.tokens;
    if (vm["temperature"].defaulted()) so.temperature = g.temperature;
    if (vm["top-k"].defaulted()) so.top_k = g.top_k;
    if (vm["top-p"].defaulted()) so.top_p = g.top_p;
    if (vm["seed"].defaulted()) seed = uint64_t(g.seed);
  }
  if (tokens < 0) throw UsageError("--tokens must be non-negative");
  if (so.top_p <= 0 || so.top_p > 1) throw UsageError("--top-p must be in (0, 1]");
  set_threads(threads);
  auto model = mk::load_model(mk::exp::checkpoint_dir(dir, checkpoint));
  std::vector<int32_t> ids;
  for (unsigned char c : prompt) ids.push_back(c);
  const auto outs = mk::exp::generate_tokens(*model, ids, tokens, so, seed);
  std::string text = prompt;
  for (int32_t t : outs) text.push_back(char(t & 0xff));
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  if (!out.empty()) mk::atomic_write_text(out, text + "\n");
  return 0;
}

int cmd_info(const std::vector<std::string>& args) {
  std::string path;
  bool as_json = false;
  po::options_description d(
      "mambakit info RUN_DIR|MODEL_DIR|FILE.safetensors [--json]\n"
      "Parameters, tensor shapes and the model config of a checkpoint; for a run\n"
      "directory also its step, checkpoints and resolved config.\n\n"
      "Examples:\n"
      "  mambakit info runs/quickstart\n"
      "  mambakit info runs/quickstart/checkpoints/step_600 --json\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("path", po::value(&path)->required(), "run directory, model directory or .safetensors file")
      ("json", po::bool_switch(&as_json), "print one JSON object");
  po::positional_options_description pos;
  pos.add("path", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  json info{{"path", path}};
  std::string weights = path;
  if (fs::is_directory(path)) {
    weights = path + "/model.safetensors";
    if (!fs::exists(path + "/config.json") && !fs::exists(weights))
      throw mk::Error(path + ": neither a run nor a model directory (no config.json, no model.safetensors)");
    const mk::ModelConfig c = mk::read_model_config(path + "/config.json");
    info["model"] = {{"d_model", c.d_model},   {"n_layer", c.n_layer}, {"d_state", c.d_state},
                     {"expand", c.expand},     {"d_conv", c.d_conv},   {"dt_rank", c.dt_rank_resolved()},
                     {"vocab_size", c.vocab_size}, {"mixers", c.mixers.empty() ? std::vector<std::string>{"mamba"} : c.mixers}};
    if (fs::exists(path + "/trainer_state.json")) {
      const json st = json::parse(mk::read_text_file(path + "/trainer_state.json"));
      info["step"] = st.value("step", 0L);
      info["total_steps"] = st.value("total_steps", 0L);
    }
    std::vector<std::string> ckpts;
    for (const auto& [s, p] : mk::exp::list_checkpoints(path)) ckpts.push_back("step_" + std::to_string(s));
    if (!ckpts.empty()) info["checkpoints"] = ckpts;
    if (fs::exists(path + "/best/best.json")) info["best"] = json::parse(mk::read_text_file(path + "/best/best.json"));
    if (fs::exists(path + "/config.yaml")) info["config_yaml"] = mk::read_text_file(path + "/config.yaml");
  }
  const mk::SafetensorsData st = mk::read_safetensors(weights);
  long total = 0;
  json tensors = json::array();
  for (const auto& [name, t] : st.tensors) {
    tensors.push_back({{"name", name}, {"shape", t.shape()}, {"numel", t.numel()}});
    total += long(t.numel());
  }
  info["parameters"] = total;
  info["tensors"] = tensors;
  if (as_json) {
    std::cout << info.dump() << "\n";
    return 0;
  }
  std::cout << path << "\n";
  if (info.contains("model")) {
    const auto& m = info["model"];
    std::cout << "  model: d_model " << m["d_model"] << ", n_layer " << m["n_layer"] << ", d_state "
              << m["d_state"] << ", expand " << m["expand"] << ", d_conv " << m["d_conv"] << ", dt_rank "
              << m["dt_rank"] << ", vocab " << m["vocab_size"] << ", mixers "
              << m["mixers"].dump() << "\n";
  }
  if (info.contains("step")) std::cout << "  step: " << info["step"] << " of " << info["total_steps"] << "\n";
  if (info.contains("checkpoints")) std::cout << "  checkpoints: " << info["checkpoints"].dump() << "\n";
  if (info.contains("best"))
    std::cout << "  best: step " << info["best"]["step"] << ", " << info["best"]["metric"].get<std::string>()
              << " " << info["best"]["value"] << "\n";
  std::cout << "  parameters: " << total << " (" << (total * 4.0 / 1e6) << " MB as fp32)\n";
  std::cout << "  tensors:\n";
  for (const auto& t : tensors) {
    std::string shape;
    for (const auto& s : t["shape"]) shape += (shape.empty() ? "" : ", ") + s.dump();
    std::printf("    %-52s (%s)  %ld\n", t["name"].get<std::string>().c_str(), shape.c_str(),
                t["numel"].get<long>());
  }
  if (info.contains("config_yaml")) std::cout << "  config.yaml:\n" << info["config_yaml"].get<std::string>();
  return 0;
}

int cmd_plot(const std::vector<std::string>& args) {
  std::vector<std::string> runs;
  std::string out;
  po::options_description d(
      "mambakit plot RUN_DIR [RUN_DIR ...] [--out PREFIX]\n"
      "Overlays train and eval loss against step from each run's metrics.jsonl into\n"
      "PREFIX.png and PREFIX.svg (needs gnuplot). One run: redraws RUN_DIR/loss.png/svg.\n\n"
      "Examples:\n"
      "  mambakit plot runs/quickstart\n"
      "  mambakit plot runs/mamba runs/s4d runs/attention --out compare\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("runs", po::value(&runs)->required()->multitoken(), "run directories")
      ("out", po::value(&out)->default_value(""), "output prefix (default: RUN_DIR/loss for one run, else 'compare')");
  po::positional_options_description pos;
  pos.add("runs", -1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  for (const auto& r : runs)
    if (!fs::exists(fs::path(r) / "metrics.jsonl")) throw mk::Error(r + ": no metrics.jsonl (not a run directory?)");
  std::string why;
  bool ok;
  if (runs.size() == 1 && out.empty()) {
    out = runs[0] + "/loss";
    ok = mk::exp::plot_run(runs[0], &why);
  } else {
    if (out.empty()) out = "compare";
    ok = mk::exp::plot_runs(runs, out, &why);
  }
  if (!ok) throw mk::Error("plot: " + why);
  std::printf("wrote %s.png and %s.svg\n", out.c_str(), out.c_str());
  return 0;
}

int cmd_logits(const std::vector<std::string>& args) {
  std::string dir, text, out;
  po::options_description d("mambakit logits DIR --text TEXT --out FILE.npy\n"
                            "Writes float32 logits, shape (len(text bytes), vocab).\n\n"
                            "Example:\n"
                            "  mambakit logits runs/quickstart --text \"In the beginning\" --out l.npy\n\n"
                            "Options");
  d.add_options()("help,h", "show this help")
      ("dir", po::value(&dir)->required(), "model directory")
      ("text", po::value(&text)->required(), "input text")
      ("out", po::value(&out)->required(), "output .npy file");
  po::positional_options_description pos;
  pos.add("dir", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  if (text.empty()) throw UsageError("--text must not be empty");
  auto model = mk::load_model(dir);
  std::vector<int32_t> ids(text.begin(), text.end());
  for (auto& i : ids) i &= 0xff;
  model->forward(ids.data(), 1, int(ids.size()));
  const int V = model->config().vocab_size;
  mk::Tensor t = mk::Tensor::borrow(const_cast<float*>(model->logits().data()),
                                    {long(ids.size()), V}, mk::DType::f32);
  mk::write_npy(out, t);
  return 0;
}

int cmd_bench(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "mambakit bench scan [--batch --d-inner --d-state --len --threads --repeats] [--json]\n"
                 "mambakit bench train [--threads --steps]\n";
    return args.empty() ? 2 : 0;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "scan") {
#ifdef MAMBAKIT_HAVE_BENCH
    mk::bench::ScanBenchConfig c;
    bool as_json = false;
    po::options_description d("mambakit bench scan [options]\n"
                              "Selective scan: fused chunked vs naive materialising.\nOptions");
    d.add_options()("help,h", "show this help")
        ("batch", po::value(&c.batch)->default_value(c.batch), "batch")
        ("d-inner", po::value(&c.d_inner)->default_value(c.d_inner), "channels")
        ("d-state", po::value(&c.d_state)->default_value(c.d_state), "state size")
        ("len", po::value(&c.len)->default_value(c.len), "sequence length")
        ("threads", po::value(&c.threads)->default_value(c.threads), "threads (0: OMP default)")
        ("repeats", po::value(&c.repeats)->default_value(c.repeats), "timed repetitions (best is kept)")
        ("json", po::bool_switch(&as_json), "print one JSON object");
    auto vm = parse(rest, d, {});
    if (vm.count("help")) { std::cout << d; return 0; }
    auto r = mk::bench::run_scan_bench(c);
    if (as_json) std::cout << r.to_json() << "\n";
    else std::cout << r.to_text();
    return 0;
#else
    throw mk::Error("bench: built without benchmarks (MAMBAKIT_BUILD_BENCH=OFF)");
#endif
  }
  if (args[0] == "train") {
    mk::exp::TrainBenchConfig c;
    po::options_description d("mambakit bench train [options]\n"
                              "Tokens per second of training steps of the demo model.\nOptions");
    d.add_options()("help,h", "show this help")
        ("threads", po::value(&c.threads)->default_value(0), "threads (0: OMP default)")
        ("steps", po::value(&c.steps)->default_value(c.steps), "timed steps");
    auto vm = parse(rest, d, {});
    if (vm.count("help")) { std::cout << d; return 0; }
    set_threads(c.threads);
    std::cout << mk::exp::run_train_bench(c) << "\n";
    return 0;
  }
  throw UsageError("unknown benchmark '" + args[0] + "' (expected scan or train)");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << top_help();
    return args.empty() ? 2 : 0;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  try {
    if (cmd == "train") return cmd_train(args);
    if (cmd == "eval") return cmd_eval(args);
    if (cmd == "generate") return cmd_generate(args);
    if (cmd == "info") return cmd_info(args);
    if (cmd == "plot") return cmd_plot(args);
    if (cmd == "logits") return cmd_logits(args);
    if (cmd == "bench") return cmd_bench(args);
    const std::vector<std::string> cmds = {"train", "eval", "generate", "info", "plot", "logits", "bench"};
    throw UsageError("unknown command '" + cmd + "'" + mk::tasks::did_you_mean(cmd, cmds) +
                     " (see mambakit --help)");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "mambakit %s: usage error: %s\n", cmd.c_str(), e.what());
    return 2;
  } catch (const mk::tasks::ConfigError& e) {
    std::fprintf(stderr, "mambakit %s: config error: %s\n", cmd.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mambakit %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
