#include "fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "mambakit/error.h"

namespace mk::data::fs {
namespace stdfs = std::filesystem;

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void require_file(const std::string& path, const std::string& what) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw Error(path + ": cannot open " + what + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, expected " + what);
  if (::access(path.c_str(), R_OK) != 0)
    throw Error(path + ": cannot read " + what + ": " + std::strerror(errno));
}

std::string basename(const std::string& path) {
  size_t s = path.find_last_of('/');
  return s == std::string::npos ? path : path.substr(s + 1);
}

std::string dirname(const std::string& path) {
  size_t s = path.find_last_of('/');
  if (s == std::string::npos) return ".";
  return s == 0 ? "/" : path.substr(0, s);
}

bool dir_writable(const std::string& dir) { return ::access(dir.c_str(), W_OK | X_OK) == 0; }

void make_dirs(const std::string& dir) {
  std::error_code ec;
  stdfs::create_directories(dir, ec);
  if (ec || !is_dir(dir)) throw Error(dir + ": cannot create directory: " + ec.message());
}

int64_t mtime_ns(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

int64_t file_size(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return -1;
  return int64_t(st.st_size);
}

std::vector<std::string> list_files(const std::string& dir,
                                    const std::function<bool(const std::string&)>& keep) {
  if (!is_dir(dir)) throw Error(dir + ": no such directory");
  std::vector<std::string> out;
  std::error_code ec;
  auto opts = stdfs::directory_options::follow_directory_symlink |
              stdfs::directory_options::skip_permission_denied;
  for (auto it = stdfs::recursive_directory_iterator(dir, opts, ec);
       !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    std::string p = it->path().string();
    if (keep(basename(p))) out.push_back(p);
  }
  if (ec) throw Error(dir + ": cannot list directory: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::string inner_extension(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  for (const char* z : {".gz", ".bgz"}) {
    size_t l = std::strlen(z);
    if (n.size() > l && n.compare(n.size() - l, l, z) == 0) n.resize(n.size() - l);
  }
  size_t dot = n.find_last_of('.');
  return dot == std::string::npos ? "" : n.substr(dot + 1);
}

std::string hash_hex(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string file_key(const std::string& path) {
  std::error_code ec;
  std::string abs = stdfs::weakly_canonical(path, ec).string();
  if (ec) abs = path;
  return hash_hex(abs + "|" + std::to_string(file_size(path)) + "|" + std::to_string(mtime_ns(path)));
}

std::string temp_name(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

void commit(const std::string& tmp, const std::string& path) {
  int fd = ::open(tmp.c_str(), O_RDONLY);
  bool ok = fd >= 0 && ::fsync(fd) == 0;
  int err = errno;
  if (fd >= 0) ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    std::remove(tmp.c_str());
    throw Error(path + ": cannot move finished file " + tmp + " into place: " + std::strerror(err));
  }
}

TempFiles::~TempFiles() {
  for (const auto& f : files_) std::remove(f.c_str());
}

}  // namespace mk::data::fs
