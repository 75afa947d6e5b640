#include "mambakit/dist/communicator.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "backends.h"
#include "mambakit/error.h"

namespace mk::dist {

namespace {

// One process: every collective leaves the values as they are.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend_name() const override { return "single"; }
  void sum(double*, size_t) override {}
  void max(double*, size_t) override {}
  void broadcast(void*, size_t, int) override {}
  void barrier() override {}
  void start_sum(float*, size_t, Device) override {}
  void wait_all() override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }
};

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int fallback) {
  const char* v = env(name);
  return v ? std::atoi(v) : fallback;
}

std::unique_ptr<Communicator>& world_slot() {
  static std::unique_ptr<Communicator> w;
  return w;
}

}  // namespace

std::unique_ptr<Communicator> make_single() { return std::make_unique<SingleProcess>(); }

Launch detect_launch() {
  Launch l;
  if (env("OMPI_COMM_WORLD_SIZE")) {
    l = {true, env_int("OMPI_COMM_WORLD_SIZE", 1), env_int("OMPI_COMM_WORLD_RANK", 0), "mpirun (Open MPI)"};
  } else if (env("SLURM_STEP_NUM_TASKS") && env("SLURM_PROCID")) {
    // srun sets the step's task count; a batch script alone (no srun) does not.
    l = {true, env_int("SLURM_STEP_NUM_TASKS", 1), env_int("SLURM_PROCID", 0), "srun"};
  } else if (env("PMI_SIZE") || env("PMIX_RANK")) {
    l = {true, env_int("PMI_SIZE", 1), env_int(env("PMI_RANK") ? "PMI_RANK" : "PMIX_RANK", 0), "PMI"};
  }
  return l;
}

void init_world(bool distributed, Device d) {
  auto& w = world_slot();
  if (w) return;
  const Launch l = detect_launch();
  if (!distributed) {
    w = make_single();
    return;
  }
#ifdef MAMBAKIT_HAVE_MPI
  auto mpi = make_mpi();
#ifdef MAMBAKIT_HAVE_NCCL
  if (d == Device::cuda && mpi->size() > 1) {
    w = make_nccl(std::move(mpi));
    return;
  }
#endif
  w = std::move(mpi);
#else
  if (l.world > 1)
    throw Error("this process is rank " + std::to_string(l.rank) + " of " + std::to_string(l.world) +
                " started by " + l.launcher +
                ", but this mambakit was built without MPI, so the ranks cannot train one model "
                "together; rebuild with MPI (apt-get install libopenmpi-dev) or set "
                "train.distributed=off");
  w = make_single();
#endif
  (void)d;
  (void)l;
}

Communicator& world() {
  auto& w = world_slot();
  if (!w) w = make_single();
  return *w;
}

void finalize_world() {
  auto& w = world_slot();
  const bool was_mpi = w && w->backend_name() != "single";
  w.reset();
#ifdef MAMBAKIT_HAVE_MPI
  if (was_mpi) finalize_mpi();
#else
  (void)was_mpi;
#endif
}

std::vector<std::string> built_backends() {
  std::vector<std::string> v;
#ifdef MAMBAKIT_HAVE_MPI
  v.push_back("mpi (" + mpi_version() + ")");
#endif
#ifdef MAMBAKIT_HAVE_NCCL
  v.push_back("nccl " + nccl_version());
#endif
  return v;
}

uint64_t fnv1a(const void* p, size_t bytes, uint64_t h) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

}  // namespace mk::dist
