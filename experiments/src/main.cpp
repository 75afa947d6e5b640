// mambakit: the command-line front end.
//   mambakit train --data FILE --out DIR [model/training flags]
//   mambakit generate DIR --prompt TEXT --tokens N [sampling flags]
//   mambakit logits DIR --text TEXT --out FILE.npy
//   mambakit bench scan|train [flags] [--json]
// Exit codes: 0 ok, 1 runtime error (bad file, corrupt checkpoint, ...),
// 2 usage error (unknown command or flag, bad value).
#include <omp.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "mambakit/error.h"
#include "mambakit/experiments/bench_train.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/io/npy.h"
#include "mambakit/models/sampler.h"
#ifdef MAMBAKIT_HAVE_BENCH
#include "scan_bench.h"
#endif

namespace po = boost::program_options;

namespace {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char* kTopHelp =
    "mambakit: train, run and evaluate Mamba (selective state-space) models.\n\n"
    "Commands:\n"
    "  train      train a byte-level language model on a text file\n"
    "  generate   sample text from a trained model (recurrent, O(1) memory per token)\n"
    "  logits     write a model's logits for a text as a .npy file\n"
    "  bench      benchmarks: `bench scan`, `bench train`\n\n"
    "Run `mambakit COMMAND --help` for a command's options.\n"
    "Examples:\n"
    "  mambakit train --data data/kjv.txt --out runs/demo --steps 600\n"
    "  mambakit generate runs/demo --prompt \"And God said\" --tokens 200\n";

// Parses argv (after the command word) against desc; positional names in pos.
po::variables_map parse(const std::vector<std::string>& args, const po::options_description& desc,
                        const po::positional_options_description& pos) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    if (vm.count("help")) return vm;
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return vm;
}

void set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

int cmd_train(const std::vector<std::string>& args) {
  mk::exp::TrainOptions o;
  bool resume = false;
  int threads = 0;
  po::options_description d("mambakit train --data FILE --out DIR [options]\n"
                            "Byte-level LM training: 90/10 train/validation split, progress line,\n"
                            "validation bits per byte at the end, checkpoint in DIR.\n"
                            "Options");
  d.add_options()("help,h", "show this help")
      ("data", po::value(&o.data), "text file to train on (required unless --resume)")
      ("out", po::value(&o.out)->required(), "run directory for the checkpoint")
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
  if (vm.count("help")) { std::cout << d; return 0; }
  set_threads(threads);
  std::unique_ptr<mk::exp::Trainer> t;
  if (resume) {
    t = mk::exp::Trainer::resume(o.out, vm["steps"].defaulted() ? 0 : o.steps);
  } else {
    if (o.data.empty()) throw UsageError("the option '--data' is required (or use --resume)");
    t = std::make_unique<mk::exp::Trainer>(o);
  }
  t->run();
  const double bpb = t->validation_bpb();
  std::printf("validation bits per byte: %.4f\n", bpb);
  return 0;
}

int cmd_generate(const std::vector<std::string>& args) {
  std::string dir, prompt;
  int tokens = 0, threads = 0;
  uint64_t seed = 0;
  mk::SamplingOptions so;
  po::options_description d("mambakit generate DIR --prompt TEXT --tokens N [options]\n"
                            "Recurrent generation from a trained model.\nOptions");
  d.add_options()("help,h", "show this help")
      ("dir", po::value(&dir)->required(), "model directory")
      ("prompt", po::value(&prompt)->default_value(""), "prompt text (bytes)")
      ("tokens", po::value(&tokens)->default_value(200), "bytes to generate")
      ("temperature", po::value(&so.temperature)->default_value(1.0), "sampling temperature (0: greedy)")
      ("top-k", po::value(&so.top_k)->default_value(0), "keep the k most likely tokens (0: all)")
      ("top-p", po::value(&so.top_p)->default_value(1.0), "nucleus sampling mass")
      ("seed", po::value(&seed)->default_value(0), "random seed")
      ("threads", po::value(&threads)->default_value(0), "CPU threads (0: OMP_NUM_THREADS)");
  po::positional_options_description pos;
  pos.add("dir", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  if (tokens < 0) throw UsageError("--tokens must be non-negative");
  if (so.top_p <= 0 || so.top_p > 1) throw UsageError("--top-p must be in (0, 1]");
  set_threads(threads);
  auto model = mk::load_model(dir);
  const int V = model->config().vocab_size;
  auto st = model->make_state(1);
  std::vector<float> logits(V);
  std::mt19937_64 rng(seed);
  int32_t tok = 0;  // a generation with no prompt starts from byte 0
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  if (prompt.empty()) model->step(&tok, st, logits.data());
  for (unsigned char c : prompt) {
    tok = c;
    model->step(&tok, st, logits.data());
  }
  for (int i = 0; i < tokens; ++i) {
    tok = mk::sample_token(logits.data(), V, so, rng);
    std::fputc(char(tok), stdout);
    model->step(&tok, st, logits.data());
  }
  std::fputc('\n', stdout);
  return 0;
}

int cmd_logits(const std::vector<std::string>& args) {
  std::string dir, text, out;
  po::options_description d("mambakit logits DIR --text TEXT --out FILE.npy\n"
                            "Writes float32 logits, shape (len(text bytes), vocab).\nOptions");
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
    std::cout << kTopHelp;
    return args.empty() ? 2 : 0;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  try {
    if (cmd == "train") return cmd_train(args);
    if (cmd == "generate") return cmd_generate(args);
    if (cmd == "logits") return cmd_logits(args);
    if (cmd == "bench") return cmd_bench(args);
    throw UsageError("unknown command '" + cmd + "' (see mambakit --help)");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "mambakit %s: usage error: %s\n", cmd.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mambakit %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
