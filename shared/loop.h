/* loop — the one event loop of each process (lohar; the daemon and its
 * engine): epoll over every fd, one timerfd for all timers, a ready queue
 * for work that should run on the next turn, and deferred frees.
 *
 * Anything a callback can reach is freed with loop_defer_free(), which runs
 * after the current batch of events: an event still queued for a watch whose
 * owner went away finds the watch marked dead (fd < 0), never freed memory.
 */
#ifndef BHATTI_LOOP_H
#define BHATTI_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct watch;
typedef void (*watch_fn)(struct watch *w, uint32_t events);

/* Embedded in its owner; fd < 0 means not watched. */
struct watch {
	int fd;
	uint32_t events;  /* the interest set; 0 = parked (not in epoll) */
	bool registered;  /* currently in the epoll set */
	watch_fn fn;
	void *data;
};

struct timer;
typedef void (*timer_fn)(struct timer *t);

struct timer {
	uint64_t when_ms;  /* monotonic deadline */
	timer_fn fn;
	void *data;
	bool armed;
	struct timer *next;
};

struct task;
typedef void (*task_fn)(struct task *t);

/* Work for the next loop turn (e.g. flush a connection, pump a stream). */
struct task {
	task_fn fn;
	void *data;
	bool queued;
	struct task *next;
};

int loop_init(void);
/* Run until loop_stop(); returns 0 or -errno on a fatal epoll error. */
int loop_run(void);
void loop_stop(void);
/* One turn: wait up to timeout_ms (-1 = forever) for events, handle them,
 * run ready tasks and deferred frees. Returns the number of events or
 * -errno. For code that waits for one thing (tests, start-up), never from
 * inside a callback. */
int loop_run_once(int timeout_ms);

/* For a host loop that embeds this one (the daemon: libwebsockets' poll
 * waits on loop_fd() and calls loop_run_once(0) when it is readable, or
 * when loop_pending() says tasks or deferred frees are waiting). */
int loop_fd(void);
bool loop_pending(void);

void watch_init(struct watch *w, watch_fn fn, void *data);
int watch_add(struct watch *w, int fd, uint32_t events);
/* Change the interest set (no syscall when unchanged). */
void watch_set(struct watch *w, uint32_t events);
/* Stop watching; the fd is not closed. */
void watch_del(struct watch *w);
/* watch_del + close(fd). */
void watch_close(struct watch *w);

void timer_init(struct timer *t, timer_fn fn, void *data);
void timer_arm(struct timer *t, uint64_t delay_ms);
void timer_cancel(struct timer *t);

void task_init(struct task *t, task_fn fn, void *data);
void task_post(struct task *t);
void task_cancel(struct task *t);

/* free_fn(p) runs after the current batch of events. */
void loop_defer_free(void (*free_fn)(void *), void *p);

#endif
