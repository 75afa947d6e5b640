// atomic_write: the target is either the old file or the complete new one,
// and no temporary file survives, whatever happens in the writer.
#include "mambakit/io/atomic_file.h"

#include <gtest/gtest.h>

#include "io_test_util.h"

namespace mk {
namespace {

using test::ScratchDir;
using test::slurp;
using test::throws_error;

TEST(AtomicFile, WritesAndReads) {
  ScratchDir dir;
  const std::string path = dir.file("a.txt");
  atomic_write_text(path, std::string("line\n\0binary", 12));
  EXPECT_EQ(read_text_file(path), std::string("line\n\0binary", 12));
  atomic_write_text(path, "second");
  EXPECT_EQ(read_text_file(path), "second");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"a.txt"});
}

TEST(AtomicFile, ThrowingWriterLeavesOldFileAndNoTemporary) {
  ScratchDir dir;
  const std::string path = dir.file("keep.bin");
  atomic_write_text(path, "old content");
  EXPECT_THROW(atomic_write(path,
                            [](std::ostream& os) {
                              os << "half of the new cont";
                              os.flush();
                              throw std::runtime_error("writer failed midway");
                            }),
               std::runtime_error);
  EXPECT_EQ(slurp(path), "old content");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"keep.bin"});
}

TEST(AtomicFile, ThrowingWriterCreatesNothingWhenNoOldFile) {
  ScratchDir dir;
  EXPECT_THROW(atomic_write(dir.file("new.bin"), [](std::ostream&) { throw Error("nope"); }), Error);
  EXPECT_TRUE(dir.list().empty());
}

TEST(AtomicFile, ErrorsNameTheFile) {
  ScratchDir dir;
  const std::string nodir = dir.file("no/such/dir/x.json");
  EXPECT_TRUE(throws_error([&] { atomic_write_text(nodir, "x"); }, {nodir, "cannot create"}));
  EXPECT_TRUE(throws_error([&] { read_text_file(dir.file("absent.txt")); }, {"absent.txt", "No such file"}));
  EXPECT_TRUE(throws_error([&] { read_text_file(dir.path()); }, {dir.path(), "directory"}));
}

}  // namespace
}  // namespace mk
