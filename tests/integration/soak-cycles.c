/* soak-cycles.c — `make soak`: SOAK_CYCLES (default 1000) sandbox life
 * cycles against one real `bhatti serve` over its API, and nothing may
 * pile up.
 *
 * A cycle: create (from the pool of one warmed clone when it is ready,
 * else a clone of the template: both happen, the pool refills a second
 * after a claim), exec with its output and exit code checked, and by turns
 * a file written and read back, a stop and a start (the file still there,
 * the process still running), a sandbox kept for a few cycles and
 * destroyed while stopped or running, a destroy. Every SOAK_CHECK cycles
 * (default a tenth), with nothing of the soak left: audit_settle()
 * (tests/audit.h) finds no leaked QEMU, directory, file, tmpfs byte or
 * database row, and the daemon's descriptors are as many as at the first
 * checkpoint. RSS is sampled every 10 cycles; after the warm-up (the
 * first checkpoint) it must stay flat: the least-squares growth over the
 * rest of the run under 2 MiB and no checkpoint more than 4 MiB above the
 * warm-up's. At the end, everything destroyed and the daemon stopped:
 * no QEMU, no file in the memory dir, no sandbox or pool directory.
 *
 * Prints the figures (docs/security.md keeps them). The API is called in
 * this process (tests/helpers.c: api_call), so a cycle measures the
 * daemon and the VMs, not curl's start-up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "audit.h"
#include "buf.h"
#include "helpers.h"

static struct daemon_proc d;
static char *KEY;

static int stop_daemon(void **state UNUSED)
{
	watchdog_start(NULL, 0);
	if (d.dir)
		daemon_stop(&d, true);
	free(KEY);
	return 0;
}

/* One API call that must answer `want`; the body in out (reset first). */
static void call(const char *method, const char *path, const char *body, int want, struct buf *out)
{
	buf_reset(out);
	watchdog_step("%s %s %s", method, path, body ? body : "");
	int st = api_call(&d, KEY, method, path, body, body ? strlen(body) : 0, out);
	if (st != want)
		fail_msg("%s %s: %d (want %d): %s", method, path, st, want, out->data);
}

static const char *jstr(const cJSON *o, const char *k)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
	return s ? s : "";
}

/* Create `name`; true when it came from the pool. */
static bool create(const char *name, struct buf *b)
{
	char body[128];
	snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
	call("POST", "/sandboxes", body, 201, b);
	cJSON *j = cJSON_Parse(b->data);
	assert_string_equal(jstr(j, "state"), "hot");
	char *cmd = proc_cmdline(sandbox_qemu_pid(d.data, jstr(j, "id")));
	bool pooled = cmd && strstr(cmd, "/pool/");
	free(cmd);
	cJSON_Delete(j);
	return pooled;
}

/* exec `sh -c 'echo $0; echo e$0 >&2; exit N'` and check every part. */
static void exec_check(const char *name, int cycle, struct buf *b)
{
	char path[128], body[256], want_out[64], want_err[64];
	int code = cycle % 7;
	snprintf(path, sizeof(path), "/sandboxes/%s/exec", name);
	snprintf(body, sizeof(body),
		 "{\"cmd\":[\"sh\",\"-c\",\"echo $0; echo e$0 >&2; exit %d\",\"c%d\"]}", code, cycle);
	call("POST", path, body, 200, b);
	cJSON *j = cJSON_Parse(b->data);
	snprintf(want_out, sizeof(want_out), "c%d\n", cycle);
	snprintf(want_err, sizeof(want_err), "ec%d\n", cycle);
	if (strcmp(jstr(j, "stdout"), want_out) != 0 || strcmp(jstr(j, "stderr"), want_err) != 0 ||
	    cJSON_GetNumberValue(cJSON_GetObjectItem(j, "exit_code")) != code)
		fail_msg("cycle %d: exec on '%s' answered %s", cycle, name, b->data);
	cJSON_Delete(j);
}

static void file_put(const char *name, const char *content, struct buf *b)
{
	char path[160];
	snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/soak", name);
	call("PUT", path, content, 201, b);
}

static void file_check(const char *name, const char *content, struct buf *b)
{
	char path[160];
	snprintf(path, sizeof(path), "/sandboxes/%s/files?path=/tmp/soak", name);
	call("GET", path, NULL, 200, b);
	if (b->len != strlen(content) || memcmp(b->data, content, b->len) != 0)
		fail_msg("'%s': /tmp/soak reads back '%s', not '%s'", name, b->data, content);
}

static void op(const char *name, const char *what, int want, struct buf *b)
{
	char path[160];
	snprintf(path, sizeof(path), "/sandboxes/%s%s%s", name, what[0] ? "/" : "", what);
	call(what[0] ? "POST" : "DELETE", path, what[0] ? "" : NULL, want, b);
}

/* RSS samples after the warm-up: (cycle, kB). */
struct series {
	double x[4096], y[4096];
	size_t n;
};

/* Least-squares slope of y over x. */
static double slope(const struct series *s)
{
	double mx = 0, my = 0, sxx = 0, sxy = 0;
	for (size_t i = 0; i < s->n; i++)
		mx += s->x[i], my += s->y[i];
	mx /= (double)s->n;
	my /= (double)s->n;
	for (size_t i = 0; i < s->n; i++) {
		sxx += (s->x[i] - mx) * (s->x[i] - mx);
		sxy += (s->x[i] - mx) * (s->y[i] - my);
	}
	return sxx > 0 ? sxy / sxx : 0;
}

static void checkpoint(int cycle, struct audit *a, const char *keeper[], int nkeep, struct buf *b)
{
	for (int k = 0; k < nkeep; k++)
		if (keeper[k]) {
			op(keeper[k], "", 204, b);
			free((char *)keeper[k]);
			keeper[k] = NULL;
		}
	watchdog_step("checkpoint after cycle %d", cycle);
	if (!audit_settle(&d, KEY, 1, 30000, a))
		fail_msg("after cycle %d, leaked:\n%s", cycle, a->leaks.data);
	if (a->rows || a->dirs || a->qemu != 1)
		fail_msg("after cycle %d: %d rows, %d sandbox dirs, %d QEMUs (want 0, 0, 1: the pool)",
			 cycle, a->rows, a->dirs, a->qemu);
}

static void test_cycles(void **state UNUSED)
{
	long cycles = env_long("SOAK_CYCLES", 1000);
	long every = env_long("SOAK_CHECK", cycles / 10 > 10 ? cycles / 10 : 10);
	assert_int_equal(daemon_start(&d, "pool_size: 1\nlimits:\n  creates_per_min: 0\n"
					  "  execs_per_min: 0\n  reads_per_min: 0\n"), 0);
	KEY = daemon_user(&d, "soak", "--max-sandboxes 100");
	assert_non_null(KEY);
	watchdog_start(&d, 180);
	struct buf b = BUF_INIT;
	struct audit a, first;
	audit_init(&a);
	audit_init(&first);
	struct series rss = { .n = 0 };
	const char *keeper[3] = { NULL };
	int pooled = 0, cloned = 0, stops = 0, kept = 0, checkpoints = 0;
	long warm_rss = 0, max_rss = 0;
	uint64_t t0 = now_ms();
	printf("# soak: %ld cycles, checkpoint every %ld; RSS must stay flat after the first "
	       "checkpoint (trend over the rest < 2 MiB, no checkpoint > 4 MiB above it), fds equal at "
	       "every checkpoint\n", cycles, every);
	printf("# %6s %8s %8s %6s %6s %10s %s\n", "cycle", "rss_kB", "fds", "qemu", "shm", "shm_bytes",
	       "s");
	for (long i = 1; i <= cycles; i++) {
		char name[32];
		snprintf(name, sizeof(name), "c%ld", i);
		/* cycles come faster than the pool refills (a second after a
		 * claim, then a restore and a warm-up): now and then give it
		 * time, so creates from the pool are part of the mix */
		if (i % 20 == 0)
			usleep(2500 * 1000);
		if (create(name, &b))
			pooled++;
		else
			cloned++;
		exec_check(name, (int)i, &b);
		char content[64];
		snprintf(content, sizeof(content), "cycle %ld\n", i);
		if (i % 3 == 0) {
			/* a file and a background process survive stop and start */
			file_put(name, content, &b);
			char path[128], body[160];
			snprintf(path, sizeof(path), "/sandboxes/%s/exec", name);
			snprintf(body, sizeof(body), "{\"cmd\":[\"sh\",\"-c\",\"sleep 1000 >/dev/null 2>&1 & echo $! > /tmp/pid\"]}");
			call("POST", path, body, 200, &b);
			op(name, "stop", 200, &b);
			op(name, "start", 200, &b);
			stops++;
			file_check(name, content, &b);
			snprintf(body, sizeof(body), "{\"cmd\":[\"sh\",\"-c\",\"kill -0 $(cat /tmp/pid) && echo alive\"]}");
			call("POST", path, body, 200, &b);
			if (!strstr(b.data, "\"stdout\":\"alive\\n\""))
				fail_msg("cycle %ld: the process did not survive stop/start: %s", i, b.data);
			exec_check(name, (int)i + 1, &b);
		}
		if (i % 5 == 0) {
			/* keep it a while: the slot's previous one goes (stopped
			 * first by turns: a destroy of a cold sandbox) */
			int slot = (int)(i / 5) % 3;
			if (keeper[slot]) {
				if ((i / 5) % 2)
					op(keeper[slot], "stop", 200, &b);
				op(keeper[slot], "", 204, &b);
				free((char *)keeper[slot]);
			}
			keeper[slot] = xstrdup(name);
			kept++;
		} else {
			op(name, "", 204, &b);
		}
		if (i % 10 == 0) {
			audit_take(&d, NULL, &a);
			if (max_rss < a.rss_kb)
				max_rss = a.rss_kb;
			if (checkpoints > 0 && rss.n < 4096) {
				rss.x[rss.n] = (double)i;
				rss.y[rss.n++] = (double)a.rss_kb;
			}
		}
		if (i % every == 0 || i == cycles) {
			checkpoint((int)i, &a, keeper, 3, &b);
			if (++checkpoints == 1) {
				first.fds = a.fds;
				buf_reset(&first.fd_kinds);
				buf_adds(&first.fd_kinds, a.fd_kinds.data);
				warm_rss = a.rss_kb;
			}
			printf("# %6ld %8ld %8d %6d %6d %10lld %.0f   (fds: %s)\n", i, a.rss_kb, a.fds,
			       a.qemu, a.shm_files, a.shm_bytes, (double)(now_ms() - t0) / 1000,
			       a.fd_kinds.data);
			fflush(stdout);
			if (a.fds != first.fds)
				fail_msg("after cycle %ld the daemon has %d descriptors, %d at the first "
					 "checkpoint:\n  now:   %s\n  first: %s",
					 i, a.fds, first.fds, a.fd_kinds.data, first.fd_kinds.data);
			if (a.rss_kb > warm_rss + 4096)
				fail_msg("after cycle %ld the daemon's RSS is %ld kB, %ld kB after the warm-up",
					 i, a.rss_kb, warm_rss);
		}
	}
	double per_cycle = rss.n > 2 ? slope(&rss) : 0;
	double growth = per_cycle * (double)(cycles - every);
	printf("# cycles %ld in %.0f s: creates from the pool %d, by clone %d; stop+start %d; kept %d\n",
	       cycles, (double)(now_ms() - t0) / 1000, pooled, cloned, stops, kept);
	printf("# RSS: %ld kB after the warm-up (cycle %ld), max %ld kB, last %ld kB; "
	       "trend %.2f kB/cycle = %.0f kB over the rest\n",
	       warm_rss, every, max_rss, a.rss_kb, per_cycle, growth);
	printf("# fds: %d at every checkpoint (%s)\n", first.fds, first.fd_kinds.data);
	if (growth > 2048)
		fail_msg("the daemon's RSS grows: %.2f kB per cycle after the warm-up", per_cycle);

	/* the end: nothing but the template on disk */
	assert_int_equal(daemon_stop(&d, false), 0);
	audit_take(&d, NULL, &a);
	printf("# after the daemon stopped: %d QEMUs, %d files (%lld bytes) in the memory dir, "
	       "%d sandbox dirs, %d pool clones, %d rows\n",
	       a.qemu, a.shm_files, a.shm_bytes, a.dirs, a.pool, a.rows);
	if (a.leaks.len || a.qemu || a.shm_files || a.dirs || a.rows)
		fail_msg("left after the daemon stopped:\n%s", a.leaks.data);
	audit_release(&a);
	audit_release(&first);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_cycles, stop_daemon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
