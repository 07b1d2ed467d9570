/* test-events.c — daemon/events.c without sockets: sequence numbers in
 * order and across a restart, a subscriber sees only its user's (and its
 * sandbox's) events, ?since= replays from the ring and, once the ring has
 * moved on, from the store (in pages), and a subscriber reading live that
 * falls a ring behind is told to resync instead of being buffered for.
 * A real SQLite store in a temp dir, the real event loop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "events.h"
#include "helpers.h"
#include "loop.h"
#include "sandbox.h"
#include "server.h"
#include "store.h"

static char *dir;
static struct server srv;
static struct sbx a1, a2, b1;   /* users 1, 1, 2 */

static int setup(void **state UNUSED)
{
	struct err e = ERR_INIT;
	dir = test_tmpdir("events");
	char *db = test_strf("%s/state.db", dir);
	if (loop_init() < 0 || store_open(db, &srv.store, &e) < 0 ||
	    events_new(&srv, &srv.events, &e) < 0) {
		fprintf(stderr, "setup: %s\n", err_str(&e));
		return -1;
	}
	free(db);
	a1.row = (struct sandbox_row){ .id = (char *)"aaaa00000001", .user_id = 1, .name = (char *)"a1" };
	a2.row = (struct sandbox_row){ .id = (char *)"aaaa00000002", .user_id = 1, .name = (char *)"a2" };
	b1.row = (struct sandbox_row){ .id = (char *)"bbbb00000001", .user_id = 2, .name = (char *)"b1" };
	return 0;
}

static int teardown(void **state UNUSED)
{
	events_free(srv.events);
	srv.events = NULL;
	store_free(srv.store);
	test_rmtree(dir);
	free(dir);
	return 0;
}

static void emit(struct sbx *sb, int i)
{
	struct event *ev = event_new(sb, "test");
	event_int(ev, "i", i);
	events_emit(&srv, ev);
}

static void nothing(void *arg UNUSED)
{
}

/* The next event's field i (and its seq), or -1 when none now, -2 resync. */
static int next_i(struct events_sub *s, long long *ret_seq)
{
	const char *json;
	int rc = events_next(s, &json);
	if (rc <= 0)
		return rc == 0 ? -1 : -2;
	cJSON *o = cJSON_Parse(json);
	assert_non_null(o);
	int i = cJSON_GetObjectItem(o, "i")->valueint;
	if (ret_seq)
		*ret_seq = (long long)cJSON_GetObjectItem(o, "seq")->valuedouble;
	cJSON_Delete(o);
	return i;
}

static void test_order_and_scope(void **state UNUSED)
{
	struct events_sub *all = events_subscribe(srv.events, 1, NULL, -1, nothing, NULL);
	struct events_sub *one = events_subscribe(srv.events, 1, a2.row.id, -1, nothing, NULL);
	emit(&a1, 1);
	emit(&b1, 2);   /* another user's */
	emit(&a2, 3);
	long long s1, s2;
	assert_int_equal(next_i(all, &s1), 1);
	assert_int_equal(next_i(all, &s2), 3);
	assert_int_equal(s2, s1 + 2);   /* one sequence for everyone */
	assert_int_equal(next_i(all, NULL), -1);
	assert_int_equal(next_i(one, NULL), 3);
	assert_int_equal(next_i(one, NULL), -1);
	/* since: replays */
	struct events_sub *re = events_subscribe(srv.events, 1, NULL, s1 - 1, nothing, NULL);
	assert_int_equal(next_i(re, NULL), 1);
	assert_int_equal(next_i(re, NULL), 3);
	assert_int_equal(next_i(re, NULL), -1);
	events_unsubscribe(all);
	events_unsubscribe(one);
	events_unsubscribe(re);
	loop_run_once(0);
}

/* Past the ring: history from the store; a live reader a ring behind:
 * resync; and the numbers go on after a restart. */
static void test_history_resync_restart(void **state UNUSED)
{
	struct events_sub *live = events_subscribe(srv.events, 1, NULL, -1, nothing, NULL);
	int n = EVENTS_RING * 2 + 100;
	for (int i = 0; i < n; i++)
		emit(&a1, i);
	/* never read while they came: told to resync */
	assert_int_equal(next_i(live, NULL), -2);
	events_unsubscribe(live);
	/* from the start: every one, in order (ring and store) */
	struct events_sub *re = events_subscribe(srv.events, 1, NULL, 0, nothing, NULL);
	long long prev = 0, seq;
	for (int i = 0; i < n; i++) {
		int got = next_i(re, &seq);
		if (got != i)
			fail_msg("event %d: got %d", i, got);
		assert_true(seq > prev);
		prev = seq;
	}
	assert_int_equal(next_i(re, NULL), -1);
	events_unsubscribe(re);
	loop_run_once(0);
	/* restart: the next number follows the last */
	events_free(srv.events);
	struct err e = ERR_INIT;
	assert_int_equal(events_new(&srv, &srv.events, &e), 0);
	assert_int_equal(events_last_seq(srv.events), prev);
	re = events_subscribe(srv.events, 1, NULL, prev - 2, nothing, NULL);
	assert_int_equal(next_i(re, NULL), n - 2);   /* from the store */
	assert_int_equal(next_i(re, NULL), n - 1);
	emit(&a1, 7);
	assert_int_equal(next_i(re, &seq), 7);
	assert_int_equal(seq, prev + 1);
	events_unsubscribe(re);
	loop_run_once(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_and_scope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_resync_restart, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
