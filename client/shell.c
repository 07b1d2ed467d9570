/* shell.c — a terminal session over the daemon's WebSocket: pick, attach,
 * keys, resizes, detach, and the daemon's messages turned into callbacks
 * (see shell.h for the states). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "async.h"
#include "httpc.h"
#include "loop.h"
#include "shell.h"

struct shell {
	struct client *cl;
	const struct shell_cb *cb;
	void *arg;
	char *name_esc;
	char *session;            /* asked for, or picked */
	bool picked;
	unsigned cols, rows;      /* the window now */
	unsigned req_cols, req_rows;   /* the window the upgrade asked for */
	struct async_req *pick;
	struct async_ws *ws;
	struct buf early;         /* keys typed while picking */
	struct task detach_later; /* a detach before there was a WebSocket */
	char id[128];
	bool attached, detaching, ended;
};

/* ---- the end --------------------------------------------------------------- */

/* Stop everything; the caller then makes the one final callback. */
static void end(struct shell *s)
{
	s->ended = true;
	async_req_cancel(s->pick);
	s->pick = NULL;
	async_ws_abort(s->ws);
	s->ws = NULL;
	task_cancel(&s->detach_later);
}

static void end_error(struct shell *s, int code, const char *msg)
{
	struct err e = ERR_INIT;
	err_set(&e, code, "%s", msg);
	end(s);
	s->cb->error(s, &e, s->arg);
}

static void on_detach_later(struct task *t)
{
	struct shell *s = t->data;
	end(s);
	s->cb->detached(s, true, s->arg);
}

/* ---- the daemon's messages ------------------------------------------------- */

static void on_text(struct shell *s, const char *p, size_t n)
{
	cJSON *j = cJSON_ParseWithLength(p, n);
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "type"));
	if (!type) {
		/* not ours to judge: a newer daemon may say more */
	} else if (strcmp(type, "session") == 0) {
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "id"));
		snprintf(s->id, sizeof(s->id), "%s", id ? id : "");
		if (s->cb->session)
			s->cb->session(s, s->id,
				       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "new")), s->arg);
	} else if (strcmp(type, "exit") == 0) {
		cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "exit_code");
		if (cJSON_IsNumber(code)) {
			end(s);
			s->cb->exit(s, code->valueint, s->arg);
		} else {
			end_error(s, EPROTO, "the daemon said the shell exited but not with which code");
		}
	} else if (strcmp(type, "error") == 0) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
		end_error(s, EIO, m ? m : "the daemon reported an error without a message");
	} else if (strcmp(type, "detached") == 0) {
		end(s);
		s->cb->detached(s, false, s->arg);
	}
	cJSON_Delete(j);
}

static void send_resize(struct shell *s)
{
	char msg[96];
	int n = snprintf(msg, sizeof(msg), "{\"type\":\"resize\",\"cols\":%u,\"rows\":%u}", s->cols,
			 s->rows);
	async_ws_send(s->ws, false, msg, (size_t)n);
}

static void on_open(struct async_ws *ws UNUSED, void *arg)
{
	struct shell *s = arg;
	s->attached = true;
	if (s->cols != s->req_cols || s->rows != s->req_rows)
		send_resize(s);   /* the window changed while we connected */
	if (s->cb->attached)
		s->cb->attached(s, s->picked ? s->session : NULL, s->arg);
}

static void on_message(struct async_ws *ws UNUSED, bool binary, const char *p, size_t n,
		       void *arg)
{
	struct shell *s = arg;
	if (binary)
		s->cb->output(s, p, n, s->arg);
	else
		on_text(s, p, n);
}

static void on_drained(struct async_ws *ws UNUSED, void *arg)
{
	struct shell *s = arg;
	if (s->cb->drained)
		s->cb->drained(s, s->arg);
}

static void on_closed(struct async_ws *ws UNUSED, const struct err *e, void *arg)
{
	struct shell *s = arg;
	s->ws = NULL;   /* it is going away */
	if (s->detaching) {
		end(s);
		s->cb->detached(s, true, s->arg);
	} else if (e) {
		struct err copy = *e;
		end(s);
		s->cb->error(s, &copy, s->arg);
	} else {
		/* a close with no exit, error or detached before it */
		end_error(s, ECONNRESET, "the connection to the daemon was lost");
	}
}

static const struct async_ws_cb ws_cb = {
	.open = on_open, .message = on_message, .drained = on_drained, .closed = on_closed,
};

/* ---- attaching ----------------------------------------------------------- */

static void connect_ws(struct shell *s)
{
	struct buf path = BUF_INIT;
	s->req_cols = s->cols;
	s->req_rows = s->rows;
	buf_addf(&path, "/sandboxes/%s/ws?cols=%u&rows=%u", s->name_esc, s->cols, s->rows);
	if (s->session) {
		char *esc = httpc_escape(s->session);
		buf_addf(&path, "&session=%s", esc);
		free(esc);
	}
	s->ws = async_ws_open(s->cl, path.data, &ws_cb, s);
	buf_release(&path);
	if (s->early.len)
		async_ws_send(s->ws, true, s->early.data, s->early.len);
	buf_release(&s->early);
}

char *shell_pick(const char *sessions_json, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(sessions_json, len), *it;
	cJSON *arr = cJSON_IsArray(j) ? j : NULL;
	char *id = NULL;
	int found = 0;
	cJSON_ArrayForEach(it, arr)
	{
		const char *sid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "id"));
		const char *tty = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "tty"));
		/* not a detached command (no terminal: `exec --detach`) */
		if (sid && strcmp(sid, "init") != 0 && (!tty || tty[0]) &&
		    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "running")) &&
		    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "attached"))) {
			found++;
			free(id);
			id = xstrdup(sid);
		}
	}
	cJSON_Delete(j);
	if (found != 1) {
		free(id);
		return NULL;
	}
	return id;
}

static void on_sessions(struct async_req *r, const struct err *e, void *arg)
{
	struct shell *s = arg;
	s->pick = NULL;
	if (e) {
		struct err copy = *e;
		end(s);
		s->cb->error(s, &copy, s->arg);
		return;
	}
	/* no answer to pick from (no such sandbox, ...): the upgrade says why */
	const struct buf *b = async_req_body(r);
	if (async_req_status(r) == 200)
		s->session = shell_pick(b->data, b->len);
	s->picked = s->session != NULL;
	connect_ws(s);
}

static const struct async_req_cb sessions_cb = { .done = on_sessions };

struct shell *shell_open(struct client *c, const struct shell_opts *o, const struct shell_cb *cb,
			 void *arg)
{
	struct shell *s = xcalloc(1, sizeof(*s));
	s->cl = c;
	s->cb = cb;
	s->arg = arg;
	s->name_esc = httpc_escape(o->name);
	s->session = o->session ? xstrdup(o->session) : NULL;
	s->cols = o->cols ? o->cols : 80;
	s->rows = o->rows ? o->rows : 24;
	buf_init(&s->early);
	task_init(&s->detach_later, on_detach_later, s);
	if (s->session || !o->pick) {
		connect_ws(s);
		return s;
	}
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/sessions", s->name_esc);
	struct client_req rq = CLIENT_REQ_INIT;
	rq.method = "GET";
	rq.path = path.data;
	s->pick = async_request(c, &rq, &sessions_cb, s);
	buf_release(&path);
	return s;
}

/* ---- the caller's side ---------------------------------------------------- */

void shell_input(struct shell *s, const void *p, size_t n)
{
	if (s->ended || s->detaching || !n)
		return;
	if (s->ws)
		async_ws_send(s->ws, true, p, n);
	else
		buf_add(&s->early, p, n);
}

void shell_resize(struct shell *s, unsigned cols, unsigned rows)
{
	if (s->ended || !cols || !rows || (cols == s->cols && rows == s->rows))
		return;
	s->cols = cols;
	s->rows = rows;
	if (s->ws && s->attached)
		send_resize(s);
}

size_t shell_queued(const struct shell *s)
{
	return s->ws ? async_ws_queued(s->ws) : s->early.len;
}

void shell_detach(struct shell *s)
{
	if (s->ended || s->detaching)
		return;
	s->detaching = true;
	if (s->ws) {
		async_ws_close(s->ws);
		return;
	}
	async_req_cancel(s->pick);
	s->pick = NULL;
	task_post(&s->detach_later);
}

const char *shell_session_id(const struct shell *s)
{
	return s->id;
}

static void shell_mem_free(void *p)
{
	struct shell *s = p;
	free(s->name_esc);
	free(s->session);
	buf_release(&s->early);
	free(s);
}

void shell_free(struct shell *s)
{
	if (!s)
		return;
	end(s);
	loop_defer_free(shell_mem_free, s);
}
