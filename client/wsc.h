/* wsc — the WebSocket client codec of the client library (RFC 6455), free
 * of I/O: the upgrade's key and the check of the server's accept value,
 * masked client frames out, and a decoder that takes whole messages out of
 * the bytes received so far (fragments joined, control frames as they come).
 *
 * Sits between the bytes of a connection (async.c) and whoever reads the
 * messages (shell.c). The decoder is strict: a server frame that is
 * masked, uses reserved bits or an unknown opcode, a control frame that is
 * fragmented or over 125 bytes, a stray continuation or a new message
 * inside a fragmented one is -EPROTO; a message over WSC_MAX_MESSAGE is
 * -EMSGSIZE (refused from the length alone). Touches nothing but memory
 * (and the random bytes of libsodium for keys and masks).
 */
#ifndef BHATTI_CLIENT_WSC_H
#define BHATTI_CLIENT_WSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum { WSC_CONT = 0, WSC_TEXT = 1, WSC_BINARY = 2, WSC_CLOSE = 8, WSC_PING = 9, WSC_PONG = 10 };

#define WSC_MAX_MESSAGE (16u << 20)
#define WSC_KEY_LEN 25      /* base64 of 16 bytes, with its NUL */
#define WSC_ACCEPT_LEN 29   /* base64 of a SHA-1, with its NUL */

/* The decoder of one connection: bytes in, messages out. */
struct wsc {
	struct buf partial;  /* a fragmented message so far */
	int partial_op;      /* its opcode, -1: none */
	struct buf msg;      /* the last message taken */
};

void wsc_init(struct wsc *w);
void wsc_release(struct wsc *w);

/* Take one complete message from the front of in (consumed): 1 with
 * *ret_opcode and w->msg set, 0 when more bytes are needed, -EPROTO or
 * -EMSGSIZE on bad input (the connection is then unusable). */
int wsc_take(struct wsc *w, struct buf *in, int *ret_opcode);

/* Append one client frame (FIN set, masked) to out. */
void wsc_frame(struct buf *out, int opcode, const void *p, size_t n);

/* A fresh Sec-WebSocket-Key. */
void wsc_key(char key[WSC_KEY_LEN]);
/* The Sec-WebSocket-Accept a server must answer to key. */
void wsc_accept(const char *key, char accept[WSC_ACCEPT_LEN]);

#endif
