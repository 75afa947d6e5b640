// The run directory of an experiment:
//   config.yaml              the resolved config
//   model.safetensors, config.json   the latest model (HF-loadable)
//   optimizer.safetensors, trainer_state.json   the latest training state
//   checkpoints/step_N/      the last output.keep_last checkpoints (each the
//                            four files above); --resume reads the newest
//   best/                    the model with the best eval metric (+ best.json)
//   metrics.jsonl            one JSON object per log and eval step
//   summary.json             written at the end (and when interrupted)
//   loss.png, loss.svg       train/val loss and lr against step
//   sample.txt               a generated sample (generate.tokens > 0)
// A checkpoint directory is filled under a temporary name and renamed into
// place, so a process killed mid-write leaves the previous checkpoints
// loadable; the top-level files are hard links to the newest checkpoint's,
// each replaced by an atomic rename.
#pragma once
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace mk::exp {

// Fills a temporary directory beside `dir` with fill(tmp_dir), fsyncs it and
// renames it to `dir` (an existing `dir` is replaced). If fill throws, the
// temporary directory is removed and `dir` is untouched.
void write_dir_atomically(const std::string& dir,
                          const std::function<void(const std::string& tmp_dir)>& fill);

// (step, path) of run_dir/checkpoints/step_N that hold a trainer_state.json,
// oldest first.
std::vector<std::pair<long, std::string>> list_checkpoints(const std::string& run_dir);
// The newest complete checkpoint directory; "" when there is none.
std::string latest_checkpoint(const std::string& run_dir);
// Removes all but the newest keep_last checkpoints.
void prune_checkpoints(const std::string& run_dir, int keep_last);
// Makes run_dir/{config.json, model.safetensors, optimizer.safetensors,
// trainer_state.json} the files of ckpt_dir (hard links, copies where links
// fail), trainer_state.json last.
void publish_latest(const std::string& ckpt_dir, const std::string& run_dir);
// Removes temporary files and directories a killed process left behind.
void clean_stale_temporaries(const std::string& run_dir);
// True when run_dir holds any file of a run.
bool holds_run(const std::string& run_dir);
// Deletes the files of a run from run_dir (only those; other files stay).
void remove_run_files(const std::string& run_dir);

// For the crash test only: sleeps MAMBAKIT_TEST_SAVE_DELAY_MS milliseconds
// (if set) between the files of a checkpoint, so a test can kill the process
// mid-write.
void test_save_delay();

// metrics.jsonl: one JSON object per line, flushed per line.
class MetricsLog {
 public:
  MetricsLog() = default;
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  // Opens path for appending. keep_through_step >= 0: first drops the lines
  // of steps after it (and any torn last line): a resumed run re-logs them.
  // < 0: starts an empty file.
  void open(const std::string& path, long keep_through_step);
  void append(const nlohmann::json& record);
  void close();

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

// The records of a metrics.jsonl (a torn last line is skipped).
std::vector<nlohmann::json> read_metrics(const std::string& path);

}  // namespace mk::exp
