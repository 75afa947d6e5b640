#include "mambakit/experiments/dna_audio.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "mambakit/datasets/audio.h"
#include "mambakit/datasets/dna.h"
#include "mambakit/error.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/io/safetensors.h"
#include "mambakit/tasks/audio_task.h"

namespace mk::exp {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string first_few(const std::vector<std::string>& v, size_t n = 3) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < n; ++i) s += (s.empty() ? "" : ", ") + v[i];
  if (v.size() > n) s += ", ... (" + std::to_string(v.size()) + " in all)";
  return s;
}

bool is_head(const std::string& name) { return name.rfind("classifier.", 0) == 0; }

}  // namespace

// --- init_from ----------------------------------------------------------------------

std::string init_from(SequenceModel<float>& model, const std::string& source) {
  if (!has_weights(source))
    throw Error("model.init_from: " + source +
                ": no model.safetensors (or model.safetensors.index.json) there (give a run directory, its best/, "
                "checkpoints/step_N, or a model directory as transformers saves it)");
  const std::string path = weights_file(source);
  LoadReport report;
  LoadOptions opt;
  opt.warn = [](const std::string&) {};  // ignored tensors are named in the summary line below
  opt.may_lack = is_head;                // a classifier's head starts fresh from a language model
  opt.report = &report;
  try {
    load_params(path, model, opt);
  } catch (const Error& e) {
    throw Error(std::string("model.init_from: ") + e.what() +
                " (the source must have the same d_model, n_layer, d_state, mixers and vocabulary)");
  }
  const auto& kept = report.kept;
  const auto& ignored = report.ignored;
  const size_t tensors = report.loaded.size(), values = report.values;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3fM", double(values) / 1e6);
  std::string line = "model.init_from: loaded " + std::to_string(tensors) + " tensors (" + buf +
                     " parameters) from " + path;
  if (!kept.empty())
    line += "; kept the fresh initialisation of " + first_few(kept) + " (the source has no classifier head)";
  if (!ignored.empty()) line += "; ignored the source's " + first_few(ignored) + " (not in this model)";
  return line;
}

// --- confusion -------------------------------------------------------------------------

tasks::ConfusionMatrix confusion_on_split(SequenceModel<float>& model, const tasks::Task& task,
                                          const std::string& split, int batch, size_t max_sequences) {
  MK_CHECK(task.num_classes() > 0, "confusion matrix: task '" + task.name() + "' is not a classification task");
  tasks::ConfusionMatrix cm(task.num_classes());
  for (const auto& b : task.eval_batches(split, batch, max_sequences)) {
    model.forward(b.ids.data(), b.batch, b.len, b.lengths_or_null());
    cm.add(b, model.logits().data(), model.logit_width());
  }
  return cm;
}

// --- generation ----------------------------------------------------------------------------

std::vector<int32_t> sample_continuation(SequenceModel<float>& model, const std::vector<int32_t>& prompt,
                                         int tokens, int classes, const SamplingOptions& so, uint64_t seed) {
  const int V = model.config().vocab_size;
  MK_CHECK(!model.is_classifier(), "generate: a classifier model does not generate sequences");
  MK_CHECK(classes > 0 && classes <= V, "generate: cannot sample among " + std::to_string(classes) +
                                            " classes of a vocabulary of " + std::to_string(V));
  MK_CHECK(!prompt.empty(), "generate: needs at least one prompt token");
  auto st = model.make_state(1);
  std::vector<float> logits(static_cast<size_t>(V));
  std::mt19937_64 rng(seed);
  int32_t tok = 0;
  for (int32_t p : prompt) {
    MK_CHECK(p >= 0 && p < V, "generate: prompt token " + std::to_string(p) + " outside the vocabulary");
    tok = p;
    model.step(&tok, st, logits.data());
  }
  std::vector<int32_t> out;
  out.reserve(size_t(tokens));
  for (int i = 0; i < tokens; ++i) {
    tok = sample_token(logits.data(), classes, so, rng);  // the first `classes` logits only
    out.push_back(tok);
    model.step(&tok, st, logits.data());
  }
  return out;
}

std::string generate_fasta(SequenceModel<float>& model, const MediaGenOptions& o) {
  namespace dna = data::dna;
  MK_CHECK(o.tokens > 0 && o.samples > 0, "generate: --tokens and --samples must be positive");
  std::vector<int32_t> prompt = dna::encode(o.prompt, "--prompt");
  const bool no_prompt = prompt.empty();
  // Without a prompt the first base is drawn from the model's prediction after
  // an arbitrary base (A), which is not written.
  if (no_prompt) prompt = {dna::A};
  std::string out;
  char buf[256];
  for (int k = 0; k < o.samples; ++k) {
    const uint64_t seed = o.seed + uint64_t(k);
    auto ids = sample_continuation(model, prompt, o.tokens, dna::kBases, o.sampling, seed);
    if (!no_prompt) ids.insert(ids.begin(), prompt.begin(), prompt.end());
    std::snprintf(buf, sizeof buf, ">generated_%d length=%zu prompt_length=%zu temperature=%g top_k=%d top_p=%g seed=%llu",
                  k + 1, ids.size(), no_prompt ? size_t(0) : prompt.size(), o.sampling.temperature,
                  o.sampling.top_k, o.sampling.top_p, static_cast<unsigned long long>(seed));
    out += buf;
    if (!o.source.empty()) out += " source=" + o.source;
    out += "\n";
    const std::string seq = dna::decode(ids);
    for (size_t i = 0; i < seq.size(); i += 60) out += seq.substr(i, 60) + "\n";
  }
  return out;
}

std::vector<float> generate_audio(SequenceModel<float>& model, const tasks::TaskSpec& spec,
                                  const MediaGenOptions& o, size_t* prompt_samples) {
  const auto ao = tasks::audio_task_options(spec);
  MK_CHECK(o.seconds > 0, "generate: --seconds must be positive");
  const int tokens = int(std::lround(o.seconds * ao.sample_rate));
  std::vector<int32_t> prompt;
  if (!o.prompt_file.empty()) {
    data::AudioReadOptions ro;
    ro.sample_rate = ao.sample_rate;
    ro.expect_sample_rate = ao.expect_sample_rate;
    ro.expect_channels = ao.expect_channels;
    std::vector<float> x = data::read_audio(o.prompt_file, ro);
    if (o.prompt_seconds > 0)
      x.resize(std::min(x.size(), size_t(std::lround(o.prompt_seconds * ao.sample_rate))));
    if (x.empty()) throw Error(o.prompt_file + ": the prompt holds no samples");
    for (uint8_t q : data::quantize(x, ao.quantization)) prompt.push_back(q);
  }
  const bool no_prompt = prompt.empty();
  // Without a prompt generation starts after one sample of silence.
  if (no_prompt) prompt = {ao.quantization == data::Quantization::MuLaw ? data::mulaw_encode(0.f)
                                                                        : data::linear_encode(0.f)};
  auto ids = sample_continuation(model, prompt, tokens, data::kAudioClasses, o.sampling, o.seed);
  if (!no_prompt) ids.insert(ids.begin(), prompt.begin(), prompt.end());
  if (prompt_samples) *prompt_samples = no_prompt ? 0 : prompt.size();
  return data::dequantize(ids.data(), ids.size(), ao.quantization);
}

// --- bench data ------------------------------------------------------------------------------

json run_data_bench(const std::vector<std::string>& configs, double seconds, int train_steps,
                    const std::vector<std::string>& overrides) {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  json out = json::array();
  for (const auto& path : configs) {
    RunConfig cfg = load_config(path, overrides);
    cfg.init_from.clear();  // the step time does not depend on the weights
    const int B = cfg.train.batch_size * cfg.train.grad_accum;
    auto task = tasks::make_task(cfg.task_spec());
    task->next_train_batch(cfg.train.batch_size);  // warm caches
    long windows = 0;
    const auto t0 = Clock::now();
    while (windows < 3L * cfg.train.batch_size || since(t0) < seconds) {
      const auto b = task->next_train_batch(cfg.train.batch_size);
      windows += b.batch;
    }
    const double loader_s = since(t0);
    task.reset();

    Trainer t(cfg);
    t.step();  // warm-up: allocations, first-touch
    const auto t1 = Clock::now();
    for (int i = 0; i < train_steps; ++i) t.step();
    const double step_s = since(t1) / std::max(1, train_steps);
    const double loader = double(windows) / loader_s;
    const double train = double(B) / step_s;
    out.push_back({{"config", path},
                   {"task", cfg.task_name},
                   {"seq_len", cfg.data.seq_len},
                   {"batch", B},
                   {"loader_windows_per_s", loader},
                   {"loader_tokens_per_s", loader * cfg.data.seq_len},
                   {"train_step_s", step_s},
                   {"train_windows_per_s", train},
                   {"ratio", loader / train}});
  }
  return out;
}

}  // namespace mk::exp
