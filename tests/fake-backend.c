/* fake-backend.c — a test double of the engine's VMM backend: NOT product
 * code (see fake-backend.h for what it keeps honest).
 *
 * Sits between engine.c (through struct engine_backend) and the event
 * loop: each operation arms one timer per VM and finishes through
 * vm_op_finish() when it fires. Touches no files and starts no processes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-backend.h"

struct fake_rule {
	char *id;                  /* NULL: any VM */
	enum vm_op op;
	enum fake_outcome outcome;
	struct fake_rule *next;
};

struct fake_adoptee {
	char *id;
	enum vm_state state;
	bool unfinished;
	struct fake_adoptee *next;
};

static struct {
	unsigned delay_ms;
	struct fake_rule *rules;
	struct fake_adoptee *adopt;
	unsigned calls[OP_DESTROY + 1];
	bool full;                 /* no room for memory: admit refuses */
} F = { .delay_ms = 1 };

/* Per VM. */
struct fvm {
	struct vm *vm;
	struct timer timer;        /* the operation in flight */
	enum vm_op op;             /* what the timer finishes (OP_NONE: none) */
	enum fake_outcome outcome;
	bool paused;               /* the last pause/resume left it paused */
};

static const char *const op_names[] = {
	[OP_NONE] = "none", [OP_CREATE] = "create", [OP_PAUSE] = "pause",
	[OP_RESUME] = "resume", [OP_STOP] = "stop", [OP_START] = "start",
	[OP_DESTROY] = "destroy",
};

void fake_reset(void)
{
	while (F.rules) {
		struct fake_rule *r = F.rules;
		F.rules = r->next;
		free(r->id);
		free(r);
	}
	while (F.adopt) {
		struct fake_adoptee *a = F.adopt;
		F.adopt = a->next;
		free(a->id);
		free(a);
	}
	memset(F.calls, 0, sizeof(F.calls));
	F.delay_ms = 1;
	F.full = false;
}

void fake_set_full(bool full)
{
	F.full = full;
}

void fake_set_delay(unsigned ms)
{
	F.delay_ms = ms;
}

void fake_script(const char *id, enum vm_op op, enum fake_outcome outcome)
{
	struct fake_rule *r = xcalloc(1, sizeof(*r)), **pp = &F.rules;
	r->id = id ? xstrdup(id) : NULL;
	r->op = op;
	r->outcome = outcome;
	while (*pp)
		pp = &(*pp)->next;
	*pp = r;
}

void fake_adopt(const char *id, enum vm_state state, bool unfinished)
{
	struct fake_adoptee *a = xcalloc(1, sizeof(*a)), **pp = &F.adopt;
	a->id = xstrdup(id);
	a->state = state;
	a->unfinished = unfinished;
	while (*pp)
		pp = &(*pp)->next;
	*pp = a;
}

unsigned fake_calls(enum vm_op op)
{
	return F.calls[op];
}

static enum fake_outcome outcome_for(const struct vm *vm, enum vm_op op)
{
	for (struct fake_rule **pp = &F.rules; *pp; pp = &(*pp)->next) {
		struct fake_rule *r = *pp;
		if (r->op == op && (!r->id || strcmp(r->id, vm->id) == 0)) {
			enum fake_outcome o = r->outcome;
			*pp = r->next;
			free(r->id);
			free(r);
			return o;
		}
	}
	return FAKE_OK;
}

/* ---- finishing an operation ------------------------------------------------ */

static void finish(struct fvm *f)
{
	struct vm *vm = f->vm;
	enum vm_op op = f->op;
	bool ok = f->outcome == FAKE_OK;
	struct err e = ERR_INIT;
	f->op = OP_NONE;
	if (!ok)
		err_set(&e, EIO, "fake: %s failed", op_names[op]);
	switch (op) {
	case OP_CREATE:
		if (ok)
			snprintf(vm->origin, sizeof(vm->origin), "boot");
		vm_op_finish(vm, ok ? VM_RUNNING : VM_FAILED, ok ? 0 : -EIO, &e);
		return;
	case OP_PAUSE:
		f->paused = ok;
		vm_op_finish(vm, ok ? VM_PAUSED : VM_RUNNING, ok ? 0 : -EIO, &e);
		return;
	case OP_RESUME:
		f->paused = !ok;
		vm_op_finish(vm, ok ? VM_RUNNING : VM_PAUSED, ok ? 0 : -EIO, &e);
		return;
	case OP_STOP: {
		enum vm_state back = f->paused ? VM_PAUSED : VM_RUNNING;
		if (ok)
			f->paused = false;
		vm_op_finish(vm, ok ? VM_STOPPED : back, ok ? 0 : -EIO, &e);
		return;
	}
	case OP_START:
		vm_op_finish(vm, ok ? VM_RUNNING : VM_STOPPED, ok ? 0 : -EIO, &e);
		return;
	case OP_DESTROY:
		/* (the QEMU backend never fails one; sandbox.c has a path for it) */
		vm_op_finish(vm, ok ? VM_DESTROYING : VM_FAILED, ok ? 0 : -EIO, &e);
		return;
	case OP_SNAPSHOT: /* (not offered: the fake cannot copy) */
	case OP_FORK:
	case OP_NONE:
		return;
	}
}

static void on_timer(struct timer *t)
{
	finish(t->data);
}

static struct fvm *fvm_of(struct vm *vm)
{
	struct fvm *f = vm->be;
	if (!f) {
		f = xcalloc(1, sizeof(*f));
		f->vm = vm;
		timer_init(&f->timer, on_timer, f);
		vm->be = f;
	}
	return f;
}

/* engine.c has marked op in flight: run it (the previous one, if a destroy
 * preempts it, is cancelled: engine.c has told its caller). */
static void begin(struct vm *vm, enum vm_op op)
{
	struct fvm *f = fvm_of(vm);
	F.calls[op]++;
	timer_cancel(&f->timer);
	f->op = op;
	f->outcome = outcome_for(vm, op);
	if (f->outcome != FAKE_HANG)
		timer_arm(&f->timer, F.delay_ms);
}

void fake_release(struct vm *vm)
{
	struct fvm *f = vm->be;
	if (f && f->op != OP_NONE && f->outcome == FAKE_HANG) {
		f->outcome = FAKE_OK;
		timer_arm(&f->timer, 0);
	}
}

void fake_crash(struct vm *vm, const char *why)
{
	struct fvm *f = fvm_of(vm);
	if (f->op == OP_DESTROY)
		return; /* it is being killed anyway: the destroy goes on */
	timer_cancel(&f->timer);
	f->op = OP_NONE;
	vm_fail(vm, "%s", why ? why : "the fake VMM died");
}

enum vm_op fake_running(const struct vm *vm)
{
	const struct fvm *f = vm->be;
	return f ? f->op : OP_NONE;
}

/* ---- the ops table ------------------------------------------------------------ */

static int fake_init(struct engine *eng, struct err *e UNUSED)
{
	snprintf(eng->accel, sizeof(eng->accel), "none");
	return 0;
}

static int fake_adopt_all(struct engine *eng, struct err *e UNUSED)
{
	for (struct fake_adoptee *a = F.adopt; a; a = a->next) {
		struct vm *vm = vm_new(eng, a->id, NULL, a->state, false);
		fvm_of(vm)->paused = a->state == VM_PAUSED;
		vm->unfinished = a->unfinished;
		if (a->state == VM_FAILED || a->unfinished)
			snprintf(vm->error, sizeof(vm->error), "adopted broken (fake)");
	}
	return 0;
}

static void fake_fini(struct engine *eng UNUSED)
{
}

static int fake_check(struct engine *eng UNUSED, const struct vm_spec *spec, struct err *e)
{
	const char *image = spec->image && spec->image[0] ? spec->image : "tiny";
	if (strcmp(image, "tiny") != 0 && strcmp(image, "minimal") != 0)
		return err_set(e, ENOENT, "no image '%s' (available: minimal, tiny)", image);
	return 0;
}

static int fake_admit(struct engine *eng UNUSED, const struct vm_spec *spec UNUSED,
		      struct vm *vm UNUSED, struct err *e)
{
	return F.full ? err_set(e, EAGAIN, "fake: no room for guest memory") : 0;
}

static void fake_create(struct vm *vm)
{
	begin(vm, OP_CREATE);
}

static void fake_pause(struct vm *vm)
{
	begin(vm, OP_PAUSE);
}

static void fake_resume(struct vm *vm)
{
	begin(vm, OP_RESUME);
}

static void fake_stop(struct vm *vm)
{
	begin(vm, OP_STOP);
}

static void fake_start(struct vm *vm)
{
	begin(vm, OP_START);
}

static void fake_destroy(struct vm *vm)
{
	begin(vm, OP_DESTROY);
}

static void fake_vm_free(struct vm *vm)
{
	struct fvm *f = vm->be;
	if (!f)
		return;
	timer_cancel(&f->timer);
	free(f);
	vm->be = NULL;
}

static uint64_t fake_snapshot_bytes(const struct vm *vm UNUSED)
{
	return FAKE_SNAPSHOT_BYTES;
}

const struct engine_backend fake_backend = {
	.name = "fake",
	.init = fake_init,
	.adopt = fake_adopt_all,
	.fini = fake_fini,
	.check = fake_check,
	.admit = fake_admit,
	.create = fake_create,
	.pause = fake_pause,
	.resume = fake_resume,
	.stop = fake_stop,
	.start = fake_start,
	.destroy = fake_destroy,
	.vm_free = fake_vm_free,
	.snapshot_bytes = fake_snapshot_bytes,
};
