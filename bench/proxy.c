/* proxy.c — benchmark of published ports (the seed's publish-wake rows):
 * one GET of a small page through the public proxy on a hot sandbox, each
 * on a new connection (as `curl URL` does) and on one kept-alive
 * connection, p50/p99, from the guest's test server forking a child per
 * connection (tests/guest/pxserve.c) and from the same server serving
 * each connection itself (`-n`: what the fork costs under TCG); the same
 * page from the same server run on the host and reached directly, for
 * comparison; the wakes: a GET to a sandbox the thermal manager paused
 * (warm) beside one to the hot sandbox, per round, and a GET right after
 * `bhatti stop` (cold); then requests/s with 50 concurrent keep-alive
 * clients, for PROXY_SECONDS (default 10), through the proxy and
 * directly.
 *
 *   build/bench/proxy [RUNS]      (default 200; WAKE_RUNS wakes, default 20)
 *
 * Starts its own `bhatti serve` in a temp dir (tests/helpers.c) with
 * thermal.warm_after 1s; the hot sandbox is keep_hot. As root (unless
 * PROXY_NET=0) with guest networking, in network namespaces of its own
 * (tests/netns.c): every proxy row by the guest's IP (proxy.transport
 * ip), then again by the agent's forward after a restart with transport
 * agent.
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
#include <cjson/cJSON.h>

#include "helpers.h"
#include "netns.h"
#include "stats.h"
#include "util.h"

static struct daemon_proc D;

static bool NET;   /* in network namespaces of our own (netns_up) */

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	daemon_stop(&D, true);
	if (NET)
		netns_down();
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

static char *KEY;

static char *thermal_of(const char *name)
{
	struct buf b = BUF_INIT;
	char *path = test_strf("/sandboxes/%s", name);
	cJSON *j = api_call(&D, KEY, "GET", path, NULL, 0, &b) == 200 ? cJSON_Parse(b.data) : NULL;
	free(path);
	buf_release(&b);
	if (!j)
		die("inspect failed");
	const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "thermal"));
	const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(j, "state"));
	char *r = test_strf("%s/%s", t ? t : "", st ? st : "");
	cJSON_Delete(j);
	return r;
}

/* Until NAME is want ("warm", "cold") and its state settled. */
static void wait_thermal(const char *name, const char *want)
{
	char *w = test_strf("%s/%s", want, strcmp(want, "cold") == 0 ? "stopped" : "warm");
	for (int i = 0; i < 600; i++) {
		char *t = thermal_of(name);
		bool ok = strcmp(t, w) == 0 || (strcmp(want, "cold") == 0 && strcmp(t, "cold/cold") == 0);
		free(t);
		if (ok) {
			free(w);
			return;
		}
		usleep(50 * 1000);
	}
	die("the sandbox did not reach the thermal state");
}

/* One GET of url on a new connection: ms. */
static double get_ms(const char *url)
{
	CURL *h = curl_easy_init();
	size_t got = 0;
	long st = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	uint64_t t0 = now_ns();
	if (curl_easy_perform(h) != CURLE_OK)
		die("request failed");
	double ms = (double)(now_ns() - t0) / 1e6;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(h);
	if (st != 200)
		die("not 200");
	return ms;
}

/* Warm wake (the manager paused it) beside hot, per round; then a GET
 * right after `bhatti stop`. */
static void wakes(const char *warm_url, const char *hot_url, int runs)
{
	double *vw = calloc((size_t)runs, sizeof(double)), *vh = calloc((size_t)runs, sizeof(double));
	double *vc = calloc((size_t)runs, sizeof(double));
	for (int i = 0; i < runs; i++) {
		wait_thermal("t", "warm");
		vw[i] = get_ms(warm_url);
		vh[i] = get_ms(hot_url);
	}
	stats_print("proxy, warm wake, new connection", vw, (size_t)runs, "ms");
	stats_print("proxy, hot (same rounds), new connection", vh, (size_t)runs, "ms");
	for (int i = 0; i < runs; i++) {
		/* (untimed: an exec, as bench/thermal's loop has, and the stop) */
		cli(KEY, "exec", "t", "--", "true", NULL);
		cli(KEY, "stop", "t", NULL);
		wait_thermal("t", "cold");
		vc[i] = get_ms(warm_url);
	}
	stats_print("proxy, cold wake after `bhatti stop`", vc, (size_t)runs, "ms");
	free(vw);
	free(vh);
	free(vc);
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

/* Restart the daemon with proxy.transport t (the config's last line). */
static void use_transport(const char *t)
{
	if (daemon_stop(&D, false) < 0)
		die("daemon stop");
	char *old = read_text(D.config);
	char *at = old ? strstr(old, "  transport: ") : NULL;
	if (!at)
		die("config");
	*at = '\0';
	FILE *f = fopen(D.config, "w");
	fprintf(f, "%s  transport: %s\n", old, t);
	fclose(f);
	free(old);
	if (daemon_restart(&D) < 0)
		die("daemon restart");
}

/* Every row through the proxy, by the transport the daemon uses now. */
static void proxy_rows(const char *t, int pport, int runs, int wake_runs, int secs)
{
	char *via = test_strf("http://127.0.0.1:%d/bench/hello", pport);
	char *via_n = test_strf("http://127.0.0.1:%d/bench-n/hello", pport);
	char *via_t = test_strf("http://127.0.0.1:%d/t/hello", pport);
	char name[96];
	printf("-- transport: %s\n", t);
	latency("proxy, hot, new connection each", via, runs, true);
	latency("proxy, hot, one kept-alive connection", via, runs, false);
	latency("proxy, hot, no fork (-n), new conn.", via_n, runs, true);
	latency("proxy, hot, no fork (-n), kept-alive", via_n, runs, false);
	wakes(via_t, via_n, wake_runs);
	snprintf(name, sizeof(name), "proxy (%s), 50 keep-alive clients", t);
	throughput(name, via_n, 50, secs);
	free(via);
	free(via_n);
	free(via_t);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 200;
	if (runs < 1)
		runs = 200;
	int secs = (int)env_long("PROXY_SECONDS", 10);
	int wake_runs = (int)env_long("WAKE_RUNS", 20);
	/* guest networking (the IP transport) only in namespaces of our own */
	bool net = NET = geteuid() == 0 && env_long("PROXY_NET", 1) != 0;
	if (net && netns_up() < 0) {
		netns_down();
		fprintf(stderr, "bench: cannot make the network namespaces\n");
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int pport = pick_port(), dport = pick_port();
	char *cfg = test_strf("pool_size: 0\npublic_proxy_listen: \"127.0.0.1:%d\"\n"
			      "limits:\n  reads_per_min: 0\n  execs_per_min: 0\n  creates_per_min: 0\n"
			      "thermal:\n  warm_after: 1s\n  cold_after: never\n  check_every: 250ms\n"
			      "%s"
			      "proxy:\n  requests_per_ip_per_min: 0\n  requests_per_alias_per_min: 0\n"
			      "  transport: %s\n",
			      pport, net ? "network:\n  dns_upstreams: [198.51.100.53]\n" : "",
			      net ? "ip" : "agent");
	if (daemon_start(&D, cfg) < 0)
		die("daemon did not start");
	free(cfg);
	KEY = daemon_user(&D, "bench", NULL);
	if (!KEY)
		die("user");
	char *px = test_strf("%s/guest/pxserve", test_build_dir());
	/* web: hot (keep_hot), pxserve forking on 3000, serving itself on
	 * 3001; t: the one that goes warm and cold */
	cli(KEY, "create", "web", "--keep-hot", NULL);
	cli(KEY, "file", "write", "web", "/tmp/pxserve", "--mode", "0755", "--from", px, NULL);
	cli(KEY, "exec", "web", "--", "/tmp/pxserve", "3000", NULL);
	cli(KEY, "exec", "web", "--", "/tmp/pxserve", "3001", "-n", NULL);
	cli(KEY, "publish", "web", "-p", "3000", "-a", "bench", NULL);
	cli(KEY, "publish", "web", "-p", "3001", "-a", "bench-n", NULL);
	cli(KEY, "create", "t", NULL);
	cli(KEY, "file", "write", "t", "/tmp/pxserve", "--mode", "0755", "--from", px, NULL);
	cli(KEY, "exec", "t", "--", "/tmp/pxserve", "3000", "-n", NULL);
	cli(KEY, "publish", "t", "-p", "3000", "-a", "t", NULL);
	/* the same server on the host, reached directly */
	char dp[16];
	snprintf(dp, sizeof(dp), "%d", dport);
	pid_t pid = fork();
	if (pid == 0) {
		execl(px, px, dp, "-f", "-n", (char *)NULL);
		_exit(127);
	}
	usleep(200000);

	if (net) {
		proxy_rows("ip", pport, runs, wake_runs, secs);
		use_transport("agent");
	}
	proxy_rows("agent", pport, runs, wake_runs, secs);

	char *direct = test_strf("http://127.0.0.1:%d/hello", dport);
	latency("direct (host), new connection each", direct, runs, true);
	latency("direct (host), one kept-alive connection", direct, runs, false);
	throughput("direct (host), 50 keep-alive clients", direct, 50, secs);

	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	free(direct);
	free(px);
	free(KEY);
	daemon_stop(&D, true);
	if (net)
		netns_down();
	curl_global_cleanup();
	return 0;
}
