// The task registry. A new task module adds its factory to kBuiltins below
// (one line), which keeps the set of tasks explicit and immune to the linker
// dropping unreferenced objects of a static library.
#include <mutex>

#include "mambakit/tasks/task.h"

namespace mk::tasks {

std::unique_ptr<Task> make_language_task(const TaskSpec& spec);

namespace {

std::vector<TaskInfo> builtins() {
  return {
      {"language", "next-token prediction on byte-level text files (metrics loss, bpb, ppl, accuracy)",
       &make_language_task},
  };
}

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

std::vector<TaskInfo>& extra() {
  static std::vector<TaskInfo> v;
  return v;
}

}  // namespace

std::vector<TaskInfo> task_infos() {
  std::vector<TaskInfo> all = builtins();
  std::lock_guard<std::mutex> lock(registry_mutex());
  for (const auto& t : extra()) {
    bool replaced = false;
    for (auto& a : all)
      if (a.name == t.name) a = t, replaced = true;
    if (!replaced) all.push_back(t);
  }
  return all;
}

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& t : task_infos()) names.push_back(t.name);
  return names;
}

void register_task(const TaskInfo& info) {
  MK_CHECK(!info.name.empty() && info.make, "register_task: a task needs a name and a factory");
  std::lock_guard<std::mutex> lock(registry_mutex());
  for (auto& t : extra())
    if (t.name == info.name) {
      t = info;
      return;
    }
  extra().push_back(info);
}

std::unique_ptr<Task> make_task(const TaskSpec& spec) {
  for (const auto& t : task_infos())
    if (t.name == spec.name) return t.make(spec);
  std::string known;
  for (const auto& n : task_names()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError(spec.where_of("name") + ": unknown task '" + spec.name + "' (known: " + known +
                    ")" + did_you_mean(spec.name, task_names()));
}

}  // namespace mk::tasks
