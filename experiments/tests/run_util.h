// Helpers for tests that run the mambakit binary: run a command and collect
// its output and exit code, start one in the background (to signal or kill
// it), write a small corpus and a config for it.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace mk::test {

namespace fs = std::filesystem;

struct Result {
  int code;
  std::string output;  // stdout and stderr together
};

// Runs `env mambakit args` through the shell; stderr joins stdout unless
// stdout_only (then it is dropped).
inline Result run_cli(const std::string& args, const std::string& env = "", bool stdout_only = false) {
  const std::string cmd = env + (env.empty() ? "" : " ") + MAMBAKIT_BIN + " " + args +
                          (stdout_only ? " 2>/dev/null" : " 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 512> buf;
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

// Starts mambakit with args in the background (output to log); env entries
// are NAME=VALUE.
inline pid_t spawn_cli(const std::vector<std::string>& args, const std::vector<std::string>& env,
                       const std::string& log) {
  // Everything the child needs is prepared before fork: between fork and
  // exec it only calls async-signal-safe functions.
  std::vector<std::string> envs = env;
  for (char** e = environ; *e; ++e) envs.push_back(*e);
  std::vector<char*> envp, argv{const_cast<char*>(MAMBAKIT_BIN)};
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> a = args;
  for (auto& x : a) argv.push_back(x.data());
  argv.push_back(nullptr);
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const pid_t pid = fork();
  if (pid == 0) {
    if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
    execve(MAMBAKIT_BIN, argv.data(), envp.data());
    _exit(127);
  }
  if (fd >= 0) ::close(fd);
  return pid;
}

// Exit code (or 128 + signal) of a spawned child.
inline int wait_child(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Polls cond every few milliseconds for up to `seconds`.
template <typename F>
bool wait_for(F cond, double seconds = 60) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cond();
}

// A fresh scratch directory, removed by the destructor.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("mambakit_" + name + "_" + std::to_string(getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& p) const { return (path / p).string(); }
};

// A small repetitive English text.
inline std::string write_corpus(const TempDir& d) {
  const std::string p = d / "corpus.txt";
  std::ofstream f(p);
  const char* lines[] = {"In the beginning was the word, and the word was with the scan.\n",
                         "The state space model keeps a hidden state and updates it.\n",
                         "Selective models choose what to remember and what to forget.\n"};
  for (int i = 0; i < 200; ++i) f << lines[(i * 7) % 3];
  return p;
}

// A tiny-model config (runs in well under a second); `extra` lines are
// appended to the sections named in them via --set in the tests instead.
inline std::string write_config(const TempDir& d, const std::string& corpus, const std::string& out,
                                long steps, const std::string& name = "config.yaml") {
  const std::string p = d / name;
  std::ofstream f(p);
  f << "model:\n  mixer: mamba\n  d_model: 16\n  n_layer: 2\n  d_state: 4\n"
    << "task:\n  name: language\n"
    << "data:\n  path: " << corpus << "\n  seq_len: 32\n  split: [0.9, 0.1]\n"
    << "train:\n  steps: " << steps << "\n  batch_size: 2\n  lr: 5.0e-3\n  min_lr: 5.0e-4\n"
    << "  warmup: 3\n  seed: 3\n"
    << "eval:\n  max_sequences: 4\n"
    << "output:\n  dir: " << out << "\n  log_every: 1\n";
  return p;
}

inline std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

}  // namespace mk::test
