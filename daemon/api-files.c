/* api-files.c — /sandboxes/:id/files: GET streams a file out (or lists a
 * directory with ls=true), HEAD stats, PUT streams the body in and the
 * agent writes it atomically (docs/api.md).
 *
 * Sits between the HTTP request and one FILE_READ / FILE_LS / FILE_STAT /
 * FILE_WRITE stream of the sandbox's agent client, with flow control both
 * ways: a slow HTTP client holds the agent's stream back, a slow agent
 * pauses reading the request body.
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

struct file_ctx {
	struct http_req *r;
	struct sbx *sb;
	char *path;
	uint8_t op;                 /* PROTO_FILE_* */
	struct proto_file_read rd;
	uint32_t mode;
	struct ac_stream *s;
	bool replied, held, body_done, eof_sent, ok;
	struct buf pending;         /* PUT: body bytes not sent yet */
	uint64_t sent;
	char error[ERR_MSG_MAX];
	int error_code;
};

static void file_ctx_free(void *p)
{
	struct file_ctx *f = p;
	free(f->path);
	buf_release(&f->pending);
	free(f);
}

static const char *type_name(uint8_t t)
{
	switch (t) {
	case PROTO_FT_FILE: return "file";
	case PROTO_FT_DIR: return "dir";
	case PROTO_FT_LINK: return "link";
	default: return "other";
	}
}

static void meta_headers(struct http_req *r, const struct proto_file_meta *m)
{
	char v[32];
	snprintf(v, sizeof(v), "%llu", (unsigned long long)m->size);
	http_header(r, "X-Bhatti-Size", v);
	snprintf(v, sizeof(v), "%04o", m->mode & 07777);
	http_header(r, "X-Bhatti-Mode", v);
	http_header(r, "X-Bhatti-Type", type_name(m->type));
}

static void reply_agent_error(struct file_ctx *f, const struct err *e)
{
	const char *why = f->error[0] ? f->error : e ? err_str(e) : "the agent ended the request";
	int code = f->error_code ? -f->error_code : -EIO;
	int status = http_status_for(code);
	if (e && !f->error[0])
		status = 409;
	http_reply_error(f->r, status, "%s", why);
}

/* ---- agent stream callbacks ---- */

static void on_frame(struct ac_stream *s UNUSED, const struct proto_frame *fr, void *arg)
{
	struct file_ctx *f = arg;
	struct err e = ERR_INIT;
	struct http_req *r = f->r;
	switch (fr->type) {
	case PROTO_FILE_META: {
		struct proto_file_meta m;
		if (proto_decode(fr, &m, &e) < 0)
			return;
		if (f->op == PROTO_FILE_READ) {
			if (m.type == PROTO_FT_DIR) {
				snprintf(f->error, sizeof(f->error),
					 "'%s' is a directory (list it with ls=true)", f->path);
				f->error_code = EISDIR;
				ac_send_close(f->s);
			} else {
				meta_headers(r, &m);
				if (f->rd.max_bytes && !f->rd.offset && !f->rd.limit &&
				    m.size != PROTO_FILE_SIZE_UNKNOWN && m.size > f->rd.max_bytes)
					http_header(r, "X-Bhatti-Truncated", "true");
				http_stream_start(r, 200, "application/octet-stream", -1);
				f->replied = true;
			}
		} else if (f->op == PROTO_FILE_STAT) {
			meta_headers(r, &m);
			http_reply_empty(r, 200);
			f->replied = true;
		}
		proto_msg_release(PROTO_FILE_META, &m);
		break;
	}
	case PROTO_LS_RESULT: {
		struct proto_ls_result ls;
		if (proto_decode(fr, &ls, &e) < 0)
			return;
		cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray();
		cJSON_AddStringToObject(o, "path", f->path);
		for (size_t i = 0; i < ls.count; i++) {
			char when[32];
			cJSON *d = cJSON_CreateObject();
			cJSON_AddStringToObject(d, "name", ls.entries[i].name);
			cJSON_AddStringToObject(d, "type", type_name(ls.entries[i].type));
			cJSON_AddNumberToObject(d, "size", (double)ls.entries[i].size);
			char mode[8];
			snprintf(mode, sizeof(mode), "%04o", ls.entries[i].mode & 07777);
			cJSON_AddStringToObject(d, "mode", mode);
			api_time(when, ls.entries[i].mtime);
			cJSON_AddStringToObject(d, "mtime", when);
			cJSON_AddItemToArray(a, d);
		}
		cJSON_AddItemToObject(o, "entries", a);
		cJSON_AddBoolToObject(o, "truncated", ls.truncated != 0);
		cJSON_AddNumberToObject(o, "total", ls.total);
		proto_msg_release(PROTO_LS_RESULT, &ls);
		http_reply_json(r, 200, o);
		f->replied = true;
		break;
	}
	case PROTO_OK:
		f->ok = true;
		break;
	case PROTO_ERROR: {
		struct proto_error pe;
		if (proto_decode(fr, &pe, &e) == 0) {
			snprintf(f->error, sizeof(f->error), "%s", pe.message);
			f->error_code = pe.code;
			proto_msg_release(PROTO_ERROR, &pe);
		}
		break;
	}
	default:
		break;
	}
}

static void on_data(struct ac_stream *s, uint8_t ch UNUSED, const uint8_t *p, size_t n, void *arg)
{
	struct file_ctx *f = arg;
	http_stream_write(f->r, p, n);
	if (!f->held && http_stream_queued(f->r) > HTTP_QUEUE_HIGH) {
		f->held = true;
		ac_hold(s, true);
	}
}

static void on_drain(struct http_req *r)
{
	struct file_ctx *f = r->ctx;
	if (f->s && f->held && http_stream_queued(r) < HTTP_QUEUE_HIGH / 2) {
		f->held = false;
		ac_hold(f->s, false);
	}
}

static void put_pump(struct file_ctx *f);

static void on_window(struct ac_stream *s UNUSED, void *arg)
{
	put_pump(arg);
}

static void on_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct file_ctx *f = arg;
	struct http_req *r = f->r;
	f->s = NULL;
	if (f->op == PROTO_FILE_WRITE) {
		if (f->ok && !f->error[0]) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "path", f->path);
			cJSON_AddNumberToObject(o, "size", (double)f->sent);
			http_reply_json(r, 201, o);
		} else {
			reply_agent_error(f, e);
		}
		return;
	}
	if (f->replied) {
		if (f->op == PROTO_FILE_READ)
			http_stream_end(r);   /* an error mid-way cuts the body short */
		return;
	}
	reply_agent_error(f, e);
}

static const struct ac_stream_cb file_cb = {
	.frame = on_frame, .data = on_data, .window = on_window, .closed = on_closed,
};

static void on_gone(struct http_req *r)
{
	struct file_ctx *f = r->ctx;
	if (f->s)
		ac_send_close(f->s);
}

/* ---- opening the stream once the sandbox is hot ---- */

static void ready(struct sbx *sb, int rc, const struct err *e, void *arg)
{
	struct file_ctx *f = arg;
	struct http_req *r = f->r;
	if (rc < 0) {
		http_reply_err(r, rc, e);
		return;
	}
	if (http_gone(r)) {
		http_reply_empty(r, 499);
		return;
	}
	struct ac *ac = sbx_agent(sb);
	struct err oe = ERR_INIT;
	struct proto_path st = { .path = f->path };
	struct proto_file_ls ls = { .path = f->path, .max_entries = 0 };
	struct proto_file_write w = { .path = f->path, .mode = f->mode, .size = r->content_length };
	const void *msg = f->op == PROTO_FILE_READ ? (const void *)&f->rd
			  : f->op == PROTO_FILE_LS ? (const void *)&ls
			  : f->op == PROTO_FILE_STAT ? (const void *)&st : (const void *)&w;
	f->s = ac ? ac_open(ac, f->op, msg, &file_cb, f, &oe) : NULL;
	if (!f->s) {
		if (!ac)
			err_set(&oe, ENOTCONN, "sandbox '%s' is not running", sb->row.name);
		http_reply_err(r, -ENOTCONN, &oe);
		return;
	}
	sbx_touch(sb);
	if (f->op == PROTO_FILE_WRITE) {
		http_body_pause(r, false);
		put_pump(f);
	}
}

static struct file_ctx *file_begin(struct http_req *r, uint8_t op)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return NULL;
	const char *path = http_query(r, "path");
	if (!path || !path[0]) {
		http_reply_error(r, 400, "missing query parameter 'path'");
		return NULL;
	}
	struct file_ctx *f = xcalloc(1, sizeof(*f));
	f->r = r;
	f->sb = sb;
	f->path = xstrdup(path);
	f->op = op;
	buf_init(&f->pending);
	r->ctx = f;
	r->ctx_free = file_ctx_free;
	r->on_gone = on_gone;
	r->on_drain = on_drain;
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
	struct file_ctx *f = file_begin(r, list ? PROTO_FILE_LS : PROTO_FILE_READ);
	if (!f)
		return;
	f->rd.path = f->path;
	if (query_u64(r, "offset", &f->rd.offset) < 0 || query_u64(r, "limit", &f->rd.limit) < 0 ||
	    query_u64(r, "max_bytes", &f->rd.max_bytes) < 0)
		return;
	sbx_wake(f->sb, ready, f);
}

void api_file_head(struct http_req *r)
{
	struct file_ctx *f = file_begin(r, PROTO_FILE_STAT);
	if (f)
		sbx_wake(f->sb, ready, f);
}

/* ---- PUT: body → agent ---- */

static void put_pump(struct file_ctx *f)
{
	while (f->s && f->pending.len) {
		size_t room = ac_send_room(f->s);
		if (!room)
			return;
		size_t n = MIN(room, f->pending.len);
		ac_send_data(f->s, PROTO_CH_IN, f->pending.data, n);
		buf_consume(&f->pending, n);
		f->sent += n;
	}
	if (!f->s)
		return;
	if (f->body_done && !f->eof_sent) {
		f->eof_sent = true;
		ac_send_eof(f->s, PROTO_CH_IN);
	} else if (!f->body_done) {
		http_body_pause(f->r, f->pending.len > 0);
	}
}

static void put_body(struct http_req *r, const uint8_t *p, size_t n)
{
	struct file_ctx *f = r->ctx;
	buf_add(&f->pending, p, n);
	put_pump(f);
	if (!f->s)
		http_body_pause(r, f->pending.len >= (1u << 20));
}

static void put_body_end(struct http_req *r)
{
	struct file_ctx *f = r->ctx;
	f->body_done = true;
	put_pump(f);
}

void api_file_put(struct http_req *r)
{
	struct file_ctx *f = file_begin(r, PROTO_FILE_WRITE);
	if (!f)
		return;
	const char *mode = http_query(r, "mode");
	if (mode) {
		char *end;
		unsigned long m = strtoul(mode, &end, 8);
		if (!mode[0] || *end || m > 07777) {
			http_reply_error(r, 400, "query parameter 'mode' must be octal, e.g. 0644");
			return;
		}
		f->mode = (uint32_t)m;
	}
	r->on_body = put_body;
	r->on_body_end = put_body_end;
	sbx_wake(f->sb, ready, f);
}
