// The communicator backends init_world() chooses from (communicator.h).
#pragma once
#include <memory>
#include <string>

#include "mambakit/dist/communicator.h"

namespace mk::dist {

#ifdef MAMBAKIT_HAVE_MPI
// Calls MPI_Init_thread (funneled: only the main thread calls MPI, OpenMP
// threads never do) unless MPI is initialised already.
std::unique_ptr<Communicator> make_mpi();
void finalize_mpi();
std::string mpi_version();
#endif

#ifdef MAMBAKIT_HAVE_NCCL
// NCCL for device buffers on the GPU local_rank % devices (selected here,
// before any allocation), `host` (MPI) for host values and NCCL's unique id.
std::unique_ptr<Communicator> make_nccl(std::unique_ptr<Communicator> host);
std::string nccl_version();
#endif

}  // namespace mk::dist
