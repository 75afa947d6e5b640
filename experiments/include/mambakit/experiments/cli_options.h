// Command-line option mistakes as one line: an unknown flag names the
// closest known one ("did you mean") and the command's --help.
#pragma once

#include <boost/program_options.hpp>
#include <string>

namespace mk::exp {

// The command words a description's caption starts with ("mambakit bench
// train [options]..." -> "bench train"), for messages that point at --help.
std::string command_of(const boost::program_options::options_description& desc);

// The one-line text for a Boost.Program_options error while parsing against
// desc (positional names in pos are not offered as flags): for an unknown
// option "unknown option '--temprature'; did you mean '--temperature'? (see
// mambakit generate --help)", otherwise the library's own text.
std::string option_error_text(const boost::program_options::error& e,
                              const boost::program_options::options_description& desc,
                              const boost::program_options::positional_options_description* pos = nullptr);

}  // namespace mk::exp
