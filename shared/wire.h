/* wire — the byte-level encoding of protocol message bodies.
 *
 * Little-endian fixed-width integers, strings as u32 length + bytes (no NUL
 * on the wire), string vectors as u32 count + strings, byte blobs as u32
 * length + bytes. Writers append to a struct buf. Readers walk a bounded
 * slice and never read past it: the first failure sets rd->err and every
 * later read returns zero/NULL, so a decoder checks once at the end.
 * Nothing here trusts a length: counts and sizes are checked against the
 * bytes actually left before any allocation.
 */
#ifndef BHATTI_WIRE_H
#define BHATTI_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct wire_rd {
	const uint8_t *p;
	size_t left;
	int err;        /* 0, or negative errno of the first failure */
};

void wire_rd_init(struct wire_rd *rd, const void *p, size_t n);

uint8_t wire_get_u8(struct wire_rd *rd);
uint16_t wire_get_u16(struct wire_rd *rd);
uint32_t wire_get_u32(struct wire_rd *rd);
uint64_t wire_get_u64(struct wire_rd *rd);
/* Heap string (caller frees); embedded NUL bytes are rejected. */
char *wire_get_str(struct wire_rd *rd);
/* NULL-terminated heap vector (caller frees with strv_free). */
char **wire_get_strv(struct wire_rd *rd);
/* Heap copy of a blob (caller frees); *ret_len gets its size. */
uint8_t *wire_get_bytes(struct wire_rd *rd, size_t *ret_len);

void wire_put_u8(struct buf *b, uint8_t v);
void wire_put_u16(struct buf *b, uint16_t v);
void wire_put_u32(struct buf *b, uint32_t v);
void wire_put_u64(struct buf *b, uint64_t v);
void wire_put_str(struct buf *b, const char *s);      /* NULL = "" */
void wire_put_strv(struct buf *b, char *const *v);    /* NULL = empty */
void wire_put_bytes(struct buf *b, const void *p, size_t n);

/* Raw little-endian helpers for the frame header. */
static inline uint32_t wire_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline void wire_set_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

#endif
