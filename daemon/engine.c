/* engine.c — the backend-independent half of the engine (see engine.h):
 * the VM registry, the transition table, one operation at a time per VM,
 * done callbacks, and the blocking wrappers. Sits between the engine's
 * users and the backend ops table (engine-internal.h); touches no files.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-internal.h"
#include "log.h"
#include "valid.h"

static const char *const state_names[] = {
	[VM_CREATING] = "creating", [VM_RUNNING] = "running", [VM_PAUSED] = "paused",
	[VM_STOPPING] = "stopping", [VM_STOPPED] = "stopped", [VM_STARTING] = "starting",
	[VM_FAILED] = "failed", [VM_DESTROYING] = "destroying",
};

const char *vm_state_name(enum vm_state s)
{
	return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

/* The transition table: which states an operation may start from, the
 * state while it runs, and the state it ends in. An operation asked of a
 * VM already in its end state succeeds at once. */
static const struct transition {
	enum vm_op op;
	const char *name;
	unsigned from;            /* bit per enum vm_state */
	enum vm_state during;
	enum vm_state to;
	bool keeps;               /* during and to: the state it had (a copy of it) */
} transitions[] = {
	{ OP_PAUSE, "pause", 1u << VM_RUNNING, VM_RUNNING, VM_PAUSED, false },
	{ OP_RESUME, "resume", 1u << VM_PAUSED, VM_PAUSED, VM_RUNNING, false },
	{ OP_STOP, "stop", 1u << VM_RUNNING | 1u << VM_PAUSED, VM_STOPPING, VM_STOPPED, false },
	{ OP_START, "start", 1u << VM_STOPPED, VM_STARTING, VM_RUNNING, false },
	{ OP_DESTROY, "destroy", ~0u & ~(1u << VM_DESTROYING), VM_DESTROYING, VM_DESTROYING, false },
	{ OP_SNAPSHOT, "snapshot", 1u << VM_RUNNING | 1u << VM_PAUSED, 0, 0, true },
	{ OP_FORK, "fork", 1u << VM_RUNNING | 1u << VM_PAUSED, 0, 0, true },
};

static const struct transition *transition_of(enum vm_op op)
{
	for (size_t i = 0; i < ARRAY_SIZE(transitions); i++)
		if (transitions[i].op == op)
			return &transitions[i];
	return NULL;
}

/* ---- registry ----------------------------------------------------------------- */

static char **strv_dup_or_null(char **v)
{
	return v ? strv_dup(v) : NULL;
}

/* The shape a spec asks for, its defaults filled in (strings borrowed). */
static struct vm_spec spec_shape(const struct vm_spec *src)
{
	struct vm_spec s = *src;
	s.hostname = src->hostname && src->hostname[0] ? src->hostname : src->id;
	s.image = src->image && src->image[0] ? src->image : "tiny";
	s.cpus = src->cpus ? src->cpus : 1;
	s.memory_mb = src->memory_mb ? src->memory_mb : 512;
	return s;
}

static void spec_copy(struct vm_spec *dst, const struct vm_spec *src_in)
{
	struct vm_spec shape = spec_shape(src_in), *src = &shape;
	memset(dst, 0, sizeof(*dst));
	dst->id = xstrdup(src->id);
	dst->hostname = xstrdup(src->hostname);
	dst->image = xstrdup(src->image);
	dst->cpus = src->cpus;
	dst->memory_mb = src->memory_mb;
	dst->disk_bytes = src->disk_bytes;
	dst->env = strv_dup_or_null(src->env);
	dst->secrets = strv_dup_or_null(src->secrets);
	dst->init = src->init ? xstrdup(src->init) : NULL;
	dst->snapshot = src->snapshot ? xstrdup(src->snapshot) : NULL;
	dst->net = src->net;
	if (src->nfiles) {
		dst->files = xcalloc(src->nfiles, sizeof(*dst->files));
		dst->nfiles = src->nfiles;
		for (size_t i = 0; i < src->nfiles; i++) {
			const struct proto_cfg_file *f = &src->files[i];
			struct proto_cfg_file *g = &dst->files[i];
			*g = *f;
			g->path = xstrdup(f->path);
			g->content.data = xmalloc(f->content.len ? f->content.len : 1);
			memcpy(g->content.data, f->content.data, f->content.len);
		}
	}
}

static void wipe_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		explicit_bzero(v[i], strlen(v[i]));
	strv_free(v);
}

static void spec_release(struct vm_spec *s)
{
	free((char *)s->id);
	free((char *)s->hostname);
	free((char *)s->image);
	strv_free(s->env);
	wipe_strv(s->secrets);
	free((char *)s->init);
	free((char *)s->snapshot);
	for (size_t i = 0; i < s->nfiles; i++) {
		free(s->files[i].path);
		free(s->files[i].content.data);
	}
	free(s->files);
	memset(s, 0, sizeof(*s));
}

static void op_done_now(struct task *t);

struct vm *vm_new(struct engine *eng, const char *id, const struct vm_spec *spec,
		  enum vm_state state, bool hidden)
{
	struct vm *vm = xcalloc(1, sizeof(*vm));
	struct vm_spec blank = { .id = id };
	struct buf dir = BUF_INIT;
	vm->eng = eng;
	vm->id = xstrdup(id);
	spec_copy(&vm->spec, spec ? spec : &blank);
	vm->state = state;
	vm->hidden = hidden;
	task_init(&vm->already, op_done_now, vm);
	buf_addf(&dir, "%s/%s/%s", eng->cfg.data_dir, hidden ? "templates" : "sandboxes", id);
	vm->dir = buf_detach(&dir, NULL);
	if (!hidden) {
		vm->next = eng->vms;
		eng->vms = vm;
	}
	return vm;
}

void vm_free_now(struct vm *vm)
{
	task_cancel(&vm->already);
	if (vm->eng->be->vm_free)
		vm->eng->be->vm_free(vm);
	spec_release(&vm->spec);
	free(vm->id);
	free(vm->dir);
	free(vm);
}

static void vm_free(void *p)
{
	struct vm *vm = p;
	spec_release(&vm->spec);
	free(vm->id);
	free(vm->dir);
	free(vm);
}

void vm_forget(struct vm *vm)
{
	struct engine *eng = vm->eng;
	task_cancel(&vm->already);
	for (struct vm **pp = &eng->vms; *pp; pp = &(*pp)->next) {
		if (*pp == vm) {
			*pp = vm->next;
			break;
		}
	}
	if (eng->be->vm_free)
		eng->be->vm_free(vm);
	loop_defer_free(vm_free, vm);
}

struct vm *engine_find(struct engine *eng, const char *id)
{
	for (struct vm *vm = eng->vms; vm; vm = vm->next)
		if (strcmp(vm->id, id) == 0)
			return vm;
	return NULL;
}

void engine_each(struct engine *eng, void (*fn)(struct vm *vm, void *arg), void *arg)
{
	for (struct vm *vm = eng->vms, *next; vm; vm = next) {
		next = vm->next;
		fn(vm, arg);
	}
}

/* ---- operations ------------------------------------------------------------------ */

void vm_op_finish(struct vm *vm, enum vm_state state, int rc, const struct err *e)
{
	enum vm_op op = vm->op;
	vm_done_fn done = vm->done;
	void *arg = vm->done_arg;

	task_cancel(&vm->already); /* (finished otherwise: failed, destroyed) */
	vm->op = OP_NONE;
	vm->done = NULL;
	vm->done_arg = NULL;
	vm->op_over = true;
	vm->op_rc = rc;
	err_clear(&vm->op_err);
	if (rc < 0 && e)
		vm->op_err = *e;
	else if (rc < 0)
		err_set(&vm->op_err, -rc, "%s", strerror(-rc));
	vm->state = state;
	if (rc < 0)
		snprintf(vm->error, sizeof(vm->error), "%s", err_str(&vm->op_err));
	else if (state != VM_FAILED)
		vm->error[0] = '\0';
	if (op == OP_CREATE && rc == 0)
		wipe_strv(vm->spec.secrets), vm->spec.secrets = NULL;
	if (op != OP_NONE)
		log_info("vm '%s': %s", vm->id, rc == 0 ? vm_state_name(state) : vm->error);
	if (done)
		done(vm, rc, rc < 0 ? &vm->op_err : NULL, arg);
	/* a successful destroy, or a failed create, leaves nothing behind */
	if ((op == OP_DESTROY && rc == 0) || (op == OP_CREATE && rc < 0))
		vm_forget(vm);
}

void vm_fail(struct vm *vm, const char *fmt, ...)
{
	struct err e = ERR_INIT;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
	va_end(ap);
	e.code = EIO;
	log_warn("vm '%s': %s", vm->id, e.msg);
	snprintf(vm->error, sizeof(vm->error), "%s", e.msg);
	if (vm->op != OP_NONE && vm->op != OP_DESTROY) {
		vm_op_finish(vm, VM_FAILED, -EIO, &e);
		return; /* a failed create is forgotten; no event for it */
	}
	vm->state = VM_FAILED;
	if (vm->eng->on_event && !vm->hidden)
		vm->eng->on_event(vm, VM_FAILED, &e, vm->eng->event_arg);
}

static void op_done_now(struct task *t)
{
	struct vm *vm = t->data;
	vm_op_finish(vm, vm->state, 0, NULL);
}

static int begin(struct vm *vm, enum vm_op op, vm_done_fn done, void *arg, struct err *e)
{
	const struct transition *t = transition_of(op);
	if (vm->op != OP_NONE && op != OP_DESTROY)
		return err_set(e, EBUSY, "sandbox '%s' is busy (%s)", vm->id, vm_state_name(vm->state));
	if (vm->op == OP_DESTROY || vm->state == VM_DESTROYING)
		return err_set(e, EBUSY, "sandbox '%s' is being destroyed", vm->id);
	if (op != OP_DESTROY && !t->keeps && vm->state == t->to && vm->op == OP_NONE) {
		/* already there: succeed, asynchronously like every operation */
		vm->op = op;
		vm->done = done;
		vm->done_arg = arg;
		vm->op_over = false;
		task_post(&vm->already);
		return 1;
	}
	if (!(t->from & (1u << vm->state)))
		return err_set(e, EINVAL, "cannot %s sandbox '%s': it is %s", t->name, vm->id,
			       vm_state_name(vm->state));
	if (vm->op != OP_NONE) {
		/* destroy preempts: the backend cancels (or nothing was asked of
		 * it: an "already there" answer is withdrawn); the old op fails */
		struct err c = ERR_INIT;
		task_cancel(&vm->already);
		err_set(&c, ECANCELED, "sandbox '%s' is being destroyed", vm->id);
		vm_done_fn old = vm->done;
		void *old_arg = vm->done_arg;
		vm->done = NULL;
		if (old)
			old(vm, -ECANCELED, &c, old_arg);
	}
	vm->op = op;
	vm->done = done;
	vm->done_arg = arg;
	vm->op_over = false;
	if (!t->keeps)
		vm->state = t->during;
	return 0;
}

int vm_pause(struct vm *vm, vm_done_fn done, void *arg, struct err *e)
{
	int r = begin(vm, OP_PAUSE, done, arg, e);
	if (r == 0)
		vm->eng->be->pause(vm);
	return r < 0 ? r : 0;
}

int vm_resume(struct vm *vm, vm_done_fn done, void *arg, struct err *e)
{
	int r = begin(vm, OP_RESUME, done, arg, e);
	if (r == 0)
		vm->eng->be->resume(vm);
	return r < 0 ? r : 0;
}

int vm_stop(struct vm *vm, vm_done_fn done, void *arg, struct err *e)
{
	int r = begin(vm, OP_STOP, done, arg, e);
	if (r == 0)
		vm->eng->be->stop(vm);
	return r < 0 ? r : 0;
}

int vm_start(struct vm *vm, vm_done_fn done, void *arg, struct err *e)
{
	/* (a start that is no start, "already there" or refused by the
	 * transition table, needs no room) */
	if (vm->state == VM_STOPPED && vm->op == OP_NONE && vm->eng->be->admit) {
		int a = vm->eng->be->admit(vm->eng, &vm->spec, vm, e);
		if (a < 0)
			return a;
	}
	int r = begin(vm, OP_START, done, arg, e);
	if (r == 0)
		vm->eng->be->start(vm);
	return r < 0 ? r : 0;
}

int vm_destroy(struct vm *vm, vm_done_fn done, void *arg, struct err *e)
{
	int r = begin(vm, OP_DESTROY, done, arg, e);
	if (r == 0)
		vm->eng->be->destroy(vm);
	return r < 0 ? r : 0;
}

int vm_snapshot(struct vm *vm, const char *dir, vm_done_fn done, void *arg, struct err *e)
{
	if (!vm->eng->be->snapshot)
		return err_set(e, ENOTSUP, "the '%s' engine cannot snapshot", vm->eng->be->name);
	if (!dir || dir[0] != '/')
		return err_set(e, EINVAL, "a snapshot directory must be an absolute path");
	int r = begin(vm, OP_SNAPSHOT, done, arg, e);
	if (r == 0)
		vm->eng->be->snapshot(vm, dir);
	return r < 0 ? r : 0;
}

static int check_new_id(struct engine *eng, const char *id, struct err *e)
{
	int r = valid_vm_id(id, e);
	if (r < 0)
		return r;
	if (engine_find(eng, id))
		return err_set(e, EEXIST, "sandbox '%s' already exists", id);
	return 0;
}

int vm_fork(struct vm *src, const struct vm_spec *spec, vm_done_fn src_done, void *src_arg,
	    vm_done_fn done, void *arg, struct vm **ret, struct err *e)
{
	struct engine *eng = src->eng;
	if (!eng->be->fork)
		return err_set(e, ENOTSUP, "the '%s' engine cannot fork", eng->be->name);
	int r = check_new_id(eng, spec->id, e);
	if (r < 0)
		return r;
	r = begin(src, OP_FORK, src_done, src_arg, e);
	if (r < 0)
		return r;
	/* the copy has the source's shape; its memory is admitted as a
	 * create's (no pool clone is taken: nothing credited) */
	struct vm_spec shape = { .id = spec->id, .hostname = spec->hostname,
				 .image = src->spec.image, .cpus = src->spec.cpus,
				 .memory_mb = src->spec.memory_mb, .env = src->spec.env };
	struct vm *child = vm_new(eng, spec->id, &shape, VM_CREATING, false);
	if (eng->be->admit && (r = eng->be->admit(eng, &child->spec, child, e)) < 0) {
		vm_forget(child);
		src->op = OP_NONE; /* (it had not begun: the state is as it was) */
		src->done = NULL;
		src->done_arg = NULL;
		return r;
	}
	child->op = OP_CREATE;
	child->done = done;
	child->done_arg = arg;
	*ret = child;
	eng->be->fork(src, child);
	return 0;
}

int vm_create(struct engine *eng, const struct vm_spec *spec, vm_done_fn done, void *arg,
	      struct vm **ret, struct err *e)
{
	int r = check_new_id(eng, spec->id, e);
	if (r < 0)
		return r;
	if (spec->cpus > 64)
		return err_set(e, EINVAL, "cpus must be 1 to 64, not %u", spec->cpus);
	if (spec->memory_mb && (spec->memory_mb < 64 || spec->memory_mb > 65536))
		return err_set(e, EINVAL, "memory must be 64 to 65536 MB, not %u", spec->memory_mb);
	r = eng->be->check(eng, spec, e);
	struct vm_spec shape = spec_shape(spec);
	if (r == 0 && eng->be->admit)
		r = eng->be->admit(eng, &shape, NULL, e);
	if (r < 0)
		return r;
	struct vm *vm = vm_new(eng, spec->id, spec, VM_CREATING, false);
	vm->op = OP_CREATE;
	vm->done = done;
	vm->done_arg = arg;
	*ret = vm;
	eng->be->create(vm);
	return 0;
}

/* ---- blocking wrappers -------------------------------------------------------- */

struct sync_ctx {
	bool over;
	int rc;
	struct err err;
};

static void sync_done(struct vm *vm UNUSED, int rc, const struct err *e, void *arg)
{
	struct sync_ctx *c = arg;
	c->over = true;
	c->rc = rc;
	if (e)
		c->err = *e;
}

static int sync_wait(struct sync_ctx *c, struct err *e)
{
	while (!c->over) {
		int r = loop_run_once(-1);
		if (r < 0)
			return err_set(e, -r, "event loop: %s", strerror(-r));
	}
	if (c->rc < 0 && e)
		*e = c->err;
	return c->rc;
}

int vm_create_sync(struct engine *eng, const struct vm_spec *spec, struct vm **ret, struct err *e)
{
	struct sync_ctx c = { 0 };
	struct vm *vm;
	int r = vm_create(eng, spec, sync_done, &c, &vm, e);
	if (r < 0)
		return r;
	r = sync_wait(&c, e);
	if (r == 0)
		*ret = vm;
	return r;
}

#define SYNC_OP(name)                                              \
	int vm_##name##_sync(struct vm *vm, struct err *e)          \
	{                                                           \
		struct sync_ctx c = { 0 };                          \
		int r = vm_##name(vm, sync_done, &c, e);            \
		return r < 0 ? r : sync_wait(&c, e);                \
	}

SYNC_OP(pause)
SYNC_OP(resume)
SYNC_OP(stop)
SYNC_OP(start)
SYNC_OP(destroy)

int vm_snapshot_sync(struct vm *vm, const char *dir, struct err *e)
{
	struct sync_ctx c = { 0 };
	int r = vm_snapshot(vm, dir, sync_done, &c, e);
	return r < 0 ? r : sync_wait(&c, e);
}

/* Both ends: the source going on and the copy running. */
int vm_fork_sync(struct vm *src, const struct vm_spec *spec, struct vm **ret, struct err *e)
{
	struct sync_ctx s = { 0 }, c = { 0 };
	struct vm *vm;
	int r = vm_fork(src, spec, sync_done, &s, sync_done, &c, &vm, e);
	if (r < 0)
		return r;
	struct err se = ERR_INIT;
	int rs = sync_wait(&s, &se);
	r = sync_wait(&c, e);
	if (r == 0 && rs < 0)
		log_warn("vm '%s': the fork's source: %s", src->id, err_str(&se));
	if (r == 0)
		*ret = vm;
	return r;
}

/* ---- engine -------------------------------------------------------------------- */

/* The backends there are, by name. */
static const struct engine_backend *const backends[] = { &engine_qemu };

int engine_new(const struct engine_config *cfg, vm_event_fn on_event, void *arg,
	       struct engine **ret, struct err *e)
{
	const struct engine_backend *be = cfg->backend;
	const char *name = cfg->backend_name ? cfg->backend_name : "qemu";
	for (size_t i = 0; !be && i < ARRAY_SIZE(backends); i++)
		if (strcmp(backends[i]->name, name) == 0)
			be = backends[i];
	if (!be)
		return err_set(e, EINVAL, "unknown engine '%s'", name);
	struct engine *eng = xcalloc(1, sizeof(*eng));
	eng->cfg.data_dir = xstrdup(cfg->data_dir);
	eng->cfg.images_dir = xstrdup(cfg->images_dir);
	eng->cfg.qemu = xstrdup(cfg->qemu ? cfg->qemu : "qemu-system-x86_64");
	eng->cfg.accel = xstrdup(cfg->accel ? cfg->accel : "auto");
	eng->cfg.vm_uid_first = cfg->vm_uid_first;
	eng->cfg.vm_uid_count = cfg->vm_uid_count;
	eng->cfg.console_max = cfg->console_max ? cfg->console_max : 1 << 20;
	eng->cfg.mem_dir = xstrdup(cfg->mem_dir ? cfg->mem_dir : "/dev/shm");
	eng->cfg.no_templates = cfg->no_templates;
	eng->cfg.pool_size = cfg->pool_size > 0 ? cfg->pool_size : 0;
	eng->cfg.spare_linger_ms = cfg->spare_linger_ms ? cfg->spare_linger_ms : 10 * 60 * 1000;
	eng->cfg.mem_budget = cfg->mem_budget;
	eng->cfg.key_wrap = cfg->key_wrap;
	eng->cfg.key_unwrap = cfg->key_unwrap;
	eng->cfg.key_arg = cfg->key_arg;
	eng->cfg.net = cfg->net;
	eng->be = be;
	eng->on_event = on_event;
	eng->event_arg = arg;
	int r = eng->be->init(eng, e);
	if (r == 0)
		r = eng->be->adopt(eng, e);
	if (r < 0) {
		engine_free(eng);
		return r;
	}
	*ret = eng;
	return 0;
}

void engine_settle(struct engine *eng)
{
	if (eng->be->settle)
		eng->be->settle(eng);
}

void engine_free(struct engine *eng)
{
	if (!eng)
		return;
	if (eng->be->fini)
		eng->be->fini(eng);
	while (eng->vms) {
		struct vm *vm = eng->vms;
		eng->vms = vm->next;
		task_cancel(&vm->already);
		if (eng->be->vm_free)
			eng->be->vm_free(vm);
		vm_free(vm);
	}
	free((char *)eng->cfg.data_dir);
	free((char *)eng->cfg.images_dir);
	free((char *)eng->cfg.qemu);
	free((char *)eng->cfg.accel);
	free((char *)eng->cfg.mem_dir);
	free(eng);
}

const char *engine_accel(const struct engine *eng)
{
	return eng->accel;
}

const char *engine_mem_dir(const struct engine *eng)
{
	return eng->be->mem_dir ? eng->be->mem_dir(eng) : NULL;
}

uint64_t vm_snapshot_bytes(const struct vm *vm)
{
	if (vm->state != VM_STOPPED || !vm->eng->be->snapshot_bytes)
		return 0;
	return vm->eng->be->snapshot_bytes(vm);
}

int vm_pid(const struct vm *vm)
{
	return vm->eng->be->pid ? vm->eng->be->pid(vm) : 0;
}

const char *vm_id(const struct vm *vm)
{
	return vm->id;
}

enum vm_state vm_state(const struct vm *vm)
{
	return vm->state;
}

struct ac *vm_agent(struct vm *vm)
{
	return vm->state == VM_RUNNING ? vm->agent : NULL;
}

const char *vm_dir(const struct vm *vm)
{
	return vm->dir;
}

const char *vm_restoring(const struct vm *vm)
{
	return vm->state == VM_CREATING ? vm->spec.snapshot : NULL;
}

const char *vm_error(const struct vm *vm)
{
	return vm->error;
}

const char *vm_origin(const struct vm *vm)
{
	return vm->origin[0] ? vm->origin : "boot";
}

bool vm_create_unfinished(const struct vm *vm)
{
	return vm->unfinished;
}
