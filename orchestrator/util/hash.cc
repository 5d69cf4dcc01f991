#include "util/hash.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include <openssl/evp.h>

namespace sluice {

namespace {
// Fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up on every
// digest (a third of hashing a step's identity). Process-wide, never freed.
const EVP_MD* Sha256() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}
}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, Sha256(), nullptr);
  return HexEncode(digest, len);
}

Result<std::string> Sha256File(const std::string& path, FileHashOptions options) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (options.follow_links ? 0 : O_NOFOLLOW));
  if (fd < 0) return Status::FromErrno("open " + path, errno);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, Sha256(), nullptr);
  // A buffer the file's size, up to 1 MB, and not zeroed: clearing 1 MB
  // for a small file cost more than hashing it (a cached step verifies
  // each of its outputs).
  struct stat st {};
  size_t size = ::fstat(fd, &st) == 0 ? static_cast<size_t>(std::clamp<off_t>(st.st_size, 4096, 1 << 20)) : 1 << 20;
  auto buf = std::make_unique_for_overwrite<char[]>(size);
  ssize_t n;
  while ((n = ::read(fd, buf.get(), size)) > 0 || (n < 0 && errno == EINTR)) {
    if (n <= 0) continue;
    EVP_DigestUpdate(ctx, buf.get(), static_cast<size_t>(n));
    if (options.size) *options.size += n;
  }
  int read_errno = errno;
  ::close(fd);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  if (n < 0) return Status::FromErrno("read " + path, read_errno);
  return HexEncode(digest, len);
}

std::string HexEncode(const unsigned char* bytes, size_t n) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += hex[bytes[i] >> 4];
    out += hex[bytes[i] & 15];
  }
  return out;
}

}  // namespace sluice
