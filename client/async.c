/* async.c — requests and WebSockets on shared/loop (see async.h for the
 * lifetimes and the connection's states). One `struct aconn` per call
 * does the connect, the write queue and the reads; the request and the
 * WebSocket each embed one (first member) and parse what it reads. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "async.h"
#include "loop.h"
#include "tls.h"
#include "wsc.h"

#define READS_PER_TURN 4          /* then let the other fds have a turn */
#define REFUSED_BODY_MAX 4096

/* ---- one connection ----------------------------------------------------- */

struct aconn;

struct aconn_ops {
	void (*read)(struct aconn *c, const char *p, size_t n);
	void (*eof)(struct aconn *c);
	void (*fail)(struct aconn *c, const struct err *e);   /* e NULL: a close asked for */
	void (*drained)(struct aconn *c, bool was_blocked);
};

struct aconn {
	const struct aconn_ops *ops;
	struct client *cl;
	struct watch w;
	struct timer connect_timer;
	struct task later;           /* reports `failed` on the next turn */
	struct err failed;
	struct addrinfo *res, *ai;   /* the addresses, the next one to try */
	int connect_err;
	bool connected, ended, blocked;
	struct ctls *tls;            /* https: every byte through it */
	bool handshaking;            /* connected, TLS not yet */
	struct buf out;              /* queued bytes, sent when the socket is writable */
};

static void conn_try_next(struct aconn *c);

static void conn_end(struct aconn *c)
{
	c->ended = true;
	watch_close(&c->w);
	timer_cancel(&c->connect_timer);
	task_cancel(&c->later);
	if (c->res)
		freeaddrinfo(c->res);
	c->res = c->ai = NULL;
	ctls_free(c->tls);
	c->tls = NULL;
	client_scrub(&c->out);   /* it may hold the request head, and the key */
}

/* Send some of out: bytes taken, -EAGAIN, or another -errno. */
static ssize_t conn_send(struct aconn *c)
{
	if (c->tls) {
		struct err e = ERR_INIT;
		return ctls_send(c->tls, c->out.data, c->out.len, &e);
	}
	ssize_t n = send(c->w.fd, c->out.data, c->out.len, MSG_NOSIGNAL);
	return n < 0 ? (errno == EINTR ? 0 : -errno) : n;
}

static void conn_fail_later(struct aconn *c, const struct err *e)
{
	if (e)
		c->failed = *e;
	else
		err_clear(&c->failed);
	task_post(&c->later);
}

static void on_later(struct task *t)
{
	struct aconn *c = t->data;
	c->ops->fail(c, c->failed.code ? &c->failed : NULL);
}

static void conn_flush(struct aconn *c)
{
	bool had = c->out.len > 0;
	while (c->out.len) {
		ssize_t n = conn_send(c);
		if (n == -EAGAIN) {
			c->blocked = true;
			break;
		}
		if (n < 0) {   /* the peer is gone: reading will find the end */
			buf_reset(&c->out);
			break;
		}
		buf_consume(&c->out, (size_t)n);
	}
	bool tls_out = c->tls && ctls_wants_write(c->tls);
	watch_set(&c->w, EPOLLIN | (c->out.len || tls_out ? EPOLLOUT : 0));
	if (had && !c->out.len) {
		bool was = c->blocked;
		c->blocked = false;
		c->ops->drained(c, was);
	}
}

static void conn_read(struct aconn *c)
{
	char tmp[65536];
	for (int i = 0; i < READS_PER_TURN && !c->ended; i++) {
		struct err e = ERR_INIT;
		ssize_t n;
		if (c->tls) {
			n = ctls_recv(c->tls, tmp, sizeof(tmp), &e);
			if (n == -EAGAIN) {
				if (ctls_wants_write(c->tls))
					watch_set(&c->w, EPOLLIN | EPOLLOUT);
				return;
			}
			if (n < 0) {
				c->ops->fail(c, &e);
				return;
			}
		} else {
			n = read(c->w.fd, tmp, sizeof(tmp));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				return;
			if (n < 0) {
				err_set(&e, errno, "reading from the daemon: %s", strerror(errno));
				c->ops->fail(c, &e);
				return;
			}
		}
		if (n == 0) {
			c->ops->eof(c);
			return;
		}
		c->ops->read(c, tmp, (size_t)n);
	}
}

/* https: the handshake, on the loop; then what was queued goes out. */
static void conn_handshake(struct aconn *c)
{
	struct err e = ERR_INIT;
	int rc = ctls_handshake(c->tls, &e);
	if (rc == -EAGAIN) {
		watch_set(&c->w, ctls_wants_write(c->tls) ? EPOLLOUT : EPOLLIN);
		return;
	}
	if (rc < 0) {
		c->ops->fail(c, &e);
		return;
	}
	c->handshaking = false;
	conn_flush(c);
}

static void on_event(struct watch *w, uint32_t events)
{
	struct aconn *c = w->data;
	if (c->handshaking) {
		conn_handshake(c);
		return;
	}
	if (!c->connected) {
		int rc = client_connect_result(w->fd);
		timer_cancel(&c->connect_timer);
		if (rc < 0) {
			c->connect_err = -rc;
			watch_close(w);
			conn_try_next(c);
			return;
		}
		c->connected = true;
		freeaddrinfo(c->res);
		c->res = c->ai = NULL;
		if (c->cl->tls) {
			struct err e = ERR_INIT;
			fd_set_nonblock(w->fd, true);
			if (ctls_start(w->fd, c->cl->name, c->cl->ca, &c->tls, &e) < 0) {
				c->ops->fail(c, &e);
				return;
			}
			c->handshaking = true;
			conn_handshake(c);
			return;
		}
		conn_flush(c);
		return;
	}
	if (events & EPOLLOUT)
		conn_flush(c);
	/* under TLS a read may have waited for the socket to take bytes */
	if (!c->ended && ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ||
			  (c->tls && (events & EPOLLOUT))))
		conn_read(c);
}

static void on_connect_timeout(struct timer *t)
{
	struct aconn *c = t->data;
	c->connect_err = ETIMEDOUT;
	watch_close(&c->w);
	conn_try_next(c);
}

/* Connect to the next address; when none is left, fail (next turn). */
static void conn_try_next(struct aconn *c)
{
	while (c->ai) {
		const struct addrinfo *ai = c->ai;
		int fd = -1;
		c->ai = ai->ai_next;
		int rc = client_connect_start(ai, &fd);
		if (rc == 0 || rc == -EINPROGRESS)
			rc = watch_add(&c->w, fd, EPOLLOUT);   /* writable: connected or failed */
		if (rc == 0) {
			timer_arm(&c->connect_timer, (uint64_t)c->cl->connect_timeout_ms);
			return;
		}
		c->connect_err = -rc;
		if (fd >= 0)
			close(fd);
	}
	struct err e = ERR_INIT;
	client_connect_error(c->cl, c->connect_err, &e);
	conn_fail_later(c, &e);
}

/* Start connecting; c->out already holds what to send first. */
static void conn_start(struct aconn *c, struct client *cl, const struct aconn_ops *ops)
{
	c->ops = ops;
	c->cl = cl;
	c->connect_err = ECONNREFUSED;
	watch_init(&c->w, on_event, c);
	timer_init(&c->connect_timer, on_connect_timeout, c);
	task_init(&c->later, on_later, c);
	struct err e = ERR_INIT;
	if (client_resolve(cl, &c->res, &e) < 0) {
		conn_fail_later(c, &e);
		return;
	}
	c->ai = c->res;
	conn_try_next(c);
}

/* Queue bytes; they go out from the loop (never from inside the caller). */
static void conn_queue(struct aconn *c, const void *p, size_t n)
{
	buf_add(&c->out, p, n);
	if (c->connected && !c->handshaking)
		watch_set(&c->w, EPOLLIN | EPOLLOUT);
}

/* ---- requests ------------------------------------------------------------ */

struct async_req {
	struct aconn c;   /* first: the ops get it */
	struct httpc p;
	const struct async_req_cb *cb;
	void *arg;
	char *what;       /* "METHOD PATH", for messages */
	int status;
	struct buf body;
};

static void req_free(void *p)
{
	struct async_req *r = p;
	httpc_release(&r->p);
	buf_release(&r->body);
	free(r->what);
	free(r);
}

static void req_finish(struct async_req *r, struct err *e)
{
	if (r->c.ended)
		return;
	conn_end(&r->c);
	if (e && r->c.connected)
		err_prefix(e, "%s", r->what);
	r->cb->done(r, e, r->arg);
	loop_defer_free(req_free, r);
}

static bool req_head(void *arg, const struct httpc_head *h)
{
	struct async_req *r = arg;
	r->status = h->status;
	if (r->cb->head)
		r->cb->head(r, h, r->arg);
	return !r->c.ended;   /* cancelled from the callback */
}

static bool req_body(void *arg, const char *p, size_t n)
{
	struct async_req *r = arg;
	if (r->cb->body && r->status >= 200 && r->status < 300)
		r->cb->body(r, p, n, r->arg);
	else if (r->body.len < CLIENT_MAX_ERROR_BODY)
		buf_add(&r->body, p, n);
	return !r->c.ended;
}

static const struct httpc_sink req_sink = { .head = req_head, .body = req_body };

static void req_read(struct aconn *c, const char *p, size_t n)
{
	struct async_req *r = (struct async_req *)c;
	struct err e = ERR_INIT;
	size_t used;
	int ev = httpc_feed(&r->p, p, n, &req_sink, r, &used, &e);
	if (ev < 0)
		req_finish(r, &e);
	else if (ev == HTTPC_DONE)
		req_finish(r, NULL);
}

static void req_eof(struct aconn *c)
{
	struct async_req *r = (struct async_req *)c;
	struct err e = ERR_INIT;
	req_finish(r, httpc_eof(&r->p, &e) < 0 ? &e : NULL);
}

static void req_fail(struct aconn *c, const struct err *e)
{
	struct err copy = *e;
	req_finish((struct async_req *)c, &copy);
}

static void req_drained(struct aconn *c UNUSED, bool was_blocked UNUSED)
{
}

static const struct aconn_ops req_ops = {
	.read = req_read, .eof = req_eof, .fail = req_fail, .drained = req_drained,
};

struct async_req *async_request(struct client *c, const struct client_req *rq,
				const struct async_req_cb *cb, void *arg)
{
	struct async_req *r = xcalloc(1, sizeof(*r));
	httpc_init(&r->p, strcmp(rq->method, "HEAD") == 0);
	buf_init(&r->body);
	buf_init(&r->c.out);
	r->cb = cb;
	r->arg = arg;
	struct buf what = BUF_INIT, extra = BUF_INIT;
	buf_addf(&what, "%s %s", rq->method, rq->path);
	r->what = buf_detach(&what, NULL);
	if (rq->ctype)
		buf_addf(&extra, "Content-Type: %s\r\n", rq->ctype);
	if (rq->accept)
		buf_addf(&extra, "Accept: %s\r\n", rq->accept);
	buf_adds(&extra, "Connection: close\r\n");
	bool has_body = rq->body || strcmp(rq->method, "PUT") == 0 ||
			strcmp(rq->method, "POST") == 0 || strcmp(rq->method, "PATCH") == 0;
	client_head(c, &r->c.out, rq->method, rq->path, extra.data, has_body ? (long long)rq->len : -1);
	buf_release(&extra);
	if (rq->len)
		buf_add(&r->c.out, rq->body, rq->len);
	conn_start(&r->c, c, &req_ops);
	if (rq->body_fd >= 0 && !r->c.ended) {
		struct err e = ERR_INIT;
		err_set(&e, EINVAL, "an asynchronous request takes its body from memory only");
		conn_fail_later(&r->c, &e);
	}
	return r;
}

int async_req_status(const struct async_req *r)
{
	return r->status;
}

const struct buf *async_req_body(const struct async_req *r)
{
	return &r->body;
}

void async_req_cancel(struct async_req *r)
{
	if (!r || r->c.ended)
		return;
	conn_end(&r->c);
	loop_defer_free(req_free, r);
}

/* ---- WebSocket ----------------------------------------------------------- */

struct async_ws {
	struct aconn c;   /* first: the ops get it */
	struct httpc p;   /* the answer to the upgrade */
	char accept[WSC_ACCEPT_LEN];
	bool open, closing;
	struct wsc dec;
	struct buf in;        /* received, not yet a whole message */
	struct buf pending;   /* messages sent before the upgrade was done */
	struct buf refused;   /* the body of a refused upgrade */
	const struct async_ws_cb *cb;
	void *arg;
};

static void ws_free(void *p)
{
	struct async_ws *ws = p;
	httpc_release(&ws->p);
	wsc_release(&ws->dec);
	buf_release(&ws->in);
	buf_release(&ws->pending);
	buf_release(&ws->refused);
	free(ws);
}

static void ws_finish(struct async_ws *ws, const struct err *e)
{
	if (ws->c.ended)
		return;
	conn_end(&ws->c);
	ws->cb->closed(ws, e, ws->arg);
	loop_defer_free(ws_free, ws);
}

static void ws_finish_msg(struct async_ws *ws, int code, const char *msg)
{
	struct err e = ERR_INIT;
	err_set(&e, code, "%s", msg);
	ws_finish(ws, &e);
}

/* The upgrade was refused: the daemon's JSON error, or the status. */
static void ws_refused(struct async_ws *ws)
{
	int status = ws->p.head.status;
	struct err e = ERR_INIT;
	cJSON *j = cJSON_ParseWithLength(ws->refused.data, ws->refused.len);
	cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "error");
	int code = status == 404 ? ENOENT : status == 401 ? EACCES : EPROTO;
	if (cJSON_IsString(m))
		err_set(&e, code, "%s", m->valuestring);
	else
		err_set(&e, code, "the daemon refused the WebSocket (HTTP %d)", status);
	cJSON_Delete(j);
	ws_finish(ws, &e);
}

static void ws_take_messages(struct async_ws *ws)
{
	int op, r;
	while (!ws->c.ended && (r = wsc_take(&ws->dec, &ws->in, &op)) == 1) {
		const struct buf *m = &ws->dec.msg;
		if (op == WSC_TEXT || op == WSC_BINARY) {
			ws->cb->message(ws, op == WSC_BINARY, m->data, m->len, ws->arg);
		} else if (op == WSC_PING) {
			struct buf f = BUF_INIT;
			wsc_frame(&f, WSC_PONG, m->data, m->len);
			conn_queue(&ws->c, f.data, f.len);
			buf_release(&f);
		} else if (op == WSC_CLOSE) {
			/* answer the close as RFC 6455 asks; best effort, we are done */
			struct buf f = BUF_INIT;
			wsc_frame(&f, WSC_CLOSE, m->data, MIN(m->len, 2));
			(void)send(ws->c.w.fd, f.data, f.len, MSG_NOSIGNAL | MSG_DONTWAIT);
			buf_release(&f);
			ws_finish(ws, NULL);
		}
	}
	if (!ws->c.ended && r < 0)
		ws_finish_msg(ws, EPROTO, r == -EMSGSIZE ? "a message from the daemon is too large"
							 : "bad data from the daemon");
}

static void ws_opened(struct async_ws *ws, const char *rest, size_t n)
{
	if (strcmp(ws->p.head.ws_accept, ws->accept) != 0) {
		ws_finish_msg(ws, EPROTO, "bad Sec-WebSocket-Accept from the daemon");
		return;
	}
	ws->open = true;
	if (ws->pending.len)
		conn_queue(&ws->c, ws->pending.data, ws->pending.len);
	buf_release(&ws->pending);
	buf_add(&ws->in, rest, n);
	if (ws->cb->open)
		ws->cb->open(ws, ws->arg);
	ws_take_messages(ws);
}

static bool ws_head(void *arg UNUSED, const struct httpc_head *h)
{
	return h->status != 101;   /* upgraded: the rest is WebSocket */
}

static bool ws_body(void *arg, const char *p, size_t n)
{
	struct async_ws *ws = arg;
	if (ws->refused.len < REFUSED_BODY_MAX)
		buf_add(&ws->refused, p, n);
	return true;
}

static const struct httpc_sink ws_sink = { .head = ws_head, .body = ws_body };

static void ws_read(struct aconn *c, const char *p, size_t n)
{
	struct async_ws *ws = (struct async_ws *)c;
	if (ws->open) {
		buf_add(&ws->in, p, n);
		ws_take_messages(ws);
		return;
	}
	struct err e = ERR_INIT;
	size_t used;
	int ev = httpc_feed(&ws->p, p, n, &ws_sink, ws, &used, &e);
	if (ev < 0)
		ws_finish(ws, &e);
	else if (ev == HTTPC_STOPPED)
		ws_opened(ws, p + used, n - used);
	else if (ev == HTTPC_DONE)
		ws_refused(ws);
}

static void ws_eof(struct aconn *c)
{
	struct async_ws *ws = (struct async_ws *)c;
	struct err e = ERR_INIT;
	if (ws->open)
		ws_finish_msg(ws, ECONNRESET, "the connection to the daemon was lost");
	else if (httpc_eof(&ws->p, &e) < 0)
		ws_finish(ws, &e);
	else
		ws_refused(ws);
}

static void ws_fail(struct aconn *c, const struct err *e)
{
	struct async_ws *ws = (struct async_ws *)c;
	if (e && ws->open)
		ws_finish_msg(ws, e->code, "the connection to the daemon was lost");
	else
		ws_finish(ws, e);
}

static void ws_drained(struct aconn *c, bool was_blocked UNUSED)
{
	struct async_ws *ws = (struct async_ws *)c;
	if (ws->closing)
		ws_finish(ws, NULL);
	else if (ws->cb->drained)   /* (not only after EAGAIN: bytes queued before the
				     * upgrade went out at once, and a sender that paused
				     * on the queue's size waits for this) */
		ws->cb->drained(ws, ws->arg);
}

static const struct aconn_ops ws_ops = {
	.read = ws_read, .eof = ws_eof, .fail = ws_fail, .drained = ws_drained,
};

struct async_ws *async_ws_open(struct client *c, const char *path, const struct async_ws_cb *cb,
			       void *arg)
{
	struct async_ws *ws = xcalloc(1, sizeof(*ws));
	httpc_init(&ws->p, false);
	wsc_init(&ws->dec);
	buf_init(&ws->in);
	buf_init(&ws->pending);
	buf_init(&ws->refused);
	buf_init(&ws->c.out);
	ws->cb = cb;
	ws->arg = arg;
	char key[WSC_KEY_LEN];
	wsc_key(key);
	wsc_accept(key, ws->accept);
	struct buf extra = BUF_INIT;
	buf_addf(&extra, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\n", key);
	client_head(c, &ws->c.out, "GET", path, extra.data, -1);
	buf_release(&extra);
	conn_start(&ws->c, c, &ws_ops);
	return ws;
}

void async_ws_send(struct async_ws *ws, bool binary, const void *p, size_t n)
{
	if (ws->c.ended || ws->closing)
		return;
	if (!ws->open) {
		wsc_frame(&ws->pending, binary ? WSC_BINARY : WSC_TEXT, p, n);
		return;
	}
	struct buf f = BUF_INIT;
	wsc_frame(&f, binary ? WSC_BINARY : WSC_TEXT, p, n);
	conn_queue(&ws->c, f.data, f.len);
	buf_release(&f);
}

size_t async_ws_queued(const struct async_ws *ws)
{
	return ws->c.out.len + ws->pending.len;
}

void async_ws_close(struct async_ws *ws)
{
	if (ws->c.ended || ws->closing)
		return;
	ws->closing = true;
	if (!ws->open) {   /* nothing to say goodbye to yet */
		watch_close(&ws->c.w);
		timer_cancel(&ws->c.connect_timer);
		conn_fail_later(&ws->c, NULL);
		return;
	}
	struct buf f = BUF_INIT;
	wsc_frame(&f, WSC_CLOSE, "\x03\xe8", 2);   /* 1000: normal closure */
	conn_queue(&ws->c, f.data, f.len);
	buf_release(&f);
}

void async_ws_abort(struct async_ws *ws)
{
	if (!ws || ws->c.ended)
		return;
	conn_end(&ws->c);
	loop_defer_free(ws_free, ws);
}
