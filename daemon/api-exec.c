/* api-exec.c — POST /sandboxes/:id/exec: run a command in the sandbox,
 * answered whole ({exit_code, stdout, stderr}) or streamed as ndjson
 * lines while it runs; GET /sandboxes/:id/exec/ws: the same command over
 * a WebSocket, its stdin streamed while it runs (docs/api.md).
 *
 * Sits between the HTTP request and one exec of the guest core (guest.h).
 * The request ending early (the client left) frees the exec, which kills
 * the command's process group in the guest; so does its timeout.
 *
 * Memory is bounded: a whole answer keeps at most EXEC_OUTPUT_CAP bytes of
 * output (then "truncated": true; stream for more) and is written as JSON
 * once, without a copy per layer; a streamed answer holds the guest back
 * while HTTP_QUEUE_HIGH bytes wait for the client. Concurrent execs are
 * limited per user and in all (limits.max_execs_per_user, max_execs).
 * The WebSocket's stdin waits for the guest up to STDIN_HIGH bytes; above
 * that the client's messages are not read until the guest took half.
 *
 * Timeouts: none named → exec.timeout (300 s); 0 → none; at most
 * exec.max_timeout (24 h).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sodium.h>

#include "api.h"
#include "log.h"
#include "server.h"

#define EXEC_OUTPUT_CAP (10u << 20)   /* both channels, when answered whole */
#define STDIN_HIGH (1u << 20)
#define WS_OUT_CHUNK (32u << 10)          /* WebSocket stdin waiting for the guest */

struct exec_body {
	char **cmd;
	char **env;
	char *cwd;
	int64_t timeout_sec;
	char *stdin_text;
	char *stdin_b64;
	bool as_root;
	bool detach;
};

static const struct json_field exec_fields[] = {
	JSON_FIELD_STRV("cmd", struct exec_body, cmd, JSON_REQUIRED, 128 << 10, 4096),
	JSON_FIELD_STRMAP("env", struct exec_body, env, JSON_OPTIONAL, 32768, 256),
	JSON_FIELD_STR("cwd", struct exec_body, cwd, JSON_OPTIONAL, 4096),
	JSON_FIELD_INT("timeout_sec", struct exec_body, timeout_sec, JSON_OPTIONAL, 0,
		       SETTINGS_EXEC_TIMEOUT_MAX_MS / 1000),
	JSON_FIELD_STR("stdin", struct exec_body, stdin_text, JSON_OPTIONAL, 48u << 20),
	JSON_FIELD_STR("stdin_b64", struct exec_body, stdin_b64, JSON_OPTIONAL, 64u << 20),
	JSON_FIELD_BOOL("as_root", struct exec_body, as_root, JSON_OPTIONAL),
	JSON_FIELD_BOOL("detach", struct exec_body, detach, JSON_OPTIONAL),
};

struct exec_ctx {
	struct http_req *r;
	struct exec_body b;
	struct guest_op *op;
	struct api_slot slot;      /* a concurrent exec of the user */
	bool streaming, held, truncated;
	bool ws, ws_started, stdin_paused;  /* over the WebSocket */
	struct buf out, err;       /* whole answer: the output so far */
	uint32_t pid;              /* detached: the command's */
	char *output_path;
};

static void exec_ctx_free(void *p)
{
	struct exec_ctx *x = p;
	guest_op_free(x->op);
	api_slot_release(&x->slot);
	json_release(exec_fields, ARRAY_SIZE(exec_fields), &x->b);
	buf_release(&x->out);
	buf_release(&x->err);
	free(x->output_path);
	free(x);
}

/* One ndjson line: {"type":TYPE, …rest}. */
static void line(struct exec_ctx *x, struct buf *l)
{
	buf_add(l, "}\n", 2);
	http_stream_write(x->r, l->data, l->len);
	buf_release(l);
	if (x->op && !x->held && http_stream_queued(x->r) > HTTP_QUEUE_HIGH) {
		x->held = true;
		guest_hold(x->op, true);
	}
}

static void on_drain(struct http_req *r)
{
	struct exec_ctx *x = r->ctx;
	size_t queued = x->ws ? http_ws_queued(r) : http_stream_queued(r);
	if (x->op && x->held && queued < HTTP_QUEUE_HIGH / 2) {
		x->held = false;
		guest_hold(x->op, false);
	}
}

static void on_started(struct guest_op *op UNUSED, const struct guest_start *st, void *arg)
{
	struct exec_ctx *x = arg;
	if (x->b.detach) {
		x->pid = st->pid;
		x->output_path = xstrdup(st->output_path ? st->output_path : "");
	} else if (x->ws) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", "started");
		cJSON_AddNumberToObject(o, "pid", st->pid);
		http_ws_send_json(x->r, o);
	} else if (x->streaming)
		http_stream_start(x->r, 200, "application/x-ndjson", -1);
}

static void on_data(struct guest_op *op UNUSED, enum guest_ch ch, const uint8_t *p, size_t n,
		    void *arg)
{
	struct exec_ctx *x = arg;
	if (x->ws) {
		/* a binary message: the channel (1 stdout, 2 stderr), the bytes */
		for (size_t off = 0; off < n; off += WS_OUT_CHUNK) {
			size_t k = MIN((size_t)WS_OUT_CHUNK, n - off);
			uint8_t m[1 + WS_OUT_CHUNK];
			m[0] = ch == GUEST_ERR ? 2 : 1;
			memcpy(m + 1, p + off, k);
			http_ws_send(x->r, true, m, k + 1);
		}
		if (!x->held && http_ws_queued(x->r) > HTTP_QUEUE_HIGH) {
			x->held = true;
			guest_hold(x->op, true);
		}
		return;
	}
	if (x->streaming) {
		struct buf l = BUF_INIT;
		buf_addf(&l, "{\"type\":\"%s\",", ch == GUEST_ERR ? "stderr" : "stdout");
		api_json_bytes(&l, "data", p, n);
		line(x, &l);
		return;
	}
	size_t have = x->out.len + x->err.len;
	size_t take = have >= EXEC_OUTPUT_CAP ? 0 : MIN(n, EXEC_OUTPUT_CAP - have);
	buf_add(ch == GUEST_ERR ? &x->err : &x->out, p, take);
	if (take < n)
		x->truncated = true;
}

static void reply_whole(struct exec_ctx *x, const struct guest_end *end)
{
	struct buf j = BUF_INIT;
	buf_addf(&j, "{\"exit_code\":%d,", end->exit_code);
	api_json_bytes(&j, "stdout", (const uint8_t *)x->out.data, x->out.len);
	buf_release(&x->out);
	buf_addch(&j, ',');
	api_json_bytes(&j, "stderr", (const uint8_t *)x->err.data, x->err.len);
	buf_release(&x->err);
	buf_addf(&j, ",\"timed_out\":%s%s}\n", end->timed_out ? "true" : "false",
		 x->truncated ? ",\"truncated\":true" : "");
	http_reply_text(x->r, 200, "application/json", &j);
}

/* The end over the WebSocket: an exit message, or an error answer. */
static void ws_done(struct exec_ctx *x, const struct guest_end *end)
{
	cJSON *o = cJSON_CreateObject();
	if (end->exited) {
		cJSON_AddStringToObject(o, "type", "exit");
		cJSON_AddNumberToObject(o, "exit_code", end->exit_code);
		if (end->timed_out)
			cJSON_AddBoolToObject(o, "timed_out", true);
		http_ws_send_json(x->r, o);
		http_ws_close(x->r);
		return;
	}
	const char *why = end->rc < 0 ? err_str(end->err) : "the command ended without an exit status";
	cJSON_AddStringToObject(o, "error", why);
	int rc = end->rc < 0 ? end->rc : -EIO;
	if (!end->started && end->agent_error &&
	    (rc == -ENOENT || rc == -EACCES || rc == -ENOEXEC || rc == -ENOTDIR))
		rc = -EINVAL;
	http_reply_json(x->r, end->started ? 500 : api_guest_status(end, rc), o);
}

static void on_done(struct guest_op *op UNUSED, const struct guest_end *end, void *arg)
{
	struct exec_ctx *x = arg;
	api_slot_release(&x->slot);
	if (x->ws) {
		ws_done(x, end);
		return;
	}
	if (x->b.detach && end->detached) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "pid", x->pid);
		cJSON_AddStringToObject(o, "output_file", x->output_path);
		cJSON_AddBoolToObject(o, "detached", true);
		http_reply_json(x->r, 200, o);
		return;
	}
	if (end->exited && !x->streaming) {
		reply_whole(x, end);
		return;
	}
	struct buf l = BUF_INIT;
	if (end->exited) {
		buf_addf(&l, "{\"type\":\"exit\",\"exit_code\":%d%s", end->exit_code,
			 end->timed_out ? ",\"timed_out\":true" : "");
		line(x, &l);
		http_stream_end(x->r);
		return;
	}
	const char *why = end->rc < 0 ? err_str(end->err) : "the command ended without an exit status";
	if (!end->started) {
		/* an error before the command ran: a plain error answer (a
		 * command the guest cannot run is a bad request) */
		int rc = end->rc < 0 ? end->rc : -EIO;
		if (end->agent_error && (rc == -ENOENT || rc == -EACCES || rc == -ENOEXEC ||
					 rc == -ENOTDIR))
			rc = -EINVAL;
		http_reply_error(x->r, api_guest_status(end, rc), "%s", why);
		return;
	}
	if (!x->streaming) {
		http_reply_error(x->r, 500, "exec failed: %s", why);
		return;
	}
	buf_add(&l, "{\"type\":\"error\",", 16);
	api_json_bytes(&l, "error", (const uint8_t *)why, strlen(why));
	line(x, &l);
	http_stream_end(x->r);
}

static void on_room(struct guest_op *op, void *arg)
{
	struct exec_ctx *x = arg;
	if (x->stdin_paused && guest_write_queued(op) < STDIN_HIGH / 2) {
		x->stdin_paused = false;
		http_body_pause(x->r, false);
	}
}

static const struct guest_cb exec_cb = {
	.started = on_started, .data = on_data, .room = on_room, .done = on_done,
};

/* The checks of a request both routes share, and the guest request; -1
 * when answered (an error). */
static int exec_prepare(struct exec_ctx *x, struct guest_exec_req *req)
{
	struct http_req *r = x->r;
	const struct settings *cfg = &r->srv->cfg;
	if (!x->b.cmd[0] || !x->b.cmd[0][0]) {
		http_reply_error(r, 400, "field 'cmd' must name a command");
		return -1;
	}
	uint64_t max_s = cfg->exec.max_timeout_ms / 1000;
	if (x->b.timeout_sec > 0 && (uint64_t)x->b.timeout_sec > max_s) {
		http_reply_error(r, 400, "field 'timeout_sec' is at most %llu (exec.max_timeout); "
					 "0 is none", (unsigned long long)max_s);
		return -1;
	}
	/* (a detached command has no timeout unless it names one) */
	uint64_t timeout_ms = x->b.timeout_sec >= 0 ? (uint64_t)x->b.timeout_sec * 1000
			      : x->b.detach	    ? 0
						    : cfg->exec.timeout_ms;
	*req = (struct guest_exec_req){
		.argv = x->b.cmd, .env = x->b.env, .cwd = x->b.cwd, .as_root = x->b.as_root,
		.detach = x->b.detach, .timeout_ms = (uint32_t)MIN(timeout_ms, (uint64_t)UINT32_MAX),
	};
	return 0;
}

static struct exec_ctx *exec_ctx_new(struct http_req *r)
{
	struct exec_ctx *x = xcalloc(1, sizeof(*x));
	x->r = r;
	x->b.timeout_sec = -1;   /* not given */
	buf_init(&x->out);
	buf_init(&x->err);
	r->ctx = x;
	r->ctx_free = exec_ctx_free;
	r->on_drain = on_drain;
	return x;
}

void api_exec(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct exec_ctx *x = exec_ctx_new(r);
	struct guest_exec_req req;
	if (api_parse(r, exec_fields, ARRAY_SIZE(exec_fields), &x->b) < 0 ||
	    exec_prepare(x, &req) < 0)
		return;
	if (x->b.stdin_text && x->b.stdin_b64) {
		http_reply_error(r, 400, "give 'stdin' or 'stdin_b64', not both");
		return;
	}
	struct buf in = BUF_INIT;
	if (x->b.stdin_b64) {
		size_t len = strlen(x->b.stdin_b64), cap = len / 4 * 3 + 3, n;
		buf_grow(&in, cap);
		if (sodium_base642bin((uint8_t *)in.data, cap, x->b.stdin_b64, len, NULL, &n, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0) {
			buf_release(&in);
			http_reply_error(r, 400, "field 'stdin_b64' is not valid base64");
			return;
		}
		buf_setlen(&in, n);
	}
	if (api_slot_take(r, &x->slot, RATE_EXEC) < 0) {
		buf_release(&in);
		return;
	}
	x->streaming = r->want_ndjson && !x->b.detach;
	bool has_stdin = (x->b.stdin_text || x->b.stdin_b64) && !x->b.detach;
	req.stdin_open = has_stdin;
	x->op = guest_exec(sb, &req, &exec_cb, x);
	if (x->b.stdin_text)
		guest_write(x->op, x->b.stdin_text, strlen(x->b.stdin_text));
	else if (in.len)
		guest_write(x->op, in.data, in.len);
	if (has_stdin)
		guest_write_eof(x->op);
	buf_release(&in);
}

/* ---- GET /sandboxes/:id/exec/ws ---- */

/* The first text message is the request (the fields of POST .../exec but
 * stdin); then binary messages are stdin and {"type":"eof"} closes it. */
static void ws_message(struct http_req *r, bool binary, const uint8_t *p, size_t n)
{
	struct exec_ctx *x = r->ctx;
	if (x->ws_started) {
		if (binary) {
			guest_write(x->op, p, n);
			if (!x->stdin_paused && guest_write_queued(x->op) > STDIN_HIGH) {
				x->stdin_paused = true;
				http_body_pause(r, true);
			}
		} else if (n == 14 && memcmp(p, "{\"type\":\"eof\"}", 14) == 0) {
			guest_write_eof(x->op);
		} else {
			log_debug("exec ws: ignoring a text message");
		}
		return;
	}
	struct err e = ERR_INIT;
	struct guest_exec_req req;
	if (binary) {
		http_reply_error(r, 400, "the first message must be the request (JSON text)");
		return;
	}
	if (json_parse((const char *)p, n, exec_fields, ARRAY_SIZE(exec_fields), &x->b, NULL,
		       &e) < 0) {
		http_reply_error(r, 400, "%s", err_str(&e));
		return;
	}
	if (x->b.stdin_text || x->b.stdin_b64 || x->b.detach) {
		http_reply_error(r, 400, "send stdin as binary messages, not in the request "
					 "(and detach with POST .../exec)");
		return;
	}
	if (exec_prepare(x, &req) < 0)
		return;
	struct sbx *sb = api_sandbox(r);
	if (!sb || api_slot_take(r, &x->slot, RATE_EXEC) < 0)
		return;
	x->ws_started = true;
	req.stdin_open = true;
	x->op = guest_exec(sb, &req, &exec_cb, x);
}

void api_exec_ws(struct http_req *r)
{
	if (!api_sandbox(r))
		return;
	struct exec_ctx *x = exec_ctx_new(r);
	x->ws = true;
	r->on_ws_message = ws_message;
}
