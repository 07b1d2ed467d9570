/* test-client-shell.c — unit tests for client/shell.c, the terminal
 * session module: picking the one detached session (from a sessions list
 * of every shape), attaching to it with the window size, keys typed before
 * the attach sent after it, output and the session message reported, and
 * each way a session ends: exit with its code, an exit without a code or
 * with one that is not a number (an error, not a crash), the daemon's
 * error, the daemon detaching us, our own detach (a resize and a close
 * frame reach the daemon), a refused upgrade, a daemon that cannot be
 * reached, a connection that just ends, and shell_free() from inside a
 * callback. On the real event loop over a real loopback socket; the
 * daemon is a canned peer in a thread of this test.
 * Sits between cmocka and shell.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "loop.h"
#include "shell.h"
#include "wsc.h"

struct seen {
	struct shell *s;
	char picked[64];
	bool attached, is_new, ended, detached_asked, free_in_output;
	char session[64];
	struct buf out;
	int exit_code;            /* -1: none */
	const char *how;          /* "exit", "error", "detached" */
	struct err e;
	int finals;
};

static void on_attached(struct shell *s UNUSED, const char *picked, void *arg)
{
	struct seen *x = arg;
	x->attached = true;
	snprintf(x->picked, sizeof(x->picked), "%s", picked ? picked : "");
}

static void on_session(struct shell *s UNUSED, const char *id, bool is_new, void *arg)
{
	struct seen *x = arg;
	snprintf(x->session, sizeof(x->session), "%s", id);
	x->is_new = is_new;
}

static void on_output(struct shell *s, const char *p, size_t n, void *arg)
{
	struct seen *x = arg;
	assert_true(x->attached);
	buf_add(&x->out, p, n);
	if (x->free_in_output) {
		shell_free(s);
		x->s = NULL;
		x->ended = true;
	}
}

static void final(struct seen *x, const char *how)
{
	x->finals++;
	x->how = how;
	x->ended = true;
}

static void on_exit_code(struct shell *s UNUSED, int code, void *arg)
{
	struct seen *x = arg;
	x->exit_code = code;
	final(x, "exit");
}

static void on_error(struct shell *s UNUSED, const struct err *e, void *arg)
{
	struct seen *x = arg;
	x->e = *e;
	final(x, "error");
}

static void on_detached(struct shell *s UNUSED, bool asked, void *arg)
{
	struct seen *x = arg;
	x->detached_asked = asked;
	final(x, "detached");
}

static const struct shell_cb cb = {
	.attached = on_attached, .session = on_session, .output = on_output,
	.exit = on_exit_code, .error = on_error, .detached = on_detached,
};

static void seen_init(struct seen *x)
{
	memset(x, 0, sizeof(*x));
	buf_init(&x->out);
	x->exit_code = -1;
}

static void run_until_ended(struct seen *x)
{
	uint64_t end = now_ms() + 10000;
	while (!x->ended && now_ms() < end)
		loop_run_once(50);
	assert_true(x->ended);
	for (int i = 0; i < 3; i++)
		loop_run_once(5);   /* nothing more may come */
	assert_true(x->finals <= 1);
	shell_free(x->s);
	loop_run_once(0);
}

static void ws_init(struct canned_ws *w, int wait_frames)
{
	memset(w, 0, sizeof(*w));
	w->accept = wsc_accept;
	w->wait_frames = wait_frames;
	buf_init(&w->first);
	buf_init(&w->then);
	buf_init(&w->got);
}

static void ws_release(struct canned_ws *w)
{
	buf_release(&w->first);
	buf_release(&w->then);
	buf_release(&w->got);
}

static void text(struct buf *out, const char *json)
{
	ws_server_frame(out, true, WSC_TEXT, json, strlen(json));
}

static void binary(struct buf *out, const char *p)
{
	ws_server_frame(out, true, WSC_BINARY, p, strlen(p));
}

/* The client's frames the peer got (w->got, then rest): "op:payload\n"... */
static void frames_of(struct canned_ws *w, struct buf *rest, struct buf *out)
{
	struct buf all = BUF_INIT, payload = BUF_INIT;
	buf_add(&all, w->got.data, w->got.len);
	buf_add(&all, rest->data, rest->len);
	int op;
	while (ws_client_frame(&all, &op, &payload)) {
		buf_addf(out, "%d:%.*s\n", op, (int)payload.len, payload.data);
		buf_reset(&payload);
	}
	buf_release(&payload);
	buf_release(&all);
}

/* One session against a canned WebSocket peer w (no picking). */
static void attach(struct canned_ws *w, const struct shell_opts *o, struct seen *x,
		   struct buf *frames, char *request)
{
	struct canned srv;
	struct canned_conn cc = { .serve = canned_ws_serve, .arg = w, .read_rest = true };
	canned_start(&srv, &cc, 1);
	struct client_settings set = { .url = srv.url, .token = "tok" };
	struct client *c = client_new(&set);
	x->s = shell_open(c, o, &cb, x);
	run_until_ended(x);
	client_free(c);
	canned_end(&srv);
	if (frames)
		frames_of(w, &cc.rest, frames);
	if (request)
		memcpy(request, cc.request, sizeof(cc.request));
	buf_release(&cc.rest);
}

static void test_pick(void **state UNUSED)
{
	static const struct { const char *json; const char *want; } cases[] = {
		{ "[{\"id\":\"init\",\"running\":true,\"attached\":false},"
		  "{\"id\":\"s1\",\"running\":true,\"attached\":true},"
		  "{\"id\":\"s2\",\"running\":true,\"attached\":false},"
		  "{\"id\":\"s3\",\"running\":false,\"attached\":false}]", "s2" },
		{ "[{\"id\":\"s2\",\"running\":true},{\"id\":\"s4\",\"running\":true}]", NULL },
		{ "[{\"id\":\"init\",\"running\":true}]", NULL },
		{ "[]", NULL },
		{ "{\"id\":\"s2\",\"running\":true}", NULL },
		{ "[{\"id\":7,\"running\":true}]", NULL },
		{ "not json", NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = shell_pick(cases[i].json, strlen(cases[i].json));
		if (cases[i].want)
			assert_string_equal(got, cases[i].want);
		else
			assert_null(got);
		free(got);
	}
}

/* A session that picks: the sessions list is answered with `sessions`,
 * the upgrade by w; the requests into cc. */
static void pick_and_attach(const char *const *sessions, struct canned_ws *w,
			    const struct shell_opts *o, const char *typed, struct seen *x,
			    struct canned_conn cc[2])
{
	struct canned srv;
	cc[0] = (struct canned_conn){ .pieces = sessions };
	cc[1] = (struct canned_conn){ .serve = canned_ws_serve, .arg = w, .read_rest = true };
	canned_start(&srv, cc, 2);
	struct client_settings set = { .url = srv.url, .token = "tok" };
	struct client *c = client_new(&set);
	seen_init(x);
	x->s = shell_open(c, o, &cb, x);
	if (typed)
		shell_input(x->s, typed, strlen(typed));   /* before the attach */
	run_until_ended(x);
	client_free(c);
	canned_end(&srv);
	buf_release(&cc[0].rest);
}

static void test_pick_attach_exit(void **state UNUSED)
{
	static const char *const sessions[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 91\r\n\r\n"
		"[{\"id\":\"init\",\"running\":true,\"attached\":false},"
		"{\"id\":\"s2\",\"running\":true,\"attached\":false}]",
		NULL
	};
	struct canned_ws w;
	ws_init(&w, 1);
	text(&w.first, "{\"type\":\"session\",\"id\":\"s2\",\"new\":false}");
	binary(&w.first, "scrollback;");
	binary(&w.then, "live;");
	text(&w.then, "{\"type\":\"exit\",\"exit_code\":3}");
	binary(&w.then, "after the end");
	struct shell_opts o = { .name = "my dev", .pick = true, .cols = 100, .rows = 30 };
	struct seen x;
	struct canned_conn cc[2];
	pick_and_attach(sessions, &w, &o, "ls\r", &x, cc);
	assert_memory_equal(cc[0].request, "GET /sandboxes/my%20dev/sessions HTTP/1.1\r\n", 43);
	assert_memory_equal(cc[1].request,
			    "GET /sandboxes/my%20dev/ws?cols=100&rows=30&session=s2 HTTP/1.1\r\n", 65);
	assert_false(w.early);
	assert_string_equal(x.picked, "s2");
	assert_string_equal(x.session, "s2");
	assert_false(x.is_new);
	assert_string_equal(x.out.data, "scrollback;live;");
	assert_string_equal(x.how, "exit");
	assert_int_equal(x.exit_code, 3);
	struct buf f = BUF_INIT;
	frames_of(&w, &cc[1].rest, &f);
	assert_string_equal(f.data, "2:ls\r\n");
	buf_release(&f);
	buf_release(&x.out);
	buf_release(&cc[1].rest);
	ws_release(&w);
}

static void test_no_pick_new_session(void **state UNUSED)
{
	/* no session to pick (404 for the list): a new one, no ?session */
	static const char *const sessions[] = {
		"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}", NULL
	};
	struct canned_ws w;
	ws_init(&w, 0);
	text(&w.first, "{\"type\":\"session\",\"id\":\"s9\",\"new\":true}");
	text(&w.first, "{\"type\":\"exit\",\"exit_code\":0}");
	struct shell_opts o = { .name = "dev", .pick = true };
	struct seen x;
	struct canned_conn cc[2];
	pick_and_attach(sessions, &w, &o, NULL, &x, cc);
	assert_memory_equal(cc[1].request, "GET /sandboxes/dev/ws?cols=80&rows=24 HTTP/1.1\r\n", 48);
	assert_string_equal(x.picked, "");
	assert_true(x.is_new);
	assert_string_equal(x.how, "exit");
	assert_int_equal(x.exit_code, 0);
	buf_release(&x.out);
	buf_release(&cc[1].rest);
	ws_release(&w);
}

/* The session's last message, and what the module makes of it. */
static void test_endings(void **state UNUSED)
{
	static const struct {
		const char *msg, *how;
		int code;              /* exit code, or the error's errno */
		const char *text;      /* the error's message */
		bool asked;
	} cases[] = {
		{ "{\"type\":\"exit\",\"exit_code\":137}", "exit", 137, NULL, false },
		{ "{\"type\":\"exit\"}", "error", EPROTO, "not with which code", false },
		{ "{\"type\":\"exit\",\"exit_code\":\"3\"}", "error", EPROTO, "not with which code", false },
		{ "{\"type\":\"error\",\"error\":\"the agent went away\"}", "error", EIO,
		  "the agent went away", false },
		{ "{\"type\":\"error\"}", "error", EIO, "without a message", false },
		{ "{\"type\":\"detached\"}", "detached", 0, NULL, false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct canned_ws w;
		ws_init(&w, 0);
		text(&w.first, "{\"type\":\"session\",\"id\":\"s1\",\"new\":true}");
		text(&w.first, "{\"type\":\"what is this\"}");   /* unknown: ignored */
		text(&w.first, "not json");                       /* ignored too */
		text(&w.first, cases[i].msg);
		struct shell_opts o = { .name = "dev", .session = "s1" };
		struct seen x;
		seen_init(&x);
		char req[4096];
		attach(&w, &o, &x, NULL, req);
		assert_memory_equal(req, "GET /sandboxes/dev/ws?cols=80&rows=24&session=s1 ", 49);
		assert_string_equal(x.how, cases[i].how);
		if (strcmp(cases[i].how, "exit") == 0)
			assert_int_equal(x.exit_code, cases[i].code);
		if (cases[i].text) {
			assert_int_equal(x.e.code, cases[i].code);
			assert_non_null(strstr(x.e.msg, cases[i].text));
		}
		if (strcmp(cases[i].how, "detached") == 0)
			assert_false(x.detached_asked);
		buf_release(&x.out);
		ws_release(&w);
	}
}

static void on_output_detach(struct shell *s, const char *p, size_t n, void *arg)
{
	struct seen *x = arg;
	buf_add(&x->out, p, n);
	shell_resize(s, 120, 40);
	shell_resize(s, 120, 40);   /* the same size again: not sent twice */
	shell_input(s, "typed", 5);
	shell_detach(s);
	shell_input(s, "too late", 8);
}

static void test_detach(void **state UNUSED)
{
	struct canned_ws w;
	ws_init(&w, 0);
	text(&w.first, "{\"type\":\"session\",\"id\":\"s5\",\"new\":true}");
	binary(&w.first, "prompt$ ");
	struct shell_cb dcb = cb;
	dcb.output = on_output_detach;
	struct canned srv;
	struct canned_conn cc = { .serve = canned_ws_serve, .arg = &w, .read_rest = true };
	canned_start(&srv, &cc, 1);
	struct client_settings set = { .url = srv.url, .token = "tok" };
	struct client *c = client_new(&set);
	struct shell_opts o = { .name = "dev" };
	struct seen x;
	seen_init(&x);
	x.s = shell_open(c, &o, &dcb, &x);
	run_until_ended(&x);
	client_free(c);
	canned_end(&srv);
	assert_string_equal(x.how, "detached");
	assert_true(x.detached_asked);
	assert_string_equal(x.out.data, "prompt$ ");
	struct buf f = BUF_INIT;
	frames_of(&w, &cc.rest, &f);
	assert_string_equal(f.data, "1:{\"type\":\"resize\",\"cols\":120,\"rows\":40}\n2:typed\n"
				    "8:\x03\xe8\n");
	buf_release(&f);
	buf_release(&x.out);
	buf_release(&cc.rest);
	ws_release(&w);
}

/* A session that picks from a daemon that is not there; detach at once. */
static void unreachable(struct seen *x, bool detach)
{
	char url[64];
	free_port_url(url, sizeof(url));
	struct client_settings set = { .url = url };
	struct client *c = client_new(&set);
	struct shell_opts o = { .name = "dev", .pick = true };
	seen_init(x);
	x->s = shell_open(c, &o, &cb, x);
	if (detach)
		shell_detach(x->s);
	assert_false(x->ended);   /* not from inside the calls */
	run_until_ended(x);
	client_free(c);
}

static void test_detach_before_attach(void **state UNUSED)
{
	struct seen x;
	unreachable(&x, true);
	assert_string_equal(x.how, "detached");
	assert_true(x.detached_asked);
}

static void test_failures(void **state UNUSED)
{
	/* the daemon is not there: the sessions list fails */
	struct seen x;
	unreachable(&x, false);
	assert_string_equal(x.how, "error");
	assert_true(client_unreachable(&x.e));

	/* the upgrade is refused */
	static const char *const nope[] = {
		"HTTP/1.1 404 Not Found\r\nContent-Length: 26\r\n\r\n{\"error\":\"no sandbox 'x'\"}",
		NULL
	};
	struct canned srv;
	struct canned_conn cc = { .pieces = nope };
	canned_start(&srv, &cc, 1);
	struct client_settings set = { .url = srv.url };
	struct client *c = client_new(&set);
	struct shell_opts o = { .name = "x", .session = "s1" };
	seen_init(&x);
	x.s = shell_open(c, &o, &cb, &x);
	run_until_ended(&x);
	client_free(c);
	canned_end(&srv);
	buf_release(&cc.rest);
	assert_string_equal(x.how, "error");
	assert_int_equal(x.e.code, ENOENT);
	assert_string_equal(x.e.msg, "no sandbox 'x'");
	assert_false(x.attached);

	/* the daemon closes with no last word */
	struct canned_ws w;
	ws_init(&w, 0);
	binary(&w.first, "half a line");
	ws_server_frame(&w.first, true, WSC_CLOSE, "", 0);
	o = (struct shell_opts){ .name = "dev" };
	seen_init(&x);
	attach(&w, &o, &x, NULL, NULL);
	assert_string_equal(x.how, "error");
	assert_int_equal(x.e.code, ECONNRESET);
	assert_string_equal(x.e.msg, "the connection to the daemon was lost");
	assert_string_equal(x.out.data, "half a line");
	buf_release(&x.out);
	ws_release(&w);
}

static void test_free_in_callback(void **state UNUSED)
{
	struct canned_ws w;
	ws_init(&w, 0);
	binary(&w.first, "one");
	binary(&w.first, "two");
	text(&w.first, "{\"type\":\"exit\",\"exit_code\":1}");
	struct shell_opts o = { .name = "dev" };
	struct seen x;
	seen_init(&x);
	x.free_in_output = true;
	attach(&w, &o, &x, NULL, NULL);
	assert_string_equal(x.out.data, "one");   /* nothing after the free */
	assert_int_equal(x.finals, 0);
	buf_release(&x.out);
	ws_release(&w);
}

static int setup(void **state UNUSED)
{
	signal(SIGPIPE, SIG_IGN);
	return loop_init();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_pick_attach_exit),
		cmocka_unit_test(test_no_pick_new_session),
		cmocka_unit_test(test_endings),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_detach_before_attach),
		cmocka_unit_test(test_failures),
		cmocka_unit_test(test_free_in_callback),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
