/* loop.c — the event loop (lohar's, the daemon's): epoll, one timerfd, a
 * ready queue and deferred frees (see loop.h). The only place the process
 * blocks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

struct deferred {
	void (*fn)(void *);
	void *p;
	struct deferred *next;
};

static struct {
	int epfd;
	struct watch timer_watch;
	struct timer *timers;       /* sorted by when_ms */
	uint64_t timer_armed_for;   /* deadline the timerfd is set to, 0 = none */
	struct task *tasks, **tasks_tail;
	struct task *running;       /* the rest of the batch run_tasks() runs */
	struct deferred *deferred;
	bool stop;
} L = { .epfd = -1 };

/* ---- watches ------------------------------------------------------------ */

void watch_init(struct watch *w, watch_fn fn, void *data)
{
	w->fd = -1;
	w->events = 0;
	w->registered = false;
	w->fn = fn;
	w->data = data;
}

/* A watch with an empty interest set is taken out of epoll entirely
 * ("parked"): epoll reports EPOLLHUP even for an empty set, which would
 * spin the loop on a paused pipe whose writer has gone. */
static int watch_register(struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	int op = w->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (!events) {
		if (w->registered && epoll_ctl(L.epfd, EPOLL_CTL_DEL, w->fd, NULL) < 0)
			return -errno;
		w->registered = false;
		return 0;
	}
	if (epoll_ctl(L.epfd, op, w->fd, &ev) < 0)
		return -errno;
	w->registered = true;
	return 0;
}

int watch_add(struct watch *w, int fd, uint32_t events)
{
	w->fd = fd;
	w->registered = false;
	int r = watch_register(w, events);
	if (r < 0) {
		w->fd = -1;
		return r;
	}
	w->events = events;
	return 0;
}

void watch_set(struct watch *w, uint32_t events)
{
	if (w->fd < 0 || w->events == events)
		return;
	if (watch_register(w, events) < 0)
		log_warn("epoll_ctl(fd %d): %s", w->fd, strerror(errno));
	w->events = events;
}

void watch_del(struct watch *w)
{
	if (w->fd < 0)
		return;
	if (w->registered)
		epoll_ctl(L.epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->fd = -1;
	w->events = 0;
	w->registered = false;
}

void watch_close(struct watch *w)
{
	int fd = w->fd;
	watch_del(w);
	if (fd >= 0)
		close(fd);
}

/* ---- timers ------------------------------------------------------------- */

static void timers_rearm(void)
{
	uint64_t when = L.timers ? L.timers->when_ms : 0;
	if (when == L.timer_armed_for)
		return;
	struct itimerspec its = { 0 };
	if (when) {
		/* absolute CLOCK_MONOTONIC deadline; 0 would disarm, so >= 1 ns */
		its.it_value.tv_sec = (time_t)(when / 1000);
		its.it_value.tv_nsec = (long)(when % 1000) * 1000000L + 1;
	}
	timerfd_settime(L.timer_watch.fd, TFD_TIMER_ABSTIME, &its, NULL);
	L.timer_armed_for = when;
}

void timer_init(struct timer *t, timer_fn fn, void *data)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->data = data;
}

void timer_cancel(struct timer *t)
{
	if (!t->armed)
		return;
	for (struct timer **pp = &L.timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->armed = false;
	t->next = NULL;
	timers_rearm();
}

void timer_arm(struct timer *t, uint64_t delay_ms)
{
	struct timer **pp;
	timer_cancel(t);
	t->when_ms = now_ms() + delay_ms;
	for (pp = &L.timers; *pp && (*pp)->when_ms <= t->when_ms; pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
	t->armed = true;
	timers_rearm();
}

static void on_timerfd(struct watch *w, uint32_t events UNUSED)
{
	uint64_t ticks;
	if (read(w->fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("timerfd read: %s", strerror(errno));
	L.timer_armed_for = 0;
	uint64_t now = now_ms();
	while (L.timers && L.timers->when_ms <= now) {
		struct timer *t = L.timers;
		L.timers = t->next;
		t->next = NULL;
		t->armed = false;
		t->fn(t);
	}
	timers_rearm();
}

/* ---- tasks and deferred frees ------------------------------------------- */

void task_init(struct task *t, task_fn fn, void *data)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->data = data;
}

void task_post(struct task *t)
{
	if (t->queued)
		return;
	t->queued = true;
	t->next = NULL;
	*L.tasks_tail = t;
	L.tasks_tail = &t->next;
}

void task_cancel(struct task *t)
{
	if (!t->queued)
		return;
	bool found = false;
	for (struct task **pp = &L.tasks; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			if (L.tasks_tail == &t->next)
				L.tasks_tail = pp;
			found = true;
			break;
		}
	}
	/* or later in the batch being run (an earlier task cancels it) */
	for (struct task **pp = &L.running; !found && *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->queued = false;
	t->next = NULL;
}

static void run_tasks(void)
{
	/* Only what is queued now: tasks posted while running wait a turn, so
	 * a task that keeps re-posting itself cannot starve the fds. */
	L.running = L.tasks;
	L.tasks = NULL;
	L.tasks_tail = &L.tasks;
	while (L.running) {
		struct task *t = L.running;
		L.running = t->next;
		t->next = NULL;
		t->queued = false;
		t->fn(t);
	}
}

void loop_defer_free(void (*free_fn)(void *), void *p)
{
	struct deferred *d = xmalloc(sizeof(*d));
	d->fn = free_fn;
	d->p = p;
	d->next = L.deferred;
	L.deferred = d;
}

static void run_deferred(void)
{
	while (L.deferred) {
		struct deferred *d = L.deferred;
		L.deferred = d->next;
		d->fn(d->p);
		free(d);
	}
}

/* ---- the loop ----------------------------------------------------------- */

int loop_init(void)
{
	L.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (L.epfd < 0)
		return -errno;
	L.tasks_tail = &L.tasks;
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tfd < 0)
		return -errno;
	watch_init(&L.timer_watch, on_timerfd, NULL);
	return watch_add(&L.timer_watch, tfd, EPOLLIN);
}

void loop_stop(void)
{
	L.stop = true;
}

/* One batch of events, then the ready tasks and deferred frees. */
static int loop_turn(int timeout_ms)
{
	struct epoll_event evs[64];
	if (L.tasks)
		timeout_ms = 0;
	int n = epoll_wait(L.epfd, evs, (int)ARRAY_SIZE(evs), timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct watch *w = evs[i].data.ptr;
		if (w->fd >= 0)  /* removed by an earlier callback this batch */
			w->fn(w, evs[i].events);
	}
	run_tasks();
	run_deferred();
	return n;
}

int loop_run(void)
{
	L.stop = false;
	while (!L.stop) {
		int r = loop_turn(-1);
		if (r < 0)
			return r;
	}
	return 0;
}

int loop_run_once(int timeout_ms)
{
	return loop_turn(timeout_ms);
}

int loop_fd(void)
{
	return L.epfd;
}

bool loop_pending(void)
{
	return L.tasks != NULL || L.deferred != NULL;
}
