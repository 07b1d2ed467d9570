/* fuzz-wsc.c — libFuzzer target for the client library's WebSocket
 * decoder (client/wsc.c): the input is what a server sent, fed to
 * wsc_take() three ways: whole, in pieces whose sizes the input picks, and
 * one byte at a time.
 *
 * Oracles beyond "no crash, no leak":
 *   - the three feedings take the same messages (opcode and bytes) and end
 *     the same way (more bytes needed, or the same error);
 *   - a message taken is one wsc.h allows: a data opcode or a control one,
 *     a control message of at most 125 bytes, nothing over WSC_MAX_MESSAGE;
 *   - bytes are consumed only with a message or into a fragmented one;
 *   - every message decodes back from a frame the test encodes the way a
 *     server does (the frame layout is the same both ways).
 * Build and run: `make fuzz` (docs/testing.md).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "helpers.h"
#include "wsc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a feeding took: each message as opcode, length, bytes; then how it
 * ended (0: wanted more, or the error). */
struct record {
	struct buf msgs;
	int end;
	unsigned count;
};

static void take_all(struct wsc *w, struct buf *in, struct record *r)
{
	for (;;) {
		int op = -1;
		size_t before = in->len;
		int rc = wsc_take(w, in, &op);
		if (rc == 0) {
			if (in->len != before && w->partial_op < 0)
				abort();   /* consumed, but neither a message nor a fragment */
			return;
		}
		if (rc < 0) {
			if (rc != -EPROTO && rc != -EMSGSIZE)
				abort();
			r->end = rc;
			return;
		}
		if (rc != 1)
			abort();
		bool control = op == WSC_CLOSE || op == WSC_PING || op == WSC_PONG;
		if (!control && op != WSC_TEXT && op != WSC_BINARY)
			abort();
		if ((control && w->msg.len > 125) || w->msg.len > WSC_MAX_MESSAGE)
			abort();
		uint64_t len = w->msg.len;
		buf_addch(&r->msgs, (char)op);
		buf_add(&r->msgs, &len, sizeof(len));
		buf_add(&r->msgs, w->msg.data, w->msg.len);
		r->count++;
	}
}

/* Feed data[0..size) in pieces: sizes from the step function. */
static void feed(const uint8_t *data, size_t size, size_t (*step)(size_t off, void *arg),
		 void *arg, struct record *r)
{
	struct wsc w;
	struct buf in = BUF_INIT;
	wsc_init(&w);
	buf_init(&r->msgs);
	r->end = 0;
	r->count = 0;
	for (size_t off = 0; off < size && !r->end;) {
		size_t n = MIN(step(off, arg), size - off);
		buf_add(&in, data + off, n);
		off += n;
		take_all(&w, &in, r);
	}
	wsc_release(&w);
	buf_release(&in);
}

static size_t whole(size_t off UNUSED, void *arg)
{
	return *(size_t *)arg;
}

static size_t one(size_t off UNUSED, void *arg UNUSED)
{
	return 1;
}

/* Piece sizes 1..256 read from the input itself. */
static size_t picked(size_t off, void *arg)
{
	const uint8_t *d = arg;
	return (size_t)d[off] + 1;
}

/* A server's frame (unmasked, FIN) of msg, decoded again. */
static void round_trip(int op, const uint8_t *p, size_t n)
{
	struct buf f = BUF_INIT;
	ws_server_frame(&f, true, op, p, n);
	struct wsc w;
	wsc_init(&w);
	int got = -1;
	if (wsc_take(&w, &f, &got) != 1 || got != op || w.msg.len != n ||
	    (n && memcmp(w.msg.data, p, n) != 0) || f.len != 0)
		abort();
	wsc_release(&w);
	buf_release(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct record a, b, c;
	size_t all = size ? size : 1;
	feed(data, size, whole, &all, &a);
	feed(data, size, one, NULL, &b);
	feed(data, size, picked, (void *)data, &c);
	if (a.end != b.end || a.end != c.end || a.count != b.count || a.count != c.count ||
	    a.msgs.len != b.msgs.len || a.msgs.len != c.msgs.len ||
	    memcmp(a.msgs.data, b.msgs.data, a.msgs.len) != 0 ||
	    memcmp(a.msgs.data, c.msgs.data, a.msgs.len) != 0) {
		fprintf(stderr, "whole: %u messages, end %d; bytewise: %u, %d; pieces: %u, %d\n",
			a.count, a.end, b.count, b.end, c.count, c.end);
		abort();
	}
	for (size_t off = 0; off < a.msgs.len;) {
		int op = (uint8_t)a.msgs.data[off];
		uint64_t len;
		memcpy(&len, a.msgs.data + off + 1, sizeof(len));
		round_trip(op, (const uint8_t *)a.msgs.data + off + 1 + sizeof(len), (size_t)len);
		off += 1 + sizeof(len) + (size_t)len;
	}
	buf_release(&a.msgs);
	buf_release(&b.msgs);
	buf_release(&c.msgs);
	return 0;
}
