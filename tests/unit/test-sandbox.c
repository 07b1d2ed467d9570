/* test-sandbox.c — unit tests for daemon/sandbox.c, the daemon's core for
 * sandboxes, without VMs: a real SQLite store and secrets key in a temp
 * dir, the real engine.c on the tests' fake backend (tests/fake-backend.c,
 * a test double of the VMM: operations finish on the loop, fail, hang or
 * die as a test says). Create (quotas, names, secrets, a failed create
 * leaves no row), the API states, wake (warm, cold, user-stopped, failed; at
 * most max_concurrent_wakes restores; a failed wake and start --force; keep_hot),
 * waiters (one operation, many waiting; a cancelled waiter), busy, stop and
 * start, destroy (also preempting an operation), rename, and the crash
 * reconciliation of sbx_init (rows without VMs, VMs without rows, creates
 * cut short).
 *
 * Sits between cmocka and sandbox.h; looks into the store (store.h) and
 * the engine's VMs (engine-internal.h: a VM's spec as the backend gets it).
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
#include <unistd.h>
#include <sodium.h>

#include "engine-internal.h"
#include "fake-backend.h"
#include "helpers.h"
#include "log.h"
#include "loop.h"
#include "publish.h"
#include "sandbox.h"
#include "server.h"
#include "snapshot.h"

struct fix {
	char *dir;
	struct server srv;
	struct user alice, bob;
};

static struct fix *FX;

static int open_engine(struct fix *f)
{
	struct err e = ERR_INIT;
	struct engine_config cfg = { .backend = &fake_backend, .data_dir = f->dir,
				     .images_dir = f->dir };
	if (engine_new(&cfg, NULL, NULL, &f->srv.eng, &e) < 0) {
		fprintf(stderr, "engine_new: %s\n", err_str(&e));
		return -1;
	}
	return 0;
}

static int open_server(struct fix *f)
{
	struct err e = ERR_INIT;
	struct buf db = BUF_INIT, key = BUF_INIT;
	buf_addf(&db, "%s/state.db", f->dir);
	buf_addf(&key, "%s/age.key", f->dir);
	int r = settings_load_string("t.yaml", "default_image: tiny\n", &f->srv.cfg, &e);
	if (r == 0) { /* everything in the temp dir (named snapshots too) */
		free(f->srv.cfg.data_dir);
		f->srv.cfg.data_dir = xstrdup(f->dir);
	}
	if (r == 0)
		r = store_open(db.data, &f->srv.store, &e);
	if (r == 0)
		r = age_identity_load_or_create(key.data, &f->srv.age, &e);
	buf_release(&db);
	buf_release(&key);
	if (r < 0)
		fprintf(stderr, "setup: %s\n", err_str(&e));
	return r;
}

static int setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));
	struct err e = ERR_INIT;
	char *key = NULL;
	fake_reset();
	f->dir = test_tmpdir("sandbox");
	FX = f;
	*state = f;
	if (open_server(f) < 0 || open_engine(f) < 0)
		return -1;
	if (store_user_create(f->srv.store, "alice", 3, 2, 1024, &key, &f->alice, &e) < 0)
		return -1;
	free(key);
	if (store_user_create(f->srv.store, "bob", 3, 2, 1024, &key, &f->bob, &e) < 0)
		return -1;
	free(key);
	return sbx_init(&f->srv, &e);
}

static int teardown(void **state)
{
	struct fix *f = *state;
	engine_free(f->srv.eng);
	sbx_release_all(&f->srv);
	loop_run_once(0); /* deferred frees */
	store_free(f->srv.store);
	settings_release(&f->srv.cfg);
	user_release(&f->alice);
	user_release(&f->bob);
	test_rmtree(f->dir);
	free(f->dir);
	free(f);
	fake_reset();
	return 0;
}

/* ---- helpers ------------------------------------------------------------------- */

struct rec {
	int calls;
	int rc;
	struct err e;
	char state[16];          /* sbx_state() when done ran */
};

static void rec_done(struct sbx *sb, int rc, const struct err *e, void *arg)
{
	struct rec *r = arg;
	r->calls++;
	r->rc = rc;
	if (e)
		r->e = *e;
	snprintf(r->state, sizeof(r->state), "%s", sbx_state(sb));
}

static void wait_rec(struct rec *r)
{
	uint64_t until = now_ms() + 2000;
	while (r->calls == 0 && now_ms() < until)
		loop_run_once(10);
	if (r->calls == 0)
		fail_msg("an operation never finished");
}

static void settle(void)
{
	for (int i = 0; i < 5; i++)
		loop_run_once(5);
}

static struct sbx *create_as(const struct user *u, const char *name, struct rec *r, int *rc,
			     struct err *e)
{
	struct sbx_create req = { .name = (char *)name };
	struct sbx *sb = NULL;
	bool existing = false;
	*rc = sbx_create(&FX->srv, u, &req, rec_done, r, &existing, &sb, e);
	return *rc == 0 ? sb : NULL;
}

/* A hot sandbox of alice's. */
static struct sbx *hot(const char *name)
{
	struct rec r = { 0 };
	struct err e = ERR_INIT;
	int rc;
	struct sbx *sb = create_as(&FX->alice, name, &r, &rc, &e);
	if (!sb)
		fail_msg("create '%s': %s", name, err_str(&e));
	wait_rec(&r);
	if (r.rc < 0)
		fail_msg("create '%s': %s", name, err_str(&r.e));
	assert_string_equal(sbx_state(sb), "hot");
	return sb;
}

static bool row_exists(const char *id, struct sandbox_row *ret)
{
	struct sandbox_row row;
	struct err e = ERR_INIT;
	int rc = store_sandbox_get(FX->srv.store, id, &row, &e);
	if (rc == 0 && ret)
		*ret = row;
	else if (rc == 0)
		sandbox_row_release(&row);
	return rc == 0;
}

static void put_secret(const struct user *u, const char *name, const char *value)
{
	struct buf ct = BUF_INIT;
	struct err e = ERR_INIT;
	bool created;
	assert_int_equal(age_encrypt(FX->srv.age.public, value, strlen(value), &ct, &e), 0);
	assert_int_equal(store_secret_put(FX->srv.store, u->id, name, ct.data, ct.len, 100,
					  &created, &e), 0);
	buf_release(&ct);
}

/* ---- create ---------------------------------------------------------------------- */

static void test_create(void **state UNUSED)
{
	struct rec r = { 0 };
	struct err e = ERR_INIT;
	int rc;
	struct sbx *sb = create_as(&FX->alice, "dev", &r, &rc, &e);
	assert_non_null(sb);
	/* the row is committed before the VM exists, and done comes later */
	assert_int_equal(r.calls, 0);
	assert_string_equal(sbx_state(sb), "creating");
	struct sandbox_row row;
	assert_true(row_exists(sb->row.id, &row));
	assert_string_equal(row.name, "dev");
	assert_int_equal(row.cpus, 1);          /* the settings' defaults */
	assert_int_equal(row.memory_mb, 512);
	assert_string_equal(row.image, "tiny");
	sandbox_row_release(&row);
	assert_string_equal(vm_id(sb->vm), sb->row.id);
	assert_string_equal(sb->vm->spec.hostname, "dev");
	wait_rec(&r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.state, "hot");
	assert_true(sbx_find(&FX->srv, &FX->alice, "dev") == sb);
	assert_true(sbx_find(&FX->srv, &FX->alice, sb->row.id) == sb);
	assert_null(sbx_find(&FX->srv, &FX->bob, "dev"));     /* users do not see each other's */
	assert_null(sbx_agent(sb));                           /* (no guest in the fake) */

	/* the same name again: that one, no second create */
	struct rec again = { 0 };
	struct sbx_create req = { .name = (char *)"dev" };
	struct sbx *same = NULL;
	bool existing = false;
	assert_int_equal(sbx_create(&FX->srv, &FX->alice, &req, rec_done, &again, &existing,
				    &same, &e), 0);
	assert_true(existing);
	assert_true(same == sb);
	settle();
	assert_int_equal(again.calls, 0);
	assert_int_equal(fake_calls(OP_CREATE), 1);

	/* bob may use the name too; a name that is no hostname is not one */
	struct sbx *b = create_as(&FX->bob, "dev", &again, &rc, &e);
	assert_non_null(b);
	assert_true(b != sb);
	struct sbx *odd = create_as(&FX->bob, "My_Box.1", &r, &rc, &e);
	assert_non_null(odd);
	assert_string_equal(odd->vm->spec.hostname, odd->row.id);
	/* no name: sb-<id> */
	struct sbx *anon = create_as(&FX->bob, NULL, &r, &rc, &e);
	assert_non_null(anon);
	char want[64];
	snprintf(want, sizeof(want), "sb-%s", anon->row.id);
	assert_string_equal(anon->row.name, want);
	settle();
}

static void test_create_refused(void **state UNUSED)
{
	struct rec r = { 0 };
	struct err e = ERR_INIT;
	int rc;
	struct sbx_create big = { .name = (char *)"big", .cpus = 3 };
	struct sbx_create fat = { .name = (char *)"fat", .memory_mb = 2048 };
	struct sbx_create img = { .name = (char *)"img", .image = (char *)"nope" };
	struct sbx *sb = NULL;
	bool existing;

	assert_null(create_as(&FX->alice, "-bad", &r, &rc, &e));
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(e.msg, "invalid sandbox name '-bad'"));
	assert_int_equal(sbx_create(&FX->srv, &FX->alice, &big, rec_done, &r, &existing, &sb, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "quota: at most 2 cpus per sandbox for user 'alice'");
	assert_int_equal(sbx_create(&FX->srv, &FX->alice, &fat, rec_done, &r, &existing, &sb, &e),
			 -EINVAL);
	assert_non_null(strstr(e.msg, "at most 1024 MB"));
	/* the engine refuses it: no row is left */
	assert_int_equal(sbx_create(&FX->srv, &FX->alice, &img, rec_done, &r, &existing, &sb, &e),
			 -ENOENT);
	assert_non_null(strstr(e.msg, "no image 'nope'"));
	struct sandbox_row *rows;
	size_t n;
	assert_int_equal(store_sandbox_list(FX->srv.store, FX->alice.id, &rows, &n, &e), 0);
	assert_int_equal(n, 0);
	sandbox_row_array_free(rows, n);
	assert_null(FX->srv.sandboxes);

	/* quota: three each */
	for (int i = 0; i < 3; i++) {
		char name[8];
		snprintf(name, sizeof(name), "q%d", i);
		hot(name);
	}
	assert_null(create_as(&FX->alice, "q3", &r, &rc, &e));
	assert_int_equal(rc, -EDQUOT);
	assert_string_equal(e.msg, "quota: user 'alice' may have at most 3 sandboxes");
	assert_int_equal(r.calls, 0);
}

/* A create that fails in the engine takes its row with it. */
static void test_create_fails(void **state UNUSED)
{
	struct rec r = { 0 };
	struct err e = ERR_INIT;
	int rc;
	fake_script(NULL, OP_CREATE, FAKE_FAIL);
	struct sbx *sb = create_as(&FX->alice, "doomed", &r, &rc, &e);
	assert_non_null(sb);
	char id[VALID_SANDBOX_ID_LEN + 1];
	snprintf(id, sizeof(id), "%s", sb->row.id);
	assert_true(row_exists(id, NULL));
	wait_rec(&r);
	assert_int_equal(r.rc, -EIO);
	assert_string_equal(r.e.msg, "fake: create failed");
	settle();
	assert_false(row_exists(id, NULL));
	assert_null(sbx_find(&FX->srv, &FX->alice, "doomed"));
	assert_null(engine_find(FX->srv.eng, id));
	assert_null(FX->srv.sandboxes);
	hot("doomed"); /* the name is free again */
}

static void test_create_with_secrets(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct rec r = { 0 };
	put_secret(&FX->alice, "TOKEN", "s3cret");
	put_secret(&FX->alice, "OTHER", "x=y");
	put_secret(&FX->bob, "BOBS", "no");
	char *names[] = { (char *)"TOKEN", NULL };
	char *env[] = { (char *)"A=1", NULL };
	struct sbx_create req = { .name = (char *)"sec", .secrets = names, .env = env };
	struct sbx *sb = NULL;
	bool existing;
	fake_script(NULL, OP_CREATE, FAKE_HANG); /* look at the spec while it is there */
	assert_int_equal(sbx_create(&FX->srv, &FX->alice, &req, rec_done, &r, &existing, &sb, &e),
			 0);
	assert_string_equal(sb->vm->spec.secrets[0], "TOKEN=s3cret");
	assert_null(sb->vm->spec.secrets[1]);
	assert_string_equal(sb->vm->spec.env[0], "A=1");
	fake_release(sb->vm);
	wait_rec(&r);
	assert_int_equal(r.rc, 0);
	assert_null(sb->vm->spec.secrets); /* wiped once the guest has them */

	struct sbx_create all = { .name = (char *)"all", .all_secrets = true };
	fake_script(NULL, OP_CREATE, FAKE_HANG);
	assert_int_equal(sbx_create(&FX->srv, &FX->alice, &all, rec_done, &r, &existing, &sb, &e),
			 0);
	assert_int_equal(strv_len(sb->vm->spec.secrets), 2); /* alice's, not bob's */
	fake_release(sb->vm);
	settle();

	char *missing[] = { (char *)"BOBS", NULL };
	struct sbx_create bad = { .name = (char *)"bad", .secrets = missing };
	assert_int_equal(sbx_create(&FX->srv, &FX->alice, &bad, rec_done, &r, &existing, &sb, &e),
			 -EINVAL);
	assert_string_equal(e.msg, "no secret 'BOBS' (see 'bhatti secret list')");
	assert_null(sbx_find(&FX->srv, &FX->alice, "bad"));
}

/* ---- states, wake, waiters ---------------------------------------------------------- */

static void test_states_and_wake(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct sbx *sb = hot("w");
	struct rec r = { 0 };

	/* hot: at once */
	sbx_wake(sb, rec_done, &r);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.rc, 0);

	/* warm (the thermal manager paused it): resumed */
	assert_int_equal(vm_pause_sync(sb->vm, &e), 0);
	assert_string_equal(sbx_state(sb), "warm");
	memset(&r, 0, sizeof(r));
	sbx_wake(sb, rec_done, &r);
	assert_int_equal(r.calls, 0);
	assert_true(sb->busy);
	wait_rec(&r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.state, "hot");
	assert_false(sb->busy);

	/* cold (stopped by the daemon, not the user): restored */
	assert_int_equal(vm_stop_sync(sb->vm, &e), 0);
	assert_string_equal(sbx_state(sb), "cold");
	memset(&r, 0, sizeof(r));
	unsigned starts = fake_calls(OP_START);
	sbx_wake(sb, rec_done, &r);
	assert_string_equal(sbx_state(sb), "starting");
	wait_rec(&r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.state, "hot");
	assert_int_equal(fake_calls(OP_START), starts + 1);

	/* stopped by the user: woken as well (a request that needs the guest
	 * starts it), and no longer stopped */
	struct rec stop = { 0 };
	assert_int_equal(sbx_stop(sb, rec_done, &stop, &e), 0);
	assert_string_equal(sbx_state(sb), "stopping");
	wait_rec(&stop);
	assert_string_equal(sbx_state(sb), "stopped");
	assert_string_equal(sbx_thermal(sb), "cold");
	memset(&r, 0, sizeof(r));
	sbx_wake(sb, rec_done, &r);
	wait_rec(&r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.state, "hot");
	assert_false(sb->row.stopped);
	assert_int_equal(sb->row.thermal.wake_count, 3);   /* warm, cold, stopped */
	struct sandbox_row row;
	for (int i = 0; i < 40; i++)   /* (the wake's record is written a moment later) */
		loop_run_once(10);
	assert_int_equal(store_sandbox_get(FX->srv.store, sb->row.id, &row, &e), 0);
	assert_false(row.stopped);
	assert_int_equal(row.thermal.wake_count, 3);
	assert_int_equal(row.thermal.warm_since, 0);
	sandbox_row_release(&row);

	/* failed: only destroy helps */
	struct rec start = { 0 };
	assert_int_equal(sbx_start(sb, rec_done, &start, &e), 0);
	wait_rec(&start);
	fake_crash(sb->vm, "QEMU was killed by signal 9");
	assert_string_equal(sbx_state(sb), "error");
	memset(&r, 0, sizeof(r));
	sbx_wake(sb, rec_done, &r);
	assert_int_equal(r.rc, -ENOTCONN);
	assert_string_equal(r.e.msg, "sandbox 'w' failed: QEMU was killed by signal 9; destroy it");
	assert_int_equal(sbx_stop(sb, rec_done, &r, &e), -ENOTCONN);
	assert_int_equal(sbx_start(sb, rec_done, &r, &e), -ENOTCONN);
}

/* Many wait for one operation; each is told once; a cancelled one never. */
static void test_waiters(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct sbx *sb = hot("many");
	assert_int_equal(vm_stop_sync(sb->vm, &e), 0); /* cold */
	struct rec w[4] = { 0 };
	for (int i = 0; i < 4; i++)
		sbx_wake(sb, rec_done, &w[i]);
	sbx_cancel_wait(sb, &w[2]);
	wait_rec(&w[0]);
	settle();
	assert_int_equal(fake_calls(OP_START), 1);  /* one restore for all */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(w[i].calls, i == 2 ? 0 : 1);
		if (i != 2)
			assert_int_equal(w[i].rc, 0);
	}

	/* a wake that comes while the user stops it starts it again */
	struct rec stop = { 0 }, wake = { 0 };
	fake_script(vm_id(sb->vm), OP_STOP, FAKE_HANG);
	assert_int_equal(sbx_stop(sb, rec_done, &stop, &e), 0);
	sbx_wake(sb, rec_done, &wake);
	assert_int_equal(wake.calls, 0);
	/* one operation at a time */
	struct rec busy = { 0 };
	assert_int_equal(sbx_start(sb, rec_done, &busy, &e), -EBUSY);
	assert_string_equal(e.msg, "sandbox 'many' is busy (stopping); try again");
	assert_true(sb->row.stopped);   /* a refused start leaves the user's stop */
	assert_int_equal(sbx_stop(sb, rec_done, &busy, &e), -EBUSY);
	fake_release(sb->vm);
	wait_rec(&stop);
	settle();
	assert_int_equal(stop.rc, 0);
	assert_int_equal(wake.calls, 1);
	assert_int_equal(wake.rc, 0);
	assert_string_equal(sbx_state(sb), "hot");
	assert_int_equal(busy.calls, 0);
	assert_int_equal(vm_stop_sync(sb->vm, &e), 0);

	/* a failed operation: its waiters get the error; the sandbox stays */
	struct rec start = { 0 }, wake2 = { 0 };
	fake_script(vm_id(sb->vm), OP_START, FAKE_FAIL);
	assert_int_equal(sbx_start(sb, rec_done, &start, &e), 0);
	wait_rec(&start);
	assert_int_equal(start.rc, -EIO);
	assert_int_equal(vm_state(sb->vm), VM_STOPPED);
	/* (the user asked for it to run: no longer "stopped" but cold, and a
	 * wake restores it) */
	assert_string_equal(sbx_state(sb), "cold");
	sbx_wake(sb, rec_done, &wake2);
	wait_rec(&wake2);
	assert_int_equal(wake2.rc, 0);
	assert_string_equal(sbx_state(sb), "hot");
}

/* At most thermal.max_concurrent_wakes restores at once (then -EAGAIN);
 * a failed wake leaves the sandbox in error until a start with force. */
static void test_wake_limits_and_failure(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct sbx *a = hot("a"), *b = hot("b");
	assert_int_equal(vm_stop_sync(a->vm, &e), 0);
	assert_int_equal(vm_stop_sync(b->vm, &e), 0);
	FX->srv.cfg.thermal.max_concurrent_wakes = 1;
	struct rec ra = { 0 }, ra2 = { 0 }, rb = { 0 };
	fake_script(vm_id(a->vm), OP_START, FAKE_HANG);
	sbx_wake(a, rec_done, &ra);
	sbx_wake(a, rec_done, &ra2);   /* the same wake */
	sbx_wake(b, rec_done, &rb);
	assert_int_equal(rb.calls, 1);
	assert_int_equal(rb.rc, -EAGAIN);
	assert_string_equal(rb.e.msg, "too many sandboxes are waking at once (at most 1, "
			    "'thermal.max_concurrent_wakes'); retry in a moment");
	assert_string_equal(sbx_state(b), "cold");
	fake_release(a->vm);
	wait_rec(&ra);
	wait_rec(&ra2);
	assert_int_equal(ra.rc, 0);
	assert_int_equal(ra2.rc, 0);
	assert_int_equal(FX->srv.cold_wakes, 0);
	memset(&rb, 0, sizeof(rb));
	sbx_wake(b, rec_done, &rb);
	wait_rec(&rb);
	assert_int_equal(rb.rc, 0);

	/* a wake that fails: error, with the reason, kept in the store */
	assert_int_equal(vm_stop_sync(b->vm, &e), 0);
	fake_script(vm_id(b->vm), OP_START, FAKE_FAIL);
	memset(&rb, 0, sizeof(rb));
	sbx_wake(b, rec_done, &rb);
	wait_rec(&rb);
	assert_true(rb.rc < 0);
	assert_string_equal(sbx_state(b), "error");
	assert_non_null(b->row.thermal.wake_error);
	assert_string_equal(sbx_error(b), b->row.thermal.wake_error);
	struct sandbox_row row;
	assert_int_equal(store_sandbox_get(FX->srv.store, b->row.id, &row, &e), 0);
	assert_non_null(row.thermal.wake_error);
	sandbox_row_release(&row);
	/* ... later wakes and a plain start say how to retry */
	memset(&rb, 0, sizeof(rb));
	sbx_wake(b, rec_done, &rb);
	assert_int_equal(rb.rc, -ENOTCONN);
	assert_non_null(strstr(rb.e.msg, "retry with 'bhatti start --force b'"));
	assert_int_equal(sbx_start(b, rec_done, &rb, &e), -ENOTCONN);
	/* ... a start with force retries */
	sbx_clear_wake_error(b);
	memset(&rb, 0, sizeof(rb));
	assert_int_equal(sbx_start(b, rec_done, &rb, &e), 0);
	wait_rec(&rb);
	assert_int_equal(rb.rc, 0);
	assert_string_equal(sbx_state(b), "hot");
	for (int i = 0; i < 40; i++)
		loop_run_once(10);
	assert_int_equal(store_sandbox_get(FX->srv.store, b->row.id, &row, &e), 0);
	assert_null(row.thermal.wake_error);
	sandbox_row_release(&row);
}

/* keep_hot is kept in the store; turning it on wakes the sandbox. */
static void test_keep_hot(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct sbx *sb = hot("kh");
	assert_int_equal(vm_pause_sync(sb->vm, &e), 0);
	assert_int_equal(sbx_set_keep_hot(sb, true, &e), 0);
	assert_true(sb->busy);   /* waking */
	settle();
	assert_string_equal(sbx_state(sb), "hot");
	struct sandbox_row row;
	assert_int_equal(store_sandbox_get(FX->srv.store, sb->row.id, &row, &e), 0);
	assert_true(row.keep_hot);
	sandbox_row_release(&row);
	assert_int_equal(sbx_set_keep_hot(sb, false, &e), 0);
	assert_int_equal(store_sandbox_get(FX->srv.store, sb->row.id, &row, &e), 0);
	assert_false(row.keep_hot);
	sandbox_row_release(&row);
}

/* ---- stop and start ---------------------------------------------------------------- */

static void test_stop_start(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct sbx *sb = hot("ss");
	struct rec r = { 0 };
	struct sandbox_row row;

	assert_int_equal(sbx_stop(sb, rec_done, &r, &e), 0);
	assert_true(row_exists(sb->row.id, &row)); /* recorded before the VM stops */
	assert_true(row.stopped);
	sandbox_row_release(&row);
	wait_rec(&r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.state, "stopped");
	memset(&r, 0, sizeof(r));
	assert_int_equal(sbx_stop(sb, rec_done, &r, &e), 0); /* stopped already: fine */
	wait_rec(&r);
	assert_int_equal(r.rc, 0);

	memset(&r, 0, sizeof(r));
	assert_int_equal(sbx_start(sb, rec_done, &r, &e), 0);
	assert_true(row_exists(sb->row.id, &row));
	assert_false(row.stopped);
	sandbox_row_release(&row);
	assert_string_equal(sbx_state(sb), "starting");
	wait_rec(&r);
	assert_string_equal(r.state, "hot");

	/* start of a warm one resumes it */
	assert_int_equal(vm_pause_sync(sb->vm, &e), 0);
	unsigned resumes = fake_calls(OP_RESUME);
	memset(&r, 0, sizeof(r));
	assert_int_equal(sbx_start(sb, rec_done, &r, &e), 0);
	wait_rec(&r);
	assert_string_equal(r.state, "hot");
	assert_int_equal(fake_calls(OP_RESUME), resumes + 1);

	/* a failed stop is the caller's error; the sandbox runs on */
	fake_script(vm_id(sb->vm), OP_STOP, FAKE_FAIL);
	memset(&r, 0, sizeof(r));
	assert_int_equal(sbx_stop(sb, rec_done, &r, &e), 0);
	wait_rec(&r);
	assert_int_equal(r.rc, -EIO);
	assert_int_equal(vm_state(sb->vm), VM_RUNNING);
	assert_false(sb->busy);
	/* ... and is not recorded as the user's stopped one (it would not
	 * be woken after a cold stop by the thermal manager, nor after a
	 * restart) */
	assert_false(sb->row.stopped);
	assert_true(row_exists(sb->row.id, &row));
	assert_false(row.stopped);
	sandbox_row_release(&row);
}

/* A stop is refused while the user's cold snapshots take the quota
 * already: the sandbox runs on, not recorded as stopped. */
static void test_snapshot_quota(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct sbx *a = hot("qa"), *b = hot("qb");
	struct rec r = { 0 };
	FX->srv.cfg.limits.max_snapshot_disk = FAKE_SNAPSHOT_BYTES;
	assert_int_equal(sbx_stop(a, rec_done, &r, &e), 0);
	wait_rec(&r);
	assert_string_equal(r.state, "stopped");
	memset(&r, 0, sizeof(r));
	assert_int_equal(sbx_stop(b, rec_done, &r, &e), -EDQUOT);
	assert_non_null(strstr(err_str(&e), "max_snapshot_disk"));
	assert_string_equal(sbx_state(b), "hot");
	assert_false(b->row.stopped);
	/* a stopped one stops again (no new snapshot), and once a's
	 * snapshot is gone b may stop */
	assert_int_equal(sbx_stop(a, rec_done, &r, &e), 0);
	wait_rec(&r);
	memset(&r, 0, sizeof(r));
	assert_int_equal(sbx_start(a, rec_done, &r, &e), 0);
	wait_rec(&r);
	memset(&r, 0, sizeof(r));
	assert_int_equal(sbx_stop(b, rec_done, &r, &e), 0);
	wait_rec(&r);
	assert_string_equal(r.state, "stopped");
	FX->srv.cfg.limits.max_snapshot_disk = 0;
}

/* No room in the memory budget: a create leaves no row, a start leaves the
 * sandbox stopped as the user left it. */
static void test_no_room(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct sbx *sb = hot("nr");
	struct rec r = { 0 };
	struct sandbox_row row;
	int rc;
	assert_int_equal(sbx_stop(sb, rec_done, &r, &e), 0);
	wait_rec(&r);
	fake_set_full(true);
	assert_null(create_as(&FX->alice, "nr2", &r, &rc, &e));
	assert_int_equal(rc, -EAGAIN);
	assert_null(sbx_find(&FX->srv, &FX->alice, "nr2"));
	memset(&r, 0, sizeof(r));
	assert_int_equal(sbx_start(sb, rec_done, &r, &e), -EAGAIN);
	assert_string_equal(sbx_state(sb), "stopped");
	assert_true(sb->row.stopped);
	assert_true(row_exists(sb->row.id, &row));
	assert_true(row.stopped);
	sandbox_row_release(&row);
	fake_set_full(false);
	assert_int_equal(sbx_start(sb, rec_done, &r, &e), 0);
	wait_rec(&r);
	assert_string_equal(r.state, "hot");
}

/* ---- destroy ---------------------------------------------------------------------- */

static void test_destroy(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct sbx *sb = hot("gone");
	struct rec r = { 0 };
	char id[VALID_SANDBOX_ID_LEN + 1];
	snprintf(id, sizeof(id), "%s", sb->row.id);

	fake_script(id, OP_DESTROY, FAKE_HANG);
	assert_int_equal(sbx_destroy(sb, rec_done, &r, &e), 0);
	assert_string_equal(sbx_state(sb), "destroying");
	assert_null(sbx_find(&FX->srv, &FX->alice, "gone")); /* invisible at once */
	assert_int_equal(sbx_destroy(sb, rec_done, &r, &e), -EBUSY);
	assert_true(row_exists(id, NULL));   /* until the VM is gone */
	struct rec wake = { 0 };
	sbx_wake(sb, rec_done, &wake);
	assert_int_equal(wake.rc, -ENOENT);
	fake_release(sb->vm);
	wait_rec(&r);
	assert_int_equal(r.rc, 0);
	assert_false(row_exists(id, NULL));
	assert_null(engine_find(FX->srv.eng, id));
	settle();
	assert_null(FX->srv.sandboxes);

	/* a destroy that fails leaves the sandbox, in error */
	sb = hot("stays");
	fake_script(vm_id(sb->vm), OP_DESTROY, FAKE_FAIL);
	memset(&r, 0, sizeof(r));
	assert_int_equal(sbx_destroy(sb, rec_done, &r, &e), 0);
	wait_rec(&r);
	assert_int_equal(r.rc, -EIO);
	assert_true(sbx_find(&FX->srv, &FX->alice, "stays") == sb);
	assert_string_equal(sbx_state(sb), "error");
	memset(&r, 0, sizeof(r));
	assert_int_equal(sbx_destroy(sb, rec_done, &r, &e), 0);
	wait_rec(&r);
	assert_int_equal(r.rc, 0);
	assert_null(sbx_find(&FX->srv, &FX->alice, "stays"));
}

/* A destroy preempts what runs: its waiters are told, the destroy wins. */
static void test_destroy_preempts(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct sbx *sb = hot("pre");
	struct rec stop = { 0 }, wake = { 0 }, gone = { 0 };
	char id[VALID_SANDBOX_ID_LEN + 1];
	snprintf(id, sizeof(id), "%s", sb->row.id);
	fake_script(id, OP_STOP, FAKE_HANG);
	assert_int_equal(sbx_stop(sb, rec_done, &stop, &e), 0);
	sbx_wake(sb, rec_done, &wake);
	assert_int_equal(sbx_destroy(sb, rec_done, &gone, &e), 0);
	assert_int_equal(stop.calls, 1);
	assert_int_equal(stop.rc, -ECANCELED);
	assert_int_equal(wake.calls, 1);     /* looked again: it is being destroyed */
	assert_int_equal(wake.rc, -ENOENT);
	wait_rec(&gone);
	assert_int_equal(gone.rc, 0);
	assert_false(row_exists(id, NULL));
	settle();
	assert_int_equal(stop.calls, 1);
	assert_int_equal(wake.calls, 1);

	/* and a create in flight */
	struct rec made = { 0 };
	int rc;
	fake_script(NULL, OP_CREATE, FAKE_HANG);
	sb = create_as(&FX->alice, "young", &made, &rc, &e);
	assert_non_null(sb);
	snprintf(id, sizeof(id), "%s", sb->row.id);
	memset(&gone, 0, sizeof(gone));
	assert_int_equal(sbx_destroy(sb, rec_done, &gone, &e), 0);
	assert_int_equal(made.calls, 1);
	assert_int_equal(made.rc, -ECANCELED);
	wait_rec(&gone);
	assert_int_equal(gone.rc, 0);
	assert_false(row_exists(id, NULL));
	settle();
	assert_null(FX->srv.sandboxes);
}

static void test_rename(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct sbx *a = hot("a"), *b = hot("b");
	assert_int_equal(sbx_rename(a, "alpha", &e), 0);
	assert_true(sbx_find(&FX->srv, &FX->alice, "alpha") == a);
	assert_null(sbx_find(&FX->srv, &FX->alice, "a"));
	struct sandbox_row row;
	assert_true(row_exists(a->row.id, &row));
	assert_string_equal(row.name, "alpha");
	sandbox_row_release(&row);
	assert_int_equal(sbx_rename(b, "alpha", &e), -EEXIST);
	assert_string_equal(e.msg, "you already have a sandbox named 'alpha'");
	assert_int_equal(sbx_rename(b, "no way", &e), -EINVAL);
	assert_string_equal(b->row.name, "b");
}

/* ---- start-up: reconciling the store with what the engine adopted ------------------- */

static void add_row(const char *id, const char *name, bool stopped)
{
	struct err e = ERR_INIT;
	struct sandbox_row row = { .id = (char *)id, .user_id = FX->alice.id, .name = (char *)name,
				   .cpus = 1, .memory_mb = 512, .image = (char *)"tiny",
				   .created_at = 1, .stopped = stopped };
	assert_int_equal(store_sandbox_insert(FX->srv.store, &row, &e), 0);
}

static void test_init_reconciles(void **state UNUSED)
{
	struct err e = ERR_INIT;
	char id[8][VALID_SANDBOX_ID_LEN + 1];
	for (int i = 0; i < 8; i++)
		sbx_new_id(id[i]);
	/* the daemon stops; this is what it left */
	engine_free(FX->srv.eng);
	sbx_release_all(&FX->srv);
	loop_run_once(0);
	add_row(id[0], "running", false);   fake_adopt(id[0], VM_RUNNING, false);
	add_row(id[1], "no-vm", false);     /* a create cut short before its VM */
	add_row(id[2], "half", false);      fake_adopt(id[2], VM_FAILED, true); /* cut short after */
	fake_adopt(id[3], VM_RUNNING, false);                                   /* no row */
	add_row(id[4], "broken", false);    fake_adopt(id[4], VM_FAILED, false);
	add_row(id[5], "user-stopped", true); fake_adopt(id[5], VM_STOPPED, false);
	add_row(id[6], "cold", false);      fake_adopt(id[6], VM_STOPPED, false);
	add_row(id[7], "warm", false);      fake_adopt(id[7], VM_PAUSED, false);
	assert_int_equal(open_engine(FX), 0);
	assert_int_equal(sbx_init(&FX->srv, &e), 0);
	settle();

	static const struct { int i; const char *name, *state; } kept[] = {
		{ 0, "running", "hot" }, { 4, "broken", "error" }, { 5, "user-stopped", "stopped" },
		{ 6, "cold", "cold" }, { 7, "warm", "warm" },
	};
	for (size_t k = 0; k < ARRAY_SIZE(kept); k++) {
		struct sbx *sb = sbx_find(&FX->srv, &FX->alice, kept[k].name);
		if (!sb)
			fail_msg("'%s' was not kept", kept[k].name);
		assert_string_equal(sb->row.id, id[kept[k].i]);
		assert_string_equal(sbx_state(sb), kept[k].state);
		assert_true(row_exists(id[kept[k].i], NULL));
		assert_non_null(engine_find(FX->srv.eng, id[kept[k].i]));
	}
	static const int dropped[] = { 1, 2, 3 };
	for (size_t k = 0; k < ARRAY_SIZE(dropped); k++) {
		assert_false(row_exists(id[dropped[k]], NULL));
		assert_null(engine_find(FX->srv.eng, id[dropped[k]]));
	}
	assert_null(sbx_find(&FX->srv, &FX->alice, "no-vm"));
	assert_null(sbx_find(&FX->srv, &FX->alice, "half"));
	assert_int_equal(fake_calls(OP_DESTROY), 2); /* the orphan and the half-made one */

	/* and what was kept works */
	struct rec r = { 0 };
	sbx_wake(sbx_find(&FX->srv, &FX->alice, "cold"), rec_done, &r);
	wait_rec(&r);
	assert_int_equal(r.rc, 0);
}

/* ---- named snapshots and fork: what is refused leaves nothing ------------------- */

static int count_snapshot_rows(void)
{
	struct snapshot_row *v = NULL;
	size_t n = 0;
	struct err e = ERR_INIT;
	assert_int_equal(store_snapshot_list(FX->srv.store, -1, &v, &n, &e), 0);
	snapshot_row_array_free(v, n);
	return (int)n;
}

static int count_dir(const char *dir)
{
	char *cmd = test_strf("ls -A '%s' 2>/dev/null | wc -l", dir);
	FILE *f = popen(cmd, "r");
	int n = -1;
	if (f && fscanf(f, "%d", &n) != 1)
		n = -1;
	if (f)
		pclose(f);
	free(cmd);
	return n;
}

static void snap_rec(int rc, const struct err *e UNUSED, const struct snapshot_row *row UNUSED,
		     void *arg)
{
	*(int *)arg = rc ? rc : 1;
}

/* The fake engine copies nothing (ENOTSUP), as a failing engine: every
 * refusal, before or in the engine, leaves no row, no directory, no VM,
 * and the source not busy. */
static void test_copies_refused(void **state UNUSED)
{
	struct sbx *src = hot("src");
	struct err e = ERR_INIT;
	struct snap_op *op = NULL;
	int done = 0;
	char *udir = test_strf("%s/snapshots/%lld", FX->dir, (long long)FX->alice.id);
	assert_int_equal(snap_create(&FX->srv, &FX->alice, src, "s1", "{\"k\":\"v\"}", snap_rec,
				     &done, &op, &e), -ENOTSUP);
	assert_int_equal(snap_create(&FX->srv, &FX->alice, src, "a b", NULL, snap_rec, &done, &op,
				     &e), -EINVAL);
	FX->srv.cfg.limits.max_snapshots = 0;
	assert_int_equal(snap_create(&FX->srv, &FX->alice, src, "s2", NULL, snap_rec, &done, &op,
				     &e), -EDQUOT);
	assert_non_null(strstr(e.msg, "snapshot limit reached (0/0"));
	settle();
	assert_int_equal(done, 0);
	assert_int_equal(count_snapshot_rows(), 0);
	assert_true(count_dir(udir) <= 0);
	assert_false(src->busy);

	struct rec r = { 0 };
	struct sbx *copy = NULL;
	assert_int_equal(snap_fork(&FX->srv, &FX->alice, src, "f1", rec_done, &r, &copy, &e),
			 -ENOTSUP);
	assert_int_equal(snap_resume(&FX->srv, &FX->alice, "nope", "r1", rec_done, &r, &copy, &e),
			 -ENOENT);
	settle();
	assert_int_equal(r.calls, 0);
	assert_null(sbx_find(&FX->srv, &FX->alice, "f1"));
	assert_null(sbx_find(&FX->srv, &FX->alice, "r1"));
	int64_t n = 0;
	assert_int_equal(store_sandbox_count(FX->srv.store, FX->alice.id, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_false(src->busy);
	/* the sandbox quota comes first: alice may have 3 */
	hot("two");
	hot("three");
	assert_int_equal(snap_fork(&FX->srv, &FX->alice, src, "f2", rec_done, &r, &copy, &e),
			 -EDQUOT);
	free(udir);
}

/* At start-up: a row never made ready goes with its files; files no ready
 * row names go; a ready row and its files stay. */
static void test_snap_init_reconciles(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct snapshot_row keep = { .id = (char *)"aaaaaaaaaaaa", .user_id = FX->alice.id,
				     .name = (char *)"keep", .image = (char *)"tiny", .cpus = 1,
				     .memory_mb = 512 };
	struct snapshot_row cut = keep;
	cut.id = (char *)"bbbbbbbbbbbb";
	cut.name = (char *)"cut";
	assert_int_equal(store_snapshot_insert(FX->srv.store, &keep, 5, &e), 0);
	assert_int_equal(store_snapshot_set_ready(FX->srv.store, keep.id, 1, &e), 0);
	assert_int_equal(store_snapshot_insert(FX->srv.store, &cut, 5, &e), 0);
	const char *dirs[] = { "aaaaaaaaaaaa", "bbbbbbbbbbbb", "bbbbbbbbbbbb.part", "cccccccccccc" };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		char *d = test_strf("%s/snapshots/%lld/%s", FX->dir, (long long)FX->alice.id, dirs[i]);
		assert_int_equal(mkdir_p(d, 0700), 0);
		free(d);
	}
	assert_int_equal(snap_init(&FX->srv, &e), 0);
	struct snapshot_row got = { 0 };
	assert_int_equal(store_snapshot_find(FX->srv.store, FX->alice.id, "keep", &got, &e), 0);
	snapshot_row_release(&got);
	assert_int_equal(store_snapshot_find(FX->srv.store, FX->alice.id, "cut", &got, &e), -ENOENT);
	char *udir = test_strf("%s/snapshots/%lld", FX->dir, (long long)FX->alice.id);
	assert_int_equal(count_dir(udir), 1);
	char *kept = test_strf("%s/aaaaaaaaaaaa", udir);
	assert_int_equal(access(kept, F_OK), 0);
	free(kept);
	free(udir);
}

/* ---- published ports (publish.c over this core) ------------------------------- */

static void base_is(const char *name, const char *want)
{
	char out[64];
	pub_alias_base(name, out, sizeof(out));
	assert_string_equal(out, want);
}

static void test_publish(void **state UNUSED)
{
	base_is("web", "web");
	base_is("My_App.v2", "my-app-v2");
	base_is("--x__y--", "x-y");
	base_is("_", "sb");
	base_is("a123456789012345678901234567890123456789012345678901234567890",
		"a1234567890123456789012345678901234567890123456789012345");   /* 56 */

	struct sbx *sb = hot("My_App.v2");
	struct publish_row p, q;
	struct err e = ERR_INIT;
	bool existing = true;
	assert_int_equal(pub_add(sb, 3000, NULL, &p, &existing, &e), 0);
	assert_false(existing);
	assert_int_equal(strncmp(p.alias, "my-app-v2-", 10), 0);
	assert_int_equal(strlen(p.alias), 16);
	assert_int_equal(strspn(p.alias + 10, "0123456789abcdef"), 6);
	/* again: the same rule; another alias for it: refused */
	assert_int_equal(pub_add(sb, 3000, NULL, &q, &existing, &e), 0);
	assert_true(existing);
	assert_string_equal(q.alias, p.alias);
	publish_row_release(&q);
	assert_int_equal(pub_add(sb, 3000, "other", &q, &existing, &e), -EEXIST);
	assert_int_equal(pub_add(sb, 0, NULL, &q, &existing, &e), -EINVAL);
	assert_int_equal(pub_add(sb, 80, "www", &q, &existing, &e), -EINVAL);
	assert_int_equal(pub_add(sb, 80, "Bad", &q, &existing, &e), -EINVAL);
	assert_int_equal(pub_add(sb, 8080, "mine", &q, &existing, &e), 0);
	publish_row_release(&q);

	/* bob cannot take alice's alias */
	struct rec r = { 0 };
	int rc;
	struct sbx *bs = create_as(&FX->bob, "b", &r, &rc, &e);
	assert_non_null(bs);
	wait_rec(&r);
	assert_int_equal(pub_add(bs, 80, "mine", &q, &existing, &e), -EEXIST);
	assert_string_equal(e.msg, "alias 'mine' is taken; pick another");

	/* resolve; remove; destroy removes the rest */
	struct sbx *got;
	uint16_t port;
	assert_int_equal(pub_resolve(&FX->srv, "mine", &got, &port), 0);
	assert_ptr_equal(got, sb);
	assert_int_equal(port, 8080);
	assert_int_equal(pub_remove(sb, 8080, &e), 0);
	assert_int_equal(pub_remove(sb, 8080, &e), -ENOENT);
	assert_int_equal(pub_resolve(&FX->srv, "mine", &got, &port), -ENOENT);
	assert_int_equal(pub_resolve(&FX->srv, p.alias, &got, &port), 0);
	struct rec d = { 0 };
	assert_int_equal(sbx_destroy(sb, rec_done, &d, &e), 0);
	/* invisible at once */
	assert_int_equal(pub_resolve(&FX->srv, p.alias, &got, &port), -ENOENT);
	wait_rec(&d);
	struct publish_row row;
	assert_int_equal(store_publish_get(FX->srv.store, p.alias, &row, &e), -ENOENT);
	publish_row_release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_with_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_states_and_wake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wake_limits_and_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_hot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_preempts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_reconciles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copies_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snap_init_reconciles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish, setup, teardown),
	};
	log_init("test-sandbox", LOG_ERROR);
	if (loop_init() < 0 || sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
