/* test-client-httpc.c — unit tests for client/httpc.c, the I/O-free
 * HTTP/1.1 codec of the client library: answers framed every way a server
 * may frame them (Content-Length, chunked with extensions and trailers, up
 * to the close, no body for HEAD, 1xx, 204, 304), each fed whole, in
 * pieces of 7 bytes and one byte at a time with the same result; bytes
 * after the answer left unused; every malformed answer and every early
 * close; request heads and URL escaping.
 * Sits between cmocka and httpc.h; memory only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"
#include "util.h"

struct result {
	int rc;                  /* HTTPC_DONE, HTTPC_MORE or -errno */
	int heads;               /* HTTPC_HEAD events */
	struct httpc_head head;
	struct buf body;
	size_t used;             /* bytes of the input consumed */
	struct err e;
};

/* Feed in[0..n) in steps of step bytes; at the end of the input, the
 * close when eof. */
static void parse(const char *in, size_t n, size_t step, bool head_req, bool eof,
		  struct result *r)
{
	struct httpc p;
	memset(r, 0, sizeof(*r));
	buf_init(&r->body);
	httpc_init(&p, head_req);
	int rc = HTTPC_MORE;
	size_t off = 0;
	while (off < n && rc != HTTPC_DONE && rc >= 0) {
		size_t chunk = MIN(step, n - off), pos = 0;
		for (;;) {
			size_t used, len;
			const char *piece;
			rc = httpc_parse(&p, in + off + pos, chunk - pos, &used, &piece, &len, &r->e);
			assert_true(used <= chunk - pos);
			pos += used;
			if (rc < 0 || rc == HTTPC_DONE || rc == HTTPC_MORE)
				break;
			if (rc == HTTPC_HEAD) {
				r->heads++;
				r->head = p.head;
			} else {
				assert_int_equal(rc, HTTPC_BODY);
				assert_true(piece >= in + off && piece + len <= in + off + chunk);
				buf_add(&r->body, piece, len);
			}
		}
		if (rc == HTTPC_MORE)
			assert_int_equal(pos, chunk);   /* MORE: everything was used */
		off += pos;
	}
	if (rc == HTTPC_MORE && eof)
		rc = httpc_eof(&p, &r->e);
	r->rc = rc;
	r->used = off;
	httpc_release(&p);
}

/* The same answer fed three ways gives the same result; returns it whole. */
static void parse3(const char *in, bool head_req, bool eof, struct result *r)
{
	static const size_t steps[] = { 1, 7 };
	size_t n = strlen(in);
	parse(in, n, n ? n : 1, head_req, eof, r);
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		struct result o;
		parse(in, n, steps[i], head_req, eof, &o);
		assert_int_equal(o.rc, r->rc);
		assert_int_equal(o.e.code, r->e.code);
		assert_int_equal(o.heads, r->heads);
		if (r->rc >= 0)   /* after an error the count means nothing */
			assert_int_equal(o.used, r->used);
		assert_int_equal(o.body.len, r->body.len);
		assert_memory_equal(o.body.data, r->body.data, r->body.len);
		assert_int_equal(o.head.status, r->head.status);
		buf_release(&o.body);
	}
}

static void test_content_length(void **state UNUSED)
{
	const char *in = "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 11\r\nretry-after:  7 \r\n"
			 "X-Bhatti-Existing: true\r\n\r\nhello worldEXTRA";
	struct result r;
	parse3(in, false, false, &r);
	assert_int_equal(r.rc, HTTPC_DONE);
	assert_int_equal(r.heads, 1);
	assert_int_equal(r.head.status, 429);
	assert_int_equal(r.head.clen, 11);
	assert_string_equal(r.head.retry_after, "7");
	assert_true(r.head.existing);
	assert_false(r.head.chunked);
	assert_string_equal(r.body.data, "hello world");
	assert_int_equal(r.used, strlen(in) - 5);   /* "EXTRA" is not ours */
	buf_release(&r.body);

	parse3("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nNEXT", false, false, &r);
	assert_int_equal(r.rc, HTTPC_DONE);
	assert_int_equal(r.body.len, 0);
	assert_int_equal(r.used, strlen("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
	buf_release(&r.body);
}

static void test_chunked(void **state UNUSED)
{
	const char *in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
			 "5\r\nhello\r\n6;ext=1\r\n world\r\nA\r\n0123456789\r\n"
			 "0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\nNEXT";
	struct result r;
	parse3(in, false, false, &r);
	assert_int_equal(r.rc, HTTPC_DONE);
	assert_true(r.head.chunked);   /* it wins over Content-Length */
	assert_string_equal(r.body.data, "hello world0123456789");
	assert_int_equal(r.used, strlen(in) - 4);
	buf_release(&r.body);

	/* no trailers: "0\r\n\r\n" */
	parse3("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", false,
	       false, &r);
	assert_int_equal(r.rc, HTTPC_DONE);
	assert_string_equal(r.body.data, "abc");
	buf_release(&r.body);
}

static void test_until_close(void **state UNUSED)
{
	const char *in = "HTTP/1.1 200 OK\r\n\r\n{\"type\":\"stdout\"}\n{\"type\":\"exit\"}\n";
	struct result r;
	parse3(in, false, false, &r);
	assert_int_equal(r.rc, HTTPC_MORE);   /* only the close ends it */
	buf_release(&r.body);
	parse3(in, false, true, &r);
	assert_int_equal(r.rc, HTTPC_DONE);
	assert_int_equal(r.head.clen, -1);
	assert_string_equal(r.body.data, "{\"type\":\"stdout\"}\n{\"type\":\"exit\"}\n");
	buf_release(&r.body);
}

static void test_no_body(void **state UNUSED)
{
	struct result r;
	/* an answer to HEAD has a head only, whatever its Content-Length */
	parse3("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", true, false, &r);
	assert_int_equal(r.rc, HTTPC_DONE);
	assert_int_equal(r.head.clen, 5000);
	assert_int_equal(r.body.len, 0);
	buf_release(&r.body);
	static const char *const heads[] = {
		"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(heads); i++) {
		parse3(heads[i], false, false, &r);
		assert_int_equal(r.rc, HTTPC_DONE);
		assert_int_equal(r.body.len, 0);
		buf_release(&r.body);
	}
	/* a 101: the bytes after the head are the WebSocket's, not used */
	const char *ws = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			 "Sec-WebSocket-Accept: abc= \r\n\r\n\x81\x02hi";
	parse3(ws, false, false, &r);
	assert_int_equal(r.rc, HTTPC_DONE);
	assert_int_equal(r.head.status, 101);
	assert_string_equal(r.head.ws_accept, "abc=");
	assert_int_equal(r.used, strlen(ws) - 4);
	buf_release(&r.body);
}

static void expect_error(const char *in, bool eof, int code, const char *msg)
{
	struct result r;
	parse3(in, false, eof, &r);
	assert_int_equal(r.rc, -code);
	assert_int_equal(r.e.code, code);
	if (msg && !strstr(err_str(&r.e), msg))
		fail_msg("'%s' does not say '%s'", err_str(&r.e), msg);
	buf_release(&r.body);
}

static void test_malformed(void **state UNUSED)
{
	expect_error("SSH-2.0-OpenSSH\r\n\r\n", false, EPROTO, "is not HTTP: 'SSH-2.0-OpenSSH'");
	expect_error("HTTP/1.1 42 Odd\r\n\r\n", false, EPROTO, "is not HTTP");
	expect_error("HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", false, EPROTO,
		     "bad Content-Length '-3'");
	expect_error("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", false, EPROTO, NULL);
	expect_error("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", false, EPROTO, NULL);
	expect_error("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", false,
		     EPROTO, NULL);
	const char *chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
	static const char *const bad_chunks[] = {
		"zz\r\nhello\r\n",          /* not hex */
		"5 \r\nhello\r\n",          /* junk after the size */
		"5\nhello\r\n",             /* no CR */
		"5\r\nhello!!",             /* no CRLF after the data */
		"FFFFFFFFFFFFFFFFF\r\n",    /* over 64 bits */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_chunks); i++) {
		struct buf b = BUF_INIT;
		buf_addf(&b, "%s%s", chunked, bad_chunks[i]);
		expect_error(b.data, false, EPROTO, "chunk");
		buf_release(&b);
	}
	/* a chunk-size line that never ends */
	struct buf b = BUF_INIT;
	buf_adds(&b, chunked);
	for (unsigned i = 0; i < HTTPC_MAX_LINE + 10; i++)
		buf_addch(&b, '1');
	expect_error(b.data, false, EPROTO, "bad chunk header");
	/* trailers that never end */
	buf_reset(&b);
	buf_addf(&b, "%s0\r\n", chunked);
	while (b.len < HTTPC_MAX_HEAD + 200)
		buf_adds(&b, "X-Trailer: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
	expect_error(b.data, false, EPROTO, "trailers are too long");
	/* a head that never ends is cut off at HTTPC_MAX_HEAD */
	buf_reset(&b);
	buf_adds(&b, "HTTP/1.1 200 OK\r\nX: ");
	while (b.len < HTTPC_MAX_HEAD + 100)
		buf_addch(&b, 'a');
	expect_error(b.data, false, EPROTO, "a head over");
	buf_release(&b);
	/* a NUL byte in the head (read as a C string, it ended the head
	 * early and the parser followed a NULL: found by fuzz-httpc) */
	static const char nul_status[] = "HTTP/1.1 200 OK\0\r\nContent-Length: 2\r\n\r\nhi";
	static const char nul_header[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 2\r\n\r\nhi";
	const struct { const char *in; size_t n; } nul[] = {
		{ nul_status, sizeof(nul_status) - 1 }, { nul_header, sizeof(nul_header) - 1 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(nul); i++) {
		for (size_t step = 1; step <= nul[i].n; step += nul[i].n - 1) {
			struct result r;
			parse(nul[i].in, nul[i].n, step, false, false, &r);
			assert_int_equal(r.rc, -EPROTO);
			if (!strstr(err_str(&r.e), "NUL"))
				fail_msg("'%s' does not say NUL", err_str(&r.e));
			buf_release(&r.body);
		}
	}
}

static void test_early_close(void **state UNUSED)
{
	expect_error("", true, ECONNRESET, "without an answer");
	expect_error("HTTP/1.1 200 OK\r\nContent-Le", true, ECONNRESET, "without an answer");
	expect_error("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", true, ECONNRESET,
		     "5 bytes before the end");
	expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", true,
		     ECONNRESET, "cut short");
	expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5", true, ECONNRESET,
		     "cut short");
	/* a close in the trailers ends the answer (the body is all there) */
	struct result r;
	parse3("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T",
	       false, true, &r);
	assert_int_equal(r.rc, HTTPC_DONE);
	assert_string_equal(r.body.data, "ok");
	buf_release(&r.body);
}

static void test_error_is_sticky(void **state UNUSED)
{
	struct httpc p;
	struct err e = ERR_INIT;
	size_t used, len;
	const char *piece;
	const char *bad = "NOT HTTP\r\n\r\n";
	httpc_init(&p, false);
	assert_int_equal(httpc_parse(&p, bad, strlen(bad), &used, &piece, &len, &e), -EPROTO);
	const char *good = "HTTP/1.1 200 OK\r\n\r\n";
	assert_int_equal(httpc_parse(&p, good, strlen(good), &used, &piece, &len, &e), -EPROTO);
	assert_int_equal(httpc_eof(&p, &e), -EPROTO);
	httpc_release(&p);
}

static void test_request_and_escape(void **state UNUSED)
{
	struct buf b = BUF_INIT;
	httpc_request(&b, "POST", "127.0.0.1:8080", "/bhatti", "/sandboxes?x=1",
		      "Accept: */*\r\n", 2);
	assert_string_equal(b.data, "POST /bhatti/sandboxes?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
				    "User-Agent: bhatti/" BHATTI_VERSION "\r\nContent-Length: 2\r\n"
				    "Accept: */*\r\n\r\n");
	buf_reset(&b);
	httpc_request(&b, "GET", "h", "", "/health", NULL, -1);
	assert_string_equal(b.data, "GET /health HTTP/1.1\r\nHost: h\r\nUser-Agent: bhatti/" BHATTI_VERSION
				    "\r\n\r\n");
	buf_release(&b);
	char *s = httpc_escape("a b/c?d&e=f%g~h.i_j-k\xc3\xa9");
	assert_string_equal(s, "a%20b/c%3Fd%26e%3Df%25g~h.i_j-k%C3%A9");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_until_close),
		cmocka_unit_test(test_no_body),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_early_close),
		cmocka_unit_test(test_error_is_sticky),
		cmocka_unit_test(test_request_and_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
