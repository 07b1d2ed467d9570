/* proxy-http — HTTP/1.1 message heads and body framing for the publish
 * proxy (proxy.c), without I/O: find where a head ends, parse a request
 * or a response head, look headers up, and follow a body's framing
 * (Content-Length or chunked) through bytes passed on unchanged, so the
 * proxy knows where one message ends and the next begins.
 *
 * Sits under proxy.c; touches only memory. Strict where a lenient reading
 * would let two parties disagree on where a message ends (request
 * smuggling): Content-Length with Transfer-Encoding, two different
 * Content-Lengths, a Transfer-Encoding that is not exactly "chunked",
 * obs-fold lines, spaces before a header's colon, NUL or bare CR bytes.
 *
 * Chunked bodies (RFC 9112 §7.1), as followed by pbody_take():
 *
 *   SIZE ─hex…[;ext] CRLF─► DATA ─n bytes─► DATA_CR ─CRLF─► SIZE
 *     └─ size 0 … CRLF ─► TRAILER ─(field CRLF)*─ CRLF ─► DONE
 */
#ifndef BHATTI_PROXY_HTTP_H
#define BHATTI_PROXY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define PHEAD_MAX 16384          /* bytes of one head */
#define PHEAD_MAX_HEADERS 100

struct phdr {
	const char *name, *value;    /* NUL-terminated, into phead.buf */
};

struct phead {
	char *buf;                   /* a copy of the head, cut into strings */
	/* request */
	const char *method, *target;
	/* response */
	int status;
	const char *reason;
	int minor;                   /* HTTP/1.<minor> */
	struct phdr h[PHEAD_MAX_HEADERS];
	size_t nh;
};

/* The length of the head at the start of p (through the blank line that
 * ends it), 0 when it has not ended yet, -1 when it is longer than max. */
ssize_t phead_end(const char *p, size_t n, size_t max);

/* Parse a head of length n (phead_end's); -EINVAL with e on anything
 * malformed. phead_release() after either. */
int phead_parse_request(const char *p, size_t n, struct phead *ret, struct err *e);
int phead_parse_response(const char *p, size_t n, struct phead *ret, struct err *e);
void phead_release(struct phead *h);

/* The first header of that name (case-insensitive), or NULL. */
const char *phead_get(const struct phead *h, const char *name);
/* Does some header of that name list token (comma-separated,
 * case-insensitive)? */
bool phead_has_token(const struct phead *h, const char *name, const char *token);
/* Is name a hop-by-hop header of this message: the fixed ones (RFC 9110
 * §7.6.1) or one its Connection header names? */
bool phead_hop_by_hop(const struct phead *h, const char *name);

enum pbody_kind {
	PBODY_NONE,       /* no body */
	PBODY_LENGTH,     /* Content-Length bytes */
	PBODY_CHUNKED,    /* chunked, through the last chunk and trailers */
	PBODY_CLOSE,      /* response only: until the connection closes */
};

struct pbody {
	enum pbody_kind kind;
	uint64_t left;                /* LENGTH: bytes to come; chunked: of this chunk */
	int state;                    /* chunked: where in the framing */
	unsigned line;                /* chunked: bytes of the current size/trailer line */
	bool any_digit;
};

/* The framing of a request's body; -EINVAL (400) or -ENOSYS (501: a
 * transfer coding other than chunked) with e. */
int pbody_request(const struct phead *h, struct pbody *ret, struct err *e);
/* The framing of the response to a request with method (HEAD: none). */
int pbody_response(const struct phead *h, const char *method, struct pbody *ret,
		   struct err *e);

/* Of the n bytes at p, how many belong to the body (the rest is the next
 * message); *ret_done once it is complete. -EINVAL on malformed chunked
 * framing. PBODY_CLOSE takes everything and is never done. */
ssize_t pbody_take(struct pbody *b, const uint8_t *p, size_t n, bool *ret_done);
bool pbody_done(const struct pbody *b);

#endif
