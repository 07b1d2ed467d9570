/* test-num.c — unit tests for shared/num.c: strict whole numbers, sizes
 * and durations (overflow, signs, spaces, empty, units). Sits between
 * cmocka and num.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "num.h"

#define SENTINEL 0x5a5a5a5a5a5a5a5aull

/* s must fail with code, leave the output alone and name "what". */
static void u64_fails(const char *s, uint64_t min, uint64_t max, int code)
{
	uint64_t v = SENTINEL;
	struct err e = ERR_INIT;
	int r = num_parse_u64(s, min, max, &v, "cpus", &e);
	if (r != code)
		fail_msg("'%s': got %d, want %d", s ? s : "(null)", r, code);
	assert_true(v == SENTINEL);
	assert_int_equal(e.code, -code);
	assert_int_equal(strncmp(e.msg, "cpus: ", 6), 0);
}

static void i64_fails(const char *s, int64_t min, int64_t max, int code)
{
	int64_t v = (int64_t)SENTINEL;
	struct err e = ERR_INIT;
	int r = num_parse_i64(s, min, max, &v, "delta", &e);
	if (r != code)
		fail_msg("'%s': got %d, want %d", s ? s : "(null)", r, code);
	assert_true(v == (int64_t)SENTINEL);
	assert_int_equal(strncmp(e.msg, "delta: ", 7), 0);
}

static void test_u64(void **state)
{
	(void)state;
	uint64_t v;
	struct err e = ERR_INIT;

	assert_int_equal(num_parse_u64("0", 0, UINT64_MAX, &v, "n", &e), 0);
	assert_true(v == 0);
	assert_int_equal(num_parse_u64("42", 0, UINT64_MAX, &v, "n", &e), 0);
	assert_true(v == 42);
	assert_int_equal(num_parse_u64("007", 0, UINT64_MAX, &v, "n", &e), 0);
	assert_true(v == 7);
	assert_int_equal(num_parse_u64("18446744073709551615", 0, UINT64_MAX, &v, "n", &e), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(num_parse_u64("64", 1, 64, &v, "n", &e), 0);
	assert_int_equal(num_parse_u64("1", 1, 64, &v, "n", &e), 0);
	assert_true(v == 1);

	u64_fails("18446744073709551616", 0, UINT64_MAX, -ERANGE);
	u64_fails("99999999999999999999999", 0, UINT64_MAX, -ERANGE);
	u64_fails("65", 1, 64, -ERANGE);
	u64_fails("0", 1, 64, -ERANGE);
	u64_fails("", 0, 100, -EINVAL);
	u64_fails(NULL, 0, 100, -EINVAL);
	u64_fails("-1", 0, 100, -EINVAL);
	u64_fails("-0", 0, 100, -EINVAL);
	u64_fails("+1", 0, 100, -EINVAL);
	u64_fails(" 1", 0, 100, -EINVAL);
	u64_fails("1 ", 0, 100, -EINVAL);
	u64_fails("1\n", 0, 100, -EINVAL);
	u64_fails("0x10", 0, 100, -EINVAL);
	u64_fails("1.5", 0, 100, -EINVAL);
	u64_fails("1e3", 0, 100, -EINVAL);
	u64_fails("1,000", 0, 10000, -EINVAL);
	u64_fails("one", 0, 100, -EINVAL);
	/* too many digits, but not a number at all: invalid, not out of range */
	u64_fails("99999999999999999999999x", 0, UINT64_MAX, -EINVAL);
	u64_fails("99999999999999999999999 ", 0, UINT64_MAX, -EINVAL);

	/* the messages */
	num_parse_u64("x7", 0, 9, &v, "cpus", &e);
	assert_string_equal(e.msg, "cpus: 'x7' is not a whole number");
	num_parse_u64("70", 1, 64, &v, "cpus", &e);
	assert_string_equal(e.msg, "cpus: 70 is out of range (1..64)");
	assert_int_equal(num_parse_u64("5", 0, 9, &v, "n", NULL), 0);  /* e may be NULL */
	assert_int_equal(num_parse_u64("50", 0, 9, &v, "n", NULL), -ERANGE);
}

static void test_i64(void **state)
{
	(void)state;
	int64_t v;
	struct err e = ERR_INIT;

	assert_int_equal(num_parse_i64("-0", INT64_MIN, INT64_MAX, &v, "n", &e), 0);
	assert_true(v == 0);
	assert_int_equal(num_parse_i64("-42", -100, 100, &v, "n", &e), 0);
	assert_true(v == -42);
	assert_int_equal(num_parse_i64("9223372036854775807", INT64_MIN, INT64_MAX, &v, "n", &e), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(num_parse_i64("-9223372036854775808", INT64_MIN, INT64_MAX, &v, "n", &e), 0);
	assert_true(v == INT64_MIN);

	i64_fails("9223372036854775808", INT64_MIN, INT64_MAX, -ERANGE);
	i64_fails("-9223372036854775809", INT64_MIN, INT64_MAX, -ERANGE);
	i64_fails("18446744073709551616", INT64_MIN, INT64_MAX, -ERANGE);
	i64_fails("-18446744073709551615", INT64_MIN, INT64_MAX, -ERANGE);
	i64_fails("-101", -100, 100, -ERANGE);
	i64_fails("101", -100, 100, -ERANGE);
	i64_fails("-1", 0, 100, -ERANGE);
	i64_fails("", -100, 100, -EINVAL);
	i64_fails("-", -100, 100, -EINVAL);
	i64_fails("--1", -100, 100, -EINVAL);
	i64_fails("+1", -100, 100, -EINVAL);
	i64_fails("- 1", -100, 100, -EINVAL);
	i64_fails(" -1", -100, 100, -EINVAL);
	i64_fails("-1 ", -100, 100, -EINVAL);
	i64_fails("1-", -100, 100, -EINVAL);
	i64_fails(NULL, -100, 100, -EINVAL);
	i64_fails("-99999999999999999999999x", INT64_MIN, INT64_MAX, -EINVAL);
	i64_fails("99999999999999999999999.0", INT64_MIN, INT64_MAX, -EINVAL);

	num_parse_i64("-7", 0, 5, &v, "delta", &e);
	assert_string_equal(e.msg, "delta: -7 is out of range (0..5)");
}

static void test_u32_int(void **state)
{
	(void)state;
	uint32_t u;
	int i;
	struct err e = ERR_INIT;
	char s[32];

	assert_int_equal(num_parse_u32("4294967295", 0, UINT32_MAX, &u, "n", &e), 0);
	assert_true(u == UINT32_MAX);
	u = 9;
	assert_int_equal(num_parse_u32("4294967296", 0, UINT32_MAX, &u, "n", &e), -ERANGE);
	assert_int_equal(u, 9);
	assert_int_equal(num_parse_u32("18446744073709551617", 0, UINT32_MAX, &u, "n", &e),
			 -ERANGE);
	assert_int_equal(u, 9);

	snprintf(s, sizeof(s), "%d", INT_MIN);
	assert_int_equal(num_parse_int(s, INT_MIN, INT_MAX, &i, "n", &e), 0);
	assert_int_equal(i, INT_MIN);
	snprintf(s, sizeof(s), "%d", INT_MAX);
	assert_int_equal(num_parse_int(s, INT_MIN, INT_MAX, &i, "n", &e), 0);
	assert_int_equal(i, INT_MAX);
	i = 3;
	assert_int_equal(num_parse_int("2147483648", INT_MIN, INT_MAX, &i, "n", &e), -ERANGE);
	assert_int_equal(num_parse_int("-2147483649", INT_MIN, INT_MAX, &i, "n", &e), -ERANGE);
	assert_int_equal(num_parse_int("4294967297", INT_MIN, INT_MAX, &i, "n", &e), -ERANGE);
	assert_int_equal(i, 3);
}

static void test_size(void **state)
{
	(void)state;
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "0", 0 }, { "512", 512 }, { "512B", 512 },
		{ "1K", 1024 }, { "1k", 1024 }, { "1KB", 1024 }, { "1KiB", 1024 },
		{ "64M", 64ull << 20 }, { "64m", 64ull << 20 }, { "64MB", 64ull << 20 },
		{ "64MiB", 64ull << 20 }, { "2G", 2ull << 30 }, { "2g", 2ull << 30 },
		{ "2GiB", 2ull << 30 }, { "1T", 1ull << 40 }, { "3TB", 3ull << 40 },
		{ "16777215T", 16777215ull << 40 }, { "0G", 0 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "M", "K1", "1.5G", "-1M", "+1M", " 1M", "1M ", "1 M", "1MM", "1Mb", "1mb",
		"1kib", "1P", "1E", "1e3", "0x10", "1_000", "99999999999999999999999Q",
		"99999999999999999999999.5G",
	};
	static const char *const huge[] = {
		"16777216T", "17179869184G", "18014398509481984K", "18446744073709551616",
		"99999999999999999999999",
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		uint64_t v = SENTINEL;
		struct err e = ERR_INIT;
		if (num_parse_size(ok[i].s, &v, "memory", &e) != 0)
			fail_msg("'%s': %s", ok[i].s, e.msg);
		if (v != ok[i].v)
			fail_msg("'%s' gave %llu", ok[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = SENTINEL;
		struct err e = ERR_INIT;
		if (num_parse_size(bad[i], &v, "memory", &e) != -EINVAL)
			fail_msg("'%s' was not refused as invalid", bad[i]);
		assert_true(v == SENTINEL);
		char want[128];
		snprintf(want, sizeof(want), "memory: '%s' is not a valid size", bad[i]);
		assert_string_equal(e.msg, want);
	}
	for (size_t i = 0; i < ARRAY_SIZE(huge); i++) {
		uint64_t v = SENTINEL;
		struct err e = ERR_INIT;
		if (num_parse_size(huge[i], &v, "memory", &e) != -ERANGE)
			fail_msg("'%s' was not refused as too large", huge[i]);
		assert_true(v == SENTINEL);
		char want[128];
		snprintf(want, sizeof(want), "memory: '%s' is too large", huge[i]);
		assert_string_equal(e.msg, want);
	}
	uint64_t v;
	assert_int_equal(num_parse_size(NULL, &v, "memory", NULL), -EINVAL);
}

static void test_duration(void **state)
{
	(void)state;
	static const struct { const char *s; uint64_t ms; } ok[] = {
		{ "0", 0 }, { "10", 10000 }, { "250ms", 250 }, { "0ms", 0 }, { "30s", 30000 },
		{ "5m", 300000 }, { "2h", 7200000 }, { "1d", 86400000 },
		{ "18446744073709551615ms", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "s", "ms", "1.5s", "-1s", "+1s", " 1s", "1s ", "1 s", "1S", "1sec", "1w",
		"1hm", "1m30s", "10x", "99999999999999999999999x",
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		uint64_t v = SENTINEL;
		struct err e = ERR_INIT;
		if (num_parse_duration_ms(ok[i].s, &v, "idle", &e) != 0)
			fail_msg("'%s': %s", ok[i].s, e.msg);
		if (v != ok[i].ms)
			fail_msg("'%s' gave %llu", ok[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = SENTINEL;
		struct err e = ERR_INIT;
		if (num_parse_duration_ms(bad[i], &v, "idle", &e) != -EINVAL)
			fail_msg("'%s' was not refused as invalid", bad[i]);
		assert_true(v == SENTINEL);
		char want[128];
		snprintf(want, sizeof(want), "idle: '%s' is not a valid duration", bad[i]);
		assert_string_equal(e.msg, want);
	}
	uint64_t v = SENTINEL;
	struct err e = ERR_INIT;
	assert_int_equal(num_parse_duration_ms("18446744073709551615s", &v, "idle", &e), -ERANGE);
	assert_string_equal(e.msg, "idle: '18446744073709551615s' is too large");
	assert_int_equal(num_parse_duration_ms("213503982335d", &v, "idle", &e), -ERANGE);
	assert_int_equal(num_parse_duration_ms("18446744073709551616ms", &v, "idle", &e), -ERANGE);
	assert_true(v == SENTINEL);
	assert_int_equal(num_parse_duration_ms("213503982334d", &v, "idle", &e), 0);
	assert_true(v == 213503982334ull * 86400000ull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_i64),
		cmocka_unit_test(test_u32_int),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_duration),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
