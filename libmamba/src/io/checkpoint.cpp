#include "mambakit/io/checkpoint.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/io/atomic_file.h"
#include "mambakit/io/model_io.h"
#include "mambakit/io/safetensors.h"

namespace mk {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& why) { throw Error(path + ": " + why); }

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// float32 -> bfloat16, rounded to nearest even (as torch's .to(bfloat16));
// a NaN stays a (quiet) NaN.
uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1);
  return uint16_t(bits >> 16);
}

// --- the shard index ----------------------------------------------------------

// weight_map of a model.safetensors.index.json: tensor name -> shard file
// name (a plain file beside the index: the index cannot point elsewhere).
std::map<std::string, std::string> read_weight_map(const std::string& path) {
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& ex) {
    fail(path, "invalid JSON: " + library_what(ex));
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail(path, "expected a JSON object with a \"weight_map\" object (tensor name -> shard file)");
  std::map<std::string, std::string> map;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      fail(path, "weight_map entry of '" + it.key() + "' is a " + it.value().type_name() + ", expected a file name");
    const std::string file = it.value().get<std::string>();
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos)
      fail(path, "weight_map entry of '" + it.key() + "': \"" + file + "\" is not a file name beside the index");
    map[it.key()] = file;
  }
  return map;
}

// The shard files an index names (empty when there is no readable index):
// what a new save may have to clean up.
std::set<std::string> indexed_files(const std::string& index_path) {
  std::set<std::string> files;
  if (!fs::exists(index_path)) return files;
  try {
    for (const auto& kv : read_weight_map(index_path)) files.insert(kv.second);
  } catch (const Error&) {
  }
  return files;
}

// --- the open weights of a checkpoint -------------------------------------------

// Every weights file of a checkpoint, memory-mapped, and which holds each tensor.
class CheckpointTensors {
 public:
  explicit CheckpointTensors(const std::string& path) : path_(path) {
    if (ends_with(path, ".json")) open_shards(path);
    else open_single(path);
  }

  bool has(const std::string& name) const { return where_.count(name) != 0; }
  const MappedSafetensors& file_of(const std::string& name) const { return *where_.at(name); }
  const std::map<std::string, const MappedSafetensors*>& tensors() const { return where_; }

  // The error for a tensor the model needs and the checkpoint lacks.
  [[noreturn]] void missing(const std::string& name) const {
    if (sharded_) fail(path_, "no weight_map entry for tensor '" + name + "'");
    fail(path_, "missing tensor '" + name + "'");
  }

 private:
  void open_single(const std::string& path) {
    files_.push_back(std::make_unique<MappedSafetensors>(path));
    for (const auto& t : files_.back()->tensors()) where_[t.name] = files_.back().get();
  }

  void open_shards(const std::string& index) {
    sharded_ = true;
    const fs::path dir = fs::path(index).parent_path();
    std::map<std::string, const MappedSafetensors*> by_file;
    for (const auto& [name, file] : read_weight_map(index)) {
      if (!by_file.count(file)) by_file[file] = open_shard((dir / file).string(), index);
      const MappedSafetensors* shard = by_file[file];
      if (!shard->has(name))
        fail(shard->path(), "lacks tensor '" + name + "', which " + index + " places in it");
      where_[name] = shard;
    }
  }

  const MappedSafetensors* open_shard(const std::string& shard, const std::string& index) {
    if (!fs::exists(shard)) fail(shard, "missing shard file (listed in " + index + ")");
    files_.push_back(std::make_unique<MappedSafetensors>(shard));
    return files_.back().get();
  }

  std::string path_;
  bool sharded_ = false;
  std::vector<std::unique_ptr<MappedSafetensors>> files_;
  std::map<std::string, const MappedSafetensors*> where_;
};

// A tied head stored explicitly must equal the embedding; compared a slice at
// a time so that no second copy of the largest tensor is ever made.
void check_tied_head(const CheckpointTensors& ck, const ParamStore<float>& ps) {
  const char* kHead = "lm_head.weight";
  if (!ck.has(kHead)) return;
  const MappedSafetensors& f = ck.file_of(kHead);
  const auto& emb = ps.entry("backbone.embeddings.weight");
  if (f.info(kHead).shape != emb.shape)
    fail(f.path(), "lm_head.weight has shape " + shape_str(f.info(kHead).shape) + ", the embedding " +
                       shape_str(emb.shape) + "; mambakit ties them");
  const int64_t kSlice = 1 << 18;
  std::vector<float> slice;
  for (int64_t i = 0; i < int64_t(emb.numel); i += kSlice) {
    const int64_t n = std::min<int64_t>(kSlice, int64_t(emb.numel) - i);
    slice.resize(size_t(n));
    f.read_f32(kHead, slice.data(), i, n);
    if (std::memcmp(slice.data(), ps.data() + emb.offset + i, size_t(n) * sizeof(float)) != 0)
      fail(f.path(), "lm_head.weight differs from the embedding, but mambakit ties them");
  }
}

void print_warning(const std::string& msg) { std::fprintf(stderr, "warning: %s\n", msg.c_str()); }

// --- saving -----------------------------------------------------------------------

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// The parameters as tensors of the saved dtype; `host` (f32) and `bf16`
// hold the bytes they point into.
NamedTensors saved_tensors(const ParamStore<float>& ps, DType dtype, std::vector<float>& host,
                           std::vector<uint16_t>& bf16) {
  host = ps.host_data();
  if (dtype == DType::bf16) {
    bf16.resize(host.size());
    for (size_t i = 0; i < host.size(); ++i) bf16[i] = f32_to_bf16(host[i]);
    std::vector<float>().swap(host);
  }
  NamedTensors tensors;
  for (const auto& e : ps.entries()) {
    void* p = dtype == DType::bf16 ? static_cast<void*>(bf16.data() + e.offset)
                                   : static_cast<void*>(host.data() + e.offset);
    tensors.emplace_back(e.name, Tensor::borrow(p, e.shape, dtype));
  }
  return tensors;
}

// Tensors in order, cut greedily into runs of at most max_bytes (as
// transformers' save_pretrained does).
std::vector<NamedTensors> split_shards(const NamedTensors& tensors, uint64_t max_bytes) {
  std::vector<NamedTensors> shards(1);
  uint64_t bytes = 0;
  for (const auto& t : tensors) {
    if (!shards.back().empty() && bytes + t.second.nbytes() > max_bytes) {
      shards.emplace_back();
      bytes = 0;
    }
    shards.back().push_back(t);
    bytes += t.second.nbytes();
  }
  return shards;
}

std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

// Writes the shards and then the index; returns the files written.
std::set<std::string> write_shards(const std::string& dir, const NamedTensors& tensors, uint64_t max_bytes) {
  const auto shards = split_shards(tensors, max_bytes);
  json weight_map = json::object();
  uint64_t total = 0;
  std::set<std::string> written;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = shard_name(i, shards.size());
    write_safetensors(dir + "/" + name, shards[i], {{"format", "pt"}});
    for (const auto& t : shards[i]) {
      weight_map[t.first] = name;
      total += t.second.nbytes();
    }
    written.insert(name);
  }
  json index;
  index["metadata"]["total_size"] = total;
  index["weight_map"] = weight_map;
  atomic_write_text(dir + "/" + kWeightsIndexFile, index.dump(2) + "\n");
  written.insert(kWeightsIndexFile);
  return written;
}

// Weights files of an earlier save (model.safetensors, an index and its
// shards) that the new save did not write.
void remove_stale_weights(const std::string& dir, const std::set<std::string>& old_shards,
                          const std::set<std::string>& written) {
  std::set<std::string> candidates = old_shards;
  candidates.insert(kWeightsFile);
  candidates.insert(kWeightsIndexFile);
  std::error_code ec;
  for (const auto& f : candidates)
    if (!written.count(f)) fs::remove(fs::path(dir) / f, ec);
}

}  // namespace

void save_model(const std::string& dir, const SequenceModel<float>& model, const SaveOptions& opt) {
  MK_CHECK(opt.dtype == DType::f32 || opt.dtype == DType::bf16,
           dir + ": save_model writes f32 or bf16 weights, not " + dtype_name(opt.dtype));
  fs::create_directories(dir);
  const std::set<std::string> old_shards = indexed_files(dir + "/" + kWeightsIndexFile);
  // A host copy of the flat buffer (the parameters may live on the GPU): the
  // bytes written are the same whichever device trained the model.
  std::vector<float> host;
  std::vector<uint16_t> bf16;
  const NamedTensors tensors = saved_tensors(model.params(), opt.dtype, host, bf16);
  std::set<std::string> written;
  if (opt.max_shard_bytes == 0) {
    write_safetensors(dir + "/" + kWeightsFile, tensors, {{"format", "pt"}});
    written.insert(kWeightsFile);
  } else {
    written = write_shards(dir, tensors, opt.max_shard_bytes);
  }
  remove_stale_weights(dir, old_shards, written);
  write_model_config(dir + "/config.json", model.config());
}

bool has_weights(const std::string& dir) {
  return fs::exists(fs::path(dir) / kWeightsFile) || fs::exists(fs::path(dir) / kWeightsIndexFile);
}

std::string weights_file(const std::string& dir) {
  for (const char* f : {kWeightsFile, kWeightsIndexFile})
    if (fs::exists(fs::path(dir) / f)) return (fs::path(dir) / f).string();
  fail(dir, std::string("no weights: neither ") + kWeightsFile + " nor " + kWeightsIndexFile);
}

namespace {

// The shape error of a tensor the model has with another shape.
[[noreturn]] void wrong_shape(const MappedSafetensors& f, const std::string& name, const Shape& want) {
  fail(f.path(), "tensor '" + name + "' has shape " + shape_str(f.info(name).shape) + ", the model expects " +
                     shape_str(want));
}

// Every parameter of cfg's model is in the checkpoint with its shape,
// checked from the headers alone before the model is allocated: sizes in
// config.json that the weights do not back (a wrong file, or one claiming
// 2^40 parameters) fail here, not in the allocator. The layer count is
// bounded first by the tensor count (every layer has tensors), which also
// bounds the cost of listing the layout.
void check_layout(const CheckpointTensors& ck, const ModelConfig& cfg, const std::string& config_path,
                  const LoadOptions& opt) {
  if (size_t(cfg.n_layer) > ck.tensors().size())
    fail(config_path, "num_hidden_layers is " + std::to_string(cfg.n_layer) + " but the weights hold only " +
                          std::to_string(ck.tensors().size()) + " tensors");
  std::vector<ParamEntry> layout;
  try {
    layout = SequenceModel<float>::layout(cfg);
  } catch (const Error& e) {  // what only the model checks (a mixer name, the pooling)
    fail(config_path, e.what());
  }
  for (const ParamEntry& e : layout) {
    if (!ck.has(e.name)) {
      if (!opt.may_lack || !opt.may_lack(e.name)) ck.missing(e.name);
      continue;
    }
    const MappedSafetensors& f = ck.file_of(e.name);
    if (f.info(e.name).shape != e.shape) wrong_shape(f, e.name, e.shape);
  }
}

void load_from(const CheckpointTensors& ck, const std::string& path, SequenceModel<float>& model,
               const LoadOptions& opt) {
  auto& ps = model.params();
  MK_CHECK(ps.device() == Device::cpu, path + ": load parameters before moving the model to the GPU");
  LoadReport report;
  for (const auto& e : ps.entries()) {
    if (!ck.has(e.name)) {
      if (!opt.may_lack || !opt.may_lack(e.name)) ck.missing(e.name);
      report.kept.push_back(e.name);
      continue;
    }
    const MappedSafetensors& f = ck.file_of(e.name);
    if (f.info(e.name).shape != e.shape) wrong_shape(f, e.name, e.shape);
    f.read_f32(e.name, ps.data() + e.offset);
    report.loaded.push_back(e.name);
    report.values += e.numel;
  }
  if (ps.has("backbone.embeddings.weight")) check_tied_head(ck, ps);
  const auto& warn = opt.warn ? opt.warn : print_warning;
  for (const auto& [name, file] : ck.tensors())
    if (!ps.has(name) && name != "lm_head.weight") {
      report.ignored.push_back(name);
      warn(file->path() + ": tensor '" + name + "' is not a parameter of this model; ignored");
    }
  if (opt.report) *opt.report = std::move(report);
}

}  // namespace

void load_params(const std::string& path, SequenceModel<float>& model, const LoadOptions& opt) {
  load_from(CheckpointTensors(path), path, model, opt);
}

std::vector<CheckpointTensorInfo> checkpoint_tensors(const std::string& path) {
  const CheckpointTensors ck(path);
  std::vector<CheckpointTensorInfo> out;
  for (const auto& [name, file] : ck.tensors()) {
    const auto& i = file->info(name);
    out.push_back({name, i.dtype, file->path(), i.shape, i.numel});
  }
  return out;
}

std::unique_ptr<SequenceModel<float>> load_model(const std::string& dir, const LoadOptions& opt) {
  if (!fs::is_directory(dir)) throw Error(dir + ": not a model directory");
  const std::string config = dir + "/config.json";
  ModelConfig cfg = read_model_config(config);
  const std::string weights = weights_file(dir);
  const CheckpointTensors ck(weights);
  check_layout(ck, cfg, config, opt);  // before allocating the model
  auto model = std::make_unique<SequenceModel<float>>(cfg);
  load_from(ck, weights, *model, opt);
  return model;
}

}  // namespace mk
