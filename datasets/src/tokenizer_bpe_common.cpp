#include "tokenizer_bpe_common.h"

#include <algorithm>

#include "mambakit/datasets/tokenizer.h"
#include "tokenizer_unicode.h"

namespace mk::data {
namespace bpe {
namespace {

std::string utf8(char32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves,
// the other 68 take U+0100 onwards in byte order, so no token contains a
// space or a control character.
std::array<char32_t, 256> make_byte_code_points() {
  std::array<char32_t, 256> cps{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cps[b] = printable ? char32_t(b) : next++;
  }
  return cps;
}

const std::array<char32_t, 256>& byte_code_points() {
  static const auto cps = make_byte_code_points();
  return cps;
}

}  // namespace

const std::array<std::string, 256>& byte_chars() {
  static const auto chars = [] {
    std::array<std::string, 256> c;
    for (int b = 0; b < 256; ++b) c[b] = utf8(byte_code_points()[b]);
    return c;
  }();
  return chars;
}

int char_to_byte(char32_t cp) {
  static const auto inverse = [] {
    std::unordered_map<char32_t, int> m;
    for (int b = 0; b < 256; ++b) m[byte_code_points()[b]] = b;
    return m;
  }();
  const auto it = inverse.find(cp);
  return it == inverse.end() ? -1 : it->second;
}

void LiteralSplitter::add(const std::string& content, int32_t id) {
  if (content.empty()) return;
  auto& list = by_first_byte_[static_cast<unsigned char>(content[0])];
  list.push_back({content, id});
  std::stable_sort(list.begin(), list.end(),
                   [](const Literal& a, const Literal& b) { return a.content.size() > b.content.size(); });
}

void LiteralSplitter::split(std::string_view text,
                            const std::function<void(std::string_view, int32_t)>& emit) const {
  size_t start = 0;  // first byte not yet reported
  for (size_t i = 0; i < text.size(); ++i) {
    const auto it = by_first_byte_.find(static_cast<unsigned char>(text[i]));
    if (it == by_first_byte_.end()) continue;
    for (const Literal& lit : it->second) {
      if (text.compare(i, lit.content.size(), lit.content) != 0) continue;
      if (i > start) emit(text.substr(start, i - start), -1);
      emit(text.substr(i, lit.content.size()), lit.id);
      start = i + lit.content.size();
      i = start - 1;
      break;
    }
  }
  if (start < text.size()) emit(text.substr(start), -1);
}

}  // namespace bpe

namespace {

using unicode::CodePoint;

enum class Kind { kLetter, kNumber, kSpace, kOther };

Kind kind_of(char32_t cp) {
  if (unicode::is_letter(cp)) return Kind::kLetter;
  if (unicode::is_number(cp)) return Kind::kNumber;
  if (unicode::is_space(cp)) return Kind::kSpace;
  return Kind::kOther;
}

// Length (in code points) of 's 't 're 've 'm 'll 'd at cps[i], else 0.
size_t contraction_at(const std::vector<CodePoint>& cps, size_t i, size_t n) {
  if (cps[i].cp != '\'' || i + 1 >= n) return 0;
  const char32_t a = cps[i + 1].cp;
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= n) return 0;
  const char32_t b = cps[i + 2].cp;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// Length (in code points) of the regex's match at cps[i], i < n.
size_t match_at(const std::vector<CodePoint>& cps, const std::vector<Kind>& kinds, size_t i, size_t n) {
  if (const size_t c = contraction_at(cps, i, n)) return c;
  const auto run_end = [&](size_t j, Kind k) {
    while (j < n && kinds[j] == k) ++j;
    return j;
  };
  // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run.
  const size_t j = i + (cps[i].cp == ' ' ? 1 : 0);
  if (j < n && kinds[j] != Kind::kSpace) return run_end(j, kinds[j]) - i;
  // `\s+(?!\S)|\s+`: a whitespace run, less its last character when a
  // non-space follows (that one joins the next word as its leading space).
  const size_t end = run_end(i, Kind::kSpace);
  if (end == n || end - i == 1) return end - i;
  return end - 1 - i;
}

}  // namespace

std::vector<std::string> gpt2_pretokenize(const std::string& text) {
  const std::vector<CodePoint> cps = unicode::decode_utf8(text);
  const size_t n = cps.size() - 1;  // the last entry marks the end
  std::vector<Kind> kinds(n);
  for (size_t i = 0; i < n; ++i) kinds[i] = kind_of(cps[i].cp);
  std::vector<std::string> pieces;
  for (size_t i = 0; i < n;) {
    const size_t len = match_at(cps, kinds, i, n);
    pieces.push_back(text.substr(cps[i].offset, cps[i + len].offset - cps[i].offset));
    i += len;
  }
  return pieces;
}

std::string byte_level_spelling(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out += bpe::byte_chars()[b];
  return out;
}

}  // namespace mk::data
