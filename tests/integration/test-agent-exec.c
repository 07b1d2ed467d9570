/* test-agent-exec.c — exec through the real agent client against a real
 * lohar (test mode, unix socket): exit codes and signals, stdout/stderr
 * separation, stdin, large and ordered output, concurrency and fairness,
 * timeouts/cancel/disconnect killing whole process groups, detached exec,
 * users, environment, zombies. No VM: lohar runs as a host process.
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
#include <unistd.h>

#include "helpers.h"

static struct proto_exec exec_req(char **argv)
{
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
	return req;
}

static void test_exit_codes(void **state)
{
	struct fixture *fx = *state;
	struct ac_exec_result r;

	assert_int_equal(test_exec(fx->ac, &r, "true", NULL), 0);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.signal, 0);
	ac_exec_result_release(&r);

	assert_int_equal(test_exec(fx->ac, &r, "sh", "-c", "exit 3", NULL), 0);
	assert_int_equal(r.exit_code, 3);
	ac_exec_result_release(&r);

	assert_int_equal(test_exec(fx->ac, &r, "sh", "-c", "exit 255", NULL), 0);
	assert_int_equal(r.exit_code, 255);
	ac_exec_result_release(&r);

	assert_int_equal(test_exec(fx->ac, &r, "sh", "-c", "kill -9 $$", NULL), 0);
	assert_int_equal(r.exit_code, 137);
	assert_int_equal(r.signal, 9);
	ac_exec_result_release(&r);

	assert_int_equal(test_exec(fx->ac, &r, "sh", "-c", "kill -TERM $$", NULL), 0);
	assert_int_equal(r.exit_code, 143);
	assert_int_equal(r.signal, 15);
	ac_exec_result_release(&r);
}

static void test_stdout_stderr_apart(void **state)
{
	struct fixture *fx = *state;
	struct ac_exec_result r;
	assert_int_equal(test_exec(fx->ac, &r, "sh", "-c",
				   "echo out1; echo err1 >&2; echo out2; echo err2 >&2", NULL), 0);
	assert_string_equal(r.out.data, "out1\nout2\n");
	assert_string_equal(r.err.data, "err1\nerr2\n");
	ac_exec_result_release(&r);
}

static void test_exec_errors(void **state)
{
	struct fixture *fx = *state;
	struct ac_exec_result r;
	struct err e = ERR_INIT;

	char *argv1[] = { (char *)"/no/such/program", NULL };
	struct proto_exec req = exec_req(argv1);
	assert_int_equal(ac_exec(fx->ac, &req, NULL, 0, &r, 5000, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "cannot run '/no/such/program'"));
	ac_exec_result_release(&r);

	char *argv2[] = { (char *)"true", NULL };
	req = exec_req(argv2);
	req.cwd = (char *)"/no/such/dir";
	assert_int_equal(ac_exec(fx->ac, &req, NULL, 0, &r, 5000, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "cannot enter directory '/no/such/dir'"));
	ac_exec_result_release(&r);

	char *argv3[] = { NULL };
	req = exec_req(argv3);
	assert_int_equal(ac_exec(fx->ac, &req, NULL, 0, &r, 5000, &e), -EINVAL);
	assert_string_equal(e.msg, "empty command");
	ac_exec_result_release(&r);

	/* the connection is still fine */
	assert_int_equal(test_exec(fx->ac, &r, "true", NULL), 0);
	ac_exec_result_release(&r);
}

static void test_stdin_50mb(void **state)
{
	struct fixture *fx = *state;
	size_t len = 50u << 20;
	char *data = malloc(len);
	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 7 + 3);
	char *argv[] = { (char *)"wc", (char *)"-c", NULL };
	struct proto_exec req = exec_req(argv);
	req.flags = PROTO_EXEC_STDIN;
	struct ac_exec_result r;
	struct err e = ERR_INIT;
	assert_int_equal(ac_exec(fx->ac, &req, data, len, &r, 60000, &e), 0);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(strtoull(r.out.data, NULL, 10), len);
	ac_exec_result_release(&r);

	/* and the bytes themselves survive: sha of stdin echoed back by cat */
	char *argv2[] = { (char *)"cat", NULL };
	req = exec_req(argv2);
	req.flags = PROTO_EXEC_STDIN;
	assert_int_equal(ac_exec(fx->ac, &req, data, 5u << 20, &r, 60000, &e), 0);
	assert_int_equal(r.out.len, 5u << 20);
	assert_memory_equal(r.out.data, data, 5u << 20);
	ac_exec_result_release(&r);
	free(data);
}

static void test_stdin_none_is_devnull(void **state)
{
	struct fixture *fx = *state;
	struct ac_exec_result r;
	/* without PROTO_EXEC_STDIN, stdin is /dev/null: cat ends at once */
	assert_int_equal(test_exec(fx->ac, &r, "cat", NULL), 0);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.out.len, 0);
	ac_exec_result_release(&r);
}

static void test_output_10mb_in_order(void **state)
{
	struct fixture *fx = *state;
	struct ac_exec_result r;
	assert_int_equal(test_exec(fx->ac, &r, "seq", "1", "1500000", NULL), 0);
	assert_int_equal(r.exit_code, 0);
	assert_true(r.out.len > 10u << 20);
	/* every line is the previous plus one: complete and in order */
	char *p = r.out.data;
	unsigned long expect = 1;
	while (*p) {
		char *end;
		unsigned long v = strtoul(p, &end, 10);
		if (v != expect || *end != '\n')
			fail_msg("line %lu: got %lu", expect, v);
		expect++;
		p = end + 1;
	}
	assert_int_equal(expect - 1, 1500000);
	ac_exec_result_release(&r);
}

/* ---- concurrency ---------------------------------------------------------- */

struct async_exec {
	struct ac_stream *s;
	bool done;
	int exit_code;
	size_t out_bytes;
	uint64_t done_ms;
	struct buf out;
};

static void ae_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct async_exec *a = arg;
	if (f->type == PROTO_EXIT) {
		struct proto_exit ex;
		if (proto_decode(f, &ex, NULL) == 0)
			a->exit_code = ex.exit_code;
	} else if (f->type == PROTO_ERROR) {
		a->exit_code = -1;
	}
}

static void ae_data(struct ac_stream *s UNUSED, uint8_t ch UNUSED, const uint8_t *p, size_t n,
		    void *arg)
{
	struct async_exec *a = arg;
	a->out_bytes += n;
	if (a->out.len < 4096)
		buf_add(&a->out, p, MIN(n, 4096 - a->out.len));
}

static void ae_closed(struct ac_stream *s UNUSED, const struct err *e UNUSED, void *arg)
{
	struct async_exec *a = arg;
	a->done = true;
	a->done_ms = now_ms();
}

static const struct ac_stream_cb ae_cb = { .frame = ae_frame, .data = ae_data, .closed = ae_closed };

static void run_until(struct ac *ac, bool (*cond)(void *), void *arg, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	struct err e = ERR_INIT;
	while (!cond(arg) && now_ms() < end)
		assert_int_equal(ac_poll(ac, 50, &e), 0);
}

struct many {
	struct async_exec *a;
	int n;
};

static bool all_done(void *arg)
{
	struct many *m = arg;
	for (int i = 0; i < m->n; i++)
		if (!m->a[i].done)
			return false;
	return true;
}

static void concurrent_with_busy(struct fixture *fx, bool hold_busy)
{
	struct async_exec busy = { 0 };
	struct async_exec small[20];
	struct err e = ERR_INIT;
	char *busy_argv[] = { (char *)"yes", (char *)"a busy stream producing output forever", NULL };
	struct proto_exec req = exec_req(busy_argv);

	memset(small, 0, sizeof(small));
	buf_init(&busy.out);
	busy.s = ac_open(fx->ac, PROTO_EXEC, &req, &ae_cb, &busy, &e);
	assert_non_null(busy.s);
	if (hold_busy)
		ac_hold(busy.s, true); /* a consumer that stopped reading */
	/* let the busy stream get going */
	uint64_t until = now_ms() + 300;
	while (now_ms() < until)
		assert_int_equal(ac_poll(fx->ac, 20, &e), 0);
	assert_true(busy.out_bytes > 0);
	size_t busy_before = busy.out_bytes;

	uint64_t start = now_ms();
	for (int i = 0; i < 20; i++) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "echo job-%d", i);
		char *argv[] = { (char *)"sh", (char *)"-c", cmd, NULL };
		struct proto_exec r = exec_req(argv);
		buf_init(&small[i].out);
		small[i].s = ac_open(fx->ac, PROTO_EXEC, &r, &ae_cb, &small[i], &e);
		assert_non_null(small[i].s);
	}
	struct many m = { small, 20 };
	run_until(fx->ac, all_done, &m, 20000);
	for (int i = 0; i < 20; i++) {
		char want[32];
		snprintf(want, sizeof(want), "job-%d\n", i);
		assert_true(small[i].done);
		assert_int_equal(small[i].exit_code, 0);
		assert_string_equal(small[i].out.data, want);
		/* generous: under TCG or ASan on a loaded 2-core box this is
		 * still far below what starvation would cost (never finishing) */
		assert_true(small[i].done_ms - start < 10000);
		buf_release(&small[i].out);
	}
	assert_false(busy.done);
	if (hold_busy) {
		/* the held stream got at most its window, nothing more */
		assert_true(busy.out_bytes <= PROTO_WINDOW);
		ac_hold(busy.s, false);
	} else {
		assert_true(busy.out_bytes > busy_before); /* and it kept flowing */
	}
	ac_send_close(busy.s);
	struct many mb = { &busy, 1 };
	run_until(fx->ac, all_done, &mb, 10000);
	assert_true(busy.done);
	assert_int_equal(busy.exit_code, 137);
	buf_release(&busy.out);
}

static void test_concurrent_execs_with_busy_stream(void **state)
{
	concurrent_with_busy(*state, false);
}

static void test_concurrent_execs_with_stalled_stream(void **state)
{
	concurrent_with_busy(*state, true);
}

/* ---- killing process groups ------------------------------------------------ */

/* A command whose grandchild (a sleep) records its pid in a file. */
static char *grandchild_cmd(struct fixture *fx, const char *name, char **ret_pidfile)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/%s.pid", fx->lohar.workspace, name);
	*ret_pidfile = buf_detach(&b, NULL);
	buf_addf(&b, "sleep 1000 & echo $! > %s; wait", *ret_pidfile);
	return buf_detach(&b, NULL);
}

static pid_t wait_pidfile(const char *path)
{
	for (int i = 0; i < 500; i++) {
		char *t = read_text(path);
		if (t && t[0] && strchr(t, '\n')) {
			pid_t pid = (pid_t)strtol(t, NULL, 10);
			free(t);
			return pid;
		}
		free(t);
		usleep(10000);
	}
	return -1;
}

static void test_timeout_kills_group(void **state)
{
	struct fixture *fx = *state;
	char *pidfile;
	char *cmd = grandchild_cmd(fx, "timeout", &pidfile);
	char *argv[] = { (char *)"sh", (char *)"-c", cmd, NULL };
	struct proto_exec req = exec_req(argv);
	req.timeout_ms = 700;
	struct ac_exec_result r;
	struct err e = ERR_INIT;
	uint64_t t0 = now_ms();
	assert_int_equal(ac_exec(fx->ac, &req, NULL, 0, &r, 20000, &e), 0);
	assert_true(now_ms() - t0 >= 600);
	assert_int_equal(r.exit_code, 137);
	assert_true(r.flags & PROTO_EXIT_TIMEOUT);
	pid_t gc = wait_pidfile(pidfile);
	assert_true(gc > 0);
	assert_true(pid_wait_gone(gc, 3000));
	ac_exec_result_release(&r);
	free(cmd);
	free(pidfile);
}

struct one {
	struct async_exec a;
};

static bool one_done(void *arg)
{
	return ((struct async_exec *)arg)->done;
}

static void test_cancel_kills_group(void **state)
{
	struct fixture *fx = *state;
	char *pidfile;
	char *cmd = grandchild_cmd(fx, "cancel", &pidfile);
	char *argv[] = { (char *)"sh", (char *)"-c", cmd, NULL };
	struct proto_exec req = exec_req(argv);
	struct async_exec a = { 0 };
	struct err e = ERR_INIT;
	buf_init(&a.out);
	a.s = ac_open(fx->ac, PROTO_EXEC, &req, &ae_cb, &a, &e);
	assert_non_null(a.s);
	assert_int_equal(ac_flush(fx->ac, &e), 0);
	pid_t gc = wait_pidfile(pidfile);
	assert_true(gc > 0);
	assert_true(pid_alive(gc));
	ac_send_close(a.s);
	run_until(fx->ac, one_done, &a, 10000);
	assert_true(a.done);
	assert_int_equal(a.exit_code, 137);
	assert_true(pid_wait_gone(gc, 3000));
	buf_release(&a.out);
	free(cmd);
	free(pidfile);
}

static void test_disconnect_kills_group(void **state)
{
	struct fixture *fx = *state;
	char *pidfile;
	char *cmd = grandchild_cmd(fx, "disconnect", &pidfile);
	char *argv[] = { (char *)"sh", (char *)"-c", cmd, NULL };
	struct proto_exec req = exec_req(argv);
	struct async_exec a = { 0 };
	struct err e = ERR_INIT;
	struct ac *other = lohar_connect(&fx->lohar, "tok");
	assert_non_null(other);
	buf_init(&a.out);
	a.s = ac_open(other, PROTO_EXEC, &req, &ae_cb, &a, &e);
	assert_non_null(a.s);
	assert_int_equal(ac_flush(other, &e), 0);
	pid_t gc = wait_pidfile(pidfile);
	assert_true(gc > 0);
	ac_free(other); /* the host goes away mid-exec */
	assert_true(pid_wait_gone(gc, 3000));
	buf_release(&a.out);
	free(cmd);
	free(pidfile);
}

static void test_detached_exec(void **state)
{
	struct fixture *fx = *state;
	struct buf out = BUF_INIT;
	buf_addf(&out, "%s/detached.log", fx->lohar.workspace);
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"echo started; sleep 0.3; echo finished", NULL };
	struct proto_exec req = exec_req(argv);
	req.flags = PROTO_EXEC_DETACH;
	req.output_path = out.data;
	struct ac_exec_result r;
	struct err e = ERR_INIT;
	struct ac *other = lohar_connect(&fx->lohar, "tok");
	assert_int_equal(ac_exec(other, &req, NULL, 0, &r, 5000, &e), 0);
	assert_true(r.pid > 0);
	ac_free(other); /* detached: survives the host going away */
	/* listed with the sessions: "bg<pid>", running, no terminal */
	struct proto_session_list list;
	assert_int_equal(ac_call(fx->ac, PROTO_SESSION_LIST, NULL, PROTO_SESSION_LIST_RESULT, &list,
				 5000, &e), 0);
	char id[24];
	snprintf(id, sizeof(id), "bg%u", r.pid);
	bool listed = false;
	for (size_t i = 0; i < list.count; i++)
		listed |= strcmp(list.sessions[i].id, id) == 0 && list.sessions[i].running &&
			  !list.sessions[i].tty[0] && strcmp(list.sessions[i].argv[0], "sh") == 0;
	proto_msg_release(PROTO_SESSION_LIST_RESULT, &list);
	assert_true(listed);
	for (int i = 0; i < 300; i++) {
		char *t = read_text(out.data);
		bool done = t && strstr(t, "finished");
		free(t);
		if (done)
			break;
		usleep(10000);
	}
	char *t = read_text(out.data);
	assert_non_null(t);
	assert_string_equal(t, "started\nfinished\n");
	free(t);
	/* exited: still listed with its exit code for a while */
	bool exited = false;
	for (int i = 0; i < 300 && !exited; i++) {
		assert_int_equal(ac_call(fx->ac, PROTO_SESSION_LIST, NULL, PROTO_SESSION_LIST_RESULT,
					 &list, 5000, &e), 0);
		for (size_t k = 0; k < list.count; k++)
			exited |= strcmp(list.sessions[k].id, id) == 0 && !list.sessions[k].running &&
				  list.sessions[k].exit_code == 0;
		proto_msg_release(PROTO_SESSION_LIST_RESULT, &list);
		if (!exited)
			usleep(10000);
	}
	assert_true(exited);
	ac_exec_result_release(&r);
	buf_release(&out);
}

static void test_env_and_cwd(void **state)
{
	struct fixture *fx = *state;
	char *env[] = { (char *)"GREETING=hello world", (char *)"PATH=/usr/bin:/bin", NULL };
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"echo \"$GREETING|$PATH|$(pwd)\"", NULL };
	struct proto_exec req = exec_req(argv);
	req.env = env;
	req.cwd = (char *)"/tmp";
	struct ac_exec_result r;
	struct err e = ERR_INIT;
	assert_int_equal(ac_exec(fx->ac, &req, NULL, 0, &r, 5000, &e), 0);
	assert_string_equal(r.out.data, "hello world|/usr/bin:/bin|/tmp\n");
	ac_exec_result_release(&r);

	/* default cwd is the workspace */
	assert_int_equal(test_exec(fx->ac, &r, "pwd", NULL), 0);
	struct buf want = BUF_INIT;
	buf_addf(&want, "%s\n", fx->lohar.workspace);
	assert_string_equal(r.out.data, want.data);
	buf_release(&want);
	ac_exec_result_release(&r);
}

static void test_configured_env_and_secrets(void **state)
{
	struct fixture *fx = *state;
	char *env[] = { (char *)"FROM_CONFIG=1", (char *)"OVERRIDE=config", NULL };
	char *secrets[] = { (char *)"API_KEY=s3cr3t", NULL };
	struct proto_configure cfg = {
		.what = PROTO_CFG_ENV | PROTO_CFG_SECRETS,
		.hostname = (char *)"", .token = (char *)"", .init = (char *)"",
		.net_ifname = (char *)"", .net_address = (char *)"", .net_gateway = (char *)"",
		.env = env, .secrets = secrets,
	};
	struct proto_ok ok;
	struct err e = ERR_INIT;
	assert_int_equal(ac_call(fx->ac, PROTO_CONFIGURE, &cfg, PROTO_OK, &ok, 5000, &e), 0);

	char *xenv[] = { (char *)"OVERRIDE=request", NULL };
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"echo $FROM_CONFIG $OVERRIDE $API_KEY", NULL };
	struct proto_exec req = exec_req(argv);
	req.env = xenv;
	struct ac_exec_result r;
	assert_int_equal(ac_exec(fx->ac, &req, NULL, 0, &r, 5000, &e), 0);
	assert_string_equal(r.out.data, "1 request s3cr3t\n");
	ac_exec_result_release(&r);

	/* the secret is never in lohar's log */
	char *log = read_text(fx->lohar.log);
	assert_non_null(log);
	assert_null(strstr(log, "s3cr3t"));
	free(log);

	/* a bad entry is refused and changes nothing */
	char *bad[] = { (char *)"1BAD=x", NULL };
	cfg.env = bad;
	assert_int_equal(ac_call(fx->ac, PROTO_CONFIGURE, &cfg, PROTO_OK, &ok, 5000, &e), -EINVAL);
	assert_string_equal(e.msg, "environment: invalid environment variable name '1BAD': it "
			    "starts with '1'; use letters, digits or '_', not starting with a digit");
	assert_int_equal(test_exec(fx->ac, &r, "sh", "-c", "echo $FROM_CONFIG", NULL), 0);
	assert_string_equal(r.out.data, "1\n");
	ac_exec_result_release(&r);
}

static void test_zombies_reaped(void **state)
{
	struct fixture *fx = *state;
	struct ac_exec_result r;
	/* orphans: the background sleeps outlive their parent and come back
	 * to lohar (subreaper), which must reap them */
	assert_int_equal(test_exec(fx->ac, &r, "sh", "-c",
				   "for i in 1 2 3 4 5; do (sleep 0.2 &) ; done; exit 0", NULL), 0);
	ac_exec_result_release(&r);
	usleep(800000);
	assert_int_equal(count_zombies(fx->lohar.pid), 0);
}

static void test_as_uid_1000(void **state UNUSED)
{
	if (geteuid() != 0)
		skip();
	struct lohar_proc lp;
	assert_int_equal(lohar_start(&lp, "t", "1000:1000"), 0);
	struct ac *ac = lohar_connect(&lp, "t");
	assert_non_null(ac);
	struct ac_exec_result r;
	assert_int_equal(test_exec(ac, &r, "id", "-u", NULL), 0);
	assert_string_equal(r.out.data, "1000\n");
	ac_exec_result_release(&r);
	assert_int_equal(test_exec(ac, &r, "id", "-g", NULL), 0);
	assert_string_equal(r.out.data, "1000\n");
	ac_exec_result_release(&r);
	/* root when asked */
	char *argv[] = { (char *)"id", (char *)"-u", NULL };
	struct proto_exec req = exec_req(argv);
	req.flags = PROTO_EXEC_ROOT;
	struct err e = ERR_INIT;
	assert_int_equal(ac_exec(ac, &req, NULL, 0, &r, 5000, &e), 0);
	assert_string_equal(r.out.data, "0\n");
	ac_exec_result_release(&r);
	ac_free(ac);
	assert_int_equal(lohar_stop(&lp), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_stdout_stderr_apart),
		cmocka_unit_test(test_exec_errors),
		cmocka_unit_test(test_stdin_50mb),
		cmocka_unit_test(test_stdin_none_is_devnull),
		cmocka_unit_test(test_output_10mb_in_order),
		cmocka_unit_test(test_concurrent_execs_with_busy_stream),
		cmocka_unit_test(test_concurrent_execs_with_stalled_stream),
		cmocka_unit_test(test_timeout_kills_group),
		cmocka_unit_test(test_cancel_kills_group),
		cmocka_unit_test(test_disconnect_kills_group),
		cmocka_unit_test(test_detached_exec),
		cmocka_unit_test(test_env_and_cwd),
		cmocka_unit_test(test_configured_env_and_secrets),
		cmocka_unit_test(test_zombies_reaped),
		cmocka_unit_test(test_as_uid_1000),
	};
	return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
