// Pieces shared by the byte-level BPE tokenizer and its trainer (internal
// to datasets/).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mk::data::bpe {

// GPT-2's byte -> printable character map: byte b is spelled
// byte_chars()[b] (UTF-8 of one character) in the vocabulary.
const std::array<std::string, 256>& byte_chars();

// The inverse: the character (as a code point) back to its byte, -1 for a
// character that spells no byte.
int char_to_byte(char32_t cp);

// Splits text on a set of literal tokens, as HF's added vocabulary does:
// scanning left to right, the leftmost match wins and, among matches there,
// the longest. Text between matches is reported with id -1.
class LiteralSplitter {
 public:
  void add(const std::string& content, int32_t id);
  bool empty() const { return by_first_byte_.empty(); }
  void split(std::string_view text, const std::function<void(std::string_view, int32_t)>& emit) const;

 private:
  struct Literal {
    std::string content;
    int32_t id;
  };
  // Candidates by their first byte, longest first.
  std::unordered_map<unsigned char, std::vector<Literal>> by_first_byte_;
};

}  // namespace mk::data::bpe
