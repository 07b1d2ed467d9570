/* store — the daemon's state in SQLite (data_dir/state.db): users and their
 * API keys, sandboxes, secrets, named snapshots, published ports.
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

#define STORE_SCHEMA_VERSION 8    /* migrations this build knows */
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

/* Delete the user and their secrets; -EBUSY while they have sandboxes or
 * named snapshots. */
int store_user_delete(struct store *st, const char *name, struct err *e);

/* ---- sandboxes ------------------------------------------------------------ */

/* What the thermal manager keeps across a restart (docs/thermal.md). */
struct sandbox_thermal {
	int64_t last_activity;  /* unix ms of the last activity seen (0: unknown) */
	int64_t warm_since;     /* unix ms it went warm or cold (0: hot) */
	int64_t wake_count;
	int64_t last_wake_ms;   /* how long the last wake took */
	char *wake_error;       /* why the last wake failed; NULL: it did not */
};

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
	bool keep_hot;          /* never paused by the thermal manager */
	struct sandbox_thermal thermal;
	char *ip;               /* its address (networking on), or NULL */
	char *egress;           /* its egress policy as JSON (net.h), NULL: the default */
	char *labels;           /* "KEY=VALUE" lines sorted by key (labels.h); NULL: none */
	int64_t disk_size;      /* bytes asked at create; 0 = the image's size */
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
int store_sandbox_set_keep_hot(struct store *st, const char *id, bool keep_hot,
			       struct err *e);
/* Write t (its wake_error may be NULL or ""). */
int store_sandbox_set_thermal(struct store *st, const char *id,
			      const struct sandbox_thermal *t, struct err *e);
int store_sandbox_set_egress(struct store *st, const char *id, const char *egress,
			     struct err *e);
int store_sandbox_delete(struct store *st, const char *id, struct err *e);
/* labels: as sandbox_row.labels (NULL or "": none). */
int store_sandbox_set_labels(struct store *st, const char *id, const char *labels,
			     struct err *e);

/* ---- events (daemon/events.c: the stream's history) ----------------------- */

struct store_event {
	int64_t seq, user_id;
	const char *sandbox_id;   /* may be NULL */
	int64_t at_ms;
	const char *body;         /* the event as JSON */
};
/* The n events in one transaction (all or none). */
int store_events_add(struct store *st, const struct store_event *v, size_t n, struct err *e);
/* fn for each event with seq > after, in order, at most max; fn returns
 * non-zero to stop. */
int store_event_each(struct store *st, int64_t after, int64_t max,
		     int (*fn)(int64_t seq, int64_t user_id, const char *body, void *arg),
		     void *arg, struct err *e);
/* The highest seq stored (0: none). */
int store_event_last(struct store *st, int64_t *ret, struct err *e);
/* Remove events older than before_ms. */
int store_event_prune(struct store *st, int64_t before_ms, struct err *e);

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

/* ---- named snapshots (their files are the daemon's: snapshot.c) ---------- */

struct snapshot_row {
	char *id;               /* VALID_SANDBOX_ID_LEN lower-case hex: its directory */
	int64_t user_id;
	char *name;
	char *source;           /* the source sandbox's name when it was taken */
	char *image;
	int64_t cpus;
	int64_t memory_mb;
	int64_t size_bytes;     /* disk its files take (once ready) */
	char *labels;           /* a JSON object, or NULL */
	int64_t created_at;
	bool ready;             /* its files are complete */
};

void snapshot_row_release(struct snapshot_row *r);
void snapshot_row_array_free(struct snapshot_row *v, size_t n);

/* A new row, not ready, in one transaction with the quota: -EDQUOT when
 * the user has max snapshots already, -EEXIST when the name is taken. */
int store_snapshot_insert(struct store *st, const struct snapshot_row *r, int64_t max,
			  struct err *e);
/* The user's snapshot by name; -ENOENT. */
int store_snapshot_find(struct store *st, int64_t user_id, const char *name,
			struct snapshot_row *ret, struct err *e);
/* The user's snapshots (user_id -1: everyone's), by created_at, then name. */
int store_snapshot_list(struct store *st, int64_t user_id, struct snapshot_row **ret,
			size_t *ret_n, struct err *e);
int store_snapshot_count(struct store *st, int64_t user_id, int64_t *ret, struct err *e);
/* Its files are complete and take size_bytes. */
int store_snapshot_set_ready(struct store *st, const char *id, int64_t size_bytes, struct err *e);
int store_snapshot_delete(struct store *st, const char *id, struct err *e);
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
