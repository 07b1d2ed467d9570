/* wire.c — bounded readers and appending writers for message bodies
 * (see wire.h). Sits under proto.c; touches only memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* Upper bound on vector entries: each entry needs >= 4 bytes on the wire,
 * so the real bound is left/4; this just keeps the vector allocation sane. */
#define WIRE_STRV_MAX 65536

void wire_rd_init(struct wire_rd *rd, const void *p, size_t n)
{
	rd->p = p;
	rd->left = n;
	rd->err = 0;
}

static const uint8_t *take(struct wire_rd *rd, size_t n)
{
	if (rd->err)
		return NULL;
	if (n > rd->left) {
		rd->err = -EPROTO;
		return NULL;
	}
	const uint8_t *p = rd->p;
	rd->p += n;
	rd->left -= n;
	return p;
}

uint8_t wire_get_u8(struct wire_rd *rd)
{
	const uint8_t *p = take(rd, 1);
	return p ? p[0] : 0;
}

uint16_t wire_get_u16(struct wire_rd *rd)
{
	const uint8_t *p = take(rd, 2);
	return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

uint32_t wire_get_u32(struct wire_rd *rd)
{
	const uint8_t *p = take(rd, 4);
	return p ? wire_le32(p) : 0;
}

uint64_t wire_get_u64(struct wire_rd *rd)
{
	const uint8_t *p = take(rd, 8);
	return p ? (uint64_t)wire_le32(p) | (uint64_t)wire_le32(p + 4) << 32 : 0;
}

char *wire_get_str(struct wire_rd *rd)
{
	uint32_t n = wire_get_u32(rd);
	const uint8_t *p = take(rd, n);
	if (!p)
		return NULL;
	if (memchr(p, 0, n)) {
		rd->err = -EPROTO;
		return NULL;
	}
	char *s = xmalloc((size_t)n + 1);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

char **wire_get_strv(struct wire_rd *rd)
{
	uint32_t n = wire_get_u32(rd);
	if (rd->err)
		return NULL;
	if (n > WIRE_STRV_MAX || n > rd->left / 4) {
		rd->err = -EPROTO;
		return NULL;
	}
	char **v = xcalloc((size_t)n + 1, sizeof(*v));
	for (uint32_t i = 0; i < n; i++) {
		v[i] = wire_get_str(rd);
		if (!v[i]) {
			strv_free(v);
			return NULL;
		}
	}
	return v;
}

uint8_t *wire_get_bytes(struct wire_rd *rd, size_t *ret_len)
{
	uint32_t n = wire_get_u32(rd);
	const uint8_t *p = take(rd, n);
	if (!p)
		return NULL;
	uint8_t *c = xmalloc(n ? n : 1);
	memcpy(c, p, n);
	*ret_len = n;
	return c;
}

void wire_put_u8(struct buf *b, uint8_t v)
{
	buf_add(b, &v, 1);
}

void wire_put_u16(struct buf *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	buf_add(b, p, 2);
}

void wire_put_u32(struct buf *b, uint32_t v)
{
	uint8_t p[4];
	wire_set_le32(p, v);
	buf_add(b, p, 4);
}

void wire_put_u64(struct buf *b, uint64_t v)
{
	wire_put_u32(b, (uint32_t)v);
	wire_put_u32(b, (uint32_t)(v >> 32));
}

void wire_put_str(struct buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	wire_put_u32(b, (uint32_t)n);
	buf_add(b, s ? s : "", n);
}

void wire_put_strv(struct buf *b, char *const *v)
{
	size_t n = strv_len(v);
	wire_put_u32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		wire_put_str(b, v[i]);
}

void wire_put_bytes(struct buf *b, const void *p, size_t n)
{
	wire_put_u32(b, (uint32_t)n);
	buf_add(b, p, n);
}
