// HF tokenizer.json (byte-level BPE): load_bpe_tokenizer, then a round trip
// of a short text with special tokens, and every id decoded back.
#include "fuzz_common.h"
#include "mambakit/datasets/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_file("tokenizer.json", data, size);
  std::unique_ptr<mk::data::Tokenizer> tok;
  try {
    tok = mk::data::load_bpe_tokenizer(path);
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
    return 0;
  }
  const std::string text = "Hello world!<|endoftext|> caf\xc3\xa9  42\n\xff";
  try {
    const std::vector<int32_t> ids = tok->encode(text);
    for (int32_t id : ids)
      if (id < 0 || id >= tok->vocab_size()) {
        std::fprintf(stderr, "fuzz: encode gave id %d outside the vocabulary of %d\n", id, tok->vocab_size());
        std::abort();
      }
    (void)tok->decode(ids);
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
  // Every id once (bounded: the vocabulary is bounded by the file).
  for (int32_t id = 0; id < tok->vocab_size() && id < 4096; ++id) {
    try {
      (void)tok->decode({id});
      (void)tok->id_to_token(id);
    } catch (const mk::Error& e) {
      fuzz::expect_error(e, path);
    }
  }
  return 0;
}
