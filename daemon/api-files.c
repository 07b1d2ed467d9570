/* api-files.c — /sandboxes/:id/files: GET streams a file out (or lists a
 * directory with ls=true), HEAD stats, PUT streams the body in and the
 * agent writes it atomically (docs/api.md).
 *
 * Sits between the HTTP request and one file operation of the guest core
 * (guest.h), with flow control both ways: a slow HTTP client holds the
 * guest's output back, a slow guest pauses reading the request body.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "num.h"
#include "server.h"

/* PUT: stop reading the body while this much waits for the guest. */
#define PUT_HIGH (1u << 20)

struct file_ctx {
	struct http_req *r;
	char *path;
	struct guest_op *op;
	uint64_t max_bytes;          /* read: the cap asked for (0: none) ... */
	bool by_lines;               /* ... and whether offset/limit were too */
	bool held, body_paused;
};

static void file_ctx_free(void *p)
{
	struct file_ctx *f = p;
	guest_op_free(f->op);   /* a read stops; a write is abandoned */
	free(f->path);
	free(f);
}

static const char *type_name(enum guest_ftype t)
{
	switch (t) {
	case GUEST_FILE: return "file";
	case GUEST_DIR: return "dir";
	case GUEST_LINK: return "link";
	default: return "other";
	}
}

static void meta_headers(struct http_req *r, const struct guest_meta *m)
{
	char v[32];
	snprintf(v, sizeof(v), "%llu", (unsigned long long)m->size);
	http_header(r, "X-Bhatti-Size", v);
	snprintf(v, sizeof(v), "%04o", m->mode & 07777);
	http_header(r, "X-Bhatti-Mode", v);
	http_header(r, "X-Bhatti-Type", type_name(m->type));
}

static void reply_failed(struct file_ctx *f, const struct guest_end *end)
{
	int rc = end->rc < 0 ? end->rc : -EIO;
	http_reply_error(f->r, api_guest_status(end, rc), "%s",
			 end->rc < 0 ? err_str(end->err) : "the agent ended the request");
}

/* ---- GET: a file's bytes ---- */

static void read_started(struct guest_op *op UNUSED, const struct guest_start *st, void *arg)
{
	struct file_ctx *f = arg;
	struct http_req *r = f->r;
	if (st->meta->type == GUEST_DIR) {
		guest_op_free(f->op);
		f->op = NULL;
		http_reply_error(r, 400, "'%s' is a directory (list it with ls=true)", f->path);
		return;
	}
	meta_headers(r, st->meta);
	if (f->max_bytes && !f->by_lines && st->meta->size != GUEST_SIZE_UNKNOWN &&
	    st->meta->size > f->max_bytes)
		http_header(r, "X-Bhatti-Truncated", "true");
	http_stream_start(r, 200, "application/octet-stream", -1);
}

static void read_data(struct guest_op *op, enum guest_ch ch UNUSED, const uint8_t *p, size_t n,
		      void *arg)
{
	struct file_ctx *f = arg;
	http_stream_write(f->r, p, n);
	if (!f->held && http_stream_queued(f->r) > HTTP_QUEUE_HIGH) {
		f->held = true;
		guest_hold(op, true);
	}
}

static void read_drain(struct http_req *r)
{
	struct file_ctx *f = r->ctx;
	if (f->op && f->held && http_stream_queued(r) < HTTP_QUEUE_HIGH / 2) {
		f->held = false;
		guest_hold(f->op, false);
	}
}

static void read_done(struct guest_op *op UNUSED, const struct guest_end *end, void *arg)
{
	struct file_ctx *f = arg;
	if (end->started)
		http_stream_end(f->r);   /* an error mid-way cuts the body short */
	else
		reply_failed(f, end);
}

static const struct guest_cb read_cb = {
	.started = read_started, .data = read_data, .done = read_done,
};

/* ---- GET ls=true: a directory ---- */

static void ls_done(struct guest_op *op UNUSED, const struct guest_end *end, void *arg)
{
	struct file_ctx *f = arg;
	if (end->rc < 0 || !end->listing) {
		reply_failed(f, end);
		return;
	}
	const struct guest_listing *ls = end->listing;
	cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray();
	cJSON_AddStringToObject(o, "path", f->path);
	for (size_t i = 0; i < ls->count; i++) {
		char when[32], mode[8];
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "name", ls->entries[i].name);
		cJSON_AddStringToObject(d, "type", type_name(ls->entries[i].type));
		cJSON_AddNumberToObject(d, "size", (double)ls->entries[i].size);
		snprintf(mode, sizeof(mode), "%04o", ls->entries[i].mode & 07777);
		cJSON_AddStringToObject(d, "mode", mode);
		api_time(when, ls->entries[i].mtime);
		cJSON_AddStringToObject(d, "mtime", when);
		cJSON_AddItemToArray(a, d);
	}
	cJSON_AddItemToObject(o, "entries", a);
	cJSON_AddBoolToObject(o, "truncated", ls->truncated);
	cJSON_AddNumberToObject(o, "total", (double)ls->total);
	http_reply_json(f->r, 200, o);
}

static const struct guest_cb ls_cb = { .done = ls_done };

/* ---- HEAD: stat ---- */

static void stat_done(struct guest_op *op UNUSED, const struct guest_end *end, void *arg)
{
	struct file_ctx *f = arg;
	if (end->rc < 0 || !end->meta) {
		reply_failed(f, end);
		return;
	}
	meta_headers(f->r, end->meta);
	http_reply_empty(f->r, 200);
}

static const struct guest_cb stat_cb = { .done = stat_done };

/* ---- PUT: body → guest ---- */

static void put_pause(struct file_ctx *f)
{
	bool pause = guest_write_queued(f->op) >= PUT_HIGH;
	if (pause != f->body_paused) {
		f->body_paused = pause;
		http_body_pause(f->r, pause);
	}
}

static void put_room(struct guest_op *op UNUSED, void *arg)
{
	put_pause(arg);
}

static void put_done(struct guest_op *op UNUSED, const struct guest_end *end, void *arg)
{
	struct file_ctx *f = arg;
	if (end->rc < 0) {
		reply_failed(f, end);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "path", f->path);
	cJSON_AddNumberToObject(o, "size", (double)end->bytes);
	http_reply_json(f->r, 201, o);
}

static const struct guest_cb put_cb = { .room = put_room, .done = put_done };

static void put_body(struct http_req *r, const uint8_t *p, size_t n)
{
	struct file_ctx *f = r->ctx;
	guest_write(f->op, p, n);
	put_pause(f);
}

static void put_body_end(struct http_req *r)
{
	struct file_ctx *f = r->ctx;
	guest_write_eof(f->op);
}

/* ---- the handlers ---- */

/* The sandbox, the path and as_root of a file request, or NULL after
 * answering 400/404. */
static struct file_ctx *file_begin(struct http_req *r, struct sbx **ret_sb,
				   struct guest_file_req *ret_req)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return NULL;
	const char *path = http_query(r, "path");
	if (!path || !path[0]) {
		http_reply_error(r, 400, "missing query parameter 'path'");
		return NULL;
	}
	const char *root = http_query(r, "as_root");
	if (root && strcmp(root, "true") != 0 && strcmp(root, "false") != 0) {
		http_reply_error(r, 400, "query parameter 'as_root' must be true or false");
		return NULL;
	}
	struct file_ctx *f = xcalloc(1, sizeof(*f));
	f->r = r;
	f->path = xstrdup(path);
	r->ctx = f;
	r->ctx_free = file_ctx_free;
	*ret_sb = sb;
	*ret_req = (struct guest_file_req){ .path = f->path, .as_root = root && root[0] == 't' };
	return f;
}

static int query_u64(struct http_req *r, const char *name, uint64_t *ret)
{
	const char *v = http_query(r, name);
	if (!v)
		return 0;
	struct err e = ERR_INIT;
	if (num_parse_u64(v, 0, UINT64_MAX, ret, name, &e) < 0) {
		http_reply_error(r, 400, "%s", err_str(&e));
		return -EINVAL;
	}
	return 0;
}

void api_file_get(struct http_req *r)
{
	const char *ls = http_query(r, "ls");
	bool list = ls && (strcmp(ls, "true") == 0 || strcmp(ls, "1") == 0);
	struct sbx *sb;
	struct guest_file_req req;
	struct file_ctx *f = file_begin(r, &sb, &req);
	if (!f)
		return;
	if (list) {
		f->op = guest_file_ls(sb, &req, &ls_cb, f);
		return;
	}
	if (query_u64(r, "offset", &req.offset) < 0 || query_u64(r, "limit", &req.limit) < 0 ||
	    query_u64(r, "max_bytes", &req.max_bytes) < 0)
		return;
	f->max_bytes = req.max_bytes;
	f->by_lines = req.offset || req.limit;
	r->on_drain = read_drain;
	f->op = guest_file_read(sb, &req, &read_cb, f);
}

void api_file_head(struct http_req *r)
{
	struct sbx *sb;
	struct guest_file_req req;
	struct file_ctx *f = file_begin(r, &sb, &req);
	if (f)
		f->op = guest_file_stat(sb, &req, &stat_cb, f);
}

void api_file_put(struct http_req *r)
{
	struct sbx *sb;
	struct guest_file_req req;
	struct file_ctx *f = file_begin(r, &sb, &req);
	if (!f)
		return;
	req.size = r->content_length;
	const char *mode = http_query(r, "mode");
	if (mode) {
		char *end;
		unsigned long m = strtoul(mode, &end, 8);
		if (!mode[0] || *end || m > 07777) {
			http_reply_error(r, 400, "query parameter 'mode' must be octal, e.g. 0644");
			return;
		}
		req.mode = (uint32_t)m;
	}
	r->on_body = put_body;
	r->on_body_end = put_body_end;
	f->op = guest_file_write(sb, &req, &put_cb, f);
}
