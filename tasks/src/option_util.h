// Reading a task's own options (the `task:` section of a config) with errors
// that name the file, line and key: shared by the DNA and audio tasks.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "mambakit/tasks/task.h"

namespace mk::tasks::opt {

inline double number(const TaskSpec& s, const std::string& key, double def, double lo, double hi) {
  if (!s.options.contains(key)) return def;
  const auto& v = s.options[key];
  if (!v.is_number())
    throw ConfigError(s.where_of(key) + ": task." + key + ": expected a number, got " + v.dump());
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi))
    throw ConfigError(s.where_of(key) + ": task." + key + " must be in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "], got " + v.dump());
  return x;
}

inline long integer(const TaskSpec& s, const std::string& key, long def, long lo, long hi) {
  if (!s.options.contains(key)) return def;
  const auto& v = s.options[key];
  if (!v.is_number_integer())
    throw ConfigError(s.where_of(key) + ": task." + key + ": expected an integer, got " + v.dump());
  const long x = v.get<long>();
  if (x < lo || x > hi)
    throw ConfigError(s.where_of(key) + ": task." + key + " must be in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "], got " + v.dump());
  return x;
}

inline bool boolean(const TaskSpec& s, const std::string& key, bool def) {
  if (!s.options.contains(key)) return def;
  const auto& v = s.options[key];
  if (!v.is_boolean())
    throw ConfigError(s.where_of(key) + ": task." + key + ": expected true or false, got " + v.dump());
  return v.get<bool>();
}

inline std::string text(const TaskSpec& s, const std::string& key, const std::string& def,
                        const std::vector<std::string>& choices = {}) {
  if (!s.options.contains(key)) return def;
  const auto& v = s.options[key];
  if (!v.is_string())
    throw ConfigError(s.where_of(key) + ": task." + key + ": expected a string, got " + v.dump());
  const std::string x = v.get<std::string>();
  if (!choices.empty() && std::find(choices.begin(), choices.end(), x) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    throw ConfigError(s.where_of(key) + ": task." + key + ": '" + x + "' is not one of " + list +
                      did_you_mean(x, choices));
  }
  return x;
}

// Split fractions that cut data completely (DNA intervals, audio files):
// 2 or 3 of them, summing to 1.
inline void check_full_split(const TaskSpec& s, const std::string& task) {
  const auto& f = s.data.split;
  double sum = 0;
  for (double x : f) sum += x;
  if (f.size() < 2 || f.size() > 3 || std::abs(sum - 1) > 1e-6)
    throw ConfigError(s.data_where_of("split") + ": data.split: the " + task +
                      " task takes 2 or 3 fractions (train, val[, test]) summing to 1");
}

}  // namespace mk::tasks::opt
