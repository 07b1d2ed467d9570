/* test-client-client.c — unit tests for client/client.c: the settings'
 * precedence (flag > environment > ~/.bhatti/config.yaml > default, a bad
 * config file skipped with a warning), URL checks, and synchronous calls
 * read from a real loopback socket: answers framed every way a server may
 * frame them, cut short, to HEAD, with a path prefix, a consumer that
 * stops, bodies from memory and from an fd, and what the request head
 * carries. The peer is a canned server in a thread of this test (it
 * answers with fixed bytes, so framings the daemon never sends can be
 * tried too).
 * Sits between cmocka and client.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "helpers.h"
#include "httpc.h"
#include "util.h"

static struct client *client_for(const char *url, const char *token)
{
	struct client_settings s = { .url = (char *)url, .token = (char *)token };
	return client_new(&s);
}

static bool collect(const char *p, size_t n, void *arg)
{
	buf_add(arg, p, n);
	return true;
}

/* rq against a canned server answering pieces: the answer (its 2xx body
 * collected into body) or the error; the request head the server got. */
static int fetch(const char *const *pieces, struct client_req *rq, struct client_resp *r,
		 struct buf *body, struct err *e, char *request_out)
{
	struct canned srv;
	struct canned_conn cc = { .pieces = pieces };
	canned_start(&srv, &cc, 1);
	struct client *c = client_for(srv.url, "tok");
	if (!rq->path)
		rq->path = "/x";
	rq->on_body = collect;
	rq->arg = body;
	int rc = client_call(c, rq, r, e);
	buf_addch(body, '\0');
	client_free(c);
	canned_end(&srv);
	buf_release(&cc.rest);
	if (request_out)
		memcpy(request_out, cc.request, sizeof(cc.request));
	return rc;
}

/* ---- settings ------------------------------------------------------------ */

static char *home;

static void write_config(const char *text)
{
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/.bhatti", home);
	mkdir(p.data, 0700);
	buf_adds(&p, "/config.yaml");
	FILE *f = fopen(p.data, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	buf_release(&p);
}

/* Resolve with these flags; the outcome must be url, token, from. */
static void expect(const char *flag_url, const char *flag_token, const char *url,
		   const char *token, const char *from)
{
	struct client_settings s;
	struct err warn = ERR_INIT;

	client_settings_resolve(&s, flag_url, flag_token, &warn);
	assert_int_equal(warn.code, 0);
	assert_string_equal(s.url, url);
	assert_string_equal(s.token, token);
	assert_string_equal(s.url_from, from);
	assert_int_equal(s.connect_timeout_ms, CLIENT_CONNECT_TIMEOUT_MS);
	client_settings_release(&s);
}

static void test_settings_precedence(void **state UNUSED)
{
	home = test_tmpdir("client-settings");
	setenv("HOME", home, 1);
	unsetenv("BHATTI_URL");
	unsetenv("BHATTI_TOKEN");
	expect(NULL, NULL, CLIENT_DEFAULT_URL, "", "default");
	write_config("url: \"http://cfg:1/\"\ntoken: \"bht_cfg\"\n");
	expect(NULL, NULL, "http://cfg:1", "bht_cfg", "config");   /* no trailing slash */
	setenv("BHATTI_URL", "http://env:2", 1);
	setenv("BHATTI_TOKEN", "bht_env", 1);
	expect(NULL, NULL, "http://env:2", "bht_env", "env");
	expect("http://flag:3//", "bht_flag", "http://flag:3", "bht_flag", "flag");
	/* an empty environment variable does not count */
	setenv("BHATTI_URL", "", 1);
	setenv("BHATTI_TOKEN", "", 1);
	expect(NULL, NULL, "http://cfg:1", "bht_cfg", "config");

	struct client_settings s;
	struct err warn = ERR_INIT;

	/* the CA of an https daemon: BHATTI_CA > `ca:` > none */
	unsetenv("BHATTI_CA");
	client_settings_resolve(&s, NULL, NULL, &warn);
	assert_null(s.ca);
	client_settings_release(&s);
	write_config("url: \"https://cfg:1\"\nca: \"/etc/cfg-ca.pem\"\n");
	client_settings_resolve(&s, NULL, NULL, &warn);
	assert_string_equal(s.ca, "/etc/cfg-ca.pem");
	client_settings_release(&s);
	setenv("BHATTI_CA", "/etc/env-ca.pem", 1);
	client_settings_resolve(&s, NULL, NULL, &warn);
	assert_string_equal(s.ca, "/etc/env-ca.pem");
	client_settings_release(&s);
	unsetenv("BHATTI_CA");
	write_config("url: \"http://cfg:1/\"\ntoken: \"bht_cfg\"\n");

	/* a broken file is skipped, with a warning that names it */
	write_config("url: [\n");
	client_settings_resolve(&s, NULL, NULL, &warn);
	assert_int_not_equal(warn.code, 0);
	assert_non_null(strstr(err_str(&warn), "config.yaml"));
	assert_string_equal(s.url, CLIENT_DEFAULT_URL);
	client_settings_release(&s);

	unsetenv("BHATTI_URL");
	unsetenv("BHATTI_TOKEN");
	test_rmtree(home);
	free(home);
}

/* The TUI's theme: BHATTI_THEME > theme: in the file > none (the TUI's
 * --theme is above both, in tui/); theme: is a key the file may have. */
static void test_settings_theme(void **state UNUSED)
{
	home = test_tmpdir("client-theme");
	setenv("HOME", home, 1);
	unsetenv("BHATTI_URL");
	unsetenv("BHATTI_TOKEN");
	unsetenv("BHATTI_THEME");
	struct client_settings s;
	struct err warn = ERR_INIT;
	client_settings_resolve(&s, NULL, NULL, &warn);
	assert_null(s.theme);
	client_settings_release(&s);
	write_config("url: \"http://cfg:1\"\ntheme: light\n");
	client_settings_resolve(&s, NULL, NULL, &warn);
	assert_int_equal(warn.code, 0);
	assert_string_equal(s.theme, "light");
	assert_string_equal(s.file_theme, "light");
	client_settings_release(&s);
	setenv("BHATTI_THEME", "mono", 1);
	client_settings_resolve(&s, NULL, NULL, &warn);
	assert_string_equal(s.theme, "mono");
	assert_string_equal(s.file_theme, "light");   /* the file's, for bhatti setup */
	client_settings_release(&s);
	setenv("BHATTI_THEME", "", 1);   /* empty: not set */
	client_settings_resolve(&s, NULL, NULL, &warn);
	assert_string_equal(s.theme, "light");
	client_settings_release(&s);
	unsetenv("BHATTI_THEME");
	test_rmtree(home);
	free(home);
}

/* ---- URLs and dialing ----------------------------------------------------- */

/* GET /health with c: the call's return (its error in e). */
static int get_health(struct client *c, struct err *e)
{
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "GET";
	rq.path = "/health";
	struct client_resp r;
	int rc = client_call(c, &rq, &r, e);
	client_resp_release(&r);
	return rc;
}

static void test_urls_refused(void **state UNUSED)
{
	static const char *const bad[] = {
		"https://", "ftp://x", "127.0.0.1:8080", "http://", "http://:80",
		"http://127.0.0.1:0", "http://127.0.0.1:70000", "http://127.0.0.1:8x",
		"http://[::1", "http://[::1]x", "http://127.0.0.1:8080/a?b=c",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct client *c = client_for(bad[i], "");
		struct err e = ERR_INIT;
		assert_int_equal(get_health(c, &e), -EINVAL);
		assert_int_equal(e.code, EINVAL);
		assert_false(client_unreachable(&e));
		client_free(c);
	}
	/* https: port 443 unless given; TLS on */
	struct client *c = client_for("https://h", "");
	assert_int_equal(c->url_err.code, 0);
	assert_true(c->tls);
	assert_string_equal(c->port, "443");
	client_free(c);
	c = client_for("http://h", "");
	assert_false(c->tls);
	assert_string_equal(c->port, "80");
	client_free(c);
	c = client_for("http://[::1]:81/bhatti/api//", "");
	assert_int_equal(c->url_err.code, 0);
	assert_string_equal(c->name, "::1");
	assert_string_equal(c->port, "81");
	assert_string_equal(c->host, "[::1]:81");
	assert_string_equal(c->prefix, "/bhatti/api");
	client_free(c);
}

static void test_refused_connection(void **state UNUSED)
{
	char url[64];
	free_port_url(url, sizeof(url));
	struct client *c = client_for(url, "");
	struct err e = ERR_INIT;
	assert_int_equal(get_health(c, &e), -ECONNREFUSED);
	assert_int_equal(e.code, ECONNREFUSED);
	assert_true(client_unreachable(&e));
	assert_non_null(strstr(err_str(&e), "cannot reach the daemon at http://127.0.0.1:"));
	client_free(c);
}

/* ---- answers -------------------------------------------------------------- */

static void test_content_length(void **state UNUSED)
{
	static const char *const p[] = {
		"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 11\r\nretry-after:  7 \r\n"
		"X-Bhatti-Existing: true\r\n\r\nhello",
		" world", "EXTRA BYTES AFTER THE BODY", NULL
	};
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "GET";
	rq.accept = "*/*";
	struct client_resp r;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char req[4096];
	assert_int_equal(fetch(p, &rq, &r, &b, &e, req), 0);
	assert_int_equal(r.status, 429);
	assert_string_equal(r.retry_after, "7");
	assert_true(r.existing);
	assert_string_equal(r.body.data, "hello world");   /* not 2xx: kept, not streamed */
	assert_string_equal(b.data, "");
	assert_memory_equal(req, "GET /x HTTP/1.1\r\nHost: 127.0.0.1:", 32);
	assert_non_null(strstr(req, "\r\nAuthorization: Bearer tok\r\n"));
	assert_non_null(strstr(req, "\r\nAccept: */*\r\n"));
	assert_non_null(strstr(req, "\r\nConnection: close\r\n\r\n"));
	assert_null(strstr(req, "Content-Length"));   /* a GET has no body */
	client_resp_release(&r);
	buf_release(&b);
}

static void test_chunked(void **state UNUSED)
{
	static const char *const p[] = {
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "lo\r\n",
		"6;ext=1\r\n world\r\n", "0\r\nX-Trailer: 1\r\n\r\n", NULL
	};
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "GET";
	struct client_resp r;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(fetch(p, &rq, &r, &b, &e, NULL), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(b.data, "hello world");
	assert_int_equal(r.body.len, 0);   /* 2xx: streamed, not kept */
	client_resp_release(&r);
	buf_release(&b);

	static const char *const bad[] = {
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", NULL
	};
	struct buf b2 = BUF_INIT;
	rq = (struct client_req)CLIENT_REQ_INIT;
	rq.method = "GET";
	assert_int_equal(fetch(bad, &rq, &r, &b2, &e, NULL), -EPROTO);
	assert_int_equal(e.code, EPROTO);
	assert_non_null(strstr(err_str(&e), "GET /x: bad chunk header"));
	assert_false(client_unreachable(&e));
	assert_int_equal(r.status, 0);   /* left empty */
	buf_release(&b2);
}

static void test_until_close_and_cut_short(void **state UNUSED)
{
	static const char *const p[] = { "HTTP/1.1 200 OK\r\n\r\n{\"type\":\"stdout\"}\n",
					 "{\"type\":\"exit\"}\n", NULL };
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "POST";
	struct client_resp r;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char req[4096];
	assert_int_equal(fetch(p, &rq, &r, &b, &e, req), 0);
	assert_string_equal(b.data, "{\"type\":\"stdout\"}\n{\"type\":\"exit\"}\n");
	assert_non_null(strstr(req, "\r\nContent-Length: 0\r\n"));   /* a POST always says */
	client_resp_release(&r);
	buf_release(&b);

	static const char *const short_body[] = { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345",
						  NULL };
	struct buf b2 = BUF_INIT;
	rq = (struct client_req)CLIENT_REQ_INIT;
	rq.method = "GET";
	assert_int_equal(fetch(short_body, &rq, &r, &b2, &e, NULL), -ECONNRESET);
	assert_non_null(strstr(err_str(&e), "5 bytes before the end"));
	buf_release(&b2);

	static const char *const nothing[] = { NULL };
	struct buf b3 = BUF_INIT;
	rq = (struct client_req)CLIENT_REQ_INIT;
	rq.method = "GET";
	assert_int_equal(fetch(nothing, &rq, &r, &b3, &e, NULL), -ECONNRESET);
	assert_non_null(strstr(err_str(&e), "without an answer"));
	buf_release(&b3);
}

static void test_head_and_no_body(void **state UNUSED)
{
	/* no body, and no waiting for the close that never comes early */
	static const char *const p[] = { "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", NULL };
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "HEAD";
	struct client_resp r;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(fetch(p, &rq, &r, &b, &e, NULL), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(b.data, "");
	client_resp_release(&r);
	buf_release(&b);
	static const char *const nc[] = { "HTTP/1.1 204 No Content\r\n\r\n", NULL };
	struct buf b2 = BUF_INIT;
	rq = (struct client_req)CLIENT_REQ_INIT;
	rq.method = "DELETE";
	assert_int_equal(fetch(nc, &rq, &r, &b2, &e, NULL), 0);
	assert_int_equal(r.status, 204);
	client_resp_release(&r);
	buf_release(&b2);
}

static void test_bad_heads(void **state UNUSED)
{
	static const char *const not_http[] = { "SSH-2.0-OpenSSH\r\n\r\n", NULL };
	static const char *const bad_len[] = { "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
					       NULL };
	char *big = xmalloc(HTTPC_MAX_HEAD + 64);
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	memset(big + 20, 'a', HTTPC_MAX_HEAD + 40);
	big[HTTPC_MAX_HEAD + 60] = '\0';
	const char *const huge[] = { big, NULL };
	const char *const *cases[] = { not_http, bad_len, huge };
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct client_req rq = CLIENT_REQ_INIT;
		rq.method = "GET";
		struct client_resp r;
		struct buf b = BUF_INIT;
		struct err e = ERR_INIT;
		assert_int_equal(fetch(cases[i], &rq, &r, &b, &e, NULL), -EPROTO);
		assert_int_equal(e.code, EPROTO);
		buf_release(&b);
	}
	free(big);
}

/* Counts the calls; stops at the first. */
static bool stop_at_first(const char *p, size_t n, void *arg)
{
	(void)p;
	(void)n;
	*(size_t *)arg += 1;
	return false;
}

static void test_prefix_body_and_consumer_stop(void **state UNUSED)
{
	static const char *const p[] = { "HTTP/1.1 200 OK\r\n\r\nfirst", "second", NULL };
	struct canned srv;
	struct canned_conn cc = { .pieces = p, .read_rest = true };
	canned_start(&srv, &cc, 1);
	char url[96];
	snprintf(url, sizeof(url), "%s/bhatti/api//", srv.url);
	struct client *c = client_for(url, "");
	size_t seen = 0;
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "POST";
	rq.path = "/sandboxes";
	rq.body = "{}";
	rq.len = 2;
	rq.ctype = "application/json";
	rq.on_body = stop_at_first;
	rq.arg = &seen;
	struct client_resp r;
	struct err e = ERR_INIT;
	assert_int_equal(client_call(c, &rq, &r, &e), 0);   /* stopping is not an error */
	/* called once, then no more (not "5 bytes": on a loaded machine
	 * "first" and "second" can come in one read) */
	assert_int_equal(seen, 1);
	client_resp_release(&r);
	client_free(c);
	canned_end(&srv);
	assert_memory_equal(cc.request, "POST /bhatti/api/sandboxes HTTP/1.1\r\n", 37);
	assert_non_null(strstr(cc.request, "\r\nContent-Length: 2\r\n"));
	assert_non_null(strstr(cc.request, "\r\nContent-Type: application/json\r\n"));
	assert_null(strstr(cc.request, "Authorization"));   /* no key, no header */
	assert_int_equal(cc.rest.len, 2);
	assert_memory_equal(cc.rest.data, "{}", 2);
	buf_release(&cc.rest);
}

static void test_upload_from_fd(void **state UNUSED)
{
	char path[] = "/tmp/bhatti-test-upload-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	struct buf data = BUF_INIT;
	for (int i = 0; i < 100000; i++)
		buf_addch(&data, (char)('a' + i % 26));
	assert_int_equal(write_all(fd, data.data, data.len), 0);
	lseek(fd, 0, SEEK_SET);
	static const char *const p[] = { "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", NULL };
	struct canned srv;
	struct canned_conn cc = { .pieces = p, .read_rest = true };
	canned_start(&srv, &cc, 1);
	struct client *c = client_for(srv.url, "tok");
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "PUT";
	rq.path = "/sandboxes/a/files?path=/f";
	rq.body_fd = fd;
	rq.len = data.len;
	rq.ctype = "application/octet-stream";
	struct client_resp r;
	struct err e = ERR_INIT;
	assert_int_equal(client_call(c, &rq, &r, &e), 0);
	assert_int_equal(r.status, 201);
	assert_string_equal(r.body.data, "{}");   /* no on_body: kept */
	client_resp_release(&r);
	client_free(c);
	canned_end(&srv);
	assert_non_null(strstr(cc.request, "\r\nContent-Length: 100000\r\n"));
	assert_int_equal(cc.rest.len, data.len);
	assert_memory_equal(cc.rest.data, data.data, data.len);
	buf_release(&cc.rest);

	/* a file shorter than it said: the send fails, the answer is read */
	lseek(fd, 50000, SEEK_SET);
	canned_start(&srv, &cc, 1);
	c = client_for(srv.url, "tok");
	rq.body_fd = fd;
	assert_int_equal(client_call(c, &rq, &r, &e), 0);
	assert_int_equal(r.status, 201);
	client_resp_release(&r);
	client_free(c);
	canned_end(&srv);
	buf_release(&cc.rest);
	close(fd);
	buf_release(&data);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);   /* the canned server may write to a closed peer */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_settings_precedence),
		cmocka_unit_test(test_settings_theme),
		cmocka_unit_test(test_urls_refused),
		cmocka_unit_test(test_refused_connection),
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_until_close_and_cut_short),
		cmocka_unit_test(test_head_and_no_body),
		cmocka_unit_test(test_bad_heads),
		cmocka_unit_test(test_prefix_body_and_consumer_stop),
		cmocka_unit_test(test_upload_from_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
