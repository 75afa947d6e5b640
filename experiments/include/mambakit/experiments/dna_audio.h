// The runner's pieces for the DNA and audio tasks (issue 5):
//   - model.init_from: start a run from another run's weights (pretrain ->
//     fine-tune), skipping the head when an LM initialises a classifier;
//   - the confusion matrix of a classification task on a split;
//   - generation to FASTA (dna_pretrain runs) and WAV (audio runs);
//   - `mambakit bench data`: loader throughput against what training eats.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mambakit/experiments/config.h"
#include "mambakit/models/sampler.h"
#include "mambakit/models/sequence_model.h"
#include "mambakit/tasks/confusion.h"
#include "mambakit/tasks/task.h"

namespace mk::exp {

// Copies into `model` every parameter of source's model.safetensors (source:
// a run directory, its best/ or checkpoints/step_N, or a model directory)
// whose name the model has. The shapes must agree (mk::Error naming the
// tensor otherwise) and every backbone tensor must be there; the
// classifier head of a classifier initialised from a language model keeps
// its fresh initialisation. Returns one line saying what was loaded.
std::string init_from(SequenceModel<float>& model, const std::string& source);

// The confusion matrix of the model on a split's evaluation batches
// (classification tasks only).
tasks::ConfusionMatrix confusion_on_split(SequenceModel<float>& model, const tasks::Task& task,
                                          const std::string& split, int batch, size_t max_sequences);

// --- generation -------------------------------------------------------------------
struct MediaGenOptions {
  SamplingOptions sampling;
  uint64_t seed = 0;
  // DNA: bases per record and records; the prompt is DNA letters.
  int tokens = 200;
  int samples = 1;
  std::string prompt;
  // audio: seconds to generate after the prompt, and the prompt's audio file
  // (resampled and quantised as the run's data; at most prompt_seconds of it,
  // 0 = all). The WAV holds the prompt followed by the continuation.
  double seconds = 1.0;
  std::string prompt_file;
  double prompt_seconds = 0;
  std::string source;  // run directory, for the FASTA header
};

// Recurrent sampling restricted to the first `classes` logits (DNA: the four
// bases, so no N or special token is ever drawn).
std::vector<int32_t> sample_continuation(SequenceModel<float>& model, const std::vector<int32_t>& prompt,
                                         int tokens, int classes, const SamplingOptions& so, uint64_t seed);

// FASTA text of `samples` generated records of `tokens` bases, 60 per line.
std::string generate_fasta(SequenceModel<float>& model, const MediaGenOptions& o);
// Generated audio (prompt included) as samples in [-1, 1] at `sample_rate`;
// *prompt_samples gets the prompt's length.
std::vector<float> generate_audio(SequenceModel<float>& model, const tasks::TaskSpec& spec,
                                  const MediaGenOptions& o, size_t* prompt_samples = nullptr);

// --- bench data -------------------------------------------------------------------
// For each config: windows per second the task's training loader delivers
// (timed for `seconds`), and the windows per second `train_steps` training
// steps of its model consume. JSON array of {"config", "task", "seq_len",
// "batch", "loader_windows_per_s", "loader_tokens_per_s",
// "train_windows_per_s", "ratio"}.
nlohmann::json run_data_bench(const std::vector<std::string>& configs, double seconds, int train_steps,
                              const std::vector<std::string>& overrides = {});

}  // namespace mk::exp
