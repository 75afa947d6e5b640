// manifest.json of a prepared shard directory (open_prepared): the JSON
// fields and their cross-checks against the shards, which are real and
// valid (train/val.mkshard, 64 text tokens each, written once).
#include <filesystem>

#include "fuzz_common.h"
#include "mambakit/datasets/shards.h"

namespace {

const std::string& shard_dir() {
  static const std::string dir = [] {
    const std::string d = fuzz::scratch_dir() + "/shards";
    std::filesystem::create_directories(d);
    for (const char* split : {"train", "val"}) {
      mk::data::ShardWriter w(d + "/" + split + ".mkshard", "text", 256, mk::data::TokenDtype::U8);
      std::vector<int32_t> ids(64);
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t('a' + i % 26);
      w.append(ids.data(), ids.size());
      w.finish();
    }
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = shard_dir();
  const std::string path = fuzz::write_file("shards/manifest.json", data, size);
  try {
    const mk::data::PreparedShards p = mk::data::open_prepared(dir);
    for (const auto& s : p.splits) mk::data::ShardReader(p.files.at(s), true);
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, "");
  }
  return 0;
}
