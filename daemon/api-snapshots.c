/* api-snapshots.c — named snapshots and fork (docs/api.md): take a
 * snapshot of a sandbox, list, inspect, delete, resume one as a new
 * sandbox; fork a sandbox. Parses and answers; the work is in snapshot.c
 * (and sandbox.c). A warm sandbox is copied as it is; a cold or
 * user-stopped one is woken first (sbx_wake), as for any request that
 * needs the guest.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "server.h"
#include "snapshot.h"
#include "valid.h"

static cJSON *snap_json(const struct snapshot_row *row)
{
	char when[32];
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", row->id);
	cJSON_AddStringToObject(o, "name", row->name);
	cJSON_AddStringToObject(o, "status", row->ready ? "ready" : "creating");
	cJSON_AddStringToObject(o, "source_sandbox", row->source ? row->source : "");
	cJSON_AddStringToObject(o, "image", row->image ? row->image : "");
	cJSON_AddNumberToObject(o, "cpus", (double)row->cpus);
	cJSON_AddNumberToObject(o, "memory_mb", (double)row->memory_mb);
	cJSON_AddNumberToObject(o, "size_bytes", (double)row->size_bytes);
	cJSON_AddNumberToObject(o, "size_mb", (double)((row->size_bytes + (1 << 20) - 1) >> 20));
	cJSON *labels = row->labels ? cJSON_Parse(row->labels) : NULL;
	cJSON_AddItemToObject(o, "labels", labels ? labels : cJSON_CreateObject());
	api_time(when, row->created_at);
	cJSON_AddStringToObject(o, "created_at", when);
	return o;
}

/* ---- copies of a sandbox: snapshot, fork --------------------------------------- */

struct copy_body {
	char *name;
	char **labels;            /* "k=v" */
};

static const struct json_field snapshot_fields[] = {
	JSON_FIELD_STR("name", struct copy_body, name, JSON_REQUIRED, 63),
	JSON_FIELD_STRMAP("labels", struct copy_body, labels, JSON_OPTIONAL, 256, 16),
};

static const struct json_field fork_fields[] = {
	JSON_FIELD_STR("name", struct copy_body, name, JSON_OPTIONAL, 63),
};

/* A request that wakes its sandbox, then copies it. */
struct copy_ctx {
	struct http_req *r;
	struct sbx *waits;        /* the sandbox whose wake, or fork's create, it waits for */
	struct snap_op *op;       /* a snapshot being made */
	char *name, *labels;
	bool fork;
};

static void copy_ctx_free(void *p)
{
	struct copy_ctx *c = p;
	if (c->waits)
		sbx_cancel_wait(c->waits, c);
	snap_op_cancel(c->op);
	free(c->name);
	free(c->labels);
	free(c);
}

static void snap_made(int rc, const struct err *e, const struct snapshot_row *row, void *arg)
{
	struct copy_ctx *c = arg;
	c->op = NULL;
	if (rc < 0)
		http_reply_err(c->r, rc, e);
	else
		http_reply_json(c->r, 201, snap_json(row));
}

static void forked(struct sbx *sb, int rc, const struct err *e, void *arg)
{
	struct copy_ctx *c = arg;
	c->waits = NULL;
	if (rc < 0)
		http_reply_err(c->r, rc, e);
	else
		http_reply_json(c->r, 201, api_sandbox_json(sb));
}

static void copy_woken(struct sbx *sb, int rc, const struct err *e, void *arg)
{
	struct copy_ctx *c = arg;
	struct http_req *r = c->r;
	struct err ce = ERR_INIT;
	c->waits = NULL;
	if (rc < 0) {
		http_reply_err(r, rc, e);
		return;
	}
	struct sbx *child = NULL;
	if (c->fork)
		rc = snap_fork(r->srv, &r->user, sb, c->name, forked, c, &child, &ce);
	else
		rc = snap_create(r->srv, &r->user, sb, c->name, c->labels, snap_made, c, &c->op,
				 &ce);
	if (rc < 0)
		http_reply_err(r, rc, &ce);
	else if (child)
		c->waits = child;
}

/* Labels as the JSON object text the snapshot keeps (NULL: none). */
static int labels_json(char **kv, char **ret, struct err *e)
{
	*ret = NULL;
	if (!kv || !kv[0])
		return 0;
	int rc = valid_labels(kv, e);
	if (rc < 0)
		return rc;
	cJSON *o = cJSON_CreateObject();
	for (char **p = kv; *p; p++) {
		char *eq = strchr(*p, '=');
		char *k = xstrndup(*p, (size_t)(eq - *p));
		cJSON_AddStringToObject(o, k, eq + 1);
		free(k);
	}
	*ret = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return 0;
}

static void copy_sandbox(struct http_req *r, bool fork)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	const struct json_field *fields = fork ? fork_fields : snapshot_fields;
	size_t nfields = fork ? ARRAY_SIZE(fork_fields) : ARRAY_SIZE(snapshot_fields);
	struct copy_body b = { 0 };
	if (api_parse(r, fields, nfields, &b) < 0)
		return;
	struct err e = ERR_INIT;
	char *labels = NULL;
	int rc = 0;
	if (b.name)
		rc = fork ? valid_sandbox_name(b.name, &e) : valid_snapshot_name(b.name, &e);
	if (rc == 0)
		rc = labels_json(b.labels, &labels, &e);
	if (rc < 0) {
		http_reply_error(r, 400, "%s", err_str(&e));
	} else if (api_rate(r, RATE_CREATE) == 0) {
		struct copy_ctx *c = xcalloc(1, sizeof(*c));
		c->r = r;
		c->fork = fork;
		c->name = b.name;
		b.name = NULL;
		c->labels = labels;
		labels = NULL;
		c->waits = sb;
		r->ctx = c;
		r->ctx_free = copy_ctx_free;
		/* a warm one is copied as it is (and stays warm); a cold one
		 * is woken first (may answer at once) */
		if (strcmp(sbx_state(sb), "warm") == 0 && !sb->busy)
			copy_woken(sb, 0, NULL, c);
		else
			sbx_wake(sb, copy_woken, c);
	}
	cJSON_free(labels);
	json_release(fields, nfields, &b);
}

void api_sandbox_snapshot(struct http_req *r)
{
	copy_sandbox(r, false);
}

void api_sandbox_fork(struct http_req *r)
{
	copy_sandbox(r, true);
}

/* ---- the snapshots ------------------------------------------------------------------- */

void api_snapshot_list(struct http_req *r)
{
	struct snapshot_row *rows = NULL;
	size_t n = 0;
	struct err e = ERR_INIT;
	if (store_snapshot_list(r->srv->store, r->user.id, &rows, &n, &e) < 0) {
		http_reply_err(r, -EIO, &e);
		return;
	}
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, snap_json(&rows[i]));
	snapshot_row_array_free(rows, n);
	http_reply_json(r, 200, a);
}

void api_snapshot_get(struct http_req *r)
{
	struct snapshot_row row = { 0 };
	struct err e = ERR_INIT;
	int rc = store_snapshot_find(r->srv->store, r->user.id, r->params[0], &row, &e);
	if (rc == -ENOENT)
		http_reply_error(r, 404, "no snapshot '%s'", r->params[0]);
	else if (rc < 0)
		http_reply_err(r, -EIO, &e);
	else
		http_reply_json(r, 200, snap_json(&row));
	snapshot_row_release(&row);
}

void api_snapshot_delete(struct http_req *r)
{
	struct err e = ERR_INIT;
	int rc = snap_delete(r->srv, &r->user, r->params[0], &e);
	if (rc == -ENOENT)
		http_reply_error(r, 404, "no snapshot '%s'", r->params[0]);
	else if (rc == -EBUSY)
		http_reply_error(r, 409, "%s", err_str(&e));
	else if (rc < 0)
		http_reply_err(r, -EIO, &e);
	else
		http_reply_empty(r, 204);
}

struct resume_body {
	char *name;
};

static const struct json_field resume_fields[] = {
	JSON_FIELD_STR("name", struct resume_body, name, JSON_OPTIONAL, 63),
};

void api_snapshot_resume(struct http_req *r)
{
	struct resume_body b = { 0 };
	if (api_parse(r, resume_fields, ARRAY_SIZE(resume_fields), &b) < 0)
		return;
	struct err e = ERR_INIT;
	struct sbx *sb = NULL;
	if (b.name && valid_sandbox_name(b.name, &e) < 0) {
		http_reply_error(r, 400, "%s", err_str(&e));
	} else if (api_rate(r, RATE_CREATE) == 0) {
		void *w = api_wait(r, NULL, 201);
		int rc = snap_resume(r->srv, &r->user, r->params[0], b.name, api_sandbox_done, w, &sb,
				     &e);
		if (rc == 0) {
			api_wait_on(r, sb);
		} else if (rc == -ENOENT) {
			http_reply_error(r, 404, "%s", err_str(&e));
		} else {
			api_wait_failed(r);
			http_reply_err(r, rc, &e);
		}
	}
	json_release(resume_fields, ARRAY_SIZE(resume_fields), &b);
}
