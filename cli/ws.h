/* ws — a small WebSocket client (RFC 6455) for `bhatti shell`: the
 * upgrade handshake over plain TCP (http:// URLs) and the frame codec.
 *
 * Sits between cmd-shell.c (which owns the poll loop) and a socket. The
 * codec is separate from I/O: ws_take() pulls whole messages out of the
 * bytes received so far, so the caller can feed it from any loop.
 */
#ifndef BHATTI_CLI_WS_H
#define BHATTI_CLI_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

enum { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

#define WS_MAX_MESSAGE (16u << 20)

/* Connect to base_url ("http://host:port") and upgrade path_query with
 * the Bearer token. Bytes that arrived after the handshake go to
 * ret_leftover. On a refused upgrade, e carries the daemon's answer. */
int ws_connect(const char *base_url, const char *path_query, const char *token, int *ret_fd,
	       struct buf *ret_leftover, struct err *e);

/* Append one client frame (FIN set, masked) to out. */
void ws_frame(struct buf *out, int opcode, const void *p, size_t n);

/* Take one complete message from in (consumed): 1 with opcode/msg set
 * (fragments joined; control frames come out as they arrive), 0 when more
 * bytes are needed, -EPROTO / -EMSGSIZE on bad input. */
int ws_take(struct buf *in, struct buf *partial, int *partial_op, int *ret_opcode,
	    struct buf *ret_msg);

#endif
