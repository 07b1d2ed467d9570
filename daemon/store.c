/* store.c — the daemon's SQLite store (see store.h). Sits between the
 * daemon's core and the `bhatti user` admin commands on one side and
 * SQLite (one connection to data_dir/state.db) and libsodium (API keys:
 * random bytes, SHA-256, constant-time compare) on the other; touches that
 * file and its -wal/-shm companions, nothing else.
 *
 * Every query lives in one table, stmt_sql[], indexed by enum stmt_id; a
 * query is prepared on first use and kept in the store. A call goes
 * q_begin() → q_text()/q_i64()/... (binding; a failure is kept and
 * reported by the next step) → q_step() per row → q_end(), which resets
 * the statement so that no read snapshot outlives the call.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "valid.h"

#define BUSY_TIMEOUT_MS 5000
#define KEY_RAW_BYTES 32

/* ---- schema ----------------------------------------------------------------
 * Append only: a released migration never changes, a new one goes last.
 * Migration i takes user_version from i to i + 1. */

static const char *const migrations[] = {
	/* 1: users, sandboxes, secrets */
	"CREATE TABLE users ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT UNIQUE NOT NULL,"
	"  key_hash BLOB UNIQUE NOT NULL,"      /* SHA-256 of the whole key */
	"  max_sandboxes INTEGER NOT NULL,"
	"  max_cpus INTEGER NOT NULL,"
	"  max_memory_mb INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL"
	");"
	"CREATE TABLE sandboxes ("
	"  id TEXT PRIMARY KEY,"                /* 12 lower-case hex */
	"  user_id INTEGER NOT NULL REFERENCES users(id),"
	"  name TEXT NOT NULL,"
	"  cpus INTEGER,"
	"  memory_mb INTEGER,"
	"  image TEXT,"
	"  created_at INTEGER,"
	"  stopped INTEGER NOT NULL DEFAULT 0," /* 1 when the user stopped it */
	"  UNIQUE (user_id, name)"
	");"
	"CREATE TABLE secrets ("
	"  user_id INTEGER NOT NULL REFERENCES users(id),"
	"  name TEXT NOT NULL,"
	"  ciphertext BLOB NOT NULL,"
	"  created_at INTEGER,"
	"  updated_at INTEGER,"
	"  PRIMARY KEY (user_id, name)"
	");",
	/* 2: a destroy in progress survives a crash, so that the next daemon
	 * finishes it (a crash in the middle left half a sandbox) */
	"ALTER TABLE sandboxes ADD COLUMN destroying INTEGER NOT NULL DEFAULT 0;",
	/* 3: thermal state that survives a restart (docs/thermal.md), and the
	 * events stream's history (docs/api.md, kept 7 days) */
	"ALTER TABLE sandboxes ADD COLUMN keep_hot INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE sandboxes ADD COLUMN last_activity INTEGER NOT NULL DEFAULT 0;" /* unix ms */
	"ALTER TABLE sandboxes ADD COLUMN warm_since INTEGER NOT NULL DEFAULT 0;"    /* unix ms */
	"ALTER TABLE sandboxes ADD COLUMN wake_count INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE sandboxes ADD COLUMN last_wake_ms INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE sandboxes ADD COLUMN wake_error TEXT;"
	"CREATE TABLE events ("
	"  seq INTEGER PRIMARY KEY,"
	"  user_id INTEGER NOT NULL,"
	"  sandbox TEXT,"                       /* the sandbox's id */
	"  at INTEGER NOT NULL,"                /* unix ms */
	"  body TEXT NOT NULL"                  /* the event as JSON */
	");"
	"CREATE INDEX events_at ON events (at);",
	/* 4: named snapshots (their files: data_dir/snapshots/<user id>/<id>/);
	 * a row is written before its files and marked ready after them */
	"CREATE TABLE snapshots ("
	"  id TEXT PRIMARY KEY,"                /* 12 lower-case hex: its directory */
	"  user_id INTEGER NOT NULL REFERENCES users(id),"
	"  name TEXT NOT NULL,"
	"  source TEXT,"                        /* the sandbox's name when it was taken */
	"  image TEXT,"
	"  cpus INTEGER,"
	"  memory_mb INTEGER,"
	"  size_bytes INTEGER NOT NULL DEFAULT 0,"
	"  labels TEXT,"                        /* a JSON object, or NULL */
	"  created_at INTEGER,"
	"  ready INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE (user_id, name)"
	");",
	/* 5: guest networking: the sandbox's address in its owner's /24 (kept
	 * across stops and restarts) and its egress policy (JSON, NULL: the
	 * server's default) */
	("ALTER TABLE sandboxes ADD COLUMN ip TEXT;"
	 "ALTER TABLE sandboxes ADD COLUMN egress TEXT;"),
	/* 6: labels, "KEY=VALUE" lines sorted by key (labels.h); NULL: none */
	"ALTER TABLE sandboxes ADD COLUMN labels TEXT;",
	/* 7: the root disk's size asked at create (NULL: the image's) */
	"ALTER TABLE sandboxes ADD COLUMN disk_size INTEGER;",
	/* 8: published ports (aliases unique across users; a sandbox's rows
	 * go with it) */
	"CREATE TABLE publish ("
	"  alias TEXT PRIMARY KEY,"
	"  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
	"  user_id INTEGER NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  created_at INTEGER,"
	"  UNIQUE (sandbox_id, port)"
	");",
};

_Static_assert(ARRAY_SIZE(migrations) == STORE_SCHEMA_VERSION,
	       "STORE_SCHEMA_VERSION must count the migrations");

/* ---- queries -------------------------------------------------------------- */

/* Rows as structs: a table of columns, in SELECT order, names the member
 * each one fills; the ROW_* macros check the member's type at compile
 * time (as config.h does). */
enum col_kind { COL_I64, COL_STR, COL_BOOL };

struct col {
	enum col_kind kind;
	size_t off;
};

struct row_kind {
	size_t size;
	const struct col *cols;
	size_t ncols;
};

#define ROW_OFF(T, m, type) (offsetof(T, m) + 0 * sizeof(&((T *)0)->m == (type *)0))
#define ROW_I64(T, m) { COL_I64, ROW_OFF(T, m, int64_t) }
#define ROW_STR(T, m) { COL_STR, ROW_OFF(T, m, char *) }
#define ROW_BOOL(T, m) { COL_BOOL, ROW_OFF(T, m, bool) }
#define ROW_KIND(T, cols) { sizeof(T), cols, ARRAY_SIZE(cols) }

#define USER_COLS "id, name, max_sandboxes, max_cpus, max_memory_mb, created_at"
static const struct col user_cols[] = {
	ROW_I64(struct user, id), ROW_STR(struct user, name),
	ROW_I64(struct user, max_sandboxes), ROW_I64(struct user, max_cpus),
	ROW_I64(struct user, max_memory_mb), ROW_I64(struct user, created_at),
};
static const struct row_kind user_rows = ROW_KIND(struct user, user_cols);

#define SANDBOX_COLS "id, user_id, name, cpus, memory_mb, image, created_at, stopped, " \
	"destroying, keep_hot, last_activity, warm_since, wake_count, last_wake_ms, wake_error, " \
	"ip, egress, labels, disk_size"
static const struct col sandbox_cols[] = {
	ROW_STR(struct sandbox_row, id), ROW_I64(struct sandbox_row, user_id),
	ROW_STR(struct sandbox_row, name), ROW_I64(struct sandbox_row, cpus),
	ROW_I64(struct sandbox_row, memory_mb), ROW_STR(struct sandbox_row, image),
	ROW_I64(struct sandbox_row, created_at), ROW_BOOL(struct sandbox_row, stopped),
	ROW_BOOL(struct sandbox_row, destroying), ROW_BOOL(struct sandbox_row, keep_hot),
	ROW_I64(struct sandbox_row, thermal.last_activity),
	ROW_I64(struct sandbox_row, thermal.warm_since),
	ROW_I64(struct sandbox_row, thermal.wake_count),
	ROW_I64(struct sandbox_row, thermal.last_wake_ms),
	ROW_STR(struct sandbox_row, thermal.wake_error),
	ROW_STR(struct sandbox_row, ip), ROW_STR(struct sandbox_row, egress),
	ROW_STR(struct sandbox_row, labels), ROW_I64(struct sandbox_row, disk_size),
};
static const struct row_kind sandbox_rows = ROW_KIND(struct sandbox_row, sandbox_cols);

#define SNAPSHOT_COLS "id, user_id, name, source, image, cpus, memory_mb, size_bytes, labels, " \
		      "created_at, ready"
static const struct col snapshot_cols[] = {
	ROW_STR(struct snapshot_row, id), ROW_I64(struct snapshot_row, user_id),
	ROW_STR(struct snapshot_row, name), ROW_STR(struct snapshot_row, source),
	ROW_STR(struct snapshot_row, image), ROW_I64(struct snapshot_row, cpus),
	ROW_I64(struct snapshot_row, memory_mb), ROW_I64(struct snapshot_row, size_bytes),
	ROW_STR(struct snapshot_row, labels), ROW_I64(struct snapshot_row, created_at),
	ROW_BOOL(struct snapshot_row, ready),
};
static const struct row_kind snapshot_rows = ROW_KIND(struct snapshot_row, snapshot_cols);

#define SECRET_COLS "name, created_at, updated_at"
static const struct col secret_cols[] = {
	ROW_STR(struct secret_meta, name), ROW_I64(struct secret_meta, created_at),
	ROW_I64(struct secret_meta, updated_at),
};
static const struct row_kind secret_rows = ROW_KIND(struct secret_meta, secret_cols);

#define PUBLISH_COLS "alias, sandbox_id, user_id, port, created_at"
static const struct col publish_cols[] = {
	ROW_STR(struct publish_row, alias), ROW_STR(struct publish_row, sandbox_id),
	ROW_I64(struct publish_row, user_id), ROW_I64(struct publish_row, port),
	ROW_I64(struct publish_row, created_at),
};
static const struct row_kind publish_rows = ROW_KIND(struct publish_row, publish_cols);

enum stmt_id {
	Q_BEGIN,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_USER_VERSION,
	Q_JOURNAL_WAL,
	Q_USER_INSERT,
	Q_USER_BY_HASH,
	Q_USER_BY_NAME,
	Q_USER_LIST,
	Q_USER_SET_KEY,
	Q_USER_DELETE,
	Q_SB_INSERT,
	Q_SB_FIND,
	Q_SB_GET,
	Q_SB_LIST,
	Q_SB_COUNT,
	Q_SB_RENAME,
	Q_SB_SET_STOPPED,
	Q_SB_SET_DESTROYING,
	Q_SB_SET_KEEP_HOT,
	Q_SB_SET_THERMAL,
	Q_SB_DELETE,
	Q_EVENT_INSERT,
	Q_EVENT_SINCE,
	Q_EVENT_PRUNE,
	Q_EVENT_LAST,
	Q_SB_SET_EGRESS,
	Q_SB_SET_LABELS,
	Q_SECRET_INSERT,
	Q_SECRET_UPDATE,
	Q_SECRET_GET,
	Q_SECRET_LIST,
	Q_SECRET_COUNT,
	Q_SECRET_DELETE,
	Q_SECRET_DELETE_USER,
	Q_SNAP_INSERT,
	Q_SNAP_FIND,
	Q_SNAP_LIST,
	Q_SNAP_COUNT,
	Q_SNAP_READY,
	Q_SNAP_DELETE,
	Q_PUB_INSERT,
	Q_PUB_GET,
	Q_PUB_LIST,
	Q_PUB_DELETE,
	Q_COUNT
};

static const char *const stmt_sql[Q_COUNT] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_USER_VERSION] = "PRAGMA user_version",
	[Q_JOURNAL_WAL] = "PRAGMA journal_mode = WAL",
	[Q_USER_INSERT] = "INSERT INTO users (name, key_hash, max_sandboxes, max_cpus, "
			  "max_memory_mb, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[Q_USER_BY_HASH] = "SELECT " USER_COLS ", key_hash FROM users WHERE key_hash = ?1",
	[Q_USER_BY_NAME] = "SELECT " USER_COLS " FROM users WHERE name = ?1",
	[Q_USER_LIST] = "SELECT " USER_COLS " FROM users ORDER BY name",
	[Q_USER_SET_KEY] = "UPDATE users SET key_hash = ?1 WHERE name = ?2",
	[Q_USER_DELETE] = "DELETE FROM users WHERE id = ?1",
	[Q_SB_INSERT] = "INSERT INTO sandboxes (" SANDBOX_COLS ") "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, 0, 0, NULL, ?12, ?13, ?14, "
			"?15)",
	[Q_SB_FIND] = "SELECT " SANDBOX_COLS " FROM sandboxes "
		      "WHERE user_id = ?1 AND (name = ?2 OR id = ?2) "
		      "ORDER BY name = ?2 DESC LIMIT 1",
	[Q_SB_GET] = "SELECT " SANDBOX_COLS " FROM sandboxes WHERE id = ?1",
	[Q_SB_LIST] = "SELECT " SANDBOX_COLS " FROM sandboxes "
		      "WHERE ?1 < 0 OR user_id = ?1 ORDER BY created_at, id",
	[Q_SB_COUNT] = "SELECT count(*) FROM sandboxes WHERE ?1 < 0 OR user_id = ?1",
	[Q_SB_RENAME] = "UPDATE sandboxes SET name = ?1 WHERE id = ?2 AND user_id = ?3",
	[Q_SB_SET_STOPPED] = "UPDATE sandboxes SET stopped = ?1 WHERE id = ?2",
	[Q_SB_SET_DESTROYING] = "UPDATE sandboxes SET destroying = ?1 WHERE id = ?2",
	[Q_SB_SET_KEEP_HOT] = "UPDATE sandboxes SET keep_hot = ?1 WHERE id = ?2",
	[Q_SB_SET_THERMAL] = "UPDATE sandboxes SET last_activity = ?1, warm_since = ?2, "
			     "wake_count = ?3, last_wake_ms = ?4, wake_error = ?5 WHERE id = ?6",
	[Q_SB_DELETE] = "DELETE FROM sandboxes WHERE id = ?1",
	[Q_EVENT_INSERT] = "INSERT INTO events (seq, user_id, sandbox, at, body) "
			   "VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_EVENT_SINCE] = "SELECT seq, user_id, body FROM events WHERE seq > ?1 "
			  "ORDER BY seq LIMIT ?2",
	[Q_EVENT_PRUNE] = "DELETE FROM events WHERE at < ?1",
	[Q_EVENT_LAST] = "SELECT coalesce(max(seq), 0) FROM events",
	[Q_SB_SET_EGRESS] = "UPDATE sandboxes SET egress = ?1 WHERE id = ?2",
	[Q_SB_SET_LABELS] = "UPDATE sandboxes SET labels = ?1 WHERE id = ?2",
	/* ?1 user, ?2 name, ?3 ciphertext, ?4 now: the same for both */
	[Q_SECRET_INSERT] = "INSERT INTO secrets (user_id, name, ciphertext, created_at, "
			    "updated_at) VALUES (?1, ?2, ?3, ?4, ?4) "
			    "ON CONFLICT (user_id, name) DO NOTHING",
	[Q_SECRET_UPDATE] = "UPDATE secrets SET ciphertext = ?3, updated_at = ?4 "
			    "WHERE user_id = ?1 AND name = ?2",
	[Q_SECRET_GET] = "SELECT ciphertext FROM secrets WHERE user_id = ?1 AND name = ?2",
	[Q_SECRET_LIST] = "SELECT " SECRET_COLS " FROM secrets "
			  "WHERE user_id = ?1 ORDER BY name",
	[Q_SECRET_COUNT] = "SELECT count(*) FROM secrets WHERE user_id = ?1",
	[Q_SECRET_DELETE] = "DELETE FROM secrets WHERE user_id = ?1 AND name = ?2",
	[Q_SECRET_DELETE_USER] = "DELETE FROM secrets WHERE user_id = ?1",
	[Q_SNAP_INSERT] = "INSERT INTO snapshots (" SNAPSHOT_COLS ") "
			  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0)",
	[Q_SNAP_FIND] = "SELECT " SNAPSHOT_COLS " FROM snapshots WHERE user_id = ?1 AND name = ?2",
	[Q_SNAP_LIST] = "SELECT " SNAPSHOT_COLS " FROM snapshots "
			"WHERE ?1 < 0 OR user_id = ?1 ORDER BY created_at, name",
	[Q_SNAP_COUNT] = "SELECT count(*) FROM snapshots WHERE ?1 < 0 OR user_id = ?1",
	[Q_SNAP_READY] = "UPDATE snapshots SET ready = 1, size_bytes = ?2 WHERE id = ?1",
	[Q_SNAP_DELETE] = "DELETE FROM snapshots WHERE id = ?1",
	[Q_PUB_INSERT] = "INSERT INTO publish (" PUBLISH_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_PUB_GET] = "SELECT " PUBLISH_COLS " FROM publish WHERE alias = ?1",
	[Q_PUB_LIST] = "SELECT " PUBLISH_COLS " FROM publish "
		       "WHERE ?1 < 0 OR user_id = ?1 ORDER BY sandbox_id, port",
	[Q_PUB_DELETE] = "DELETE FROM publish WHERE sandbox_id = ?1 AND port = ?2",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[Q_COUNT];
	char *label;    /* "database" in messages; names the file while opening */
};

/* One use of a prepared statement. */
struct q {
	struct store *st;
	sqlite3_stmt *s;
	int rc;         /* first failed bind, then the last step's result */
};

/* "database: <sqlite message>" with code, or when code is 0: EBUSY when
 * locked, else EIO. */
static int db_fail(struct store *st, int rc, int code, struct err *e)
{
	int prim = rc & 0xff;
	const char *msg = st->db && sqlite3_extended_errcode(st->db) == rc ?
			  sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
	if (!code)
		code = prim == SQLITE_BUSY || prim == SQLITE_LOCKED ? EBUSY : EIO;
	if (code == EBUSY)
		return err_set(e, code, "%s: %s (another process is writing to it, e.g. 'bhatti "
					"user'); try again", st->label, msg);
	return err_set(e, code, "%s: %s", st->label, msg);
}

static int db_error(struct store *st, int rc, struct err *e)
{
	return db_fail(st, rc, 0, e);
}

static int q_begin(struct store *st, enum stmt_id id, struct q *q, struct err *e)
{
	*q = (struct q){ .st = st, .rc = SQLITE_OK };
	if (!st->stmt[id]) {
		int rc = sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					    &st->stmt[id], NULL);
		if (rc != SQLITE_OK) {
			st->stmt[id] = NULL;
			return db_error(st, rc, e);
		}
	}
	q->s = st->stmt[id];
	return 0;
}

static void q_bound(struct q *q, int rc)
{
	if (q->rc == SQLITE_OK)
		q->rc = rc;
}

static void q_text(struct q *q, int i, const char *v)
{
	q_bound(q, v ? sqlite3_bind_text(q->s, i, v, -1, SQLITE_STATIC) :
		sqlite3_bind_null(q->s, i));
}

static void q_i64(struct q *q, int i, int64_t v)
{
	q_bound(q, sqlite3_bind_int64(q->s, i, v));
}

static void q_blob(struct q *q, int i, const void *p, size_t n)
{
	/* a NULL pointer would bind SQL NULL, not an empty blob */
	q_bound(q, n ? sqlite3_bind_blob64(q->s, i, p, n, SQLITE_STATIC) :
		sqlite3_bind_zeroblob(q->s, i, 0));
}

/* 1 for a row, 0 when done; -EEXIST for a unique or primary key
 * violation, -ENOENT for a foreign key one (callers say which row), else
 * db_error(). q->rc keeps SQLite's extended code. */
static int q_step(struct q *q, struct err *e)
{
	if (q->rc != SQLITE_OK)
		return db_error(q->st, q->rc, e);
	q->rc = sqlite3_step(q->s);
	switch (q->rc) {
	case SQLITE_ROW:
		q->rc = SQLITE_OK;
		return 1;
	case SQLITE_DONE:
		q->rc = SQLITE_OK;
		return 0;
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return db_fail(q->st, q->rc, EEXIST, e);
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return db_fail(q->st, q->rc, ENOENT, e);
	default:
		return db_error(q->st, q->rc, e);
	}
}

static void q_end(struct q *q)
{
	sqlite3_reset(q->s);
	sqlite3_clear_bindings(q->s);
}

/* Rows changed by the last step of this connection. */
static int64_t q_changes(const struct q *q)
{
	return sqlite3_changes64(q->st->db);
}

static char *col_str(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? xstrdup((const char *)t) : NULL;
}

/* A statement that returns no rows (or whose rows do not matter). */
static int run(struct store *st, enum stmt_id id, struct err *e)
{
	struct q q;
	int r = q_begin(st, id, &q, e);
	if (r < 0)
		return r;
	r = q_step(&q, e);
	q_end(&q);
	return r < 0 ? r : 0;
}

/* A single integer (first column of the first row). */
static int run_i64(struct q *q, int64_t *ret, struct err *e)
{
	int r = q_step(q, e);
	if (r == 1)
		*ret = sqlite3_column_int64(q->s, 0);
	q_end(q);
	return r < 0 ? r : 0;
}

/* SQL text without parameters (migrations, PRAGMAs). */
static int exec_sql(struct store *st, const char *sql, struct err *e)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : db_error(st, rc, e);
}

static int tx_begin(struct store *st, struct err *e)
{
	return run(st, Q_BEGIN, e);
}

/* Commit if r is 0, else (or if the commit fails) roll back; returns r or
 * the commit's error. */
static int tx_end(struct store *st, int r, struct err *e)
{
	if (r >= 0) {
		r = run(st, Q_COMMIT, e);
		if (r >= 0)
			return 0;
	}
	if (!sqlite3_get_autocommit(st->db))
		run(st, Q_ROLLBACK, NULL);
	return r;
}

static void *member(void *item, size_t off)
{
	return (char *)item + off;
}

/* The current row of s into *item. */
static void row_read(const struct row_kind *k, sqlite3_stmt *s, void *item)
{
	for (size_t i = 0; i < k->ncols; i++) {
		void *m = member(item, k->cols[i].off);
		switch (k->cols[i].kind) {
		case COL_I64:
			*(int64_t *)m = sqlite3_column_int64(s, (int)i);
			break;
		case COL_STR:
			*(char **)m = col_str(s, (int)i);
			break;
		case COL_BOOL:
			*(bool *)m = sqlite3_column_int64(s, (int)i) != 0;
			break;
		}
	}
}

/* Free the strings of *item (may be NULL) and set them NULL. */
static void row_release(const struct row_kind *k, void *item)
{
	for (size_t i = 0; item && i < k->ncols; i++) {
		if (k->cols[i].kind == COL_STR) {
			char **m = member(item, k->cols[i].off);
			free(*m);
			*m = NULL;
		}
	}
}

static void rows_free(const struct row_kind *k, void *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		row_release(k, (char *)v + i * k->size);
	free(v);
}

/* Every row of statement id (?1 bound to *param unless param is NULL)
 * into a new array; NULL when there are none. */
static int rows_list(struct store *st, enum stmt_id id, const int64_t *param,
		     const struct row_kind *k, void **ret, size_t *ret_n, struct err *e)
{
	char *v = NULL;
	size_t n = 0, cap = 0;
	struct q q;
	int r;

	if ((r = q_begin(st, id, &q, e)) < 0)
		return r;
	if (param)
		q_i64(&q, 1, *param);
	while ((r = q_step(&q, e)) == 1) {
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			v = xrealloc(v, cap * k->size);
		}
		memset(v + n * k->size, 0, k->size);
		row_read(k, q.s, v + n * k->size);
		n++;
	}
	q_end(&q);
	if (r < 0) {
		rows_free(k, v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* ---- open, migrate, free -------------------------------------------------- */

static int user_version(struct store *st, int64_t *ret, struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_USER_VERSION, &q, e);
	return r < 0 ? r : run_i64(&q, ret, e);
}

static int set_wal(struct store *st, struct err *e)
{
	struct q q;
	bool wal = false;
	int r = q_begin(st, Q_JOURNAL_WAL, &q, e);
	if (r < 0)
		return r;
	r = q_step(&q, e);
	if (r == 1) {
		const unsigned char *mode = sqlite3_column_text(q.s, 0);
		wal = mode && strcmp((const char *)mode, "wal") == 0;
	}
	q_end(&q);
	if (r >= 0 && !wal)
		r = err_set(e, EIO, "%s: cannot switch to WAL journal mode", st->label);
	return r < 0 ? r : 0;
}

/* Run migrations[version..n), each in its own transaction. */
static int migrate(struct store *st, const char *const *migs, size_t n, struct err *e)
{
	int64_t v = 0;
	int r = user_version(st, &v, e);

	while (r == 0 && v != (int64_t)n) {
		char sql[64];
		if (v < 0 || v > (int64_t)n)
			return err_set(e, ENOTSUP, "%s is from a newer bhatti (schema version "
				       "%" PRId64 ", this one knows up to %zu)", st->label, v, n);
		r = tx_begin(st, e);
		if (r < 0)
			return r;
		/* another process may have migrated since the check */
		r = user_version(st, &v, e);
		if (r == 0 && v >= 0 && v < (int64_t)n) {
			r = exec_sql(st, migs[v], e);
			if (r < 0)
				err_prefix(e, "migration %" PRId64, v + 1);
			snprintf(sql, sizeof(sql), "PRAGMA user_version = %" PRId64, v + 1);
			if (r == 0)
				r = exec_sql(st, sql, e);
		}
		r = tx_end(st, r, e);
		if (r == 0)
			r = user_version(st, &v, e);
	}
	return r;
}

int store_open_migrations(const char *path, const char *const *migs, size_t n,
			  struct store **ret, struct err *e)
{
	struct store *st;
	struct buf label = BUF_INIT;
	int fd, rc, r;

	if (sodium_init() < 0)
		return err_set(e, EIO, "libsodium failed to initialise");
	/* create it private: SQLite gives -wal and -shm the same mode */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int err = errno;
		return err_set(e, err, "cannot open database '%s': %s", path, strerror(err));
	}
	close(fd);

	st = xcalloc(1, sizeof(*st));
	buf_addf(&label, "database '%s'", path);
	st->label = buf_detach(&label, NULL);
	rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		r = db_error(st, rc, e);
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	r = exec_sql(st, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL", e);
	if (r == 0)
		r = set_wal(st, e);
	if (r == 0)
		r = migrate(st, migs, n, e);
	if (r < 0)
		goto fail;
	free(st->label);
	st->label = xstrdup("database");
	*ret = st;
	return 0;
fail:
	store_free(st);
	return r;
}

void store_set_busy_timeout(struct store *st, int ms)
{
	sqlite3_busy_timeout(st->db, ms);
}

int store_open(const char *path, struct store **ret, struct err *e)
{
	return store_open_migrations(path, migrations, ARRAY_SIZE(migrations), ret, e);
}

void store_free(struct store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	/* there are no others; should one appear, it must not keep the file open */
	for (sqlite3_stmt *s; st->db && (s = sqlite3_next_stmt(st->db, NULL));)
		sqlite3_finalize(s);
	sqlite3_close(st->db);
	free(st->label);
	free(st);
}

size_t store_active_statements(const struct store *st)
{
	size_t n = 0;
	for (sqlite3_stmt *s = sqlite3_next_stmt(st->db, NULL); s;
	     s = sqlite3_next_stmt(st->db, s))
		n += sqlite3_stmt_busy(s) != 0;
	return n;
}

/* ---- users ---------------------------------------------------------------- */

void user_release(struct user *u)
{
	row_release(&user_rows, u);
}

void user_array_free(struct user *v, size_t n)
{
	rows_free(&user_rows, v, n);
}

/* A new key into *ret_key (heap) and its hash into hash. */
static void key_new(char **ret_key, unsigned char hash[crypto_hash_sha256_BYTES])
{
	unsigned char raw[KEY_RAW_BYTES];
	size_t plen = strlen(STORE_KEY_PREFIX);
	char *key = xmalloc(STORE_KEY_LEN + 1);

	_Static_assert(sizeof(STORE_KEY_PREFIX) - 1 + sodium_base64_ENCODED_LEN(KEY_RAW_BYTES,
		       sodium_base64_VARIANT_URLSAFE_NO_PADDING) == STORE_KEY_LEN + 1,
		       "STORE_KEY_LEN must match the encoding");
	randombytes_buf(raw, sizeof(raw));
	memcpy(key, STORE_KEY_PREFIX, plen);
	sodium_bin2base64(key + plen, STORE_KEY_LEN + 1 - plen, raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
	crypto_hash_sha256(hash, (const unsigned char *)key, STORE_KEY_LEN);
	*ret_key = key;
}

/* Is key shaped like one key_new() makes? */
static bool key_well_formed(const char *key)
{
	size_t plen = strlen(STORE_KEY_PREFIX), len;
	unsigned char raw[KEY_RAW_BYTES];
	const char *end;
	bool ok;

	if (!key || strnlen(key, STORE_KEY_LEN + 1) != STORE_KEY_LEN ||
	    strncmp(key, STORE_KEY_PREFIX, plen) != 0)
		return false;
	ok = sodium_base642bin(raw, sizeof(raw), key + plen, STORE_KEY_LEN - plen, NULL, &len,
			       &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
	     len == sizeof(raw) && end == key + STORE_KEY_LEN;
	sodium_memzero(raw, sizeof(raw));
	return ok;
}

int store_user_create(struct store *st, const char *name, int64_t max_sandboxes,
		      int64_t max_cpus, int64_t max_memory_mb, char **ret_key,
		      struct user *ret_user, struct err *e)
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	int64_t now = wall_sec();
	char *key;
	struct q q;
	int r;

	if ((r = valid_user_name(name, e)) < 0)
		return r;
	if (max_sandboxes < 0 || max_cpus < 0 || max_memory_mb < 0)
		return err_set(e, EINVAL, "limits of user '%s' must not be negative", name);
	if ((r = q_begin(st, Q_USER_INSERT, &q, e)) < 0)
		return r;
	key_new(&key, hash);
	q_text(&q, 1, name);
	q_blob(&q, 2, hash, sizeof(hash));
	q_i64(&q, 3, max_sandboxes);
	q_i64(&q, 4, max_cpus);
	q_i64(&q, 5, max_memory_mb);
	q_i64(&q, 6, now);
	r = q_step(&q, e);
	q_end(&q);
	if (r == -EEXIST)
		r = err_set(e, EEXIST, "user '%s' already exists", name);
	if (r < 0) {
		sodium_memzero(key, STORE_KEY_LEN);
		free(key);
		return r;
	}
	if (ret_user)
		*ret_user = (struct user){
			.id = sqlite3_last_insert_rowid(st->db), .name = xstrdup(name),
			.max_sandboxes = max_sandboxes, .max_cpus = max_cpus,
			.max_memory_mb = max_memory_mb, .created_at = now,
		};
	*ret_key = key;
	return 0;
}

int store_user_auth(struct store *st, const char *key, struct user *ret, struct err *e)
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	struct user u = { 0 };
	bool match = false;
	struct q q;
	int r;

	if (!key_well_formed(key))
		return err_set(e, ENOENT, "invalid API key");
	crypto_hash_sha256(hash, (const unsigned char *)key, STORE_KEY_LEN);
	if ((r = q_begin(st, Q_USER_BY_HASH, &q, e)) < 0)
		return r;
	q_blob(&q, 1, hash, sizeof(hash));
	r = q_step(&q, e);
	if (r == 1) {
		const void *stored = sqlite3_column_blob(q.s, 6);
		match = stored && sqlite3_column_bytes(q.s, 6) == (int)sizeof(hash) &&
			sodium_memcmp(stored, hash, sizeof(hash)) == 0;
		if (match)
			row_read(&user_rows, q.s, &u);
	}
	q_end(&q);
	if (r < 0)
		return r;
	if (!match)
		return err_set(e, ENOENT, "invalid API key");
	*ret = u;
	return 0;
}

int store_user_get(struct store *st, const char *name, struct user *ret, struct err *e)
{
	struct user u = { 0 };
	struct q q;
	int r;

	if ((r = q_begin(st, Q_USER_BY_NAME, &q, e)) < 0)
		return r;
	q_text(&q, 1, name);
	r = q_step(&q, e);
	if (r == 1)
		row_read(&user_rows, q.s, &u);
	q_end(&q);
	if (r < 0)
		return r;
	if (r == 0)
		return err_set(e, ENOENT, "user '%s' not found", name);
	*ret = u;
	return 0;
}

int store_user_list(struct store *st, struct user **ret, size_t *ret_n, struct err *e)
{
	void *v;
	int r = rows_list(st, Q_USER_LIST, NULL, &user_rows, &v, ret_n, e);
	if (r == 0)
		*ret = v;
	return r;
}

int store_user_rotate_key(struct store *st, const char *name, char **ret_key,
			  struct err *e)
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	char *key;
	struct q q;
	int r;

	if ((r = q_begin(st, Q_USER_SET_KEY, &q, e)) < 0)
		return r;
	key_new(&key, hash);
	q_blob(&q, 1, hash, sizeof(hash));
	q_text(&q, 2, name);
	r = q_step(&q, e);
	if (r == 0 && q_changes(&q) == 0)
		r = err_set(e, ENOENT, "user '%s' not found", name);
	q_end(&q);
	if (r < 0) {
		sodium_memzero(key, STORE_KEY_LEN);
		free(key);
		return r;
	}
	*ret_key = key;
	return 0;
}

static int count_of(struct store *st, enum stmt_id id, int64_t user_id, int64_t *ret,
		    struct err *e);

/* The body of store_user_delete(), inside its transaction. */
static int user_delete_tx(struct store *st, const char *name, struct err *e)
{
	struct user u = { 0 };
	int64_t count = 0;
	struct q q;
	int r;

	if ((r = store_user_get(st, name, &u, e)) < 0)
		return r;
	r = store_sandbox_count(st, u.id, &count, e);
	if (r == 0 && count > 0)
		r = err_set(e, EBUSY, "user '%s' still has %" PRId64 " sandbox%s", name, count,
			    count == 1 ? "" : "es");
	if (r == 0 && (r = count_of(st, Q_SNAP_COUNT, u.id, &count, e)) == 0 && count > 0)
		r = err_set(e, EBUSY, "user '%s' still has %" PRId64 " snapshot%s", name, count,
			    count == 1 ? "" : "s");
	if (r == 0 && (r = q_begin(st, Q_SECRET_DELETE_USER, &q, e)) == 0) {
		q_i64(&q, 1, u.id);
		r = q_step(&q, e);
		q_end(&q);
	}
	if (r == 0 && (r = q_begin(st, Q_USER_DELETE, &q, e)) == 0) {
		q_i64(&q, 1, u.id);
		r = q_step(&q, e);
		q_end(&q);
	}
	user_release(&u);
	return r < 0 ? r : 0;
}

int store_user_delete(struct store *st, const char *name, struct err *e)
{
	int r = tx_begin(st, e);
	if (r < 0)
		return r;
	return tx_end(st, user_delete_tx(st, name, e), e);
}

/* ---- sandboxes ------------------------------------------------------------ */

void sandbox_row_release(struct sandbox_row *r)
{
	row_release(&sandbox_rows, r);
}

void sandbox_row_array_free(struct sandbox_row *v, size_t n)
{
	rows_free(&sandbox_rows, v, n);
}

/* One sandbox row from q, whose parameters are bound; -ENOENT naming what. */
static int sandbox_one(struct q *q, const char *what, struct sandbox_row *ret,
		       struct err *e)
{
	struct sandbox_row row = { 0 };
	int r = q_step(q, e);
	if (r == 1)
		row_read(&sandbox_rows, q->s, &row);
	q_end(q);
	if (r < 0)
		return r;
	if (r == 0)
		return err_set(e, ENOENT, "sandbox '%s' not found", what);
	*ret = row;
	return 0;
}

int store_sandbox_insert(struct store *st, const struct sandbox_row *r, struct err *e)
{
	struct q q;
	int rc;

	if ((rc = valid_sandbox_id(r->id, e)) < 0 || (rc = valid_sandbox_name(r->name, e)) < 0)
		return rc;
	if ((rc = q_begin(st, Q_SB_INSERT, &q, e)) < 0)
		return rc;
	q_text(&q, 1, r->id);
	q_i64(&q, 2, r->user_id);
	q_text(&q, 3, r->name);
	q_i64(&q, 4, r->cpus);
	q_i64(&q, 5, r->memory_mb);
	q_text(&q, 6, r->image);
	q_i64(&q, 7, r->created_at ? r->created_at : wall_sec());
	q_i64(&q, 8, r->stopped);
	q_i64(&q, 9, r->destroying);
	q_i64(&q, 10, r->keep_hot);
	q_i64(&q, 11, r->thermal.last_activity);
	q_text(&q, 12, r->ip);
	q_text(&q, 13, r->egress);
	q_text(&q, 14, r->labels && r->labels[0] ? r->labels : NULL);
	if (r->disk_size)
		q_i64(&q, 15, r->disk_size);   /* (unbound: NULL) */
	rc = q_step(&q, e);
	if (rc == -EEXIST && q.rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		rc = err_set(e, EEXIST, "sandbox id '%s' is taken", r->id);
	else if (rc == -EEXIST)
		rc = err_set(e, EEXIST, "sandbox '%s' already exists", r->name);
	else if (rc == -ENOENT)
		rc = err_set(e, ENOENT, "user %" PRId64 " not found", r->user_id);
	q_end(&q);
	return rc < 0 ? rc : 0;
}

int store_sandbox_find(struct store *st, int64_t user_id, const char *name_or_id,
		       struct sandbox_row *ret, struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_SB_FIND, &q, e);
	if (r < 0)
		return r;
	q_i64(&q, 1, user_id);
	q_text(&q, 2, name_or_id);
	return sandbox_one(&q, name_or_id, ret, e);
}

int store_sandbox_get(struct store *st, const char *id, struct sandbox_row *ret,
		      struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_SB_GET, &q, e);
	if (r < 0)
		return r;
	q_text(&q, 1, id);
	return sandbox_one(&q, id, ret, e);
}

int store_sandbox_list(struct store *st, int64_t user_id, struct sandbox_row **ret,
		       size_t *ret_n, struct err *e)
{
	void *v;
	int r = rows_list(st, Q_SB_LIST, &user_id, &sandbox_rows, &v, ret_n, e);
	if (r == 0)
		*ret = v;
	return r;
}

/* What a count(*) query whose one parameter is a user id answers. */
static int count_of(struct store *st, enum stmt_id id, int64_t user_id, int64_t *ret,
		    struct err *e)
{
	struct q q;
	int r = q_begin(st, id, &q, e);
	if (r < 0)
		return r;
	q_i64(&q, 1, user_id);
	return run_i64(&q, ret, e);
}

int store_sandbox_count(struct store *st, int64_t user_id, int64_t *ret, struct err *e)
{
	return count_of(st, Q_SB_COUNT, user_id, ret, e);
}

/* Step a bound UPDATE or DELETE of one sandbox; -ENOENT if no row changed. */
static int sandbox_change(struct q *q, const char *id, struct err *e)
{
	int r = q_step(q, e);
	if (r == 0 && q_changes(q) == 0)
		r = err_set(e, ENOENT, "sandbox '%s' not found", id);
	q_end(q);
	return r < 0 ? r : 0;
}

int store_sandbox_rename(struct store *st, int64_t user_id, const char *id,
			 const char *new_name, struct err *e)
{
	struct q q;
	int r;

	if ((r = valid_sandbox_name(new_name, e)) < 0)
		return r;
	if ((r = q_begin(st, Q_SB_RENAME, &q, e)) < 0)
		return r;
	q_text(&q, 1, new_name);
	q_text(&q, 2, id);
	q_i64(&q, 3, user_id);
	r = sandbox_change(&q, id, e);
	if (r == -EEXIST)
		r = err_set(e, EEXIST, "sandbox '%s' already exists", new_name);
	return r;
}

int store_sandbox_set_labels(struct store *st, const char *id, const char *labels,
			     struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_SB_SET_LABELS, &q, e);
	if (r < 0)
		return r;
	q_text(&q, 1, labels && labels[0] ? labels : NULL);
	q_text(&q, 2, id);
	return sandbox_change(&q, id, e);
}

/* UPDATE sandboxes SET <flag> = ?1 WHERE id = ?2 */
static int sandbox_set_flag(struct store *st, enum stmt_id stmt, const char *id, bool on,
			    struct err *e)
{
	struct q q;
	int r = q_begin(st, stmt, &q, e);
	if (r < 0)
		return r;
	q_i64(&q, 1, on);
	q_text(&q, 2, id);
	return sandbox_change(&q, id, e);
}

int store_sandbox_set_stopped(struct store *st, const char *id, bool stopped,
			      struct err *e)
{
	return sandbox_set_flag(st, Q_SB_SET_STOPPED, id, stopped, e);
}

int store_sandbox_set_destroying(struct store *st, const char *id, bool destroying,
				 struct err *e)
{
	return sandbox_set_flag(st, Q_SB_SET_DESTROYING, id, destroying, e);
}

int store_sandbox_set_keep_hot(struct store *st, const char *id, bool keep_hot,
			       struct err *e)
{
	return sandbox_set_flag(st, Q_SB_SET_KEEP_HOT, id, keep_hot, e);
}

int store_sandbox_set_thermal(struct store *st, const char *id,
			      const struct sandbox_thermal *t, struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_SB_SET_THERMAL, &q, e);
	if (r < 0)
		return r;
	q_i64(&q, 1, t->last_activity);
	q_i64(&q, 2, t->warm_since);
	q_i64(&q, 3, t->wake_count);
	q_i64(&q, 4, t->last_wake_ms);
	q_text(&q, 5, t->wake_error && t->wake_error[0] ? t->wake_error : NULL);
	q_text(&q, 6, id);
	return sandbox_change(&q, id, e);
}

int store_sandbox_set_egress(struct store *st, const char *id, const char *egress,
			     struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_SB_SET_EGRESS, &q, e);
	if (r < 0)
		return r;
	q_text(&q, 1, egress);
	q_text(&q, 2, id);
	return sandbox_change(&q, id, e);
}

int store_sandbox_delete(struct store *st, const char *id, struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_SB_DELETE, &q, e);
	if (r < 0)
		return r;
	q_text(&q, 1, id);
	return sandbox_change(&q, id, e);
}

/* ---- events ----------------------------------------------------------------- */

/* One INSERT INTO events (inside the caller's transaction). */
static int event_insert(struct store *st, const struct store_event *ev, struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_EVENT_INSERT, &q, e);
	if (r < 0)
		return r;
	q_i64(&q, 1, ev->seq);
	q_i64(&q, 2, ev->user_id);
	q_text(&q, 3, ev->sandbox_id);
	q_i64(&q, 4, ev->at_ms);
	q_text(&q, 5, ev->body);
	r = q_step(&q, e);
	q_end(&q);
	return r < 0 ? r : 0;
}

int store_events_add(struct store *st, const struct store_event *v, size_t n, struct err *e)
{
	int r = tx_begin(st, e);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++)
		r = event_insert(st, &v[i], e);
	return tx_end(st, r, e);
}

int store_event_each(struct store *st, int64_t after, int64_t max,
		     int (*fn)(int64_t seq, int64_t user_id, const char *body, void *arg),
		     void *arg, struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_EVENT_SINCE, &q, e);
	if (r < 0)
		return r;
	q_i64(&q, 1, after);
	q_i64(&q, 2, max);
	while ((r = q_step(&q, e)) == 1) {
		const unsigned char *body = sqlite3_column_text(q.s, 2);
		if (fn(sqlite3_column_int64(q.s, 0), sqlite3_column_int64(q.s, 1),
		       body ? (const char *)body : "{}", arg) != 0)
			break;
	}
	q_end(&q);
	return r < 0 ? r : 0;
}

int store_event_last(struct store *st, int64_t *ret, struct err *e)
{
	struct q q;
	int64_t seq = 0;
	int r = q_begin(st, Q_EVENT_LAST, &q, e);
	if (r == 0)
		r = run_i64(&q, &seq, e);
	if (r == 0)
		*ret = seq;
	return r;
}

int store_event_prune(struct store *st, int64_t before_ms, struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_EVENT_PRUNE, &q, e);
	if (r < 0)
		return r;
	q_i64(&q, 1, before_ms);
	r = q_step(&q, e);
	q_end(&q);
	return r < 0 ? r : 0;
}

/* ---- secrets -------------------------------------------------------------- */

void secret_meta_release(struct secret_meta *m)
{
	row_release(&secret_rows, m);
}

void secret_meta_array_free(struct secret_meta *v, size_t n)
{
	rows_free(&secret_rows, v, n);
}

/* Q_SECRET_INSERT or Q_SECRET_UPDATE; *ret_changed: did a row change? */
static int secret_write(struct store *st, enum stmt_id id, int64_t user_id,
			const char *name, const void *ct, size_t n, int64_t now,
			bool *ret_changed, struct err *e)
{
	struct q q;
	int r = q_begin(st, id, &q, e);
	if (r < 0)
		return r;
	q_i64(&q, 1, user_id);
	q_text(&q, 2, name);
	q_blob(&q, 3, ct, n);
	q_i64(&q, 4, now);
	r = q_step(&q, e);
	if (r == 0)
		*ret_changed = q_changes(&q) > 0;
	else if (r == -ENOENT)
		r = err_set(e, ENOENT, "user %" PRId64 " not found", user_id);
	q_end(&q);
	return r < 0 ? r : 0;
}

int store_secret_put(struct store *st, int64_t user_id, const char *name,
		     const void *ct, size_t n, int64_t max, bool *ret_created,
		     struct err *e)
{
	int64_t now = wall_sec(), count = 0;
	bool created = false, updated = false;
	int r;

	if ((r = valid_secret_name(name, e)) < 0)
		return r;
	if (max < 0)
		return err_set(e, EINVAL, "the secrets quota must not be negative");
	if ((r = tx_begin(st, e)) < 0)
		return r;
	r = secret_write(st, Q_SECRET_INSERT, user_id, name, ct, n, now, &created, e);
	if (r == 0 && !created)
		r = secret_write(st, Q_SECRET_UPDATE, user_id, name, ct, n, now, &updated, e);
	/* a new row over the quota is rolled back with the transaction */
	if (r == 0 && created && (r = count_of(st, Q_SECRET_COUNT, user_id, &count, e)) == 0 && count > max)
		r = err_set(e, EDQUOT, "quota: at most %" PRId64 " secrets", max);
	r = tx_end(st, r, e);
	if (r == 0 && ret_created)
		*ret_created = created;
	return r;
}

int store_secret_get(struct store *st, int64_t user_id, const char *name,
		     struct buf *ret_ct, struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_SECRET_GET, &q, e);
	if (r < 0)
		return r;
	q_i64(&q, 1, user_id);
	q_text(&q, 2, name);
	r = q_step(&q, e);
	if (r == 1) {
		const void *p = sqlite3_column_blob(q.s, 0);
		int n = sqlite3_column_bytes(q.s, 0);
		if (p && n > 0)
			buf_add(ret_ct, p, (size_t)n);
	}
	q_end(&q);
	if (r == 0)
		return err_set(e, ENOENT, "secret '%s' not found", name);
	return r < 0 ? r : 0;
}

int store_secret_list(struct store *st, int64_t user_id, struct secret_meta **ret,
		      size_t *ret_n, struct err *e)
{
	void *v;
	int r = rows_list(st, Q_SECRET_LIST, &user_id, &secret_rows, &v, ret_n, e);
	if (r == 0)
		*ret = v;
	return r;
}

int store_secret_delete(struct store *st, int64_t user_id, const char *name,
			struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_SECRET_DELETE, &q, e);
	if (r < 0)
		return r;
	q_i64(&q, 1, user_id);
	q_text(&q, 2, name);
	r = q_step(&q, e);
	if (r == 0 && q_changes(&q) == 0)
		r = err_set(e, ENOENT, "secret '%s' not found", name);
	q_end(&q);
	return r < 0 ? r : 0;
}

/* ---- named snapshots -------------------------------------------------------- */

void snapshot_row_release(struct snapshot_row *r)
{
	row_release(&snapshot_rows, r);
}

void snapshot_row_array_free(struct snapshot_row *v, size_t n)
{
	rows_free(&snapshot_rows, v, n);
}

static int snapshot_insert_tx(struct store *st, const struct snapshot_row *r, int64_t max,
			      struct err *e)
{
	struct q q;
	int64_t count = 0;
	int rc = count_of(st, Q_SNAP_COUNT, r->user_id, &count, e);
	if (rc == 0 && count >= max)
		return err_set(e, EDQUOT, "quota: snapshot limit reached (%" PRId64 "/%" PRId64
			       "; 'limits.max_snapshots'); delete one first", count, max);
	if (rc < 0 || (rc = q_begin(st, Q_SNAP_INSERT, &q, e)) < 0)
		return rc;
	q_text(&q, 1, r->id);
	q_i64(&q, 2, r->user_id);
	q_text(&q, 3, r->name);
	q_text(&q, 4, r->source);
	q_text(&q, 5, r->image);
	q_i64(&q, 6, r->cpus);
	q_i64(&q, 7, r->memory_mb);
	q_i64(&q, 8, r->size_bytes);
	q_text(&q, 9, r->labels);
	q_i64(&q, 10, r->created_at ? r->created_at : wall_sec());
	rc = q_step(&q, e);
	if (rc == -EEXIST && q.rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		rc = err_set(e, EEXIST, "snapshot id '%s' is taken", r->id);
	else if (rc == -EEXIST)
		rc = err_set(e, EEXIST, "snapshot '%s' already exists", r->name);
	else if (rc == -ENOENT)
		rc = err_set(e, ENOENT, "user %" PRId64 " not found", r->user_id);
	q_end(&q);
	return rc < 0 ? rc : 0;
}

int store_snapshot_insert(struct store *st, const struct snapshot_row *r, int64_t max,
			  struct err *e)
{
	int rc;
	if ((rc = valid_sandbox_id(r->id, e)) < 0 || (rc = valid_snapshot_name(r->name, e)) < 0)
		return rc;
	if (max < 0)
		return err_set(e, EINVAL, "the snapshots quota must not be negative");
	if ((rc = tx_begin(st, e)) < 0)
		return rc;
	return tx_end(st, snapshot_insert_tx(st, r, max, e), e);
}

int store_snapshot_find(struct store *st, int64_t user_id, const char *name,
			struct snapshot_row *ret, struct err *e)
{
	struct q q;
	struct snapshot_row row = { 0 };
	int r = q_begin(st, Q_SNAP_FIND, &q, e);
	if (r < 0)
		return r;
	q_i64(&q, 1, user_id);
	q_text(&q, 2, name);
	r = q_step(&q, e);
	if (r == 1)
		row_read(&snapshot_rows, q.s, &row);
	q_end(&q);
	if (r < 0)
		return r;
	if (r == 0)
		return err_set(e, ENOENT, "snapshot '%s' not found", name);
	*ret = row;
	return 0;
}

int store_snapshot_list(struct store *st, int64_t user_id, struct snapshot_row **ret,
			size_t *ret_n, struct err *e)
{
	void *v;
	int r = rows_list(st, Q_SNAP_LIST, &user_id, &snapshot_rows, &v, ret_n, e);
	if (r == 0)
		*ret = v;
	return r;
}

int store_snapshot_count(struct store *st, int64_t user_id, int64_t *ret, struct err *e)
{
	return count_of(st, Q_SNAP_COUNT, user_id, ret, e);
}

int store_snapshot_set_ready(struct store *st, const char *id, int64_t size_bytes, struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_SNAP_READY, &q, e);
	if (r < 0)
		return r;
	q_text(&q, 1, id);
	q_i64(&q, 2, size_bytes);
	r = q_step(&q, e);
	if (r == 0 && q_changes(&q) == 0)
		r = err_set(e, ENOENT, "snapshot '%s' not found", id);
	q_end(&q);
	return r < 0 ? r : 0;
}

int store_snapshot_delete(struct store *st, const char *id, struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_SNAP_DELETE, &q, e);
	if (r < 0)
		return r;
	q_text(&q, 1, id);
	r = q_step(&q, e);
	if (r == 0 && q_changes(&q) == 0)
		r = err_set(e, ENOENT, "snapshot '%s' not found", id);
	q_end(&q);
	return r < 0 ? r : 0;
}

/* ---- published ports ------------------------------------------------------ */

void publish_row_release(struct publish_row *p)
{
	row_release(&publish_rows, p);
}

void publish_row_array_free(struct publish_row *v, size_t n)
{
	rows_free(&publish_rows, v, n);
}

int store_publish_insert(struct store *st, const struct publish_row *p, struct err *e)
{
	struct q q;
	int r;

	if ((r = valid_alias(p->alias, e)) < 0)
		return r;
	if (p->port < 1 || p->port > 65535)
		return err_set(e, EINVAL, "invalid port %" PRId64 ": use 1 to 65535", p->port);
	if ((r = q_begin(st, Q_PUB_INSERT, &q, e)) < 0)
		return r;
	q_text(&q, 1, p->alias);
	q_text(&q, 2, p->sandbox_id);
	q_i64(&q, 3, p->user_id);
	q_i64(&q, 4, p->port);
	q_i64(&q, 5, p->created_at);
	r = q_step(&q, e);
	q_end(&q);
	if (r == -EEXIST)
		r = err_set(e, EEXIST, "alias '%s' is taken, or port %" PRId64 " of this sandbox "
				       "is published already", p->alias, p->port);
	else if (r == -ENOENT)
		r = err_set(e, ENOENT, "sandbox '%s' not found", p->sandbox_id);
	return r < 0 ? r : 0;
}

int store_publish_get(struct store *st, const char *alias, struct publish_row *ret,
		      struct err *e)
{
	struct publish_row p = { 0 };
	struct q q;
	int r;

	if ((r = q_begin(st, Q_PUB_GET, &q, e)) < 0)
		return r;
	q_text(&q, 1, alias);
	r = q_step(&q, e);
	if (r == 1)
		row_read(&publish_rows, q.s, &p);
	q_end(&q);
	if (r < 0)
		return r;
	if (r == 0)
		return err_set(e, ENOENT, "alias '%s' not found", alias);
	*ret = p;
	return 0;
}

int store_publish_list(struct store *st, int64_t user_id, struct publish_row **ret,
		       size_t *ret_n, struct err *e)
{
	void *v;
	int r = rows_list(st, Q_PUB_LIST, &user_id, &publish_rows, &v, ret_n, e);
	if (r == 0)
		*ret = v;
	return r;
}

int store_publish_delete(struct store *st, const char *sandbox_id, int64_t port,
			 struct err *e)
{
	struct q q;
	int r = q_begin(st, Q_PUB_DELETE, &q, e);
	if (r < 0)
		return r;
	q_text(&q, 1, sandbox_id);
	q_i64(&q, 2, port);
	r = q_step(&q, e);
	if (r == 0 && q_changes(&q) == 0)
		r = err_set(e, ENOENT, "port %" PRId64 " is not published", port);
	q_end(&q);
	return r < 0 ? r : 0;
}
