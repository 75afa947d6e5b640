#include "tokenizer_unicode.h"

#include <algorithm>
#include <iterator>

namespace mk::data::unicode {
namespace {

struct CodeRange {
  char32_t lo, hi;
};

#include "tokenizer_unicode_tables.inc"

template <size_t N>
bool in_table(const CodeRange (&table)[N], char32_t cp) {
  // The first range whose upper end is >= cp.
  const CodeRange* it = std::lower_bound(std::begin(table), std::end(table), cp,
                                         [](const CodeRange& r, char32_t c) { return r.hi < c; });
  return it != std::end(table) && it->lo <= cp;
}

// Length of the valid UTF-8 sequence at text[i] and its code point; 0 when
// the bytes there are not valid UTF-8.
size_t utf8_sequence(const std::string& text, size_t i, char32_t* cp) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  char32_t min, value;
  if ((b0 & 0xE0) == 0xC0) len = 2, min = 0x80, value = b0 & 0x1F;
  else if ((b0 & 0xF0) == 0xE0) len = 3, min = 0x800, value = b0 & 0x0F;
  else if ((b0 & 0xF8) == 0xF0) len = 4, min = 0x10000, value = b0 & 0x07;
  else return 0;
  if (i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    value = (value << 6) | (byte(i + k) & 0x3F);
  }
  const bool surrogate = value >= 0xD800 && value <= 0xDFFF;
  if (value < min || value > 0x10FFFF || surrogate) return 0;
  *cp = value;
  return len;
}

}  // namespace

std::vector<CodePoint> decode_utf8(const std::string& text) {
  std::vector<CodePoint> out;
  out.reserve(text.size() + 1);
  size_t i = 0;
  while (i < text.size()) {
    char32_t cp = 0;
    const size_t len = utf8_sequence(text, i, &cp);
    out.push_back({len ? cp : kInvalidByte, i});
    i += len ? len : 1;
  }
  out.push_back({0, text.size()});
  return out;
}

bool is_letter(char32_t cp) { return cp < 0x80 ? ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') : in_table(kLetters, cp); }

bool is_number(char32_t cp) { return cp < 0x80 ? (cp >= '0' && cp <= '9') : in_table(kNumbers, cp); }

bool is_space(char32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool may_change_under_nfc(char32_t cp) { return cp >= 0x300 && in_table(kNfcUnsafe, cp); }

}  // namespace mk::data::unicode
