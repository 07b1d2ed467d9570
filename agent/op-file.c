/* op-file.c — file operations inside the guest: streamed read (with line
 * offset/limit and a byte cap), atomic write, stat and a capped directory
 * listing. Sits between streams (conn.c) and the guest filesystem.
 *
 * Writes go to a temporary file in the target's directory, are fsync'ed
 * and renamed over the target, then the directory is fsync'ed: a reader
 * sees the old content or the new, never a mix, and a crash leaves one or
 * the other. A write that fails, is cancelled, or loses its host removes
 * the temporary file.
 *
 * Whose permissions: every file request works with uid/gid 1000's file
 * permissions (agent.uid/gid), as exec runs commands, unless it carries
 * PROTO_FILE_ROOT. lohar has one thread, so around each filesystem call
 * it switches its filesystem ids (setfsuid/setfsgid: while the fsuid is
 * not 0 the kernel also drops the capabilities that bypass permission
 * checks) and switches back before it returns to the loop (fs_enter,
 * fs_leave). What a write creates is then owned by 1000 without a chown.
 * lohar keeps no supplementary groups when it switches users (main.c), so
 * root's groups never count for 1000.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

/* ---- helpers ------------------------------------------------------------- */

static uint8_t file_type_of(mode_t m)
{
	if (S_ISREG(m))
		return PROTO_FT_FILE;
	if (S_ISDIR(m))
		return PROTO_FT_DIR;
	if (S_ISLNK(m))
		return PROTO_FT_LINK;
	return PROTO_FT_OTHER;
}

static void meta_of(const struct stat *st, struct proto_file_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->type = file_type_of(st->st_mode);
	m->mode = st->st_mode & 07777;
	m->size = (uint64_t)st->st_size;
	m->mtime = (int64_t)st->st_mtime;
	m->uid = st->st_uid;
	m->gid = st->st_gid;
}

/* ---- whose permissions (see the top of the file) ------------------------- */

static void fs_leave(bool entered)
{
	if (entered) {
		setfsuid(geteuid());
		setfsgid(getegid());
	}
}

/* Take uid/gid 1000's file permissions unless the request asked for root
 * (or lohar is not root: test mode with --user self). *ret_entered says
 * whether to fs_leave(); -EPERM when the switch did not take. */
static int fs_enter(uint32_t flags, bool *ret_entered, struct err *e)
{
	*ret_entered = false;
	if ((flags & PROTO_FILE_ROOT) || !agent.switch_user)
		return 0;
	setfsgid(agent.gid);
	setfsuid(agent.uid);
	*ret_entered = true;
	/* an id of -1 changes nothing and returns the current one */
	if ((uid_t)setfsuid((uid_t)-1) != agent.uid || (gid_t)setfsgid((gid_t)-1) != agent.gid) {
		fs_leave(true);
		*ret_entered = false;
		return err_set(e, EPERM, "cannot take the file permissions of uid %u",
			       (unsigned)agent.uid);
	}
	return 0;
}

/* mkdir -p of path's parent directory; new directories get uid/gid. */
static int make_parents(const char *path, uid_t uid, gid_t gid, struct err *e)
{
	size_t at = 0;
	int r = mkdir_parents(path, uid, gid, &at);
	if (r == -ENOTDIR)
		return err_set(e, ENOTDIR, "'%.*s' is not a directory", (int)at, path);
	if (r < 0)
		return err_set(e, -r, "cannot create directory '%.*s': %s", (int)at, path,
			       strerror(-r));
	return 0;
}

static void fsync_dir_of(const char *path)
{
	char *dup = xstrdup(path);
	int fd = open(dirname(dup), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dup);
}

/* ---- atomic write ---------------------------------------------------------- */

struct atomic_file {
	char *path;
	char *tmp;
	int fd;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

static int atomic_begin(struct atomic_file *af, const char *path, uint32_t mode,
			uid_t uid, gid_t gid, struct err *e)
{
	struct stat st;
	size_t len = strlen(path);

	memset(af, 0, sizeof(*af));
	af->fd = -1;
	if (len == 0 || path[len - 1] == '/')
		return err_set(e, EISDIR, "'%s' is a directory", path);
	if (lstat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return err_set(e, EISDIR, "'%s' is a directory", path);
		if (!mode && S_ISREG(st.st_mode))
			mode = st.st_mode & 07777; /* keep an existing file's mode */
	}
	int r = make_parents(path, uid, gid, e);
	if (r < 0)
		return r;
	char *dup = xstrdup(path);
	char *base = basename(dup);
	struct buf tmp = BUF_INIT;
	buf_add(&tmp, path, len - strlen(base));
	buf_addf(&tmp, ".%s.bhatti-XXXXXX", base);
	free(dup);
	af->fd = mkostemp(tmp.data, O_CLOEXEC);
	if (af->fd < 0) {
		r = err_set(e, errno, "cannot create a file next to '%s': %s", path, strerror(errno));
		buf_release(&tmp);
		return r;
	}
	af->tmp = buf_detach(&tmp, NULL);
	af->path = xstrdup(path);
	af->mode = mode ? mode : 0644;
	af->uid = uid;
	af->gid = gid;
	return 0;
}

static void atomic_abort(struct atomic_file *af)
{
	if (af->fd >= 0)
		close(af->fd);
	if (af->tmp)
		unlink(af->tmp);
	free(af->tmp);
	free(af->path);
	memset(af, 0, sizeof(*af));
	af->fd = -1;
}

static int atomic_write(struct atomic_file *af, const void *p, size_t n, struct err *e)
{
	int r = write_all(af->fd, p, n);
	if (r < 0)
		return err_set(e, -r, "cannot write '%s': %s", af->path, strerror(-r));
	return 0;
}

/* durable: fsync the file and its directory, so the new content survives a
 * crash. Without it the rename is still atomic for readers. */
static int atomic_commit(struct atomic_file *af, bool durable, struct err *e)
{
	int r = 0;
	if (fchmod(af->fd, af->mode) < 0)
		r = err_set(e, errno, "chmod '%s': %s", af->path, strerror(errno));
	else if (af->uid != (uid_t)-1 && fchown(af->fd, af->uid, af->gid) < 0)
		r = err_set(e, errno, "chown '%s': %s", af->path, strerror(errno));
	else if (durable && fsync(af->fd) < 0)
		r = err_set(e, errno, "fsync '%s': %s", af->path, strerror(errno));
	if (r < 0) {
		atomic_abort(af);
		return r;
	}
	close(af->fd);
	af->fd = -1;
	if (rename(af->tmp, af->path) < 0) {
		r = err_set(e, errno, "cannot replace '%s': %s", af->path, strerror(errno));
		atomic_abort(af);
		return r;
	}
	if (durable)
		fsync_dir_of(af->path);
	free(af->tmp);
	free(af->path);
	memset(af, 0, sizeof(*af));
	af->fd = -1;
	return 0;
}

int op_file_write_atomic(const char *path, const void *data, size_t len,
		      uint32_t mode, uid_t uid, gid_t gid, bool durable, struct err *e)
{
	struct atomic_file af;
	int r = atomic_begin(&af, path, mode, uid, gid, e);
	if (r < 0)
		return r;
	r = atomic_write(&af, data, len, e);
	if (r < 0) {
		atomic_abort(&af);
		return r;
	}
	return atomic_commit(&af, durable, e);
}

/* ---- FILE_WRITE ------------------------------------------------------------ */

struct fwrite {
	struct atomic_file af;
	uint32_t flags;            /* the request's: PROTO_FILE_ROOT */
	uint64_t expected;         /* or PROTO_FILE_SIZE_UNKNOWN */
	uint64_t written;
};

static void fwrite_free(struct fwrite *w)
{
	atomic_abort(&w->af);
	free(w);
}

static void fwrite_fail(struct stream *s, int code, const char *msg)
{
	struct fwrite *w = s->op;
	stream_detach_op(s);
	fwrite_free(w);
	stream_end_error(s, code, "%s", msg);
}

static void fw_data(struct stream *s, uint8_t channel, const uint8_t *p, size_t n)
{
	struct fwrite *w = s->op;
	struct err e = ERR_INIT;
	char msg[ERR_MSG_MAX];

	if (channel != PROTO_CH_IN) {
		stream_consumed(s, n);
		return;
	}
	if (w->written + n > AGENT_MAX_WRITE) {
		snprintf(msg, sizeof(msg), "file too large: writes are limited to %llu MB",
			 AGENT_MAX_WRITE >> 20);
		fwrite_fail(s, EFBIG, msg);
		return;
	}
	if (w->expected != PROTO_FILE_SIZE_UNKNOWN && w->written + n > w->expected) {
		snprintf(msg, sizeof(msg), "more data than the announced %llu bytes",
			 (unsigned long long)w->expected);
		fwrite_fail(s, EPROTO, msg);
		return;
	}
	if (atomic_write(&w->af, p, n, &e) < 0) {
		fwrite_fail(s, e.code, err_str(&e));
		return;
	}
	w->written += n;
	stream_consumed(s, n);
}

static void fw_eof(struct stream *s, uint8_t channel)
{
	struct fwrite *w = s->op;
	struct err e = ERR_INIT;
	char msg[ERR_MSG_MAX];

	if (channel != PROTO_CH_IN)
		return;
	if (w->expected != PROTO_FILE_SIZE_UNKNOWN && w->written != w->expected) {
		snprintf(msg, sizeof(msg), "short write: got %llu of %llu bytes",
			 (unsigned long long)w->written, (unsigned long long)w->expected);
		fwrite_fail(s, EPROTO, msg);
		return;
	}
	/* the rename over the target needs the request's permissions too */
	bool entered;
	int r = fs_enter(w->flags, &entered, &e);
	if (r == 0)
		r = atomic_commit(&w->af, true, &e);
	fs_leave(entered);
	if (r < 0) {
		fwrite_fail(s, e.code, err_str(&e));
		return;
	}
	struct proto_ok ok = { .bytes = w->written };
	stream_detach_op(s);
	fwrite_free(w);
	stream_end(s, PROTO_OK, &ok);
}

static void fw_close(struct stream *s)
{
	fwrite_fail(s, ECANCELED, "write cancelled; the file is unchanged");
}

static void fw_lost(struct stream *s)
{
	fwrite_free(s->op);
}

static const struct stream_ops fwrite_ops = {
	.data = fw_data,
	.eof = fw_eof,
	.close = fw_close,
	.lost = fw_lost,
};

void op_file_write(struct stream *s, const struct proto_frame *f)
{
	struct proto_file_write req;
	struct err e = ERR_INIT;

	if (op_decode(s, f, &req) < 0)
		return;
	char *path = agent_resolve_path(req.path);
	if (!req.path[0]) {
		stream_end_error(s, EINVAL, "empty path");
	} else if (req.size != PROTO_FILE_SIZE_UNKNOWN && req.size > AGENT_MAX_WRITE) {
		stream_end_error(s, EFBIG, "file too large: %llu bytes (writes are limited to %llu MB)",
				 (unsigned long long)req.size, AGENT_MAX_WRITE >> 20);
	} else if (req.mode > 07777) {
		stream_end_error(s, EINVAL, "invalid mode %o", req.mode);
	} else {
		struct fwrite *w = xcalloc(1, sizeof(*w));
		bool entered;
		/* what it creates is owned by whoever's permissions it has */
		int r = fs_enter(req.flags, &entered, &e);
		if (r == 0)
			r = atomic_begin(&w->af, path, req.mode, (uid_t)-1, (gid_t)-1, &e);
		fs_leave(entered);
		if (r < 0) {
			free(w);
			stream_end_error(s, e.code, "%s", err_str(&e));
		} else {
			w->flags = req.flags;
			w->expected = req.size;
			s->ops = &fwrite_ops;
			s->op = w;
			agent_touch();
		}
	}
	free(path);
	proto_msg_release(PROTO_FILE_WRITE, &req);
}

/* ---- FILE_READ ----------------------------------------------------------------- */

struct fread {
	struct stream *s;
	int fd;
	char *path;            /* as the host named it, for messages */
	uint64_t skip;         /* lines still to skip */
	uint64_t lines_left;   /* lines still to send, when limited */
	bool limited;
	uint64_t bytes_left;   /* byte cap still available, when capped */
	bool capped;
	uint64_t sent;
	bool truncated;
	struct task pump;
};

static void fread_free(void *p)
{
	struct fread *r = p;
	if (r->fd >= 0)
		close(r->fd);
	free(r->path);
	free(r);
}

static void fread_destroy(struct fread *r)
{
	task_cancel(&r->pump);
	if (r->s)
		stream_detach_op(r->s);
	r->s = NULL;
	loop_defer_free(fread_free, r);
}

static void fread_finish(struct fread *r)
{
	struct proto_ok ok = { .bytes = r->sent, .flags = r->truncated ? PROTO_OK_TRUNCATED : 0 };
	struct stream *s = r->s;
	fread_destroy(r);
	stream_end(s, PROTO_OK, &ok);
}

/* Is there anything after the current offset? (for the truncation flag) */
static bool more_to_read(int fd)
{
	char c;
	off_t at = lseek(fd, 0, SEEK_CUR);
	if (at < 0)
		return true; /* a pipe or device: assume so */
	return pread(fd, &c, 1, at) == 1;
}

static void fread_pump(struct task *t)
{
	struct fread *r = t->data;
	char chunk[PROTO_DATA_CHUNK];
	size_t room = stream_room(r->s);

	if (!room)
		return; /* fr_window posts us again */
	ssize_t n = read(r->fd, chunk, room);
	if (n < 0 && errno == EINTR) {
		task_post(&r->pump);
		return;
	}
	if (n < 0) {
		struct stream *s = r->s;
		int code = errno;
		char msg[ERR_MSG_MAX];
		if (code == EAGAIN)
			snprintf(msg, sizeof(msg),
				 "nothing to read: '%s' is a pipe or device that would block", r->path);
		else
			snprintf(msg, sizeof(msg), "read failed: %s", strerror(code));
		fread_destroy(r);
		stream_end_error(s, code, "%s", msg);
		return;
	}
	if (n == 0) {
		fread_finish(r);
		return;
	}
	const char *p = chunk;
	size_t len = (size_t)n;
	while (r->skip && len) {
		const char *nl = memchr(p, '\n', len);
		if (!nl) {
			len = 0;
			break;
		}
		len -= (size_t)(nl + 1 - p);
		p = nl + 1;
		r->skip--;
	}
	bool done = false;
	if (r->limited && len) {
		size_t keep = 0;
		while (keep < len && r->lines_left) {
			const char *nl = memchr(p + keep, '\n', len - keep);
			if (!nl) {
				keep = len;
				break;
			}
			keep = (size_t)(nl + 1 - p);
			r->lines_left--;
		}
		if (!r->lines_left) {
			len = keep;
			done = true;
		}
	}
	if (r->capped && len >= r->bytes_left) {
		/* Cut by the byte cap: truncated when content we would otherwise
		 * have sent is left (not when the line limit ended it anyway). */
		r->truncated = len > r->bytes_left || (!done && more_to_read(r->fd));
		len = (size_t)r->bytes_left;
		done = true;
	}
	if (len) {
		stream_data(r->s, PROTO_CH_OUT, p, len);
		r->sent += len;
		if (r->capped)
			r->bytes_left -= len;
	}
	if (done)
		fread_finish(r);
	else
		task_post(&r->pump);
}

static void fr_window(struct stream *s)
{
	struct fread *r = s->op;
	task_post(&r->pump);
}

static void fr_close(struct stream *s)
{
	struct fread *r = s->op;
	fread_destroy(r);
	stream_end_error(s, ECANCELED, "read cancelled");
}

static void fr_lost(struct stream *s)
{
	struct fread *r = s->op;
	r->s = NULL;
	fread_destroy(r);
}

static const struct stream_ops fread_ops = {
	.window = fr_window,
	.close = fr_close,
	.lost = fr_lost,
};

void op_file_read(struct stream *s, const struct proto_frame *f)
{
	struct proto_file_read req;
	struct stat st;
	struct err e = ERR_INIT;
	bool entered = false;
	int fd = -1, code = 0;

	if (op_decode(s, f, &req) < 0)
		return;
	char *path = agent_resolve_path(req.path);
	if (req.path[0] && fs_enter(req.flags, &entered, &e) == 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		code = errno;
		fs_leave(entered);
	}
	if (!req.path[0]) {
		stream_end_error(s, EINVAL, "empty path");
	} else if (e.code) {
		stream_end_error(s, e.code, "%s", err_str(&e));
	} else if (fd < 0) {
		stream_end_error(s, code, "%s '%s'%s%s", code == ENOENT ? "no such file" : "cannot open",
				 req.path, code == ENOENT ? "" : ": ", code == ENOENT ? "" : strerror(code));
	} else if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		stream_end_error(s, EISDIR, "'%s' is a directory", req.path);
		close(fd);
	} else {
		struct fread *r = xcalloc(1, sizeof(*r));
		struct proto_file_meta meta;
		/* O_NONBLOCK stays: regular files ignore it, and a FIFO or a
		 * terminal with nothing to say must not stall the one loop
		 * (EAGAIN ends the read with an error). */
		r->s = s;
		r->fd = fd;
		r->path = xstrdup(req.path);
		r->skip = req.offset;
		r->limited = req.limit != 0;
		r->lines_left = req.limit;
		r->capped = req.max_bytes != 0;
		r->bytes_left = req.max_bytes;
		task_init(&r->pump, fread_pump, r);
		s->ops = &fread_ops;
		s->op = r;
		meta_of(&st, &meta);
		stream_msg(s, PROTO_FILE_META, &meta);
		task_post(&r->pump);
		agent_touch();
	}
	free(path);
	proto_msg_release(PROTO_FILE_READ, &req);
}

/* ---- FILE_STAT and FILE_LS ------------------------------------------------------- */

void op_file_stat(struct stream *s, const struct proto_frame *f)
{
	struct proto_path req;
	struct stat st;
	struct proto_file_meta meta;
	char target[4096];
	struct err e = ERR_INIT;
	bool entered = false;
	int r = -1, code = 0;

	if (op_decode(s, f, &req) < 0)
		return;
	char *path = agent_resolve_path(req.path);
	if (req.path[0] && fs_enter(req.flags, &entered, &e) == 0) {
		r = lstat(path, &st);
		code = errno;
		if (r == 0 && S_ISLNK(st.st_mode)) {
			ssize_t n = readlink(path, target, sizeof(target) - 1);
			target[n > 0 ? n : 0] = '\0';
		}
		fs_leave(entered);
	}
	if (!req.path[0]) {
		stream_end_error(s, EINVAL, "empty path");
	} else if (e.code) {
		stream_end_error(s, e.code, "%s", err_str(&e));
	} else if (r < 0) {
		stream_end_error(s, code, "%s '%s'%s%s", code == ENOENT ? "no such file" : "cannot stat",
				 req.path, code == ENOENT ? "" : ": ", code == ENOENT ? "" : strerror(code));
	} else {
		meta_of(&st, &meta);
		if (S_ISLNK(st.st_mode))
			meta.link_target = target;
		stream_end(s, PROTO_FILE_META, &meta);
	}
	free(path);
	proto_msg_release(PROTO_FILE_STAT, &req);
}

static int dirent_cmp(const void *a, const void *b)
{
	const struct proto_dirent *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* A capped listing holds the `max` smallest names seen so far in a max-heap
 * on the name (the root is the largest kept), so a directory larger than
 * the cap lists its first entries in name order. */
static void dirent_swap(struct proto_dirent *h, size_t i, size_t j)
{
	struct proto_dirent t = h[i];
	h[i] = h[j];
	h[j] = t;
}

static void heap_up(struct proto_dirent *h, size_t i)
{
	while (i) {
		size_t parent = (i - 1) / 2;
		if (strcmp(h[parent].name, h[i].name) >= 0)
			return;
		dirent_swap(h, parent, i);
		i = parent;
	}
}

static void heap_down(struct proto_dirent *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, big = i;
		if (l < n && strcmp(h[l].name, h[big].name) > 0)
			big = l;
		if (r < n && strcmp(h[r].name, h[big].name) > 0)
			big = r;
		if (big == i)
			return;
		dirent_swap(h, i, big);
		i = big;
	}
}

void op_file_ls(struct stream *s, const struct proto_frame *f)
{
	struct proto_file_ls req;
	struct proto_ls_result res = { 0 };
	struct dirent *de;
	struct err e = ERR_INIT;
	bool entered;
	DIR *d;

	if (op_decode(s, f, &req) < 0)
		return;
	char *path = agent_resolve_path(req.path[0] ? req.path : ".");
	uint32_t max = req.max_entries ? req.max_entries : AGENT_LS_DEFAULT;
	if (max > AGENT_LS_MAX)
		max = AGENT_LS_MAX;
	if (fs_enter(req.flags, &entered, &e) < 0) {
		stream_end_error(s, e.code, "%s", err_str(&e));
		goto out;
	}
	/* the listing and each entry's stat, with the request's permissions */
	d = opendir(path);
	if (!d) {
		int code = errno;
		fs_leave(entered);
		if (code == ENOENT)
			stream_end_error(s, code, "no such directory '%s'", req.path);
		else if (code == ENOTDIR)
			stream_end_error(s, code, "'%s' is not a directory", req.path);
		else
			stream_end_error(s, code, "cannot list '%s': %s", req.path, strerror(code));
		goto out;
	}
	res.entries = xcalloc(max, sizeof(*res.entries));
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		res.total++;
		if (res.count < max) {
			res.entries[res.count].name = xstrdup(de->d_name);
			heap_up(res.entries, res.count++);
			continue;
		}
		/* Full: keep the first `max` names, not readdir's first `max`. */
		res.truncated = 1;
		if (strcmp(de->d_name, res.entries[0].name) >= 0)
			continue;
		free(res.entries[0].name);
		res.entries[0].name = xstrdup(de->d_name);
		heap_down(res.entries, res.count, 0);
	}
	qsort(res.entries, res.count, sizeof(*res.entries), dirent_cmp);
	for (size_t i = 0; i < res.count; i++) {
		struct proto_dirent *ent = &res.entries[i];
		struct stat st;
		if (fstatat(dirfd(d), ent->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			ent->type = file_type_of(st.st_mode);
			ent->mode = st.st_mode & 07777;
			ent->size = (uint64_t)st.st_size;
			ent->mtime = (int64_t)st.st_mtime;
		} else {
			ent->type = PROTO_FT_OTHER;
		}
	}
	closedir(d);
	fs_leave(entered);
	stream_end(s, PROTO_LS_RESULT, &res);
	proto_msg_release(PROTO_LS_RESULT, &res);
out:
	free(path);
	proto_msg_release(PROTO_FILE_LS, &req);
}
