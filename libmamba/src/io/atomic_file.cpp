#include "mambakit/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mambakit/error.h"

namespace mk {
namespace {

std::string errno_str() { return std::strerror(errno); }

// fsync through a fresh descriptor: Linux flushes the inode's dirty pages
// whichever descriptor asks, and std::ofstream does not expose its own.
void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw Error(path + ": cannot open for fsync: " + errno_str());
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some file systems refuse fsync on directories (EINVAL); the rename is
  // still atomic there, only its durability is not guaranteed.
  if (rc != 0 && !(flags & O_DIRECTORY && (err == EINVAL || err == EBADF)))
    throw Error(path + ": fsync failed: " + std::strerror(err));
}

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& writer) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw Error(path + ": cannot create temporary file " + tmp + ": " + errno_str());
      writer(out);
      out.flush();
      if (!out) throw Error(path + ": write to " + tmp + " failed (disk full?)");
      out.close();
      if (out.fail()) throw Error(path + ": closing " + tmp + " failed");
    }
    fsync_path(tmp, O_RDONLY);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw Error(path + ": cannot rename " + tmp + " over it: " + errno_str());
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  // Make the rename itself durable.
  fsync_path(parent_dir(path), O_RDONLY | O_DIRECTORY);
}

void atomic_write_text(const std::string& path, const std::string& text) {
  atomic_write(path, [&](std::ostream& os) { os.write(text.data(), std::streamsize(text.size())); });
}

std::string read_text_file(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw Error(path + ": cannot open: " + errno_str());
  if (S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + errno_str());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read failed");
  return ss.str();
}

}  // namespace mk
