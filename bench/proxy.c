/* proxy.c — benchmark of published ports (the seed's publish-wake rows):
 * one GET of a small page through the public proxy on a hot sandbox, each
 * on a new connection (as `curl URL` does) and on one kept-alive
 * connection, p50/p99; the same page from the same server
 * (tests/guest/pxserve.c) run on the host and reached directly, for
 * comparison; then requests/s with 50 concurrent keep-alive clients, for
 * PROXY_SECONDS (default 10), through the proxy and directly.
 *
 *   build/bench/proxy [RUNS]      (default 200)
 *
 * Starts its own `bhatti serve` in a temp dir (tests/helpers.c). Wakes
 * (warm, cold) are not measured here yet: they need the thermal
 * manager's wake of a paused or stopped sandbox (docs/benchmarks.md).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <curl/curl.h>

#include "helpers.h"
#include "stats.h"
#include "util.h"

static struct daemon_proc D;

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	daemon_stop(&D, true);
	exit(1);
}

static int pick_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		die("no free port");
	close(fd);
	return ntohs(sa.sin_port);
}

static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
	(void)p;
	*(size_t *)arg += sz * n;
	return sz * n;
}

static void cli(const char *key, const char *arg0, ...)
{
	const char *a[16];
	int n = 0;
	va_list ap;
	va_start(ap, arg0);
	for (const char *s = arg0; s && n < 15; s = va_arg(ap, const char *))
		a[n++] = s;
	va_end(ap);
	a[n] = NULL;
	struct buf out = BUF_INIT, err = BUF_INIT;
	if (bhatti_argv(&D, key, NULL, &out, &err, a) != 0) {
		fprintf(stderr, "%s%s", out.data ? out.data : "", err.data ? err.data : "");
		die(arg0);
	}
	buf_release(&out);
	buf_release(&err);
}

/* runs GETs of url, each on a new connection (fresh) or on one. */
static void latency(const char *name, const char *url, int runs, bool fresh)
{
	double *v = calloc((size_t)runs, sizeof(double));
	CURL *h = curl_easy_init();
	size_t got = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
	curl_easy_setopt(h, CURLOPT_FORBID_REUSE, fresh ? 1L : 0L);
	curl_easy_perform(h);   /* warm-up */
	for (int i = 0; i < runs; i++) {
		uint64_t t0 = now_ns();
		long st = 0;
		if (curl_easy_perform(h) != CURLE_OK)
			die("request failed");
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
		if (st != 200)
			die("not 200");
		v[i] = (double)(now_ns() - t0) / 1e6;
	}
	curl_easy_cleanup(h);
	stats_print(name, v, (size_t)runs, "ms");
	free(v);
}

/* 50 keep-alive clients for secs: requests per second. */
static void throughput(const char *name, const char *url, int clients, int secs)
{
	CURLM *m = curl_multi_init();
	CURL **hs = calloc((size_t)clients, sizeof(*hs));
	size_t got = 0;
	long done = 0, failed = 0;
	for (int i = 0; i < clients; i++) {
		hs[i] = curl_easy_init();
		curl_easy_setopt(hs[i], CURLOPT_URL, url);
		curl_easy_setopt(hs[i], CURLOPT_WRITEFUNCTION, sink);
		curl_easy_setopt(hs[i], CURLOPT_WRITEDATA, &got);
		curl_multi_add_handle(m, hs[i]);
	}
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)clients);
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)secs * 1000000000ull;
	int running = 1;
	while (now_ns() < end) {
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			long st = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &st);
			if (msg->data.result == CURLE_OK && st == 200)
				done++;
			else
				failed++;
			curl_multi_remove_handle(m, msg->easy_handle);
			curl_multi_add_handle(m, msg->easy_handle);   /* again, same connection */
		}
		curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	double s = (double)(now_ns() - t0) / 1e9;
	printf("%-40s clients=%d  %8.1f req/s  (%ld in %.1f s, %ld failed)\n", name, clients,
	       (double)done / s, done, s, failed);
	for (int i = 0; i < clients; i++) {
		curl_multi_remove_handle(m, hs[i]);
		curl_easy_cleanup(hs[i]);
	}
	free(hs);
	curl_multi_cleanup(m);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 200;
	if (runs < 1)
		runs = 200;
	int secs = (int)env_long("PROXY_SECONDS", 10);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int pport = pick_port(), dport = pick_port();
	char *cfg = test_strf("pool_size: 0\npublic_proxy_listen: \"127.0.0.1:%d\"\n"
			      "limits:\n  reads_per_min: 0\n  execs_per_min: 0\n"
			      "proxy:\n  requests_per_ip_per_min: 0\n  requests_per_alias_per_min: 0\n",
			      pport);
	if (daemon_start(&D, cfg) < 0)
		die("daemon did not start");
	free(cfg);
	char *key = daemon_user(&D, "bench", NULL);
	if (!key)
		die("user");
	char *px = test_strf("%s/guest/pxserve", test_build_dir());
	cli(key, "create", "web", NULL);
	cli(key, "file", "write", "web", "/tmp/pxserve", "--mode", "0755", "--from", px, NULL);
	cli(key, "exec", "web", "--", "/tmp/pxserve", "3000", NULL);
	cli(key, "publish", "web", "-p", "3000", "-a", "bench", NULL);
	/* the same server on the host, reached directly */
	char dp[16];
	snprintf(dp, sizeof(dp), "%d", dport);
	pid_t pid = fork();
	if (pid == 0) {
		execl(px, px, dp, "-f", (char *)NULL);
		_exit(127);
	}
	usleep(200000);

	char *via = test_strf("http://127.0.0.1:%d/bench/hello", pport);
	char *direct = test_strf("http://127.0.0.1:%d/hello", dport);
	latency("proxy, hot, new connection each", via, runs, true);
	latency("proxy, hot, one kept-alive connection", via, runs, false);
	latency("direct (host), new connection each", direct, runs, true);
	latency("direct (host), one kept-alive connection", direct, runs, false);
	throughput("proxy, 50 keep-alive clients", via, 50, secs);
	throughput("direct (host), 50 keep-alive clients", direct, 50, secs);

	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	free(via);
	free(direct);
	free(px);
	free(key);
	daemon_stop(&D, true);
	curl_global_cleanup();
	return 0;
}
