// Tokenizers: text <-> token ids, behind one interface.
//   - bytes: vocabulary 256, id = byte value (mambakit's own byte-level models);
//   - byte-level BPE read from a HF `tokenizer.json` of the GPT-2 / GPT-NeoX
//     family (the tokenizer of the pretrained Mamba checkpoints), giving the
//     same ids as HF tokenizers;
//   - SentencePiece models (`*.model`) through libsentencepiece.
// Trainers for new vocabularies are in tokenizer_train.h.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mk::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // "bytes", "bpe" or "sentencepiece".
  virtual std::string name() const = 0;
  // Every id lies in [0, vocab_size()), added and special tokens included.
  virtual int vocab_size() const = 0;
  // Special tokens written in the text (e.g. "<|endoftext|>") become their
  // ids; nothing is added around the text (no BOS/EOS).
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  // mk::Error naming the id for one outside the vocabulary.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // The token as the vocabulary spells it (BPE: GPT-2's byte-level
  // characters, e.g. "Ġthe"; SentencePiece: the piece, e.g. "▁the").
  virtual std::string id_to_token(int32_t id) const = 0;
  virtual std::optional<int32_t> token_to_id(const std::string& token) const = 0;
  // The bytes of text the token stands for inside a text: what bits per byte
  // divide by. The length of decode({id}) unless a tokenizer says otherwise
  // (SentencePiece counts its word-boundary mark as the space it stands for).
  virtual size_t token_bytes(int32_t id) const { return decode({id}).size(); }

  // Where the tokenizer defines them; nullopt otherwise.
  std::optional<int32_t> eos_id() const { return eos_; }
  std::optional<int32_t> bos_id() const { return bos_; }

 protected:
  std::optional<int32_t> eos_, bos_;
};

// Picks the tokenizer for a path:
//   - a directory holding tokenizer.json: byte-level BPE;
//   - else a directory holding tokenizer.model, or exactly one *.model: SentencePiece;
//   - else a directory: bytes;
//   - a file: *.json is BPE, *.model SentencePiece;
//   - the word "bytes" (when no such file exists): bytes.
// mk::Error (one line, naming the path) for a missing path, an unknown file
// kind, or a tokenizer.json using features mambakit does not implement.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir_or_file);

std::unique_ptr<Tokenizer> make_byte_tokenizer();

// The files a tokenizer path stands for, as load_tokenizer reads them:
// tokenizer.json (plus tokenizer_config.json beside it, which names eos/bos)
// or one SentencePiece *.model; none for bytes. Each pair is (source file,
// the name it has in a model directory: tokenizer.json,
// tokenizer_config.json or tokenizer.model), so copying them makes a
// directory that load_tokenizer and the model commands read the same way.
std::vector<std::pair<std::string, std::string>> tokenizer_files(const std::string& dir_or_file);
// Copies tokenizer_files(dir_or_file) into dir (atomically, each file).
void copy_tokenizer(const std::string& dir_or_file, const std::string& dir);
// True when the two paths name byte-identical tokenizer files (both bytes
// counts as identical).
bool same_tokenizer(const std::string& a, const std::string& b);

// Reads a HF tokenizer.json (model BPE, pre-tokenizer ByteLevel, normalizer
// none or NFC, decoder ByteLevel). eos/bos come from tokenizer_config.json
// beside it where that names them, else both are <|endoftext|> where the
// vocabulary has it (the GPT-2 / GPT-NeoX convention).
// An NFC normalizer is honoured for texts NFC leaves unchanged (checked
// conservatively per code point); encode refuses, with a one-line mk::Error,
// a text that would need real NFC composition (e.g. a combining accent).
std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& tokenizer_json);

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_file);

// GPT-2's pre-tokenizer: splits text the way the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does (Unicode letters, numbers and White_Space). The pieces concatenate
// to the text. Bytes that are not valid UTF-8 count as one symbol each of
// the "other" class, so any byte string splits.
std::vector<std::string> gpt2_pretokenize(const std::string& text);

// GPT-2's reversible byte -> printable character map applied to each byte
// of `bytes` (space becomes "Ġ", newline "Ċ"); the spelling of byte-level
// BPE vocabularies.
std::string byte_level_spelling(const std::string& bytes);

}  // namespace mk::data
