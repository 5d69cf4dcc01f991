// ArtifactStore: what a published file's stamp is, and when Verify takes an
// artifact on its stamp rather than hashing it again.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "store/artifacts.h"

using namespace sluice;
namespace fs = std::filesystem;

namespace {

class ArtifactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "work");
  }
  void TearDown() override {
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(dir_, ec))
      fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / "work" / name;
    std::ofstream(p) << text;
    return p.string();
  }
  engine::ArtifactRef Publish(const std::string& path) {
    auto a = store_.Publish(path, "file");
    EXPECT_TRUE(a.ok()) << a.status().message();
    return a.ok() ? *a : engine::ArtifactRef{};
  }

  fs::path dir_ = fs::temp_directory_path() / ("sluice-artifacts-" + std::to_string(::getpid()));
  store::ArtifactStore store_{(dir_ / "store").string()};
};

TEST_F(ArtifactStoreTest, APublishedFileHasTheStampOfItsStoredCopyAndAFolderHasNone) {
  engine::ArtifactRef a = Publish(Write("model.bin", "weights"));
  EXPECT_NE(a.stamp, "");
  EXPECT_EQ(a.stamp, store::StampOf(store_.PathOf(a.hash)));
  fs::create_directories(dir_ / "work" / "folder");
  std::ofstream(dir_ / "work" / "folder" / "x") << "x";
  auto folder = store_.Publish((dir_ / "work" / "folder").string(), "dir");
  ASSERT_TRUE(folder.ok());
  EXPECT_EQ(folder->stamp, "");
  EXPECT_TRUE(store_.Verify(*folder));
}

TEST_F(ArtifactStoreTest, AFileWhoseStampIsStillTheRecordedOneIsTakenOnItWithoutBeingHashed) {
  // A file in the store under a hash its content does not have: only its
  // stamp can make Verify say yes.
  std::string hash(64, 'a');
  fs::create_directories(dir_ / "store");
  std::ofstream(store_.PathOf(hash)) << "not what the hash says";
  engine::ArtifactRef a{hash, "file", 22, store_.PathOf(hash), store::StampOf(store_.PathOf(hash))};
  EXPECT_TRUE(store_.Verify(a));
  a.stamp.clear();
  EXPECT_FALSE(store_.Verify(a)) << "without a stamp it is hashed";
}

TEST_F(ArtifactStoreTest, AFileRewrittenWithItsSizeAndModificationTimeSetBackIsHashedAgainAndFoundChanged) {
  engine::ArtifactRef a = Publish(Write("data.csv", "1,2,3\n"));
  std::string path = store_.PathOf(a.hash);
  struct stat before;
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
  std::ofstream(path) << "9,9,9\n";  // the same size
  timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  EXPECT_NE(store::StampOf(path), a.stamp) << "its change time moved";
  EXPECT_FALSE(store_.Verify(a));
}

TEST_F(ArtifactStoreTest, AnArtifactRecordedWithoutAStampIsHashed) {
  engine::ArtifactRef a = Publish(Write("old.txt", "published before stamps"));
  a.stamp.clear();
  EXPECT_TRUE(store_.Verify(a));
  fs::remove(store_.PathOf(a.hash));
  EXPECT_FALSE(store_.Verify(a));
}

}  // namespace
