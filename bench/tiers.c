/* tiers.c — benchmark of the image tiers through a real daemon: for each
 * tier whose image is built (tiny, minimal, browser, docker), the first
 * `bhatti create --image TIER` (boots the tier and makes its template),
 * then creates by clone (pool_size 0: the clone is on the create's path,
 * its disk copied from the template's) each followed by its first
 * `bhatti exec -- true`, and `bhatti destroy`. Prints p50/p99
 * (docs/benchmarks.md, "Image tiers").
 *
 *   build/bench/tiers [RUNS]      (default 5 clones per tier)
 *
 * Starts its own `bhatti serve` in a temp dir (tests/helpers.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "loop.h"
#include "stats.h"

static struct daemon_proc D;
static char *KEY;

static double cli_ms(const char *arg0, ...)
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
	uint64_t t0 = now_ns();
	int rc = bhatti_argv(&D, KEY, NULL, &out, &err, a);
	double ms = (double)(now_ns() - t0) / 1e6;
	if (rc != 0) {
		fprintf(stderr, "bench: bhatti %s failed: %s%s\n", a[0], out.data, err.data);
		daemon_stop(&D, true);
		exit(1);
	}
	buf_release(&out);
	buf_release(&err);
	return ms;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 5;
	if (runs < 1 || runs > 100)
		runs = 5;
	const char *images = getenv("BHATTI_IMAGES") ? getenv("BHATTI_IMAGES") : "build/images";
	if (daemon_start(&D, "pool_size: 0\nlimits:\n  creates_per_min: 0\n  max_memory_mb: 2048\n") < 0 ||
	    !(KEY = daemon_user(&D, "bench", "--max-sandboxes 4 --max-memory 2048"))) {
		fprintf(stderr, "bench: cannot start the daemon\n");
		return 1;
	}
	static const char *const tiers[] = { "tiny", "minimal", "browser", "docker" };
	double *create = calloc((size_t)runs, sizeof(double));
	double *exec = calloc((size_t)runs, sizeof(double));
	double *both = calloc((size_t)runs, sizeof(double));
	for (size_t t = 0; t < ARRAY_SIZE(tiers); t++) {
		char *img = test_strf("%s/rootfs-%s.ext4", images, tiers[t]);
		bool have = access(img, R_OK) == 0;
		free(img);
		if (!have) {
			printf("%-40s skipped: no image (make images TIERS=%s)\n", tiers[t], tiers[t]);
			continue;
		}
		char label[96];
		double first = cli_ms("create", "--name", "first", "--image", tiers[t], (const char *)NULL);
		cli_ms("destroy", "-y", "first", (const char *)NULL);
		snprintf(label, sizeof(label), "first create, %s (boot + template)", tiers[t]);
		printf("%-40s %10.0f ms\n", label, first);
		for (int i = 0; i < runs; i++) {
			char name[16];
			snprintf(name, sizeof(name), "c%d", i);
			create[i] = cli_ms("create", "--name", name, "--image", tiers[t], (const char *)NULL);
			exec[i] = cli_ms("exec", name, "--", "true", (const char *)NULL);
			both[i] = create[i] + exec[i];
			cli_ms("destroy", "-y", name, (const char *)NULL);
		}
		snprintf(label, sizeof(label), "create by clone, %s", tiers[t]);
		stats_print(label, create, (size_t)runs, "ms");
		snprintf(label, sizeof(label), "first exec `true`, %s", tiers[t]);
		stats_print(label, exec, (size_t)runs, "ms");
		snprintf(label, sizeof(label), "create + first exec, %s", tiers[t]);
		stats_print(label, both, (size_t)runs, "ms");
		fflush(stdout);
	}
	free(create);
	free(exec);
	free(both);
	free(KEY);
	return daemon_stop(&D, true) < 0;
}
