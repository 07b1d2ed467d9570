/* test-client-wsc.c — unit tests for client/wsc.c, the WebSocket client
 * codec of the client library (RFC 6455): our client frames are masked
 * and decode back; server frames of every length encoding; fragmented
 * messages joined; a control frame between fragments; messages fed one
 * byte at a time; the protocol errors (reserved bits, an unknown opcode,
 * a masked server frame, a long or fragmented control frame, a
 * continuation without a start, a new message inside a fragmented one, a
 * message over WSC_MAX_MESSAGE by its header and by its fragments); and
 * the handshake's key and accept values (RFC 6455's own example).
 * Sits between cmocka and wsc.h; memory only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "util.h"
#include "wsc.h"

/* A server frame (unmasked) as a peer would send it. */
#define server_frame ws_server_frame

struct dec {
	struct wsc w;
	int op;
	struct buf msg;   /* the last message taken */
};

static void dec_init(struct dec *d)
{
	wsc_init(&d->w);
	buf_init(&d->msg);
	d->op = -1;
}

static void dec_release(struct dec *d)
{
	wsc_release(&d->w);
	buf_release(&d->msg);
}

static int take(struct buf *in, struct dec *d)
{
	int r = wsc_take(&d->w, in, &d->op);
	if (r == 1) {
		buf_reset(&d->msg);
		buf_add(&d->msg, d->w.msg.data, d->w.msg.len);
	}
	return r;
}

/* Our own client frame as the server gets it, unmasked: a server frame. */
static void unmask(struct buf *f)
{
	uint8_t *d = (uint8_t *)f->data;
	size_t hl = (d[1] & 0x7f) == 126 ? 4 : (d[1] & 0x7f) == 127 ? 10 : 2;
	uint8_t mask[4];
	memcpy(mask, d + hl, 4);
	d[1] &= 0x7f;
	for (size_t i = 0; i < f->len - hl - 4; i++)
		d[hl + 4 + i] ^= mask[i & 3];
	memmove(d + hl, d + hl + 4, f->len - hl - 4);
	buf_setlen(f, f->len - 4);
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
		wsc_frame(&f, WSC_BINARY, p, n);
		const uint8_t *d = (const uint8_t *)f.data;
		assert_int_equal(d[0], 0x80 | WSC_BINARY);
		assert_true(d[1] & 0x80); /* masked, as a client must */
		if (n >= 16) /* the payload on the wire is not the plain text */
			assert_memory_not_equal(f.data + f.len - n, p, 16);
		/* a decoder refuses a masked frame (only clients mask) ... */
		struct dec dm;
		dec_init(&dm);
		struct buf copy = BUF_INIT;
		buf_add(&copy, f.data, f.len);
		assert_int_equal(take(&copy, &dm), -EPROTO);
		buf_release(&copy);
		dec_release(&dm);
		/* ... and takes it unmasked, as the server read it */
		unmask(&f);
		struct dec dc;
		dec_init(&dc);
		assert_int_equal(take(&f, &dc), 1);
		assert_int_equal(dc.op, WSC_BINARY);
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
	server_frame(&in, false, WSC_TEXT, "hel", 3);
	server_frame(&in, true, WSC_PING, "p", 1);   /* allowed between fragments */
	server_frame(&in, false, WSC_CONT, "lo ", 3);
	server_frame(&in, true, WSC_CONT, "world", 5);
	struct dec d;
	dec_init(&d);
	assert_int_equal(take(&in, &d), 1);
	assert_int_equal(d.op, WSC_PING);
	assert_memory_equal(d.msg.data, "p", 1);
	assert_int_equal(take(&in, &d), 1);
	assert_int_equal(d.op, WSC_TEXT);
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
	server_frame(&whole, true, WSC_BINARY, big, sizeof(big));   /* 8-byte length */
	server_frame(&whole, true, WSC_TEXT, "{\"type\":\"exit\"}", 15);
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
				assert_int_equal(d.op, WSC_TEXT);
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
	/* opcodes RFC 6455 does not define */
	static const int unknown[] = { 3, 7, 11, 15 };
	for (size_t i = 0; i < ARRAY_SIZE(unknown); i++) {
		dec_init(&d);
		server_frame(&in, true, unknown[i], "x", 1);
		assert_int_equal(take(&in, &d), -EPROTO);
		dec_release(&d);
		buf_reset(&in);
	}
	/* a control frame over 125 bytes */
	dec_init(&d);
	server_frame(&in, true, WSC_PING, long_ping, sizeof(long_ping));
	assert_int_equal(take(&in, &d), -EPROTO);
	dec_release(&d);
	buf_reset(&in);
	/* a fragmented control frame */
	dec_init(&d);
	server_frame(&in, false, WSC_PING, "p", 1);
	assert_int_equal(take(&in, &d), -EPROTO);
	dec_release(&d);
	buf_reset(&in);
	/* a continuation with no message started */
	dec_init(&d);
	server_frame(&in, true, WSC_CONT, "x", 1);
	assert_int_equal(take(&in, &d), -EPROTO);
	dec_release(&d);
	buf_reset(&in);
	/* a new message inside a fragmented one */
	dec_init(&d);
	server_frame(&in, false, WSC_TEXT, "a", 1);
	server_frame(&in, true, WSC_TEXT, "b", 1);
	assert_int_equal(take(&in, &d), -EPROTO);
	dec_release(&d);
	buf_reset(&in);
	/* a length over the limit, refused from the header alone */
	dec_init(&d);
	uint8_t h[10] = { 0x80 | WSC_BINARY, 127, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff };
	buf_add(&in, h, sizeof(h));
	assert_int_equal(take(&in, &d), -EMSGSIZE);
	dec_release(&d);
	buf_reset(&in);
	/* fragments that add up to more than the limit */
	dec_init(&d);
	char *chunk = xcalloc(1, WSC_MAX_MESSAGE / 2 + 1);
	server_frame(&in, false, WSC_BINARY, chunk, WSC_MAX_MESSAGE / 2 + 1);
	server_frame(&in, true, WSC_CONT, chunk, WSC_MAX_MESSAGE / 2 + 1);
	assert_int_equal(take(&in, &d), -EMSGSIZE);
	free(chunk);
	dec_release(&d);
	buf_release(&in);
}

static void test_handshake_values(void **state)
{
	(void)state;
	/* RFC 6455, section 1.3 */
	char accept[WSC_ACCEPT_LEN];
	wsc_accept("dGhlIHNhbXBsZSBub25jZQ==", accept);
	assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	char k1[WSC_KEY_LEN], k2[WSC_KEY_LEN];
	wsc_key(k1);
	wsc_key(k2);
	assert_int_equal(strlen(k1), 24);   /* 16 random bytes in base64 */
	assert_int_equal(k1[22], '=');
	assert_string_not_equal(k1, k2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_frames_are_masked_and_decode),
		cmocka_unit_test(test_fragments_and_control_between),
		cmocka_unit_test(test_split_across_reads),
		cmocka_unit_test(test_protocol_errors),
		cmocka_unit_test(test_handshake_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
