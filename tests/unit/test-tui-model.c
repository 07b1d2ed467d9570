/* test-tui-model.c — tui/model.c, the TUI's sandboxes without ncurses or
 * sockets: a GET /sandboxes answer and a GET /events stream recorded from
 * a real daemon (tests/data/tui/list-real.json, events-real.ndjson, made
 * by scripts/tui-record-events.sh) applied line by line; a list of four
 * (tests/data/tui/list-1.json) for filter, sort, selection; what asks for
 * a re-read (an unknown sandbox, a create) or a new subscription
 * (resync); the published URLs; bad input changing nothing. Run from the
 * project root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"
#include "model.h"

static char *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	struct buf b = BUF_INIT;
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_add(&b, tmp, n);
	fclose(f);
	return buf_detach(&b, ret_len);
}

static void load(struct model *m)
{
	size_t len;
	char *j = slurp("tests/data/tui/list-1.json", &len);
	struct err e = ERR_INIT;
	assert_int_equal(model_set_list(m, j, len, &e), 0);
	free(j);
}

static const char *view_name(const struct model *m, size_t i)
{
	return m->rows[m->view[i]].name;
}

static void test_list(void **state UNUSED)
{
	struct model m;
	model_init(&m);
	load(&m);
	assert_int_equal(m.n, 4);
	assert_int_equal(m.nview, 4);
	/* by name */
	assert_string_equal(view_name(&m, 0), "agent-7");
	assert_string_equal(view_name(&m, 3), "dev");
	const struct sbx_row *r = model_find(&m, "dev");
	assert_non_null(r);
	assert_string_equal(r->id, "a1");
	assert_string_equal(r->state, "hot");
	assert_string_equal(r->ip, "10.0.0.2");
	assert_int_equal(r->cpus, 1);
	assert_int_equal(r->memory_mb, 512);
	assert_int_equal(r->created, 1796378400);   /* 2026-12-04T10:00:00Z */
	assert_int_equal(r->sessions, -1);            /* unknown until events say */
	assert_string_equal(model_find(&m, "d4")->error, "QEMU was killed by signal 9 unexpectedly");
	struct model_counts c;
	model_counts(&m, &c);
	assert_int_equal(c.total, 4);
	assert_int_equal(c.hot, 1);
	assert_int_equal(c.warm, 1);
	assert_int_equal(c.stopped, 1);
	assert_int_equal(c.error, 1);
	/* the same answer again changes nothing: no frame is drawn */
	uint64_t gen = m.gen;
	load(&m);
	assert_int_equal(m.gen, gen);
	model_release(&m);
}

static void test_sort_filter_select(void **state UNUSED)
{
	struct model m;
	model_init(&m);
	load(&m);
	size_t at;
	assert_string_equal(model_selected(&m, &at)->name, "agent-7");
	model_move(&m, 2);
	assert_string_equal(model_selected(&m, &at)->name, "build");
	assert_int_equal(at, 2);
	model_move(&m, 100);   /* clamped */
	assert_string_equal(model_selected(&m, NULL)->name, "dev");
	model_move(&m, -100);
	assert_string_equal(model_selected(&m, NULL)->name, "agent-7");
	model_move(&m, 1);     /* broken */

	model_set_sort(&m, SORT_STATE);   /* error, hot, warm, stopped */
	assert_string_equal(view_name(&m, 0), "broken");
	assert_string_equal(view_name(&m, 1), "dev");
	assert_string_equal(view_name(&m, 2), "agent-7");
	assert_string_equal(view_name(&m, 3), "build");
	assert_string_equal(model_selected(&m, &at)->name, "broken");   /* the selection follows */
	model_set_sort(&m, SORT_STATE);   /* again: reversed */
	assert_string_equal(view_name(&m, 0), "build");
	model_set_sort(&m, SORT_AGE);
	assert_string_equal(view_name(&m, 0), "broken");
	assert_string_equal(view_name(&m, 3), "agent-7");
	model_set_sort(&m, SORT_MEMORY);
	assert_string_equal(view_name(&m, 0), "agent-7");
	assert_string_equal(view_name(&m, 3), "build");

	model_set_filter(&m, "TINY");   /* case-insensitive, on the image too */
	assert_int_equal(m.nview, 3);
	model_set_filter(&m, "dev");
	assert_int_equal(m.nview, 1);
	assert_string_equal(model_selected(&m, NULL)->name, "dev");   /* broken is hidden */
	model_set_filter(&m, "nothing-like-it");
	assert_int_equal(m.nview, 0);
	assert_null(model_selected(&m, NULL));
	model_move(&m, 1);
	model_set_filter(&m, "");
	assert_int_equal(m.nview, 4);
	model_release(&m);
}

static void test_list_changes(void **state UNUSED)
{
	struct model m;
	model_init(&m);
	load(&m);
	model_move(&m, 3);
	assert_string_equal(model_selected(&m, NULL)->name, "dev");
	const char *two = "[{\"id\":\"b2\",\"name\":\"build\",\"state\":\"hot\",\"cpus\":2,"
			  "\"memory_mb\":1024,\"image\":\"minimal\",\"created_at\":\"2026-12-04T09:00:00Z\"},"
			  "{\"id\":\"e5\",\"name\":\"new\",\"state\":\"creating\"}]";
	struct err e = ERR_INIT;
	uint64_t gen = m.gen;
	assert_int_equal(model_set_list(&m, two, strlen(two), &e), 0);
	assert_true(m.gen > gen);
	assert_int_equal(m.n, 2);
	assert_null(model_find(&m, "dev"));
	assert_string_equal(model_find(&m, "build")->state, "hot");
	assert_non_null(model_selected(&m, NULL));   /* the selected one went: the first */
	assert_string_equal(model_selected(&m, NULL)->name, "build");

	/* not a list, or an entry without an id: refused, nothing changes */
	static const char *const bad[] = { "{}", "[{\"name\":\"x\"}]", "[1]", "nonsense", "" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct err be = ERR_INIT;
		gen = m.gen;
		assert_int_equal(model_set_list(&m, bad[i], strlen(bad[i]), &be), -EINVAL);
		assert_true(be.msg[0]);
		assert_int_equal(m.gen, gen);
		assert_int_equal(m.n, 2);
	}
	model_release(&m);
}

static enum model_need apply(struct model *m, const char *line)
{
	enum model_need need = MODEL_OK;
	struct err e = ERR_INIT;
	assert_int_equal(model_apply_event(m, line, strlen(line), &need, &e), 0);
	return need;
}

/* One sandbox's life as a real daemon told it: created, an exec that
 * exits 3, a shell opened, detached, attached, exited, renamed dev →
 * dev2, idle → warm, woken by an exec, stopped, started, destroyed. */
static void test_events_recorded(void **state UNUSED)
{
	struct model m;
	model_init(&m);
	size_t len;
	char *j = slurp("tests/data/tui/list-real.json", &len);
	struct err e = ERR_INIT;
	assert_int_equal(model_set_list(&m, j, len, &e), 0);
	free(j);
	const char *id = "0025cdbe2c74";
	assert_string_equal(model_find(&m, id)->name, "dev");
	char *stream = slurp("tests/data/tui/events-real.ndjson", &len);
	int seq = 0;
	for (char *save = NULL, *l = strtok_r(stream, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		seq++;
		enum model_need need = apply(&m, l);
		/* the create asks for the list (its shape); nothing else does */
		assert_int_equal(need, seq == 1 ? MODEL_RESYNC : MODEL_OK);
		assert_string_equal(m.event_sandbox, id);
		const struct sbx_row *r = model_find(&m, id);
		switch (seq) {
		case 2:
			assert_string_equal(r->last_exec, "sh -c echo out; echo err >&2; exit 3");
			assert_int_equal(r->execs, 1);
			assert_int_equal(r->last_exit, -1);
			break;
		case 3:
			assert_int_equal(r->execs, 0);
			assert_int_equal(r->last_exit, 3);
			break;
		case 4:
		case 5:
		case 6:   /* detached and attached: still one shell */
			assert_int_equal(r->sessions, 1);
			break;
		case 7:
			assert_int_equal(r->sessions, 0);
			break;
		case 8:
			assert_string_equal(r->name, "dev2");
			assert_null(model_find(&m, "dev"));
			break;
		case 9:
			assert_string_equal(r->state, "warm");
			assert_string_equal(r->thermal, "warm");
			break;
		case 10:
			assert_string_equal(r->state, "hot");
			break;
		case 12:
			assert_string_equal(r->last_exec, "true");
			assert_int_equal(r->last_exit, 0);
			break;
		case 13:
			assert_string_equal(r->state, "stopped");
			assert_string_equal(r->thermal, "cold");
			break;
		case 14:
			assert_string_equal(r->state, "hot");
			/* the detail view's last 8, oldest first */
			assert_int_equal(r->nrecent, MODEL_RECENT);
			assert_string_equal(r->recent[0], "20:12:58 session.exited session=s184624f0 exit_code=0");
			assert_string_equal(r->recent[7], "20:13:04 sandbox.state from=cold to=hot thermal=hot "
							  "reason=user");
			break;
		case 15:
			assert_null(r);   /* destroyed */
			break;
		}
	}
	free(stream);
	assert_int_equal(seq, 15);
	assert_int_equal(m.seq, 15);
	assert_int_equal(m.n, 0);
	/* the events log (l): every event, as it came */
	assert_int_equal(m.nlog, 15);
	assert_string_equal(model_log_line(&m, 0), "20:12:53 dev sandbox.created image=tiny origin=clone");
	assert_string_equal(model_log_line(&m, 2),
			    "20:12:53 dev exec.finished exit_code=3 duration_ms=94 $ sh -c echo out; "
			    "echo err >&2; exit 3");
	assert_string_equal(model_log_line(&m, 4), "20:12:56 dev session.detached session=s184624f0");
	assert_string_equal(model_log_line(&m, 7), "20:12:59 dev sandbox.renamed from=dev to=dev2");
	assert_string_equal(model_log_line(&m, 9),
			    "20:13:04 dev2 sandbox.state from=warm to=hot thermal=hot reason=request "
			    "wake_ms=6");
	assert_string_equal(model_log_line(&m, 14), "20:13:05 dev2 sandbox.destroyed");
	model_release(&m);
}

/* What the recorded stream does not show: replays, gaps, resync, an
 * unknown sandbox, a create of one the list has not got yet. */
static void test_events_edges(void **state UNUSED)
{
	struct model m;
	model_init(&m);
	load(&m);
	for (int i = 1; i <= 9; i++) {
		char ev[128];
		snprintf(ev, sizeof(ev), "{\"seq\":%d,\"type\":\"exec.started\",\"sandbox_id\":\"c3\"}", i);
		apply(&m, ev);
	}
	assert_int_equal(model_find(&m, "c3")->execs, 9);
	/* an old seq again (a reconnect replaying) is ignored, not logged */
	uint64_t gen = m.gen;
	size_t nlog = m.nlog;
	assert_int_equal(apply(&m, "{\"seq\":3,\"type\":\"sandbox.destroyed\",\"sandbox_id\":\"a1\"}"),
			 MODEL_OK);
	assert_int_equal(m.gen, gen);
	assert_int_equal(m.nlog, nlog);
	assert_non_null(model_find(&m, "a1"));
	/* a gap is other users' events (seq is the daemon's): nothing to re-read */
	assert_int_equal(apply(&m, "{\"seq\":1000,\"type\":\"sandbox.state\",\"sandbox_id\":\"a1\","
				   "\"from\":\"warm\",\"to\":\"hot\",\"thermal\":\"hot\"}"),
			 MODEL_OK);
	assert_string_equal(model_find(&m, "a1")->state, "hot");
	/* the daemon says the subscriber fell behind: subscribe again */
	assert_int_equal(apply(&m, "{\"type\":\"resync\"}"), MODEL_BEHIND);
	/* a sandbox we do not know */
	assert_int_equal(apply(&m, "{\"seq\":1001,\"type\":\"sandbox.state\",\"sandbox_id\":\"zz\","
				   "\"to\":\"hot\"}"),
			 MODEL_RESYNC);
	/* a create: a row at once, its shape from a re-read */
	assert_int_equal(apply(&m, "{\"seq\":1002,\"type\":\"sandbox.created\",\"sandbox\":\"fresh\","
				   "\"sandbox_id\":\"f6\"}"),
			 MODEL_RESYNC);
	assert_string_equal(model_find(&m, "fresh")->state, "creating");
	assert_string_equal(m.event_sandbox, "f6");
	/* the destroy of one we never knew asks nothing */
	assert_int_equal(apply(&m, "{\"seq\":1003,\"type\":\"sandbox.destroyed\",\"sandbox_id\":\"qq\"}"),
			 MODEL_OK);
	/* types we do not know yet are fine */
	assert_int_equal(apply(&m, "{\"seq\":1004,\"type\":\"port.published\",\"sandbox_id\":\"a1\"}"),
			 MODEL_OK);

	/* not events */
	static const char *const bad[] = { "[]", "{\"seq\":1}", "garbage", "{\"type\":3}" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		enum model_need need;
		struct err e = ERR_INIT;
		assert_int_equal(model_apply_event(&m, bad[i], strlen(bad[i]), &need, &e), -EINVAL);
	}
	model_release(&m);
}

static void test_log_bounded(void **state UNUSED)
{
	struct model m;
	model_init(&m);
	for (int i = 1; i <= MODEL_LOG + 10; i++) {
		char ev[128];
		snprintf(ev, sizeof(ev), "{\"seq\":%d,\"type\":\"sandbox.state\",\"sandbox\":\"s%d\"}", i, i);
		apply(&m, ev);
	}
	assert_int_equal(m.nlog, MODEL_LOG);
	assert_string_equal(model_log_line(&m, 0), "s11 sandbox.state");
	assert_string_equal(model_log_line(&m, MODEL_LOG - 1), "s510 sandbox.state");
	model_release(&m);
}

static void test_ports(void **state UNUSED)
{
	struct model m;
	model_init(&m);
	load(&m);
	/* GET /ports's form (docs/api.md): sandbox and sandbox_id in each */
	const char *ports = "{\"ports\":[{\"sandbox\":\"dev\",\"sandbox_id\":\"a1\",\"port\":3000,"
			    "\"listening\":true,\"published\":true,\"alias\":\"dev-1a\","
			    "\"url\":\"http://dev-1a.example\"},"
			    "{\"sandbox\":\"dev\",\"sandbox_id\":\"a1\",\"port\":5432,\"listening\":true,"
			    "\"loopback_only\":true,\"published\":false},"
			    "{\"sandbox\":\"dev\",\"sandbox_id\":\"a1\",\"port\":8080,\"published\":true,"
			    "\"alias\":\"x\",\"url\":\"http://x.example\"},"
			    "{\"sandbox\":\"agent-7\",\"sandbox_id\":\"c3\",\"port\":80,\"published\":true,"
			    "\"alias\":\"a7\",\"url\":\"http://a7.example\"}]}";
	model_set_ports(&m, ports, strlen(ports));
	assert_string_equal(model_find(&m, "dev")->urls, "http://dev-1a.example, http://x.example");
	assert_string_equal(model_find(&m, "agent-7")->urls, "http://a7.example");
	assert_string_equal(model_find(&m, "build")->urls, "");
	uint64_t gen = m.gen;
	model_set_ports(&m, ports, strlen(ports));
	assert_int_equal(m.gen, gen);
	model_set_ports(&m, NULL, 0);
	assert_string_equal(model_find(&m, "dev")->urls, "");
	model_release(&m);
}

/* IDLE: the list's idle_ms, then the activity events (exec, session, a
 * wake to hot) move it on; an older event or another kind does not. */
static void test_idle(void **state UNUSED)
{
	struct model m;
	model_init(&m);
	const char *l = "[{\"id\":\"a1\",\"name\":\"dev\",\"state\":\"warm\","
			"\"idle_ms\":7200000}]";
	struct err e = ERR_INIT;
	assert_int_equal(model_set_list(&m, l, strlen(l), &e), 0);
	int64_t now = wall_sec();
	const struct sbx_row *r = model_find(&m, "dev");
	assert_true(r->active >= now - 7201 && r->active <= now - 7199);
	int64_t was = r->active;
	char ev[256];
	snprintf(ev, sizeof(ev), "{\"seq\":1,\"type\":\"sandbox.state\",\"sandbox\":\"dev\","
		 "\"sandbox_id\":\"a1\",\"time\":%lld,\"to\":\"cold\"}", (long long)now * 1000);
	apply(&m, ev);
	assert_int_equal(model_find(&m, "dev")->active, was);   /* cooling is not activity */
	snprintf(ev, sizeof(ev), "{\"seq\":2,\"type\":\"sandbox.state\",\"sandbox\":\"dev\","
		 "\"sandbox_id\":\"a1\",\"time\":%lld,\"to\":\"hot\"}", (long long)(now - 60) * 1000);
	apply(&m, ev);
	assert_int_equal(model_find(&m, "dev")->active, now - 60);
	snprintf(ev, sizeof(ev), "{\"seq\":3,\"type\":\"exec.started\",\"sandbox\":\"dev\","
		 "\"sandbox_id\":\"a1\",\"time\":%lld,\"argv\":[\"true\"]}", (long long)now * 1000);
	apply(&m, ev);
	assert_int_equal(model_find(&m, "dev")->active, now);
	model_release(&m);
}

static void test_age(void **state UNUSED)
{
	static const struct {
		int64_t s;
		const char *want;
	} cases[] = { { -1, "-" }, { 0, "<1m" }, { 59, "<1m" }, { 60, "1m" }, { 3599, "59m" },
		      { 3600, "1h" }, { 86399, "23h" }, { 86400, "1d" }, { 864000, "10d" } };
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char out[16];
		model_age(cases[i].s, out, sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_sort_filter_select),
		cmocka_unit_test(test_list_changes),
		cmocka_unit_test(test_events_recorded),
		cmocka_unit_test(test_events_edges),
		cmocka_unit_test(test_log_bounded),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_idle),
		cmocka_unit_test(test_age),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
