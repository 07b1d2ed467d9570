/* util.h — small helpers every module uses: checked allocation, array
 * length, attribute shorthands, monotonic time.
 *
 * Allocation failure aborts the process (like git's xmalloc and redis's
 * zmalloc): every caller can then treat allocation as infallible.
 */
#ifndef BHATTI_UTIL_H
#define BHATTI_UTIL_H

#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>
#include <stdbool.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED __attribute__((unused))
#define PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Monotonic clock in milliseconds / nanoseconds. */
uint64_t now_ms(void);
uint64_t now_ns(void);

/* Wall clock, seconds / milliseconds since the epoch. */
int64_t wall_sec(void);
int64_t wall_ms(void);

/* write() / read() that retry on EINTR and short counts on blocking fds.
 * Return 0 or negative errno. */
int write_all(int fd, const void *p, size_t n);
/* pwrite() until done. Returns 0 or negative errno. */
int write_all_at(int fd, const void *p, size_t n, off_t off);

/* Mark a descriptor non-blocking / close-on-exec. Return 0 or -errno. */
int fd_set_nonblock(int fd, bool on);
int fd_set_cloexec(int fd);

/* Connect a blocking, close-on-exec stream socket to a unix path.
 * Returns 0 or -errno (-ENOENT / -ECONNREFUSED while nobody listens yet;
 * -ENAMETOOLONG for a path that does not fit). */
int unix_connect(const char *path, int *ret_fd);

/* mkdir -p. mkdir_parents() makes every missing directory above path's
 * last component (mode 0755), giving each new one to uid:gid unless uid
 * is (uid_t)-1 (one it cannot chown stays as made). Returns 0 or -errno
 * (-ENOTDIR when one of them exists and is not a directory), with
 * *ret_len (may be NULL) the length of the prefix of path that failed.
 * mkdir_p() makes those and then path itself with mode (an existing path
 * is fine). */
int mkdir_parents(const char *path, uid_t uid, gid_t gid, size_t *ret_len);
int mkdir_p(const char *path, mode_t mode);

/* Count of NULL-terminated string vector; free one (accepts NULL). */
size_t strv_len(char *const *v);
void strv_free(char **v);
char **strv_dup(char *const *v);

#include "banned.h"
#endif
