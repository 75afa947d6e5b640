#include "mambakit/experiments/cli_options.h"

#include <cctype>
#include <set>
#include <sstream>
#include <vector>

#include "mambakit/tasks/task.h"

namespace mk::exp {

namespace po = boost::program_options;

std::string command_of(const po::options_description& desc) {
  std::ostringstream help;  // the caption is the help text's first line
  help << desc;
  std::istringstream words(help.str().substr(0, help.str().find('\n')));
  std::string w, cmd;
  if (!(words >> w) || w != "mambakit") return "";
  while (words >> w) {
    bool lower = !w.empty();
    for (char c : w) lower = lower && std::islower(static_cast<unsigned char>(c));
    if (!lower) break;
    cmd += (cmd.empty() ? "" : " ") + w;
  }
  return cmd;
}

std::string option_error_text(const po::error& e, const po::options_description& desc,
                              const po::positional_options_description* pos) {
  const auto* unknown = dynamic_cast<const po::unknown_option*>(&e);
  if (!unknown) return e.what();
  std::string given = unknown->get_option_name();
  if (given.empty()) return e.what();
  std::set<std::string> positional;
  if (pos)
    for (unsigned i = 0; i < pos->max_total_count() && i < 64; ++i) positional.insert(pos->name_for_position(i));
  // Compare flag names without their dashes, so "-temperature" and
  // "--temprature" both find "--temperature".
  std::string bare = given;
  while (!bare.empty() && bare[0] == '-') bare.erase(0, 1);
  const auto eq = bare.find('=');
  if (eq != std::string::npos) bare.resize(eq);
  std::vector<std::string> names;
  for (const auto& o : desc.options()) {
    const std::string n = o->long_name();
    if (!n.empty() && !positional.count(n)) names.push_back(n);
  }
  std::string msg = "unknown option '" + given + "'";
  const std::string best = tasks::closest_match(bare, names);
  if (!best.empty()) msg += "; did you mean '--" + best + "'?";
  const std::string cmd = command_of(desc);
  msg += " (see mambakit " + (cmd.empty() ? std::string() : cmd + " ") + "--help)";
  return msg;
}

}  // namespace mk::exp
