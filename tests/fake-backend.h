/* fake-backend.h — a test double of the engine's VMM backend
 * (struct engine_backend, daemon/engine-internal.h). NOT product code:
 * it lives under tests/ and is linked only into tests.
 *
 * Sits between engine.c (which it serves as the QEMU backend does:
 * engine_config.backend = &fake_backend) and a unit test that wants the
 * engine's and the daemon's state machines without VMs. It has no
 * processes, files or guests: a VM is a struct, an operation a timer on
 * the event loop. What it keeps honest:
 *
 *   - every operation completes asynchronously, on a later loop turn,
 *     through vm_op_finish(), never inside the call that started it;
 *   - a failed operation leaves the VM where the QEMU backend leaves it:
 *     a failed create is gone, a failed start is STOPPED, a failed
 *     pause/resume/stop is where it was (a stop of a paused VM: PAUSED);
 *   - a destroy cancels the operation it preempts (its timer);
 *   - a VMM's death is vm_fail(): the operation in flight fails with it
 *     (none during a destroy, which goes on, as for QEMU);
 *   - adoption at engine_new() finds the VMs a test lists, in any state,
 *     a create cut short by a crash among them.
 *
 * vm_agent() is NULL for its VMs: there is no guest to talk to. State is
 * global (one engine at a time); fake_reset() clears it.
 */
#ifndef BHATTI_TEST_FAKE_BACKEND_H
#define BHATTI_TEST_FAKE_BACKEND_H

#include <stdbool.h>

#include "engine-internal.h"

extern const struct engine_backend fake_backend;

enum fake_outcome {
	FAKE_OK,       /* completes after the delay */
	FAKE_FAIL,     /* fails after the delay: -EIO, "fake: <op> failed" */
	FAKE_HANG,     /* never completes (until fake_release, a destroy, a crash) */
};

/* Forget scripts, adoptions and counters; the delay goes back to 1 ms. */
void fake_reset(void);
/* How long every operation takes (ms; 0: the next loop turn). */
void fake_set_delay(unsigned ms);
/* The next `op` asked of VM `id` (NULL: of any VM) ends as `outcome`.
 * One-shot; scripts are used in the order they were given. */
void fake_script(const char *id, enum vm_op op, enum fake_outcome outcome);
/* A VM the next engine_new() adopts: in `state` (FAILED ones say why in
 * vm_error); unfinished: a create a crash cut short. */
void fake_adopt(const char *id, enum vm_state state, bool unfinished);
/* Let a hanging operation of vm complete now (as FAKE_OK would have). */
void fake_release(struct vm *vm);
/* The VMM died: vm_fail(), as QEMU's death does. */
void fake_crash(struct vm *vm, const char *why);
/* How often the backend was asked for op (by any VM) since fake_reset(). */
unsigned fake_calls(enum vm_op op);
/* The operation vm's backend is running (OP_NONE: none): what engine.c
 * handed down and has not been finished. */
enum vm_op fake_running(const struct vm *vm);

#endif
