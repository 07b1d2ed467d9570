/* test-ratelimit.c — unit tests for daemon/ratelimit.c, the per-user
 * token buckets: a full bucket to start with, an empty one refused with
 * the seconds until a token is back, continuous refill capped at the
 * limit, users and kinds apart, 0 as no limit, many users. The clock is
 * the test's (ratelimit_take takes the time). Sits between cmocka and
 * ratelimit.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ratelimit.h"
#include "util.h"

#define T0 1000000u  /* any monotonic time */

static bool take(struct ratelimit *rl, int64_t user, enum rate_kind k, uint64_t t,
		 unsigned *retry)
{
	*retry = 12345;
	return ratelimit_take(rl, user, k, t, retry);
}

static void test_bucket(void **state UNUSED)
{
	const int64_t per_min[RATE_KINDS] = { [RATE_CREATE] = 3, [RATE_EXEC] = 0 };
	struct ratelimit *rl = ratelimit_new(per_min);
	unsigned retry;
	for (int i = 0; i < 3; i++)
		assert_true(take(rl, 1, RATE_CREATE, T0, &retry));    /* full at first */
	assert_false(take(rl, 1, RATE_CREATE, T0, &retry));
	assert_int_equal(retry, 20);                               /* 60 s / 3 */
	/* half a token back after 10 s: 10 s more to wait */
	assert_false(take(rl, 1, RATE_CREATE, T0 + 10000, &retry));
	assert_int_equal(retry, 10);
	/* just short of a token: at least a second */
	assert_false(take(rl, 1, RATE_CREATE, T0 + 19999, &retry));
	assert_int_equal(retry, 1);
	assert_true(take(rl, 1, RATE_CREATE, T0 + 20000, &retry));
	assert_false(take(rl, 1, RATE_CREATE, T0 + 20000, &retry));
	/* a long pause fills the bucket, but no more than the limit */
	uint64_t later = T0 + 3600 * 1000u;
	for (int i = 0; i < 3; i++)
		assert_true(take(rl, 1, RATE_CREATE, later, &retry));
	assert_false(take(rl, 1, RATE_CREATE, later, &retry));
	ratelimit_free(rl);
}

static void test_users_and_kinds_apart(void **state UNUSED)
{
	const int64_t per_min[RATE_KINDS] = { [RATE_CREATE] = 1, [RATE_EXEC] = 2 };
	struct ratelimit *rl = ratelimit_new(per_min);
	unsigned retry;
	assert_true(take(rl, 1, RATE_CREATE, T0, &retry));
	assert_false(take(rl, 1, RATE_CREATE, T0, &retry));
	assert_int_equal(retry, 60);
	assert_true(take(rl, 2, RATE_CREATE, T0, &retry));  /* another user */
	assert_true(take(rl, 1, RATE_EXEC, T0, &retry));    /* another kind */
	assert_true(take(rl, 1, RATE_EXEC, T0, &retry));
	assert_false(take(rl, 1, RATE_EXEC, T0, &retry));
	assert_int_equal(retry, 30);
	/* many users: each has a bucket of its own */
	for (int64_t u = 10; u < 100; u++)
		assert_true(take(rl, u, RATE_CREATE, T0, &retry));
	for (int64_t u = 10; u < 100; u++)
		assert_false(take(rl, u, RATE_CREATE, T0 + 1000, &retry));
	assert_false(take(rl, 1, RATE_CREATE, T0 + 1000, &retry));
	assert_true(take(rl, 1, RATE_CREATE, T0 + 60000, &retry));
	ratelimit_free(rl);
}

static void test_no_limit(void **state UNUSED)
{
	const int64_t per_min[RATE_KINDS] = { [RATE_CREATE] = 0, [RATE_EXEC] = 0 };
	struct ratelimit *rl = ratelimit_new(per_min);
	unsigned retry;
	for (int i = 0; i < 10000; i++)
		assert_true(take(rl, 1, RATE_EXEC, T0, &retry));
	assert_int_equal(retry, 12345); /* untouched */
	ratelimit_free(rl);
	ratelimit_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_users_and_kinds_apart),
		cmocka_unit_test(test_no_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
