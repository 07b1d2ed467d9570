/* test-agent-client.c — the daemon's agent client (daemon/agent-client.c)
 * against a hostile agent: issue 10, item 2 ("a malicious guest agent is
 * a tenant"). The agent here is the other end of a socketpair, written by
 * hand frame by frame (proto_put_*): what a tenant with root in the guest
 * can send after replacing lohar. Sits between cmocka and the client's
 * async layer (ac_new, ac_open, ac_on_readable, ac_flush, ac_send_*);
 * uses only calls that already existed at commit 923ebb0, so the same
 * file shows the findings there (each test fails on that commit).
 *
 * Rule checked: a frame the stream's request does not allow, a once-only
 * frame sent twice, a frame after the stream's END and credit that does
 * not add up end the connection (every stream hears why, exactly once);
 * an agent that grants credit but never reads cannot make the client
 * queue without bound. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-client.h"
#include "buf.h"
#include "proto.h"

/* What the host side saw on one stream. */
struct seen {
	int frames;          /* non-DATA frames delivered */
	size_t data;         /* DATA bytes delivered */
	int closed;          /* `closed` callbacks (must end at 1) */
	bool closed_error;   /* the last one carried an error */
};

static void on_frame(struct ac_stream *s, const struct proto_frame *f, void *arg)
{
	(void)s;
	(void)f;
	((struct seen *)arg)->frames++;
}

static void on_data(struct ac_stream *s, uint8_t ch, const uint8_t *p, size_t n, void *arg)
{
	(void)s;
	(void)ch;
	(void)p;
	((struct seen *)arg)->data += n;
}

static void on_closed(struct ac_stream *s, const struct err *e, void *arg)
{
	(void)s;
	struct seen *w = arg;
	w->closed++;
	w->closed_error = e != NULL;
}

static const struct ac_stream_cb CB = {
	.frame = on_frame,
	.data = on_data,
	.closed = on_closed,
};

/* The host's client and the hostile agent's end of the socket. */
struct pair {
	struct ac *ac;
	int agent;           /* blocking; the test writes frames here */
};

static void agent_send(struct pair *p, struct buf *b)
{
	size_t off = 0;
	while (off < b->len) {
		ssize_t n = write(p->agent, b->data + off, b->len - off);
		assert_true(n > 0);
		off += (size_t)n;
	}
	buf_reset(b);
}

static void agent_msg(struct pair *p, uint32_t stream, uint8_t type, uint16_t flags,
		      const void *msg)
{
	struct buf b = BUF_INIT;
	assert_int_equal(proto_put_msg(&b, stream, type, flags, msg), 0);
	agent_send(p, &b);
	buf_release(&b);
}

/* Let the client read everything the agent sent: 0, or < 0 once the
 * connection died. */
static int host_read(struct pair *p)
{
	struct err e = { 0 };
	for (int i = 0; i < 1000; i++) {
		if (ac_dead(p->ac))
			return -EPIPE;
		struct pollfd pfd = { .fd = ac_fd(p->ac), .events = POLLIN };
		if (poll(&pfd, 1, 0) <= 0)
			return 0;
		if (ac_on_readable(p->ac, &e) < 0)
			return -EPIPE;
	}
	return 0;
}

/* Drain what the host sent so far (the agent's reading), discarded. */
static size_t agent_drain(struct pair *p)
{
	char tmp[65536];
	size_t total = 0;
	for (;;) {
		struct pollfd pfd = { .fd = p->agent, .events = POLLIN };
		if (poll(&pfd, 1, 0) <= 0)
			return total;
		ssize_t n = read(p->agent, tmp, sizeof(tmp));
		if (n <= 0)
			return total;
		total += (size_t)n;
	}
}

/* A ready client: HELLO out, HELLO_OK in. */
static void pair_open(struct pair *p)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK), 0);
	p->ac = ac_new(sv[0], "token", "test-agent-client");
	assert_non_null(p->ac);
	p->agent = sv[1];
	struct err e = { 0 };
	assert_int_equal(ac_flush(p->ac, &e), 0);
	assert_true(agent_drain(p) > 0); /* HELLO */
	struct proto_hello_ok ok = {
		.version = PROTO_VERSION,
		.agent_version = "evil 6.6.6",
		.max_frame = PROTO_MAX_FRAME,
		.window = PROTO_WINDOW,
		.max_streams = PROTO_MAX_STREAMS,
		.hostname = "evil",
		.configured = 1,
	};
	agent_msg(p, 0, PROTO_HELLO_OK, 0, &ok);
	assert_int_equal(host_read(p), 0);
	assert_true(ac_ready(p->ac));
}

static void pair_close(struct pair *p)
{
	ac_free(p->ac);
	close(p->agent);
}

/* An exec stream (with stdin when `in`), its request flushed and read. */
static struct ac_stream *open_exec(struct pair *p, struct seen *w, bool in)
{
	char *argv[] = { "true", NULL };
	struct proto_exec x = { .argv = argv, .flags = in ? PROTO_EXEC_STDIN : 0 };
	struct err e = { 0 };
	struct ac_stream *s = ac_open(p->ac, PROTO_EXEC, &x, &CB, w, &e);
	assert_non_null(s);
	assert_int_equal(ac_flush(p->ac, &e), 0);
	agent_drain(p);
	return s;
}

/* The connection ended because of the agent, and the stream heard it
 * once, with an error. */
static void assert_ended(struct pair *p, const struct seen *w)
{
	assert_true(ac_dead(p->ac));
	assert_int_equal(w->closed, 1);
	assert_true(w->closed_error);
}

/* EXEC_STARTED is once per exec: a second one is a protocol error (before:
 * every repeat reached the handler, which kept state and logged). */
static void test_once_only_frame_twice(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	struct seen w = { 0 };
	struct ac_stream *s = open_exec(&p, &w, false);
	struct proto_exec_started st = { .pid = 42, .output_path = "" };
	agent_msg(&p, ac_stream_id(s), PROTO_EXEC_STARTED, 0, &st);
	assert_int_equal(host_read(&p), 0);
	assert_int_equal(w.frames, 1);
	agent_msg(&p, ac_stream_id(s), PROTO_EXEC_STARTED, 0, &st);
	host_read(&p);
	assert_int_equal(w.frames, 1);
	assert_ended(&p, &w);
	pair_close(&p);
}

/* A FILE_READ gets one FILE_META: a flood of them (no flow control on
 * non-DATA frames) grew daemon memory; now the second ends it. */
static void test_file_meta_flood(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	struct seen w = { 0 };
	struct proto_file_read rq = { .path = "/etc/hostname" };
	struct err e = { 0 };
	struct ac_stream *s = ac_open(p.ac, PROTO_FILE_READ, &rq, &CB, &w, &e);
	assert_non_null(s);
	assert_int_equal(ac_flush(p.ac, &e), 0);
	agent_drain(&p);
	struct proto_file_meta m = { .type = PROTO_FT_FILE, .mode = 0644, .size = 5,
				     .link_target = "" };
	for (int i = 0; i < 100 && !ac_dead(p.ac); i++) {
		agent_msg(&p, ac_stream_id(s), PROTO_FILE_META, 0, &m);
		host_read(&p);
	}
	assert_int_equal(w.frames, 1);
	assert_ended(&p, &w);
	pair_close(&p);
}

/* A frame type the request never gets (a directory listing on an exec). */
static void test_unexpected_type(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	struct seen w = { 0 };
	struct ac_stream *s = open_exec(&p, &w, false);
	struct proto_ls_result ls = { 0 };
	agent_msg(&p, ac_stream_id(s), PROTO_LS_RESULT, 0, &ls);
	host_read(&p);
	assert_int_equal(w.frames, 0);
	assert_ended(&p, &w);
	pair_close(&p);
}

/* After its END a stream is gone: a second terminal frame for it is the
 * agent writing to a stream it does not have. The stream itself ended
 * normally (closed once, no error); the connection then ends. */
static void test_second_terminal_frame(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	struct seen w = { 0 };
	struct ac_stream *s = open_exec(&p, &w, false);
	uint32_t id = ac_stream_id(s);
	struct proto_exit x = { .exit_code = 0 };
	agent_msg(&p, id, PROTO_EXIT, PROTO_F_END, &x);
	assert_int_equal(host_read(&p), 0);
	assert_int_equal(w.closed, 1);
	assert_false(w.closed_error);
	agent_msg(&p, id, PROTO_EXIT, PROTO_F_END, &x);
	host_read(&p);
	assert_true(ac_dead(p.ac));
	assert_int_equal(w.closed, 1);
	pair_close(&p);
}

/* Credit must add up: a WINDOW_UPDATE that grants more than the host
 * ever sent (here 4 GiB twice, which wrapped the 32-bit window) ends the
 * connection. */
static void test_window_overflow(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	struct seen w = { 0 };
	struct ac_stream *s = open_exec(&p, &w, true);
	struct proto_window win = { .increment = UINT32_MAX };
	agent_msg(&p, ac_stream_id(s), PROTO_WINDOW_UPDATE, 0, &win);
	agent_msg(&p, ac_stream_id(s), PROTO_WINDOW_UPDATE, 0, &win);
	host_read(&p);
	assert_ended(&p, &w);
	pair_close(&p);
}

/* An agent that grants credit for everything the host sends but never
 * reads its channel: the host's queue toward it stops growing (the room
 * to send drops to 0 above AC_OUT_SOFT) instead of holding whole
 * uploads. 24 MiB are offered; at most the soft cap, a chunk and what
 * the socket holds may leave the caller. */
static void test_agent_never_reads(void **state)
{
	(void)state;
	struct pair p;
	pair_open(&p);
	int small = 64 << 10;
	setsockopt(p.agent, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	struct seen w = { 0 };
	struct ac_stream *s = open_exec(&p, &w, true);
	static uint8_t chunk[PROTO_DATA_CHUNK];
	size_t sent = 0, granted = 0;
	struct err e = { 0 };
	for (int i = 0; i < 384 && !ac_dead(p.ac); i++) {
		size_t room = ac_send_room(s);
		if (room > sizeof(chunk))
			room = sizeof(chunk);
		if (room) {
			ac_send_data(s, PROTO_CH_IN, chunk, room);
			sent += room;
		}
		ac_flush(p.ac, &e);
		/* credit back for what was sent (legal: it was all "used") */
		if (sent > granted) {
			struct proto_window win = { .increment = (uint32_t)(sent - granted) };
			agent_msg(&p, ac_stream_id(s), PROTO_WINDOW_UPDATE, 0, &win);
			granted = sent;
		}
		host_read(&p);
	}
	assert_false(ac_dead(p.ac));
	assert_int_equal(w.closed, 0);
	assert_true(sent <= AC_OUT_SOFT + PROTO_DATA_CHUNK + (2u << 20));
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_once_only_frame_twice),
		cmocka_unit_test(test_file_meta_flood),
		cmocka_unit_test(test_unexpected_type),
		cmocka_unit_test(test_second_terminal_frame),
		cmocka_unit_test(test_window_overflow),
		cmocka_unit_test(test_agent_never_reads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
