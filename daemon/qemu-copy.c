/* qemu-copy.c — copies of a live VM in the QEMU backend: a named snapshot
 * (vm_snapshot: the device state, memory and disk of a running or paused
 * VM into a directory the daemon names), a fork (vm_fork: the same into a
 * new VM that runs at once), and the create that restores a named
 * snapshot as a new sandbox. A copy gets a new identity over the agent
 * channel (hostname, token, RNG seed, clock: qagent_reidentify); its
 * processes, files, environment and secrets are the guest's own.
 *
 * Sits between the engine's operations (engine.c: OP_SNAPSHOT and OP_FORK
 * on the source, OP_CREATE on the copy) and the source's QMP, the file
 * worker (fileops.c) and the restore chain (qemu-restore.c). Touches the
 * source's disk and memory file (read only, while its vCPUs are stopped),
 * the snapshot's directory (made as <dir>.part, renamed when whole) and
 * the copy's sandbox directory and memory file.
 *
 *   snapshot: stop → migrate the device state into a memfd → the worker
 *             copies the disk (a reflink where it can) and saves the
 *             memory (a delta against the template's, as a cold stop
 *             does) and the device state, encrypted with a key of the
 *             snapshot's own → cont → flush, snap.json (durable) → rename
 *             <dir>.part to <dir>
 *   fork:     stop → migrate into a memfd → the worker copies the disk →
 *             the copy's QEMU starts (-incoming, the memfd) while the
 *             worker copies the memory file (tmpfs to tmpfs: only its data
 *             extents) → cont of the source; restore of the copy → its
 *             new identity
 *   restore:  snap.json checked → copy the disk → restore_overlapped (the
 *             template's memory or its spare, the snapshot's delta and
 *             device state, decrypted and checked) → its new identity
 *
 * A snapshot directory (root's, 0700): snap.json (shape, template, the
 * guest's token, the wrapped key: 0600), disk.ext4, mem, state. A copy
 * does not depend on its source (which may be destroyed); like a stopped
 * clone it depends on its template, which is kept while a snapshot names
 * it (copy_template_in_use).
 *
 * Lifetimes: struct qcopy is reached from the source's and the copy's qvm
 * (q->copy) and from the worker jobs in flight (pending). Either VM may go
 * away first (destroy, a failed step, QEMU's death: copy_detach): a source
 * that goes takes a snapshot's part directory and fails the fork's copy;
 * a copy that goes lets the source finish alone. It is freed when neither
 * VM holds it and no job is in flight.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileops.h"
#include "qemu.h"

struct qcopy {
	struct vm *src;             /* NULL once it went away or finished */
	struct vm *child;           /* a fork's copy; NULL once it went away */
	enum vm_op op;              /* OP_SNAPSHOT or OP_FORK (the source's) */
	int pending;                /* worker jobs whose callbacks are to come */
	char *dir, *part;           /* a snapshot's directory, and while it is made */
	char *key_wrapped;          /* a snapshot's own key, wrapped (NULL: plaintext) */
	uint8_t key[32];            /* ... and itself, until the save is queued */
	bool keyed;
	struct err err;             /* the first failure of a worker job */
	qstep_fn after;             /* src_resume of a paused source: then */
};

static struct qcopy *copy_new(struct vm *src, struct vm *child, enum vm_op op)
{
	struct qcopy *c = xcalloc(1, sizeof(*c));
	c->src = src;
	c->child = child;
	c->op = op;
	QV(src)->copy = c;
	if (child)
		QV(child)->copy = c;
	return c;
}

static void copy_maybe_free(struct qcopy *c)
{
	if (c->src || c->child || c->pending)
		return;
	free(c->dir);
	free(c->part);
	free(c->key_wrapped);
	sodium_memzero(c->key, sizeof(c->key));
	free(c);
}

/* The source, while its copy operation runs. */
static struct qvm *copy_src(struct qcopy *c)
{
	return c->src && c->src->op == c->op ? QV(c->src) : NULL;
}

/* A fork's copy, while its create goes on. */
static struct qvm *copy_child(struct qcopy *c)
{
	struct qvm *cq = c->child ? QV(c->child) : NULL;
	return cq && c->child->op == OP_CREATE && !cq->undoing ? cq : NULL;
}

void copy_detach(struct qvm *q, bool quiet)
{
	struct qcopy *c = q->copy;
	if (!c)
		return;
	q->copy = NULL;
	if (c->src == q->vm) {
		c->src = NULL;
		/* (the worker runs jobs in order: a removal comes after the
		 * jobs still writing there) */
		if (!quiet && c->part)
			fileop_remove_tree(c->part, NULL, NULL);
		struct qvm *cq = quiet ? NULL : copy_child(c);
		if (cq)
			step_fail(cq, ECANCELED, "the fork's source '%s' went away before the copy "
				  "was made%s%s", q->vm->id, q->step_err.msg[0] ? ": " : "",
				  q->step_err.msg);
	} else if (c->child == q->vm) {
		c->child = NULL;
	}
	copy_maybe_free(c);
}

/* A worker job of the copy is over: the first failure is kept. */
static void copy_job_over(struct qcopy *c, int rc, const struct err *e)
{
	c->pending--;
	if (rc < 0 && !c->err.code) {
		if (e)
			c->err = *e;
		else
			err_set(&c->err, -rc, "%s", strerror(-rc));
	}
}

static void job_done(int rc, const struct err *e, void *arg)
{
	struct qcopy *c = arg;
	copy_job_over(c, rc, e);
	copy_maybe_free(c);
}

static void src_repaused(struct qvm *q)
{
	qstep_fn next = q->copy->after;
	q->copy->after = NULL;
	next(q);
}

static void src_reactivated(struct qvm *q)
{
	qemu_cmd(q, "stop", NULL, -1, src_repaused);
}

/* The source's vCPUs go on, then next. A paused source (warm) too, for a
 * moment: a completed migration hands its disk over (inactivates it), and
 * QEMU 7.2 takes it back only at a cont; a second migration of a source
 * left so (another copy, a cold stop) fails an assertion in QEMU
 * (bdrv_inactivate_recurse) and kills it. So cont, then stop again. */
static void src_resume(struct qvm *q, qstep_fn next)
{
	if (!q->paused) {
		qemu_cmd(q, "cont", NULL, -1, next);
		return;
	}
	q->copy->after = next;
	qemu_cmd(q, "cont", NULL, -1, src_reactivated);
}

/* The source's operation is over: it is as it was. */
static void src_finish(struct qvm *q)
{
	struct qcopy *c = q->copy;
	STEP(q, "source goes on");
	if (c) {
		q->copy = NULL;
		c->src = NULL;
		copy_maybe_free(c);
	}
	vm_op_finish(q->vm, q->paused ? VM_PAUSED : VM_RUNNING, 0, NULL);
}

static void src_stop_then(struct qvm *q, qstep_fn next)
{
	q->t0_ns = now_ns();
	if (q->paused)
		next(q);
	else
		qemu_cmd(q, "stop", NULL, -1, next);
}

/* ---- named snapshot ------------------------------------------------------------ */

static char *snap_meta(struct qvm *q, struct qcopy *c)
{
	struct vm *vm = q->vm;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "version", 1);
	cJSON_AddStringToObject(o, "source", vm->id);
	cJSON_AddStringToObject(o, "image", vm->spec.image);
	cJSON_AddNumberToObject(o, "cpus", vm->spec.cpus);
	cJSON_AddNumberToObject(o, "memory_mb", vm->spec.memory_mb);
	cJSON_AddStringToObject(o, "accel", q->accel);
	cJSON_AddStringToObject(o, "token", q->token);
	if (q->base_key)
		cJSON_AddStringToObject(o, "template", q->base_key);
	if (c->key_wrapped)
		cJSON_AddStringToObject(o, "key", c->key_wrapped);
	cJSON_AddNumberToObject(o, "created", (double)wall_sec());
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

/* A snapshot's job is over: its source if the snapshot goes on, else NULL
 * (the source went away, or a job failed: the source fails the step). */
static struct qvm *snap_job_over(struct qcopy *c, int rc, const struct err *e, const char *what)
{
	copy_job_over(c, rc, e);
	struct qvm *q = copy_src(c);
	if (!q) {
		copy_maybe_free(c);
		return NULL;
	}
	STEP(q, what);
	if (c->err.code) {
		step_fail(q, c->err.code, "saving the snapshot: %s", err_str(&c->err));
		return NULL;
	}
	return q;
}

static void snap_recorded(int rc, const struct err *e, void *arg)
{
	struct qcopy *c = arg;
	struct qvm *q = snap_job_over(c, rc, e, "snapshot recorded");
	if (!q)
		return;
	if (rename(c->part, c->dir) < 0) {
		step_fail(q, errno, "cannot store the snapshot in '%s': %s", c->dir, strerror(errno));
		return;
	}
	/* the rename durable too (best effort: the files are) */
	char *parent = xstrdup(c->dir), *slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(parent);
	free(c->part);
	c->part = NULL; /* it is the snapshot now */
	src_finish(q);
}

/* The guest goes on; the snapshot is flushed, then recorded. */
static void snap_resumed(struct qvm *q)
{
	struct qcopy *c = q->copy;
	STEP(q, "vCPUs go on");
	const char *files[] = { "disk.ext4", "mem", "state" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		struct buf p = BUF_INIT;
		buf_addf(&p, "%s/%s", c->part, files[i]);
		c->pending++;
		fileop_flush_drop(p.data, job_done, c);
		buf_release(&p);
	}
	char *text = snap_meta(q, c);
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/snap.json", c->part);
	c->pending++;
	fileop_write(p.data, text, true, snap_recorded, c);
	buf_release(&p);
	cJSON_free(text);
}

static void snap_saved(int rc, const struct err *e, void *arg)
{
	struct qvm *q = snap_job_over(arg, rc, e, "snapshot written");
	if (q)
		src_resume(q, snap_resumed);
}

/* The device state is in the memfd: the worker copies the disk and saves
 * the memory and the device state while the vCPUs stay stopped. */
static void snap_migrated(struct qvm *q)
{
	struct qcopy *c = q->copy;
	struct vm *vm = q->vm;
	STEP(q, "device state migrated");
	char *disk = qvm_path(vm, "disk.ext4"), *base = qvm_base_mem(q);
	struct buf dst = BUF_INIT;
	buf_addf(&dst, "%s/disk.ext4", c->part);
	c->pending += 2;
	fileop_copy(disk, dst.data, job_done, c);
	fileop_save_snapshot(q->hot_mem, base, q->state_fd, c->part, c->keyed ? c->key : NULL,
			     snap_saved, c);
	sodium_memzero(c->key, sizeof(c->key));
	qemu_close_state_fd(q);
	buf_release(&dst);
	free(disk);
	free(base);
}

static void snap_cpus_stopped(struct qvm *q)
{
	STEP(q, "vCPUs stopped");
	qemu_migrate_out(q, snap_migrated);
}

void q_snapshot(struct vm *vm, const char *dir)
{
	struct qvm *q = QV(vm);
	struct engine_config *cfg = &vm->eng->cfg;
	struct qcopy *c = copy_new(vm, NULL, OP_SNAPSHOT);
	struct err e = ERR_INIT;
	struct stat st;
	struct buf part = BUF_INIT;
	buf_addf(&part, "%s.part", dir);
	c->dir = xstrdup(dir);
	if (lstat(dir, &st) == 0) {
		free(part.data);
		step_fail(q, EEXIST, "the snapshot '%s' exists already", dir);
		return;
	}
	fileop_remove_tree_now(part.data, NULL); /* what a crash left */
	c->part = buf_detach(&part, NULL);
	if (jail_dir(c->part, 0, &e) < 0) {
		step_fail(q, e.code, "%s", err_str(&e));
		return;
	}
	if (cfg->key_wrap) {
		/* a key of its own: no other snapshot or sandbox opens it */
		randombytes_buf(c->key, sizeof(c->key));
		if (cfg->key_wrap(cfg->key_arg, c->key, &c->key_wrapped, &e) < 0) {
			step_fail(q, e.code, "making the snapshot's key: %s", err_str(&e));
			return;
		}
		c->keyed = true;
	}
	src_stop_then(q, snap_cpus_stopped);
}

/* ---- fork ------------------------------------------------------------------------- */

static void fork_src_resumed(struct qvm *q)
{
	src_finish(q);
}

static void fork_mem_copied(int rc, const struct err *e, void *arg)
{
	struct qcopy *c = arg;
	c->pending--;
	struct qvm *q = copy_src(c), *cq = copy_child(c);
	if (q)
		src_resume(q, fork_src_resumed);
	if (cq)
		restore_mem_ready(cq, rc, e); /* its restore begins */
	copy_maybe_free(c);
}

static void fork_disk_copied(int rc, const struct err *e, void *arg)
{
	struct qcopy *c = arg;
	c->pending--;
	struct qvm *q = copy_src(c), *cq = copy_child(c);
	if (!q) { /* (the copy was failed when the source went) */
		copy_maybe_free(c);
		return;
	}
	if (cq && rc < 0)
		step_fail(cq, -rc, "copying the disk: %s", err_str(e));
	else if (cq)
		STEP(cq, "disk copied");
	if (cq && rc == 0) {
		meta_write(cq->vm);
		/* QEMU starts while the memory is copied (its file is mapped,
		 * the restore waits for both) */
		cq->start_qmp_up = cq->start_mem_ready = false;
		restore_spawn(cq);
	}
	if (!copy_child(c)) {
		src_resume(q, fork_src_resumed);
		return;
	}
	c->pending++;
	fileop_fill_mem(q->hot_mem, cq->hot_mem, fork_mem_copied, c);
}

static void fork_migrated(struct qvm *q)
{
	struct qcopy *c = q->copy;
	struct qvm *cq = copy_child(c);
	STEP(q, "device state migrated");
	if (!cq) {
		qemu_close_state_fd(q);
		src_resume(q, fork_src_resumed);
		return;
	}
	/* the copy's QEMU reads the device state from the start of the memfd */
	cq->state_fd = fcntl(q->state_fd, F_DUPFD_CLOEXEC, 0);
	qemu_close_state_fd(q);
	if (cq->state_fd < 0 || lseek(cq->state_fd, 0, SEEK_SET) < 0) {
		step_fail(cq, errno, "the device state: %s", strerror(errno));
		src_resume(q, fork_src_resumed);
		return;
	}
	char *disk = qvm_path(q->vm, "disk.ext4"), *dst = qvm_path(cq->vm, "disk.ext4");
	c->pending++;
	fileop_copy(disk, dst, fork_disk_copied, c);
	free(disk);
	free(dst);
}

static void fork_cpus_stopped(struct qvm *q)
{
	STEP(q, "vCPUs stopped");
	qemu_migrate_out(q, fork_migrated);
}

void q_fork(struct vm *src, struct vm *child)
{
	struct qvm *q = QV(src), *cq = qvm_new(child, QE(src->eng)->accel);
	struct err e = ERR_INIT;
	copy_new(src, child, OP_FORK);
	cq->t0_ns = now_ns();
	q_random_hex(cq->token, 32);
	memcpy(cq->restore_token, q->token, sizeof(cq->restore_token));
	cq->reidentify = true;
	cq->base_key = q->base_key ? xstrdup(q->base_key) : NULL;
	snprintf(child->origin, sizeof(child->origin), "fork");
	if (q_prepare_dir(child, &e) < 0 || q_key_make(cq, &e) < 0)
		step_fail(cq, e.code, "%s", err_str(&e)); /* the source copies nothing */
	src_stop_then(q, fork_cpus_stopped);
}

/* ---- restore of a named snapshot ---------------------------------------------------- */

static void restore_disk_copied(int rc, const struct err *e, void *arg)
{
	struct vm *vm = arg;
	struct qvm *q = QV(vm);
	if (!q_disk_copied(vm, rc, e))
		return;
	char *base = qvm_base_mem(q);
	struct buf state = BUF_INIT, mem = BUF_INIT;
	buf_addf(&state, "%s/state", vm->spec.snapshot);
	buf_addf(&mem, "%s/mem", vm->spec.snapshot);
	restore_overlapped(q, state.data, base, mem.data, q->restore_key);
	buf_release(&state);
	buf_release(&mem);
	free(base);
}

/* snap.json, checked field by field against the create's shape. */
static int snap_check(struct vm *vm, const cJSON *m, struct err *e)
{
	const struct vm_spec *s = &vm->spec;
	struct qvm *q = QV(vm);
	char image[64];
	if (!m)
		return err_set(e, ENOENT, "no snapshot in '%s' (its snap.json is missing or broken)",
			       s->snapshot);
	const char *v = json_get_str(m, "image", "");
	if (strcmp(v, s->image) != 0 || json_get_num(m, "cpus") != s->cpus ||
	    json_get_num(m, "memory_mb") != s->memory_mb)
		return err_set(e, EINVAL, "the snapshot is of a %s sandbox with %g cpus and %g MB, "
			       "not of this shape", v, json_get_num(m, "cpus"),
			       json_get_num(m, "memory_mb"));
	if (strcmp(json_get_str(m, "accel", ""), q->accel) != 0)
		return err_set(e, EINVAL, "the snapshot was taken under %s, this engine runs %s",
			       json_get_str(m, "accel", "?"), q->accel);
	v = json_get_str(m, "token", "");
	if (strlen(v) != 64 || strspn(v, "0123456789abcdef") != 64)
		return err_set(e, EINVAL, "the snapshot's token is not valid");
	v = json_get_str(m, "template", NULL);
	if (v && tmpl_key_parse(v, image) < 0)
		return err_set(e, EINVAL, "the snapshot's template key is not valid");
	v = json_get_str(m, "key", NULL);
	if (v && (strlen(v) > 4096 || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					   "0123456789+/=") != strlen(v)))
		return err_set(e, EINVAL, "the snapshot's key is not valid");
	return 0;
}

void q_restore_snapshot(struct vm *vm)
{
	struct qvm *q = QV(vm);
	struct err e = ERR_INIT;
	cJSON *m = meta_read_file(vm->spec.snapshot, "snap.json");
	snprintf(vm->origin, sizeof(vm->origin), "restore");
	if (snap_check(vm, m, &e) < 0) {
		cJSON_Delete(m);
		step_fail(q, e.code, "%s", err_str(&e));
		return;
	}
	const char *tmpl = json_get_str(m, "template", NULL), *key = json_get_str(m, "key", NULL);
	snprintf(q->restore_token, sizeof(q->restore_token), "%s", json_get_str(m, "token", ""));
	q->reidentify = true;
	q->base_key = tmpl ? xstrdup(tmpl) : NULL;
	q->restore_key = key ? xstrdup(key) : NULL;
	cJSON_Delete(m);
	char *base = qvm_base_mem(q);
	if (base && access(base, R_OK) < 0) {
		step_fail(q, ENOENT, "the template the snapshot was made from is gone ('%s')", base);
		free(base);
		return;
	}
	free(base);
	if (q->base_key)
		tmpl_obtain(vm, q->base_key); /* (its memory spare serves the restore) */
	struct buf src = BUF_INIT;
	char *dst = qvm_path(vm, "disk.ext4");
	buf_addf(&src, "%s/disk.ext4", vm->spec.snapshot);
	fileop_copy(src.data, dst, restore_disk_copied, vm);
	buf_release(&src);
	free(dst);
}

/* ---- templates in use -------------------------------------------------------------- */

/* Does a snap.json in dir, or one level down, name template key? */
static bool dir_names_template(const char *dir, const char *key, int depth)
{
	cJSON *m = meta_read_file(dir, "snap.json");
	bool used = m && strcmp(json_get_str(m, "template", ""), key) == 0;
	cJSON_Delete(m);
	DIR *d = depth > 0 && !used ? opendir(dir) : NULL;
	struct dirent *de;
	while (d && !used && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct buf p = BUF_INIT;
		buf_addf(&p, "%s/%s", dir, de->d_name);
		used = dir_names_template(p.data, key, depth - 1);
		buf_release(&p);
	}
	if (d)
		closedir(d);
	return used;
}

bool copy_template_in_use(struct engine *eng, const char *key)
{
	char *dir = qeng_path(eng, "snapshots", NULL);
	bool used = dir_names_template(dir, key, 2);
	free(dir);
	return used;
}
