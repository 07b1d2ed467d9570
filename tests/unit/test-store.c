/* test-store.c — unit tests for daemon/store.c against real SQLite files in
 * a private temp dir: migrations (fresh, reopen, a newer schema, a failed
 * migration rolled back), users and API keys, sandboxes scoped per user,
 * secrets, errors, and a crash-safety test that SIGKILLs a writer mid-way.
 * Sits between cmocka, store.h and SQLite (opened directly to look at what
 * the store wrote). Every test ends with no statement left active.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "store.h"

struct fix {
	char *dir;
	char *path;       /* dir/state.db */
	struct store *st;
};

static int setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;

	f->dir = test_tmpdir("store");
	buf_addf(&b, "%s/state.db", f->dir);
	f->path = buf_detach(&b, NULL);
	if (store_open(f->path, &f->st, &e) < 0) {
		fprintf(stderr, "store_open: %s\n", e.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	int rc = 0;

	if (f->st && store_active_statements(f->st) != 0) {
		fprintf(stderr, "a statement was left active\n");
		rc = -1;
	}
	store_free(f->st);
	if (!getenv("KEEP_TEST_DIRS"))
		test_rmtree(f->dir);
	free(f->dir);
	free(f->path);
	free(f);
	return rc;
}

/* ---- raw SQLite, to look behind the store's back -------------------------- */

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* The first column of the first row of sql, as text (caller frees). */
static char *raw_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	char *out = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		out = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return out;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
	char *t = raw_text(db, sql);
	int64_t v;
	assert_non_null(t);
	v = strtoll(t, NULL, 10);
	free(t);
	return v;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void assert_text(sqlite3 *db, const char *sql, const char *want)
{
	char *got = raw_text(db, sql);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

/* ---- helpers -------------------------------------------------------------- */

static int64_t new_user(struct store *st, const char *name, char **ret_key)
{
	struct err e = ERR_INIT;
	struct user u;
	char *key;
	assert_int_equal(store_user_create(st, name, 5, 2, 1024, &key, &u, &e), 0);
	int64_t id = u.id;
	user_release(&u);
	if (ret_key)
		*ret_key = key;
	else
		free(key);
	return id;
}

static void new_sandbox(struct store *st, int64_t user, const char *id, const char *name,
			int64_t created_at)
{
	struct err e = ERR_INIT;
	struct sandbox_row r = {
		.id = (char *)id, .user_id = user, .name = (char *)name, .cpus = 1,
		.memory_mb = 512, .image = "tiny", .created_at = created_at,
	};
	if (store_sandbox_insert(st, &r, &e) < 0)
		fail_msg("insert %s: %s", name, e.msg);
}

/* find(user, what) must give the sandbox with this id. */
static void assert_found(struct store *st, int64_t user, const char *what, const char *id)
{
	struct err e = ERR_INIT;
	struct sandbox_row r;
	if (store_sandbox_find(st, user, what, &r, &e) < 0)
		fail_msg("find '%s': %s", what, e.msg);
	assert_string_equal(r.id, id);
	assert_int_equal(r.user_id, user);
	sandbox_row_release(&r);
}

/* ---- migrations ----------------------------------------------------------- */

static void test_fresh(void **state)
{
	struct fix *f = *state;
	struct stat sb;
	sqlite3 *db = raw_open(f->path);

	assert_int_equal(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_text(db, "PRAGMA journal_mode", "wal");
	assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
				 "AND name IN ('users', 'sandboxes', 'secrets')"), 3);
	sqlite3_close(db);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	/* foreign keys are enforced: no sandbox for a user that does not exist */
	struct err e = ERR_INIT;
	struct sandbox_row r = { .id = "000000000001", .user_id = 42, .name = "x" };
	assert_int_equal(store_sandbox_insert(f->st, &r, &e), -ENOENT);
	assert_string_equal(e.msg, "user 42 not found");
}

static void test_reopen(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct user u;
	char *key;

	new_user(f->st, "alice", &key);
	new_sandbox(f->st, 1, "0123456789ab", "web", 0);
	store_free(f->st);
	f->st = NULL;
	assert_int_equal(store_open(f->path, &f->st, &e), 0);
	assert_int_equal(store_user_auth(f->st, key, &u, &e), 0);
	assert_string_equal(u.name, "alice");
	assert_found(f->st, u.id, "web", "0123456789ab");
	user_release(&u);
	free(key);

	sqlite3 *db = raw_open(f->path);
	assert_int_equal(raw_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	sqlite3_close(db);
}

static void test_newer_schema(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct store *st = NULL;
	char sql[64], want[512];

	store_free(f->st);
	f->st = NULL;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION + 1);
	raw_exec(f->path, sql);
	assert_int_equal(store_open(f->path, &st, &e), -ENOTSUP);
	assert_null(st);
	snprintf(want, sizeof(want), "database '%s' is from a newer bhatti (schema version %d, "
		 "this one knows up to %d)", f->path, STORE_SCHEMA_VERSION + 1,
		 STORE_SCHEMA_VERSION);
	assert_string_equal(e.msg, want);
}

static void test_migrations_atomic(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct store *st = NULL;
	struct buf path = BUF_INIT;
	static const char *const bad[] = {
		"CREATE TABLE a (x)",
		"CREATE TABLE b (y); CREATE TABLE c (z); INSERT INTO nowhere VALUES (1)",
	};
	static const char *const good[] = {
		"CREATE TABLE a (x)",
		"CREATE TABLE b (y); CREATE TABLE c (z)",
		"INSERT INTO c VALUES (3)",
	};

	buf_addf(&path, "%s/m.db", f->dir);
	assert_int_equal(store_open_migrations(path.data, bad, 2, &st, &e), -EIO);
	assert_null(st);
	assert_int_equal(strncmp(e.msg, "migration 2: database '", 23), 0);
	assert_non_null(strstr(e.msg, "no such table: nowhere"));
	sqlite3 *db = raw_open(path.data);
	/* the first one stays, the failed one left nothing behind */
	assert_int_equal(raw_int(db, "PRAGMA user_version"), 1);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE name IN "
				 "('a', 'b', 'c')"), 1);
	sqlite3_close(db);

	assert_int_equal(store_open_migrations(path.data, good, 3, &st, &e), 0);
	assert_int_equal(store_active_statements(st), 0);
	store_free(st);
	db = raw_open(path.data);
	assert_int_equal(raw_int(db, "PRAGMA user_version"), 3);
	assert_int_equal(raw_int(db, "SELECT z FROM c"), 3);
	sqlite3_close(db);
	/* a second open runs nothing again */
	assert_int_equal(store_open_migrations(path.data, good, 3, &st, &e), 0);
	store_free(st);
	db = raw_open(path.data);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM c"), 1);
	sqlite3_close(db);
	buf_release(&path);
}

static void test_open_errors(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct store *st = NULL;
	struct buf path = BUF_INIT;

	buf_addf(&path, "%s/missing/state.db", f->dir);
	assert_int_equal(store_open(path.data, &st, &e), -ENOENT);
	assert_true(strstr(e.msg, "cannot open database '") == e.msg);

	buf_reset(&path);
	buf_addf(&path, "%s/junk.db", f->dir);
	FILE *fp = fopen(path.data, "w");
	assert_non_null(fp);
	for (int i = 0; i < 200; i++)
		fputs("this is not a database, only words. ", fp);
	fclose(fp);
	assert_int_equal(store_open(path.data, &st, &e), -EIO);
	assert_null(st);
	assert_non_null(strstr(e.msg, "file is not a database"));
	buf_release(&path);
}

/* SQLITE_BUSY becomes -EBUSY once the 5 s busy timeout has passed. */
static void test_busy(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	sqlite3 *db = raw_open(f->path);
	uint64_t t0;
	char *key;

	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	t0 = now_ms();
	assert_int_equal(store_user_create(f->st, "alice", 1, 1, 64, &key, NULL, &e), -EBUSY);
	assert_true(now_ms() - t0 >= 4500);
	assert_string_equal(e.msg, "database: database is locked (another process is writing to it, "
				   "e.g. 'bhatti user'); try again");
	/* reads still work in WAL mode while another connection writes */
	assert_int_equal(sqlite3_exec(db, "INSERT INTO users (name, key_hash, max_sandboxes, "
				      "max_cpus, max_memory_mb, created_at) VALUES "
				      "('bob', x'00', 1, 1, 1, 1)", NULL, NULL, NULL), SQLITE_OK);
	struct user *users;
	size_t n;
	assert_int_equal(store_user_list(f->st, &users, &n, &e), 0);
	assert_int_equal(n, 0);
	user_array_free(users, n);
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_user_list(f->st, &users, &n, &e), 0);
	assert_int_equal(n, 1);
	user_array_free(users, n);
}

/* ---- users ---------------------------------------------------------------- */

static void assert_key_shape(const char *key)
{
	assert_int_equal(strlen(key), STORE_KEY_LEN);
	assert_memory_equal(key, "bht_", 4);
	for (const char *p = key + 4; *p; p++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789-_", *p));
}

static void test_user_create_auth(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct user u, a, g;
	char *key, *key2;

	assert_int_equal(store_user_create(f->st, "alice", 20, 4, 4096, &key, &u, &e), 0);
	assert_key_shape(key);
	assert_true(u.id > 0);
	assert_string_equal(u.name, "alice");
	assert_int_equal(u.max_sandboxes, 20);
	assert_int_equal(u.max_cpus, 4);
	assert_int_equal(u.max_memory_mb, 4096);
	assert_true(u.created_at >= wall_sec() - 5 && u.created_at <= wall_sec());

	assert_int_equal(store_user_auth(f->st, key, &a, &e), 0);
	assert_int_equal(a.id, u.id);
	assert_string_equal(a.name, "alice");
	assert_int_equal(a.max_memory_mb, 4096);
	assert_int_equal(a.created_at, u.created_at);
	assert_int_equal(store_user_get(f->st, "alice", &g, &e), 0);
	assert_int_equal(g.id, u.id);
	assert_int_equal(g.max_cpus, 4);

	/* only the hash is stored */
	sqlite3 *db = raw_open(f->path);
	assert_int_equal(raw_int(db, "SELECT length(key_hash) FROM users"), 32);
	char *hex = raw_text(db, "SELECT lower(hex(key_hash)) FROM users");
	sqlite3_close(db);
	assert_null(strstr(hex, key));
	free(hex);

	/* a second user gets another key; ret_user may be NULL */
	assert_int_equal(store_user_create(f->st, "bob", 0, 1, 64, &key2, NULL, &e), 0);
	assert_string_not_equal(key, key2);
	user_release(&g);
	assert_int_equal(store_user_auth(f->st, key2, &g, &e), 0);
	assert_string_equal(g.name, "bob");

	/* the list is by name */
	struct user *users;
	size_t n;
	char *k3;
	assert_int_equal(store_user_create(f->st, "Aaron", 1, 1, 64, &k3, NULL, &e), 0);
	assert_int_equal(store_user_list(f->st, &users, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(users[0].name, "Aaron");
	assert_string_equal(users[1].name, "alice");
	assert_string_equal(users[2].name, "bob");
	user_array_free(users, n);

	user_release(&u);
	user_release(&a);
	user_release(&g);
	free(key);
	free(key2);
	free(k3);
}

static void test_user_errors(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct user u;
	char *key = NULL;

	new_user(f->st, "alice", NULL);
	assert_int_equal(store_user_create(f->st, "alice", 1, 1, 64, &key, NULL, &e), -EEXIST);
	assert_string_equal(e.msg, "user 'alice' already exists");
	assert_null(key);
	/* names are case-sensitive */
	assert_int_equal(store_user_create(f->st, "Alice", 1, 1, 64, &key, NULL, &e), 0);
	free(key);
	key = NULL;

	static const char *const bad[] = { "", "-x", ".x", "a b", "a/b", "é",
		"0123456789012345678901234567890123456789012345678901234567890123" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(store_user_create(f->st, bad[i], 1, 1, 64, &key, NULL, &e),
				 -EINVAL);
		assert_true(strncmp(e.msg, "invalid user name '", 19) == 0);
	}
	assert_int_equal(store_user_create(f->st, NULL, 1, 1, 64, &key, NULL, &e), -EINVAL);
	assert_int_equal(store_user_create(f->st, "neg", -1, 1, 64, &key, NULL, &e), -EINVAL);
	assert_null(key);

	assert_int_equal(store_user_get(f->st, "nobody", &u, &e), -ENOENT);
	assert_string_equal(e.msg, "user 'nobody' not found");
	assert_int_equal(store_user_rotate_key(f->st, "nobody", &key, &e), -ENOENT);
	assert_int_equal(store_user_delete(f->st, "nobody", &e), -ENOENT);
	assert_null(key);
}

static void test_auth_bad_keys(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct user u;
	char *key, *other;

	new_user(f->st, "alice", &key);
	/* a well-formed key that another store made */
	struct buf p = BUF_INIT;
	struct store *st2;
	buf_addf(&p, "%s/other.db", f->dir);
	assert_int_equal(store_open(p.data, &st2, &e), 0);
	assert_int_equal(store_user_create(st2, "alice", 1, 1, 64, &other, NULL, &e), 0);
	store_free(st2);
	buf_release(&p);
	assert_int_equal(store_user_auth(f->st, other, &u, &e), -ENOENT);
	assert_string_equal(e.msg, "invalid API key");

	char buf[128];
	const char *cases[16];
	size_t n = 0;
	cases[n++] = "";
	cases[n++] = "bht_";
	cases[n++] = key + 4;                 /* without the prefix */
	snprintf(buf, sizeof(buf), "%sx", key);
	cases[n++] = xstrdup(buf);            /* one character too many */
	snprintf(buf, sizeof(buf), "%.*s", STORE_KEY_LEN - 1, key);
	cases[n++] = xstrdup(buf);            /* one too few */
	snprintf(buf, sizeof(buf), "BHT_%s", key + 4);
	cases[n++] = xstrdup(buf);
	snprintf(buf, sizeof(buf), "%s", key);
	buf[10] = '+';                        /* standard base64, not base64url */
	cases[n++] = xstrdup(buf);
	snprintf(buf, sizeof(buf), "%s", key);
	buf[10] = buf[10] == 'A' ? 'B' : 'A'; /* well-formed, wrong */
	cases[n++] = xstrdup(buf);
	for (size_t i = 0; i < n; i++) {
		err_clear(&e);
		assert_int_equal(store_user_auth(f->st, cases[i], &u, &e), -ENOENT);
		assert_string_equal(e.msg, "invalid API key");
	}
	for (size_t i = 3; i < n; i++)
		free((char *)cases[i]);
	assert_int_equal(store_user_auth(f->st, NULL, &u, &e), -ENOENT);

	/* the final character carries 2 unused bits: they must be zero */
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *last = strchr(alphabet, key[STORE_KEY_LEN - 1]);
	assert_non_null(last);
	assert_int_equal((last - alphabet) & 3, 0);
	snprintf(buf, sizeof(buf), "%s", key);
	buf[STORE_KEY_LEN - 1] = alphabet[(last - alphabet) | 1];
	assert_int_equal(store_user_auth(f->st, buf, &u, &e), -ENOENT);

	assert_int_equal(store_user_auth(f->st, key, &u, &e), 0);
	user_release(&u);
	free(key);
	free(other);
}

static void test_rotate_key(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct user u;
	char *old, *fresh, *bob;

	int64_t id = new_user(f->st, "alice", &old);
	new_user(f->st, "bob", &bob);
	assert_int_equal(store_user_rotate_key(f->st, "alice", &fresh, &e), 0);
	assert_key_shape(fresh);
	assert_string_not_equal(old, fresh);
	assert_int_equal(store_user_auth(f->st, old, &u, &e), -ENOENT);
	assert_int_equal(store_user_auth(f->st, fresh, &u, &e), 0);
	assert_int_equal(u.id, id);
	user_release(&u);
	/* bob's key is untouched */
	assert_int_equal(store_user_auth(f->st, bob, &u, &e), 0);
	assert_string_equal(u.name, "bob");
	user_release(&u);
	free(old);
	free(fresh);
	free(bob);
}

static void test_user_delete(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct user u;
	char *key;

	int64_t alice = new_user(f->st, "alice", &key);
	int64_t bob = new_user(f->st, "bob", NULL);
	new_sandbox(f->st, alice, "aaaaaaaaaaa1", "one", 0);
	new_sandbox(f->st, alice, "aaaaaaaaaaa2", "two", 0);
	assert_int_equal(store_secret_put(f->st, alice, "TOKEN", "ct", 2, 100, NULL, &e), 0);
	assert_int_equal(store_secret_put(f->st, bob, "TOKEN", "ct", 2, 100, NULL, &e), 0);

	assert_int_equal(store_user_delete(f->st, "alice", &e), -EBUSY);
	assert_string_equal(e.msg, "user 'alice' still has 2 sandboxes");
	assert_int_equal(store_sandbox_delete(f->st, "aaaaaaaaaaa1", &e), 0);
	assert_int_equal(store_user_delete(f->st, "alice", &e), -EBUSY);
	assert_string_equal(e.msg, "user 'alice' still has 1 sandbox");
	/* nothing was deleted by the refusals */
	assert_int_equal(store_user_auth(f->st, key, &u, &e), 0);
	user_release(&u);
	struct buf ct = BUF_INIT;
	assert_int_equal(store_secret_get(f->st, alice, "TOKEN", &ct, &e), 0);

	assert_int_equal(store_sandbox_delete(f->st, "aaaaaaaaaaa2", &e), 0);
	assert_int_equal(store_user_delete(f->st, "alice", &e), 0);
	assert_int_equal(store_user_get(f->st, "alice", &u, &e), -ENOENT);
	assert_int_equal(store_user_auth(f->st, key, &u, &e), -ENOENT);
	assert_int_equal(store_user_delete(f->st, "alice", &e), -ENOENT);
	sqlite3 *db = raw_open(f->path);
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM secrets WHERE user_id = %" PRId64, alice);
	assert_int_equal(raw_int(db, sql), 0);
	sqlite3_close(db);
	/* bob keeps his secret; the name can be taken again */
	buf_reset(&ct);
	assert_int_equal(store_secret_get(f->st, bob, "TOKEN", &ct, &e), 0);
	new_user(f->st, "alice", NULL);
	buf_release(&ct);
	free(key);
}

/* ---- sandboxes ------------------------------------------------------------ */

static void test_sandbox_scoped(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct sandbox_row r;

	int64_t alice = new_user(f->st, "alice", NULL);
	int64_t bob = new_user(f->st, "bob", NULL);
	new_sandbox(f->st, alice, "a00000000001", "web", 100);
	new_sandbox(f->st, bob, "b00000000001", "web", 100);  /* same name, other user */

	assert_found(f->st, alice, "web", "a00000000001");
	assert_found(f->st, bob, "web", "b00000000001");
	assert_found(f->st, alice, "a00000000001", "a00000000001");
	/* another user's sandbox, by id or name, is not there */
	assert_int_equal(store_sandbox_find(f->st, alice, "b00000000001", &r, &e), -ENOENT);
	assert_string_equal(e.msg, "sandbox 'b00000000001' not found");
	assert_int_equal(store_sandbox_find(f->st, alice, "nope", &r, &e), -ENOENT);
	assert_int_equal(store_sandbox_find(f->st, 999, "web", &r, &e), -ENOENT);

	/* a name that is another sandbox's id: the name wins */
	new_sandbox(f->st, alice, "a00000000002", "a00000000003", 101);
	new_sandbox(f->st, alice, "a00000000003", "db", 102);
	assert_found(f->st, alice, "a00000000003", "a00000000002");
	assert_found(f->st, alice, "db", "a00000000003");

	/* unscoped, with every field */
	assert_int_equal(store_sandbox_get(f->st, "b00000000001", &r, &e), 0);
	assert_string_equal(r.id, "b00000000001");
	assert_int_equal(r.user_id, bob);
	assert_string_equal(r.name, "web");
	assert_int_equal(r.cpus, 1);
	assert_int_equal(r.memory_mb, 512);
	assert_string_equal(r.image, "tiny");
	assert_int_equal(r.created_at, 100);
	assert_false(r.stopped);
	sandbox_row_release(&r);
	assert_int_equal(store_sandbox_get(f->st, "ffffffffffff", &r, &e), -ENOENT);

	/* a NULL image stays NULL; created_at 0 means now */
	struct sandbox_row n = { .id = "c00000000001", .user_id = bob, .name = "bare" };
	assert_int_equal(store_sandbox_insert(f->st, &n, &e), 0);
	assert_int_equal(store_sandbox_get(f->st, "c00000000001", &r, &e), 0);
	assert_null(r.image);
	assert_true(r.created_at >= wall_sec() - 5);
	sandbox_row_release(&r);
}

static void test_sandbox_insert_errors(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	int64_t alice = new_user(f->st, "alice", NULL);
	int64_t bob = new_user(f->st, "bob", NULL);
	struct sandbox_row r = { .id = "a00000000001", .user_id = alice, .name = "web" };

	assert_int_equal(store_sandbox_insert(f->st, &r, &e), 0);
	r.id = "a00000000002";
	assert_int_equal(store_sandbox_insert(f->st, &r, &e), -EEXIST);
	assert_string_equal(e.msg, "sandbox 'web' already exists");
	r.id = "a00000000001";
	r.name = "other";
	r.user_id = bob;
	assert_int_equal(store_sandbox_insert(f->st, &r, &e), -EEXIST);
	assert_string_equal(e.msg, "sandbox id 'a00000000001' is taken");

	static const char *const bad_ids[] = { "", "a0000000001", "a000000000001",
		"A00000000001", "g00000000001", "a0000000000-" };
	for (size_t i = 0; i < ARRAY_SIZE(bad_ids); i++) {
		r.id = (char *)bad_ids[i];
		assert_int_equal(store_sandbox_insert(f->st, &r, &e), -EINVAL);
	}
	r.id = "a00000000009";
	r.name = "no spaces";
	assert_int_equal(store_sandbox_insert(f->st, &r, &e), -EINVAL);
	assert_string_equal(e.msg, "invalid sandbox name 'no spaces': ' ' is not allowed; use "
			    VALID_NAME_RULE);
	int64_t n;
	assert_int_equal(store_sandbox_count(f->st, -1, &n, &e), 0);
	assert_int_equal(n, 1);
}

static void test_sandbox_rename_list(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct sandbox_row *v, r;
	size_t n;
	int64_t count;

	int64_t alice = new_user(f->st, "alice", NULL);
	int64_t bob = new_user(f->st, "bob", NULL);
	/* inserted out of order: the list is by created_at, then id */
	new_sandbox(f->st, alice, "a00000000003", "third", 300);
	new_sandbox(f->st, alice, "a00000000002", "second-b", 200);
	new_sandbox(f->st, bob, "b00000000001", "bobs", 150);
	new_sandbox(f->st, alice, "a00000000001", "second-a", 200);
	new_sandbox(f->st, alice, "a00000000009", "first", 100);

	assert_int_equal(store_sandbox_list(f->st, alice, &v, &n, &e), 0);
	assert_int_equal(n, 4);
	assert_string_equal(v[0].name, "first");
	assert_string_equal(v[1].id, "a00000000001");
	assert_string_equal(v[2].id, "a00000000002");
	assert_string_equal(v[3].name, "third");
	sandbox_row_array_free(v, n);
	assert_int_equal(store_sandbox_list(f->st, -1, &v, &n, &e), 0);
	assert_int_equal(n, 5);
	assert_string_equal(v[1].name, "bobs");
	sandbox_row_array_free(v, n);
	assert_int_equal(store_sandbox_list(f->st, 999, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	sandbox_row_array_free(v, n);
	assert_int_equal(store_sandbox_count(f->st, alice, &count, &e), 0);
	assert_int_equal(count, 4);
	assert_int_equal(store_sandbox_count(f->st, bob, &count, &e), 0);
	assert_int_equal(count, 1);
	assert_int_equal(store_sandbox_count(f->st, -1, &count, &e), 0);
	assert_int_equal(count, 5);

	/* rename: conflict, another user's sandbox, success */
	assert_int_equal(store_sandbox_rename(f->st, alice, "a00000000003", "first", &e), -EEXIST);
	assert_string_equal(e.msg, "sandbox 'first' already exists");
	assert_int_equal(store_sandbox_rename(f->st, alice, "b00000000001", "mine", &e), -ENOENT);
	assert_int_equal(store_sandbox_rename(f->st, alice, "a00000000003", "bad name", &e),
			 -EINVAL);
	assert_int_equal(store_sandbox_rename(f->st, alice, "a00000000003", "bobs", &e), 0);
	assert_found(f->st, alice, "bobs", "a00000000003");
	assert_found(f->st, bob, "bobs", "b00000000001");
	assert_int_equal(store_sandbox_find(f->st, alice, "third", &r, &e), -ENOENT);

	/* stopped */
	assert_int_equal(store_sandbox_set_stopped(f->st, "a00000000003", true, &e), 0);
	assert_int_equal(store_sandbox_get(f->st, "a00000000003", &r, &e), 0);
	assert_true(r.stopped);
	sandbox_row_release(&r);
	assert_int_equal(store_sandbox_set_stopped(f->st, "a00000000003", false, &e), 0);
	assert_int_equal(store_sandbox_get(f->st, "a00000000003", &r, &e), 0);
	assert_false(r.stopped);
	sandbox_row_release(&r);
	assert_int_equal(store_sandbox_set_stopped(f->st, "ffffffffffff", true, &e), -ENOENT);

	/* delete */
	assert_int_equal(store_sandbox_delete(f->st, "a00000000003", &e), 0);
	assert_int_equal(store_sandbox_delete(f->st, "a00000000003", &e), -ENOENT);
	assert_string_equal(e.msg, "sandbox 'a00000000003' not found");
	assert_int_equal(store_sandbox_get(f->st, "a00000000003", &r, &e), -ENOENT);
}

/* ---- secrets -------------------------------------------------------------- */

static void test_secrets(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct buf ct = BUF_INIT;
	struct secret_meta *m;
	size_t n;
	bool created;

	int64_t alice = new_user(f->st, "alice", NULL);
	int64_t bob = new_user(f->st, "bob", NULL);
	static const char bin[] = { 'a', 0, 'b', (char)0xff, 0 };

	assert_int_equal(store_secret_put(f->st, alice, "TOKEN", bin, sizeof(bin), 100, &created,
					  &e), 0);
	assert_true(created);
	assert_int_equal(store_secret_get(f->st, alice, "TOKEN", &ct, &e), 0);
	assert_int_equal(ct.len, sizeof(bin));
	assert_memory_equal(ct.data, bin, sizeof(bin));
	/* replace */
	assert_int_equal(store_secret_put(f->st, alice, "TOKEN", "v2", 2, 100, &created, &e), 0);
	assert_false(created);
	buf_reset(&ct);
	assert_int_equal(store_secret_get(f->st, alice, "TOKEN", &ct, &e), 0);
	assert_int_equal(ct.len, 2);
	assert_memory_equal(ct.data, "v2", 2);
	/* empty ciphertext is a value, not NULL */
	assert_int_equal(store_secret_put(f->st, alice, "EMPTY", NULL, 0, 100, &created, &e), 0);
	assert_true(created);
	buf_reset(&ct);
	assert_int_equal(store_secret_get(f->st, alice, "EMPTY", &ct, &e), 0);
	assert_int_equal(ct.len, 0);
	assert_int_equal(store_secret_put(f->st, alice, "API_KEY", "k", 1, 100, NULL, &e), 0);

	/* per user */
	buf_reset(&ct);
	assert_int_equal(store_secret_get(f->st, bob, "TOKEN", &ct, &e), -ENOENT);
	assert_string_equal(e.msg, "secret 'TOKEN' not found");
	assert_int_equal(ct.len, 0);
	assert_int_equal(store_secret_put(f->st, bob, "TOKEN", "b", 1, 100, &created, &e), 0);
	assert_true(created);

	assert_int_equal(store_secret_list(f->st, alice, &m, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(m[0].name, "API_KEY");
	assert_string_equal(m[1].name, "EMPTY");
	assert_string_equal(m[2].name, "TOKEN");
	assert_true(m[2].created_at > 0 && m[2].updated_at >= m[2].created_at);
	secret_meta_array_free(m, n);

	assert_int_equal(store_secret_delete(f->st, alice, "TOKEN", &e), 0);
	assert_int_equal(store_secret_delete(f->st, alice, "TOKEN", &e), -ENOENT);
	assert_string_equal(e.msg, "secret 'TOKEN' not found");
	assert_int_equal(store_secret_get(f->st, alice, "TOKEN", &ct, &e), -ENOENT);
	buf_reset(&ct);
	assert_int_equal(store_secret_get(f->st, bob, "TOKEN", &ct, &e), 0);
	assert_memory_equal(ct.data, "b", 1);

	assert_int_equal(store_secret_put(f->st, alice, "no spaces", "x", 1, 100, NULL, &e),
			 -EINVAL);
	assert_int_equal(store_secret_put(f->st, 999, "X", "x", 1, 100, NULL, &e), -ENOENT);
	assert_string_equal(e.msg, "user 999 not found");
	assert_int_equal(store_secret_list(f->st, 999, &m, &n, &e), 0);
	assert_int_equal(n, 0);
	secret_meta_array_free(m, n);
	buf_release(&ct);
}

/* At most `max` secrets per user: a new one over it is refused and not
 * stored; replacing one is not a new one; other users are not counted. */
static void test_secret_quota(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	struct buf ct = BUF_INIT;
	bool created;
	int64_t alice = new_user(f->st, "alice", NULL);
	int64_t bob = new_user(f->st, "bob", NULL);

	assert_int_equal(store_secret_put(f->st, alice, "A", "1", 1, 2, NULL, &e), 0);
	assert_int_equal(store_secret_put(f->st, alice, "B", "2", 1, 2, NULL, &e), 0);
	assert_int_equal(store_secret_put(f->st, alice, "C", "3", 1, 2, &created, &e), -EDQUOT);
	assert_string_equal(e.msg, "quota: at most 2 secrets");
	assert_int_equal(store_secret_get(f->st, alice, "C", &ct, &e), -ENOENT);
	sqlite3 *db = raw_open(f->path);
	assert_text(db, "SELECT count(*) FROM secrets", "2");
	sqlite3_close(db);
	/* replacing at the limit */
	assert_int_equal(store_secret_put(f->st, alice, "B", "two", 3, 2, &created, &e), 0);
	assert_false(created);
	assert_int_equal(store_secret_get(f->st, alice, "B", &ct, &e), 0);
	assert_memory_equal(ct.data, "two", 3);
	/* per user */
	assert_int_equal(store_secret_put(f->st, bob, "C", "3", 1, 2, &created, &e), 0);
	assert_true(created);
	/* room again after a delete; none at all with 0 */
	assert_int_equal(store_secret_delete(f->st, alice, "A", &e), 0);
	assert_int_equal(store_secret_put(f->st, alice, "C", "3", 1, 2, NULL, &e), 0);
	assert_int_equal(store_secret_put(f->st, bob, "D", "4", 1, 0, NULL, &e), -EDQUOT);
	assert_int_equal(store_secret_put(f->st, bob, "D", "4", 1, -1, NULL, &e), -EINVAL);
	assert_int_equal(store_active_statements(f->st), 0);
	buf_release(&ct);
}

/* ---- crash safety --------------------------------------------------------- */

/* The child: insert sandboxes from index `from` on, one committed
 * transaction each (every tenth also a secret), and report each index on
 * fd once its call returned. Never returns. */
static void crash_writer(const char *path, int64_t user, unsigned from, int fd)
{
	struct err e = ERR_INIT;
	struct store *st;

	if (store_open(path, &st, &e) < 0)
		_exit(3);
	for (unsigned i = from;; i++) {
		char id[16], name[32], secret[32];
		snprintf(id, sizeof(id), "%012x", i);
		snprintf(name, sizeof(name), "sb-%u", i);
		snprintf(secret, sizeof(secret), "SB_%u", i);
		struct sandbox_row r = { .id = id, .user_id = user, .name = name, .cpus = 1,
					 .memory_mb = 64, .image = "tiny", .created_at = i + 1 };
		if (store_sandbox_insert(st, &r, &e) < 0)
			_exit(4);
		if (i % 10 == 0 && store_secret_put(st, user, secret, id, 12, INT64_MAX, NULL, &e) < 0)
			_exit(5);
		if (write_all(fd, &i, sizeof(i)) < 0)
			_exit(6);
	}
}

/* Named snapshots: a row not ready until its files are; the count quota in
 * the insert's transaction; names per user; a user with snapshots is not
 * deleted. */
static void test_snapshots(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	int64_t alice = new_user(f->st, "alice", NULL);
	int64_t bob = new_user(f->st, "bob", NULL);
	struct snapshot_row r = { .id = (char *)"0123456789ab", .user_id = alice,
				  .name = (char *)"s1", .source = (char *)"dev", .image = (char *)"tiny",
				  .cpus = 1, .memory_mb = 512, .labels = (char *)"{\"k\":\"v\"}" };
	assert_int_equal(store_snapshot_insert(f->st, &r, 2, &e), 0);
	struct snapshot_row got = { 0 };
	assert_int_equal(store_snapshot_find(f->st, alice, "s1", &got, &e), 0);
	assert_false(got.ready);
	assert_string_equal(got.labels, "{\"k\":\"v\"}");
	assert_string_equal(got.source, "dev");
	snapshot_row_release(&got);
	assert_int_equal(store_snapshot_set_ready(f->st, r.id, 12345, &e), 0);
	assert_int_equal(store_snapshot_find(f->st, alice, "s1", &got, &e), 0);
	assert_true(got.ready);
	assert_int_equal(got.size_bytes, 12345);
	snapshot_row_release(&got);
	/* another user's view; the same name for bob; a name in use */
	assert_int_equal(store_snapshot_find(f->st, bob, "s1", &got, &e), -ENOENT);
	struct snapshot_row rb = r;
	rb.id = (char *)"1123456789ab";
	rb.user_id = bob;
	assert_int_equal(store_snapshot_insert(f->st, &rb, 2, &e), 0);
	struct snapshot_row dup = r;
	dup.id = (char *)"2123456789ab";
	assert_int_equal(store_snapshot_insert(f->st, &dup, 2, &e), -EEXIST);
	assert_non_null(strstr(e.msg, "'s1' already exists"));
	/* the count quota: two for alice, the third refused, nothing written */
	dup.name = (char *)"s2";
	assert_int_equal(store_snapshot_insert(f->st, &dup, 2, &e), 0);
	struct snapshot_row third = r;
	third.id = (char *)"3123456789ab";
	third.name = (char *)"s3";
	assert_int_equal(store_snapshot_insert(f->st, &third, 2, &e), -EDQUOT);
	assert_non_null(strstr(e.msg, "snapshot limit reached (2/2"));
	int64_t n = 0;
	assert_int_equal(store_snapshot_count(f->st, alice, &n, &e), 0);
	assert_int_equal(n, 2);
	/* bad names and ids are refused before SQL */
	third.name = (char *)"a b";
	assert_int_equal(store_snapshot_insert(f->st, &third, 9, &e), -EINVAL);
	third.name = (char *)"s3";
	third.id = (char *)"../x";
	assert_int_equal(store_snapshot_insert(f->st, &third, 9, &e), -EINVAL);
	/* list, delete; a user with snapshots stays */
	struct snapshot_row *v;
	size_t cnt;
	assert_int_equal(store_snapshot_list(f->st, alice, &v, &cnt, &e), 0);
	assert_int_equal(cnt, 2);
	snapshot_row_array_free(v, cnt);
	assert_int_equal(store_snapshot_list(f->st, -1, &v, &cnt, &e), 0);
	assert_int_equal(cnt, 3);
	snapshot_row_array_free(v, cnt);
	assert_int_equal(store_user_delete(f->st, "bob", &e), -EBUSY);
	assert_non_null(strstr(e.msg, "1 snapshot"));
	assert_int_equal(store_snapshot_delete(f->st, rb.id, &e), 0);
	assert_int_equal(store_snapshot_delete(f->st, rb.id, &e), -ENOENT);
	assert_int_equal(store_user_delete(f->st, "bob", &e), 0);
	assert_int_equal(store_active_statements(f->st), 0);
}

static void test_crash_safety(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	unsigned next = 0;
	int64_t user = new_user(f->st, "crash", NULL);

	for (int round = 0; round < 4; round++) {
		int fds[2];
		unsigned got, reported = 0;
		bool killed = false;

		store_free(f->st); /* no SQLite connection across fork() */
		f->st = NULL;
		assert_int_equal(pipe(fds), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fds[0]);
			crash_writer(f->path, user, next, fds[1]);
		}
		close(fds[1]);
		/* let it commit a while, then kill it wherever it is */
		for (;;) {
			ssize_t r = read(fds[0], &got, sizeof(got));
			if (r != (ssize_t)sizeof(got))
				break;
			assert_int_equal(got, next + reported);
			reported++;
			if (!killed && reported == 50u + 37u * (unsigned)round) {
				usleep(1000u * (unsigned)round);
				kill(pid, SIGKILL);
				killed = true;
			}
		}
		close(fds[0]);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

		assert_int_equal(store_open(f->path, &f->st, &e), 0);
		for (unsigned i = next; i < next + reported; i++) {
			char id[16];
			struct sandbox_row r;
			snprintf(id, sizeof(id), "%012x", i);
			if (store_sandbox_get(f->st, id, &r, &e) < 0)
				fail_msg("round %d: committed row %u is gone: %s", round, i, e.msg);
			assert_int_equal(r.created_at, i + 1);
			sandbox_row_release(&r);
		}
		/* at most the one in flight committed without being reported */
		int64_t count;
		assert_int_equal(store_sandbox_count(f->st, user, &count, &e), 0);
		assert_true(count == next + reported || count == next + reported + 1);
		next = (unsigned)count;

		sqlite3 *db = raw_open(f->path);
		assert_text(db, "PRAGMA integrity_check", "ok");
		assert_null(raw_text(db, "PRAGMA foreign_key_check"));
		sqlite3_close(db);
	}
}

/* ---- published ports ------------------------------------------------------- */

static int publish(struct store *st, const char *alias, const char *sb, int64_t user,
		   int64_t port, struct err *e)
{
	struct publish_row p = { .alias = (char *)alias, .sandbox_id = (char *)sb,
				 .user_id = user, .port = port, .created_at = 7 };
	return store_publish_insert(st, &p, e);
}

static void test_publish(void **state)
{
	struct fix *f = *state;
	struct err e = ERR_INIT;
	int64_t alice = new_user(f->st, "alice", NULL);
	int64_t bob = new_user(f->st, "bob", NULL);
	new_sandbox(f->st, alice, "a00000000001", "web", 100);
	new_sandbox(f->st, bob, "b00000000001", "web", 100);

	assert_int_equal(publish(f->st, "my-app", "a00000000001", alice, 3000, &e), 0);
	assert_int_equal(publish(f->st, "web-2", "a00000000001", alice, 8080, &e), 0);
	/* aliases are unique across users; a port once per sandbox */
	assert_int_equal(publish(f->st, "my-app", "b00000000001", bob, 3000, &e), -EEXIST);
	assert_int_equal(publish(f->st, "other", "a00000000001", alice, 3000, &e), -EEXIST);
	assert_int_equal(publish(f->st, "bobs", "b00000000001", bob, 3000, &e), 0);
	/* checked before the database */
	assert_int_equal(publish(f->st, "api", "b00000000001", bob, 1, &e), -EINVAL);
	assert_int_equal(publish(f->st, "My-App", "b00000000001", bob, 1, &e), -EINVAL);
	assert_int_equal(publish(f->st, "x", "b00000000001", bob, 0, &e), -EINVAL);
	assert_int_equal(publish(f->st, "x", "b00000000001", bob, 65536, &e), -EINVAL);
	/* no such sandbox */
	assert_int_equal(publish(f->st, "x", "c00000000001", bob, 1, &e), -ENOENT);

	struct publish_row p;
	assert_int_equal(store_publish_get(f->st, "my-app", &p, &e), 0);
	assert_string_equal(p.sandbox_id, "a00000000001");
	assert_int_equal(p.user_id, alice);
	assert_int_equal(p.port, 3000);
	assert_int_equal(p.created_at, 7);
	publish_row_release(&p);
	assert_int_equal(store_publish_get(f->st, "nope", &p, &e), -ENOENT);

	struct publish_row *v;
	size_t n;
	assert_int_equal(store_publish_list(f->st, alice, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].alias, "my-app");
	assert_string_equal(v[1].alias, "web-2");
	publish_row_array_free(v, n);
	assert_int_equal(store_publish_list(f->st, -1, &v, &n, &e), 0);
	assert_int_equal(n, 3);
	publish_row_array_free(v, n);

	assert_int_equal(store_publish_delete(f->st, "a00000000001", 8080, &e), 0);
	assert_int_equal(store_publish_delete(f->st, "a00000000001", 8080, &e), -ENOENT);
	assert_int_equal(store_publish_get(f->st, "web-2", &p, &e), -ENOENT);

	/* a sandbox's rules go with it; its aliases are free again */
	assert_int_equal(store_sandbox_delete(f->st, "a00000000001", &e), 0);
	assert_int_equal(store_publish_get(f->st, "my-app", &p, &e), -ENOENT);
	assert_int_equal(publish(f->st, "my-app", "b00000000001", bob, 4000, &e), 0);
	assert_int_equal(store_active_statements(f->st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrations_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_create_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_bad_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sandbox_scoped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sandbox_insert_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sandbox_rename_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
