// Errors that reach a user name the file, the place and the reason.
#pragma once
#include <stdexcept>
#include <string>

namespace mk {

// Messages are one line whatever they quote: control characters (a newline
// in a file name, a JSON key, a header field echoed back) are written as
// escapes (\n, \r, \xNN), so a printed error is always exactly one line.
struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error(one_line(what)) {}
  explicit Error(const char* what) : Error(std::string(what)) {}

  static std::string one_line(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (const char ch : s) {
      const unsigned char c = static_cast<unsigned char>(ch);
      if (c == '\n') out += "\\n";
      else if (c == '\r') out += "\\r";
      else if ((c < 0x20 && c != '\t') || c == 0x7f) {
        static const char hex[] = "0123456789abcdef";
        out += "\\x";
        out += hex[c >> 4];
        out += hex[c & 15];
      } else {
        out += ch;
      }
    }
    return out;
  }
};

// Throws mk::Error("<where>: <why>") when cond is false.
#define MK_CHECK(cond, msg)                                                   \
  do {                                                                        \
    if (!(cond)) throw ::mk::Error(std::string(msg));                         \
  } while (0)

}  // namespace mk
