/* test-daemon-snapshot.c — end to end: named snapshots and fork through
 * the real CLI and API of a real `bhatti serve` (issue 17): snapshot
 * create/list/resume/delete with a file and a running process checked in
 * the resumed copy, labels, quotas (count, sandboxes on resume and fork),
 * snapshots surviving a daemon restart and their source's destroy; fork
 * (a process running in the source runs in both, files equal, hostnames
 * and /dev/urandom differ); failures leave no snapshot, row or VM; a
 * daemon killed in the middle of a snapshot leaves nothing half made.
 *
 * Real daemon, real CLI and curl, real VMs (TCG here).
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "helpers.h"

static struct daemon_proc d;

static int stop_daemon(void **state UNUSED)
{
	if (d.dir)
		daemon_stop(&d, true);
	return 0;
}

/* `bhatti ARGS...` as key; its exit code, stdout in out (reset first). */
#define RUN(out, key, ...) (buf_reset(out), bhatti(&d, key, NULL, out, NULL, __VA_ARGS__, NULL))

/* bhatti exec NAME -- sh -c CMD: its stdout (caller frees); fails the test
 * on a non-zero exit. */
static char *sh(const char *key, const char *name, const char *cmd)
{
	struct buf o = BUF_INIT, e = BUF_INIT;
	int rc = bhatti(&d, key, NULL, &o, &e, "exec", name, "--", "sh", "-c", cmd, NULL);
	if (rc != 0)
		fail_msg("exec %s '%s': exit %d: %s", name, cmd, rc, e.data);
	buf_release(&e);
	return buf_detach(&o, NULL);
}

/* Directories under data/snapshots/<user>/ (any user). */
static int count_snapshot_dirs(void)
{
	char *root = test_strf("%s/snapshots", d.data);
	DIR *dr = opendir(root);
	struct dirent *de;
	int n = 0;
	while (dr && (de = readdir(dr))) {
		if (de->d_name[0] == '.')
			continue;
		char *u = test_strf("%s/%s", root, de->d_name);
		DIR *du = opendir(u);
		struct dirent *e2;
		while (du && (e2 = readdir(du)))
			n += e2->d_name[0] != '.';
		if (du)
			closedir(du);
		free(u);
	}
	if (dr)
		closedir(dr);
	free(root);
	return n;
}

static int count_json(const char *key, const char *path)
{
	struct buf b = BUF_INIT;
	int n = -1;
	if (http_call(&d, "GET", path, key, NULL, &b) == 200) {
		cJSON *j = cJSON_Parse(b.data);
		n = cJSON_GetArraySize(j);
		cJSON_Delete(j);
	}
	buf_release(&b);
	return n;
}

/* The snapshots' directories settle to n (deletes run in the background). */
static void wait_snapshot_dirs(int n)
{
	for (int i = 0; i < 100 && count_snapshot_dirs() != n; i++)
		usleep(50 * 1000);
	assert_int_equal(count_snapshot_dirs(), n);
}

static void test_snapshot_lifecycle(void **state UNUSED)
{
	assert_int_equal(daemon_start(&d, "pool_size: 1\nlimits:\n  max_snapshots: 2\n"
					  "  creates_per_min: 100\n"), 0);
	char *key = daemon_user(&d, "u", NULL), *other = daemon_user(&d, "o", NULL);
	assert_non_null(key);
	struct buf o = BUF_INIT;
	assert_int_equal(RUN(&o, key, "create", "--name", "dev"), 0);
	free(sh(key, "dev", "echo data > /workspace/f; (sleep 100000 & echo $! > /tmp/pid)"));

	assert_int_equal(RUN(&o, key, "snapshot", "create", "dev", "--name", "s1", "--label",
			     "team=a"), 0);
	assert_non_null(strstr(o.data, "snapshot: s1 of dev"));
	char *x = sh(key, "dev", "echo still-here"); /* it went on */
	assert_string_equal(x, "still-here\n");
	free(x);
	assert_int_equal(RUN(&o, key, "snapshot", "list", "--json"), 0);
	cJSON *j = cJSON_Parse(o.data), *s1 = cJSON_GetArrayItem(j, 0);
	assert_int_equal(cJSON_GetArraySize(j), 1);
	assert_string_equal(cJSON_GetObjectItem(s1, "name")->valuestring, "s1");
	assert_string_equal(cJSON_GetObjectItem(s1, "status")->valuestring, "ready");
	assert_string_equal(cJSON_GetObjectItem(s1, "source_sandbox")->valuestring, "dev");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(s1, "labels"), "team")->valuestring, "a");
	assert_true(cJSON_GetObjectItem(s1, "size_bytes")->valuedouble > 0);
	cJSON_Delete(j);
	/* the table, another user's view, a name in use, the count quota */
	assert_int_equal(RUN(&o, key, "snapshot", "list"), 0);
	assert_non_null(strstr(o.data, "s1"));
	assert_int_equal(http_call(&d, "GET", "/snapshots/s1", key, NULL, &o), 200);
	assert_int_equal(http_call(&d, "GET", "/snapshots/s1", other, NULL, &o), 404);
	assert_int_equal(count_json(other, "/snapshots"), 0);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/dev/snapshot", key, "{\"name\":\"s1\"}",
				   &o), 409);
	assert_int_equal(RUN(&o, key, "snapshot", "create", "dev", "--name", "s2"), 0);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/dev/snapshot", key, "{\"name\":\"s3\"}",
				   &o), 429);
	assert_non_null(strstr(o.data, "snapshot limit reached (2/2"));
	/* bad input: nothing made */
	assert_int_equal(http_call(&d, "POST", "/sandboxes/dev/snapshot", key, "{\"name\":\"a b\"}",
				   &o), 400);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/dev/snapshot", key,
				   "{\"name\":\"s4\",\"labels\":{\"bad key\":\"v\"}}", &o), 400);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/nope/snapshot", key, "{\"name\":\"s4\"}",
				   &o), 404);
	assert_int_equal(count_json(key, "/snapshots"), 2);
	wait_snapshot_dirs(2);

	/* they outlive their source and the daemon */
	assert_int_equal(RUN(&o, key, "destroy", "-y", "dev"), 0);
	assert_int_equal(daemon_stop(&d, false), 0);
	assert_int_equal(daemon_restart(&d), 0);
	assert_int_equal(count_json(key, "/snapshots"), 2);

	assert_int_equal(RUN(&o, key, "snapshot", "resume", "s1", "--name", "dev2"), 0);
	assert_non_null(strstr(o.data, "resumed: dev2"));
	x = sh(key, "dev2", "cat /workspace/f; kill -0 $(cat /tmp/pid) && echo alive; hostname");
	assert_string_equal(x, "data\nalive\ndev2\n");
	free(x);
	assert_int_equal(RUN(&o, key, "inspect", "dev2", "--json"), 0);
	assert_non_null(strstr(o.data, "\"restore\""));
	/* a resume is not idempotent by name; no such snapshot */
	assert_int_equal(http_call(&d, "POST", "/snapshots/s1/resume", key, "{\"name\":\"dev2\"}",
				   &o), 409);
	assert_int_equal(http_call(&d, "POST", "/snapshots/nope/resume", key, "{}", &o), 404);
	assert_int_equal(count_json(key, "/sandboxes"), 1);

	/* delete: gone, files too; the quota has room again */
	assert_int_equal(RUN(&o, key, "snapshot", "delete", "s2"), 0);
	assert_int_equal(http_call(&d, "GET", "/snapshots/s2", key, NULL, &o), 404);
	assert_int_equal(http_call(&d, "DELETE", "/snapshots/s2", key, NULL, &o), 404);
	wait_snapshot_dirs(1);
	assert_int_equal(RUN(&o, key, "snapshot", "create", "dev2", "--name", "s2"), 0);

	/* a user-stopped sandbox is woken for a snapshot, as for any request
	 * that needs the guest (docs/thermal.md) */
	assert_int_equal(RUN(&o, key, "stop", "dev2"), 0);
	assert_int_equal(RUN(&o, key, "snapshot", "delete", "s2"), 0);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/dev2/snapshot", key, "{\"name\":\"s5\"}",
				   &o), 201);
	assert_int_equal(count_json(key, "/snapshots"), 2);
	wait_snapshot_dirs(2);

	/* the sandbox quota applies to a resume */
	char *q = daemon_user(&d, "q", "--max-sandboxes 1");
	assert_int_equal(RUN(&o, q, "create", "--name", "only"), 0);
	assert_int_equal(RUN(&o, q, "snapshot", "create", "only", "--name", "qs"), 0);
	assert_int_equal(http_call(&d, "POST", "/snapshots/qs/resume", q, "{\"name\":\"two\"}", &o),
			 429);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/only/fork", q, "{\"name\":\"two\"}", &o),
			 429);
	assert_int_equal(count_json(q, "/sandboxes"), 1);
	/* dev2 (woken for its snapshot above), only, and the pool's clone (or
	 * not yet) */
	int qemus = count_qemu_under(d.data);
	assert_true(qemus >= 2 && qemus <= 3);
	buf_release(&o);
	free(key);
	free(other);
	free(q);
	assert_int_equal(daemon_stop(&d, true), 0);
}

static char *urandom(const char *key, const char *name)
{
	return sh(key, name, "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'");
}

static void test_fork(void **state UNUSED)
{
	assert_int_equal(daemon_start(&d, "pool_size: 1\nlimits:\n  creates_per_min: 100\n"), 0);
	char *key = daemon_user(&d, "u", NULL);
	struct buf o = BUF_INIT;
	assert_int_equal(RUN(&o, key, "create", "--name", "dev"), 0);
	free(sh(key, "dev", "echo shared > /workspace/f; (i=0; while :; do i=$((i+1)); "
			    "echo $i > /tmp/count; sleep 0.1; done & echo $! > /tmp/pid); sleep 0.3"));
	assert_int_equal(RUN(&o, key, "fork", "dev", "--name", "dev2"), 0);
	assert_non_null(strstr(o.data, "forked: dev2"));
	const char *check = "cat /workspace/f; kill -0 $(cat /tmp/pid) && echo alive; hostname";
	char *a = sh(key, "dev", check), *b = sh(key, "dev2", check);
	assert_string_equal(a, "shared\nalive\ndev\n");
	assert_string_equal(b, "shared\nalive\ndev2\n");
	char *ra = urandom(key, "dev"), *rb = urandom(key, "dev2");
	assert_int_equal(strlen(ra), 64);
	assert_string_not_equal(ra, rb);
	/* the loop runs on in both */
	char *c1 = sh(key, "dev2", "cat /tmp/count"), *c2 = sh(key, "dev2", "sleep 1; cat /tmp/count");
	assert_true(strtol(c2, NULL, 10) > strtol(c1, NULL, 10));
	free(c1);
	free(c2);
	c1 = sh(key, "dev", "cat /tmp/count");
	c2 = sh(key, "dev", "sleep 1; cat /tmp/count");
	assert_true(strtol(c2, NULL, 10) > strtol(c1, NULL, 10));
	assert_int_equal(RUN(&o, key, "inspect", "dev2", "--json"), 0);
	assert_non_null(strstr(o.data, "\"fork\""));
	/* default name; a name in use; a stopped source; bad input: nothing made */
	assert_int_equal(http_call(&d, "POST", "/sandboxes/dev/fork", key, "{}", &o), 201);
	assert_non_null(strstr(o.data, "\"name\":\"dev-"));
	assert_int_equal(http_call(&d, "POST", "/sandboxes/dev/fork", key, "{\"name\":\"dev2\"}", &o),
			 409);
	assert_int_equal(http_call(&d, "POST", "/sandboxes/dev/fork", key, "{\"name\":\"a/b\"}", &o),
			 400);
	assert_int_equal(RUN(&o, key, "stop", "dev2"), 0);
	/* a user-stopped source is woken, then forked */
	assert_int_equal(http_call(&d, "POST", "/sandboxes/dev2/fork", key, "{\"name\":\"dev4\"}",
				   &o), 201);
	assert_int_equal(count_json(key, "/sandboxes"), 4);
	/* dev, dev-XXXXXX, dev2, dev4, and the pool's clone (or not yet) */
	int qemus = count_qemu_under(d.data);
	assert_true(qemus >= 4 && qemus <= 5);
	free(a); free(b); free(ra); free(rb); free(c1); free(c2);
	buf_release(&o);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

/* A daemon killed in the middle of a snapshot: the next one keeps no row
 * and no files of it; the source sandbox is fine. */
static void test_kill9_during_snapshot(void **state UNUSED)
{
	assert_int_equal(daemon_start(&d, "pool_size: 0\n"), 0);
	char *key = daemon_user(&d, "u", NULL);
	struct buf o = BUF_INIT;
	assert_int_equal(RUN(&o, key, "create", "--name", "dev"), 0);
	for (int delay_ms = 5; delay_ms <= 65; delay_ms += 30) {
		pid_t pid = fork();
		if (pid == 0) {
			http_call(&d, "POST", "/sandboxes/dev/snapshot", key, "{\"name\":\"k\"}", NULL);
			_exit(0);
		}
		usleep((useconds_t)delay_ms * 1000);
		daemon_kill9(&d);
		waitpid(pid, NULL, 0);
		assert_int_equal(daemon_restart(&d), 0);
		int n = count_json(key, "/snapshots");
		assert_true(n == 0 || n == 1);
		wait_snapshot_dirs(n);
		if (n == 1) { /* it was whole before the kill */
			assert_int_equal(RUN(&o, key, "snapshot", "delete", "k"), 0);
			wait_snapshot_dirs(0);
		}
		char *x = sh(key, "dev", "echo ok");
		assert_string_equal(x, "ok\n");
		free(x);
	}
	buf_release(&o);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_snapshot_lifecycle, stop_daemon),
		cmocka_unit_test_teardown(test_fork, stop_daemon),
		cmocka_unit_test_teardown(test_kill9_during_snapshot, stop_daemon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
