// `mambakit tokenize` (text -> ids with a model's tokenizer) and `mambakit
// tokenizer train` (a new BPE or SentencePiece vocabulary from text files).
#include "mambakit/experiments/cmd_tokenizer.h"

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "mambakit/datasets/tokenizer.h"
#include "mambakit/datasets/tokenizer_train.h"
#include "mambakit/experiments/cli_options.h"
#include "mambakit/experiments/run_dir.h"
#include "mambakit/io/atomic_file.h"

namespace mk::exp {
namespace {

namespace po = boost::program_options;
using json = nlohmann::json;

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

po::variables_map parse(const std::vector<std::string>& args, const po::options_description& desc,
                        const po::positional_options_description& pos) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    if (!vm.count("help")) po::notify(vm);
  } catch (const po::error& e) {
    throw Usage(option_error_text(e, desc, &pos));
  }
  return vm;
}

// Runs a command body, turning usage mistakes into a one-line message and
// exit code 2 (main reports everything else).
template <typename F>
int with_usage_errors(const char* command, F body) {
  try {
    return body();
  } catch (const Usage& e) {
    std::fprintf(stderr, "mambakit %s: usage error: %s\n", command, e.what());
    return 2;
  }
}

void print_ids(const std::vector<int32_t>& ids) {
  std::string line;
  line.reserve(ids.size() * 6);
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
  std::printf("%s\n", line.c_str());
}

int tokenize(const std::vector<std::string>& args) {
  std::string path, text, file;
  po::options_description d(
      "mambakit tokenize DIR_OR_FILE --text T | --file F [--json] [--no-ids]\n"
      "Prints the token ids of a text (space-separated), their count and bytes per token.\n"
      "DIR_OR_FILE: a directory with tokenizer.json (byte-level BPE) or a SentencePiece *.model\n"
      "(else bytes), such a file, or the word \"bytes\".\n\n"
      "Examples:\n"
      "  mambakit tokenize runs/mamba-130m --text \"Hello world\"\n"
      "  mambakit tokenize tok/kjv_bpe --file data/kjv.txt --no-ids\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("tokenizer", po::value(&path)->required(), "tokenizer directory or file")
      ("text", po::value(&text), "the text to tokenize")
      ("file", po::value(&file), "tokenize this file's bytes instead")
      ("json", "one JSON object: tokenizer, vocab_size, ids, tokens, bytes, bytes_per_token")
      ("no-ids", "only the counts (for large files)");
  po::positional_options_description pos;
  pos.add("tokenizer", 1);
  const auto vm = parse(args, d, pos);
  if (vm.count("help")) return std::cout << d, 0;
  if (vm.count("text") == vm.count("file")) throw Usage("give exactly one of --text and --file");
  const auto tok = mk::data::load_tokenizer(path);
  const std::string input = vm.count("file") ? mk::read_text_file(file) : text;
  const auto ids = tok->encode(input);
  const double per_token = ids.empty() ? 0.0 : double(input.size()) / double(ids.size());
  if (vm.count("json")) {
    json j = {{"tokenizer", tok->name()}, {"vocab_size", tok->vocab_size()}, {"tokens", ids.size()},
              {"bytes", input.size()}, {"bytes_per_token", per_token}};
    if (!vm.count("no-ids")) j["ids"] = ids;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  if (!vm.count("no-ids")) print_ids(ids);
  std::printf("%zu tokens, %zu bytes, %.3f bytes per token (%s, vocabulary %d)\n", ids.size(), input.size(),
              per_token, tok->name().c_str(), tok->vocab_size());
  return 0;
}

int train(const std::vector<std::string>& args) {
  std::string model, out, type;
  int vocab = 0;
  std::vector<std::string> files, specials;
  po::options_description d(
      "mambakit tokenizer train --model bpe|sentencepiece --vocab N --out DIR FILES...\n"
      "Trains a vocabulary on text files.\n"
      "  bpe: mambakit's byte-level BPE (GPT-2 pre-tokenizer, most frequent pair merged first,\n"
      "       ties to the smaller ids) -> DIR/tokenizer.json, readable by HF tokenizers too;\n"
      "  sentencepiece: libsentencepiece's trainer (--type bpe or unigram; lossless settings:\n"
      "       no normalization, whitespace kept, byte fallback) -> DIR/tokenizer.model.\n\n"
      "Examples:\n"
      "  mambakit tokenizer train --model bpe --vocab 4096 --out tok/kjv_bpe data/kjv.txt\n"
      "  mambakit tokenizer train --model sentencepiece --type unigram --vocab 4096 --out tok/kjv_spm data/kjv.txt\n\n"
      "Options");
  d.add_options()("help,h", "show this help")
      ("model", po::value(&model)->required(), "bpe or sentencepiece")
      ("vocab", po::value(&vocab)->required(), "vocabulary size, special tokens included")
      ("out", po::value(&out)->required(), "output directory")
      ("files", po::value(&files)->multitoken(), "text files to train on")
      ("type", po::value(&type)->default_value("bpe"), "sentencepiece: bpe or unigram")
      ("special", po::value(&specials)->multitoken(), "bpe: special tokens (default <|endoftext|>)")
      ("verbose", "sentencepiece: show libsentencepiece's own log");
  po::positional_options_description pos;
  pos.add("files", -1);
  const auto vm = parse(args, d, pos);
  if (vm.count("help")) return std::cout << d, 0;
  if (files.empty()) throw Usage("give the text files to train on");
  // Never over a model's own tokenizer (or into a checkpoint directory).
  for (const char* f : {"/tokenizer.json", "/tokenizer_config.json", "/tokenizer.model"})
    if (const std::string why = protected_output_problem(out + f, "--out"); !why.empty()) throw Usage(why);
  const auto progress = [](const std::string& line) {
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  };
  mk::data::TrainReport r;
  if (model == "bpe") {
    mk::data::BpeTrainOptions o;
    o.vocab_size = vocab;
    if (vm.count("special")) o.special_tokens = specials;
    o.progress = progress;
    r = mk::data::train_bpe(files, out, o);
  } else if (model == "sentencepiece") {
    if (type != "bpe" && type != "unigram") throw Usage("--type: expected bpe or unigram, got '" + type + "'");
    mk::data::SentencePieceTrainOptions o;
    o.vocab_size = vocab;
    o.model_type = type;
    o.progress = progress;
    o.verbose = vm.count("verbose") > 0;
    r = mk::data::train_sentencepiece(files, out, o);
  } else {
    throw Usage("--model: expected bpe or sentencepiece, got '" + model + "'");
  }
  std::printf("wrote %s: vocabulary %d, trained on %zu bytes in %.1f s\n", r.path.c_str(), r.vocab_size, r.input_bytes,
              r.seconds);
  return 0;
}

}  // namespace

int cmd_tokenize(const std::vector<std::string>& args) {
  return with_usage_errors("tokenize", [&] { return tokenize(args); });
}

int cmd_tokenizer(const std::vector<std::string>& args) {
  return with_usage_errors("tokenizer", [&] {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
      std::printf("mambakit tokenizer train ...   a new BPE or SentencePiece vocabulary (`tokenizer train --help`)\n");
      return args.empty() ? 2 : 0;
    }
    if (args[0] != "train") throw Usage("unknown subcommand '" + args[0] + "' (expected train)");
    return train(std::vector<std::string>(args.begin() + 1, args.end()));
  });
}

}  // namespace mk::exp
