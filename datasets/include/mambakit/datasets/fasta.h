// FASTA/FASTQ through htslib's faidx: plain, gzip and bgzip files, random
// access to any region, the .fai (and .gzi) index built when missing.
//
// Plain gzip (Debian's *.fa.gz) cannot be indexed by faidx, which needs BGZF
// blocks. The reader re-compresses such a file once into BGZF in the cache
// directory (printing one note), indexes the copy and reads it from then
// on; the copy is keyed by the source's path, size and mtime, so it is
// rebuilt when the source changes. A missing index of a plain or bgzip file is
// built in the cache directory, keyed the same way; nothing is ever written
// beside the input (a fresh .fai the user made there is read).
// Every file is checked line by line when its index is built (see
// scan_sequences); indexes and cached copies are written under temporary
// names and renamed, so an interrupted build leaves nothing half-written.
//
// A FastaReader is not thread-safe (htslib's faidx_t is not): give each
// thread its own.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mk::data {

enum class SeqFormat { Fasta, Fastq };
enum class Compression { None, Gzip, Bgzf };

struct FastaOptions {
  // Re-compressed copies and indexes go here; empty: default_cache_dir().
  std::string cache_dir;
  // Print a one-line note on stderr when a plain gzip file is re-compressed.
  bool verbose = true;
  // htslib's cache of decompressed BGZF blocks, in MiB. Random windows
  // re-read the same blocks; a cache as large as a bacterial genome makes
  // every fetch after the first pass a copy (ignored for uncompressed files).
  int block_cache_mb = 64;
};

// $MAMBAKIT_CACHE (or its earlier name $MAMBAKIT_CACHE_DIR), else
// $XDG_CACHE_HOME/mambakit, else ~/.cache/mambakit, else
// /tmp/mambakit-cache-<uid>.
std::string default_cache_dir();

struct SequenceInfo {
  std::string name;
  int64_t length = 0;
};

struct SequenceRecord {
  std::string name;
  std::string seq;   // residues as in the file (case kept), lines joined
  std::string qual;  // FASTQ only
  int64_t line = 0;  // line of the header (1-based)
};

// Streams every record of a FASTA or FASTQ file (plain, gzip or bgzip),
// checking the syntax faidx relies on, and calls on_record for each (seq and
// qual are left empty when keep_residues is false, to save memory on large
// genomes). Throws mk::Error "<file>:<line>: record '<name>': <reason>" for:
// a missing or unreadable file, data before the first header, a byte that is
// not an IUPAC nucleotide code (binary data), a header without a name, a
// record without residues, a duplicate name, lines of unequal length inside a
// record (only the last may be shorter), a FASTQ record whose quality length
// differs from its sequence length or that is truncated, a corrupt gzip
// stream. Returns the format.
SeqFormat scan_sequences(const std::string& path,
                         const std::function<void(const SequenceRecord&)>& on_record,
                         bool keep_residues = true);

// All records of a (small) file, by scan_sequences.
std::vector<SequenceRecord> read_sequences(const std::string& path);

class FastaReader {
 public:
  explicit FastaReader(const std::string& path, const FastaOptions& opts = {});
  ~FastaReader();
  FastaReader(FastaReader&&) noexcept;
  FastaReader& operator=(FastaReader&&) noexcept;
  FastaReader(const FastaReader&) = delete;
  FastaReader& operator=(const FastaReader&) = delete;

  const std::string& path() const;          // as given
  const std::string& indexed_path() const;  // the file faidx reads (the BGZF copy for plain gzip)
  SeqFormat format() const;
  Compression compression() const;  // of path()

  const std::vector<SequenceInfo>& sequences() const;
  int find(const std::string& name) const;  // index of a sequence, -1 if absent
  int64_t total_length() const;

  // Residues [beg, end) (0-based, half-open) of sequence `seq`, as stored.
  // Throws naming the file and sequence when the range is outside it.
  std::string fetch(int seq, int64_t beg, int64_t end) const;
  std::string fetch(const std::string& name, int64_t beg, int64_t end) const;
  // The same region tokenised by dna::encode into out[0, end - beg).
  void fetch_tokens(int seq, int64_t beg, int64_t end, int32_t* out) const;
  std::vector<int32_t> fetch_tokens(int seq, int64_t beg, int64_t end) const;
  // FASTQ quality characters of the region (throws on FASTA).
  std::string fetch_quality(int seq, int64_t beg, int64_t end) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True for names that look like sequence files: .fa .fasta .fna .ffn .frn
// .fas .seq .fq .fastq, optionally followed by .gz or .bgz.
bool is_sequence_file_name(const std::string& name);

}  // namespace mk::data
