/* test-wire.c — unit tests for shared/wire.c: the little-endian body
 * encoding and its bounded readers, which must never read past the end
 * (every truncation of a valid encoding sets err). Sits between cmocka
 * and wire.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static void test_layout(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	static const uint8_t want[] = {
		0xab,
		0x34, 0x12,
		0x04, 0x03, 0x02, 0x01,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0x02, 0, 0, 0, 'h', 'i',
		0x02, 0, 0, 0, 0x01, 0, 0, 0, 'a', 0, 0, 0, 0,
		0x03, 0, 0, 0, 0x00, 0xff, 0x00,
		0, 0, 0, 0,   /* NULL string = "" */
		0, 0, 0, 0,   /* NULL vector = empty */
	};
	char *v[] = { "a", "", NULL };

	wire_put_u8(&b, 0xab);
	wire_put_u16(&b, 0x1234);
	wire_put_u32(&b, 0x01020304);
	wire_put_u64(&b, 0x0102030405060708ull);
	wire_put_str(&b, "hi");
	wire_put_strv(&b, v);
	wire_put_bytes(&b, "\0\xff\0", 3);
	wire_put_str(&b, NULL);
	wire_put_strv(&b, NULL);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));

	uint8_t h[4];
	wire_set_le32(h, 0xdeadbeef);
	assert_int_equal(h[0], 0xef);
	assert_int_equal(h[3], 0xde);
	assert_int_equal(wire_le32(h), 0xdeadbeef);
	buf_release(&b);
}

/* One of everything, with edge values. */
static void encode_sample(struct buf *b)
{
	char *v[] = { "argv0", "", "with space", "\xc3\xa9", NULL };
	uint8_t blob[300];

	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 7);
	wire_put_u8(b, 0xff);
	wire_put_u16(b, 0xfffe);
	wire_put_u32(b, 0xfffffffd);
	wire_put_u64(b, UINT64_MAX - 2);
	wire_put_str(b, "hello, world");
	wire_put_strv(b, v);
	wire_put_bytes(b, blob, sizeof(blob));
	wire_put_bytes(b, NULL, 0);
	wire_put_str(b, "");
	wire_put_u8(b, 0);
}

/* Decode the sample; returns rd.err. Frees what it got either way. */
static int decode_sample(const void *p, size_t n, bool check)
{
	struct wire_rd rd;
	size_t blen = 77, elen = 77;

	wire_rd_init(&rd, p, n);
	uint8_t a = wire_get_u8(&rd);
	uint16_t b = wire_get_u16(&rd);
	uint32_t c = wire_get_u32(&rd);
	uint64_t d = wire_get_u64(&rd);
	char *s = wire_get_str(&rd);
	char **v = wire_get_strv(&rd);
	uint8_t *blob = wire_get_bytes(&rd, &blen);
	uint8_t *empty = wire_get_bytes(&rd, &elen);
	char *s2 = wire_get_str(&rd);
	uint8_t z = wire_get_u8(&rd);

	if (check) {
		assert_int_equal(rd.err, 0);
		assert_int_equal(rd.left, 0);
		assert_int_equal(a, 0xff);
		assert_int_equal(b, 0xfffe);
		assert_int_equal(c, 0xfffffffd);
		assert_true(d == UINT64_MAX - 2);
		assert_string_equal(s, "hello, world");
		assert_int_equal(strv_len(v), 4);
		assert_string_equal(v[0], "argv0");
		assert_string_equal(v[1], "");
		assert_string_equal(v[2], "with space");
		assert_string_equal(v[3], "\xc3\xa9");
		assert_int_equal(blen, 300);
		for (size_t i = 0; i < 300; i++)
			assert_int_equal(blob[i], (uint8_t)(i * 7));
		assert_non_null(empty);
		assert_int_equal(elen, 0);
		assert_string_equal(s2, "");
		assert_int_equal(z, 0);
	}
	if (rd.err) {
		/* after the first failure everything reads as zero / NULL */
		assert_int_equal(wire_get_u8(&rd), 0);
		assert_int_equal(wire_get_u64(&rd), 0);
		assert_null(wire_get_str(&rd));
		assert_null(wire_get_strv(&rd));
	}
	free(s);
	strv_free(v);
	free(blob);
	free(empty);
	free(s2);
	return rd.err;
}

static void test_roundtrip(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;

	encode_sample(&b);
	assert_int_equal(decode_sample(b.data, b.len, true), 0);
	buf_release(&b);
}

/* Every prefix of a valid encoding is refused, and no read goes past it:
 * each prefix is copied to a heap block of exactly that size, so ASan
 * reports any overread. */
static void test_every_truncation(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;

	encode_sample(&b);
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *p = xmalloc(n);
		memcpy(p, b.data, n);
		int r = decode_sample(n ? p : NULL, n, false);
		if (r != -EPROTO)
			fail_msg("prefix of %zu/%zu bytes gave %d", n, b.len, r);
		free(p);
	}
	/* an extra byte is no error for the reader (it is left over) */
	buf_addch(&b, 'x');
	assert_int_equal(decode_sample(b.data, b.len, false), 0);
	buf_release(&b);
}

static void test_lengths_not_trusted(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct wire_rd rd;
	size_t len = 5;

	/* a string claiming 4 GiB with 3 bytes behind it */
	wire_put_u32(&b, UINT32_MAX);
	buf_add(&b, "abc", 3);
	wire_rd_init(&rd, b.data, b.len);
	assert_null(wire_get_str(&rd));
	assert_int_equal(rd.err, -EPROTO);

	/* the same for a blob */
	wire_rd_init(&rd, b.data, b.len);
	assert_null(wire_get_bytes(&rd, &len));
	assert_int_equal(rd.err, -EPROTO);
	assert_int_equal(len, 5);

	/* a vector claiming 4 billion entries: refused before allocating */
	wire_rd_init(&rd, b.data, b.len);
	assert_null(wire_get_strv(&rd));
	assert_int_equal(rd.err, -EPROTO);

	/* a vector whose count needs more bytes than are left (4 per entry) */
	buf_reset(&b);
	wire_put_u32(&b, 3);
	wire_put_u32(&b, 0);
	wire_put_u32(&b, 0);
	wire_rd_init(&rd, b.data, b.len);
	assert_null(wire_get_strv(&rd));
	assert_int_equal(rd.err, -EPROTO);

	/* a vector with a bad entry frees the good ones (ASan checks) */
	buf_reset(&b);
	wire_put_u32(&b, 2);
	wire_put_str(&b, "good");
	wire_put_u32(&b, 100);
	buf_add(&b, "short", 5);
	wire_rd_init(&rd, b.data, b.len);
	assert_null(wire_get_strv(&rd));
	assert_int_equal(rd.err, -EPROTO);
	buf_release(&b);
}

static void test_embedded_nul(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct wire_rd rd;
	size_t len = 0;

	wire_put_bytes(&b, "a\0b", 3);   /* fine as bytes, not as a string */
	wire_rd_init(&rd, b.data, b.len);
	uint8_t *p = wire_get_bytes(&rd, &len);
	assert_int_equal(rd.err, 0);
	assert_int_equal(len, 3);
	assert_memory_equal(p, "a\0b", 3);
	free(p);

	wire_rd_init(&rd, b.data, b.len);
	assert_null(wire_get_str(&rd));
	assert_int_equal(rd.err, -EPROTO);

	buf_reset(&b);
	wire_put_u32(&b, 1);
	wire_put_bytes(&b, "\0", 1);
	wire_rd_init(&rd, b.data, b.len);
	assert_null(wire_get_strv(&rd));
	assert_int_equal(rd.err, -EPROTO);
	buf_release(&b);
}

static void test_empty_reader(void **state)
{
	(void)state;
	struct wire_rd rd;

	wire_rd_init(&rd, NULL, 0);
	assert_int_equal(wire_get_u8(&rd), 0);
	assert_int_equal(rd.err, -EPROTO);
	wire_rd_init(&rd, "\x01\x02", 2);
	assert_int_equal(wire_get_u32(&rd), 0);  /* all or nothing */
	assert_int_equal(rd.err, -EPROTO);
	assert_int_equal(rd.left, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_lengths_not_trusted),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_empty_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
