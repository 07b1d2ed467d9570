/* buf — the one growable byte buffer used everywhere (git's strbuf).
 *
 * The content is always followed by a NUL that len does not count, so text
 * can be used as a C string. Embedded structs: buf_init() / buf_release().
 * Allocation failure aborts (see util.h), so appends cannot fail.
 *
 *   struct buf b = BUF_INIT;
 *   buf_addf(&b, "%d", 42);   ... use b.data, b.len ...
 *   buf_release(&b);
 */
#ifndef BHATTI_BUF_H
#define BHATTI_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "util.h"

struct buf {
	char *data;  /* never NULL after init; points at "" when empty */
	size_t len;
	size_t cap;  /* 0 while data points at the static empty string */
};

extern char buf_empty[];
#define BUF_INIT { buf_empty, 0, 0 }

void buf_init(struct buf *b);
void buf_release(struct buf *b);

/* Make room for at least extra more bytes (plus the NUL). */
void buf_grow(struct buf *b, size_t extra);

void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addch(struct buf *b, char c);
void buf_addf(struct buf *b, const char *fmt, ...) PRINTF(2, 3);
void buf_vaddf(struct buf *b, const char *fmt, va_list ap);

/* Set the length (must be <= cap) after writing into data directly. */
void buf_setlen(struct buf *b, size_t len);
void buf_reset(struct buf *b);

/* Drop the first n bytes (n is clamped to len). */
void buf_consume(struct buf *b, size_t n);

/* Hand the heap string to the caller (who frees it); b is reset. */
char *buf_detach(struct buf *b, size_t *ret_len);

#endif
