// safetensors reader/writer. See the header for the format; every check here
// guards against a corrupt or hostile file reaching a Tensor.
#include "mambakit/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/io/atomic_file.h"

namespace mk {
namespace {

using json = nlohmann::json;

// A header larger than this is corruption, not a model: real headers are a
// few hundred bytes per tensor.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

enum class DiskType { F32, F64, I32, I64, BF16, F16, U8 };

struct DiskTypeInfo {
  const char* name;
  DiskType type;
  size_t size;
};

constexpr DiskTypeInfo kDiskTypes[] = {
    {"F32", DiskType::F32, 4},  {"F64", DiskType::F64, 8}, {"I32", DiskType::I32, 4},
    {"I64", DiskType::I64, 8},  {"BF16", DiskType::BF16, 2}, {"F16", DiskType::F16, 2},
    {"U8", DiskType::U8, 1},
};

// One tensor as the header describes it, validated.
struct Entry {
  std::string name;
  DiskTypeInfo dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // relative to the data section
};

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw Error(path + ": " + why);
}

const char* json_type(const json& v) { return v.type_name(); }

uint64_t decode_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void encode_u64_le(uint64_t v, unsigned char* p) {
  for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

float bits_to_f32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// bfloat16 is the top half of a float32.
float bf16_to_f32(uint16_t h) { return bits_to_f32(uint32_t(h) << 16); }

// IEEE half -> float, exact for every value including subnormals, inf, NaN.
float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return bits_to_f32(sign);
  // Subnormal: mant * 2^-24. Normalise so the leading 1 lands on bit 10.
  uint32_t e = 113;
  while (!(mant & 0x400)) {
    mant <<= 1;
    --e;
  }
  return bits_to_f32(sign | (e << 23) | ((mant & 0x3ff) << 13));
}

const char* disk_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i32: return "I32";
    case DType::bf16: return "BF16";
    case DType::u8: return "U8";
  }
  return nullptr;
}

DType memory_dtype(DiskType t) {
  switch (t) {
    case DiskType::F64: return DType::f64;
    case DiskType::I32:
    case DiskType::I64: return DType::i32;
    case DiskType::U8: return DType::u8;
    default: return DType::f32;  // F32, and BF16/F16 widened
  }
}

uint64_t get_u64(const std::string& path, const std::string& where, const json& v) {
  if (!v.is_number_integer())
    fail(path, where + ": expected a non-negative integer, got " + json_type(v) + " " + v.dump());
  if (!v.is_number_unsigned()) fail(path, where + ": negative value " + v.dump());
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& path, const std::string& name, const json& v,
                  uint64_t data_size) {
  const std::string where = "tensor '" + name + "'";
  if (!v.is_object()) fail(path, where + ": header entry is a " + json_type(v) + ", expected an object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) fail(path, where + ": missing field \"" + key + "\"");

  Entry e;
  e.name = name;
  const json& dt = v["dtype"];
  if (!dt.is_string()) fail(path, where + ": \"dtype\" is a " + json_type(dt) + ", expected a string");
  const std::string dts = dt.get<std::string>();
  auto it = std::find_if(std::begin(kDiskTypes), std::end(kDiskTypes),
                         [&](const DiskTypeInfo& d) { return dts == d.name; });
  if (it == std::end(kDiskTypes))
    fail(path, where + ": unsupported dtype \"" + dts + "\" (supported: F32, F64, I32, I64, BF16, F16, U8)");
  e.dtype = *it;

  const json& shape = v["shape"];
  if (!shape.is_array()) fail(path, where + ": \"shape\" is a " + json_type(shape) + ", expected an array");
  // numel * element size must not overflow before it is compared with the
  // byte range, or a huge shape could pass the check. The dimensions other
  // than zeros must multiply within int64 even for an empty tensor: a
  // Tensor's strides are their products.
  for (size_t i = 0; i < shape.size(); ++i) {
    const json& d = shape[i];
    if (d.is_number_integer() && !d.is_number_unsigned())
      fail(path, where + ": negative dimension " + d.dump() + " in shape " + shape.dump());
    uint64_t dim = get_u64(path, where + ": shape[" + std::to_string(i) + "]", d);
    if (dim > uint64_t(std::numeric_limits<int64_t>::max()))
      fail(path, where + ": dimension " + std::to_string(dim) + " too large");
    e.shape.push_back(int64_t(dim));
  }
  const bool empty = std::count(e.shape.begin(), e.shape.end(), 0) > 0;
  uint64_t numel = 1;
  for (int64_t d : e.shape) {
    if (d == 0) continue;
    if (numel > uint64_t(std::numeric_limits<int64_t>::max()) / e.dtype.size / uint64_t(d))
      fail(path, where + ": shape " + shape.dump() + " has too many elements");
    numel *= uint64_t(d);
  }
  if (empty) numel = 0;
  const uint64_t nbytes = numel * e.dtype.size;

  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    fail(path, where + ": \"data_offsets\" must be an array [begin, end], got " + off.dump());
  e.begin = get_u64(path, where + ": data_offsets[0]", off[0]);
  e.end = get_u64(path, where + ": data_offsets[1]", off[1]);
  if (e.begin > e.end)
    fail(path, where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                   "] has begin > end");
  if (e.end > data_size)
    fail(path, where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                   "] extend past the end of the data section (" + std::to_string(data_size) +
                   " bytes; file truncated?)");
  if (e.end - e.begin != nbytes)
    fail(path, where + ": data_offsets span " + std::to_string(e.end - e.begin) + " bytes but " +
                   dts + " shape " + shape_str(e.shape) + " needs " + std::to_string(nbytes));
  return e;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& m) {
  if (!m.is_object()) fail(path, "\"__metadata__\" is a " + std::string(json_type(m)) + ", expected an object");
  std::map<std::string, std::string> out;
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (!it.value().is_string())
      fail(path, "\"__metadata__\" value of \"" + it.key() + "\" is a " + json_type(it.value()) +
                     ", expected a string");
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

// Reads `e`'s bytes and converts them to the in-memory dtype.
Tensor load_tensor(std::ifstream& in, const std::string& path, uint64_t data_start, const Entry& e) {
  const uint64_t nbytes = e.end - e.begin;
  std::vector<unsigned char> buf;
  Tensor t(e.shape, memory_dtype(e.dtype.type));
  const bool direct = t.nbytes() == nbytes;  // same element size: read in place
  unsigned char* dst = direct ? static_cast<unsigned char*>(t.raw()) : nullptr;
  if (!direct) {
    buf.resize(nbytes);
    dst = buf.data();
  }
  if (nbytes > 0) {
    in.clear();
    in.seekg(std::streamoff(data_start + e.begin));
    in.read(reinterpret_cast<char*>(dst), std::streamsize(nbytes));
    if (uint64_t(in.gcount()) != nbytes)
      fail(path, "tensor '" + e.name + "': read of " + std::to_string(nbytes) + " bytes failed (file truncated?)");
  }
  const int64_t n = t.numel();
  switch (e.dtype.type) {
    case DiskType::BF16:
    case DiskType::F16: {
      float* out = t.data<float>();
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = uint16_t(buf[2 * i] | (buf[2 * i + 1] << 8));
        out[i] = e.dtype.type == DiskType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
      }
      break;
    }
    case DiskType::I64: {
      int32_t* out = t.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) {
        int64_t v;
        std::memcpy(&v, &buf[8 * i], 8);
        if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
          fail(path, "tensor '" + e.name + "': I64 value " + std::to_string(v) + " at index " +
                         std::to_string(i) + " does not fit in int32");
        out[i] = int32_t(v);
      }
      break;
    }
    default: break;
  }
  return t;
}

uint64_t file_size_or_throw(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail(path, "is a directory, expected a safetensors file");
  return uint64_t(st.st_size);
}

// The copies below move bytes as they are: they assume a little-endian host.
void check_little_endian() {
  const uint16_t probe = 1;
  MK_CHECK(*reinterpret_cast<const unsigned char*>(&probe) == 1,
           "safetensors: big-endian hosts are not supported");
}

// The header length from the file's first 8 bytes (`got` of them read),
// checked against the file size.
uint64_t checked_header_len(const std::string& path, uint64_t size, uint64_t got, const unsigned char* len_bytes) {
  if (size < 8 || got != 8)
    fail(path, "file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  const uint64_t header_len = decode_u64_le(len_bytes);
  if (header_len == 0) fail(path, "header length is 0 (not a safetensors file?)");
  if (header_len > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " is absurd (limit " +
                   std::to_string(kMaxHeaderBytes) + "; not a safetensors file?)");
  if (header_len > size - 8)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the file size (" +
                   std::to_string(size) + " bytes; file truncated?)");
  return header_len;
}

// The JSON header -> its validated entries in file order (and the metadata).
// data_size is the number of bytes after the header.
std::vector<Entry> parse_header(const std::string& path, const std::string& text, uint64_t data_size,
                                std::map<std::string, std::string>& metadata) {
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& ex) {
    fail(path, "invalid JSON header: " + library_what(ex));
  }
  if (!header.is_object()) fail(path, std::string("JSON header is a ") + json_type(header) + ", expected an object");
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__")
      metadata = parse_metadata(path, it.value());
    else
      entries.push_back(parse_entry(path, it.key(), it.value(), data_size));
  }

  // Gaps between tensors are tolerated; overlaps mean two tensors would
  // share bytes, which no writer produces.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;  // empty tensors occupy no bytes
    if (prev && e.begin < prev->end)
      fail(path, "tensors '" + prev->name + "' [" + std::to_string(prev->begin) + ", " +
                     std::to_string(prev->end) + ") and '" + e.name + "' [" + std::to_string(e.begin) +
                     ", " + std::to_string(e.end) + ") overlap");
    prev = &e;
  }
  return entries;
}

}  // namespace

bool SafetensorsData::has(const std::string& name) const {
  for (const auto& kv : tensors)
    if (kv.first == name) return true;
  return false;
}

const Tensor& SafetensorsData::get(const std::string& name) const {
  for (const auto& kv : tensors)
    if (kv.first == name) return kv.second;
  throw Error(path + ": no tensor named '" + name + "' (the file has " + std::to_string(tensors.size()) +
              " tensors)");
}

std::vector<std::string> SafetensorsData::names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensors) out.push_back(kv.first);
  return out;
}

SafetensorsData read_safetensors(const std::string& path) {
  check_little_endian();
  const uint64_t size = file_size_or_throw(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  unsigned char len_bytes[8] = {};
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  const uint64_t header_len = checked_header_len(path, size, uint64_t(in.gcount()), len_bytes);
  std::string text(header_len, '\0');
  in.read(&text[0], std::streamsize(header_len));
  if (uint64_t(in.gcount()) != header_len) fail(path, "cannot read the JSON header");

  SafetensorsData out;
  out.path = path;
  const uint64_t data_start = 8 + header_len;
  const std::vector<Entry> entries = parse_header(path, text, size - data_start, out.metadata);
  for (const Entry& e : entries) out.tensors.emplace_back(e.name, load_tensor(in, path, data_start, e));
  return out;
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors[a].first < tensors[b].first; });

  json header = json::object();
  uint64_t offset = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const std::string& name = tensors[order[k]].first;
    const Tensor& t = tensors[order[k]].second;
    if (name.empty() || name == "__metadata__")
      fail(path, "write_safetensors: invalid tensor name \"" + name + "\"");
    if (k > 0 && name == tensors[order[k - 1]].first)
      fail(path, "write_safetensors: duplicate tensor name '" + name + "'");
    if (!t.defined()) fail(path, "write_safetensors: tensor '" + name + "' is undefined");
    const char* dt = disk_name(t.dtype());
    if (!dt) fail(path, "write_safetensors: tensor '" + name + "' has unsupported dtype");
    header[name] = {{"dtype", dt}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;

  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& ex) {  // e.g. a name that is not UTF-8
    fail(path, "write_safetensors: cannot encode the header: " + library_what(ex));
  }
  // Spaces, as the reference writer pads: the data section starts 8-aligned.
  text.append((8 - text.size() % 8) % 8, ' ');

  atomic_write(path, [&](std::ostream& os) {
    unsigned char len[8];
    encode_u64_le(text.size(), len);
    os.write(reinterpret_cast<const char*>(len), 8);
    os.write(text.data(), std::streamsize(text.size()));
    for (size_t i : order) {
      const Tensor& t = tensors[i].second;
      const Tensor c = t.is_contiguous() ? t : t.clone();
      os.write(static_cast<const char*>(c.raw()), std::streamsize(c.nbytes()));
    }
  });
}

// --- MappedSafetensors ------------------------------------------------------

namespace {

// Source bytes converted between two hand-backs of pages to the kernel: big
// enough that madvise costs nothing, small beside any checkpoint.
constexpr uint64_t kReleaseChunkBytes = 1ull << 20;

// Hands the pages under [begin, end) of a read-only file mapping back to the
// kernel: they leave this process's resident set and stay in the page cache,
// so touching them again (a neighbouring tensor) only maps them back. A page
// fault maps neighbouring cached pages too ("fault-around"), anywhere in the
// faulting page's 2 MB page-table block, so whole blocks are released: pages
// of tensors read earlier would otherwise stay resident, about 35 MB over
// the 130M model's 242 tensors.
void release_pages(const unsigned char* map, size_t map_bytes, uint64_t begin, uint64_t end) {
  constexpr uintptr_t kBlock = uintptr_t(2) << 20;
  const uintptr_t base = reinterpret_cast<uintptr_t>(map);
  const uintptr_t lo = std::max(base, (base + begin) / kBlock * kBlock);
  const uintptr_t hi = std::min(base + map_bytes, (base + end + kBlock - 1) / kBlock * kBlock);
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

uint16_t load_u16_le(const unsigned char* p) { return uint16_t(p[0] | (p[1] << 8)); }

// Elements [i0, i1) of a tensor stored as `dtype` at src, as float32.
void widen_to_f32(const std::string& dtype, const unsigned char* src, int64_t i0, int64_t i1, float* dst) {
  if (dtype == "F32") {
    std::memcpy(dst + i0, src + 4 * i0, size_t(i1 - i0) * 4);
  } else if (dtype == "BF16") {
    for (int64_t i = i0; i < i1; ++i) dst[i] = bf16_to_f32(load_u16_le(src + 2 * i));
  } else {
    for (int64_t i = i0; i < i1; ++i) dst[i] = f16_to_f32(load_u16_le(src + 2 * i));
  }
}

}  // namespace

MappedSafetensors::MappedSafetensors(const std::string& path) : path_(path) {
  check_little_endian();
  const uint64_t size = file_size_or_throw(path);
  if (size < 8) checked_header_len(path, size, 0, nullptr);  // throws: too short
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  void* m = ::mmap(nullptr, size_t(size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file
  if (m == MAP_FAILED) fail(path, std::string("cannot map: ") + std::strerror(map_errno));
  map_ = static_cast<const unsigned char*>(m);
  map_bytes_ = size_t(size);
  try {
    ::madvise(m, map_bytes_, MADV_SEQUENTIAL);  // tensors are read front to back
    const uint64_t header_len = checked_header_len(path, size, 8, map_);
    const std::string text(reinterpret_cast<const char*>(map_) + 8, size_t(header_len));
    data_start_ = 8 + header_len;
    std::map<std::string, std::string> metadata;
    for (const Entry& e : parse_header(path, text, size - data_start_, metadata)) {
      index_[e.name] = tensors_.size();
      tensors_.push_back({e.name, e.dtype.name, e.shape, shape_numel(e.shape), e.begin, e.end});
    }
    release_pages(map_, map_bytes_, 0, data_start_);
  } catch (...) {
    ::munmap(m, map_bytes_);
    throw;
  }
}

MappedSafetensors::~MappedSafetensors() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
}

const MappedSafetensors::Info& MappedSafetensors::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    fail(path_, "no tensor named '" + name + "' (the file has " + std::to_string(tensors_.size()) + " tensors)");
  return tensors_[it->second];
}

void MappedSafetensors::read_f32(const std::string& name, float* dst, int64_t first, int64_t count) const {
  const Info& t = info(name);
  if (count < 0) count = t.numel - first;
  MK_CHECK(first >= 0 && first + count <= t.numel,
           path_ + ": read_f32 of elements [" + std::to_string(first) + ", " + std::to_string(first + count) +
               ") of tensor '" + name + "', which has " + std::to_string(t.numel));
  if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16")
    fail(path_, "tensor '" + name + "' has dtype " + t.dtype + "; weights must be F32, BF16 or F16");
  const int64_t esize = t.dtype == "F32" ? 4 : 2;
  const unsigned char* src = map_ + data_start_ + t.begin + uint64_t(first * esize);
  const int64_t chunk = int64_t(kReleaseChunkBytes) / esize;
  for (int64_t i0 = 0; i0 < count; i0 += chunk) {
    const int64_t i1 = std::min(count, i0 + chunk);
    widen_to_f32(t.dtype, src, i0, i1, dst);
    for (int64_t i = i0; i < i1; ++i)
      if (!std::isfinite(dst[i]))
        fail(path_, "tensor '" + name + "' holds a non-finite value at element " + std::to_string(first + i));
    const uint64_t at = uint64_t(src - map_);
    release_pages(map_, map_bytes_, at + uint64_t(i0 * esize), at + uint64_t(i1 * esize));
  }
}

}  // namespace mk
