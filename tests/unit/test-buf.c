/* test-buf.c — unit tests for shared/buf.c, the growable byte buffer.
 * Sits between cmocka and buf.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"

static void test_empty(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	struct buf c;

	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	buf_init(&c);
	assert_ptr_equal(c.data, buf_empty);
	buf_release(&b);  /* nothing allocated: must not free the static */
	buf_reset(&b);
	buf_consume(&b, 10);
	buf_add(&b, "x", 0);
	assert_int_equal(b.cap, 0);
	assert_string_equal(b.data, "");
	buf_release(&b);
	assert_ptr_equal(b.data, buf_empty);
}

static void test_add(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;

	buf_adds(&b, "hello");
	buf_addch(&b, ' ');
	buf_add(&b, "world!!", 5);
	assert_int_equal(b.len, 11);
	assert_string_equal(b.data, "hello world");
	assert_true(b.cap > b.len);
	assert_int_equal(b.data[b.len], '\0');
	buf_add(&b, "a\0b", 3);     /* binary-safe */
	assert_int_equal(b.len, 14);
	assert_memory_equal(b.data + 11, "a\0b", 3);
	assert_int_equal(b.data[14], '\0');
	buf_release(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
}

static void test_addf(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	char big[300];

	buf_addf(&b, "%d-%s-%05.1f", 42, "x", 3.14159);
	assert_string_equal(b.data, "42-x-003.1");
	buf_addf(&b, "%s", "");   /* empty output changes nothing */
	assert_int_equal(b.len, 10);
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_addf(&b, "[%s]", big);  /* longer than the first allocation */
	assert_int_equal(b.len, 10 + 2 + 299);
	assert_int_equal(b.data[10], '[');
	assert_int_equal(b.data[11 + 299], ']');
	assert_int_equal(b.data[b.len], '\0');
	assert_int_equal(strlen(b.data), b.len);
	buf_release(&b);
}

static void test_grow(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;

	buf_grow(&b, 0);
	assert_true(b.cap >= 1);
	assert_string_equal(b.data, "");
	buf_grow(&b, 1000);
	assert_true(b.cap >= 1001);
	size_t cap = b.cap;
	char *data = b.data;
	memset(b.data, 'q', 1000);
	buf_setlen(&b, 1000);   /* write directly, then set the length */
	assert_int_equal(b.len, 1000);
	assert_int_equal(b.data[1000], '\0');
	assert_int_equal(b.cap, cap);
	assert_ptr_equal(b.data, data);
	buf_grow(&b, cap - 1001);  /* still fits: no reallocation */
	assert_int_equal(b.cap, cap);
	buf_release(&b);
}

static void test_many_appends(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;

	for (int i = 0; i < 100000; i++)
		buf_addch(&b, (char)('a' + i % 26));
	assert_int_equal(b.len, 100000);
	for (int i = 0; i < 100000; i++)
		if (b.data[i] != (char)('a' + i % 26))
			fail_msg("byte %d is %c", i, b.data[i]);
	assert_int_equal(b.data[b.len], '\0');
	buf_release(&b);
}

static void test_consume_reset(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;

	buf_adds(&b, "0123456789");
	buf_consume(&b, 3);
	assert_string_equal(b.data, "3456789");
	assert_int_equal(b.len, 7);
	buf_consume(&b, 0);
	assert_string_equal(b.data, "3456789");
	buf_consume(&b, 7);
	assert_string_equal(b.data, "");
	assert_int_equal(b.len, 0);
	buf_adds(&b, "abc");
	buf_consume(&b, 1000);  /* clamped */
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_adds(&b, "xyz");
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_true(b.cap > 0);   /* memory kept for reuse */
	buf_setlen(&b, 0);
	buf_release(&b);
}

static void test_detach(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	size_t len = 99;

	buf_adds(&b, "owned");
	char *s = buf_detach(&b, &len);
	assert_string_equal(s, "owned");
	assert_int_equal(len, 5);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	assert_ptr_equal(b.data, buf_empty);
	free(s);

	/* from an empty buffer: still a heap string the caller can free */
	s = buf_detach(&b, NULL);
	assert_non_null(s);
	assert_string_equal(s, "");
	assert_ptr_not_equal(s, buf_empty);
	free(s);
	buf_release(&b);
}

/* Run fn in a child; it must die of SIGABRT. */
static void assert_aborts(void (*fn)(void))
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void setlen_past_cap(void)
{
	struct buf b = BUF_INIT;
	buf_adds(&b, "abc");
	buf_setlen(&b, b.cap);
}

static void setlen_on_static(void)
{
	struct buf b = BUF_INIT;
	buf_setlen(&b, 1);
}

static void test_setlen_checks(void **state)
{
	(void)state;
	assert_aborts(setlen_past_cap);
	assert_aborts(setlen_on_static);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_add),
		cmocka_unit_test(test_addf),
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_many_appends),
		cmocka_unit_test(test_consume_reset),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_setlen_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
