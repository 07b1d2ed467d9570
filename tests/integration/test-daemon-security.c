/* test-daemon-security.c — regression tests for the security review of
 * issue 10, end to end: a real `bhatti serve` (under ASan in `make asan`,
 * where a use-after-free is a report in the daemon's log and a failed
 * teardown), real VMs, raw HTTP and WebSocket clients.
 *
 *   - an over-size WebSocket message to a shell, then a reattach to the
 *     same session, then output: the first attachment's agent stream must
 *     have been closed when the request ended (it used to call into the
 *     freed shell context);
 *   - a stop while an exec streams, a shell is attached and a session list
 *     is answered: every request ends with an answer, nothing points at
 *     the agent connection the stop dropped;
 *   - the API listens on exactly the configured address (item 3): the test
 *     runs in a network namespace of its own with a second address,
 *     192.0.2.1 (TEST-NET-1) on a veth pair, and nothing reaches a
 *     listener that was not asked for;
 *   - HTTP strictness: unknown methods, malformed or repeated
 *     Content-Length, pipelined bodies (lws spun at 100% CPU), WebSocket
 *     authentication before the upgrade;
 *   - 300 half-open connections from one address do not starve another
 *     address, and are closed after the header timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "helpers.h"
#include "wsc.h"

static struct daemon_proc d;
static char *key;

static int setup(void **state UNUSED)
{
	if (daemon_start(&d, "pool_size: 0\n") < 0)
		return -1;
	key = daemon_user(&d, "mallory", NULL);
	return key ? 0 : -1;
}

static int teardown(void **state UNUSED)
{
	int rc = daemon_stop(&d, true);
	free(key);
	return rc;
}

static int dial(const char *from, const char *host, int port);

/* A WebSocket to path (a raw upgrade over a socket, the frames through
 * the client library's codec); fails the test when refused. */
struct wsconn {
	int fd;
	struct buf in;
	struct wsc dec;
};

static void wsc_open(struct wsconn *w, const char *path)
{
	memset(w, 0, sizeof(*w));
	buf_init(&w->in);
	wsc_init(&w->dec);
	w->fd = dial(NULL, "127.0.0.1", d.port);
	assert_true(w->fd >= 0);
	int st = test_ws_upgrade(w->fd, path, key, &w->in);
	if (st != 101)
		fail_msg("websocket %s refused: status %d", path, st);
}

static void wsc_close(struct wsconn *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	buf_release(&w->in);
	wsc_release(&w->dec);
}

static void wsc_send(struct wsconn *w, int op, const void *p, size_t n)
{
	struct buf out = BUF_INIT;
	wsc_frame(&out, op, p, n);
	/* the daemon may close before it has read all of an over-size one */
	(void)write_all(w->fd, out.data, out.len);
	buf_release(&out);
}

/* The next message (1), or 0 at the end of the connection; waits up to ms. */
static int wsc_next(struct wsconn *w, int *ret_op, int ms)
{
	for (int waited = 0;; waited += 50) {
		int r = wsc_take(&w->dec, &w->in, ret_op);
		assert_true(r >= 0);
		if (r == 1)
			return 1;
		if (waited > ms)
			fail_msg("no message within %d ms", ms);
		struct timeval tv = { 0, 50000 };
		fd_set fs;
		FD_ZERO(&fs);
		FD_SET(w->fd, &fs);
		if (select(w->fd + 1, &fs, NULL, NULL, &tv) <= 0)
			continue;
		char tmp[65536];
		ssize_t n = read(w->fd, tmp, sizeof(tmp));
		if (n <= 0)
			return 0;
		buf_add(&w->in, tmp, (size_t)n);
	}
}

/* Read until a text message of type `type`; returns it (caller deletes). */
static cJSON *wsc_wait_type(struct wsconn *w, const char *type, struct buf *output)
{
	int op;
	while (wsc_next(w, &op, 60000) == 1) {
		if (op == WSC_BINARY && output)
			buf_add(output, w->dec.msg.data, w->dec.msg.len);
		if (op != WSC_TEXT)
			continue;
		cJSON *j = cJSON_ParseWithLength(w->dec.msg.data, w->dec.msg.len);
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "type"));
		if (t && strcmp(t, type) == 0)
			return j;
		cJSON_Delete(j);
	}
	return NULL;
}

/* Read binary output until it holds needle. */
static void wsc_wait_output(struct wsconn *w, const char *needle)
{
	struct buf out = BUF_INIT;
	int op;
	while (!strstr(out.data, needle)) {
		if (wsc_next(w, &op, 60000) != 1)
			fail_msg("connection ended before '%s'; got: %s", needle, out.data);
		if (op == WSC_BINARY)
			buf_add(&out, w->dec.msg.data, w->dec.msg.len);
	}
	buf_release(&out);
}

static int health(void)
{
	return http_call(&d, "GET", "/health", NULL, NULL, NULL);
}

/* Issue 10, item 1: an over-size shell message ended the request without
 * closing its agent stream; reattaching made the agent end that stream,
 * whose callback wrote into the freed shell context. */
static void test_oversize_ws_message_then_reattach(void **state UNUSED)
{
	struct buf out = BUF_INIT;
	assert_int_equal(http_call(&d, "POST", "/sandboxes", key, "{\"name\":\"sh1\"}", &out), 201);
	buf_release(&out);

	struct wsconn a;
	wsc_open(&a, "/sandboxes/sh1/ws?cols=80&rows=24");
	cJSON *s = wsc_wait_type(&a, "session", NULL);
	assert_non_null(s);
	char id[64];
	snprintf(id, sizeof(id), "%s", cJSON_GetStringValue(cJSON_GetObjectItem(s, "id")));
	cJSON_Delete(s);

	/* 1.1 MB in one binary message: over the daemon's 1 MiB cap */
	size_t big = 1100 * 1000;
	char *junk = malloc(big);
	memset(junk, ':', big);
	wsc_send(&a, WSC_BINARY, junk, big);
	free(junk);
	int op;
	while (wsc_next(&a, &op, 30000) == 1 && op != WSC_CLOSE)
		;
	wsc_close(&a);

	/* reattach: the agent hands the session to the new stream */
	struct wsconn b;
	char path[256];
	snprintf(path, sizeof(path), "/sandboxes/sh1/ws?cols=80&rows=24&session=%s", id);
	wsc_open(&b, path);
	s = wsc_wait_type(&b, "session", NULL);
	assert_non_null(s);
	cJSON_Delete(s);
	const char *cmd = "echo marker-$((40+2))\n";
	wsc_send(&b, WSC_BINARY, cmd, strlen(cmd));
	wsc_wait_output(&b, "marker-42");
	wsc_close(&b);
	assert_int_equal(health(), 200);
}

/* curl in the background, its output into a file; returns its pid. */
static pid_t curl_bg(const char *method, const char *path, const char *body, const char *accept,
		     const char *outfile)
{
	pid_t pid = fork();
	if (pid == 0) {
		char url[512], auth[512], acc[128];
		snprintf(url, sizeof(url), "%s%s", d.url, path);
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
		snprintf(acc, sizeof(acc), "Accept: %s", accept);
		int fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		execlp("curl", "curl", "-sS", "-N", "-X", method, "-H", auth, "-H", acc,
		       "--data-binary", body, url, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Issue 10: a stop drops the agent connection under running streams. An
 * exec streaming output, an attached shell and a session list must each
 * end with an answer (they used to be left pointing at the dropped
 * connection: no answer ever, and a use-after-free when the client left). */
static void test_stop_while_streaming(void **state UNUSED)
{
	struct buf out = BUF_INIT;
	assert_int_equal(http_call(&d, "POST", "/sandboxes", key, "{\"name\":\"st1\"}", &out), 201);
	buf_release(&out);

	char *tmp = test_tmpdir("sec");
	char file[600];
	snprintf(file, sizeof(file), "%s/exec.out", tmp);
	pid_t curl = curl_bg("POST", "/sandboxes/st1/exec",
			     "{\"cmd\":[\"sh\",\"-c\",\"while :; do echo tick; sleep 0.1; done\"]}",
			     "application/x-ndjson", file);
	struct wsconn w;
	wsc_open(&w, "/sandboxes/st1/ws?cols=80&rows=24");
	cJSON *s = wsc_wait_type(&w, "session", NULL);
	assert_non_null(s);
	cJSON_Delete(s);
	/* the exec is running once it printed */
	for (int i = 0; i < 300; i++) {
		char *t = read_text(file);
		bool ticking = t && strstr(t, "tick");
		free(t);
		if (ticking)
			break;
		usleep(100 * 1000);
	}

	buf_init(&out);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/st1/stop", key, "{}", &out), 200);
	buf_release(&out);

	/* the exec's answer ends, with an error line */
	assert_true(pid_wait_gone(curl, 20000));
	waitpid(curl, NULL, 0);
	char *t = read_text(file);
	assert_non_null(t);
	assert_non_null(strstr(t, "\"type\":\"error\""));
	free(t);
	/* the shell hears why and is closed */
	s = wsc_wait_type(&w, "error", NULL);
	assert_non_null(s);
	cJSON_Delete(s);
	wsc_close(&w);

	/* the sandbox starts again and works */
	buf_init(&out);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/st1/start", key, "{}", &out), 200);
	buf_reset(&out);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/st1/exec", key,
				   "{\"cmd\":[\"echo\",\"back\"]}", &out), 200);
	assert_non_null(strstr(out.data, "back"));
	buf_release(&out);
	test_rmtree(tmp);
	free(tmp);
	assert_int_equal(health(), 200);
}

/* Issue 10: the file API ran as root in the guest (PUT /etc/shadow worked
 * without as_root). It works with uid 1000's permissions unless asked. */
static void test_files_as_uid_1000(void **state UNUSED)
{
	struct buf out = BUF_INIT;
	assert_int_equal(http_call(&d, "POST", "/sandboxes", key, "{\"name\":\"files1\"}", &out),
			 201);
	buf_reset(&out);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/files1/exec", key,
				   "{\"cmd\":[\"sh\",\"-c\",\"mkdir -p /root && chmod 700 /root && "
				   "echo secret > /root/only && chmod 600 /root/only\"],"
				   "\"as_root\":true}", &out), 200);
	buf_reset(&out);
	assert_int_equal(http_call(&d, "GET", "/sandboxes/files1/files?path=/root/only", key, NULL,
				   &out), 403);
	buf_reset(&out);
	assert_int_equal(http_call(&d, "GET", "/sandboxes/files1/files?path=/root/only&as_root=true",
				   key, NULL, &out), 200);
	assert_string_equal(out.data, "secret\n");
	buf_reset(&out);
	assert_int_equal(http_call(&d, "PUT", "/sandboxes/files1/files?path=/root/new", key, "x", &out),
			 403);
	buf_reset(&out);
	assert_int_equal(http_call(&d, "PUT", "/sandboxes/files1/files?path=/root/new&as_root=true",
				   key, "x", &out), 201);
	buf_reset(&out);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/files1/exec", key,
				   "{\"cmd\":[\"stat\",\"-c\",\"%u\",\"/root/new\"],\"as_root\":true}",
				   &out), 200);
	assert_non_null(strstr(out.data, "\"stdout\":\"0\\n\""));
	buf_reset(&out);
	/* and a new file where 1000 may write is 1000's */
	assert_int_equal(http_call(&d, "PUT", "/sandboxes/files1/files?path=/tmp/mine", key, "x", &out),
			 201);
	buf_reset(&out);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/files1/exec", key,
				   "{\"cmd\":[\"stat\",\"-c\",\"%u\",\"/tmp/mine\"]}", &out), 200);
	assert_non_null(strstr(out.data, "\"stdout\":\"1000\\n\""));
	buf_reset(&out);
	assert_int_equal(http_call(&d, "DELETE", "/sandboxes/files1", key, NULL, &out), 204);
	buf_release(&out);
}

/* Issue 10: the store's 5 s busy timeout stalled the event loop while
 * `bhatti user` (or anything) held the database's write lock: every
 * request waited. Now a write waits 100 ms and is answered 503; reads and
 * other requests go on. */
static void test_database_lock_does_not_stall(void **state UNUSED)
{
	char db[600];
	snprintf(db, sizeof(db), "%s/state.db", d.data);
	int in[2];
	assert_int_equal(pipe(in), 0);
	pid_t sq = fork();
	if (sq == 0) {
		dup2(in[0], 0);
		close(in[1]);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execlp("sqlite3", "sqlite3", db, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	const char *lock = "BEGIN IMMEDIATE;\nINSERT INTO secrets SELECT * FROM secrets WHERE 0;\n";
	assert_int_equal(write_all(in[1], lock, strlen(lock)), 0);
	usleep(500 * 1000);   /* the lock is held from here */

	struct buf out = BUF_INIT;
	uint64_t t0 = now_ms();
	int st = http_call(&d, "POST", "/sandboxes", key, "{\"name\":\"locked\"}", &out);
	uint64_t took = now_ms() - t0;
	if (st != 503)
		fail_msg("create under a held write lock answered %d: %s", st, out.data);
	assert_true(took < 1500);
	t0 = now_ms();
	assert_int_equal(health(), 200);
	assert_int_equal(http_call(&d, "GET", "/sandboxes", key, NULL, NULL), 200);
	assert_true(now_ms() - t0 < 1500);

	const char *unlock = "COMMIT;\n.quit\n";
	assert_int_equal(write_all(in[1], unlock, strlen(unlock)), 0);
	close(in[1]);
	waitpid(sq, NULL, 0);
	buf_reset(&out);
	assert_int_equal(http_call(&d, "POST", "/sandboxes", key, "{\"name\":\"locked\"}", &out),
			 201);
	buf_reset(&out);
	assert_int_equal(http_call(&d, "DELETE", "/sandboxes/locked", key, NULL, &out), 204);
	buf_release(&out);
}

/* ---- the HTTP front ---- */

/* This test's own network namespace, with 192.0.2.1 on a veth interface:
 * a non-loopback address of "this host" that no other test can reach. */
static bool netns;

static int sh(const char *cmd)
{
	char *argv[] = { "sh", "-c", (char *)cmd, NULL };
	return test_run(argv, NULL, NULL, 0, NULL, NULL, 10000);
}

static void enter_netns(void)
{
	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0)
		return;
	/* (a veth pair: this kernel may have no dummy interfaces) */
	if (sh("ip link set lo up") != 0) {
		fprintf(stderr, "cannot bring up lo in the test's network namespace\n");
		exit(1);
	}
	netns = sh("ip link add bt0 type veth peer name bt1 && ip addr add 192.0.2.1/24 dev bt0 && "
		   "ip link set bt1 up && ip link set bt0 up") == 0;
}

/* Connect from `from` (NULL: any) to host:port; -1 when refused. */
static int dial(const char *from, const char *host, int port)
{
	bool v6 = strchr(host, ':') != NULL;
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (from) {
		struct sockaddr_in a = { .sin_family = AF_INET };
		inet_pton(AF_INET, from, &a.sin_addr);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			close(fd);
			return -1;
		}
	}
	int r;
	if (v6) {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
		inet_pton(AF_INET6, host, &a.sin6_addr);
		r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		inet_pton(AF_INET, host, &a.sin_addr);
		r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	}
	if (r < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Send req on a new connection and read until the daemon closes it or
 * ms pass; the answer in out. */
static void raw(const char *req, size_t len, struct buf *out, int ms)
{
	int fd = dial(NULL, "127.0.0.1", d.port);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, req, len), 0);
	buf_reset(out);
	for (int waited = 0; waited < ms; waited += 50) {
		struct timeval tv = { 0, 50000 };
		fd_set fs;
		FD_ZERO(&fs);
		FD_SET(fd, &fs);
		if (select(fd + 1, &fs, NULL, NULL, &tv) <= 0)
			continue;
		char tmp[4096];
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n <= 0)
			break;
		buf_add(out, tmp, (size_t)n);
	}
	close(fd);
}

static long cpu_ticks(pid_t pid)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	char *t = read_text(p);
	char *c = t ? strrchr(t, ')') : NULL;
	long ut = 0, st = 0;
	/* after "pid (comm)": fields 3.. ; utime is 14, stime 15 */
	if (c)
		sscanf(c + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st);
	free(t);
	return ut + st;
}

static bool reachable(const char *host, int port)
{
	int fd = dial(NULL, host, port);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Issue 10, item 3: "listen: 127.0.0.1:8080" listened on every interface,
 * IPv4 and IPv6. */
static void test_listens_exactly_as_configured(void **state UNUSED)
{
	if (!netns)
		skip();
	/* the group's daemon: 127.0.0.1 only */
	assert_true(reachable("127.0.0.1", d.port));
	assert_false(reachable("192.0.2.1", d.port));
	assert_false(reachable("::1", d.port));

	struct daemon_proc all, v6;
	assert_int_equal(daemon_start_on(&all, "", NULL), 0);
	assert_true(reachable("127.0.0.1", all.port));
	assert_true(reachable("192.0.2.1", all.port));
	assert_true(reachable("::1", all.port));
	assert_int_equal(daemon_stop(&all, true), 0);

	assert_int_equal(daemon_start_on(&v6, "[::1]", NULL), 0);
	assert_true(reachable("::1", v6.port));
	assert_false(reachable("127.0.0.1", v6.port));
	assert_false(reachable("192.0.2.1", v6.port));
	assert_int_equal(daemon_stop(&v6, true), 0);
}

static void test_http_strictness(void **state UNUSED)
{
	static struct buf out = BUF_INIT;   /* (a failed assertion leaves it) */
	char req[1024];

	/* an unknown method is not a GET */
	const char opt[] = "OPTIONS /health HTTP/1.1\r\nHost: x\r\n\r\n";
	raw(opt, strlen(opt), &out, 2000);
	assert_non_null(strstr(out.data, "HTTP/1.1 405"));

	/* Content-Length: malformed, or twice */
	const char *bad_cl[] = {
		"POST /sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 2x\r\n\r\n{}",
		"POST /sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}",
		"POST /sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_cl); i++) {
		raw(bad_cl[i], strlen(bad_cl[i]), &out, 2000);
		if (!strstr(out.data, "HTTP/1.1 400"))
			fail_msg("'%s' answered: %s", bad_cl[i], out.data);
	}

	/* pipelined requests behind a body: answered 400, and the daemon
	 * does not spin (lws 4.1 did, at 100% CPU, for good) */
	int n = snprintf(req, sizeof(req),
			 "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
			 "POST /sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
			 "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
	raw(req, (size_t)n, &out, 2000);
	assert_non_null(strstr(out.data, "HTTP/1.1 200"));
	assert_non_null(strstr(out.data, "HTTP/1.1 400"));
	long t0 = cpu_ticks(d.pid);
	usleep(1000 * 1000);
	long used = cpu_ticks(d.pid) - t0;
	if (used > 30)
		fail_msg("the daemon used %ld ticks in a second after a pipelined request", used);
	/* pipelined GETs are served in order */
	n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
				       "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	raw(req, (size_t)n, &out, 2000);
	char *second = strstr(out.data, "HTTP/1.1 200");
	assert_non_null(second);
	assert_non_null(strstr(second + 1, "HTTP/1.1 200"));

	/* a WebSocket is refused before the upgrade: plain HTTP statuses */
	const char *ws = "GET /sandboxes/sh1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			 "Sec-WebSocket-Version: 13\r\n%s\r\n";
	n = snprintf(req, sizeof(req), ws, "");
	raw(req, (size_t)n, &out, 2000);
	if (!strstr(out.data, " 401 ") || strstr(out.data, " 101 "))
		fail_msg("unauthenticated upgrade answered: %s", out.data);
	char auth[300];
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", key);
	n = snprintf(req, sizeof(req),
		     "GET /nosuch/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		     "Sec-WebSocket-Version: 13\r\n%s\r\n", auth);
	raw(req, (size_t)n, &out, 2000);
	assert_non_null(strstr(out.data, " 404 "));
	buf_release(&out);
	assert_int_equal(health(), 200);
}

/* 300 half-open connections from one address: the others are served at
 * once, the address gets at most limits.max_conns_per_ip, and what it
 * holds is closed after the header timeout. */
static void test_half_open_flood(void **state UNUSED)
{
	int fds[300], refused = 0;
	const char partial[] = "GET /health HTTP/1.1\r\nHost: x\r\n";
	for (int i = 0; i < 300; i++) {
		fds[i] = dial("127.0.0.2", "127.0.0.1", d.port);
		assert_true(fds[i] >= 0);
		(void)write_all(fds[i], partial, strlen(partial));
	}
	uint64_t t0 = now_ms();
	assert_int_equal(health(), 200);
	assert_true(now_ms() - t0 < 2000);
	usleep(300 * 1000);
	for (int i = 0; i < 300; i++) {
		char b[64];
		ssize_t n = recv(fds[i], b, sizeof(b) - 1, MSG_DONTWAIT);
		if (n > 0 && strncmp(b, "HTTP/1.1 429", 12) == 0)
			refused++;
	}
	assert_int_equal(refused, 300 - 128);
	/* the header timeout (5 s) closes the rest */
	usleep(7000 * 1000);
	int closed = 0;
	for (int i = 0; i < 300; i++) {
		char b[256];
		ssize_t n;
		while ((n = recv(fds[i], b, sizeof(b), MSG_DONTWAIT)) > 0)
			;
		/* (a refused one may be reset: it closed with our bytes unread) */
		closed += n == 0 || (n < 0 && errno == ECONNRESET);
		close(fds[i]);
	}
	assert_int_equal(closed, 300);
	assert_int_equal(health(), 200);
}

int main(void)
{
	enter_netns();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oversize_ws_message_then_reattach),
		cmocka_unit_test(test_stop_while_streaming),
		cmocka_unit_test(test_files_as_uid_1000),
		cmocka_unit_test(test_database_lock_does_not_stall),
		cmocka_unit_test(test_listens_exactly_as_configured),
		cmocka_unit_test(test_http_strictness),
		cmocka_unit_test(test_half_open_flood),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
