// Sha256File (util/hash.h): a file's digest is the digest of its bytes,
// whatever its size against the block it is read in.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "util/hash.h"

namespace sluice {
namespace {

TEST(HashTest, AFilesDigestIsItsBytesDigestAtEverySizeAroundTheBlocksLimits) {
  std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("sluice-hash-test-" + std::to_string(::getpid()));
  for (size_t size : {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{4097}, size_t{1} << 20,
                      (size_t{1} << 20) + 1, (size_t{3} << 20) + 7}) {
    std::string bytes(size, '\0');
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(i * 131 + i / 4096);
    std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(size));
    int64_t read = 0;
    auto digest = Sha256File(file.string(), {.size = &read});
    ASSERT_TRUE(digest.ok()) << digest.status().message();
    EXPECT_EQ(*digest, Sha256Hex(bytes)) << size << " bytes";
    EXPECT_EQ(read, static_cast<int64_t>(size));
  }
  std::filesystem::remove(file);
}

TEST(HashTest, AFileThatCannotBeOpenedIsAnErrorNamingIt) {
  auto digest = Sha256File("/nonexistent/sluice-hash-test");
  ASSERT_FALSE(digest.ok());
  EXPECT_NE(digest.status().message().find("/nonexistent/sluice-hash-test"), std::string::npos);
}

}  // namespace
}  // namespace sluice
