/* api-exec.c — POST /sandboxes/:id/exec: run a command in the sandbox,
 * answered whole ({exit_code, stdout, stderr}) or streamed as ndjson
 * lines while it runs (docs/api.md).
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
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sodium.h>

#include "api.h"
#include "log.h"
#include "server.h"

#define EXEC_OUTPUT_CAP (10u << 20)   /* both channels, when answered whole */

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
	struct guest_op *op;
	struct api_slot slot;      /* a concurrent exec of the user */
	bool streaming, held, truncated;
	struct buf out, err;       /* whole answer: the output so far */
};

static void exec_ctx_free(void *p)
{
	struct exec_ctx *x = p;
	guest_op_free(x->op);
	api_slot_release(&x->slot);
	json_release(exec_fields, ARRAY_SIZE(exec_fields), &x->b);
	buf_release(&x->out);
	buf_release(&x->err);
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
	if (x->op && x->held && http_stream_queued(r) < HTTP_QUEUE_HIGH / 2) {
		x->held = false;
		guest_hold(x->op, false);
	}
}

static void on_started(struct guest_op *op UNUSED, const struct guest_start *st UNUSED, void *arg)
{
	struct exec_ctx *x = arg;
	if (x->streaming)
		http_stream_start(x->r, 200, "application/x-ndjson", -1);
}

static void on_data(struct guest_op *op UNUSED, enum guest_ch ch, const uint8_t *p, size_t n,
		    void *arg)
{
	struct exec_ctx *x = arg;
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

static void on_done(struct guest_op *op UNUSED, const struct guest_end *end, void *arg)
{
	struct exec_ctx *x = arg;
	api_slot_release(&x->slot);
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

static const struct guest_cb exec_cb = {
	.started = on_started, .data = on_data, .done = on_done,
};

void api_exec(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct exec_ctx *x = xcalloc(1, sizeof(*x));
	x->r = r;
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
	x->streaming = r->want_ndjson;
	r->on_drain = on_drain;
	bool has_stdin = x->b.stdin_text || x->b.stdin_b64;
	struct guest_exec_req req = {
		.argv = x->b.cmd, .env = x->b.env, .cwd = x->b.cwd, .as_root = x->b.as_root,
		.stdin_open = has_stdin, .timeout_ms = (uint32_t)(x->b.timeout_sec * 1000),
	};
	x->op = guest_exec(sb, &req, &exec_cb, x);
	if (x->b.stdin_text)
		guest_write(x->op, x->b.stdin_text, strlen(x->b.stdin_text));
	else if (in.len)
		guest_write(x->op, in.data, in.len);
	if (has_stdin)
		guest_write_eof(x->op);
	buf_release(&in);
}
