#include "mambakit/process_memory.h"

#include <sys/resource.h>

#include <fstream>

namespace mk {

long proc_status_kb(const std::string& field) {
  std::ifstream f("/proc/self/status");
  const std::string key = field + ":";
  std::string line;
  while (std::getline(f, line))
    if (line.compare(0, key.size(), key) == 0) return std::stol(line.substr(key.size()));
  return -1;
}

long peak_rss_bytes() {
  const long hwm_kb = proc_status_kb("VmHWM");
  if (hwm_kb >= 0) return hwm_kb * 1024;
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return long(u.ru_maxrss) * 1024;  // Linux reports kilobytes
}

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return bool(f);
}

}  // namespace mk
