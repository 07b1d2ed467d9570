/* test-daemon-thermal.c — end to end: the thermal manager with short
 * timers (from the config): idle → warm → cold seen in list and in the
 * events stream; exec on a warm, a cold and a user-stopped sandbox; what
 * keeps a sandbox hot (a busy init script, an outbound TCP connection, a
 * running exec, `lohar hold`, keep_hot) and what does not (a sleeping
 * one); ten concurrent execs on a cold sandbox are one wake; state,
 * timers and keep_hot survive kill -9 and a restart; an events subscriber
 * that never reads gets resync and the daemon's memory stays flat.
 *
 * Real daemon, real CLI and curl, real VMs (TCG here). There is no guest
 * networking on this branch: the TCP case is a connection inside the
 * guest, to a listener of another guest process (nc -l), which is what
 * the agent's detection sees either way (an established socket whose
 * local port is not listening, held by a user process).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "buf.h"
#include "helpers.h"
#include "util.h"

static struct daemon_proc d;
static char tmux_sock[256];
static int tmux(const char *a0, ...);

/* Also the tests' tmux server: it must not outlive a failed test (it would
 * keep the shared VM lock's descriptor, inherited from flock, open). */
static int stop_daemon(void **state UNUSED)
{
	if (tmux_sock[0])
		tmux("kill-server", NULL);
	tmux_sock[0] = '\0';
	if (d.dir)
		daemon_stop(&d, true);
	return 0;
}

static char *start_with_user(const char *config)
{
	assert_int_equal(daemon_start(&d, config), 0);
	char *key = daemon_user(&d, "u", "--max-sandboxes 20");
	assert_non_null(key);
	return key;
}

/* GET /sandboxes/NAME; the caller deletes. */
static cJSON *inspect(const char *key, const char *name)
{
	struct buf b = BUF_INIT;
	char *path = test_strf("/sandboxes/%s", name);
	int st = http_call(&d, "GET", path, key, NULL, &b);
	free(path);
	cJSON *j = st == 200 ? cJSON_Parse(b.data) : NULL;
	buf_release(&b);
	return j;
}

static char *field(const char *key, const char *name, const char *f)
{
	cJSON *j = inspect(key, name);
	const char *v = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, f)) : NULL;
	char *r = xstrdup(v ? v : "?");
	cJSON_Delete(j);
	return r;
}

static bool has_thermal(const char *key, const char *name, const char *want)
{
	char *t = field(key, name, "thermal");
	bool ok = strcmp(t, want) == 0;
	free(t);
	return ok;
}

/* Wait up to ms for NAME's thermal to be want, and its state done moving
 * (a cold stop shows thermal "cold" while its state is still "stopping");
 * fail saying what it was. */
static void wait_thermal(const char *key, const char *name, const char *want, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	while (now_ms() < end) {
		if (has_thermal(key, name, want)) {
			char *s = field(key, name, "state");
			bool settled = strcmp(s, "stopping") != 0 && strcmp(s, "starting") != 0;
			free(s);
			if (settled)
				return;
		}
		usleep(250 * 1000);
	}
	char *t = field(key, name, "thermal"), *s = field(key, name, "state");
	fail_msg("'%s' is %s (%s), not %s after %d ms", name, t, s, want, ms);
}

/* `bhatti list` shows NAME with thermal want in its THERMAL column. */
static void list_shows(const char *key, const char *name, const char *want)
{
	struct buf o = BUF_INIT, e = BUF_INIT;
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "list", NULL), 0);
	bool found = false;
	char *save = NULL;
	for (char *line = strtok_r(o.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char n[64], id[64], st[32], th[32];
		if (sscanf(line, "%63s %63s %31s %31s", n, id, st, th) == 4 && strcmp(n, name) == 0) {
			found = true;
			if (strcmp(th, want) != 0)
				fail_msg("list: '%s' THERMAL %s, not %s: %s", name, th, want, line);
		}
	}
	if (!found)
		fail_msg("list has no '%s'", name);
	buf_release(&o);
	buf_release(&e);
}

/* The events of NAME after seq (follow=false) as parsed JSON lines. */
static cJSON *events(const char *key, const char *name, long long after)
{
	struct buf b = BUF_INIT;
	char *path = test_strf("/events?since=%lld&follow=false&sandbox=%s", after, name);
	assert_int_equal(http_call(&d, "GET", path, key, NULL, &b), 200);
	free(path);
	cJSON *a = cJSON_CreateArray();
	char *save = NULL;
	for (char *l = strtok_r(b.data ? b.data : (char *)"", "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		cJSON *o = cJSON_Parse(l);
		assert_non_null(o);
		cJSON_AddItemToArray(a, o);
	}
	buf_release(&b);
	return a;
}

/* How many sandbox.state events in a go to `to` (with reason, if given);
 * *ret_wake_ms: the last one's wake_ms (or -1). */
static int count_state(cJSON *a, const char *to, const char *reason, int *ret_wake_ms)
{
	int n = 0;
	cJSON *o;
	if (ret_wake_ms)
		*ret_wake_ms = -1;
	cJSON_ArrayForEach(o, a)
	{
		const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(o, "type"));
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(o, "to"));
		const char *r = cJSON_GetStringValue(cJSON_GetObjectItem(o, "reason"));
		if (!type || strcmp(type, "sandbox.state") != 0 || !t || strcmp(t, to) != 0)
			continue;
		if (reason && (!r || strcmp(r, reason) != 0))
			continue;
		n++;
		cJSON *w = cJSON_GetObjectItem(o, "wake_ms");
		if (ret_wake_ms && cJSON_IsNumber(w))
			*ret_wake_ms = w->valueint;
	}
	return n;
}

static long long last_seq(const char *key)
{
	struct buf b = BUF_INIT;
	assert_int_equal(http_call(&d, "GET", "/events?since=0&follow=false", key, NULL, &b), 200);
	long long seq = 0;
	char *save = NULL;
	for (char *l = strtok_r(b.data ? b.data : (char *)"", "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		cJSON *o = cJSON_Parse(l);
		cJSON *s = o ? cJSON_GetObjectItem(o, "seq") : NULL;
		if (cJSON_IsNumber(s))
			seq = (long long)s->valuedouble;
		cJSON_Delete(o);
	}
	buf_release(&b);
	return seq;
}

static void exec_says(const char *key, const char *name, const char *want)
{
	struct buf o = BUF_INIT, e = BUF_INIT;
	int rc = bhatti(&d, key, NULL, &o, &e, "exec", name, "--", "echo", want, NULL);
	if (rc != 0 || !o.data || strncmp(o.data, want, strlen(want)) != 0)
		fail_msg("exec on '%s': %d '%s' '%s'", name, rc, o.data ? o.data : "",
			 e.data ? e.data : "");
	buf_release(&o);
	buf_release(&e);
}

/* idle → warm → cold, seen in list and in the events; exec wakes a warm,
 * a cold and a user-stopped sandbox; ten execs on a cold one are one wake;
 * kill -9 and a restart keep the state and the timers; keep_hot is kept
 * and a keep_hot sandbox is woken after the restart. */
static void test_warm_cold_wake(void **state UNUSED)
{
	char *key = start_with_user("thermal:\n  warm_after: 2s\n  cold_after: 4s\n"
				    "  check_every: 1s\n");
	struct buf o = BUF_INIT, e = BUF_INIT;
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "t", NULL), 0);
	list_shows(key, "t", "hot");
	wait_thermal(key, "t", "warm", 20000);
	list_shows(key, "t", "warm");
	wait_thermal(key, "t", "cold", 20000);
	list_shows(key, "t", "cold");
	char *st = field(key, "t", "state");
	assert_string_equal(st, "cold");
	free(st);
	cJSON *ev = events(key, "t", 0);
	assert_int_equal(count_state(ev, "warm", "idle", NULL), 1);
	assert_int_equal(count_state(ev, "cold", "idle", NULL), 1);
	cJSON_Delete(ev);

	/* exec on cold: restored, the right answer, one wake with its time */
	long long seq = last_seq(key);
	exec_says(key, "t", "from-cold");
	ev = events(key, "t", seq);
	int wake_ms;
	assert_int_equal(count_state(ev, "hot", "request", &wake_ms), 1);
	assert_true(wake_ms > 0);
	cJSON_Delete(ev);
	cJSON *j = inspect(key, "t");
	assert_int_equal(cJSON_GetObjectItem(j, "wake_count")->valueint, 1);
	assert_int_equal(cJSON_GetObjectItem(j, "last_wake_ms")->valueint, wake_ms);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "warm_after")), "2s");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "cold_after")), "4s");
	cJSON_Delete(j);

	/* exec on warm */
	wait_thermal(key, "t", "warm", 20000);
	exec_says(key, "t", "from-warm");

	/* exec on a user-stopped one: `bhatti stop t && bhatti exec t -- …` */
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "stop", "t", NULL), 0);
	st = field(key, "t", "state");
	assert_string_equal(st, "stopped");
	free(st);
	exec_says(key, "t", "from-stopped");
	st = field(key, "t", "state");
	assert_string_equal(st, "hot");
	free(st);

	/* ten concurrent execs on a cold sandbox: ten answers, one wake */
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "stop", "t", NULL), 0);
	seq = last_seq(key);
	pid_t pids[10];
	for (int i = 0; i < 10; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct buf co = BUF_INIT, ce = BUF_INIT;
			char want[16];
			snprintf(want, sizeof(want), "n%d", i);
			int rc = bhatti(&d, key, NULL, &co, &ce, "exec", "t", "--", "echo", want, NULL);
			bool ok = rc == 0 && co.data && strncmp(co.data, want, strlen(want)) == 0;
			if (!ok)
				fprintf(stderr, "exec %d: %d '%s' '%s'\n", i, rc, co.data ? co.data : "",
					ce.data ? ce.data : "");
			_exit(ok ? 0 : 1);
		}
	}
	for (int i = 0; i < 10; i++) {
		int ws;
		assert_int_equal(waitpid(pids[i], &ws, 0), pids[i]);
		assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	}
	ev = events(key, "t", seq);
	assert_int_equal(count_state(ev, "hot", "request", NULL), 1);
	cJSON_Delete(ev);

	/* restart: warm stays warm with its timer; keep_hot is kept (and
	 * woken) */
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "k", "--keep-hot",
				NULL), 0);
	assert_int_equal(http_call(&d, "PATCH", "/sandboxes/k", key, "{\"keep_hot\":false}", &o),
			 200);
	wait_thermal(key, "t", "warm", 20000);
	wait_thermal(key, "k", "warm", 20000);
	j = inspect(key, "t");
	double since = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "thermal_since"));
	cJSON_Delete(j);
	assert_true(since > 0);
	daemon_kill9(&d);
	/* k: keep_hot again, as if set just before the crash */
	char *db = test_strf("%s/state.db", d.data);
	sqlite3 *sq;
	assert_int_equal(sqlite3_open(db, &sq), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq, "UPDATE sandboxes SET keep_hot = 1 WHERE name = 'k'",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);
	free(db);
	assert_int_equal(daemon_restart(&d), 0);
	j = inspect(key, "t");
	assert_non_null(j);
	const char *th = cJSON_GetStringValue(cJSON_GetObjectItem(j, "thermal"));
	/* warm, or already cold: its cold timer went on from before */
	assert_true(strcmp(th, "warm") == 0 || strcmp(th, "cold") == 0);
	assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "thermal_since")) == since);
	cJSON_Delete(j);
	wait_thermal(key, "t", "cold", 20000);
	wait_thermal(key, "k", "hot", 20000);
	j = inspect(key, "k");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "keep_hot")));
	cJSON_Delete(j);
	sleep(4);   /* past warm_after: keep_hot never pauses */
	assert_true(has_thermal(key, "k", "hot"));
	list_shows(key, "k", "hot");

	/* a wake that fails (a snapshot changed on disk): error with the
	 * reason; start --force says why it cannot help */
	j = inspect(key, "t");
	char *mem = test_strf("%s/sandboxes/%s/mem", d.data,
			      cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
	cJSON_Delete(j);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "stop", "t", NULL), 0);
	int fd = open(mem, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	off_t data = lseek(fd, 0, SEEK_DATA);
	assert_true(data >= 0);
	unsigned char c;
	assert_int_equal(pread(fd, &c, 1, data + 100), 1);
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, data + 100), 1);
	close(fd);
	free(mem);
	buf_reset(&e);
	assert_int_not_equal(bhatti(&d, key, NULL, &o, &e, "exec", "t", "--", "true", NULL), 0);
	assert_non_null(strstr(e.data, "integrity check"));
	st = field(key, "t", "state");
	assert_string_equal(st, "error");
	free(st);
	buf_reset(&e);
	assert_int_not_equal(bhatti(&d, key, NULL, &o, &e, "start", "--force", "t", NULL), 0);
	assert_non_null(strstr(e.data, "destroy it"));
	buf_release(&o);
	buf_release(&e);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

/* ---- shells under tmux (a real terminal for `bhatti shell`) ---- */

static int tmux(const char *a0, ...)
{
	char *argv[32] = { "tmux", "-S", tmux_sock, (char *)a0 };
	int n = 4;
	va_list ap;
	va_start(ap, a0);
	for (const char *a = va_arg(ap, const char *); a && n < 31; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	return test_run(argv, NULL, NULL, 0, NULL, NULL, 20000);
}

/* Is a session of NAME running with a client attached (or, attached
 * false, running and detached)? */
static bool session_is(const char *key, const char *name, bool attached)
{
	struct buf o = BUF_INIT, e = BUF_INIT;
	bool found = false;
	if (bhatti(&d, key, NULL, &o, &e, "ps", name, "--json", NULL) == 0) {
		cJSON *j = cJSON_Parse(o.data), *s;
		cJSON_ArrayForEach(s, j)
			found |= cJSON_IsTrue(cJSON_GetObjectItem(s, "running")) &&
				 cJSON_IsTrue(cJSON_GetObjectItem(s, "attached")) == attached;
		cJSON_Delete(j);
	}
	buf_release(&o);
	buf_release(&e);
	return found;
}

static void wait_session(const char *key, const char *name, bool attached)
{
	for (int waited = 0; waited <= 30000; waited += 200) {
		if (session_is(key, name, attached))
			return;
		usleep(200 * 1000);
	}
	fail_msg("'%s': no %s session", name, attached ? "attached" : "detached");
}

/* `bhatti shell NAME` in tmux window NAME; typed `keys` (NULL: none),
 * then detached when detach. */
static void shell(const char *key, const char *name, const char *keys, bool detach)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "env HOME=%s BHATTI_URL=%s BHATTI_TOKEN=%s %s/bhatti shell %s; "
		 "sleep 600", d.home, d.url, key, test_build_dir(), name);
	char cwd[1024];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	if (!tmux_sock[0]) {
		snprintf(tmux_sock, sizeof(tmux_sock), "%s/tmux.sock", d.dir);
		assert_int_equal(tmux("new-session", "-d", "-s", "th", "-n", name, "-c", cwd, cmd,
				      NULL), 0);
	} else {
		assert_int_equal(tmux("new-window", "-d", "-t", "th", "-n", name, "-c", cwd, cmd,
				      NULL), 0);
	}
	wait_session(key, name, true);
	char target[80];
	snprintf(target, sizeof(target), "th:%s", name);
	if (keys)
		tmux("send-keys", "-t", target, keys, "Enter", NULL);
	if (detach) {
		sleep(1);
		tmux("send-keys", "-t", target, "C-\\", NULL);
		wait_session(key, name, false);
	}
}

/* What keeps a sandbox hot and what does not. */
static void test_activity_signals(void **state UNUSED)
{
	char *key = start_with_user("thermal:\n  warm_after: 6s\n  cold_after: never\n"
				    "  check_every: 1s\n");
	struct buf o = BUF_INIT, e = BUF_INIT;
	tmux_sock[0] = '\0';
	/* shells: attached and idle (hot); a detached busy loop (hot); a
	 * detached sleeping shell (goes warm) */
	static const char *const shells[] = { "attached", "shellbusy", "shellsleep" };
	for (size_t i = 0; i < ARRAY_SIZE(shells); i++)
		assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", shells[i], NULL),
				 0);
	shell(key, "attached", NULL, false);
	shell(key, "shellbusy", "while :; do :; done", true);
	shell(key, "shellsleep", "sleep 100000", true);
	static const char *const boxes[][2] = {
		{ "busy", "while :; do :; done" },
		{ "sleepy", "sleep 100000" },
		/* (nc ends at EOF on its stdin: both keep a sleep's pipe open) */
		{ "tcp", "sleep 100000 | nc -l -p 9000 >/dev/null & sleep 1; "
			 "sleep 100000 | nc 127.0.0.1 9000 >/dev/null" },
		{ "held", "lohar hold -- sleep 20" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(boxes); i++)
		assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", boxes[i][0],
					"--init", boxes[i][1], NULL), 0);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "kept", "--keep-hot",
				NULL), 0);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "execing", NULL), 0);
	uint64_t held_at = now_ms();
	/* a running exec (its stream open) keeps it hot */
	pid_t ex = fork();
	assert_true(ex >= 0);
	if (ex == 0) {
		struct buf co = BUF_INIT, ce = BUF_INIT;
		_exit(bhatti(&d, key, NULL, &co, &ce, "exec", "execing", "--", "sleep", "12", NULL));
	}
	/* the sleeping ones go warm; the others stay hot */
	wait_thermal(key, "sleepy", "warm", 30000);
	wait_thermal(key, "shellsleep", "warm", 30000);
	sleep(3);   /* past warm_after for everyone */
	static const char *const hot[] = { "busy", "tcp", "held", "kept", "execing", "attached",
					   "shellbusy" };
	for (size_t i = 0; i < ARRAY_SIZE(hot); i++) {
		if (!has_thermal(key, hot[i], "hot")) {
			cJSON *j = inspect(key, hot[i]);
			char *s = cJSON_PrintUnformatted(j);
			fail_msg("'%s' is not hot: %s", hot[i], s);
		}
	}
	cJSON *j = inspect(key, "busy");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
				    cJSON_GetObjectItem(j, "activity"), "busy")), "cpu");
	cJSON_Delete(j);
	j = inspect(key, "tcp");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
				    cJSON_GetObjectItem(j, "activity"), "busy")), "tcp");
	cJSON_Delete(j);
	j = inspect(key, "held");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
				    cJSON_GetObjectItem(j, "activity"), "busy")), "hold");
	cJSON_Delete(j);
	/* the exec ends, the hold ends: both cool down, not before */
	int ws;
	assert_int_equal(waitpid(ex, &ws, 0), ex);
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	wait_thermal(key, "execing", "warm", 20000);
	wait_thermal(key, "held", "warm", 30000);
	uint64_t held_for = now_ms() - held_at;
	assert_true(held_for >= 20000);   /* `lohar hold -- sleep 20` held it */
	assert_true(has_thermal(key, "busy", "hot"));
	assert_true(has_thermal(key, "kept", "hot"));
	assert_true(has_thermal(key, "attached", "hot"));
	assert_true(has_thermal(key, "shellbusy", "hot"));
	tmux("kill-server", NULL);
	tmux_sock[0] = '\0';
	buf_release(&o);
	buf_release(&e);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

static long rss_kb(pid_t pid)
{
	char *path = test_strf("/proc/%d/status", (int)pid);
	char *s = read_text(path);
	free(path);
	const char *p = s ? strstr(s, "VmRSS:") : NULL;
	long kb = p ? strtol(p + 6, NULL, 10) : -1;
	free(s);
	return kb;
}

static int connect_daemon(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)d.port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* GET /events as a WebSocket: the 101, then one text message per event. */
static void check_websocket(const char *key)
{
	int fd = connect_daemon();
	char *req = test_strf("GET /events?sandbox=r0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
			      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			      "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n", key);
	assert_int_equal(write_all(fd, req, strlen(req)), 0);
	free(req);
	char head[1024];
	size_t n = 0;
	while (n < sizeof(head) - 1 && (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0)) {
		ssize_t r = read(fd, head + n, 1);
		assert_true(r == 1);
		n++;
	}
	head[n] = '\0';
	assert_non_null(strstr(head, " 101 "));
	const char *body = "{\"name\":\"r0-ws\"}";
	assert_int_equal(api_call(&d, key, "PATCH", "/sandboxes/r0", body, strlen(body), NULL), 200);
	unsigned char fh[2];
	assert_int_equal(read(fd, fh, 2), 2);
	assert_int_equal(fh[0], 0x81);   /* a whole text message */
	size_t len = fh[1] & 0x7f;
	if (len == 126) {
		unsigned char l2[2];
		assert_int_equal(read(fd, l2, 2), 2);
		len = (size_t)l2[0] << 8 | l2[1];
	}
	char *msg = xcalloc(1, len + 1);
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, msg + got, len - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
	cJSON *o = cJSON_Parse(msg);
	assert_non_null(o);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "type")), "sandbox.renamed");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "to")), "r0-ws");
	cJSON_Delete(o);
	free(msg);
	close(fd);
	body = "{\"name\":\"r0\"}";
	assert_int_equal(api_call(&d, key, "PATCH", "/sandboxes/r0-ws", body, strlen(body), NULL),
			 200);
}

/* A subscriber that never reads: resync, and the daemon does not grow. */
static void test_events_slow_subscriber(void **state UNUSED)
{
	char *key = start_with_user("thermal:\n  warm_after: never\n  cold_after: never\n"
				    "limits:\n  reads_per_min: 0\n");
	struct buf o = BUF_INIT, e = BUF_INIT;
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "r0", NULL), 0);
	check_websocket(key);
	/* warm up the daemon's allocations with a first round */
	char name[64], body[128];
	for (int i = 1; i <= 200; i++) {
		snprintf(body, sizeof(body), "{\"name\":\"r%d\"}", i);
		snprintf(name, sizeof(name), "/sandboxes/r%d", i - 1);
		assert_int_equal(api_call(&d, key, "PATCH", name, body, strlen(body), NULL), 200);
	}
	long before = rss_kb(d.pid), mid = 0;

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)d.port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	char *req = test_strf("GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
			      key);
	assert_int_equal(write_all(fd, req, strlen(req)), 0);
	free(req);
	/* many events, none read: each rename is one (~160 bytes) */
	int n = (int)env_long("THERMAL_EVENTS", 40000);
	for (int i = 201; i <= 200 + n; i++) {
		snprintf(body, sizeof(body), "{\"name\":\"r%d-%s\"}", i,
			 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		struct buf nm = BUF_INIT;
		if (i == 201)
			buf_addf(&nm, "/sandboxes/r200");
		else
			buf_addf(&nm, "/sandboxes/r%d-%s", i - 1,
				 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		assert_int_equal(api_call(&d, key, "PATCH", nm.data, body, strlen(body), NULL), 200);
		buf_release(&nm);
		if (i == 200 + n / 2)
			mid = rss_kb(d.pid);
	}
	long after = rss_kb(d.pid);
	/* now read it all: events, then resync, then the end */
	struct buf got = BUF_INIT;
	char b[65536];
	ssize_t r;
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while ((r = read(fd, b, sizeof(b))) > 0)
		buf_add(&got, b, (size_t)r);
	close(fd);
	assert_non_null(got.data);
	if (!strstr(got.data, "{\"type\":\"resync\"}"))
		fail_msg("no resync in %zu bytes read", got.len);
	fprintf(stderr, "# %d events, %zu bytes reached the subscriber; daemon RSS %ld → %ld → "
		"%ld kB (before, halfway, after)\n", n, got.len, before, mid, after);
	/* flat: the second half of the flood (the subscriber long dropped or
	 * stuck) adds nothing that grows with it */
	assert_true(after - mid < 1024);
	assert_true(after - before < 8192);
	buf_release(&got);
	buf_release(&o);
	buf_release(&e);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_warm_cold_wake, stop_daemon),
		cmocka_unit_test_teardown(test_activity_signals, stop_daemon),
		cmocka_unit_test_teardown(test_events_slow_subscriber, stop_daemon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
