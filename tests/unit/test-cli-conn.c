/* test-cli-conn.c — unit tests for cli/conn.c, the CLI's own HTTP/1.1
 * client: URL checks, and responses framed every way a server may frame
 * them (Content-Length, chunked with trailers, up to the close, cut
 * short, an answer to HEAD), read from a real loopback socket. The peer is
 * a canned server in a thread of this test (it answers with fixed bytes,
 * so framings the daemon never sends can be tried too).
 * Sits between cmocka and conn.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "util.h"

/* ---- a canned server: accept one connection, read the request head,
 * write the answer in pieces (a short pause between them), close ---- */

struct canned {
	int lfd;
	char url[64];
	const char *const *pieces;   /* NULL-terminated */
	char request[4096];          /* the request head it got */
	pthread_t th;
};

static void *serve_one(void *arg)
{
	struct canned *c = arg;
	int fd = accept(c->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	size_t got = 0;
	while (got < sizeof(c->request) - 1 && !strstr(c->request, "\r\n\r\n")) {
		ssize_t n = read(fd, c->request + got, sizeof(c->request) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		c->request[got] = '\0';
	}
	for (const char *const *p = c->pieces; *p; p++) {
		if (write_all(fd, *p, strlen(*p)) < 0)
			break;
		usleep(2000);
	}
	close(fd);
	return NULL;
}

static void canned_start(struct canned *c, const char *const *pieces)
{
	memset(c, 0, sizeof(*c));
	c->pieces = pieces;
	c->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	assert_int_equal(bind(c->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(c->lfd, 4), 0);
	assert_int_equal(getsockname(c->lfd, (struct sockaddr *)&a, &al), 0);
	snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%u", ntohs(a.sin_port));
	assert_int_equal(pthread_create(&c->th, NULL, serve_one, c), 0);
}

static void canned_end(struct canned *c)
{
	pthread_join(c->th, NULL);
	close(c->lfd);
}

static bool collect(const char *p, size_t n, void *arg)
{
	buf_add(arg, p, n);
	return true;
}

/* GET / against pieces: the head and body (NUL-terminated) or the error. */
static int fetch(const char *const *pieces, const char *method, struct conn_head *h,
		 struct buf *body, struct err *e, char *request_out)
{
	struct canned srv;
	canned_start(&srv, pieces);
	struct conn c;
	int rc = conn_open(&c, srv.url, e);
	if (rc == 0)
		rc = conn_send_head(&c, method, "/x", "Accept: */*\r\n", -1, e);
	if (rc == 0)
		rc = conn_read_head(&c, h, e);
	if (rc == 0)
		rc = conn_read_body(&c, h, strcmp(method, "HEAD") == 0, collect, body, e);
	buf_addch(body, '\0');
	conn_close(&c);
	canned_end(&srv);
	if (request_out)
		memcpy(request_out, srv.request, sizeof(srv.request));
	return rc;
}

/* ---- tests ---- */

static void test_urls_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"https://127.0.0.1:8080", "ftp://x", "127.0.0.1:8080", "http://", "http://:80",
		"http://127.0.0.1:0", "http://127.0.0.1:70000", "http://127.0.0.1:8x",
		"http://[::1", "http://[::1]x", "http://127.0.0.1:8080/a?b=c",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct conn c;
		struct err e = ERR_INIT;
		assert_true(conn_open(&c, bad[i], &e) < 0);
		assert_int_equal(e.code, EINVAL);
		conn_close(&c);
	}
	struct conn c;
	struct err e = ERR_INIT;
	assert_true(conn_open(&c, "https://h", &e) < 0);
	assert_non_null(strstr(err_str(&e), "SSH tunnel"));
	conn_close(&c);
}

static void test_refused_connection(void **state)
{
	(void)state;
	/* a port nobody listens on: bind one, close it, dial it */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &al);
	close(fd);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", ntohs(a.sin_port));
	struct conn c;
	struct err e = ERR_INIT;
	assert_true(conn_open(&c, url, &e) < 0);
	assert_int_equal(e.code, ECONNREFUSED);
	assert_non_null(strstr(err_str(&e), "cannot reach the daemon"));
	conn_close(&c);
}

static void test_content_length(void **state)
{
	(void)state;
	static const char *const p[] = {
		"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 11\r\nretry-after:  7 \r\n"
		"X-Bhatti-Existing: true\r\n\r\nhello",
		" world", "EXTRA BYTES AFTER THE BODY", NULL
	};
	struct conn_head h;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char req[4096];
	assert_int_equal(fetch(p, "GET", &h, &b, &e, req), 0);
	assert_int_equal(h.status, 429);
	assert_int_equal(h.clen, 11);
	assert_string_equal(h.retry_after, "7");
	assert_true(h.existing);
	assert_string_equal(b.data, "hello world");
	assert_memory_equal(req, "GET /x HTTP/1.1\r\nHost: 127.0.0.1:", 32);
	assert_non_null(strstr(req, "\r\nAccept: */*\r\n\r\n"));
	buf_release(&b);
}

static void test_chunked(void **state)
{
	(void)state;
	static const char *const p[] = {
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "lo\r\n",
		"6;ext=1\r\n world\r\n", "0\r\nX-Trailer: 1\r\n\r\n", NULL
	};
	struct conn_head h;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(fetch(p, "GET", &h, &b, &e, NULL), 0);
	assert_true(h.chunked);
	assert_string_equal(b.data, "hello world");
	buf_release(&b);

	static const char *const bad[] = {
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", NULL
	};
	struct buf b2 = BUF_INIT;
	assert_true(fetch(bad, "GET", &h, &b2, &e, NULL) < 0);
	assert_int_equal(e.code, EPROTO);
	buf_release(&b2);
}

static void test_until_close_and_cut_short(void **state)
{
	(void)state;
	static const char *const p[] = { "HTTP/1.1 200 OK\r\n\r\n{\"type\":\"stdout\"}\n",
					 "{\"type\":\"exit\"}\n", NULL };
	struct conn_head h;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(fetch(p, "POST", &h, &b, &e, NULL), 0);
	assert_int_equal(h.clen, -1);
	assert_string_equal(b.data, "{\"type\":\"stdout\"}\n{\"type\":\"exit\"}\n");
	buf_release(&b);

	static const char *const short_body[] = { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345",
						  NULL };
	struct buf b2 = BUF_INIT;
	assert_true(fetch(short_body, "GET", &h, &b2, &e, NULL) < 0);
	assert_int_equal(e.code, ECONNRESET);
	assert_non_null(strstr(err_str(&e), "5 bytes before the end"));
	buf_release(&b2);

	static const char *const nothing[] = { NULL };
	struct buf b3 = BUF_INIT;
	assert_true(fetch(nothing, "GET", &h, &b3, &e, NULL) < 0);
	assert_int_equal(e.code, ECONNRESET);
	buf_release(&b3);
}

static void test_head_and_no_body(void **state)
{
	(void)state;
	static const char *const p[] = { "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", NULL };
	struct conn_head h;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(fetch(p, "HEAD", &h, &b, &e, NULL), 0);
	assert_int_equal(h.clen, 5000);
	assert_string_equal(b.data, "");
	buf_release(&b);
	static const char *const nc[] = { "HTTP/1.1 204 No Content\r\n\r\n", NULL };
	struct buf b2 = BUF_INIT;
	assert_int_equal(fetch(nc, "DELETE", &h, &b2, &e, NULL), 0);
	assert_int_equal(h.status, 204);
	buf_release(&b2);
}

static void test_bad_heads(void **state)
{
	(void)state;
	static const char *const not_http[] = { "SSH-2.0-OpenSSH\r\n\r\n", NULL };
	static const char *const bad_len[] = { "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
					       NULL };
	const char *const *cases[] = { not_http, bad_len };
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct conn_head h;
		struct buf b = BUF_INIT;
		struct err e = ERR_INIT;
		assert_true(fetch(cases[i], "GET", &h, &b, &e, NULL) < 0);
		assert_int_equal(e.code, EPROTO);
		buf_release(&b);
	}
	/* a head that never ends is cut off at CONN_MAX_HEAD */
	char *big = xmalloc(CONN_MAX_HEAD + 64);
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	memset(big + 20, 'a', CONN_MAX_HEAD + 40);
	big[CONN_MAX_HEAD + 60] = '\0';
	const char *const huge[] = { big, NULL };
	struct conn_head h;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_true(fetch(huge, "GET", &h, &b, &e, NULL) < 0);
	assert_int_equal(e.code, EPROTO);
	buf_release(&b);
	free(big);
}

static bool stop_at_first(const char *p, size_t n, void *arg)
{
	(void)p;
	*(size_t *)arg += n;
	return false;
}

static void test_prefix_and_consumer_stop(void **state)
{
	(void)state;
	static const char *const p[] = { "HTTP/1.1 200 OK\r\n\r\nfirst", "second", NULL };
	struct canned srv;
	canned_start(&srv, p);
	char url[96];
	snprintf(url, sizeof(url), "%s/bhatti/api//", srv.url);
	struct conn c;
	struct err e = ERR_INIT;
	assert_int_equal(conn_open(&c, url, &e), 0);
	assert_string_equal(c.prefix, "/bhatti/api");
	assert_int_equal(conn_send_head(&c, "POST", "/sandboxes", NULL, 2, &e), 0);
	assert_int_equal(conn_send(&c, "{}", 2, &e), 0);
	struct conn_head h;
	assert_int_equal(conn_read_head(&c, &h, &e), 0);
	size_t seen = 0;
	assert_int_equal(conn_read_body(&c, &h, false, stop_at_first, &seen, &e), 1);
	assert_int_equal(seen, 5);
	conn_close(&c);
	canned_end(&srv);
	assert_memory_equal(srv.request, "POST /bhatti/api/sandboxes HTTP/1.1\r\n", 37);
	assert_non_null(strstr(srv.request, "Content-Length: 2\r\n"));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);   /* the canned server may write to a closed peer */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_urls_refused),
		cmocka_unit_test(test_refused_connection),
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_until_close_and_cut_short),
		cmocka_unit_test(test_head_and_no_body),
		cmocka_unit_test(test_bad_heads),
		cmocka_unit_test(test_prefix_and_consumer_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
