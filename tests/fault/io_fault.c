/* An LD_PRELOAD shim that makes writes and syncs fail, for fault tests of the
 * real `sluice` binary: SQLite's I/O errors (the way SQLite's own test
 * harness injects them, but below the VFS, on the real file) and a full disk.
 *
 * It wraps write, pwrite, pwrite64, writev, fsync and fdatasync. An
 * operation counts when its file descriptor's path contains
 * SLUICE_FAULT_PATH (default "sluice.db", which covers -wal and -journal).
 *
 *   SLUICE_FAULT_AT=N          the Nth counted operation fails (1-based)...
 *   SLUICE_FAULT_ERRNO=EIO     ...with this errno (EIO or ENOSPC; EIO default)
 *   SLUICE_FAULT_STICKY=1      ...and every one after it too
 *   SLUICE_FAULT_FULL_AFTER=B  writes fail with ENOSPC once B bytes were written (a full disk)
 *   SLUICE_FAULT_COUNT_FILE=F  at exit, "<operations> <bytes>" counted is written to F
 *
 * Only processes that inherit LD_PRELOAD are affected; the tests run the
 * shimmed `sluice` and then check and resume the store without it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static const char* g_path = "sluice.db";
static long g_at = 0;
static int g_errno = EIO;
static int g_sticky = 0;
static long long g_full_after = -1;
static const char* g_count_file = NULL;
static atomic_long g_count;
static atomic_llong g_bytes;

__attribute__((constructor)) static void Init(void) {
  const char* v;
  if ((v = getenv("SLUICE_FAULT_PATH")) && *v) g_path = v;
  if ((v = getenv("SLUICE_FAULT_AT"))) g_at = atol(v);
  if ((v = getenv("SLUICE_FAULT_ERRNO")) && strcmp(v, "ENOSPC") == 0) g_errno = ENOSPC;
  if ((v = getenv("SLUICE_FAULT_STICKY"))) g_sticky = atoi(v);
  if ((v = getenv("SLUICE_FAULT_FULL_AFTER"))) g_full_after = atoll(v);
  g_count_file = getenv("SLUICE_FAULT_COUNT_FILE");
}

__attribute__((destructor)) static void Report(void) {
  if (!g_count_file) return;
  FILE* f = fopen(g_count_file, "w");
  if (!f) return;
  fprintf(f, "%ld %lld\n", atomic_load(&g_count), atomic_load(&g_bytes));
  fclose(f);
}

/* True if `fd` is a file the fault applies to. */
static int Watched(int fd) {
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  return strstr(path, g_path) != NULL;
}

/* 0 to go on, or -1 with errno set when this operation fails. */
static int Fault(int fd, size_t bytes) {
  if (!Watched(fd)) return 0;
  long n = atomic_fetch_add(&g_count, 1) + 1;
  if (g_at > 0 && (n == g_at || (g_sticky && n > g_at))) {
    errno = g_errno;
    return -1;
  }
  long long written = atomic_fetch_add(&g_bytes, (long long)bytes) + (long long)bytes;
  if (g_full_after >= 0 && bytes > 0 && written > g_full_after) {
    errno = ENOSPC;
    return -1;
  }
  return 0;
}

typedef ssize_t (*WriteFn)(int, const void*, size_t);
typedef ssize_t (*PwriteFn)(int, const void*, size_t, off_t);
typedef ssize_t (*Pwrite64Fn)(int, const void*, size_t, off64_t);
typedef ssize_t (*WritevFn)(int, const struct iovec*, int);
typedef int (*SyncFn)(int);

/* The next definition of `name` (libc's): looked up once. */
static void* Real(void** cache, const char* name) {
  if (!*cache) *cache = dlsym(RTLD_NEXT, name);
  return *cache;
}

ssize_t write(int fd, const void* buf, size_t count) {
  static void* real;
  if (Fault(fd, count)) return -1;
  return ((WriteFn)Real(&real, "write"))(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  static void* real;
  if (Fault(fd, count)) return -1;
  return ((PwriteFn)Real(&real, "pwrite"))(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t offset) {
  static void* real;
  if (Fault(fd, count)) return -1;
  return ((Pwrite64Fn)Real(&real, "pwrite64"))(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  static void* real;
  size_t bytes = 0;
  for (int i = 0; i < iovcnt; ++i) bytes += iov[i].iov_len;
  if (Fault(fd, bytes)) return -1;
  return ((WritevFn)Real(&real, "writev"))(fd, iov, iovcnt);
}

int fsync(int fd) {
  static void* real;
  if (Fault(fd, 0)) return -1;
  return ((SyncFn)Real(&real, "fsync"))(fd);
}

int fdatasync(int fd) {
  static void* real;
  if (Fault(fd, 0)) return -1;
  return ((SyncFn)Real(&real, "fdatasync"))(fd);
}
