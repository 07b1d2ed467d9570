/* sandbox — the daemon's core for sandboxes: a user's sandbox is a store
 * row (name, owner, shape) plus an engine VM with the same id.
 *
 * Sits between the API handlers (which parse requests and answer them)
 * and the store + engine. Never sees HTTP or JSON. Every engine operation
 * on a sandbox goes through here, so there is one place that knows
 * whether an operation is running and who waits for it.
 *
 * States as the API shows them (engine state + the stopped flag + a
 * failed wake):
 *
 *   creating ──► hot ◄──resume/pause──► warm
 *                 │ ▲                    │
 *            stop │ │ start / wake       │ stop
 *                 ▼ │                    ▼
 *   stopping ──► stopped (user) | cold (thermal)
 *   error: QEMU died or an operation failed (only destroy helps), or a
 *          wake failed (start with force retries it)
 *
 * Any request that needs the guest wakes it (sbx_wake): warm → resume,
 * cold or stopped → restore; concurrent wakes of one sandbox are one
 * operation; at most thermal.max_concurrent_wakes restores of wakes run
 * at once (more: -EAGAIN, 503). The thermal column the API shows is the
 * engine's side only: hot (running), warm (paused), cold (on disk).
 *
 * Ownership: sandboxes belong to the server's list; a `struct sbx *` stays
 * valid until sbx_destroy() completes. Callbacks run on the event loop.
 */
#ifndef BHATTI_SANDBOX_H
#define BHATTI_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "loop.h"
#include "server.h"
#include "store.h"

struct vm;
struct thermal_sbx;

struct sbx_waiter;

struct sbx {
	struct sbx *next;
	struct server *srv;
	struct sandbox_row row;
	struct vm *vm;            /* NULL when the VM is gone (lost) */
	bool busy;                /* an engine operation is running ... */
	bool stopping;            /* ... and it is the user's stop */
	bool destroying;
	struct sbx_waiter *waiters;
	unsigned guest_ops;       /* guest streams open (exec, shell, files): activity */
	const char *op_from;      /* the state when the running operation began */
	const char *op_reason;    /* why it runs: "request", "idle", "user", "keep_hot" */
	bool waking;              /* the running operation is a wake ... */
	bool cold_wake;           /* ... a restore, counted in srv->cold_wakes */
	uint64_t wake_started_ms; /* ... begun then (monotonic) */
	struct thermal_sbx *th;   /* thermal.c's (the guest's activity) */
	struct timer save;        /* the thermal record written a little later */
};

struct sbx_create {
	char *name;               /* NULL = "sb-<id>" */
	int64_t cpus, memory_mb;  /* 0 = defaults */
	char *image;              /* NULL = default_image */
	char **env;               /* "K=V" */
	char *init;
	char **secrets;           /* secret names */
	bool all_secrets;
	bool keep_hot;
	/* A copy instead of a fresh sandbox (image, cpus, memory_mb must be
	 * the copied one's; env, init and secrets are not applied: the guest
	 * has its own): restore this named snapshot directory, or fork this
	 * hot or warm sandbox (which is busy until its copy is made). */
	const char *snapshot_dir;
	struct sbx *fork_of;
	char *egress;             /* JSON (net.h), NULL = network.egress */
	char *labels;             /* labels.h's text (checked by the caller); NULL: none */
	uint64_t disk_size;       /* root disk bytes; 0 = defaults.disk_size (0: the image's) */
};

typedef void (*sbx_done_fn)(struct sbx *sb, int rc, const struct err *e, void *arg);

/* Load every row, match it with the engine's VMs (adopted at start-up),
 * destroy VMs without a row and drop rows whose VM never finished being
 * created. */
int sbx_init(struct server *srv, struct err *e);
void sbx_release_all(struct server *srv);

/* A new random sandbox id (libsodium's generator; sodium_init() first). */
void sbx_new_id(char out[VALID_SANDBOX_ID_LEN + 1]);

/* The caller's sandbox by name or id, or NULL. */
struct sbx *sbx_find(struct server *srv, const struct user *u, const char *name_or_id);

/* Create. Checks the name, quotas and secrets. Returns 0 when started
 * (done runs later, exactly once; *ret is the new sandbox, state
 * "creating") or -errno with e set. Idempotent by name: when the user has
 * one by that name, returns 0 with *ret_existing = true and *ret the
 * existing one, and done does not run. */
int sbx_create(struct server *srv, const struct user *u, const struct sbx_create *req,
	       sbx_done_fn done, void *arg, bool *ret_existing, struct sbx **ret,
	       struct err *e);
/* Make it hot: resume a warm one, restore a cold or user-stopped one
 * (which is then no longer stopped). The one way in for every request
 * that needs the guest (guest.c, later the proxy). -EAGAIN when too many
 * restores run (thermal.max_concurrent_wakes); -ENOTCONN when it is in
 * error (a failed VM, a failed wake). done may run before this returns. */
void sbx_wake(struct sbx *sb, sbx_done_fn done, void *arg);
/* The thermal manager's pause (cold = false) or cold stop. */
int sbx_cool(struct sbx *sb, bool cold, sbx_done_fn done, void *arg, struct err *e);
int sbx_stop(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e);
int sbx_start(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e);
/* Remove VM, files and row; sb stays valid until done returns. */
int sbx_destroy(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e);
int sbx_rename(struct sbx *sb, const char *name, struct err *e);
/* keep_hot on: never cooled (and woken now, when it is not hot). */
int sbx_set_keep_hot(struct sbx *sb, bool on, struct err *e);
/* Forget a failed wake (bhatti start --force). */
void sbx_clear_wake_error(struct sbx *sb);
/* A named snapshot of a hot or warm sandbox into dir (vm_snapshot); it
 * goes on as it was. */
int sbx_snapshot(struct sbx *sb, const char *dir, sbx_done_fn done, void *arg, struct err *e);
/* Disk the user's cold snapshots take (stopped sandboxes' memory). */
uint64_t sbx_cold_bytes(struct server *srv, int64_t user_id);
/* A new egress policy (JSON, net.h), applied at once. */
int sbx_set_egress(struct sbx *sb, const char *json, struct err *e);
/* Replace the labels (labels.h's text, checked by the caller; NULL: none). */
int sbx_set_labels(struct sbx *sb, const char *labels, struct err *e);

/* "hot", "warm", "cold", "stopped", "creating", ..., "error". */
const char *sbx_state(const struct sbx *sb);
/* "hot", "warm" or "cold" (docs/thermal.md). */
const char *sbx_thermal(const struct sbx *sb);
/* Milliseconds since its last activity (0 while a guest stream is open). */
uint64_t sbx_idle_ms(const struct sbx *sb);
/* How it was created ("clone" or "boot"), and why it is in "error" (""). */
const char *sbx_origin(const struct sbx *sb);
const char *sbx_error(const struct sbx *sb);
/* The agent of a hot sandbox, else NULL. */
struct ac *sbx_agent(struct sbx *sb);
/* Activity now (an API request, guest output, a busy guest). */
void sbx_touch(struct sbx *sb);

/* Forget a waiter's arg (its owner went away): its done will not run. */
void sbx_cancel_wait(struct sbx *sb, void *arg);

#endif
