/* store — the daemon's state in SQLite (data_dir/state.db): users and their
 * API keys, sandboxes, secrets, published ports.
 *
 * One connection per struct store, in WAL mode with synchronous=FULL (a
 * call that returned 0 has reached the disk), foreign keys on and a busy
 * timeout (5 s, store_set_busy_timeout), so `bhatti serve` and the `bhatti
 * user` admin commands can use the same file at once. The schema is a list of numbered migrations;
 * PRAGMA user_version records how many have run, each runs in its own
 * transaction, and a file written by a newer bhatti is refused.
 *
 * Every query is a prepared statement with bound parameters, prepared on
 * first use, kept, reset after each call and finalized by store_free(); no
 * call leaves a statement active (which would pin a WAL read snapshot).
 *
 * Errors: -EINVAL bad argument (invalid name or id, negative limit),
 * -EDQUOT over a quota the call enforces, -ENOENT not found, -EEXIST name taken, -EBUSY the database is locked
 * (or, for store_user_delete, the user still has sandboxes), -EIO any
 * other SQLite failure ("database: <sqlite message>").
 *
 * Ownership: store_open()/store_free(). Rows returned in structs own their
 * strings: user_release(), sandbox_row_release(), secret_meta_release(),
 * publish_row_release();
 * arrays from the *_list calls are freed with the matching *_array_free().
 * API keys returned in ret_key are heap strings the caller frees (after
 * sodium_memzero if it cares).
 */
#ifndef BHATTI_STORE_H
#define BHATTI_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "valid.h"

#define STORE_SCHEMA_VERSION 3    /* migrations this build knows */
#define STORE_KEY_PREFIX "bht_"
#define STORE_KEY_LEN 47          /* "bht_" + 43 base64url characters */

struct store;

/* Open (creating it mode 0600 if missing) the database at path and bring
 * its schema up to date. -ENOTSUP for a database from a newer bhatti. */
int store_open(const char *path, struct store **ret, struct err *e);
void store_free(struct store *st);

/* How long a write waits for another process's write lock before -EBUSY.
 * The daemon waits briefly (a request must not hold its one event loop);
 * the admin commands wait the default 5 s. */
void store_set_busy_timeout(struct store *st, int ms);
#define STORE_DAEMON_BUSY_MS 100

/* For tests: store_open() with another list of migrations. */
int store_open_migrations(const char *path, const char *const *migrations, size_t n,
			  struct store **ret, struct err *e);
/* For tests: statements not reset (0 between calls). */
size_t store_active_statements(const struct store *st);

/* ---- users ---------------------------------------------------------------- */

struct user {
	int64_t id;
	char *name;
	int64_t max_sandboxes;
	int64_t max_cpus;
	int64_t max_memory_mb;
	int64_t created_at;     /* seconds since the epoch */
};

void user_release(struct user *u);
void user_array_free(struct user *v, size_t n);

/* A new user with a new API key: STORE_KEY_PREFIX + 32 random bytes in
 * base64url without padding. Only the key's SHA-256 is stored, so
 * *ret_key is the one chance to see it. ret_user may be NULL.
 * -EEXIST when the name is taken. */
int store_user_create(struct store *st, const char *name, int64_t max_sandboxes,
		      int64_t max_cpus, int64_t max_memory_mb, char **ret_key,
		      struct user *ret_user, struct err *e);

/* The user whose API key this is; -ENOENT ("invalid API key") for an
 * unknown or malformed key. */
int store_user_auth(struct store *st, const char *key, struct user *ret, struct err *e);

int store_user_get(struct store *st, const char *name, struct user *ret, struct err *e);

/* All users, by name. */
int store_user_list(struct store *st, struct user **ret, size_t *ret_n, struct err *e);

/* A new key for the user; the old one stops working at once. */
int store_user_rotate_key(struct store *st, const char *name, char **ret_key,
			  struct err *e);

/* Delete the user and their secrets; -EBUSY while they have sandboxes. */
int store_user_delete(struct store *st, const char *name, struct err *e);

/* ---- sandboxes ------------------------------------------------------------ */

struct sandbox_row {
	char *id;               /* VALID_SANDBOX_ID_LEN lower-case hex (valid.h) */
	int64_t user_id;
	char *name;
	int64_t cpus;
	int64_t memory_mb;
	char *image;            /* may be NULL */
	int64_t created_at;
	bool stopped;           /* the user stopped it */
	bool destroying;        /* a destroy began: the next daemon finishes it */
};

void sandbox_row_release(struct sandbox_row *r);
void sandbox_row_array_free(struct sandbox_row *v, size_t n);

/* -EEXIST when the user already has a sandbox of that name (or the id is
 * taken); -ENOENT when r->user_id is no user. */
int store_sandbox_insert(struct store *st, const struct sandbox_row *r, struct err *e);

/* The user's sandbox named name_or_id, else the user's sandbox with that
 * id; another user's sandbox is -ENOENT like a missing one. */
int store_sandbox_find(struct store *st, int64_t user_id, const char *name_or_id,
		       struct sandbox_row *ret, struct err *e);

/* By id, whoever owns it (the daemon's own use). */
int store_sandbox_get(struct store *st, const char *id, struct sandbox_row *ret,
		      struct err *e);

/* The user's sandboxes (user_id -1: everyone's), by created_at, then id. */
int store_sandbox_list(struct store *st, int64_t user_id, struct sandbox_row **ret,
		       size_t *ret_n, struct err *e);

/* How many sandboxes the user has (user_id -1: in all). */
int store_sandbox_count(struct store *st, int64_t user_id, int64_t *ret, struct err *e);

/* -EEXIST when the user has another sandbox of that name; -ENOENT when the
 * user has no sandbox with this id. */
int store_sandbox_rename(struct store *st, int64_t user_id, const char *id,
			 const char *new_name, struct err *e);

int store_sandbox_set_stopped(struct store *st, const char *id, bool stopped,
			      struct err *e);
/* Record that a destroy began (or, false, that it did not happen). */
int store_sandbox_set_destroying(struct store *st, const char *id, bool destroying,
				 struct err *e);
int store_sandbox_delete(struct store *st, const char *id, struct err *e);

/* ---- secrets (stored as ciphertext; the store never sees plaintext) ------- */

struct secret_meta {
	char *name;
	int64_t created_at;
	int64_t updated_at;
};

void secret_meta_release(struct secret_meta *m);
void secret_meta_array_free(struct secret_meta *v, size_t n);

/* Create or replace; *ret_created (may be NULL) says which. -EDQUOT when
 * it would create the user's (max + 1)th secret (replacing one never is). */
int store_secret_put(struct store *st, int64_t user_id, const char *name,
		     const void *ct, size_t n, int64_t max, bool *ret_created,
		     struct err *e);

/* The ciphertext, appended to ret_ct; -ENOENT. */
int store_secret_get(struct store *st, int64_t user_id, const char *name,
		     struct buf *ret_ct, struct err *e);

/* The user's secrets, by name, without their values. */
int store_secret_list(struct store *st, int64_t user_id, struct secret_meta **ret,
		      size_t *ret_n, struct err *e);

int store_secret_delete(struct store *st, int64_t user_id, const char *name,
			struct err *e);

/* ---- published ports (aliases are unique across all users) ----------------- */

struct publish_row {
	char *alias;            /* valid_alias() */
	char *sandbox_id;
	int64_t user_id;
	int64_t port;           /* 1 to 65535 */
	int64_t created_at;
};

void publish_row_release(struct publish_row *p);
void publish_row_array_free(struct publish_row *v, size_t n);

/* -EINVAL bad alias or port; -EEXIST the alias is taken (by anyone) or the
 * sandbox's port is published already; -ENOENT no such sandbox. A
 * sandbox's rows are deleted with it. */
int store_publish_insert(struct store *st, const struct publish_row *p, struct err *e);
/* -ENOENT when nobody has the alias. */
int store_publish_get(struct store *st, const char *alias, struct publish_row *ret,
		      struct err *e);
/* The user's published ports (user_id -1: everyone's), by sandbox id, then port. */
int store_publish_list(struct store *st, int64_t user_id, struct publish_row **ret,
		       size_t *ret_n, struct err *e);
/* -ENOENT when that port of the sandbox is not published. */
int store_publish_delete(struct store *st, const char *sandbox_id, int64_t port,
			 struct err *e);

#endif
