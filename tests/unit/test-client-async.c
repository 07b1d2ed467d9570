/* test-client-async.c — unit tests for client/async.c, the asynchronous
 * calls of the client library on the real event loop (shared/loop) against
 * a real loopback socket: a request streamed through its callbacks, a
 * non-2xx body kept, a body sent, a refused connect and a connect that
 * times out (outcomes always on a later loop turn), a cancel from inside a
 * callback; a WebSocket that opens, gets text, binary and a ping (answered
 * with a pong), sends what was queued before the upgrade only after it,
 * closes cleanly; a refused upgrade with the daemon's message, a wrong
 * accept value, bad frames, a close from the daemon and a lost connection.
 * The peer is a canned server in a thread of this test.
 * Sits between cmocka and async.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "async.h"
#include "helpers.h"
#include "loop.h"
#include "wsc.h"

static struct client *client_for(const char *url, int timeout_ms)
{
	struct client_settings s = { .url = (char *)url, .token = "tok",
				     .connect_timeout_ms = timeout_ms };
	return client_new(&s);
}

/* Turn the loop until *flag or 10 s. */
static void run_until(const bool *flag)
{
	uint64_t end = now_ms() + 10000;
	while (!*flag && now_ms() < end)
		loop_run_once(50);
	assert_true(*flag);
}

/* ---- requests ------------------------------------------------------------- */

struct got {
	int heads, status;
	struct buf body;
	bool done, in_call, cancel_in_head;
	struct err e;
};

static void on_head(struct async_req *r, const struct httpc_head *h, void *arg)
{
	struct got *g = arg;
	g->heads++;
	g->status = h->status;
	assert_int_equal(async_req_status(r), h->status);
	if (g->cancel_in_head) {
		async_req_cancel(r);
		g->done = true;   /* done() must not come */
	}
}

static void on_body(struct async_req *r UNUSED, const char *p, size_t n, void *arg)
{
	struct got *g = arg;
	buf_add(&g->body, p, n);
}

static void on_done(struct async_req *r, const struct err *e, void *arg)
{
	struct got *g = arg;
	assert_false(g->in_call);   /* never from inside async_request() */
	assert_false(g->done);
	g->done = true;
	if (e)
		g->e = *e;
	else if (!g->body.len)   /* no body callback: kept */
		buf_add(&g->body, async_req_body(r)->data, async_req_body(r)->len);
}

static const struct async_req_cb stream_cb = { .head = on_head, .body = on_body, .done = on_done };
static const struct async_req_cb keep_cb = { .head = on_head, .done = on_done };

static void request(const char *url, int timeout_ms, const struct async_req_cb *cb,
		    struct client_req *rq, struct got *g)
{
	struct client *c = client_for(url, timeout_ms);
	g->in_call = true;
	async_request(c, rq, cb, g);
	g->in_call = false;
	run_until(&g->done);
	loop_run_once(0);   /* the deferred free */
	client_free(c);
}

static void test_request_streamed(void **state UNUSED)
{
	static const char *const p[] = {
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "lo\r\n",
		"6\r\n world\r\n", "0\r\n\r\n", NULL
	};
	struct canned srv;
	struct canned_conn cc = { .pieces = p };
	canned_start(&srv, &cc, 1);
	struct got g = { .body = BUF_INIT };
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "GET";
	rq.path = "/sandboxes";
	request(srv.url, 0, &stream_cb, &rq, &g);
	canned_end(&srv);
	assert_int_equal(g.e.code, 0);
	assert_int_equal(g.heads, 1);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body.data, "hello world");
	assert_memory_equal(cc.request, "GET /sandboxes HTTP/1.1\r\n", 25);
	assert_non_null(strstr(cc.request, "\r\nAuthorization: Bearer tok\r\n"));
	buf_release(&g.body);
	buf_release(&cc.rest);
}

static void test_request_kept_and_body_sent(void **state UNUSED)
{
	static const char *const p[] = {
		"HTTP/1.1 404 Not Found\r\nContent-Length: 26\r\n\r\n{\"error\":\"no sandbox 'x'\"}",
		NULL
	};
	struct canned srv;
	struct canned_conn cc = { .pieces = p, .read_rest = true };
	canned_start(&srv, &cc, 1);
	struct got g = { .body = BUF_INIT };
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "POST";
	rq.path = "/sandboxes/x/stop";
	rq.body = "{\"a\":1}";
	rq.len = 7;
	rq.ctype = "application/json";
	request(srv.url, 0, &stream_cb, &rq, &g);   /* a 404 body is kept, not streamed */
	canned_end(&srv);
	assert_int_equal(g.e.code, 0);
	assert_int_equal(g.status, 404);
	assert_string_equal(g.body.data, "{\"error\":\"no sandbox 'x'\"}");
	assert_non_null(strstr(cc.request, "\r\nContent-Length: 7\r\n"));
	assert_string_equal(cc.rest.data, "{\"a\":1}");
	buf_release(&g.body);
	buf_release(&cc.rest);

	/* no body callback: a 2xx body is kept too; an answer cut short fails */
	static const char *const q[] = { "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n[1,2", NULL };
	struct canned_conn cq = { .pieces = q };
	canned_start(&srv, &cq, 1);
	struct got h = { .body = BUF_INIT };
	rq = (struct client_req)CLIENT_REQ_INIT;
	rq.method = "GET";
	rq.path = "/q";
	request(srv.url, 0, &keep_cb, &rq, &h);
	canned_end(&srv);
	assert_int_equal(h.e.code, ECONNRESET);
	assert_non_null(strstr(h.e.msg, "GET /q: the daemon closed the connection 5 bytes"));
	buf_release(&h.body);
	buf_release(&cq.rest);
}

static void test_request_cannot_connect(void **state UNUSED)
{
	char url[64];
	free_port_url(url, sizeof(url));
	struct got g = { .body = BUF_INIT };
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "GET";
	rq.path = "/health";
	request(url, 0, &keep_cb, &rq, &g);
	assert_int_equal(g.e.code, ECONNREFUSED);
	assert_true(client_unreachable(&g.e));
	assert_non_null(strstr(g.e.msg, "cannot reach the daemon at http://127.0.0.1:"));
	buf_release(&g.body);

	/* a bad URL, also on a later turn */
	struct got b = { .body = BUF_INIT };
	request("ftp://x", 0, &keep_cb, &rq, &b);
	assert_int_equal(b.e.code, EINVAL);
	buf_release(&b.body);

	/* a listener whose queue is full drops the SYN: the connect times out */
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fill[8];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 0), 0);
	getsockname(lfd, (struct sockaddr *)&a, &al);
	for (size_t i = 0; i < ARRAY_SIZE(fill); i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof(a));
	}
	usleep(50 * 1000);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(a.sin_port));
	struct got t = { .body = BUF_INIT };
	uint64_t start = now_ms();
	request(url, 300, &keep_cb, &rq, &t);
	assert_int_equal(t.e.code, ETIMEDOUT);
	assert_true(now_ms() - start >= 250);
	buf_release(&t.body);
	for (size_t i = 0; i < ARRAY_SIZE(fill); i++)
		close(fill[i]);
	close(lfd);
}

static void test_request_cancel_in_callback(void **state UNUSED)
{
	static const char *const p[] = { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", NULL };
	struct canned srv;
	struct canned_conn cc = { .pieces = p };
	canned_start(&srv, &cc, 1);
	struct got g = { .body = BUF_INIT, .cancel_in_head = true };
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "GET";
	rq.path = "/x";
	request(srv.url, 0, &stream_cb, &rq, &g);
	for (int i = 0; i < 5; i++)
		loop_run_once(10);   /* nothing more comes */
	canned_end(&srv);
	assert_int_equal(g.heads, 1);
	assert_int_equal(g.body.len, 0);
	buf_release(&g.body);
	buf_release(&cc.rest);
}

/* ---- WebSocket ------------------------------------------------------------ */

struct wsgot {
	bool opened, closed, close_on_message;
	struct buf text, binary;
	struct err e;
	int messages;
};

static void ws_open_cb(struct async_ws *ws UNUSED, void *arg)
{
	struct wsgot *g = arg;
	g->opened = true;
}

static void ws_message_cb(struct async_ws *ws, bool binary, const char *p, size_t n, void *arg)
{
	struct wsgot *g = arg;
	assert_true(g->opened);
	g->messages++;
	buf_add(binary ? &g->binary : &g->text, p, n);
	if (g->close_on_message && g->messages == 2) {
		async_ws_send(ws, true, "bye", 3);
		async_ws_close(ws);
	}
}

static void ws_closed_cb(struct async_ws *ws UNUSED, const struct err *e, void *arg)
{
	struct wsgot *g = arg;
	assert_false(g->closed);
	g->closed = true;
	if (e)
		g->e = *e;
}

static const struct async_ws_cb ws_cb = {
	.open = ws_open_cb, .message = ws_message_cb, .closed = ws_closed_cb,
};

/* Open a WebSocket to a canned peer w; the client's frames the peer got,
 * unmasked, into frames (opcode byte + payload, one line each). */
static void ws_run(struct canned_ws *w, struct wsgot *g, const char *early,
		   struct buf *frames)
{
	struct canned srv;
	struct canned_conn cc = { .serve = canned_ws_serve, .arg = w, .read_rest = true };
	w->accept = wsc_accept;
	canned_start(&srv, &cc, 1);
	struct client *c = client_for(srv.url, 0);
	struct async_ws *ws = async_ws_open(c, "/sandboxes/a/ws?cols=80&rows=24", &ws_cb, g);
	if (early)
		async_ws_send(ws, false, early, strlen(early));
	run_until(&g->closed);
	loop_run_once(0);
	client_free(c);
	canned_end(&srv);
	assert_memory_equal(cc.request, "GET /sandboxes/a/ws?cols=80&rows=24 HTTP/1.1\r\n", 46);
	assert_non_null(strstr(cc.request, "\r\nUpgrade: websocket\r\n"));
	assert_non_null(strstr(cc.request, "\r\nSec-WebSocket-Version: 13\r\n"));
	struct buf all = BUF_INIT;
	buf_add(&all, w->got.data, w->got.len);
	buf_add(&all, cc.rest.data, cc.rest.len);
	int op;
	struct buf payload = BUF_INIT;
	while (frames && ws_client_frame(&all, &op, &payload)) {
		buf_addf(frames, "%d:%.*s\n", op, (int)payload.len, payload.data);
		buf_reset(&payload);
	}
	buf_release(&payload);
	buf_release(&all);
	buf_release(&cc.rest);
	buf_release(&w->first);
	buf_release(&w->then);
	buf_release(&w->got);
}

static void wsgot_release(struct wsgot *g)
{
	buf_release(&g->text);
	buf_release(&g->binary);
}

static void test_ws_messages_and_close(void **state UNUSED)
{
	struct canned_ws w = { .delay_ms = 50, .wait_frames = 1 };
	buf_init(&w.first);
	buf_init(&w.then);
	buf_init(&w.got);
	/* a ping, then a text message in two fragments: sent once the early
	 * message arrived; then binary */
	ws_server_frame(&w.then, true, WSC_PING, "pi", 2);
	ws_server_frame(&w.then, false, WSC_TEXT, "{\"type\":", 8);
	ws_server_frame(&w.then, true, WSC_CONT, "\"session\"}", 10);
	ws_server_frame(&w.then, true, WSC_BINARY, "\x1b[1mhi", 6);
	struct wsgot g = { .text = BUF_INIT, .binary = BUF_INIT, .close_on_message = true };
	struct buf frames = BUF_INIT;
	ws_run(&w, &g, "{\"type\":\"resize\"}", &frames);
	assert_false(w.early);   /* nothing before the 101 */
	assert_true(g.opened);
	assert_int_equal(g.e.code, 0);   /* closed by us, cleanly */
	assert_string_equal(g.text.data, "{\"type\":\"session\"}");
	assert_string_equal(g.binary.data, "\x1b[1mhi");
	/* what the peer got, in order: the early text, the pong, ours, the close */
	assert_string_equal(frames.data, "1:{\"type\":\"resize\"}\n10:pi\n2:bye\n8:\x03\xe8\n");
	buf_release(&frames);
	wsgot_release(&g);
}

static void test_ws_refused(void **state UNUSED)
{
	static const char *const p[] = {
		"HTTP/1.1 404 Not Found\r\nContent-Length: 26\r\n\r\n{\"error\":\"no sandbox 'x'\"}",
		NULL
	};
	struct canned srv;
	struct canned_conn cc = { .pieces = p };
	canned_start(&srv, &cc, 1);
	struct client *c = client_for(srv.url, 0);
	struct wsgot g = { .text = BUF_INIT, .binary = BUF_INIT };
	async_ws_open(c, "/sandboxes/x/ws", &ws_cb, &g);
	run_until(&g.closed);
	loop_run_once(0);
	canned_end(&srv);
	assert_false(g.opened);
	assert_int_equal(g.e.code, ENOENT);
	assert_string_equal(g.e.msg, "no sandbox 'x'");
	client_free(c);
	buf_release(&cc.rest);

	/* a refusal that is not JSON, ended by the close */
	static const char *const q[] = { "HTTP/1.1 401 Unauthorized\r\n\r\nnope", NULL };
	struct canned_conn cq = { .pieces = q };
	canned_start(&srv, &cq, 1);
	c = client_for(srv.url, 0);
	struct wsgot h = { .text = BUF_INIT, .binary = BUF_INIT };
	async_ws_open(c, "/sandboxes/x/ws", &ws_cb, &h);
	run_until(&h.closed);
	loop_run_once(0);
	canned_end(&srv);
	assert_int_equal(h.e.code, EACCES);
	assert_string_equal(h.e.msg, "the daemon refused the WebSocket (HTTP 401)");
	client_free(c);
	buf_release(&cq.rest);
}

static void test_ws_bad_peer(void **state UNUSED)
{
	/* a wrong Sec-WebSocket-Accept */
	struct canned_ws w = { .bad_accept = true };
	buf_init(&w.first);
	buf_init(&w.then);
	buf_init(&w.got);
	struct wsgot g = { .text = BUF_INIT, .binary = BUF_INIT };
	ws_run(&w, &g, NULL, NULL);
	assert_false(g.opened);
	assert_int_equal(g.e.code, EPROTO);
	assert_string_equal(g.e.msg, "bad Sec-WebSocket-Accept from the daemon");

	/* a frame with reserved bits, after a good message */
	struct canned_ws b = { 0 };
	buf_init(&b.first);
	buf_init(&b.then);
	buf_init(&b.got);
	ws_server_frame(&b.first, true, WSC_BINARY, "ok", 2);
	buf_add(&b.first, "\xc1\x01x", 3);
	struct wsgot h = { .text = BUF_INIT, .binary = BUF_INIT };
	ws_run(&b, &h, NULL, NULL);
	assert_true(h.opened);
	assert_string_equal(h.binary.data, "ok");
	assert_int_equal(h.e.code, EPROTO);
	assert_string_equal(h.e.msg, "bad data from the daemon");
	wsgot_release(&h);

	/* a close from the daemon: clean, answered */
	struct canned_ws c = { 0 };
	buf_init(&c.first);
	buf_init(&c.then);
	buf_init(&c.got);
	ws_server_frame(&c.first, true, WSC_CLOSE, "\x03\xe8", 2);
	struct wsgot k = { .text = BUF_INIT, .binary = BUF_INIT };
	struct buf frames = BUF_INIT;
	ws_run(&c, &k, NULL, &frames);
	assert_true(k.opened);
	assert_int_equal(k.e.code, 0);
	assert_string_equal(frames.data, "8:\x03\xe8\n");
	buf_release(&frames);

	/* the connection just ends */
	struct canned_ws d = { 0 };
	buf_init(&d.first);
	buf_init(&d.then);
	buf_init(&d.got);
	struct wsgot l = { .text = BUF_INIT, .binary = BUF_INIT };
	struct canned srv;
	struct canned_conn cc = { .serve = canned_ws_serve, .arg = &d };
	d.accept = wsc_accept;
	canned_start(&srv, &cc, 1);
	struct client *cl = client_for(srv.url, 0);
	async_ws_open(cl, "/w", &ws_cb, &l);
	run_until(&l.closed);
	loop_run_once(0);
	canned_end(&srv);
	client_free(cl);
	assert_true(l.opened);
	assert_int_equal(l.e.code, ECONNRESET);
	assert_string_equal(l.e.msg, "the connection to the daemon was lost");
	buf_release(&cc.rest);
}

static void test_ws_close_before_open(void **state UNUSED)
{
	struct canned_ws w = { .delay_ms = 20 };
	buf_init(&w.first);
	buf_init(&w.then);
	buf_init(&w.got);
	w.accept = wsc_accept;
	struct canned srv;
	struct canned_conn cc = { .serve = canned_ws_serve, .arg = &w };
	canned_start(&srv, &cc, 1);
	struct client *c = client_for(srv.url, 0);
	struct wsgot g = { .text = BUF_INIT, .binary = BUF_INIT };
	struct async_ws *ws = async_ws_open(c, "/w", &ws_cb, &g);
	loop_run_once(10);
	async_ws_close(ws);
	assert_false(g.closed);   /* not from inside the call */
	run_until(&g.closed);
	loop_run_once(0);
	canned_end(&srv);
	client_free(c);
	assert_false(g.opened);
	assert_int_equal(g.e.code, 0);
	buf_release(&cc.rest);
}

static int setup(void **state UNUSED)
{
	signal(SIGPIPE, SIG_IGN);
	return loop_init();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_streamed),
		cmocka_unit_test(test_request_kept_and_body_sent),
		cmocka_unit_test(test_request_cannot_connect),
		cmocka_unit_test(test_request_cancel_in_callback),
		cmocka_unit_test(test_ws_messages_and_close),
		cmocka_unit_test(test_ws_refused),
		cmocka_unit_test(test_ws_bad_peer),
		cmocka_unit_test(test_ws_close_before_open),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
