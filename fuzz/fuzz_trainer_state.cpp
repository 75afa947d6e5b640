// trainer_state.json (read_trainer_state) and the sampler state it carries,
// restored the ways a resumed run restores it: a task's set_sampler_state
// (the synthetic tasks: a mt19937_64 as text) and set_rng_state_text (the
// window samplers of the language, DNA and audio tasks).
#include <random>

#include "fuzz_common.h"
#include "mambakit/datasets/windows.h"
#include "mambakit/experiments/trainer_state.h"
#include "mambakit/tasks/synthetic_task.h"

namespace {

mk::tasks::Task& task() {
  static const std::unique_ptr<mk::tasks::Task> t = [] {
    mk::tasks::TaskSpec spec;
    spec.name = "selective_copying";
    spec.data.seq_len = 16;
    spec.options = {{"vocab", 8}, {"n_data", 2}, {"val_size", 1}};
    return mk::tasks::make_selective_copying_task(spec);
  }();
  return *t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("trainer_state.json", data, size);
  mk::exp::TrainerState st;
  try {
    st = mk::exp::read_trainer_state(path);
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
    return 0;
  }
  try {
    task().set_sampler_state(st.sampler_state);
    (void)task().next_train_batch(1);
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, "");
  }
  try {
    std::mt19937_64 rng;
    mk::data::set_rng_state_text(rng, st.sampler_state, "fuzz");
    (void)rng();
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, "");
  }
  return 0;
}
