// Training curves drawn by gnuplot (Debian's gnuplot-nox; install-deps
// installs it). Without gnuplot a run still succeeds: plot_run reports why it
// drew nothing and the trainer prints that as a note.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace mk::exp {

// The gnuplot executable: $MAMBAKIT_GNUPLOT if set, else "gnuplot" from
// PATH; "" when there is none.
std::string find_gnuplot();

// Runs the gnuplot script make_script(png, svg) returns, which draws into
// those two temporary files; when gnuplot succeeds they become
// out_prefix.png and out_prefix.svg. Returns false with *why set otherwise
// (no gnuplot, or its last error line).
bool render_gnuplot(const std::function<std::string(const std::string& png, const std::string& svg)>& make_script,
                    const std::string& out_prefix, std::string* why);
// s as a gnuplot single-quoted string.
std::string gnuplot_quote(const std::string& s);

// run_dir/loss.png and loss.svg: train and eval loss (left axis) and the
// learning rate (right axis) against step, from run_dir/metrics.jsonl.
// Returns false with *why set when nothing was drawn.
bool plot_run(const std::string& run_dir, std::string* why);

// Overlays the train and eval loss of several runs (labelled by directory)
// into out_prefix.png and out_prefix.svg.
bool plot_runs(const std::vector<std::string>& run_dirs, const std::string& out_prefix,
               std::string* why);

}  // namespace mk::exp
