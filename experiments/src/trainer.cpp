#include "mambakit/experiments/trainer.h"
#include "mambakit/experiments/memory_estimate.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>

#include "mambakit/blas_core.h"
#include "mambakit/cpu_isa.h"
#include "mambakit/datasets/tokenizer.h"
#include "mambakit/error.h"
#include "mambakit/evaluation/perplexity.h"
#include "mambakit/experiments/dna_audio.h"
#include "mambakit/experiments/plot.h"
#include "mambakit/experiments/trainer_state.h"
#include "mambakit/io/atomic_file.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/io/safetensors.h"
#include "mambakit/models/flops.h"
#include "mambakit/ops/optim.h"
#include "mambakit/tasks/language_task.h"
#include "mambakit/threads.h"


namespace mk::exp {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const char* kStateFile = "trainer_state.json";
constexpr int kStateFormat = 1;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string format_eta(double seconds) {
  char buf[32];
  const long s = long(seconds + 0.5);
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

// --- signals: the loop polls the flag after each step ---------------------
volatile std::sig_atomic_t g_signal = 0;
// The first SIGINT or SIGTERM asks for a stop after the step (with a
// checkpoint); a second one of either kind means the user will not wait for
// the step, so the process ends here. That is safe: checkpoints are written
// under temporary names and renamed, so the last complete one stays.
extern "C" void on_signal(int sig) {
  if (g_signal) {
    static const char msg[] = "\ntrain: second signal: stopping now, without finishing the step\n";
    const ssize_t n = ::write(2, msg, sizeof msg - 1);  // async-signal-safe, unlike stdio
    (void)n;
    ::_exit(128 + sig);
  }
  g_signal = sig;
  static const char msg[] = "\ntrain: stopping after this step; signal again to stop at once\n";
  const ssize_t n = ::write(2, msg, sizeof msg - 1);
  (void)n;
}

// Installs the handlers for one run() and restores the previous ones after.
class SignalGuard {
 public:
  SignalGuard() {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

// CPU threads per rank: the configured number, else (with several ranks on
// a node and OMP_NUM_THREADS unset) the node's cores shared out, so the
// ranks do not oversubscribe it; 0 keeps OpenMP's default.
int threads_per_rank(int configured, const dist::Communicator& comm) {
  if (configured > 0 || comm.local_size() <= 1 || std::getenv("OMP_NUM_THREADS")) return configured;
  return std::max(1, omp_get_num_procs() / comm.local_size());
}

// Tests of failure handling: MAMBAKIT_TEST_FAIL=RANK:STEP:HOW makes rank RANK
// end after step STEP, by SIGKILL (HOW = kill) or by an exception (error),
// or sends itself SIGTERM (term: the job stops together after the next step).
void test_failure_hook(int rank, long step) {
  static const char* spec = std::getenv("MAMBAKIT_TEST_FAIL");
  if (!spec) return;
  int r = -1;
  long s = -1;
  char how[16] = {0};
  if (std::sscanf(spec, "%d:%ld:%15s", &r, &s, how) != 3 || r != rank || s != step) return;
  if (std::string(how) == "kill") std::raise(SIGKILL);
  if (std::string(how) == "term") {
    std::raise(SIGTERM);
    return;
  }
  throw Error("MAMBAKIT_TEST_FAIL: a failure injected after step " + std::to_string(step));
}

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal"; }

// The keys that define what is trained: a resumed run must not change them.
void check_resume_compatible(const RunConfig& saved, const RunConfig& now, const std::string& path) {
  const auto a = config_values(saved), b = config_values(now);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  for (const auto& k : keys) {
    if (!(k.rfind("model.", 0) == 0 || k.rfind("task.", 0) == 0 || k.rfind("data.", 0) == 0)) continue;
    const std::string va = a.count(k) ? a.at(k) : "(unset)", vb = b.count(k) ? b.at(k) : "(unset)";
    if (va == vb) continue;
    if (k == "model.vocab_size" && (va == "0" || vb == "0")) continue;  // 0: the task's
    if (k == "data.path" && saved.data.paths.size() == now.data.paths.size()) {
      bool same = true;
      std::error_code ec;
      for (size_t i = 0; i < now.data.paths.size(); ++i)
        same = same && fs::equivalent(saved.data.paths[i], now.data.paths[i], ec);
      if (same) continue;
    }
    throw ConfigError(now.where_of(k) + ": --resume: " + k + " is " + vb + " here but " + va +
                      " in the run being resumed (" + path +
                      "); model, task and data must stay the same");
  }
}

// The config file a run was read from, when it is a file ("" for the flag
// form or a config given as text).
std::string config_file(const RunConfig& cfg) {
  std::error_code ec;
  return fs::is_regular_file(cfg.source, ec) ? cfg.source : "";
}

// The tokenizer files data.tokenizer names (none for bytes). Checkpoints
// copy them, so they must outlive the start of the run.
std::vector<std::string> tokenizer_files_read(const RunConfig& cfg) {
  std::vector<std::string> out;
  if (!cfg.data.tokenizer.empty())
    for (const auto& f : data::tokenizer_files(cfg.data.tokenizer)) out.push_back(f.first);
  return out;
}

// The files a fresh start reads that may lie inside its own output.dir.
std::vector<std::string> files_being_read(const RunConfig& cfg) {
  std::vector<std::string> keep = tokenizer_files_read(cfg);
  if (const std::string c = config_file(cfg); !c.empty()) keep.push_back(c);
  return keep;
}

bool is_inside(const std::string& path, const std::string& dir) {
  std::error_code ec;
  const fs::path p = fs::canonical(path, ec), d = fs::canonical(dir, ec);
  if (ec) return false;
  for (fs::path a = p; !a.empty(); a = a.parent_path()) {
    if (a == d) return true;
    if (a == a.parent_path()) break;
  }
  return false;
}

// output.overwrite deletes the old run once the new one has a checkpoint:
// refused up front when that would take anything but a run's own files.
void check_overwritable(const RunConfig& cfg) {
  const std::string& d = cfg.output.dir;
  const std::string foreign = non_run_files(d);
  if (!foreign.empty())
    throw Error(d + ": output.overwrite: not replacing this directory: it holds " + foreign +
                "; an overwrite deletes only a mambakit run's own files, so move them away or choose "
                "another output.dir");
  const std::string config = config_file(cfg);
  if (!config.empty() && is_inside(config, d))
    throw Error(d + ": output.overwrite: the config being read (" + config +
                ") is inside the run it would replace; copy it out of the run directory first");
  // Every checkpoint copies the tokenizer from data.tokenizer, which the
  // swap would take away.
  for (const auto& f : tokenizer_files_read(cfg))
    if (is_inside(f, d))
      throw Error(d + ": output.overwrite: the tokenizer being read (" + f +
                  ") is inside the run it would replace; copy it out of the run directory first");
}

}  // namespace

// --- the flag form ----------------------------------------------------------

RunConfig language_config(const TrainOptions& o) {
  RunConfig c;
  c.source = "<command line>";
  c.description = "byte-level language model (the flag form of mambakit train)";
  c.model = o.model;
  if (c.model.mixers.empty()) c.model.mixers = {"mamba"};
  c.task_name = "language";
  c.data.paths = {o.data};
  c.data.seq_len = o.seq_len;
  c.data.split = {o.train_fraction, 1 - o.train_fraction};
  c.train.steps = o.steps;
  c.train.batch_size = o.batch;
  c.train.lr = o.lr;
  c.train.min_lr = o.min_lr;
  c.train.warmup = o.warmup;
  c.train.weight_decay = o.weight_decay;
  c.train.clip = o.clip;
  c.train.seed = long(o.seed);
  c.eval.max_sequences = long(o.eval_windows);
  c.eval.metrics = {"loss", "bpb"};
  c.output.dir = o.out;
  c.output.log_every = o.log_every;
  c.output.save_every = o.save_every;
  c.output.overwrite = true;  // as the flag form always did
  validate(c);
  return c;
}

// --- device -------------------------------------------------------------------

std::vector<std::string> check_device(const RunConfig& cfg) {
  std::vector<std::string> notes;
  const Device d = parse_device(cfg.train.device);
  std::string why;
  if (d == Device::cuda && !cuda_backend_available(&why))
    throw Error(cfg.where_of("train.device") + ": train.device is 'cuda' but " + why +
                "; use train.device=cpu");
  if (cfg.train.precision == "bf16" && d == Device::cpu)
    notes.push_back("train.precision=bf16 applies to CUDA; the CPU trains in fp32");
  return notes;
}

// --- construction and resume --------------------------------------------------

Trainer::Trainer(const RunConfig& cfg, Init) : cfg_(cfg) {
  for (const auto& n : check_device(cfg_)) std::fprintf(stderr, "note: %s\n", n.c_str());
  set_cpu_threads(threads_per_rank(cfg_.train.threads, *comm_));
  bool unreadable = false;
  const std::string data_why = missing_data_problem(cfg_, &unreadable);
  if (unreadable) throw Error(data_why);
  try {
    task_ = tasks::make_task(cfg_.task_spec());
  } catch (const ConfigError&) {
    throw;
  } catch (const Error&) {  // a missing data file: say what makes it
    if (!data_why.empty()) throw Error(data_why);
    throw;
  }

  const int tv = task_->vocab_size();
  if (cfg_.model.vocab_size == 0) cfg_.model.vocab_size = tv;
  if (cfg_.model.vocab_size < tv)
    throw ConfigError(cfg_.where_of("model.vocab_size") + ": model.vocab_size " +
                      std::to_string(cfg_.model.vocab_size) + " is smaller than the vocabulary of task '" +
                      task_->name() + "' (" + std::to_string(tv) + ")");

  const auto splits = task_->splits();
  if (std::find(splits.begin(), splits.end(), cfg_.eval.split) == splits.end())
    throw ConfigError(cfg_.where_of("eval.split") + ": eval.split: task '" + task_->name() +
                      "' has no split '" + cfg_.eval.split + "' (it has: " + join(splits) + ")" +
                      tasks::did_you_mean(cfg_.eval.split, splits));
  const auto known = task_->metric_names();
  eval_metrics_ = cfg_.eval.metrics.empty() ? task_->default_metrics() : cfg_.eval.metrics;
  for (const auto& m : eval_metrics_)
    if (std::find(known.begin(), known.end(), m) == known.end())
      throw ConfigError(cfg_.where_of("eval.metrics") + ": eval.metrics: task '" + task_->name() +
                        "' has no metric '" + m + "' (it has: " + join(known) + ")" +
                        tasks::did_you_mean(m, known));
  best_metric_ = cfg_.eval.best_metric.empty() ? cfg_.eval.split + "_" + eval_metrics_[0]
                                               : cfg_.eval.best_metric;
  std::vector<std::string> reported;
  for (const auto& m : eval_metrics_) reported.push_back(cfg_.eval.split + "_" + m);
  if (std::find(reported.begin(), reported.end(), best_metric_) == reported.end())
    throw ConfigError(cfg_.where_of("eval.best_metric") + ": eval.best_metric '" + best_metric_ +
                      "' is not among the evaluated metrics (" + join(reported) + ")" +
                      tasks::did_you_mean(best_metric_, reported));
  const std::string bare = best_metric_.substr(cfg_.eval.split.size() + 1);
  best_higher_ = cfg_.eval.best_mode == "auto" ? task_->higher_is_better(bare) : cfg_.eval.best_mode == "max";

  if (cfg_.train.steps > 0) {
    total_steps_ = cfg_.train.steps;
  } else {
    const double per_epoch = task_->train_tokens();
    if (!(per_epoch > 0))
      throw ConfigError(cfg_.where_of("train.epochs") + ": train.epochs: task '" + task_->name() +
                        "' has no fixed training set; set train.steps");
    // A pair task's example is two rows of seq_len tokens.
    const double per_step = double(cfg_.train.batch_size) * cfg_.train.grad_accum * task_->seq_len() *
                            (task_->pair_inputs() ? 2 : 1);
    // Counted in doubles first: train.epochs=1e30 overflowed to 1 step.
    const double steps = std::ceil(cfg_.train.epochs * per_epoch / per_step);
    if (!(steps <= 1e12))
      throw ConfigError(cfg_.where_of("train.epochs") + ": train.epochs " + std::to_string(cfg_.train.epochs) +
                        " makes " + (std::isfinite(steps) ? std::to_string(steps) : std::string("infinitely many")) +
                        " steps (at most 1e12); give fewer epochs or set train.steps");
    total_steps_ = std::max(1L, long(steps));
  }

  // A model that reads the future would see the token it is asked to
  // predict: refused before any work, not found by generation afterwards.
  if (task_->num_classes() == 0 && cfg_.model.bidirectional)
    throw ConfigError(cfg_.where_of("model.bidirectional") + ": model.bidirectional: task '" + task_->name() +
                      "' predicts the next token, which a bidirectional model would see; use it for "
                      "classification tasks (lra_*, dna_species)");
  // The end-of-run sample's prompt, encoded now rather than after training
  // (a DNA prompt of other letters failed only once the run had finished).
  if (task_->num_classes() == 0 && cfg_.generate.tokens > 0 && !cfg_.generate.prompt.empty()) {
    try {
      task_->encode(cfg_.generate.prompt);
    } catch (const Error& e) {
      throw ConfigError(cfg_.where_of("generate.prompt") + ": generate.prompt: " + e.what());
    }
  }
  if (task_->num_classes() > 0) {
    cfg_.model.n_classes = task_->num_classes();
    cfg_.model.pooling = task_->pooling();
    cfg_.model.pair_classifier = task_->pair_inputs();
  }
  // Before the model, its gradients and AdamW moments exist: a run that
  // cannot fit is refused with the estimate and the key that drives it.
  {
    const double per_rank = std::ceil(double(cfg_.train.batch_size) / std::max(1, comm_->size()));
    const int th = threads_per_rank(cfg_.train.threads, *comm_);
    check_train_memory(cfg_, cfg_.model, per_rank * (task_->pair_inputs() ? 2 : 1), task_->seq_len(),
                       th > 0 ? th : omp_get_max_threads());
  }
  model_ = std::make_unique<SequenceModel<float>>(cfg_.model);
  m_.assign_zero(cpu_memory(), model_->num_params());
  v_.assign_zero(cpu_memory(), model_->num_params());
}

// The model is initialised or loaded on the CPU; from here on its
// parameters, gradients and AdamW moments live on the training device.
void Trainer::place_on_device() {
  const Device d = parse_device(cfg_.train.device);
  model_->to(d);
  Backend<float>& be = model_->params().backend();
  be.set_bf16_matmuls(cfg_.train.precision == "bf16");
  m_.bind(be);
  v_.bind(be);
  if (comm_->size() > 1) {
    auto& ps = model_->params();
    const auto bucket = size_t(cfg_.train.bucket_mb * 1024 * 1024 / sizeof(float));
    reducer_ = std::make_unique<dist::GradReducer>(*comm_, ps.grad(), ps.size(), d, bucket);
  }
}

Trainer::Trainer(const RunConfig& cfg) : Trainer(cfg, Init{}) {
  model_->init(uint64_t(cfg_.train.seed));
  if (!cfg_.init_from.empty()) std::fprintf(stderr, "%s\n", init_from(*model_, cfg_.init_from).c_str());
  place_on_device();
}

void Trainer::claim_run_dir() {
  if (session_ || !writes_run_dir()) return;  // rank 0 alone owns the run directory
  const std::string& d = cfg_.output.dir;
  if (fs::exists(d) && !fs::is_directory(d)) throw Error(d + ": output.dir exists and is not a directory");
  auto session = std::make_unique<RunDirSession>(d);  // first: nothing below races another writer
  if (is_failed_start(d)) {
    std::fprintf(stderr, "note: %s holds a start that ended before its first checkpoint; starting it again\n",
                 d.c_str());
    clear_failed_start(d, files_being_read(cfg_));
  } else if (holds_run(d)) {
    if (!cfg_.output.overwrite)
      throw ConfigError(cfg_.where_of("output.dir") + ": output.dir '" + d +
                        "' already holds a run; continue it with --resume, or replace it with "
                        "--set output.overwrite=true");
    check_overwritable(cfg_);
    session->stage();
  }
  session_ = std::move(session);
}

std::unique_ptr<Trainer> Trainer::resume(const RunConfig& cfg) {
  const std::string dir = cfg.output.dir;
  const std::string nothing = dir + ": nothing to resume (no checkpoints/step_N holding a " + kStateFile + ")";
  if (!fs::is_directory(dir)) throw Error(nothing);
  // Rank 0 alone locks the run directory and writes there; the other ranks
  // only read the checkpoint.
  const bool writer = dist::world().rank() == 0;
  std::unique_ptr<RunDirSession> session;
  if (writer) {
    session = std::make_unique<RunDirSession>(dir);  // before reading: no writer may change it meanwhile
    clean_stale_temporaries(dir);
  }
  std::string ckpt = latest_checkpoint(dir);
  if (ckpt.empty() && fs::exists(fs::path(dir) / kStateFile)) ckpt = dir;
  if (ckpt.empty()) {
    // Rank 0 decides (and clears the failed start, which the others would
    // race with); where it finds nothing to resume its error ends the job.
    if (!writer) return std::make_unique<Trainer>(cfg);
    if (!is_failed_start(dir)) throw Error(nothing);
    // Nothing was trained to continue from: begin again, as a fresh start would.
    auto t = std::make_unique<Trainer>(cfg);
    std::fprintf(stderr, "note: %s has no checkpoint (its start ended before the first one); starting from step 0\n",
                 dir.c_str());
    clear_failed_start(dir, files_being_read(cfg));
    t->session_ = std::move(session);
    return t;
  }
  const std::string saved_path = dir + "/config.yaml";
  if (fs::exists(saved_path)) check_resume_compatible(load_config(saved_path), cfg, saved_path);

  std::unique_ptr<Trainer> t(new Trainer(cfg, Init{}));
  // The same path may hold another tokenizer by now: its ids would mean
  // other text, so the checkpoint's copy decides.
  if (const auto* lt = dynamic_cast<const tasks::LanguageTask*>(t->task_.get()))
    if (!data::tokenizer_files(ckpt).empty() && !data::same_tokenizer(ckpt, lt->tokenizer_source()))
      throw Error(ckpt + ": this run was trained with the tokenizer saved there, and data.tokenizer (" +
                  lt->tokenizer_source() + ") now holds a different one");
  load_params(ckpt + "/model.safetensors", *t->model_);

  const std::string opt_path = ckpt + "/optimizer.safetensors";
  SafetensorsData opt = read_safetensors(opt_path);
  const size_t n = t->model_->num_params();
  for (const char* name : {"adam.m", "adam.v"})
    if (size_t(opt.get(name).numel()) != n || opt.get(name).dtype() != DType::f32)
      throw Error(opt_path + ": '" + name + "' does not match the model's " + std::to_string(n) +
                  " parameters");
  t->m_.from_host(cpu_memory(), opt.get("adam.m").data<float>(), n);
  t->v_.from_host(cpu_memory(), opt.get("adam.v").data<float>(), n);
  t->place_on_device();

  const std::string state_path = ckpt + "/" + kStateFile;
  const TrainerState st = read_trainer_state(state_path);
  t->step_ = st.step;
  t->opt_step_ = st.opt_step;
  try {
    t->task_->set_sampler_state(st.sampler_state);
  } catch (const Error& e) {
    throw Error(state_path + ": sampler_state: " + e.what());
  }
  t->nonfinite_run_ = st.nonfinite_run;
  t->nonfinite_total_ = st.nonfinite_total;
  t->tokens_ = st.tokens;
  t->prior_seconds_ = st.wall_seconds;
  t->best_ = st.best;
  t->last_eval_ = st.last_eval;
  t->last_eval_step_ = st.last_eval_step;
  t->last_save_step_ = t->step_;
  t->resumed_ = true;
  t->session_ = std::move(session);
  return t;
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& run_dir, long new_steps) {
  RunConfig cfg = load_config(run_dir + "/config.yaml");
  cfg.output.dir = run_dir;
  if (new_steps > 0) {
    cfg.train.steps = new_steps;
    cfg.train.epochs = 0;
  }
  return resume(cfg);
}

// --- one step -------------------------------------------------------------------

double Trainer::lr_at(long step) const {
  const auto& t = cfg_.train;
  if (t.schedule == "cosine") return ops::cosine_lr(step, t.warmup, total_steps_, t.lr, t.min_lr);
  if (step < t.warmup) return t.lr * double(step + 1) / double(t.warmup);
  if (t.schedule == "constant") return t.lr;
  // linear: from lr at the end of warmup to min_lr at the last step
  const double span = double(std::max(1L, total_steps_ - t.warmup));
  const double frac = std::min(1.0, double(step - t.warmup) / span);
  return t.lr + (t.min_lr - t.lr) * frac;
}

double Trainer::train_on_part(const tasks::TokenBatch& global, int accum, bool last_micro_batch) {
  if (comm_->size() == 1) {
    model_->forward(global.ids.data(), global.batch, global.len, global.lengths_or_null());
    // Each micro-batch's mean loss, weighted 1/accum: the mean over the
    // effective batch when the micro-batches have equal target counts.
    return model_->backward(global.loss_targets(), 1.0 / accum) / accum;
  }
  const tasks::TokenBatch part = tasks::batch_part(global, comm_->rank(), comm_->size());
  if (part.batch == 0) return 0;  // more ranks than examples: this one adds nothing
  // The model's loss is the mean over the part's targets; weighted by the
  // part's share of the global batch's targets, the ranks' terms add up to
  // the mean over the global batch, as one process would compute it.
  const long all = tasks::scored_targets(global);
  const double share = all > 0 ? double(tasks::scored_targets(part)) / double(all) : 0.0;
  model_->forward(part.ids.data(), part.batch, part.len, part.lengths_or_null());
  // In the last micro-batch the gradients are final layer by layer, so
  // their sums start while the backward goes on.
  if (last_micro_batch) model_->set_grad_ready_hook([this](size_t from) { reducer_->ready(from); });
  const double loss = model_->backward(part.loss_targets(), share / accum) * share / accum;
  model_->set_grad_ready_hook(nullptr);
  return loss;
}

double Trainer::reduce_over_ranks(double local_loss) {
  if (comm_->size() == 1) return local_loss;
  const auto t0 = Clock::now();
  reducer_->finish();
  comm_seconds_ += seconds_since(t0);
  // One small sum: the loss, and whether any rank was asked to stop (all
  // ranks must leave the loop after the same step).
  double v[2] = {local_loss, g_signal ? 1.0 : 0.0};
  comm_->sum(v, 2);
  agreed_signal_ = v[1] > 0 ? (g_signal ? int(g_signal) : SIGTERM) : 0;
  return v[0];
}

double Trainer::step() {
  auto& ps = model_->params();
  const int accum = cfg_.train.grad_accum;
  ps.zero_grad();
  double loss = 0;
  for (int k = 0; k < accum; ++k) {
    // Every rank draws the whole global batch from the same stream, so the
    // data order and the sampler state do not depend on the world size.
    const tasks::TokenBatch b = task_->next_train_batch(cfg_.train.batch_size);
    MK_CHECK(b.batch > 0 && b.len > 0 && b.ids.size() == size_t(b.batch) * b.len &&
                 b.targets.size() == b.ids.size(),
             "task '" + task_->name() + "' produced a malformed batch");
    loss += train_on_part(b, accum, k + 1 == accum);
    tokens_ += double(b.ids.size());
  }
  loss = reduce_over_ranks(loss);
  Backend<float>& be = ps.backend();
  last_norm_ = cfg_.train.clip > 0 ? be.clip_grad_norm(ps.grad(), ps.size(), cfg_.train.clip)
                                   : be.global_norm(ps.grad(), ps.size());
  const long s = step_++;
  if (!std::isfinite(loss) || !std::isfinite(last_norm_)) {
    ++nonfinite_run_;
    ++nonfinite_total_;
    return std::isfinite(loss) ? std::nan("") : loss;
  }
  nonfinite_run_ = 0;
  ops::AdamWHyper h;
  h.lr = lr_at(s);
  h.beta1 = cfg_.train.beta1;
  h.beta2 = cfg_.train.beta2;
  h.eps = cfg_.train.eps;
  h.weight_decay = cfg_.train.weight_decay;
  ++opt_step_;
  for (const auto& e : ps.entries())
    be.adamw_update(ps.data() + e.offset, ps.grad() + e.offset, m_.data() + e.offset,
                    v_.data() + e.offset, e.numel, h, opt_step_, e.decay);
  return loss;
}

// --- checkpoints -------------------------------------------------------------------

json Trainer::state_json() const {
  return json{{"format", kStateFormat},
              {"step", step_},
              {"opt_step", opt_step_},
              {"total_steps", total_steps_},
              {"sampler_state", task_->sampler_state()},
              {"nonfinite_run", nonfinite_run_},
              {"nonfinite_total", nonfinite_total_},
              {"tokens", tokens_},
              {"wall_seconds", prior_seconds_ + seconds_since(session_start_)},
              {"best", best_},
              {"last_eval", last_eval_},
              {"last_eval_step", last_eval_step_}};
}

void Trainer::save(const std::string& run_dir) {
  if (!writes_run_dir()) {  // rank 0 writes; the others hold the same state
    last_save_step_ = step_;
    return;
  }
  fs::create_directories(run_dir);
  if (!fs::exists(fs::path(run_dir) / "config.yaml"))
    atomic_write_text(run_dir + "/config.yaml", dump_config(cfg_));
  const std::string ckpt = run_dir + "/checkpoints/step_" + std::to_string(step_);
  write_dir_atomically(ckpt, [&](const std::string& tmp) {
    save_model(tmp, *model_);
    save_tokenizer(tmp);
    test_save_delay();
    const Shape s{long(m_.size())};
    std::vector<float> m = m_.to_host(), v = v_.to_host();
    write_safetensors(tmp + "/optimizer.safetensors",
                      {{"adam.m", Tensor::borrow(m.data(), s, DType::f32)},
                       {"adam.v", Tensor::borrow(v.data(), s, DType::f32)}});
    test_save_delay();
    // Last: its presence marks the checkpoint complete.
    atomic_write_text(tmp + "/" + kStateFile, state_json().dump(2) + "\n");
  });
  publish_latest(ckpt, run_dir);
  prune_checkpoints(run_dir, cfg_.output.keep_last);
  last_save_step_ = step_;
}

// A model directory holds the tokenizer its ids mean (as transformers saves
// one), so generate, logits and eval read text the way training did.
void Trainer::save_tokenizer(const std::string& model_dir) const {
  if (const auto* lt = dynamic_cast<const tasks::LanguageTask*>(task_.get()))
    if (lt->tokenizer().name() != "bytes") data::copy_tokenizer(lt->tokenizer_source(), model_dir);
}

void Trainer::save_run() {
  save(write_dir());
  if (session_) session_->commit();
}

void Trainer::save_best() {
  if (!writes_run_dir()) return;
  write_dir_atomically(write_dir() + "/best", [&](const std::string& tmp) {
    save_model(tmp, *model_);
    save_tokenizer(tmp);
    atomic_write_text(tmp + "/best.json", best_.dump(2) + "\n");
  });
}

// --- evaluation ---------------------------------------------------------------------

std::map<std::string, double> Trainer::evaluate(const std::string& split,
                                                const std::vector<std::string>& metrics) {
  const int batch = cfg_.eval.batch_size > 0 ? cfg_.eval.batch_size : cfg_.train.batch_size;
  return eval::evaluate_task(*model_, *task_, split, metrics.empty() ? eval_metrics_ : metrics, batch,
                             size_t(cfg_.eval.max_sequences), *comm_);
}

double Trainer::validation_bpb() { return evaluate("val", {"bpb"}).at("bpb"); }

void Trainer::evaluate_and_track(MetricsLog& log) {
  const std::string& split = cfg_.eval.split;
  json rec{{"step", step_}, {"type", "eval"}, {"split", split}};
  last_eval_ = json::object();
  std::string line;
  char buf[64];
  const auto result = evaluate(split);
  for (const auto& k : eval_metrics_) {
    const double v = result.at(k);
    const std::string name = split + "_" + k;
    rec[name] = v;
    last_eval_[name] = v;
    std::snprintf(buf, sizeof buf, "  %s %.4f", name.c_str(), v);
    line += buf;
  }
  last_eval_step_ = step_;
  log.append(rec);
  const double value = last_eval_.value(best_metric_, std::nan(""));
  bool improved = false;
  if (std::isfinite(value)) {
    const double prev = best_.is_null() ? std::nan("") : best_["value"].get<double>();
    improved = best_.is_null() || (best_higher_ ? value > prev : value < prev);
  }
  if (improved) {
    best_ = json{{"step", step_}, {"metric", best_metric_}, {"value", value}, {"metrics", last_eval_}};
    save_best();
  }
  if (writes_run_dir())
    std::fprintf(stderr, "eval step %ld:%s%s\n", step_, line.c_str(), improved ? "  (best)" : "");
}

json Trainer::summary(double wall) const {
  // Steady state: the steps after warm-up, or every step of this session
  // when it had no more than the warm-up ones.
  const bool steady = steady_steps_ > 0 && steady_seconds_ > 0;
  const double st_tokens = steady ? steady_tokens_ : session_train_tokens_;
  const double st_seconds = steady ? steady_seconds_ : session_train_seconds_;
  // Model FLOPs of training (mambakit/models/flops.h) over every token trained on.
  const double flops_per_token = train_flops_per_token(
      cfg_.model, task_->seq_len(), cfg_.train.batch_size * (task_->pair_inputs() ? 2 : 1));
  json s{{"steps", step_},
         {"total_steps", total_steps_},
         {"finished", step_ >= total_steps_},
         {"interrupted", signal_ ? json(signal_name(signal_)) : json(nullptr)},
         {"wall_seconds", wall},
         {"tokens", tokens_},
         {"tokens_per_second", wall > 0 ? tokens_ / wall : 0.0},
         {"train_seconds", session_train_seconds_},
         {"steady_tokens_per_second", st_seconds > 0 ? st_tokens / st_seconds : 0.0},
         {"steady_steps", steady ? steady_steps_ : session_steps_},
         {"nonfinite_steps", nonfinite_total_},
         {"parameters", model_->num_params()},
         {"train_flops", flops_per_token * tokens_},
         {"train_flops_per_token", flops_per_token},
         // What the CPU work ran with, for reading the throughput figures.
         {"cpu_isa", isa_name(active_isa())},
         {"blas_core", blas_core_name()},
         {"float_products", float_products_name()},
         {"task", task_->name()},
         {"final", last_eval_},
         {"final_step", last_eval_step_},
         {"best", best_.is_null() ? json::object() : best_["metrics"]},
         {"best_step", best_.is_null() ? json(nullptr) : best_["step"]},
         {"best_metric", best_metric_}};
  if (comm_->size() > 1) {
    // Time waiting for the gradient sums after the backward (what overlap
    // did not hide), as a share of the training steps' time.
    s["world_size"] = comm_->size();
    s["distributed_backend"] = comm_->backend_name();
    s["communication_seconds"] = comm_seconds_;
    s["communication_fraction"] = session_train_seconds_ > 0 ? comm_seconds_ / session_train_seconds_ : 0.0;
  }
  return s;
}

// The parameters and AdamW moments hashed on every rank and compared with
// rank 0's. Ranks start from the same seed or checkpoint and take identical
// steps, so a difference means a bug or a bad node: stop before it spreads.
void Trainer::check_replicas_agree(const std::string& when) {
  if (comm_->size() == 1) return;
  uint64_t h = dist::fnv1a(nullptr, 0);
  for (const auto& host : {model_->params().host_data(), m_.to_host(), v_.to_host()})
    h = dist::fnv1a(host.data(), host.size() * sizeof(float), h);
  uint64_t h0 = h;
  comm_->broadcast(&h0, sizeof h0, 0);
  double differ = h != h0 ? 1.0 : 0.0;
  comm_->sum(&differ, 1);
  if (differ > 0)
    throw Error("data parallelism: " + std::to_string(long(differ)) + " of " + std::to_string(comm_->size()) +
                " ranks hold parameters different from rank 0's " + when + " (step " + std::to_string(step_) +
                (h != h0 ? "; this rank's hash " + std::to_string(h) + ", rank 0's " + std::to_string(h0) : "") +
                ")");
}

// The confusion matrix on eval.split: confusion.json and a table on stderr.
void Trainer::write_confusion(const std::string& dir) {
  const int batch = cfg_.eval.batch_size > 0 ? cfg_.eval.batch_size : cfg_.train.batch_size;
  const auto cm = confusion_on_split(*model_, *task_, cfg_.eval.split, batch, size_t(cfg_.eval.max_sequences));
  const auto names = tasks::class_names(*task_);
  json j = cm.to_json(names);
  j["split"] = cfg_.eval.split;
  j["step"] = step_;
  atomic_write_text(dir + "/confusion.json", j.dump(2) + "\n");
  std::fprintf(stderr, "confusion matrix (%s, step %ld; rows: true class, columns: predicted):\n%s",
               cfg_.eval.split.c_str(), step_, cm.to_text(names).c_str());
}

// --- the loop ---------------------------------------------------------------------------

void Trainer::print_start_line(const std::string& dir) const {
  std::string mixers = join(cfg_.model.mixers, "/");
  std::string ranks;
  if (comm_->size() > 1)
    ranks = ", data-parallel over " + std::to_string(comm_->size()) + " ranks (" + comm_->backend_name() +
            ", about " + std::to_string(cfg_.train.batch_size / comm_->size()) + " sequences each)";
  std::fprintf(stderr,
               "train: task %s, model %zu parameters (%d layers of %s, d_model %d), %ld steps of %d x %s%d "
               "tokens%s%s, run dir %s\n",
               task_->name().c_str(), model_->num_params(), cfg_.model.n_layer, mixers.c_str(),
               cfg_.model.d_model, total_steps_, cfg_.train.batch_size * cfg_.train.grad_accum,
               task_->pair_inputs() ? "2 x " : "", task_->seq_len(), ranks.c_str(),
               resumed_ ? (", resuming at step " + std::to_string(step_)).c_str() : "", dir.c_str());
}

json Trainer::run(long until) {
  claim_run_dir();
  const std::string& dir = cfg_.output.dir;  // the run's name; files go to write_dir()
  // Rank 0 owns the run directory; the other ranks write nothing there.
  const bool writer = writes_run_dir();
  MetricsLog log;  // never opened on the other ranks: appending is then a no-op
  if (writer) {
    clean_stale_temporaries(write_dir());
    atomic_write_text(write_dir() + "/config.yaml", dump_config(cfg_));
    log.open(write_dir() + "/metrics.jsonl", resumed_ ? step_ : -1);
  }
  SignalGuard guard;
  session_start_ = Clock::now();
  check_replicas_agree("at start-up");

  const bool tty = writer && isatty(fileno(stderr));
  if (writer) print_start_line(dir);

  const long first = step_;
  const double tokens_at_start = tokens_;
  double train_seconds = 0, loss_sum = 0;
  long loss_n = 0;
  double interval_tokens = 0, interval_seconds = 0;
  double last_draw = -1;
  auto progress = [&](bool newline) {
    const long done = step_ - first;
    const double tok_s = train_seconds > 0 ? (tokens_ - tokens_at_start) / train_seconds : 0;
    const double eta = done > 0 ? train_seconds / double(done) * double(total_steps_ - step_) : 0;
    char buf[256];
    std::snprintf(buf, sizeof buf, "step %ld/%ld  loss %s  lr %.2e  %.0f tok/s  ETA %s", step_,
                  total_steps_,
                  loss_n ? std::to_string(loss_sum / double(loss_n)).substr(0, 6).c_str() : "n/a",
                  lr_at(std::max(0L, step_ - 1)), tok_s, format_eta(eta).c_str());
    if (!writer) return;
    if (tty) std::fprintf(stderr, "\r%s\033[K%s", buf, newline ? "\n" : "");
    else std::fprintf(stderr, "%s\n", buf);
    std::fflush(stderr);
  };

  while (step_ < total_steps_ && !(until > 0 && step_ >= until)) {
    test_step_fault(step_ + 1);
    const auto t0 = Clock::now();
    const double tokens_before = tokens_;
    const double loss = step();
    const double dt = seconds_since(t0);
    train_seconds += dt;
    // Steady-state throughput for summary.json: training steps only, after
    // the first kSteadyWarmup of this session (allocations, page faults).
    ++session_steps_;
    session_train_seconds_ += dt;
    session_train_tokens_ += tokens_ - tokens_before;
    if (session_steps_ > kSteadyWarmup) {
      ++steady_steps_;
      steady_seconds_ += dt;
      steady_tokens_ += tokens_ - tokens_before;
    }
    interval_seconds += dt;
    interval_tokens += tokens_ - tokens_before;
    if (std::isfinite(loss)) {
      loss_sum += loss;
      ++loss_n;
    } else {
      if (tty) std::fprintf(stderr, "\n");
      if (writer)
        std::fprintf(stderr, "step %ld: loss is not finite (%g); update skipped (%d in a row)\n", step_,
                     loss, nonfinite_run_);
      if (nonfinite_run_ >= cfg_.train.max_nonfinite) {
        // A failing overwrite never replaces the run it was to replace.
        const bool keep_old = session_ && session_->staged();
        if (!keep_old) {
          save_run();
          if (writer)
            atomic_write_text(write_dir() + "/summary.json",
                              summary(prior_seconds_ + seconds_since(session_start_)).dump(2) + "\n");
        }
        throw Error("train: the loss was not finite for " + std::to_string(nonfinite_run_) +
                    " steps in a row (steps " + std::to_string(step_ - nonfinite_run_ + 1) + "-" +
                    std::to_string(step_) + "), so training stopped; " +
                    (keep_old ? dir + " keeps the run it held (output.overwrite replaces it only once the "
                                      "new run has a checkpoint)"
                              : "checkpoint step_" + std::to_string(step_) + " in " + dir +
                                    " holds the weights from before the failures") +
                    ". Lower train.lr, raise train.warmup or check the data (train.max_nonfinite sets the limit)");
      }
    }
    const bool log_now = step_ % cfg_.output.log_every == 0 || step_ == total_steps_;
    if (log_now) {
      json rec{{"step", step_},
               {"type", "train"},
               {"loss", loss_n ? json(loss_sum / double(loss_n)) : json(nullptr)},
               {"lr", lr_at(step_ - 1)},
               {"grad_norm", std::isfinite(last_norm_) ? json(last_norm_) : json(nullptr)},
               {"tokens", tokens_},
               {"tokens_per_second", interval_seconds > 0 ? interval_tokens / interval_seconds : 0.0},
               {"elapsed_seconds", prior_seconds_ + seconds_since(session_start_)}};
      if (nonfinite_total_) rec["nonfinite_steps"] = nonfinite_total_;
      log.append(rec);
    }
    if (tty) {
      const double now = seconds_since(session_start_);
      if (now - last_draw > 0.1 || step_ == total_steps_) progress(false), last_draw = now;
    } else if (log_now) {
      progress(false);
    }
    if (log_now) loss_sum = 0, loss_n = 0, interval_tokens = 0, interval_seconds = 0;
    if (cfg_.eval.every > 0 && step_ % cfg_.eval.every == 0) {
      if (tty) std::fprintf(stderr, "\n");
      evaluate_and_track(log);
    }
    if (cfg_.output.save_every > 0 && step_ % cfg_.output.save_every == 0) save_run();
    const long check_every = cfg_.train.check_replicas_every;
    if (check_every > 0 && step_ % check_every == 0) check_replicas_agree("after a step");
    test_failure_hook(comm_->rank(), step_);
    // One process stops on a signal as soon as it sees it; ranks stop after
    // the step whose sums carried it, all at the same step.
    if (const int sig = comm_->size() == 1 ? int(g_signal) : agreed_signal_) {
      signal_ = sig;
      break;
    }
  }
  if (tty && step_ > first) std::fprintf(stderr, "\n");
  if (signal_ && session_ && session_->staged()) {
    // Interrupted before the overwrite's first checkpoint: the new run has
    // proved nothing, so the old one stays and the new one is dropped.
    log.close();
    std::fprintf(stderr, "train: stopped by %s before the first checkpoint; %s keeps the run it held "
                 "(output.overwrite replaces it only once the new run has a checkpoint)\n",
                 signal_name(signal_), dir.c_str());
    return summary(prior_seconds_ + seconds_since(session_start_));
  }

  const bool finished = step_ >= total_steps_;
  if (finished && last_eval_step_ != step_) evaluate_and_track(log);
  if (finished && task_->num_classes() > 0 && writer) write_confusion(write_dir());
  if (last_save_step_ != step_) save_run();
  if (finished && cfg_.generate.tokens > 0 && writer) {
    SamplingOptions so;
    so.temperature = cfg_.generate.temperature;
    so.top_k = cfg_.generate.top_k;
    so.top_p = cfg_.generate.top_p;
    const auto prompt = task_->encode(cfg_.generate.prompt);
    const auto out = generate_tokens(*model_, prompt, cfg_.generate.tokens, so, uint64_t(cfg_.generate.seed));
    std::string text;
    try {
      text = cfg_.generate.prompt + task_->decode(out);
    } catch (const Error& e) {  // a model vocabulary padded past the tokenizer's: keep the ids
      std::fprintf(stderr, "note: sample.txt holds token ids: %s\n", e.what());
      for (int32_t id : out) text += (text.empty() ? "" : " ") + std::to_string(id);
    }
    atomic_write_text(write_dir() + "/sample.txt", text + "\n");
  }
  log.close();
  const json s = summary(prior_seconds_ + seconds_since(session_start_));
  if (!writer) return s;
  atomic_write_text(write_dir() + "/summary.json", s.dump(2) + "\n");
  if (cfg_.output.plot) {
    std::string why;
    if (!plot_run(write_dir(), &why)) std::fprintf(stderr, "note: no loss plot: %s\n", why.c_str());
  }
  if (signal_)
    std::fprintf(stderr, "train: stopped by %s at step %ld; checkpoint saved in %s (continue with --resume)\n",
                 signal_name(signal_), step_, dir.c_str());
  else if (!finished)
    std::fprintf(stderr, "train: paused at step %ld of %ld; checkpoint saved in %s (continue with --resume)\n",
                 step_, total_steps_, dir.c_str());
  else
    std::fprintf(stderr, "train: done, %ld steps in %.1f s; run dir %s\n", step_,
                 s["wall_seconds"].get<double>(), dir.c_str());
  return s;
}

// --- generation and evaluation of saved runs ----------------------------------------

std::vector<int32_t> generate_tokens(SequenceModel<float>& model, const std::vector<int32_t>& prompt,
                                     int tokens, const SamplingOptions& so, uint64_t seed,
                                     const std::vector<int32_t>& stop_ids) {
  const int V = model.config().vocab_size;
  auto st = model.make_state(1);
  std::vector<float> logits(V);
  std::mt19937_64 rng(seed);
  int32_t tok = 0;  // with no prompt, generation starts from token 0
  if (prompt.empty()) model.step(&tok, st, logits.data());
  for (int32_t p : prompt) {
    MK_CHECK(p >= 0 && p < V, "generate: prompt token " + std::to_string(p) + " outside the vocabulary");
    tok = p;
    model.step(&tok, st, logits.data());
  }
  std::vector<int32_t> out;
  for (int i = 0; i < tokens; ++i) {
    tok = sample_token(logits.data(), V, so, rng);
    out.push_back(tok);
    if (std::find(stop_ids.begin(), stop_ids.end(), tok) != stop_ids.end()) break;  // kept, as transformers does
    model.step(&tok, st, logits.data());
  }
  return out;
}

json checkpoint_step(const std::string& model_dir) {
  json step;  // the last file that names one wins (best.json beside a trainer state)
  for (const char* f : {"trainer_state.json", "best.json"}) {
    const fs::path p = fs::path(model_dir) / f;
    if (!fs::exists(p)) continue;
    try {
      step = json::parse(read_text_file(p.string())).at("step");
    } catch (const json::exception&) {
    }
  }
  return step;
}

std::string checkpoint_dir(const std::string& run_dir, const std::string& checkpoint) {
  std::string d;
  if (checkpoint.empty() || checkpoint == "latest") d = run_dir;
  else if (checkpoint == "best") d = run_dir + "/best";
  else if (checkpoint.rfind("step_", 0) == 0) d = run_dir + "/checkpoints/" + checkpoint;
  else d = checkpoint;
  if (!has_weights(d)) {
    std::vector<std::string> have;
    if (has_weights(run_dir)) have.push_back("latest");
    if (has_weights(run_dir + "/best")) have.push_back("best");
    for (const auto& [s, p] : list_checkpoints(run_dir)) have.push_back("step_" + std::to_string(s));
    throw Error(run_dir + ": no checkpoint '" + checkpoint + "' (" +
                (have.empty() ? std::string("this directory holds none") : "have: " + join(have)) + ")");
  }
  return d;
}

RunConfig load_run_config(const std::string& run_dir) {
  const std::string cfg_path = run_dir + "/config.yaml";
  if (!fs::exists(cfg_path)) throw Error(run_dir + ": not a run directory (no config.yaml)");
  RunConfig cfg = load_config(cfg_path);
  if (!cfg.data.tokenizer.empty() && !data::tokenizer_files(run_dir).empty()) cfg.data.tokenizer = run_dir;
  return cfg;
}

json evaluate_run(const std::string& run_dir, const std::string& split,
                  const std::vector<std::string>& metrics, const std::string& checkpoint,
                  long max_sequences, int batch) {
  RunConfig cfg = load_run_config(run_dir);
  const std::string mdir = checkpoint_dir(run_dir, checkpoint);
  auto task = tasks::make_task(cfg.task_spec());
  auto model = load_model(mdir);
  const std::string sp = split.empty() ? cfg.eval.split : split;
  std::vector<std::string> names = metrics;
  if (names.empty()) names = cfg.eval.metrics.empty() ? task->default_metrics() : cfg.eval.metrics;
  const int b = batch > 0 ? batch : cfg.eval.batch_size > 0 ? cfg.eval.batch_size : cfg.train.batch_size;
  const long maxs = max_sequences >= 0 ? max_sequences : cfg.eval.max_sequences;
  json out{{"run", run_dir}, {"checkpoint", checkpoint.empty() ? "latest" : checkpoint}, {"split", sp}};
  if (auto step = checkpoint_step(mdir); !step.is_null()) out["step"] = step;
  for (const auto& [k, v] : eval::evaluate_task(*model, *task, sp, names, b, size_t(maxs)))
    out[sp + "_" + k] = v;
  if (task->num_classes() > 0)
    out["confusion"] = confusion_on_split(*model, *task, sp, b, size_t(maxs)).to_json(tasks::class_names(*task));
  return out;
}

}  // namespace mk::exp
