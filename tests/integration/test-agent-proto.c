/* test-agent-proto.c — lohar against bad peers: raw unix-socket clients
 * that send garbage, oversized or truncated frames, unknown flags and
 * types, bad handshakes, malformed bodies, DATA beyond the window and too
 * many streams, while a well-behaved agent client on another connection
 * must keep being served and lohar must stay up. Also the first-contact
 * token binding. Sits between hand-encoded frames (shared/proto.c's
 * encoder, patched where a test needs a broken frame) and agent/conn.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"
#include "wire.h"

/* lohar is up, the long-lived good client still works, and so does a new
 * connection. */
static void assert_still_serving(struct fixture *fx)
{
	struct ac_exec_result r;
	assert_true(pid_alive(fx->lohar.pid));
	assert_int_equal(test_exec(fx->ac, &r, "echo", "ok", NULL), 0);
	assert_string_equal(r.out.data, "ok\n");
	assert_int_equal(r.exit_code, 0);
	ac_exec_result_release(&r);

	struct ac *fresh = lohar_connect(&fx->lohar, "tok");
	assert_non_null(fresh);
	assert_int_equal(test_exec(fresh, &r, "echo", "ok", NULL), 0);
	assert_string_equal(r.out.data, "ok\n");
	ac_exec_result_release(&r);
	ac_free(fresh);
}

/* ---- a raw client ------------------------------------------------------------ */

struct raw {
	int fd;
	struct proto_decoder dec;
	struct buf out;
};

static void raw_open(struct fixture *fx, struct raw *r)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(fx->lohar.sock);
	assert_true(n < sizeof(sa.sun_path));
	memcpy(sa.sun_path, fx->lohar.sock, n + 1);
	r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(r->fd >= 0);
	assert_int_equal(connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	proto_decoder_init(&r->dec);
	buf_init(&r->out);
}

static void raw_close(struct raw *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	proto_decoder_release(&r->dec);
	buf_release(&r->out);
}

/* Send p whole: 0, or -errno once lohar has hung up (not a failure here). */
static int raw_send(struct raw *r, const void *p, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t k = send(r->fd, (const char *)p + off, n - off, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		off += (size_t)k;
	}
	return 0;
}

/* Send what r->out holds, which must all go. */
static void raw_flush(struct raw *r)
{
	assert_int_equal(raw_send(r, r->out.data, r->out.len), 0);
	buf_reset(&r->out);
}

static void raw_msg(struct raw *r, uint32_t stream, uint8_t type, const void *msg)
{
	assert_int_equal(proto_put_msg(&r->out, stream, type, 0, msg), 0);
	raw_flush(r);
}

/* The next frame from lohar: 1, or 0 when lohar closed the connection.
 * Fails the test when nothing comes within ms. */
static int raw_next(struct raw *r, struct proto_frame *f, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	static char chunk[64 << 10];
	for (;;) {
		struct err e = ERR_INIT;
		int k = proto_decoder_next(&r->dec, f, &e);
		if (k < 0)
			fail_msg("lohar sent a corrupt stream: %s", err_str(&e));
		if (k == 1)
			return 1;
		int64_t left = (int64_t)(end - now_ms());
		if (left <= 0)
			fail_msg("nothing from lohar within %d ms", ms);
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t n = read(r->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			assert_int_equal(proto_decoder_pending(&r->dec), 0);
			return 0;
		}
		assert_true(n > 0);
		proto_decoder_feed(&r->dec, chunk, (size_t)n);
	}
}

/* Like raw_next, skipping WINDOW_UPDATE frames (credit we do not need). */
static int raw_next_skip_credit(struct raw *r, struct proto_frame *f, int ms,
				uint64_t *ret_credit)
{
	for (;;) {
		int k = raw_next(r, f, ms);
		if (k == 0 || f->type != PROTO_WINDOW_UPDATE)
			return k;
		struct proto_window w;
		assert_int_equal(proto_decode(f, &w, NULL), 0);
		if (ret_credit)
			*ret_credit += w.increment;
	}
}

static void assert_closed(struct raw *r)
{
	struct proto_frame f;
	int k = raw_next(r, &f, 5000);
	if (k)
		fail_msg("expected lohar to close, got %s on stream %u",
			 proto_type_name(f.type), f.stream);
}

/* f is ERROR END on stream with code; msg (NULL = any) is its message. */
static void assert_error_frame(const struct proto_frame *f, uint32_t stream, int code,
			       const char *msg)
{
	struct proto_error pe;
	if (f->type != PROTO_ERROR)
		fail_msg("expected ERROR, got %s on stream %u", proto_type_name(f->type) ?
			 proto_type_name(f->type) : "an unknown type", f->stream);
	assert_int_equal(f->stream, stream);
	assert_int_equal(f->flags, PROTO_F_END);
	assert_int_equal(proto_decode(f, &pe, NULL), 0);
	assert_int_equal(pe.code, code);
	if (msg)
		assert_string_equal(pe.message, msg);
	else
		assert_true(pe.message[0] != '\0');
	proto_msg_release(PROTO_ERROR, &pe);
}

/* The connection ends with ERROR on stream 0, then lohar hangs up. */
static void assert_conn_error(struct raw *r, int code, const char *msg)
{
	struct proto_frame f;
	assert_int_equal(raw_next_skip_credit(r, &f, 5000, NULL), 1);
	assert_error_frame(&f, 0, code, msg);
	assert_closed(r);
}

static void raw_hello_tok(struct raw *r, uint32_t version, const char *token)
{
	struct proto_hello h = { .version = version, .token = (char *)token,
				 .client = (char *)"raw test client" };
	raw_msg(r, 0, PROTO_HELLO, &h);
}

static void raw_hello(struct raw *r)
{
	struct proto_frame f;
	struct proto_hello_ok ok;
	raw_hello_tok(r, PROTO_VERSION, "tok");
	assert_int_equal(raw_next(r, &f, 5000), 1);
	assert_int_equal(f.type, PROTO_HELLO_OK);
	assert_int_equal(f.stream, 0);
	assert_int_equal(proto_decode(&f, &ok, NULL), 0);
	assert_int_equal(ok.version, PROTO_VERSION);
	assert_int_equal(ok.window, PROTO_WINDOW);
	assert_int_equal(ok.max_streams, PROTO_MAX_STREAMS);
	proto_msg_release(PROTO_HELLO_OK, &ok);
}

static void raw_header(uint8_t h[PROTO_HDR_SIZE], uint32_t len, uint8_t type, uint16_t flags,
		       uint32_t stream)
{
	wire_set_le32(h, len);
	h[4] = PROTO_MAGIC;
	h[5] = type;
	h[6] = (uint8_t)(flags & 0xff);
	h[7] = (uint8_t)(flags >> 8);
	wire_set_le32(h + 8, stream);
}

/* PING on stream with nonce answers PONG END with the same nonce. */
static void assert_ping(struct raw *r, uint32_t stream, uint64_t nonce)
{
	struct proto_ping p = { .nonce = nonce };
	struct proto_frame f;
	raw_msg(r, stream, PROTO_PING, &p);
	assert_int_equal(raw_next_skip_credit(r, &f, 5000, NULL), 1);
	if (f.type != PROTO_PONG)
		fail_msg("expected PONG, got %s on stream %u", proto_type_name(f.type), f.stream);
	assert_int_equal(f.stream, stream);
	assert_int_equal(f.flags, PROTO_F_END);
	struct proto_ping back;
	assert_int_equal(proto_decode(&f, &back, NULL), 0);
	assert_int_equal(back.nonce, nonce);
}

static struct proto_exec exec_req(char **argv, uint32_t flags)
{
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"",
				  .flags = flags };
	return req;
}

/* EXEC_STARTED on stream; returns the pid. */
static pid_t expect_started(struct raw *r, uint32_t stream)
{
	struct proto_frame f;
	struct proto_exec_started st;
	assert_int_equal(raw_next_skip_credit(r, &f, 10000, NULL), 1);
	if (f.type != PROTO_EXEC_STARTED)
		fail_msg("expected EXEC_STARTED, got %s on stream %u", proto_type_name(f.type),
			 f.stream);
	assert_int_equal(f.stream, stream);
	assert_int_equal(f.flags, 0);
	assert_int_equal(proto_decode(&f, &st, NULL), 0);
	pid_t pid = (pid_t)st.pid;
	proto_msg_release(PROTO_EXEC_STARTED, &st);
	assert_true(pid > 0);
	return pid;
}

/* ---- broken streams: fatal for the connection ------------------------------------ */

static void test_garbage_first(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	const char *http = "GET / HTTP/1.1\r\nHost: lohar\r\n\r\n";
	raw_open(fx, &r);
	assert_int_equal(raw_send(&r, http, strlen(http)), 0);
	assert_conn_error(&r, EPROTO, "bad frame magic (not a bhatti agent stream?)");
	raw_close(&r);
	assert_still_serving(fx);

	/* garbage after a good handshake, with a stream open */
	raw_open(fx, &r);
	raw_hello(&r);
	char *argv[] = { (char *)"sleep", (char *)"30", NULL };
	struct proto_exec req = exec_req(argv, 0);
	raw_msg(&r, 1, PROTO_EXEC, &req);
	pid_t pid = expect_started(&r, 1);
	uint8_t junk[64];
	memset(junk, 0xee, sizeof(junk));
	assert_int_equal(raw_send(&r, junk, sizeof(junk)), 0);
	assert_conn_error(&r, EPROTO, "bad frame magic (not a bhatti agent stream?)");
	raw_close(&r);
	assert_true(pid_wait_gone(pid, 3000)); /* its streams died with it */
	assert_still_serving(fx);
}

static void test_oversized_frame(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	uint8_t h[PROTO_HDR_SIZE];

	/* only the header of a 2 MiB frame: the answer cannot wait for the
	 * payload, nor may lohar try to buffer it */
	raw_open(fx, &r);
	raw_hello(&r);
	raw_header(h, 2u << 20, PROTO_EXEC, 0, 1);
	assert_int_equal(raw_send(&r, h, sizeof(h)), 0);
	assert_conn_error(&r, EMSGSIZE, "frame of 2097164 bytes exceeds the 1048576 byte limit");
	raw_close(&r);
	assert_still_serving(fx);

	/* before the handshake; and one byte over the limit */
	raw_open(fx, &r);
	raw_header(h, PROTO_MAX_PAYLOAD + 1, PROTO_HELLO, 0, 0);
	assert_int_equal(raw_send(&r, h, sizeof(h)), 0);
	assert_conn_error(&r, EMSGSIZE, "frame of 1048577 bytes exceeds the 1048576 byte limit");
	raw_close(&r);

	/* the largest length field there is (the "frame of N bytes" part of
	 * the message wraps around in 32 bits; only the limit is checked) */
	raw_open(fx, &r);
	raw_hello(&r);
	raw_header(h, UINT32_MAX, PROTO_DATA, 0, 1);
	assert_int_equal(raw_send(&r, h, sizeof(h)), 0);
	struct proto_frame f;
	struct proto_error pe;
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_error_frame(&f, 0, EMSGSIZE, NULL);
	assert_int_equal(proto_decode(&f, &pe, NULL), 0);
	assert_non_null(strstr(pe.message, "exceeds the 1048576 byte limit"));
	proto_msg_release(PROTO_ERROR, &pe);
	assert_closed(&r);
	raw_close(&r);
	assert_still_serving(fx);
}

static void test_unknown_flags(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	struct proto_ping p = { .nonce = 1 };

	raw_open(fx, &r);
	raw_hello(&r);
	assert_int_equal(proto_put_msg(&r.out, 1, PROTO_PING, 0, &p), 0);
	r.out.data[7] = 0x01; /* flags 0x0100 */
	raw_flush(&r);
	assert_conn_error(&r, EPROTO, "unknown frame flags 0x100");
	raw_close(&r);

	/* in the HELLO itself */
	raw_open(fx, &r);
	struct proto_hello hl = { .version = PROTO_VERSION, .token = (char *)"tok",
				  .client = (char *)"raw" };
	assert_int_equal(proto_put_msg(&r.out, 0, PROTO_HELLO, 0, &hl), 0);
	r.out.data[6] = 0x02;
	raw_flush(&r);
	assert_conn_error(&r, EPROTO, "unknown frame flags 0x2");
	raw_close(&r);
	assert_still_serving(fx);
}

static void test_truncated_frame_then_close(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	char *argv[] = { (char *)"echo", (char *)"never runs", NULL };
	struct proto_exec req = exec_req(argv, 0);

	/* half an EXEC, then the client goes away */
	raw_open(fx, &r);
	raw_hello(&r);
	assert_int_equal(proto_put_msg(&r.out, 1, PROTO_EXEC, 0, &req), 0);
	assert_int_equal(raw_send(&r, r.out.data, r.out.len / 2), 0);
	raw_close(&r);
	assert_still_serving(fx);

	/* half a header before any handshake */
	raw_open(fx, &r);
	uint8_t h[PROTO_HDR_SIZE];
	raw_header(h, 10, PROTO_HELLO, 0, 0);
	assert_int_equal(raw_send(&r, h, 7), 0);
	raw_close(&r);
	assert_still_serving(fx);

	char *log = read_text(fx->lohar.log);
	assert_non_null(log);
	assert_non_null(strstr(log, "truncated frame at end of stream"));
	free(log);
}

static void test_data_chunk_too_large(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	char *argv[] = { (char *)"cat", NULL };
	struct proto_exec req = exec_req(argv, PROTO_EXEC_STDIN);
	raw_open(fx, &r);
	raw_hello(&r);
	raw_msg(&r, 1, PROTO_EXEC, &req);
	pid_t pid = expect_started(&r, 1);
	/* one DATA frame of a chunk and a byte: within the window, but larger
	 * than any peer may send in one frame */
	static uint8_t payload[PROTO_DATA_CHUNK + 2];
	payload[0] = PROTO_CH_IN;
	proto_put_frame(&r.out, 1, PROTO_DATA, 0, payload, sizeof(payload));
	raw_flush(&r);
	assert_conn_error(&r, EPROTO, "malformed DATA message (65538 bytes)");
	raw_close(&r);
	assert_true(pid_wait_gone(pid, 3000));
	assert_still_serving(fx);
}

/* ---- handshakes -------------------------------------------------------------------- */

static void test_bad_token(void **state)
{
	struct fixture *fx = *state;
	const char *bad[] = { "nope", "to", "tokk", "", "TOK" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct raw r;
		raw_open(fx, &r);
		raw_hello_tok(&r, PROTO_VERSION, bad[i]);
		assert_conn_error(&r, EACCES, "bad token");
		raw_close(&r);
	}
	/* the agent client reports it as such */
	struct ac *ac = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(ac_connect_unix(fx->lohar.sock, "wrong", "test", 5000, &ac, &e), -EACCES);
	assert_null(ac);
	assert_string_equal(e.msg, "agent: bad token");
	assert_still_serving(fx);
}

static void test_bad_version(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	raw_open(fx, &r);
	char msg[128];
	raw_hello_tok(&r, PROTO_VERSION + 1, "tok");
	snprintf(msg, sizeof(msg), "protocol version %d is not supported (lohar speaks version %d)",
		 PROTO_VERSION + 1, PROTO_VERSION);
	assert_conn_error(&r, EPROTONOSUPPORT, msg);
	raw_close(&r);
	raw_open(fx, &r);
	raw_hello_tok(&r, 0, "tok");
	snprintf(msg, sizeof(msg), "protocol version 0 is not supported (lohar speaks version %d)",
		 PROTO_VERSION);
	assert_conn_error(&r, EPROTONOSUPPORT, msg);
	raw_close(&r);
	assert_still_serving(fx);
}

static void test_hello_twice(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	raw_open(fx, &r);
	raw_hello(&r);
	assert_ping(&r, 1, 7);
	raw_hello_tok(&r, PROTO_VERSION, "tok");
	assert_conn_error(&r, EPROTO, "HELLO sent twice");
	raw_close(&r);
	assert_still_serving(fx);
}

static void test_first_frame_not_hello(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	struct proto_ping p = { .nonce = 5 };

	raw_open(fx, &r);
	raw_msg(&r, 1, PROTO_PING, &p);
	assert_conn_error(&r, EPROTO, "expected HELLO first, got PING");
	raw_close(&r);

	/* a well-formed frame of a type nobody knows */
	raw_open(fx, &r);
	proto_put_frame(&r.out, 0, 200, 0, "abc", 3);
	raw_flush(&r);
	assert_conn_error(&r, EPROTO, "expected HELLO first, got an unknown message");
	raw_close(&r);

	/* HELLO, but on a stream */
	raw_open(fx, &r);
	struct proto_hello h = { .version = PROTO_VERSION, .token = (char *)"tok",
				 .client = (char *)"raw" };
	raw_msg(&r, 3, PROTO_HELLO, &h);
	assert_conn_error(&r, EPROTO, "expected HELLO first, got HELLO");
	raw_close(&r);

	/* a HELLO whose body is cut short (the frame itself is whole) */
	raw_open(fx, &r);
	assert_int_equal(proto_put_msg(&r.out, 0, PROTO_HELLO, 0, &h), 0);
	r.out.len -= 2;
	wire_set_le32((uint8_t *)r.out.data, (uint32_t)(r.out.len - PROTO_HDR_SIZE));
	raw_flush(&r);
	struct proto_frame f;
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_error_frame(&f, 0, EPROTO, NULL);
	assert_closed(&r);
	raw_close(&r);
	assert_still_serving(fx);
}

/* ---- broken requests: fatal only for their stream ---------------------------------- */

static void test_unknown_type_on_stream(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	struct proto_frame f;
	raw_open(fx, &r);
	raw_hello(&r);

	proto_put_frame(&r.out, 5, 99, 0, "xyz", 3);
	raw_flush(&r);
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_error_frame(&f, 5, EPROTO, "unknown message type 99");
	assert_ping(&r, 6, 0x1122334455667788ull);

	/* types lohar only sends, as requests */
	proto_put_frame(&r.out, 8, PROTO_EXIT, 0, "", 0);
	raw_flush(&r);
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_error_frame(&f, 8, EPROTO, "unknown message type 32");

	/* unknown types on stream 0, and frames for streams that do not
	 * exist, are ignored: the next answer is the PONG */
	proto_put_frame(&r.out, 0, 99, 0, "", 0);
	proto_put_data(&r.out, 40, PROTO_CH_IN, "late", 4);
	struct proto_eof eof = { .channel = PROTO_CH_IN };
	assert_int_equal(proto_put_msg(&r.out, 41, PROTO_EOF, 0, &eof), 0);
	assert_int_equal(proto_put_msg(&r.out, 42, PROTO_CLOSE, 0, NULL), 0);
	raw_flush(&r);
	assert_ping(&r, 5, 99); /* stream 5 may be reused */
	raw_close(&r);
	assert_still_serving(fx);
}

static void test_malformed_body(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	struct proto_frame f;
	char *argv[] = { (char *)"touch", (char *)"should-not-exist", NULL };
	struct proto_exec req = exec_req(argv, 0);
	raw_open(fx, &r);
	raw_hello(&r);

	/* an EXEC cut short by 3 bytes: a whole frame with a short body */
	assert_int_equal(proto_put_msg(&r.out, 7, PROTO_EXEC, 0, &req), 0);
	r.out.len -= 3;
	wire_set_le32((uint8_t *)r.out.data, (uint32_t)(r.out.len - PROTO_HDR_SIZE));
	raw_flush(&r);
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_error_frame(&f, 7, EPROTO, NULL);
	assert_ping(&r, 9, 1);

	/* the same EXEC with two bytes of trailing garbage, on the same id */
	assert_int_equal(proto_put_msg(&r.out, 7, PROTO_EXEC, 0, &req), 0);
	buf_add(&r.out, "\x01\x02", 2);
	wire_set_le32((uint8_t *)r.out.data, (uint32_t)(r.out.len - PROTO_HDR_SIZE));
	raw_flush(&r);
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_error_frame(&f, 7, EPROTO, NULL);

	/* an argv count no body could hold */
	uint8_t body[8];
	wire_set_le32(body, 0x7fffffff);
	wire_set_le32(body + 4, 3);
	proto_put_frame(&r.out, 10, PROTO_EXEC, 0, body, sizeof(body));
	raw_flush(&r);
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_error_frame(&f, 10, EPROTO, NULL);

	/* an empty PING, a FILE_READ of one byte */
	proto_put_frame(&r.out, 11, PROTO_PING, 0, "", 0);
	proto_put_frame(&r.out, 12, PROTO_FILE_READ, 0, "x", 1);
	raw_flush(&r);
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_error_frame(&f, 11, EPROTO, NULL);
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_error_frame(&f, 12, EPROTO, NULL);

	assert_ping(&r, 7, 2);
	raw_close(&r);
	char *p = NULL;
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/should-not-exist", fx->lohar.workspace);
	p = buf_detach(&b, NULL);
	assert_int_equal(access(p, F_OK), -1); /* no malformed EXEC ran */
	free(p);
	assert_still_serving(fx);
}

static void test_request_on_busy_stream(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	char *argv[] = { (char *)"sleep", (char *)"30", NULL };
	struct proto_exec req = exec_req(argv, 0);
	raw_open(fx, &r);
	raw_hello(&r);
	raw_msg(&r, 1, PROTO_EXEC, &req);
	pid_t pid = expect_started(&r, 1);
	struct proto_ping p = { .nonce = 3 };
	raw_msg(&r, 1, PROTO_PING, &p);
	assert_conn_error(&r, EPROTO, "stream 1 is already in use");
	raw_close(&r);
	assert_true(pid_wait_gone(pid, 3000));
	assert_still_serving(fx);
}

/* ---- flow control and limits --------------------------------------------------------- */

static void test_data_beyond_window(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	struct proto_frame f;
	static uint8_t chunk[PROTO_DATA_CHUNK];
	memset(chunk, 'w', sizeof(chunk));
	/* sleep never reads its stdin: once the pipe is full nothing is
	 * consumed, so the credit lohar grants is all it will ever grant */
	char *argv[] = { (char *)"sleep", (char *)"30", NULL };
	struct proto_exec req = exec_req(argv, PROTO_EXEC_STDIN);
	raw_open(fx, &r);
	raw_hello(&r);
	raw_msg(&r, 1, PROTO_EXEC, &req);
	pid_t pid = expect_started(&r, 1);

	/* the whole initial window at once is allowed */
	for (uint32_t sent = 0; sent < PROTO_WINDOW; sent += sizeof(chunk))
		proto_put_data(&r.out, 1, PROTO_CH_IN, chunk, sizeof(chunk));
	raw_flush(&r);
	/* PING after the DATA: every grant the DATA caused precedes the PONG */
	uint64_t credit = 0;
	struct proto_ping p = { .nonce = 11 };
	raw_msg(&r, 2, PROTO_PING, &p);
	assert_int_equal(raw_next_skip_credit(&r, &f, 5000, &credit), 1);
	assert_int_equal(f.type, PROTO_PONG);
	assert_int_equal(f.stream, 2);
	/* the pipe took something (64 KiB normally), and no more than that */
	assert_true(credit > 0);
	assert_true(credit <= PROTO_WINDOW);

	/* exactly the granted credit is still allowed */
	for (uint64_t sent = 0; sent < credit; ) {
		size_t n = (size_t)MIN((uint64_t)sizeof(chunk), credit - sent);
		proto_put_data(&r.out, 1, PROTO_CH_IN, chunk, n);
		sent += n;
	}
	raw_flush(&r);
	uint64_t more = 0;
	p.nonce = 12;
	raw_msg(&r, 3, PROTO_PING, &p);
	assert_int_equal(raw_next_skip_credit(&r, &f, 5000, &more), 1);
	assert_int_equal(f.type, PROTO_PONG);
	assert_int_equal(more, 0); /* the pipe is full: nothing consumed */
	assert_true(pid_alive(pid));

	/* one byte more is a violation */
	proto_put_data(&r.out, 1, PROTO_CH_IN, "!", 1);
	raw_flush(&r);
	assert_conn_error(&r, EPROTO, "stream 1: DATA beyond the flow-control window");
	raw_close(&r);
	assert_true(pid_wait_gone(pid, 3000));
	assert_still_serving(fx);

	/* and a flood without waiting for any credit, as a careless peer would */
	raw_open(fx, &r);
	raw_hello(&r);
	raw_msg(&r, 1, PROTO_EXEC, &req);
	pid = expect_started(&r, 1);
	for (int i = 0; i < 8; i++) /* 512 KiB */
		proto_put_data(&r.out, 1, PROTO_CH_IN, chunk, sizeof(chunk));
	raw_send(&r, r.out.data, r.out.len); /* lohar may hang up mid-way */
	buf_reset(&r.out);
	assert_conn_error(&r, EPROTO, "stream 1: DATA beyond the flow-control window");
	raw_close(&r);
	assert_true(pid_wait_gone(pid, 3000));
	assert_still_serving(fx);
}

static void test_stream_limit(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	struct proto_frame f;
	char *argv[] = { (char *)"sleep", (char *)"30", NULL };
	struct proto_exec req = exec_req(argv, 0);
	pid_t pids[PROTO_MAX_STREAMS + 1] = { 0 };
	uint32_t n = PROTO_MAX_STREAMS + 1;

	raw_open(fx, &r);
	raw_hello(&r);
	for (uint32_t id = 1; id <= n; id++)
		assert_int_equal(proto_put_msg(&r.out, id, PROTO_EXEC, 0, &req), 0);
	raw_flush(&r);

	/* answers come in request order: 256 started, the 257th refused */
	for (uint32_t id = 1; id < n; id++)
		pids[id] = expect_started(&r, id);
	assert_int_equal(raw_next(&r, &f, 10000), 1);
	assert_error_frame(&f, n, EMFILE, "too many open streams (limit 256)");

	/* still full: a PING is refused too */
	struct proto_ping p = { .nonce = 1 };
	raw_msg(&r, 1000, PROTO_PING, &p);
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_error_frame(&f, 1000, EMFILE, "too many open streams (limit 256)");

	/* end one: exactly one slot comes free */
	assert_int_equal(proto_put_msg(&r.out, 1, PROTO_CLOSE, 0, NULL), 0);
	raw_flush(&r);
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_int_equal(f.type, PROTO_EXIT);
	assert_int_equal(f.stream, 1);
	assert_int_equal(f.flags, PROTO_F_END);
	struct proto_exit ex;
	assert_int_equal(proto_decode(&f, &ex, NULL), 0);
	assert_int_equal(ex.exit_code, 137);
	assert_int_equal(ex.flags, PROTO_EXIT_CANCELLED);
	assert_true(pid_wait_gone(pids[1], 3000));
	assert_int_equal(proto_put_msg(&r.out, 1001, PROTO_EXEC, 0, &req), 0);
	raw_flush(&r);
	pid_t last = expect_started(&r, 1001);
	raw_msg(&r, 1002, PROTO_PING, &p);
	assert_int_equal(raw_next(&r, &f, 5000), 1);
	assert_error_frame(&f, 1002, EMFILE, "too many open streams (limit 256)");

	/* the other 255 were untouched all along */
	for (uint32_t id = 2; id < n; id++)
		assert_true(pid_alive(pids[id]));

	/* the good client is not limited by another connection's streams */
	assert_still_serving(fx);

	/* hanging up kills all of them */
	raw_close(&r);
	for (uint32_t id = 2; id < n; id++)
		assert_true(pid_wait_gone(pids[id], 5000));
	assert_true(pid_wait_gone(last, 5000));
	assert_still_serving(fx);
}

static void test_stalled_peer(void **state)
{
	struct fixture *fx = *state;
	struct raw r, idle;
	struct proto_frame f;
	/* one peer asks for endless output and does not read; another
	 * connects and never says anything */
	char *argv[] = { (char *)"yes", (char *)"stalled peer", NULL };
	struct proto_exec req = exec_req(argv, 0);
	raw_open(fx, &idle);
	raw_open(fx, &r);
	raw_hello(&r);
	raw_msg(&r, 1, PROTO_EXEC, &req);
	usleep(100000);
	assert_still_serving(fx);

	/* without credit back, lohar sends exactly the window and stops */
	pid_t pid = expect_started(&r, 1);
	size_t got = 0;
	while (got < PROTO_WINDOW) {
		assert_int_equal(raw_next(&r, &f, 10000), 1);
		assert_int_equal(f.type, PROTO_DATA);
		assert_int_equal(f.stream, 1);
		assert_int_equal(f.payload[0], PROTO_CH_OUT);
		got += f.len - 1;
	}
	assert_int_equal(got, PROTO_WINDOW);
	struct pollfd pf = { .fd = r.fd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 200), 0);
	assert_int_equal(proto_decoder_pending(&r.dec), 0);
	assert_true(pid_alive(pid));
	assert_still_serving(fx);

	raw_close(&r);
	raw_close(&idle);
	assert_true(pid_wait_gone(pid, 3000));
	assert_still_serving(fx);
}

/* How much lohar's resident memory may grow while a peer floods it: about
 * 1 MiB of queued answers, plus what ASan keeps in its quarantine. */
#ifdef __SANITIZE_ADDRESS__
#define RSS_SLACK_KB (64 * 1024)
#else
#define RSS_SLACK_KB (16 * 1024)
#endif

static long rss_kb(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	char *t = read_text(path);
	assert_non_null(t);
	char *v = strstr(t, "VmRSS:");
	assert_non_null(v);
	long kb = strtol(v + 6, NULL, 10);
	free(t);
	return kb;
}

/* A peer that sends small requests with large answers and does not read
 * them: lohar must stop reading its requests once the output queue is
 * over its high-water mark (not buffer the answers without bound), then
 * carry on, losing nothing, once the peer reads again. */
static void test_flood_without_reading(void **state)
{
	struct fixture *fx = *state;
	struct raw r;
	struct proto_frame f;
	const uint32_t n = 20000;
	char name[128];
	struct buf b = BUF_INIT;

	buf_addf(&b, "%s/flood", fx->lohar.workspace);
	assert_int_equal(mkdir(b.data, 0755), 0);
	/* answers of about 2 KiB for requests of 25 bytes */
	memset(name, 'n', sizeof(name));
	name[sizeof(name) - 1] = '\0';
	for (int i = 0; i < 16; i++) {
		struct buf path = BUF_INIT;
		name[0] = (char)('a' + i);
		buf_addf(&path, "%s/%s", b.data, name);
		FILE *fp = fopen(path.data, "w");
		assert_non_null(fp);
		fclose(fp);
		buf_release(&path);
	}
	buf_release(&b);

	raw_open(fx, &r);
	raw_hello(&r);
	struct proto_file_ls req = { .path = (char *)"flood" };
	for (uint32_t id = 1; id <= n; id++)
		assert_int_equal(proto_put_msg(&r.out, id, PROTO_FILE_LS, 0, &req), 0);
	size_t frame = r.out.len / n;
	long rss0 = rss_kb(fx->lohar.pid);

	/* send without reading until lohar stops taking requests (an agent
	 * that takes them all pauses well under a second per socket buffer) */
	assert_int_equal(fd_set_nonblock(r.fd, true), 0);
	size_t off = 0;
	for (;;) {
		struct pollfd pf = { .fd = r.fd, .events = POLLOUT };
		if (off == r.out.len || poll(&pf, 1, 1000) == 0)
			break;
		ssize_t k = send(r.fd, r.out.data + off, r.out.len - off, MSG_NOSIGNAL);
		if (k > 0)
			off += (size_t)k;
		else
			assert_int_equal(errno, EAGAIN);
	}
	long grown = rss_kb(fx->lohar.pid) - rss0;
	if (off == r.out.len)
		fail_msg("lohar read all %u requests (%zu bytes) of a peer that reads nothing; "
			 "its memory grew by %ld kB", n, r.out.len, grown);
	assert_true(off / frame < n * 3 / 4);
	assert_true(grown < RSS_SLACK_KB);
	assert_still_serving(fx); /* the good client is unaffected */

	/* reading again: every request is answered, in order */
	uint32_t next = 1;
	uint64_t end = now_ms() + 60000;
	while (next <= n) {
		struct pollfd pf = { .fd = r.fd, .events = POLLIN | (off < r.out.len ? POLLOUT : 0) };
		assert_true(now_ms() < end);
		assert_true(poll(&pf, 1, 1000) >= 0);
		if ((pf.revents & POLLOUT) && off < r.out.len) {
			ssize_t k = send(r.fd, r.out.data + off, r.out.len - off, MSG_NOSIGNAL);
			if (k > 0)
				off += (size_t)k;
		}
		if (!(pf.revents & POLLIN))
			continue;
		static char chunk[256 << 10];
		ssize_t k = read(r.fd, chunk, sizeof(chunk));
		assert_true(k > 0);
		proto_decoder_feed(&r.dec, chunk, (size_t)k);
		struct err e = ERR_INIT;
		while (proto_decoder_next(&r.dec, &f, &e) == 1) {
			if (f.type != PROTO_LS_RESULT || f.stream != next)
				fail_msg("answer %u: %s on stream %u", next, proto_type_name(f.type),
					 f.stream);
			if (next == 1 || next == n) {
				struct proto_ls_result res;
				assert_int_equal(proto_decode(&f, &res, NULL), 0);
				assert_int_equal(res.count, 16);
				name[0] = 'a';
				assert_string_equal(res.entries[0].name, name);
				proto_msg_release(PROTO_LS_RESULT, &res);
			}
			next++;
		}
		assert_int_equal(e.code, 0);
	}
	raw_close(&r);
	assert_still_serving(fx);
}

/* ---- first-contact token binding ------------------------------------------------------ */

static int try_connect(struct lohar_proc *lp, const char *token, struct err *e)
{
	struct ac *ac = NULL;
	int r = ac_connect_unix(lp->sock, token, "test", 5000, &ac, e);
	if (r == 0) {
		struct ac_exec_result res;
		assert_int_equal(test_exec(ac, &res, "echo", "ok", NULL), 0);
		assert_string_equal(res.out.data, "ok\n");
		ac_exec_result_release(&res);
		ac_free(ac);
	}
	return r;
}

static void test_token_first_contact(void **state)
{
	struct fixture *fx = *state;
	struct lohar_proc *lp = &fx->other;
	struct err e = ERR_INIT;
	assert_int_equal(lohar_start(lp, "", "self"), 0);

	/* an empty token binds nothing */
	assert_int_equal(try_connect(lp, "", &e), 0);
	/* the first real token is adopted ... */
	assert_int_equal(try_connect(lp, "first-token", &e), 0);
	/* ... and from then on it is the only one */
	assert_int_equal(try_connect(lp, "other-token", &e), -EACCES);
	assert_string_equal(e.msg, "agent: bad token");
	assert_int_equal(try_connect(lp, "", &e), -EACCES);
	assert_int_equal(try_connect(lp, "first-toke", &e), -EACCES);
	assert_int_equal(try_connect(lp, "first-token", &e), 0);

	/* CONFIGURE replaces it (a clone gets its own) */
	struct ac *ac = lohar_connect(lp, "first-token");
	assert_non_null(ac);
	struct proto_configure cfg = {
		.what = PROTO_CFG_TOKEN, .token = (char *)"second-token",
		.hostname = (char *)"", .init = (char *)"", .net_ifname = (char *)"",
		.net_address = (char *)"", .net_gateway = (char *)"",
	};
	struct proto_ok ok;
	assert_int_equal(ac_call(ac, PROTO_CONFIGURE, &cfg, PROTO_OK, &ok, 5000, &e), 0);
	ac_free(ac);
	assert_int_equal(try_connect(lp, "first-token", &e), -EACCES);
	assert_int_equal(try_connect(lp, "second-token", &e), 0);
	assert_true(pid_alive(lp->pid));
	assert_int_equal(lohar_stop(lp), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_garbage_first),
		cmocka_unit_test(test_oversized_frame),
		cmocka_unit_test(test_unknown_flags),
		cmocka_unit_test(test_truncated_frame_then_close),
		cmocka_unit_test(test_data_chunk_too_large),
		cmocka_unit_test(test_bad_token),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_hello_twice),
		cmocka_unit_test(test_first_frame_not_hello),
		cmocka_unit_test(test_unknown_type_on_stream),
		cmocka_unit_test(test_malformed_body),
		cmocka_unit_test(test_request_on_busy_stream),
		cmocka_unit_test(test_data_beyond_window),
		cmocka_unit_test(test_stream_limit),
		cmocka_unit_test(test_stalled_peer),
		cmocka_unit_test(test_flood_without_reading),
		cmocka_unit_test(test_token_first_contact),
	};
	return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
