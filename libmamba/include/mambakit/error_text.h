// Third-party exception text inside mambakit's one-line errors.
#pragma once
#include <exception>
#include <string>

namespace mk {

// The message of a library's exception, fit for the reason part of a
// one-line mk::Error ("<file>: <place>: <reason>"): its first line, without
// a leading "[tag] " such as nlohmann's "[json.exception.parse_error.101] ".
inline std::string library_what(const std::exception& e) {
  std::string s = e.what();
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find("] ");
    if (close != std::string::npos) s.erase(0, close + 2);
  }
  const size_t nl = s.find_first_of("\r\n");
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

}  // namespace mk
