/* ring — a bounded byte ring addressed by absolute stream offsets.
 *
 * Used for PTY scrollback (the last 64 KiB of a session) and bounded send
 * queues. Writes never fail: when full, the oldest bytes are overwritten.
 * Every byte ever written has an absolute offset; `head` is the offset one
 * past the newest byte, ring_start() the offset of the oldest byte kept.
 * A reader remembers an absolute offset and asks for what follows it, so
 * replay + live output has no gap and no duplicate byte.
 *
 *        start                        head
 *          v                           v
 *   ... lost | kept bytes (<= cap)     | future
 *
 * Embedded: ring_init() / ring_release().
 */
#ifndef BHATTI_RING_H
#define BHATTI_RING_H

#include <stddef.h>
#include <stdint.h>

struct ring {
	uint8_t *data;
	size_t cap;
	uint64_t head;  /* total bytes ever written */
};

void ring_init(struct ring *r, size_t cap);
void ring_release(struct ring *r);

void ring_write(struct ring *r, const void *p, size_t n);

/* Number of bytes kept, and the absolute offset of the oldest one. */
size_t ring_len(const struct ring *r);
uint64_t ring_start(const struct ring *r);

/* Point *ret_p at the longest contiguous run of kept bytes starting at
 * absolute offset `from` (clamped up to ring_start()); returns its length
 * (0 when from >= head). *ret_from gets the clamped offset when not NULL. */
size_t ring_peek(const struct ring *r, uint64_t from, const uint8_t **ret_p,
		 uint64_t *ret_from);

/* Copy up to n bytes from absolute offset `from` (clamped as above). */
size_t ring_copy(const struct ring *r, uint64_t from, void *dst, size_t n);

#endif
