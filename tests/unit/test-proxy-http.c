/* test-proxy-http.c — the publish proxy's HTTP/1.1 heads and body framing
 * (daemon/proxy-http.c): where a head ends, request and response heads,
 * headers and hop-by-hop ones, what is refused (smuggling shapes), and
 * chunked bodies followed byte by byte and in one piece, with the next
 * message left over. Sits between cmocka and proxy-http.c; memory only.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proxy-http.h"

static void test_head_end(void **state)
{
	(void)state;
	const char *a = "GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
	assert_int_equal(phead_end(a, strlen(a), 1000), strlen(a) - 4);
	assert_int_equal(phead_end(a, 10, 1000), 0);
	const char *b = "GET / HTTP/1.1\nHost: x\n\nrest";
	assert_int_equal(phead_end(b, strlen(b), 1000), strlen(b) - 4);
	assert_int_equal(phead_end(a, strlen(a), 10), -1);
	/* not ended, and already too long */
	assert_int_equal(phead_end("GET / HTTP/1.1\r\nHost", 20, 20), -1);
}

static void test_request(void **state)
{
	(void)state;
	struct phead h;
	struct err e = ERR_INIT;
	const char *a = "POST /a/b?c=d HTTP/1.1\r\nHost: ex.test:81\r\nContent-Length:  12 \r\n"
			"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nUpgrade: websocket\r\n\r\n";
	assert_int_equal(phead_parse_request(a, strlen(a), &h, &e), 0);
	assert_string_equal(h.method, "POST");
	assert_string_equal(h.target, "/a/b?c=d");
	assert_int_equal(h.minor, 1);
	assert_string_equal(phead_get(&h, "HOST"), "ex.test:81");
	assert_string_equal(phead_get(&h, "content-length"), "12");
	assert_true(phead_has_token(&h, "connection", "KEEP-ALIVE"));
	assert_true(phead_hop_by_hop(&h, "x-hop"));
	assert_true(phead_hop_by_hop(&h, "Upgrade"));
	assert_false(phead_hop_by_hop(&h, "host"));
	struct pbody b;
	assert_int_equal(pbody_request(&h, &b, &e), 0);
	assert_int_equal(b.kind, PBODY_LENGTH);
	assert_int_equal(b.left, 12);
	phead_release(&h);

	/* no length: no body */
	const char *g = "GET / HTTP/1.0\r\n\r\n";
	assert_int_equal(phead_parse_request(g, strlen(g), &h, &e), 0);
	assert_int_equal(h.minor, 0);
	assert_int_equal(pbody_request(&h, &b, &e), 0);
	assert_int_equal(b.kind, PBODY_NONE);
	phead_release(&h);
}

static void refused(const char *head, int want)
{
	struct phead h;
	struct err e = ERR_INIT;
	struct pbody b;
	int r = phead_parse_request(head, strlen(head), &h, &e);
	if (r == 0)
		r = pbody_request(&h, &b, &e);
	phead_release(&h);
	if (r != want)
		fail_msg("'%s': %d, not %d (%s)", head, r, want, e.msg);
}

static void test_refused(void **state)
{
	(void)state;
	refused("GET /\r\n\r\n", -EINVAL);
	refused("GET / HTTP/2.0\r\n\r\n", -EINVAL);
	refused("GET  / HTTP/1.1\r\n\r\n", -EINVAL);
	refused("G(T / HTTP/1.1\r\n\r\n", -EINVAL);
	refused("GET / HTTP/1.1\r\n folded\r\n\r\n", -EINVAL);
	refused("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", -EINVAL);
	refused("GET / HTTP/1.1\r\nName : x\r\n\r\n", -EINVAL);
	refused("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", -EINVAL);
	refused("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		-EINVAL);
	refused("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", -EINVAL);
	refused("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", -EINVAL);
	refused("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", -EINVAL);
	refused("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -ENOSYS);
	refused("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		-EINVAL);
	/* the same Content-Length twice is one */
	refused("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", 0);
	/* a NUL inside */
	struct phead h;
	struct err e = ERR_INIT;
	assert_int_equal(phead_parse_request("GET / HTTP/1.1\r\nA: \0\r\n\r\n", 24, &h, &e), -EINVAL);
	phead_release(&h);
}

static void test_response(void **state)
{
	(void)state;
	struct phead h;
	struct err e = ERR_INIT;
	struct pbody b;
	const char *a = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
	assert_int_equal(phead_parse_response(a, strlen(a), &h, &e), 0);
	assert_int_equal(h.status, 200);
	assert_string_equal(h.reason, "OK");
	assert_int_equal(pbody_response(&h, "GET", &b, &e), 0);
	assert_int_equal(b.kind, PBODY_CHUNKED);
	assert_int_equal(pbody_response(&h, "HEAD", &b, &e), 0);
	assert_int_equal(b.kind, PBODY_NONE);
	phead_release(&h);
	const char *c = "HTTP/1.0 404\r\nServer: x\r\n\r\n";
	assert_int_equal(phead_parse_response(c, strlen(c), &h, &e), 0);
	assert_int_equal(h.status, 404);
	assert_string_equal(h.reason, "");
	assert_int_equal(pbody_response(&h, "GET", &b, &e), 0);
	assert_int_equal(b.kind, PBODY_CLOSE);
	phead_release(&h);
	const char *d = "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n";
	assert_int_equal(phead_parse_response(d, strlen(d), &h, &e), 0);
	assert_int_equal(pbody_response(&h, "GET", &b, &e), 0);
	assert_int_equal(b.kind, PBODY_NONE);
	phead_release(&h);
	const char *x = "HTTP/1.1 2000 OK\r\n\r\n";
	assert_int_equal(phead_parse_response(x, strlen(x), &h, &e), -EINVAL);
	phead_release(&h);
}

static struct pbody chunked(void)
{
	struct pbody b = { .kind = PBODY_CHUNKED };
	return b;
}

static void test_chunked(void **state)
{
	(void)state;
	const char *body = "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n"
			   "Trailer-A: 1\r\n\r\n";
	const char *next = "GET /next HTTP/1.1\r\n\r\n";
	char all[256];
	snprintf(all, sizeof(all), "%s%s", body, next);
	/* in one piece: exactly the body */
	struct pbody b = chunked();
	bool done = false;
	ssize_t k = pbody_take(&b, (const uint8_t *)all, strlen(all), &done);
	assert_int_equal(k, strlen(body));
	assert_true(done);
	assert_true(pbody_done(&b));
	/* byte by byte: done exactly at the body's last byte */
	b = chunked();
	size_t i;
	for (i = 0; i < strlen(all); i++) {
		k = pbody_take(&b, (const uint8_t *)all + i, 1, &done);
		assert_int_equal(k, 1);
		if (done)
			break;
	}
	assert_int_equal(i + 1, strlen(body));
	/* no trailers, bare LF line ends */
	b = chunked();
	const char *lf = "3\nabc\n0\n\nX";
	assert_int_equal(pbody_take(&b, (const uint8_t *)lf, strlen(lf), &done), strlen(lf) - 1);
	assert_true(done);
	/* malformed */
	const char *bad[] = { "x\r\n", "5\r\nhelloX", "\r\n", "5\r\nhello\r\r", "0\r\nA\x01\r\n" };
	for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
		b = chunked();
		assert_int_equal(pbody_take(&b, (const uint8_t *)bad[j], strlen(bad[j]), &done),
				 -EINVAL);
	}
	/* an absurd size */
	b = chunked();
	const char *huge = "fffffffffffffffff\r\n";
	assert_int_equal(pbody_take(&b, (const uint8_t *)huge, strlen(huge), &done), -EINVAL);
	/* Content-Length framing leaves the rest */
	struct pbody l = { .kind = PBODY_LENGTH, .left = 4 };
	assert_int_equal(pbody_take(&l, (const uint8_t *)"abcdef", 6, &done), 4);
	assert_true(done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_head_end),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_response),
		cmocka_unit_test(test_chunked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
