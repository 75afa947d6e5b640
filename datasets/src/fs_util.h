// File-system helpers private to datasets/: listing inputs, cache paths,
// atomic renames of files written by third-party libraries.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mk::data::fs {

bool exists(const std::string& path);
bool is_dir(const std::string& path);
// Throws mk::Error "<path>: no such file" / "is a directory" unless a regular
// (or special, readable) file is there. `what` names the kind of input.
void require_file(const std::string& path, const std::string& what);
std::string basename(const std::string& path);
std::string dirname(const std::string& path);
bool dir_writable(const std::string& dir);
void make_dirs(const std::string& dir);
// Modification time in nanoseconds (0 if missing).
int64_t mtime_ns(const std::string& path);
int64_t file_size(const std::string& path);

// Regular files under dir (recursively, symlinks followed) whose name
// satisfies keep, sorted by path so the order never depends on the file
// system. Throws if dir is missing.
std::vector<std::string> list_files(const std::string& dir,
                                    const std::function<bool(const std::string&)>& keep);
// Lower-cased name with the trailing ".gz"/".bgz" removed, then its extension
// ("x.fa.gz" -> "fa").
std::string inner_extension(const std::string& name);

// A 64-bit FNV-1a hash as 16 hex digits.
std::string hash_hex(const std::string& s);
// Hash of a file's identity: absolute path, size and modification time, so a
// cache entry goes stale when its source changes.
std::string file_key(const std::string& path);

// A temporary name next to `path`, unique to this process and call.
std::string temp_name(const std::string& path);
// fsync then rename tmp over path; on failure removes tmp and throws.
void commit(const std::string& tmp, const std::string& path);
// Removes the files on scope exit unless release()d.
class TempFiles {
 public:
  void add(const std::string& p) { files_.push_back(p); }
  void release() { files_.clear(); }
  ~TempFiles();

 private:
  std::vector<std::string> files_;
};

}  // namespace mk::data::fs
