/* fileops.c — the file worker thread (see fileops.h). The only thread
 * besides the event loop; it shares nothing with the loop but the job
 * queues (under one mutex) and an eventfd that wakes the loop when a job
 * is done.
 *
 * The daemon runs as root: a file it writes is made afresh (a leftover
 * temporary name is removed, then O_CREAT | O_EXCL), never through a
 * symlink (O_NOFOLLOW), and is 0600. The directories it is given are
 * root's and no one else's to write (qemu-jail.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atrest.h"
#include "buf.h"
#include "fileops.h"
#include "log.h"
#include "loop.h"

enum job_kind {
	JOB_COPY, JOB_FLUSH_DROP, JOB_REMOVE, JOB_SAVE_SNAPSHOT, JOB_LOAD_SNAPSHOT, JOB_FILL_MEM,
	JOB_WRITE, JOB_WRITE_DURABLE, JOB_COPY_GROW,
};

struct job {
	enum job_kind kind;
	char *a, *b, *c, *d;
	int fd;                       /* the device state (snapshot jobs; owned) */
	uint8_t key[ATREST_KEY_BYTES];
	bool keyed;
	uint64_t size;                /* JOB_COPY_GROW */
	fileop_done_fn done;
	void *arg;
	int rc;
	struct err err;
	struct job *next;
};

static struct {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *todo, **todo_tail;
	struct job *finished, **finished_tail;
	int efd;
	struct watch w;
	bool started;
} F = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* ---- the work itself (worker thread, or *_now on the caller's) ----------- */

/* A new file at path for writing, 0600: what was there (a leftover of a
 * crash) goes first; a symlink is never followed. */
static int create_new(const char *path)
{
	unlink(path);
	return open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

static bool page_is_zero(const char *p, size_t n)
{
	const uint64_t *q = (const uint64_t *)(const void *)p;
	for (size_t i = 0; i < n / 8; i++)
		if (q[i])
			return false;
	return true;
}

/* Copy buffers are on the heap, not __thread arrays: a 1 MiB TLS block is
 * zeroed by the loader at the start of every process that links this,
 * including every `bhatti` CLI command. */
#define COPY_CHUNK (1u << 20)

/* Copy [off, end) with pread/pwrite, leaving holes where whole 4 KiB pages
 * are zero: guest memory has many (freed, or zeroed on allocation), and a
 * hole costs neither a write now nor a read at restore. */
static int copy_range_rw(int in, int out, off_t off, off_t end, struct err *e)
{
	char *chunk = xmalloc(COPY_CHUNK);
	int rc = 0;
	while (off < end && rc == 0) {
		size_t want = (size_t)MIN((off_t)COPY_CHUNK, end - off);
		ssize_t n = pread(in, chunk, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = err_set(e, n < 0 ? errno : EIO, "read: %s",
				     n < 0 ? strerror(errno) : "short");
			break;
		}
		size_t i = 0, len = (size_t)n;
		while (i < len) {
			size_t pg = MIN((size_t)4096, len - i);
			if (page_is_zero(chunk + i, pg)) {
				i += pg;
				continue;
			}
			size_t j = i + pg;
			while (j < len && !page_is_zero(chunk + j, MIN((size_t)4096, len - j)))
				j += MIN((size_t)4096, len - j);
			if (write_all_at(out, chunk + i, j - i, off + (off_t)i) < 0) {
				rc = err_set(e, errno, "write: %s", strerror(errno));
				break;
			}
			i = j;
		}
		off += n;
	}
	free(chunk);
	return rc;
}

/* Copy only the data extents of in (holes stay holes in out). */
static int copy_extents(int in, int out, off_t size, struct err *e)
{
	off_t pos = 0;
	bool use_cfr = true;
	while (pos < size) {
		off_t data = lseek(in, pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break; /* only a hole is left */
			return err_set(e, errno, "seek: %s", strerror(errno));
		}
		off_t hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return err_set(e, errno, "seek: %s", strerror(errno));
		off_t off_in = data, off_out = data;
		while (use_cfr && off_in < hole) {
			ssize_t n = copy_file_range(in, &off_in, out, &off_out,
						    (size_t)(hole - off_in), 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
				      errno == EOPNOTSUPP)) {
				use_cfr = false;
				break;
			}
			if (n < 0)
				return err_set(e, errno, "copy: %s", strerror(errno));
			if (n == 0)
				break;
		}
		if (off_in < hole) {
			int r = copy_range_rw(in, out, off_in, hole, e);
			if (r < 0)
				return r;
		}
		pos = hole;
	}
	return 0;
}

int fileop_copy_now(const char *src, const char *dst, struct err *e)
{
	struct stat st;
	struct buf tmp = BUF_INIT;
	int in = -1, out = -1, r = 0;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		r = err_set(e, errno, "cannot read '%s': %s", src, strerror(errno));
		goto done;
	}
	buf_addf(&tmp, "%s.part", dst);
	out = create_new(tmp.data);
	if (out < 0) {
		r = err_set(e, errno, "cannot create '%s': %s", tmp.data, strerror(errno));
		goto done;
	}
	if (ioctl(out, FICLONE, in) < 0) {
		/* no reflink here (ext4, or across filesystems): copy the data */
		if (ftruncate(out, st.st_size) < 0) {
			r = err_set(e, errno, "cannot size '%s': %s", tmp.data, strerror(errno));
			goto done;
		}
		if ((r = copy_extents(in, out, st.st_size, e)) < 0) {
			err_prefix(e, "copying '%s'", src);
			goto done;
		}
	}
	if (rename(tmp.data, dst) < 0)
		r = err_set(e, errno, "cannot rename to '%s': %s", dst, strerror(errno));
done:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (r < 0 && tmp.len)
		unlink(tmp.data);
	buf_release(&tmp);
	return r;
}

/* resize2fs -f PATH (the filesystem is not mounted: a new sandbox's disk
 * before its first boot); its messages go to /dev/null, its exit code
 * decides. Run on the worker: waitpid for this pid only. */
static int resize_ext4(const char *path, struct err *e)
{
	static const char *const progs[] = { "/usr/sbin/resize2fs", "/sbin/resize2fs" };
	const char *prog = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(progs) && !prog; i++)
		if (access(progs[i], X_OK) == 0)
			prog = progs[i];
	if (!prog)
		return err_set(e, ENOENT, "cannot grow '%s': no resize2fs (Debian: e2fsprogs)", path);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	char *argv[] = { (char *)prog, (char *)"-f", (char *)path, NULL };
	char *envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	pid_t pid;
	int r = posix_spawn(&pid, prog, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return err_set(e, r, "cannot run %s: %s", prog, strerror(r));
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return err_set(e, errno, "waiting for %s: %s", prog, strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return err_set(e, EIO, "resize2fs of '%s' failed (status %d)", path, st);
	return 0;
}

int fileop_copy_grow_now(const char *src, const char *dst, uint64_t size, struct err *e)
{
	int r = fileop_copy_now(src, dst, e);
	if (r < 0)
		return r;
	struct stat st;
	if (stat(dst, &st) < 0)
		r = err_set(e, errno, "cannot stat '%s': %s", dst, strerror(errno));
	else if ((uint64_t)st.st_size < size && truncate(dst, (off_t)size) < 0)
		r = err_set(e, errno, "cannot grow '%s' to %llu bytes: %s", dst,
			    (unsigned long long)size, strerror(errno));
	else if ((uint64_t)st.st_size < size)
		r = resize_ext4(dst, e);
	if (r < 0)
		unlink(dst);
	return r;
}

/* Write [off, off+n) of buf to out, skipping pages equal to `ref` (or, with
 * no ref, pages that are all zero); runs of differing pages go out in one
 * pwrite, encrypted first (in buf) when m is given. */
static int write_changed(int out, char *buf, const char *ref, size_t n, off_t off,
			 struct atrest_mem *m, struct err *e)
{
	size_t i = 0;
	while (i < n) {
		size_t pg = MIN((size_t)4096, n - i);
		bool same = ref ? memcmp(buf + i, ref + i, pg) == 0 : page_is_zero(buf + i, pg);
		if (same) {
			i += pg;
			continue;
		}
		size_t j = i + pg;
		while (j < n) {
			size_t q = MIN((size_t)4096, n - j);
			if (ref ? memcmp(buf + j, ref + j, q) == 0 : page_is_zero(buf + j, q))
				break;
			j += q;
		}
		if (m)
			atrest_mem_seal(m, (uint8_t *)buf + i, j - i, (uint64_t)off + i);
		if (write_all_at(out, buf + i, j - i, off + (off_t)i) < 0)
			return err_set(e, errno, "write: %s", strerror(errno));
		i = j;
	}
	return 0;
}

static int read_full(int fd, char *buf, size_t n, off_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) { /* past the end: zeros */
			memset(buf + got, 0, n - got);
			break;
		}
		got += (size_t)r;
	}
	return 0;
}

/* One thread's share of a delta save: pages in [from, to) of mem. */
struct delta_part {
	int in, ref, out;
	off_t from, to;
	struct atrest_mem *m;    /* encrypting: NULL = plaintext */
	int rc;
	struct err err;
};

static void *delta_part_run(void *arg)
{
	struct delta_part *p = arg;
	char *a = xmalloc(1 << 20), *b = xmalloc(1 << 20);
	p->rc = 0;
	/* a hole in mem is zero, and so is base there (mem began as a copy of
	 * base that only skipped zero pages): only data extents can differ */
	for (off_t pos = p->from; pos < p->to && p->rc == 0;) {
		off_t data = lseek(p->in, pos, SEEK_DATA);
		if (data < 0 || data >= p->to)
			break;
		off_t hole = MIN(lseek(p->in, data, SEEK_HOLE), p->to);
		for (off_t off = data; off < hole && p->rc == 0;) {
			size_t n = (size_t)MIN((off_t)(1 << 20), hole - off);
			if (read_full(p->in, a, n, off) < 0 ||
			    (p->ref >= 0 && read_full(p->ref, b, n, off) < 0))
				p->rc = err_set(&p->err, errno, "read: %s", strerror(errno));
			else
				p->rc = write_changed(p->out, a, p->ref >= 0 ? b : NULL, n, off, p->m,
						      &p->err);
			off += (off_t)n;
		}
		pos = hole;
	}
	/* guest memory: no copy of it stays in the heap */
	sodium_memzero(a, 1 << 20);
	sodium_memzero(b, 1 << 20);
	free(a);
	free(b);
	return NULL;
}

/* The pages of mem that differ from base into out (sized already). The
 * compare reads ~100 MB twice: two threads (QEMU's vCPUs are stopped, so
 * the cores are free), each on half of the file, writing disjoint ranges
 * (the halves of an encrypted delta, atrest.h). */
static int save_delta(int in, int ref, int out, off_t size, struct atrest_mem *m, struct err *e)
{
	off_t mid = m ? (off_t)m->split : (size / 2) & ~(off_t)4095;
	struct delta_part parts[2] = {
		{ .in = in, .ref = ref, .out = out, .from = 0, .to = mid, .m = m },
		{ .in = in, .ref = ref, .out = out, .from = mid, .to = size, .m = m },
	};
	pthread_t second;
	bool threaded = pthread_create(&second, NULL, delta_part_run, &parts[1]) == 0;
	delta_part_run(&parts[0]);
	if (threaded)
		pthread_join(second, NULL);
	else
		delta_part_run(&parts[1]);
	for (int i = 0; i < 2; i++)
		if (parts[i].rc < 0) {
			if (e)
				*e = parts[i].err;
			return parts[i].rc;
		}
	return m ? atrest_mem_finish(m, out, e) : 0;
}

/* The device state (the len bytes of fd state) into out. */
static int save_state(int state, uint64_t len, int out, const struct atrest_keys *k,
		      const uint8_t *nonce, struct err *e)
{
	if (k)
		return atrest_state_seal(k, nonce, state, len, out, e);
	char *buf = xmalloc(COPY_CHUNK);
	int r = 0;
	for (uint64_t pos = 0; pos < len && r == 0;) {
		size_t n = (size_t)MIN((uint64_t)COPY_CHUNK, len - pos);
		if (read_full(state, buf, n, (off_t)pos) < 0 ||
		    write_all_at(out, buf, n, (off_t)pos) < 0)
			r = err_set(e, errno, "copying the device state: %s", strerror(errno));
		pos += n;
	}
	free(buf);
	return r;
}

static char *path_in(const char *dir, const char *name)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/%s", dir, name);
	return buf_detach(&b, NULL);
}

int fileop_save_snapshot_now(const char *mem, const char *base, int state_fd, const char *dir,
			     const uint8_t *key, struct err *e)
{
	struct stat st, sst;
	struct atrest_keys k;
	struct atrest_mem m;
	uint8_t nonce[ATREST_NONCE_BYTES];
	char *mem_part = path_in(dir, "mem.part"), *state_part = path_in(dir, "state.part");
	char *mem_dst = path_in(dir, "mem"), *state_dst = path_in(dir, "state");
	int in = -1, ref = -1, mout = -1, sout = -1, r = 0, renamed = 0;

	if (key) {
		atrest_keys_derive(&k, key);
		atrest_nonce_new(nonce);
	}
	if ((in = open(mem, O_RDONLY | O_CLOEXEC)) < 0 || fstat(in, &st) < 0) {
		r = err_set(e, errno, "cannot read '%s': %s", mem, strerror(errno));
		goto done;
	}
	if (base && (ref = open(base, O_RDONLY | O_CLOEXEC)) < 0) {
		r = err_set(e, errno, "cannot read the base '%s': %s", base, strerror(errno));
		goto done;
	}
	if (fstat(state_fd, &sst) < 0) {
		r = err_set(e, errno, "device state: %s", strerror(errno));
		goto done;
	}
	sout = create_new(state_part);
	if (sout < 0) {
		r = err_set(e, errno, "cannot create '%s': %s", state_part, strerror(errno));
		goto done;
	}
	if ((r = save_state(state_fd, (uint64_t)sst.st_size, sout, key ? &k : NULL, nonce, e)) < 0) {
		err_prefix(e, "writing '%s'", state_part);
		goto done;
	}
	off_t mem_file = key ? (off_t)atrest_mem_file_size((uint64_t)st.st_size) : st.st_size;
	mout = create_new(mem_part);
	if (mout < 0 || ftruncate(mout, mem_file) < 0) {
		r = err_set(e, errno, "cannot create '%s': %s", mem_part, strerror(errno));
		goto done;
	}
	if (key)
		atrest_mem_init(&m, &k, (uint64_t)st.st_size, nonce);
	r = save_delta(in, ref, mout, st.st_size, key ? &m : NULL, e);
	if (key)
		atrest_mem_release(&m);
	if (r < 0) {
		err_prefix(e, "writing '%s'", mem_part);
		goto done;
	}
	/* the memory first: the pair is complete once the state is there
	 * (and vm.json, written after, says so) */
	if (rename(mem_part, mem_dst) < 0 || (renamed = 1, rename(state_part, state_dst) < 0))
		r = err_set(e, errno, "cannot store the snapshot in '%s': %s", dir, strerror(errno));
done:
	if (in >= 0)
		close(in);
	if (ref >= 0)
		close(ref);
	if (mout >= 0)
		close(mout);
	if (sout >= 0)
		close(sout);
	if (r < 0) {
		/* nothing half-written stays to be trusted later */
		unlink(mem_part);
		unlink(state_part);
		if (renamed)
			unlink(mem_dst);
	}
	if (key)
		atrest_keys_wipe(&k);
	free(mem_part);
	free(state_part);
	free(mem_dst);
	free(state_dst);
	return r;
}

/* Copy the data pages of src into the open file out (zero pages skipped). */
static int copy_into(const char *src, int out, struct err *e)
{
	struct stat st;
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		int r = err_set(e, errno, "cannot read '%s': %s", src, strerror(errno));
		if (in >= 0)
			close(in);
		return r;
	}
	int r = copy_extents(in, out, st.st_size, e);
	close(in);
	return r;
}

/* A plaintext delta: every page of its data extents (zero pages too)
 * over what out holds. */
static int apply_plain(int in, off_t size, int out, struct err *e)
{
	char *a = xmalloc(COPY_CHUNK);
	int r = 0;
	for (off_t pos = 0; pos < size && r == 0;) {
		off_t data = lseek(in, pos, SEEK_DATA);
		if (data < 0)
			break;
		off_t hole = lseek(in, data, SEEK_HOLE);
		for (off_t off = data; off < hole && r == 0;) {
			size_t n = (size_t)MIN((off_t)COPY_CHUNK, hole - off);
			if (read_full(in, a, n, off) < 0 || write_all_at(out, a, n, off) < 0)
				r = err_set(e, errno, "applying the delta: %s", strerror(errno));
			off += (off_t)n;
		}
		pos = hole;
	}
	sodium_memzero(a, COPY_CHUNK);
	free(a);
	return r;
}

/* An encrypted delta: the pages its bitmap names, decrypted, over what out
 * (mem_size bytes) holds; then the tag. ret_nonce: the snapshot's. */
static int apply_encrypted(int in, off_t file_size, int out, off_t mem_size,
			   const struct atrest_keys *k, uint8_t ret_nonce[ATREST_NONCE_BYTES],
			   struct err *e)
{
	struct atrest_mem m;
	int r = atrest_mem_load(&m, k, in, (uint64_t)file_size, (uint64_t)mem_size, e);
	if (r < 0)
		return r;
	uint64_t pages = m.size / ATREST_PAGE, max = COPY_CHUNK / ATREST_PAGE;
	uint8_t *a = xmalloc(COPY_CHUNK);
	for (uint64_t pg = 0; pg < pages && r == 0;) {
		if (!atrest_mem_written(&m, pg)) {
			pg++;
			continue;
		}
		/* a run of written pages, within one half, at most a chunk */
		uint64_t end = pg + 1;
		while (end < pages && end - pg < max && atrest_mem_written(&m, end) &&
		       (end * ATREST_PAGE != m.split))
			end++;
		size_t n = (size_t)((end - pg) * ATREST_PAGE);
		uint64_t off = pg * ATREST_PAGE;
		if (read_full(in, (char *)a, n, (off_t)off) < 0)
			r = err_set(e, errno, "reading the delta: %s", strerror(errno));
		else if (atrest_mem_open(&m, a, n, off), write_all_at(out, a, n, (off_t)off) < 0)
			r = err_set(e, errno, "applying the delta: %s", strerror(errno));
		pg = end;
	}
	if (r == 0)
		r = atrest_mem_verify(&m, e);
	if (r == 0)
		memcpy(ret_nonce, m.nonce, ATREST_NONCE_BYTES);
	sodium_memzero(a, COPY_CHUNK);
	free(a);
	atrest_mem_release(&m);
	return r;
}

/* The memory file mem (existing, sized, all zero or holding base already)
 * gets base's pages (if base) and then the delta's (if delta). */
static int fill_mem(const char *base, const char *delta, const char *mem,
		    const struct atrest_keys *k, uint8_t ret_nonce[ATREST_NONCE_BYTES],
		    struct err *e)
{
	struct stat st, mst;
	int in = -1, out = -1, r = 0;

	if (delta && ((in = open(delta, O_RDONLY | O_CLOEXEC)) < 0 || fstat(in, &st) < 0)) {
		r = err_set(e, errno, "cannot read '%s': %s", delta, strerror(errno));
		goto done;
	}
	if ((out = open(mem, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(out, &mst) < 0) {
		r = err_set(e, errno, "cannot write '%s': %s", mem, strerror(errno));
		goto done;
	}
	if (base && (r = copy_into(base, out, e)) < 0)
		goto done;
	if (delta && k) {
		r = apply_encrypted(in, st.st_size, out, mst.st_size, k, ret_nonce, e);
	} else if (delta) {
		if (st.st_size != mst.st_size)
			r = err_set(e, EBADMSG, "'%s' is no memory snapshot of %lld MB", delta,
				    (long long)(mst.st_size >> 20));
		else
			r = apply_plain(in, st.st_size, out, e);
	}
done:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

int fileop_fill_mem_now(const char *base, const char *mem, struct err *e)
{
	return fill_mem(base, NULL, mem, NULL, NULL, e);
}

/* The device state file into the fd QEMU reads (from offset 0). */
static int load_state(const char *path, int state_fd, const struct atrest_keys *k,
		      uint8_t ret_nonce[ATREST_NONCE_BYTES], struct err *e)
{
	struct stat st;
	int in = open(path, O_RDONLY | O_CLOEXEC), r;
	if (in < 0 || fstat(in, &st) < 0) {
		r = err_set(e, errno, "cannot read '%s': %s", path, strerror(errno));
	} else if (k) {
		r = atrest_state_open(k, in, (uint64_t)st.st_size, state_fd, ret_nonce, e);
	} else {
		r = save_state(in, (uint64_t)st.st_size, state_fd, NULL, NULL, e);
	}
	if (in >= 0)
		close(in);
	return r;
}

int fileop_load_snapshot_now(const char *state, const char *delta, const char *base,
			     const char *mem, int state_fd, const uint8_t *key, struct err *e)
{
	struct atrest_keys k;
	uint8_t sn[ATREST_NONCE_BYTES], mn[ATREST_NONCE_BYTES];
	if (key)
		atrest_keys_derive(&k, key);
	int r = load_state(state, state_fd, key ? &k : NULL, sn, e);
	if (r == 0)
		r = fill_mem(base, delta, mem, key ? &k : NULL, mn, e);
	if (r == 0 && key && sodium_memcmp(sn, mn, sizeof(sn)) != 0)
		r = err_set(e, EBADMSG, "the memory and the device state are of different "
			    "snapshots");
	if (key)
		atrest_keys_wipe(&k);
	return r;
}

static int write_file(const char *path, const char *text, bool durable, struct err *e)
{
	struct buf tmp = BUF_INIT;
	buf_addf(&tmp, "%s.tmp", path);
	int fd = create_new(tmp.data);
	int r = 0;
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || (durable && fdatasync(fd) < 0) ||
	    rename(tmp.data, path) < 0)
		r = err_set(e, errno, "cannot write '%s': %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (r == 0 && durable) {
		char *dir = xstrdup(path);
		char *slash = strrchr(dir, '/');
		if (slash) {
			*slash = '\0';
			int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd >= 0) {
				fsync(dfd);
				close(dfd);
			}
		}
		free(dir);
	}
	if (r < 0)
		unlink(tmp.data);
	buf_release(&tmp);
	return r;
}

static int flush_drop(const char *path, struct err *e)
{
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "cannot open '%s': %s", path, strerror(errno));
	int r = 0;
	if (fdatasync(fd) < 0)
		r = err_set(e, errno, "fdatasync '%s': %s", path, strerror(errno));
	else
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return r;
}

static int remove_at(int at, const char *name, struct err *e)
{
	struct stat st;
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : err_set(e, errno, "stat '%s': %s", name, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(at, name, 0) < 0 && errno != ENOENT)
			return err_set(e, errno, "cannot remove '%s': %s", name, strerror(errno));
		return 0;
	}
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "cannot open '%s': %s", name, strerror(errno));
	DIR *d = fdopendir(fd);
	struct dirent *de;
	int r = 0;
	while (d && (de = readdir(d)) && r == 0) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = remove_at(dirfd(d), de->d_name, e);
	}
	if (d)
		closedir(d);
	if (r == 0 && unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = err_set(e, errno, "cannot remove '%s': %s", name, strerror(errno));
	return r;
}

int fileop_remove_tree_now(const char *path, struct err *e)
{
	if (path[0] != '/' || strcmp(path, "/") == 0)
		return err_set(e, EINVAL, "refusing to remove '%s'", path);
	return remove_at(AT_FDCWD, path, e);
}

uint64_t file_allocated(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* ---- the worker ------------------------------------------------------------ */

static void *worker(void *unused UNUSED)
{
	for (;;) {
		pthread_mutex_lock(&F.mu);
		while (!F.todo)
			pthread_cond_wait(&F.cv, &F.mu);
		struct job *j = F.todo;
		F.todo = j->next;
		if (!F.todo)
			F.todo_tail = &F.todo;
		pthread_mutex_unlock(&F.mu);

		switch (j->kind) {
		case JOB_COPY: j->rc = fileop_copy_now(j->a, j->b, &j->err); break;
		case JOB_FLUSH_DROP: j->rc = flush_drop(j->a, &j->err); break;
		case JOB_REMOVE: j->rc = fileop_remove_tree_now(j->a, &j->err); break;
		case JOB_SAVE_SNAPSHOT:
			j->rc = fileop_save_snapshot_now(j->a, j->b, j->fd, j->c,
							 j->keyed ? j->key : NULL, &j->err);
			break;
		case JOB_LOAD_SNAPSHOT:
			j->rc = fileop_load_snapshot_now(j->a, j->b, j->c, j->d, j->fd,
							 j->keyed ? j->key : NULL, &j->err);
			break;
		case JOB_FILL_MEM: j->rc = fileop_fill_mem_now(j->a, j->b, &j->err); break;
		case JOB_WRITE: j->rc = write_file(j->a, j->b, false, &j->err); break;
		case JOB_WRITE_DURABLE: j->rc = write_file(j->a, j->b, true, &j->err); break;
		case JOB_COPY_GROW: j->rc = fileop_copy_grow_now(j->a, j->b, j->size, &j->err); break;
		}

		pthread_mutex_lock(&F.mu);
		j->next = NULL;
		*F.finished_tail = j;
		F.finished_tail = &j->next;
		pthread_mutex_unlock(&F.mu);
		uint64_t one = 1;
		if (write(F.efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow in practice */
		}
	}
	return NULL;
}

static void on_finished(struct watch *w, uint32_t events UNUSED)
{
	uint64_t n;
	if (read(w->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("fileops eventfd: %s", strerror(errno));
	pthread_mutex_lock(&F.mu);
	struct job *list = F.finished;
	F.finished = NULL;
	F.finished_tail = &F.finished;
	pthread_mutex_unlock(&F.mu);
	while (list) {
		struct job *j = list;
		list = j->next;
		if (j->done)
			j->done(j->rc, j->rc < 0 ? &j->err : NULL, j->arg);
		if (j->fd >= 0)
			close(j->fd);
		sodium_memzero(j->key, sizeof(j->key));
		free(j->a);
		free(j->b);
		free(j->c);
		free(j->d);
		free(j);
	}
}

int fileops_init(struct err *e)
{
	if (F.started)
		return 0;
	F.todo_tail = &F.todo;
	F.finished_tail = &F.finished;
	F.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (F.efd < 0)
		return err_set(e, errno, "eventfd: %s", strerror(errno));
	watch_init(&F.w, on_finished, NULL);
	int r = watch_add(&F.w, F.efd, EPOLLIN);
	if (r < 0)
		return err_set(e, -r, "epoll: %s", strerror(-r));
	/* the worker must not take the loop's signals */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = pthread_create(&F.thread, NULL, worker, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		return err_set(e, r, "cannot start the file worker: %s", strerror(r));
	pthread_detach(F.thread);
	F.started = true;
	return 0;
}

static struct job *job_new(enum job_kind kind, const char *a, const char *b, const char *c,
			   const char *d, fileop_done_fn done, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->kind = kind;
	j->a = a ? xstrdup(a) : NULL;
	j->b = b ? xstrdup(b) : NULL;
	j->c = c ? xstrdup(c) : NULL;
	j->d = d ? xstrdup(d) : NULL;
	j->fd = -1;
	j->done = done;
	j->arg = arg;
	return j;
}

static void job_submit(struct job *j)
{
	pthread_mutex_lock(&F.mu);
	*F.todo_tail = j;
	F.todo_tail = &j->next;
	pthread_cond_signal(&F.cv);
	pthread_mutex_unlock(&F.mu);
}

static void submit(enum job_kind kind, const char *a, const char *b, fileop_done_fn done,
		   void *arg)
{
	job_submit(job_new(kind, a, b, NULL, NULL, done, arg));
}

/* A job with the device state's fd (a duplicate the job closes: if it
 * cannot be made, the job fails on the worker, in order with the others)
 * and a copy of the key (wiped with the job). */
static void submit_snapshot(struct job *j, int state_fd, const uint8_t *key)
{
	j->fd = fcntl(state_fd, F_DUPFD_CLOEXEC, 0);
	if (key) {
		memcpy(j->key, key, sizeof(j->key));
		j->keyed = true;
	}
	job_submit(j);
}

void fileop_save_snapshot(const char *mem, const char *base, int state_fd, const char *dir,
			  const uint8_t *key, fileop_done_fn done, void *arg)
{
	submit_snapshot(job_new(JOB_SAVE_SNAPSHOT, mem, base, dir, NULL, done, arg), state_fd, key);
}

void fileop_load_snapshot(const char *state, const char *delta, const char *base,
			  const char *mem, int state_fd, const uint8_t *key,
			  fileop_done_fn done, void *arg)
{
	submit_snapshot(job_new(JOB_LOAD_SNAPSHOT, state, delta, base, mem, done, arg), state_fd,
			key);
}

void fileop_fill_mem(const char *base, const char *mem, fileop_done_fn done, void *arg)
{
	submit(JOB_FILL_MEM, base, mem, done, arg);
}

void fileop_copy(const char *src, const char *dst, fileop_done_fn done, void *arg)
{
	submit(JOB_COPY, src, dst, done, arg);
}

void fileop_copy_grow(const char *src, const char *dst, uint64_t size, fileop_done_fn done,
		      void *arg)
{
	struct job *j = job_new(JOB_COPY_GROW, src, dst, NULL, NULL, done, arg);
	j->size = size;
	job_submit(j);
}

void fileop_write(const char *path, const char *text, bool durable, fileop_done_fn done,
		  void *arg)
{
	submit(durable ? JOB_WRITE_DURABLE : JOB_WRITE, path, text, done, arg);
}

void fileop_flush_drop(const char *path, fileop_done_fn done, void *arg)
{
	submit(JOB_FLUSH_DROP, path, NULL, done, arg);
}

void fileop_remove_tree(const char *path, fileop_done_fn done, void *arg)
{
	submit(JOB_REMOVE, path, NULL, done, arg);
}
