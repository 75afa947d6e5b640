// Whole-file reads and crash-safe writes. Every writer in mambakit goes
// through atomic_write, so a crash or an exception mid-write never leaves a
// half-written checkpoint: the target is either the old file or the new one.
#pragma once
#include <functional>
#include <ostream>
#include <string>

namespace mk {

// Writes `path` atomically: `writer` fills a temporary file
// `<path>.tmp.<pid>` in the same directory, which is flushed, fsync'ed and
// renamed over `path`. If `writer` throws or any I/O step fails, the temporary
// file is removed, `path` is left as it was, and the error propagates
// (I/O failures as mk::Error naming the file and the reason).
void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& writer);

// atomic_write of a string's bytes.
void atomic_write_text(const std::string& path, const std::string& text);

// The whole content of a file (bytes, no newline translation). Throws
// mk::Error naming the file when it is missing, a directory or unreadable.
std::string read_text_file(const std::string& path);

}  // namespace mk
