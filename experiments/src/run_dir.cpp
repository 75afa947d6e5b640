#include "mambakit/experiments/run_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
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
      (name.find(".tmp.") != std::string::npos || name.find(".old.") != std::string::npos))
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

void remove_run_files(const std::string& run_dir) {
  clean_stale_temporaries(run_dir);
  for (const auto& e : kRunEntries) fs::remove_all(fs::path(run_dir) / e);
}

void test_save_delay() {
  static const long ms = [] {
    const char* s = std::getenv("MAMBAKIT_TEST_SAVE_DELAY_MS");
    return s ? std::atol(s) : 0L;
  }();
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
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
