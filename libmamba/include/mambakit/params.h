// One flat parameter buffer, one flat gradient buffer. Every parameter is a
// named view into them (names follow HF MambaForCausalLM, e.g.
// "backbone.layers.0.mixer.in_proj.weight"), so the optimizer, gradient
// clipping, all-reduce and checkpointing each run over a single array.
// Both buffers live on the store's device (the CPU until to() moves them);
// data() and grad() are pointers on that device, backend() its op table.
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "mambakit/backend.h"
#include "mambakit/tensor.h"

namespace mk {

struct ParamEntry {
  std::string name;
  Shape shape;
  size_t offset = 0;  // elements into the flat buffer
  size_t numel = 0;
  bool decay = true;  // AdamW weight decay applies (false: norms, biases, A_log, D)
};

template <typename T>
class ParamStore {
 public:
  // Declare a parameter; returns its offset. Only before finalize().
  size_t declare(const std::string& name, const Shape& shape, bool decay);
  // Allocates the parameter buffer (zero-filled). Views are stable from here
  // on. The gradient buffer is allocated (zero-filled) on first use, so a
  // model that only runs inference (a loaded checkpoint) holds its weights
  // once, not twice.
  void finalize();
  bool finalized() const { return finalized_; }

  size_t size() const { return total_; }
  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  T* grad() { return grad_buf().data(); }
  const T* grad() const { return grad_buf().data(); }
  void zero_grad();

  // The device of both buffers and its op table (the CPU by default).
  Device device() const { return device_; }
  Backend<T>& backend() const { return *backend_; }
  // Moves both buffers to device d (contents kept). Throws mk::Error if the
  // device has no backend for T.
  void to(Device d);
  // Host copies of the buffers, and writing the parameters from the host.
  std::vector<T> host_data() const { return data_.to_host(); }
  std::vector<T> host_grad() const { return grad_buf().to_host(); }
  void set_host_data(const T* src) { data_.from_host(*backend_, src, total_); }

  const std::vector<ParamEntry>& entries() const { return entries_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const ParamEntry& entry(const std::string& name) const;
  T* param(const std::string& name) { return data_.data() + entry(name).offset; }
  T* grad(const std::string& name) { return grad_.data() + entry(name).offset; }
  // Tensor views (no copy) of a parameter and its gradient; CPU only.
  Tensor view(const std::string& name);
  Tensor grad_view(const std::string& name);

 private:
  std::vector<ParamEntry> entries_;
  std::map<std::string, size_t> index_;
  Backend<T>* backend_ = &backend_for<T>(Device::cpu);
  Device device_ = Device::cpu;
  // The gradient buffer, allocated zero-filled on first use.
  Buf<T>& grad_buf() const;
  Buf<T> data_;
  mutable Buf<T> grad_;  // empty until grad_buf() first runs
  size_t total_ = 0;
  bool finalized_ = false;
};

extern template class ParamStore<float>;
extern template class ParamStore<double>;

}  // namespace mk
