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
//   .lock                    held (flock) by the one process writing the run
// A checkpoint directory is filled under a temporary name and renamed into
// place, so a process killed mid-write leaves the previous checkpoints
// loadable; the top-level files are hard links to the newest checkpoint's,
// each replaced by an atomic rename.
#pragma once
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace mk::exp {

// The lock file of a run directory. Not a file of the run: holds_run and
// non_run_files ignore it.
inline constexpr const char* kLockFile = ".lock";

// An exclusive flock (LOCK_EX | LOCK_NB) on dir/.lock for the life of the
// object; the file holds the pid of the holder. The kernel drops the lock
// when the process ends, crash included, so there is never a stale lock to
// clear by hand. Readers (eval, generate, info, plot, logits) take none.
class RunDirLock {
 public:
  // Creates dir (and its parents) when missing. Throws mk::Error naming the
  // holder's pid when another process holds the lock.
  explicit RunDirLock(const std::string& dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;
  // True when some process holds dir/.lock now (a missing file: false).
  static bool held(const std::string& dir);

 private:
  int fd_ = -1;
};

// The one training session that writes a run directory: it holds the lock,
// and for output.overwrite builds the new run beside the old one (a hidden
// sibling <parent>/.<name>.new.<pid>, locked too), which replaces the old
// run only once its first checkpoint exists. Until then the old run stays
// as it was, and a session that ends early (an error, a signal, a kill)
// leaves it untouched; the next session on the directory removes the
// abandoned sibling.
class RunDirSession {
 public:
  // Locks dir (creating it when missing) and removes what killed
  // overwrites left beside it.
  explicit RunDirSession(const std::string& dir);
  ~RunDirSession();  // an overwrite that never reached a checkpoint: its staging directory goes
  RunDirSession(const RunDirSession&) = delete;
  RunDirSession& operator=(const RunDirSession&) = delete;

  // Where the run's files go now: dir, or the staging directory of an
  // overwrite until commit().
  const std::string& write_dir() const { return staging_.empty() ? dir_ : staging_; }
  // An overwrite whose new run has no checkpoint yet (the old run is intact).
  bool staged() const { return !staging_.empty(); }
  // Starts an overwrite: the new run is written to a staging directory.
  // The caller has checked non_run_files(dir) (nothing but a run's files
  // would be replaced). Throws where dir cannot be swapped (a mount point).
  void stage();
  // After a checkpoint: the first one of an overwrite swaps the staged run
  // into place and deletes the old run's files. A no-op otherwise.
  void commit();

 private:
  std::string dir_, staging_;
  std::unique_ptr<RunDirLock> lock_, staging_lock_;
};

// Why dir is not only a run's files, which an overwrite would delete: files
// and folders other than a run's (the lock and temporaries aside), a
// config.yaml mambakit did not write, or foreign entries inside
// checkpoints/ or best/. "" when there is nothing of the kind.
std::string non_run_files(const std::string& dir);
// True when dir holds a checkpoint to resume from.
bool has_checkpoint(const std::string& dir);
// A start that ended before its first checkpoint (failed, crashed or
// interrupted): mambakit's config.yaml and no checkpoint. A fresh start or
// --resume begins it again from step 0.
bool is_failed_start(const std::string& dir);
// Removes the files of a failed start from dir, except those in `keep` (the
// files being read: the config, when it is dir/config.yaml, and the
// tokenizer, when data.tokenizer points into dir), so none of them outlives
// the new start. Other files stay.
void clear_failed_start(const std::string& dir, const std::vector<std::string>& keep);

// Why `out` (an output a command is about to write) must not be written:
// by its real path (symlinks and .. resolved) it is a file of a run or
// model directory (model.safetensors, optimizer.safetensors, config.json,
// trainer_state.json, config.yaml, metrics.jsonl, tokenizer files, any
// *.safetensors) or lies inside a checkpoint directory (checkpoints/,
// checkpoints/step_N, best/). "" when it may be written. `what` names the
// option in the message ("--out").
std::string protected_output_problem(const std::string& out, const std::string& what);

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

// For the crash test only: sleeps MAMBAKIT_TEST_SAVE_DELAY_MS milliseconds
// (if set) between the files of a checkpoint, so a test can kill the process
// mid-write.
void test_save_delay();
// For the failure tests only, before training step `step` (1-based):
// MAMBAKIT_TEST_FAIL_AT_STEP=N throws std::bad_alloc there (an out-of-memory
// failure); MAMBAKIT_TEST_STALL_AT_STEP=N prints "train: test stall at step
// N" and sleeps for ten minutes (a step that hangs), so a test can signal it.
void test_step_fault(long step);

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
