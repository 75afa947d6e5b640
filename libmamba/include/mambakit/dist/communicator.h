// Data parallelism across processes: a communicator over the job's ranks.
// One process per rank, started by an MPI launcher (mpirun, srun); each rank
// holds the whole model and trains on its share of every global batch, and
// the ranks sum their gradients once per step (see grad_reducer.h).
//
// Backends:
//   single  one process, every collective a no-op (always built)
//   mpi     MPI (Open MPI from Debian): CPU buffers; device buffers are
//           staged through the host (built when MPI is found)
//   nccl    NCCL for device buffers, MPI for the host scalars and to pass
//           NCCL's unique id (built when CUDA, NCCL and MPI are all found)
// A build without MPI still compiles and runs everything here with the
// single-process backend.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mambakit/tensor.h"

namespace mk::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks on this node and this rank's index among them (picks a GPU and
  // divides the cores).
  virtual int local_rank() const { return rank(); }
  virtual int local_size() const { return size(); }
  virtual std::string backend_name() const = 0;  // "single", "mpi", "nccl"

  // Host values, in place, blocking: the sum / maximum over all ranks.
  virtual void sum(double* x, size_t n) = 0;
  virtual void max(double* x, size_t n) = 0;
  // Rank root's bytes to every rank (host memory).
  virtual void broadcast(void* p, size_t bytes, int root) = 0;
  virtual void barrier() = 0;

  // Gradient sums over n floats at p on device d, in place. start_sum may
  // return before the sum is done (overlapping it with the backward); every
  // started sum is complete, and visible to the device's later work, after
  // wait_all(). Every rank must start the same sums in the same order.
  virtual void start_sum(float* p, size_t n, Device d) = 0;
  // Lets the library advance started sums (MPI progresses non-blocking
  // collectives only inside its calls).
  virtual void poll() {}
  virtual void wait_all() = 0;

  // Ends every process of the job with exit code `code` (MPI_Abort); the
  // single-process backend just exits.
  [[noreturn]] virtual void abort(int code) = 0;
};

// How this process was started.
struct Launch {
  bool by_launcher = false;  // an MPI launcher's environment is present
  int world = 1;             // ranks it announces (1 when unknown)
  int rank = 0;
  std::string launcher;      // "mpirun (Open MPI)", "srun", "PMI", or ""
};
// Reads the launchers' environment variables (OMPI_COMM_WORLD_*, PMIX_RANK,
// PMI_RANK/PMI_SIZE, SLURM_PROCID with SLURM_STEP_NUM_TASKS under srun).
Launch detect_launch();

// The process's communicator. init_world(true, d) joins the job that the
// launcher started (MPI_Init; NCCL too when d is cuda and NCCL is built);
// init_world(false, ...) and a process never initialised have the
// single-process one. Throws mk::Error when asked for more than one rank in
// a build without MPI. Idempotent: a second call keeps the first world.
void init_world(bool distributed, Device d = Device::cpu);
Communicator& world();
// MPI_Finalize (when MPI was initialised); call once before exit.
void finalize_world();
// The backends this build holds, e.g. {"mpi (Open MPI v4.1.4)", "nccl 2.21.5"}.
std::vector<std::string> built_backends();

// 64-bit FNV-1a of a byte range, chained through `h` (ranks compare their
// parameters by it).
uint64_t fnv1a(const void* p, size_t bytes, uint64_t h = 14695981039346656037ull);

// Factories used by init_world (exposed for tests).
std::unique_ptr<Communicator> make_single();

}  // namespace mk::dist
