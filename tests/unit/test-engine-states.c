/* test-engine-states.c — unit tests for daemon/engine.c's VM state machine,
 * without VMs: the engine runs on the tests' fake backend
 * (tests/fake-backend.c, a test double; the real backend is exercised by
 * tests/integration/test-engine.c). Every operation is tried from every
 * state (and while each kind of operation is in flight) against a table
 * written here from engine.h's diagram; an operation asked of a VM already
 * where it would end succeeds on a later loop turn without reaching the
 * backend; destroy preempts whatever runs; a VMM's death fails the
 * operation in flight; creates are checked before the backend sees them.
 *
 * Sits between cmocka, engine.h and the fake backend, on a real event loop
 * (shared/loop.c) in a temp data dir the fake never writes to.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "fake-backend.h"
#include "helpers.h"
#include "log.h"
#include "loop.h"

struct fix {
	char *dir;
	struct engine *eng;
	int failed_events;
};

static struct fix *FX;

static void on_event(struct vm *vm UNUSED, enum vm_state st, const struct err *e UNUSED,
		     void *arg)
{
	struct fix *f = arg;
	if (st == VM_FAILED)
		f->failed_events++;
}

static int open_engine(struct fix *f)
{
	struct err e = ERR_INIT;
	struct engine_config cfg = { .backend = &fake_backend, .data_dir = f->dir,
				     .images_dir = f->dir };
	int r = engine_new(&cfg, on_event, f, &f->eng, &e);
	if (r < 0)
		fprintf(stderr, "engine_new: %s\n", err_str(&e));
	return r;
}

static int setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));
	fake_reset();
	f->dir = test_tmpdir("engine-states");
	FX = f;
	*state = f;
	return open_engine(f);
}

static int teardown(void **state)
{
	struct fix *f = *state;
	engine_free(f->eng);
	loop_run_once(0); /* deferred frees */
	test_rmtree(f->dir);
	free(f->dir);
	free(f);
	fake_reset();
	return 0;
}

/* ---- recording done callbacks ----------------------------------------------- */

struct rec {
	int calls;
	int rc;
	struct err e;
	enum vm_state state;    /* the VM's state when done ran */
};

static void rec_done(struct vm *vm, int rc, const struct err *e, void *arg)
{
	struct rec *r = arg;
	r->calls++;
	r->rc = rc;
	r->state = vm_state(vm);
	if (e)
		r->e = *e;
}

/* Run the loop until r has been called (or 2 s pass). */
static void wait_rec(struct rec *r)
{
	uint64_t until = now_ms() + 2000;
	while (r->calls == 0 && now_ms() < until)
		loop_run_once(10);
	if (r->calls == 0)
		fail_msg("an operation never finished");
}

/* Turn the loop a few times (completes what the fake has armed). */
static void settle(void)
{
	for (int i = 0; i < 5; i++)
		loop_run_once(5);
}

/* ---- putting a VM into each situation -------------------------------------------- */

enum situation {
	S_CREATING, S_RUNNING, S_PAUSED, S_STOPPING, S_STOPPED, S_STARTING, S_FAILED,
	S_DESTROYING, S_PAUSING, S_RESUMING, S_COUNT
};

static const char *const situation_names[] = {
	"creating", "running", "paused", "stopping", "stopped", "starting", "failed",
	"destroying", "running, pause in flight", "paused, resume in flight",
};

static struct rec bg; /* the done of the operation a situation leaves in flight */

static struct vm *create_sync(const char *id)
{
	struct vm *vm;
	struct err e = ERR_INIT;
	struct vm_spec spec = { .id = id };
	if (vm_create_sync(FX->eng, &spec, &vm, &e) < 0)
		fail_msg("create '%s': %s", id, err_str(&e));
	return vm;
}

static void must(int r, const struct err *e, const char *what)
{
	if (r < 0)
		fail_msg("%s: %s", what, err_str(e));
}

static struct vm *vm_in(const char *id, enum situation s)
{
	struct err e = ERR_INIT;
	struct vm *vm = NULL;
	memset(&bg, 0, sizeof(bg));
	if (s == S_CREATING) {
		struct vm_spec spec = { .id = id };
		fake_script(id, OP_CREATE, FAKE_HANG);
		must(vm_create(FX->eng, &spec, rec_done, &bg, &vm, &e), &e, "create");
		return vm;
	}
	vm = create_sync(id);
	switch (s) {
	case S_PAUSED:
		must(vm_pause_sync(vm, &e), &e, "pause");
		break;
	case S_STOPPING:
		fake_script(id, OP_STOP, FAKE_HANG);
		must(vm_stop(vm, rec_done, &bg, &e), &e, "stop");
		break;
	case S_STOPPED:
		must(vm_stop_sync(vm, &e), &e, "stop");
		break;
	case S_STARTING:
		must(vm_stop_sync(vm, &e), &e, "stop");
		fake_script(id, OP_START, FAKE_HANG);
		must(vm_start(vm, rec_done, &bg, &e), &e, "start");
		break;
	case S_FAILED:
		fake_crash(vm, "QEMU was killed by signal 9");
		break;
	case S_DESTROYING:
		fake_script(id, OP_DESTROY, FAKE_HANG);
		must(vm_destroy(vm, rec_done, &bg, &e), &e, "destroy");
		break;
	case S_PAUSING:
		fake_script(id, OP_PAUSE, FAKE_HANG);
		must(vm_pause(vm, rec_done, &bg, &e), &e, "pause");
		break;
	case S_RESUMING:
		must(vm_pause_sync(vm, &e), &e, "pause");
		fake_script(id, OP_RESUME, FAKE_HANG);
		must(vm_resume(vm, rec_done, &bg, &e), &e, "resume");
		break;
	default:
		break;
	}
	return vm;
}

/* ---- the table ----------------------------------------------------------------------- */

enum { PAUSE, RESUME, STOP, START, DESTROY, NOPS };
static const char *const op_names[] = { "pause", "resume", "stop", "start", "destroy" };
static const enum vm_op op_codes[] = { OP_PAUSE, OP_RESUME, OP_STOP, OP_START, OP_DESTROY };

static int call_op(int op, struct vm *vm, struct rec *r, struct err *e)
{
	switch (op) {
	case PAUSE: return vm_pause(vm, rec_done, r, e);
	case RESUME: return vm_resume(vm, rec_done, r, e);
	case STOP: return vm_stop(vm, rec_done, r, e);
	case START: return vm_start(vm, rec_done, r, e);
	default: return vm_destroy(vm, rec_done, r, e);
	}
}

enum want_kind {
	GO,       /* runs in the backend; done later with 0; the VM ends in `to` */
	THERE,    /* already there: done later with 0; the backend is not asked */
	INVAL,    /* refused at once: -EINVAL, "cannot <op> sandbox ..." */
	BUSY,     /* refused at once: -EBUSY */
	PREEMPT,  /* destroy: the operation in flight is told -ECANCELED at once */
};

struct want {
	enum want_kind kind;
	enum vm_state to;         /* GO (VM_DESTROYING: gone) */
};

#define W_GO(s) { GO, s }
#define W_THERE { THERE, 0 }
#define W_INVAL { INVAL, 0 }
#define W_BUSY { BUSY, 0 }
#define W_PREEMPT { PREEMPT, 0 }
#define W_GONE { GO, VM_DESTROYING }

/* From engine.h: pause RUNNING → PAUSED; resume PAUSED → RUNNING; stop
 * RUNNING|PAUSED → STOPPED; start STOPPED → RUNNING; destroy from
 * anything but a destroy; one operation at a time, but destroy preempts. */
static const struct want table[S_COUNT][NOPS] = {
	/*               pause         resume        stop               start             destroy */
	[S_CREATING]   = { W_BUSY,      W_BUSY,       W_BUSY,            W_BUSY,           W_PREEMPT },
	[S_RUNNING]    = { W_GO(VM_PAUSED), W_THERE,  W_GO(VM_STOPPED),  W_THERE,          W_GONE },
	[S_PAUSED]     = { W_THERE,     W_GO(VM_RUNNING), W_GO(VM_STOPPED), W_INVAL,       W_GONE },
	[S_STOPPING]   = { W_BUSY,      W_BUSY,       W_BUSY,            W_BUSY,           W_PREEMPT },
	[S_STOPPED]    = { W_INVAL,     W_INVAL,      W_THERE,           W_GO(VM_RUNNING), W_GONE },
	[S_STARTING]   = { W_BUSY,      W_BUSY,       W_BUSY,            W_BUSY,           W_PREEMPT },
	[S_FAILED]     = { W_INVAL,     W_INVAL,      W_INVAL,           W_INVAL,          W_GONE },
	[S_DESTROYING] = { W_BUSY,      W_BUSY,       W_BUSY,            W_BUSY,           W_BUSY },
	[S_PAUSING]    = { W_BUSY,      W_BUSY,       W_BUSY,            W_BUSY,           W_PREEMPT },
	[S_RESUMING]   = { W_BUSY,      W_BUSY,       W_BUSY,            W_BUSY,           W_PREEMPT },
};

static void check_cell(enum situation s, int op)
{
	const struct want *w = &table[s][op];
	char id[32];
	snprintf(id, sizeof(id), "vm-%d-%d", (int)s, op);
	struct vm *vm = vm_in(id, s);
	enum vm_state before = vm_state(vm);
	unsigned calls = fake_calls(op_codes[op]);
	struct rec r = { 0 };
	struct err e = ERR_INIT;
	int rc = call_op(op, vm, &r, &e);
	const char *where = situation_names[s];

	switch (w->kind) {
	case INVAL:
	case BUSY:
		if (rc != (w->kind == INVAL ? -EINVAL : -EBUSY))
			fail_msg("%s from %s: rc %d (%s), want %s", op_names[op], where, rc,
				 err_str(&e), w->kind == INVAL ? "-EINVAL" : "-EBUSY");
		assert_non_null(strstr(e.msg, id));
		if (w->kind == INVAL) {
			char msg[128];
			snprintf(msg, sizeof(msg), "cannot %s sandbox '%s': it is %s", op_names[op],
				 id, vm_state_name(before));
			assert_string_equal(e.msg, msg);
		}
		settle();
		assert_int_equal(r.calls, 0);                 /* done never runs */
		assert_int_equal(vm_state(vm), before);
		assert_int_equal(fake_calls(op_codes[op]), calls);
		break;
	case THERE:
		if (rc != 0)
			fail_msg("%s from %s: %s", op_names[op], where, err_str(&e));
		assert_int_equal(r.calls, 0);                 /* not inside the call */
		/* one at a time, also while "already there" is being answered */
		assert_int_equal(vm_pause(vm, NULL, NULL, &e), -EBUSY);
		wait_rec(&r);
		assert_int_equal(r.rc, 0);
		assert_int_equal(vm_state(vm), before);
		assert_int_equal(fake_calls(op_codes[op]), calls); /* never asked */
		break;
	case GO:
		if (rc != 0)
			fail_msg("%s from %s: %s", op_names[op], where, err_str(&e));
		assert_int_equal(r.calls, 0);
		assert_int_equal(fake_calls(op_codes[op]), calls + 1);
		wait_rec(&r);
		assert_int_equal(r.calls, 1);
		assert_int_equal(r.rc, 0);
		if (w->to == VM_DESTROYING) {
			assert_null(engine_find(FX->eng, id));
		} else {
			assert_int_equal(r.state, w->to);
			assert_int_equal(vm_state(vm), w->to);
		}
		break;
	case PREEMPT:
		if (rc != 0)
			fail_msg("destroy from %s: %s", where, err_str(&e));
		/* the preempted operation is told at once, and only once */
		assert_int_equal(bg.calls, 1);
		assert_int_equal(bg.rc, -ECANCELED);
		assert_int_equal(r.calls, 0);
		assert_int_equal(vm_state(vm), VM_DESTROYING);
		assert_int_equal(fake_running(vm), OP_DESTROY);
		wait_rec(&r);
		assert_int_equal(r.rc, 0);
		assert_null(engine_find(FX->eng, id));
		assert_int_equal(bg.calls, 1);
		break;
	}
	/* what a situation left in flight ends (and the VM goes) */
	settle();
	if (engine_find(FX->eng, id)) {
		fake_release(vm);
		settle();
		struct vm *left = engine_find(FX->eng, id);
		if (left && vm_state(left) != VM_DESTROYING && vm_destroy_sync(left, &e) < 0)
			fail_msg("cleaning up '%s': %s", id, err_str(&e));
		settle();
	}
	assert_null(engine_find(FX->eng, id));
}

static void test_every_op_from_every_state(void **state UNUSED)
{
	for (int s = 0; s < S_COUNT; s++)
		for (int op = 0; op < NOPS; op++)
			check_cell((enum situation)s, op);
}

/* ---- the rest of the machine --------------------------------------------------------- */

/* A destroy that preempts an "already there" answer waits for its own
 * end: the pending answer neither finishes the destroy nor reaches the
 * VM after it is gone. */
static void test_destroy_preempts_already_there(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct vm *vm = vm_in("there", S_STOPPED);
	struct rec stop = { 0 }, gone = { 0 };
	assert_int_equal(vm_stop(vm, rec_done, &stop, &e), 0);
	fake_script("there", OP_DESTROY, FAKE_HANG);
	assert_int_equal(vm_destroy(vm, rec_done, &gone, &e), 0);
	assert_int_equal(stop.calls, 1);
	assert_int_equal(stop.rc, -ECANCELED);
	settle();
	assert_int_equal(gone.calls, 0);        /* the backend has not finished */
	assert_int_equal(stop.calls, 1);
	assert_non_null(engine_find(FX->eng, "there"));
	assert_int_equal(vm_state(vm), VM_DESTROYING);
	fake_release(vm);
	wait_rec(&gone);
	assert_int_equal(gone.rc, 0);
	assert_null(engine_find(FX->eng, "there"));
	settle();
	assert_int_equal(gone.calls, 1);
	assert_int_equal(stop.calls, 1);
}

/* Two "already there" answers due on the same loop turn, the first of
 * whose callers destroys the second VM: the second answer is withdrawn
 * (it does not finish the destroy), whatever the order of the batch. */
static struct vm *victim;
static struct rec victim_gone;

static void destroy_victim(struct vm *vm, int rc, const struct err *e, void *arg)
{
	struct err de = ERR_INIT;
	rec_done(vm, rc, e, arg);
	if (victim) {
		fake_script(vm_id(victim), OP_DESTROY, FAKE_HANG);
		assert_int_equal(vm_destroy(victim, rec_done, &victim_gone, &de), 0);
		victim = NULL;
	}
}

static void test_destroy_from_another_answer(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct vm *a = vm_in("first", S_STOPPED), *b = vm_in("second", S_STOPPED);
	struct rec ra = { 0 }, rb = { 0 };
	memset(&victim_gone, 0, sizeof(victim_gone));
	victim = b;
	assert_int_equal(vm_stop(a, destroy_victim, &ra, &e), 0);
	assert_int_equal(vm_stop(b, rec_done, &rb, &e), 0);
	settle();
	assert_int_equal(ra.calls, 1);
	assert_int_equal(ra.rc, 0);
	assert_int_equal(rb.calls, 1);          /* told: cancelled by the destroy */
	assert_int_equal(rb.rc, -ECANCELED);
	assert_int_equal(victim_gone.calls, 0); /* the backend has not finished */
	assert_non_null(engine_find(FX->eng, "second"));
	fake_release(b);
	wait_rec(&victim_gone);
	assert_int_equal(victim_gone.rc, 0);
	assert_null(engine_find(FX->eng, "second"));
	assert_int_equal(vm_destroy_sync(a, &e), 0);
}

/* The VMM dies while an "already there" answer is pending: the answer is
 * the failure, and a destroy asked then is not finished by the stale
 * answer. */
static void test_crash_while_already_there(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct vm *vm = vm_in("crash-there", S_RUNNING);
	struct rec start = { 0 }, gone = { 0 };
	assert_int_equal(vm_start(vm, rec_done, &start, &e), 0);
	fake_crash(vm, "QEMU exited");
	assert_int_equal(start.calls, 1);
	assert_int_equal(start.rc, -EIO);
	assert_string_equal(start.e.msg, "QEMU exited");
	fake_script("crash-there", OP_DESTROY, FAKE_HANG);
	assert_int_equal(vm_destroy(vm, rec_done, &gone, &e), 0);
	settle();
	assert_int_equal(gone.calls, 0);
	assert_int_equal(start.calls, 1);
	fake_release(vm);
	wait_rec(&gone);
	assert_null(engine_find(FX->eng, "crash-there"));
}

/* Failed operations leave the VM where the QEMU backend leaves it, with
 * the reason in vm_error; a failed create leaves nothing. */
static void test_failures(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct vm *vm;
	struct vm_spec spec = { .id = "bad-create" };
	fake_script("bad-create", OP_CREATE, FAKE_FAIL);
	assert_int_equal(vm_create_sync(FX->eng, &spec, &vm, &e), -EIO);
	assert_string_equal(e.msg, "fake: create failed");
	settle();
	assert_null(engine_find(FX->eng, "bad-create"));

	vm = create_sync("f");
	fake_script("f", OP_PAUSE, FAKE_FAIL);
	assert_int_equal(vm_pause_sync(vm, &e), -EIO);
	assert_int_equal(vm_state(vm), VM_RUNNING);
	assert_string_equal(vm_error(vm), "fake: pause failed");
	assert_int_equal(vm_pause_sync(vm, &e), 0);
	assert_string_equal(vm_error(vm), ""); /* success clears it */
	fake_script("f", OP_RESUME, FAKE_FAIL);
	assert_int_equal(vm_resume_sync(vm, &e), -EIO);
	assert_int_equal(vm_state(vm), VM_PAUSED);
	fake_script("f", OP_STOP, FAKE_FAIL);
	assert_int_equal(vm_stop_sync(vm, &e), -EIO);
	assert_int_equal(vm_state(vm), VM_PAUSED); /* where it was */
	assert_int_equal(vm_stop_sync(vm, &e), 0);
	fake_script("f", OP_START, FAKE_FAIL);
	assert_int_equal(vm_start_sync(vm, &e), -EIO);
	assert_int_equal(vm_state(vm), VM_STOPPED);
	assert_int_equal(vm_start_sync(vm, &e), 0);
	assert_int_equal(vm_state(vm), VM_RUNNING);
	assert_int_equal(FX->failed_events, 0); /* operations that fail are no events */
	assert_int_equal(vm_destroy_sync(vm, &e), 0);
}

/* A VMM's death: FAILED, the reason kept, one event; the operation in
 * flight fails with it; a failed VM refuses all but destroy. */
static void test_crash(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct vm *vm = vm_in("dies", S_RUNNING);
	fake_crash(vm, "QEMU was killed by signal 9");
	assert_int_equal(vm_state(vm), VM_FAILED);
	assert_string_equal(vm_error(vm), "QEMU was killed by signal 9");
	assert_int_equal(FX->failed_events, 1);
	assert_int_equal(vm_start_sync(vm, &e), -EINVAL);
	assert_int_equal(vm_destroy_sync(vm, &e), 0);

	vm = vm_in("dies-stopping", S_STOPPING);
	fake_crash(vm, "QEMU exited");
	assert_int_equal(bg.calls, 1);
	assert_int_equal(bg.rc, -EIO);
	assert_int_equal(bg.state, VM_FAILED);
	assert_int_equal(FX->failed_events, 1); /* the operation got it, not an event */
	assert_int_equal(vm_destroy_sync(vm, &e), 0);

	/* a create that dies is gone, as a failed create is */
	vm = vm_in("dies-creating", S_CREATING);
	fake_crash(vm, "QEMU exited");
	assert_int_equal(bg.rc, -EIO);
	settle();
	assert_null(engine_find(FX->eng, "dies-creating"));

	/* during a destroy, the destroy goes on */
	vm = vm_in("dies-destroying", S_DESTROYING);
	fake_crash(vm, "QEMU exited");
	assert_int_equal(bg.calls, 0);
	fake_release(vm);
	wait_rec(&bg);
	assert_int_equal(bg.rc, 0);
	assert_null(engine_find(FX->eng, "dies-destroying"));
}

/* Creates are checked before the backend sees them. */
static void test_create_checks(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct vm *vm = NULL;
	static const struct { struct vm_spec spec; int rc; const char *msg; } bad[] = {
		{ { .id = "Bad_Name" }, -EINVAL, "invalid sandbox id 'Bad_Name'" },
		{ { .id = "" }, -EINVAL, "invalid sandbox id ''" },
		{ { .id = "-x" }, -EINVAL, "invalid sandbox id '-x'" },
		{ { .id = "cpus", .cpus = 65 }, -EINVAL, "cpus must be 1 to 64, not 65" },
		{ { .id = "mem", .memory_mb = 63 }, -EINVAL, "memory must be 64 to 65536 MB" },
		{ { .id = "img", .image = "nope" }, -ENOENT, "no image 'nope'" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(vm_create(FX->eng, &bad[i].spec, NULL, NULL, &vm, &e), bad[i].rc);
		assert_non_null(strstr(e.msg, bad[i].msg));
	}
	assert_int_equal(fake_calls(OP_CREATE), 0);
	vm = create_sync("dup");
	struct vm *other = NULL;
	struct vm_spec dup = { .id = "dup" };
	assert_int_equal(vm_create(FX->eng, &dup, NULL, NULL, &other, &e), -EEXIST);
	assert_string_equal(e.msg, "sandbox 'dup' already exists");
	assert_int_equal(fake_calls(OP_CREATE), 1);
	/* the spec's defaults */
	assert_string_equal(vm_origin(vm), "boot");
	assert_int_equal(vm_destroy_sync(vm, &e), 0);
}

/* engine_config names the backend; a name nobody knows is refused. */
static void test_backend_by_name(void **state UNUSED)
{
	struct engine *eng = NULL;
	struct err e = ERR_INIT;
	struct engine_config cfg = { .backend_name = "firecracker", .data_dir = FX->dir,
				     .images_dir = FX->dir };
	assert_int_equal(engine_new(&cfg, NULL, NULL, &eng, &e), -EINVAL);
	assert_string_equal(e.msg, "unknown engine 'firecracker'");
	assert_null(eng);
	assert_string_equal(engine_accel(FX->eng), "none");
	assert_null(engine_mem_dir(FX->eng));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_op_from_every_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_preempts_already_there, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_from_another_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_while_already_there, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_by_name, setup, teardown),
	};
	log_init("test-engine-states", LOG_ERROR);
	if (loop_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
