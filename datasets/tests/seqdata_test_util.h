// Helpers for the FASTA / audio / shard tests: a per-test temporary folder,
// small file writers, and an error-message matcher.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "mambakit/error.h"

namespace mk::test {

// A fresh folder for one test, removed afterwards:
// $TMPDIR/mambakit_<suite>_<test>_<pid>.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const char* base = std::getenv("TMPDIR");
    path_ = std::string(base && *base ? base : "/tmp") + "/mambakit_" + info->test_suite_name() + "_" +
            info->name() + "_" + std::to_string(::getpid());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Plain gzip, the way Debian ships its *.fa.gz (gzip is an Essential package).
inline void gzip_file(const std::string& src, const std::string& dst) {
  std::string cmd = "gzip -c -n '" + src + "' > '" + dst + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// Files in a folder (recursively), for "nothing half-written" checks.
inline std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  if (!std::filesystem::exists(dir)) return out;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path().string());
  return out;
}

// Runs f, expects mk::Error whose message contains every one of `parts`.
inline ::testing::AssertionResult throws_error(const std::function<void()>& f,
                                               std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const mk::Error& e) {
    std::string msg = e.what();
    for (const auto& p : parts)
      if (msg.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks '" << p << "': " << msg;
    return ::testing::AssertionSuccess() << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "not an mk::Error: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception";
}

}  // namespace mk::test
