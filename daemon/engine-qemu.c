/* engine-qemu.c — the QEMU microvm backend of the engine (engine-internal.h):
 * its ops table, and the operations begun here: create (a cold boot, or a
 * clone: qemu-template.c), pause, resume, cold stop, destroy.
 *
 * Sits between engine.c and, per VM, one qemu-system-x86_64 process: its
 * command line, its QMP socket (qmp.c), the agent channel (agent-client.c)
 * and the sandbox directory. File copies and flushes go to the file worker
 * (fileops.c); everything else runs on the event loop. The backend's files
 * share qemu.h, which nothing else includes:
 *
 *   engine-qemu.c    this overview; the ops table; create (boot), pause,
 *                    resume, stop (cold snapshot), destroy
 *   qemu-proc.c      a VM's runtime: the QEMU process, its command line,
 *                    QMP, the step timer, failing a step, QEMU's death
 *   qemu-agent.c     the agent channel: HELLO, requests, CONFIGURE
 *   qemu-restore.c   restore (of a clone and of a start); start
 *   qemu-template.c  templates: key, build, load, clone, stale ones
 *   qemu-pool.c      the pool of ready clones; the memory spares
 *   qemu-adopt.c     vm.json; adopting what an earlier engine left
 *   qemu-init.c      init and fini: directories, the VM user, the
 *                    accelerator probe, the host TSC rate
 *
 * A sandbox directory (data_dir/sandboxes/<id>/, mode 0700):
 *   vm.json      what a restarted engine needs to adopt it (0600)
 *   disk.ext4    the root disk: a copy of the image (or of the template's)
 *   mem          guest RAM of the last cold snapshot (only its allocated
 *                extents: a sparse file)
 *   state        device state of the last cold snapshot
 *   qmp.sock, agent.sock, qemu.log, console.log
 *
 * While a guest runs, its RAM is a file on tmpfs (mem_dir/bhatti-<hash of
 * data_dir>/<id>.mem, memory-backend-file share=on): page faults there are
 * cheap, and a running guest writes nothing to disk. Measured against the
 * same file on ext4 (docs/benchmarks.md): restore 90 vs 210-310 ms, first
 * exec after it 90 vs 130-450 ms under TCG. A cold stop saves the memory
 * to the sandbox directory and deletes the tmpfs file (memory freed); a
 * start loads it back. For a clone, `mem` holds only the pages that differ
 * from its template's memory (a few MB of ~100; fileops.h), so a template
 * stays as long as a stopped sandbox refers to it.
 *
 * Operations are chains of steps; each step starts one asynchronous thing
 * and names the step that continues when it is done:
 *
 *   boot:    copy image → spawn → QMP → agent HELLO (new token) → CONFIGURE
 *   clone:   template → copy disk → spawn while the template's memory
 *            fills the tmpfs file (or over the template's spare copy:
 *            see "memory spares") → restore → CONFIGURE (new identity)
 *   restore: spawn -incoming defer → QMP caps → getfd + migrate-incoming
 *            → MIGRATION completed → cont → agent HELLO
 *   start:   spawn -incoming defer while the file worker fills the tmpfs
 *            memory file (template + delta; or only the delta, over a
 *            spare copy of the template's memory: see "memory spares")
 *            → restore → CONFIGURE (clock) → the now stale mem and state
 *            are renamed aside for the worker to delete
 *   stop:    SYNC → QMP stop → getfd + migrate → completed → quit → exit
 *            → copy mem from tmpfs to disk, rename the tmpfs file aside for
 *            the worker to delete (then the disk copy is flushed and
 *            dropped from the page cache in the background)
 *   destroy: SIGKILL → exit → remove the directory
 *
 * The pool (data_dir/pool/<id>/): per template, pool_size clones restored,
 * warmed up (one exec, one CONFIGURE: TCG has translated those paths) and
 * paused, ahead of need. A create takes one: its directory and memory
 * file are renamed to the sandbox's, its vCPUs continue, and CONFIGURE
 * gives it its identity (token, hostname, env, secrets, clock, RNG seed);
 * a refill starts a second later (or a second after a create that found
 * the pool empty: after a restart, the template comes from disk). Pool
 * VMs are not adopted: a new engine kills what an old one left and builds
 * the pool again.
 *
 * Templates (data_dir/templates/<image>-<cpus>c-<mem>m-<accel>-<hash>/):
 * a VM booted once and cold-snapshotted, never run again; clones copy its
 * memory and disk (a reflink where the filesystem can) and restore its
 * device state. <hash> covers the kernel, initramfs, rootfs image and
 * QEMU binary, so changing any of them builds a new template.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileops.h"
#include "qemu.h"

/* ---- create ------------------------------------------------------------------------ */

void q_create_done(struct qvm *q)
{
	struct vm *vm = q->vm;
	STEP(q, "configured");
	if (q->agent_rc < 0) {
		step_fail(q, q->agent_err.code, "configuring the guest: %s", err_str(&q->agent_err));
		return;
	}
	vm->state = VM_RUNNING;
	meta_write(vm);
	/* a clone: copy its template's memory again for the next create */
	struct tmpl *t = q->base_key ? tmpl_find(vm->eng, q->base_key) : NULL;
	vm_op_finish(vm, VM_RUNNING, 0, NULL);
	if (t)
		spare_want(t, 0);
}

static void template_warmed(struct qvm *q)
{
	/* only an optimisation: an image without a shell still makes a
	 * template (a broken guest fails the stop that comes next) */
	if (q->agent_rc < 0)
		log_warn("template build '%s': warming the page cache: %s", q->vm->id,
			 err_str(&q->agent_err));
	vm_op_finish(q->vm, VM_RUNNING, 0, NULL);
}

static void boot_agent_ready(struct qvm *q)
{
	if (q->role == QVM_TEMPLATE_BUILD) {
		/* the template keeps the boot token. Before it is snapshotted,
		 * a shell and `true` are read from disk once: every clone then
		 * has them in its page cache, and its first exec does not go
		 * through the block device (~100 ms of a first exec under TCG) */
		char *argv[] = { (char *)"sh", (char *)"-c", (char *)"true; /bin/true", NULL };
		struct proto_exec ex = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
		qagent_request(q, PROTO_EXEC, &ex, STEP_TIMEOUT_MS, template_warmed);
		return;
	}
	if (q->role == QVM_PROBE) { /* it only wanted to know */
		vm_op_finish(q->vm, VM_RUNNING, 0, NULL);
		return;
	}
	qagent_configure(q, true, q_create_done);
}

static void boot_qmp_ready(struct qvm *q)
{
	qagent_connect(q, q->token, q->role == QVM_PROBE ? PROBE_TIMEOUT_MS : BOOT_TIMEOUT_MS,
		       boot_agent_ready);
}

bool q_disk_copied(struct vm *vm, int rc, const struct err *e)
{
	if (vm->op != OP_CREATE)
		return false; /* destroyed meanwhile */
	STEP(QV(vm), "disk copied");
	if (rc < 0) {
		step_fail(QV(vm), -rc, "%s", err_str(e));
		return false;
	}
	meta_write(vm);
	char *disk = qvm_path(vm, "disk.ext4");
	qemu_chown(vm, disk, -1);
	free(disk);
	return true;
}

static void boot_disk_ready(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	struct qvm *q = QV(vm);
	struct err se = ERR_INIT;
	if (!q_disk_copied(vm, rc, e))
		return;
	if (qemu_spawn(q, false, &se) < 0) {
		step_fail(q, se.code, "%s", err_str(&se));
		return;
	}
	qemu_qmp_connect(q, boot_qmp_ready);
}

int q_prepare_dir(struct vm *vm, struct err *e)
{
	struct qeng *qe = QE(vm->eng);
	if (strlen(vm->dir) + sizeof("/agent.sock") > 107)
		return err_set(e, ENAMETOOLONG, "sandbox directory '%s' is too long for its sockets",
			       vm->dir);
	int r = mkdir_p(vm->dir, 0700);
	if (r < 0)
		return err_set(e, -r, "cannot create '%s': %s", vm->dir, strerror(-r));
	if (qe->drop_user && chown(vm->dir, qe->vm_uid, qe->vm_gid) < 0)
		return err_set(e, errno, "chown '%s': %s", vm->dir, strerror(errno));
	return 0;
}

void q_boot(struct vm *vm)
{
	struct qvm *q = QV(vm);
	char *src, *dst = qvm_path(vm, "disk.ext4");
	struct buf name = BUF_INIT;
	buf_addf(&name, "rootfs-%s.ext4", vm->spec.image);
	src = qeng_image_path(vm->eng, name.data);
	snprintf(vm->origin, sizeof(vm->origin), "boot");
	if (access(src, R_OK) < 0)
		step_fail(q, ENOENT, "no image '%s' (%s is missing; run 'make images')",
			  vm->spec.image, src);
	else
		fileop_copy(src, dst, boot_disk_ready, vm);
	free(src);
	free(dst);
	buf_release(&name);
}

struct qvm *q_hidden_create(struct engine *eng, const struct vm_spec *spec, enum qvm_role role,
			    const char *accel, vm_done_fn done, void *arg)
{
	struct vm *vm = vm_new(eng, spec->id, spec, VM_CREATING, true);
	vm->op = OP_CREATE;
	vm->done = done;
	vm->done_arg = arg;
	struct qvm *q = qvm_new(vm, accel);
	q->role = role;
	return q;
}

static void q_create(struct vm *vm)
{
	struct qeng *qe = QE(vm->eng);
	struct qvm *q = qvm_new(vm, qe->accel);
	q->t0_ns = now_ns();
	struct err e = ERR_INIT;
	q_random_hex(q->token, 32);
	if (q_prepare_dir(vm, &e) < 0) {
		step_fail(q, e.code, "%s", err_str(&e));
		return;
	}
	if (vm->eng->cfg.no_templates || vm->hidden)
		q_boot(vm);
	else
		tmpl_get(vm);
}

/* ---- pause / resume ------------------------------------------------------------------ */

static void paused(struct qvm *q)
{
	q->paused = true;
	q->vm->state = VM_PAUSED;
	meta_write(q->vm);
	vm_op_finish(q->vm, VM_PAUSED, 0, NULL);
}

static void resumed(struct qvm *q)
{
	q->paused = false;
	q->vm->state = VM_RUNNING;
	meta_write(q->vm);
	vm_op_finish(q->vm, VM_RUNNING, 0, NULL);
}

static void q_pause(struct vm *vm)
{
	qemu_cmd(QV(vm), "stop", NULL, -1, paused);
}

static void q_resume(struct vm *vm)
{
	qemu_cmd(QV(vm), "cont", NULL, -1, resumed);
}

/* ---- stop (cold snapshot) ---------------------------------------------------------------- */

static void stop_flushed(int rc, const struct err *e, void *arg)
{
	char *vmid = arg;
	if (rc < 0)
		log_warn("sandbox '%s': flushing its memory: %s", vmid, err_str(e));
	free(vmid);
}

/* The guest's memory is on disk: free the tmpfs copy; STOPPED. Then, in
 * the background and in this order: the snapshot is flushed to disk and
 * dropped from the page cache, and only then does vm.json say "stopped". */
static void stop_mem_saved(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	struct qvm *q = QV(vm);
	STEP(q, "memory saved");
	if (rc < 0) {
		/* the tmpfs copy is still whole: the snapshot is not lost yet */
		struct err err = ERR_INIT;
		err_set(&err, -rc, "saving the guest memory: %s", err_str(e));
		vm->state = VM_FAILED;
		meta_write(vm);
		vm_op_finish(vm, VM_FAILED, -err.code, &err);
		return;
	}
	/* freeing ~100 MB of tmpfs pages takes ~10 ms (the aside name ends in
	 * .mem: a crash leftover is removed at the next adoption) */
	static unsigned trash_seq;
	struct buf trash = BUF_INIT;
	buf_addf(&trash, "%s/%s-freed-%u.mem", QE(vm->eng)->hot_dir, vm->id, ++trash_seq);
	q_remove_aside(q->hot_mem, trash.data);
	buf_release(&trash);
	q->paused = false;
	vm->state = VM_STOPPED;
	/* a template keeps its pages (clones read them soon) and its files
	 * are renamed into place, durably, by tmpl_build_stopped */
	if (q->role != QVM_TEMPLATE_BUILD) {
		char *mem = qvm_path(vm, "mem"), *state = qvm_path(vm, "state");
		/* the save above was the last job of this VM in the worker */
		meta_write_now(vm);
		fileop_flush_drop(mem, stop_flushed, xstrdup(vm->id));
		fileop_flush_drop(state, stop_flushed, xstrdup(vm->id));
		meta_record(vm, true);
		free(mem);
		free(state);
	}
	/* (a sandbox adopted after a restart names a template this engine
	 * has not used yet) */
	struct tmpl *t = NULL;
	if (q->base_key && q->role != QVM_TEMPLATE_BUILD)
		t = tmpl_obtain(vm, q->base_key);
	vm_op_finish(vm, VM_STOPPED, 0, NULL);
	/* not at once: a start right after this stop would queue its memory
	 * load behind the copy (the worker runs jobs in order) */
	if (t)
		spare_want(t, SPARE_DELAY_MS);
}

static void stop_exited(struct qvm *q)
{
	char *mem = qvm_path(q->vm, "mem"), *base = qvm_base_mem(q);
	STEP(q, "QEMU exited");
	fileop_save_delta(q->hot_mem, base, mem, stop_mem_saved, q->vm);
	free(mem);
	free(base);
}

static void stop_migrated(struct qvm *q)
{
	STEP(q, "snapshot saved");
	char *part = qvm_path(q->vm, "state.part"), *state = qvm_path(q->vm, "state");
	qemu_close_state_fd(q);
	if (rename(part, state) < 0) {
		step_fail(q, errno, "cannot store the snapshot: %s", strerror(errno));
	} else {
		q->on_exit = stop_exited;
		q->expect_exit = true;
		qemu_cmd(q, "quit", NULL, -1, NULL);
	}
	free(part);
	free(state);
}

static void stop_migrate_timeout(struct qvm *q)
{
	q->on_migrated = NULL;
	step_fail(q, ETIMEDOUT, "saving the snapshot timed out");
}

static void stop_migrate_sent(struct qvm *q)
{
	if (q->migrated) {
		stop_migrated(q);
		return;
	}
	q->on_migrated = stop_migrated;
	step_after(q, STEP_TIMEOUT_MS, stop_migrate_timeout);
}

static void stop_getfd_done(struct qvm *q)
{
	qemu_cmd(q, "migrate", qemu_args_str("uri", "fd:snapshot"), -1, stop_migrate_sent);
}

static void stop_caps_done(struct qvm *q)
{
	char *part = qvm_path(q->vm, "state.part");
	q->state_fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (q->state_fd < 0)
		step_fail(q, errno, "cannot create '%s': %s", part, strerror(errno));
	else
		qemu_cmd(q, "getfd", qemu_args_str("fdname", "snapshot"), q->state_fd, stop_getfd_done);
	free(part);
}

static void stop_cpus_stopped(struct qvm *q)
{
	STEP(q, "vCPUs stopped");
	q->migrated = false;
	/* the agent session ends here: a restore starts a new one */
	qagent_close(q);
	qemu_cmd(q, "migrate-set-capabilities", qemu_migrate_caps(), -1, stop_caps_done);
}

static void stop_synced(struct qvm *q)
{
	STEP(q, "guest synced");
	if (q->agent_rc < 0 && !q->paused && q->role != QVM_TEMPLATE_BUILD)
		log_warn("vm '%s': sync in the guest: %s", q->vm->id, err_str(&q->agent_err));
	qemu_cmd(q, "stop", NULL, -1, stop_cpus_stopped);
}

static void q_stop(struct vm *vm)
{
	struct qvm *q = QV(vm);
	q->t0_ns = now_ns();
	/* a paused guest cannot answer, and a template has nothing to sync */
	if (!q->paused && q->role != QVM_TEMPLATE_BUILD && vm->agent && ac_ready(vm->agent))
		qagent_request(q, PROTO_SYNC, NULL, SYNC_TIMEOUT_MS, stop_synced);
	else
		stop_synced(q);
}

/* ---- destroy ------------------------------------------------------------------------------ */

static void destroy_removed(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	if (rc < 0)
		log_warn("sandbox '%s': removing its files: %s", vm->id, err_str(e));
	vm_op_finish(vm, VM_DESTROYING, 0, NULL);
}

static void destroy_exited(struct qvm *q)
{
	unlink(q->hot_mem);
	spare_recheck(q);
	fileop_remove_tree(q->vm->dir, destroy_removed, q->vm);
}

void q_destroy(struct vm *vm)
{
	struct qvm *q = QV(vm);
	if (!q)
		q = qvm_new(vm, QE(vm->eng)->accel);
	step_cleanup(q);
	tmpl_unwait(q);
	q->source = NULL;
	if (q->pid > 0 && q->pidw.fd >= 0) {
		q->on_exit = destroy_exited;
		qemu_kill(q);
	} else {
		destroy_exited(q);
	}
}

/* Free a qvm that owns no runtime (a create's fresh state, replaced by a
 * pool clone's). */
void q_vm_free_state(struct qvm *q)
{
	timer_cancel(&q->timer);
	tmpl_unwait(q);
	free(q->hot_mem);
	free(q->base_key);
	free(q);
}

static void q_vm_free(struct vm *vm)
{
	struct qvm *q = QV(vm);
	if (!q)
		return;
	step_cleanup(q);
	tmpl_unwait(q);
	watch_close(&q->pidw);
	/* QEMU keeps running (and its memory file): a restarted engine adopts it */
	free(q->hot_mem);
	free(q->base_key);
	free(q);
	vm->be = NULL;
}

static const char *q_mem_dir(const struct engine *eng)
{
	return QE((struct engine *)eng)->hot_dir;
}

static int q_pid(const struct vm *vm)
{
	const struct qvm *q = vm->be;
	return q ? (int)q->pid : 0;
}

/* ---- check --------------------------------------------------------------------------- */

/* The images there are (rootfs-<name>.ext4), for error messages. */
static void list_images(struct engine *eng, struct buf *out)
{
	DIR *d = opendir(eng->cfg.images_dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n > 12 && strncmp(de->d_name, "rootfs-", 7) == 0 &&
		    strcmp(de->d_name + n - 5, ".ext4") == 0)
			buf_addf(out, "%s%.*s", out->len ? ", " : "", (int)(n - 12), de->d_name + 7);
	}
	if (d)
		closedir(d);
}

static int q_check(struct engine *eng, const struct vm_spec *spec, struct err *e)
{
	const char *image = spec->image && spec->image[0] ? spec->image : "tiny";
	struct buf p = BUF_INIT, have = BUF_INIT;
	for (const char *c = image; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
			return err_set(e, EINVAL, "invalid image name '%s'", image);
	buf_addf(&p, "%s/rootfs-%s.ext4", eng->cfg.images_dir, image);
	int r = 0;
	if (access(p.data, R_OK) < 0) {
		list_images(eng, &have);
		r = err_set(e, ENOENT, "no image '%s' (available: %s)", image,
			    have.len ? have.data : "none; run 'make images'");
	}
	buf_release(&p);
	buf_release(&have);
	return r;
}

const struct engine_backend engine_qemu = {
	.name = "qemu",
	.init = q_init,
	.check = q_check,
	.adopt = q_adopt,
	.settle = q_settle,
	.fini = q_fini,
	.create = q_create,
	.pause = q_pause,
	.resume = q_resume,
	.stop = q_stop,
	.start = q_start,
	.destroy = q_destroy,
	.vm_free = q_vm_free,
	.pid = q_pid,
	.mem_dir = q_mem_dir,
};
