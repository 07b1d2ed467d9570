/* snapshot — the daemon's core for named snapshots: a store row (name,
 * owner, the source's shape, labels) plus a directory the engine fills
 * (data_dir/snapshots/<user id>/<snapshot id>/, root's, 0700:
 * vm_snapshot). Take one of a hot or warm sandbox (a cold one is woken
 * first; it goes on as it was), list, delete, resume one as a new sandbox
 * (sbx_create with snapshot_dir).
 *
 * Sits between the API handlers and the store, the engine (through
 * sandbox.c) and the file worker (removals). Never sees HTTP or JSON
 * (labels come as the JSON text the handler made, kept as it is).
 *
 * Crash safety: the row is written first, not ready (it holds the name
 * and the quota), the files are made as <dir>.part and renamed, then the
 * row is marked ready. At start-up snap_init() drops rows that are not
 * ready with their files, and removes directories no ready row names.
 */
#ifndef BHATTI_SNAPSHOT_H
#define BHATTI_SNAPSHOT_H

#include <stdint.h>

#include "err.h"
#include "sandbox.h"
#include "server.h"
#include "store.h"

struct snap_op;

/* The row of a finished create (rc 0), valid while done runs. */
typedef void (*snap_done_fn)(int rc, const struct err *e, const struct snapshot_row *row,
			     void *arg);

/* Reconcile rows and directories (after sbx_init). */
int snap_init(struct server *srv, struct err *e);

/* Where the files of a snapshot live (caller frees). */
char *snap_dir(struct server *srv, int64_t user_id, const char *id);

/* A snapshot of sb named name: checks the name, labels (JSON text of an
 * object, or NULL), the count (limits.max_snapshots: -EDQUOT) and the
 * disk quota (-EDQUOT), a name in use (-EEXIST); 0 when started (done runs
 * later, exactly once, unless snap_op_cancel) with *ret the operation. */
int snap_create(struct server *srv, const struct user *u, struct sbx *sb, const char *name,
		const char *labels, snap_done_fn done, void *arg, struct snap_op **ret,
		struct err *e);
/* The caller went away: done will not run (the snapshot is made anyway). */
void snap_op_cancel(struct snap_op *op);

/* Delete the user's snapshot: -ENOENT; -EBUSY while it is being made or
 * a sandbox is being restored from it. Its files go in the background. */
int snap_delete(struct server *srv, const struct user *u, const char *name, struct err *e);

/* A new sandbox from the user's snapshot snap (name: NULL = "<snap>-<6
 * hex>"), with the sandbox quotas of a create: as sbx_create. */
int snap_resume(struct server *srv, const struct user *u, const char *snap, const char *name,
		sbx_done_fn done, void *arg, struct sbx **ret, struct err *e);

/* A fork of sb (hot or warm; a cold one is woken first by the caller)
 * named name (NULL = "<source>-<6 hex>"): as sbx_create. */
int snap_fork(struct server *srv, const struct user *u, struct sbx *sb, const char *name,
	      sbx_done_fn done, void *arg, struct sbx **ret, struct err *e);

/* -EDQUOT (with the message) when the user's cold and named snapshots
 * take limits.max_snapshot_disk or more; else 0. */
int snap_disk_check(struct server *srv, int64_t user_id, struct err *e);

#endif
