// Errors that reach a user name the file, the place and the reason.
#pragma once
#include <stdexcept>
#include <string>

namespace mk {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws mk::Error("<where>: <why>") when cond is false.
#define MK_CHECK(cond, msg)                                                   \
  do {                                                                        \
    if (!(cond)) throw ::mk::Error(std::string(msg));                         \
  } while (0)

}  // namespace mk
