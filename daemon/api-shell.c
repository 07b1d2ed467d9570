/* api-shell.c — PTY sessions over the API: GET /sandboxes/:id/ws (a
 * WebSocket attached to a new or existing session) and GET
 * /sandboxes/:id/sessions (the list) (docs/api.md).
 *
 * Sits between a WebSocket and one SESSION_OPEN / SESSION_ATTACH stream of
 * the sandbox's agent client. The agent keeps the session and its 64 KiB
 * scrollback; closing the WebSocket only detaches. A slow client holds the
 * agent's stream back (no unbounded queue here).
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

#define WS_CHUNK (32u << 10)
#define INPUT_CAP (1u << 20)

struct shell_ctx {
	struct http_req *r;
	struct sbx *sb;
	char *session;          /* reattach to this id, or NULL */
	uint16_t rows, cols;
	struct ac_stream *s;
	bool held, exited;
	struct buf input;       /* keyboard bytes waiting for credit */
	struct proto_exit exit;
	char error[ERR_MSG_MAX];
};

static void shell_ctx_free(void *p)
{
	struct shell_ctx *x = p;
	free(x->session);
	buf_release(&x->input);
	free(x);
}

static void pump_input(struct shell_ctx *x)
{
	while (x->s && x->input.len) {
		size_t room = ac_send_room(x->s);
		if (!room)
			return;
		size_t n = MIN(room, x->input.len);
		ac_send_data(x->s, PROTO_CH_IN, x->input.data, n);
		buf_consume(&x->input, n);
	}
}

static void on_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct shell_ctx *x = arg;
	struct err e = ERR_INIT;
	if (f->type == PROTO_SESSION) {
		struct proto_session ps;
		if (proto_decode(f, &ps, &e) < 0)
			return;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", "session");
		cJSON_AddStringToObject(o, "id", ps.id);
		cJSON_AddBoolToObject(o, "new", x->session == NULL);
		http_ws_send_json(x->r, o);
		proto_msg_release(PROTO_SESSION, &ps);
	} else if (f->type == PROTO_EXIT) {
		if (proto_decode(f, &x->exit, &e) == 0)
			x->exited = true;
	} else if (f->type == PROTO_ERROR) {
		struct proto_error pe;
		if (proto_decode(f, &pe, &e) == 0) {
			snprintf(x->error, sizeof(x->error), "%s", pe.message);
			proto_msg_release(PROTO_ERROR, &pe);
		}
	}
}

static void on_data(struct ac_stream *s, uint8_t ch UNUSED, const uint8_t *p, size_t n, void *arg)
{
	struct shell_ctx *x = arg;
	sbx_touch(x->sb);
	for (size_t off = 0; off < n; off += WS_CHUNK)
		http_ws_send(x->r, true, p + off, MIN((size_t)WS_CHUNK, n - off));
	if (!x->held && http_ws_queued(x->r) > HTTP_QUEUE_HIGH) {
		x->held = true;
		ac_hold(s, true);
	}
}

static void on_drain(struct http_req *r)
{
	struct shell_ctx *x = r->ctx;
	if (x->s && x->held && http_ws_queued(r) < HTTP_QUEUE_HIGH / 2) {
		x->held = false;
		ac_hold(x->s, false);
	}
}

static void on_window(struct ac_stream *s UNUSED, void *arg)
{
	pump_input(arg);
}

static void on_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct shell_ctx *x = arg;
	x->s = NULL;
	cJSON *o = cJSON_CreateObject();
	if (x->exited) {
		cJSON_AddStringToObject(o, "type", "exit");
		cJSON_AddNumberToObject(o, "exit_code", x->exit.exit_code);
	} else if (x->error[0] || e) {
		cJSON_AddStringToObject(o, "type", "error");
		cJSON_AddStringToObject(o, "error", x->error[0] ? x->error : err_str(e));
	} else {
		cJSON_AddStringToObject(o, "type", "detached");
	}
	http_ws_send_json(x->r, o);
	http_ws_close(x->r);
}

static const struct ac_stream_cb shell_cb = {
	.frame = on_frame, .data = on_data, .window = on_window, .closed = on_closed,
};

struct resize_msg {
	char *type;
	int64_t cols, rows;
};

static const struct json_field resize_fields[] = {
	JSON_FIELD_STR("type", struct resize_msg, type, JSON_REQUIRED, 16),
	JSON_FIELD_INT("cols", struct resize_msg, cols, JSON_REQUIRED, 1, 1000),
	JSON_FIELD_INT("rows", struct resize_msg, rows, JSON_REQUIRED, 1, 1000),
};

static void on_message(struct http_req *r, bool binary, const uint8_t *p, size_t n)
{
	struct shell_ctx *x = r->ctx;
	if (!x->s)
		return;
	if (binary) {
		if (x->input.len + n > INPUT_CAP)
			return;   /* a paste larger than 1 MiB while the guest is stuck */
		buf_add(&x->input, p, n);
		pump_input(x);
		return;
	}
	struct resize_msg m = { 0 };
	struct err e = ERR_INIT;
	if (json_parse((const char *)p, n, resize_fields, ARRAY_SIZE(resize_fields), &m, NULL, &e) == 0 &&
	    strcmp(m.type, "resize") == 0) {
		struct proto_resize rz = { .rows = (uint16_t)m.rows, .cols = (uint16_t)m.cols };
		ac_send_msg(x->s, PROTO_RESIZE, &rz);
	} else {
		log_debug("shell: ignoring a text message: %s", e.msg[0] ? e.msg : "not a resize");
	}
	json_release(resize_fields, ARRAY_SIZE(resize_fields), &m);
}

static void on_gone(struct http_req *r)
{
	struct shell_ctx *x = r->ctx;
	if (x->s)
		ac_send_close(x->s);   /* detach: the session keeps running */
}

static void ready(struct sbx *sb, int rc, const struct err *e, void *arg)
{
	struct shell_ctx *x = arg;
	struct http_req *r = x->r;
	if (rc < 0) {
		http_reply_err(r, rc, e);
		return;
	}
	if (http_gone(r)) {
		http_ws_close(r);
		return;
	}
	struct ac *ac = sbx_agent(sb);
	struct err oe = ERR_INIT;
	struct proto_session_open op = {
		.id = (char *)"", .argv = (char *[]){ NULL }, .env = (char *[]){ NULL },
		.cwd = (char *)"", .rows = x->rows, .cols = x->cols,
	};
	struct proto_session_attach at = { .id = x->session, .rows = x->rows, .cols = x->cols };
	x->s = !ac ? NULL
	       : x->session ? ac_open(ac, PROTO_SESSION_ATTACH, &at, &shell_cb, x, &oe)
			    : ac_open(ac, PROTO_SESSION_OPEN, &op, &shell_cb, x, &oe);
	if (!x->s) {
		if (!ac)
			err_set(&oe, ENOTCONN, "sandbox '%s' is not running", sb->row.name);
		http_reply_err(r, -ENOTCONN, &oe);
	}
}

static uint16_t query_dim(struct http_req *r, const char *name, uint16_t dflt)
{
	const char *v = http_query(r, name);
	uint32_t n;
	if (!v || num_parse_u32(v, 1, 1000, &n, name, NULL) < 0)
		return dflt;
	return (uint16_t)n;
}

void api_shell(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct shell_ctx *x = xcalloc(1, sizeof(*x));
	x->r = r;
	x->sb = sb;
	buf_init(&x->input);
	const char *sess = http_query(r, "session");
	x->session = sess && sess[0] ? xstrdup(sess) : NULL;
	x->cols = query_dim(r, "cols", 80);
	x->rows = query_dim(r, "rows", 24);
	r->ctx = x;
	r->ctx_free = shell_ctx_free;
	r->on_gone = on_gone;
	r->on_drain = on_drain;
	r->on_ws_message = on_message;
	sbx_wake(sb, ready, x);
}

/* ---- GET /sandboxes/:id/sessions ---- */

static void list_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct http_req *r = arg;
	struct err e = ERR_INIT;
	struct proto_session_list list;
	if (f->type != PROTO_SESSION_LIST_RESULT || proto_decode(f, &list, &e) < 0)
		return;
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < list.count; i++) {
		struct proto_session *ps = &list.sessions[i];
		char when[32];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", ps->id);
		cJSON *argv = cJSON_CreateArray();
		for (char **p = ps->argv; p && *p; p++)
			cJSON_AddItemToArray(argv, cJSON_CreateString(*p));
		cJSON_AddItemToObject(o, "argv", argv);
		cJSON_AddStringToObject(o, "tty", ps->tty);
		cJSON_AddBoolToObject(o, "running", ps->running != 0);
		if (ps->running)
			cJSON_AddNullToObject(o, "exit_code");
		else
			cJSON_AddNumberToObject(o, "exit_code", ps->exit_code);
		cJSON_AddBoolToObject(o, "attached", ps->attached != 0);
		api_time(when, ps->created);
		cJSON_AddStringToObject(o, "created_at", when);
		cJSON_AddItemToArray(a, o);
	}
	proto_msg_release(PROTO_SESSION_LIST_RESULT, &list);
	http_reply_json(r, 200, a);
}

static void list_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct http_req *r = arg;
	if (!r->finished)
		http_reply_error(r, 409, "cannot list sessions: %s",
				 e ? err_str(e) : "the agent did not answer");
}

static const struct ac_stream_cb list_cb = { .frame = list_frame, .closed = list_closed };

static void listed(struct sbx *sb, int rc, const struct err *e, void *arg)
{
	struct http_req *r = arg;
	if (rc < 0) {
		http_reply_err(r, rc, e);
		return;
	}
	struct ac *ac = sbx_agent(sb);
	struct err oe = ERR_INIT;
	if (!ac || !ac_open(ac, PROTO_SESSION_LIST, NULL, &list_cb, r, &oe))
		http_reply_error(r, 409, "cannot list sessions: %s",
				 ac ? err_str(&oe) : "the sandbox is not running");
}

void api_sessions(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (sb)
		sbx_wake(sb, listed, r);
}
