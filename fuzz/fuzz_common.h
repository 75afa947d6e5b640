// Shared by the libFuzzer harnesses (fuzz/fuzz_*.cpp).
//
// Each harness hands the fuzzer's bytes to one of mambakit's real parsing
// entry points. Most of them take a path, so the bytes are written to a file
// in a private scratch directory (under /dev/shm where it exists: a tmpfs
// write costs microseconds), one directory per fuzzing process, removed at
// exit.
//
// What counts as a finding, besides what ASan/UBSan/LeakSanitizer report:
//   - any exception other than mk::Error escaping the parser (a raw library
//     exception, std::bad_alloc, std::out_of_range, ...): the harness lets it
//     escape, and libFuzzer reports the uncaught exception as a crash;
//   - an mk::Error whose message is empty, spans several lines, or (where the
//     harness passes a path) does not name the file: expect_error aborts.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>

#include "mambakit/error.h"

namespace fuzz {

// The scratch directory of this process (created on first use, removed at
// exit; the string is never destroyed, so the exit handler can still read it).
inline const std::string& scratch_dir() {
  static const std::string& dir = *new std::string([] {
    std::string base = "/tmp";
    if (const char* t = std::getenv("TMPDIR"); t && *t) base = t;
    std::error_code ec;
    if (std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) base = "/dev/shm";
    std::string templ = base + "/mambakit-fuzz.XXXXXX";
    if (!::mkdtemp(templ.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code e;
      std::filesystem::remove_all(scratch_dir(), e);
    });
    return templ;
  }());
  return dir;
}

// Writes bytes to <scratch>/<name> (replacing it) and returns the path.
inline std::string write_file(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();
  }
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    done += size_t(n);
  }
  ::close(fd);
  return path;
}

inline std::string write_file(const std::string& name, const std::string& text) {
  return write_file(name, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// An mk::Error from a parser: one line that names `path` (when not empty).
inline void expect_error(const mk::Error& e, const std::string& path) {
  const std::string msg = e.what();
  const char* problem = nullptr;
  if (msg.empty()) problem = "empty error message";
  else if (msg.find('\n') != std::string::npos) problem = "error message spans several lines";
  else if (!path.empty() && msg.find(path) == std::string::npos) problem = "error message does not name the file";
  if (problem) {
    std::fprintf(stderr, "fuzz: %s:\n%s\n", problem, msg.c_str());
    std::abort();
  }
}

}  // namespace fuzz
