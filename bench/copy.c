/* copy.c — benchmark of named snapshots and fork as a user sees them (the
 * CLI's wall clock against a daemon of its own, as bench/cli.c): `bhatti
 * snapshot create` of a running sandbox, `bhatti snapshot resume` (to its
 * answer: the new sandbox answers), the same + the first `bhatti exec`
 * in it, `bhatti fork` (to its answer: the copy runs), the same + the
 * first exec in the copy. Each round takes one of each, in turn, so the
 * rows see the same machine. Prints p50/p99 (docs/benchmarks.md).
 *
 *   build/bench/copy [RUNS]      (default 20)
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "stats.h"

static struct daemon_proc D;
static char *KEY;

static double ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	if (D.dir)
		daemon_stop(&D, true);
	exit(1);
}

/* `bhatti ARGS` (NULL-terminated, at most 14): its wall clock in ms. */
static double cli(const char *a0, ...)
{
	const char *args[16] = { a0 };
	va_list ap;
	va_start(ap, a0);
	for (int i = 1; i < 15 && (args[i] = va_arg(ap, const char *)); i++)
		;
	va_end(ap);
	struct buf out = BUF_INIT, err = BUF_INIT;
	uint64_t t0 = now_ns();
	int rc = bhatti_argv(&D, KEY, NULL, &out, &err, args);
	double ms = ms_since(t0);
	if (rc != 0) {
		fprintf(stderr, "bhatti %s %s: exit %d: %s", a0, args[1] ? args[1] : "", rc, err.data);
		die("a CLI run failed");
	}
	buf_release(&out);
	buf_release(&err);
	return ms;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 20;
	if (runs < 5)
		runs = 5;
	if (daemon_start(&D, "limits:\n  execs_per_min: 0\n  creates_per_min: 0\n"
			     "  max_sandboxes: 100\n  max_snapshots: 100\n") < 0)
		die("daemon did not start");
	KEY = daemon_user(&D, "bench", "--max-sandboxes 100");
	if (!KEY)
		die("user create failed");
	printf("bench/copy: daemon %s, data in %s\n", D.url, D.data);
	printf("%-40s %.1f ms (template build + clone)\n", "first create",
	       cli("create", "--name", "src", NULL));
	cli("exec", "src", "--", "sh", "-c", "echo data > /workspace/f; (sleep 100000 &)", NULL);
	double *snap = calloc((size_t)runs, sizeof(double)), *res = calloc((size_t)runs, sizeof(double));
	double *resx = calloc((size_t)runs, sizeof(double)), *frk = calloc((size_t)runs, sizeof(double));
	double *frkx = calloc((size_t)runs, sizeof(double));
	for (int i = -1; i < runs; i++) { /* round -1 warms up */
		char s[32], r[32], f[32];
		snprintf(s, sizeof(s), "s%d", i + 1);
		snprintf(r, sizeof(r), "r%d", i + 1);
		snprintf(f, sizeof(f), "f%d", i + 1);
		double a = cli("snapshot", "create", "src", "--name", s, NULL);
		double b = cli("snapshot", "resume", s, "--name", r, NULL);
		double bx = cli("exec", r, "--", "true", NULL);
		double c = cli("fork", "src", "--name", f, NULL);
		double cx = cli("exec", f, "--", "true", NULL);
		if (i >= 0) {
			snap[i] = a;
			res[i] = b;
			resx[i] = b + bx;
			frk[i] = c;
			frkx[i] = c + cx;
		}
		cli("destroy", "-y", r, f, NULL);
		cli("snapshot", "delete", s, NULL);
	}
	stats_print("bhatti snapshot create", snap, (size_t)runs, "ms");
	stats_print("bhatti snapshot resume", res, (size_t)runs, "ms");
	stats_print("  + first exec in it", resx, (size_t)runs, "ms");
	stats_print("bhatti fork", frk, (size_t)runs, "ms");
	stats_print("  + first exec in the copy", frkx, (size_t)runs, "ms");
	free(snap);
	free(res);
	free(resx);
	free(frk);
	free(frkx);
	free(KEY);
	return daemon_stop(&D, true) == 0 ? 0 : 1;
}
