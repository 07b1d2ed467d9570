/* async — the asynchronous calls of the client library, on the process's
 * event loop (shared/loop.h), for a program that must not block (the TUI,
 * `bhatti shell`): a request whose answer comes through callbacks, and a
 * WebSocket.
 *
 * Sits between its caller's loop and a TCP socket; HTTP framing is
 * httpc.c, WebSocket framing wsc.c, the daemon's address client.c.
 * Connects are non-blocking (with the client's connect timeout; name
 * resolution is getaddrinfo, which blocks only for a host name that is not
 * an address or in /etc/hosts); writes never block: what the socket does
 * not take is queued and sent when it is writable (EPOLLOUT).
 *
 * Lifetimes: a call's outcome always comes through its callbacks on a
 * later loop turn, never from inside the call that started it. The last
 * callback (done, closed) ends the object: it is freed on the next loop
 * turn (loop_defer_free), so it must not be used after that callback
 * returns. async_req_cancel() and async_ws_abort() end it at once with no
 * further callback; both may be called from inside a callback. The client
 * must outlive its calls.
 *
 * A connection's states:
 *
 *   CONNECTING ─ writable, no error ─► OPEN ─ answer done / closed ─► ENDED
 *      │ error or timeout: next address; none left ─────────────────► ENDED
 */
#ifndef BHATTI_CLIENT_ASYNC_H
#define BHATTI_CLIENT_ASYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "client.h"
#include "httpc.h"

/* ---- requests ---- */

struct async_req;

struct async_req_cb {
	/* The answer's head (optional). */
	void (*head)(struct async_req *r, const struct httpc_head *h, void *arg);
	/* A piece of a 2xx body (optional: without it, or for another status,
	 * the body is kept: async_req_body()). */
	void (*body)(struct async_req *r, const char *p, size_t n, void *arg);
	/* The last call: e NULL when the whole answer came. */
	void (*done)(struct async_req *r, const struct err *e, void *arg);
};

/* Start rq (its body from memory: body_fd and on_body are for the
 * synchronous client_call() only). */
struct async_req *async_request(struct client *c, const struct client_req *rq,
				const struct async_req_cb *cb, void *arg);
int async_req_status(const struct async_req *r);      /* 0 before the head */
const struct buf *async_req_body(const struct async_req *r);
void async_req_cancel(struct async_req *r);

/* ---- WebSocket ---- */

struct async_ws;

struct async_ws_cb {
	/* The upgrade was accepted (optional). */
	void (*open)(struct async_ws *ws, void *arg);
	/* One whole text or binary message. */
	void (*message)(struct async_ws *ws, bool binary, const char *p, size_t n, void *arg);
	/* The send queue emptied (optional): whenever it held bytes and holds
	 * none now, whether or not the socket was ever full. */
	void (*drained)(struct async_ws *ws, void *arg);
	/* The last call: e NULL after async_ws_close() or a close from the
	 * daemon; else why (a refused upgrade carries the daemon's message,
	 * code ENOENT for 404, EACCES for 401, EPROTO otherwise). */
	void (*closed)(struct async_ws *ws, const struct err *e, void *arg);
};

/* GET path (with its query) upgraded to a WebSocket. */
struct async_ws *async_ws_open(struct client *c, const char *path, const struct async_ws_cb *cb,
			       void *arg);
/* Queue one message (sent once the upgrade is done). */
void async_ws_send(struct async_ws *ws, bool binary, const void *p, size_t n);
/* Bytes queued and not yet taken by the socket. */
size_t async_ws_queued(const struct async_ws *ws);
/* A close frame (1000) once the queue is sent, then closed(NULL). */
void async_ws_close(struct async_ws *ws);
void async_ws_abort(struct async_ws *ws);

#endif
