// ParamStore: named views into one flat parameter buffer and one flat grad buffer.
#include "mambakit/params.h"

#include <algorithm>

#include "mambakit/error.h"

namespace mk {

template <typename T>
size_t ParamStore<T>::declare(const std::string& name, const Shape& shape, bool decay) {
  MK_CHECK(!finalized_, "ParamStore::declare: cannot declare '" + name + "' after finalize()");
  MK_CHECK(!has(name), "ParamStore::declare: duplicate parameter '" + name + "'");
  for (int64_t d : shape)
    MK_CHECK(d >= 0, "ParamStore::declare: negative dimension in shape " + shape_str(shape) +
                         " of '" + name + "'");
  ParamEntry e;
  e.name = name;
  e.shape = shape;
  e.offset = total_;
  e.numel = size_t(shape_numel(shape));
  e.decay = decay;
  index_[name] = entries_.size();
  entries_.push_back(e);
  total_ += e.numel;
  return e.offset;
}

template <typename T>
void ParamStore<T>::finalize() {
  MK_CHECK(!finalized_, "ParamStore::finalize: called twice");
  data_.assign_zero(*backend_, total_);
  finalized_ = true;
}

template <typename T>
Buf<T>& ParamStore<T>::grad_buf() const {
  if (finalized_ && grad_.size() != total_) grad_.assign_zero(*backend_, total_);
  return grad_;
}

template <typename T>
void ParamStore<T>::zero_grad() {
  grad_.assign_zero(*backend_, total_);
}

template <typename T>
void ParamStore<T>::to(Device d) {
  if (d == device_) return;
  Backend<T>& be = backend_for<T>(d);
  data_.bind(be);
  if (!grad_.empty()) grad_.bind(be);  // else allocated on the new device when first used
  backend_ = &be;
  device_ = d;
}

template <typename T>
const ParamEntry& ParamStore<T>::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("ParamStore: unknown parameter '" + name + "'");
  return entries_[it->second];
}

template <typename T>
Tensor ParamStore<T>::view(const std::string& name) {
  const ParamEntry& e = entry(name);
  MK_CHECK(finalized_, "ParamStore::view: '" + name + "' requested before finalize()");
  MK_CHECK(device_ == Device::cpu, "ParamStore::view: '" + name + "' lives on the GPU; use host_data()");
  return Tensor::borrow(data_.data() + e.offset, e.shape, dtype_of<T>());
}

template <typename T>
Tensor ParamStore<T>::grad_view(const std::string& name) {
  const ParamEntry& e = entry(name);
  MK_CHECK(finalized_, "ParamStore::grad_view: '" + name + "' requested before finalize()");
  MK_CHECK(device_ == Device::cpu, "ParamStore::grad_view: '" + name + "' lives on the GPU; use host_grad()");
  return Tensor::borrow(grad() + e.offset, e.shape, dtype_of<T>());
}

template class ParamStore<float>;
template class ParamStore<double>;

}  // namespace mk
