/* api-shell.c — PTY sessions over the API: GET /sandboxes/:id/ws (a
 * WebSocket attached to a new or existing session) and GET
 * /sandboxes/:id/sessions (the list) (docs/api.md).
 *
 * Sits between a WebSocket and one shell of the guest core (guest.h). The
 * agent keeps the session and its 64 KiB scrollback; the WebSocket ending
 * (for any reason: the client left, an over-size message) frees the
 * shell, which detaches it. A slow client holds the guest's output back
 * (no unbounded queue here); keys wait for the guest up to INPUT_CAP.
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
	struct guest_op *op;
	bool held;
};

static void shell_ctx_free(void *p)
{
	struct shell_ctx *x = p;
	guest_op_free(x->op);   /* detaches: the session keeps running */
	free(x);
}

static void on_started(struct guest_op *op UNUSED, const struct guest_start *st, void *arg)
{
	struct shell_ctx *x = arg;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "session");
	cJSON_AddStringToObject(o, "id", st->session);
	cJSON_AddBoolToObject(o, "new", st->session_new);
	http_ws_send_json(x->r, o);
}

static void on_data(struct guest_op *op, enum guest_ch ch UNUSED, const uint8_t *p, size_t n,
		    void *arg)
{
	struct shell_ctx *x = arg;
	for (size_t off = 0; off < n; off += WS_CHUNK)
		http_ws_send(x->r, true, p + off, MIN((size_t)WS_CHUNK, n - off));
	if (!x->held && http_ws_queued(x->r) > HTTP_QUEUE_HIGH) {
		x->held = true;
		guest_hold(op, true);
	}
}

static void on_drain(struct http_req *r)
{
	struct shell_ctx *x = r->ctx;
	if (x->op && x->held && http_ws_queued(r) < HTTP_QUEUE_HIGH / 2) {
		x->held = false;
		guest_hold(x->op, false);
	}
}

static void on_done(struct guest_op *op UNUSED, const struct guest_end *end, void *arg)
{
	struct shell_ctx *x = arg;
	if (end->rc < 0 && !end->started) {
		/* (waking the sandbox, or attaching, failed) */
		http_reply_error(x->r, api_guest_status(end, end->rc), "%s", err_str(end->err));
		return;
	}
	cJSON *o = cJSON_CreateObject();
	if (end->exited) {
		cJSON_AddStringToObject(o, "type", "exit");
		cJSON_AddNumberToObject(o, "exit_code", end->exit_code);
	} else if (end->rc < 0) {
		cJSON_AddStringToObject(o, "type", "error");
		cJSON_AddStringToObject(o, "error", err_str(end->err));
	} else {
		cJSON_AddStringToObject(o, "type", "detached");
	}
	http_ws_send_json(x->r, o);
	http_ws_close(x->r);
}

static const struct guest_cb shell_cb = {
	.started = on_started, .data = on_data, .done = on_done,
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
	if (binary) {
		if (guest_write_queued(x->op) + n > INPUT_CAP)
			return;   /* a paste larger than 1 MiB while the guest is stuck */
		guest_write(x->op, p, n);
		return;
	}
	struct resize_msg m = { 0 };
	struct err e = ERR_INIT;
	if (json_parse((const char *)p, n, resize_fields, ARRAY_SIZE(resize_fields), &m, NULL, &e) == 0 &&
	    strcmp(m.type, "resize") == 0)
		guest_resize(x->op, (uint16_t)m.rows, (uint16_t)m.cols);
	else
		log_debug("shell: ignoring a text message: %s", e.msg[0] ? e.msg : "not a resize");
	json_release(resize_fields, ARRAY_SIZE(resize_fields), &m);
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
	r->ctx = x;
	r->ctx_free = shell_ctx_free;
	r->on_drain = on_drain;
	r->on_ws_message = on_message;
	const char *sess = http_query(r, "session");
	struct guest_shell_req req = {
		.session = sess && sess[0] ? sess : NULL,
		.cols = query_dim(r, "cols", 80),
		.rows = query_dim(r, "rows", 24),
	};
	x->op = guest_shell(sb, &req, &shell_cb, x);
}

/* ---- GET /sandboxes/:id/sessions ---- */

struct list_ctx {
	struct guest_op *op;
};

static void list_ctx_free(void *p)
{
	struct list_ctx *x = p;
	guest_op_free(x->op);
	free(x);
}

static void listed(struct guest_op *op UNUSED, const struct guest_end *end, void *arg)
{
	struct http_req *r = arg;
	if (end->rc < 0 || !end->sessions) {
		if (end->agent_error || end->lost)
			http_reply_error(r, 409, "cannot list sessions: %s",
					 end->rc < 0 ? err_str(end->err) : "the agent did not answer");
		else
			http_reply_err(r, end->rc < 0 ? end->rc : -EIO, end->err);
		return;
	}
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < end->sessions->count; i++) {
		const struct guest_session *gs = &end->sessions->list[i];
		char when[32];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", gs->id);
		cJSON *argv = cJSON_CreateArray();
		for (char *const *p = gs->argv; p && *p; p++)
			cJSON_AddItemToArray(argv, cJSON_CreateString(*p));
		cJSON_AddItemToObject(o, "argv", argv);
		cJSON_AddStringToObject(o, "tty", gs->tty);
		cJSON_AddBoolToObject(o, "running", gs->running);
		if (gs->running)
			cJSON_AddNullToObject(o, "exit_code");
		else
			cJSON_AddNumberToObject(o, "exit_code", gs->exit_code);
		cJSON_AddBoolToObject(o, "attached", gs->attached);
		api_time(when, gs->created);
		cJSON_AddStringToObject(o, "created_at", when);
		cJSON_AddItemToArray(a, o);
	}
	http_reply_json(r, 200, a);
}

static const struct guest_cb list_cb = { .done = listed };

void api_sessions(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct list_ctx *x = xcalloc(1, sizeof(*x));
	r->ctx = x;
	r->ctx_free = list_ctx_free;
	x->op = guest_sessions(sb, &list_cb, r);
}
