/* test-guest.c — unit tests of daemon/guest.c without a VM: a sandbox on
 * the fake engine backend (tests/fake-backend.h) whose agent channel is a
 * socketpair; the test plays the agent on the other end with frames from
 * the real encoder (shared/proto.c) and checks what the operation's
 * callbacks see.
 *
 * Touches a temp dir (the store) and nothing else.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <sodium.h>

#include "agent-client.h"
#include "buf.h"
#include "engine-internal.h"
#include "exectee.h"
#include "fake-backend.h"
#include "guest.h"
#include "helpers.h"
#include "json.h"
#include "loop.h"
#include "proto.h"
#include "sandbox.h"
#include "server.h"

static struct server S;
static struct user U;
static char *dir, *key;
static struct sbx *box;
static struct ac *ac;       /* the daemon's end of the channel */
static int agent_fd = -1;   /* the agent's end: the test */

/* What an operation's callbacks saw. */
struct seen {
	bool started, done;
	int rc;
	struct buf data;
};

static void on_started(struct guest_op *op UNUSED, const struct guest_start *st UNUSED, void *arg)
{
	((struct seen *)arg)->started = true;
}

static void on_data(struct guest_op *op UNUSED, enum guest_ch ch UNUSED, const uint8_t *p,
		    size_t n, void *arg)
{
	buf_add(&((struct seen *)arg)->data, p, n);
}

static void on_done(struct guest_op *op UNUSED, const struct guest_end *end, void *arg)
{
	struct seen *s = arg;
	s->done = true;
	s->rc = end->rc;
}

static const struct guest_cb cb = { .started = on_started, .data = on_data, .done = on_done };

/* Run the daemon's side a while: the channel both ways, the loop. */
static void pump(void)
{
	for (int i = 0; i < 20; i++) {
		ac_flush(ac, NULL);
		ac_on_readable(ac, NULL);
		loop_run_once(0);
	}
}

/* The agent sends b (and forgets what the host sent it). */
static void agent_says(struct buf *b)
{
	assert_int_equal(write_all(agent_fd, b->data, b->len), 0);
	buf_reset(b);
	pump();
	char sink[65536];
	while (recv(agent_fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
}

/* A fresh, ready channel for the box's VM. */
static int attach(void **state UNUSED)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	agent_fd = sv[0];
	ac = ac_new(sv[1], "token", "bhatti-engine");
	box->vm->agent = ac;
	struct proto_hello_ok h = {
		.version = PROTO_VERSION, .agent_version = (char *)"test", .max_frame = PROTO_MAX_FRAME,
		.window = PROTO_WINDOW, .max_streams = 64, .hostname = (char *)"box", .configured = 1,
	};
	struct buf b = BUF_INIT;
	proto_put_msg(&b, 0, PROTO_HELLO_OK, 0, &h);
	agent_says(&b);
	buf_release(&b);
	assert_true(ac_ready(ac));
	return 0;
}

static int detach(void **state UNUSED)
{
	box->vm->agent = NULL;
	ac_close(ac, ECONNABORTED, "test over");
	ac_free(ac);
	ac = NULL;
	close(agent_fd);
	agent_fd = -1;
	loop_run_once(0);
	return 0;
}

/* A file read: metadata, then its bytes, then OK. */
static void test_read(void **state UNUSED)
{
	struct seen s = { .data = BUF_INIT };
	struct guest_file_req req = { .path = "/etc/motd" };
	struct guest_op *op = guest_file_read(box, &req, &cb, &s);
	pump();
	struct proto_file_meta meta = { PROTO_FT_FILE, 0644, 5, 1700000000, 0, 0, (char *)"" };
	struct proto_ok ok = { 5, 0 };
	struct buf b = BUF_INIT;
	proto_put_msg(&b, 1, PROTO_FILE_META, 0, &meta);
	proto_put_data(&b, 1, PROTO_CH_OUT, "hello", 5);
	proto_put_msg(&b, 1, PROTO_OK, PROTO_F_END, &ok);
	agent_says(&b);
	assert_true(s.done);
	assert_true(s.started);
	assert_int_equal(s.rc, 0);
	assert_int_equal(s.data.len, 5);
	assert_memory_equal(s.data.data, "hello", 5);
	guest_op_free(op);
	buf_release(&b);
	buf_release(&s.data);
}

/* Bytes before the start (an agent out of turn) are not the operation's
 * data: a read answered "hello" then an error used to hand "hello" on,
 * and the API put it in front of its error answer (a 500 whose JSON body
 * began with the file's bytes; found by fuzz-agent). */
static void test_data_before_start(void **state UNUSED)
{
	struct seen s = { .data = BUF_INIT };
	struct guest_file_req req = { .path = "/etc/motd" };
	struct guest_op *op = guest_file_read(box, &req, &cb, &s);
	pump();
	struct proto_error pe = { EIO, (char *)"broken" };
	struct buf b = BUF_INIT;
	proto_put_data(&b, 1, PROTO_CH_OUT, "hello", 5);
	proto_put_msg(&b, 1, PROTO_ERROR, PROTO_F_END, &pe);
	agent_says(&b);
	assert_true(s.done);
	assert_false(s.started);
	assert_true(s.rc < 0);
	assert_int_equal(s.data.len, 0);
	guest_op_free(op);
	buf_release(&b);
	buf_release(&s.data);
}

/* The exec tee (exectee.h) hears each exec guest.c runs: its start (argv),
 * its output, its end; and an exec whose client let go (the op freed
 * mid-way: the agent kills it) ends for the watchers with that reason. */
static void tee_ev(const struct exectee_ev *ev, void *arg)
{
	struct buf *log = arg;
	if (ev->type == EXECTEE_START)
		buf_addf(log, "start %s|", ev->argv[0]);
	else if (ev->type == EXECTEE_DATA)
		buf_addf(log, "%d:%.*s|", ev->ch, (int)ev->n, (const char *)ev->p);
	else if (ev->exited)
		buf_addf(log, "exit %d|", ev->exit_code);
	else
		buf_addf(log, "error %s|", ev->error);
}

static void test_exec_tee(void **state UNUSED)
{
	struct buf log = BUF_INIT;
	struct exectee_watch *w = exectee_watch(box->row.id, tee_ev, &log);
	struct seen s = { .data = BUF_INIT };
	char *argv[] = { "make", "test", NULL };
	struct guest_exec_req req = { .argv = argv };
	struct guest_op *op = guest_exec(box, &req, &cb, &s);
	pump();
	struct proto_exec_started st = { .pid = 42, .output_path = (char *)"" };
	struct proto_exit ex = { .exit_code = 2 };
	struct buf b = BUF_INIT;
	proto_put_msg(&b, 1, PROTO_EXEC_STARTED, 0, &st);
	proto_put_data(&b, 1, PROTO_CH_OUT, "ok", 2);
	proto_put_data(&b, 1, PROTO_CH_ERR, "bad", 3);
	proto_put_msg(&b, 1, PROTO_EXIT, PROTO_F_END, &ex);
	agent_says(&b);
	assert_true(s.done);
	assert_memory_equal(s.data.data, "okbad", 5);   /* the caller got it all, as before */
	assert_string_equal(log.data, "start make|1:ok|2:bad|exit 2|");
	guest_op_free(op);
	/* the next one's client goes while it runs */
	buf_reset(&log);
	struct seen s2 = { .data = BUF_INIT };
	op = guest_exec(box, &req, &cb, &s2);
	pump();
	proto_put_msg(&b, 2, PROTO_EXEC_STARTED, 0, &st);
	proto_put_data(&b, 2, PROTO_CH_OUT, "partial", 7);
	agent_says(&b);
	guest_op_free(op);
	loop_run_once(0);
	assert_string_equal(log.data, "start make|1:partial|error its client went away: the "
				      "command's process group is killed|");
	exectee_unwatch(w);
	buf_release(&log);
	buf_release(&b);
	buf_release(&s.data);
	buf_release(&s2.data);
}

static void created(struct sbx *sb UNUSED, int rc, const struct err *e UNUSED, void *arg)
{
	assert_int_equal(rc, 0);
	*(bool *)arg = true;
}

static int setup(void **state UNUSED)
{
	struct err e = ERR_INIT;
	json_init();
	if (sodium_init() < 0 || loop_init() < 0)
		return -1;
	dir = test_tmpdir("guest");
	if (settings_load_string("test", "", &S.cfg, &e) < 0)
		return -1;
	free(S.cfg.data_dir); /* everything in the temp dir (named snapshots too) */
	S.cfg.data_dir = xstrdup(dir);
	struct buf db = BUF_INIT;
	buf_addf(&db, "%s/state.db", dir);
	int rc = store_open(db.data, &S.store, &e);
	buf_release(&db);
	if (rc < 0 || store_user_create(S.store, "tester", 5, 4, 4096, &key, NULL, &e) < 0 ||
	    store_user_auth(S.store, key, &U, &e) < 0)
		return -1;
	struct engine_config ec = { .backend = &fake_backend, .data_dir = dir, .images_dir = dir };
	fake_reset();
	if (engine_new(&ec, NULL, NULL, &S.eng, &e) < 0 || sbx_init(&S, &e) < 0)
		return -1;
	struct sbx_create req = { .name = (char *)"box" };
	bool existing, done = false;
	if (sbx_create(&S, &U, &req, created, &done, &existing, &box, &e) < 0)
		return -1;
	while (!done)
		loop_run_once(10);
	return 0;
}

static int teardown(void **state UNUSED)
{
	engine_free(S.eng);
	sbx_release_all(&S);
	store_free(S.store);
	settings_release(&S.cfg);
	user_release(&U);
	test_rmtree(dir);
	free(dir);
	free(key);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read, attach, detach),
		cmocka_unit_test_setup_teardown(test_data_before_start, attach, detach),
		cmocka_unit_test_setup_teardown(test_exec_tee, attach, detach),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
