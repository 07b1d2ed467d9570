/* ring.c — bounded byte ring with absolute offsets (see ring.h). */
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "util.h"

void ring_init(struct ring *r, size_t cap)
{
	r->data = xmalloc(cap ? cap : 1);
	r->cap = cap ? cap : 1;
	r->head = 0;
}

void ring_release(struct ring *r)
{
	free(r->data);
	r->data = NULL;
	r->cap = 0;
	r->head = 0;
}

void ring_write(struct ring *r, const void *p, size_t n)
{
	const uint8_t *s = p;
	if (n > r->cap) { /* only the tail survives */
		s += n - r->cap;
		r->head += n - r->cap;
		n = r->cap;
	}
	size_t pos = (size_t)(r->head % r->cap);
	size_t first = MIN(n, r->cap - pos);
	memcpy(r->data + pos, s, first);
	memcpy(r->data, s + first, n - first);
	r->head += n;
}

size_t ring_len(const struct ring *r)
{
	return r->head < r->cap ? (size_t)r->head : r->cap;
}

uint64_t ring_start(const struct ring *r)
{
	return r->head - ring_len(r);
}

size_t ring_peek(const struct ring *r, uint64_t from, const uint8_t **ret_p,
		 uint64_t *ret_from)
{
	uint64_t start = ring_start(r);
	if (from < start)
		from = start;
	if (ret_from)
		*ret_from = from;
	if (from >= r->head) {
		*ret_p = r->data;
		return 0;
	}
	size_t pos = (size_t)(from % r->cap);
	size_t avail = (size_t)(r->head - from);
	*ret_p = r->data + pos;
	return MIN(avail, r->cap - pos);
}

size_t ring_copy(const struct ring *r, uint64_t from, void *dst, size_t n)
{
	size_t done = 0;
	while (done < n) {
		const uint8_t *p;
		uint64_t at;
		size_t k = ring_peek(r, from, &p, &at);
		if (k == 0)
			break;
		k = MIN(k, n - done);
		memcpy((uint8_t *)dst + done, p, k);
		done += k;
		from = at + k;
	}
	return done;
}
