/* test-client-execstream.c — client/execstream.c, the decoder of a
 * streamed exec's ndjson (the CLI's `bhatti exec` and the TUI's exec
 * prompt): output as text and base64, stdout and stderr apart, the exit
 * (and a timeout), an error, an exit without a code, lines that are not
 * JSON skipped, nothing after the end; the same answer fed whole, one
 * byte at a time and in 7-byte pieces gives the same calls.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "execstream.h"

struct seen {
	struct buf log;   /* what the callbacks were told, in order */
};

static void on_output(int fd, const char *p, size_t n, void *arg)
{
	struct seen *s = arg;
	buf_addf(&s->log, "%d:", fd);
	buf_add(&s->log, p, n);
	buf_addch(&s->log, '|');
}

static void on_exit_code(int code, bool timed_out, void *arg)
{
	struct seen *s = arg;
	buf_addf(&s->log, "exit %d%s|", code, timed_out ? " timed out" : "");
}

static void on_error(const char *msg, void *arg)
{
	struct seen *s = arg;
	buf_addf(&s->log, "error %s|", msg);
}

static const struct execstream_cb cb = {
	.output = on_output, .exit = on_exit_code, .error = on_error,
};

static void check(const char *answer, const char *want)
{
	for (size_t piece = 0; piece < 3; piece++) {
		size_t step = piece == 0 ? strlen(answer) : piece == 1 ? 1 : 7;
		struct seen s = { .log = BUF_INIT };
		struct execstream x;
		execstream_init(&x, &cb, &s);
		for (size_t at = 0; at < strlen(answer); at += step)
			execstream_feed(&x, answer + at, MIN(step, strlen(answer) - at));
		if (strcmp(s.log.data, want) != 0)
			fail_msg("in pieces of %zu: got '%s', want '%s'", step, s.log.data, want);
		execstream_release(&x);
		buf_release(&s.log);
	}
}

static void test_answers(void **state UNUSED)
{
	check("{\"type\":\"stdout\",\"data\":\"hi\\n\"}\n"
	      "{\"type\":\"stderr\",\"data_b64\":\"/w==\"}\n"
	      "{\"type\":\"exit\",\"exit_code\":3}\n",
	      "1:hi\n|2:\xff|exit 3|");
	check("{\"type\":\"exit\",\"exit_code\":137,\"timed_out\":true}\n", "exit 137 timed out|");
	check("{\"type\":\"stdout\",\"data\":\"a\"}\n{\"type\":\"error\",\"error\":\"sandbox stopped\"}\n",
	      "1:a|error sandbox stopped|");
	check("{\"type\":\"exit\"}\n", "error the daemon said the command exited but not with which code|");
	check("not json\n{\"no\":\"type\"}\n{\"type\":\"later\"}\n{\"type\":\"exit\",\"exit_code\":0}\n",
	      "exit 0|");
	/* nothing after the end; a line without its newline is not taken */
	check("{\"type\":\"exit\",\"exit_code\":0}\n{\"type\":\"stdout\",\"data\":\"x\"}\n"
	      "{\"type\":\"stdout\",\"data\":\"y\"}",
	      "exit 0|");
	check("{\"type\":\"stdout\",\"data\":\"x\"}", "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
