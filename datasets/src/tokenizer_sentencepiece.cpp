// SentencePiece models through libsentencepiece (Debian's
// libsentencepiece-dev): using them and training new ones.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "mambakit/datasets/tokenizer.h"
#include "mambakit/datasets/tokenizer_train.h"
#include "mambakit/error.h"
#include "mambakit/io/atomic_file.h"

namespace mk::data {
namespace {

namespace fs = std::filesystem;

// SentencePiece's status messages on one line.
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    if (!fs::is_regular_file(path)) throw mk::Error(path + ": no such file");
    const auto status = sp_.Load(path);
    if (!status.ok()) throw mk::Error(path + ": not a SentencePiece model: " + one_line(status.ToString()));
    if (sp_.bos_id() >= 0) bos_ = sp_.bos_id();
    if (sp_.eos_id() >= 0) eos_ = sp_.eos_id();
  }

  std::string name() const override { return "sentencepiece"; }
  int vocab_size() const override { return sp_.GetPieceSize(); }
  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) throw mk::Error(path_ + ": encoding failed: " + one_line(status.ToString()));
    return std::vector<int32_t>(ids.begin(), ids.end());
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    for (int32_t id : ids) check(id);  // libsentencepiece does not check the range itself
    std::string text;
    const auto status = sp_.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
    if (!status.ok()) throw mk::Error(path_ + ": decoding failed: " + one_line(status.ToString()));
    return text;
  }
  std::string id_to_token(int32_t id) const override { return sp_.IdToPiece(check(id)); }
  // The piece's bytes with each word-boundary mark "▁" (3 bytes) counted as
  // the one space it stands for; a byte-fallback piece is one byte; control
  // pieces (<s>, </s>) stand for no text; the unknown piece for at least one
  // character, counted as one byte. The dummy prefix the encoder adds before
  // a text's first word is counted too: one byte too many per encoded text,
  // on its first token, which language modelling never scores.
  size_t token_bytes(int32_t id) const override {
    check(id);
    if (sp_.IsControl(id)) return 0;
    if (sp_.IsByte(id) || sp_.IsUnknown(id)) return 1;
    const std::string piece = sp_.IdToPiece(id);
    static const std::string kMark = "\xe2\x96\x81";  // U+2581
    size_t n = piece.size();
    for (size_t at = piece.find(kMark); at != std::string::npos; at = piece.find(kMark, at + kMark.size()))
      n -= kMark.size() - 1;
    return n;
  }
  // PieceToId answers the unknown token's id for any unknown piece.
  std::optional<int32_t> token_to_id(const std::string& token) const override {
    const int id = sp_.PieceToId(token);
    if (id < 0 || sp_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }

 private:
  int32_t check(int32_t id) const {
    if (id < 0 || id >= vocab_size())
      throw mk::Error(path_ + ": token id " + std::to_string(id) + " is outside the vocabulary of " +
                      std::to_string(vocab_size()) + " tokens");
    return id;
  }

  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
};

size_t check_inputs(const std::vector<std::string>& files) {
  if (files.empty()) throw mk::Error("no input files to train on");
  size_t bytes = 0;
  for (const auto& f : files) {
    std::error_code ec;
    if (!fs::is_regular_file(f, ec)) throw mk::Error(f + ": no such file");
    if (f.find(',') != std::string::npos)
      throw mk::Error(f + ": SentencePiece cannot read a file whose name has a comma");
    bytes += fs::file_size(f);
  }
  if (bytes == 0) throw mk::Error("the input files are empty");
  return bytes;
}

// OMP_NUM_THREADS when set (the project's one thread setting), else all cores.
int training_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env && std::atoi(env) > 0) return std::atoi(env);
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string join(const std::vector<std::string>& v, char sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : std::string(1, sep)) + s;
  return out;
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_file) {
  return std::make_unique<SentencePieceTokenizer>(model_file);
}

TrainReport train_sentencepiece(const std::vector<std::string>& files, const std::string& out_dir,
                                const SentencePieceTrainOptions& o) {
  if (o.model_type != "bpe" && o.model_type != "unigram")
    throw mk::Error("SentencePiece model type '" + o.model_type + "' is not supported (expected bpe or unigram)");
  if (o.vocab_size < 8) throw mk::Error("vocabulary size " + std::to_string(o.vocab_size) + " is too small");
  TrainReport r;
  r.input_bytes = check_inputs(files);
  const auto start = std::chrono::steady_clock::now();
  if (o.progress)
    o.progress("training SentencePiece " + o.model_type + ", vocabulary " + std::to_string(o.vocab_size) + ", on " +
               std::to_string(r.input_bytes) + " bytes (one call into libsentencepiece; --verbose shows its log)");
  const std::unordered_map<std::string, std::string> args = {
      {"input", join(files, ',')},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"model_type", o.model_type},
      // Lossless: text comes back exactly as it went in.
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      {"num_threads", std::to_string(training_threads())},
      {"minloglevel", o.verbose ? "0" : "2"},
  };
  std::string proto;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, nullptr, &proto);
  if (!status.ok()) throw mk::Error("SentencePiece training failed: " + one_line(status.ToString()));
  fs::create_directories(out_dir);
  r.path = (fs::path(out_dir) / "tokenizer.model").string();
  mk::atomic_write_text(r.path, proto);
  r.vocab_size = load_sentencepiece_tokenizer(r.path)->vocab_size();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace mk::data
