// UTF-8 and the few Unicode properties the byte-level BPE tokenizer needs
// (internal to datasets/). Tables: tokenizer_unicode_tables.inc, generated
// by tools/make-unicode-tables.py.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace mk::data::unicode {

// A decoded code point and where its bytes start in the text.
struct CodePoint {
  char32_t cp;
  size_t offset;
};

// Stands for a byte that is not part of valid UTF-8 (out of Unicode's range,
// so no property table contains it).
constexpr char32_t kInvalidByte = 0x110000;

// Strict UTF-8 (no overlong forms, surrogates or values past U+10FFFF).
// Every invalid byte becomes its own kInvalidByte entry. A final entry
// {0, text.size()} marks the end.
std::vector<CodePoint> decode_utf8(const std::string& text);

bool is_letter(char32_t cp);   // General_Category L*
bool is_number(char32_t cp);   // General_Category N*
bool is_space(char32_t cp);    // White_Space, as the regex engines' \s
// False only where NFC provably leaves the code point and its neighbours
// alone (see the generator for the exact set).
bool may_change_under_nfc(char32_t cp);

}  // namespace mk::data::unicode
