// This process's resident memory, from /proc/self/status (Linux): what the
// benchmarks report as peak memory and what tests of memory use measure.
#pragma once
#include <string>

namespace mk {

// A field of /proc/self/status in kB ("VmRSS", "VmHWM"); -1 where it cannot
// be read.
long proc_status_kb(const std::string& field);

// The peak resident set of this process image in bytes: VmHWM, which starts
// afresh when the process execs. (getrusage's ru_maxrss does not: it keeps
// the high-water mark of the process this one was forked from, so a
// benchmark started by a Python script holding torch reported the script's
// 2.7 GB.) Falls back on ru_maxrss where /proc is not readable.
long peak_rss_bytes();

// Resets the peak (VmHWM) to the current resident set (Linux >= 4.0);
// false where the kernel or a sandbox does not allow it.
bool reset_peak_rss();

}  // namespace mk
