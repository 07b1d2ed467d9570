/* test-daemon-execs.c — GET /sandboxes/:id/execs against a real daemon
 * and VM: a watcher sees an API client's exec (the command, stdout and
 * stderr, the exit code) while it runs; a watcher that comes later gets
 * the last commands and their output first (marked replay); another
 * user's watch is refused (an error message with status 404, then the
 * close, as for the shell), a bad key before the upgrade (401); a watcher that never reads neither
 * slows an exec of 32 MiB of output nor grows the daemon's memory (the
 * tee drops for it, bounded, instead of queueing).
 *
 * Real daemon, real VM, raw WebSockets (the frames through the client
 * library's codec).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "helpers.h"
#include "wsc.h"

static struct daemon_proc d;
static char *key, *key2;

static int stop_daemon(void **state UNUSED)
{
	if (d.dir)
		daemon_stop(&d, true);
	free(key);
	free(key2);
	return 0;
}

struct ws {
	int fd;
	struct buf in;
	struct wsc dec;
};

/* Upgrade path as the user of tok; the status line of the answer. A
 * receive buffer of rcvbuf bytes when not 0 (a client that reads slowly). */
static int ws_open(struct ws *w, const char *path, const char *tok, int rcvbuf)
{
	memset(w, 0, sizeof(*w));
	buf_init(&w->in);
	wsc_init(&w->dec);
	w->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(w->fd >= 0);
	if (rcvbuf)
		setsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)d.port) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(connect(w->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return test_ws_upgrade(w->fd, path, tok, &w->in);
}

static void ws_close(struct ws *w)
{
	close(w->fd);
	buf_release(&w->in);
	wsc_release(&w->dec);
}

/* The next text message as JSON (caller deletes), or NULL after ms. */
static cJSON *ws_next(struct ws *w, int ms)
{
	for (int waited = 0; waited <= ms; waited += 50) {
		int op;
		int r = wsc_take(&w->dec, &w->in, &op);
		assert_true(r >= 0);
		if (r == 1 && op == WSC_TEXT)
			return cJSON_ParseWithLength(w->dec.msg.data, w->dec.msg.len);
		if (r == 1)
			continue;
		struct timeval tv = { 0, 50000 };
		fd_set fs;
		FD_ZERO(&fs);
		FD_SET(w->fd, &fs);
		if (select(w->fd + 1, &fs, NULL, NULL, &tv) <= 0)
			continue;
		char tmp[65536];
		ssize_t n = read(w->fd, tmp, sizeof(tmp));
		if (n <= 0)
			return NULL;
		buf_add(&w->in, tmp, (size_t)n);
	}
	return NULL;
}

/* What a watcher saw of one command: "exec sh -c …|out:…|err:…|exit 4". */
static void collect(struct ws *w, struct buf *seen, bool want_replay)
{
	for (;;) {
		cJSON *j = ws_next(w, 30000);
		if (!j)
			fail_msg("the watcher got no end; it saw: %s", seen->data);
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "type"));
		assert_non_null(t);
		assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(j, "replay")), want_replay);
		assert_true(cJSON_GetObjectItem(j, "exec")->valueint >= 1);
		if (strcmp(t, "exec") == 0) {
			buf_adds(seen, "exec");
			cJSON *a;
			cJSON_ArrayForEach(a, cJSON_GetObjectItem(j, "argv"))
				buf_addf(seen, " %s", a->valuestring);
			buf_addch(seen, '|');
		} else if (strcmp(t, "stdout") == 0 || strcmp(t, "stderr") == 0) {
			buf_addf(seen, "%s:%s|", t[3] == 'o' ? "out" : "err",
				 cJSON_GetStringValue(cJSON_GetObjectItem(j, "data")));
		} else if (strcmp(t, "exit") == 0) {
			buf_addf(seen, "exit %d", cJSON_GetObjectItem(j, "exit_code")->valueint);
			assert_true(cJSON_IsNumber(cJSON_GetObjectItem(j, "duration_ms")));
			cJSON_Delete(j);
			return;
		}
		cJSON_Delete(j);
	}
}

static long daemon_rss_kb(void)
{
	char *path = test_strf("/proc/%d/status", (int)d.pid);
	char *st = read_text(path);
	free(path);
	const char *p = st ? strstr(st, "VmRSS:") : NULL;
	long kb = p ? strtol(p + 6, NULL, 10) : 0;
	free(st);
	return kb;
}

/* A CLI exec of n bytes of output, read by the CLI as it comes: ms. */
static double big_exec_ms(const char *bytes)
{
	uint64_t t0 = now_ms();
	struct buf o = BUF_INIT, e = BUF_INIT;
	char *cmd = test_strf("head -c %s /dev/zero | tr '\\0' x", bytes);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "dev", "--", "sh", "-c", cmd, NULL), 0);
	assert_int_equal(o.len, strtoul(bytes, NULL, 10));
	free(cmd);
	buf_release(&o);
	buf_release(&e);
	return (double)(now_ms() - t0);
}

static void test_execs(void **state UNUSED)
{
	assert_int_equal(daemon_start(&d, "pool_size: 0\n"), 0);
	key = daemon_user(&d, "u", NULL);
	key2 = daemon_user(&d, "other", NULL);
	assert_non_null(key);
	assert_non_null(key2);
	struct buf o = BUF_INIT, e = BUF_INIT;
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "dev", NULL), 0);

	/* a watcher sees an API client's exec while it runs */
	struct ws w1;
	assert_int_equal(ws_open(&w1, "/sandboxes/dev/execs", key, 0), 101);
	const char *body = "{\"cmd\":[\"sh\",\"-c\",\"echo hi; echo oops >&2; exit 4\"]}";
	buf_reset(&o);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/dev/exec", key, body, &o), 200);
	struct buf seen = BUF_INIT;
	collect(&w1, &seen, false);
	/* stdout and stderr may come in either order */
	assert_non_null(strstr(seen.data, "exec sh -c echo hi; echo oops >&2; exit 4|"));
	assert_non_null(strstr(seen.data, "|out:hi\n|"));
	assert_non_null(strstr(seen.data, "err:oops\n|"));
	assert_non_null(strstr(seen.data, "exit 4"));

	/* one that comes later gets it first, as replay */
	struct ws w2;
	assert_int_equal(ws_open(&w2, "/sandboxes/dev/execs", key, 0), 101);
	struct buf seen2 = BUF_INIT;
	collect(&w2, &seen2, true);
	assert_string_equal(seen2.data, seen.data);
	ws_close(&w2);
	buf_release(&seen2);
	buf_release(&seen);

	/* another user's watch: no such sandbox (said after the upgrade, as
	 * for the shell: the sandbox is looked up by the handler) */
	struct ws w3;
	assert_int_equal(ws_open(&w3, "/sandboxes/dev/execs", key2, 0), 101);
	cJSON *refused = ws_next(&w3, 10000);
	assert_non_null(refused);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(refused, "type")), "error");
	assert_int_equal(cJSON_GetObjectItem(refused, "status")->valueint, 404);
	cJSON_Delete(refused);
	assert_null(ws_next(&w3, 5000));   /* then closed */
	ws_close(&w3);
	/* a bad key: refused before the upgrade */
	struct ws w4;
	assert_int_equal(ws_open(&w4, "/sandboxes/dev/execs", "bht_nope", 0), 401);
	ws_close(&w4);

	/* a watcher that never reads: the exec is not slowed, the daemon
	 * does not keep its output */
	double base = big_exec_ms("33554432");
	long rss0 = daemon_rss_kb();
	struct ws slow;
	assert_int_equal(ws_open(&slow, "/sandboxes/dev/execs", key, 4096), 101);
	double with = big_exec_ms("33554432");
	long rss1 = daemon_rss_kb();
	print_message("32 MiB exec: %.0f ms alone, %.0f ms with a watcher that never reads; "
		      "daemon RSS %ld -> %ld kB\n", base, with, rss0, rss1);
	assert_true(with < base * 2 + 3000);
	assert_true(rss1 - rss0 < 16 * 1024);
	/* the reading watcher got the start and the end (its output in part,
	 * with a marker where it was dropped) */
	bool dropped = false, ended = false;
	for (cJSON *j; !ended && (j = ws_next(&w1, 30000));) {
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "type"));
		dropped |= strcmp(t, "dropped") == 0;
		ended = strcmp(t, "exit") == 0 && cJSON_GetObjectItem(j, "exec")->valueint == 3;
		cJSON_Delete(j);
	}
	assert_true(ended);
	(void)dropped;   /* w1 read as it came: it may or may not have fallen behind */
	ws_close(&slow);
	ws_close(&w1);

	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "destroy", "-y", "dev", NULL), 0);
	buf_release(&o);
	buf_release(&e);
	assert_int_equal(daemon_stop(&d, true), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_execs, stop_daemon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
