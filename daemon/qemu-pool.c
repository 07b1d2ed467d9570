/* qemu-pool.c — what the QEMU backend makes ahead of need, per template:
 * the pool (restored, warmed up, paused clones that a create takes) and
 * the memory spare (one copy of the template's memory on tmpfs; its state
 * machine is drawn below).
 *
 * Sits between the templates (qemu-template.c) and the creates and starts
 * that take from it (engine-qemu.c, qemu-restore.c). Touches data_dir/pool/
 * and the spare files in the tmpfs memory dir (root's until a create or
 * start takes one: then its QEMU's uid gets it at its spawn).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileops.h"
#include "qemu.h"

/* ---- pool ---------------------------------------------------------------------------- */

static void pool_warmed_paused(struct qvm *q)
{
	q->paused = true;
	vm_op_finish(q->vm, VM_PAUSED, 0, NULL);
}

void pool_warmed(struct qvm *q)
{
	if (q->agent_rc < 0) {
		step_fail(q, q->agent_err.code, "warming up: %s", err_str(&q->agent_err));
		return;
	}
	STEP(q, "warmed up");
	qemu_cmd(q, "stop", NULL, -1, pool_warmed_paused);
}

static void pool_built(struct vm *p, int rc, const struct err *e, void *arg)
{
	struct tmpl *t = arg;
	t->building--;
	t->build = NULL;
	if (rc < 0) {
		log_warn("pool for '%s': %s", t->key, err_str(e));
		return; /* a failed create removed itself; the next claim refills */
	}
	if (t->nready < POOL_MAX)
		t->ready[t->nready++] = p;
	log_debug("pool for '%s': %d ready", t->key, t->nready);
}

static void pool_build(struct tmpl *t)
{
	static unsigned seq;
	struct engine *eng = t->eng;
	char id[64];
	snprintf(id, sizeof(id), "pool-%u-%u", (unsigned)getpid(), ++seq);
	struct vm_spec spec = { .id = id, .image = t->image, .cpus = t->cpus,
				.memory_mb = t->memory_mb, .hostname = "bhatti" };
	struct qvm *q = q_hidden_create(eng, &spec, QVM_POOL_CLONE, QE(eng)->accel, pool_built, t);
	struct vm *p = q->vm;
	struct err e = ERR_INIT;
	free(p->dir);
	p->dir = qeng_path(eng, "pool", id);
	q->t0_ns = now_ns();
	memcpy(q->token, t->token, sizeof(q->token)); /* until a claim */
	t->building++;
	t->build = p;
	/* its memory counts from now (pool_fill saw room for it) */
	if (qemu_mem_file(q, &e) < 0 || q_prepare_dir(p, &e) < 0)
		step_fail(q, e.code, "%s", err_str(&e));
	else
		tmpl_clone(p, t);
}

static void pool_fill(struct tmpl *t)
{
	int want = t->eng->cfg.pool_size;
	if (QE(t->eng)->closing)
		return;
	if (t->state != TMPL_READY || want > POOL_MAX)
		want = t->state == TMPL_READY ? POOL_MAX : 0;
	/* one at a time: a refill must not starve the sandboxes in use; and
	 * only into free room in the memory budget (a sandbox's create or
	 * start may take it back) */
	if (t->nready + t->building < want && t->building == 0 && qmem_room(t->eng, t->memory_mb))
		pool_build(t);
}

void pool_fill_timer(struct timer *tm)
{
	struct tmpl *t = tm->data;
	pool_fill(t);
	if (t->nready + t->building < t->eng->cfg.pool_size)
		timer_arm(&t->refill, 1000);
}

static void pool_claim_cont(struct qvm *q)
{
	q->paused = false;
	STEP(q, "vCPUs running");
	qagent_configure(q, true, q_create_done);
}

/* Give vm (a create that just began) the runtime of a pooled clone: the
 * QEMU, its QMP and agent connections, its files renamed. */
void pool_claim(struct vm *vm, struct tmpl *t)
{
	struct vm *p = t->ready[--t->nready];
	struct qvm *q = QV(p), *fresh = QV(vm);
	struct qeng *qe = QE(vm->eng);
	if (rename(p->dir, vm->dir) < 0 ||
	    hot_rename(qe, hot_name(q->hot_mem), hot_name(fresh->hot_mem)) < 0) {
		log_warn("pool for '%s': cannot take a clone: %s", t->key, strerror(errno));
		tmpl_clone(vm, t);
		return;
	}
	free(q->hot_mem);
	q->hot_mem = fresh->hot_mem;
	fresh->hot_mem = NULL;
	vm->be = q;
	q->vm = vm;
	vm->agent = p->agent;
	p->agent = NULL;
	p->be = NULL;
	q->role = QVM_SANDBOX;
	q->t0_ns = now_ns();
	free(q->base_key);
	q->base_key = xstrdup(t->key);
	q->key_wrapped = fresh->key_wrapped; /* the sandbox's snapshot key */
	fresh->key_wrapped = NULL;
	snprintf(vm->origin, sizeof(vm->origin), "clone");
	q_random_hex(q->token, 32);
	fresh->vm = vm;
	q_vm_free_state(fresh);
	vm_free_now(p);
	STEP(q, "taken from the pool");
	struct err e = ERR_INIT;
	if (qemu_tap_claim(q, &e) < 0) {
		step_fail(q, e.code, "%s", err_str(&e));
		timer_arm(&t->refill, 1000);
		return;
	}
	qemu_cmd(q, "cont", NULL, -1, pool_claim_cont);
	timer_arm(&t->refill, 1000);
}

static void pool_kill_now(struct vm *p)
{
	struct qvm *q = QV(p);
	if (q) {
		step_cleanup(q);
		if (q->pid > 0 && q->pidw.fd >= 0) {
			syscall(SYS_pidfd_send_signal, q->pidw.fd, SIGKILL, NULL, 0);
			if (q->our_child)
				waitpid(q->pid, NULL, 0);
		}
		hot_unlink(QE(p->eng), hot_name(q->hot_mem));
	}
	fileop_remove_tree_now(p->dir, NULL);
	vm_free_now(p);
}

bool pool_drop_one(struct tmpl *t)
{
	if (!t->nready)
		return false;
	pool_kill_now(t->ready[--t->nready]);
	timer_arm(&t->refill, 1000); /* again when there is room */
	return true;
}

/* Kill and remove every pool clone (engine shutdown; q_fini has let a
 * clone being built finish first). */
void pool_drain(struct tmpl *t)
{
	timer_cancel(&t->refill);
	for (int i = 0; i < t->nready; i++)
		pool_kill_now(t->ready[i]);
	t->nready = 0;
}

/* ---- memory spares ------------------------------------------------------------------ */

/* A clone's RAM on tmpfs starts as a copy of its template's memory, and a
 * start of a stopped clone rebuilds it as that copy plus the clone's delta.
 * Copying the template's part (~70 MB for `tiny`, ~55 ms here) was the
 * longest step before the restore: QEMU is up in ~35 ms. So one copy of a
 * template's memory waits on tmpfs (hot_dir/spare-<key>.mem) while it is
 * likely to be wanted:
 *
 *   - while the template has stopped clones (their next start), and
 *   - for spare_linger_ms (10 minutes) after a create last cloned it
 *     (scripts and agents create sandboxes in bursts: create, use,
 *     destroy, again).
 *
 * A create renames the spare to its own memory file and restores over it
 * as it is; a start writes only its delta over it. A new copy is made once
 * the create is done, or SPARE_DELAY_MS after a start or a stop (not at
 * once: a start that follows a stop, as in a script's stop && start, would
 * queue its memory load behind the copy: the worker runs jobs in order).
 * Pool clones are made in the background and leave the spare alone.
 * Costs the template's resident memory once per template in use; the
 * spare goes when the reasons do. Leftovers after a crash end in .mem and
 * are removed by the next engine's adoption like any memory no QEMU owns.
 *
 *   no spare ──(wanted: timer)──▶ filling ──(copied, still wanted)──▶ ready
 *      ▲                                        │ (not wanted: removed)   │
 *      └───────────── taken by a create or start, or dropped ◀────────────┘
 *                     (timer at the linger's end, destroy, shutdown)
 */
/* The spare's name in the memory dir, or (full) its path. */
static char *spare_name(struct tmpl *t, bool part, bool full)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s%sspare-%s%s.mem", full ? QE(t->eng)->hot_dir : "", full ? "/" : "",
		 t->key, part ? ".part" : "");
	return buf_detach(&b, NULL);
}

static bool tmpl_has_stopped_clone(struct tmpl *t)
{
	for (struct vm *vm = t->eng->vms; vm; vm = vm->next) {
		struct qvm *q = QV(vm);
		if (vm->state == VM_STOPPED && q && q->base_key && strcmp(q->base_key, t->key) == 0)
			return true;
	}
	return false;
}

static bool spare_lingers(struct tmpl *t)
{
	return t->cloned_ms && now_ms() < t->cloned_ms + t->eng->cfg.spare_linger_ms;
}

static bool spare_wanted(struct tmpl *t)
{
	return !QE(t->eng)->closing && t->state == TMPL_READY &&
	       (spare_lingers(t) || tmpl_has_stopped_clone(t));
}

void spare_want(struct tmpl *t, uint64_t delay_ms)
{
	if (t->spare || t->spare_filling || !spare_wanted(t))
		return;
	timer_arm(&t->spare_timer, delay_ms);
}

/* While only the linger keeps a ready spare, look again when it ends. */
static void spare_arm_linger_end(struct tmpl *t)
{
	if (t->spare && spare_lingers(t))
		timer_arm(&t->spare_timer, t->cloned_ms + t->eng->cfg.spare_linger_ms - now_ms() + 1);
}

static void spare_filled(int rc, const struct err *e, void *arg)
{
	struct tmpl *t = arg;
	struct qeng *qe = QE(t->eng);
	char *part = spare_name(t, true, false), *name = spare_name(t, false, false);
	t->spare_filling = false;
	if (rc < 0) {
		log_warn("template '%s': copying its memory for the next clone: %s", t->key,
			 err_str(e));
		hot_unlink(qe, part);
	} else if (!spare_wanted(t) || hot_rename(qe, part, name) < 0) {
		hot_unlink(qe, part);
	} else {
		t->spare = name;
		name = NULL;
		spare_arm_linger_end(t);
	}
	free(part);
	free(name);
}

/* At engine shutdown, or when it is no longer wanted. */
void spare_drop(struct tmpl *t)
{
	timer_cancel(&t->spare_timer);
	if (t->spare)
		hot_unlink(QE(t->eng), t->spare);
	free(t->spare);
	t->spare = NULL;
}

void spare_timer_fired(struct timer *tm)
{
	struct tmpl *t = tm->data;
	if (!spare_wanted(t)) {
		spare_drop(t);
		return;
	}
	if (t->spare) {
		spare_arm_linger_end(t);
		return;
	}
	if (t->spare_filling)
		return;
	if (!qmem_room(t->eng, t->memory_mb)) {
		/* the sandboxes need the room: a later stop, start or create
		 * asks again */
		log_debug("template '%s': no room in the memory budget for a spare", t->key);
		return;
	}
	char *part = spare_name(t, true, false), *path = spare_name(t, true, true);
	struct buf base = BUF_INIT;
	struct err e = ERR_INIT;
	buf_addf(&base, "%s/mem", t->dir);
	if (hot_create(QE(t->eng), part, t->memory_mb, &e) < 0) {
		log_warn("template '%s': %s", t->key, err_str(&e));
		hot_unlink(QE(t->eng), part);
	} else {
		t->spare_filling = true;
		fileop_fill_mem(base.data, path, spare_filled, t);
	}
	buf_release(&base);
	free(part);
	free(path);
}

/* Move the spare of q's template (if one is ready) to q's memory file. */
bool spare_take(struct qvm *q)
{
	struct tmpl *t = q->base_key ? tmpl_find(q->vm->eng, q->base_key) : NULL;
	if (!t || !t->spare)
		return false;
	timer_cancel(&t->spare_timer);
	bool ok = hot_rename(QE(t->eng), t->spare, hot_name(q->hot_mem)) == 0;
	if (!ok)
		log_warn("vm '%s': rename '%s': %s", q->vm->id, t->spare, strerror(errno));
	free(t->spare);
	t->spare = NULL;
	return ok;
}

/* A clone of t went away: is the spare still wanted? */
void spare_recheck(struct qvm *q)
{
	struct tmpl *t = q->base_key ? tmpl_find(q->vm->eng, q->base_key) : NULL;
	if (t && !spare_wanted(t))
		spare_drop(t);
}

/* ---- at start-up --------------------------------------------------------------------- */

/* What an earlier engine's pool left: its QEMUs and directories. */
int pool_sweep(struct engine *eng, struct err *e)
{
	char *dir = qeng_path(eng, "pool", NULL);
	qemu_kill_orphans(dir, "a pool");
	fileop_remove_tree_now(dir, NULL);
	int r = jail_dir(dir, 0, e);
	free(dir);
	return r;
}
