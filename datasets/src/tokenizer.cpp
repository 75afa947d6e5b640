// The byte tokenizer and load_tokenizer, which picks a tokenizer for a path.
#include <filesystem>
#include <fstream>
#include <iterator>

#include "mambakit/datasets/tokenizer.h"
#include "mambakit/error.h"
#include "mambakit/io/atomic_file.h"

namespace mk::data {
namespace {

namespace fs = std::filesystem;

// Vocabulary 256, id = byte value: what mambakit's byte-level models read.
class ByteTokenizer : public Tokenizer {
 public:
  std::string name() const override { return "bytes"; }
  int vocab_size() const override { return 256; }
  std::vector<int32_t> encode(const std::string& text) const override {
    return std::vector<int32_t>(reinterpret_cast<const unsigned char*>(text.data()),
                                reinterpret_cast<const unsigned char*>(text.data()) + text.size());
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    out.reserve(ids.size());
    for (int32_t id : ids) out += char(check(id));
    return out;
  }
  // The byte itself, as a one-byte string.
  std::string id_to_token(int32_t id) const override { return std::string(1, char(check(id))); }
  std::optional<int32_t> token_to_id(const std::string& token) const override {
    if (token.size() != 1) return std::nullopt;
    return static_cast<unsigned char>(token[0]);
  }

 private:
  static int32_t check(int32_t id) {
    if (id < 0 || id > 255)
      throw mk::Error("token id " + std::to_string(id) + " is outside the byte vocabulary of 256");
    return id;
  }
};

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// tokenizer.model, else the only *.model in dir; "" when there is none.
std::string sentencepiece_model_in(const fs::path& dir) {
  if (fs::is_regular_file(dir / "tokenizer.model")) return (dir / "tokenizer.model").string();
  std::vector<std::string> models;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".model") models.push_back(e.path().string());
  if (models.size() > 1)
    throw mk::Error(dir.string() + ": " + std::to_string(models.size()) +
                    " SentencePiece *.model files and no tokenizer.model; name the file to use");
  return models.empty() ? "" : models[0];
}

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir_or_file) {
  const fs::path p(dir_or_file);
  std::error_code ec;
  if (fs::is_directory(p, ec)) {
    if (fs::is_regular_file(p / "tokenizer.json")) return load_bpe_tokenizer((p / "tokenizer.json").string());
    const std::string model = sentencepiece_model_in(p);
    if (!model.empty()) return load_sentencepiece_tokenizer(model);
    return make_byte_tokenizer();
  }
  if (fs::is_regular_file(p, ec)) {
    if (ends_with(dir_or_file, ".json")) return load_bpe_tokenizer(dir_or_file);
    if (ends_with(dir_or_file, ".model")) return load_sentencepiece_tokenizer(dir_or_file);
    throw mk::Error(dir_or_file +
                    ": not a tokenizer (expected tokenizer.json, a SentencePiece *.model, or a directory)");
  }
  if (dir_or_file == "bytes") return make_byte_tokenizer();
  throw mk::Error(dir_or_file +
                  ": no such file or directory (expected a tokenizer.json, a *.model, a directory or \"bytes\")");
}

std::vector<std::pair<std::string, std::string>> tokenizer_files(const std::string& dir_or_file) {
  const fs::path p(dir_or_file);
  std::error_code ec;
  std::string json, model;
  if (fs::is_directory(p, ec)) {
    if (fs::is_regular_file(p / "tokenizer.json")) json = (p / "tokenizer.json").string();
    else model = sentencepiece_model_in(p);
  } else if (fs::is_regular_file(p, ec)) {
    if (ends_with(dir_or_file, ".json")) json = dir_or_file;
    else if (ends_with(dir_or_file, ".model")) model = dir_or_file;
  }
  std::vector<std::pair<std::string, std::string>> files;
  if (!json.empty()) {
    files.emplace_back(json, "tokenizer.json");
    const fs::path cfg = fs::path(json).parent_path() / "tokenizer_config.json";
    if (fs::is_regular_file(cfg, ec)) files.emplace_back(cfg.string(), "tokenizer_config.json");
  }
  if (!model.empty()) files.emplace_back(model, "tokenizer.model");
  return files;
}

namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw mk::Error(path + ": cannot open");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

void copy_tokenizer(const std::string& dir_or_file, const std::string& dir) {
  for (const auto& [from, name] : tokenizer_files(dir_or_file)) {
    const fs::path to = fs::path(dir) / name;
    std::error_code ec;
    if (fs::equivalent(from, to, ec)) continue;  // already there
    mk::atomic_write_text(to.string(), file_bytes(from));
  }
}

bool same_tokenizer(const std::string& a, const std::string& b) {
  const auto fa = tokenizer_files(a), fb = tokenizer_files(b);
  if (fa.size() != fb.size()) return false;
  for (size_t i = 0; i < fa.size(); ++i)
    if (fa[i].second != fb[i].second || file_bytes(fa[i].first) != file_bytes(fb[i].first)) return false;
  return true;
}

}  // namespace mk::data
