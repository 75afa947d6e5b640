#include "mambakit/dist/grad_reducer.h"

#include <algorithm>

#include "mambakit/error.h"

namespace mk::dist {

GradReducer::GradReducer(Communicator& comm, float* grad, size_t n, Device d, size_t bucket_floats)
    : comm_(comm), grad_(grad), n_(n), bucket_(std::max<size_t>(1, bucket_floats)), device_(d) {}

void GradReducer::ready(size_t ready_from) {
  const size_t total = buckets();
  while (started_ < total) {
    const size_t k = total - 1 - started_;  // the highest bucket not yet started
    const size_t begin = k * bucket_;
    if (begin < ready_from) break;
    comm_.start_sum(grad_ + begin, std::min(bucket_, n_ - begin), device_);
    ++started_;
  }
  comm_.poll();
}

void GradReducer::finish() {
  ready(0);
  comm_.wait_all();
  started_ = 0;
}

}  // namespace mk::dist
