/* http.c — libwebsockets glue: routing, authentication, rate limits,
 * request bodies, whole and streamed responses, WebSocket messages (see
 * http.h).
 *
 * Sits between lws (one protocol handles plain HTTP and WebSocket
 * upgrades) and the route table (routes.c) with its handlers. The
 * listening sockets are ours (listen.c: bound exactly as configured,
 * capped per client address); each accepted connection is adopted into
 * lws. The shared event loop (engine, agent channels, timers, the
 * listening sockets) is one more fd in lws' poll: when its epoll fd is
 * readable, lws calls us and we run one turn of it.
 *
 * Strictness: a malformed or repeated Content-Length, a chunked body or
 * an unknown method is answered (400, 411, 405) and the connection
 * closed; a WebSocket is authenticated (and rate-limited) before the
 * upgrade, so a refused one gets a plain HTTP answer; a client sending a
 * second request before the first is answered is told so (400) and
 * closed, never silently.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <libwebsockets.h>
#include <sodium.h>

#include "http.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "proxy.h"
#include "server.h"

/* Per protocol binding (lws' per-session data): the current request. */
struct http_conn {
	struct lws *wsi;
	struct http_req *req;
	bool rx_held;              /* not read while an answer is due */
};

/* Per accepted connection, from the accept to lws' WSI_DESTROY (the wsi's
 * opaque user data): its client address's count, and a WebSocket request
 * between its authentication (before the upgrade) and the upgrade. */
struct link {
	struct listen_peer *peer;
	struct http_req *upgrading;
	const struct route *route;
	unsigned body_ends;        /* BODY_COMPLETIONs of the current request */
	bool answered;             /* a request of it was answered */
};

struct ws_msg {
	struct ws_msg *next;
	bool binary;
	size_t len;
	uint8_t data[];
};

#define WRITE_CHUNK (64u << 10)
#define WS_MAX_MESSAGE (1u << 20)

static struct {
	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct listener *listener;
	struct server *srv;
	struct lws *loop_wsi;    /* the shared loop's epoll fd, adopted */
	unsigned links;          /* open connections */
	bool stop;
} H;

static uint8_t wbuf[LWS_PRE + WRITE_CHUNK];

/* ---- request objects ----------------------------------------------------- */

static void req_free(void *p)
{
	struct http_req *r = p;
	if (r->ctx_free)
		r->ctx_free(r->ctx);
	free(r->path);
	for (int i = 0; i < HTTP_MAX_PARAMS; i++)
		free(r->params[i]);
	buf_release(&r->body);
	buf_release(&r->headers);
	buf_release(&r->out);
	buf_release(&r->wsrx);
	while (r->wsq) {
		struct ws_msg *m = r->wsq;
		r->wsq = m->next;
		free(m);
	}
	user_release(&r->user);
	free(r);
}

/* Free once finished and detached from its connection. */
static void req_maybe_free(struct http_req *r)
{
	if (r->finished && !r->conn)
		loop_defer_free(req_free, r);
}

/* The connection is done with r (its answer is written, or the client
 * left): a request not finished yet is finished now, unanswered. */
static void req_detach(struct http_req *r)
{
	if (!r->conn)
		return;
	r->conn->req = NULL;
	r->conn = NULL;
	if (!r->finished)
		r->gone = r->finished = true;
	req_maybe_free(r);
}


/* Reading a connection while its answer is due. lws 4.1 holds a
 * connection whose request has no body in DOING_TRANSACTION until the
 * answer is written and reads nothing meanwhile, yet leaves POLLIN in its
 * poll: a client's FIN, or its next request sent early, woke the poll at
 * once, every time, and the daemon spun at 100% CPU until the answer (a
 * request waiting for a guest or a start could take minutes). So such a
 * connection is not read while it waits for its answer (a client that
 * closes it is still seen: POLLHUP). lws 4.1 does not serve POLLOUT on a
 * connection held so either (rops_handle_POLLIN_h1 returns first), so
 * the hold is lifted whenever something is to be written (want_write) and
 * put back while a streamed answer waits for more (await_more); after
 * the answer lws reads the next request. Requests with a body (and POSTs
 * without one, whose completion lws delivers as a read) are not held. */
#define RX_ANSWER_DUE (1 << 1)   /* our reason bit of lws' rx flow control */

static void hold_rx(struct http_conn *c, bool hold)
{
	if (c->rx_held == hold)
		return;
	c->rx_held = hold;
	lws_rx_flow_control(c->wsi, (hold ? LWS_RXFLOW_REASON_APPLIES_DISABLE
					  : LWS_RXFLOW_REASON_APPLIES_ENABLE) | RX_ANSWER_DUE);
}

static void want_write(struct http_req *r)
{
	if (!r->conn)
		return;
	hold_rx(r->conn, false);
	lws_callback_on_writable(r->conn->wsi);
}

/* A bodiless request's answer waits for more to write: hold it again. */
static void await_more(struct http_conn *c, struct http_req *r)
{
	if (r->content_length == 0 && r->method != HTTP_POST && !r->out.len && !r->final)
		hold_rx(c, true);
}

bool http_gone(const struct http_req *r)
{
	return r->conn == NULL;
}

/* ---- responses ------------------------------------------------------------ */

void http_header(struct http_req *r, const char *name, const char *value)
{
	buf_adds(&r->headers, name);
	buf_addch(&r->headers, '\0');
	buf_adds(&r->headers, value);
	buf_addch(&r->headers, '\0');
}

static void respond(struct http_req *r, int status, const char *ctype, int64_t clen)
{
	if (r->started) {
		log_error("http: second response to %s", r->path);
		return;
	}
	r->started = true;
	r->status = status;
	r->ctype = ctype;
	r->clen = clen;
	want_write(r);
}

static void finish(struct http_req *r)
{
	r->final = true;
	r->finished = true;
	if (r->conn)
		want_write(r);
	else
		req_maybe_free(r);
}

void http_reply_json(struct http_req *r, int status, cJSON *obj)
{
	if (r->finished) {
		cJSON_Delete(obj);
		return;
	}
	if (r->ws_open) {
		/* on a WebSocket an answer is a last text frame (errors carry
		 * "type": "error"), then the close */
		if (cJSON_GetObjectItemCaseSensitive(obj, "error"))
			cJSON_AddStringToObject(obj, "type", "error");
		cJSON_AddNumberToObject(obj, "status", status);
		http_ws_send_json(r, obj);
		http_ws_close(r);
		return;
	}
	char *s = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (!s)
		abort();
	buf_adds(&r->out, s);
	buf_addch(&r->out, '\n');
	free(s);
	respond(r, status, "application/json", (int64_t)r->out.len);
	finish(r);
}

void http_reply_text(struct http_req *r, int status, const char *ctype, struct buf *body)
{
	if (r->finished) {
		buf_release(body);
		return;
	}
	buf_release(&r->out);
	r->out = *body;
	buf_init(body);
	respond(r, status, ctype, (int64_t)r->out.len);
	finish(r);
}

static bool has_header(const struct http_req *r, const char *name)
{
	for (size_t off = 0; off < r->headers.len;) {
		const char *n = r->headers.data + off;
		if (strcasecmp(n, name) == 0)
			return true;
		off += strlen(n) + 1;
		off += strlen(r->headers.data + off) + 1;
	}
	return false;
}

void http_reply_error(struct http_req *r, int status, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	/* 503 is "busy now" (a full memory budget, too many wakes at once):
	 * say when to come back */
	if (status == 503 && !has_header(r, "Retry-After"))
		http_header(r, "Retry-After", "1");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", msg);
	http_reply_json(r, status, o);
}

int http_status_for(int rc)
{
	switch (-rc) {
	case 0: return 200;
	case EINVAL: case ERANGE: case ENOEXEC: case EISDIR: case ENOTDIR: case ENAMETOOLONG:
		return 400;
	case EACCES: case EPERM: return 403;
	case ENOENT: return 404;
	case EEXIST: case EALREADY: case ENOTCONN: case ESHUTDOWN: case ECONNRESET: case EPIPE:
		return 409;
	case EFBIG: case EMSGSIZE: return 413;
	case EDQUOT: case EUSERS: return 429;
	case EBUSY: case EAGAIN: return 503;
	case ETIMEDOUT: return 504;
	default: return 500;
	}
}

void http_reply_err(struct http_req *r, int rc, const struct err *e)
{
	http_reply_error(r, http_status_for(rc), "%s", err_str(e));
}

void http_reply_empty(struct http_req *r, int status)
{
	if (r->finished)
		return;
	respond(r, status, NULL, 0);
	finish(r);
}

void http_stream_start(struct http_req *r, int status, const char *ctype, int64_t len)
{
	if (r->finished)
		return;
	respond(r, status, ctype, len);
}

void http_stream_write(struct http_req *r, const void *p, size_t n)
{
	if (!r->conn || r->finished)
		return;
	buf_add(&r->out, p, n);
	want_write(r);
}

size_t http_stream_queued(const struct http_req *r)
{
	return r->out.len;
}

void http_stream_end(struct http_req *r)
{
	if (r->finished)
		return;
	finish(r);
}

void http_body_pause(struct http_req *r, bool pause)
{
	if (r->body_paused == pause)
		return;
	r->body_paused = pause;
	if (r->conn)
		lws_rx_flow_control(r->conn->wsi, pause ? 0 : 1);
}

/* Write the status line and headers. */
static int write_headers(struct http_req *r, struct lws *wsi)
{
	uint8_t *start = wbuf + LWS_PRE, *p = start, *end = wbuf + sizeof(wbuf) - 1;
	lws_filepos_t clen = r->clen < 0 ? LWS_ILLEGAL_HTTP_CONTENT_LEN : (lws_filepos_t)r->clen;
	if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->ctype, clen, &p, end))
		return -1;
	/* on every answer: the daemon's version and its API's (the CLI warns
	 * once when the API is not the one it speaks) */
#define API_S_(x) #x
#define API_S(x) API_S_(x)
	static const char api[] = API_S(BHATTI_API_VERSION);
	if (lws_add_http_header_by_name(wsi, (const uint8_t *)"X-Bhatti-Version:",
					(const uint8_t *)BHATTI_VERSION,
					(int)strlen(BHATTI_VERSION), &p, end) ||
	    lws_add_http_header_by_name(wsi, (const uint8_t *)"X-Bhatti-API:",
					(const uint8_t *)api, (int)strlen(api), &p, end))
		return -1;
	for (size_t i = 0; i < r->headers.len;) {
		const char *name = r->headers.data + i;
		const char *val = name + strlen(name) + 1;
		char hn[128];
		snprintf(hn, sizeof(hn), "%s:", name);
		if (lws_add_http_header_by_name(wsi, (const uint8_t *)hn, (const uint8_t *)val,
						(int)strlen(val), &p, end))
			return -1;
		i = (size_t)(val - r->headers.data) + strlen(val) + 1;
	}
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	r->headers_sent = true;
	return 0;
}


/* The response is all written: detach the request and end the HTTP
 * transaction at once, in the same callback. (A keep-alive client sends
 * its next request as soon as it has the body; if lws still thought it
 * was reading our request's body it would take the next request for
 * more body and loop on it.) 0 keep going, -1 close the connection. */
static int transaction_done(struct http_conn *c, struct http_req *r)
{
	struct link *lk = lws_get_opaque_user_data(c->wsi);
	if (lk)
		lk->answered = true;
	bool close = r->clen < 0 || r->close_after;
	req_detach(r);
	if (close)
		return -1;
	hold_rx(c, false);
	return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

static int on_http_writeable(struct http_conn *c)
{
	struct http_req *r = c->req;
	if (!r || !r->started)
		return 0;
	if (!r->headers_sent) {
		if (write_headers(r, c->wsi) < 0)
			return -1;
		if (r->method == HTTP_HEAD)
			buf_reset(&r->out);
		if (r->final && !r->out.len && r->clen >= 0)
			return transaction_done(c, r);
		if (r->out.len || r->final)
			lws_callback_on_writable(c->wsi);
		else
			await_more(c, r);
		return 0;
	}
	if (r->out.len) {
		size_t n = MIN(r->out.len, (size_t)WRITE_CHUNK);
		memcpy(wbuf + LWS_PRE, r->out.data, n);
		bool last = r->final && n == r->out.len;
		if (lws_write(c->wsi, wbuf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
		    (int)n)
			return -1;
		buf_consume(&r->out, n);
		if (last)
			return transaction_done(c, r);
		if (r->out.len) {
			lws_callback_on_writable(c->wsi);
			return 0;
		}
		await_more(c, r);
		if (r->on_drain)
			r->on_drain(r);
		return 0;
	}
	if (!r->final) {
		await_more(c, r);
		if (r->on_drain)
			r->on_drain(r);
		return 0;
	}
	/* a streamed body that ended with nothing left to write */
	if (lws_write(c->wsi, wbuf + LWS_PRE, 0, LWS_WRITE_HTTP_FINAL) < 0)
		return -1;
	return transaction_done(c, r);
}

/* ---- WebSocket ---------------------------------------------------------------- */

void http_ws_send(struct http_req *r, bool binary, const void *p, size_t n)
{
	if (!r->conn || r->finished)
		return;
	struct ws_msg *m = xmalloc(sizeof(*m) + n);
	m->next = NULL;
	m->binary = binary;
	m->len = n;
	memcpy(m->data, p, n);
	if (!r->wsq_tail || !r->wsq)
		r->wsq_tail = &r->wsq;
	*r->wsq_tail = m;
	r->wsq_tail = &m->next;
	r->wsq_bytes += n;
	want_write(r);
}

void http_ws_send_json(struct http_req *r, cJSON *obj)
{
	char *s = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (!s)
		abort();
	http_ws_send(r, false, s, strlen(s));
	free(s);
}

size_t http_ws_queued(const struct http_req *r)
{
	return r->wsq_bytes;
}

void http_ws_close(struct http_req *r)
{
	if (r->finished)
		return;
	finish(r);
}

static int on_ws_writeable(struct http_conn *c)
{
	struct http_req *r = c->req;
	if (!r)
		return 0;
	struct ws_msg *m = r->wsq;
	if (m) {
		if (m->len > WRITE_CHUNK)
			return -1; /* senders chunk their output */
		memcpy(wbuf + LWS_PRE, m->data, m->len);
		if (lws_write(c->wsi, wbuf + LWS_PRE, m->len,
			      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)m->len)
			return -1;
		r->wsq = m->next;
		r->wsq_bytes -= m->len;
		free(m);
		if (r->wsq || r->final)
			lws_callback_on_writable(c->wsi);
		else if (r->on_drain)
			r->on_drain(r);
		return 0;
	}
	if (r->final) {
		lws_close_reason(c->wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		req_detach(r);
		return -1;
	}
	return 0;
}

static void on_ws_receive(struct http_conn *c, const uint8_t *p, size_t n)
{
	struct http_req *r = c->req;
	if (!r || r->finished)
		return;
	if (r->wsrx.len + n > WS_MAX_MESSAGE) {
		http_ws_send_json(r, cJSON_CreateString("message too large"));
		http_ws_close(r);
		return;
	}
	buf_add(&r->wsrx, p, n);
	if (!lws_is_final_fragment(c->wsi))
		return;
	bool binary = lws_frame_is_binary(c->wsi);
	if (r->on_ws_message)
		r->on_ws_message(r, binary, (const uint8_t *)r->wsrx.data, r->wsrx.len);
	buf_reset(&r->wsrx);
}

/* ---- routing -------------------------------------------------------------------- */

static const char *method_name(const struct http_req *r)
{
	static const char *const names[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "GET" };
	return r->method == HTTP_OTHER ? r->method_name : names[r->method];
}

/* Does path match pattern? Fills params (heap) on a match. */
static bool route_match(const char *pattern, const char *path, char **params)
{
	char *got[HTTP_MAX_PARAMS] = { 0 };
	int np = 0;
	const char *p = pattern, *s = path;
	while (*p && *s) {
		if (*p != '/' || *s != '/')
			goto no;
		p++, s++;
		const char *pe = strchrnul(p, '/'), *se = strchrnul(s, '/');
		if (*p == ':') {
			if (se == s || np == HTTP_MAX_PARAMS)
				goto no;
			got[np++] = xstrndup(s, (size_t)(se - s));
		} else if ((size_t)(pe - p) != (size_t)(se - s) || memcmp(p, s, (size_t)(pe - p)) != 0) {
			goto no;
		}
		p = pe, s = se;
	}
	if (*p || (*s && strcmp(s, "/") != 0))
		goto no;
	for (int i = 0; i < np; i++)
		params[i] = got[i];
	return true;
no:
	for (int i = 0; i < np; i++)
		free(got[i]);
	return false;
}

/* The route for r, or NULL with an error answered. */
static const struct route *route_find(struct http_req *r)
{
	bool path_known = false;
	for (size_t i = 0; i < routes_count; i++) {
		char *params[HTTP_MAX_PARAMS] = { 0 };
		if (!route_match(routes[i].pattern, r->path, params))
			continue;
		enum http_method want = routes[i].method;
		if (want == r->method) {
			memcpy(r->params, params, sizeof(params));
			return &routes[i];
		}
		for (int k = 0; k < HTTP_MAX_PARAMS; k++)
			free(params[k]);
		path_known = true;
	}
	if (path_known)
		http_reply_error(r, 405, "method %s not allowed on '%s'", method_name(r), r->path);
	else
		http_reply_error(r, 404, "no route '%s'", r->path);
	return NULL;
}

const char *http_query(struct http_req *r, const char *name)
{
	return http_query_nth(r, name, 0);
}

const char *http_query_nth(struct http_req *r, const char *name, unsigned nth)
{
	if (!r->conn)
		return NULL;
	static char frag[8192];
	size_t nl = strlen(name);
	for (int i = 0;; i++) {
		int n = lws_hdr_copy_fragment(r->conn->wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);
		if (n < 0)
			return NULL;
		if (strncmp(frag, name, nl) == 0 && frag[nl] == '=' && nth-- == 0) {
			/* keep it alive for the request: append to headers storage */
			char *v = xstrdup(frag + nl + 1);
			loop_defer_free(free, v);
			return v;
		}
	}
}

static char *hdr(struct lws *wsi, enum lws_token_indexes t)
{
	int n = lws_hdr_total_length(wsi, t);
	if (n <= 0)
		return NULL;
	char *s = xmalloc((size_t)n + 1);
	if (lws_hdr_copy(wsi, s, n + 1, t) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* Authenticate r: 0, or an error already answered. */
static int authenticate(struct http_req *r, struct lws *wsi)
{
	static const char *const refused[] = { "token", "access_token", "api_key", "key" };
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
		if (http_query(r, refused[i])) {
			http_reply_error(r, 401, "API keys in the query string are refused; "
						 "send 'Authorization: Bearer <key>'");
			return -1;
		}
	char *auth = hdr(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
		free(auth);
		http_header(r, "WWW-Authenticate", "Bearer");
		http_reply_error(r, 401, "missing API key: send 'Authorization: Bearer <key>'");
		return -1;
	}
	struct err e = ERR_INIT;
	int rc = store_user_auth(r->srv->store, auth + 7, &r->user, &e);
	sodium_memzero(auth, strlen(auth));
	free(auth);
	if (rc == -ENOENT) {
		http_header(r, "WWW-Authenticate", "Bearer");
		http_reply_error(r, 401, "invalid API key");
		return -1;
	}
	if (rc < 0) {
		log_error("http: auth: %s", err_str(&e));
		http_reply_error(r, 500, "cannot check the API key (database error)");
		return -1;
	}
	return 0;
}

int http_rate(struct http_req *r, enum rate_kind k)
{
	unsigned retry;
	if (k == RATE_NONE || ratelimit_take(r->srv->rl, r->user.id, k, now_ms(), &retry))
		return 0;
	static const char *const what[RATE_KINDS] = {
		[RATE_CREATE] = "creates", [RATE_EXEC] = "execs, file writes and shells",
		[RATE_READ] = "requests",
	};
	const struct settings *c = &r->srv->cfg;
	int64_t per_min = k == RATE_CREATE ? c->limits.creates_per_min
			  : k == RATE_EXEC ? c->limits.execs_per_min : c->limits.reads_per_min;
	char v[16];
	snprintf(v, sizeof(v), "%u", retry);
	http_header(r, "Retry-After", v);
	http_reply_error(r, 429, "rate limit: at most %lld %s per minute; retry in %u s",
			 (long long)per_min, what[k], retry);
	return -EAGAIN;
}

static void dispatch(struct http_req *r, const struct route *rt)
{
	r->on_body = NULL;
	rt->handler(r);
}

/* ---- the lws callback ------------------------------------------------------------- */

static struct http_req *req_new(struct http_conn *c, enum http_method m, const char *path)
{
	struct http_req *r = xcalloc(1, sizeof(*r));
	r->srv = H.srv;
	r->method = m;
	r->path = xstrdup(path);
	r->conn = c;
	r->clen = 0;
	buf_init(&r->body);
	buf_init(&r->headers);
	buf_init(&r->out);
	buf_init(&r->wsrx);
	c->req = r;
	return r;
}

static enum http_method method_of(struct lws *wsi, const char **ret_name)
{
	static const struct {
		enum lws_token_indexes t;
		enum http_method m;
		const char *name;
	} map[] = {
		{ WSI_TOKEN_GET_URI, HTTP_GET, "GET" },	     { WSI_TOKEN_POST_URI, HTTP_POST, "POST" },
		{ WSI_TOKEN_PUT_URI, HTTP_PUT, "PUT" },	     { WSI_TOKEN_PATCH_URI, HTTP_PATCH, "PATCH" },
		{ WSI_TOKEN_DELETE_URI, HTTP_DELETE, "DELETE" }, { WSI_TOKEN_HEAD_URI, HTTP_HEAD, "HEAD" },
		{ WSI_TOKEN_OPTIONS_URI, HTTP_OTHER, "OPTIONS" },
		{ WSI_TOKEN_CONNECT, HTTP_OTHER, "CONNECT" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (lws_hdr_total_length(wsi, map[i].t) > 0) {
			*ret_name = map[i].name;
			return map[i].m;
		}
	*ret_name = "an unknown method";
	return HTTP_OTHER;
}

/* Content-Length: absent (0, *ret_len = 0), one decimal number (0), or
 * -EINVAL: malformed or given more than once (a client and the server
 * disagreeing about where a body ends is how requests are smuggled). */
static int content_length(struct lws *wsi, bool *ret_present, uint64_t *ret_len)
{
	*ret_present = false;
	*ret_len = 0;
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
	if (n <= 0)
		return 0;
	if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, 1) > 0)
		return -EINVAL;
	char v[32];
	if (n >= (int)sizeof(v) ||
	    lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_CONTENT_LENGTH) != n)
		return -EINVAL;
	uint64_t len = 0;
	for (int i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9' || len > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		len = len * 10 + (uint64_t)(v[i] - '0');
	}
	*ret_present = true;
	*ret_len = len;
	return 0;
}

/* Pending route between headers and body completion. */
struct pending {
	const struct route *rt;
	size_t limit;
};

static void start_request(struct http_conn *c, const char *uri)
{
	const char *mname;
	enum http_method m = method_of(c->wsi, &mname);
	struct http_req *r = req_new(c, m, uri);
	r->method_name = mname;
	char *accept = hdr(c->wsi, WSI_TOKEN_HTTP_ACCEPT);
	r->want_ndjson = accept && strstr(accept, "application/x-ndjson");
	free(accept);
	bool has_cl;
	if (content_length(c->wsi, &has_cl, &r->content_length) < 0) {
		r->close_after = true;
		http_reply_error(r, 400, "malformed or repeated Content-Length");
		return;
	}
	if (lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
		r->close_after = true;
		http_reply_error(r, 411, "chunked request bodies are not supported: send Content-Length");
		return;
	}
	bool zero_post = has_cl && r->content_length == 0 && m == HTTP_POST;
	const struct route *rt = route_find(r);
	if (!rt) {
		r->close_after = r->content_length > 0;   /* its body is not read */
		return;
	}
	if (!(rt->flags & ROUTE_NO_AUTH) && authenticate(r, c->wsi) < 0)
		return;
	if (!(rt->flags & ROUTE_NO_AUTH) && http_rate(r, rt->rate) < 0)
		return;
	size_t limit = rt->max_body ? rt->max_body : HTTP_MAX_JSON_BODY;
	if (r->srv->cfg.limits.max_body && limit > r->srv->cfg.limits.max_body)
		limit = (size_t)r->srv->cfg.limits.max_body;   /* the admin's cap */
	if (r->content_length > limit) {
		r->close_after = true;
		http_reply_error(r, 413, "request body too large: %llu bytes, at most %zu",
				 (unsigned long long)r->content_length, limit);
		return;
	}
	if (rt->flags & ROUTE_STREAM_BODY) {
		rt->handler(r);   /* sets on_body / on_body_end */
		if (r->content_length == 0 && !zero_post && r->on_body_end && !r->finished)
			r->on_body_end(r);
		return;
	}
	if (r->content_length == 0 && !zero_post) {
		dispatch(r, rt);
		return;
	}
	struct pending *pd = xmalloc(sizeof(*pd));
	pd->rt = rt;
	pd->limit = limit;
	r->ctx = pd;
	r->ctx_free = free;
}

static void body_chunk(struct http_conn *c, const uint8_t *p, size_t n)
{
	struct http_req *r = c->req;
	if (!r || r->finished)
		return;
	if (r->on_body) {
		r->on_body(r, p, n);
		return;
	}
	if (r->ctx_free == free && r->ctx) {
		struct pending *pd = r->ctx;
		if (r->body.len + n > pd->limit) {
			r->close_after = true;
			http_reply_error(r, 413, "request body too large: at most %zu bytes", pd->limit);
			return;
		}
		buf_add(&r->body, p, n);
	}
}

static void body_done(struct http_conn *c)
{
	struct http_req *r = c->req;
	if (!r || r->finished)
		return;
	if (r->on_body_end) {
		r->on_body_end(r);
		return;
	}
	if (r->ctx_free == free && r->ctx) {
		struct pending *pd = r->ctx;
		const struct route *rt = pd->rt;
		free(pd);
		r->ctx = NULL;
		r->ctx_free = NULL;
		dispatch(r, rt);
	}
}

/* A refused upgrade: the answer, written at once as plain HTTP. */
static void write_now(struct http_req *r, struct lws *wsi)
{
	if (write_headers(r, wsi) < 0 || !r->out.len)
		return;
	size_t n = MIN(r->out.len, (size_t)WRITE_CHUNK);
	memcpy(wbuf + LWS_PRE, r->out.data, n);
	lws_write(wsi, wbuf + LWS_PRE, n, LWS_WRITE_HTTP_FINAL);
}

/* A WebSocket upgrade is asked for: route, authenticate and rate-limit it
 * before anything is upgraded. 0 lets it go on, 1 when it was refused
 * with an HTTP answer (lws ends the transaction). */
static int confirm_upgrade(struct lws *wsi)
{
	struct link *lk = lws_get_opaque_user_data(wsi);
	char *uri = hdr(wsi, WSI_TOKEN_GET_URI);
	/* no per-session data yet: a connection for the time of this call */
	struct http_conn tmp = { .wsi = wsi }, *c = &tmp;
	struct http_req *r = req_new(c, HTTP_WS, uri ? uri : "/");
	free(uri);
	const struct route *rt = route_find(r);
	bool ok = rt && lk && !lk->upgrading && authenticate(r, wsi) == 0 &&
		  http_rate(r, rt->rate) == 0;
	c->req = NULL;
	r->conn = NULL;
	if (!ok) {
		if (!r->finished)
			http_reply_error(r, 400, "cannot upgrade this connection");
		write_now(r, wsi);
		req_maybe_free(r);
		return 1;
	}
	lk->upgrading = r;
	lk->route = rt;
	return 0;
}

/* The WebSocket is up: its request (authenticated before) runs. */
static int established(struct http_conn *c, struct lws *wsi)
{
	struct link *lk = lws_get_opaque_user_data(wsi);
	c->wsi = wsi;
	c->req = NULL;
	struct http_req *r = lk ? lk->upgrading : NULL;
	if (!r)
		return -1;
	lk->upgrading = NULL;
	r->conn = c;
	r->ws_open = true;
	c->req = r;
	dispatch(r, lk->route);
	return 0;
}

/* A connection ended (lws frees it): its count, and an upgrade that never
 * happened. */
static void link_free(struct lws *wsi)
{
	struct link *lk = lws_get_opaque_user_data(wsi);
	if (!lk)
		return;
	lws_set_opaque_user_data(wsi, NULL);
	if (lk->upgrading) {
		lk->upgrading->finished = true;
		req_maybe_free(lk->upgrading);
	}
	listen_peer_done(lk->peer);
	free(lk);
	H.links--;
}

/* A pipelining client (a request sent before the one before it was
 * answered) that lws cannot serve: say so and close, never drop it
 * unseen. -1: the connection closes. */
static int pipelined(struct http_conn *c)
{
	static const char msg[] =
		"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
		"Content-Length: 93\r\nConnection: close\r\n\r\n"
		"{\"error\":\"a request pipelined with or behind one that has a body: send it after the answer\"}\n";
	log_warn("http: a client pipelined requests with a body; answering 400 and closing");
	bool answering = c->req && c->req->headers_sent;
	if (c->req)
		req_detach(c->req);
	if (!answering) {
		memcpy(wbuf + LWS_PRE, msg, sizeof(msg) - 1);
		lws_write(c->wsi, wbuf + LWS_PRE, sizeof(msg) - 1, LWS_WRITE_RAW);
	}
	return -1;
}

/* A request with a body sent before the answer to the one before it
 * (pipelined) is parsed out of lws' own buffer of what it read too much,
 * not from the socket; lws 4.1 then passes the body on twice, the second
 * time from that buffer after lws_http_action() freed it: the body we
 * read was freed memory (ASan: heap-use-after-free under body_chunk;
 * found by fuzz-http), whatever the heap held by then, written to a file
 * or run as a command. Such a request is refused (400) and the connection
 * closed, as other requests lws cannot serve pipelined are (pipelined()).
 * It is told apart by lws having buffered input to serve (no public way
 * to ask for one connection; another's could only refuse this one: the
 * client sends it again on a new connection). */
static bool has_body(struct lws *wsi)
{
	bool present;
	uint64_t len;
	return content_length(wsi, &present, &len) < 0 || len > 0 ||
	       lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
}

static bool buffered_rx(void)
{
	return lws_service_adjust_timeout(H.ctx, 1, 0) == 0;
}

/* The body of the current request is complete. When bytes of another
 * request follow a body in lws 4.1's buffer (a pipelining client), lws
 * feeds them to the finished body's reader, which ends the body again
 * without consuming them, over and over, at 100% CPU: a second completion
 * for one request is that, and ends the connection with a 400 (pipelined
 * requests without bodies are served in order). */
static int body_complete(struct http_conn *c, struct lws *wsi)
{
	struct link *lk = lws_get_opaque_user_data(wsi);
	if (lk && ++lk->body_ends > 1)
		return pipelined(c);
	body_done(c);
	return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	struct http_conn *c = user;
	switch (reason) {
	case LWS_CALLBACK_HTTP: {
		struct link *lk = lws_get_opaque_user_data(wsi);
		c->wsi = wsi;
		if (lk)
			lk->body_ends = 0;
		if (c->req || (lk && lk->answered && has_body(wsi) && buffered_rx()))
			return pipelined(c);
		start_request(c, in ? (const char *)in : "/");
		if (c->req && !c->req->started)
			await_more(c, c->req);   /* no answer yet: see hold_rx */
		return 0;
	}
	case LWS_CALLBACK_HTTP_BODY:
		if (len)
			body_chunk(c, in, len);
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return body_complete(c, wsi);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return on_http_writeable(c);
	case LWS_CALLBACK_CLOSED_HTTP:
		if (c && c->req)
			req_detach(c->req);
		return 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return confirm_upgrade(wsi);
	case LWS_CALLBACK_ESTABLISHED:
		return established(c, wsi);
	case LWS_CALLBACK_RECEIVE:
		on_ws_receive(c, in, len);
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return on_ws_writeable(c);
	case LWS_CALLBACK_CLOSED:
		if (c && c->req)
			req_detach(c->req);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		link_free(wsi);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* The shared loop's epoll fd, adopted as a raw file. */
static int loop_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
			 void *in, size_t len)
{
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		loop_run_once(0);
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		H.loop_wsi = NULL;
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
	{ "http", callback, sizeof(struct http_conn), 64 << 10, 0, NULL, 0 },
	{ "bhatti-loop", loop_callback, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void lws_log(int level, const char *line)
{
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		n--;
	if (level & LLL_ERR)
		log_warn("lws: %.*s", (int)n, line);
	else
		log_debug("lws: %.*s", (int)n, line);
}

/* A connection the listener accepted: lws serves it from now on. */
static bool adopt_lws(int fd, struct listen_peer *peer)
{
	struct lws *wsi = lws_adopt_socket_vhost(H.vh, fd);   /* closes fd on failure */
	if (!wsi)
		return false;
	struct link *lk = xcalloc(1, sizeof(*lk));
	lk->peer = peer;
	lws_set_opaque_user_data(wsi, lk);
	H.links++;
	return true;
}

/* The owner's proxy path is taken by proxy.c before lws sees anything. */
static bool adopt(int fd, struct listen_peer *peer, void *arg UNUSED)
{
	return proxy_sniff(fd, peer, adopt_lws, HTTP_HEADER_TIMEOUT_S * 1000);
}

unsigned http_connections(void)
{
	return H.links;
}

int http_adopt(int fd, struct err *e)
{
	if (!H.ctx || !adopt_lws(fd, NULL))
		return err_set(e, EIO, "libwebsockets did not take the connection");
	return 0;
}

int http_start(struct server *srv, const char *host, int port, struct err *e)
{
	H.srv = srv;
	lws_set_log_level(getenv("BHATTI_LWS_DEBUG") ? 0xff : (LLL_ERR | LLL_WARN), lws_log);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;   /* listen.c listens */
	info.protocols = protocols;
	info.timeout_secs = 120;
	info.timeout_secs_ah_idle = HTTP_HEADER_TIMEOUT_S;
	info.keepalive_timeout = 30;
	info.max_http_header_data = 8192;
	info.max_http_header_pool = 1024;
	info.vhost_name = "bhatti";
	info.server_string = "bhatti";
	H.ctx = lws_create_context(&info);
	if (!H.ctx)
		return err_set(e, EIO, "cannot start libwebsockets");
	H.vh = lws_get_vhost_by_name(H.ctx, "bhatti");
	/* a duplicate: lws closes what it adopted when its context goes, and
	 * the loop lives on after http_free() (the engine's shutdown runs it
	 * to finish its file jobs) */
	lws_sock_file_fd_type fd = { .filefd = fcntl(loop_fd(), F_DUPFD_CLOEXEC, 3) };
	H.loop_wsi = lws_adopt_descriptor_vhost(H.vh, LWS_ADOPT_RAW_FILE_DESC, fd, "bhatti-loop",
						 NULL);
	int r = H.loop_wsi ? 0 : err_set(e, EIO, "cannot adopt the event loop into libwebsockets");
	if (r == 0)
		r = listen_start(host, port, (unsigned)srv->cfg.limits.max_conns_per_ip, adopt, NULL,
				 &H.listener, e);
	if (r < 0) {
		http_free();
		return r;
	}
	return 0;
}

const char *http_listening(void)
{
	return H.listener ? listen_describe(H.listener) : "";
}

int http_port(void)
{
	return H.listener ? listen_port(H.listener) : 0;
}

int http_turn(bool wait)
{
	/* lws 4.1: -1 polls without waiting, 0 waits for the next event */
	if (lws_service(H.ctx, wait && !loop_pending() ? 0 : -1) < 0)
		return -EIO;
	loop_run_once(0);
	return 0;
}

int http_run(void)
{
	H.stop = false;
	while (!H.stop)
		if (http_turn(true) < 0)
			return -EIO;
	return 0;
}

void http_stop(void)
{
	H.stop = true;
	if (H.ctx)
		lws_cancel_service(H.ctx);
}

void http_free(void)
{
	/* lws first: destroying its connections gives their counts back */
	if (H.ctx)
		lws_context_destroy(H.ctx);
	H.ctx = NULL;
	listen_free(H.listener);
	H.listener = NULL;
}
