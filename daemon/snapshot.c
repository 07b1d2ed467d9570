/* snapshot.c — named snapshots in the daemon's core (see snapshot.h): store
 * rows matched with the directories the engine fills, quotas, delete,
 * resume as a new sandbox, fork.
 *
 * Sits between the API handlers and the store, sandbox.c (the engine's
 * operations on sandboxes) and the file worker (removing directories off
 * the loop). Touches data_dir/snapshots/ only.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>

#include "engine.h"
#include "fileops.h"
#include "log.h"
#include "snapshot.h"
#include "valid.h"

struct snap_op {
	struct server *srv;
	struct snapshot_row row;
	char *dir;
	snap_done_fn done;
	void *arg;
};

static char *snap_root(struct server *srv, int64_t user_id)
{
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/snapshots", srv->cfg.data_dir);
	if (user_id >= 0)
		buf_addf(&p, "/%lld", (long long)user_id);
	return buf_detach(&p, NULL);
}

char *snap_dir(struct server *srv, int64_t user_id, const char *id)
{
	struct buf p = BUF_INIT;
	buf_addf(&p, "%s/snapshots/%lld/%s", srv->cfg.data_dir, (long long)user_id, id);
	return buf_detach(&p, NULL);
}

/* Disk the files of a directory take (one level: a snapshot's). */
static uint64_t dir_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t n = 0;
	while (d && (de = readdir(d))) {
		struct buf p = BUF_INIT;
		buf_addf(&p, "%s/%s", dir, de->d_name);
		if (de->d_name[0] != '.')
			n += file_allocated(p.data);
		buf_release(&p);
	}
	if (d)
		closedir(d);
	return n;
}

int snap_disk_check(struct server *srv, int64_t user_id, struct err *e)
{
	uint64_t quota = srv->cfg.limits.max_snapshot_disk;
	if (!quota)
		return 0;
	uint64_t used = sbx_cold_bytes(srv, user_id);
	struct snapshot_row *rows = NULL;
	size_t n = 0;
	struct err se = ERR_INIT;
	if (store_snapshot_list(srv->store, user_id, &rows, &n, &se) < 0)
		log_warn("snapshots of user %lld: %s", (long long)user_id, err_str(&se));
	for (size_t i = 0; i < n; i++)
		used += (uint64_t)rows[i].size_bytes;
	snapshot_row_array_free(rows, n);
	if (used < quota)
		return 0;
	return err_set(e, EDQUOT, "quota: your cold and named snapshots take %llu MB of disk, the "
		       "most a user may keep is %llu MB ('limits.max_snapshot_disk'); delete a "
		       "snapshot, or start or destroy a stopped sandbox first",
		       (unsigned long long)(used >> 20), (unsigned long long)(quota >> 20));
}

/* ---- create ------------------------------------------------------------------- */

static void op_free(struct snap_op *op)
{
	snapshot_row_release(&op->row);
	free(op->dir);
	free(op);
}

void snap_op_cancel(struct snap_op *op)
{
	if (op)
		op->done = NULL;
}

/* The row goes (a failed snapshot leaves nothing: the engine removed its
 * part directory). */
static void drop_row(struct server *srv, const char *id)
{
	struct err se = ERR_INIT;
	if (store_snapshot_delete(srv->store, id, &se) < 0)
		log_warn("snapshot '%s': %s", id, err_str(&se));
}

static void snap_taken(struct sbx *sb UNUSED, int rc, const struct err *e, void *arg)
{
	struct snap_op *op = arg;
	struct err se = ERR_INIT;
	if (rc == 0) {
		op->row.size_bytes = (int64_t)dir_bytes(op->dir);
		op->row.ready = true;
		rc = store_snapshot_set_ready(op->srv->store, op->row.id, op->row.size_bytes, &se);
		if (rc < 0) {
			fileop_remove_tree(op->dir, NULL, NULL);
			e = &se;
		}
	}
	if (rc < 0) {
		log_warn("snapshot '%s' of '%s': %s", op->row.name, op->row.source, err_str(e));
		drop_row(op->srv, op->row.id);
	} else {
		log_info("snapshot '%s' of '%s': %llu MB", op->row.name, op->row.source,
			 (unsigned long long)(op->row.size_bytes >> 20));
	}
	if (op->done)
		op->done(rc, rc < 0 ? e : NULL, &op->row, op->arg);
	op_free(op);
}

int snap_create(struct server *srv, const struct user *u, struct sbx *sb, const char *name,
		const char *labels, snap_done_fn done, void *arg, struct snap_op **ret,
		struct err *e)
{
	int rc = valid_snapshot_name(name, e);
	if (rc == 0)
		rc = snap_disk_check(srv, u->id, e);
	if (rc < 0)
		return rc;
	char id[VALID_SANDBOX_ID_LEN + 1];
	sbx_new_id(id);
	struct snap_op *op = xcalloc(1, sizeof(*op));
	op->srv = srv;
	op->done = done;
	op->arg = arg;
	op->row = (struct snapshot_row){
		.id = xstrdup(id), .user_id = u->id, .name = xstrdup(name),
		.source = xstrdup(sb->row.name), .image = xstrdup(sb->row.image),
		.cpus = sb->row.cpus, .memory_mb = sb->row.memory_mb,
		.labels = labels ? xstrdup(labels) : NULL, .created_at = wall_sec(),
	};
	op->dir = snap_dir(srv, u->id, id);
	rc = store_snapshot_insert(srv->store, &op->row, srv->cfg.limits.max_snapshots, e);
	if (rc == -EEXIST)
		rc = err_set(e, EEXIST, "you already have a snapshot named '%s'", name);
	bool inserted = rc == 0;
	char *root = snap_root(srv, u->id);
	if (rc == 0 && mkdir_p(root, 0700) < 0)
		rc = err_set(e, errno, "cannot create '%s': %s", root, strerror(errno));
	free(root);
	if (rc == 0)
		rc = sbx_snapshot(sb, op->dir, snap_taken, op, e);
	if (rc < 0) {
		if (inserted)
			drop_row(srv, id);
		op_free(op);
		return rc;
	}
	*ret = op;
	return 0;
}

/* ---- delete, resume, fork ---------------------------------------------------------- */

/* Is a sandbox being restored from dir? */
static bool restoring_from(struct server *srv, const char *dir)
{
	for (struct sbx *sb = srv->sandboxes; sb; sb = sb->next) {
		const char *from = sb->vm ? vm_restoring(sb->vm) : NULL;
		if (from && strcmp(from, dir) == 0)
			return true;
	}
	return false;
}

int snap_delete(struct server *srv, const struct user *u, const char *name, struct err *e)
{
	struct snapshot_row row = { 0 };
	int rc = store_snapshot_find(srv->store, u->id, name, &row, e);
	if (rc < 0)
		return rc;
	char *dir = snap_dir(srv, u->id, row.id);
	if (!row.ready)
		rc = err_set(e, EBUSY, "snapshot '%s' is being made; try again", name);
	else if (restoring_from(srv, dir))
		rc = err_set(e, EBUSY, "snapshot '%s' is being resumed; try again", name);
	else
		rc = store_snapshot_delete(srv->store, row.id, e);
	/* the row first: a crash before the files go leaves a directory
	 * that snap_init removes */
	if (rc == 0)
		fileop_remove_tree(dir, NULL, NULL);
	free(dir);
	snapshot_row_release(&row);
	return rc;
}

/* name, or base-<6 hex> cut to a valid length (caller frees). */
static char *copy_name(const char *name, const char *base)
{
	if (name)
		return xstrdup(name);
	unsigned char r[3];
	char hex[7];
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
	struct buf b = BUF_INIT;
	buf_addf(&b, "%.55s-%s", base, hex);
	return buf_detach(&b, NULL);
}

int snap_resume(struct server *srv, const struct user *u, const char *snap, const char *name,
		sbx_done_fn done, void *arg, struct sbx **ret, struct err *e)
{
	struct snapshot_row row = { 0 };
	int rc = store_snapshot_find(srv->store, u->id, snap, &row, e);
	if (rc < 0)
		return rc;
	if (!row.ready) {
		snapshot_row_release(&row);
		return err_set(e, EBUSY, "snapshot '%s' is being made; try again", snap);
	}
	char *dir = snap_dir(srv, u->id, row.id), *nm = copy_name(name, row.name);
	struct sbx_create req = { .name = nm, .cpus = row.cpus, .memory_mb = row.memory_mb,
				  .image = row.image, .snapshot_dir = dir };
	bool existing = false;
	rc = sbx_create(srv, u, &req, done, arg, &existing, ret, e);
	if (rc == 0 && existing)
		rc = err_set(e, EEXIST, "you already have a sandbox named '%s'", nm);
	free(dir);
	free(nm);
	snapshot_row_release(&row);
	return rc;
}

int snap_fork(struct server *srv, const struct user *u, struct sbx *sb, const char *name,
	      sbx_done_fn done, void *arg, struct sbx **ret, struct err *e)
{
	char *nm = copy_name(name, sb->row.name);
	struct sbx_create req = { .name = nm, .cpus = sb->row.cpus, .memory_mb = sb->row.memory_mb,
				  .image = sb->row.image, .fork_of = sb };
	bool existing = false;
	int rc = sbx_create(srv, u, &req, done, arg, &existing, ret, e);
	if (rc == 0 && existing)
		rc = err_set(e, EEXIST, "you already have a sandbox named '%s'", nm);
	free(nm);
	return rc;
}

/* ---- start-up --------------------------------------------------------------------- */

static bool has_ready_row(struct snapshot_row *rows, size_t n, int64_t user_id, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (rows[i].ready && rows[i].user_id == user_id && strcmp(rows[i].id, id) == 0)
			return true;
	return false;
}

/* In snapshots/<user>/: what no ready row names (a part directory, the
 * files of a snapshot whose delete or create a crash cut short) goes. */
static void sweep_user_dir(const char *udir, int64_t user_id, struct snapshot_row *rows,
			   size_t n)
{
	DIR *d = opendir(udir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (has_ready_row(rows, n, user_id, de->d_name))
			continue;
		struct buf p = BUF_INIT;
		struct err e = ERR_INIT;
		buf_addf(&p, "%s/%s", udir, de->d_name);
		log_warn("removing '%s': no snapshot of user %lld is made of it (a crash cut its "
			 "create or delete short)", p.data, (long long)user_id);
		if (fileop_remove_tree_now(p.data, &e) < 0)
			log_warn("%s", err_str(&e));
		buf_release(&p);
	}
	if (d)
		closedir(d);
}

int snap_init(struct server *srv, struct err *e)
{
	struct snapshot_row *rows = NULL;
	size_t n = 0;
	int rc = store_snapshot_list(srv->store, -1, &rows, &n, e);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].ready)
			continue;
		struct err se = ERR_INIT;
		log_warn("snapshot '%s' (%s): never finished (a crash): dropping it", rows[i].name,
			 rows[i].id);
		if (store_snapshot_delete(srv->store, rows[i].id, &se) < 0)
			log_warn("%s", err_str(&se));
	}
	char *root = snap_root(srv, -1);
	if (mkdir(root, 0700) < 0 && errno != EEXIST)
		rc = err_set(e, errno, "cannot create '%s': %s", root, strerror(errno));
	DIR *d = rc == 0 ? opendir(root) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char *end;
		long long uid = strtoll(de->d_name, &end, 10);
		if (de->d_name[0] == '.' || *end || uid < 0)
			continue;
		struct buf p = BUF_INIT;
		buf_addf(&p, "%s/%s", root, de->d_name);
		sweep_user_dir(p.data, uid, rows, n);
		buf_release(&p);
	}
	if (d)
		closedir(d);
	free(root);
	snapshot_row_array_free(rows, n);
	return rc;
}
