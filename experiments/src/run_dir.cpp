#include "mambakit/experiments/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <thread>

#include "mambakit/error.h"
#include "mambakit/io/atomic_file.h"

namespace mk::exp {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const char* kStateFile = "trainer_state.json";
// Files and directories of a run, for overwrite and cleanup.
const std::vector<std::string> kRunEntries = {
    "config.yaml", "config.json", "model.safetensors", "optimizer.safetensors", kStateFile,
    "metrics.jsonl", "summary.json", "loss.png", "loss.svg", "sample.txt", "confusion.json", "checkpoints", "best",
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model"};

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);  // durability only; some file systems refuse, the rename is atomic anyway
  ::close(fd);
}

std::string temp_name(const fs::path& p, const char* kind) {
  return (p.parent_path() / ("." + p.filename().string() + "." + kind + "." + std::to_string(::getpid())))
      .string();
}

bool is_temporary(const std::string& name) {
  if (!name.empty() && name[0] == '.' &&
      (name.find(".tmp.") != std::string::npos || name.find(".old.") != std::string::npos ||
       name.find(".plot.") != std::string::npos))  // plot.cpp's script and images
    return true;
  for (const auto& e : kRunEntries)
    if (name.rfind(e + ".tmp.", 0) == 0) return true;  // atomic_write's temporaries
  return false;
}

}  // namespace

void write_dir_atomically(const std::string& dir, const std::function<void(const std::string&)>& fill) {
  const fs::path target(dir);
  fs::create_directories(target.parent_path().empty() ? fs::path(".") : target.parent_path());
  const std::string tmp = temp_name(target, "tmp");
  fs::remove_all(tmp);
  try {
    fs::create_directories(tmp);
    fill(tmp);
    fsync_dir(tmp);
    std::error_code ec;
    if (fs::exists(target)) {
      // Replace: move the old one aside first (rename cannot replace a
      // non-empty directory), then drop it.
      const std::string old = temp_name(target, "old");
      fs::remove_all(old);
      fs::rename(target, old);
      fs::rename(tmp, target);
      fs::remove_all(old, ec);
    } else {
      fs::rename(tmp, target);
    }
  } catch (const fs::filesystem_error& e) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw Error(dir + ": cannot write checkpoint directory: " + e.code().message());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  fsync_dir(target.parent_path().empty() ? "." : target.parent_path().string());
}

std::vector<std::pair<long, std::string>> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<long, std::string>> out;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) != 0 || !e.is_directory()) continue;
    char* end = nullptr;
    const long step = std::strtol(name.c_str() + 5, &end, 10);
    if (*end != '\0' || !fs::exists(e.path() / kStateFile)) continue;
    out.emplace_back(step, e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string latest_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(run_dir);
  return all.empty() ? "" : all.back().second;
}

void prune_checkpoints(const std::string& run_dir, int keep_last) {
  auto all = list_checkpoints(run_dir);
  for (size_t i = 0; i + size_t(std::max(keep_last, 1)) < all.size(); ++i) {
    // Rename first so a kill mid-delete never leaves a half-deleted step_N
    // that looks complete.
    const std::string doomed = temp_name(all[i].second, "old");
    std::error_code ec;
    fs::rename(all[i].second, doomed, ec);
    fs::remove_all(ec ? all[i].second : doomed, ec);
  }
}

void publish_latest(const std::string& ckpt_dir, const std::string& run_dir) {
  for (const char* f : {"config.json", "model.safetensors", "optimizer.safetensors", "tokenizer.json",
                        "tokenizer_config.json", "tokenizer.model", kStateFile}) {
    const fs::path src = fs::path(ckpt_dir) / f, dst = fs::path(run_dir) / f;
    if (!fs::exists(src) && std::string(f).rfind("tokenizer", 0) == 0) continue;  // byte models have none
    const std::string tmp = temp_name(dst, "tmp");
    std::error_code ec;
    fs::remove(tmp, ec);
    fs::create_hard_link(src, tmp, ec);
    if (ec) fs::copy_file(src, tmp, fs::copy_options::overwrite_existing);
    fs::rename(tmp, dst);
  }
  fsync_dir(run_dir);
}

void clean_stale_temporaries(const std::string& run_dir) {
  for (const fs::path& d : {fs::path(run_dir), fs::path(run_dir) / "checkpoints"}) {
    std::error_code ec;
    if (!fs::is_directory(d, ec)) continue;
    std::vector<fs::path> doomed;
    for (const auto& e : fs::directory_iterator(d, ec))
      if (is_temporary(e.path().filename().string())) doomed.push_back(e.path());
    // A best/ replaced mid-way: its predecessor was moved aside; bring it back.
    const fs::path best = d / "best";
    for (const auto& p : doomed)
      if (p.filename().string().rfind(".best.old.", 0) == 0 && !fs::exists(best)) fs::rename(p, best, ec);
    for (const auto& p : doomed) fs::remove_all(p, ec);
  }
}

bool holds_run(const std::string& run_dir) {
  for (const auto& e : kRunEntries)
    if (fs::exists(fs::path(run_dir) / e)) return true;
  return false;
}


// --- the lock and the session -------------------------------------------------

namespace {

bool is_run_entry(const std::string& name) {
  return std::find(kRunEntries.begin(), kRunEntries.end(), name) != kRunEntries.end();
}

// dump_config's first line: tells a run's config.yaml from a user's file.
bool written_by_mambakit(const fs::path& config_yaml) {
  std::ifstream in(config_yaml);
  std::string line;
  std::getline(in, line);
  return line.rfind("# Resolved config of this run, written by mambakit", 0) == 0;
}

// The pid a lock file records ("" when none is written yet).
std::string lock_holder(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string s(buf, n > 0 ? size_t(n) : 0);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

bool same_file(int fd, const std::string& path) {
  struct stat a {}, b {};
  return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 3; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 3) s += " and " + std::to_string(names.size() - 3) + " more";
  return s;
}

// ".<name>.new.<digits>": the staging directory of an overwrite of <name>.
bool is_staging_of(const std::string& entry, const std::string& name) {
  const std::string pre = "." + name + ".new.";
  return entry.size() > pre.size() && entry.rfind(pre, 0) == 0 &&
         std::all_of(entry.begin() + long(pre.size()), entry.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Staging directories beside `real` whose process died (nobody holds their
// lock). One without a checkpoint is debris and goes; one with a checkpoint
// was swapping into place when its process died, so it is kept and named.
void remove_abandoned_staging(const fs::path& real) {
  std::error_code ec;
  const std::string name = real.filename().string();
  std::vector<fs::path> doomed;
  for (const auto& e : fs::directory_iterator(real.parent_path(), ec)) {
    if (!is_staging_of(e.path().filename().string(), name) || !e.is_directory(ec)) continue;
    if (RunDirLock::held(e.path().string())) continue;
    if (has_checkpoint(e.path().string()))
      std::fprintf(stderr, "note: %s holds a run that was replacing %s when its process ended; kept\n",
                   e.path().c_str(), real.c_str());
    else
      doomed.push_back(e.path());
  }
  for (const auto& p : doomed) fs::remove_all(p, ec);
}

// The old run, moved aside by RunDirSession::commit: its run files go;
// anything else (a file that arrived while the new run was staged) moves
// back into the run directory, so no user file is ever deleted.
void drop_old_run(const fs::path& old, const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> ours;
  for (const auto& e : fs::directory_iterator(old, ec)) {
    const std::string n = e.path().filename().string();
    if (n == kLockFile || is_temporary(n) || is_run_entry(n)) ours.push_back(e.path());
    else if (!fs::exists(dir / n)) fs::rename(e.path(), dir / n, ec);
  }
  for (const auto& p : ours) fs::remove_all(p, ec);
  if (!fs::remove(old, ec))
    std::fprintf(stderr, "note: kept %s: it holds files that are not a run's\n", old.c_str());
}

}  // namespace

RunDirLock::RunDirLock(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the run directory: " + ec.message());
  const std::string path = (fs::path(dir) / kLockFile).string();
  for (;;) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);  // CLOEXEC: gnuplot must not inherit it
    if (fd_ < 0) throw Error(path + ": cannot open the run directory's lock file: " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const std::string pid = lock_holder(fd_);
      ::close(fd_);
      fd_ = -1;
      if (err != EWOULDBLOCK) throw Error(path + ": cannot lock: " + std::strerror(err));
      throw Error(dir + ": " + kLockFile + ": another mambakit train (pid " + (pid.empty() ? "unknown" : pid) +
                  ") is writing this run directory; wait for it to end or stop it");
    }
    // The file may have been replaced between open and flock (a staged run
    // swapped in): then the lock must be on the one at the path now.
    if (same_file(fd_, path)) break;
    ::close(fd_);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    // The pid is only for the message of a refused second writer.
  }
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);
}

bool RunDirLock::held(const std::string& dir) {
  const int fd = ::open((fs::path(dir) / kLockFile).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  // A shared probe, dropped at once: it never blocks a writer for longer.
  const bool busy = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return busy;
}

RunDirSession::RunDirSession(const std::string& dir) : dir_(dir) {
  lock_ = std::make_unique<RunDirLock>(dir);
  std::error_code ec;
  const fs::path real = fs::canonical(dir, ec);
  if (!ec) remove_abandoned_staging(real);
}

RunDirSession::~RunDirSession() {
  if (staging_.empty()) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);  // never committed: the old run stays as it was
}

void RunDirSession::stage() {
  const fs::path real = fs::canonical(dir_);
  const fs::path parent = real.parent_path();
  struct stat a {}, b {};
  if (real == parent || ::stat(real.c_str(), &a) != 0 || ::stat(parent.c_str(), &b) != 0 || a.st_dev != b.st_dev)
    throw Error(dir_ + ": output.overwrite: the new run is built beside the old one and swapped in, which a "
                "mount point or the root directory does not allow; use another output.dir");
  const fs::path st = parent / ("." + real.filename().string() + ".new." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(st, ec);  // this pid's: a leftover of a dead process that had it before
  staging_lock_ = std::make_unique<RunDirLock>(st.string());
  staging_ = st.string();
}

void RunDirSession::commit() {
  if (staging_.empty()) return;
  const fs::path real = fs::canonical(dir_), parent = real.parent_path(), st = staging_;
  fs::path old = st;  // after an exchange the staging name holds the old run
  if (::renameat2(AT_FDCWD, st.c_str(), AT_FDCWD, real.c_str(), RENAME_EXCHANGE) != 0) {
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
      throw Error(dir_ + ": cannot swap in the new run from " + st.string() + ": " + std::strerror(errno));
    // No atomic exchange on this file system: two renames (a crash between
    // them leaves both runs beside the directory, under hidden names).
    old = parent / ("." + real.filename().string() + ".old." + std::to_string(::getpid()));
    if (std::rename(real.c_str(), old.c_str()) != 0)
      throw Error(dir_ + ": cannot move the old run aside: " + std::strerror(errno));
    if (std::rename(st.c_str(), real.c_str()) != 0) {
      const int err = errno;
      std::rename(old.c_str(), real.c_str());
      throw Error(dir_ + ": cannot move the new run from " + st.string() + " into place: " + std::strerror(err));
    }
  }
  staging_.clear();
  fsync_dir(parent.string());
  drop_old_run(old, real);
}

std::string non_run_files(const std::string& dir) {
  std::vector<std::string> foreign;
  std::error_code ec;
  auto scan = [&](const fs::path& d, const std::string& prefix, auto allowed) {
    for (const auto& e : fs::directory_iterator(d, ec)) {
      const std::string n = e.path().filename().string();
      if (!is_temporary(n) && n.find(".tmp.") == std::string::npos && !allowed(n, e)) foreign.push_back(prefix + n);
    }
  };
  scan(dir, "", [](const std::string& n, const fs::directory_entry&) { return n == kLockFile || is_run_entry(n); });
  const fs::path root(dir);
  if (fs::exists(root / "config.yaml")) {
    if (!written_by_mambakit(root / "config.yaml")) foreign.push_back("config.yaml (not one mambakit wrote)");
  } else {
    // Files of a run's names but no run (a model directory, say): not ours.
    std::vector<std::string> named;
    for (const auto& e : kRunEntries)
      if (fs::exists(root / e)) named.push_back(e);
    if (!named.empty()) foreign.push_back(join_names(named) + " (but no config.yaml of a mambakit run)");
  }
  if (fs::is_directory(root / "checkpoints", ec))
    scan(root / "checkpoints", "checkpoints/", [](const std::string& n, const fs::directory_entry& e) {
      return n.rfind("step_", 0) == 0 && e.is_directory();
    });
  if (fs::is_directory(root / "best", ec))
    scan(root / "best", "best/", [](const std::string& n, const fs::directory_entry&) {
      return n == "config.json" || n == "model.safetensors" || n == "best.json" || n == "tokenizer.json" ||
             n == "tokenizer_config.json" || n == "tokenizer.model";
    });
  return join_names(foreign);
}

bool has_checkpoint(const std::string& dir) {
  return !latest_checkpoint(dir).empty() || fs::exists(fs::path(dir) / kStateFile);
}

bool is_failed_start(const std::string& dir) {
  const fs::path cfg = fs::path(dir) / "config.yaml";
  return fs::exists(cfg) && written_by_mambakit(cfg) && !has_checkpoint(dir);
}

void clear_failed_start(const std::string& dir, const std::vector<std::string>& keep) {
  clean_stale_temporaries(dir);
  std::error_code ec;
  for (const auto& e : kRunEntries) {
    const fs::path p = fs::path(dir) / e;
    if (std::any_of(keep.begin(), keep.end(), [&](const std::string& k) { return fs::equivalent(p, k, ec); }))
      continue;
    fs::remove_all(p, ec);
  }
}

std::string protected_output_problem(const std::string& out, const std::string& what) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(fs::absolute(out), ec);
  if (ec) return "";
  auto holds_model = [](const fs::path& d) {
    for (const char* f : {"config.json", "model.safetensors", "model.safetensors.index.json", "config.yaml", kStateFile})
      if (fs::exists(d / f)) return true;
    return false;
  };
  const std::string name = p.filename().string();
  static const std::vector<std::string> kModelFiles = {
      "config.json", "config.yaml", "model.safetensors", "model.safetensors.index.json", "optimizer.safetensors",
      kStateFile, "metrics.jsonl", "best.json", "generation_config.json", "tokenizer.json",
      "tokenizer_config.json", "tokenizer.model"};
  const bool model_file = std::find(kModelFiles.begin(), kModelFiles.end(), name) != kModelFiles.end() ||
                          (name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0);
  if (model_file && holds_model(p.parent_path()))
    return out + ": " + what + ": refusing to write over " + name + " of the run or model in " +
           p.parent_path().string() + "; choose another path";
  for (fs::path a = p;; a = a.parent_path()) {
    const std::string n = a.filename().string();
    const fs::path up = a.parent_path();
    const bool ckpt = (n == "checkpoints" && fs::exists(up / "config.yaml")) ||
                      (n.rfind("step_", 0) == 0 && up.filename() == "checkpoints" &&
                       (fs::exists(a / kStateFile) || fs::exists(up.parent_path() / "config.yaml"))) ||
                      (n == "best" && fs::exists(a / "best.json"));
    if (ckpt)
      return out + ": " + what + ": refusing to write inside the checkpoint directory " + a.string() +
             "; choose another path";
    if (a == up) break;
  }
  return "";
}

void test_save_delay() {
  static const long ms = [] {
    const char* s = std::getenv("MAMBAKIT_TEST_SAVE_DELAY_MS");
    return s ? std::atol(s) : 0L;
  }();
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

void test_step_fault(long step) {
  static const long fail = [] {
    const char* s = std::getenv("MAMBAKIT_TEST_FAIL_AT_STEP");
    return s ? std::atol(s) : 0L;
  }();
  static const long stall = [] {
    const char* s = std::getenv("MAMBAKIT_TEST_STALL_AT_STEP");
    return s ? std::atol(s) : 0L;
  }();
  if (step == fail) throw std::bad_alloc();
  if (step == stall) {
    std::fprintf(stderr, "train: test stall at step %ld\n", step);
    std::fflush(stderr);
    std::this_thread::sleep_for(std::chrono::minutes(10));
  }
}

// --- metrics.jsonl ---------------------------------------------------------

MetricsLog::~MetricsLog() { close(); }

void MetricsLog::close() {
  if (f_) std::fclose(f_);
  f_ = nullptr;
}

void MetricsLog::open(const std::string& path, long keep_through_step) {
  close();
  path_ = path;
  if (keep_through_step >= 0 && fs::exists(path)) {
    std::string kept;
    for (const auto& r : read_metrics(path))
      if (r.value("step", 0L) <= keep_through_step) kept += r.dump() + "\n";
    atomic_write_text(path, kept);
  } else {
    atomic_write_text(path, "");
  }
  f_ = std::fopen(path.c_str(), "a");
  if (!f_) throw Error(path + ": cannot open for appending: " + std::strerror(errno));
}

void MetricsLog::append(const json& record) {
  if (!f_) return;
  const std::string line = record.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
    throw Error(path_ + ": write failed: " + std::strerror(errno));
}

std::vector<json> read_metrics(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      out.push_back(json::parse(line));
    } catch (const json::exception&) {
      break;  // a line torn by a kill: everything after it is suspect
    }
  }
  return out;
}

}  // namespace mk::exp
