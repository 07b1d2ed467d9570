/* qemu-restore.c — restoring a cold snapshot in the QEMU backend: the
 * chain a clone (from its template's snapshot) and a start (from its own)
 * share — QEMU -incoming while the file worker fills the memory file, then
 * migrate-incoming, cont, the agent's HELLO, CONFIGURE — and the start
 * operation itself.
 *
 * Sits between what begins a restore (q_start here; a clone in
 * qemu-template.c) and qemu-proc.c, qemu-agent.c and fileops.c. Touches
 * the VM's memory file on tmpfs and its snapshot files (mem, state: renamed
 * aside once stale), and takes its template's memory spare (qemu-pool.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fileops.h"
#include "qemu.h"

/* ---- restore (clone and start) ------------------------------------------------------ */

static void restore_agent_ready(struct qvm *q);

static void restore_cont(struct qvm *q)
{
	STEP(q, "vCPUs running");
	/* a clone's guest still knows the template's token, a fork's or a
	 * restored snapshot's the token of the guest it copies */
	const char *token = q->source ? q->source->token
			    : q->restore_token[0] ? q->restore_token : q->token;
	qagent_connect(q, token, RESTORE_TIMEOUT_MS, restore_agent_ready);
}

static void restore_go(struct qvm *q)
{
	qemu_cmd(q, "cont", NULL, -1, restore_cont);
}

/* Until cont, a start's guest has not run: its disk is as the snapshot
 * left it, and vm.json still says "stopped" (a daemon killed now leaves a
 * stopped sandbox; the next one kills this QEMU: qemu-adopt.c). Before the
 * guest runs, vm.json says "starting" with QEMU's pid, durably: from then
 * on the snapshot is stale, and a new daemon adopts this QEMU. */
static void restore_migrated(struct qvm *q)
{
	STEP(q, "snapshot loaded");
	qemu_close_state_fd(q);
	if (q->vm->op == OP_START)
		meta_record_then(q, restore_go);
	else
		restore_go(q);
}

static void restore_migrate_timeout(struct qvm *q)
{
	q->on_migrated = NULL;
	step_fail(q, ETIMEDOUT, "restoring the snapshot timed out (see %s/qemu.log)", q->vm->dir);
}

static void restore_incoming_sent(struct qvm *q)
{
	if (q->migrated) { /* the event came before the reply */
		restore_migrated(q);
		return;
	}
	q->on_migrated = restore_migrated;
	step_after(q, RESTORE_TIMEOUT_MS, restore_migrate_timeout);
}

static void restore_getfd_done(struct qvm *q)
{
	qemu_cmd(q, "migrate-incoming", qemu_args_str("uri", "fd:snapshot"), -1, restore_incoming_sent);
}

static void restore_caps_done(struct qvm *q)
{
	qemu_cmd(q, "getfd", qemu_args_str("fdname", "snapshot"), q->state_fd, restore_getfd_done);
}

static void restore_qmp_ready(struct qvm *q)
{
	STEP(q, "QMP connected");
	q->migrated = false;
	qemu_cmd(q, "migrate-set-capabilities", qemu_migrate_caps(), -1, restore_caps_done);
}

/* Rename path to `aside` now and let the worker remove it: freeing a big
 * file takes milliseconds (tmpfs pages; ext4 with discard), and the name is
 * free at once for a new file (a start right after a stop; a stop right
 * after a start, whose device state the loop renames into place itself,
 * not through the worker). */
void q_remove_aside(const char *path, const char *aside)
{
	if (rename(path, aside) == 0)
		fileop_remove_tree(aside, NULL, NULL);
	else if (errno != ENOENT)
		unlink(path);
}

void q_hot_remove_aside(struct engine *eng, const char *name, const char *aside)
{
	struct qeng *qe = QE(eng);
	if (hot_rename(qe, name, aside) == 0) {
		struct buf p = BUF_INIT;
		buf_addf(&p, "%s/%s", qe->hot_dir, aside);
		fileop_remove_tree(p.data, NULL, NULL);
		buf_release(&p);
	} else if (errno != ENOENT) {
		hot_unlink(qe, name);
	}
}

/* The sandbox's file `name` is stale: away with it. */
static void discard_file(struct vm *vm, const char *name)
{
	char *path = qvm_path(vm, name);
	struct buf aside = BUF_INIT;
	buf_addf(&aside, "%s.stale", path);
	q_remove_aside(path, aside.data);
	buf_release(&aside);
	free(path);
}

static void start_done(struct qvm *q)
{
	struct vm *vm = q->vm;
	STEP(q, "configured");
	if (q->agent_rc < 0) {
		step_fail(q, q->agent_err.code, "resetting the guest clock: %s", err_str(&q->agent_err));
		return;
	}
	q->paused = false;
	vm->state = VM_RUNNING;
	meta_write(vm);
	/* the cold snapshot is stale now that the guest runs again (vm.json
	 * no longer trusts it): remove it in the background, so the next stop
	 * does not pay for freeing it when it writes the new one (an unlink on
	 * ext4 mounted with discard cost ~50 ms of a stop here) */
	discard_file(vm, "mem");
	discard_file(vm, "state");
	/* stopped clones left: their template's memory again, for the next
	 * start (not at once: see "memory spares") */
	struct tmpl *t = q->base_key ? tmpl_find(vm->eng, q->base_key) : NULL;
	vm_op_finish(vm, VM_RUNNING, 0, NULL);
	if (t)
		spare_want(t, SPARE_DELAY_MS);
}


static void pool_exec_done(struct qvm *q)
{
	if (q->agent_rc < 0) {
		step_fail(q, q->agent_err.code, "warming up: %s", err_str(&q->agent_err));
		return;
	}
	qagent_configure(q, false, pool_warmed);
}

static void restore_agent_ready(struct qvm *q)
{
	STEP(q, "agent answered");
	if (q->role == QVM_POOL_CLONE) {
		/* translate the exec and configure paths once, now */
		char *argv[] = { (char *)"true", NULL };
		struct proto_exec ex = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
		q->source = NULL;
		qagent_request(q, PROTO_EXEC, &ex, STEP_TIMEOUT_MS, pool_exec_done);
		return;
	}
	if (q->vm->op == OP_CREATE && q->reidentify) {
		/* a copy of a live guest: its own token, hostname, random seed */
		qagent_reidentify(q, q_create_done);
	} else if (q->vm->op == OP_CREATE) {
		/* a clone: its own token, hostname, env, clock and random seed */
		q->source = NULL;
		qagent_configure(q, true, q_create_done);
	} else {
		qagent_configure(q, false, start_done);
	}
}

/* A start runs two things at once: QEMU starting (it maps the memory
 * file, empty) and the file worker filling that file with the template's
 * memory and the delta. The restore begins when both are done. A clone
 * does the same with the template's memory alone. */
static void start_both_ready(struct qvm *q)
{
	if (q->start_qmp_up && q->start_mem_ready)
		restore_qmp_ready(q);
}

static void start_qmp_up(struct qvm *q)
{
	STEP(q, "QEMU up");
	q->start_qmp_up = true;
	start_both_ready(q);
}

void restore_mem_ready(struct qvm *q, int rc, const struct err *e)
{
	STEP(q, "memory loaded");
	if (rc < 0) {
		step_fail(q, -rc, "loading the guest memory: %s", err_str(e));
		return;
	}
	q->start_mem_ready = true;
	start_both_ready(q);
}

static void mem_filled(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	if (vm->op != OP_START && vm->op != OP_CREATE)
		return;
	restore_mem_ready(QV(vm), rc, e);
}

void restore_spawn(struct qvm *q)
{
	struct err e = ERR_INIT;
	if (qemu_spawn(q, true, &e) < 0)
		step_fail(q, e.code, "%s", err_str(&e));
	else
		qemu_qmp_connect(q, start_qmp_up);
}

/* Spawn QEMU -incoming while the file worker fills the memory file: a
 * clone (delta NULL) from its template's memory (or over its spare, as it
 * is) with the template's device state file as it is; a start from the
 * template's memory (or over its spare) plus the sandbox's delta, its
 * device state put into a memfd QEMU reads — both decrypted and checked
 * when the sandbox has a snapshot key. */
void restore_overlapped(struct qvm *q, const char *state, const char *base,
			const char *delta, const char *key_wrapped)
{
	struct vm *vm = q->vm;
	struct err e = ERR_INIT;
	q->start_qmp_up = q->start_mem_ready = false;
	/* a clone or a start of one: its template's memory may be waiting
	 * already (a pool clone is made in the background: it leaves the
	 * spare to a create or start someone waits for) */
	bool spare = base && q->role != QVM_POOL_CLONE && spare_take(q);
	if (!delta) {
		if ((q->state_fd = open(state, O_RDONLY | O_CLOEXEC)) < 0) {
			step_fail(q, errno, "cannot open the snapshot '%s': %s", state,
				  strerror(errno));
			return;
		}
		if (spare) {
			q->start_mem_ready = true; /* a clone of the spare as it is */
			STEP(q, "memory loaded");
		} else if (qemu_mem_file(q, &e) == 0) {
			fileop_fill_mem(base, q->hot_mem, mem_filled, vm);
		} else {
			step_fail(q, e.code, "%s", err_str(&e));
			return;
		}
	} else {
		uint8_t key[32];
		bool keyed = false;
		if (q_key_unwrap(vm->eng, key_wrapped, key, &keyed, &e) < 0 ||
		    (!spare && qemu_mem_file(q, &e) < 0)) {
			step_fail(q, e.code, "%s", err_str(&e));
			return;
		}
		if ((q->state_fd = memfd_create("bhatti-state", MFD_CLOEXEC)) < 0) {
			sodium_memzero(key, sizeof(key));
			step_fail(q, errno, "memfd_create: %s", strerror(errno));
			return;
		}
		fileop_load_snapshot(state, delta, spare ? NULL : base, q->hot_mem, q->state_fd,
				     keyed ? key : NULL, mem_filled, vm);
		sodium_memzero(key, sizeof(key));
	}
	restore_spawn(q);
}

void q_start(struct vm *vm)
{
	struct qvm *q = QV(vm);
	char *mem = qvm_path(vm, "mem"), *base = qvm_base_mem(q), *state = qvm_path(vm, "state");
	q->t0_ns = now_ns();
	q->source = NULL;
	if (base && access(base, R_OK) < 0) {
		step_fail(q, ENOENT, "the template it was cloned from is gone ('%s')", base);
	} else {
		/* vm.json says "stopped" until the guest is about to run
		 * (restore_migrated) */
		restore_overlapped(q, state, base, mem, q->key_wrapped);
	}
	free(mem);
	free(base);
	free(state);
}
