// The `tokenize` and `tokenizer` commands of the mambakit CLI (main.cpp
// dispatches to them; args exclude the command word). Each returns the exit
// code: 0 ok, 2 usage error (reported here, in one line); runtime errors
// propagate as mk::Error for main to report (exit 1).
#pragma once
#include <string>
#include <vector>

namespace mk::exp {

// mambakit tokenize DIR_OR_FILE --text T | --file F [--json] [--no-ids]
int cmd_tokenize(const std::vector<std::string>& args);

// mambakit tokenizer train --model bpe|sentencepiece --vocab N --out DIR FILES...
int cmd_tokenizer(const std::vector<std::string>& args);

}  // namespace mk::exp
