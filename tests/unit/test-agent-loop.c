/* test-agent-loop.c — unit tests for the event loop of lohar and the
 * daemon (shared/loop.c): timers fire in deadline order, tasks run on the
 * next turn and cannot starve fds, a task cancelled by an earlier one of
 * its batch does not run (and the rest do), a parked watch (empty
 * interest) does not spin on a hung-up pipe, deferred frees run after the
 * batch. Real epoll, timerfd, pipes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <unistd.h>

#include "loop.h"
#include "util.h"

static char order[16];
static int norder;

static void t_fire(struct timer *t)
{
	order[norder++] = *(char *)t->data;
	if (norder == 3)
		loop_stop();
}

static void test_timers_in_order(void **state UNUSED)
{
	struct timer a, b, c;
	char ca = 'a', cb = 'b', cc = 'c';
	norder = 0;
	timer_init(&a, t_fire, &ca);
	timer_init(&b, t_fire, &cb);
	timer_init(&c, t_fire, &cc);
	uint64_t t0 = now_ms();
	timer_arm(&c, 60);
	timer_arm(&a, 20);
	timer_arm(&b, 40);
	assert_int_equal(loop_run(), 0);
	assert_memory_equal(order, "abc", 3);
	assert_true(now_ms() - t0 >= 60);
}

static void test_timer_cancel_and_rearm(void **state UNUSED)
{
	struct timer a, b, c;
	char ca = 'a', cb = 'b', cc = 'c';
	norder = 0;
	timer_init(&a, t_fire, &ca);
	timer_init(&b, t_fire, &cb);
	timer_init(&c, t_fire, &cc);
	timer_arm(&a, 10);
	timer_arm(&b, 20);
	timer_arm(&c, 30);
	timer_cancel(&a);
	timer_arm(&b, 50); /* re-arming moves it */
	timer_arm(&a, 40);
	assert_int_equal(loop_run(), 0);
	assert_memory_equal(order, "cab", 3);
	assert_false(a.armed || b.armed || c.armed);
}

static int task_runs;
static int fd_events;
static struct task repost;

static void t_repost(struct task *t)
{
	task_runs++;
	task_post(t); /* keeps itself busy forever */
}

static void on_pipe(struct watch *w, uint32_t ev UNUSED)
{
	char c;
	if (read(w->fd, &c, 1) == 1)
		fd_events++;
	if (fd_events == 3)
		loop_stop();
}

static void stop_timer(struct timer *t UNUSED)
{
	loop_stop();
}

static void test_tasks_do_not_starve_fds(void **state UNUSED)
{
	int p[2];
	struct watch w;
	struct timer guard;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "xyz", 3), 3);
	task_runs = fd_events = 0;
	task_init(&repost, t_repost, NULL);
	task_post(&repost);
	watch_init(&w, on_pipe, NULL);
	assert_int_equal(watch_add(&w, p[0], EPOLLIN), 0);
	timer_init(&guard, stop_timer, NULL);
	timer_arm(&guard, 5000);
	assert_int_equal(loop_run(), 0);
	timer_cancel(&guard);
	task_cancel(&repost);
	assert_int_equal(fd_events, 3);
	assert_true(task_runs >= 2 && task_runs <= 4);
	watch_close(&w);
	close(p[1]);
}

static int hup_events;

static void on_hup(struct watch *w UNUSED, uint32_t ev UNUSED)
{
	hup_events++;
}

static void test_parked_watch_does_not_spin(void **state UNUSED)
{
	int p[2];
	struct watch w;
	struct timer t;
	assert_int_equal(pipe(p), 0);
	close(p[1]); /* the read end is now permanently hung up */
	hup_events = 0;
	watch_init(&w, on_hup, NULL);
	assert_int_equal(watch_add(&w, p[0], 0), 0); /* parked from the start */
	timer_init(&t, stop_timer, NULL);
	timer_arm(&t, 100);
	assert_int_equal(loop_run(), 0);
	assert_int_equal(hup_events, 0);
	/* unparked it reports the hang-up */
	watch_set(&w, EPOLLIN);
	timer_arm(&t, 20);
	assert_int_equal(loop_run(), 0);
	assert_true(hup_events > 0);
	watch_close(&w);
	assert_int_equal(w.fd, -1);
}

static int freed;

static void count_free(void *p UNUSED)
{
	freed++;
}

static void defer_then_stop(struct timer *t UNUSED)
{
	loop_defer_free(count_free, NULL);
	loop_defer_free(count_free, NULL);
	assert_int_equal(freed, 0); /* not while the callback is on the stack */
	loop_stop();
}

static void test_deferred_free_after_batch(void **state UNUSED)
{
	struct timer t;
	freed = 0;
	timer_init(&t, defer_then_stop, NULL);
	timer_arm(&t, 1);
	assert_int_equal(loop_run(), 0);
	assert_int_equal(freed, 2);
}

/* A task may cancel another of the same batch (an engine VM whose
 * operation ends destroys another VM): the cancelled one does not run,
 * the ones after it do, and it can be posted again. */
static struct task batch[3];
static char ran[8];
static int nran;

static void t_batch(struct task *t)
{
	ran[nran++] = (char)('a' + (t - batch));
	if (t == &batch[0])
		task_cancel(&batch[1]);
}

static void test_task_cancelled_by_its_batch(void **state UNUSED)
{
	nran = 0;
	for (int i = 0; i < 3; i++) {
		task_init(&batch[i], t_batch, NULL);
		task_post(&batch[i]);
	}
	assert_true(loop_run_once(0) >= 0);
	assert_int_equal(nran, 2);
	assert_memory_equal(ran, "ac", 2);
	assert_false(batch[1].queued);
	assert_false(batch[2].queued);
	task_post(&batch[1]);
	task_post(&batch[2]);
	assert_true(loop_run_once(0) >= 0);
	assert_int_equal(nran, 4);
	assert_memory_equal(ran, "acbc", 4);
}

static int group_setup(void **state UNUSED)
{
	return loop_init();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timers_in_order),
		cmocka_unit_test(test_timer_cancel_and_rearm),
		cmocka_unit_test(test_tasks_do_not_starve_fds),
		cmocka_unit_test(test_parked_watch_does_not_spin),
		cmocka_unit_test(test_deferred_free_after_batch),
		cmocka_unit_test(test_task_cancelled_by_its_batch),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
