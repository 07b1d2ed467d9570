/* test-agent-load.c — LOAD, what the agent tells the thermal manager
 * (docs/thermal.md): the CPU time of its user processes grows while one
 * is busy and not while one sleeps; an established outbound TCP
 * connection held by one of them is counted (a connection to a listener
 * of another process, and not the listener's side); `lohar hold -- CMD`
 * holds while CMD runs, `lohar hold --for` for that long. No VM: lohar
 * runs as a host process (test mode: its descendants are the "user
 * processes"), its hold socket in its temp dir.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "util.h"

static struct proto_load_info load(struct ac *ac)
{
	struct proto_load_info li;
	struct err e = ERR_INIT;
	if (ac_call(ac, PROTO_LOAD, NULL, PROTO_LOAD_INFO, &li, 5000, &e) < 0)
		fail_msg("LOAD: %s", err_str(&e));
	return li;
}

/* Run a shell line detached from the exec (its own session: it outlives
 * the exec, and stays lohar's descendant). */
static void background(struct ac *ac, const char *line)
{
	struct ac_exec_result r;
	char *cmd = test_strf("setsid sh -c '%s' >/dev/null 2>&1 </dev/null &", line);
	assert_int_equal(test_exec(ac, &r, "sh", "-c", cmd, NULL), 0);
	assert_int_equal(r.exit_code, 0);
	ac_exec_result_release(&r);
	free(cmd);
}

static void test_cpu(void **state)
{
	struct fixture *fx = *state;
	struct proto_load_info a = load(fx->ac);
	background(fx->ac, "sleep 2");
	usleep(1000 * 1000);
	struct proto_load_info b = load(fx->ac);
	/* a sleeping process: next to nothing (the exec's shell above: a few ms) */
	assert_true(b.cpu_ms - a.cpu_ms < 100);
	background(fx->ac, "timeout 2 sh -c \"while :; do :; done\"");
	usleep(1500 * 1000);
	struct proto_load_info c = load(fx->ac);
	/* (a shared machine: a tenth of the time is enough to tell) */
	if (c.cpu_ms - b.cpu_ms < 150)
		fail_msg("a busy loop for 1.5 s: %llu ms of CPU",
			 (unsigned long long)(c.cpu_ms - b.cpu_ms));
	/* and what it used stays counted once it has exited (reaped by lohar) */
	usleep(1500 * 1000);
	struct proto_load_info d = load(fx->ac);
	assert_true(d.cpu_ms >= c.cpu_ms);
	assert_int_equal(d.holds, 0);
	assert_int_equal(d.hold_ms, 0);
}

static void test_outbound_tcp(void **state)
{
	struct fixture *fx = *state;
	assert_int_equal(load(fx->ac).tcp_out, 0);
	int port = 20000 + (int)(getpid() % 20000);
	/* (nc ends at EOF on its stdin: both keep a sleep's pipe open) */
	char *line = test_strf("sleep 6 | busybox nc -l -p %d >/dev/null & sleep 0.5; "
			       "sleep 6 | busybox nc 127.0.0.1 %d >/dev/null", port, port);
	background(fx->ac, line);
	free(line);
	unsigned n = 0;
	for (int i = 0; i < 40 && !n; i++) {
		usleep(100 * 1000);
		n = load(fx->ac).tcp_out;
	}
	/* the client's connection (its local port is not listening); the
	 * listener's side counts too once busybox nc has closed its listening
	 * socket (it serves one connection) */
	assert_true(n >= 1 && n <= 2);
	/* gone when the connection is */
	for (int i = 0; i < 100 && n; i++) {
		usleep(100 * 1000);
		n = load(fx->ac).tcp_out;
	}
	assert_int_equal(n, 0);
}

/* `lohar hold ARGS...` as the guest's programs run it (LOHAR_HOLD_SOCKET
 * names the test agent's socket); its exit status. */
static int hold(struct fixture *fx, const char *const *args)
{
	char *argv[16] = { test_strf("%s/lohar", test_build_dir()), (char *)"hold" };
	int n = 2;
	for (; *args && n < 15; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	char *env = test_strf("LOHAR_HOLD_SOCKET=%s/hold.sock", fx->lohar.dir);
	char *envv[] = { env, NULL };
	int rc = test_run(argv, envv, NULL, 0, NULL, NULL, 20000);
	free(argv[0]);
	free(env);
	return rc;
}

static void test_hold(void **state)
{
	struct fixture *fx = *state;
	assert_int_equal(hold(fx, (const char *[]){ "--for", "2s", NULL }), 0);
	struct proto_load_info li = load(fx->ac);
	assert_true(li.hold_ms > 1000 && li.hold_ms <= 2000);
	assert_int_equal(li.holds, 0);
	usleep(2200 * 1000);
	assert_int_equal(load(fx->ac).hold_ms, 0);

	/* hold -- CMD: while CMD runs; its exit status is hold's */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(hold(fx, (const char *[]){ "--", "sh", "-c", "sleep 1.5; exit 3", NULL }));
	usleep(700 * 1000);
	assert_int_equal(load(fx->ac).holds, 1);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
	unsigned holds = 1;
	for (int i = 0; i < 20 && holds; i++) {
		usleep(50 * 1000);
		holds = load(fx->ac).holds;
	}
	assert_int_equal(holds, 0);

	/* usage errors */
	assert_int_equal(hold(fx, (const char *[]){ NULL }), 2);
	assert_int_equal(hold(fx, (const char *[]){ "--for", "soon", NULL }), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu),
		cmocka_unit_test(test_outbound_tcp),
		cmocka_unit_test(test_hold),
	};
	return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
