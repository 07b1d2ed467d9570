/* test-exectee.c — daemon/exectee.c without a VM: watchers see each exec
 * (start, output in order, end); a late watcher gets the last
 * EXECTEE_KEEP commands first, marked replay, oldest first, with at most
 * EXECTEE_TAIL bytes of output each (cut marked), and what the history
 * keeps stays bounded however much is written; a watch ended inside a
 * callback; a forgotten sandbox keeps nothing; an unknown exec is
 * ignored.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "exectee.h"

struct seen {
	struct buf log;
	struct exectee_watch *w;
	bool unwatch_on_end;
	size_t bytes;
};

static void on_ev(const struct exectee_ev *ev, void *arg)
{
	struct seen *s = arg;
	const char *r = ev->replay ? "r" : "";
	switch (ev->type) {
	case EXECTEE_START:
		buf_addf(&s->log, "%sstart %llu %s|", r, (unsigned long long)ev->exec, ev->argv[0]);
		break;
	case EXECTEE_DATA:
		buf_addf(&s->log, "%s%d:%.*s%s|", r, ev->ch, (int)MIN(ev->n, 8), (const char *)ev->p,
			 ev->cut ? " cut" : "");
		s->bytes += ev->n;
		break;
	case EXECTEE_END:
		if (ev->exited)
			buf_addf(&s->log, "%send %llu exit %d|", r, (unsigned long long)ev->exec,
				 ev->exit_code);
		else
			buf_addf(&s->log, "%send %llu error %s|", r, (unsigned long long)ev->exec,
				 ev->error);
		if (s->unwatch_on_end) {
			exectee_unwatch(s->w);
			s->w = NULL;
		}
		break;
	}
}

static void run(const char *sbx, const char *name, const char *out, const char *err, int code)
{
	char *argv[] = { (char *)name, NULL };
	uint64_t e = exectee_start(sbx, argv);
	if (out)
		exectee_data(sbx, e, 1, (const uint8_t *)out, strlen(out));
	if (err)
		exectee_data(sbx, e, 2, (const uint8_t *)err, strlen(err));
	exectee_end(sbx, e, code >= 0, code, false, code >= 0 ? NULL : "gone");
}

static void test_live_and_replay(void **state UNUSED)
{
	struct seen a = { .log = BUF_INIT };
	a.w = exectee_watch("s1", on_ev, &a);
	assert_string_equal(a.log.data, "");   /* nothing yet */
	run("s1", "one", "out1", "err1", 0);
	run("s1", "two", NULL, NULL, -1);
	run("other", "elsewhere", "x", NULL, 0);   /* another sandbox: not ours */
	assert_string_equal(a.log.data, "start 1 one|1:out1|2:err1|end 1 exit 0|"
					 "start 2 two|end 2 error gone|");
	struct seen b = { .log = BUF_INIT };
	b.w = exectee_watch("s1", on_ev, &b);
	assert_string_equal(b.log.data, "rstart 1 one|r1:out1|r2:err1|rend 1 exit 0|"
					 "rstart 2 two|rend 2 error gone|");
	/* a running one is replayed without its end, then goes on live */
	char *argv[] = { "three", NULL };
	uint64_t e = exectee_start("s1", argv);
	exectee_data("s1", e, 1, (const uint8_t *)"early", 5);
	struct seen c = { .log = BUF_INIT };
	c.w = exectee_watch("s1", on_ev, &c);
	exectee_data("s1", e, 1, (const uint8_t *)"late", 4);
	exectee_end("s1", e, true, 3, false, NULL);
	assert_non_null(strstr(c.log.data, "rstart 3 three|r1:early|1:late|end 3 exit 3|"));
	exectee_data("s1", 99, 1, (const uint8_t *)"ghost", 5);   /* an exec we never saw */
	exectee_end("s1", 99, true, 0, false, NULL);
	exectee_unwatch(a.w);
	exectee_unwatch(b.w);
	exectee_unwatch(c.w);
	buf_release(&a.log), buf_release(&b.log), buf_release(&c.log);
	exectee_forget("s1");
	exectee_forget("other");
	assert_int_equal(exectee_kept_bytes(), 0);
}

static void test_bounded(void **state UNUSED)
{
	char chunk[4096];
	memset(chunk, 'z', sizeof(chunk));
	for (int i = 0; i < 3 * EXECTEE_KEEP; i++) {
		char *argv[] = { "big", NULL };
		uint64_t e = exectee_start("s2", argv);
		for (int k = 0; k < 100; k++)   /* 400 KiB each */
			exectee_data("s2", e, 1 + k % 2, (const uint8_t *)chunk, sizeof(chunk));
		exectee_end("s2", e, true, 0, false, NULL);
	}
	/* 5 commands, each at most its tail (and chunk headers) */
	assert_true(exectee_kept_bytes() <= EXECTEE_KEEP * (EXECTEE_TAIL + 5 + 4096 + 5));
	struct seen s = { .log = BUF_INIT };
	s.w = exectee_watch("s2", on_ev, &s);
	assert_non_null(strstr(s.log.data, "rstart 11 big|"));   /* the last five: 11..15 */
	assert_null(strstr(s.log.data, "rstart 10 big|"));
	assert_non_null(strstr(s.log.data, "zzzzzzzz cut|"));   /* its beginning not kept */
	assert_true(s.bytes <= EXECTEE_KEEP * (EXECTEE_TAIL + 4096));
	exectee_unwatch(s.w);
	buf_release(&s.log);
	/* a chunk larger than the tail keeps its end */
	char *big = xmalloc(EXECTEE_TAIL * 3);
	memset(big, 'a', EXECTEE_TAIL * 3);
	memcpy(big + EXECTEE_TAIL * 3 - 4, "tail", 4);
	char *argv[] = { "huge", NULL };
	uint64_t e = exectee_start("s2", argv);
	exectee_data("s2", e, 1, (const uint8_t *)big, EXECTEE_TAIL * 3);
	free(big);
	exectee_forget("s2");
	assert_int_equal(exectee_kept_bytes(), 0);
}

static void test_unwatch_inside(void **state UNUSED)
{
	struct seen a = { .log = BUF_INIT, .unwatch_on_end = true };
	struct seen b = { .log = BUF_INIT };
	a.w = exectee_watch("s3", on_ev, &a);
	b.w = exectee_watch("s3", on_ev, &b);
	run("s3", "one", "x", NULL, 0);
	run("s3", "two", "y", NULL, 0);
	assert_null(a.w);
	assert_string_equal(a.log.data, "start 1 one|1:x|end 1 exit 0|");   /* nothing after */
	assert_non_null(strstr(b.log.data, "end 2 exit 0|"));
	/* the sandbox goes while b watches: b is told nothing more and frees its watch */
	exectee_forget("s3");
	run("s3", "three", NULL, NULL, 0);
	assert_null(strstr(b.log.data, "three"));
	exectee_unwatch(b.w);
	exectee_forget("s3");
	buf_release(&a.log), buf_release(&b.log);
	assert_int_equal(exectee_kept_bytes(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_live_and_replay),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_unwatch_inside),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
