#include "mambakit/datasets/shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <memory>
#include <cstring>
#include <nlohmann/json.hpp>

#include "fs_util.h"
#include "mambakit/datasets/dna.h"
#include "mambakit/datasets/text.h"
#include "mambakit/datasets/tokenizer.h"
#include "mambakit/error.h"
#include "mambakit/error_text.h"
#include "mambakit/io/atomic_file.h"

namespace mk::data {
namespace {

constexpr char kMagic[8] = {'M', 'K', 'T', 'O', 'K', 'E', 'N', 'S'};

void put_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (unsigned char)(v >> (8 * i));
}
void put_u64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * i));
}
uint32_t get_u32(const unsigned char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t get_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool valid_dtype(uint32_t d) { return d >= 1 && d <= 3; }

}  // namespace

size_t dtype_size(TokenDtype d) {
  switch (d) {
    case TokenDtype::U8: return 1;
    case TokenDtype::U16: return 2;
    case TokenDtype::I32: return 4;
  }
  throw Error("unknown token dtype");
}

std::string dtype_name(TokenDtype d) {
  switch (d) {
    case TokenDtype::U8: return "u8";
    case TokenDtype::U16: return "u16";
    case TokenDtype::I32: return "i32";
  }
  return "?";
}

TokenDtype dtype_for_vocab(uint32_t v) {
  if (v <= 256) return TokenDtype::U8;
  if (v <= 65536) return TokenDtype::U16;
  return TokenDtype::I32;
}

// --- writer ------------------------------------------------------------------------

ShardWriter::ShardWriter(const std::string& path, const std::string& kind, uint32_t vocab_size, TokenDtype dtype)
    : path_(path), tmp_(fs::temp_name(path)), kind_(kind), vocab_(vocab_size), dtype_(dtype) {
  if (kind.size() > 15) throw Error(path + ": shard kind '" + kind + "' is longer than 15 characters");
  if (vocab_size == 0) throw Error(path + ": shard vocabulary size must be > 0");
  if (dtype != TokenDtype::I32 && uint64_t(vocab_size) > (uint64_t(1) << (8 * dtype_size(dtype))))
    throw Error(path + ": vocabulary of " + std::to_string(vocab_size) + " does not fit dtype " + dtype_name(dtype));
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) throw Error(path + ": cannot create temporary shard " + tmp_ + ": " + std::strerror(errno));
  unsigned char zero[kShardHeaderBytes] = {};
  write_raw(zero, sizeof zero);  // the header is written by finish()
}

ShardWriter::~ShardWriter() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void ShardWriter::write_raw(const void* p, size_t bytes) {
  if (std::fwrite(p, 1, bytes, f_) != bytes)
    throw Error(path_ + ": writing " + tmp_ + " failed (disk full?): " + std::strerror(errno));
}

void ShardWriter::append(const int32_t* ids, size_t n) {
  if (!f_) throw Error(path_ + ": shard already finished");
  const size_t es = dtype_size(dtype_);
  buf_.resize(n * es);
  for (size_t i = 0; i < n; ++i) {
    int32_t v = ids[i];
    if (v < 0 || uint32_t(v) >= vocab_)
      throw Error(path_ + ": token " + std::to_string(v) + " at position " + std::to_string(count_ + i) +
                  " is outside the vocabulary [0, " + std::to_string(vocab_) + ")");
    if (es == 1) buf_[i] = (unsigned char)v;
    else if (es == 2) buf_[2 * i] = (unsigned char)v, buf_[2 * i + 1] = (unsigned char)(v >> 8);
    else put_u32(&buf_[4 * i], uint32_t(v));
  }
  write_raw(buf_.data(), buf_.size());
  count_ += n;
}

void ShardWriter::append(const uint8_t* ids, size_t n) {
  std::vector<int32_t> tmp(ids, ids + n);
  append(tmp.data(), n);
}

void ShardWriter::end_segment() {
  if (count_ > offsets_.back()) offsets_.push_back(count_);
}

void ShardWriter::finish() {
  if (!f_) throw Error(path_ + ": shard already finished");
  end_segment();
  const uint64_t segments = offsets_.size() - 1;
  // One document needs no table: the whole stream is it.
  if (segments > 1) {
    std::vector<unsigned char> table(8 * offsets_.size());
    for (size_t i = 0; i < offsets_.size(); ++i) put_u64(&table[8 * i], offsets_[i]);
    write_raw(table.data(), table.size());
  }
  unsigned char h[kShardHeaderBytes] = {};
  std::memcpy(h, kMagic, 8);
  put_u32(h + 8, kShardVersion);
  put_u32(h + 12, uint32_t(dtype_));
  put_u64(h + 16, count_);
  put_u64(h + 24, segments > 1 ? segments : 0);
  put_u32(h + 32, vocab_);
  put_u32(h + 36, uint32_t(kShardHeaderBytes));
  std::memcpy(h + 40, kind_.data(), kind_.size());
  if (std::fseek(f_, 0, SEEK_SET) != 0) throw Error(path_ + ": cannot seek in " + tmp_);
  write_raw(h, sizeof h);
  int rc = std::fclose(f_);
  f_ = nullptr;
  if (rc != 0) {
    std::remove(tmp_.c_str());
    throw Error(path_ + ": closing " + tmp_ + " failed (disk full?)");
  }
  fs::commit(tmp_, path_);
}

// --- reader ------------------------------------------------------------------------

ShardReader::ShardReader(const std::string& path, bool verify_tokens) : path_(path) {
  fs::require_file(path, "token shard");
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open token shard: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(path + ": cannot stat token shard");
  }
  map_bytes_ = size_t(st.st_size);
  if (map_bytes_ < kShardHeaderBytes) {
    ::close(fd);
    throw Error(path + ": " + std::to_string(map_bytes_) + " bytes, shorter than the " +
                std::to_string(kShardHeaderBytes) + "-byte shard header (truncated, or not a token shard)");
  }
  void* m = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw Error(path + ": cannot memory-map token shard: " + std::strerror(errno));
  map_ = static_cast<const unsigned char*>(m);
  try {
    const unsigned char* p = map_;
    if (std::memcmp(p, kMagic, 8) != 0) {
      std::string got;
      for (int i = 0; i < 8; ++i) got += (p[i] >= 0x20 && p[i] < 0x7f) ? char(p[i]) : '?';
      throw Error(path + ": not a mambakit token shard (magic '" + got + "', expected 'MKTOKENS')");
    }
    h_.version = get_u32(p + 8);
    if (h_.version == 0 || h_.version > kShardVersion)
      throw Error(path + ": shard format version " + std::to_string(h_.version) + ", this build reads version " +
                  std::to_string(kShardVersion) + (h_.version > kShardVersion ? " (written by a newer mambakit?)" : ""));
    uint32_t dt = get_u32(p + 12);
    if (!valid_dtype(dt)) throw Error(path + ": unknown token dtype code " + std::to_string(dt) + " (expected 1 u8, 2 u16, 3 i32)");
    h_.dtype = TokenDtype(dt);
    h_.count = get_u64(p + 16);
    h_.segments = get_u64(p + 24);
    h_.vocab_size = get_u32(p + 32);
    uint32_t hb = get_u32(p + 36);
    if (hb != kShardHeaderBytes) throw Error(path + ": header size field is " + std::to_string(hb) + ", expected 64");
    h_.kind.assign(reinterpret_cast<const char*>(p + 40), strnlen(reinterpret_cast<const char*>(p + 40), 16));
    if (h_.vocab_size == 0) throw Error(path + ": header says vocabulary size 0");
    const size_t es = dtype_size(h_.dtype);
    // Guard the size arithmetic against absurd counts before multiplying.
    if (h_.count > (uint64_t(1) << 56) || h_.segments > (uint64_t(1) << 56))
      throw Error(path + ": header count " + std::to_string(h_.count) + " / segments " + std::to_string(h_.segments) + " is corrupt");
    const uint64_t table = h_.segments ? 8 * (h_.segments + 1) : 0;
    const uint64_t want = kShardHeaderBytes + h_.count * es + table;
    if (want != map_bytes_)
      throw Error(path + ": header says " + std::to_string(h_.count) + " " + dtype_name(h_.dtype) + " tokens" +
                  (h_.segments ? " in " + std::to_string(h_.segments) + " documents" : "") + " (" +
                  std::to_string(want) + " bytes), but the file has " + std::to_string(map_bytes_) +
                  " bytes (truncated or corrupt)");
    if (h_.segments) {
      const unsigned char* t = map_ + kShardHeaderBytes + h_.count * es;
      offsets_.resize(h_.segments + 1);
      for (size_t i = 0; i < offsets_.size(); ++i) offsets_[i] = get_u64(t + 8 * i);
      bool ok = offsets_.front() == 0 && offsets_.back() == h_.count;
      for (size_t i = 1; ok && i < offsets_.size(); ++i) ok = offsets_[i] >= offsets_[i - 1];
      if (!ok) throw Error(path + ": document table is corrupt (offsets must rise from 0 to " + std::to_string(h_.count) + ")");
    } else {
      offsets_ = {0, h_.count};
    }
    // A u8 shard with vocab 256 cannot hold a bad id; skip the pass then.
    const bool can_exceed = h_.dtype == TokenDtype::I32 || uint64_t(h_.vocab_size) < (uint64_t(1) << (8 * es));
    if (verify_tokens && can_exceed) {
      for (uint64_t i = 0; i < h_.count; ++i) {
        int32_t v = at(i);
        if (v < 0 || uint32_t(v) >= h_.vocab_size)
          throw Error(path + ": token " + std::to_string(v) + " at position " + std::to_string(i) +
                      " is outside the vocabulary [0, " + std::to_string(h_.vocab_size) + ") (corrupt shard)");
      }
    }
  } catch (...) {
    ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
    map_ = nullptr;
    throw;
  }
}

ShardReader::~ShardReader() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
}

ShardReader::ShardReader(ShardReader&& o) noexcept
    : path_(std::move(o.path_)), h_(std::move(o.h_)), map_(o.map_), map_bytes_(o.map_bytes_),
      offsets_(std::move(o.offsets_)) {
  o.map_ = nullptr;
}

ShardReader& ShardReader::operator=(ShardReader&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
    path_ = std::move(o.path_), h_ = std::move(o.h_), map_ = o.map_, map_bytes_ = o.map_bytes_;
    offsets_ = std::move(o.offsets_);
    o.map_ = nullptr;
  }
  return *this;
}

int32_t ShardReader::at(uint64_t i) const {
  const unsigned char* p = map_ + kShardHeaderBytes;
  switch (h_.dtype) {
    case TokenDtype::U8: return p[i];
    case TokenDtype::U16: return int32_t(p[2 * i] | (p[2 * i + 1] << 8));
    default: return int32_t(get_u32(p + 4 * i));
  }
}

void ShardReader::read(uint64_t beg, size_t n, int32_t* out) const {
  if (beg > h_.count || n > h_.count - beg)
    throw Error(path_ + ": tokens [" + std::to_string(beg) + ", " + std::to_string(beg + n) + ") outside the shard (" +
                std::to_string(h_.count) + " tokens)");
  if (h_.dtype == TokenDtype::U8) {
    const unsigned char* p = map_ + kShardHeaderBytes + beg;
    for (size_t i = 0; i < n; ++i) out[i] = p[i];
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = at(beg + i);
  }
}

std::vector<int32_t> ShardReader::read(uint64_t beg, size_t n) const {
  std::vector<int32_t> out(n);
  read(beg, n, out.data());
  return out;
}

ShardWindowSampler::ShardWindowSampler(const ShardReader& shard, int64_t window_len, uint64_t seed)
    : shard_(&shard), rng_(seed) {
  const auto& off = shard.segment_offsets();
  std::vector<int64_t> lengths;
  for (size_t i = 1; i < off.size(); ++i) lengths.push_back(int64_t(off[i] - off[i - 1]));
  index_ = WindowIndex(lengths, window_len);
  if (index_.total_starts() == 0)
    throw Error(shard.path() + ": no document is as long as a window of " + std::to_string(window_len) + " tokens");
}

void ShardWindowSampler::fetch(const WindowPos& w, int32_t* out) const {
  shard_->read(shard_->segment_offsets()[w.segment] + uint64_t(w.start), size_t(index_.window_len()), out);
}

WindowPos ShardWindowSampler::next(int32_t* out) {
  WindowPos w = index_.sample(rng_);
  fetch(w, out);
  return w;
}

// --- prepare -----------------------------------------------------------------------

namespace {

std::string shard_path(const std::string& dir, const std::string& split) { return dir + "/" + split + ".mkshard"; }

void check_fractions(const std::vector<double>& f) {
  split_names(f.size());
  double sum = 0;
  for (double x : f) {
    if (!(x >= 0)) throw Error("prepare: split fractions must be >= 0");
    sum += x;
  }
  if (std::fabs(sum - 1) > 1e-6) throw Error("prepare: split fractions must sum to 1, got " + std::to_string(sum));
}

// Each input is cut contiguously; with a tokenizer each part is tokenized on
// its own, cut at the start of a UTF-8 character.
void prepare_text(const std::vector<std::string>& inputs, std::map<std::string, ShardWriter*>& w,
                  const std::vector<double>& f, const Tokenizer* tok) {
  const auto names = split_names(f.size());
  for (const auto& in : inputs) {
    std::vector<uint8_t> bytes = read_bytes(in);
    double acc = 0;
    size_t prev = 0;
    for (size_t k = 0; k < names.size(); ++k) {
      acc += f[k];
      size_t cut = k + 1 == names.size() ? bytes.size() : size_t(std::llround(acc * double(bytes.size())));
      cut = std::min(std::max(cut, prev), bytes.size());
      if (tok) {
        while (cut < bytes.size() && (bytes[cut] & 0xC0) == 0x80) ++cut;
        std::vector<int32_t> ids;
        try {
          ids = tok->encode(std::string(bytes.begin() + long(prev), bytes.begin() + long(cut)));
        } catch (const Error& e) {
          throw Error(in + ": the " + names[k] + " part cannot be tokenized: " + e.what());
        }
        w[names[k]]->append(ids.data(), ids.size());
      } else {
        w[names[k]]->append(bytes.data() + prev, cut - prev);
      }
      w[names[k]]->end_segment();
      prev = cut;
    }
  }
}

void prepare_dna(const std::vector<std::string>& inputs, std::map<std::string, ShardWriter*>& w,
                 const PrepareOptions& opts) {
  if (!opts.bed.empty() && inputs.size() != 1)
    throw Error(opts.bed + ": a BED file restricts one FASTA, but " + std::to_string(inputs.size()) + " were given");
  const auto names = split_names(opts.split.size());
  std::vector<int32_t> buf;
  for (const auto& in : inputs) {
    FastaReader fa(in, opts.fasta);
    std::map<std::string, std::vector<GenomicInterval>> parts;
    if (!opts.bed.empty()) {
      auto bed = read_bed(opts.bed);
      check_intervals(fa, bed);
      bool has_split = std::all_of(bed.begin(), bed.end(), [](const GenomicInterval& i) { return !i.split.empty(); });
      if (has_split) {
        for (const auto& n : names) parts[n] = select_split(bed, n, opts.bed);
      } else {
        parts = split_intervals(bed, opts.split);
      }
    } else {
      parts = split_intervals(whole_sequences(fa), opts.split);
    }
    for (const auto& n : names) {
      for (const auto& iv : parts[n]) {
        int s = fa.find(iv.seq);
        for (int64_t b = iv.beg; b < iv.end; b += 1 << 20) {
          int64_t e = std::min<int64_t>(iv.end, b + (1 << 20));
          buf.resize(size_t(e - b));
          fa.fetch_tokens(s, b, e, buf.data());
          w[n]->append(buf.data(), buf.size());
        }
        w[n]->end_segment();
      }
    }
  }
}

int prepare_audio(const std::vector<std::string>& inputs, std::map<std::string, ShardWriter*>& w,
                  const PrepareOptions& opts) {
  AudioCorpusOptions ao;
  ao.read = opts.audio;
  ao.quantization = opts.quantization;
  ao.split = opts.split;
  ao.seed = opts.seed;
  AudioCorpus corpus(inputs, ao);
  for (const auto& s : corpus.splits()) {
    auto it = w.find(s);
    if (it == w.end()) throw Error("prepare audio: the input has a '" + s + "' split the options do not name");
    for (const auto& f : corpus.files(s)) {
      it->second->append(f.tokens.data(), f.tokens.size());
      it->second->end_segment();
    }
  }
  return corpus.sample_rate();
}

}  // namespace

PreparedShards prepare_shards(const std::string& kind_in, const std::vector<std::string>& inputs,
                              const std::string& out_dir, const PrepareOptions& opts) {
  if (inputs.empty()) throw Error("prepare " + kind_in + ": no inputs");
  check_fractions(opts.split);
  PreparedShards r;
  r.dir = out_dir;
  std::string kind = kind_in == "fasta" ? "dna" : kind_in;
  std::unique_ptr<Tokenizer> tok;
  if (!opts.tokenizer.empty()) {
    if (kind != "text") throw Error("prepare " + kind_in + ": --tokenizer applies to text");
    tok = load_tokenizer(opts.tokenizer);
    if (tok->name() == "bytes") tok.reset();
  }
  if (kind == "text") r.vocab_size = tok ? uint32_t(tok->vocab_size()) : 256;
  else if (kind == "dna") r.vocab_size = dna::kVocabSize;
  else if (kind == "audio") r.vocab_size = kAudioClasses, kind = "audio-" + quantization_name(opts.quantization);
  else throw Error("prepare: unknown kind '" + kind_in + "' (expected text, fasta or audio)");
  r.kind = kind;
  r.splits = split_names(opts.split.size());
  if (kind.rfind("audio", 0) == 0) {
    // A folder with its own split folders decides how many splits there are.
    if (inputs.size() == 1 && fs::is_dir(inputs[0] + "/train")) {
      r.splits = {"train", "val"};
      if (fs::is_dir(inputs[0] + "/test")) r.splits.push_back("test");
    }
  }
  fs::make_dirs(out_dir);

  std::vector<std::unique_ptr<ShardWriter>> owners;
  std::map<std::string, ShardWriter*> writers;
  for (const auto& s : r.splits) {
    owners.emplace_back(new ShardWriter(shard_path(out_dir, s), kind, r.vocab_size, dtype_for_vocab(r.vocab_size)));
    writers[s] = owners.back().get();
  }
  if (kind == "text") prepare_text(inputs, writers, opts.split, tok.get());
  else if (kind == "dna") prepare_dna(inputs, writers, opts);
  else r.sample_rate = prepare_audio(inputs, writers, opts);

  for (const auto& s : r.splits) {
    writers[s]->finish();
    r.files[s] = shard_path(out_dir, s);
    r.tokens[s] = writers[s]->count();
  }
  nlohmann::json m;
  m["format"] = "mambakit-token-shards";
  m["version"] = kShardVersion;
  m["kind"] = r.kind;
  m["vocab_size"] = r.vocab_size;
  if (r.sample_rate) m["sample_rate"] = r.sample_rate;
  m["inputs"] = inputs;
  m["split_fractions"] = opts.split;
  m["seed"] = opts.seed;
  if (!opts.bed.empty()) m["bed"] = opts.bed;
  if (tok) {
    copy_tokenizer(opts.tokenizer, out_dir);  // before the manifest, which marks the folder complete
    m["tokenizer"] = {{"kind", tok->name()}, {"source", opts.tokenizer}};
  }
  for (const auto& s : r.splits)
    m["splits"][s] = {{"file", fs::basename(r.files[s])}, {"tokens", r.tokens[s]}};
  atomic_write_text(out_dir + "/manifest.json", m.dump(2) + "\n");
  return r;
}

namespace {

// Typed fields of manifest.json; each error names the file and the field.
class ManifestFields {
 public:
  explicit ManifestFields(const std::string& path) : path_(path) {}

  const nlohmann::json& at(const nlohmann::json& obj, const std::string& key, const std::string& where) const {
    const auto it = obj.find(key);
    if (it == obj.end()) fail(where + key, "missing");
    return *it;
  }
  std::string text(const nlohmann::json& v, const std::string& name) const {
    if (!v.is_string()) fail(name, std::string("expected a string, got ") + v.type_name());
    return v.get<std::string>();
  }
  uint64_t integer(const nlohmann::json& v, const std::string& name, uint64_t max) const {
    const bool ok = v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
    if (!ok || v.get<uint64_t>() > max)
      fail(name, "expected an integer in [0, " + std::to_string(max) + "], got " + shown(v));
    return v.get<uint64_t>();
  }
  [[noreturn]] void fail(const std::string& name, const std::string& why) const {
    throw Error(path_ + ": field \"" + name + "\": " + why);
  }

 private:
  static std::string shown(const nlohmann::json& v) {
    std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return s.size() > 40 ? s.substr(0, 40) + "..." : s;
  }
  std::string path_;
};

}  // namespace

PreparedShards open_prepared(const std::string& dir) {
  const std::string mpath = dir + "/manifest.json";
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(read_text_file(mpath));
  } catch (const nlohmann::json::exception& e) {
    throw Error(mpath + ": not valid JSON: " + library_what(e));
  }
  if (!m.is_object()) throw Error(mpath + ": not a mambakit shard manifest (not a JSON object)");
  const ManifestFields f(mpath);
  if (f.at(m, "format", "") != "mambakit-token-shards") throw Error(mpath + ": not a mambakit shard manifest");
  PreparedShards r;
  r.dir = dir;
  r.kind = f.text(f.at(m, "kind", ""), "kind");
  r.vocab_size = uint32_t(f.integer(f.at(m, "vocab_size", ""), "vocab_size", UINT32_MAX));
  if (m.contains("sample_rate")) r.sample_rate = int(f.integer(m["sample_rate"], "sample_rate", INT_MAX));
  const nlohmann::json& splits = f.at(m, "splits", "");
  if (!splits.is_object()) f.fail("splits", std::string("expected an object, got ") + splits.type_name());
  for (auto it = splits.begin(); it != splits.end(); ++it) {
    const std::string s = it.key();
    const std::string where = "splits." + s + ".";
    if (!it.value().is_object()) f.fail("splits." + s, "expected an object {\"file\", \"tokens\"}");
    const std::string file = f.text(f.at(it.value(), "file", where), where + "file");
    // A shard is a file beside the manifest; the manifest cannot point elsewhere
    // (an absolute path, a '..', a subfolder, a name cut short by a NUL).
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        file.find('\0') != std::string::npos)
      f.fail(where + "file", "\"" + file + "\" is not a file name beside the manifest");
    r.splits.push_back(s);
    r.files[s] = dir + "/" + file;
    r.tokens[s] = f.integer(f.at(it.value(), "tokens", where), where + "tokens", UINT64_MAX);
  }
  // Keep train, val, test order.
  std::sort(r.splits.begin(), r.splits.end(), [](const std::string& a, const std::string& b) {
    auto rank = [](const std::string& s) { return s == "train" ? 0 : s == "val" ? 1 : s == "test" ? 2 : 3; };
    return rank(a) != rank(b) ? rank(a) < rank(b) : a < b;
  });
  for (const auto& s : r.splits) {
    ShardReader sh(r.files[s], false);
    const auto& h = sh.header();
    if (h.kind != r.kind || h.vocab_size != r.vocab_size || h.count != r.tokens[s])
      throw Error(r.files[s] + ": shard (kind " + h.kind + ", vocab " + std::to_string(h.vocab_size) + ", " +
                  std::to_string(h.count) + " tokens) does not match " + mpath + " (kind " + r.kind + ", vocab " +
                  std::to_string(r.vocab_size) + ", " + std::to_string(r.tokens[s]) + " tokens)");
  }
  return r;
}

}  // namespace mk::data
