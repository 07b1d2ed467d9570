/* test-log.c — shared/log.c: one line per message, control characters in
 * the message escaped (a guest's or a client's text must not forge a log
 * line or reach the reader's terminal as escape sequences), levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "log.h"

/* Run fn with stderr going to a pipe; what it wrote, in out. */
static void capture(void (*fn)(void), struct buf *out)
{
	int p[2], saved = dup(2);
	assert_int_equal(pipe(p), 0);
	dup2(p[1], 2);
	fn();
	dup2(saved, 2);
	close(saved);
	close(p[1]);
	char tmp[4096];
	ssize_t n;
	while ((n = read(p[0], tmp, sizeof(tmp))) > 0)
		buf_add(out, tmp, (size_t)n);
	close(p[0]);
}

static void log_hostile(void)
{
	log_warn("guest said: %s", "a\nfake 2026 bhatti error: owned\r\x1b[31mred\x7f\t|");
}

static void test_control_characters_escaped(void **state UNUSED)
{
	struct buf out = BUF_INIT;
	log_init("test", LOG_INFO);
	capture(log_hostile, &out);
	/* one line, ending in its newline */
	assert_non_null(strchr(out.data, '\n'));
	assert_int_equal(strchr(out.data, '\n') - out.data, (ptrdiff_t)out.len - 1);
	assert_non_null(strstr(out.data,
			       "guest said: a\\nfake 2026 bhatti error: owned\\r\\x1b[31mred\\x7f\\t|"));
	assert_null(memchr(out.data, 0x1b, out.len));
	assert_null(memchr(out.data, '\r', out.len));
	buf_release(&out);
}

static void log_levels(void)
{
	log_set_level(LOG_WARN);
	log_info("not shown");
	log_warn("shown");
	log_set_level(LOG_INFO);
}

static void test_levels(void **state UNUSED)
{
	struct buf out = BUF_INIT;
	capture(log_levels, &out);
	assert_null(strstr(out.data, "not shown"));
	assert_non_null(strstr(out.data, "test warn: shown\n"));
	buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_control_characters_escaped),
		cmocka_unit_test(test_levels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
