/* test-err.c — unit tests for shared/err.c, the error out-parameter.
 * Sits between cmocka and err.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

static void test_set(void **state)
{
	(void)state;
	struct err e = ERR_INIT;

	assert_int_equal(e.code, 0);
	assert_string_equal(e.msg, "");
	assert_int_equal(err_set(&e, EINVAL, "unknown key '%s'", "lisen"), -EINVAL);
	assert_int_equal(e.code, EINVAL);
	assert_string_equal(e.msg, "unknown key 'lisen'");
	/* a negative code is taken as the same errno */
	assert_int_equal(err_set(&e, -ENOENT, "no sandbox '%s'", "x"), -ENOENT);
	assert_int_equal(e.code, ENOENT);
	assert_string_equal(e.msg, "no sandbox 'x'");
	/* a NULL e still gives the return value */
	assert_int_equal(err_set(NULL, EPERM, "denied"), -EPERM);
}

static void test_truncation(void **state)
{
	(void)state;
	struct err e = ERR_INIT;
	char longs[2000];

	memset(longs, 'a', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	assert_int_equal(err_set(&e, E2BIG, "%s", longs), -E2BIG);
	assert_int_equal(strlen(e.msg), ERR_MSG_MAX - 1);
	assert_int_equal(e.msg[0], 'a');

	assert_int_equal(err_prefix(&e, "ctx"), -E2BIG);
	assert_int_equal(strlen(e.msg), ERR_MSG_MAX - 1);
	assert_memory_equal(e.msg, "ctx: aaa", 8);

	assert_int_equal(err_prefix(&e, "%s", longs), -E2BIG);
	assert_int_equal(strlen(e.msg), ERR_MSG_MAX - 1);
}

static void test_prefix(void **state)
{
	(void)state;
	struct err e = ERR_INIT;

	err_set(&e, EIO, "short read");
	assert_int_equal(err_prefix(&e, "sandbox '%s'", "web"), -EIO);
	assert_string_equal(e.msg, "sandbox 'web': short read");
	assert_int_equal(err_prefix(&e, "create"), -EIO);
	assert_string_equal(e.msg, "create: sandbox 'web': short read");
	assert_int_equal(e.code, EIO);

	/* with only a code, the prefix goes before strerror() */
	e.code = ENOENT;
	e.msg[0] = '\0';
	assert_int_equal(err_prefix(&e, "open '%s'", "/x"), -ENOENT);
	char want[256];
	snprintf(want, sizeof(want), "open '/x': %s", strerror(ENOENT));
	assert_string_equal(e.msg, want);

	assert_int_equal(err_prefix(NULL, "x"), -1);
}

static void test_str_clear(void **state)
{
	(void)state;
	struct err e = ERR_INIT;

	assert_string_equal(err_str(NULL), "unknown error");
	assert_string_equal(err_str(&e), "no error");
	e.code = EACCES;
	assert_string_equal(err_str(&e), strerror(EACCES));
	err_set(&e, EACCES, "no access to '%s'", "f");
	assert_string_equal(err_str(&e), "no access to 'f'");
	err_clear(&e);
	assert_int_equal(e.code, 0);
	assert_string_equal(e.msg, "");
	assert_string_equal(err_str(&e), "no error");
	err_clear(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_str_clear),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
