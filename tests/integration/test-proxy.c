/* test-proxy.c — end to end: published ports through the public proxy.
 * A real `bhatti serve` with public_proxy_listen and a domain, a real VM,
 * and in it build/guest/pxserve (tests/guest/pxserve.c: pages, a
 * WebSocket echo, SSE, downloads and uploads), uploaded with the CLI.
 *
 * Covers: publish/unpublish/ports through the CLI and the API (URLs,
 * generated aliases, idempotence, reserved words, an alias another user
 * holds), the path route (with the redirect of "/alias"), the host routes
 * (<alias>.<domain>, <alias>.<ip>.nip.io), X-Forwarded-* and hop-by-hop
 * headers, keep-alive, 404 for an unknown alias and at once after
 * unpublish, 502 for a port nothing listens on, a WebSocket echo, SSE
 * delivered as written, 50 MB down and up with checksums while the
 * daemon's memory stays flat, a daemon restart keeping the routes, the
 * per-alias rate limit (429), destroy removing the routes; the wake of a
 * stopped (cold) and of a paused (warm) sandbox by a request, proxied
 * traffic keeping a sandbox hot, the bound on concurrent wakes (503 +
 * Retry-After); HTTPS with a
 * CA of the test's own (the API through the CLI's --ca, the public
 * proxy, the plain listener's redirect and ACME answers), a certificate
 * from ACME (Debian's uacme against Debian's pebble on loopback) by hand
 * and run by the daemon (tls.acme: failure shown, retried, SNI,
 * renewal, unpublish), and
 * headless Chromium running the page's WebSocket through the proxy.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "async.h"
#include "buf.h"
#include "helpers.h"
#include "loop.h"
#include "util.h"
#include "wsc.h"

#define DOMAIN "example.test"

struct pfix {
	struct daemon_proc d;
	char *alice, *bob;
	int pport;           /* the public proxy's port */
	char purl[64];       /* http://127.0.0.1:PORT */
};

static struct pfix *F;

static int pick_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	close(fd);
	return ntohs(sa.sin_port);
}

static char *config_text(const char *extra)
{
	return test_strf("pool_size: 0\npublic_proxy_listen: \"127.0.0.1:%d\"\ndomain: %s\n"
			 "limits:\n  execs_per_min: 600\n  reads_per_min: 6000\n%s",
			 F->pport, DOMAIN, extra ? extra : "");
}

static int setup(void **state)
{
	F = calloc(1, sizeof(*F));
	F->pport = pick_port();
	snprintf(F->purl, sizeof(F->purl), "http://127.0.0.1:%d", F->pport);
	char *cfg = config_text(NULL);
	int r = daemon_start(&F->d, cfg);
	free(cfg);
	if (r < 0)
		return -1;
	F->alice = daemon_user(&F->d, "alice", NULL);
	F->bob = daemon_user(&F->d, "bob", NULL);
	if (!F->alice || !F->bob)
		return -1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	*state = F;
	return 0;
}

static int teardown(void **state UNUSED)
{
	int rc = daemon_stop(&F->d, true);
	free(F->alice);
	free(F->bob);
	free(F);
	curl_global_cleanup();
	return rc;
}

/* The CLI as a user; OUT and ERR hold what it printed. */
static struct buf OUT = BUF_INIT, ERR = BUF_INIT;
#define CLI(key, ...) (buf_reset(&OUT), buf_reset(&ERR), \
		       bhatti(&F->d, key, NULL, &OUT, &ERR, __VA_ARGS__, (const char *)NULL))

#define CLI_OK(key, ...)                                                             \
	do {                                                                         \
		if (CLI(key, __VA_ARGS__) != 0)                                      \
			fail_msg("bhatti failed: %s%s", OUT.data ? OUT.data : "",    \
				 ERR.data ? ERR.data : "");                          \
	} while (0)

/* ---- an HTTP client (libcurl) ---- */

struct resp {
	long status;
	struct buf body, head;
	uint64_t fnv, bytes;
	bool hash_only;        /* keep only the FNV of the body */
	double first_ms[8];    /* arrival of the first 8 body pieces (SSE) */
	int pieces;
	struct timeval t0;
};

static double since_ms(const struct timeval *t0)
{
	struct timeval t;
	gettimeofday(&t, NULL);
	return (double)(t.tv_sec - t0->tv_sec) * 1000 + (double)(t.tv_usec - t0->tv_usec) / 1000;
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = sz * n;
	if (r->pieces < 8)
		r->first_ms[r->pieces] = since_ms(&r->t0);
	r->pieces++;
	for (size_t i = 0; i < len; i++)
		r->fnv = (r->fnv ^ (uint8_t)p[i]) * 1099511628211ull;
	r->bytes += len;
	if (!r->hash_only)
		buf_add(&r->body, p, len);
	return len;
}

static size_t on_head(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	buf_add(&r->head, p, sz * n);
	return sz * n;
}

static void resp_init(struct resp *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->body);
	buf_init(&r->head);
	r->fnv = 1469598103934665603ull;
	gettimeofday(&r->t0, NULL);
}

static void resp_release(struct resp *r)
{
	buf_release(&r->body);
	buf_release(&r->head);
}

/* GET (or POST of post_len bytes from post) url with an optional Host. */
static long fetch(CURL *h, const char *url, const char *host, const char *post, size_t post_len,
		  struct resp *r)
{
	bool mine = !h;
	if (mine)
		h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char hh[256];
	if (host) {
		snprintf(hh, sizeof(hh), "Host: %s", host);
		hdrs = curl_slist_append(hdrs, hh);
	}
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_head);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 180L);
	if (post) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)post_len);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK)
		fail_msg("%s: %s", url, curl_easy_strerror(cc));
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hdrs);
	if (mine)
		curl_easy_cleanup(h);
	buf_addch(&r->body, '\0');
	r->body.len--;
	return r->status;
}

static long get(const char *url, const char *host, struct resp *r)
{
	resp_init(r);
	return fetch(NULL, url, host, NULL, 0, r);
}

/* A sandbox of alice's with pxserve on port 3000. */
static void make_server(const char *name)
{
	char from[512];
	snprintf(from, sizeof(from), "%s/guest/pxserve", test_build_dir());
	CLI_OK(F->alice, "create", name);
	CLI_OK(F->alice, "file", "write", name, "/tmp/pxserve", "--mode", "0755", "--from", from);
	CLI_OK(F->alice, "exec", name, "--", "/tmp/pxserve", "3000");
}

static long daemon_rss_kb(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)F->d.pid);
	char *s = read_text(path);
	assert_non_null(s);
	char *p = strstr(s, "VmRSS:");
	long kb = p ? strtol(p + 6, NULL, 10) : -1;
	free(s);
	return kb;
}

/* ---- tests ---- */

static void test_publish_routes(void **state UNUSED)
{
	struct resp r;
	char url[256];
	make_server("web");

	/* publish prints the URL; again: the same */
	CLI_OK(F->alice, "publish", "web", "-p", "3000", "-a", "web-app");
	snprintf(url, sizeof(url), "http://" "web-app." DOMAIN ":%d/\n", F->pport);
	assert_string_equal(OUT.data, url);
	CLI_OK(F->alice, "publish", "web", "-p", "3000");
	assert_string_equal(OUT.data, url);
	/* another alias for a published port, a reserved word, someone else's alias */
	assert_int_equal(CLI(F->alice, "publish", "web", "-p", "3000", "-a", "other"), 1);
	assert_non_null(strstr(ERR.data, "is published as 'web-app' already"));
	assert_int_equal(CLI(F->alice, "publish", "web", "-p", "3001", "-a", "api"), 1);
	assert_non_null(strstr(ERR.data, "reserved"));
	CLI_OK(F->bob, "create", "bweb");
	assert_int_equal(CLI(F->bob, "publish", "bweb", "-p", "80", "-a", "web-app"), 1);
	assert_non_null(strstr(ERR.data, "alias 'web-app' is taken"));
	/* a generated alias: NAME-<6 hex> */
	CLI_OK(F->alice, "publish", "web", "-p", "3999", "--json");
	cJSON *j = cJSON_Parse(OUT.data);
	assert_non_null(j);
	const char *gen = cJSON_GetStringValue(cJSON_GetObjectItem(j, "alias"));
	assert_non_null(gen);
	assert_int_equal(strlen(gen), strlen("web-") + 6);
	assert_int_equal(strncmp(gen, "web-", 4), 0);
	assert_int_equal(strspn(gen + 4, "0123456789abcdef"), 6);
	char genalias[64];
	snprintf(genalias, sizeof(genalias), "%s", gen);
	cJSON_Delete(j);

	/* the path route, and the redirect to it */
	snprintf(url, sizeof(url), "%s/web-app/hello", F->purl);
	assert_int_equal(get(url, NULL, &r), 200);
	assert_string_equal(r.body.data, "hello from the sandbox\n");
	resp_release(&r);
	snprintf(url, sizeof(url), "%s/web-app", F->purl);
	assert_int_equal(get(url, NULL, &r), 301);
	assert_non_null(strstr(r.head.data, "Location: /web-app/\r\n"));
	resp_release(&r);
	/* the host routes */
	char host[128];
	snprintf(url, sizeof(url), "%s/hello", F->purl);
	snprintf(host, sizeof(host), "web-app.%s:%d", DOMAIN, F->pport);
	assert_int_equal(get(url, host, &r), 200);
	assert_string_equal(r.body.data, "hello from the sandbox\n");
	resp_release(&r);
	assert_int_equal(get(url, "web-app.127.0.0.1.nip.io", &r), 200);
	assert_string_equal(r.body.data, "hello from the sandbox\n");
	resp_release(&r);
	/* what the guest's server sees */
	snprintf(url, sizeof(url), "%s/web-app/headers", F->purl);
	resp_init(&r);
	CURL *h = curl_easy_init();
	struct curl_slist *hd = curl_slist_append(NULL, "X-Forwarded-For: 198.51.100.9");
	hd = curl_slist_append(hd, "Connection: keep-alive, X-Secret-Hop");
	hd = curl_slist_append(hd, "X-Secret-Hop: no");
	hd = curl_slist_append(hd, "X-Kept: yes");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	buf_addch(&r.body, '\0');
	const char *seen = r.body.data;
	assert_non_null(strstr(seen, "GET /headers HTTP/1.1\r\n"));
	assert_non_null(strstr(seen, "Host: localhost:3000\r\n"));
	assert_non_null(strstr(seen, "X-Forwarded-For: 198.51.100.9, 127.0.0.1\r\n"));
	assert_non_null(strstr(seen, "X-Forwarded-Proto: http\r\n"));
	assert_non_null(strstr(seen, "X-Forwarded-Prefix: /web-app\r\n"));
	assert_non_null(strstr(seen, "X-Kept: yes\r\n"));
	assert_null(strstr(seen, "X-Secret-Hop"));
	assert_non_null(strstr(seen, "Connection: close\r\n"));
	resp_release(&r);
	/* keep-alive: the same connection serves the next request */
	snprintf(url, sizeof(url), "%s/web-app/hello", F->purl);
	resp_init(&r);
	curl_slist_free_all(hd);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_URL, url);
	assert_int_equal(curl_easy_perform(h), CURLE_OK);
	long conns = -1;
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &conns);
	assert_int_equal(conns, 0);   /* reused */
	curl_easy_cleanup(h);
	resp_release(&r);

	/* ports: 3000 listens and is published; 3999 is published only */
	CLI_OK(F->alice, "ports", "web", "--json");
	j = cJSON_Parse(OUT.data);
	cJSON *p, *list = cJSON_GetObjectItem(j, "ports");
	bool saw3000 = false, saw3999 = false;
	cJSON_ArrayForEach(p, list) {
		int port = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(p, "port"));
		bool listening = cJSON_IsTrue(cJSON_GetObjectItem(p, "listening"));
		bool published = cJSON_IsTrue(cJSON_GetObjectItem(p, "published"));
		if (port == 3000)
			saw3000 = listening && published;
		if (port == 3999)
			saw3999 = !listening && published;
	}
	assert_true(saw3000);
	assert_true(saw3999);
	cJSON_Delete(j);
	/* GET /ports: every sandbox of the caller's */
	struct buf out = BUF_INIT;
	assert_int_equal(http_call(&F->d, "GET", "/ports", F->alice, NULL, &out), 200);
	assert_non_null(strstr(out.data, "\"sandbox\":\"web\""));
	assert_null(strstr(out.data, "bweb"));
	buf_release(&out);

	/* nothing listens on 3999: 502 saying so */
	snprintf(url, sizeof(url), "%s/%s/", F->purl, genalias);
	assert_int_equal(get(url, NULL, &r), 502);
	assert_non_null(strstr(r.body.data, "nothing is listening on port 3999"));
	resp_release(&r);
	/* an alias nobody has */
	snprintf(url, sizeof(url), "%s/nobody-here/", F->purl);
	assert_int_equal(get(url, NULL, &r), 404);
	resp_release(&r);

	/* unpublish: 404 from the next request on */
	CLI_OK(F->alice, "unpublish", "web", "-p", "3999");
	assert_int_equal(get(url, NULL, &r), 404);
	resp_release(&r);
	assert_int_equal(CLI(F->alice, "unpublish", "web", "-p", "3999"), 1);
	assert_non_null(strstr(ERR.data, "not published"));
	CLI_OK(F->bob, "destroy", "-y", "bweb");
}

/* ANY /sandboxes/:id/proxy/:port/... on the API, with the key */
static void test_owner_path(void **state UNUSED)
{
	struct buf out = BUF_INIT;
	assert_int_equal(http_call(&F->d, "GET", "/sandboxes/web/proxy/3000/hello", F->alice, NULL,
				   &out), 200);
	assert_string_equal(out.data, "hello from the sandbox\n");
	buf_reset(&out);
	/* the key is not passed on; the prefix is said */
	assert_int_equal(http_call(&F->d, "GET", "/sandboxes/web/proxy/3000/headers", F->alice,
				   NULL, &out), 200);
	assert_null(strstr(out.data, "Authorization"));
	assert_null(strstr(out.data, "bht_"));
	assert_non_null(strstr(out.data, "X-Forwarded-Prefix: /sandboxes/web/proxy/3000\r\n"));
	buf_reset(&out);
	/* a POST with a body */
	assert_int_equal(http_call(&F->d, "POST", "/sandboxes/web/proxy/3000/upload", F->alice,
				   "{\"a\":1}", &out), 200);
	assert_non_null(strstr(out.data, "bytes=7 "));
	buf_reset(&out);
	/* no key, someone else's sandbox, a bad port */
	assert_int_equal(http_call(&F->d, "GET", "/sandboxes/web/proxy/3000/hello", NULL, NULL,
				   &out), 401);
	assert_non_null(strstr(out.data, "\"error\""));
	buf_reset(&out);
	assert_int_equal(http_call(&F->d, "GET", "/sandboxes/web/proxy/3000/hello", F->bob, NULL,
				   &out), 404);
	buf_reset(&out);
	assert_int_equal(http_call(&F->d, "GET", "/sandboxes/web/proxy/0/", F->alice, NULL, &out),
			 400);
	buf_reset(&out);
	/* nothing listening */
	assert_int_equal(http_call(&F->d, "GET", "/sandboxes/web/proxy/3001/", F->alice, NULL,
				   &out), 502);
	assert_non_null(strstr(out.data, "nothing is listening on port 3001"));
	buf_release(&out);
	/* the API itself is untouched on its own connections */
	assert_int_equal(http_call(&F->d, "GET", "/sandboxes/web", F->alice, NULL, &out), 200);
	buf_release(&out);
}

static void test_websocket_and_sse(void **state UNUSED)
{
	/* SSE: five events 300 ms apart arrive one by one */
	struct resp r;
	char url[256];
	snprintf(url, sizeof(url), "%s/web-app/sse", F->purl);
	assert_int_equal(get(url, NULL, &r), 200);
	assert_string_equal(r.body.data, "data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\ndata: 5\n\n");
	assert_true(r.pieces >= 5);
	/* the first event long before the last was written (1.2 s later) */
	assert_true(r.first_ms[4] - r.first_ms[0] > 900);
	resp_release(&r);

	/* WebSocket: the upgrade relayed, messages echoed both ways */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)F->pport) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	char key[WSC_KEY_LEN], accept[WSC_ACCEPT_LEN], req[512];
	wsc_key(key);
	wsc_accept(key, accept);
	snprintf(req, sizeof(req), "GET /web-app/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		 key);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	struct buf in = BUF_INIT;
	char tmp[4096];
	char *end = NULL;
	while (!end) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		assert_true(n > 0);
		buf_add(&in, tmp, (size_t)n);
		buf_addch(&in, '\0');
		in.len--;
		end = strstr(in.data, "\r\n\r\n");
	}
	assert_int_equal(strncmp(in.data, "HTTP/1.1 101 ", 13), 0);
	char want[128];
	snprintf(want, sizeof(want), "Sec-WebSocket-Accept: %s\r\n", accept);
	assert_non_null(strstr(in.data, want));
	buf_consume(&in, (size_t)(end + 4 - in.data));
	struct wsc w;
	wsc_init(&w);
	for (int i = 0; i < 3; i++) {
		struct buf f = BUF_INIT;
		char msg[64];
		snprintf(msg, sizeof(msg), "message %d", i);
		wsc_frame(&f, WSC_TEXT, msg, strlen(msg));
		assert_int_equal(write(fd, f.data, f.len), (ssize_t)f.len);
		buf_release(&f);
		int op, r2;
		while ((r2 = wsc_take(&w, &in, &op)) == 0) {
			ssize_t n = read(fd, tmp, sizeof(tmp));
			assert_true(n > 0);
			buf_add(&in, tmp, (size_t)n);
		}
		assert_int_equal(r2, 1);
		assert_int_equal(op, WSC_TEXT);
		assert_int_equal(w.msg.len, strlen(msg));
		assert_memory_equal(w.msg.data, msg, strlen(msg));
	}
	/* a big binary message both ways */
	size_t big = 1u << 20;
	uint8_t *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 7);
	struct buf f = BUF_INIT;
	wsc_frame(&f, WSC_BINARY, data, big);
	size_t off = 0;
	int op, r2 = 0;
	while (off < f.len || r2 == 0) {
		if (off < f.len) {
			ssize_t n = write(fd, f.data + off, f.len - off > 65536 ? 65536 : f.len - off);
			assert_true(n > 0);
			off += (size_t)n;
		}
		r2 = wsc_take(&w, &in, &op);
		if (r2 == 0 && off == f.len) {
			ssize_t n = read(fd, tmp, sizeof(tmp));
			assert_true(n > 0);
			buf_add(&in, tmp, (size_t)n);
		}
	}
	assert_int_equal(r2, 1);
	assert_int_equal(op, WSC_BINARY);
	assert_int_equal(w.msg.len, big);
	assert_memory_equal(w.msg.data, data, big);
	free(data);
	buf_release(&f);
	wsc_release(&w);
	buf_release(&in);
	close(fd);
}

/* A real browser: headless Chromium (Debian's) opens the published page;
 * its script opens a WebSocket back through the proxy and writes the echo
 * into the page; the page's last image answers after 3 s, so the load
 * event (after which --dump-dom prints the DOM) comes after the echo. */
static void test_browser(void **state UNUSED)
{
	char *profile = test_strf("%s/chromium-profile", F->d.dir);
	char *url = test_strf("%s/web-app/", F->purl);
	char *argv[] = { "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
			 "--no-first-run", "--disable-background-networking",
			 "--disable-component-update", "--disable-sync", NULL, "--dump-dom", url,
			 NULL };
	char *ud = test_strf("--user-data-dir=%s", profile);
	argv[9] = ud;
	struct buf out = BUF_INIT, err = BUF_INIT;
	int rc = test_run(argv, NULL, NULL, 0, &out, &err, 60000);
	if (rc != 0 || !out.data || !strstr(out.data, "<p id=\"out\">got: echo through the proxy</p>"))
		fail_msg("chromium exit %d; DOM:\n%s\nstderr:\n%s", rc, out.data ? out.data : "",
			 err.data ? err.data : "");
	buf_release(&out);
	buf_release(&err);
	free(ud);
	free(url);
	free(profile);
}

static void test_big_bodies(void **state UNUSED)
{
	size_t n = 50u << 20;
	long rss0 = daemon_rss_kb();
	/* download: the bytes and their checksum as the guest made them */
	char url[256];
	struct resp r;
	resp_init(&r);
	r.hash_only = true;
	snprintf(url, sizeof(url), "%s/web-app/download?bytes=%zu", F->purl, n);
	assert_int_equal(fetch(NULL, url, NULL, NULL, 0, &r), 200);
	assert_int_equal(r.bytes, n);
	uint64_t s = 1, want = 1469598103934665603ull;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t x = s;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		s = x;
		for (size_t k = 0; k < 8 && i + k < n; k++)
			want = (want ^ (uint8_t)(x >> (8 * k))) * 1099511628211ull;
	}
	assert_true(r.fnv == want);
	resp_release(&r);
	long rss1 = daemon_rss_kb();

	/* upload: the guest's checksum of what it got */
	uint8_t *data = malloc(n);
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		data[i] = (uint8_t)((i * 2654435761u) >> 13);
		h = (h ^ data[i]) * 1099511628211ull;
	}
	snprintf(url, sizeof(url), "%s/web-app/upload", F->purl);
	resp_init(&r);
	assert_int_equal(fetch(NULL, url, NULL, (const char *)data, n, &r), 200);
	char expect[128];
	snprintf(expect, sizeof(expect), "bytes=%zu fnv=%016llx\n", n, (unsigned long long)h);
	assert_string_equal(r.body.data, expect);
	resp_release(&r);
	free(data);
	long rss2 = daemon_rss_kb();
	print_message("daemon RSS: %ld kB before, %ld after 50 MB down, %ld after 50 MB up\n",
		      rss0, rss1, rss2);
	/* nothing near 50 MB stayed or passed through memory */
	assert_true(rss1 - rss0 < 16 * 1024);
	assert_true(rss2 - rss0 < 16 * 1024);
}

/* Rewrite the daemon's config (what daemon_start wrote before the test's
 * own lines, then config_text(extra)) and restart it on the same data. */
static void restart_with(const char *extra)
{
	assert_int_equal(daemon_stop(&F->d, false), 0);
	char *cfg = config_text(extra);
	char *old = read_text(F->d.config);
	char *keep = strstr(old, "pool_size:");
	assert_non_null(keep);
	*keep = '\0';
	FILE *f = fopen(F->d.config, "w");
	assert_non_null(f);
	fprintf(f, "%s%s", old, cfg);
	fclose(f);
	free(old);
	free(cfg);
	assert_int_equal(daemon_restart(&F->d), 0);
}

static void sh(const char *cmd)
{
	char *argv[] = { "sh", "-c", (char *)cmd, NULL };
	struct buf err = BUF_INIT;
	if (test_run(argv, NULL, NULL, 0, NULL, &err, 30000) != 0)
		fail_msg("%s: %s", cmd, err.data ? err.data : "");
	buf_release(&err);
}

/* The shell's WebSocket over https (client/async.c, as `bhatti shell`
 * uses it), in this process on the loop: a command typed, its output
 * read back. */
struct wsrun {
	struct buf out;
	bool opened, closed, sent;
	struct err err;
};

static void ws_open_cb(struct async_ws *ws UNUSED, void *arg)
{
	((struct wsrun *)arg)->opened = true;
}

static void ws_msg_cb(struct async_ws *ws, bool binary, const char *p, size_t n, void *arg)
{
	struct wsrun *w = arg;
	if (!binary && !w->sent) {   /* {"type":"session",...}: the shell is ours */
		static const char cmd[] = "echo tls-$((6*7))-ok\n";
		async_ws_send(ws, true, cmd, sizeof(cmd) - 1);
		w->sent = true;
		return;
	}
	if (binary)
		buf_add(&w->out, p, n);
}

static void ws_closed_cb(struct async_ws *ws UNUSED, const struct err *e, void *arg)
{
	struct wsrun *w = arg;
	w->closed = true;
	if (e)
		w->err = *e;
}

static void shell_over_tls(const char *ca)
{
	static const struct async_ws_cb cb = { .open = ws_open_cb, .message = ws_msg_cb,
					       .closed = ws_closed_cb };
	struct client_settings cs = { .url = F->d.url, .token = F->alice, .ca = (char *)ca };
	struct client *cl = client_new(&cs);
	assert_int_equal(loop_init(), 0);
	struct wsrun w = { .out = BUF_INIT };
	struct async_ws *ws = async_ws_open(cl, "/sandboxes/web/ws", &cb, &w);
	uint64_t end = now_ms() + 30000;
	bool asked = false;
	while (!w.closed && now_ms() < end) {
		loop_run_once(100);
		buf_addch(&w.out, '\0');
		w.out.len--;
		if (!asked && w.out.data && strstr(w.out.data, "tls-42-ok")) {
			async_ws_close(ws);
			asked = true;
		}
	}
	if (!w.closed || !asked)
		fail_msg("shell over https: opened %d, closed %d, output '%s', error '%s'", w.opened,
			 w.closed, w.out.data ? w.out.data : "", err_str(&w.err));
	buf_release(&w.out);
	client_free(cl);
}

/* The API over https (at host) for a while: the plain URL is kept, and
 * back_to_plain (also a teardown's: a failed test leaves no TLS to the
 * tests after it) restarts the daemon without tls. */
static char *plain_url;

static void to_https(const char *host)
{
	plain_url = F->d.url;
	F->d.url = test_strf("https://%s:%d", host, F->d.port);
}

static void back_to_plain(void)
{
	if (!plain_url)
		return;
	unsetenv("CURL_CA_BUNDLE");
	unsetenv("CURL_HOME");
	free(F->d.url);
	F->d.url = plain_url;
	plain_url = NULL;
	restart_with(NULL);
}

/* HTTPS with a CA of the test's own: the API (curl, the CLI with and
 * without --ca) and the public proxy (path and host routes, SNI). */
static void test_tls(void **state UNUSED)
{
	char *dir = test_strf("%s/tls", F->d.dir);
	char *cmd = test_strf(
		"set -e; mkdir -p %s; cd %s; "
		"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
		"-subj '/CN=bhatti test CA' -keyout ca.key -out ca.pem; "
		"openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost "
		"-keyout srv.key -out srv.csr; "
		"printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.%s\\nbasicConstraints=CA:FALSE\\n' > ext; "
		"openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
		"-extfile ext -out srv.pem", dir, dir, DOMAIN);
	sh(cmd);
	free(cmd);
	int http80 = pick_port();
	char *extra = test_strf("tls:\n  cert: %s/srv.pem\n  key: %s/srv.key\n"
				"  http_listen: \"127.0.0.1:%d\"\n", dir, dir, http80);
	to_https("127.0.0.1");
	/* daemon_restart waits for /health with curl: trust the CA for it */
	char *ca = test_strf("%s/ca.pem", dir);
	setenv("CURL_CA_BUNDLE", ca, 1);
	restart_with(extra);
	free(extra);

	/* the CLI: refused without the CA, fine with it (flag or config) */
	assert_int_equal(CLI(F->alice, "list"), 1);
	assert_non_null(strstr(ERR.data, "certificate is not trusted"));
	CLI_OK(F->alice, "--ca", ca, "list");
	assert_non_null(strstr(OUT.data, "web"));
	CLI_OK(F->alice, "--ca", ca, "exec", "web", "--", "echo", "over tls");
	assert_string_equal(OUT.data, "over tls\n");
	shell_over_tls(ca);
	/* the owner's path over https (the proxy ends TLS for the API too) */
	struct buf ob = BUF_INIT;
	assert_int_equal(http_call(&F->d, "GET", "/sandboxes/web/proxy/3000/headers", F->alice, NULL,
				   &ob), 200);
	assert_non_null(strstr(ob.data, "X-Forwarded-Proto: https\r\n"));
	buf_release(&ob);
	/* publish says https */
	CLI_OK(F->alice, "--ca", ca, "publish", "web", "-p", "3000");
	char want[256];
	snprintf(want, sizeof(want), "https://web-app.%s:%d/\n", DOMAIN, F->pport);
	assert_string_equal(OUT.data, want);

	/* the public proxy over TLS: the path route, and the host route with SNI */
	struct resp r;
	char u[256], res[256];
	resp_init(&r);
	CURL *h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	snprintf(u, sizeof(u), "https://127.0.0.1:%d/web-app/hello", F->pport);
	assert_int_equal(fetch(h, u, NULL, NULL, 0, &r), 200);
	assert_string_equal(r.body.data, "hello from the sandbox\n");
	resp_release(&r);
	struct curl_slist *rl = NULL;
	snprintf(res, sizeof(res), "web-app.%s:%d:127.0.0.1", DOMAIN, F->pport);
	rl = curl_slist_append(rl, res);
	curl_easy_setopt(h, CURLOPT_RESOLVE, rl);
	snprintf(u, sizeof(u), "https://web-app.%s:%d/headers", DOMAIN, F->pport);
	resp_init(&r);
	assert_int_equal(fetch(h, u, NULL, NULL, 0, &r), 200);
	assert_non_null(strstr(r.body.data, "X-Forwarded-Proto: https\r\n"));
	resp_release(&r);
	/* 5 MB down through TLS */
	snprintf(u, sizeof(u), "https://web-app.%s:%d/download?bytes=5000000", DOMAIN, F->pport);
	resp_init(&r);
	r.hash_only = true;
	assert_int_equal(fetch(h, u, NULL, NULL, 0, &r), 200);
	assert_int_equal(r.bytes, 5000000);
	resp_release(&r);
	curl_slist_free_all(rl);
	curl_easy_cleanup(h);

	/* tls.http_listen: ACME answers on plain HTTP, everything else 301 to https */
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/web-app/hello?x=1", http80);
	snprintf(res, sizeof(res), "web-app.%s", DOMAIN);
	assert_int_equal(get(u, res, &r), 301);
	char loc[256];
	snprintf(loc, sizeof(loc), "Location: https://web-app.%s:%d/web-app/hello?x=1\r\n", DOMAIN,
		 F->pport);
	assert_non_null(strstr(r.head.data, loc));
	resp_release(&r);
	char *tok = test_strf("mkdir -p %s/acme/http-01 && printf 'tok.thumb' > %s/acme/http-01/tok",
			      F->d.data, F->d.data);
	sh(tok);
	free(tok);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/.well-known/acme-challenge/tok", http80);
	assert_int_equal(get(u, "anything.example", &r), 200);
	assert_string_equal(r.body.data, "tok.thumb");
	resp_release(&r);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/.well-known/acme-challenge/nope", http80);
	assert_int_equal(get(u, NULL, &r), 404);
	resp_release(&r);
	tok = test_strf("rm %s/acme/http-01/tok", F->d.data);
	sh(tok);
	free(tok);

	back_to_plain();
	free(ca);
	free(dir);
}

/* The processes a test started (pebble and its DNS): killed by pid in
 * kill_started (also by teardown_tls, the teardown of every test that
 * starts any), so that a failing test leaves nothing behind; they also die with this process
 * (PR_SET_PDEATHSIG) and inherit none of its descriptors. */
static pid_t started[4];

static void kill_started(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(started); i++)
		if (started[i] > 0) {
			kill(started[i], SIGTERM);
			waitpid(started[i], NULL, 0);
			started[i] = 0;
		}
}

/* The teardown of the TLS tests: what they started killed, plain HTTP
 * again. */
static int teardown_tls(void **state UNUSED)
{
	kill_started();
	back_to_plain();
	return 0;
}

/* A process of the test's own in the background (its output to log). */
static pid_t spawn(const char *log, char *const argv[], char *const env[])
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		close_range(3, ~0U, 0);
		for (char *const *e = env; e && *e; e++)
			putenv(*e);
		execvp(argv[0], argv);
		_exit(127);
	}
	for (size_t i = 0; i < ARRAY_SIZE(started); i++)
		if (started[i] <= 0) {
			started[i] = pid;
			break;
		}
	return pid;
}

/* Debian's pebble (a test CA) on loopback, its HTTPS certificate from the
 * CA of test_tls, its DNS pebble-challtestsrv answering 127.0.0.1 for
 * every name; it asks for http-01 answers on http_port. validity_s:
 * of the certificates it issues (0: its default, years). */
struct pebble {
	char *ad;              /* its files */
	int acme, mgmt;        /* https://127.0.0.1:ACME/dir; MGMT/roots/0 */
};

static void pebble_config(struct pebble *pb, const char *ad, int http_port, int validity_s)
{
	char *dir = test_strf("%s/tls", F->d.dir);
	pb->ad = test_strf("%s", ad);
	pb->acme = pick_port();
	pb->mgmt = pick_port();
	char *validity = validity_s ? test_strf(", \"certificateValidityPeriod\": %d", validity_s)
				    : test_strf("%s", "");
	char *cmd = test_strf(
		"set -e; mkdir -p %s; cd %s; "
		"openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=pebble "
		"-keyout pebble.key -out pebble.csr; "
		"printf 'subjectAltName=IP:127.0.0.1\\n' > ext; "
		"openssl x509 -req -in pebble.csr -CA %s/ca.pem -CAkey %s/ca.key -CAcreateserial "
		"-days 2 -extfile ext -out pebble.pem; "
		"printf '{\"pebble\": {\"listenAddress\": \"127.0.0.1:%d\", "
		"\"managementListenAddress\": \"127.0.0.1:%d\", \"certificate\": \"%s/pebble.pem\", "
		"\"privateKey\": \"%s/pebble.key\", \"httpPort\": %d, \"tlsPort\": %d, "
		"\"ocspResponderURL\": \"\", \"externalAccountBindingRequired\": false%s}}' "
		"> pebble.json", ad, ad, dir, dir, pb->acme, pb->mgmt, ad, ad, http_port, pick_port(),
		validity);
	sh(cmd);
	free(cmd);
	free(validity);
	free(dir);
}

static void pebble_run(struct pebble *pb)
{
	const char *ad = pb->ad;
	char *dir = test_strf("%s/tls", F->d.dir);
	int dns = pick_port();
	char dnsaddr[64], cfgp[512];
	snprintf(dnsaddr, sizeof(dnsaddr), "127.0.0.1:%d", dns);
	snprintf(cfgp, sizeof(cfgp), "%s/pebble.json", ad);
	char *chall_log = test_strf("%s/chall.log", ad), *pebble_log = test_strf("%s/pebble.log", ad);
	char *mg = test_strf("127.0.0.1:%d", pick_port());
	char *const chall_argv[] = { "pebble-challtestsrv", "-dns01", dnsaddr, "-http01", "",
				     "-https01", "", "-tlsalpn01", "", "-management", mg,
				     "-defaultIPv6", "", NULL };
	char *const pebble_argv[] = { "pebble", "-config", cfgp, "-dnsserver", dnsaddr, NULL };
	char *const pebble_env[] = { "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", NULL };
	spawn(chall_log, chall_argv, NULL);
	spawn(pebble_log, pebble_argv, pebble_env);
	/* pebble answers once it listens */
	char *wait = test_strf("for i in $(seq 100); do curl -fsS --cacert %s/ca.pem "
			       "https://127.0.0.1:%d/dir >/dev/null 2>&1 && exit 0; sleep 0.1; done; "
			       "exit 1", dir, pb->acme);
	sh(wait);
	free(wait);
	free(mg);
	free(chall_log);
	free(pebble_log);
	free(dir);
}

/* pebble's root, for a client: ad/root.pem */
static void pebble_root(struct pebble *pb)
{
	char *root = test_strf("curl -fsS --cacert %s/tls/ca.pem https://127.0.0.1:%d/roots/0 "
			       "> %s/root.pem", F->d.dir, pb->mgmt, pb->ad);
	sh(root);
	free(root);
}

/* ACME by hand: Debian's uacme gets a certificate for a published alias from
 * pebble, the http-01 challenge answered by the public
 * proxy from what scripts/uacme-hook.sh left in data_dir/acme/http-01;
 * then the daemon serves that certificate and a client trusting
 * pebble's root reaches the alias over HTTPS. uacme trusts only the
 * system's CAs: it runs in a mount namespace of its own where the
 * system's bundle is the test's CA (nothing outside changes). */
static void test_acme(void **state UNUSED)
{
	if (geteuid() != 0)
		skip();   /* unshare -m */
	char *dir = test_strf("%s/tls", F->d.dir), *ad = test_strf("%s/acme", F->d.dir);
	struct pebble pb;
	pebble_config(&pb, ad, F->pport, 0);
	pebble_run(&pb);

	char cwd[512];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	char *run = test_strf(
		"set -e; mount --bind %s/ca.pem /etc/ssl/certs/ca-certificates.crt; "
		"export BHATTI_ACME_DIR=%s/acme/http-01; "
		"uacme -y -a https://127.0.0.1:%d/dir -c %s/conf new admin@example.test; "
		"uacme -a https://127.0.0.1:%d/dir -c %s/conf -h %s/scripts/uacme-hook.sh -t EC "
		"issue web-app.%s", dir, F->d.data, pb.acme, ad, pb.acme, ad, cwd, DOMAIN);
	char *argv[] = { "unshare", "-m", "sh", "-c", run, NULL };
	struct buf out = BUF_INIT, err = BUF_INIT;
	int rc = test_run(argv, NULL, NULL, 0, &out, &err, 60000);
	if (rc != 0)
		fail_msg("uacme: %s%s", out.data ? out.data : "", err.data ? err.data : "");
	buf_release(&out);
	buf_release(&err);
	free(run);
	/* the answer was taken down again */
	char *left = test_strf("%s/acme/http-01", F->d.data);
	char *ls = test_strf("test -z \"$(ls -A %s)\"", left);
	sh(ls);
	free(ls);
	free(left);
	pebble_root(&pb);
	kill_started();

	/* the daemon serves the ACME certificate */
	char *extra = test_strf("tls:\n  cert: %s/conf/web-app.%s/cert.pem\n"
				"  key: %s/conf/private/web-app.%s/key.pem\n", ad, DOMAIN, ad, DOMAIN);
	to_https("localhost");
	/* (the API shares that certificate, which does not name localhost:
	 * daemon_restart's curl checks /health with -k, from a .curlrc) */
	setenv("CURL_HOME", ad, 1);
	char *curlrc = test_strf("%s/.curlrc", ad);
	FILE *f = fopen(curlrc, "w");
	fputs("insecure\n", f);
	fclose(f);
	restart_with(extra);
	free(extra);
	unsetenv("CURL_HOME");
	struct resp r;
	char u[256], res[128], ca[512];
	snprintf(ca, sizeof(ca), "%s/root.pem", ad);
	snprintf(res, sizeof(res), "web-app.%s:%d:127.0.0.1", DOMAIN, F->pport);
	snprintf(u, sizeof(u), "https://web-app.%s:%d/hello", DOMAIN, F->pport);
	CURL *h = curl_easy_init();
	struct curl_slist *rl = curl_slist_append(NULL, res);
	curl_easy_setopt(h, CURLOPT_RESOLVE, rl);
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	resp_init(&r);
	assert_int_equal(fetch(h, u, NULL, NULL, 0, &r), 200);
	assert_string_equal(r.body.data, "hello from the sandbox\n");
	resp_release(&r);
	curl_slist_free_all(rl);
	curl_easy_cleanup(h);

	back_to_plain();
	free(curlrc);
	free(pb.ad);
	free(ad);
	free(dir);
}

/* web-app's certificate as GET /sandboxes/web/publish says (caller frees). */
static cJSON *cert_state(void)
{
	struct buf out = BUF_INIT;
	int st = http_call(&F->d, "GET", "/sandboxes/web/publish", F->alice, NULL, &out);
	if (st != 200) {
		/* what curl said, and the daemon's last words */
		char *cmd = test_strf("curl -sS -o /dev/null -H 'Authorization: Bearer %s' "
				      "%s/sandboxes/web/publish 2>&1; tail -n 30 %s", F->alice,
				      F->d.url, F->d.log);
		char *argv[] = { "sh", "-c", cmd, NULL };
		struct buf why = BUF_INIT;
		test_run(argv, NULL, NULL, 0, &why, NULL, 60000);
		fail_msg("GET /sandboxes/web/publish: %d %s\n%s", st, out.data ? out.data : "",
			 why.data ? why.data : "");
	}
	cJSON *a = cJSON_Parse(out.data), *it, *c = NULL;
	buf_release(&out);
	cJSON_ArrayForEach(it, a)
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, "alias")), "web-app") == 0)
			c = cJSON_DetachItemFromObject(it, "certificate");
	cJSON_Delete(a);
	assert_non_null(c);
	return c;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
	return v ? v : "";
}

/* Wait up to secs for web-app's certificate in state, with an error
 * (or none), and a not_after other than not_after_not (when given). */
static cJSON *cert_wait(const char *state, bool error, const char *not_after_not, int secs)
{
	for (int i = 0; i < secs * 2; i++) {
		cJSON *c = cert_state();
		if (strcmp(jstr(c, "state"), state) == 0 &&
		    error == (cJSON_GetObjectItem(c, "error") != NULL) &&
		    (!not_after_not || strcmp(jstr(c, "not_after"), not_after_not) != 0))
			return c;
		if (i == secs * 2 - 1) {
			char *t = cJSON_PrintUnformatted(c);
			fail_msg("web-app's certificate did not become %s%s%s%s in %d s: %s", state,
				 error ? " with an error" : "",
				 not_after_not ? ", with a not_after other than " : "",
				 not_after_not ? not_after_not : "", secs, t);
		}
		cJSON_Delete(c);
		usleep(500 * 1000);
	}
	return NULL;
}

/* GET https://web-app.<domain>/hello on the public proxy trusting only
 * ca: curl's result; the status and the certificate's end date in
 * expire (curl's "Expire date"). */
static CURLcode https_alias(const char *ca, long *status, char *expire, size_t n)
{
	char u[256], res[128];
	snprintf(res, sizeof(res), "web-app.%s:%d:127.0.0.1", DOMAIN, F->pport);
	snprintf(u, sizeof(u), "https://web-app.%s:%d/hello", DOMAIN, F->pport);
	struct resp r;
	resp_init(&r);
	CURL *h = curl_easy_init();
	struct curl_slist *rl = curl_slist_append(NULL, res);
	curl_easy_setopt(h, CURLOPT_URL, u);
	curl_easy_setopt(h, CURLOPT_RESOLVE, rl);
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	CURLcode cc = curl_easy_perform(h);
	*status = 0;
	expire[0] = '\0';
	if (cc == CURLE_OK) {
		struct curl_certinfo *ci = NULL;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
		curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci);
		for (struct curl_slist *l = ci && ci->num_of_certs ? ci->certinfo[0] : NULL; l;
		     l = l->next)
			if (strncmp(l->data, "Expire date:", 12) == 0)
				snprintf(expire, n, "%s", l->data + 12);
		buf_addch(&r.body, '\0');
		if (*status == 200)
			assert_string_equal(r.body.data, "hello from the sandbox\n");
	}
	resp_release(&r);
	curl_slist_free_all(rl);
	curl_easy_cleanup(h);
	return cc;
}

static bool in_log(const char *what)
{
	char *log = read_text(F->d.log);
	bool found = log && strstr(log, what);
	free(log);
	return found;
}

/* ACME run by the daemon (tls.acme): with pebble down, the failure is
 * reported (GET .../publish, the log) and the alias is served with
 * tls.cert meanwhile; pebble up: the retry gets web-app's certificate by
 * itself (http-01 answered by the proxy), served by SNI; renewed before
 * it ends (pebble issues them for 90 s, tls.acme.renew_before: 60s) and
 * served at once; a failed renewal is reported and the certificate kept;
 * unpublish: not served any more, republish: served again from its files. */
static void test_acme_daemon(void **state UNUSED)
{
	if (geteuid() != 0)
		skip();   /* tls.acme.ca: a mount namespace for uacme */
	char *ad = test_strf("%s/acme-d", F->d.dir), *ca = test_strf("%s/tls/ca.pem", F->d.dir);
	char *root = test_strf("%s/root.pem", ad);
	int http80 = pick_port();
	struct pebble pb;
	pebble_config(&pb, ad, http80, 90);
	char *extra = test_strf("tls:\n  cert: %s/tls/srv.pem\n  key: %s/tls/srv.key\n"
				"  http_listen: \"127.0.0.1:%d\"\n  acme:\n"
				"    email: admin@example.test\n"
				"    directory: https://127.0.0.1:%d/dir\n    ca: %s\n"
				"    renew_before: 60s\n", F->d.dir, F->d.dir, http80, pb.acme, ca);
	to_https("127.0.0.1");
	setenv("CURL_CA_BUNDLE", ca, 1);
	restart_with(extra);
	free(extra);

	/* pebble is down: the failure is reported; tls.cert serves meanwhile */
	cJSON *c = cert_wait("failed", true, NULL, 90);
	assert_non_null(strstr(jstr(c, "error"), "uacme"));
	assert_non_null(cJSON_GetObjectItem(c, "next_try_in_s"));
	cJSON_Delete(c);
	char want[128];
	snprintf(want, sizeof(want), "acme: certificate for 'web-app.%s' failed", DOMAIN);
	assert_true(in_log(want));
	long st;
	char exp1[64], exp2[64];
	assert_int_equal(https_alias(ca, &st, exp1, sizeof(exp1)), CURLE_OK);
	assert_int_equal(st, 200);

	/* pebble up: the next try gets the certificate, served by SNI */
	pebble_run(&pb);
	c = cert_wait("valid", false, NULL, 120);
	char *na1 = strdup(jstr(c, "not_after"));
	cJSON_Delete(c);
	pebble_root(&pb);
	assert_int_equal(https_alias(root, &st, exp1, sizeof(exp1)), CURLE_OK);
	assert_int_equal(st, 200);
	assert_true(exp1[0]);

	/* renewed 30 s later, and served without a restart */
	c = cert_wait("valid", false, na1, 120);
	cJSON_Delete(c);
	assert_int_equal(https_alias(root, &st, exp2, sizeof(exp2)), CURLE_OK);
	assert_int_equal(st, 200);
	assert_string_not_equal(exp1, exp2);

	/* pebble down again: the next renewal fails, is reported, and the
	 * certificate stays */
	kill_started();
	c = cert_wait("valid", true, NULL, 120);
	cJSON_Delete(c);
	snprintf(want, sizeof(want), "acme: renewal for 'web-app.%s' failed", DOMAIN);
	assert_true(in_log(want));
	assert_int_equal(https_alias(root, &st, exp1, sizeof(exp1)), CURLE_OK);
	assert_string_equal(exp1, exp2);

	/* unpublish: no longer served (tls.cert answers); republish: served
	 * again at once from the files kept */
	CLI_OK(F->alice, "--ca", ca, "unpublish", "web", "-p", "3000");
	assert_int_equal(https_alias(root, &st, exp1, sizeof(exp1)), CURLE_PEER_FAILED_VERIFICATION);
	CLI_OK(F->alice, "--ca", ca, "publish", "web", "-p", "3000", "-a", "web-app");
	assert_int_equal(https_alias(root, &st, exp1, sizeof(exp1)), CURLE_OK);
	assert_string_equal(exp1, exp2);

	back_to_plain();
	free(na1);
	free(pb.ad);
	free(root);
	free(ca);
	free(ad);
}

/* ---- wakes ---- */

/* GET /sandboxes/NAME as alice (NULL when there is none). */
static cJSON *inspect_of(const char *name)
{
	struct buf out = BUF_INIT;
	char *path = test_strf("/sandboxes/%s", name);
	int st = http_call(&F->d, "GET", path, F->alice, NULL, &out);
	free(path);
	cJSON *j = st == 200 ? cJSON_Parse(out.data) : NULL;
	buf_release(&out);
	return j;
}

/* NAME's field (a string; "" when missing), freed by the caller. */
static char *field_of(const char *name, const char *key)
{
	cJSON *j = inspect_of(name);
	const char *v = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, key)) : NULL;
	char *s = xstrdup(v ? v : "");
	cJSON_Delete(j);
	return s;
}

static int wake_count_of(const char *name)
{
	cJSON *j = inspect_of(name);
	assert_non_null(j);
	int n = cJSON_GetObjectItem(j, "wake_count")->valueint;
	cJSON_Delete(j);
	return n;
}

/* Wait (at most ms) until NAME's thermal is want and its state settled. */
static void wait_thermal(const char *name, const char *want, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	for (;;) {
		char *t = field_of(name, "thermal"), *s = field_of(name, "state");
		bool ok = strcmp(t, want) == 0 && strcmp(s, "stopping") != 0 &&
			  strcmp(s, "starting") != 0;
		if (ok || now_ms() >= end) {
			if (!ok)
				fail_msg("'%s' is %s (%s), not %s after %d ms", name, t, s, want, ms);
			free(t);
			free(s);
			return;
		}
		free(t);
		free(s);
		usleep(200 * 1000);
	}
}

/* alice's sandbox NAME serving pxserve on port 3000, published as ALIAS
 * (made when the earlier tests did not: TEST_FILTER runs these alone). */
static void ensure_server(const char *name, const char *alias)
{
	cJSON *j = inspect_of(name);
	if (!j) {
		make_server(name);
		CLI_OK(F->alice, "publish", name, "-p", "3000", "-a", alias);
	}
	cJSON_Delete(j);
}

static void get_hello(const char *alias)
{
	char url[256];
	struct resp r;
	snprintf(url, sizeof(url), "%s/%s/hello", F->purl, alias);
	long st = get(url, NULL, &r);
	if (st != 200)
		fail_msg("%s: %ld %s", url, st, r.body.data ? r.body.data : "");
	assert_string_equal(r.body.data, "hello from the sandbox\n");
	resp_release(&r);
}

/* 'web', once thermal `from`, is woken by a request to web-app: the
 * answer comes, its `key` ("state" or "thermal") says hot, one wake more. */
static void woken_by_request(const char *from, const char *key)
{
	wait_thermal("web", from, 30000);
	int wakes = wake_count_of("web");
	get_hello("web-app");
	char *v = field_of("web", key);
	assert_string_equal(v, "hot");
	free(v);
	assert_int_equal(wake_count_of("web"), wakes + 1);
}

/* A request to a published port of a sandbox `bhatti stop` made cold
 * wakes it (the thermal wake, sbx_wake), answers, and the sandbox is hot
 * (and no longer stopped). */
static void test_cold_wake(void **state UNUSED)
{
	ensure_server("web", "web-app");
	CLI_OK(F->alice, "stop", "web");
	woken_by_request("cold", "state");
}

/* What the daemon's descriptor fd is open on ("" when it is not). */
static char *daemon_fd(int fd)
{
	char link[64], to[512];
	snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)F->d.pid, fd);
	ssize_t n = readlink(link, to, sizeof(to) - 1);
	to[n > 0 ? n : 0] = '\0';
	return xstrdup(to);
}

/* A proxied connection closes its own descriptors only: one never
 * bridged to the API closed fd 0 as well (its API-side watch was zeroed,
 * not initialised), so after a cold wake it closed the restored VM's QMP
 * socket (the next `bhatti stop` hung) or an API connection (an exec
 * read QMP's bytes: "bad data from the daemon"). Then bench/proxy's
 * loop (exec, stop, a request wakes it, twice), which alone did not hang
 * here without the fix: the descriptor check is what fails. */
static void test_conn_closes_its_own_fds(void **state UNUSED)
{
	ensure_server("web", "web-app");
	char *fd0 = daemon_fd(0);
	get_hello("web-app");
	get_hello("web-app");
	char *now = daemon_fd(0);
	assert_string_equal(now, fd0);
	free(now);
	free(fd0);
	setenv("TEST_CLI_TIMEOUT_MS", "30000", 1);
	for (int i = 0; i < 2; i++) {
		CLI_OK(F->alice, "exec", "web", "--", "true");
		CLI_OK(F->alice, "stop", "web");
		wait_thermal("web", "cold", 30000);
		get_hello("web-app");
	}
	CLI_OK(F->alice, "exec", "web", "--", "true");
	unsetenv("TEST_CLI_TIMEOUT_MS");
}

/* A sandbox the thermal manager paused (warm) is woken by a proxied
 * request; requests flowing through the proxy are activity (it stays hot
 * for three times warm_after while they come); once they stop it goes
 * warm again. */
static void test_warm_wake(void **state UNUSED)
{
	ensure_server("web", "web-app");
	restart_with("thermal:\n  warm_after: 2s\n  cold_after: never\n  check_every: 1s\n");
	woken_by_request("warm", "thermal");

	/* traffic through the proxy only (inspect is no activity), to a
	 * server that forks no child per connection (the children's CPU
	 * would count as the guest's activity on its own) */
	CLI_OK(F->alice, "exec", "web", "--", "/tmp/pxserve", "3001", "-n");
	CLI_OK(F->alice, "publish", "web", "-p", "3001", "-a", "web-n");
	wait_thermal("web", "warm", 30000);
	int wakes = wake_count_of("web");
	char *th;
	uint64_t end = now_ms() + 6000;
	while (now_ms() < end) {
		get_hello("web-n");
		th = field_of("web", "thermal");
		if (strcmp(th, "hot") != 0)
			fail_msg("'web' went %s while requests came through the proxy", th);
		free(th);
		usleep(300 * 1000);
	}
	assert_int_equal(wake_count_of("web"), wakes + 1);
	/* quiet: warm again (so the loop above could have seen it) */
	wait_thermal("web", "warm", 30000);
	CLI_OK(F->alice, "unpublish", "web", "-p", "3001");
	restart_with(NULL);
}

/* thermal.max_concurrent_wakes bounds the restores: two requests at once
 * to two stopped sandboxes with a bound of 1: one wakes its sandbox and
 * answers 200, the other is told 503 with Retry-After (and a retry
 * succeeds). */
static void test_wake_limit(void **state UNUSED)
{
	ensure_server("web", "web-app");
	ensure_server("web2", "web2-app");
	restart_with("thermal:\n  max_concurrent_wakes: 1\n");
	CLI_OK(F->alice, "stop", "web");
	CLI_OK(F->alice, "stop", "web2");
	wait_thermal("web", "cold", 30000);
	wait_thermal("web2", "cold", 30000);

	CURLM *m = curl_multi_init();
	CURL *h[2];
	struct resp r[2];
	const char *alias[2] = { "web-app", "web2-app" };
	for (int i = 0; i < 2; i++) {
		char url[256];
		snprintf(url, sizeof(url), "%s/%s/hello", F->purl, alias[i]);
		resp_init(&r[i]);
		h[i] = curl_easy_init();
		curl_easy_setopt(h[i], CURLOPT_URL, url);
		curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &r[i]);
		curl_easy_setopt(h[i], CURLOPT_HEADERFUNCTION, on_head);
		curl_easy_setopt(h[i], CURLOPT_HEADERDATA, &r[i]);
		curl_easy_setopt(h[i], CURLOPT_TIMEOUT, 60L);
		curl_multi_add_handle(m, h[i]);
	}
	int running = 1;
	while (running) {
		curl_multi_perform(m, &running);
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	int ok = 0, busy = 0;
	for (int i = 0; i < 2; i++) {
		long st = 0;
		curl_easy_getinfo(h[i], CURLINFO_RESPONSE_CODE, &st);
		buf_addch(&r[i].head, '\0');
		if (st == 200)
			ok++;
		if (st == 503) {
			busy++;
			assert_non_null(strstr(r[i].head.data, "Retry-After: "));
		}
		curl_multi_remove_handle(m, h[i]);
		curl_easy_cleanup(h[i]);
		resp_release(&r[i]);
	}
	curl_multi_cleanup(m);
	if (ok != 1 || busy != 1)
		fail_msg("two wakes at once with max_concurrent_wakes 1: %d answered 200, %d 503",
			 ok, busy);
	/* the refused one wakes once the other is done */
	get_hello("web-app");
	get_hello("web2-app");
	CLI_OK(F->alice, "destroy", "-y", "web2");
	restart_with(NULL);
}

static void test_restart_and_limits(void **state UNUSED)
{
	/* restart with a small per-alias rate: the routes are still there */
	restart_with("proxy:\n  requests_per_alias_per_min: 30\n");
	char url[256];
	snprintf(url, sizeof(url), "%s/web-app/hello", F->purl);
	struct resp r;
	int ok = 0, limited = 0;
	for (int i = 0; i < 14; i++) {
		long st = get(url, NULL, &r);
		if (st == 200)
			ok++;
		if (st == 429) {
			limited++;
			assert_non_null(strstr(r.head.data, "Retry-After: "));
		}
		resp_release(&r);
	}
	/* a burst of a third of the minute's 30 */
	assert_int_equal(ok, 10);
	assert_int_equal(limited, 4);
	/* another alias has its own bucket: destroy removes the routes */
	CLI_OK(F->alice, "destroy", "-y", "web");
	assert_int_equal(get(url, NULL, &r), 404);
	resp_release(&r);
	struct buf out = BUF_INIT;
	assert_int_equal(http_call(&F->d, "GET", "/ports", F->alice, NULL, &out), 200);
	assert_string_equal(out.data, "{\"ports\":[]}\n");
	buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_publish_routes),
		cmocka_unit_test(test_owner_path),
		cmocka_unit_test(test_websocket_and_sse),
		cmocka_unit_test(test_browser),
		cmocka_unit_test(test_big_bodies),
		cmocka_unit_test_teardown(test_tls, teardown_tls),
		cmocka_unit_test_teardown(test_acme, teardown_tls),
		cmocka_unit_test_teardown(test_acme_daemon, teardown_tls),
		cmocka_unit_test(test_cold_wake),
		cmocka_unit_test(test_conn_closes_its_own_fds),
		cmocka_unit_test(test_warm_wake),
		cmocka_unit_test(test_wake_limit),
		cmocka_unit_test(test_restart_and_limits),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
