#include "mambakit/datasets/fasta.h"

#include <htslib/bgzf.h>
#include <htslib/faidx.h>
#include <htslib/hts_log.h>
#include <htslib/kstring.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <unordered_map>
#include <unordered_set>

#include "fs_util.h"
#include "mambakit/datasets/dna.h"
#include "mambakit/error.h"

namespace mk::data {
namespace {

std::string byte_desc(unsigned char c) {
  char buf[48];
  if (c >= 0x20 && c < 0x7f)
    std::snprintf(buf, sizeof buf, "byte 0x%02x ('%c')", c, c);
  else
    std::snprintf(buf, sizeof buf, "byte 0x%02x (binary data?)", c);
  return buf;
}

// Line-by-line syntax check of FASTA/FASTQ, the rules faidx relies on.
class Scanner {
 public:
  Scanner(const std::string& path, const std::function<void(const SequenceRecord&)>& on_record,
          bool keep)
      : path_(path), on_record_(on_record), keep_(keep) {}

  void line(const char* s, size_t n) {
    ++line_no_;
    if (fmt_ == Unknown) {
      if (n == 0) return;
      if (s[0] == '>') fmt_ = Fa;
      else if (s[0] == '@') fmt_ = Fq;
      else if (dna::base_id((unsigned char)s[0]) >= 0)
        fail("sequence data before any '>' header");
      else
        fail("not a FASTA or FASTQ file: the first line starts with " + byte_desc((unsigned char)s[0]));
    }
    if (fmt_ == Fa) fasta_line(s, n);
    else fastq_line(s, n);
  }

  SeqFormat finish() {
    if (fmt_ == Unknown) throw Error(path_ + ": empty file, no FASTA/FASTQ records");
    if (fmt_ == Fa) {
      end_record();
    } else if (state_ != Header) {
      throw Error(where(rec_line_) + "record '" + rec_.name + "': file ends inside the record" +
                  (state_ == Qual ? " (quality length " + std::to_string(qlen_) + " of " +
                                        std::to_string(slen_) + ")"
                                  : " (no '+' line)"));
    }
    return fmt_ == Fa ? SeqFormat::Fasta : SeqFormat::Fastq;
  }

 private:
  enum Fmt { Unknown, Fa, Fq };
  enum State { Header, Seq, Qual };

  std::string where(int64_t line) const { return path_ + ":" + std::to_string(line) + ": "; }
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(where(line_no_) + (in_record_ ? "record '" + rec_.name + "': " : "") + why);
  }

  void start_record(const char* s, size_t n) {
    size_t e = 1;
    while (e < n && s[e] != ' ' && s[e] != '\t') ++e;
    rec_ = SequenceRecord{};
    rec_.name.assign(s + 1, e - 1);
    rec_.line = line_no_;
    rec_line_ = line_no_;
    in_record_ = true;
    if (rec_.name.empty()) fail("header without a name");
    if (!names_.insert(rec_.name).second) fail("duplicate sequence name (first use earlier in the file)");
    slen_ = qlen_ = seq_lines_ = 0;
    first_len_ = 0;
    short_seen_ = blank_seen_ = false;
  }

  void check_residues(const char* s, size_t n) {
    for (size_t i = 0; i < n; ++i)
      if (dna::base_id((unsigned char)s[i]) < 0)
        fail("column " + std::to_string(i + 1) + ": " + byte_desc((unsigned char)s[i]) +
             " is not a nucleotide code");
  }

  // faidx computes offsets from one line length per record: every line but
  // the last must have it.
  void check_line_length(size_t n) {
    if (blank_seen_) fail("blank line inside the record's sequence");
    if (first_len_ == 0) first_len_ = n;
    else if (short_seen_ || n > first_len_)
      fail("sequence lines of unequal length (" + std::to_string(n) + " after " +
           std::to_string(first_len_) + "); faidx needs every line but the record's last to have the same length");
    if (n < first_len_) short_seen_ = true;
  }

  void residues(const char* s, size_t n) {
    check_residues(s, n);
    check_line_length(n);
    ++seq_lines_;
    if (keep_) rec_.seq.append(s, n);
    slen_ += int64_t(n);
  }

  void fasta_line(const char* s, size_t n) {
    if (n > 0 && s[0] == '>') {
      end_record();
      start_record(s, n);
    } else if (n == 0) {
      // A blank line (or a lone CR) before the first residues: htslib's faidx
      // either refuses the file or, worse, indexes it with 0 bases per line
      // and then divides by that on every fetch.
      if (in_record_ && slen_ == 0) fail("blank line between the header and the sequence");
      blank_seen_ = in_record_;
    } else {
      residues(s, n);
    }
  }

  void end_record() {
    if (!in_record_) return;
    if (slen_ == 0)
      throw Error(where(rec_line_) + "record '" + rec_.name + "' has no sequence (empty record)");
    on_record_(rec_);
    in_record_ = false;
  }

  void fastq_line(const char* s, size_t n) {
    switch (state_) {
      case Header:
        if (n == 0) return;
        if (s[0] != '@') fail("expected a FASTQ header line starting with '@', found " + byte_desc((unsigned char)s[0]));
        start_record(s, n);
        state_ = Seq;
        return;
      case Seq:
        if (n > 0 && s[0] == '+') {
          if (slen_ == 0) fail("empty record (no sequence before the '+' line)");
          state_ = Qual;
        } else {
          residues(s, n);
        }
        return;
      case Qual:
        for (size_t i = 0; i < n; ++i)
          if ((unsigned char)s[i] < '!' || (unsigned char)s[i] > '~')
            fail("column " + std::to_string(i + 1) + ": " + byte_desc((unsigned char)s[i]) +
                 " is not a quality character");
        if (keep_) rec_.qual.append(s, n);
        qlen_ += int64_t(n);
        // A one-line sequence has a one-line quality (the common 4-line
        // layout); otherwise lines accumulate until they cover the sequence
        // ('@' can start a quality line, so only the length tells).
        if (n == 0 || qlen_ >= slen_ || seq_lines_ == 1) {
          if (qlen_ != slen_)
            throw Error(where(rec_line_) + "record '" + rec_.name + "': quality length " +
                        std::to_string(qlen_) + " differs from sequence length " +
                        std::to_string(slen_) + " (quality ends on line " + std::to_string(line_no_) + ")");
          on_record_(rec_);
          in_record_ = false;
          state_ = Header;
        }
        return;
    }
  }

  const std::string& path_;
  const std::function<void(const SequenceRecord&)>& on_record_;
  bool keep_;
  Fmt fmt_ = Unknown;
  State state_ = Header;
  int64_t line_no_ = 0, rec_line_ = 0, slen_ = 0, qlen_ = 0, seq_lines_ = 0;
  size_t first_len_ = 0;
  bool short_seen_ = false, blank_seen_ = false, in_record_ = false;
  SequenceRecord rec_;
  std::unordered_set<std::string> names_;
};

struct BgzfCloser {
  void operator()(BGZF* f) const {
    if (f) bgzf_close(f);
  }
};
using BgzfPtr = std::unique_ptr<BGZF, BgzfCloser>;

// htslib logs its own errors to stderr; ours carry file and line, so keep it
// quiet while we read and index.
struct QuietHts {
  enum htsLogLevel saved = hts_get_log_level();
  QuietHts() { hts_set_log_level(HTS_LOG_OFF); }
  ~QuietHts() { hts_set_log_level(saved); }
};

BgzfPtr open_read(const std::string& path) {
  fs::require_file(path, "sequence file");
  BgzfPtr fp(bgzf_open(path.c_str(), "r"));
  if (!fp) throw Error(path + ": cannot open sequence file");
  return fp;
}

// Scans path; `copy` (optional) receives every line (without '\r') plus '\n'.
SeqFormat scan(const std::string& path, const std::function<void(const SequenceRecord&)>& on_record,
               bool keep, BGZF* copy) {
  QuietHts quiet;
  BgzfPtr fp = open_read(path);
  Scanner sc(path, on_record, keep);
  kstring_t ks = KS_INITIALIZE;
  struct KsFree {
    kstring_t* k;
    ~KsFree() { ks_free(k); }
  } ks_free_guard{&ks};
  int64_t lines = 0;
  for (;;) {
    int r = bgzf_getline(fp.get(), '\n', &ks);
    if (r == -1) break;
    if (r < -1)
      throw Error(path + ":" + std::to_string(lines + 1) +
                  ": cannot decompress (corrupt or truncated gzip file?)");
    ++lines;
    size_t n = ks.l;
    if (n > 0 && ks.s[n - 1] == '\r') --n;
    sc.line(n ? ks.s : "", n);
    if (copy) {
      if ((n && bgzf_write(copy, ks.s, n) < 0) || bgzf_write(copy, "\n", 1) < 0)
        throw Error(path + ": writing the BGZF copy failed (disk full?)");
    }
  }
  return sc.finish();
}

SeqFormat peek_format(const std::string& path) {
  BgzfPtr fp = open_read(path);
  int c;
  while ((c = bgzf_getc(fp.get())) >= 0 && (c == '\n' || c == '\r')) {
  }
  if (c == '>') return SeqFormat::Fasta;
  if (c == '@') return SeqFormat::Fastq;
  throw Error(path + ": not a FASTA or FASTQ file (its index exists, but it does not start with '>' or '@')");
}

Compression detect_compression(const std::string& path) {
  BgzfPtr fp = open_read(path);
  switch (bgzf_compression(fp.get())) {
    case 1: return Compression::Gzip;
    case 2: return Compression::Bgzf;
    default: return Compression::None;
  }
}

bool fresh(const std::string& index, const std::string& source) {
  return fs::exists(index) && fs::mtime_ns(index) >= fs::mtime_ns(source);
}

// Builds fai (and gzi for BGZF) for src under temporary names, then renames.
void build_index(const std::string& src, const std::string& fai, const std::string& gzi) {
  QuietHts quiet;
  fs::TempFiles guard;
  std::string tfai = fs::temp_name(fai), tgzi = gzi.empty() ? "" : fs::temp_name(gzi);
  guard.add(tfai);
  if (!tgzi.empty()) guard.add(tgzi);
  if (fai_build3(src.c_str(), tfai.c_str(), tgzi.empty() ? nullptr : tgzi.c_str()) != 0)
    throw Error(src + ": htslib could not build the faidx index " + fai);
  if (!tgzi.empty()) fs::commit(tgzi, gzi);
  fs::commit(tfai, fai);
}

}  // namespace

std::string default_cache_dir() {
  if (const char* d = std::getenv("MAMBAKIT_CACHE"); d && *d) return d;
  if (const char* d = std::getenv("MAMBAKIT_CACHE_DIR"); d && *d) return d;  // the earlier name
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/mambakit";
  if (const char* d = std::getenv("HOME"); d && *d && fs::is_dir(d)) return std::string(d) + "/.cache/mambakit";
  return "/tmp/mambakit-cache-" + std::to_string(::getuid());
}

SeqFormat scan_sequences(const std::string& path,
                         const std::function<void(const SequenceRecord&)>& on_record, bool keep_residues) {
  return scan(path, on_record, keep_residues, nullptr);
}

std::vector<SequenceRecord> read_sequences(const std::string& path) {
  std::vector<SequenceRecord> out;
  scan_sequences(path, [&](const SequenceRecord& r) { out.push_back(r); });
  return out;
}

bool is_sequence_file_name(const std::string& name) {
  static const std::unordered_set<std::string> exts{"fa", "fasta", "fna", "ffn", "frn", "fas",
                                                    "seq", "fq", "fastq"};
  return exts.count(fs::inner_extension(name)) > 0;
}

struct FastaReader::Impl {
  std::string path, indexed, fai, gzi;
  SeqFormat format = SeqFormat::Fasta;
  Compression comp = Compression::None;
  faidx_t* fx = nullptr;
  std::vector<SequenceInfo> seqs;
  std::unordered_map<std::string, int> by_name;
  int64_t total = 0;
  ~Impl() {
    if (fx) fai_destroy(fx);
  }

  void check_range(int seq, int64_t beg, int64_t end) const {
    if (seq < 0 || size_t(seq) >= seqs.size())
      throw Error(path + ": sequence index " + std::to_string(seq) + " out of range (" +
                  std::to_string(seqs.size()) + " sequences)");
    if (beg < 0 || end < beg || end > seqs[seq].length)
      throw Error(path + ": region " + seqs[seq].name + ":" + std::to_string(beg) + "-" +
                  std::to_string(end) + " is outside the sequence (length " +
                  std::to_string(seqs[seq].length) + ")");
  }

  // malloc'ed residues from faidx; caller frees.
  char* raw(int seq, int64_t beg, int64_t end, bool qual) const {
    check_range(seq, beg, end);
    hts_pos_t len = 0;
    const char* name = seqs[seq].name.c_str();
    char* s = qual ? faidx_fetch_qual64(fx, name, beg, end - 1, &len)
                   : faidx_fetch_seq64(fx, name, beg, end - 1, &len);
    if (!s || len != end - beg) {
      std::free(s);
      throw Error(path + ": cannot read region " + seqs[seq].name + ":" + std::to_string(beg) + "-" +
                  std::to_string(end) + " (file changed or truncated since it was indexed?)");
    }
    return s;
  }
};

FastaReader::FastaReader(const std::string& path, const FastaOptions& opts) : impl_(new Impl) {
  Impl& m = *impl_;
  m.path = path;
  fs::require_file(path, "sequence file");
  m.comp = detect_compression(path);
  const std::string cache = opts.cache_dir.empty() ? default_cache_dir() : opts.cache_dir;
  const std::string base = fs::basename(path);

  if (m.comp == Compression::Gzip) {
    std::string stem = base;
    if (stem.size() > 3 && stem.compare(stem.size() - 3, 3, ".gz") == 0) stem.resize(stem.size() - 3);
    m.indexed = cache + "/" + stem + "." + fs::file_key(path) + ".gz";
    m.fai = m.indexed + ".fai";
    m.gzi = m.indexed + ".gzi";
    if (fs::exists(m.indexed) && fs::exists(m.fai) && fs::exists(m.gzi)) {
      m.format = peek_format(m.indexed);
    } else {
      try {
        fs::make_dirs(cache);
      } catch (const Error& e) {
        throw Error(path + ": is plain gzip and needs a BGZF copy in the cache directory, but " + e.what() +
                    " (set FastaOptions::cache_dir or $MAMBAKIT_CACHE)");
      }
      if (opts.verbose)
        std::cerr << "note: " << path << " is plain gzip, not BGZF; htslib's faidx needs BGZF for random "
                  << "access, so it is re-compressed once into " << m.indexed << "\n";
      fs::TempFiles guard;
      std::string tmp = fs::temp_name(m.indexed);
      guard.add(tmp);
      BGZF* out = bgzf_open(tmp.c_str(), "w");
      if (!out) throw Error(tmp + ": cannot create the BGZF copy of " + path);
      try {
        m.format = scan(path, [](const SequenceRecord&) {}, false, out);
      } catch (...) {
        bgzf_close(out);
        throw;
      }
      if (bgzf_close(out) != 0) throw Error(tmp + ": writing the BGZF copy of " + path + " failed");
      build_index(tmp, m.fai, m.gzi);
      fs::commit(tmp, m.indexed);
      guard.release();
    }
  } else {
    m.indexed = path;
    const bool bgzf = m.comp == Compression::Bgzf;
    std::string fai = path + ".fai", gzi = bgzf ? path + ".gzi" : "";
    auto usable = [&](const std::string& f, const std::string& g) {
      return fresh(f, path) && (g.empty() || fresh(g, path));
    };
    // The cache entry is keyed by the input's absolute path, size and mtime.
    const std::string cfai = cache + "/" + base + "." + fs::file_key(path) + ".fai";
    const std::string cgzi = bgzf ? cache + "/" + base + "." + fs::file_key(path) + ".gzi" : "";
    if (usable(fai, gzi)) {
      m.fai = fai, m.gzi = gzi;  // the user's own index beside the file: read, never written
      m.format = peek_format(path);
    } else if (usable(cfai, cgzi)) {
      m.fai = cfai, m.gzi = cgzi;
      m.format = peek_format(path);
    } else {
      // Built in the cache, never beside the input: the user's folder is
      // theirs (it may be read-only, shared, or under version control).
      m.format = scan(path, [](const SequenceRecord&) {}, false, nullptr);
      try {
        fs::make_dirs(cache);
      } catch (const Error& e) {
        throw Error(path + ": needs a faidx index in the cache directory, but " + e.what() +
                    " (set FastaOptions::cache_dir or $MAMBAKIT_CACHE)");
      }
      m.fai = cfai, m.gzi = cgzi;
      build_index(path, m.fai, m.gzi);
    }
  }

  m.fx = fai_load3_format(m.indexed.c_str(), m.fai.c_str(), m.gzi.empty() ? nullptr : m.gzi.c_str(), 0,
                          m.format == SeqFormat::Fastq ? FAI_FASTQ : FAI_FASTA);
  if (!m.fx) throw Error(path + ": htslib cannot load the faidx index " + m.fai);
  if (m.comp != Compression::None && opts.block_cache_mb > 0) fai_set_cache_size(m.fx, opts.block_cache_mb << 20);
  int n = faidx_nseq(m.fx);
  for (int i = 0; i < n; ++i) {
    const char* name = faidx_iseq(m.fx, i);
    int len = faidx_seq_len(m.fx, name);
    if (len < 0) throw Error(path + ": index " + m.fai + " has no length for sequence '" + name + "'");
    m.seqs.push_back(SequenceInfo{name, len});
    m.by_name.emplace(name, i);
    m.total += len;
  }
  if (n == 0) throw Error(path + ": no sequences");
}

FastaReader::~FastaReader() = default;
FastaReader::FastaReader(FastaReader&&) noexcept = default;
FastaReader& FastaReader::operator=(FastaReader&&) noexcept = default;

const std::string& FastaReader::path() const { return impl_->path; }
const std::string& FastaReader::indexed_path() const { return impl_->indexed; }
SeqFormat FastaReader::format() const { return impl_->format; }
Compression FastaReader::compression() const { return impl_->comp; }
const std::vector<SequenceInfo>& FastaReader::sequences() const { return impl_->seqs; }
int64_t FastaReader::total_length() const { return impl_->total; }

int FastaReader::find(const std::string& name) const {
  auto it = impl_->by_name.find(name);
  return it == impl_->by_name.end() ? -1 : it->second;
}

std::string FastaReader::fetch(int seq, int64_t beg, int64_t end) const {
  if (beg == end) {
    impl_->check_range(seq, beg, end);
    return {};
  }
  char* s = impl_->raw(seq, beg, end, false);
  std::string out(s, size_t(end - beg));
  std::free(s);
  return out;
}

std::string FastaReader::fetch(const std::string& name, int64_t beg, int64_t end) const {
  int i = find(name);
  if (i < 0) throw Error(impl_->path + ": no sequence named '" + name + "'");
  return fetch(i, beg, end);
}

void FastaReader::fetch_tokens(int seq, int64_t beg, int64_t end, int32_t* out) const {
  if (beg == end) {
    impl_->check_range(seq, beg, end);
    return;
  }
  char* s = impl_->raw(seq, beg, end, false);
  try {
    dna::encode(s, size_t(end - beg), out,
                impl_->path + ": sequence '" + impl_->seqs[seq].name + "'", beg);
  } catch (...) {
    std::free(s);
    throw;
  }
  std::free(s);
}

std::vector<int32_t> FastaReader::fetch_tokens(int seq, int64_t beg, int64_t end) const {
  std::vector<int32_t> out(size_t(std::max<int64_t>(end - beg, 0)));
  fetch_tokens(seq, beg, end, out.data());
  return out;
}

std::string FastaReader::fetch_quality(int seq, int64_t beg, int64_t end) const {
  if (impl_->format != SeqFormat::Fastq) throw Error(impl_->path + ": quality requested from a FASTA file");
  if (beg == end) {
    impl_->check_range(seq, beg, end);
    return {};
  }
  char* s = impl_->raw(seq, beg, end, true);
  std::string out(s, size_t(end - beg));
  std::free(s);
  return out;
}

}  // namespace mk::data
