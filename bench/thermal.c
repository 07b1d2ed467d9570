/* thermal.c — benchmark of the thermal manager's wake paths and of what
 * an idle sandbox costs (docs/benchmarks.md, docs/thermal.md):
 *
 *   - `bhatti exec t -- true` on a warm sandbox (the manager paused it)
 *     beside the same on a hot one (keep_hot), interleaved per round;
 *   - `bhatti exec t -- true` right after `bhatti stop t` (cold wake +
 *     exec, the seed benchmark's "cold resume + exec");
 *   - an idle sandbox over 60 s (IDLE_SECONDS) when hot, warm and cold:
 *     host CPU seconds of its QEMU (utime + stime from /proc) and its
 *     resident memory (VmRSS, and RssShmem: the guest RAM on tmpfs).
 *
 *   build/bench/thermal [RUNS]      (default 30)
 *
 * Starts its own `bhatti serve` (tests/helpers.c) with warm_after 1s.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "helpers.h"
#include "stats.h"
#include "util.h"

static struct daemon_proc D;
static char *KEY;

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	daemon_stop(&D, true);
	exit(1);
}

static double cli_ms(const char *a0, const char *a1, const char *a2, const char *a3,
		     const char *a4)
{
	struct buf o = BUF_INIT, e = BUF_INIT;
	uint64_t t0 = now_ns();
	int rc = bhatti(&D, KEY, NULL, &o, &e, a0, a1, a2, a3, a4, NULL);
	double ms = (double)(now_ns() - t0) / 1e6;
	if (rc != 0) {
		fprintf(stderr, "%s %s: %s\n", a0, a1, e.data ? e.data : "");
		die("a CLI run failed");
	}
	buf_release(&o);
	buf_release(&e);
	return ms;
}

static cJSON *inspect(const char *name)
{
	struct buf b = BUF_INIT;
	char *path = test_strf("/sandboxes/%s", name);
	cJSON *j = api_call(&D, KEY, "GET", path, NULL, 0, &b) == 200 ? cJSON_Parse(b.data) : NULL;
	free(path);
	buf_release(&b);
	if (!j)
		die("inspect failed");
	return j;
}

static void wait_thermal(const char *name, const char *want)
{
	for (int i = 0; i < 400; i++) {
		cJSON *j = inspect(name);
		bool ok = strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "thermal")), want) == 0;
		cJSON_Delete(j);
		if (ok)
			return;
		usleep(50 * 1000);
	}
	die("the sandbox did not reach the thermal state");
}

/* QEMU's CPU time in seconds (utime + stime), or -1 when it is gone. */
static double qemu_cpu(int pid)
{
	char *p = test_strf("/proc/%d/stat", pid);
	char *s = read_text(p);
	free(p);
	if (!s)
		return -1;
	char *q = strrchr(s, ')');
	unsigned long long ut = 0, st = 0;
	if (q)
		sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
	free(s);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long status_kb(int pid, const char *key)
{
	char *p = test_strf("/proc/%d/status", pid);
	char *s = read_text(p);
	free(p);
	const char *f = s ? strstr(s, key) : NULL;
	long kb = f ? strtol(f + strlen(key), NULL, 10) : 0;
	free(s);
	return kb;
}

static void idle_cost(const char *state, const char *id, int seconds)
{
	int pid = sandbox_qemu_pid(D.data, id);
	if (!pid || qemu_cpu(pid) < 0) {
		printf("%-40s no QEMU process: 0 CPU s, 0 MB resident\n", state);
		return;
	}
	double c0 = qemu_cpu(pid);
	sleep((unsigned)seconds);
	double c1 = qemu_cpu(pid);
	printf("%-40s QEMU CPU %.2f s over %d s; VmRSS %ld MB (RssShmem %ld MB)\n", state, c1 - c0,
	       seconds, status_kb(pid, "VmRSS:") / 1024, status_kb(pid, "RssShmem:") / 1024);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 30;
	int idle_s = (int)env_long("IDLE_SECONDS", 60);
	if (runs < 5)
		runs = 5;
	if (daemon_start(&D, "limits:\n  execs_per_min: 0\n  creates_per_min: 0\n"
			     "thermal:\n  warm_after: 1s\n  cold_after: never\n"
			     "  check_every: 250ms\n") < 0)
		die("daemon did not start");
	KEY = daemon_user(&D, "bench", NULL);
	if (!KEY)
		die("user create failed");
	printf("bench/thermal: daemon %s, data in %s\n", D.url, D.data);
	cli_ms("create", "--name", "t", NULL, NULL);
	cli_ms("create", "--name", "h", "--keep-hot", NULL);
	for (int i = 0; i < 3; i++) { /* warm up */
		cli_ms("exec", "t", "--", "true", NULL);
		cli_ms("exec", "h", "--", "true", NULL);
	}

	double *vw = calloc((size_t)runs, sizeof(double)), *vh = calloc((size_t)runs, sizeof(double));
	for (int i = 0; i < runs; i++) {
		wait_thermal("t", "warm");
		vw[i] = cli_ms("exec", "t", "--", "true", NULL);
		vh[i] = cli_ms("exec", "h", "--", "true", NULL);
	}
	stats_print("warm wake + `bhatti exec -- true`", vw, (size_t)runs, "ms");
	stats_print("hot `bhatti exec -- true` (keep_hot)", vh, (size_t)runs, "ms");

	double *vc = calloc((size_t)runs, sizeof(double));
	for (int i = 0; i < runs; i++) {
		cli_ms("stop", "t", NULL, NULL, NULL);
		vc[i] = cli_ms("exec", "t", "--", "true", NULL);
	}
	stats_print("`bhatti stop` then `bhatti exec -- true`", vc, (size_t)runs, "ms");
	cJSON *j = inspect("t");
	printf("%-40s %d wakes, the last took %d ms (daemon side)\n", "t",
	       cJSON_GetObjectItem(j, "wake_count")->valueint,
	       cJSON_GetObjectItem(j, "last_wake_ms")->valueint);
	char *id = xstrdup(cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
	cJSON_Delete(j);

	/* idle cost: hot (keep_hot), warm, cold */
	api_call(&D, KEY, "PATCH", "/sandboxes/t", "{\"keep_hot\":true}", 17, NULL);
	wait_thermal("t", "hot");
	sleep(2);
	idle_cost("idle hot sandbox (keep_hot)", id, idle_s);
	api_call(&D, KEY, "PATCH", "/sandboxes/t", "{\"keep_hot\":false}", 18, NULL);
	wait_thermal("t", "warm");
	idle_cost("idle warm sandbox", id, idle_s);
	cli_ms("stop", "t", NULL, NULL, NULL);
	idle_cost("idle cold sandbox", id, idle_s);
	free(id);
	free(vw);
	free(vh);
	free(vc);
	daemon_stop(&D, true);
	return 0;
}
