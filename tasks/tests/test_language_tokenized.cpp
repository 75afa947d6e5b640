// The language task reading text through a tokenizer (the bpe_tiny fixture,
// a HF tokenizer.json) and through token shards: each split tokenized on its
// own and losslessly, bits per byte over the bytes the targets stand for,
// shard-backed streams drawing the same windows as in-memory ones, and the
// tokenizer a prepared folder was made with guarding its use.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "mambakit/datasets/shards.h"
#include "mambakit/datasets/tokenizer.h"
#include "mambakit/tasks/language_task.h"

namespace mk::tasks {
namespace {

namespace fs = std::filesystem;

const std::string kBpe = std::string(MAMBAKIT_SOURCE_DIR) + "/datasets/tests/data/bpe_tiny";

struct Scratch {
  fs::path path = fs::temp_directory_path() / ("mambakit_langtok_" + std::to_string(getpid()));
  Scratch() { fs::create_directories(path); }
  ~Scratch() { fs::remove_all(path); }
  std::string operator/(const std::string& p) const { return (path / p).string(); }
};

// English with some multi-byte characters, so split points can fall inside one.
std::string text() {
  const char* lines[] = {"In the beginning God created the heaven and the earth.\n",
                         "And the earth was without form, and void; caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 ok.\n",
                         "Selective state spaces keep what matters \xf0\x9f\x99\x82 and forget the rest.\n"};
  std::string s;
  for (int i = 0; i < 120; ++i) s += lines[(i * 5) % 3];
  return s;
}

std::string write_text(const Scratch& d, const std::string& name = "corpus.txt") {
  const std::string p = d / name;
  std::ofstream(p, std::ios::binary) << text();
  return p;
}

TaskSpec spec_for(const std::string& path, const std::string& tokenizer, int seq_len = 16) {
  TaskSpec s;
  s.name = "language";
  s.data.paths = {path};
  s.data.seq_len = seq_len;
  s.data.split = {0.8, 0.1, 0.1};
  s.data.tokenizer = tokenizer;
  s.seed = 5;
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(LanguageTaskTokenized, SplitsAreTheTextTokenizedPartByPart) {
  Scratch d;
  LanguageTask t(spec_for(write_text(d), kBpe));
  const auto tok = data::load_tokenizer(kBpe);
  EXPECT_EQ(t.vocab_size(), tok->vocab_size());
  EXPECT_EQ(t.tokenizer().name(), "bpe");
  std::string joined;
  for (const auto& s : t.splits()) {
    const auto ids = t.split_tokens(s).all();
    const std::string part = tok->decode(ids);
    // Each part is its own text: encoding it again gives the same ids (no
    // token was cut at a split boundary), and no part starts mid-character.
    EXPECT_EQ(tok->encode(part), ids) << s;
    ASSERT_FALSE(part.empty());
    EXPECT_NE(static_cast<unsigned char>(part[0]) & 0xC0, 0x80) << s;
    joined += part;
  }
  EXPECT_EQ(joined, text());  // lossless and contiguous
  EXPECT_DOUBLE_EQ(t.train_tokens(), double(t.split_tokens("train").size() - 1));
  // Far fewer tokens than bytes: these are BPE tokens, not bytes.
  EXPECT_LT(t.split_tokens("train").size(), size_t(0.8 * double(text().size()) * 0.7));
}

TEST(LanguageTaskTokenized, BitsPerByteDivideByTheTargetsBytes) {
  Scratch d;
  LanguageTask t(spec_for(write_text(d), kBpe));
  const auto tok = data::load_tokenizer(kBpe);
  const auto batches = t.eval_batches("val", 2, 2);
  ASSERT_FALSE(batches.empty());
  const int V = t.vocab_size();
  auto acc = t.metrics();
  double targets = 0, bytes = 0;
  for (const auto& b : batches) {
    const std::vector<float> uniform(b.ids.size() * size_t(V), 0.f);  // every token ln V nats
    acc->add(b, uniform.data(), V);
    for (int32_t y : b.targets) targets += 1, bytes += double(tok->decode({y}).size());
  }
  const auto r = acc->result();
  EXPECT_NEAR(r.at("loss"), std::log(double(V)), 1e-9);
  EXPECT_NEAR(r.at("bpb"), targets * std::log(double(V)) / (bytes * std::log(2.0)), 1e-9);
  EXPECT_GT(bytes, 1.5 * targets);  // so bpb really differs from bits per token
}

TEST(LanguageTaskTokenized, ShardStreamsDrawTheSameWindowsAsMemory) {
  Scratch d;
  std::vector<int32_t> ids(5000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 2654435761u) % 1001);
  {
    data::ShardWriter w(d / "s.mkshard", "text", 1001, data::dtype_for_vocab(1001));
    w.append(ids.data(), ids.size());
    w.finish();
  }
  const TokenStream mem(ids), mapped(std::make_shared<const data::ShardReader>(d / "s.mkshard"));
  ASSERT_EQ(mapped.size(), mem.size());
  EXPECT_EQ(mapped.read(123, 40), mem.read(123, 40));
  WindowSampler a(&mem, 32, 9), b(&mapped, 32, 9);
  for (int k = 0; k < 3; ++k) {
    const auto x = a.next(4), y = b.next(4);
    EXPECT_EQ(x.ids, y.ids);
    EXPECT_EQ(x.targets, y.targets);
  }
  const auto e1 = eval_windows(mem, 32, 3, 5), e2 = eval_windows(mapped, 32, 3, 5);
  ASSERT_EQ(e1.size(), e2.size());
  for (size_t i = 0; i < e1.size(); ++i) EXPECT_EQ(e1[i].ids, e2[i].ids);
}

TEST(LanguageTaskTokenized, PreparedFolderBringsItsTokenizer) {
  Scratch d;
  const std::string corpus = write_text(d);
  data::PrepareOptions o;
  o.split = {0.9, 0.1};
  o.tokenizer = kBpe;
  const auto p = data::prepare_shards("text", {corpus}, d / "shards", o);
  EXPECT_EQ(p.vocab_size, 1001u);
  ASSERT_TRUE(fs::exists(d / "shards/tokenizer.json"));

  TaskSpec s = spec_for(d / "shards", "");
  LanguageTask t(s);  // no data.tokenizer: the folder's own
  EXPECT_EQ(t.tokenizer().name(), "bpe");
  EXPECT_EQ(t.splits(), (std::vector<std::string>{"train", "val"}));
  const auto tok = data::load_tokenizer(kBpe);
  EXPECT_EQ(tok->decode(t.split_tokens("train").all()) + tok->decode(t.split_tokens("val").all()), text());

  s.data.tokenizer = kBpe;  // the same tokenizer named again: fine
  EXPECT_NO_THROW(LanguageTask{s});
  s.data.tokenizer = "bytes";  // another one: refused, naming both
  const std::string m = error_of([&] { LanguageTask u(s); });
  EXPECT_NE(m.find("is not the tokenizer"), std::string::npos) << m;
  EXPECT_NE(m.find("shards"), std::string::npos) << m;

  // Byte shards stay byte shards.
  data::PrepareOptions ob;
  ob.split = {0.9, 0.1};
  const auto b = data::prepare_shards("text", {corpus}, d / "bytes", ob);
  EXPECT_EQ(b.vocab_size, 256u);
  LanguageTask bytes(spec_for(d / "bytes", ""));
  EXPECT_EQ(bytes.vocab_size(), 256);
  EXPECT_EQ(bytes.split_tokens("train").size() + bytes.split_tokens("val").size(), text().size());
}

TEST(LanguageTaskTokenized, BadTokenizersAreOneLineErrors) {
  Scratch d;
  const std::string corpus = write_text(d);
  TaskSpec s = spec_for(corpus, d / "missing");
  s.data_where["tokenizer"] = "x.yaml:7";
  std::string m = error_of([&] { LanguageTask t(s); });
  EXPECT_NE(m.find("x.yaml:7: data.tokenizer"), std::string::npos) << m;
  EXPECT_NE(m.find("missing"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;

  // A split too short in tokens says so in tokens.
  m = error_of([&] { LanguageTask t(spec_for(corpus, kBpe, 4000)); });
  EXPECT_NE(m.find("tokens"), std::string::npos) << m;

  // Prepared from another kind of data.
  m = error_of([&] { LanguageTask t(spec_for(d.path.string(), kBpe)); });
  EXPECT_NE(m.find("prepare text"), std::string::npos) << m;
}

}  // namespace
}  // namespace mk::tasks
