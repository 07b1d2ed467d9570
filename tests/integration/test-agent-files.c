/* test-agent-files.c — file operations and port forwarding through the real
 * agent client against a real lohar (test mode, unix socket): binary round
 * trips, write modes and parents, atomic replacement under concurrent
 * readers, the 100 MiB write limit, short/cancelled/abandoned writes, line
 * offset/limit and byte caps on reads, stat, capped directory listings,
 * uid 1000's permissions unless PROTO_FILE_ROOT, FORWARD to TCP servers on
 * 127.0.0.1 with half-close both ways, and PORTS (listening sockets by
 * family and address). Sits
 * between daemon/agent-client.c and agent/op-file.c, agent/op-forward.c;
 * test mode shares the host filesystem, so results are checked on disk.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define MIB (1u << 20)

/* ---- helpers -------------------------------------------------------------- */

/* Absolute host path of rel inside the workspace; caller frees. */
static char *wpath(struct fixture *fx, const char *rel)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/%s", fx->lohar.workspace, rel);
	return buf_detach(&b, NULL);
}

static void put_host_file(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, p, n), 0);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void assert_host_file(const char *path, const char *want)
{
	size_t len;
	char *got = host_read_file(path, &len);
	assert_non_null(got);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	free(got);
}

/* Temporary files of atomic writes (".NAME.bhatti-XXXXXX") in dir. */
static int count_temps(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] == '.' && strstr(de->d_name, ".bhatti-"))
			n++;
	closedir(d);
	return n;
}

/* Size of the one temporary file in dir, or -1 when there is none. */
static long long temp_size(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	long long size = -1;
	assert_non_null(d);
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' && strstr(de->d_name, ".bhatti-") &&
		    fstatat(dirfd(d), de->d_name, &st, 0) == 0)
			size = (long long)st.st_size;
	}
	closedir(d);
	return size;
}

static void fill_random(uint8_t *p, size_t n)
{
	int fd = open("/dev/urandom", O_RDONLY);
	assert_true(fd >= 0);
	size_t got = 0;
	while (got < n) {
		ssize_t k = read(fd, p + got, n - got);
		assert_true(k > 0);
		got += (size_t)k;
	}
	close(fd);
}

static mode_t host_mode(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static int write_file(struct fixture *fx, const char *path, uint32_t mode, const void *p,
		      size_t n, struct err *e)
{
	struct proto_file_write req = { .path = (char *)path, .mode = mode, .size = n };
	return ac_write_file(fx->ac, &req, p, n, 30000, e);
}

static void run_until(struct ac *ac, bool (*cond)(void *), void *arg, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	struct err e = ERR_INIT;
	while (!cond(arg) && now_ms() < end)
		assert_int_equal(ac_poll(ac, 20, &e), 0);
	assert_true(cond(arg));
}

/* Keep a client's loop turning for ms (for "nothing happens" checks). */
static void run_for(struct ac *ac, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	struct err e = ERR_INIT;
	while (now_ms() < end)
		assert_int_equal(ac_poll(ac, 10, &e), 0);
}

/* ---- an async file write: total bytes of a repeating pattern ---------------- */

struct wstream {
	struct ac_stream *s;
	const uint8_t *data;   /* byte i of the stream is data[i % data_len] */
	size_t data_len;
	uint64_t total;        /* bytes to send */
	uint64_t sent;
	bool send_eof;         /* EOF once total is sent */
	bool eof_sent;
	bool done;
	bool got_ok;
	uint64_t ok_bytes;
	int code;              /* ERROR code, or the connection error */
	char msg[ERR_MSG_MAX];
};

static void ws_push(struct wstream *w)
{
	size_t room;
	if (!w->s || w->done)
		return;
	while (w->sent < w->total && (room = ac_send_room(w->s)) > 0) {
		size_t off = (size_t)(w->sent % w->data_len);
		size_t n = MIN(room, w->data_len - off);
		n = (size_t)MIN((uint64_t)n, w->total - w->sent);
		ac_send_data(w->s, PROTO_CH_IN, w->data + off, n);
		w->sent += n;
	}
	if (w->sent == w->total && w->send_eof && !w->eof_sent) {
		ac_send_eof(w->s, PROTO_CH_IN);
		w->eof_sent = true;
	}
}

static void ws_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct wstream *w = arg;
	if (f->type == PROTO_OK) {
		struct proto_ok ok;
		assert_int_equal(proto_decode(f, &ok, NULL), 0);
		w->got_ok = true;
		w->ok_bytes = ok.bytes;
	} else if (f->type == PROTO_ERROR) {
		struct proto_error pe;
		assert_int_equal(proto_decode(f, &pe, NULL), 0);
		w->code = pe.code;
		snprintf(w->msg, sizeof(w->msg), "%s", pe.message);
		proto_msg_release(PROTO_ERROR, &pe);
	}
	assert_true(f->flags & PROTO_F_END); /* FILE_WRITE answers once */
}

static void ws_window(struct ac_stream *s UNUSED, void *arg)
{
	ws_push(arg);
}

static void ws_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct wstream *w = arg;
	if (e) {
		w->code = e->code;
		snprintf(w->msg, sizeof(w->msg), "%s", e->msg);
	}
	w->done = true;
	w->s = NULL;
}

static const struct ac_stream_cb ws_cb = {
	.frame = ws_frame, .window = ws_window, .closed = ws_closed,
};

static bool ws_done(void *arg)
{
	return ((struct wstream *)arg)->done;
}

static void ws_open(struct ac *ac, struct wstream *w, const char *path, uint64_t announced)
{
	struct proto_file_write req = { .path = (char *)path, .size = announced };
	struct err e = ERR_INIT;
	w->s = ac_open(ac, PROTO_FILE_WRITE, &req, &ws_cb, w, &e);
	assert_non_null(w->s);
	ws_push(w);
	assert_int_equal(ac_flush(ac, &e), 0);
}

/* ---- writes -------------------------------------------------------------------- */

static void test_roundtrip_5mb_binary(void **state)
{
	struct fixture *fx = *state;
	size_t len = 5 * MIB + 4321; /* not a multiple of the chunk size */
	uint8_t *data = malloc(len);
	struct err e = ERR_INIT;
	fill_random(data, len);

	assert_int_equal(write_file(fx, "blob.bin", 0640, data, len, &e), 0);
	char *path = wpath(fx, "blob.bin");
	assert_int_equal(host_mode(path), 0640);

	struct buf out = BUF_INIT;
	struct proto_file_meta meta;
	struct proto_ok ok = { 0 };
	struct proto_file_read rq = { .path = (char *)"blob.bin" };
	assert_int_equal(ac_read_file(fx->ac, &rq, &out, &meta, &ok, 30000, &e), 0);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.data, data, len);
	assert_int_equal(meta.type, PROTO_FT_FILE);
	assert_int_equal(meta.size, len);
	assert_int_equal(meta.mode, 0640);
	assert_int_equal(ok.bytes, len);
	assert_int_equal(ok.flags, 0);
	proto_msg_release(PROTO_FILE_META, &meta);
	buf_release(&out);

	/* the same through an absolute path, and what is on disk is it too */
	rq.path = path;
	assert_int_equal(ac_read_file(fx->ac, &rq, &out, NULL, NULL, 30000, &e), 0);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.data, data, len);
	buf_release(&out);
	size_t hlen;
	char *h = host_read_file(path, &hlen);
	assert_int_equal(hlen, len);
	assert_memory_equal(h, data, len);
	free(h);
	assert_int_equal(count_temps(fx->lohar.workspace), 0);
	free(path);
	free(data);
}

static void test_write_parents_and_modes(void **state)
{
	struct fixture *fx = *state;
	struct err e = ERR_INIT;

	/* parents are created */
	assert_int_equal(write_file(fx, "deep/er/still/f.txt", 0600, "x\n", 2, &e), 0);
	char *p = wpath(fx, "deep/er/still/f.txt");
	assert_host_file(p, "x\n");
	assert_int_equal(host_mode(p), 0600);
	char *d = wpath(fx, "deep/er/still");
	struct stat st;
	assert_int_equal(stat(d, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	free(d);

	/* 0755 replaces 0600; mode 0 then keeps 0755 on the existing file */
	assert_int_equal(write_file(fx, "deep/er/still/f.txt", 0755, "#!/bin/sh\n", 10, &e), 0);
	assert_int_equal(host_mode(p), 0755);
	assert_int_equal(write_file(fx, "deep/er/still/f.txt", 0, "#!/bin/sh\ntrue\n", 15, &e), 0);
	assert_int_equal(host_mode(p), 0755);
	assert_host_file(p, "#!/bin/sh\ntrue\n");
	free(p);

	/* mode 0 on a new file is 0644, whatever lohar's umask */
	assert_int_equal(write_file(fx, "new-default.txt", 0, "y", 1, &e), 0);
	p = wpath(fx, "new-default.txt");
	assert_int_equal(host_mode(p), 0644);
	free(p);

	/* an empty file */
	assert_int_equal(write_file(fx, "empty.txt", 0, NULL, 0, &e), 0);
	p = wpath(fx, "empty.txt");
	assert_host_file(p, "");
	free(p);

	/* into a directory */
	char *dir = wpath(fx, "deep/er");
	assert_int_equal(write_file(fx, dir, 0644, "z", 1, &e), -EISDIR);
	struct buf want = BUF_INIT;
	buf_addf(&want, "'%s' is a directory", dir);
	assert_string_equal(e.msg, want.data);
	buf_release(&want);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	free(dir);
	assert_int_equal(write_file(fx, "deep/", 0644, "z", 1, &e), -EISDIR);

	/* a parent that is a file */
	assert_int_equal(write_file(fx, "deep/er/still/f.txt/sub", 0644, "z", 1, &e), -ENOTDIR);
	assert_non_null(strstr(e.msg, "/deep/er/still/f.txt' is not a directory"));

	/* empty path and invalid mode */
	assert_int_equal(write_file(fx, "", 0644, "z", 1, &e), -EINVAL);
	assert_string_equal(e.msg, "empty path");
	assert_int_equal(write_file(fx, "bad-mode.txt", 010000, "z", 1, &e), -EINVAL);
	assert_string_equal(e.msg, "invalid mode 10000");
	p = wpath(fx, "bad-mode.txt");
	assert_int_equal(access(p, F_OK), -1);
	free(p);

	/* more bytes than announced */
	struct proto_file_write req = { .path = (char *)"over.txt", .size = 3 };
	assert_int_equal(ac_write_file(fx->ac, &req, "abcdef", 6, 5000, &e), -EPROTO);
	assert_string_equal(e.msg, "more data than the announced 3 bytes");
	p = wpath(fx, "over.txt");
	assert_int_equal(access(p, F_OK), -1);
	free(p);

	assert_int_equal(count_temps(fx->lohar.workspace), 0);
	p = wpath(fx, "deep/er/still");
	assert_int_equal(count_temps(p), 0);
	free(p);
}

struct reader_stats {
	long reads;
	long bad_size;
	long mixed;
	long open_failed;
	long saw_a;
	long saw_b;
};

/* Child: read path whole, as fast as possible, until stop_fd is readable. */
static void reader_child(const char *path, size_t size, int stop_fd, int res_fd)
{
	struct reader_stats st = { 0 };
	char *b = malloc(size + 1);
	alarm(60); /* never outlive a test that failed */
	for (;;) {
		struct pollfd pf = { .fd = stop_fd, .events = POLLIN };
		if (poll(&pf, 1, 0) != 0)
			break;
		int fd = open(path, O_RDONLY);
		if (fd < 0) {
			st.open_failed++;
			continue;
		}
		size_t got = 0;
		ssize_t n;
		while (got < size + 1 && (n = read(fd, b + got, size + 1 - got)) > 0)
			got += (size_t)n;
		close(fd);
		st.reads++;
		if (got != size) {
			st.bad_size++;
			continue;
		}
		/* uniform iff the file equals itself shifted by one byte */
		if ((b[0] != 'a' && b[0] != 'b') || memcmp(b, b + 1, size - 1) != 0)
			st.mixed++;
		else if (b[0] == 'a')
			st.saw_a++;
		else
			st.saw_b++;
	}
	if (write(res_fd, &st, sizeof(st)) != (ssize_t)sizeof(st))
		_exit(2);
	_exit(0);
}

static void test_write_atomic_under_readers(void **state)
{
	struct fixture *fx = *state;
	size_t size = 4 * MIB + 12345;
	char *a = malloc(size), *b = malloc(size);
	struct err e = ERR_INIT;
	memset(a, 'a', size);
	memset(b, 'b', size);
	char *path = wpath(fx, "atomic.txt");
	assert_int_equal(write_file(fx, "atomic.txt", 0644, a, size, &e), 0);

	int stop[2], res[2];
	assert_int_equal(pipe(stop), 0);
	assert_int_equal(pipe(res), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(stop[1]);
		close(res[0]);
		reader_child(path, size, stop[0], res[1]);
	}
	close(stop[0]);
	close(res[1]);

	int rewrites = 24;
	for (int i = 0; i < rewrites; i++)
		assert_int_equal(write_file(fx, "atomic.txt", 0644, i % 2 ? a : b, size, &e), 0);
	close(stop[1]); /* the reader stops */

	struct reader_stats st;
	assert_int_equal(read(res[0], &st, sizeof(st)), (ssize_t)sizeof(st));
	close(res[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	assert_int_equal(st.bad_size, 0);
	assert_int_equal(st.mixed, 0);
	assert_int_equal(st.open_failed, 0);
	/* the reader really ran across the rewrites: both contents seen */
	assert_true(st.reads >= rewrites);
	assert_true(st.saw_a > 0);
	assert_true(st.saw_b > 0);

	/* last write was 'a' (i = 23) */
	size_t len;
	char *got = host_read_file(path, &len);
	assert_int_equal(len, size);
	assert_memory_equal(got, a, size);
	free(got);
	assert_int_equal(count_temps(fx->lohar.workspace), 0);
	free(path);
	free(a);
	free(b);
}

static void test_write_limit_announced(void **state)
{
	struct fixture *fx = *state;
	struct wstream w = { .data = (const uint8_t *)"q", .data_len = 1, .total = 0 };
	/* nothing but the request: the answer must not wait for data */
	ws_open(fx->ac, &w, "huge.bin", 100ull * MIB + 1);
	run_until(fx->ac, ws_done, &w, 5000);
	assert_false(w.got_ok);
	assert_int_equal(w.code, EFBIG);
	assert_string_equal(w.msg, "file too large: 104857601 bytes (writes are limited to 100 MB)");
	char *p = wpath(fx, "huge.bin");
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	assert_int_equal(count_temps(fx->lohar.workspace), 0);
}

static void test_write_limit_streamed(void **state)
{
	struct fixture *fx = *state;
	static uint8_t chunk[PROTO_DATA_CHUNK];
	char *dir = wpath(fx, "lim");
	char *p = wpath(fx, "lim/target.bin");
	assert_int_equal(mkdir(dir, 0755), 0);
	put_host_file(p, "old content\n", 12, 0644);
	memset(chunk, 0x5a, sizeof(chunk));

	/* exactly 100 MiB of unknown size is fine */
	struct wstream ok = { .data = chunk, .data_len = sizeof(chunk), .total = 100ull * MIB,
			      .send_eof = true };
	ws_open(fx->ac, &ok, "lim/exact.bin", PROTO_FILE_SIZE_UNKNOWN);
	run_until(fx->ac, ws_done, &ok, 60000);
	assert_true(ok.got_ok);
	assert_int_equal(ok.code, 0);
	assert_int_equal(ok.ok_bytes, 100ull * MIB);
	char *exact = wpath(fx, "lim/exact.bin");
	struct stat st;
	assert_int_equal(stat(exact, &st), 0);
	assert_int_equal(st.st_size, 100ll * MIB);
	unlink(exact);
	free(exact);

	/* one chunk more is refused, the temporary file goes, the target stays */
	struct wstream big = { .data = chunk, .data_len = sizeof(chunk),
			       .total = 100ull * MIB + sizeof(chunk), .send_eof = true };
	ws_open(fx->ac, &big, "lim/target.bin", PROTO_FILE_SIZE_UNKNOWN);
	run_until(fx->ac, ws_done, &big, 60000);
	assert_false(big.got_ok);
	assert_int_equal(big.code, EFBIG);
	assert_string_equal(big.msg, "file too large: writes are limited to 100 MB");
	assert_host_file(p, "old content\n");
	assert_int_equal(count_temps(dir), 0);

	/* the connection carries on */
	struct ac_exec_result r;
	assert_int_equal(test_exec(fx->ac, &r, "echo", "ok", NULL), 0);
	assert_string_equal(r.out.data, "ok\n");
	ac_exec_result_release(&r);
	free(p);
	free(dir);
}

static void test_write_short(void **state)
{
	struct fixture *fx = *state;
	struct err e = ERR_INIT;
	char *p = wpath(fx, "short.txt");
	put_host_file(p, "before\n", 7, 0600);

	struct proto_file_write req = { .path = (char *)"short.txt", .size = 1000 };
	static char half[500];
	memset(half, 'h', sizeof(half));
	assert_int_equal(ac_write_file(fx->ac, &req, half, sizeof(half), 5000, &e), -EPROTO);
	assert_string_equal(e.msg, "short write: got 500 of 1000 bytes");
	assert_host_file(p, "before\n");
	assert_int_equal(host_mode(p), 0600);
	assert_int_equal(count_temps(fx->lohar.workspace), 0);
	free(p);
}

static void test_write_cancel(void **state)
{
	struct fixture *fx = *state;
	static uint8_t chunk[128 << 10];
	char *dir = wpath(fx, "cancel");
	char *p = wpath(fx, "cancel/t.txt");
	assert_int_equal(mkdir(dir, 0755), 0);
	put_host_file(p, "keep me\n", 8, 0644);
	memset(chunk, 'c', sizeof(chunk));

	struct wstream w = { .data = chunk, .data_len = sizeof(chunk), .total = sizeof(chunk) };
	ws_open(fx->ac, &w, "cancel/t.txt", MIB);
	/* wait until lohar has the bytes in its temporary file */
	uint64_t end = now_ms() + 5000;
	struct err e = ERR_INIT;
	while (temp_size(dir) != (long long)sizeof(chunk) && now_ms() < end)
		assert_int_equal(ac_poll(fx->ac, 10, &e), 0);
	assert_int_equal(temp_size(dir), sizeof(chunk));
	assert_false(w.done);

	ac_send_close(w.s);
	run_until(fx->ac, ws_done, &w, 5000);
	assert_false(w.got_ok);
	assert_int_equal(w.code, ECANCELED);
	assert_string_equal(w.msg, "write cancelled; the file is unchanged");
	assert_int_equal(count_temps(dir), 0);
	assert_host_file(p, "keep me\n");
	free(p);
	free(dir);
}

static void test_write_disconnect(void **state)
{
	struct fixture *fx = *state;
	static uint8_t chunk[100 << 10];
	char *dir = wpath(fx, "disc");
	char *p = wpath(fx, "disc/t.txt");
	assert_int_equal(mkdir(dir, 0755), 0);
	put_host_file(p, "still here\n", 11, 0644);
	memset(chunk, 'd', sizeof(chunk));

	struct ac *other = lohar_connect(&fx->lohar, "tok");
	assert_non_null(other);
	struct wstream w = { .data = chunk, .data_len = sizeof(chunk), .total = sizeof(chunk) };
	ws_open(other, &w, "disc/t.txt", PROTO_FILE_SIZE_UNKNOWN);
	uint64_t end = now_ms() + 5000;
	struct err e = ERR_INIT;
	while (temp_size(dir) != (long long)sizeof(chunk) && now_ms() < end)
		assert_int_equal(ac_poll(other, 10, &e), 0);
	assert_int_equal(temp_size(dir), sizeof(chunk));

	ac_free(other); /* the host goes away mid-write */
	assert_true(w.done);
	end = now_ms() + 3000;
	while (count_temps(dir) && now_ms() < end)
		usleep(5000);
	assert_int_equal(count_temps(dir), 0);
	assert_host_file(p, "still here\n");
	assert_true(pid_alive(fx->lohar.pid));
	free(p);
	free(dir);
}

/* ---- reads ----------------------------------------------------------------------- */

static int read_file(struct fixture *fx, const char *path, uint64_t offset, uint64_t limit,
		     uint64_t max_bytes, struct buf *out, struct proto_ok *ok, struct err *e)
{
	struct proto_file_read rq = { .path = (char *)path, .offset = offset, .limit = limit,
				      .max_bytes = max_bytes };
	buf_reset(out);
	memset(ok, 0, sizeof(*ok));
	return ac_read_file(fx->ac, &rq, out, NULL, ok, 30000, e);
}

static void test_read_lines(void **state)
{
	struct fixture *fx = *state;
	struct buf b = BUF_INIT, out = BUF_INIT;
	struct proto_ok ok;
	struct err e = ERR_INIT;

	for (int i = 1; i <= 1000; i++)
		buf_addf(&b, "%d\n", i);
	char *p = wpath(fx, "lines.txt");
	put_host_file(p, b.data, b.len, 0644);

	assert_int_equal(read_file(fx, "lines.txt", 10, 5, 0, &out, &ok, &e), 0);
	assert_string_equal(out.data, "11\n12\n13\n14\n15\n");
	assert_int_equal(ok.bytes, 15);
	assert_int_equal(ok.flags, 0);

	assert_int_equal(read_file(fx, "lines.txt", 0, 3, 0, &out, &ok, &e), 0);
	assert_string_equal(out.data, "1\n2\n3\n");

	assert_int_equal(read_file(fx, "lines.txt", 997, 0, 0, &out, &ok, &e), 0);
	assert_string_equal(out.data, "998\n999\n1000\n");

	assert_int_equal(read_file(fx, "lines.txt", 995, 100, 0, &out, &ok, &e), 0);
	assert_string_equal(out.data, "996\n997\n998\n999\n1000\n");
	assert_int_equal(ok.flags, 0);

	assert_int_equal(read_file(fx, "lines.txt", 1000, 0, 0, &out, &ok, &e), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(read_file(fx, "lines.txt", 5000, 2, 0, &out, &ok, &e), 0);
	assert_int_equal(out.len, 0);

	assert_int_equal(read_file(fx, "lines.txt", 0, 0, 0, &out, &ok, &e), 0);
	assert_int_equal(out.len, b.len);
	assert_memory_equal(out.data, b.data, b.len);

	/* line limit and byte cap together: the cap only truncates when it
	 * cuts what the limit would have sent */
	assert_int_equal(read_file(fx, "lines.txt", 10, 5, 15, &out, &ok, &e), 0);
	assert_string_equal(out.data, "11\n12\n13\n14\n15\n");
	assert_int_equal(ok.flags, 0);
	assert_int_equal(read_file(fx, "lines.txt", 10, 5, 14, &out, &ok, &e), 0);
	assert_string_equal(out.data, "11\n12\n13\n14\n15");
	assert_int_equal(ok.flags, PROTO_OK_TRUNCATED);

	/* the last line without a newline */
	put_host_file(p, "a\nb\nc", 5, 0644);
	assert_int_equal(read_file(fx, "lines.txt", 2, 5, 0, &out, &ok, &e), 0);
	assert_string_equal(out.data, "c");
	assert_int_equal(read_file(fx, "lines.txt", 1, 1, 0, &out, &ok, &e), 0);
	assert_string_equal(out.data, "b\n");

	/* offsets and limits across many chunks (and windows) */
	buf_reset(&b);
	for (int i = 1; i <= 200000; i++)
		buf_addf(&b, "%d\n", i);
	assert_true(b.len > 4 * PROTO_WINDOW);
	put_host_file(p, b.data, b.len, 0644);
	assert_int_equal(read_file(fx, "lines.txt", 150000, 3, 0, &out, &ok, &e), 0);
	assert_string_equal(out.data, "150001\n150002\n150003\n");
	assert_int_equal(read_file(fx, "lines.txt", 199998, 0, 0, &out, &ok, &e), 0);
	assert_string_equal(out.data, "199999\n200000\n");
	assert_int_equal(read_file(fx, "lines.txt", 100000, 50000, 0, &out, &ok, &e), 0);
	const char *start = strstr(b.data, "\n100001\n") + 1;
	const char *stop = strstr(b.data, "\n150001\n") + 1;
	assert_int_equal(out.len, (size_t)(stop - start));
	assert_memory_equal(out.data, start, out.len);

	buf_release(&b);
	buf_release(&out);
	free(p);
}

static void test_read_max_bytes(void **state)
{
	struct fixture *fx = *state;
	size_t len = MIB + 7;
	uint8_t *data = malloc(len);
	struct buf out = BUF_INIT;
	struct proto_ok ok;
	struct err e = ERR_INIT;
	fill_random(data, len);
	char *p = wpath(fx, "cap.bin");
	put_host_file(p, data, len, 0644);

	uint64_t caps[] = { 1, 100000, PROTO_DATA_CHUNK, 4 * PROTO_DATA_CHUNK, len - 1 };
	for (size_t i = 0; i < ARRAY_SIZE(caps); i++) {
		assert_int_equal(read_file(fx, "cap.bin", 0, 0, caps[i], &out, &ok, &e), 0);
		assert_int_equal(out.len, caps[i]);
		assert_memory_equal(out.data, data, caps[i]);
		assert_int_equal(ok.bytes, caps[i]);
		assert_int_equal(ok.flags, PROTO_OK_TRUNCATED);
	}
	/* a cap equal to the size, or above it, is not a truncation */
	uint64_t whole[] = { len, len + 1, 10ull * MIB };
	for (size_t i = 0; i < ARRAY_SIZE(whole); i++) {
		assert_int_equal(read_file(fx, "cap.bin", 0, 0, whole[i], &out, &ok, &e), 0);
		assert_int_equal(out.len, len);
		assert_memory_equal(out.data, data, len);
		assert_int_equal(ok.bytes, len);
		assert_int_equal(ok.flags, 0);
	}

	/* a size that is a whole number of chunks, cap equal to it */
	put_host_file(p, data, 4 * PROTO_DATA_CHUNK, 0644);
	assert_int_equal(read_file(fx, "cap.bin", 0, 0, 4 * PROTO_DATA_CHUNK, &out, &ok, &e), 0);
	assert_int_equal(out.len, 4 * PROTO_DATA_CHUNK);
	assert_int_equal(ok.flags, 0);

	/* small files */
	put_host_file(p, "0123456789", 10, 0644);
	assert_int_equal(read_file(fx, "cap.bin", 0, 0, 10, &out, &ok, &e), 0);
	assert_string_equal(out.data, "0123456789");
	assert_int_equal(ok.flags, 0);
	assert_int_equal(read_file(fx, "cap.bin", 0, 0, 9, &out, &ok, &e), 0);
	assert_string_equal(out.data, "012345678");
	assert_int_equal(ok.flags, PROTO_OK_TRUNCATED);
	put_host_file(p, "", 0, 0644);
	assert_int_equal(read_file(fx, "cap.bin", 0, 0, 5, &out, &ok, &e), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(ok.bytes, 0);
	assert_int_equal(ok.flags, 0);

	buf_release(&out);
	free(p);
	free(data);
}

static void test_read_errors(void **state)
{
	struct fixture *fx = *state;
	struct buf out = BUF_INIT;
	struct proto_ok ok;
	struct err e = ERR_INIT;

	assert_int_equal(read_file(fx, "no-such.txt", 0, 0, 0, &out, &ok, &e), -ENOENT);
	assert_string_equal(e.msg, "no such file 'no-such.txt'");
	assert_int_equal(read_file(fx, "/no/such/dir/x", 0, 0, 0, &out, &ok, &e), -ENOENT);
	assert_string_equal(e.msg, "no such file '/no/such/dir/x'");

	char *d = wpath(fx, "rdir");
	assert_int_equal(mkdir(d, 0755), 0);
	assert_int_equal(read_file(fx, "rdir", 0, 0, 0, &out, &ok, &e), -EISDIR);
	assert_string_equal(e.msg, "'rdir' is a directory");
	assert_int_equal(read_file(fx, "", 0, 0, 0, &out, &ok, &e), -EINVAL);
	assert_string_equal(e.msg, "empty path");
	assert_int_equal(out.len, 0);
	buf_release(&out);
	free(d);
}

/* An async read that counts what arrives (for cancel and disconnect). */
struct read_async {
	struct ac_stream *s;
	size_t bytes;
	bool meta;
	bool done;
	int code;
	char msg[ERR_MSG_MAX];
};

static void ra_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct read_async *x = arg;
	if (f->type == PROTO_FILE_META) {
		x->meta = true;
	} else if (f->type == PROTO_ERROR) {
		struct proto_error pe;
		assert_int_equal(proto_decode(f, &pe, NULL), 0);
		x->code = pe.code;
		snprintf(x->msg, sizeof(x->msg), "%s", pe.message);
		proto_msg_release(PROTO_ERROR, &pe);
	}
}

static void ra_data(struct ac_stream *s UNUSED, uint8_t ch UNUSED, const uint8_t *p UNUSED,
		    size_t n, void *arg)
{
	((struct read_async *)arg)->bytes += n;
}

static void ra_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct read_async *x = arg;
	if (e) {
		x->code = e->code;
		snprintf(x->msg, sizeof(x->msg), "%s", e->msg);
	}
	x->done = true;
	x->s = NULL;
}

static const struct ac_stream_cb read_async_cb = {
	.frame = ra_frame, .data = ra_data, .closed = ra_closed,
};

static bool read_async_done(void *arg)
{
	return ((struct read_async *)arg)->done;
}

static void read_async_open(struct fixture *fx, struct read_async *x, const char *path)
{
	struct proto_file_read rq = { .path = (char *)path };
	struct err e = ERR_INIT;
	x->s = ac_open(fx->ac, PROTO_FILE_READ, &rq, &read_async_cb, x, &e);
	assert_non_null(x->s);
}

/* A FIFO with a writer that never writes, and a read that is cancelled or
 * abandoned half-way: none of them may stall lohar's one loop. */
static void test_read_fifo_and_cancel(void **state)
{
	struct fixture *fx = *state;
	struct buf out = BUF_INIT;
	struct proto_ok ok;
	struct err e = ERR_INIT;
	char *fifo = wpath(fx, "fifo");
	assert_int_equal(mkfifo(fifo, 0644), 0);

	/* no writer: end of file at once */
	assert_int_equal(read_file(fx, "fifo", 0, 0, 0, &out, &ok, &e), 0);
	assert_int_equal(out.len, 0);

	/* a writer that says nothing (O_RDWR holds the FIFO open without
	 * blocking): an error, not a loop stuck in read() */
	int wfd = open(fifo, O_RDWR | O_CLOEXEC);
	assert_true(wfd >= 0);
	uint64_t t0 = now_ms();
	assert_int_equal(read_file(fx, "fifo", 0, 0, 0, &out, &ok, &e), -EAGAIN);
	assert_string_equal(e.msg, "nothing to read: 'fifo' is a pipe or device that would block");
	assert_true(now_ms() - t0 < 3000);
	struct ac_exec_result r;
	assert_int_equal(test_exec(fx->ac, &r, "echo", "ok", NULL), 0);
	assert_string_equal(r.out.data, "ok\n");
	ac_exec_result_release(&r);
	close(wfd);
	free(fifo);

	/* cancel a read that waits for credit: ERROR ECANCELED ends it */
	size_t len = 2 * MIB;
	char *big = malloc(len);
	memset(big, 'r', len);
	char *p = wpath(fx, "cancel-read.bin");
	put_host_file(p, big, len, 0644);
	struct read_async ra = { 0 };
	read_async_open(fx, &ra, "cancel-read.bin");
	ac_hold(ra.s, true);
	uint64_t end = now_ms() + 5000;
	while (ra.bytes < PROTO_WINDOW && now_ms() < end)
		assert_int_equal(ac_poll(fx->ac, 10, &e), 0);
	assert_int_equal(ra.bytes, PROTO_WINDOW); /* exactly the window, then it waits */
	assert_true(ra.meta);
	ac_send_close(ra.s);
	run_until(fx->ac, read_async_done, &ra, 5000);
	assert_int_equal(ra.code, ECANCELED);
	assert_string_equal(ra.msg, "read cancelled");

	/* abandon one: the other connection goes away mid-read */
	struct ac *other = lohar_connect(&fx->lohar, "tok");
	assert_non_null(other);
	struct read_async rb = { 0 };
	struct proto_file_read rq = { .path = (char *)"cancel-read.bin" };
	rb.s = ac_open(other, PROTO_FILE_READ, &rq, &read_async_cb, &rb, &e);
	assert_non_null(rb.s);
	ac_hold(rb.s, true);
	end = now_ms() + 5000;
	while (rb.bytes < PROTO_WINDOW && now_ms() < end)
		assert_int_equal(ac_poll(other, 10, &e), 0);
	ac_free(other);
	assert_true(rb.done);
	assert_int_equal(test_exec(fx->ac, &r, "echo", "ok", NULL), 0);
	assert_string_equal(r.out.data, "ok\n");
	ac_exec_result_release(&r);
	assert_true(pid_alive(fx->lohar.pid));

	buf_release(&out);
	free(p);
	free(big);
}

/* ---- stat and ls ------------------------------------------------------------------ */

static int stat_path(struct fixture *fx, const char *path, struct proto_file_meta *m,
		     struct err *e)
{
	struct proto_path req = { .path = (char *)path };
	return ac_call(fx->ac, PROTO_FILE_STAT, &req, PROTO_FILE_META, m, 5000, e);
}

static void test_stat(void **state)
{
	struct fixture *fx = *state;
	struct proto_file_meta m;
	struct err e = ERR_INIT;
	char *f = wpath(fx, "st-file.txt");
	char *d = wpath(fx, "st-dir");
	char *l = wpath(fx, "st-link");
	char *dl = wpath(fx, "st-dangling");
	put_host_file(f, "hello stat\n", 11, 0640);
	assert_int_equal(mkdir(d, 0710), 0);
	assert_int_equal(chmod(d, 0710), 0);
	assert_int_equal(symlink("st-file.txt", l), 0);
	assert_int_equal(symlink("/no/such/target", dl), 0);
	struct stat hs;
	assert_int_equal(stat(f, &hs), 0);

	assert_int_equal(stat_path(fx, "st-file.txt", &m, &e), 0);
	assert_int_equal(m.type, PROTO_FT_FILE);
	assert_int_equal(m.size, 11);
	assert_int_equal(m.mode, 0640);
	assert_int_equal(m.mtime, hs.st_mtime);
	assert_int_equal(m.uid, getuid());
	assert_int_equal(m.gid, getgid());
	assert_string_equal(m.link_target, "");
	proto_msg_release(PROTO_FILE_META, &m);

	assert_int_equal(stat_path(fx, d, &m, &e), 0);
	assert_int_equal(m.type, PROTO_FT_DIR);
	assert_int_equal(m.mode, 0710);
	proto_msg_release(PROTO_FILE_META, &m);

	assert_int_equal(stat_path(fx, "st-link", &m, &e), 0);
	assert_int_equal(m.type, PROTO_FT_LINK);
	assert_string_equal(m.link_target, "st-file.txt");
	assert_int_equal(m.size, strlen("st-file.txt"));
	proto_msg_release(PROTO_FILE_META, &m);

	assert_int_equal(stat_path(fx, "st-dangling", &m, &e), 0);
	assert_int_equal(m.type, PROTO_FT_LINK);
	assert_string_equal(m.link_target, "/no/such/target");
	proto_msg_release(PROTO_FILE_META, &m);

	assert_int_equal(stat_path(fx, "/dev/null", &m, &e), 0);
	assert_int_equal(m.type, PROTO_FT_OTHER);
	proto_msg_release(PROTO_FILE_META, &m);

	assert_int_equal(stat_path(fx, "missing.txt", &m, &e), -ENOENT);
	assert_string_equal(e.msg, "no such file 'missing.txt'");
	assert_int_equal(stat_path(fx, "", &m, &e), -EINVAL);
	assert_string_equal(e.msg, "empty path");
	free(f);
	free(d);
	free(l);
	free(dl);
}

static int ls_path(struct fixture *fx, const char *path, uint32_t max,
		   struct proto_ls_result *r, struct err *e)
{
	struct proto_file_ls req = { .path = (char *)path, .max_entries = max };
	return ac_call(fx->ac, PROTO_FILE_LS, &req, PROTO_LS_RESULT, r, 10000, e);
}

static void test_ls(void **state)
{
	struct fixture *fx = *state;
	struct proto_ls_result r;
	struct err e = ERR_INIT;
	char *d = wpath(fx, "many");
	assert_int_equal(mkdir(d, 0755), 0);
	/* created in a shuffled order, so no readdir order is the name order */
	for (int k = 0; k < 1500; k++) {
		int i = (k * 7 + 3) % 1500;
		struct buf name = BUF_INIT;
		buf_addf(&name, "%s/f%04d", d, i);
		int fd = open(name.data, O_WRONLY | O_CREAT | O_EXCL, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write_all(fd, "0123456789", (size_t)(i % 10)), 0);
		close(fd);
		buf_release(&name);
	}

	/* default cap: the first 1000 names, in order */
	assert_int_equal(ls_path(fx, "many", 0, &r, &e), 0);
	assert_int_equal(r.count, 1000);
	assert_int_equal(r.total, 1500);
	assert_int_equal(r.truncated, 1);
	for (size_t i = 0; i < r.count; i++) {
		char want[32];
		snprintf(want, sizeof(want), "f%04zu", i);
		assert_string_equal(r.entries[i].name, want);
		assert_int_equal(r.entries[i].type, PROTO_FT_FILE);
		assert_int_equal(r.entries[i].size, i % 10);
		assert_int_equal(r.entries[i].mode, 0644);
	}
	proto_msg_release(PROTO_LS_RESULT, &r);

	assert_int_equal(ls_path(fx, d, 2000, &r, &e), 0);
	assert_int_equal(r.count, 1500);
	assert_int_equal(r.total, 1500);
	assert_int_equal(r.truncated, 0);
	for (size_t i = 0; i < r.count; i++) {
		char want[32];
		snprintf(want, sizeof(want), "f%04zu", i);
		assert_string_equal(r.entries[i].name, want);
	}
	proto_msg_release(PROTO_LS_RESULT, &r);

	/* exactly at the cap is not truncated */
	assert_int_equal(ls_path(fx, "many", 1500, &r, &e), 0);
	assert_int_equal(r.count, 1500);
	assert_int_equal(r.truncated, 0);
	proto_msg_release(PROTO_LS_RESULT, &r);
	assert_int_equal(ls_path(fx, "many", 1, &r, &e), 0);
	assert_int_equal(r.count, 1);
	assert_string_equal(r.entries[0].name, "f0000");
	assert_int_equal(r.truncated, 1);
	proto_msg_release(PROTO_LS_RESULT, &r);

	/* types in a small directory */
	char *s = wpath(fx, "small");
	char *sf = wpath(fx, "small/b-file");
	char *sd = wpath(fx, "small/a-dir");
	char *sl = wpath(fx, "small/c-link");
	assert_int_equal(mkdir(s, 0755), 0);
	put_host_file(sf, "12345", 5, 0600);
	assert_int_equal(mkdir(sd, 0700), 0);
	assert_int_equal(symlink("b-file", sl), 0);
	assert_int_equal(ls_path(fx, "small", 0, &r, &e), 0);
	assert_int_equal(r.count, 3);
	assert_int_equal(r.total, 3);
	assert_int_equal(r.truncated, 0);
	assert_string_equal(r.entries[0].name, "a-dir");
	assert_int_equal(r.entries[0].type, PROTO_FT_DIR);
	assert_string_equal(r.entries[1].name, "b-file");
	assert_int_equal(r.entries[1].type, PROTO_FT_FILE);
	assert_int_equal(r.entries[1].size, 5);
	assert_int_equal(r.entries[1].mode, 0600);
	assert_string_equal(r.entries[2].name, "c-link");
	assert_int_equal(r.entries[2].type, PROTO_FT_LINK);
	proto_msg_release(PROTO_LS_RESULT, &r);

	/* an empty directory */
	assert_int_equal(ls_path(fx, "small/a-dir", 0, &r, &e), 0);
	assert_int_equal(r.count, 0);
	assert_int_equal(r.total, 0);
	assert_int_equal(r.truncated, 0);
	proto_msg_release(PROTO_LS_RESULT, &r);

	assert_int_equal(ls_path(fx, "small/b-file", 0, &r, &e), -ENOTDIR);
	assert_string_equal(e.msg, "'small/b-file' is not a directory");
	assert_int_equal(ls_path(fx, "nowhere", 0, &r, &e), -ENOENT);
	assert_string_equal(e.msg, "no such directory 'nowhere'");
	free(s);
	free(sf);
	free(sd);
	free(sl);
	free(d);
}

/* ---- forward ------------------------------------------------------------------------ */

enum echo_mode {
	ECHO_STREAM,     /* echo as bytes arrive */
	ECHO_AFTER_EOF,  /* say nothing until EOF, then "len=N:" + the bytes */
	ECHO_EXPECT_RST, /* read until the peer resets: exit 0 on ECONNRESET */
};

struct echo_server {
	pid_t pid;
	uint16_t port;
};

static void echo_serve(int lfd, int conns, enum echo_mode mode)
{
	static char chunk[65536];
	alarm(30); /* never outlive a test that failed */
	for (int i = 0; i < conns; i++) {
		int c = accept(lfd, NULL, NULL);
		struct buf all = BUF_INIT;
		ssize_t n;
		if (c < 0)
			_exit(3);
		while ((n = read(c, chunk, sizeof(chunk))) > 0) {
			if (mode == ECHO_STREAM && write_all(c, chunk, (size_t)n) < 0)
				_exit(4);
			if (mode == ECHO_AFTER_EOF)
				buf_add(&all, chunk, (size_t)n);
		}
		if (mode == ECHO_EXPECT_RST)
			_exit(n < 0 && errno == ECONNRESET ? 0 : 5);
		if (n < 0)
			_exit(6);
		if (mode == ECHO_AFTER_EOF) {
			char head[64];
			int k = snprintf(head, sizeof(head), "len=%zu:", all.len);
			if (write_all(c, head, (size_t)k) < 0 || write_all(c, all.data, all.len) < 0)
				_exit(7);
		}
		shutdown(c, SHUT_WR);
		/* the peer already half-closed: this read sees EOF */
		if (read(c, chunk, 1) != 0)
			_exit(8);
		close(c);
		buf_release(&all);
	}
	_exit(0);
}

static void echo_start(struct echo_server *es, int conns, enum echo_mode mode)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	assert_true(lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	es->port = ntohs(sa.sin_port);
	es->pid = fork();
	assert_true(es->pid >= 0);
	if (es->pid == 0)
		echo_serve(lfd, conns, mode);
	close(lfd);
}

/* The server's exit status (0 = everything as expected). */
static int echo_wait(struct echo_server *es)
{
	int status = -1;
	for (int i = 0; i < 500; i++) {
		if (waitpid(es->pid, &status, WNOHANG) == es->pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
		usleep(10000);
	}
	kill(es->pid, SIGKILL);
	waitpid(es->pid, &status, 0);
	return -1;
}

struct fwd {
	struct ac_stream *s;
	const uint8_t *data;
	size_t len, off;
	bool send_eof;        /* EOF once everything is sent */
	bool eof_sent;
	bool connected;       /* OK without END */
	bool got_eof;         /* EOF on PROTO_CH_OUT */
	size_t in_at_eof;
	bool data_after_eof;
	bool done;
	bool ok_end;
	int code;
	char msg[ERR_MSG_MAX];
	struct buf in;
};

static void fwd_push(struct fwd *x)
{
	size_t room;
	if (!x->s || !x->connected)
		return;
	while (x->off < x->len && (room = ac_send_room(x->s)) > 0) {
		size_t n = MIN(room, x->len - x->off);
		ac_send_data(x->s, PROTO_CH_IN, x->data + x->off, n);
		x->off += n;
	}
	if (x->off == x->len && x->send_eof && !x->eof_sent) {
		ac_send_eof(x->s, PROTO_CH_IN);
		x->eof_sent = true;
	}
}

static void fwd_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct fwd *x = arg;
	if (f->type == PROTO_OK && !(f->flags & PROTO_F_END)) {
		assert_false(x->connected);
		x->connected = true;
		fwd_push(x);
	} else if (f->type == PROTO_OK) {
		struct proto_ok ok;
		assert_int_equal(proto_decode(f, &ok, NULL), 0);
		x->ok_end = true;
	} else if (f->type == PROTO_EOF) {
		struct proto_eof eof;
		assert_int_equal(proto_decode(f, &eof, NULL), 0);
		assert_int_equal(eof.channel, PROTO_CH_OUT);
		assert_false(x->got_eof);
		x->got_eof = true;
		x->in_at_eof = x->in.len;
	} else if (f->type == PROTO_ERROR) {
		struct proto_error pe;
		assert_int_equal(proto_decode(f, &pe, NULL), 0);
		x->code = pe.code;
		snprintf(x->msg, sizeof(x->msg), "%s", pe.message);
		proto_msg_release(PROTO_ERROR, &pe);
	} else {
		fail_msg("unexpected %s on a forward", proto_type_name(f->type));
	}
}

static void fwd_data(struct ac_stream *s UNUSED, uint8_t ch, const uint8_t *p, size_t n, void *arg)
{
	struct fwd *x = arg;
	assert_int_equal(ch, PROTO_CH_OUT);
	if (x->got_eof)
		x->data_after_eof = true;
	buf_add(&x->in, p, n);
}

static void fwd_window(struct ac_stream *s UNUSED, void *arg)
{
	fwd_push(arg);
}

static void fwd_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct fwd *x = arg;
	if (e) {
		x->code = e->code;
		snprintf(x->msg, sizeof(x->msg), "%s", e->msg);
	}
	x->done = true;
	x->s = NULL;
}

static const struct ac_stream_cb fwd_cb = {
	.frame = fwd_frame, .data = fwd_data, .window = fwd_window, .closed = fwd_closed,
};

static bool fwd_done(void *arg)
{
	return ((struct fwd *)arg)->done;
}

static bool fwd_connected(void *arg)
{
	struct fwd *x = arg;
	return x->connected || x->done;
}

static void fwd_open(struct fixture *fx, struct fwd *x, uint16_t port)
{
	struct proto_forward req = { .port = port };
	struct err e = ERR_INIT;
	buf_init(&x->in);
	x->s = ac_open(fx->ac, PROTO_FORWARD, &req, &fwd_cb, x, &e);
	assert_non_null(x->s);
}

static void assert_no_forwards(struct fixture *fx)
{
	struct proto_activity_info info;
	struct err e = ERR_INIT;
	assert_int_equal(ac_call(fx->ac, PROTO_ACTIVITY, NULL, PROTO_ACTIVITY_INFO, &info, 5000, &e), 0);
	assert_int_equal(info.forwards, 0);
}

static void test_forward_half_close(void **state)
{
	struct fixture *fx = *state;
	struct echo_server es;
	const char *msg = "hello through the forward";
	echo_start(&es, 1, ECHO_AFTER_EOF);

	struct fwd x = { .data = (const uint8_t *)msg, .len = strlen(msg) };
	fwd_open(fx, &x, es.port);
	run_until(fx->ac, fwd_connected, &x, 5000);
	assert_true(x.connected);
	assert_false(x.done);
	/* the bytes are sent, but the server answers only after our EOF */
	run_for(fx->ac, 150);
	assert_int_equal(x.off, x.len);
	assert_int_equal(x.in.len, 0);
	assert_false(x.got_eof);
	assert_false(x.done);

	ac_send_eof(x.s, PROTO_CH_IN);
	x.eof_sent = true;
	run_until(fx->ac, fwd_done, &x, 5000);
	assert_int_equal(x.code, 0);
	assert_true(x.ok_end);
	assert_true(x.got_eof);
	assert_false(x.data_after_eof);
	struct buf want = BUF_INIT;
	buf_addf(&want, "len=%zu:%s", strlen(msg), msg);
	assert_int_equal(x.in.len, want.len);
	assert_memory_equal(x.in.data, want.data, want.len);
	assert_int_equal(x.in_at_eof, want.len);
	buf_release(&want);
	buf_release(&x.in);
	assert_int_equal(echo_wait(&es), 0);
	assert_no_forwards(fx);
}

static void test_forward_1mb_echo(void **state)
{
	struct fixture *fx = *state;
	struct echo_server es;
	size_t len = MIB;
	uint8_t *data = malloc(len);
	fill_random(data, len);
	echo_start(&es, 2, ECHO_STREAM);

	/* streamed echo: both directions flowing at once */
	struct fwd x = { .data = data, .len = len, .send_eof = true };
	fwd_open(fx, &x, es.port);
	run_until(fx->ac, fwd_done, &x, 30000);
	assert_int_equal(x.code, 0);
	assert_true(x.ok_end);
	assert_true(x.got_eof);
	assert_false(x.data_after_eof);
	assert_int_equal(x.in.len, len);
	assert_memory_equal(x.in.data, data, len);
	buf_release(&x.in);

	/* the host's EOF before the connection is even up */
	struct fwd y = { .data = (const uint8_t *)"", .len = 0 };
	fwd_open(fx, &y, es.port);
	ac_send_eof(y.s, PROTO_CH_IN);
	y.eof_sent = true;
	run_until(fx->ac, fwd_done, &y, 5000);
	assert_int_equal(y.code, 0);
	assert_true(y.connected);
	assert_true(y.ok_end);
	assert_true(y.got_eof);
	assert_int_equal(y.in.len, 0);
	buf_release(&y.in);

	assert_int_equal(echo_wait(&es), 0);
	free(data);
	assert_no_forwards(fx);
}

static void test_forward_close_resets(void **state)
{
	struct fixture *fx = *state;
	struct echo_server es;
	echo_start(&es, 1, ECHO_EXPECT_RST);
	struct fwd x = { .data = (const uint8_t *)"hi", .len = 2 };
	fwd_open(fx, &x, es.port);
	run_until(fx->ac, fwd_connected, &x, 5000);
	assert_true(x.connected);
	run_for(fx->ac, 50);
	assert_false(x.done);
	ac_send_close(x.s);
	run_until(fx->ac, fwd_done, &x, 5000);
	assert_int_equal(x.code, 0);
	assert_true(x.ok_end);
	buf_release(&x.in);
	assert_int_equal(echo_wait(&es), 0); /* the server saw a reset */
	assert_no_forwards(fx);
}

static void test_forward_refused(void **state)
{
	struct fixture *fx = *state;
	struct err e = ERR_INIT;
	/* a port that was free a moment ago */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	uint16_t port = ntohs(sa.sin_port);

	struct proto_forward req = { .port = port };
	assert_int_equal(ac_call(fx->ac, PROTO_FORWARD, &req, PROTO_OK, NULL, 5000, &e),
			 -ECONNREFUSED);
	char want[128];
	snprintf(want, sizeof(want), "nothing is listening on port %u in the sandbox", port);
	assert_string_equal(e.msg, want);

	req.port = 0;
	assert_int_equal(ac_call(fx->ac, PROTO_FORWARD, &req, PROTO_OK, NULL, 5000, &e), -EINVAL);
	assert_string_equal(e.msg, "invalid port 0");
	assert_no_forwards(fx);
}

/* ---- PORTS: the listening TCP ports --------------------------------------------- */

/* A listening socket of family af bound to addr (NULL: any); its port. */
static int listen_on(int af, const char *addr, uint16_t *ret_port)
{
	int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	if (af == AF_INET) {
		struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
		sa->sin_family = AF_INET;
		if (addr)
			assert_int_equal(inet_pton(AF_INET, addr, &sa->sin_addr), 1);
		sl = sizeof(*sa);
	} else {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;
		int one = 1;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		sa->sin6_family = AF_INET6;
		if (addr)
			assert_int_equal(inet_pton(AF_INET6, addr, &sa->sin6_addr), 1);
		sl = sizeof(*sa);
	}
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	*ret_port = ntohs(af == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
					  ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static const struct proto_port *find_port(const struct proto_ports_result *r, uint16_t port)
{
	for (size_t i = 0; i < r->count; i++)
		if (r->ports[i].port == port)
			return &r->ports[i];
	return NULL;
}

static void test_ports(void **state)
{
	struct fixture *fx = *state;
	struct err e = ERR_INIT;
	uint16_t any4, lo4, lo6;
	int a = listen_on(AF_INET, NULL, &any4);
	int b = listen_on(AF_INET, "127.0.0.1", &lo4);
	int c = listen_on(AF_INET6, "::1", &lo6);
	/* a connected socket is not a listening one */
	int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(lo4) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(cl, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	assert_int_equal(getsockname(cl, (struct sockaddr *)&me, &ml), 0);

	struct proto_ports_result r;
	assert_int_equal(ac_call(fx->ac, PROTO_PORTS, NULL, PROTO_PORTS_RESULT, &r, 5000, &e), 0);
	const struct proto_port *p;
	assert_non_null(p = find_port(&r, any4));
	assert_int_equal(p->flags, PROTO_PORT_V4);
	assert_non_null(p = find_port(&r, lo4));
	assert_int_equal(p->flags, PROTO_PORT_V4 | PROTO_PORT_LOOPBACK);
	assert_non_null(p = find_port(&r, lo6));
	assert_int_equal(p->flags & (PROTO_PORT_V6 | PROTO_PORT_LOOPBACK),
			 PROTO_PORT_V6 | PROTO_PORT_LOOPBACK);
	assert_null(find_port(&r, ntohs(me.sin_port)));   /* the client's end */
	for (size_t i = 1; i < r.count; i++)
		assert_true(r.ports[i - 1].port < r.ports[i].port);
	proto_msg_release(PROTO_PORTS_RESULT, &r);

	/* closed: gone */
	close(a);
	assert_int_equal(ac_call(fx->ac, PROTO_PORTS, NULL, PROTO_PORTS_RESULT, &r, 5000, &e), 0);
	assert_null(find_port(&r, any4));
	assert_non_null(find_port(&r, lo4));
	proto_msg_release(PROTO_PORTS_RESULT, &r);
	close(b);
	close(c);
	close(cl);
}

/* ---- whose permissions: uid 1000 unless PROTO_FILE_ROOT ------------------------ */

static void host_owner(const char *path, uid_t uid, gid_t gid)
{
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	if (st.st_uid != uid || st.st_gid != gid)
		fail_msg("'%s' is owned by %u:%u, want %u:%u", path, (unsigned)st.st_uid,
			 (unsigned)st.st_gid, (unsigned)uid, (unsigned)gid);
}

/* A lohar that switches to uid/gid 1000 (the agent in a VM does): every
 * file request works with 1000's permissions unless it carries
 * PROTO_FILE_ROOT, and what a write creates is owned by 1000. */
static void test_as_uid_1000(void **state)
{
	struct fixture *fx = *state;
	if (geteuid() != 0)
		skip(); /* switching users needs root */
	struct lohar_proc *lp = &fx->other;
	/* started with root's group as a supplementary group, which lohar
	 * must drop (a root shell may have it; PID 1 has none) */
	gid_t groups[64], root_group = 0;
	int ngroups = getgroups(64, groups);
	assert_true(ngroups >= 0);
	assert_int_equal(setgroups(1, &root_group), 0);
	int started = lohar_start(lp, "t", "1000:1000");
	assert_int_equal(setgroups((size_t)ngroups, groups), 0);
	assert_int_equal(started, 0);
	assert_int_equal(chmod(lp->dir, 0755), 0); /* 1000 reaches the workspace */
	struct ac *ac = lohar_connect(lp, "t");
	struct err e = ERR_INIT;
	struct buf out = BUF_INIT, path = BUF_INIT;
	struct proto_ok ok;

	/* a file only root can read, like /etc/shadow; and one its group can:
	 * root's own groups do not count for 1000 */
	buf_addf(&path, "%s/shadow", lp->workspace);
	put_host_file(path.data, "root:secret\n", 12, 0600);
	buf_reset(&path);
	buf_addf(&path, "%s/group-0", lp->workspace);
	put_host_file(path.data, "for gid 0\n", 10, 0640);
	struct proto_file_read rq = { .path = (char *)"shadow" };
	assert_int_equal(ac_read_file(ac, &rq, &out, NULL, &ok, 5000, &e), -EACCES);
	assert_string_equal(e.msg, "cannot open 'shadow': Permission denied");
	assert_int_equal(out.len, 0);
	rq.path = (char *)"group-0";
	assert_int_equal(ac_read_file(ac, &rq, &out, NULL, &ok, 5000, &e), -EACCES);
	rq.flags = PROTO_FILE_ROOT;
	assert_int_equal(ac_read_file(ac, &rq, &out, NULL, &ok, 5000, &e), 0);
	assert_string_equal(out.data, "for gid 0\n");
	buf_reset(&out);
	rq.path = (char *)"shadow";
	assert_int_equal(ac_read_file(ac, &rq, &out, NULL, &ok, 5000, &e), 0);
	assert_string_equal(out.data, "root:secret\n");

	/* a directory only root may enter: stat and ls inside it */
	buf_reset(&path);
	buf_addf(&path, "%s/private", lp->workspace);
	assert_int_equal(mkdir(path.data, 0700), 0);
	assert_int_equal(chmod(path.data, 0700), 0);
	buf_addf(&path, "/f");
	put_host_file(path.data, "x", 1, 0644);
	struct proto_path sreq = { .path = (char *)"private/f" };
	struct proto_file_meta m;
	assert_int_equal(ac_call(ac, PROTO_FILE_STAT, &sreq, PROTO_FILE_META, &m, 5000, &e),
			 -EACCES);
	sreq.flags = PROTO_FILE_ROOT;
	assert_int_equal(ac_call(ac, PROTO_FILE_STAT, &sreq, PROTO_FILE_META, &m, 5000, &e), 0);
	assert_int_equal(m.size, 1);
	proto_msg_release(PROTO_FILE_META, &m);
	struct proto_file_ls lreq = { .path = (char *)"private" };
	struct proto_ls_result res;
	assert_int_equal(ac_call(ac, PROTO_FILE_LS, &lreq, PROTO_LS_RESULT, &res, 5000, &e),
			 -EACCES);
	lreq.flags = PROTO_FILE_ROOT;
	assert_int_equal(ac_call(ac, PROTO_FILE_LS, &lreq, PROTO_LS_RESULT, &res, 5000, &e), 0);
	assert_int_equal(res.count, 1);
	assert_string_equal(res.entries[0].name, "f");
	proto_msg_release(PROTO_LS_RESULT, &res);

	/* a new file and its new parents belong to 1000 */
	struct proto_file_write w = { .path = (char *)"new/dir/made.txt", .size = 3 };
	assert_int_equal(ac_write_file(ac, &w, "abc", 3, 5000, &e), 0);
	buf_reset(&path);
	buf_addf(&path, "%s/new/dir/made.txt", lp->workspace);
	assert_host_file(path.data, "abc");
	host_owner(path.data, 1000, 1000);
	assert_int_equal(host_mode(path.data), 0644);
	buf_reset(&path);
	buf_addf(&path, "%s/new/dir", lp->workspace);
	host_owner(path.data, 1000, 1000);

	/* no write into a directory only root may write to (PUT /etc/shadow);
	 * nothing is left behind; with the flag it works and root owns it */
	buf_reset(&path);
	buf_addf(&path, "%s/etc", lp->workspace);
	assert_int_equal(mkdir(path.data, 0755), 0);
	assert_int_equal(chmod(path.data, 0755), 0);
	w.path = (char *)"etc/shadow";
	assert_int_equal(ac_write_file(ac, &w, "own", 3, 5000, &e), -EACCES);
	assert_int_equal(count_temps(path.data), 0);
	buf_addf(&path, "/shadow");
	assert_int_equal(access(path.data, F_OK), -1);
	w.flags = PROTO_FILE_ROOT;
	assert_int_equal(ac_write_file(ac, &w, "own", 3, 5000, &e), 0);
	assert_host_file(path.data, "own");
	host_owner(path.data, 0, 0);
	/* replacing root's file there stays refused without the flag */
	w.flags = 0;
	assert_int_equal(ac_write_file(ac, &w, "new", 3, 5000, &e), -EACCES);
	assert_host_file(path.data, "own");

	buf_release(&out);
	buf_release(&path);
	ac_free(ac);
	assert_int_equal(lohar_stop(lp), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_5mb_binary),
		cmocka_unit_test(test_write_parents_and_modes),
		cmocka_unit_test(test_write_atomic_under_readers),
		cmocka_unit_test(test_write_limit_announced),
		cmocka_unit_test(test_write_limit_streamed),
		cmocka_unit_test(test_write_short),
		cmocka_unit_test(test_write_cancel),
		cmocka_unit_test(test_write_disconnect),
		cmocka_unit_test(test_read_lines),
		cmocka_unit_test(test_read_max_bytes),
		cmocka_unit_test(test_read_errors),
		cmocka_unit_test(test_read_fifo_and_cancel),
		cmocka_unit_test(test_stat),
		cmocka_unit_test(test_ls),
		cmocka_unit_test(test_as_uid_1000),
		cmocka_unit_test(test_forward_half_close),
		cmocka_unit_test(test_forward_1mb_echo),
		cmocka_unit_test(test_forward_close_resets),
		cmocka_unit_test(test_forward_refused),
		cmocka_unit_test(test_ports),
	};
	return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
