// Token shards: `prepare` turns a corpus (text, FASTA, audio) into one
// memory-mapped file of token ids per split, which loaders sample without
// re-reading the sources.
//
// Shard file layout (little-endian):
//   offset 0   char[8]  magic "MKTOKENS"
//          8   u32      version (kShardVersion)
//         12   u32      dtype: 1 = u8, 2 = u16, 3 = i32
//         16   u64      count: number of tokens
//         24   u64      segments: number of documents (files, sequences,
//                       intervals) the tokens are made of; 0 = one stream
//         32   u32      vocab_size: every token is in [0, vocab_size)
//         36   u32      header_bytes (64)
//         40   char[16] kind, NUL-padded ("text", "dna", "audio-mulaw", ...)
//         56   u64      reserved, 0
//         64   tokens   count * sizeof(dtype) bytes
//         then u64[segments + 1] document start offsets (0 ... count), if segments > 0
// A shard is written under a temporary name and renamed when complete, so a
// crash never leaves a half-written shard under the real name; the reader
// checks magic, version, dtype, the exact file size the header implies, the
// segment table and the token range, and says which is wrong.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "mambakit/datasets/audio.h"
#include "mambakit/datasets/fasta.h"
#include "mambakit/datasets/windows.h"

namespace mk::data {

constexpr uint32_t kShardVersion = 1;
constexpr size_t kShardHeaderBytes = 64;

enum class TokenDtype : uint32_t { U8 = 1, U16 = 2, I32 = 3 };
size_t dtype_size(TokenDtype d);
std::string dtype_name(TokenDtype d);
// The smallest dtype holding ids below vocab_size.
TokenDtype dtype_for_vocab(uint32_t vocab_size);

struct ShardHeader {
  uint32_t version = kShardVersion;
  TokenDtype dtype = TokenDtype::U8;
  uint64_t count = 0;
  uint64_t segments = 0;
  uint32_t vocab_size = 0;
  std::string kind;
};

class ShardWriter {
 public:
  // Opens `<path>.tmp.<pid>...`; kind is at most 15 characters.
  ShardWriter(const std::string& path, const std::string& kind, uint32_t vocab_size, TokenDtype dtype);
  // Without finish() (an exception on the way) the temporary file is removed.
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Throws naming the shard when an id is outside [0, vocab_size).
  void append(const int32_t* ids, size_t n);
  void append(const uint8_t* ids, size_t n);
  // Ends the current document (nothing if it is empty).
  void end_segment();
  // Ends the last document, writes header and segment table, fsyncs and
  // renames the file into place.
  void finish();
  uint64_t count() const { return count_; }

 private:
  void write_raw(const void* p, size_t bytes);
  std::string path_, tmp_, kind_;
  uint32_t vocab_;
  TokenDtype dtype_;
  std::FILE* f_ = nullptr;
  uint64_t count_ = 0;
  std::vector<uint64_t> offsets_{0};
  std::vector<unsigned char> buf_;
};

class ShardReader {
 public:
  // Maps the file and verifies it (throws mk::Error naming the file and what
  // is wrong). verify_tokens also checks every id against vocab_size.
  explicit ShardReader(const std::string& path, bool verify_tokens = true);
  ~ShardReader();
  ShardReader(ShardReader&&) noexcept;
  ShardReader& operator=(ShardReader&&) noexcept;
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const std::string& path() const { return path_; }
  const ShardHeader& header() const { return h_; }
  uint64_t size() const { return h_.count; }
  int32_t at(uint64_t i) const;
  // Tokens [beg, beg + n) as int32.
  void read(uint64_t beg, size_t n, int32_t* out) const;
  std::vector<int32_t> read(uint64_t beg, size_t n) const;
  // Document starts and the end: {0, ..., count} ({0, count} without a table).
  const std::vector<uint64_t>& segment_offsets() const { return offsets_; }

 private:
  std::string path_;
  ShardHeader h_;
  const unsigned char* map_ = nullptr;
  size_t map_bytes_ = 0;
  std::vector<uint64_t> offsets_;
};

// Windows of window_len tokens uniformly over all starts inside one document.
class ShardWindowSampler {
 public:
  ShardWindowSampler(const ShardReader& shard, int64_t window_len, uint64_t seed);
  int64_t window_len() const { return index_.window_len(); }
  uint64_t total_starts() const { return index_.total_starts(); }
  WindowPos next(int32_t* out);  // segment = document index
  void fetch(const WindowPos& w, int32_t* out) const;
  std::vector<WindowPos> eval_windows(int64_t stride, size_t max_windows) const {
    return index_.tile(stride, max_windows);
  }
  std::string rng_state() const { return rng_state_text(rng_); }
  void set_rng_state(const std::string& s) { set_rng_state_text(rng_, s, "shard window sampler"); }

 private:
  const ShardReader* shard_;
  WindowIndex index_;
  std::mt19937_64 rng_;
};

// --- prepare -------------------------------------------------------------------

struct PrepareOptions {
  // train, val[, test]. Text: each input cut contiguously. DNA: each
  // interval cut contiguously (unless the BED has a split column). Audio:
  // whole files (unless the input folder has train/ val/ test/ subfolders).
  std::vector<double> split{0.9, 0.05, 0.05};
  uint64_t seed = 1;
  // text: a tokenizer file or folder (load_tokenizer); empty: bytes. Its
  // files are copied into the output folder, which then brings its tokenizer.
  std::string tokenizer;
  // dna
  std::string bed;  // restrict to (and, with a 4th column, split by) these intervals
  FastaOptions fasta;
  // audio
  AudioReadOptions audio;
  Quantization quantization = Quantization::MuLaw;
};

struct PreparedShards {
  std::string dir;
  std::string kind;        // "text", "dna", "audio-mulaw" or "audio-linear"
  uint32_t vocab_size = 0;
  int sample_rate = 0;     // audio only
  std::vector<std::string> splits;
  std::map<std::string, std::string> files;  // split -> shard path
  std::map<std::string, uint64_t> tokens;    // split -> token count
};

// kind: "text" (bytes, vocab 256, or the ids of opts.tokenizer), "fasta" or "dna" (dna:: tokens, vocab 9),
// "audio" (256 quantisation classes). Writes <out_dir>/<split>.mkshard for
// each split and <out_dir>/manifest.json (last, so a directory with a
// manifest is complete), each atomically. Throws mk::Error naming the input
// that is wrong.
PreparedShards prepare_shards(const std::string& kind, const std::vector<std::string>& inputs,
                              const std::string& out_dir, const PrepareOptions& opts = {});
// Reads <dir>/manifest.json and checks that each shard exists and matches
// it (kind, vocab, count).
PreparedShards open_prepared(const std::string& dir);

}  // namespace mk::data
