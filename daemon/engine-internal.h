/* engine-internal.h — what engine.c (generic: registry, states, operation
 * bookkeeping) and a backend (engine-qemu.c) share. Not for other users of
 * the engine: they see engine.h.
 *
 * Contract: engine.c validates an operation against the transition table,
 * marks it in flight and calls the backend; the backend finishes it exactly
 * once with vm_op_finish(). Spontaneous failures (QEMU died) go through
 * vm_fail(), which also finishes an operation in flight.
 */
#ifndef BHATTI_ENGINE_INTERNAL_H
#define BHATTI_ENGINE_INTERNAL_H

#include "engine.h"
#include "loop.h"

enum vm_op { OP_NONE, OP_CREATE, OP_PAUSE, OP_RESUME, OP_STOP, OP_START, OP_DESTROY,
	     OP_SNAPSHOT, OP_FORK /* of a source VM: it keeps its state */ };

struct engine_backend {
	const char *name;
	int (*init)(struct engine *eng, struct err *e);  /* accelerator, dirs */
	int (*adopt)(struct engine *eng, struct err *e); /* find existing VMs */
	void (*settle)(struct engine *eng);              /* NULL: nothing to wait for */
	void (*fini)(struct engine *eng);                /* VMs keep running */
	/* Can this spec be created at all (image exists, ...)? */
	int (*check)(struct engine *eng, const struct vm_spec *spec, struct err *e);
	/* Is there room for the memory of a create (vm NULL) or of a start of
	 * vm? Reserves it when there is (the create or start follows at
	 * once). NULL: always. */
	int (*admit)(struct engine *eng, const struct vm_spec *spec, struct vm *vm, struct err *e);
	void (*create)(struct vm *vm);
	void (*pause)(struct vm *vm);
	void (*resume)(struct vm *vm);
	void (*stop)(struct vm *vm);
	void (*start)(struct vm *vm);
	void (*destroy)(struct vm *vm);  /* may cancel an operation in flight */
	/* NULL: the backend cannot (-ENOTSUP). snapshot: copy vm into the
	 * directory dir (which must not exist); fork: copy src into child, a
	 * new VM in CREATING whose create is in flight. Both finish src's
	 * operation (OP_SNAPSHOT, OP_FORK) in the state it had. */
	void (*snapshot)(struct vm *vm, const char *dir);
	void (*fork)(struct vm *src, struct vm *child);
	void (*vm_free)(struct vm *vm);  /* drop backend state, not the VM */
	int (*pid)(const struct vm *vm);                 /* NULL: 0 */
	const char *(*mem_dir)(const struct engine *eng); /* NULL: none */
	uint64_t (*snapshot_bytes)(const struct vm *vm); /* a STOPPED VM's; NULL: 0 */
};

extern const struct engine_backend engine_qemu;  /* "qemu" */

struct engine {
	struct engine_config cfg;        /* strings owned */
	const struct engine_backend *be;
	void *be_state;
	vm_event_fn on_event;
	void *event_arg;
	struct vm *vms;
	char accel[8];
};

struct vm {
	struct engine *eng;
	char *id;
	char *dir;
	struct vm_spec spec;             /* deep copy; secrets wiped after create */
	enum vm_state state;
	char error[ERR_MSG_MAX];
	char origin[8];                  /* "clone" or "boot" */
	bool hidden;                     /* a template builder, not registered */
	bool unfinished;                 /* adopted in the middle of its create */

	enum vm_op op;                   /* in flight, or OP_NONE */
	struct task already;             /* answers an op asked of a VM already
					  * where it ends (on the next turn) */
	vm_done_fn done;
	void *done_arg;
	bool op_over;                    /* for vm_wait */
	int op_rc;
	struct err op_err;

	struct ac *agent;                /* the backend sets it while RUNNING */
	void *be;                        /* backend state */
	struct vm *next;
};

/* A VM object in `state` (adopt, template builders); registered unless
 * hidden. spec may be NULL (adopted VMs read theirs from disk). */
struct vm *vm_new(struct engine *eng, const char *id, const struct vm_spec *spec,
		  enum vm_state state, bool hidden);
/* Finish the operation in flight: the VM goes to `state` (rc == 0) or to
 * `state` with the error recorded (rc < 0). OP_DESTROY success frees it. */
void vm_op_finish(struct vm *vm, enum vm_state state, int rc, const struct err *e);
/* The VM broke by itself: FAILED, reason kept, event raised, and the
 * operation in flight (if any) fails with the same reason. */
void vm_fail(struct vm *vm, const char *fmt, ...) PRINTF(2, 3);
/* Forget a VM (unregister and free); its files are the backend's business. */
void vm_forget(struct vm *vm);
/* Free an unregistered (hidden) VM at once, backend state included. */
void vm_free_now(struct vm *vm);

#endif
