/* http — the daemon's HTTP and WebSocket front, over libwebsockets.
 *
 * Sits between libwebsockets (sockets, HTTP/1.1 parsing, WebSocket
 * framing) and the API handlers (daemon/api-*.c), which never see lws:
 * they get a `struct http_req` with the method, path parameters, query,
 * body and the authenticated caller, and answer through http_reply_*()
 * (whole responses), http_stream_*() (bodies of unknown length, e.g.
 * ndjson exec output) or http_ws_*() (WebSocket messages).
 *
 * The route table lives in daemon/routes.c. Authentication (Bearer key →
 * user) happens here, before a handler runs.
 *
 * Lifetime of a request (one per HTTP request or WebSocket):
 *
 *   received ──dispatch──► handler running ──terminal call──► finished ──► freed
 *        │                      │                                ▲
 *        └── client goes away ──┴────────────────────────────────┘
 *
 * A request is finished by its terminal call (http_reply_*,
 * http_stream_end or http_ws_close), or by its client going away (then
 * later terminal calls are no-ops), or by this module on bad input (an
 * over-size WebSocket message). It is freed once finished and detached
 * from its connection, never inside a callback that still uses it
 * (loop_defer_free). Freeing runs the handler's ctx_free, which must
 * release everything the handler started that could call back into the
 * request (guest operations: guest_op_free; sandbox waits: api_wait): a
 * handler never learns of the end in any other way.
 *
 * One process event loop: libwebsockets' poll waits on its sockets and on
 * the shared loop's epoll fd (shared/loop.h), see http_run().
 */
#ifndef BHATTI_HTTP_H
#define BHATTI_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "err.h"
#include "ratelimit.h"
#include "store.h"

enum http_method {
	HTTP_GET,
	HTTP_HEAD,
	HTTP_POST,
	HTTP_PUT,
	HTTP_PATCH,
	HTTP_DELETE,
	HTTP_WS,      /* GET with a WebSocket upgrade */
	HTTP_OTHER,   /* any other method: no route has it */
};

struct server;
struct http_req;
typedef void (*http_handler_fn)(struct http_req *r);

enum {
	ROUTE_NO_AUTH = 1u << 0,      /* /health */
	ROUTE_STREAM_BODY = 1u << 1,  /* body goes to on_body as it arrives */
};

struct route {
	enum http_method method;
	const char *pattern;          /* "/sandboxes/:id/exec" */
	http_handler_fn handler;
	unsigned flags;
	size_t max_body;              /* bytes; 0 = HTTP_MAX_JSON_BODY */
	enum rate_kind rate;          /* the caller's rate-limit class, taken
				       * before the handler runs (RATE_NONE:
				       * the handler decides) */
};

#define HTTP_MAX_JSON_BODY (1u << 20)
/* A connection has this long to send a request's head. */
#define HTTP_HEADER_TIMEOUT_S 5
#define HTTP_MAX_PARAMS 2
/* Streamed responses: handlers stop producing above this much queued
 * output and continue from on_drain. */
#define HTTP_QUEUE_HIGH (256u << 10)

extern const struct route routes[];
extern const size_t routes_count;

struct http_req {
	struct server *srv;
	enum http_method method;
	char *path;                         /* decoded path, no query */
	char *params[HTTP_MAX_PARAMS];      /* ":x" segments in route order */
	struct buf body;                    /* whole body (unless STREAM_BODY) */
	uint64_t content_length;
	struct user user;                   /* the caller (after auth) */
	bool want_ndjson;                   /* Accept: application/x-ndjson */

	/* Handler state: freed with ctx_free when the request is freed. */
	void *ctx;
	void (*ctx_free)(void *ctx);
	/* Optional callbacks a handler sets (none runs once it is finished). */
	void (*on_body)(struct http_req *r, const uint8_t *p, size_t n);
	void (*on_body_end)(struct http_req *r);
	void (*on_drain)(struct http_req *r);   /* queued output fell low */
	void (*on_ws_message)(struct http_req *r, bool binary, const uint8_t *p, size_t n);

	/* private to http.c */
	struct http_conn *conn;             /* NULL once the client is gone */
	int status;
	struct buf headers;                 /* extra "name:\0value\0" pairs */
	const char *ctype;
	int64_t clen;                       /* -1 = unknown (stream) */
	struct buf out;
	bool started, headers_sent, final, finished, gone, body_paused;
	bool ws_open;                       /* upgraded: answers are messages */
	bool close_after;                   /* close the connection after the answer */
	const char *method_name;            /* HTTP_OTHER: its name */
	struct ws_msg *wsq, **wsq_tail;
	size_t wsq_bytes;
	struct buf wsrx;
};

/* Start listening (host may be NULL/"" for every interface; listen.h). */
int http_start(struct server *srv, const char *host, int port, struct err *e);
/* What it listens on ("127.0.0.1:8080"), for the log, and its port. */
const char *http_listening(void);
int http_port(void);
/* Serve until http_stop(); runs the shared loop too. */
int http_run(void);
/* One turn of that: what lws has to do (waiting for it when wait), then
 * one turn of the shared loop; -EIO when lws failed. */
int http_turn(bool wait);
/* Serve fd, a connected stream socket, as if the listener had accepted
 * it (outside the per-address count): the fuzz targets' connections, one
 * end of a socketpair. On failure fd is closed. */
int http_adopt(int fd, struct err *e);
/* Connections open (accepted or adopted, not yet ended). */
unsigned http_connections(void);
void http_stop(void);
void http_free(void);

/* ---- request accessors ---- */
/* Query parameter (URL-decoded), or NULL; valid for the request's life. */
const char *http_query(struct http_req *r, const char *name);
/* The nth (from 0) of a repeated query parameter ("?label=a&label=b"). */
const char *http_query_nth(struct http_req *r, const char *name, unsigned nth);
/* The connection is gone (a handler can stop early). */
bool http_gone(const struct http_req *r);

/* ---- whole responses (terminal) ---- */
void http_header(struct http_req *r, const char *name, const char *value);
/* Takes ownership of obj (object or array). */
void http_reply_json(struct http_req *r, int status, cJSON *obj);
/* A body already made (its bytes are taken: body is left empty). */
void http_reply_text(struct http_req *r, int status, const char *ctype, struct buf *body);
void http_reply_error(struct http_req *r, int status, const char *fmt, ...) PRINTF(3, 4);
/* The status for a negative errno from the core, with e's message. */
void http_reply_err(struct http_req *r, int rc, const struct err *e);
void http_reply_empty(struct http_req *r, int status);

/* ---- streamed responses ---- */
/* len < 0: unknown (the connection closes at the end). */
void http_stream_start(struct http_req *r, int status, const char *ctype, int64_t len);
void http_stream_write(struct http_req *r, const void *p, size_t n);
size_t http_stream_queued(const struct http_req *r);
void http_stream_end(struct http_req *r);   /* terminal */
/* Pause / resume reading the request body (STREAM_BODY routes). */
void http_body_pause(struct http_req *r, bool pause);

/* ---- WebSocket ---- */
void http_ws_send(struct http_req *r, bool binary, const void *p, size_t n);
void http_ws_send_json(struct http_req *r, cJSON *obj);   /* takes obj */
size_t http_ws_queued(const struct http_req *r);
void http_ws_close(struct http_req *r);   /* terminal */

/* HTTP status for a negative errno from the core. */
int http_status_for(int rc);

/* Take a token of the caller's rate-limit class k: 0, or -EAGAIN after
 * answering 429 with Retry-After. */
int http_rate(struct http_req *r, enum rate_kind k);

#endif
