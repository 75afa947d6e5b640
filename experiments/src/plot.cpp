#include "mambakit/experiments/plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "mambakit/experiments/run_dir.h"
#include "mambakit/io/atomic_file.h"

extern char** environ;

namespace mk::exp {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string gnuplot_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

namespace {

const auto& quote = gnuplot_quote;

struct Series {
  std::string title, style;
  bool right_axis = false;
  std::vector<std::pair<double, double>> xy;
};

// Train curves can have many points; a few thousand draw the same picture.
void thin(std::vector<std::pair<double, double>>& xy, size_t max_points = 4000) {
  if (xy.size() <= max_points) return;
  const size_t stride = (xy.size() + max_points - 1) / max_points;
  std::vector<std::pair<double, double>> out;
  for (size_t i = 0; i < xy.size(); i += stride) out.push_back(xy[i]);
  if (out.back() != xy.back()) out.push_back(xy.back());
  xy.swap(out);
}

// The eval loss series of a run: the `<split>_loss` fields of eval records.
// color >= 0: one colour for all curves of this run (overlays).
void read_run(const std::string& run_dir, const std::string& label, std::vector<Series>& out,
              bool with_lr, int color = -1) {
  const std::string lc = color >= 0 ? " lc " + std::to_string(color + 1) : "";
  Series train{label.empty() ? "train loss" : label + " train", "lines lw 2" + lc, false, {}};
  Series lr{"learning rate", "lines dt 2 lc rgb 'gray50'", true, {}};
  std::map<std::string, Series> evals;
  for (const auto& r : read_metrics(run_dir + "/metrics.jsonl")) {
    const double step = r.value("step", 0.0);
    const std::string type = r.value("type", "");
    if (type == "train") {
      if (r.contains("loss") && r["loss"].is_number()) train.xy.emplace_back(step, r["loss"].get<double>());
      if (r.contains("lr") && r["lr"].is_number()) lr.xy.emplace_back(step, r["lr"].get<double>());
    } else if (type == "eval") {
      for (auto it = r.begin(); it != r.end(); ++it) {
        const std::string k = it.key();
        if (k.size() > 5 && k.compare(k.size() - 5, 5, "_loss") == 0 && it->is_number()) {
          auto& s = evals[k];
          if (s.title.empty())
            s = Series{label.empty() ? k : label + " " + k,
                       "linespoints pt 7 ps 0.6 lw 2" + (color >= 0 ? " dt 3" + lc : ""), false, {}};
          s.xy.emplace_back(step, it->get<double>());
        }
      }
    }
  }
  for (auto* s : {&train, &lr}) thin(s->xy);
  if (!train.xy.empty()) out.push_back(train);
  for (auto& [k, s] : evals) out.push_back(s);
  if (with_lr && !lr.xy.empty()) out.push_back(lr);
}

std::string script(const std::vector<Series>& series, const std::string& png, const std::string& svg,
                   const std::string& title) {
  std::ostringstream g;
  g.precision(9);
  bool right = false;
  for (size_t i = 0; i < series.size(); ++i) {
    g << "$d" << i << " << EOD\n";
    for (const auto& [x, y] : series[i].xy)
      if (std::isfinite(y)) g << x << " " << y << "\n";
    g << "EOD\n";
    right |= series[i].right_axis;
  }
  g << "set title " << quote(title) << " noenhanced\n"
    << "set xlabel 'step'\nset ylabel 'loss'\nset grid\nset key top right noenhanced\n"
    << "set ytics nomirror\n";
  if (right) g << "set y2label 'learning rate'\nset y2tics\nset format y2 '%.1e'\n";
  std::ostringstream plot;
  plot << "plot ";
  for (size_t i = 0; i < series.size(); ++i)
    plot << (i ? ", " : "") << "$d" << i << " using 1:2 axes x1" << (series[i].right_axis ? "y2" : "y1")
         << " with " << series[i].style << " title " << quote(series[i].title) << " noenhanced";
  g << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
    << "  set terminal pngcairo size 960,600 noenhanced\n} else {\n"
    << "  set terminal png size 960,600\n}\n"
    << "set output " << quote(png) << "\n"
    << plot.str() << "\n"
    << "set terminal svg size 960,600 dynamic noenhanced\n"
    << "set output " << quote(svg) << "\n"
    << plot.str() << "\nset output\n";
  return g.str();
}

// Runs gnuplot on a script file; stderr goes to err_path.
bool run_gnuplot(const std::string& exe, const std::string& script_path, const std::string& err_path,
                 std::string* why) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv = {const_cast<char*>(exe.c_str()), const_cast<char*>(script_path.c_str()),
                             nullptr};
  pid_t pid;
  const int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    *why = "cannot start " + exe + ": " + std::strerror(rc);
    return false;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string err;
    try {
      err = read_text_file(err_path);
    } catch (...) {
    }
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    const auto nl = err.find_last_of('\n');
    *why = "gnuplot failed: " + (nl == std::string::npos ? err : err.substr(nl + 1));
    return false;
  }
  return true;
}

bool render(const std::vector<Series>& series, const std::string& out_prefix, const std::string& title,
            std::string* why) {
  std::string dummy;
  if (!why) why = &dummy;
  if (series.empty() && !find_gnuplot().empty()) {
    *why = "no train or eval losses to plot yet";
    return false;
  }
  return render_gnuplot(
      [&](const std::string& png, const std::string& svg) { return script(series, png, svg, title); },
      out_prefix, why);
}

}  // namespace

bool render_gnuplot(const std::function<std::string(const std::string&, const std::string&)>& make_script,
                    const std::string& out_prefix, std::string* why) {
  std::string dummy;
  if (!why) why = &dummy;
  const std::string exe = find_gnuplot();
  if (exe.empty()) {
    *why = "gnuplot not found (install gnuplot-nox, or set MAMBAKIT_GNUPLOT)";
    return false;
  }
  const fs::path prefix(out_prefix);
  const std::string tag = "." + prefix.filename().string() + ".plot." + std::to_string(::getpid());
  const fs::path dir = prefix.parent_path().empty() ? fs::path(".") : prefix.parent_path();
  const std::string gp = (dir / (tag + ".gp")).string(), err = (dir / (tag + ".err")).string();
  const std::string png_tmp = (dir / (tag + ".png")).string(), svg_tmp = (dir / (tag + ".svg")).string();
  bool ok = false;
  try {
    atomic_write_text(gp, make_script(png_tmp, svg_tmp));
    ok = run_gnuplot(exe, gp, err, why);
    if (ok) {
      fs::rename(png_tmp, out_prefix + ".png");
      fs::rename(svg_tmp, out_prefix + ".svg");
    }
  } catch (const std::exception& e) {
    *why = e.what();
    ok = false;
  }
  std::error_code ec;
  for (const auto& f : {gp, err, png_tmp, svg_tmp}) fs::remove(f, ec);
  return ok;
}

std::string find_gnuplot() {
  if (const char* env = std::getenv("MAMBAKIT_GNUPLOT"))
    return ::access(env, X_OK) == 0 ? std::string(env) : std::string();
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/bin:/bin");
  std::string d;
  while (std::getline(ss, d, ':')) {
    const std::string p = (d.empty() ? "." : d) + "/gnuplot";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

bool plot_run(const std::string& run_dir, std::string* why) {
  std::vector<Series> s;
  read_run(run_dir, "", s, true);
  return render(s, run_dir + "/loss", fs::path(run_dir).filename().string(), why);
}

bool plot_runs(const std::vector<std::string>& run_dirs, const std::string& out_prefix,
               std::string* why) {
  std::vector<Series> s;
  for (const auto& d : run_dirs) {
    std::string label = fs::path(d).filename().string();
    if (label.empty()) label = fs::path(d).parent_path().filename().string();
    read_run(d, label, s, false, int(&d - run_dirs.data()));
  }
  return render(s, out_prefix, "loss", why);
}

}  // namespace mk::exp
