// mambakit: the command-line front end.
//   mambakit train CONFIG.yaml [--set KEY=VALUE ...] [--resume] [--until STEP]
//   mambakit train --data FILE --out DIR [model/training flags]   (shorthand)
//   mambakit eval RUN_DIR [--split S] [--metrics a,b] [--checkpoint best] [--stride S --bootstrap N] [--generate N] [--mc FILE]
//   mambakit lra TASK [--data DIR] [--small] | lra report RUN_DIR...
//   mambakit generate DIR --prompt TEXT | --prompt-ids 1,2,3 [--print-ids] --tokens N [sampling flags]
//   mambakit info RUN_DIR|MODEL_DIR|FILE.safetensors
//   mambakit plot RUN_DIR [RUN_DIR ...] [--out PREFIX]
//   mambakit logits DIR --text TEXT | --ids 1,2,3 | --ids-file IDS.npy --out FILE.npy
//   mambakit prepare text|fasta|audio INPUT... --out DIR
//   mambakit generate DNA_RUN --out x.fa | AUDIO_RUN --seconds S --out x.wav
//   mambakit bench data [CONFIG ...]
//   mambakit bench scan|train|mixers [flags] [--json]
//   mambakit tokenize DIR_OR_FILE --text T | --file F [--json]
//   mambakit tokenizer train --model bpe|sentencepiece --vocab N --out DIR FILES...
//   mambakit sweep SPEC.yaml [--set KEY=VALUE ...] [--dry-run [--time S]] [--only NAME]
//   mambakit --version
//   mpirun -np N mambakit train ...   (data-parallel; srun under Slurm)
// Exit codes: 0 ok, 1 runtime error (bad file, corrupt checkpoint, ...),
// 2 usage error (unknown command or flag, bad value, config mistake);
// a training run stopped by SIGINT/SIGTERM saves a checkpoint and exits
// 128 + the signal number (130, 143), as shells report a killed command.
#include <omp.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <new>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mambakit/blas_core.h"
#include "mambakit/cpu_isa.h"
#include "mambakit/dist/communicator.h"
#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/experiments/bench_mixers.h"
#include "mambakit/experiments/bench_train.h"
#include "mambakit/experiments/cli_options.h"
#include "mambakit/experiments/cmd_tokenizer.h"
#include "mambakit/experiments/config.h"
#include "mambakit/experiments/evaluate.h"
#include "mambakit/experiments/lra.h"
#include "mambakit/experiments/dna_audio.h"
#include "mambakit/datasets/audio.h"
#include "mambakit/datasets/shards.h"
#include "mambakit/tasks/audio_task.h"
#include "mambakit/tasks/confusion.h"
#include "mambakit/experiments/plot.h"
#include "mambakit/experiments/pretrained.h"
#include "mambakit/experiments/run_dir.h"
#include "mambakit/experiments/sweep.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/io/atomic_file.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/io/model_io.h"
#include "mambakit/io/npy.h"
#include "mambakit/io/safetensors.h"
#include "mambakit/models/sampler.h"
#include "mambakit/tasks/task.h"
#include "mambakit/threads.h"
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

// A JSON file of a run or model directory; errors name the file and carry
// no library tag.
json read_json_file(const std::string& path) {
  const std::string text = mk::read_text_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw mk::Error(path + ": not valid JSON: " + mk::library_what(e));
  }
}

// Where float matrix products run (mambakit/cpu_isa.h), for info --system
// and --version.
std::string float_products_description() {
  if (mk::amx_products_active())
    return "AMX tiles, three-way bfloat16 split (float accuracy; MAMBAKIT_AMX=0 for BLAS)";
  if (!mk::cpu_has_amx()) return "BLAS (this CPU or kernel has no AMX)";
  if (mk::active_isa() != mk::Isa::avx512)
    return "BLAS (AMX needs the avx512 ISA, not " + std::string(mk::isa_name(mk::active_isa())) + ")";
  return "BLAS (MAMBAKIT_AMX=0)";  // the one other way the tiles are off
}

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
         "  logits     write a model's logits for a text or token ids as a .npy file\n"
         "  prepare    turn text, FASTA or audio into memory-mapped token shards\n"
         "  lra        Long Range Arena: train a task from its config; `lra report` prints the table\n"
         "  bench      benchmarks: `bench scan`, `bench train`, `bench mixers`, `bench data`\n"
         "  tokenize   token ids of a text with a tokenizer (tokenizer.json, *.model or bytes)\n"
         "  tokenizer  `tokenizer train`: a new BPE or SentencePiece vocabulary from text files\n"
         "  sweep      train a grid of configs (resumable); table and metric-vs-FLOPs plot\n\n"
         "Data-parallel training: `mpirun -np N mambakit train CONFIG` (or srun) trains one model\n"
         "over N processes (train.distributed, experiments/README.md). `mambakit --version` lists\n"
         "the backends this build holds.\n\n"
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

// Every command's --threads, checked before any work: a count below 1 or
// above what the machine can use (100000 crashed libgomp) is a usage error.
// Left out, the default applies (train.threads, OMP_NUM_THREADS).
void check_threads_flag(const po::variables_map& vm) {
  if (!vm.count("threads") || vm["threads"].defaulted()) return;
  const std::string why = mk::cpu_threads_problem(vm["threads"].as<int>(), "--threads");
  if (!why.empty()) throw UsageError(why);
}

// Range checks of numeric flags the user gave (a flag left at its default
// is the command's own choice): one line naming the flag, before any work.
// The upper bounds keep a typo such as --bootstrap 2000000000 from
// allocating or looping without end.
bool given(const po::variables_map& vm, const char* flag) { return vm.count(flag) && !vm[flag].defaulted(); }

template <typename T>
void check_flag_range(const po::variables_map& vm, const char* flag, double lo, double hi, const char* what) {
  if (!given(vm, flag)) return;
  const double v = double(vm[flag].as<T>());
  if (!(v >= lo && v <= hi)) {
    std::ostringstream s;
    s << "--" << flag << " " << vm[flag].as<T>() << ": " << what;
    throw UsageError(s.str());
  }
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
    throw UsageError(mk::exp::option_error_text(e, desc, &pos));
  }
  check_threads_flag(vm);
  return vm;
}

// An output a command is about to write must not replace a run's or a
// model's files (weights, optimizer state, configs, checkpoint directories),
// checked by real path before any work.
void check_output(const std::string& out, const std::string& flag = "--out") {
  const std::string why = mk::exp::protected_output_problem(out, flag);
  if (!why.empty()) throw UsageError(why);
}

// prepare --out DIR replaces DIR/manifest.json and DIR/<split>.mkshard: only
// those an earlier prepare wrote, never a user's files of those names; with
// --tokenizer it copies the tokenizer into DIR, never over a run's or model's.
void check_prepare_out(const std::string& out, bool tokenizer) {
  check_output(out + "/manifest.json");
  if (tokenizer)
    for (const char* f : {"/tokenizer.json", "/tokenizer_config.json", "/tokenizer.model"}) check_output(out + f);
  const fs::path manifest = fs::path(out) / "manifest.json";
  if (fs::exists(manifest)) {
    json m;
    try {
      m = json::parse(mk::read_text_file(manifest.string()));
    } catch (const std::exception&) {
    }
    if (!m.is_object() || m.value("format", "") != "mambakit-token-shards")
      throw UsageError(manifest.string() + ": --out: not a mambakit shard manifest; refusing to replace it "
                       "(choose another folder)");
    return;
  }
  for (const char* split : {"train", "val", "test"}) {
    const fs::path shard = fs::path(out) / (std::string(split) + ".mkshard");
    if (fs::exists(shard))
      throw UsageError(shard.string() + ": --out: a file of this name but no mambakit manifest beside it; "
                       "refusing to replace it (choose another folder)");
  }
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Joins the data-parallel job when an MPI launcher started this process and
// train.distributed is auto (before the model exists: NCCL picks the GPU).
void join_job(const mk::exp::RunConfig& cfg) {
  const bool on = cfg.train.distributed == "auto" && mk::dist::detect_launch().by_launcher;
  mk::dist::init_world(on, mk::parse_device(cfg.train.device));
}

// Runs a trainer to the end and reports; the exit code.
int finish_training(mk::exp::Trainer& t, long until) {
  const json s = t.run(until);
  const json& fin = s["final"];
  if (t.rank() != 0) return t.interrupted_by() ? 128 + t.interrupted_by() : 0;  // rank 0 reports
  if (!fin.empty()) {
    std::string line = "final (step " + std::to_string(s["final_step"].get<long>()) + "):";
    char buf[96];
    for (auto it = fin.begin(); it != fin.end(); ++it) {
      std::snprintf(buf, sizeof buf, "  %s %.4f", it.key().c_str(), it->get<double>());
      line += buf;
    }
    std::printf("%s\n", line.c_str());
    if (fin.contains("val_bpb") && s.value("task", "") == "language")  // dna_pretrain: bpb is per base
      std::printf("validation bits per byte: %.4f\n", fin["val_bpb"].get<double>());
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
      ("threads", po::value(&threads)->default_value(0), "CPU threads (default: train.threads, else OMP_NUM_THREADS)");
  po::positional_options_description pos;
  pos.add("config", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help-config")) { std::cout << mk::exp::config_help(); return 0; }
  if (vm.count("help")) { std::cout << d; return 0; }
  if (until < 0) throw UsageError("--until must be >= 0");
  mk::exp::RunConfig cfg = mk::exp::load_config(config, sets);
  if (threads > 0) cfg.train.threads = threads;
  join_job(cfg);
  std::unique_ptr<mk::exp::Trainer> t;
  if (resume) {
    t = mk::exp::Trainer::resume(cfg);
  } else {
    t = std::make_unique<mk::exp::Trainer>(cfg);  // first: a bad task or data file leaves no directory
    t->claim_run_dir();
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
      ("threads", po::value(&threads)->default_value(0), "CPU threads (default: OMP_NUM_THREADS)");
  auto vm = parse(args, d, {});
  if (vm.count("help") || vm.count("help-flags")) { std::cout << d; return 0; }
  mk::set_cpu_threads(threads);
  std::unique_ptr<mk::exp::Trainer> t;
  if (resume) {
    join_job(mk::exp::load_config(o.out + "/config.yaml"));
    t = mk::exp::Trainer::resume(o.out, vm["steps"].defaulted() ? 0 : o.steps);
  } else {
    if (o.data.empty()) throw UsageError("the option '--data' is required (or use --resume)");
    mk::exp::RunConfig cfg = mk::exp::language_config(o);
    join_job(cfg);
    t = std::make_unique<mk::exp::Trainer>(cfg);
    t->claim_run_dir();
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

// --- issue 5: prepare, DNA/audio generation, bench data -------------------------

std::vector<double> parse_fractions(const std::string& s, const char* flag) {
  std::vector<double> v;
  for (const auto& x : split_list(s)) {
    size_t used = 0;
    double f = 0;
    try { f = std::stod(x, &used); } catch (const std::exception&) { used = 0; }
    if (used != x.size() || !(f >= 0 && f <= 1))
      throw UsageError(std::string("--") + flag + ": expected fractions in [0, 1] separated by commas, got '" + x + "'");
    v.push_back(f);
  }
  if (v.size() < 2 || v.size() > 3) throw UsageError(std::string("--") + flag + ": give 2 or 3 fractions (train, val[, test])");
  return v;
}

int cmd_prepare(const std::vector<std::string>& args) {
  std::string kind, out, split, bed, quant;
  std::vector<std::string> inputs;
  mk::data::PrepareOptions o;
  po::options_description d(
      "mambakit prepare text|fasta|audio INPUT... --out DIR [options]\n"
      "Turns text, FASTA/FASTQ or audio into memory-mapped token shards DIR/<split>.mkshard\n"
      "(versioned header: magic, version, dtype, count; see datasets/README.md) and\n"
      "DIR/manifest.json, which the language, dna_pretrain and audio tasks read when data.path is DIR.\n"
      "Every file is written under a temporary name and renamed, the manifest last.\n\n"
      "Examples:\n"
      "  mambakit prepare text data/kjv.txt --tokenizer data/tokenizers/kjv-bpe --out data/shards/kjv-bpe\n"
      "  mambakit prepare fasta /usr/share/doc/bowtie/examples/genomes/NC_008253.fna.gz --out data/shards/ecoli\n"
      "  mambakit prepare fasta hg38.fa --bed human-sequences.bed --out data/shards/hg38\n"
      "  mambakit prepare audio data/piano --out data/shards/piano --expect-sample-rate 16000 --expect-channels 1\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("kind", po::value(&kind)->required(), "text, fasta (or dna) or audio")
      ("inputs", po::value(&inputs)->required()->multitoken(), "input files or folders")
      ("out", po::value(&out)->required(), "output folder")
      ("split", po::value(&split)->default_value("0.9,0.05,0.05"),
       "train,val[,test] fractions: text and DNA cut contiguously, audio by whole file (a folder with "
       "train/ val/ test/ keeps those)")
      ("tokenizer", po::value(&o.tokenizer)->default_value(""),
       "text: token ids of this tokenizer (tokenizer.json, SentencePiece .model, or a folder holding one; "
       "copied into DIR) instead of bytes")
      ("seed", po::value(&o.seed)->default_value(1), "which audio files go to which split")
      ("bed", po::value(&bed)->default_value(""), "DNA: restrict to (and, with a 4th column, split by) these intervals")
      ("sample-rate", po::value(&o.audio.sample_rate)->default_value(16000), "audio: output rate (resampled)")
      ("expect-sample-rate", po::value(&o.audio.expect_sample_rate)->default_value(0),
       "audio: refuse files at another rate (0: resample any)")
      ("expect-channels", po::value(&o.audio.expect_channels)->default_value(0),
       "audio: refuse files with another channel count (0: average any)")
      ("quantization", po::value(&quant)->default_value("mulaw"), "audio: mulaw or linear (256 classes)");
  po::positional_options_description pos;
  pos.add("kind", 1).add("inputs", -1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  if (kind != "text" && kind != "fasta" && kind != "dna" && kind != "audio")
    throw UsageError("unknown kind '" + kind + "' (expected text, fasta or audio)" +
                     mk::tasks::did_you_mean(kind, {"text", "fasta", "audio"}));
  o.split = parse_fractions(split, "split");
  double sum = 0;
  for (double f : o.split) sum += f;
  if (std::abs(sum - 1) > 1e-6) throw UsageError("--split: the fractions must sum to 1");
  if (quant != "mulaw" && quant != "mu-law" && quant != "linear")
    throw UsageError("--quantization: expected mulaw or linear, got '" + quant + "'");
  o.quantization = mk::data::parse_quantization(quant);
  o.bed = bed;
  check_prepare_out(out, !o.tokenizer.empty());
  const bool existed = fs::exists(out);
  try {
    const auto r = mk::data::prepare_shards(kind, inputs, out, o);
    std::string line = "prepared " + out + " (" + r.kind + ", vocab " + std::to_string(r.vocab_size) +
                       (r.sample_rate ? ", " + std::to_string(r.sample_rate) + " Hz" : std::string()) + "):";
    for (const auto& s : r.splits) line += " " + s + " " + std::to_string(r.tokens.at(s)) + " tokens;";
    line.back() = '\n';
    std::fputs(line.c_str(), stdout);
  } catch (...) {
    std::error_code ec;
    if (!existed) fs::remove(out, ec);  // only if empty: shards are temporaries until renamed
    throw;
  }
  return 0;
}

// Prints a confusion matrix held as confusion JSON (ConfusionMatrix::to_json).
void print_confusion(const json& j, const std::string& title) {
  const auto names = j.at("classes").get<std::vector<std::string>>();
  mk::tasks::ConfusionMatrix cm(int(names.size()));
  const auto& m = j.at("matrix");
  for (size_t t = 0; t < names.size(); ++t)
    for (size_t p = 0; p < names.size(); ++p)
      for (long k = m[t][p].get<long>(); k > 0; --k) cm.add(int(t), int(p));
  std::fprintf(stderr, "%s\n%s", title.c_str(), cm.to_text(names).c_str());
}

struct MediaRequest {
  std::string dir, checkpoint, out, task_name;
  mk::tasks::TaskSpec spec;
  mk::exp::MediaGenOptions gen;
};

// `generate` for dna_pretrain runs (FASTA) and audio runs (WAV).
int generate_media(mk::SequenceModel<float>& model, const MediaRequest& r) {
  if (r.task_name == "dna_pretrain") {
    const std::string fasta = mk::exp::generate_fasta(model, r.gen);
    if (r.out.empty()) {
      std::fwrite(fasta.data(), 1, fasta.size(), stdout);
    } else {
      mk::atomic_write_text(r.out, fasta);
      std::printf("wrote %s: %d record(s) of %d generated bases\n", r.out.c_str(), r.gen.samples, r.gen.tokens);
    }
    return 0;
  }
  if (r.out.empty()) throw UsageError("an audio run generates a WAV file: give --out x.wav");
  const auto ao = mk::tasks::audio_task_options(r.spec);
  size_t prompt = 0;
  const auto x = mk::exp::generate_audio(model, r.spec, r.gen, &prompt);
  mk::data::write_wav(r.out, x, ao.sample_rate);
  std::printf("wrote %s: %.2f s at %d Hz, mono, 16-bit (%zu prompt samples, %zu generated)\n", r.out.c_str(),
              double(x.size()) / ao.sample_rate, ao.sample_rate, prompt, x.size() - prompt);
  return 0;
}

int cmd_bench_data(const std::vector<std::string>& rest) {
  std::vector<std::string> configs, sets;
  double seconds = 2;
  int steps = 2;
  bool as_json = false;
  po::options_description d(
      "mambakit bench data [CONFIG ...] [--seconds S] [--steps N] [--json]\n"
      "Windows per second each config's training loader delivers (its task's next_train_batch,\n"
      "timed for S seconds) against the windows per second N training steps of its model\n"
      "consume, and their ratio. Default configs: experiments/dna_pretrain.yaml,\n"
      "experiments/dna_species.yaml, experiments/audio_piano.yaml.\nOptions");
  d.add_options()("help,h", "show this help")
      ("configs", po::value(&configs)->multitoken(), "experiment configs")
      ("seconds", po::value(&seconds)->default_value(seconds), "seconds to time each loader")
      ("steps", po::value(&steps)->default_value(steps), "timed training steps per config (after one warm-up)")
      ("set", po::value(&sets)->composing(), "override a config key in every config (repeatable)")
      ("json", po::bool_switch(&as_json), "print one JSON array");
  po::positional_options_description pos;
  pos.add("configs", -1);
  auto vm = parse(rest, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  if (!(seconds > 0) || steps < 1) throw UsageError("--seconds must be > 0 and --steps >= 1");
  if (configs.empty())
    configs = {"experiments/dna_pretrain.yaml", "experiments/dna_species.yaml", "experiments/audio_piano.yaml"};
  const json r = mk::exp::run_data_bench(configs, seconds, steps, sets);
  if (as_json) {
    std::cout << r.dump() << "\n";
    return 0;
  }
  std::printf("%-32s %-13s %7s %5s %14s %14s %10s %8s\n", "config", "task", "seq_len", "batch", "loader win/s",
              "loader tok/s", "train win/s", "ratio");
  for (const auto& x : r)
    std::printf("%-32s %-13s %7d %5d %14.0f %14.3g %10.2f %7.0fx\n", x["config"].get<std::string>().c_str(),
                x["task"].get<std::string>().c_str(), x["seq_len"].get<int>(), x["batch"].get<int>(),
                x["loader_windows_per_s"].get<double>(), x["loader_tokens_per_s"].get<double>(),
                x["train_windows_per_s"].get<double>(), x["ratio"].get<double>());
  return 0;
}

// --- issue 6: eval extras (intervals, generation, zero-shot) and `lra` --------

void print_eval_extras(const json& r) {
  for (auto it = r.begin(); it != r.end(); ++it)
    if (it.key().size() > 3 && it.key().compare(it.key().size() - 3, 3, "_ci") == 0 && it->is_array())
      std::fprintf(stderr, "  %s 95%% interval [%.4f, %.4f]\n", it.key().substr(0, it.key().size() - 3).c_str(),
                   (*it)[0].get<double>(), (*it)[1].get<double>());
  if (r.contains("generation")) {
    const json& g = r["generation"];
    std::string line = "generation (" + g["samples"].dump() + " samples of " + g["tokens"].dump() + " tokens):";
    char buf[96];
    for (const char* part : {"generated", "reference"})
      if (g.contains(part)) {
        line += std::string("\n  ") + part + ":";
        for (auto it = g[part].begin(); it != g[part].end(); ++it)
          if (it->is_number()) {
            std::snprintf(buf, sizeof buf, "  %s %.4f", it.key().c_str(), it->get<double>());
            line += buf;
          }
      }
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  if (r.contains("zero_shot")) {
    const json& z = r["zero_shot"];
    std::fprintf(stderr, "zero-shot %s (%s items): acc %.4f +- %.4f, acc_norm %.4f +- %.4f\n",
                 z["file"].get<std::string>().c_str(), z["n"].dump().c_str(), z["acc"].get<double>(),
                 z["acc_stderr"].get<double>(), z["acc_norm"].get<double>(), z["acc_norm_stderr"].get<double>());
  }
}

int cmd_lra(const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "report") {
    std::vector<std::string> runs;
    std::string label;
    po::options_description d("mambakit lra report RUN_DIR [RUN_DIR ...] [--label NAME]\n"
                              "The LRA table (ListOps, Text, Retrieval, Image, Pathfinder, Path-X, Avg) of\n"
                              "runs trained with `mambakit lra`, beside the published Transformer, S4 and S5 rows;\n"
                              "one row per architecture of ours (e.g. Mamba and S4D), named LABEL ARCH.\n"
                              "Options");
    d.add_options()("help,h", "show this help")
        ("runs", po::value(&runs)->required()->multitoken(), "run directories")
        ("label", po::value(&label)->default_value("mambakit"), "name before the architecture in our rows");
    po::positional_options_description pos;
    pos.add("runs", -1);
    auto vm = parse(std::vector<std::string>(args.begin() + 1, args.end()), d, pos);
    if (vm.count("help")) { std::cout << d; return 0; }
    std::cout << mk::exp::lra_report(runs, label);
    return 0;
  }
  if (!args.empty() && args[0] == "test") {
    if (args.size() < 2) throw UsageError("lra test RUN_DIR [RUN_DIR ...]");
    for (size_t i = 1; i < args.size(); ++i) {
      const json b = mk::exp::lra_test_run(args[i]);
      std::printf("%s: %s test accuracy %.4f (majority %.4f)\n", args[i].c_str(), b["task"].get<std::string>().c_str(),
                  b["test_accuracy"].get<double>(), b["test_majority"].get<double>());
    }
    return 0;
  }
  mk::exp::LraOptions o;
  po::options_description d(
      "mambakit lra TASK [--data DIR] [--small] [--set KEY=VALUE ...] [--resume]\n"
      "mambakit lra report RUN_DIR [RUN_DIR ...]      (the LRA table)\n"
      "mambakit lra test RUN_DIR [RUN_DIR ...]        (re-score a run's best checkpoint on test)\n"
      "Trains a Long Range Arena task from experiments/lra_TASK[_small].yaml, then scores the\n"
      "best checkpoint on the test split into RUN_DIR/summary.json (\"lra\").\n"
      "TASK: listops, text, retrieval, image, pathfinder, pathx, or a variant with its own\n"
      "config: image_fmnist, text_man, retrieval_man.\n\n"
      "Examples:\n"
      "  mambakit lra listops --small                 (generated ListOps, length 512)\n"
      "  mambakit lra listops --data lra_release/listops-1000\n"
      "  mambakit lra image_fmnist --small\n"
      "  mambakit lra pathfinder --small --set train.steps=500\n"
      "  mambakit lra report runs/lra_listops_small runs/lra_pathfinder_small runs/lra_image_fmnist_small\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("task", po::value(&o.task)->required(), "LRA task")
      ("data", po::value(&o.data)->default_value(""), "data directory (sets data.path)")
      ("small", po::bool_switch(&o.small), "the small config (2 CPU cores)")
      ("config", po::value(&o.config)->default_value(""), "config file instead of experiments/lra_TASK[_small].yaml")
      ("configs", po::value(&o.configs_dir)->default_value("experiments"), "folder of the lra_*.yaml configs")
      ("set", po::value(&o.sets)->composing(), "override a config key (repeatable)")
      ("resume", po::bool_switch(&o.resume), "continue the run from its newest checkpoint")
      ("threads", po::value(&o.threads)->default_value(0), "CPU threads (default: train.threads, else OMP_NUM_THREADS)");
  po::positional_options_description pos;
  pos.add("task", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  int sig = 0;
  const json b = mk::exp::run_lra(o, &sig);
  if (sig) return 128 + sig;
  if (!b.empty()) std::cout << b.dump() << "\n";
  return 0;
}

int cmd_eval(const std::vector<std::string>& args) {
  std::string dir, split, metrics, checkpoint;
  long max_sequences = -1;
  int batch = 0, threads = 0;
  mk::exp::EvalOptions eo;
  po::options_description d(
      "mambakit eval RUN_DIR [--split val|test|train] [--metrics loss,bpb,ppl] [--checkpoint best]\n"
      "Evaluates a run's model with its config.yaml's task and data. Prints one line per\n"
      "metric on stderr and one JSON object on stdout.\n\n"
      "Examples:\n"
      "  mambakit eval runs/quickstart\n"
      "  mambakit eval runs/quickstart --split test --metrics loss,bpb,ppl --max-sequences 0\n"
      "  mambakit eval runs/quickstart --checkpoint best\n"
      "  mambakit eval runs/quickstart --split test --metrics ppl,nll,bpb --stride 128 --bootstrap 1000\n"
      "  mambakit eval runs/quickstart --generate 16 --judge runs/big_lm\n"
      "  mambakit eval runs/quickstart --mc experiments/zero_shot/kjv_cloze.jsonl\n"
      "Perplexity family (--metrics): nll, ppl, bits (per token), bpb (text), bits_per_base (DNA),\n"
      "bits_per_sample (audio); scored with sliding windows, bootstrap intervals with --bootstrap.\n"
      "Results are also merged into RUN_DIR/summary.json (evaluation, generation, zero_shot).\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("run", po::value(&dir)->required(), "run directory")
      ("split", po::value(&split)->default_value(""), "split to score (default: the config's eval.split)")
      ("metrics", po::value(&metrics)->default_value(""), "comma-separated metrics (default: the config's)")
      ("checkpoint", po::value(&checkpoint)->default_value("latest"), "latest, best, step_N or a model directory")
      ("max-sequences", po::value(&max_sequences)->default_value(-1),
       "sequences to score (0: the whole split; default: the config's eval.max_sequences)")
      ("batch-size", po::value(&batch)->default_value(0), "evaluation batch (0: the config's)")
      ("device", po::value(&eo.device)->default_value("cpu"), "where the model runs: cpu or cuda")
      ("threads", po::value(&threads)->default_value(0), "CPU threads (default: OMP_NUM_THREADS)")
      ("window", po::value(&eo.window)->default_value(0), "perplexity: tokens per window (0: data.seq_len)")
      ("stride", po::value(&eo.stride)->default_value(0), "perplexity: tokens between window starts (0: = window)")
      ("bootstrap", po::value(&eo.bootstrap)->default_value(0), "perplexity: bootstrap resamples for 95% intervals (0: none)")
      ("generate", po::value(&eo.generate)->default_value(0), "generation quality: samples from held-out prompts (0: none)")
      ("prompt-tokens", po::value(&eo.prompt_tokens)->default_value(64), "generation: prompt length")
      ("gen-tokens", po::value(&eo.gen_tokens)->default_value(0), "generation: tokens per sample (0: rest of a window)")
      ("temperature", po::value(&eo.temperature)->default_value(-1), "generation: temperature (default: the config's)")
      ("top-k", po::value(&eo.top_k)->default_value(-1), "generation: top-k (default: the config's)")
      ("top-p", po::value(&eo.top_p)->default_value(-1), "generation: top-p (default: the config's)")
      ("seed", po::value(&eo.seed)->default_value(1), "generation and bootstrap seed")
      ("judge", po::value(&eo.judge)->default_value(""), "generation: model directory for generative perplexity")
      ("classifier", po::value(&eo.classifier)->default_value(""), "generation: classifier model for IS/mIS/AM/FID")
      ("mc", po::value(&eo.mc)->default_value(""), "zero-shot multiple choice: JSONL file of {context, choices, gold}")
      ("no-summary", "do not write the results into summary.json");
  po::positional_options_description pos;
  pos.add("run", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  // Every count and sampling value the user gives is checked, never turned
  // into a default: -1 and 0 mean "the config's" only when left out.
  check_flag_range<long>(vm, "max-sequences", 0, 1e9, "expected 0 (the whole split) or a positive count");
  check_flag_range<int>(vm, "batch-size", 0, 65536, "expected 0 (the config's) to 65536 sequences");
  check_flag_range<int>(vm, "window", 0, 1 << 24, "expected 0 (data.seq_len) to 16777216 tokens");
  check_flag_range<int>(vm, "stride", 0, 1 << 24, "expected 0 (= window) to 16777216 tokens");
  check_flag_range<int>(vm, "bootstrap", 0, 100000, "expected 0 (none) to 100000 resamples");
  check_flag_range<int>(vm, "generate", 0, 100000, "expected 0 (none) to 100000 samples");
  check_flag_range<int>(vm, "prompt-tokens", 1, 1 << 24, "expected 1 to 16777216 tokens");
  check_flag_range<int>(vm, "gen-tokens", 0, 1 << 24, "expected 0 (the rest of a window) to 16777216 tokens");
  check_flag_range<double>(vm, "temperature", 0, 1e6, "expected a finite temperature >= 0 (0: greedy)");
  check_flag_range<int>(vm, "top-k", 0, 1e9, "expected k >= 0 (0: all tokens)");
  check_flag_range<double>(vm, "top-p", 1e-300, 1, "expected a probability mass in (0, 1]");
  mk::set_cpu_threads(threads);
  eo.split = split;
  eo.metrics = split_list(metrics);
  eo.checkpoint = checkpoint;
  eo.max_sequences = max_sequences;
  eo.batch = batch;
  eo.write_summary = !vm.count("no-summary");
  const json r = mk::exp::evaluate_run_full(dir, eo);
  std::string line = "eval " + dir + " (" + r["checkpoint"].get<std::string>() +
                     (r.contains("step") ? ", step " + r["step"].dump() : "") + "):";
  char buf[96];
  for (auto it = r.begin(); it != r.end(); ++it)
    if (it->is_number_float()) {
      std::snprintf(buf, sizeof buf, "  %s %.4f", it.key().c_str(), it->get<double>());
      line += buf;
    }
  std::fprintf(stderr, "%s\n", line.c_str());
  print_eval_extras(r);
  if (r.contains("confusion"))
    print_confusion(r["confusion"], "confusion matrix (" + r["split"].get<std::string>() +
                                        "; rows: true class, columns: predicted):");
  std::cout << r.dump() << "\n";
  return 0;
}

// --- issue 13: token ids in and out, generation_config.json, eos ----------------

// "1,2,3" -> ids. Something that is not an integer is a usage error; an
// integer outside the vocabulary is checked (exit 1) once the model is known.
std::vector<int32_t> parse_ids(const std::string& list, const std::string& flag) {
  std::vector<int32_t> ids;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    long long v = 0;
    try { v = std::stoll(item, &used); } catch (const std::exception&) { used = 0; }
    while (used < item.size() && std::isspace(static_cast<unsigned char>(item[used]))) ++used;
    if (item.empty() || used != item.size() || v < INT32_MIN || v > INT32_MAX)
      throw UsageError(flag + ": expected token ids separated by commas (e.g. 1,2,3), got '" + item + "'");
    ids.push_back(int32_t(v));
  }
  if (ids.empty()) throw UsageError(flag + ": give at least one token id");
  return ids;
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

// The prompt as token ids: --prompt-ids as given, else the text through the
// model's text -> ids seam (bytes for byte models). Every id is checked
// against the vocabulary; an empty prompt stays empty.
std::vector<int32_t> prompt_ids_for(const std::string& mdir, const mk::ModelConfig& cfg, const po::variables_map& vm,
                                    const std::string& prompt) {
  if (vm.count("prompt-ids")) {
    const auto ids = parse_ids(vm["prompt-ids"].as<std::string>(), "--prompt-ids");
    mk::exp::check_ids_in_vocab(ids, cfg.vocab_size, "--prompt-ids");
    return ids;
  }
  if (prompt.empty()) return {};
  return mk::exp::text_to_ids(mdir, cfg, prompt, "--prompt-ids");
}

// Fills what the command line left at its defaults from a model directory's
// generation_config.json (a checkpoint saved by transformers).
void apply_generation_config(const mk::exp::GenerationDefaults& g, const po::variables_map& vm, size_t prompt_len,
                             mk::SamplingOptions& so, int& tokens) {
  if (vm["temperature"].defaulted()) so.temperature = g.do_sample ? g.temperature : 0.0;
  if (vm["top-k"].defaulted()) so.top_k = g.top_k;
  if (vm["top-p"].defaulted()) so.top_p = g.top_p;
  if (!vm["tokens"].defaulted()) return;
  if (g.max_new_tokens) tokens = *g.max_new_tokens;
  else if (g.max_length) tokens = std::max(0, *g.max_length - int(prompt_len));
}

// The ids generation stops after: --no-eos none, --eos as given, else
// generation_config.json's eos_token_id, else config.json's.
std::vector<int32_t> stop_ids_for(const po::variables_map& vm, const mk::ModelConfig& cfg,
                                  const std::optional<mk::exp::GenerationDefaults>& g) {
  if (vm.count("no-eos")) {
    if (vm.count("eos")) throw UsageError("give --eos or --no-eos, not both");
    return {};
  }
  if (vm.count("eos")) {
    const auto ids = parse_ids(vm["eos"].as<std::string>(), "--eos");
    mk::exp::check_ids_in_vocab(ids, cfg.vocab_size, "--eos");
    return ids;
  }
  if (g && g->eos_ids) return *g->eos_ids;
  if (cfg.eos_token_id >= 0) return {cfg.eos_token_id};
  return {};
}

// --dtype: the model computes in fp32 on the CPU (bf16 and f16 checkpoints
// are widened on load); bf16 means bf16 matmul operands (fp32 accumulation,
// fp32 weights in memory) and exists on CUDA only.
void apply_dtype(const std::string& dtype, mk::SequenceModel<float>& model) {
  if (dtype == "f32") return;
  if (!model.params().backend().set_bf16_matmuls(true))
    throw mk::Error("--dtype bf16: this backend has no bf16 matmuls");
}

void check_dtype_flag(const std::string& dtype, mk::Device dev) {
  if (dtype != "f32" && dtype != "bf16") throw UsageError("--dtype: expected f32 or bf16, got '" + dtype + "'");
  if (dtype == "bf16" && dev == mk::Device::cpu)
    throw UsageError("--dtype bf16: the CPU kernels compute in fp32 (bf16 weights are widened to fp32 on load, "
                     "exactly); bf16 matmuls need --device cuda");
}

// What a language model's generation prints: the text (prompt and
// continuation) where the model's ids map to text, and the generated ids on
// the last line with --print-ids. Ids that do not map to text (a large
// vocabulary and no tokenizer) are printed as ids, never masked into bytes.
std::string generation_output(const std::string& mdir, const mk::ModelConfig& cfg, const std::vector<int32_t>& prompt,
                              const std::vector<int32_t>& generated, bool print_ids) {
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), generated.begin(), generated.end());
  const auto text = mk::exp::ids_to_text(mdir, cfg, all);
  if (!text && !print_ids)
    std::fprintf(stderr, "note: %s has a %d-token vocabulary and no tokenizer mambakit can read: printing the "
                 "generated token ids\n", mdir.c_str(), cfg.vocab_size);
  std::string shown = text ? *text + "\n" : "";
  if (print_ids || !text) shown += join_ids(generated) + "\n";
  return shown;
}

int generate_lm(const std::string& mdir, const po::variables_map& vm, bool from_run, const std::string& prompt,
                mk::SamplingOptions so, int tokens, uint64_t seed, mk::Device dev, const std::string& out) {
  const mk::ModelConfig cfg = mk::read_model_config(mdir + "/config.json");
  const auto prompt_ids = prompt_ids_for(mdir, cfg, vm, prompt);
  std::optional<mk::exp::GenerationDefaults> gen_cfg;
  const std::string gen_path = mdir + "/generation_config.json";
  if (!vm.count("no-generation-config") && fs::exists(gen_path)) gen_cfg = mk::exp::read_generation_config(gen_path);
  if (gen_cfg && !from_run) apply_generation_config(*gen_cfg, vm, prompt_ids.size(), so, tokens);
  const auto stop = stop_ids_for(vm, cfg, gen_cfg);

  auto model = mk::load_model(mdir);
  model->to(dev);
  apply_dtype(vm["dtype"].as<std::string>(), *model);
  const auto generated = mk::exp::generate_tokens(*model, prompt_ids, tokens, so, seed, stop);
  if (!generated.empty() && int(generated.size()) < tokens && !stop.empty() &&
      std::find(stop.begin(), stop.end(), generated.back()) != stop.end())
    std::fprintf(stderr, "note: stopped at end-of-sequence token %d after %zu of %d tokens (--no-eos: go on)\n",
                 generated.back(), generated.size(), tokens);
  const std::string shown = generation_output(mdir, cfg, prompt_ids, generated, vm.count("print-ids") > 0);
  std::fwrite(shown.data(), 1, shown.size(), stdout);
  if (!out.empty()) mk::atomic_write_text(out, shown);
  return 0;
}

int cmd_generate(const std::vector<std::string>& args) {
  std::string dir, prompt, checkpoint, out, device, dtype;
  int tokens = 0, threads = 0;
  uint64_t seed = 0;
  mk::SamplingOptions so;
  MediaRequest media;
  po::options_description d(
      "mambakit generate DIR [--prompt TEXT | --prompt-ids 1,2,3] [--tokens N] [sampling options]\n"
      "Recurrent generation from a run or a model directory (one model.safetensors, or shards\n"
      "with model.safetensors.index.json, as transformers saves them). Text goes through the\n"
      "directory's tokenizer (tokenizer.json or a SentencePiece .model), else bytes; a model with\n"
      "a larger vocabulary and no tokenizer takes --prompt-ids and prints the generated ids.\n"
      "--print-ids adds the generated ids as the\n"
      "last line. Generation stops after the end-of-sequence token (eos_token_id of\n"
      "generation_config.json, else of config.json; --eos, --no-eos). Defaults come from the\n"
      "run's `generate:` config section, or else from the directory's generation_config.json\n"
      "(do_sample, temperature, top_k, top_p, max_new_tokens/max_length, as transformers reads\n"
      "it: greedy unless do_sample); flags override both.\n\n"
      "Examples:\n"
      "  mambakit generate runs/quickstart --prompt \"And God said\" --tokens 300 --temperature 0.8\n"
      "  mambakit generate runs/quickstart --checkpoint best --top-k 40 --top-p 0.95 --seed 3\n"
      "  mambakit generate mamba-130m-hf --prompt-ids 510,3158,8516 --tokens 40 --temperature 0 --print-ids\n"
      "  mambakit generate runs/dna_pretrain --tokens 1000 --samples 3 --out gen.fa   (DNA runs: FASTA)\n"
      "  mambakit generate runs/audio_piano --seconds 2 --out piano.wav             (audio runs: WAV)\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("dir", po::value(&dir)->required(), "run or model directory")
      ("prompt", po::value(&prompt)->default_value(""), "prompt text (bytes, for byte models)")
      ("prompt-ids", po::value<std::string>(), "prompt token ids, comma-separated (instead of --prompt)")
      ("print-ids", "print the generated token ids, space-separated, as the last line")
      ("tokens", po::value(&tokens)->default_value(200), "tokens (bytes) to generate at most")
      ("temperature", po::value(&so.temperature)->default_value(1.0), "sampling temperature (0: greedy)")
      ("top-k", po::value(&so.top_k)->default_value(0), "keep the k most likely tokens (0: all)")
      ("top-p", po::value(&so.top_p)->default_value(1.0), "nucleus sampling mass")
      ("seed", po::value(&seed)->default_value(0), "random seed")
      ("eos", po::value<std::string>(), "stop after this token id (or any of a comma-separated list)")
      ("no-eos", "never stop before --tokens")
      ("no-generation-config", "ignore the directory's generation_config.json")
      ("dtype", po::value(&dtype)->default_value("f32"),
       "f32, or bf16: bf16 matmul operands (fp32 accumulation and weights), --device cuda only")
      ("checkpoint", po::value(&checkpoint)->default_value("latest"), "latest, best, step_N or a directory")
      ("out", po::value(&out)->default_value(""),
       "also write what is printed to this file; DNA runs: a FASTA file; audio runs: the WAV file (required)")
      ("samples", po::value(&media.gen.samples)->default_value(1), "DNA runs: FASTA records to generate")
      ("seconds", po::value(&media.gen.seconds)->default_value(1.0), "audio runs: seconds to generate")
      ("prompt-file", po::value(&media.gen.prompt_file)->default_value(""),
       "audio runs: an audio file whose samples prompt the model (resampled and quantised as the run's data)")
      ("prompt-seconds", po::value(&media.gen.prompt_seconds)->default_value(0.0),
       "audio runs: use at most this much of --prompt-file (0: all of it)")
      ("device", po::value(&device)->default_value("cpu"),
       "where the model runs: cpu or cuda (recurrent step kernels and KV cache on the GPU)")
      ("threads", po::value(&threads)->default_value(0), "CPU threads (default: OMP_NUM_THREADS)");
  po::positional_options_description pos;
  pos.add("dir", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  if (vm.count("prompt-ids") && !vm["prompt"].defaulted()) throw UsageError("give --prompt or --prompt-ids, not both");
  check_flag_range<double>(vm, "temperature", 0, 1e6, "expected a finite temperature >= 0 (0: greedy)");
  check_flag_range<int>(vm, "top-k", 0, 1e9, "expected k >= 0 (0: all tokens)");
  check_flag_range<double>(vm, "top-p", 1e-300, 1, "expected a probability mass in (0, 1]");
  check_flag_range<int>(vm, "tokens", 0, 1 << 24, "expected 0 to 16777216 tokens");
  check_flag_range<int>(vm, "samples", 1, 100000, "expected 1 to 100000 records");
  check_flag_range<double>(vm, "seconds", 1e-6, 3600, "expected seconds in (0, 3600]");
  check_flag_range<double>(vm, "prompt-seconds", 0, 3600, "expected seconds in [0, 3600]");
  // Defaults from the run's config, where the command line leaves them.
  const bool from_run = fs::exists(fs::path(dir) / "config.yaml");
  if (from_run) {
    const auto cfg = mk::exp::load_config(dir + "/config.yaml");
    const auto& g = cfg.generate;
    if (vm["prompt"].defaulted() && !vm.count("prompt-ids")) prompt = g.prompt;
    if (vm["tokens"].defaulted() && g.tokens > 0) tokens = g.tokens;
    if (vm["temperature"].defaulted()) so.temperature = g.temperature;
    if (vm["top-k"].defaulted()) so.top_k = g.top_k;
    if (vm["top-p"].defaulted()) so.top_p = g.top_p;
    if (vm["seed"].defaulted()) seed = uint64_t(g.seed);
    media.task_name = cfg.task_name;
    media.spec = cfg.task_spec();
  }
  if (tokens < 0) throw UsageError("--tokens must be non-negative");
  if (so.top_p <= 0 || so.top_p > 1) throw UsageError("--top-p must be in (0, 1]");
  if (!out.empty()) check_output(out);
  mk::set_cpu_threads(threads);
  const mk::Device dev = mk::parse_device(device);
  check_dtype_flag(dtype, dev);
  mk::backend_for<float>(dev);  // an unusable device is refused before any work
  const std::string mdir = mk::exp::checkpoint_dir(dir, checkpoint);
  if (media.task_name == "dna_pretrain" || media.task_name == "audio") {
    for (const char* flag : {"prompt-ids", "print-ids", "eos", "no-eos"})
      if (vm.count(flag)) throw UsageError(std::string("--") + flag + " is for language models, not " + media.task_name + " runs");
    auto model = mk::load_model(mdir);
    model->to(dev);
    apply_dtype(dtype, *model);
    media.out = out;
    media.gen.sampling = so;
    media.gen.seed = seed;
    media.gen.tokens = tokens;
    media.gen.prompt = prompt;
    media.gen.source = dir;
    return generate_media(*model, media);
  }
  return generate_lm(mdir, vm, from_run, prompt, so, tokens, seed, dev, out);
}

int cmd_info(const std::vector<std::string>& args) {
  std::string path;
  bool as_json = false, system = false;
  po::options_description d(
      "mambakit info RUN_DIR|MODEL_DIR|FILE.safetensors [--json]\n"
      "mambakit info --system [--json]\n"
      "Parameters, tensor shapes and the model config of a checkpoint; for a run\n"
      "directory also its step, checkpoints and resolved config. With --system:\n"
      "the CPU's instruction sets, the one the CPU kernels use, and OpenBLAS's\n"
      "kernel set (OPENBLAS_CORETYPE chooses one).\n\n"
      "Examples:\n"
      "  mambakit info runs/quickstart\n"
      "  MAMBAKIT_ISA=avx2 mambakit info --system\n"
      "  mambakit info runs/quickstart/checkpoints/step_600 --json\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("path", po::value(&path), "run directory, model directory or .safetensors file")
      ("system", po::bool_switch(&system), "the CPU's ISAs and the one chosen (MAMBAKIT_ISA forces one)")
      ("json", po::bool_switch(&as_json), "print one JSON object");
  po::positional_options_description pos;
  pos.add("path", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  if (system) {
    json isas = json::array();
    for (mk::Isa i : mk::supported_isas()) isas.push_back(mk::isa_name(i));
    const char* forced = std::getenv("MAMBAKIT_ISA");
    const json sys{{"cpu_isas", isas},
                   {"isa", mk::isa_name(mk::active_isa())},
                   {"forced_by_MAMBAKIT_ISA", forced && *forced},
                   {"blas_core", mk::blas_core_name()},
                   {"blas_core_origin", mk::blas_core_origin()},
                   {"float_products", mk::float_products_name()},
                   {"cpu_has_amx", mk::cpu_has_amx()}};
    if (as_json) std::cout << sys.dump() << "\n";
    else
      std::cout << "cpu isas: " << isas.dump() << "\nisa: " << sys["isa"].get<std::string>()
                << (forced && *forced ? " (MAMBAKIT_ISA)" : " (widest supported)") << "\n"
                << "blas core: " << mk::blas_core_description() << "\n"
                << "float products: " << float_products_description() << "\n";
    return 0;
  }
  if (path.empty()) throw mk::Error("give a run directory, model directory or .safetensors file (or --system)");
  json info{{"path", path}};
  std::string weights = path;
  if (fs::is_directory(path)) {
    if (!fs::exists(path + "/config.json") && !mk::has_weights(path))
      throw mk::Error(path + ": neither a run nor a model directory (no config.json, no model.safetensors)");
    weights = mk::weights_file(path);  // model.safetensors or the shards' index
    const mk::ModelConfig c = mk::read_model_config(path + "/config.json");
    info["model"] = {{"d_model", c.d_model},   {"n_layer", c.n_layer}, {"d_state", c.d_state},
                     {"expand", c.expand},     {"d_conv", c.d_conv},   {"dt_rank", c.dt_rank_resolved()},
                     {"vocab_size", c.vocab_size}, {"mixers", c.mixers.empty() ? std::vector<std::string>{"mamba"} : c.mixers}};
    if (fs::exists(path + "/trainer_state.json")) {
      // Only the position is shown: absent fields (another trainer's file) read as 0.
      const std::string sp = path + "/trainer_state.json";
      const json st = read_json_file(sp);
      if (!st.is_object()) throw mk::Error(sp + ": expected a JSON object, got " + st.type_name());
      for (const char* k : {"step", "total_steps"}) {
        const auto it = st.find(k);
        if (it != st.end() && !it->is_number_integer())
          throw mk::Error(sp + ": \"" + k + "\": expected an integer, got " + it->type_name());
        info[k] = it == st.end() ? 0L : it->get<long>();
      }
    }
    std::vector<std::string> ckpts;
    for (const auto& [s, p] : mk::exp::list_checkpoints(path)) ckpts.push_back("step_" + std::to_string(s));
    if (!ckpts.empty()) info["checkpoints"] = ckpts;
    if (fs::exists(path + "/best/best.json")) info["best"] = read_json_file(path + "/best/best.json");
    if (fs::exists(path + "/config.yaml")) info["config_yaml"] = mk::read_text_file(path + "/config.yaml");
  }
  // Headers only: a multi-GB checkpoint is described without reading it.
  long total = 0;
  json tensors = json::array();
  std::set<std::string> dtypes, files;
  for (const auto& t : mk::checkpoint_tensors(weights)) {
    tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"numel", t.numel}, {"dtype", t.dtype}});
    total += long(t.numel);
    dtypes.insert(t.dtype);
    files.insert(t.file);
  }
  info["parameters"] = total;
  info["weights"] = weights;
  info["dtypes"] = dtypes;
  info["weight_files"] = files.size();
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
  if (info.contains("best")) {
    const json& b = info["best"];  // as best.json holds it: a field it lacks is shown as ?
    const auto field = [&](const char* k) {
      if (!b.is_object() || !b.contains(k)) return std::string("?");
      return b[k].is_string() ? b[k].get<std::string>() : b[k].dump();
    };
    std::cout << "  best: step " << field("step") << ", " << field("metric") << " " << field("value") << "\n";
  }
  std::cout << "  parameters: " << total << " (" << (total * 4.0 / 1e6) << " MB as fp32); stored as "
            << json(dtypes).dump() << " in " << files.size()
            << (files.size() == 1 ? " file" : " files") << " (" << weights << ")\n";
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
  if (!out.empty()) check_output(out + ".png"), check_output(out + ".svg");
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

// The input of `logits`: exactly one of --text, --ids, --ids-file, each id
// checked against the vocabulary.
std::vector<int32_t> logits_input_ids(const std::string& dir, const mk::ModelConfig& cfg, const po::variables_map& vm) {
  const int given = int(vm.count("text") + vm.count("ids") + vm.count("ids-file"));
  if (given != 1) throw UsageError("give exactly one of --text, --ids and --ids-file");
  if (vm.count("text")) {
    const std::string text = vm["text"].as<std::string>();
    if (text.empty()) throw UsageError("--text must not be empty");
    return mk::exp::text_to_ids(dir, cfg, text, "--ids or --ids-file");
  }
  const bool inline_ids = vm.count("ids") > 0;
  const auto ids = inline_ids ? parse_ids(vm["ids"].as<std::string>(), "--ids")
                              : mk::exp::read_ids_npy(vm["ids-file"].as<std::string>());
  mk::exp::check_ids_in_vocab(ids, cfg.vocab_size, inline_ids ? "--ids" : vm["ids-file"].as<std::string>());
  return ids;
}

int cmd_logits(const std::vector<std::string>& args) {
  std::string dir, out;
  po::options_description d("mambakit logits DIR (--text TEXT | --ids 1,2,3 | --ids-file IDS.npy) --out FILE.npy\n"
                            "Writes float32 logits, shape (number of tokens, vocab); for a classifier\n"
                            "model (1, classes). --text is read as bytes (byte models only: a model\n"
                            "with a larger vocabulary takes token ids); --ids-file is a 1-D int32 or\n"
                            "int64 .npy array.\n\n"
                            "Examples:\n"
                            "  mambakit logits runs/quickstart --text \"In the beginning\" --out l.npy\n"
                            "  mambakit logits mamba-130m-hf --ids 510,3158,8516 --out l.npy\n\n"
                            "Options");
  d.add_options()("help,h", "show this help")
      ("dir", po::value(&dir)->required(), "model directory")
      ("text", po::value<std::string>(), "input text (bytes)")
      ("ids", po::value<std::string>(), "input token ids, comma-separated")
      ("ids-file", po::value<std::string>(), "input token ids, a 1-D int32/int64 .npy file")
      ("out", po::value(&out)->required(), "output .npy file");
  po::positional_options_description pos;
  pos.add("dir", 1);
  auto vm = parse(args, d, pos);
  if (vm.count("help")) { std::cout << d; return 0; }
  check_output(out);
  if (!fs::is_directory(dir)) throw mk::Error(dir + ": not a model directory");
  const mk::ModelConfig cfg = mk::read_model_config(dir + "/config.json");
  const std::vector<int32_t> ids = logits_input_ids(dir, cfg, vm);
  if (cfg.pair_classifier)
    throw UsageError("logits: " + dir + " is a two-tower classifier, which scores pairs of documents; "
                     "use `mambakit eval` on its run");
  auto model = mk::load_model(dir);
  model->forward(ids.data(), 1, int(ids.size()));
  // LM head: one row per token; classifier head: one row of class logits.
  mk::Tensor t = mk::Tensor::borrow(const_cast<float*>(model->logits().data()),
                                    {long(model->logit_rows()), model->logit_width()}, mk::DType::f32);
  mk::write_npy(out, t);
  return 0;
}

// `bench mixers`: time and memory per token of one layer of each mixer, and
// generation throughput (experiments/include/mambakit/experiments/bench_mixers.h).
int cmd_bench_mixers(const std::vector<std::string>& rest) {
  mk::exp::MixerBenchConfig c;
  std::string lengths = "512,2048,8192", mixers = "mamba,s4d,s4,attention", contexts = "1024,8192";
  bool as_json = false;
  po::options_description d(
      "mambakit bench mixers [options]\n"
      "One layer of each mixer at equal d_model, batch 1: forward+backward time and peak memory per\n"
      "token (peak resident-set growth over the call) at each length, as ratios to Mamba; and\n"
      "generation tokens/s at each context, Mamba's recurrent step vs attention's KV cache.\n"
      "Example: mambakit bench mixers --d-model 256 --lengths 512,2048,8192\nOptions");
  d.add_options()("help,h", "show this help")
      ("d-model", po::value(&c.d_model)->default_value(c.d_model), "model width of every mixer")
      ("lengths", po::value(&lengths)->default_value(lengths), "sequence lengths, comma-separated")
      ("mixers", po::value(&mixers)->default_value(mixers), "mixers, comma-separated (the first rows' reference is mamba)")
      ("contexts", po::value(&contexts)->default_value(contexts), "generation contexts, comma-separated (empty: none)")
      ("gen-tokens", po::value(&c.gen_tokens)->default_value(c.gen_tokens), "generation steps per timed block")
      ("repeats", po::value(&c.max_repeats)->default_value(c.max_repeats), "most timed forward+backward runs (best kept)")
      ("threads", po::value(&c.threads)->default_value(c.threads), "threads (1 is steadiest on a shared machine)")
      ("json", po::bool_switch(&as_json), "print one JSON object");
  auto vm = parse(rest, d, {});
  if (vm.count("help")) { std::cout << d; return 0; }
  auto ints = [](const std::string& list, const char* flag) {
    std::vector<int> v;
    for (const auto& s : split_list(list)) {
      size_t used = 0;
      int x = 0;
      try { x = std::stoi(s, &used); } catch (const std::exception&) { used = 0; }
      if (used != s.size() || x <= 0)
        throw UsageError(std::string("--") + flag + ": expected positive integers separated by commas, got '" + s + "'");
      v.push_back(x);
    }
    return v;
  };
  c.lengths = ints(lengths, "lengths");
  c.gen_contexts = ints(contexts, "contexts");
  c.mixers = split_list(mixers);
  if (c.lengths.empty()) throw UsageError("--lengths: give at least one length");
  if (c.max_repeats < 1) throw UsageError("--repeats must be >= 1");
  const auto r = mk::exp::run_mixer_bench(c);
  if (as_json) std::cout << r.to_json().dump() << "\n";
  else std::cout << r.to_text();
  return 0;
}

int cmd_bench(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "mambakit bench scan [--batch --d-inner --d-state --len --threads --repeats --isa --stagger --no-naive] [--json]\n"
                 "mambakit bench train [--d-model --n-layer --seq-len --batch --mixer --threads --compare-threads --device --steps] [--json]\n"
                 "mambakit bench mixers [--d-model --lengths --mixers --contexts --threads] [--json]\n"
                 "mambakit bench data [CONFIG ...] [--seconds --steps] [--json]\n";
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
        ("threads", po::value(&c.threads)->default_value(c.threads), "threads (default: OMP_NUM_THREADS)")
        ("repeats", po::value(&c.repeats)->default_value(c.repeats), "timed repetitions (best is kept)")
        ("no-naive", "skip the naive (materialising) scan, the slow part")
        ("stagger", po::value(&c.stagger_bytes)->default_value(c.stagger_bytes),
         "place the (B, L, D) arrays: array i of u, delta, z, out, dout, du, ddelta, dz at "
         "i * STAGGER bytes (mod 4096) past a 4 KiB boundary; -1: where mambakit's allocator puts "
         "a layer's buffers")
        ("isa", po::value<std::string>()->default_value(""),
         "CPU kernels to time: scalar, avx2, avx512, or all (every one this CPU runs, in one run); "
         "default: the one chosen at start-up (MAMBAKIT_ISA forces it)")
        ("json", po::bool_switch(&as_json), "print one JSON object (per ISA)");
    auto vm = parse(rest, d, {});
    if (vm.count("help")) { std::cout << d; return 0; }
    c.naive = !vm.count("no-naive");
    std::vector<mk::Isa> isas;
    const std::string isa_arg = vm["isa"].as<std::string>();
    if (isa_arg == "all") {
      isas = mk::supported_isas();
    } else if (isa_arg.empty()) {
      isas = {mk::active_isa()};
    } else {
      const std::optional<mk::Isa> want = mk::isa_from_name(isa_arg);
      if (!want)
        throw UsageError("--isa " + isa_arg +
                         ": unknown (expected scalar, avx2, avx512 or all; this CPU runs: " +
                         mk::supported_isa_list() + ")");
      const auto ok = mk::supported_isas();
      if (std::find(ok.begin(), ok.end(), *want) == ok.end())
        throw UsageError("--isa " + isa_arg + ": this CPU does not run it (it runs: " +
                         mk::supported_isa_list() + ")");
      isas = {*want};
    }
    for (const mk::Isa isa : isas) {
      mk::ScopedIsa scope(isa);
      auto r = mk::bench::run_scan_bench(c);
      if (as_json) std::cout << r.to_json() << "\n";
      else std::cout << r.to_text();
    }
    return 0;
#else
    throw mk::Error("bench: built without benchmarks (MAMBAKIT_BUILD_BENCH=OFF)");
#endif
  }
  if (args[0] == "train") {
    mk::exp::TrainBenchConfig c;
    bool as_json = false;
    po::options_description d(
        "mambakit bench train [options]\n"
        "Steady-state tokens/s of full training steps (forward, backward, clipping, AdamW) on random\n"
        "bytes, after warm-up steps that are not timed, and the peak resident memory. The defaults\n"
        "are the quickstart model (experiments/quickstart.yaml).\n"
        "Example: mambakit bench train --d-model 256 --n-layer 4 --batch 8 --seq-len 256 --threads 2 --json\n"
        "Under mpirun (mpirun -np 2 mambakit bench train --threads 1) the batch is the global one,\n"
        "split over the ranks, and rank 0 also prints the share of step time spent waiting for the\n"
        "gradient all-reduce and the cost of one all-reduce of the gradient buffer\n"
        "(bench/mpi_scaling.sh compares 1 and 2 ranks).\n"
        "Options");
    d.add_options()("help,h", "show this help")
        ("d-model", po::value(&c.d_model)->default_value(c.d_model), "model width")
        ("n-layer", po::value(&c.n_layer)->default_value(c.n_layer), "layers")
        ("d-state", po::value(&c.d_state)->default_value(c.d_state), "Mamba state size")
        ("seq-len", po::value(&c.seq_len)->default_value(c.seq_len), "tokens per sequence")
        ("batch", po::value(&c.batch)->default_value(c.batch), "sequences per step")
        ("mixer", po::value(&c.mixer)->default_value(c.mixer), "mixer, or a comma-separated pattern over the layers")
        ("device", po::value(&c.device)->default_value(c.device), "cpu or cuda")
        ("threads", po::value(&c.threads)->default_value(c.threads), "threads (default: OMP_NUM_THREADS)")
        ("warmup", po::value(&c.warmup)->default_value(c.warmup), "untimed steps first")
        ("steps", po::value(&c.steps)->default_value(c.steps), "timed steps (0: as many as fit in --seconds)")
        ("seconds", po::value(&c.seconds)->default_value(c.seconds), "timed seconds when --steps is 0")
        ("compare-threads", po::value<std::string>(),
         "comma-separated thread counts, e.g. 1,2: runs each in turn, twice, and prints the "
         "best tokens/s of each and its ratio to the first (replaces --threads)")
        ("json", po::bool_switch(&as_json), "print one JSON object");
    auto vm = parse(rest, d, {});
    if (vm.count("help")) { std::cout << d; return 0; }
    if (c.d_model < 1 || c.n_layer < 1 || c.d_state < 1 || c.batch < 1 || c.seq_len < 1)
      throw UsageError("bench train: --d-model, --n-layer, --d-state, --batch and --seq-len must be >= 1");
    if (c.warmup < 0 || c.steps < 0 || !(c.seconds >= 0))
      throw UsageError("bench train: --warmup, --steps and --seconds must be >= 0");
    if (vm.count("compare-threads")) {
      std::vector<int> counts;
      std::stringstream list(vm["compare-threads"].as<std::string>());
      for (std::string item; std::getline(list, item, ',');) {
        char* end = nullptr;
        const long n = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || n < 1)
          throw UsageError("bench train: --compare-threads takes thread counts >= 1, e.g. 1,2; got '" +
                           item + "'");
        if (const std::string why = mk::cpu_threads_problem(n, "--compare-threads"); !why.empty())
          throw UsageError("bench train: " + why);
        counts.push_back(int(n));
      }
      if (counts.size() < 2) throw UsageError("bench train: --compare-threads needs two or more counts");
      // Two interleaved rounds, best of each: load from other jobs hits both.
      std::vector<mk::exp::TrainBenchResult> best(counts.size());
      for (int round = 0; round < 2; ++round)
        for (size_t i = 0; i < counts.size(); ++i) {
          c.threads = counts[i];
          const auto r = mk::exp::run_train_bench(c);
          if (round == 0 || r.tokens_per_s > best[i].tokens_per_s) best[i] = r;
        }
      nlohmann::json runs = nlohmann::json::array();
      for (size_t i = 0; i < counts.size(); ++i) {
        auto j = best[i].to_json();
        j["speedup_vs_first"] = best[i].tokens_per_s / best[0].tokens_per_s;
        runs.push_back(j);
      }
      if (as_json) {
        std::cout << nlohmann::json{{"benchmark", "train_step_threads"}, {"runs", runs}}.dump() << "\n";
      } else {
        std::cout << best[0].to_text();
        for (size_t i = 0; i < counts.size(); ++i)
          std::printf("  %3d threads: %10.0f tokens/s  %8.1f ms/step  x%.2f vs %d thread%s\n",
                      counts[i], best[i].tokens_per_s, best[i].ms_per_step,
                      best[i].tokens_per_s / best[0].tokens_per_s, counts[0],
                      counts[0] == 1 ? "" : "s");
      }
      return 0;
    }
    mk::dist::init_world(mk::dist::detect_launch().by_launcher, mk::parse_device(c.device));
    const auto r = mk::exp::run_train_bench(c);
    if (mk::dist::world().rank() != 0) return 0;  // rank 0 reports for the job
    if (as_json) std::cout << r.to_json().dump() << "\n";
    else std::cout << r.to_text();
    return 0;
  }
  if (args[0] == "mixers") return cmd_bench_mixers(rest);
  if (args[0] == "data") return cmd_bench_data(rest);
  throw UsageError("unknown benchmark '" + args[0] + "' (expected scan, train, mixers or data)");
}

// `mambakit --version`: the version and what this build holds: build type,
// compiler, the CPU kernels' ISA (chosen now, as a run would), CUDA, MPI and
// NCCL.
std::string version_text() {
  std::string s = "mambakit " MAMBAKIT_VERSION "\n";
#ifdef MAMBAKIT_BUILD_TYPE
  s += "build: " MAMBAKIT_BUILD_TYPE;
#else
  s += "build: unknown";
#endif
#if defined(__clang__)
  s += " (clang " __clang_version__ ")\n";
#elif defined(__GNUC__)
  s += " (gcc " __VERSION__ ")\n";
#else
  s += "\n";
#endif
  std::string isas;
  for (const mk::Isa i : mk::supported_isas()) isas += (isas.empty() ? "" : ", ") + std::string(mk::isa_name(i));
  try {
    const char* forced = std::getenv("MAMBAKIT_ISA");
    s += std::string("cpu isa: ") + mk::isa_name(mk::active_isa()) +
         (forced && *forced ? " (forced by MAMBAKIT_ISA)" : " (widest this CPU runs)") + "; this CPU runs: " + isas +
         "\n";
  } catch (const std::exception& e) {  // a bad MAMBAKIT_ISA: say so, still list the rest
    s += "cpu isa: none chosen: " + std::string(e.what()) + "\n";
  }
  s += "blas core: " + mk::blas_core_description() + "\n";
  try {
    s += "float products: " + float_products_description() + "\n";
  } catch (const std::exception& e) {  // a bad MAMBAKIT_AMX or MAMBAKIT_ISA
    s += "float products: none chosen: " + std::string(e.what()) + "\n";
  }
#ifdef MAMBAKIT_HAVE_CUDA
  s += "cuda: built\n";
#else
  s += "cuda: not built\n";
#endif
  const auto b = mk::dist::built_backends();
  std::string mpi = "not built", nccl = "not built";
  for (const auto& x : b) {
    if (x.rfind("mpi", 0) == 0) mpi = "built, " + x;
    if (x.rfind("nccl", 0) == 0) nccl = "built, " + x;
  }
  s += "mpi: " + mpi + "\nnccl: " + nccl + "\n";
  std::string list;
  for (const auto& x : b) list += (list.empty() ? "" : ", ") + x;
  s += "data parallelism: " + (b.empty() ? std::string("none (built without MPI)") : list) + "\n";
  return s;
}

// A data-parallel job ends as a whole: the failing rank says which it is and
// why, in one line, then ends every rank (MPI_Abort) with `code`. Rank 0
// reports at once; another rank waits a moment first, so that when all fail
// alike, rank 0's line is the one printed.
[[noreturn]] void end_job(const std::string& cmd, const char* kind, const char* what, int code) {
  auto& w = mk::dist::world();
  if (w.rank() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::fprintf(stderr, "mambakit %s: %s: rank %d of %d: %s\n", cmd.c_str(), kind, w.rank(), w.size(), what);
  std::fflush(stderr);
  w.abort(code);
  std::_Exit(code);  // not reached: abort ends the process
}

// Ends MPI when main returns (MPI_Finalize), whatever the exit code.
struct WorldGuard {
  ~WorldGuard() { mk::dist::finalize_world(); }
};

}  // namespace

int main(int argc, char** argv) {
  // Before anything else: OpenBLAS picked its kernels as it loaded, and a
  // pre-AVX2 set on an AVX2 or AVX-512 CPU means one exec with better ones.
  mk::restart_with_better_blas_core(argv);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << top_help();
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::cout << version_text();
    return 0;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  mk::set_cpu_threads(0);  // OpenBLAS at one thread; an OMP_NUM_THREADS too large for the machine clamped
  WorldGuard world_guard;
  // Before the job is joined every rank parses the same arguments and
  // config, so usage and config mistakes are printed by the first rank alone
  // (the launcher ends the job when any rank exits non-zero).
  const mk::dist::Launch launch = mk::dist::detect_launch();
  const bool quiet_rank = launch.rank != 0;
  try {
    // MAMBAKIT_ISA and MAMBAKIT_AMX are read on first use: a bad value is
    // refused here, before any work, not at a run's first product.
    mk::amx_products_active();
    if (cmd == "train") return cmd_train(args);
    if (cmd == "eval") return cmd_eval(args);
    if (cmd == "lra") return cmd_lra(args);
    if (cmd == "generate") return cmd_generate(args);
    if (cmd == "info") return cmd_info(args);
    if (cmd == "plot") return cmd_plot(args);
    if (cmd == "logits") return cmd_logits(args);
    if (cmd == "bench") return cmd_bench(args);
    if (cmd == "prepare") return cmd_prepare(args);
    if (cmd == "tokenize") return mk::exp::cmd_tokenize(args);
    if (cmd == "tokenizer") return mk::exp::cmd_tokenizer(args);
    if (cmd == "sweep") return mk::exp::cmd_sweep(args);
    const std::vector<std::string> cmds = {"train", "eval", "generate", "info", "plot", "logits", "bench", "prepare", "lra", "tokenize", "tokenizer", "sweep", "--version", "--help"};
    throw UsageError("unknown command '" + cmd + "'" + mk::tasks::did_you_mean(cmd, cmds) +
                     " (see mambakit --help)");
  } catch (const UsageError& e) {
    if (mk::dist::world().size() > 1) end_job(cmd, "usage error", e.what(), 2);
    if (!quiet_rank) std::fprintf(stderr, "mambakit %s: usage error: %s\n", cmd.c_str(), e.what());
    return 2;
  } catch (const mk::tasks::ConfigError& e) {
    if (mk::dist::world().size() > 1) end_job(cmd, "config error", e.what(), 2);
    if (!quiet_rank) std::fprintf(stderr, "mambakit %s: config error: %s\n", cmd.c_str(), e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "mambakit %s: error: out of memory (a smaller model, batch or sequence length needs less)\n",
                 cmd.c_str());
    return 1;
  } catch (const std::exception& e) {
    if (mk::dist::world().size() > 1) end_job(cmd, "error", e.what(), 1);
    if (launch.world > 1)  // before the job was joined: still name the rank
      std::fprintf(stderr, "mambakit %s: error: rank %d of %d: %s\n", cmd.c_str(), launch.rank, launch.world,
                   e.what());
    else
      std::fprintf(stderr, "mambakit %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
