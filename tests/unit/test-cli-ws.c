/* test-cli-ws.c — unit tests for the WebSocket frame codec of the CLI
 * (cli/ws.c, RFC 6455): our client frames are masked and decode back;
 * server frames of every length encoding; fragmented messages joined; a
 * control frame between fragments; messages split across reads; and the
 * protocol errors (reserved bits, a long or fragmented control frame, a
 * continuation without a start, a new message inside a fragmented one, a
 * message over WS_MAX_MESSAGE).
 * Sits between cmocka and ws.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "ws.h"

/* A server frame (unmasked) as a peer would send it. */
static void server_frame(struct buf *out, bool fin, int opcode, const void *p, size_t n)
{
	uint8_t h[10];
	size_t hl = 0;
	h[hl++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
	if (n < 126) {
		h[hl++] = (uint8_t)n;
	} else if (n <= 0xffff) {
		h[hl++] = 126;
		h[hl++] = (uint8_t)(n >> 8);
		h[hl++] = (uint8_t)n;
	} else {
		h[hl++] = 127;
		for (int i = 7; i >= 0; i--)
			h[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	buf_add(out, h, hl);
	buf_add(out, p, n);
}

struct dec {
	struct buf partial, msg;
	int partial_op;
	int op;
};

static void dec_init(struct dec *d)
{
	buf_init(&d->partial);
	buf_init(&d->msg);
	d->partial_op = -1;
	d->op = -1;
}

static void dec_release(struct dec *d)
{
	buf_release(&d->partial);
	buf_release(&d->msg);
}

static int take(struct buf *in, struct dec *d)
{
	return ws_take(in, &d->partial, &d->partial_op, &d->op, &d->msg);
}

static void test_client_frames_are_masked_and_decode(void **state)
{
	(void)state;
	size_t sizes[] = { 0, 5, 125, 126, 65535, 65536, 200000 };
	for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
		size_t n = sizes[k];
		char *p = xmalloc(n + 1);
		for (size_t i = 0; i < n; i++)
			p[i] = (char)('a' + i % 26);
		struct buf f = BUF_INIT;
		ws_frame(&f, WS_BINARY, p, n);
		const uint8_t *d = (const uint8_t *)f.data;
		assert_int_equal(d[0], 0x80 | WS_BINARY);
		assert_true(d[1] & 0x80); /* masked, as a client must */
		if (n >= 16) /* the payload on the wire is not the plain text */
			assert_memory_not_equal(f.data + f.len - n, p, 16);
		struct dec dc;
		dec_init(&dc);
		assert_int_equal(take(&f, &dc), 1);
		assert_int_equal(dc.op, WS_BINARY);
		assert_int_equal(dc.msg.len, n);
		if (n)
			assert_memory_equal(dc.msg.data, p, n);
		assert_int_equal(f.len, 0);
		dec_release(&dc);
		buf_release(&f);
		free(p);
	}
}

static void test_fragments_and_control_between(void **state)
{
	(void)state;
	struct buf in = BUF_INIT;
	server_frame(&in, false, WS_TEXT, "hel", 3);
	server_frame(&in, true, WS_PING, "p", 1);   /* allowed between fragments */
	server_frame(&in, false, WS_CONT, "lo ", 3);
	server_frame(&in, true, WS_CONT, "world", 5);
	struct dec d;
	dec_init(&d);
	assert_int_equal(take(&in, &d), 1);
	assert_int_equal(d.op, WS_PING);
	assert_memory_equal(d.msg.data, "p", 1);
	assert_int_equal(take(&in, &d), 1);
	assert_int_equal(d.op, WS_TEXT);
	assert_int_equal(d.msg.len, 11);
	assert_memory_equal(d.msg.data, "hello world", 11);
	assert_int_equal(take(&in, &d), 0);
	dec_release(&d);
	buf_release(&in);
}

static void test_split_across_reads(void **state)
{
	(void)state;
	struct buf whole = BUF_INIT;
	char big[70000];
	memset(big, 'z', sizeof(big));
	server_frame(&whole, true, WS_BINARY, big, sizeof(big));   /* 8-byte length */
	server_frame(&whole, true, WS_TEXT, "{\"type\":\"exit\"}", 15);
	/* feed it one byte at a time: nothing comes out early, all comes out */
	struct buf in = BUF_INIT;
	struct dec d;
	dec_init(&d);
	int got = 0;
	for (size_t i = 0; i < whole.len; i++) {
		buf_add(&in, whole.data + i, 1);
		int r;
		while ((r = take(&in, &d)) == 1) {
			got++;
			if (got == 1) {
				assert_int_equal(i, 10 + sizeof(big) - 1);
				assert_int_equal(d.msg.len, sizeof(big));
			} else {
				assert_int_equal(d.op, WS_TEXT);
				assert_memory_equal(d.msg.data, "{\"type\":\"exit\"}", 15);
			}
		}
		assert_int_equal(r, 0);
	}
	assert_int_equal(got, 2);
	dec_release(&d);
	buf_release(&in);
	buf_release(&whole);
}

static void test_protocol_errors(void **state)
{
	(void)state;
	char long_ping[126];
	memset(long_ping, 'x', sizeof(long_ping));
	struct buf in = BUF_INIT;
	struct dec d;

	/* reserved bits (no extension was negotiated) */
	dec_init(&d);
	buf_add(&in, "\xc1\x01x", 3);
	assert_int_equal(take(&in, &d), -EPROTO);
	dec_release(&d);
	buf_reset(&in);
	/* a control frame over 125 bytes */
	dec_init(&d);
	server_frame(&in, true, WS_PING, long_ping, sizeof(long_ping));
	assert_int_equal(take(&in, &d), -EPROTO);
	dec_release(&d);
	buf_reset(&in);
	/* a fragmented control frame */
	dec_init(&d);
	server_frame(&in, false, WS_PING, "p", 1);
	assert_int_equal(take(&in, &d), -EPROTO);
	dec_release(&d);
	buf_reset(&in);
	/* a continuation with no message started */
	dec_init(&d);
	server_frame(&in, true, WS_CONT, "x", 1);
	assert_int_equal(take(&in, &d), -EPROTO);
	dec_release(&d);
	buf_reset(&in);
	/* a new message inside a fragmented one */
	dec_init(&d);
	server_frame(&in, false, WS_TEXT, "a", 1);
	server_frame(&in, true, WS_TEXT, "b", 1);
	assert_int_equal(take(&in, &d), -EPROTO);
	dec_release(&d);
	buf_reset(&in);
	/* a length over the limit, refused from the header alone */
	dec_init(&d);
	uint8_t h[10] = { 0x80 | WS_BINARY, 127, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff };
	buf_add(&in, h, sizeof(h));
	assert_int_equal(take(&in, &d), -EMSGSIZE);
	dec_release(&d);
	buf_reset(&in);
	/* fragments that add up to more than the limit */
	dec_init(&d);
	char *chunk = xcalloc(1, WS_MAX_MESSAGE / 2 + 1);
	server_frame(&in, false, WS_BINARY, chunk, WS_MAX_MESSAGE / 2 + 1);
	server_frame(&in, true, WS_CONT, chunk, WS_MAX_MESSAGE / 2 + 1);
	assert_int_equal(take(&in, &d), -EMSGSIZE);
	free(chunk);
	dec_release(&d);
	buf_release(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_frames_are_masked_and_decode),
		cmocka_unit_test(test_fragments_and_control_between),
		cmocka_unit_test(test_split_across_reads),
		cmocka_unit_test(test_protocol_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
