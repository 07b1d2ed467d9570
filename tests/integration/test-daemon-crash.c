/* test-daemon-crash.c — end to end: kill -9 of `bhatti serve` and a
 * restart keep every sandbox usable (running ones are re-adopted with
 * their processes, stopped ones stay restorable), a crash in the middle of
 * a create (or of the template build a first create waits for) leaks no
 * VM and no half row, and one in the middle of a destroy is finished by
 * the next daemon; and the rate limits (a daemon with
 * small limits) answer 429 with Retry-After.
 *
 * Real daemon, real CLI and curl, real VMs (TCG here).
 */
#include <dirent.h>
#include <pthread.h>
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

/* The test's daemon; stopped (and its VMs killed) even when a test fails. */
static struct daemon_proc d;

static int stop_daemon(void **state UNUSED)
{
	if (d.dir)
		daemon_stop(&d, true);
	return 0;
}

static int count_state(struct daemon_proc *dp, const char *key, const char *state)
{
	struct buf b = BUF_INIT;
	int n = 0;
	if (http_call(dp, "GET", "/sandboxes", key, NULL, &b) == 200) {
		cJSON *j = cJSON_Parse(b.data), *it;
		cJSON_ArrayForEach(it, j)
		{
			cJSON *s = cJSON_GetObjectItem(it, "state");
			if (!state || (cJSON_IsString(s) && strcmp(s->valuestring, state) == 0))
				n++;
		}
		cJSON_Delete(j);
	}
	buf_release(&b);
	return n;
}

/* Start the test's daemon with extra config and make user "u"; its key. */
static char *start_with_user(const char *config)
{
	assert_int_equal(daemon_start(&d, config), 0);
	char *key = daemon_user(&d, "u", NULL);
	assert_non_null(key);
	return key;
}

static void test_kill9_and_restart(void **state UNUSED)
{
	char *key = start_with_user("pool_size: 0\n");
	struct buf o = BUF_INIT, e = BUF_INIT;
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "hot", NULL), 0);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "hot", "--", "sh", "-c",
				"echo here > /tmp/f; (sleep 1000 & echo $! > /tmp/pid)", NULL), 0);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "stopped", NULL), 0);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "stop", "stopped", NULL), 0);
	assert_int_equal(bhatti(&d, key, "s3", &o, &e, "secret", "set", "S", NULL), 0);

	daemon_kill9(&d);
	assert_int_equal(count_qemu_under(d.data), 1);   /* the hot one lives on */
	assert_int_equal(daemon_restart(&d), 0);

	assert_int_equal(count_state(&d, key, NULL), 2);
	buf_reset(&o);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "hot", "--", "sh", "-c",
				"cat /tmp/f; kill -0 $(cat /tmp/pid) && echo alive", NULL), 0);
	assert_string_equal(o.data, "here\nalive\n");
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "start", "stopped", NULL), 0);
	buf_reset(&o);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "stopped", "--", "echo", "ok", NULL), 0);
	assert_string_equal(o.data, "ok\n");
	buf_reset(&o);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "secret", "list", "--json", NULL), 0);
	assert_non_null(strstr(o.data, "\"S\""));

	/* kill -9 in the middle of creates: afterwards every VM has a row and
	 * every row a usable VM */
	for (int delay_ms = 50; delay_ms <= 450; delay_ms += 200) {
		char name[32];
		snprintf(name, sizeof(name), "mid%d", delay_ms);
		char body[64];
		snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
		pid_t pid = fork();
		if (pid == 0) {
			http_call(&d, "POST", "/sandboxes", key, body, NULL);
			_exit(0);
		}
		usleep((useconds_t)delay_ms * 1000);
		daemon_kill9(&d);
		waitpid(pid, NULL, 0);
		assert_int_equal(daemon_restart(&d), 0);
		/* orphans are destroyed at start-up, asynchronously */
		int hot = 0;
		for (int i = 0; i < 100; i++) {
			hot = count_state(&d, key, "hot");
			if (count_qemu_under(d.data) == hot)
				break;
			usleep(100 * 1000);
		}
		assert_int_equal(count_qemu_under(d.data), hot);
		assert_int_equal(count_state(&d, key, "error"), 0);
		if (count_state(&d, key, NULL) == 3) {   /* hot, stopped and this one */
			buf_reset(&o);
			assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", name, "--", "echo", "ok",
						NULL), 0);
			assert_string_equal(o.data, "ok\n");
			assert_int_equal(bhatti(&d, key, NULL, &o, &e, "destroy", "-y", name, NULL), 0);
		}
	}
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "destroy", "-y", "hot", "stopped", NULL), 0);
	assert_int_equal(count_qemu_under(d.data), 0);
	buf_release(&o);
	buf_release(&e);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

static void test_rate_limits(void **state UNUSED)
{
	char *key = start_with_user("pool_size: 0\nlimits:\n  creates_per_min: 2\n"
					  "  execs_per_min: 3\n");
	struct buf b = BUF_INIT;
	assert_int_equal(http_call(&d, "POST", "/sandboxes", key, "{\"name\":\"a\"}", &b), 201);
	assert_int_equal(http_call(&d, "POST", "/sandboxes", key, "{\"name\":\"b\"}", &b), 201);
	buf_reset(&b);
	assert_int_equal(http_call(&d, "POST", "/sandboxes", key, "{\"name\":\"c\"}", &b), 429);
	assert_non_null(strstr(b.data, "rate limit"));
	/* an existing name is not a new create: no token needed */
	assert_int_equal(http_call(&d, "POST", "/sandboxes", key, "{\"name\":\"a\"}", &b), 200);
	for (int i = 0; i < 3; i++)
		assert_int_equal(http_call(&d, "POST", "/sandboxes/a/exec", key,
					   "{\"cmd\":[\"true\"]}", &b), 200);
	/* the 4th: 429 with Retry-After, and the CLI says so */
	char url[256], auth[256];
	snprintf(url, sizeof(url), "%s/sandboxes/a/exec", d.url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	char *argv[] = { "curl", "-sS", "-i", "-X", "POST", "-H", auth, "--data-binary",
			 "{\"cmd\":[\"true\"]}", url, NULL };
	buf_reset(&b);
	assert_int_equal(test_run(argv, NULL, NULL, 0, &b, NULL, 30000), 0);
	assert_non_null(strstr(b.data, " 429"));
	assert_non_null(strcasestr(b.data, "retry-after: "));
	struct buf o = BUF_INIT, e = BUF_INIT;
	assert_int_not_equal(bhatti(&d, key, NULL, &o, &e, "exec", "a", "--", "true", NULL), 0);
	assert_non_null(strstr(e.data, "rate limit"));
	buf_release(&o);
	buf_release(&e);
	buf_release(&b);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

/* A sandbox created from the pool of warmed clones survives a daemon
 * restart (its QEMU still names the pool directory it was born in; the
 * new daemon must adopt it, not sweep it away with the old pool), and
 * stops and starts like any other (QEMU must not reopen its disk by the
 * pool path, which is gone). */
static void test_pool_clone_survives_restart(void **state UNUSED)
{
	char *key = start_with_user("pool_size: 1\n");
	struct buf o = BUF_INIT, e = BUF_INIT;
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "warm1", NULL), 0);
	/* wait until the pool is refilled, then take from it */
	usleep(2500 * 1000);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "pooled", NULL), 0);
	buf_reset(&o);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "inspect", "pooled", "--json", NULL), 0);
	cJSON *j = cJSON_Parse(o.data);
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(j, "id"));
	char *cmd = proc_cmdline(sandbox_qemu_pid(d.data, id));
	cJSON_Delete(j);
	assert_non_null(cmd);
	assert_non_null(strstr(cmd, "/pool/")); /* it came from the pool */
	free(cmd);
	assert_int_equal(daemon_stop(&d, false), 0);
	assert_int_equal(daemon_restart(&d), 0);
	buf_reset(&o);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "pooled", "--", "echo", "ok", NULL), 0);
	assert_string_equal(o.data, "ok\n");
	buf_reset(&o);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "warm1", "--", "echo", "ok", NULL), 0);
	assert_string_equal(o.data, "ok\n");
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "pooled", "--", "sh", "-c",
				"echo kept > /tmp/note", NULL), 0);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "stop", "pooled", NULL), 0);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "start", "pooled", NULL), 0);
	buf_reset(&o);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "pooled", "--", "cat", "/tmp/note", NULL), 0);
	assert_string_equal(o.data, "kept\n");
	buf_release(&o);
	buf_release(&e);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

/* kill -9 while the first create is booting the template: the restarted
 * daemon kills the half-built template's QEMU (nothing is left running
 * that no sandbox owns) and builds a new one for the next create. */
static void test_kill9_during_template_build(void **state UNUSED)
{
	char *key = start_with_user("pool_size: 0\n");
	pid_t pid = fork();
	if (pid == 0) {
		http_call(&d, "POST", "/sandboxes", key, "{\"name\":\"first\"}", NULL);
		_exit(0);
	}
	/* the template's boot takes seconds under TCG: wait for its QEMU */
	for (int i = 0; i < 100 && count_qemu_under(d.data) == 0; i++)
		usleep(50 * 1000);
	assert_int_equal(count_qemu_under(d.data), 1);
	daemon_kill9(&d);
	waitpid(pid, NULL, 0);
	assert_int_equal(daemon_restart(&d), 0);
	int left = 1;
	for (int i = 0; i < 50 && (left = count_qemu_under(d.data)) > 0; i++)
		usleep(100 * 1000);
	assert_int_equal(left, 0);
	assert_int_equal(count_state(&d, key, NULL), 0);   /* no half row */
	struct buf o = BUF_INIT, e = BUF_INIT;
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "second", NULL), 0);
	buf_reset(&o);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "second", "--", "echo", "ok", NULL), 0);
	assert_string_equal(o.data, "ok\n");
	buf_release(&o);
	buf_release(&e);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

/* A second `bhatti serve` on the same data dir is refused before it
 * touches anything (it would adopt the first one's VMs and clean up what
 * it takes for leftovers); the first one's sandboxes go on working. */
static void test_second_daemon_refused(void **state UNUSED)
{
	char *key = start_with_user("pool_size: 0\n");
	struct buf o = BUF_INIT, e = BUF_INIT;
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "create", "--name", "one", NULL), 0);
	char bin[600];
	snprintf(bin, sizeof(bin), "%s/bhatti", test_build_dir());
	char *argv[] = { bin, (char *)"serve", (char *)"--config", d.config, NULL };
	buf_reset(&e);
	assert_int_equal(test_run(argv, NULL, NULL, 0, NULL, &e, 20000), 1);
	assert_non_null(strstr(e.data, "another bhatti serve"));
	buf_reset(&o);
	assert_int_equal(bhatti(&d, key, NULL, &o, &e, "exec", "one", "--", "echo", "ok", NULL), 0);
	assert_string_equal(o.data, "ok\n");
	buf_release(&o);
	buf_release(&e);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

struct bg_call {
	pthread_t th;
	const char *method, *path, *key;
	int status;
};

static void *bg_call_run(void *arg)
{
	struct bg_call *c = arg;
	c->status = api_call(&d, c->key, c->method, c->path, NULL, 0, NULL);
	return NULL;
}

static int count_entries(const char *dir)
{
	DIR *dd = opendir(dir);
	struct dirent *de;
	int n = 0;
	while (dd && (de = readdir(dd)))
		n += de->d_name[0] != '.';
	if (dd)
		closedir(dd);
	return dd ? n : -1;
}

/* kill -9 in the middle of a destroy (soak-faults found it: the daemon
 * killed while the engine removed a stopped sandbox's files): the
 * sandbox's row survived, the engine adopted what was left of its
 * directory as a stopped sandbox, and every start failed ("qmp:
 * Connection reset by peer": its disk was gone) while the API showed it
 * as stopped or cold. A destroy once begun is finished by the next
 * daemon; nothing of the sandbox is left. */
static void test_kill9_during_destroy(void **state UNUSED)
{
	char *key = start_with_user("pool_size: 0\n");
	struct buf b = BUF_INIT;
	for (int round = 0; round < 3; round++) {
		buf_reset(&b);
		assert_int_equal(api_call(&d, key, "POST", "/sandboxes", "{\"name\":\"gone\"}", 15, &b),
				 201);
		cJSON *j = cJSON_Parse(b.data);
		char dir[600];
		snprintf(dir, sizeof(dir), "%s/sandboxes/%s", d.data,
			 cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
		cJSON_Delete(j);
		assert_int_equal(api_call(&d, key, "POST", "/sandboxes/gone/stop", "", 0, NULL), 200);
		/* the moment the first file goes, the daemon dies */
		int before = count_entries(dir);
		assert_true(before > 2);
		struct bg_call c = { .method = "DELETE", .path = "/sandboxes/gone", .key = key };
		assert_int_equal(pthread_create(&c.th, NULL, bg_call_run, &c), 0);
		uint64_t until = now_ms() + 10000;
		while (count_entries(dir) == before && now_ms() < until)
			;
		daemon_kill9(&d);
		pthread_join(c.th, NULL);
		assert_int_equal(daemon_restart(&d), 0);
		/* finished by the new daemon, asynchronously */
		int st = 0;
		for (int i = 0; i < 100; i++) {
			buf_reset(&b);
			st = api_call(&d, key, "GET", "/sandboxes/gone", NULL, 0, &b);
			if (st == 404 && count_entries(dir) < 0)
				break;
			usleep(100 * 1000);
		}
		if (st != 404)
			fail_msg("round %d: a destroy cut short by kill -9 left the sandbox: %d %s", round,
				 st, b.data);
		assert_int_equal(count_entries(dir), -1);
		assert_int_equal(count_state(&d, key, NULL), 0);
	}
	buf_release(&b);
	free(key);
	assert_int_equal(daemon_stop(&d, true), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_kill9_and_restart, stop_daemon),
		cmocka_unit_test_teardown(test_kill9_during_template_build, stop_daemon),
		cmocka_unit_test_teardown(test_second_daemon_refused, stop_daemon),
		cmocka_unit_test_teardown(test_rate_limits, stop_daemon),
		cmocka_unit_test_teardown(test_pool_clone_survives_restart, stop_daemon),
		cmocka_unit_test_teardown(test_kill9_during_destroy, stop_daemon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
