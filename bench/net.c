/* net.c — benchmark of guest networking (issue 12): what networking adds
 * to a create (POST /sandboxes by clone, networking on and off, pool
 * off so each create clones), an HTTP request from the guest to the
 * "world" namespace (timed inside the guest, p50/p99), and TCP throughput
 * from the guest to the world through NAT. Prints p50/p99
 * (docs/benchmarks.md).
 *
 *   build/bench/net [RUNS]      (default 20 creates, 5 x RUNS requests)
 *
 * Runs in the namespaces of tests/netns.h (root only): nothing leaves them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "helpers.h"
#include "netns.h"
#include "stats.h"
#include "util.h"

static struct daemon_proc D;
static char *KEY;

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	daemon_stop(&D, true);
	netns_down();
	exit(1);
}

static void start(bool net)
{
	const char *cfg = net ? "pool_size: 0\nlimits:\n  creates_per_min: 0\n  execs_per_min: 0\n"
				"network:\n  dns_upstreams: [198.51.100.53]\n"
			      : "pool_size: 0\nlimits:\n  creates_per_min: 0\n  execs_per_min: 0\n";
	if (daemon_start(&D, cfg) < 0)
		die("daemon");
	KEY = daemon_user(&D, "bench", "--max-sandboxes 100");
	if (!KEY)
		die("user");
}

/* runs creates by clone (the first, which builds the template, not
 * counted), each destroyed after */
static void creates(const char *label, int runs)
{
	double *v = calloc((size_t)runs, sizeof(*v));
	/* one sandbox stays: its user's bridge and rules are there already,
	 * as for any create but a user's first */
	if (api_call(&D, KEY, "POST", "/sandboxes", "{\"name\":\"keep\"}", 15, NULL) != 201)
		die("create keep");
	for (int i = -1; i < runs; i++) {
		struct buf out = BUF_INIT;
		uint64_t t0 = now_ns();
		int st = api_call(&D, KEY, "POST", "/sandboxes", "{\"name\":\"b\"}", 12, &out);
		double ms = (double)(now_ns() - t0) / 1e6;
		if (st != 201)
			die(out.data ? out.data : "create");
		if (i >= 0)
			v[i] = ms;
		buf_reset(&out);
		if (api_call(&D, KEY, "DELETE", "/sandboxes/b", NULL, 0, &out) != 204)
			die("destroy");
		buf_release(&out);
	}
	stats_print(label, v, (size_t)runs, "ms");
	free(v);
	if (api_call(&D, KEY, "DELETE", "/sandboxes/keep", NULL, 0, NULL) != 204)
		die("destroy keep");
}

/* numbers (one a line) that netprobe ARGS prints in the guest, into v */
static size_t probe(const char *args, double *v, size_t max, double scale)
{
	struct buf out = BUF_INIT;
	char *cmd = test_strf("/tmp/netprobe %s", args);
	const char *argv[] = { "exec", "b", "--", "sh", "-c", cmd, NULL };
	if (bhatti_argv(&D, KEY, NULL, &out, NULL, argv) != 0)
		die("netprobe in the guest");
	size_t n = 0;
	for (char *l = out.data; l && *l && n < max;) {
		char *end;
		double x = strtod(l, &end);
		if (end != l)
			v[n++] = x * scale;
		char *nl = strchr(l, '\n');
		l = nl ? nl + 1 : NULL;
	}
	free(cmd);
	buf_release(&out);
	return n;
}

/* bench/guest/netprobe.c, static (musl), into the guest at /tmp/netprobe */
static void install_probe(void)
{
	char *dir = test_tmpdir("netprobe"), *bin = test_strf("%s/netprobe", dir);
	if (netns_sh("musl-gcc -static -O2 -o %s bench/guest/netprobe.c", bin) != 0)
		die("musl-gcc bench/guest/netprobe.c");
	const char *args[] = { "file", "write", "b", "/tmp/netprobe", "--mode", "0755", "--from", bin,
			       NULL };
	if (bhatti_argv(&D, KEY, NULL, NULL, NULL, args) != 0)
		die("file write netprobe");
	test_rmtree(dir);
	free(dir);
	free(bin);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20;
	if (geteuid() != 0) {
		fprintf(stderr, "bench/net: needs root (network namespaces)\n");
		return 0;
	}
	if (netns_up() < 0) {
		netns_down();
		fprintf(stderr, "bench/net: cannot make the namespaces\n");
		return 1;
	}
	start(false);
	creates("create (clone), networking off", runs);
	daemon_stop(&D, true);
	free(KEY);
	start(true);
	creates("create (clone), networking on", runs);
	if (api_call(&D, KEY, "POST", "/sandboxes", "{\"name\":\"b\"}", 12, NULL) != 201)
		die("create");
	install_probe();
	size_t n = (size_t)runs * 10;
	double *v = calloc(n, sizeof(*v));
	char *args = test_strf("get 198.51.100.1 80 %zu", n);
	size_t got = probe(args, v, n, 1e-6);
	free(args);
	if (got)
		stats_print("guest HTTP GET / to the world (in guest)", v, got, "ms");
	/* TCP throughput: 256 MiB from the guest to a sink in the world */
	pid_t sink = netns_world_sink(5001);
	usleep(200 * 1000);
	double mbit[3];
	for (int i = 0; i < 3; i++) {
		double s = 0;
		if (probe("send 198.51.100.1 5001 268435456", &s, 1, 1e-9) != 1 || s <= 0)
			die("throughput");
		mbit[i] = 268435456.0 * 8 / 1e6 / s;
	}
	stats_print("TCP guest -> world (256 MiB, Mbit/s)", mbit, 3, "Mb/s");
	kill(sink, SIGKILL);
	waitpid(sink, NULL, 0);
	free(v);
	daemon_stop(&D, true);
	free(KEY);
	netns_down();
	return 0;
}
