#include "mambakit/experiments/trainer_state.h"

#include <climits>
#include <cmath>
#include <limits>

#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/io/atomic_file.h"

namespace mk::exp {
namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& why) { throw Error(path + ": " + why); }

std::string shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 40) + "..." : s;
}

// An integer field in [lo, hi]; `fallback` when absent (required: no fallback).
long integer(const std::string& path, const json& j, const char* key, long lo, long hi, bool required,
             long fallback) {
  const auto it = j.find(key);
  if (it == j.end()) {
    if (required) fail(path, std::string("missing field \"") + key + "\"");
    return fallback;
  }
  if (!it->is_number_integer())
    fail(path, std::string("field \"") + key + "\": expected an integer, got " + it->type_name() + " " + shown(*it));
  const bool in_range = it->is_number_unsigned() ? it->get<uint64_t>() <= uint64_t(hi)
                                                 : it->get<int64_t>() >= lo && it->get<int64_t>() <= hi;
  if (!in_range) fail(path, std::string("field \"") + key + "\": " + shown(*it) + " is out of range");
  return long(it->get<int64_t>());
}

// A number field (null: NaN, as NaN is written).
double number(const std::string& path, const json& v, const std::string& what) {
  if (v.is_null()) return std::nan("");
  if (!v.is_number()) fail(path, what + ": expected a number, got " + v.type_name() + " " + shown(v));
  return v.get<double>();
}

double number_field(const std::string& path, const json& j, const char* key, double fallback) {
  const auto it = j.find(key);
  return it == j.end() ? fallback : number(path, *it, std::string("field \"") + key + "\"");
}

// {"name": number or null, ...}, nulls read back as NaN.
json metrics_object(const std::string& path, const json& v, const std::string& what) {
  if (!v.is_object()) fail(path, what + ": expected an object, got " + v.type_name());
  json out = json::object();
  for (auto it = v.begin(); it != v.end(); ++it) out[it.key()] = number(path, it.value(), what + ".\"" + it.key() + "\"");
  return out;
}

}  // namespace

TrainerState parse_trainer_state(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(path, "invalid JSON: " + library_what(e));
  }
  if (!j.is_object()) fail(path, std::string("expected a JSON object, got ") + j.type_name());
  TrainerState s;
  constexpr long kMax = std::numeric_limits<long>::max();
  s.step = integer(path, j, "step", 0, kMax, true, 0);
  s.opt_step = integer(path, j, "opt_step", 0, kMax, true, 0);
  const auto sampler = j.find("sampler_state");
  if (sampler == j.end()) fail(path, "missing field \"sampler_state\"");
  if (!sampler->is_string())
    fail(path, std::string("field \"sampler_state\": expected a string, got ") + sampler->type_name());
  s.sampler_state = sampler->get<std::string>();
  s.nonfinite_run = int(integer(path, j, "nonfinite_run", 0, INT_MAX, false, 0));
  s.nonfinite_total = integer(path, j, "nonfinite_total", 0, kMax, false, 0);
  s.tokens = number_field(path, j, "tokens", 0.0);
  s.wall_seconds = number_field(path, j, "wall_seconds", 0.0);
  s.last_eval_step = integer(path, j, "last_eval_step", -1, kMax, false, -1);
  if (const auto it = j.find("last_eval"); it != j.end()) s.last_eval = metrics_object(path, *it, "field \"last_eval\"");
  if (const auto it = j.find("best"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) fail(path, std::string("field \"best\": expected null or an object, got ") + it->type_name());
    s.best = *it;  // {"step", "metric", "value", "metrics"}
    s.best["step"] = integer(path, *it, "step", 0, kMax, true, 0);
    const auto v = it->find("value");
    if (v == it->end()) fail(path, "field \"best\": missing \"value\"");
    if (!v->is_number()) fail(path, std::string("field \"best\".\"value\": expected a number, got ") + v->type_name());
    if (const auto m = it->find("metric"); m != it->end() && !m->is_string())
      fail(path, std::string("field \"best\".\"metric\": expected a string, got ") + m->type_name());
    if (const auto m = it->find("metrics"); m != it->end())
      s.best["metrics"] = metrics_object(path, *m, "field \"best\".\"metrics\"");
  }
  return s;
}

TrainerState read_trainer_state(const std::string& path) { return parse_trainer_state(read_text_file(path), path); }

}  // namespace mk::exp
