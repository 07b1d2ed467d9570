/* api-exec.c — POST /sandboxes/:id/exec: run a command in the sandbox,
 * answered whole ({exit_code, stdout, stderr}) or streamed as ndjson
 * lines while it runs (docs/api.md).
 *
 * Sits between the HTTP request and one EXEC stream of the sandbox's agent
 * client. The client leaving (or the timeout) kills the command's process
 * group in the guest (the agent does it on CLOSE / timeout_ms).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sodium.h>

#include "api.h"
#include "log.h"
#include "server.h"

#define EXEC_OUTPUT_CAP (16u << 20)   /* per channel, when answered whole */

struct exec_body {
	char **cmd;
	char **env;
	char *cwd;
	int64_t timeout_sec;
	char *stdin_text;
	char *stdin_b64;
	bool as_root;
};

static const struct json_field exec_fields[] = {
	JSON_FIELD_STRV("cmd", struct exec_body, cmd, JSON_REQUIRED, 128 << 10, 4096),
	JSON_FIELD_STRMAP("env", struct exec_body, env, JSON_OPTIONAL, 32768, 256),
	JSON_FIELD_STR("cwd", struct exec_body, cwd, JSON_OPTIONAL, 4096),
	JSON_FIELD_INT("timeout_sec", struct exec_body, timeout_sec, JSON_OPTIONAL, 0, 7 * 86400),
	JSON_FIELD_STR("stdin", struct exec_body, stdin_text, JSON_OPTIONAL, 48u << 20),
	JSON_FIELD_STR("stdin_b64", struct exec_body, stdin_b64, JSON_OPTIONAL, 64u << 20),
	JSON_FIELD_BOOL("as_root", struct exec_body, as_root, JSON_OPTIONAL),
};

struct exec_ctx {
	struct http_req *r;
	struct exec_body b;
	struct buf in;            /* stdin still to send */
	size_t in_off;
	bool in_eof_sent;
	struct sbx *sb;
	struct ac_stream *s;
	bool streaming, started;
	struct buf out, err;
	bool truncated, exited, held;
	struct proto_exit exit;
	char error[ERR_MSG_MAX];
	int error_code;
};

static void exec_ctx_free(void *p)
{
	struct exec_ctx *x = p;
	json_release(exec_fields, ARRAY_SIZE(exec_fields), &x->b);
	buf_release(&x->in);
	buf_release(&x->out);
	buf_release(&x->err);
	free(x);
}

static void ndjson(struct exec_ctx *x, cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	http_stream_write(x->r, s, strlen(s));
	http_stream_write(x->r, "\n", 1);
	free(s);
	if (x->s && !x->held && http_stream_queued(x->r) > HTTP_QUEUE_HIGH) {
		x->held = true;
		ac_hold(x->s, true);
	}
}

static void on_drain(struct http_req *r)
{
	struct exec_ctx *x = r->ctx;
	if (x->s && x->held && http_stream_queued(r) < HTTP_QUEUE_HIGH / 2) {
		x->held = false;
		ac_hold(x->s, false);
	}
}

static void send_stdin(struct exec_ctx *x)
{
	while (x->s && x->in_off < x->in.len) {
		size_t room = ac_send_room(x->s);
		if (room == 0)
			return;
		size_t n = MIN(room, x->in.len - x->in_off);
		ac_send_data(x->s, PROTO_CH_IN, x->in.data + x->in_off, n);
		x->in_off += n;
	}
	if (x->s && !x->in_eof_sent && (x->b.stdin_text || x->b.stdin_b64)) {
		x->in_eof_sent = true;
		ac_send_eof(x->s, PROTO_CH_IN);
	}
}

static void on_window(struct ac_stream *s UNUSED, void *arg)
{
	send_stdin(arg);
}

static void on_data(struct ac_stream *s UNUSED, uint8_t ch, const uint8_t *p, size_t n, void *arg)
{
	struct exec_ctx *x = arg;
	sbx_touch(x->sb);
	if (x->streaming) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", ch == PROTO_CH_ERR ? "stderr" : "stdout");
		api_add_bytes(o, "data", p, n);
		ndjson(x, o);
		return;
	}
	struct buf *b = ch == PROTO_CH_ERR ? &x->err : &x->out;
	size_t take = b->len >= EXEC_OUTPUT_CAP ? 0 : MIN(n, EXEC_OUTPUT_CAP - b->len);
	buf_add(b, p, take);
	if (take < n)
		x->truncated = true;
}

static void on_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct exec_ctx *x = arg;
	struct err e = ERR_INIT;
	if (f->type == PROTO_EXEC_STARTED) {
		x->started = true;
		if (x->streaming)
			http_stream_start(x->r, 200, "application/x-ndjson", -1);
	} else if (f->type == PROTO_EXIT) {
		if (proto_decode(f, &x->exit, &e) == 0)
			x->exited = true;
	} else if (f->type == PROTO_ERROR) {
		struct proto_error pe;
		if (proto_decode(f, &pe, &e) == 0) {
			snprintf(x->error, sizeof(x->error), "%s", pe.message);
			x->error_code = pe.code;
			proto_msg_release(PROTO_ERROR, &pe);
		}
	}
}

static void reply_whole(struct exec_ctx *x)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "exit_code", x->exit.exit_code);
	api_add_bytes(o, "stdout", (const uint8_t *)x->out.data, x->out.len);
	api_add_bytes(o, "stderr", (const uint8_t *)x->err.data, x->err.len);
	cJSON_AddBoolToObject(o, "timed_out", (x->exit.flags & PROTO_EXIT_TIMEOUT) != 0);
	if (x->truncated)
		cJSON_AddBoolToObject(o, "truncated", true);
	http_reply_json(x->r, 200, o);
}

static void on_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct exec_ctx *x = arg;
	x->s = NULL;
	if (x->exited) {
		if (!x->streaming) {
			reply_whole(x);
			return;
		}
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", "exit");
		cJSON_AddNumberToObject(o, "exit_code", x->exit.exit_code);
		if (x->exit.flags & PROTO_EXIT_TIMEOUT)
			cJSON_AddBoolToObject(o, "timed_out", true);
		ndjson(x, o);
		http_stream_end(x->r);
		return;
	}
	const char *why = x->error[0] ? x->error : e ? err_str(e) : "the command ended without an exit status";
	if (!x->started) {
		/* an error before the command ran: a plain error answer */
		int code = x->error_code ? -x->error_code : -EIO;
		if (code == -ENOENT || code == -EACCES || code == -ENOEXEC || code == -ENOTDIR)
			code = -EINVAL;
		http_reply_error(x->r, e && !x->error[0] ? 409 : http_status_for(code), "%s", why);
		return;
	}
	if (!x->streaming) {
		http_reply_error(x->r, 500, "exec failed: %s", why);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "error");
	cJSON_AddStringToObject(o, "error", why);
	ndjson(x, o);
	http_stream_end(x->r);
}

static const struct ac_stream_cb exec_cb = {
	.frame = on_frame, .data = on_data, .window = on_window, .closed = on_closed,
};

static void on_gone(struct http_req *r)
{
	struct exec_ctx *x = r->ctx;
	if (x->s)
		ac_send_close(x->s);   /* the agent kills the process group */
}

static void ready(struct sbx *sb, int rc, const struct err *e, void *arg)
{
	struct exec_ctx *x = arg;
	struct http_req *r = x->r;
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
	struct proto_exec req = {
		.argv = x->b.cmd,
		.env = x->b.env ? x->b.env : (char *[]){ NULL },
		.cwd = x->b.cwd ? x->b.cwd : (char *)"",
		.flags = (x->b.as_root ? PROTO_EXEC_ROOT : 0) |
			 (x->b.stdin_text || x->b.stdin_b64 ? PROTO_EXEC_STDIN : 0),
		.timeout_ms = (uint32_t)(x->b.timeout_sec * 1000),
		.output_path = (char *)"",
	};
	x->s = ac ? ac_open(ac, PROTO_EXEC, &req, &exec_cb, x, &oe) : NULL;
	if (!x->s) {
		if (!ac)
			err_set(&oe, ENOTCONN, "sandbox '%s' is not running", sb->row.name);
		http_reply_err(r, -ENOTCONN, &oe);
		return;
	}
	send_stdin(x);
}

void api_exec(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct exec_ctx *x = xcalloc(1, sizeof(*x));
	x->r = r;
	x->sb = sb;
	buf_init(&x->in);
	buf_init(&x->out);
	buf_init(&x->err);
	r->ctx = x;
	r->ctx_free = exec_ctx_free;
	if (api_parse(r, exec_fields, ARRAY_SIZE(exec_fields), &x->b) < 0)
		return;
	if (!x->b.cmd[0] || !x->b.cmd[0][0]) {
		http_reply_error(r, 400, "field 'cmd' must name a command");
		return;
	}
	if (x->b.stdin_text && x->b.stdin_b64) {
		http_reply_error(r, 400, "give 'stdin' or 'stdin_b64', not both");
		return;
	}
	if (x->b.stdin_text)
		buf_adds(&x->in, x->b.stdin_text);
	if (x->b.stdin_b64) {
		size_t cap = strlen(x->b.stdin_b64) / 4 * 3 + 3, n;
		buf_grow(&x->in, cap);
		if (sodium_base642bin((uint8_t *)x->in.data, cap, x->b.stdin_b64,
				      strlen(x->b.stdin_b64), NULL, &n, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0) {
			http_reply_error(r, 400, "field 'stdin_b64' is not valid base64");
			return;
		}
		buf_setlen(&x->in, n);
	}
	if (api_rate(r, RATE_EXEC) < 0)
		return;
	x->streaming = r->want_ndjson;
	r->on_gone = on_gone;
	r->on_drain = on_drain;
	sbx_wake(sb, ready, x);
}
