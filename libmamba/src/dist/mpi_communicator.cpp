// The MPI backend (communicator.h). Gradient sums are non-blocking
// (MPI_Iallreduce), so buckets the backward has finished travel while it
// computes the rest; Open MPI advances them inside MPI calls, hence poll().
#ifdef MAMBAKIT_HAVE_MPI

// The C API only: Open MPI's mpi.h otherwise declares its deprecated C++
// bindings, whose library (libmpi_cxx) is not linked.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends.h"
#include "mambakit/backend.h"
#include "mambakit/error.h"

namespace mk::dist {

namespace {

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, msg, &len);
  throw Error(std::string(what) + ": " + std::string(msg, size_t(len)));
}

// MPI counts are int: longer buffers go in pieces of at most this many.
constexpr size_t kMaxCount = size_t(INT_MAX) / 2;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    }
    // Errors come back as codes (turned into mk::Error) instead of aborting
    // inside MPI, so the failing rank can say why before the job ends.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node_),
              "MPI_Comm_split_type");
    MPI_Comm_rank(node_, &local_rank_);
    MPI_Comm_size(node_, &local_size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&node_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string backend_name() const override { return "mpi"; }

  void sum(double* x, size_t n) override { reduce(x, n, MPI_SUM); }
  void max(double* x, size_t n) override { reduce(x, n, MPI_MAX); }
  void broadcast(void* p, size_t bytes, int root) override {
    auto* b = static_cast<char*>(p);
    for (size_t o = 0; o < bytes; o += kMaxCount)
      check_mpi(MPI_Bcast(b + o, int(std::min(kMaxCount, bytes - o)), MPI_BYTE, root, MPI_COMM_WORLD),
                "MPI_Bcast");
  }
  void barrier() override { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

  void start_sum(float* p, size_t n, Device d) override {
    if (d != Device::cpu) return staged_sum(p, n, d);
    for (size_t o = 0; o < n; o += kMaxCount) {
      MPI_Request r;
      check_mpi(MPI_Iallreduce(MPI_IN_PLACE, p + o, int(std::min(kMaxCount, n - o)), MPI_FLOAT, MPI_SUM,
                               MPI_COMM_WORLD, &r),
                "MPI_Iallreduce");
      pending_.push_back(r);
    }
  }
  void poll() override {
    if (pending_.empty()) return;
    int done = 0;
    check_mpi(MPI_Testall(int(pending_.size()), pending_.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    if (done) pending_.clear();
  }
  void wait_all() override {
    if (pending_.empty()) return;
    check_mpi(MPI_Waitall(int(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    pending_.clear();
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
  }

 private:
  void reduce(double* x, size_t n, MPI_Op op) {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, x, int(n), MPI_DOUBLE, op, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  // A device buffer without a device-aware library: through the host,
  // blocking (correct everywhere; NCCL is the fast path for GPUs).
  void staged_sum(float* p, size_t n, Device d) {
    auto& mem = backend_for<float>(d);
    host_.resize(n);
    mem.download_bytes(host_.data(), p, n * sizeof(float));
    start_sum(host_.data(), n, Device::cpu);
    wait_all();
    mem.upload_bytes(p, host_.data(), n * sizeof(float));
  }

  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  MPI_Comm node_ = MPI_COMM_NULL;
  std::vector<MPI_Request> pending_;
  std::vector<float> host_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi() { return std::make_unique<MpiCommunicator>(); }

void finalize_mpi() {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (inited && !finalized) MPI_Finalize();
}

std::string mpi_version() {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  std::string s(v, size_t(len));
  // "Open MPI v4.1.4, package: Debian OpenMPI, ..." -> "Open MPI v4.1.4"
  s = s.substr(0, s.find_first_of(",\n"));
  return s;
}

}  // namespace mk::dist

#endif  // MAMBAKIT_HAVE_MPI
