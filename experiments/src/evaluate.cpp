#include "mambakit/experiments/evaluate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>

#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/evaluation/generation_metrics.h"
#include "mambakit/evaluation/multiple_choice.h"
#include "mambakit/evaluation/perplexity.h"
#include "mambakit/experiments/config.h"
#include "mambakit/experiments/trainer.h"
#include "mambakit/io/atomic_file.h"
#include "mambakit/io/checkpoint.h"
#include "mambakit/tasks/language_task.h"

namespace mk::exp {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::vector<std::string> kFamily = {"nll",           "ppl",           "bits",
                                          "bpb",           "bits_per_byte", "bits_per_base",
                                          "bits_per_sample"};

// What a task's tokens are: text bytes, DNA bases, audio samples, or other
// tokens (the unit of the bits-per-unit metric and of generation metrics).
enum class Modality { text, dna, audio, tokens };

Modality modality_of(const std::string& task) {
  if (task == "language") return Modality::text;
  if (task.rfind("dna", 0) == 0) return Modality::dna;
  if (task.rfind("audio", 0) == 0) return Modality::audio;
  return Modality::tokens;
}

const char* unit_metric(Modality m) {
  switch (m) {
    case Modality::text: return "bpb";
    case Modality::dna: return "bits_per_base";
    case Modality::audio: return "bits_per_sample";
    default: return "bits";
  }
}

// False for a unit metric that does not fit the task (bits per base of a
// text model).
bool unit_fits(const std::string& metric, Modality m) {
  const bool text = metric == "bpb" || metric == "bits_per_byte";
  return !((text && m != Modality::text) || (metric == "bits_per_base" && m != Modality::dna) ||
           (metric == "bits_per_sample" && m != Modality::audio));
}

void check_unit(const std::string& metric, Modality m, const std::string& task) {
  if (!unit_fits(metric, m))
    throw ConfigError("metric '" + metric + "' does not apply to task '" + task + "' (its unit metric is '" +
                      unit_metric(m) + "'; 'bits' is bits per token for any task)");
}

double log_softmax_at(const float* l, int vocab, int target) {
  float mx = l[0];
  for (int v = 1; v < vocab; ++v) mx = std::max(mx, l[v]);
  double s = 0;
  for (int v = 0; v < vocab; ++v) s += std::exp(double(l[v]) - double(mx));
  return double(l[target]) - double(mx) - std::log(s);
}

// log p(cont | ctx) summed over cont's tokens; an empty context starts from
// token 0, as generation does.
double continuation_loglik(SequenceModel<float>& m, std::vector<int32_t> ctx,
                           const std::vector<int32_t>& cont) {
  if (cont.empty()) return 0;
  if (ctx.empty()) ctx.push_back(0);
  std::vector<int32_t> ids = ctx;
  ids.insert(ids.end(), cont.begin(), cont.end());
  const int V = m.config().vocab_size;
  for (int32_t t : ids)
    MK_CHECK(t >= 0 && t < V, "token " + std::to_string(t) + " outside the model's vocabulary of " +
                                  std::to_string(V));
  const int n = int(ids.size()) - 1;
  m.forward(ids.data(), 1, n);
  double s = 0;
  for (size_t t = ctx.size(); t < ids.size(); ++t)
    s += log_softmax_at(m.logits().data() + (t - 1) * size_t(V), V, ids[t]);
  return s;
}

// ------------------------------------------------------------ perplexity ---

json perplexity_family(SequenceModel<float>& model, const tasks::Task& task, const RunConfig& cfg,
                       const std::string& split, const std::vector<std::string>& names,
                       const EvalOptions& o, long maxs, int batch) {
  if (model.is_classifier())
    throw ConfigError("metrics " + names.front() + ": task '" + task.name() +
                      "' is a classification task; the perplexity family needs a language model");
  const Modality mod = modality_of(task.name());
  for (const auto& n : names) check_unit(n, mod, task.name());
  const int window = o.window > 0 ? o.window : cfg.data.seq_len;
  const int stride = o.stride > 0 ? o.stride : window;
  if (stride > window)
    throw ConfigError("--stride " + std::to_string(stride) + " is larger than the window " +
                      std::to_string(window) + " (tokens between windows would never be scored)");
  eval::WindowedNll w;
  json info;
  const auto* lt = dynamic_cast<const tasks::LanguageTask*>(&task);
  if (lt) {
    eval::SlidingWindowOptions so;
    so.window = window;
    so.stride = stride;
    so.batch = batch;
    so.max_tokens = maxs > 0 ? size_t(maxs) * size_t(cfg.data.seq_len) : 0;
    so.token_units = &lt->token_bytes();  // bits per byte divide by the text's bytes, not its tokens
    w = eval::sliding_window_nll(model, {lt->split_tokens(split).all()}, so);
    info = {{"window", window}, {"stride", stride}, {"units", "windows"}, {"tokenizer", lt->tokenizer().name()}};
  } else {
    // Other language-model tasks: the task's own evaluation windows, one
    // bootstrap unit each (their targets may skip positions, e.g. N bases).
    if (o.stride > 0 || o.window > 0)
      std::fprintf(stderr, "note: task '%s' is scored on its own evaluation windows; --window/--stride "
                           "apply to the language task\n", task.name().c_str());
    const int V = model.config().vocab_size;
    for (const auto& b : task.eval_batches(split, batch, size_t(maxs))) {
      model.forward(b.ids.data(), b.batch, b.len);
      for (int r = 0; r < b.batch; ++r) {
        double s = 0, c = 0;
        for (int t = 0; t < b.len; ++t) {
          const int32_t y = b.targets[size_t(r) * b.len + t];
          if (y < 0) continue;
          s -= log_softmax_at(model.logits().data() + (size_t(r) * b.len + t) * size_t(V), V, y);
          c += 1;
        }
        w.nll_sum.push_back(s);
        w.count.push_back(c);
        w.doc.push_back(w.doc.size());
      }
    }
    info = {{"window", task.seq_len()}, {"units", "sequences"}};
  }
  const double total = w.total_nll(), n = w.total_count();
  if (!(n > 0)) throw Error("split '" + split + "' of task '" + task.name() + "' has no targets to score");
  // Text's bits per byte: over the bytes the scored tokens stand for (the
  // same as per token for a byte model).
  const bool per_byte = lt && !w.units.empty() && w.total_units() > 0;
  const double bytes = per_byte ? w.total_units() : n;
  eval::BootstrapCI ci, ci_bytes;
  if (o.bootstrap > 0) ci = eval::bootstrap_ratio_ci(w.nll_sum, w.count, o.bootstrap, o.level, o.seed);
  if (o.bootstrap > 0 && per_byte)
    ci_bytes = eval::bootstrap_ratio_ci(w.nll_sum, w.units, o.bootstrap, o.level, o.seed);
  json out;
  const double ln2 = std::log(2.0);
  for (const auto& name : names) {
    std::function<double(double)> of_nll;
    if (name == "nll") of_nll = [](double x) { return x; };
    else if (name == "ppl") of_nll = [](double x) { return std::exp(x); };
    else of_nll = [ln2](double x) { return x / ln2; };
    const bool text_unit = per_byte && (name == "bpb" || name == "bits_per_byte");
    // DNA and audio: one token per base / sample.
    const double v = name == "nll" ? eval::nll_per_token(total, n)
        : name == "ppl" ? eval::perplexity_of(total, n)
        : text_unit ? eval::bits_per_unit(total, bytes)
                    : eval::bits_per_unit(total, n);
    out[split + "_" + name] = v;
    const eval::BootstrapCI& c = text_unit ? ci_bytes : ci;
    if (o.bootstrap > 0) out[split + "_" + name + "_ci"] = {of_nll(c.lo), of_nll(c.hi)};
  }
  out[split + "_tokens"] = n;
  if (per_byte) out[split + "_bytes"] = bytes;
  info["bootstrap"] = o.bootstrap;
  if (o.bootstrap > 0) info["level"] = o.level;
  info["scored_units"] = w.nll_sum.size();
  out["perplexity"] = info;
  return out;
}

// ------------------------------------------------------------ generation ---

struct Prompted {
  std::vector<std::vector<int32_t>> prompts, references;
};

Prompted held_out_prompts(const tasks::Task& task, const std::string& split, int n, int p, int& g,
                          int seq_len) {
  Prompted out;
  if (const auto* lt = dynamic_cast<const tasks::LanguageTask*>(&task)) {
    const auto tokens = lt->split_tokens(split).all();
    if (g <= 0) g = seq_len - p;
    const size_t need = size_t(p + g);
    MK_CHECK(tokens.size() >= need, "split '" + split + "' is shorter than one prompt + sample (" +
                                        std::to_string(need) + " tokens)");
    // A token that ends a line: prompts begin after one where the text has
    // lines (a verse), within 200 tokens of the even spacing.
    auto ends_line = [&](int32_t id) {
      const std::string t = lt->tokenizer().decode({id});
      return !t.empty() && t.back() == '\n';
    };
    const size_t span = tokens.size() - need;
    for (int i = 0; i < n; ++i) {
      size_t at = n > 1 ? span * size_t(i) / size_t(n - 1) : 0;
      for (size_t k = at; k < std::min(span, at + 200); ++k)
        if (k > 0 && ends_line(tokens[k - 1])) { at = k; break; }
      out.prompts.emplace_back(tokens.begin() + long(at), tokens.begin() + long(at) + p);
      out.references.emplace_back(tokens.begin() + long(at) + p, tokens.begin() + long(at + need));
    }
    return out;
  }
  for (const auto& b : task.eval_batches(split, n, size_t(n))) {
    for (int r = 0; r < b.batch; ++r) {
      std::vector<int32_t> row(b.ids.begin() + long(size_t(r) * b.len),
                               b.ids.begin() + long(size_t(r + 1) * b.len));
      row.push_back(std::max(0, b.targets[size_t(r + 1) * b.len - 1]));
      const int gg = g > 0 ? std::min(g, int(row.size()) - p) : int(row.size()) - p;
      MK_CHECK(gg > 0, "--prompt-tokens " + std::to_string(p) + " leaves nothing of a " +
                           std::to_string(row.size()) + "-token window to compare with");
      out.prompts.emplace_back(row.begin(), row.begin() + p);
      out.references.emplace_back(row.begin() + p, row.begin() + p + gg);
    }
  }
  if (g <= 0) g = out.references.empty() ? 0 : int(out.references[0].size());
  return out;
}

// NLL per token of each continuation given its prompt under the judge.
double judge_ppl(SequenceModel<float>& judge, const std::vector<std::vector<int32_t>>& prompts,
                 const std::vector<std::vector<int32_t>>& conts) {
  double s = 0, n = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    s -= continuation_loglik(judge, prompts[i], conts[i]);
    n += double(conts[i].size());
  }
  return std::exp(s / n);
}

json classifier_block(SequenceModel<float>& clf, const std::vector<std::vector<int32_t>>& gen,
                      const std::vector<std::vector<int32_t>>& ref) {
  MK_CHECK(clf.is_classifier(), "--classifier: the model has no classifier head (config.json n_classes)");
  MK_CHECK(!clf.is_pair_classifier(),
           "--classifier: the model classifies pairs of documents (a two-tower retrieval model); "
           "scoring samples needs a one-sequence classifier");
  const int C = clf.config().n_classes, D = clf.feature_width();
  // IS, mIS and AM use the class probabilities; FID the penultimate
  // features (the pooled sequence the classifier's Linear reads).
  auto run = [&](const std::vector<std::vector<int32_t>>& seqs, std::vector<double>& probs,
                 std::vector<double>& feats) {
    for (const auto& s : seqs) {
      clf.forward(s.data(), 1, int(s.size()));
      const float* l = clf.logits().data();
      double mx = l[0], z = 0;
      for (int c = 1; c < C; ++c) mx = std::max(mx, double(l[c]));
      for (int c = 0; c < C; ++c) z += std::exp(double(l[c]) - mx);
      for (int c = 0; c < C; ++c) probs.push_back(std::exp(double(l[c]) - mx) / z);
      feats.insert(feats.end(), clf.features().begin(), clf.features().begin() + D);
    }
  };
  std::vector<double> pg, fg, pr, fr;
  run(gen, pg, fg);
  run(ref, pr, fr);
  const auto s = eval::classifier_scores(pg, gen.size(), size_t(C), fg, size_t(D), fr, ref.size());
  json j(s.to_map());
  j["features"] = "classifier penultimate features (pooled, d_model " + std::to_string(D) + ")";
  j["is_reference"] = eval::inception_score(pr, ref.size(), size_t(C));
  return j;
}

json generation_quality(SequenceModel<float>& model, const tasks::Task& task, const RunConfig& cfg,
                        const std::string& split, const EvalOptions& o) {
  if (model.is_classifier())
    throw ConfigError("--generate: task '" + task.name() + "' is a classification task; nothing to generate");
  if (o.generate < 2) throw ConfigError("--generate needs at least 2 samples (self-BLEU compares samples)");
  if (o.prompt_tokens < 1) throw ConfigError("--prompt-tokens must be at least 1");
  int g = o.gen_tokens;
  const Prompted pr = held_out_prompts(task, split, o.generate, o.prompt_tokens, g, cfg.data.seq_len);
  SamplingOptions so;
  so.temperature = o.temperature >= 0 ? o.temperature : cfg.generate.temperature;
  so.top_k = o.top_k >= 0 ? o.top_k : cfg.generate.top_k;
  so.top_p = o.top_p > 0 ? o.top_p : cfg.generate.top_p;
  std::vector<std::vector<int32_t>> gen;
  for (size_t i = 0; i < pr.prompts.size(); ++i) {
    try {
      gen.push_back(generate_tokens(model, pr.prompts[i], int(pr.references[i].size()), so, o.seed + i));
    } catch (const Error& e) {
      throw Error(std::string("--generate: this model cannot generate recurrently (") + e.what() + ")");
    }
  }
  json j{{"samples", gen.size()},
         {"split", split},
         {"prompt_tokens", o.prompt_tokens},
         {"tokens", g},
         {"temperature", so.temperature},
         {"top_k", so.top_k},
         {"top_p", so.top_p}};
  const Modality mod = modality_of(task.name());
  if (mod == Modality::dna) {
    std::vector<std::string> a, b;
    for (const auto& x : gen) a.push_back(task.decode(x));
    for (const auto& x : pr.references) b.push_back(task.decode(x));
    j["generated"] = eval::dna_generation_metrics(a, b).to_map();
  } else if (mod == Modality::audio) {
    auto codes = [](const std::vector<std::vector<int32_t>>& v) {
      std::vector<std::vector<uint8_t>> c;
      for (const auto& x : v) {
        c.emplace_back();
        for (int32_t t : x) c.back().push_back(uint8_t(std::clamp(t, 0, 255)));
      }
      return c;
    };
    j["generated"] = eval::audio_generation_metrics(codes(gen), codes(pr.references)).to_map();
  } else {
    auto tokens = [&](const std::vector<std::vector<int32_t>>& v) {
      std::vector<eval::Tokens> t;
      for (const auto& x : v) {
        if (mod == Modality::text) {
          t.push_back(eval::words(task.decode(x)));
        } else {
          t.emplace_back();
          for (int32_t id : x) t.back().push_back(std::to_string(id));
        }
      }
      return t;
    };
    j["units"] = mod == Modality::text ? "words" : "tokens";
    j["generated"] = eval::text_generation_metrics(tokens(gen)).to_map();
    j["reference"] = eval::text_generation_metrics(tokens(pr.references)).to_map();
    std::string example;
    try {
      example = task.decode(pr.prompts[0]) + "|" + task.decode(gen[0]);
    } catch (const Error&) {  // ids past the tokenizer's vocabulary (a padded model vocabulary)
      example = "(the sample holds ids outside the tokenizer's vocabulary)";
    }
    // JSON holds valid UTF-8 only: a sample cut inside a character, or bytes
    // a model made up, get U+FFFD where they break it.
    j["example"] =
        json::parse(json(example).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
  }
  if (!o.judge.empty()) {
    auto judge = load_model(o.judge);
    judge->to(parse_device(o.device));
    j["judge"] = o.judge;
    j["generated"]["gen_ppl"] = judge_ppl(*judge, pr.prompts, gen);
    if (j.contains("reference")) j["reference"]["gen_ppl"] = judge_ppl(*judge, pr.prompts, pr.references);
    else j["reference_gen_ppl"] = judge_ppl(*judge, pr.prompts, pr.references);
  }
  if (!o.classifier.empty()) {
    auto clf = load_model(o.classifier);
    clf->to(parse_device(o.device));
    j["classifier"] = classifier_block(*clf, gen, pr.references);
    j["classifier"]["model"] = o.classifier;
  }
  return j;
}

// ------------------------------------------------------------- zero-shot ---

json zero_shot(SequenceModel<float>& model, const tasks::Task& task, const EvalOptions& o) {
  if (model.is_classifier())
    throw ConfigError("--mc: task '" + task.name() + "' has a classifier head; zero-shot scoring needs a language model");
  const auto items = eval::read_mc_jsonl(o.mc);
  auto ll = [&](const std::string& ctx, const std::string& cont) {
    return continuation_loglik(model, task.encode(ctx), task.encode(cont));
  };
  const auto r = eval::score_multiple_choice(items, ll, o.mc_delimiter);
  return json{{"file", o.mc},         {"n", r.n},
              {"acc", r.acc},         {"acc_stderr", r.acc_stderr},
              {"acc_norm", r.acc_norm}, {"acc_norm_stderr", r.acc_norm_stderr}};
}

void merge_summary(const std::string& run_dir, const std::string& split, const json& r) {
  const std::string path = run_dir + "/summary.json";
  json s = json::object();
  if (fs::exists(path)) {
    try {
      s = json::parse(read_text_file(path));
    } catch (const json::exception& e) {
      throw Error(path + ": not valid JSON (" + library_what(e) + "); not overwriting it");
    }
    if (!s.is_object())
      throw Error(path + ": expected a JSON object, got " + std::string(s.type_name()) + "; not overwriting it");
  }
  json ev = json::object();
  for (auto it = r.begin(); it != r.end(); ++it)
    if (it.key().rfind(split + "_", 0) == 0 || it.key() == "perplexity" || it.key() == "checkpoint" ||
        it.key() == "step")
      ev[it.key()] = it.value();
  if (ev.size() > 2) {
    for (auto it = ev.begin(); it != ev.end(); ++it) s["evaluation"][split][it.key()] = it.value();
  }
  if (r.contains("generation")) s["generation"] = r["generation"];
  if (r.contains("zero_shot")) {
    const std::string stem = fs::path(r["zero_shot"]["file"].get<std::string>()).stem().string();
    s["zero_shot"][stem] = r["zero_shot"];
  }
  atomic_write_text(path, s.dump(2) + "\n");
}

}  // namespace

bool is_perplexity_metric(const std::string& name) {
  return std::find(kFamily.begin(), kFamily.end(), name) != kFamily.end();
}

json evaluate_run_full(const std::string& run_dir, const EvalOptions& o) {
  const Device dev = parse_device(o.device);
  backend_for<float>(dev);  // an unusable device is refused before any work
  const RunConfig cfg = load_run_config(run_dir);
  const std::string mdir = checkpoint_dir(run_dir, o.checkpoint);
  bool unreadable = false;
  const std::string data_why = missing_data_problem(cfg, &unreadable);
  if (unreadable) throw Error(data_why);
  std::unique_ptr<tasks::Task> task;
  try {
    task = tasks::make_task(cfg.task_spec());
  } catch (const ConfigError&) {
    throw;
  } catch (const Error&) {  // a missing data file: say what makes it
    if (!data_why.empty()) throw Error(data_why);
    throw;
  }
  auto model = load_model(mdir);
  model->to(dev);
  const std::string split = o.split.empty() ? cfg.eval.split : o.split;
  const int batch = o.batch > 0 ? o.batch : cfg.eval.batch_size > 0 ? cfg.eval.batch_size : cfg.train.batch_size;
  const long maxs = o.max_sequences >= 0 ? o.max_sequences : cfg.eval.max_sequences;

  std::vector<std::string> family, task_metrics;
  // A metric both know (the language task's own ppl and bpb) is taken from
  // the perplexity family, which adds intervals and windows; one the family
  // would refuse for this task but the task has (the DNA task's bpb, bits
  // per base) is the task's.
  const auto task_known = task->metric_names();
  const Modality mod = modality_of(task->name());
  for (const auto& m : o.metrics) {
    const bool task_has = std::find(task_known.begin(), task_known.end(), m) != task_known.end();
    const bool fam = is_perplexity_metric(m) && (unit_fits(m, mod) || !task_has);
    (fam ? family : task_metrics).push_back(m);
  }
  const bool extras = o.generate > 0 || !o.mc.empty();
  if (family.empty() && (o.stride > 0 || o.bootstrap > 0 || o.window > 0) && !model->is_classifier())
    family = {"nll", "ppl", unit_metric(mod)};
  if (family.empty() && task_metrics.empty() && !extras)
    task_metrics = cfg.eval.metrics.empty() ? task->default_metrics() : cfg.eval.metrics;

  json out{{"run", run_dir}, {"checkpoint", o.checkpoint.empty() ? "latest" : o.checkpoint}, {"split", split}};
  if (auto step = checkpoint_step(mdir); !step.is_null()) out["step"] = step;
  if (!task_metrics.empty()) {  // the runner's own evaluation (and its extras, e.g. a confusion matrix)
    const json t = evaluate_run(run_dir, split, task_metrics, o.checkpoint, o.max_sequences, o.batch);
    for (auto it = t.begin(); it != t.end(); ++it)
      if (!out.contains(it.key())) out[it.key()] = it.value();
  }
  if (!family.empty()) {
    const json f = perplexity_family(*model, *task, cfg, split, family, o, maxs, batch);
    for (auto it = f.begin(); it != f.end(); ++it) out[it.key()] = it.value();
  }
  if (o.generate > 0) out["generation"] = generation_quality(*model, *task, cfg, split, o);
  if (!o.mc.empty()) out["zero_shot"] = zero_shot(*model, *task, o);
  if (o.write_summary) merge_summary(run_dir, split, out);
  return out;
}

}  // namespace mk::exp
