/* conn — the CLI's connection to the daemon: the base URL, a TCP dial with
 * a connect timeout, and HTTP/1.1 on the socket (request head out,
 * response head and body in: Content-Length, chunked, or up to close).
 *
 * Sits between client.c / ws.c and a socket. It is our own small client
 * rather than libcurl on purpose: every `bhatti` command is a fresh
 * process, and mapping libcurl's ~30 shared libraries cost more (≈ 8 ms
 * on these machines) than the whole rest of a `bhatti exec`.
 * Plain http:// only: for a daemon on another machine, use an SSH tunnel
 * (ssh -L 8080:127.0.0.1:8080 host) or a private network.
 */
#ifndef BHATTI_CLI_CONN_H
#define BHATTI_CLI_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

#define CONN_CONNECT_TIMEOUT_MS 10000
#define CONN_MAX_HEAD (64u << 10)

struct conn {
	int fd;
	struct buf in;          /* bytes read and not yet consumed */
	char host[256];         /* for Host: ("127.0.0.1:8080") */
	char prefix[256];       /* path of the base URL ("" or "/bhatti") */
};

/* The parsed response head. */
struct conn_head {
	int status;
	long long clen;         /* -1: none */
	bool chunked;
	char retry_after[16];
	bool existing;          /* X-Bhatti-Existing: true */
	char ws_accept[64];     /* Sec-WebSocket-Accept */
};

/* Parse base_url ("http://host[:port][/prefix]") and connect. Errors say
 * which: EINVAL (the URL), EHOSTUNREACH / ECONNREFUSED / ETIMEDOUT. */
int conn_open(struct conn *c, const char *base_url, struct err *e);
void conn_close(struct conn *c);

/* Write a request head: method, path (the prefix is put in front),
 * extra header lines (each ending in "\r\n", may be NULL) and a body
 * length (-1: no body and no Content-Length). */
int conn_send_head(struct conn *c, const char *method, const char *path, const char *extra,
		   long long body_len, struct err *e);
int conn_send(struct conn *c, const void *p, size_t n, struct err *e);

/* Read and parse the response head; bytes after it stay in c->in. */
int conn_read_head(struct conn *c, struct conn_head *h, struct err *e);

/* Read the body of h, giving each piece to fn (return false to stop: the
 * call then returns 1). no_body: the answer to a HEAD (or a 1xx/204/304).
 * 0 at the end of the body, -1 on a broken connection or framing. */
int conn_read_body(struct conn *c, const struct conn_head *h, bool no_body,
		   bool (*fn)(const char *p, size_t n, void *arg), void *arg, struct err *e);

#endif
