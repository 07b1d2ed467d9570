/* test-ring.c — unit tests for shared/ring.c, the bounded byte ring with
 * absolute offsets, checked against a model that keeps every byte. Sits
 * between cmocka and ring.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "buf.h"
#include "ring.h"

static void test_init(void **state)
{
	(void)state;
	struct ring r;
	const uint8_t *p = NULL;
	uint64_t from = 77;

	ring_init(&r, 16);
	assert_int_equal(r.cap, 16);
	assert_int_equal(ring_len(&r), 0);
	assert_int_equal(ring_start(&r), 0);
	assert_int_equal(ring_peek(&r, 0, &p, &from), 0);
	assert_int_equal(from, 0);
	assert_int_equal(ring_copy(&r, 0, NULL, 0), 0);
	ring_release(&r);
	assert_null(r.data);

	ring_init(&r, 0);  /* a zero capacity becomes 1 */
	assert_int_equal(r.cap, 1);
	ring_write(&r, "abc", 3);
	assert_int_equal(ring_len(&r), 1);
	assert_int_equal(ring_start(&r), 2);
	char c = 0;
	assert_int_equal(ring_copy(&r, 0, &c, 1), 1);
	assert_int_equal(c, 'c');
	ring_release(&r);
}

static void test_simple(void **state)
{
	(void)state;
	struct ring r;
	char out[16];

	ring_init(&r, 8);
	ring_write(&r, "hello", 5);
	assert_int_equal(ring_len(&r), 5);
	assert_int_equal(ring_start(&r), 0);
	assert_int_equal(r.head, 5);
	assert_int_equal(ring_copy(&r, 0, out, sizeof(out)), 5);
	assert_memory_equal(out, "hello", 5);
	assert_int_equal(ring_copy(&r, 2, out, sizeof(out)), 3);
	assert_memory_equal(out, "llo", 3);
	assert_int_equal(ring_copy(&r, 1, out, 2), 2);  /* n caps the copy */
	assert_memory_equal(out, "el", 2);
	assert_int_equal(ring_copy(&r, 5, out, sizeof(out)), 0);
	assert_int_equal(ring_copy(&r, 500, out, sizeof(out)), 0);
	ring_write(&r, "", 0);
	assert_int_equal(r.head, 5);

	ring_write(&r, "abc", 3);   /* exactly full */
	assert_int_equal(ring_len(&r), 8);
	assert_int_equal(ring_start(&r), 0);
	assert_int_equal(ring_copy(&r, 0, out, sizeof(out)), 8);
	assert_memory_equal(out, "helloabc", 8);
	ring_release(&r);
}

static void test_overflow_keeps_tail(void **state)
{
	(void)state;
	struct ring r;
	char out[32];
	const uint8_t *p;
	uint64_t from;

	/* one write longer than the capacity keeps exactly the last cap bytes */
	ring_init(&r, 8);
	ring_write(&r, "0123456789abcdefghij", 20);
	assert_int_equal(r.head, 20);
	assert_int_equal(ring_len(&r), 8);
	assert_int_equal(ring_start(&r), 12);
	assert_int_equal(ring_copy(&r, 0, out, sizeof(out)), 8);
	assert_memory_equal(out, "cdefghij", 8);

	/* the same after a wrap, starting mid-ring */
	ring_write(&r, "XYZ", 3);
	assert_int_equal(ring_copy(&r, 0, out, sizeof(out)), 8);
	assert_memory_equal(out, "fghijXYZ", 8);
	ring_write(&r, "ABCDEFGHIJK", 11);
	assert_int_equal(r.head, 34);
	assert_int_equal(ring_start(&r), 26);
	assert_int_equal(ring_copy(&r, 0, out, sizeof(out)), 8);
	assert_memory_equal(out, "DEFGHIJK", 8);

	/* offsets before the start are clamped up to it */
	assert_int_equal(ring_peek(&r, 3, &p, &from), ring_peek(&r, 26, &p, &from));
	assert_int_equal(from, 26);
	assert_int_equal(ring_copy(&r, 25, out, 3), 3);
	assert_memory_equal(out, "DEF", 3);
	ring_release(&r);
}

static void test_peek_across_wrap(void **state)
{
	(void)state;
	struct ring r;
	const uint8_t *p;
	uint64_t from;
	char out[16];

	ring_init(&r, 10);
	ring_write(&r, "abcdefgh", 8);
	ring_write(&r, "ijklmn", 6);  /* head 14: positions 4..9 then 0..3 */
	assert_int_equal(ring_start(&r), 4);

	/* the first run stops at the physical end of the ring */
	size_t n = ring_peek(&r, 4, &p, &from);
	assert_int_equal(from, 4);
	assert_int_equal(n, 6);
	assert_memory_equal(p, "efghij", 6);
	n = ring_peek(&r, from + n, &p, &from);
	assert_int_equal(from, 10);
	assert_int_equal(n, 4);
	assert_memory_equal(p, "klmn", 4);
	n = ring_peek(&r, 14, &p, &from);
	assert_int_equal(n, 0);
	n = ring_peek(&r, 12, &p, NULL);  /* ret_from may be NULL */
	assert_int_equal(n, 2);
	assert_memory_equal(p, "mn", 2);
	n = ring_peek(&r, 7, &p, &from);
	assert_int_equal(n, 3);
	assert_memory_equal(p, "hij", 3);

	/* copy stitches the two runs */
	assert_int_equal(ring_copy(&r, 8, out, sizeof(out)), 6);
	assert_memory_equal(out, "ijklmn", 6);
	assert_int_equal(ring_copy(&r, 0, out, sizeof(out)), 10);
	assert_memory_equal(out, "efghijklmn", 10);
	ring_release(&r);
}

static uint32_t rng_state = 12345;

static uint32_t rnd(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/* Random writes against a model keeping every byte: contents, offsets and
 * peek runs must agree after every write. */
static void test_against_model(void **state)
{
	(void)state;
	static const size_t caps[] = { 1, 2, 7, 64, 1000 };

	for (size_t c = 0; c < ARRAY_SIZE(caps); c++) {
		size_t cap = caps[c];
		struct ring r;
		struct buf all = BUF_INIT;
		uint8_t chunk[2600], out[1100];

		ring_init(&r, cap);
		for (int round = 0; round < 400; round++) {
			size_t n = rnd() % (2 * cap + 3);
			for (size_t i = 0; i < n; i++)
				chunk[i] = (uint8_t)rnd();
			ring_write(&r, chunk, n);
			buf_add(&all, chunk, n);

			uint64_t head = all.len;
			uint64_t start = head > cap ? head - cap : 0;
			assert_int_equal(r.head, head);
			assert_int_equal(ring_start(&r), start);
			assert_int_equal(ring_len(&r), head - start);

			uint64_t at = head ? rnd() % (head + 2) : 0;
			uint64_t eff = at < start ? start : at;
			size_t want = eff < head ? (size_t)(head - eff) : 0;
			assert_int_equal(ring_copy(&r, at, out, sizeof(out)), want);
			assert_memory_equal(out, all.data + eff, want);

			const uint8_t *p;
			uint64_t from;
			size_t k = ring_peek(&r, at, &p, &from);
			assert_int_equal(from, at < start ? start : at);
			assert_true(k <= want);
			assert_true(k <= cap - (size_t)(eff % cap) || k == 0);
			if (want)
				assert_true(k > 0);
			assert_memory_equal(p, all.data + eff, k);
		}
		ring_release(&r);
		buf_release(&all);
	}
}

static void test_large_offsets(void **state)
{
	(void)state;
	struct ring r;
	char out[8];

	/* a long-lived stream: offsets far past 4 GiB still map correctly */
	ring_init(&r, 6);
	r.head = (1ull << 40) + 3;  /* as if that much had been written */
	ring_write(&r, "uvwxyz", 6);
	assert_int_equal(ring_start(&r), (1ull << 40) + 3);
	assert_int_equal(ring_copy(&r, (1ull << 40) + 5, out, sizeof(out)), 4);
	assert_memory_equal(out, "wxyz", 4);
	ring_release(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_overflow_keeps_tail),
		cmocka_unit_test(test_peek_across_wrap),
		cmocka_unit_test(test_against_model),
		cmocka_unit_test(test_large_offsets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
