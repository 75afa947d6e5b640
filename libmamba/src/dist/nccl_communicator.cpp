// The NCCL backend (communicator.h): gradient sums of device buffers by
// ncclAllReduce on a stream of their own, host values and the bootstrap by
// MPI. Built only with CUDA, NCCL and MPI; compiled in CI, not yet run on a
// machine with several GPUs (see experiments/README.md).
//
// Ordering: the layers issue their kernels on the legacy default stream. A
// sum starts after everything issued there so far (an event the
// communication stream waits for); wait_all makes the default stream wait
// for the communication stream, so the optimizer step that follows reads
// summed gradients without a host synchronisation. The communication stream
// is non-blocking, so the backward's later kernels overlap the sums.
#if defined(MAMBAKIT_HAVE_NCCL) && defined(MAMBAKIT_HAVE_CUDA) && defined(MAMBAKIT_HAVE_MPI)

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdlib>
#include <string>

#include "backends.h"
#include "mambakit/cuda/device.h"
#include "mambakit/error.h"

namespace mk::dist {

namespace {

void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string(what) + ": " + ncclGetErrorString(r));
}

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(std::unique_ptr<Communicator> host) : host_(std::move(host)) {
    int devices = 0;
    MK_CUDA_CHECK(cudaGetDeviceCount(&devices));
    if (devices < 1) throw Error("nccl: rank " + std::to_string(rank()) + " sees no CUDA device");
    // One GPU per rank on a node: local rank i takes device i (mod count).
    MK_CUDA_CHECK(cudaSetDevice(host_->local_rank() % devices));
    ncclUniqueId id;
    if (rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host_->broadcast(&id, sizeof id, 0);
    check_nccl(ncclCommInitRank(&comm_, size(), id, rank()), "ncclCommInitRank");
    MK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    MK_CUDA_CHECK(cudaEventCreateWithFlags(&issued_, cudaEventDisableTiming));
    MK_CUDA_CHECK(cudaEventCreateWithFlags(&reduced_, cudaEventDisableTiming));
  }
  ~NcclCommunicator() override {
    cudaEventDestroy(issued_);
    cudaEventDestroy(reduced_);
    cudaStreamDestroy(stream_);
    ncclCommDestroy(comm_);
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  int local_rank() const override { return host_->local_rank(); }
  int local_size() const override { return host_->local_size(); }
  std::string backend_name() const override { return "nccl"; }
  void sum(double* x, size_t n) override { host_->sum(x, n); }
  void max(double* x, size_t n) override { host_->max(x, n); }
  void broadcast(void* p, size_t bytes, int root) override { host_->broadcast(p, bytes, root); }
  void barrier() override { host_->barrier(); }

  void start_sum(float* p, size_t n, Device d) override {
    if (d != Device::cuda) return host_->start_sum(p, n, d);
    // The event is re-recorded per sum: cudaStreamWaitEvent captures its
    // state when called, so reusing one event is safe.
    MK_CUDA_CHECK(cudaEventRecord(issued_, nullptr));
    MK_CUDA_CHECK(cudaStreamWaitEvent(stream_, issued_, 0));
    check_nccl(ncclAllReduce(p, p, n, ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce");
    pending_ = true;
  }
  void poll() override { host_->poll(); }
  void wait_all() override {
    host_->wait_all();
    if (!pending_) return;
    MK_CUDA_CHECK(cudaEventRecord(reduced_, stream_));
    MK_CUDA_CHECK(cudaStreamWaitEvent(nullptr, reduced_, 0));
    pending_ = false;
  }
  [[noreturn]] void abort(int code) override {
    ncclCommAbort(comm_);
    host_->abort(code);
    std::_Exit(code);  // a virtual call's [[noreturn]] is not seen by the compiler
  }

 private:
  std::unique_ptr<Communicator> host_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t issued_ = nullptr, reduced_ = nullptr;
  bool pending_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl(std::unique_ptr<Communicator> host) {
  return std::make_unique<NcclCommunicator>(std::move(host));
}

std::string nccl_version() {
  int v = 0;
  ncclGetVersion(&v);
  // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

}  // namespace mk::dist

#endif
