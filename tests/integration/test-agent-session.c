/* test-agent-session.c — PTY sessions through the real agent client
 * against a real lohar (test mode): a shell on a terminal, resize,
 * detach/reattach with exactly the last 64 KiB replayed and no gap or
 * duplicate after it, flow control while attached (no loss), kill, idle
 * timeout, exit status retention, limits, takeover, the init script.
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

static int setup(void **state)
{
	setenv("LOHAR_SESSION_KEEP_MS", "1500", 1); /* exited-session expiry in the test */
	return fixture_setup(state);
}

/* ---- an attached session as the test sees it -------------------------------- */

struct sess {
	struct ac_stream *s;
	struct buf out;
	bool have_record;
	char id[64];
	uint64_t output_bytes;   /* from the SESSION record at attach */
	bool ended;
	bool exited;
	int exit_code;
	int error;               /* ERROR code, if the stream ended with one */
	char error_msg[256];
};

static void s_frame(struct ac_stream *st UNUSED, const struct proto_frame *f, void *arg)
{
	struct sess *x = arg;
	if (f->type == PROTO_SESSION) {
		struct proto_session rec;
		if (proto_decode(f, &rec, NULL) == 0) {
			x->have_record = true;
			snprintf(x->id, sizeof(x->id), "%s", rec.id);
			x->output_bytes = rec.output_bytes;
			proto_msg_release(PROTO_SESSION, &rec);
		}
	} else if (f->type == PROTO_EXIT) {
		struct proto_exit ex;
		if (proto_decode(f, &ex, NULL) == 0) {
			x->exited = true;
			x->exit_code = ex.exit_code;
		}
	} else if (f->type == PROTO_ERROR) {
		struct proto_error pe;
		if (proto_decode(f, &pe, NULL) == 0) {
			x->error = pe.code;
			snprintf(x->error_msg, sizeof(x->error_msg), "%s", pe.message);
			proto_msg_release(PROTO_ERROR, &pe);
		}
	}
}

static void s_data(struct ac_stream *st UNUSED, uint8_t ch UNUSED, const uint8_t *p, size_t n,
		   void *arg)
{
	struct sess *x = arg;
	buf_add(&x->out, p, n);
}

static void s_closed(struct ac_stream *st UNUSED, const struct err *e UNUSED, void *arg)
{
	struct sess *x = arg;
	x->ended = true;
	x->s = NULL;
}

static const struct ac_stream_cb sess_cb = { .frame = s_frame, .data = s_data, .closed = s_closed };

static void pump(struct ac *ac, int ms)
{
	struct err e = ERR_INIT;
	uint64_t end = now_ms() + (uint64_t)ms;
	while (now_ms() < end)
		assert_int_equal(ac_poll(ac, 10, &e), 0);
}

static bool pump_until(struct ac *ac, bool (*cond)(void *), void *arg, int ms)
{
	struct err e = ERR_INIT;
	uint64_t end = now_ms() + (uint64_t)ms;
	while (!cond(arg) && now_ms() < end)
		assert_int_equal(ac_poll(ac, 10, &e), 0);
	return cond(arg);
}

static struct sess *sess_open(struct ac *ac, const char *id, char **argv, uint32_t idle_sec)
{
	struct sess *x = calloc(1, sizeof(*x));
	struct err e = ERR_INIT;
	char *empty[] = { NULL };
	struct proto_session_open req = {
		.id = (char *)(id ? id : ""), .argv = argv ? argv : empty, .cwd = (char *)"",
		.rows = 24, .cols = 80, .idle_timeout_sec = idle_sec,
	};
	buf_init(&x->out);
	x->s = ac_open(ac, PROTO_SESSION_OPEN, &req, &sess_cb, x, &e);
	assert_non_null(x->s);
	return x;
}

static struct sess *sess_attach(struct ac *ac, const char *id)
{
	struct sess *x = calloc(1, sizeof(*x));
	struct err e = ERR_INIT;
	struct proto_session_attach req = { .id = (char *)id };
	buf_init(&x->out);
	x->s = ac_open(ac, PROTO_SESSION_ATTACH, &req, &sess_cb, x, &e);
	assert_non_null(x->s);
	return x;
}

static void sess_free(struct sess *x)
{
	buf_release(&x->out);
	free(x);
}

static void sess_type(struct sess *x, const char *text)
{
	ac_send_data(x->s, PROTO_CH_IN, text, strlen(text));
}

struct want_text {
	struct sess *x;
	const char *text;
};

static bool has_text(void *arg)
{
	struct want_text *w = arg;
	return strstr(w->x->out.data, w->text) != NULL;
}

static bool is_ended(void *arg)
{
	return ((struct sess *)arg)->ended;
}

static bool has_record(void *arg)
{
	return ((struct sess *)arg)->have_record || ((struct sess *)arg)->ended;
}

static void expect_text(struct ac *ac, struct sess *x, const char *text)
{
	struct want_text w = { x, text };
	if (!pump_until(ac, has_text, &w, 15000))
		fail_msg("timed out waiting for '%s'; got: %s", text, x->out.data);
}

static int session_info(struct ac *ac, const char *id, struct proto_session_list *ret)
{
	struct proto_session_ref ref = { .id = (char *)id };
	struct err e = ERR_INIT;
	return ac_call(ac, PROTO_SESSION_INFO, &ref, PROTO_SESSION_LIST_RESULT, ret, 5000, &e);
}

static void kill_session(struct ac *ac, const char *id, int sig)
{
	struct proto_session_ref ref = { .id = (char *)id, .signal = (uint32_t)sig };
	struct proto_ok ok;
	struct err e = ERR_INIT;
	assert_int_equal(ac_call(ac, PROTO_SESSION_KILL, &ref, PROTO_OK, &ok, 5000, &e), 0);
}

/* "1\r\n2\r\n...N\r\n": seq's output through a terminal (onlcr) */
static void seq_tty(struct buf *b, int n)
{
	for (int i = 1; i <= n; i++)
		buf_addf(b, "%d\r\n", i);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_shell_roundtrip(void **state)
{
	struct fixture *fx = *state;
	struct sess *x = sess_open(fx->ac, NULL, NULL, 0);
	assert_true(pump_until(fx->ac, has_record, x, 5000));
	assert_true(x->have_record);
	assert_true(x->id[0] == 's');
	sess_type(x, "echo \"hi-$((1+2))|$TERM|$(pwd)\"\n");
	struct buf want = BUF_INIT;
	buf_addf(&want, "hi-3|xterm-256color|%s", fx->lohar.workspace);
	expect_text(fx->ac, x, want.data);
	buf_release(&want);
	/* a terminal: isatty inside is true */
	sess_type(x, "test -t 0 && echo is-a-tty\n");
	expect_text(fx->ac, x, "is-a-tty");
	sess_type(x, "exit 5\n");
	assert_true(pump_until(fx->ac, is_ended, x, 5000));
	assert_true(x->exited);
	assert_int_equal(x->exit_code, 5);
	sess_free(x);
}

static void test_resize(void **state)
{
	struct fixture *fx = *state;
	struct sess *x = sess_open(fx->ac, "resize", NULL, 0);
	assert_true(pump_until(fx->ac, has_record, x, 5000));
	struct proto_resize rz = { .rows = 50, .cols = 132 };
	ac_send_msg(x->s, PROTO_RESIZE, &rz);
	sess_type(x, "stty size\n");
	expect_text(fx->ac, x, "50 132");
	struct proto_session_list list;
	assert_int_equal(session_info(fx->ac, "resize", &list), 0);
	assert_int_equal(list.count, 1);
	assert_int_equal(list.sessions[0].rows, 50);
	assert_int_equal(list.sessions[0].cols, 132);
	proto_msg_release(PROTO_SESSION_LIST_RESULT, &list);
	sess_type(x, "exit\n");
	assert_true(pump_until(fx->ac, is_ended, x, 5000));
	sess_free(x);
}

static void test_reattach_replays_last_64k(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"seq 1 40000; sleep 1000", NULL };
	struct sess *x = sess_open(fx->ac, "replay", argv, 0);
	ac_send_close(x->s); /* detach at once: all output lands in the ring */
	assert_true(pump_until(fx->ac, is_ended, x, 5000));
	sess_free(x);

	struct buf expect = BUF_INIT;
	seq_tty(&expect, 40000);
	assert_true(expect.len > 3 * 65536);
	/* wait until the program has printed everything */
	struct proto_session_list list;
	for (int i = 0; i < 500; i++) {
		assert_int_equal(session_info(fx->ac, "replay", &list), 0);
		uint64_t n = list.sessions[0].output_bytes;
		assert_false(list.sessions[0].attached);
		proto_msg_release(PROTO_SESSION_LIST_RESULT, &list);
		if (n == expect.len)
			break;
		usleep(20000);
	}

	x = sess_attach(fx->ac, "replay");
	assert_true(pump_until(fx->ac, has_record, x, 5000));
	assert_int_equal(x->output_bytes, expect.len);
	pump(fx->ac, 300);
	assert_int_equal(x->out.len, 65536);
	assert_memory_equal(x->out.data, expect.data + expect.len - 65536, 65536);
	kill_session(fx->ac, "replay", SIGKILL);
	assert_true(pump_until(fx->ac, is_ended, x, 5000));
	assert_true(x->exited);
	assert_int_equal(x->exit_code, 128 + SIGKILL);
	sess_free(x);
	buf_release(&expect);
}

static bool ends_with_last_line(void *arg)
{
	struct sess *x = arg;
	const char *tail = "\r\n200000\r\n";
	return x->out.len >= strlen(tail) &&
	       memcmp(x->out.data + x->out.len - strlen(tail), tail, strlen(tail)) == 0;
}

static void test_reattach_mid_output_no_gap_no_dup(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"sleep 0.2; seq 1 200000; sleep 1000", NULL };
	struct buf expect = BUF_INIT;
	seq_tty(&expect, 200000);

	struct sess *a = sess_open(fx->ac, "midway", argv, 0);
	struct want_text w = { a, "\r\n5000\r\n" };
	assert_true(pump_until(fx->ac, has_text, &w, 15000));
	ac_send_close(a->s);
	assert_true(pump_until(fx->ac, is_ended, a, 5000));
	/* what the first attach saw is a prefix of the output */
	assert_true(a->out.len <= expect.len);
	assert_memory_equal(a->out.data, expect.data, a->out.len);
	usleep(50000);

	struct sess *b = sess_attach(fx->ac, "midway");
	if (!pump_until(fx->ac, ends_with_last_line, b, 30000))
		fail_msg("reattach never saw the last line (%zu bytes)", b->out.len);
	/* replay + live output is exactly a suffix of the output: no gap, no
	 * duplicate byte at the seam */
	assert_true(b->out.len >= 65536);
	assert_true(b->out.len <= expect.len);
	assert_memory_equal(b->out.data, expect.data + expect.len - b->out.len, b->out.len);
	kill_session(fx->ac, "midway", SIGKILL);
	assert_true(pump_until(fx->ac, is_ended, b, 5000));
	sess_free(a);
	sess_free(b);
	buf_release(&expect);
}

static void test_attached_flow_control_loses_nothing(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"seq 1 200000; sleep 1000", NULL };
	struct buf expect = BUF_INIT;
	seq_tty(&expect, 200000);
	struct sess *x = sess_open(fx->ac, "slow", argv, 0);
	ac_hold(x->s, true); /* a reader that stopped reading */
	pump(fx->ac, 700);
	/* the program is blocked: at most the window plus the ring went out */
	struct proto_session_list list;
	assert_int_equal(session_info(fx->ac, "slow", &list), 0);
	uint64_t produced = list.sessions[0].output_bytes;
	proto_msg_release(PROTO_SESSION_LIST_RESULT, &list);
	assert_true(produced < expect.len);
	assert_true(x->out.len <= PROTO_WINDOW);
	ac_hold(x->s, false);
	if (!pump_until(fx->ac, ends_with_last_line, x, 30000))
		fail_msg("only %zu of %zu bytes arrived", x->out.len, expect.len);
	assert_int_equal(x->out.len, expect.len);
	assert_memory_equal(x->out.data, expect.data, expect.len);
	kill_session(fx->ac, "slow", SIGKILL);
	assert_true(pump_until(fx->ac, is_ended, x, 5000));
	sess_free(x);
	buf_release(&expect);
}

static void test_disconnect_detaches(void **state)
{
	struct fixture *fx = *state;
	struct ac *other = lohar_connect(&fx->lohar, "tok");
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)"echo before; sleep 1000", NULL };
	struct sess *x = sess_open(other, "survivor", argv, 0);
	struct want_text w = { x, "before" };
	assert_true(pump_until(other, has_text, &w, 5000));
	ac_free(other);
	sess_free(x);
	usleep(100000);
	struct proto_session_list list;
	assert_int_equal(session_info(fx->ac, "survivor", &list), 0);
	assert_true(list.sessions[0].running);
	assert_false(list.sessions[0].attached);
	assert_true(pid_alive((pid_t)list.sessions[0].pid));
	proto_msg_release(PROTO_SESSION_LIST_RESULT, &list);
	/* and it can be reattached from another connection */
	x = sess_attach(fx->ac, "survivor");
	w.x = x;
	assert_true(pump_until(fx->ac, has_text, &w, 5000));
	kill_session(fx->ac, "survivor", SIGKILL);
	assert_true(pump_until(fx->ac, is_ended, x, 5000));
	sess_free(x);
}

static void test_kill_sends_sigterm_to_group(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { (char *)"sh", (char *)"-c",
			 (char *)"trap 'echo got-term; exit 7' TERM; echo ready; "
				 "while true; do sleep 0.05; done", NULL };
	struct sess *x = sess_open(fx->ac, "killme", argv, 0);
	expect_text(fx->ac, x, "ready");
	kill_session(fx->ac, "killme", 0); /* default signal */
	assert_true(pump_until(fx->ac, is_ended, x, 5000));
	assert_non_null(strstr(x->out.data, "got-term"));
	assert_true(x->exited);
	assert_int_equal(x->exit_code, 7);
	/* status kept after exit */
	struct proto_session_list list;
	assert_int_equal(session_info(fx->ac, "killme", &list), 0);
	assert_false(list.sessions[0].running);
	assert_int_equal(list.sessions[0].exit_code, 7);
	proto_msg_release(PROTO_SESSION_LIST_RESULT, &list);
	/* reattaching to the exited session replays, then reports the exit */
	struct sess *y = sess_attach(fx->ac, "killme");
	assert_true(pump_until(fx->ac, is_ended, y, 5000));
	assert_non_null(strstr(y->out.data, "got-term"));
	assert_true(y->exited);
	assert_int_equal(y->exit_code, 7);
	/* ... and forgotten after the retention time (1.5 s in this test) */
	usleep(2000000);
	assert_int_equal(session_info(fx->ac, "killme", &list), -ENOENT);
	sess_free(x);
	sess_free(y);
}

static void test_idle_timeout_after_detach(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { (char *)"sleep", (char *)"1000", NULL };
	struct sess *x = sess_open(fx->ac, "idler", argv, 1);
	assert_true(pump_until(fx->ac, has_record, x, 5000));
	ac_send_close(x->s);
	assert_true(pump_until(fx->ac, is_ended, x, 5000));
	struct proto_session_list list;
	bool gone = false;
	for (int i = 0; i < 60 && !gone; i++) {
		usleep(100000);
		assert_int_equal(session_info(fx->ac, "idler", &list), 0);
		gone = !list.sessions[0].running;
		if (gone)
			assert_int_equal(list.sessions[0].exit_code, 128 + SIGHUP);
		proto_msg_release(PROTO_SESSION_LIST_RESULT, &list);
	}
	assert_true(gone);
	sess_free(x);
}

static void test_list_and_errors(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { (char *)"sleep", (char *)"1000", NULL };
	int64_t t0 = wall_sec();
	struct sess *x = sess_open(fx->ac, "listed", argv, 0);
	assert_true(pump_until(fx->ac, has_record, x, 5000));

	struct proto_session_list list;
	struct err e = ERR_INIT;
	assert_int_equal(ac_call(fx->ac, PROTO_SESSION_LIST, NULL, PROTO_SESSION_LIST_RESULT,
				 &list, 5000, &e), 0);
	bool found = false;
	for (size_t i = 0; i < list.count; i++) {
		struct proto_session *r = &list.sessions[i];
		if (strcmp(r->id, "listed") != 0)
			continue;
		found = true;
		assert_string_equal(r->argv[0], "sleep");
		assert_string_equal(r->argv[1], "1000");
		assert_null(r->argv[2]);
		assert_true(strncmp(r->tty, "/dev/pts/", 9) == 0);
		assert_true(r->running);
		assert_true(r->attached);
		assert_true(r->created >= t0 && r->created <= wall_sec());
		assert_true(pid_alive((pid_t)r->pid));
	}
	assert_true(found);
	proto_msg_release(PROTO_SESSION_LIST_RESULT, &list);

	/* duplicate id, bad id, missing session */
	struct sess *dup = sess_open(fx->ac, "listed", argv, 0);
	assert_true(pump_until(fx->ac, is_ended, dup, 5000));
	assert_int_equal(dup->error, EEXIST);
	assert_string_equal(dup->error_msg, "session 'listed' already exists");
	struct sess *bad = sess_open(fx->ac, "no spaces/allowed", argv, 0);
	assert_true(pump_until(fx->ac, is_ended, bad, 5000));
	assert_int_equal(bad->error, EINVAL);
	struct sess *missing = sess_attach(fx->ac, "nope");
	assert_true(pump_until(fx->ac, is_ended, missing, 5000));
	assert_int_equal(missing->error, ENOENT);
	assert_string_equal(missing->error_msg, "no session 'nope'");

	/* a second attach takes over; the first is told why */
	struct sess *second = sess_attach(fx->ac, "listed");
	assert_true(pump_until(fx->ac, is_ended, x, 5000));
	assert_int_equal(x->error, EBUSY);
	assert_true(pump_until(fx->ac, has_record, second, 5000));
	kill_session(fx->ac, "listed", SIGKILL);
	assert_true(pump_until(fx->ac, is_ended, second, 5000));
	assert_int_equal(second->exit_code, 137);
	sess_free(x);
	sess_free(dup);
	sess_free(bad);
	sess_free(missing);
	sess_free(second);
}

static void test_session_limit(void **state)
{
	struct fixture *fx = *state;
	char *argv[] = { (char *)"sleep", (char *)"1000", NULL };
	struct sess *x[21];
	char id[32];
	/* other tests' sessions have exited by now */
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "lim%d", i);
		x[i] = sess_open(fx->ac, id, argv, 0);
		assert_true(pump_until(fx->ac, has_record, x[i], 5000));
		assert_true(x[i]->have_record);
	}
	x[20] = sess_open(fx->ac, "lim20", argv, 0);
	assert_true(pump_until(fx->ac, is_ended, x[20], 5000));
	assert_int_equal(x[20]->error, EMFILE);
	assert_string_equal(x[20]->error_msg, "too many sessions (limit 20)");
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "lim%d", i);
		kill_session(fx->ac, id, SIGKILL);
	}
	for (int i = 0; i < 21; i++) {
		assert_true(pump_until(fx->ac, is_ended, x[i], 5000));
		sess_free(x[i]);
	}
}

static void test_init_script_session(void **state UNUSED)
{
	struct lohar_proc lp;
	assert_int_equal(lohar_start(&lp, "t", "self"), 0);
	struct ac *ac = lohar_connect(&lp, "t");
	struct buf script = BUF_INIT;
	buf_addf(&script, "echo init-ran > %s/init.out; echo $INIT_VAR; sleep 1000", lp.workspace);
	char *env[] = { (char *)"INIT_VAR=from-config", NULL };
	struct proto_configure cfg = {
		.what = PROTO_CFG_INIT | PROTO_CFG_ENV, .env = env,
		.hostname = (char *)"", .token = (char *)"", .init = script.data,
		.net_ifname = (char *)"", .net_address = (char *)"", .net_gateway = (char *)"",
	};
	struct proto_ok ok;
	struct err e = ERR_INIT;
	assert_int_equal(ac_call(ac, PROTO_CONFIGURE, &cfg, PROTO_OK, &ok, 5000, &e), 0);
	struct sess *x = sess_attach(ac, "init");
	expect_text(ac, x, "from-config");
	struct buf path = BUF_INIT;
	buf_addf(&path, "%s/init.out", lp.workspace);
	char *t = read_text(path.data);
	assert_non_null(t);
	assert_string_equal(t, "init-ran\n");
	free(t);
	/* configure again (reidentify): the init script does not run twice */
	assert_int_equal(ac_call(ac, PROTO_CONFIGURE, &cfg, PROTO_OK, &ok, 5000, &e), 0);
	struct proto_session_list list;
	assert_int_equal(ac_call(ac, PROTO_SESSION_LIST, NULL, PROTO_SESSION_LIST_RESULT, &list,
				 5000, &e), 0);
	assert_int_equal(list.count, 1);
	proto_msg_release(PROTO_SESSION_LIST_RESULT, &list);
	ac_free(ac);
	sess_free(x);
	buf_release(&path);
	buf_release(&script);
	assert_int_equal(lohar_stop(&lp), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shell_roundtrip),
		cmocka_unit_test(test_resize),
		cmocka_unit_test(test_reattach_replays_last_64k),
		cmocka_unit_test(test_reattach_mid_output_no_gap_no_dup),
		cmocka_unit_test(test_attached_flow_control_loses_nothing),
		cmocka_unit_test(test_disconnect_detaches),
		cmocka_unit_test(test_kill_sends_sigterm_to_group),
		cmocka_unit_test(test_idle_timeout_after_detach),
		cmocka_unit_test(test_list_and_errors),
		cmocka_unit_test(test_session_limit),
		cmocka_unit_test(test_init_script_session),
	};
	return cmocka_run_group_tests(tests, setup, fixture_teardown);
}
