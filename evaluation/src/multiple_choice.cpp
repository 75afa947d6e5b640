// Zero-shot multiple-choice scoring: JSONL reader and acc / acc_norm.
#include "mambakit/evaluation/multiple_choice.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mambakit/error.h"
#include "mambakit/error_text.h"

namespace mk::eval {

std::vector<McItem> read_mc_jsonl(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open file");
  std::vector<McItem> items;
  std::string line;
  for (size_t row = 1; std::getline(f, line); ++row) {
    const std::string where = path + ":" + std::to_string(row);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e999
      throw Error(where + ": invalid JSON: " + library_what(e));
    }
    if (!j.is_object()) throw Error(where + ": expected a JSON object");
    McItem it;
    if (!j.contains("context") || !j["context"].is_string())
      throw Error(where + ": \"context\" must be a string");
    it.context = j["context"].get<std::string>();
    if (!j.contains("choices") || !j["choices"].is_array())
      throw Error(where + ": \"choices\" must be an array of strings");
    for (const auto& c : j["choices"]) {
      if (!c.is_string()) throw Error(where + ": \"choices\" must be an array of strings");
      it.choices.push_back(c.get<std::string>());
    }
    if (it.choices.size() < 2) throw Error(where + ": need at least 2 choices");
    if (!j.contains("gold") || !j["gold"].is_number_integer())
      throw Error(where + ": \"gold\" must be an integer");
    long long g = j["gold"].get<long long>();
    if (g < 0 || g >= (long long)it.choices.size())
      throw Error(where + ": gold " + std::to_string(g) + " out of range [0, " +
                  std::to_string(it.choices.size()) + ")");
    it.gold = int(g);
    items.push_back(std::move(it));
  }
  if (f.bad()) throw Error(path + ": read error");
  if (items.empty()) throw Error(path + ": no items");
  return items;
}

McItemScore score_mc_item(const McItem& item, const LoglikFn& loglik,
                          const std::string& delimiter) {
  McItemScore s;
  double best = -INFINITY, best_norm = -INFINITY;
  for (size_t k = 0; k < item.choices.size(); ++k) {
    double ll = loglik(item.context, delimiter + item.choices[k]);
    s.loglik.push_back(ll);
    double norm = ll / double(std::max<size_t>(1, item.choices[k].size()));
    if (ll > best) best = ll, s.pred = int(k);
    if (norm > best_norm) best_norm = norm, s.pred_norm = int(k);
  }
  return s;
}

namespace {

double stderr_of_mean(double hits, double n) {
  if (n < 2) return 0;
  double p = hits / n;  // sample variance of 0/1 outcomes: n p (1 - p) / (n - 1)
  return std::sqrt(p * (1 - p) * n / (n - 1) / n);
}

}  // namespace

McResult score_multiple_choice(const std::vector<McItem>& items, const LoglikFn& loglik,
                               const std::string& delimiter) {
  McResult r;
  double hits = 0, hits_norm = 0;
  for (const auto& it : items) {
    r.items.push_back(score_mc_item(it, loglik, delimiter));
    hits += r.items.back().pred == it.gold;
    hits_norm += r.items.back().pred_norm == it.gold;
  }
  r.n = items.size();
  if (r.n) {
    r.acc = hits / double(r.n);
    r.acc_norm = hits_norm / double(r.n);
    r.acc_stderr = stderr_of_mean(hits, double(r.n));
    r.acc_norm_stderr = stderr_of_mean(hits_norm, double(r.n));
  }
  return r;
}

}  // namespace mk::eval
