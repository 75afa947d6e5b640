// The task registry. A new task module adds its factory to kBuiltins below
// (one line), which keeps the set of tasks explicit and immune to the linker
// dropping unreferenced objects of a static library.
#include <mutex>

#include "mambakit/tasks/task.h"

namespace mk::tasks {

std::unique_ptr<Task> make_language_task(const TaskSpec& spec);
std::unique_ptr<Task> make_dna_pretrain_task(const TaskSpec& spec);
std::unique_ptr<Task> make_dna_species_task(const TaskSpec& spec);
std::unique_ptr<Task> make_audio_task(const TaskSpec& spec);
std::unique_ptr<Task> make_lra_listops_task(const TaskSpec& spec);
std::unique_ptr<Task> make_lra_text_task(const TaskSpec& spec);
std::unique_ptr<Task> make_lra_retrieval_task(const TaskSpec& spec);
std::unique_ptr<Task> make_lra_image_task(const TaskSpec& spec);
std::unique_ptr<Task> make_lra_pathfinder_task(const TaskSpec& spec);
std::unique_ptr<Task> make_selective_copying_task(const TaskSpec& spec);
std::unique_ptr<Task> make_induction_heads_task(const TaskSpec& spec);

namespace {

std::vector<TaskInfo> builtins() {
  return {
      {"language", "next-token prediction on byte-level text files (metrics loss, bpb, ppl, accuracy)",
       &make_language_task},
      {"dna_pretrain", "next-base prediction on a FASTA genome or prepared DNA shards (metrics loss, bpb, markov_bpb)",
       &make_dna_pretrain_task},
      {"dna_species", "species classification of DNA windows, strains held out (metrics accuracy, balanced_accuracy, loss)",
       &make_dna_species_task},
      {"audio", "autoregressive 8-bit mu-law audio, SaShiMi/YouTubeMix style (metrics loss, bits, unigram_bits)",
       &make_audio_task},
      {"lra_listops", "LRA ListOps: expression -> value 0..9 (data dir or generated; accuracy)",
       &make_lra_listops_task},
      {"lra_text", "LRA Text: byte-level document classification (IMDB or man pages; accuracy)",
       &make_lra_text_task},
      {"lra_retrieval", "LRA Retrieval: are two documents linked (AAN or man pages; accuracy)",
       &make_lra_retrieval_task},
      {"lra_image", "LRA Image: pixel-by-pixel classification (CIFAR-10 gray or IDX; accuracy)",
       &make_lra_image_task},
      {"lra_pathfinder", "LRA Pathfinder / Path-X: are the two dots connected (accuracy)",
       &make_lra_pathfinder_task},
      {"selective_copying", "Mamba paper 4.1: recall K data tokens scattered among noise (metrics accuracy, loss, seq_accuracy)",
       &make_selective_copying_task},
      {"induction_heads", "Mamba paper 4.1: recall the token after a repeated trigger; eval_lengths for extrapolation",
       &make_induction_heads_task},
  };
}

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

std::vector<TaskInfo>& extra() {
  static std::vector<TaskInfo> v;
  return v;
}

}  // namespace

std::vector<TaskInfo> task_infos() {
  std::vector<TaskInfo> all = builtins();
  std::lock_guard<std::mutex> lock(registry_mutex());
  for (const auto& t : extra()) {
    bool replaced = false;
    for (auto& a : all)
      if (a.name == t.name) a = t, replaced = true;
    if (!replaced) all.push_back(t);
  }
  return all;
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& t : task_infos()) names.push_back(t.name);
  return names;
}

void register_task(const TaskInfo& info) {
  MK_CHECK(!info.name.empty() && info.make, "register_task: a task needs a name and a factory");
  std::lock_guard<std::mutex> lock(registry_mutex());
  for (auto& t : extra())
    if (t.name == info.name) {
      t = info;
      return;
    }
  extra().push_back(info);
}

std::unique_ptr<Task> make_task(const TaskSpec& spec) {
  for (const auto& t : task_infos())
    if (t.name == spec.name) return t.make(spec);
  std::string known;
  for (const auto& n : task_names()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError(spec.where_of("name") + ": unknown task '" + spec.name + "' (known: " + known +
                    ")" + did_you_mean(spec.name, task_names()));
}

}  // namespace mk::tasks
