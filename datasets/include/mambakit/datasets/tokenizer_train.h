// Training new vocabularies from text files:
//   - byte-level BPE (mambakit's own trainer), written as a HF tokenizer.json
//     that load_bpe_tokenizer and HF tokenizers both read;
//   - SentencePiece (bpe or unigram) through libsentencepiece's trainer,
//     written as tokenizer.model.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace mk::data {

// Called now and then during long training with a one-line status.
using TrainProgress = std::function<void(const std::string&)>;

struct TrainReport {
  std::string path;      // the file written
  int vocab_size = 0;    // its vocabulary, special tokens included
  size_t input_bytes = 0;
  double seconds = 0;
};

struct BpeTrainOptions {
  int vocab_size = 4096;  // special tokens + 256 bytes + merges
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
  TrainProgress progress;
};

// Pre-tokenizes every file with GPT-2's regex (special tokens in the text
// are separators, never merged into), counts the words, then repeatedly
// merges the most frequent adjacent pair of symbols; ties go to the pair of
// smaller ids (left, then right), so the result is deterministic. Ids:
// special tokens first, then the 256 bytes in byte order, then one per merge.
// Stops early, with fewer tokens, when no pair is left to merge. Writes
// out_dir/tokenizer.json (created if needed; written atomically) and
// out_dir/tokenizer_config.json naming <|endoftext|> as bos/eos when it is
// among the special tokens.
// mk::Error (one line) for a vocabulary below 256 + specials, a missing or
// empty file.
TrainReport train_bpe(const std::vector<std::string>& files, const std::string& out_dir,
                      const BpeTrainOptions& options);

struct SentencePieceTrainOptions {
  int vocab_size = 4096;
  std::string model_type = "bpe";  // or "unigram"
  // Lossless settings so decode(encode(s)) == s for valid UTF-8: no
  // normalization, whitespace kept as is, unknown characters as bytes.
  bool byte_fallback = true;
  TrainProgress progress;
  bool verbose = false;  // libsentencepiece's own log on stderr
};

// Trains with SentencePieceTrainer (threads: OMP_NUM_THREADS, else all
// cores) and writes out_dir/tokenizer.model atomically. mk::Error (one line)
// with SentencePiece's reason on failure, e.g. a vocabulary the text cannot
// fill. Bytes that are not UTF-8 come back from libsentencepiece as U+FFFD.
TrainReport train_sentencepiece(const std::vector<std::string>& files, const std::string& out_dir,
                                const SentencePieceTrainOptions& options);

}  // namespace mk::data
