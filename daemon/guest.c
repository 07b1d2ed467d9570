/* guest.c — operations on a sandbox's guest agent: exec, PTY sessions and
 * files over one agent stream each (see guest.h for the states and the
 * ownership rule).
 *
 * Sits between its callers (the API handlers) and sandbox.c (waking) +
 * agent-client.c (streams). It translates the protocol's messages into
 * the plain structs of guest.h, so no caller includes proto.h. It touches
 * nothing but the stream it opened.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-client.h"
#include "events.h"
#include "exectee.h"
#include "guest.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "sandbox.h"

enum kind { K_EXEC, K_SHELL, K_SESSIONS, K_READ, K_WRITE, K_STAT, K_LS, K_PORTS, K_FORWARD };

struct guest_op {
	enum kind kind;
	struct sbx *sb;               /* while waking or streaming */
	const struct guest_cb *cb;    /* NULL once the owner let go */
	void *arg;
	struct ac_stream *s;          /* the open stream, or NULL */
	bool waking;                  /* a sbx_wake waiter is ours */
	bool in_ctor;                 /* inside guest_*(): `done` goes later */
	bool over;                    /* `done` was delivered or is posted */
	struct sbx *counted;          /* its open stream counts as activity here */
	uint64_t began;               /* monotonic ms: the stream opened */
	char *sid;                    /* shell: the session's id */
	struct task later;            /* `done` out of the constructor */

	/* the request */
	char **argv, **env;
	char *cwd;                    /* exec */
	uint32_t flags, timeout_ms;
	char *session;                /* shell: attach to it */
	uint16_t rows, cols;
	char *path;                   /* files (flags: PROTO_FILE_ROOT) */
	struct proto_file_read rd;
	uint32_t mode;
	uint64_t size;
	uint16_t port;                /* forward */

	/* input before the stream is open, and what the caller wants of it */
	struct buf pending;
	bool pending_eof, hold;
	uint64_t written;

	/* how it ended (filled from the END frame, reported when the stream
	 * has closed) */
	struct guest_end end;
	struct err err;
	bool started;
	struct guest_meta meta;
	struct proto_ls_result ls;
	struct guest_entry *entries;
	struct guest_listing listing;
	struct proto_session_list sl;
	struct guest_session *sessions;
	struct guest_sessions session_list;
	struct guest_port *ports;
	struct guest_ports port_list;
	bool have_ls, have_sl;

	/* exec: its number in the sandbox's tee (exectee.h), 0 before the start */
	uint64_t tee;
	char *tee_sbx;
	bool tee_ended;
};

/* An exec's end, told to the watchers once. */
static void tee_end(struct guest_op *op, bool exited, int code, bool timed_out, const char *error)
{
	if (!op->tee || op->tee_ended)
		return;
	op->tee_ended = true;
	exectee_end(op->tee_sbx, op->tee, exited, code, timed_out, error);
}

static void op_free(void *p)
{
	struct guest_op *op = p;
	free(op->sid);
	strv_free(op->argv);
	strv_free(op->env);
	free(op->cwd);
	free(op->session);
	free(op->path);
	buf_release(&op->pending);
	if (op->have_ls)
		proto_msg_release(PROTO_LS_RESULT, &op->ls);
	if (op->have_sl)
		proto_msg_release(PROTO_SESSION_LIST_RESULT, &op->sl);
	free(op->entries);
	free(op->sessions);
	free(op->ports);
	free(op->tee_sbx);
	free(op);
}

static void emit_end(struct guest_op *op);

/* The stream is over (or orphaned): it no longer keeps the sandbox hot. */
static void uncount(struct guest_op *op)
{
	if (!op->counted)
		return;
	op->counted->guest_ops--;
	sbx_touch(op->counted);
	op->counted = NULL;
}

void guest_op_free(struct guest_op *op)
{
	if (!op)
		return;
	if (!op->over && op->started) {
		/* its owner went away first: a shell detaches, an exec is killed */
		op->over = true;
		if (op->kind == K_EXEC && op->end.rc == 0) {
			op->end.rc = -ECANCELED;
			err_set(&op->err, ECANCELED, "the client went away: the command was killed");
		}
		emit_end(op);
	}
	uncount(op);
	op->cb = NULL;
	op->arg = NULL;
	tee_end(op, false, 0, false, "its client went away: the command's process group is killed");
	if (op->waking)
		sbx_cancel_wait(op->sb, op);
	op->waking = false;
	if (op->s)
		ac_stream_orphan(op->s);   /* the agent cancels or detaches */
	op->s = NULL;
	task_cancel(&op->later);
	/* we may be inside one of its callbacks */
	loop_defer_free(op_free, op);
}

/* ---- ending ------------------------------------------------------------------- */

static void deliver(struct guest_op *op)
{
	op->sb = NULL;
	tee_end(op, op->end.exited, op->end.exit_code, op->end.timed_out,
		op->end.rc < 0 ? err_str(op->end.err) : "the command ended without an exit status");
	if (op->cb && op->cb->done)
		op->cb->done(op, &op->end, op->arg);
}

static void deliver_later(struct task *t)
{
	deliver(t->data);
}

/* Report the end once: now, or on the next loop turn when we are still
 * inside the guest_*() call that began the operation. */
/* exec.finished, session.exited / detached (the starts: started()). */
static void emit_end(struct guest_op *op)
{
	struct sbx *sb = op->sb;
	if (!sb || !op->started || (op->kind != K_EXEC && op->kind != K_SHELL))
		return;
	struct event *ev;
	if (op->kind == K_EXEC) {
		ev = event_new(sb, "exec.finished");
		event_strv(ev, "argv", op->argv);
		if (op->end.exited)
			event_int(ev, "exit_code", op->end.exit_code);
		event_int(ev, "duration_ms", (int64_t)(now_ms() - op->began));
	} else {
		ev = event_new(sb, op->end.exited ? "session.exited" : "session.detached");
		event_str(ev, "session", op->sid);
		if (op->end.exited)
			event_int(ev, "exit_code", op->end.exit_code);
	}
	if (op->end.rc < 0)
		event_str(ev, "error", err_str(&op->err));
	events_emit(sb->srv, ev);
}

static void finish(struct guest_op *op)
{
	if (op->over)
		return;
	op->over = true;
	emit_end(op);
	op->end.started = op->started;
	if (op->end.rc < 0)
		op->end.err = &op->err;
	if (op->in_ctor)
		task_post(&op->later);
	else
		deliver(op);
}

static void fail(struct guest_op *op, int rc, const struct err *e, bool lost)
{
	if (op->end.rc == 0) {
		op->end.rc = rc < 0 ? rc : -EIO;
		op->err = e ? *e : (struct err)ERR_INIT;
		if (!e)
			err_set(&op->err, -op->end.rc, "%s", strerror(-op->end.rc));
		op->end.lost = lost;
	}
	finish(op);
}

/* ---- the agent stream ---------------------------------------------------------- */

static enum guest_ftype ftype(uint8_t t)
{
	switch (t) {
	case PROTO_FT_FILE: return GUEST_FILE;
	case PROTO_FT_DIR: return GUEST_DIR;
	case PROTO_FT_LINK: return GUEST_LINK;
	default: return GUEST_OTHER;
	}
}

static void take_meta(struct guest_op *op, const struct proto_frame *f)
{
	struct proto_file_meta m;
	if (proto_decode(f, &m, NULL) < 0)
		return;
	op->meta = (struct guest_meta){
		.type = ftype(m.type), .mode = m.mode, .size = m.size, .mtime = m.mtime,
	};
	proto_msg_release(PROTO_FILE_META, &m);
}

static void take_listing(struct guest_op *op, const struct proto_frame *f)
{
	if (proto_decode(f, &op->ls, NULL) < 0)
		return;
	op->have_ls = true;
	op->entries = xcalloc(op->ls.count + 1, sizeof(*op->entries));
	for (size_t i = 0; i < op->ls.count; i++) {
		const struct proto_dirent *d = &op->ls.entries[i];
		op->entries[i] = (struct guest_entry){
			.name = d->name, .type = ftype(d->type), .mode = d->mode, .size = d->size,
			.mtime = d->mtime,
		};
	}
	op->listing = (struct guest_listing){
		.entries = op->entries, .count = op->ls.count, .total = op->ls.total,
		.truncated = op->ls.truncated != 0,
	};
	op->end.listing = &op->listing;
}

static void take_sessions(struct guest_op *op, const struct proto_frame *f)
{
	if (proto_decode(f, &op->sl, NULL) < 0)
		return;
	op->have_sl = true;
	op->sessions = xcalloc(op->sl.count + 1, sizeof(*op->sessions));
	for (size_t i = 0; i < op->sl.count; i++) {
		const struct proto_session *ps = &op->sl.sessions[i];
		op->sessions[i] = (struct guest_session){
			.id = ps->id, .argv = ps->argv, .tty = ps->tty, .running = ps->running != 0,
			.attached = ps->attached != 0, .exit_code = ps->exit_code,
			.created = ps->created,
		};
	}
	op->session_list = (struct guest_sessions){ .list = op->sessions, .count = op->sl.count };
	op->end.sessions = &op->session_list;
}

static void take_ports(struct guest_op *op, const struct proto_frame *f)
{
	struct proto_ports_result pr;
	if (proto_decode(f, &pr, NULL) < 0)
		return;
	op->ports = xcalloc(pr.count + 1, sizeof(*op->ports));
	for (size_t i = 0; i < pr.count; i++)
		op->ports[i] = (struct guest_port){
			.port = pr.ports[i].port, .v4 = pr.ports[i].flags & PROTO_PORT_V4,
			.v6 = pr.ports[i].flags & PROTO_PORT_V6,
			.loopback = pr.ports[i].flags & PROTO_PORT_LOOPBACK,
		};
	op->port_list = (struct guest_ports){ .list = op->ports, .count = pr.count };
	op->end.ports = &op->port_list;
	proto_msg_release(PROTO_PORTS_RESULT, &pr);
}

static void started(struct guest_op *op, const struct guest_start *st)
{
	op->started = true;
	if (op->sb && op->kind == K_EXEC) {
		struct event *ev = event_new(op->sb, "exec.started");
		event_strv(ev, "argv", op->argv);
		event_int(ev, "pid", st->pid);
		events_emit(op->sb->srv, ev);
		if (!op->tee) {
			op->tee_sbx = xstrdup(op->sb->row.id);
			op->tee = exectee_start(op->tee_sbx, op->argv);
		}
	} else if (op->sb && op->kind == K_SHELL) {
		free(op->sid);
		op->sid = xstrdup(st->session);
		struct event *ev = event_new(op->sb, st->session_new ? "session.opened" :
						      "session.attached");
		event_str(ev, "session", st->session);
		events_emit(op->sb->srv, ev);
	}
	if (op->cb && op->cb->started)
		op->cb->started(op, st, op->arg);
}

static void on_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct guest_op *op = arg;
	bool end = f->flags & PROTO_F_END;
	switch (f->type) {
	case PROTO_EXEC_STARTED: {
		struct proto_exec_started st;
		if (proto_decode(f, &st, NULL) < 0)
			return;
		struct guest_start gs = { .pid = st.pid, .output_path = st.output_path };
		started(op, &gs);
		proto_msg_release(PROTO_EXEC_STARTED, &st);
		op->end.detached = end;
		return;
	}
	case PROTO_EXIT: {
		struct proto_exit ex;
		if (proto_decode(f, &ex, NULL) < 0)
			return;
		op->end.exited = true;
		op->end.exit_code = ex.exit_code;
		op->end.signal = ex.signal;
		op->end.timed_out = (ex.flags & PROTO_EXIT_TIMEOUT) != 0;
		return;
	}
	case PROTO_SESSION: {
		struct proto_session ps;
		if (proto_decode(f, &ps, NULL) < 0)
			return;
		struct guest_start gs = { .session = ps.id, .session_new = op->session == NULL };
		started(op, &gs);
		proto_msg_release(PROTO_SESSION, &ps);
		return;
	}
	case PROTO_FILE_META:
		take_meta(op, f);
		if (end) {
			op->end.meta = &op->meta;
		} else {
			struct guest_start gs = { .meta = &op->meta };
			started(op, &gs);
		}
		return;
	case PROTO_LS_RESULT:
		take_listing(op, f);
		return;
	case PROTO_SESSION_LIST_RESULT:
		take_sessions(op, f);
		return;
	case PROTO_PORTS_RESULT:
		take_ports(op, f);
		return;
	case PROTO_EOF:
		/* a forward's guest side finished sending (the rule lets it
		 * come once) */
		if (op->started && op->cb && op->cb->eof)
			op->cb->eof(op, op->arg);
		return;
	case PROTO_OK: {
		struct proto_ok ok;
		if (!end && op->kind == K_FORWARD) {
			started(op, &(struct guest_start){ 0 });   /* connected */
			return;
		}
		if (!end || proto_decode(f, &ok, NULL) < 0)
			return;
		op->end.truncated = (ok.flags & PROTO_OK_TRUNCATED) != 0;
		op->end.bytes = op->kind == K_WRITE ? op->written : ok.bytes;
		op->end.detached = op->kind == K_SHELL;
		return;
	}
	case PROTO_ERROR: {
		struct proto_error pe;
		struct err e = ERR_INIT;
		if (proto_decode(f, &pe, NULL) == 0) {
			err_set(&e, pe.code > 0 ? pe.code : EIO, "%s", pe.message);
			proto_msg_release(PROTO_ERROR, &pe);
		} else {
			err_set(&e, EPROTO, "malformed error from the agent");
		}
		op->end.rc = -e.code;
		op->end.agent_error = true;
		op->err = e;
		return;
	}
	default:
		return;
	}
}

static void on_data(struct ac_stream *s UNUSED, uint8_t ch, const uint8_t *p, size_t n, void *arg)
{
	struct guest_op *op = arg;
	if (op->sb)
		sbx_touch(op->sb);
	if (!op->started)
		return;   /* bytes before the start: the agent out of turn, dropped */
	if (op->tee && !op->tee_ended)
		exectee_data(op->tee_sbx, op->tee, ch == PROTO_CH_ERR ? 2 : 1, p, n);
	if (op->cb && op->cb->data)
		op->cb->data(op, ch == PROTO_CH_ERR ? GUEST_ERR : GUEST_OUT, p, n, op->arg);
}

static void on_window(struct ac_stream *s UNUSED, void *arg)
{
	struct guest_op *op = arg;
	if (op->cb && op->cb->room)
		op->cb->room(op, op->arg);
}

static void on_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct guest_op *op = arg;
	op->s = NULL;
	uncount(op);
	if (e) {
		fail(op, -e->code, e, true);   /* the connection went away */
		return;
	}
	finish(op);
}

static const struct ac_stream_cb stream_cb = {
	.frame = on_frame, .data = on_data, .window = on_window, .closed = on_closed,
};

/* ---- opening ------------------------------------------------------------------------- */

static struct ac_stream *open_stream(struct guest_op *op, struct ac *ac, struct err *e)
{
	switch (op->kind) {
	case K_EXEC: {
		struct proto_exec req = {
			.argv = op->argv, .env = op->env ? op->env : (char *[]){ NULL },
			.cwd = op->cwd ? op->cwd : (char *)"", .flags = op->flags,
			.timeout_ms = op->timeout_ms, .output_path = (char *)"",
		};
		return ac_open(ac, PROTO_EXEC, &req, &stream_cb, op, e);
	}
	case K_SHELL: {
		if (op->session) {
			struct proto_session_attach at = { .id = op->session, .rows = op->rows,
							   .cols = op->cols };
			return ac_open(ac, PROTO_SESSION_ATTACH, &at, &stream_cb, op, e);
		}
		struct proto_session_open so = {
			.id = (char *)"", .argv = (char *[]){ NULL }, .env = (char *[]){ NULL },
			.cwd = (char *)"", .rows = op->rows, .cols = op->cols,
		};
		return ac_open(ac, PROTO_SESSION_OPEN, &so, &stream_cb, op, e);
	}
	case K_SESSIONS:
		return ac_open(ac, PROTO_SESSION_LIST, NULL, &stream_cb, op, e);
	case K_READ:
		op->rd.path = op->path;
		op->rd.flags = op->flags;
		return ac_open(ac, PROTO_FILE_READ, &op->rd, &stream_cb, op, e);
	case K_WRITE: {
		struct proto_file_write w = { .path = op->path, .mode = op->mode, .size = op->size,
					      .flags = op->flags };
		return ac_open(ac, PROTO_FILE_WRITE, &w, &stream_cb, op, e);
	}
	case K_STAT: {
		struct proto_path st = { .path = op->path, .flags = op->flags };
		return ac_open(ac, PROTO_FILE_STAT, &st, &stream_cb, op, e);
	}
	case K_LS: {
		struct proto_file_ls ls = { .path = op->path, .flags = op->flags };
		return ac_open(ac, PROTO_FILE_LS, &ls, &stream_cb, op, e);
	}
	case K_PORTS:
		return ac_open(ac, PROTO_PORTS, NULL, &stream_cb, op, e);
	case K_FORWARD: {
		struct proto_forward fw = { .port = op->port };
		return ac_open(ac, PROTO_FORWARD, &fw, &stream_cb, op, e);
	}
	}
	return NULL;
}

static void woke(struct sbx *sb, int rc, const struct err *e, void *arg)
{
	struct guest_op *op = arg;
	op->waking = false;
	if (!op->cb)
		return;   /* (cannot happen: guest_op_free cancels the wait) */
	if (rc < 0) {
		fail(op, rc, e, false);
		return;
	}
	struct ac *ac = sbx_agent(sb);
	struct err oe = ERR_INIT;
	if (!ac) {
		err_set(&oe, ENOTCONN, "sandbox '%s' is not running", sb->row.name);
		fail(op, -ENOTCONN, &oe, false);
		return;
	}
	op->s = open_stream(op, ac, &oe);
	if (!op->s) {
		fail(op, -(oe.code ? oe.code : EIO), &oe, false);
		return;
	}
	sbx_touch(sb);
	op->counted = sb;
	sb->guest_ops++;
	op->began = now_ms();
	if (op->hold)
		ac_hold(op->s, true);
	if (op->pending.len)
		ac_write(op->s, op->pending.data, op->pending.len);
	buf_release(&op->pending);
	if (op->pending_eof)
		ac_write_eof(op->s);
}

static struct guest_op *op_new(enum kind kind, struct sbx *sb, const struct guest_cb *cb,
			       void *arg)
{
	struct guest_op *op = xcalloc(1, sizeof(*op));
	op->kind = kind;
	op->sb = sb;
	op->cb = cb;
	op->arg = arg;
	buf_init(&op->pending);
	task_init(&op->later, deliver_later, op);
	return op;
}

static struct guest_op *begin(struct guest_op *op)
{
	op->in_ctor = true;
	op->waking = true;
	sbx_wake(op->sb, woke, op);
	op->in_ctor = false;
	return op;
}

struct guest_op *guest_exec(struct sbx *sb, const struct guest_exec_req *req,
			    const struct guest_cb *cb, void *arg)
{
	struct guest_op *op = op_new(K_EXEC, sb, cb, arg);
	op->argv = strv_dup((char **)req->argv);
	op->env = req->env ? strv_dup((char **)req->env) : NULL;
	op->cwd = req->cwd ? xstrdup(req->cwd) : NULL;
	op->flags = (req->as_root ? PROTO_EXEC_ROOT : 0) | (req->stdin_open ? PROTO_EXEC_STDIN : 0) |
		    (req->detach ? PROTO_EXEC_DETACH : 0);
	op->timeout_ms = req->timeout_ms;
	return begin(op);
}

struct guest_op *guest_shell(struct sbx *sb, const struct guest_shell_req *req,
			     const struct guest_cb *cb, void *arg)
{
	struct guest_op *op = op_new(K_SHELL, sb, cb, arg);
	op->session = req->session ? xstrdup(req->session) : NULL;
	op->rows = req->rows;
	op->cols = req->cols;
	return begin(op);
}

struct guest_op *guest_sessions(struct sbx *sb, const struct guest_cb *cb, void *arg)
{
	return begin(op_new(K_SESSIONS, sb, cb, arg));
}

static struct guest_op *file_op(enum kind kind, struct sbx *sb, const struct guest_file_req *req,
				 const struct guest_cb *cb, void *arg)
{
	struct guest_op *op = op_new(kind, sb, cb, arg);
	op->path = xstrdup(req->path);
	op->flags = req->as_root ? PROTO_FILE_ROOT : 0;
	return op;
}

struct guest_op *guest_file_read(struct sbx *sb, const struct guest_file_req *req,
				 const struct guest_cb *cb, void *arg)
{
	struct guest_op *op = file_op(K_READ, sb, req, cb, arg);
	op->rd.offset = req->offset;
	op->rd.limit = req->limit;
	op->rd.max_bytes = req->max_bytes;
	return begin(op);
}

struct guest_op *guest_file_write(struct sbx *sb, const struct guest_file_req *req,
				  const struct guest_cb *cb, void *arg)
{
	struct guest_op *op = file_op(K_WRITE, sb, req, cb, arg);
	op->mode = req->mode;
	op->size = req->size;
	return begin(op);
}

struct guest_op *guest_file_stat(struct sbx *sb, const struct guest_file_req *req,
				 const struct guest_cb *cb, void *arg)
{
	return begin(file_op(K_STAT, sb, req, cb, arg));
}

struct guest_op *guest_file_ls(struct sbx *sb, const struct guest_file_req *req,
			       const struct guest_cb *cb, void *arg)
{
	return begin(file_op(K_LS, sb, req, cb, arg));
}

struct guest_op *guest_ports(struct sbx *sb, const struct guest_cb *cb, void *arg)
{
	return begin(op_new(K_PORTS, sb, cb, arg));
}

struct guest_op *guest_forward(struct sbx *sb, uint16_t port, const struct guest_cb *cb,
			       void *arg)
{
	struct guest_op *op = op_new(K_FORWARD, sb, cb, arg);
	op->port = port;
	return begin(op);
}

/* ---- while it runs -------------------------------------------------------------------- */

void guest_write(struct guest_op *op, const void *p, size_t n)
{
	op->written += n;
	if (op->sb && op->s)
		sbx_touch(op->sb);   /* bytes to the guest are activity, as bytes from it */
	if (op->s)
		ac_write(op->s, p, n);
	else if (!op->over)
		buf_add(&op->pending, p, n);
}

void guest_write_eof(struct guest_op *op)
{
	if (op->s)
		ac_write_eof(op->s);
	else
		op->pending_eof = true;
}

size_t guest_write_queued(const struct guest_op *op)
{
	return op->s ? ac_write_queued(op->s) : op->pending.len;
}

void guest_resize(struct guest_op *op, uint16_t rows, uint16_t cols)
{
	op->rows = rows;
	op->cols = cols;
	if (op->s && op->kind == K_SHELL) {
		struct proto_resize rz = { .rows = rows, .cols = cols };
		ac_send_msg(op->s, PROTO_RESIZE, &rz);
	}
}

void guest_hold(struct guest_op *op, bool hold)
{
	op->hold = hold;
	if (op->s)
		ac_hold(op->s, hold);
}
