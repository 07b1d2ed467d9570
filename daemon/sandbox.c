/* sandbox.c — the daemon's core for sandboxes: store rows matched with
 * engine VMs, creation with quotas and secrets, waking, stop/start,
 * destroy (see sandbox.h for the states).
 *
 * Sits between the API handlers and the store + engine + secrets key.
 * Crash safety: a row is written before its VM is created and removed
 * after its VM is destroyed, and marked (destroying) before the destroy
 * begins; at start-up sbx_init() reconciles the two (a VM without a row
 * is destroyed, a row without a VM directory is a create that never
 * finished and is dropped, a marked row's destroy is finished).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "acme.h"
#include "engine.h"
#include "events.h"
#include "exectee.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "sandbox.h"
#include "snapshot.h"
#include "thermal.h"
#include "valid.h"

/* Who waits for what: the end of an engine operation (create, stop,
 * start), a wake (then the sandbox is looked at again), or a destroy
 * (which outlives the operations it preempts). */
enum wait_kind { WAIT_OP, WAIT_WAKE, WAIT_DESTROY };

struct sbx_waiter {
	struct sbx_waiter *next;
	enum wait_kind kind;
	sbx_done_fn fn;
	void *arg;
};

static void add_waiter(struct sbx *sb, enum wait_kind kind, sbx_done_fn fn, void *arg)
{
	struct sbx_waiter *w = xcalloc(1, sizeof(*w));
	w->kind = kind;
	w->fn = fn;
	w->arg = arg;
	struct sbx_waiter **pp = &sb->waiters;
	while (*pp)
		pp = &(*pp)->next;
	*pp = w;
}

void sbx_cancel_wait(struct sbx *sb, void *arg)
{
	for (struct sbx_waiter *w = sb->waiters; w; w = w->next)
		if (w->arg == arg)
			w->fn = NULL;
}

static void sbx_free(struct sbx *sb)
{
	timer_cancel(&sb->save);
	thermal_sbx_free(sb);
	exectee_forget(sb->row.id);
	while (sb->waiters) {
		struct sbx_waiter *w = sb->waiters;
		sb->waiters = w->next;
		free(w);
	}
	sandbox_row_release(&sb->row);
	free(sb);
}

static void unlink_sbx(struct sbx *sb)
{
	for (struct sbx **pp = &sb->srv->sandboxes; *pp; pp = &(*pp)->next)
		if (*pp == sb) {
			*pp = sb->next;
			return;
		}
}

void sbx_touch(struct sbx *sb)
{
	sb->row.thermal.last_activity = wall_ms();
}

uint64_t sbx_idle_ms(const struct sbx *sb)
{
	int64_t d = wall_ms() - sb->row.thermal.last_activity;
	return sb->guest_ops || d < 0 ? 0 : (uint64_t)d;
}

/* The thermal record in the store (a failure is logged: it costs a
 * timer's accuracy after a restart, nothing else). */
static void save_thermal(struct sbx *sb)
{
	struct err e = ERR_INIT;
	timer_cancel(&sb->save);
	if (store_sandbox_set_thermal(sb->srv->store, sb->row.id, &sb->row.thermal, &e) < 0)
		log_warn("sandbox '%s': %s", sb->row.id, err_str(&e));
}

static void save_later(struct timer *t)
{
	save_thermal(t->data);
}

/* A wake's record is written SAVE_DELAY_MS later, off the path of the
 * request that waits for the wake (an fsync of the store: ~5-10 ms here).
 * A crash in between loses only the wake count and time (the next
 * daemon sees the VM hot and counts its idle time from then). */
#define SAVE_DELAY_MS 200

static void set_wake_error(struct sbx *sb, const char *why)
{
	free(sb->row.thermal.wake_error);
	sb->row.thermal.wake_error = why ? xstrdup(why) : NULL;
}

void sbx_clear_wake_error(struct sbx *sb)
{
	if (!sb->row.thermal.wake_error)
		return;
	set_wake_error(sb, NULL);
	save_thermal(sb);
}

/* ---- states ---------------------------------------------------------------- */

const char *sbx_origin(const struct sbx *sb)
{
	return sb->vm ? vm_origin(sb->vm) : "";
}

const char *sbx_error(const struct sbx *sb)
{
	if (sb->vm && vm_state(sb->vm) != VM_FAILED && sb->row.thermal.wake_error)
		return sb->row.thermal.wake_error;
	return sb->vm ? vm_error(sb->vm) : "the VM is gone";
}

const char *server_accel(const struct server *srv)
{
	return engine_accel(srv->eng);
}

const char *sbx_state(const struct sbx *sb)
{
	if (sb->destroying)
		return "destroying";
	if (!sb->vm)
		return "error";
	switch (vm_state(sb->vm)) {
	case VM_CREATING: return "creating";
	case VM_RUNNING: return "hot";
	case VM_PAUSED: return sb->row.thermal.wake_error ? "error" : "warm";
	case VM_STOPPING: return "stopping";
	case VM_STOPPED:
		if (sb->row.thermal.wake_error)
			return "error";
		return sb->row.stopped ? "stopped" : "cold";
	case VM_STARTING: return "starting";
	case VM_FAILED: return "error";
	case VM_DESTROYING: return "destroying";
	}
	return "error";
}

const char *sbx_thermal(const struct sbx *sb)
{
	switch (sb->vm ? vm_state(sb->vm) : VM_FAILED) {
	case VM_CREATING:
	case VM_RUNNING:
		return "hot";
	case VM_PAUSED:
		return "warm";
	default:
		return "cold";
	}
}

struct ac *sbx_agent(struct sbx *sb)
{
	return sb->vm && vm_state(sb->vm) == VM_RUNNING ? vm_agent(sb->vm) : NULL;
}

struct sbx *sbx_find(struct server *srv, const struct user *u, const char *name_or_id)
{
	struct sbx *by_id = NULL;
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next) {
		if (sb->row.user_id != u->id || sb->destroying)
			continue;
		if (strcmp(sb->row.name, name_or_id) == 0)
			return sb;
		if (strcmp(sb->row.id, name_or_id) == 0)
			by_id = sb;
	}
	return by_id;
}

/* ---- operations and their waiters -------------------------------------------- */

static void wake_step(struct sbx *sb, sbx_done_fn done, void *arg);

/* An engine operation ended: the op's waiters get its result, wake
 * waiters look again. */
/* The user's "stopped" is recorded before the VM stops (a crash in the
 * middle must not leave it to be woken); a stop that did not happen takes
 * it back. */
static void unstop(struct sbx *sb)
{
	struct err e = ERR_INIT;
	if (!sb->row.stopped || (sb->vm && vm_state(sb->vm) == VM_STOPPED))
		return;
	if (store_sandbox_set_stopped(sb->srv->store, sb->row.id, false, &e) < 0)
		log_warn("sandbox '%s': %s", sb->row.id, err_str(&e));
	else
		sb->row.stopped = false;
}

/* What an operation that ended changed: the wake's record (its time, or
 * why it failed), when it went warm, and the event. */
static void op_record(struct sbx *sb, int rc, const struct err *e)
{
	const char *from = sb->op_from, *to = sbx_state(sb);
	struct sandbox_thermal *t = &sb->row.thermal;
	int64_t wake_ms = -1;
	if (sb->cold_wake) {
		sb->cold_wake = false;
		sb->srv->cold_wakes--;
	}
	if (sb->waking) {
		sb->waking = false;
		if (rc < 0) {
			log_warn("sandbox '%s': wake failed: %s", sb->row.id, err_str(e));
			set_wake_error(sb, err_str(e));
			to = sbx_state(sb);
		} else {
			wake_ms = (int64_t)(now_ms() - sb->wake_started_ms);
			t->wake_count++;
			t->last_wake_ms = wake_ms;
		}
	}
	if (rc == 0 && t->wake_error && strcmp(sbx_thermal(sb), "hot") == 0)
		set_wake_error(sb, NULL);   /* a start (--force) worked */
	bool hot = strcmp(sbx_thermal(sb), "hot") == 0;
	if (hot) {
		t->warm_since = 0;
		sbx_touch(sb);
	} else if (!t->warm_since) {
		t->warm_since = wall_ms();
	}
	if (sb->destroying)
		;
	else if (hot && rc == 0)
		timer_arm(&sb->save, SAVE_DELAY_MS);
	else
		save_thermal(sb);
	if (!from || strcmp(from, to) == 0)
		return;
	struct event *ev = event_new(sb, "sandbox.state");
	event_str(ev, "from", from);
	event_str(ev, "to", to);
	event_str(ev, "thermal", sbx_thermal(sb));
	if (sb->op_reason)
		event_str(ev, "reason", sb->op_reason);
	if (wake_ms >= 0)
		event_int(ev, "wake_ms", wake_ms);
	if (rc < 0)
		event_str(ev, "error", err_str(e));
	events_emit(sb->srv, ev);
}

static void op_done(struct vm *vm UNUSED, int rc, const struct err *e, void *arg)
{
	struct sbx *sb = arg;
	sb->busy = false;
	if (sb->stopping) {
		sb->stopping = false;
		if (rc < 0)
			unstop(sb);
	}
	op_record(sb, rc, e);
	sb->op_from = sb->op_reason = NULL;
	struct sbx_waiter *list = sb->waiters;
	sb->waiters = NULL;
	while (list) {
		struct sbx_waiter *w = list;
		list = w->next;
		if (w->kind == WAIT_DESTROY) {
			/* not this operation's: keep it */
			w->next = NULL;
			struct sbx_waiter **pp = &sb->waiters;
			while (*pp)
				pp = &(*pp)->next;
			*pp = w;
			continue;
		}
		if (w->fn) {
			if (w->kind == WAIT_OP)
				w->fn(sb, rc, e, w->arg);
			else
				wake_step(sb, w->fn, w->arg);
		}
		free(w);
	}
}

/* A restore for a wake may begin: not more than max_concurrent_wakes at
 * once (a burst of requests to many cold sandboxes must not start them
 * all together), and a user-stopped sandbox is no longer stopped. */
static int begin_restore(struct sbx *sb, struct err *e)
{
	struct server *srv = sb->srv;
	if (srv->cold_wakes >= (unsigned)srv->cfg.thermal.max_concurrent_wakes)
		return err_set(e, EAGAIN, "too many sandboxes are waking at once (at most %lld, "
			       "'thermal.max_concurrent_wakes'); retry in a moment",
			       (long long)srv->cfg.thermal.max_concurrent_wakes);
	if (sb->row.stopped) {
		int rc = store_sandbox_set_stopped(srv->store, sb->row.id, false, e);
		if (rc < 0)
			return rc;
		sb->row.stopped = false;
	}
	return 0;
}

static void wake_step(struct sbx *sb, sbx_done_fn done, void *arg)
{
	struct err e = ERR_INIT;
	if (sb->destroying) {
		err_set(&e, ENOENT, "sandbox '%s' is being destroyed", sb->row.name);
		done(sb, -ENOENT, &e, arg);
		return;
	}
	if (!sb->vm) {
		err_set(&e, EIO, "sandbox '%s' is lost (its VM is gone); destroy it", sb->row.name);
		done(sb, -EIO, &e, arg);
		return;
	}
	if (sb->busy) {
		add_waiter(sb, WAIT_WAKE, done, arg);
		return;
	}
	if (sb->row.thermal.wake_error && vm_state(sb->vm) != VM_RUNNING &&
	    vm_state(sb->vm) != VM_FAILED) {
		err_set(&e, ENOTCONN, "sandbox '%s' failed to wake: %s; retry with 'bhatti start "
			"--force %s'", sb->row.name, sb->row.thermal.wake_error, sb->row.name);
		done(sb, -ENOTCONN, &e, arg);
		return;
	}
	int rc = 0;
	const char *from = sbx_state(sb);
	bool cold = false;
	switch (vm_state(sb->vm)) {
	case VM_RUNNING:
		sbx_touch(sb);
		done(sb, 0, NULL, arg);
		return;
	case VM_PAUSED:
		rc = vm_resume(sb->vm, op_done, sb, &e);
		break;
	case VM_STOPPED: {
		bool was_stopped = sb->row.stopped;
		rc = begin_restore(sb, &e);
		if (rc == 0)
			rc = vm_start(sb->vm, op_done, sb, &e);
		struct err ignored = ERR_INIT;
		if (rc < 0 && was_stopped && !sb->row.stopped &&
		    store_sandbox_set_stopped(sb->srv->store, sb->row.id, true, &ignored) == 0)
			sb->row.stopped = true;
		cold = true;
		break;
	}
	case VM_FAILED:
		err_set(&e, ENOTCONN, "sandbox '%s' failed: %s; destroy it", sb->row.name,
			vm_error(sb->vm));
		done(sb, -ENOTCONN, &e, arg);
		return;
	default:
		/* an engine operation we did not start (cannot happen) */
		err_set(&e, EBUSY, "sandbox '%s' is busy (%s)", sb->row.name, sbx_state(sb));
		done(sb, -EBUSY, &e, arg);
		return;
	}
	if (rc < 0) {
		done(sb, rc, &e, arg);
		return;
	}
	sb->busy = true;
	sb->waking = true;
	sb->wake_started_ms = now_ms();
	sb->op_from = from;
	sb->op_reason = "request";
	if (cold) {
		sb->cold_wake = true;
		sb->srv->cold_wakes++;
	}
	add_waiter(sb, WAIT_WAKE, done, arg);
}

void sbx_wake(struct sbx *sb, sbx_done_fn done, void *arg)
{
	wake_step(sb, done, arg);
}

static int run_op(struct sbx *sb, int (*op)(struct vm *, vm_done_fn, void *, struct err *),
		  sbx_done_fn done, void *arg, struct err *e)
{
	if (!sb->vm)
		return err_set(e, EIO, "sandbox '%s' is lost (its VM is gone); destroy it",
			       sb->row.name);
	if (sb->busy)
		return err_set(e, EBUSY, "sandbox '%s' is busy (%s); try again", sb->row.name,
			       sbx_state(sb));
	const char *from = sbx_state(sb);
	int rc = op(sb->vm, op_done, sb, e);
	if (rc < 0)
		return rc;
	sb->busy = true;
	sb->op_from = from;
	if (!sb->op_reason)
		sb->op_reason = "user";
	add_waiter(sb, WAIT_OP, done, arg);
	return 0;
}

int sbx_cool(struct sbx *sb, bool cold, sbx_done_fn done, void *arg, struct err *e)
{
	if (sb->busy || sb->destroying)
		return err_set(e, EBUSY, "sandbox '%s' is busy", sb->row.name);
	sb->op_reason = "idle";
	int rc = run_op(sb, cold ? vm_stop : vm_pause, done, arg, e);
	if (rc < 0)
		sb->op_reason = NULL;
	return rc;
}

static void keep_hot_woke(struct sbx *sb, int rc, const struct err *e, void *arg UNUSED)
{
	if (rc < 0)
		log_warn("sandbox '%s': keep_hot: cannot wake it: %s", sb->row.id, err_str(e));
}

int sbx_set_keep_hot(struct sbx *sb, bool on, struct err *e)
{
	if (sb->row.keep_hot != on) {
		int rc = store_sandbox_set_keep_hot(sb->srv->store, sb->row.id, on, e);
		if (rc < 0)
			return rc;
		sb->row.keep_hot = on;
	}
	if (on && strcmp(sbx_thermal(sb), "hot") != 0)
		sbx_wake(sb, keep_hot_woke, NULL);
	return 0;
}

uint64_t sbx_cold_bytes(struct server *srv, int64_t user_id)
{
	uint64_t n = 0;
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next)
		if (sb->row.user_id == user_id && sb->vm)
			n += vm_snapshot_bytes(sb->vm);
	return n;
}

/* Can the user's stop or start begin? Checked before the user's wish is
 * recorded: a refused one must not change it. */
static int check_op(struct sbx *sb, struct err *e)
{
	if (sb->vm && vm_state(sb->vm) == VM_FAILED)
		return err_set(e, ENOTCONN, "sandbox '%s' failed: %s; destroy it", sb->row.name,
			       vm_error(sb->vm));
	if (sb->busy)
		return err_set(e, EBUSY, "sandbox '%s' is busy (%s); try again", sb->row.name,
			       sbx_state(sb));
	return 0;
}

/* A stop that makes a snapshot may begin while the user's cold snapshots
 * take less than the quota (the size of this one is known only once it is
 * written: it may go past it by that much). */
static int check_snapshot_quota(struct sbx *sb, struct err *e)
{
	uint64_t quota = sb->srv->cfg.limits.max_snapshot_disk;
	bool makes_one = sb->vm && (vm_state(sb->vm) == VM_RUNNING || vm_state(sb->vm) == VM_PAUSED);
	if (!quota || !makes_one)
		return 0;
	return snap_disk_check(sb->srv, sb->row.user_id, e);
}

int sbx_snapshot(struct sbx *sb, const char *dir, sbx_done_fn done, void *arg, struct err *e)
{
	int rc = check_op(sb, e);
	if (rc == 0 && !sb->vm)
		rc = err_set(e, EIO, "sandbox '%s' is lost (its VM is gone); destroy it", sb->row.name);
	if (rc == 0)
		rc = vm_snapshot(sb->vm, dir, op_done, sb, e);
	if (rc < 0)
		return rc;
	sb->busy = true;
	add_waiter(sb, WAIT_OP, done, arg);
	return 0;
}

int sbx_stop(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e)
{
	int rc = check_op(sb, e);
	if (rc == 0)
		rc = check_snapshot_quota(sb, e);
	if (rc == 0)
		rc = store_sandbox_set_stopped(sb->srv->store, sb->row.id, true, e);
	if (rc < 0)
		return rc;
	sb->row.stopped = true;
	rc = run_op(sb, vm_stop, done, arg, e);
	if (rc < 0)
		unstop(sb);
	else
		sb->stopping = true;
	return rc;
}

int sbx_start(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e)
{
	bool was_stopped = sb->row.stopped;
	int rc = check_op(sb, e);
	if (rc == 0 && sb->row.thermal.wake_error)
		rc = err_set(e, ENOTCONN, "sandbox '%s' failed to wake: %s; retry with 'bhatti "
			     "start --force %s'", sb->row.name, sb->row.thermal.wake_error,
			     sb->row.name);
	if (rc == 0)
		rc = store_sandbox_set_stopped(sb->srv->store, sb->row.id, false, e);
	if (rc < 0)
		return rc;
	sb->row.stopped = false;
	if (sb->vm && vm_state(sb->vm) == VM_PAUSED)
		return run_op(sb, vm_resume, done, arg, e);
	rc = run_op(sb, vm_start, done, arg, e);
	/* refused (no room in the memory budget): it stays as it was */
	struct err ignored = ERR_INIT;
	if (rc < 0 && was_stopped &&
	    store_sandbox_set_stopped(sb->srv->store, sb->row.id, true, &ignored) == 0)
		sb->row.stopped = true;
	return rc;
}

int sbx_set_egress(struct sbx *sb, const char *json, struct err *e)
{
	struct server *srv = sb->srv;
	if (!srv->net)
		return err_set(e, EINVAL, "networking is off on this server");
	struct egress eg;
	int r = egress_parse(json, strcmp(srv->cfg.network.egress, "deny") == 0, &eg, e);
	if (r < 0)
		return r;
	char *text = egress_json(&eg);
	egress_release(&eg);
	r = store_sandbox_set_egress(srv->store, sb->row.id, text, e);
	if (r < 0) {
		free(text);
		return r;
	}
	free(sb->row.egress);
	sb->row.egress = text;
	return net_sync(srv->net, e);
}

int sbx_rename(struct sbx *sb, const char *name, struct err *e)
{
	int rc = valid_sandbox_name(name, e);
	if (rc < 0)
		return rc;
	rc = store_sandbox_rename(sb->srv->store, sb->row.user_id, sb->row.id, name, e);
	if (rc == -EEXIST)
		return err_set(e, EEXIST, "you already have a sandbox named '%s'", name);
	if (rc < 0)
		return rc;
	struct event *ev = event_new(sb, "sandbox.renamed");
	event_str(ev, "from", sb->row.name);
	free(sb->row.name);
	sb->row.name = xstrdup(name);
	event_str(ev, "to", name);
	events_emit(sb->srv, ev);
	return 0;
}

int sbx_set_labels(struct sbx *sb, const char *labels, struct err *e)
{
	int rc = store_sandbox_set_labels(sb->srv->store, sb->row.id, labels, e);
	if (rc < 0)
		return rc;
	free(sb->row.labels);
	sb->row.labels = labels && labels[0] ? xstrdup(labels) : NULL;
	return 0;
}

/* ---- destroy ------------------------------------------------------------------- */

/* The store's record that a destroy began (so that a crash in its middle
 * does not leave half a sandbox: the next daemon finishes it). Best
 * effort: a destroy goes on without it (a full disk must not keep a
 * sandbox alive). */
static void mark_destroying(struct sbx *sb, bool on)
{
	struct err se = ERR_INIT;
	if (store_sandbox_set_destroying(sb->srv->store, sb->row.id, on, &se) < 0)
		log_warn("sandbox '%s': %s", sb->row.id, err_str(&se));
	sb->row.destroying = on;
}

/* After a sandbox went: its user's bridge and rules too, if it was the
 * last (nothing to answer: logged). */
static void net_resync(struct server *srv)
{
	struct err e = ERR_INIT;
	if (srv->net && net_sync(srv->net, &e) < 0)
		log_warn("network: %s", err_str(&e));
}

static void destroyed(struct vm *vm UNUSED, int rc, const struct err *e, void *arg)
{
	struct sbx *sb = arg;
	struct err se = ERR_INIT;
	if (rc < 0) {
		log_warn("sandbox '%s': destroy: %s", sb->row.id, err_str(e));
		sb->destroying = false;
		mark_destroying(sb, false);
	} else {
		sb->vm = NULL;
		events_emit(sb->srv, event_new(sb, "sandbox.destroyed"));
		rc = store_sandbox_delete(sb->srv->store, sb->row.id, &se);
		if (rc < 0)
			log_error("sandbox '%s': %s", sb->row.id, err_str(&se));
		e = rc < 0 ? &se : NULL;
		acme_kick();   /* its aliases' certificates: no longer served */
	}
	/* the destroy's waiters (those of a preempted operation were told
	 * already by op_done) */
	for (struct sbx_waiter **pp = &sb->waiters; *pp;) {
		struct sbx_waiter *w = *pp;
		if (w->kind != WAIT_DESTROY) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (w->fn)
			w->fn(sb, rc, e, w->arg);
		free(w);
	}
	if (!sb->destroying)
		return;
	unlink_sbx(sb);
	net_resync(sb->srv);
	loop_defer_free((void (*)(void *))sbx_free, sb);
}

int sbx_destroy(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e)
{
	if (sb->destroying)
		return err_set(e, EBUSY, "sandbox '%s' is already being destroyed", sb->row.name);
	sb->destroying = true;
	add_waiter(sb, WAIT_DESTROY, done, arg);
	if (!sb->vm) {
		destroyed(NULL, 0, NULL, sb);
		return 0;
	}
	if (!sb->row.destroying)
		mark_destroying(sb, true);
	int rc = vm_destroy(sb->vm, destroyed, sb, e);
	if (rc < 0) {
		sb->destroying = false;
		mark_destroying(sb, false);
		sbx_cancel_wait(sb, arg);
	}
	return rc;
}

/* ---- create -------------------------------------------------------------------- */

/* A new row's address and egress policy (networking on). */
static int net_row(struct server *srv, const struct user *u, const struct sbx_create *req,
		   struct sandbox_row *row, struct err *e)
{
	if (!srv->net)
		return 0;
	struct egress eg;
	bool def_deny = strcmp(srv->cfg.network.egress, "deny") == 0;
	int r = egress_parse(req->egress ? req->egress : "{}", def_deny, &eg, e);
	if (r < 0)
		return r;
	row->egress = egress_json(&eg);
	egress_release(&eg);
	return net_assign(srv->net, u->id, &row->ip, e);
}

/* Decrypt the secrets asked for into "NAME=value" (ret: NULL-terminated). */
static int gather_secrets(struct server *srv, const struct user *u, const struct sbx_create *req,
			  char ***ret, struct err *e)
{
	char **names = NULL;
	size_t n = 0;
	if (req->all_secrets) {
		struct secret_meta *list;
		size_t cnt;
		int rc = store_secret_list(srv->store, u->id, &list, &cnt, e);
		if (rc < 0)
			return rc;
		names = xcalloc(cnt + 1, sizeof(*names));
		for (size_t i = 0; i < cnt; i++) {
			names[n++] = list[i].name;
			list[i].name = NULL;
		}
		secret_meta_array_free(list, cnt);
	} else {
		names = strv_dup(req->secrets ? req->secrets : (char *[]){ NULL });
		n = strv_len(names);
	}
	char **out = xcalloc(n + 1, sizeof(*out));
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct buf ct = BUF_INIT, pt = BUF_INIT;
		rc = store_secret_get(srv->store, u->id, names[i], &ct, e);
		if (rc == -ENOENT)
			rc = err_set(e, EINVAL, "no secret '%s' (see 'bhatti secret list')", names[i]);
		if (rc == 0)
			rc = age_decrypt(&srv->age, ct.data, ct.len, &pt, e);
		if (rc == 0) {
			struct buf kv = BUF_INIT;
			buf_addf(&kv, "%s=", names[i]);
			buf_add(&kv, pt.data, pt.len);
			out[i] = buf_detach(&kv, NULL);
		}
		sodium_memzero(pt.data, pt.len);
		buf_release(&pt);
		buf_release(&ct);
	}
	strv_free(names);
	if (rc < 0) {
		for (char **p = out; *p; p++)
			sodium_memzero(*p, strlen(*p));
		strv_free(out);
		return rc;
	}
	*ret = out;
	return 0;
}

static void wipe_strv(char **v)
{
	for (char **p = v; p && *p; p++)
		sodium_memzero(*p, strlen(*p));
	strv_free(v);
}

static void created(struct vm *vm UNUSED, int rc, const struct err *e, void *arg)
{
	struct sbx *sb = arg;
	if (rc == 0) {
		sbx_touch(sb);
		struct event *ev = event_new(sb, "sandbox.created");
		event_str(ev, "image", sb->row.image);
		event_str(ev, "origin", vm_origin(vm));
		events_emit(sb->srv, ev);
		op_done(vm, 0, NULL, sb);
		return;
	}
	if (sb->destroying) {
		/* a destroy preempted the create: its waiters are told; the
		 * VM, the row and sb go when the destroy is done (destroyed) */
		op_done(vm, rc, e, sb);
		return;
	}
	/* the engine has forgotten the VM; the row goes too */
	log_warn("sandbox '%s': create failed: %s", sb->row.id, err_str(e));
	sb->vm = NULL;
	struct err se = ERR_INIT;
	if (store_sandbox_delete(sb->srv->store, sb->row.id, &se) < 0)
		log_error("sandbox '%s': %s", sb->row.id, err_str(&se));
	sb->destroying = true;   /* invisible from now on */
	op_done(vm, rc, e, sb);
	unlink_sbx(sb);
	net_resync(sb->srv);
	loop_defer_free((void (*)(void *))sbx_free, sb);
}

void sbx_new_id(char out[VALID_SANDBOX_ID_LEN + 1])
{
	unsigned char r[VALID_SANDBOX_ID_LEN / 2];
	if (sodium_init() < 0)
		abort(); /* no usable random source: nothing can be created safely */
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(out, VALID_SANDBOX_ID_LEN + 1, r, sizeof(r));
}

static int count_for(struct server *srv, int64_t user_id)
{
	int n = 0;
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next)
		if (sb->row.user_id == user_id && !sb->destroying)
			n++;
	return n;
}

static struct sbx *sbx_add(struct server *srv, struct sandbox_row *row)
{
	struct sbx *sb = xcalloc(1, sizeof(*sb));
	sb->srv = srv;
	timer_init(&sb->save, save_later, sb);
	sb->row = *row;
	memset(row, 0, sizeof(*row));
	struct sbx **pp = &srv->sandboxes;
	while (*pp)
		pp = &(*pp)->next;
	*pp = sb;
	return sb;
}

int sbx_create(struct server *srv, const struct user *u, const struct sbx_create *req,
	       sbx_done_fn done, void *arg, bool *ret_existing, struct sbx **ret, struct err *e)
{
	*ret_existing = false;
	if (req->name && valid_sandbox_name(req->name, e) < 0)
		return -EINVAL;
	if (req->name) {
		struct sbx *old = sbx_find(srv, u, req->name);
		if (old && strcmp(old->row.name, req->name) == 0) {
			*ret_existing = true;
			*ret = old;
			return 0;
		}
	}
	if (count_for(srv, u->id) >= u->max_sandboxes)
		return err_set(e, EDQUOT, "quota: user '%s' may have at most %lld sandboxes",
			       u->name, (long long)u->max_sandboxes);
	int64_t cpus = req->cpus ? req->cpus : srv->cfg.defaults.cpus;
	int64_t mem = req->memory_mb ? req->memory_mb : srv->cfg.defaults.memory_mb;
	if (cpus > u->max_cpus)
		return err_set(e, EINVAL, "quota: at most %lld cpus per sandbox for user '%s'",
			       (long long)u->max_cpus, u->name);
	if (mem > u->max_memory_mb)
		return err_set(e, EINVAL, "quota: at most %lld MB of memory per sandbox for user '%s'",
			       (long long)u->max_memory_mb, u->name);
	uint64_t disk = req->disk_size ? req->disk_size : srv->cfg.defaults.disk_size;
	if (disk > srv->cfg.limits.max_disk_size)
		return err_set(e, EINVAL, "quota: at most %llu MiB of disk per sandbox "
					  "(limits.max_disk_size)",
			       (unsigned long long)(srv->cfg.limits.max_disk_size >> 20));
	bool copy = req->snapshot_dir || req->fork_of;
	char **secrets = NULL;
	int rc = req->fork_of ? check_op(req->fork_of, e) : 0;
	if (rc == 0 && req->fork_of && !req->fork_of->vm)
		rc = err_set(e, EIO, "sandbox '%s' is lost (its VM is gone); destroy it",
			     req->fork_of->row.name);
	if (rc == 0 && !copy)
		rc = gather_secrets(srv, u, req, &secrets, e);
	if (rc < 0)
		return rc;

	char id[VALID_SANDBOX_ID_LEN + 1];
	do
		sbx_new_id(id);
	while (engine_find(srv->eng, id));
	struct buf nb = BUF_INIT;
	if (req->name)
		buf_adds(&nb, req->name);
	else
		buf_addf(&nb, "sb-%s", id);
	struct sandbox_row row = {
		.id = xstrdup(id),
		.user_id = u->id,
		.name = buf_detach(&nb, NULL),
		.cpus = cpus,
		.memory_mb = mem,
		.image = xstrdup(req->image ? req->image : srv->cfg.default_image),
		.created_at = wall_sec(),
		.keep_hot = req->keep_hot,
		.thermal = { .last_activity = wall_ms() },
		.labels = req->labels ? xstrdup(req->labels) : NULL,
		.disk_size = (int64_t)disk,
	};
	rc = net_row(srv, u, req, &row, e);
	if (rc == 0)
		rc = store_sandbox_insert(srv->store, &row, e);
	if (rc < 0) {
		sandbox_row_release(&row);
		wipe_strv(secrets);
		return rc;
	}
	struct sbx *sb = sbx_add(srv, &row);
	struct vm_spec spec = {
		.id = sb->row.id,
		.hostname = valid_hostname(sb->row.name, NULL) == 0 ? sb->row.name : sb->row.id,
		.image = sb->row.image,
		.cpus = (unsigned)cpus,
		.memory_mb = (unsigned)mem,
		.env = copy ? NULL : req->env,
		.secrets = secrets,
		.init = copy ? NULL : req->init,
		.snapshot = req->snapshot_dir,
		.disk_bytes = disk,
	};
	rc = 0;
	if (srv->net && (rc = net_sync(srv->net, e)) == 0)
		net_vm(srv->net, sb->row.id, sb->row.ip, &spec.net);
	sb->busy = true;
	if (rc == 0 && req->fork_of) {
		struct sbx *src = req->fork_of;
		rc = vm_fork(src->vm, &spec, op_done, src, created, sb, &sb->vm, e);
		if (rc == 0)
			src->busy = true; /* until its copy is made (op_done) */
	} else if (rc == 0) {
		rc = vm_create(srv->eng, &spec, created, sb, &sb->vm, e);
	}
	wipe_strv(secrets);
	if (rc < 0) {
		struct err se = ERR_INIT;
		store_sandbox_delete(srv->store, sb->row.id, &se);
		unlink_sbx(sb);
		sbx_free(sb);
		net_resync(srv);
		return rc;
	}
	add_waiter(sb, WAIT_OP, done, arg);
	*ret = sb;
	return 0;
}

/* ---- start-up ------------------------------------------------------------------ */

static void orphan_destroyed(struct vm *vm, int rc, const struct err *e, void *arg UNUSED)
{
	if (rc < 0)
		log_warn("vm '%s': destroying an orphan: %s", vm_id(vm), err_str(e));
}

static void destroy_orphan(struct vm *vm, void *arg)
{
	struct server *srv = arg;
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next)
		if (sb->vm == vm)
			return;
	struct err e = ERR_INIT;
	log_warn("vm '%s': no sandbox row (a create interrupted by a crash): destroying it",
		 vm_id(vm));
	if (vm_destroy(vm, orphan_destroyed, NULL, &e) < 0)
		log_warn("vm '%s': %s", vm_id(vm), err_str(&e));
}

int sbx_init(struct server *srv, struct err *e)
{
	struct sandbox_row *rows;
	size_t n;
	int rc = store_sandbox_list(srv->store, -1, &rows, &n, e);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct vm *vm = engine_find(srv->eng, rows[i].id);
		if (vm && vm_create_unfinished(vm)) {
			/* the create was cut short by a crash: nobody was told it
			 * exists; destroy_orphan() below removes the VM */
			vm = NULL;
		}
		if (!vm) {
			struct err se = ERR_INIT;
			log_warn("sandbox '%s' (%s): no VM (%s interrupted by a crash): dropping it",
				 rows[i].name, rows[i].id, rows[i].destroying ? "a destroy" : "a create");
			if (store_sandbox_delete(srv->store, rows[i].id, &se) < 0)
				log_error("%s", err_str(&se));
			sandbox_row_release(&rows[i]);
			continue;
		}
		struct sbx *sb = sbx_add(srv, &rows[i]);
		sb->vm = vm;
		/* the timers go on: a warm or cold one keeps when it cooled; a
		 * hot one counts from now (its activity before the restart was
		 * not recorded) */
		if (strcmp(sbx_thermal(sb), "hot") == 0 || !sb->row.thermal.last_activity)
			sbx_touch(sb);
		if (strcmp(sbx_thermal(sb), "hot") == 0)
			sb->row.thermal.warm_since = 0;   /* (a wake's record not yet written) */
		if (strcmp(sbx_thermal(sb), "hot") != 0 && !sb->row.thermal.warm_since)
			sb->row.thermal.warm_since = wall_ms();
		if (sb->row.destroying) {
			struct err de = ERR_INIT;
			log_warn("sandbox '%s' (%s): finishing a destroy a crash interrupted",
				 sb->row.name, sb->row.id);
			if (sbx_destroy(sb, NULL, NULL, &de) < 0)
				log_warn("sandbox '%s': %s", sb->row.id, err_str(&de));
		}
	}
	free(rows);
	engine_each(srv->eng, destroy_orphan, srv);
	return 0;
}

void sbx_release_all(struct server *srv)
{
	while (srv->sandboxes) {
		struct sbx *sb = srv->sandboxes;
		srv->sandboxes = sb->next;
		sbx_free(sb);
	}
}
