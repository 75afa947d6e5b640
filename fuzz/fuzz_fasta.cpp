// FASTA/FASTQ: the line-by-line syntax check every file passes through
// (scan_sequences), and, for files it accepts, htslib's faidx index built and
// read back by FastaReader (random access to the first and last residues).
#include <algorithm>
#include <filesystem>

#include "fuzz_common.h"
#include "mambakit/datasets/fasta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A gzip magic makes a .gz name, so both the plain and the compressed
  // paths of the reader are reached.
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const std::string path = fuzz::write_file(gz ? "seqs.fa.gz" : "seqs.fa", data, size);
  const std::string cache = fuzz::scratch_dir() + "/cache";
  std::error_code ec;
  for (const char* ext : {".fai", ".gzi"}) std::filesystem::remove(path + ext, ec);
  std::filesystem::remove_all(cache, ec);

  size_t records = 0;
  try {
    mk::data::scan_sequences(path, [&](const mk::data::SequenceRecord& r) {
      ++records;
      (void)r.seq.size();
    });
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
    return 0;
  }
  try {
    mk::data::FastaOptions opts;
    opts.cache_dir = cache;
    opts.verbose = false;
    opts.block_cache_mb = 0;
    mk::data::FastaReader fa(path, opts);
    const int n = int(fa.sequences().size());
    for (int s = 0; s < n && s < 4; ++s) {
      const int64_t len = fa.sequences()[s].length;
      (void)fa.fetch(s, 0, std::min<int64_t>(len, 64));
      (void)fa.fetch_tokens(s, std::max<int64_t>(0, len - 16), len);
      if (fa.format() == mk::data::SeqFormat::Fastq) (void)fa.fetch_quality(s, 0, std::min<int64_t>(len, 8));
    }
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
  return 0;
}
