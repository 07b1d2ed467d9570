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
 *   qemu-console.c   the guest's console, into a bounded console.log
 *   qemu-jail.c      VM uids, directories root writes into, the tmpfs
 *                    memory dir
 *   qemu-init.c      init and fini: images, directories, the accelerator
 *                    probe, the host TSC rate
 *
 * A sandbox directory (data_dir/sandboxes/<id>/, root's, mode 0700; QEMU
 * is given what it uses as descriptors and cannot reach the directory):
 *   vm.json      what a restarted engine needs to adopt it (0600)
 *   disk.ext4    the root disk: a copy of the image (or of the template's)
 *   mem          guest RAM of the last cold snapshot (only its allocated
 *                extents: a sparse file), encrypted (atrest.h)
 *   state        device state of the last cold snapshot, encrypted
 *   qmp.sock, agent.sock, console.sock (bound by the engine, QEMU listens),
 *   qemu.log (QEMU's output), console.log (+ .1: the guest's console, read
 *   by the engine and rotated: qemu-console.c)
 *
 * Each QEMU runs as a uid of its own (qemu-jail.c), which owns nothing but
 * its guest's RAM file while it runs.
 *
 * While a guest runs, its RAM is a file on tmpfs (mem_dir/bhatti-XXXXXX/
 * <id>.mem, a directory of root's: qemu-jail.c; memory-backend-file
 * share=on): page faults there are
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
 *            and the device state into a memfd, both decrypted and checked
 *            → restore → CONFIGURE (clock) → the now stale mem and state
 *            are renamed aside for the worker to delete
 *   stop:    SYNC → QMP stop → getfd (a memfd) + migrate → completed →
 *            the worker writes mem (the delta) and state, encrypted →
 *            vm.json "stopped" → quit → exit → rename the tmpfs file aside
 *            for the worker to delete (then the snapshot is flushed and
 *            dropped from the page cache in the background); a write that
 *            fails (ENOSPC) leaves no file and the guest goes on
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
 * a VM booted once and cold-snapshotted, never run again (its files are
 * root's and read-only; no QEMU ever opens them); clones copy its
 * memory and disk (a reflink where the filesystem can) and restore its
 * device state. <hash> covers the kernel, initramfs, rootfs image and
 * QEMU binary, so changing any of them builds a new template.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fileops.h"
#include "qemu.h"
#include "valid.h"

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
	/* a copy of a live guest has its own token now; its part in the copy is over */
	q->restore_token[0] = '\0';
	copy_detach(q, true);
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
	return true;
}

static void boot_disk_ready(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	struct qvm *q = QV(vm);
	struct err se = ERR_INIT;
	if (!q_disk_copied(vm, rc, e))
		return;
	if (qemu_mem_file(q, &se) < 0 || qemu_spawn(q, false, &se) < 0) {
		step_fail(q, se.code, "%s", err_str(&se));
		return;
	}
	qemu_qmp_connect(q, boot_qmp_ready);
}

int q_prepare_dir(struct vm *vm, struct err *e)
{
	if (strlen(vm->dir) + sizeof("/console.sock") > 107)
		return err_set(e, ENAMETOOLONG, "sandbox directory '%s' is too long for its sockets",
			       vm->dir);
	return jail_dir(vm->dir, 0, e);
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
	else if (vm->spec.disk_bytes)
		fileop_copy_grow(src, dst, vm->spec.disk_bytes, boot_disk_ready, vm);
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

/* Does spec ask for a root disk larger than its image? */
static bool q_disk_grows(struct engine *eng, const struct vm_spec *spec)
{
	struct stat st;
	struct buf b = BUF_INIT;
	if (!spec->disk_bytes)
		return false;
	buf_addf(&b, "%s/rootfs-%s.ext4", eng->cfg.images_dir, spec->image);
	bool grows = stat(b.data, &st) == 0 && spec->disk_bytes > (uint64_t)st.st_size;
	buf_release(&b);
	return grows;
}

static void q_create(struct vm *vm)
{
	struct qeng *qe = QE(vm->eng);
	struct qvm *q = qvm_new(vm, qe->accel);
	q->t0_ns = now_ns();
	struct err e = ERR_INIT;
	q_random_hex(q->token, 32);
	if (q_prepare_dir(vm, &e) < 0 || (!vm->hidden && q_key_make(q, &e) < 0)) {
		step_fail(q, e.code, "%s", err_str(&e));
		return;
	}
	/* a disk grown past its image's size is booted afresh: a template's
	 * clone holds its filesystem mounted, as the image has it */
	if (vm->spec.snapshot)
		q_restore_snapshot(vm);
	else if (vm->eng->cfg.no_templates || vm->hidden || q_disk_grows(vm->eng, &vm->spec))
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

/* QEMU is gone: free the tmpfs copy; STOPPED. Then, in the background and
 * in this order: the snapshot is flushed to disk and dropped from the page
 * cache, and only then is vm.json's "stopped" made durable. */
static void stop_exited(struct qvm *q)
{
	struct vm *vm = q->vm;
	STEP(q, "QEMU exited");
	/* freeing ~100 MB of tmpfs pages takes ~10 ms (the aside name ends in
	 * .mem: a crash leftover is removed at the next adoption) */
	static unsigned trash_seq;
	struct buf trash = BUF_INIT;
	buf_addf(&trash, "%s-freed-%u.mem", vm->id, ++trash_seq);
	q_hot_remove_aside(vm->eng, hot_name(q->hot_mem), trash.data);
	buf_release(&trash);
	q->paused = false;
	vm->state = VM_STOPPED;
	/* a template keeps its pages (clones read them soon) and its files
	 * are renamed into place, durably, by tmpl_build_stopped */
	if (q->role != QVM_TEMPLATE_BUILD) {
		char *mem = qvm_path(vm, "mem"), *state = qvm_path(vm, "state");
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

/* The snapshot is written (not flushed yet) while QEMU, its vCPUs stopped,
 * still holds the guest: vm.json says "stopped" (trusted on this boot of
 * the host until the flush makes it durable), then QEMU quits. When the
 * snapshot or its record cannot be written (a full disk), nothing of it
 * stays and the guest goes on (step_fail continues it): the stop fails,
 * the sandbox is as it was and no memory is lost. */
static void stop_saved(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	struct qvm *q = QV(vm);
	if (vm->op != OP_STOP)
		return; /* destroyed meanwhile (its removal of the files comes after) */
	STEP(q, "snapshot written");
	if (rc < 0) {
		step_fail(q, -rc, "saving the snapshot: %s", err_str(e));
		return;
	}
	/* the save was the last job of this VM in the worker */
	vm->state = VM_STOPPED;
	int r = meta_write_now(vm);
	vm->state = VM_STOPPING;
	if (r < 0) {
		char *mem = qvm_path(vm, "mem"), *state = qvm_path(vm, "state");
		unlink(state);
		unlink(mem);
		free(mem);
		free(state);
		step_fail(q, -r, "recording the snapshot in vm.json: %s", strerror(-r));
		return;
	}
	q->on_exit = stop_exited;
	q->expect_exit = true;
	qemu_cmd(q, "quit", NULL, -1, NULL);
}

/* The device state is in the memfd: the file worker writes the snapshot
 * (encrypted with the sandbox's key, when it has one). */
static void stop_migrated(struct qvm *q)
{
	struct vm *vm = q->vm;
	struct err e = ERR_INIT;
	uint8_t key[32];
	bool keyed = false;
	STEP(q, "device state migrated");
	if (q_key_open(q, key, &keyed, &e) < 0) {
		step_fail(q, e.code, "%s", err_str(&e));
		return;
	}
	char *base = qvm_base_mem(q);
	fileop_save_snapshot(q->hot_mem, base, q->state_fd, vm->dir, keyed ? key : NULL, stop_saved,
			     vm);
	sodium_memzero(key, sizeof(key));
	qemu_close_state_fd(q);
	free(base);
}

static void stop_cpus_stopped(struct qvm *q)
{
	STEP(q, "vCPUs stopped");
	q->migrated = false;
	/* the agent session ends here: a restore starts a new one */
	qagent_close(q);
	qemu_migrate_out(q, stop_migrated);
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
	struct err e = ERR_INIT;
	q->t0_ns = now_ns();
	/* (a sandbox adopted from an engine that did not encrypt has no key
	 * yet) */
	if (q->role == QVM_SANDBOX && q_key_make(q, &e) < 0) {
		step_fail(q, e.code, "%s", err_str(&e));
		return;
	}
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
	hot_unlink(QE(q->vm->eng), hot_name(q->hot_mem));
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
	copy_detach(q, false);
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
	free(q->key_wrapped);
	free(q->restore_key);
	free(q);
}

static void q_vm_free(struct vm *vm)
{
	struct qvm *q = QV(vm);
	if (!q)
		return;
	step_cleanup(q);
	tmpl_unwait(q);
	copy_detach(q, true);
	qcon_close(q);
	watch_close(&q->pidw);
	/* QEMU keeps running (and its memory file): a restarted engine adopts it */
	free(q->hot_mem);
	free(q->base_key);
	free(q->key_wrapped);
	free(q->restore_key);
	free(q);
	vm->be = NULL;
}

static const char *q_mem_dir(const struct engine *eng)
{
	return QE((struct engine *)eng)->hot_dir;
}

static uint64_t q_snapshot_bytes(const struct vm *vm)
{
	char *mem = qvm_path(vm, "mem"), *state = qvm_path(vm, "state");
	uint64_t n = file_allocated(mem) + file_allocated(state);
	free(mem);
	free(state);
	return n;
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
	struct stat st;
	int r = valid_image(image, e);
	if (r < 0)
		return r;
	buf_addf(&p, "%s/rootfs-%s.ext4", eng->cfg.images_dir, image);
	if (access(p.data, R_OK) < 0) {
		list_images(eng, &have);
		r = err_set(e, ENOENT, "no image '%s' (available: %s)", image,
			    have.len ? have.data : "none; run 'make images'");
	} else if (spec->disk_bytes && stat(p.data, &st) == 0 &&
		   spec->disk_bytes < (uint64_t)st.st_size) {
		r = err_set(e, EINVAL, "disk_size %llu MiB is smaller than image '%s' (%llu MiB)",
			    (unsigned long long)(spec->disk_bytes >> 20), image,
			    (unsigned long long)((uint64_t)st.st_size >> 20));
	}
	buf_release(&p);
	buf_release(&have);
	return r;
}

const struct engine_backend engine_qemu = {
	.name = "qemu",
	.init = q_init,
	.check = q_check,
	.admit = q_admit,
	.adopt = q_adopt,
	.settle = q_settle,
	.fini = q_fini,
	.create = q_create,
	.pause = q_pause,
	.resume = q_resume,
	.stop = q_stop,
	.start = q_start,
	.destroy = q_destroy,
	.snapshot = q_snapshot,
	.fork = q_fork,
	.vm_free = q_vm_free,
	.pid = q_pid,
	.mem_dir = q_mem_dir,
	.snapshot_bytes = q_snapshot_bytes,
};
