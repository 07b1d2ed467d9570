/* tls — the client library's TLS for https:// daemons (OpenSSL), used
 * only when the URL says https: an http:// command never initialises
 * OpenSSL, so its start-up stays as it was.
 *
 * Sits between the synchronous calls (client.c) and a connected blocking
 * socket. The server's certificate must chain to the system's CAs, or to
 * the CA file given (--ca FILE, BHATTI_CA, `ca:` in ~/.bhatti/config.yaml,
 * for a daemon with a self-signed certificate), and name the URL's host
 * (a DNS name or an IP address). Touches the socket it is given and the
 * CA file.
 */
#ifndef BHATTI_CLIENT_TLS_H
#define BHATTI_CLIENT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

struct ctls;

/* Handshake on fd (blocking) as a client of host; ca_file NULL: the
 * system's CAs. On failure fd is left open for the caller to close. */
int ctls_open(int fd, const char *host, const char *ca_file, struct ctls **ret, struct err *e);
/* Like read(2) and write(2): bytes, 0 at the end (read), or -1 with e. */
ssize_t ctls_read(struct ctls *t, void *p, size_t n, struct err *e);
ssize_t ctls_write(struct ctls *t, const void *p, size_t n, struct err *e);
/* Free it (after close_notify); the fd is not closed. NULL is fine. */
void ctls_free(struct ctls *t);

/* The same for a non-blocking fd on an event loop (async.c): ctls_start
 * makes the session, then ctls_handshake, ctls_recv and ctls_send answer
 * -EAGAIN when they wait for the socket, and ctls_wants_write() says
 * whether that is for it to take bytes (EPOLLOUT) rather than to bring
 * some (EPOLLIN). */
int ctls_start(int fd, const char *host, const char *ca_file, struct ctls **ret, struct err *e);
int ctls_handshake(struct ctls *t, struct err *e);          /* 0 done */
ssize_t ctls_recv(struct ctls *t, void *p, size_t n, struct err *e);   /* 0: the end */
ssize_t ctls_send(struct ctls *t, const void *p, size_t n, struct err *e);
bool ctls_wants_write(const struct ctls *t);

#endif
