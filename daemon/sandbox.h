/* sandbox — the daemon's core for sandboxes: a user's sandbox is a store
 * row (name, owner, shape) plus an engine VM with the same id.
 *
 * Sits between the API handlers (which parse requests and answer them)
 * and the store + engine. Never sees HTTP or JSON. Every engine operation
 * on a sandbox goes through here, so there is one place that knows
 * whether an operation is running and who waits for it.
 *
 * States as the API shows them (engine state + the stopped flag):
 *
 *   creating ──► hot ◄──resume/pause──► warm
 *                 │ ▲                    │
 *            stop │ │ start / wake       │ stop
 *                 ▼ │                    ▼
 *   stopping ──► stopped (user) | cold (thermal, woken by any request)
 *   error: QEMU died or an operation failed (only destroy helps)
 *
 * Ownership: sandboxes belong to the server's list; a `struct sbx *` stays
 * valid until sbx_destroy() completes. Callbacks run on the event loop.
 */
#ifndef BHATTI_SANDBOX_H
#define BHATTI_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "server.h"
#include "store.h"

struct vm;

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
	uint64_t last_used_ms;    /* for the thermal manager */
};

struct sbx_create {
	char *name;               /* NULL = "sb-<id>" */
	int64_t cpus, memory_mb;  /* 0 = defaults */
	char *image;              /* NULL = default_image */
	char **env;               /* "K=V" */
	char *init;
	char **secrets;           /* secret names */
	bool all_secrets;
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
/* Make it hot: resume a warm one, restore a cold one; a user-stopped one
 * is an error (-ENOTCONN). done may run before this returns. */
void sbx_wake(struct sbx *sb, sbx_done_fn done, void *arg);
int sbx_stop(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e);
int sbx_start(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e);
/* Remove VM, files and row; sb stays valid until done returns. */
int sbx_destroy(struct sbx *sb, sbx_done_fn done, void *arg, struct err *e);
int sbx_rename(struct sbx *sb, const char *name, struct err *e);

/* "hot", "warm", "cold", "stopped", "creating", ..., "error". */
const char *sbx_state(const struct sbx *sb);
/* How it was created ("clone" or "boot"), and why it is in "error" (""). */
const char *sbx_origin(const struct sbx *sb);
const char *sbx_error(const struct sbx *sb);
/* The agent of a hot sandbox, else NULL. */
struct ac *sbx_agent(struct sbx *sb);
void sbx_touch(struct sbx *sb);

/* Forget a waiter's arg (its owner went away): its done will not run. */
void sbx_cancel_wait(struct sbx *sb, void *arg);

#endif
