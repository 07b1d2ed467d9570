/* httpc — the HTTP/1.1 codec of the client library, free of I/O: request
 * heads out, an incremental response parser in (feed it bytes as they
 * arrive, in pieces of any size; it hands back the head, then body pieces
 * pointing into the bytes fed, then the end), and URL escaping.
 *
 * Sits between the byte streams of client.c (blocking, for the CLI) or
 * async.c (shared/loop, for the TUI) and the rest of the client. Framings:
 * Content-Length, chunked (extensions and trailers skipped), up to the
 * close, and no body (an answer to HEAD, 1xx, 204, 304). Touches nothing
 * but memory.
 *
 * The parser's states (one event per httpc_parse() call; HTTPC_MORE when
 * the input is used up before the next event):
 *
 *   HEAD ──"\r\n\r\n"──► HTTPC_HEAD ─┬─ no body ──────────────────────► DONE
 *                                    ├─ Content-Length ─► LEN ─ left 0 ► DONE
 *                                    ├─ neither ─► CLOSE ── httpc_eof ─► DONE
 *                                    └─ chunked ─► SIZE ─ n>0 ─► DATA ─► CRLF ─► SIZE
 *                                                   └─ 0 ─► TRAILER ─ "" ─► DONE
 *   any state ── bad bytes ──► ERROR (sticky: every later call fails)
 */
#ifndef BHATTI_CLIENT_HTTPC_H
#define BHATTI_CLIENT_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

#define HTTPC_MAX_HEAD (64u << 10)   /* the head, and the trailers */
#define HTTPC_MAX_LINE 1024u         /* a chunk-size line */

/* The parsed response head. */
struct httpc_head {
	int status;
	long long clen;          /* Content-Length, -1: none */
	bool chunked;
	char retry_after[16];
	bool existing;           /* X-Bhatti-Existing: true */
	int api;                 /* X-Bhatti-API (0: none) */
	char server_version[32]; /* X-Bhatti-Version ("": none) */
	char ws_accept[64];      /* Sec-WebSocket-Accept */
};

enum httpc_event {
	HTTPC_MORE,   /* the input is used up: feed more, or httpc_eof() at the close */
	HTTPC_HEAD,   /* p->head is filled in */
	HTTPC_BODY,   /* a piece of the body (*ret_piece, *ret_len point into the input) */
	HTTPC_DONE,   /* the answer is complete; bytes after it are left unused */
};

struct httpc {
	int state;
	bool no_body;                /* the request was HEAD */
	struct buf line;             /* the head, or a chunk line, being gathered */
	unsigned long long left;     /* bytes of the body or of the chunk to come */
	size_t trailer;              /* bytes of trailers so far */
	struct httpc_head head;
};

/* head_request: the answer is to a HEAD request (a head, never a body). */
void httpc_init(struct httpc *p, bool head_request);
void httpc_release(struct httpc *p);

/* Parse from in[0..n): returns the next event (>= 0) with *ret_used the
 * bytes of in it consumed, or -EPROTO (e says what) on a malformed
 * answer. For HTTPC_BODY, the piece is in[...] at *ret_piece. */
int httpc_parse(struct httpc *p, const char *in, size_t n, size_t *ret_used,
		const char **ret_piece, size_t *ret_len, struct err *e);

/* What httpc_feed() does with the events; each returns false to stop
 * feeding at once (the consumer has seen enough, or went away). */
struct httpc_sink {
	bool (*head)(void *arg, const struct httpc_head *h);
	bool (*body)(void *arg, const char *p, size_t n);
};

#define HTTPC_STOPPED 4   /* httpc_feed(): a sink function returned false */

/* httpc_parse() over all of in[0..n), the events to sink: HTTPC_DONE at
 * the end of the answer, HTTPC_MORE when all of in was used, HTTPC_STOPPED,
 * or -EPROTO; *ret_used is the bytes of in consumed. */
int httpc_feed(struct httpc *p, const char *in, size_t n, const struct httpc_sink *sink,
	       void *arg, size_t *ret_used, struct err *e);

/* The peer closed the connection: HTTPC_DONE when that ends the answer
 * (a body up to the close, or the trailers), else -ECONNRESET. */
int httpc_eof(struct httpc *p, struct err *e);

/* A request head: method, prefix + path, Host, User-Agent, Content-Length
 * (body_len < 0: none), the extra header lines (each ending in "\r\n";
 * may be NULL), the blank line. */
void httpc_request(struct buf *out, const char *method, const char *host, const char *prefix,
		   const char *path, const char *extra, long long body_len);

/* s URL-encoded for a path segment or a query value ('/' kept); caller
 * frees. */
char *httpc_escape(const char *s);

#endif
