/* exectee — every exec run in a sandbox, by any client, teed to whoever
 * watches that sandbox (GET /sandboxes/:id/execs, daemon/api-execs.c):
 * the command when it starts, its stdout and stderr as they come, how it
 * ended. The last EXECTEE_KEEP commands of each sandbox are kept with the
 * last EXECTEE_TAIL bytes of their output, so a watcher that arrives late
 * sees recent history first.
 *
 * Sits between guest.c (which reports each exec: start, data, end) and
 * the watchers (callbacks). Never slows an exec: it copies what it keeps
 * (bounded) and calls the watchers, which must not block (api-execs.c
 * drops what a slow client cannot take, with a marker). No lws, no JSON.
 *
 * One registry per process (the daemon has one server), keyed by sandbox
 * id; a sandbox's entry goes with exectee_forget() (when the sandbox is
 * freed). Watches are ended by exectee_unwatch(), also from inside a
 * callback.
 */
#ifndef BHATTI_EXECTEE_H
#define BHATTI_EXECTEE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXECTEE_KEEP 5              /* commands kept per sandbox for late watchers */
#define EXECTEE_TAIL (16u << 10)    /* output bytes kept per command */

enum exectee_type { EXECTEE_START, EXECTEE_DATA, EXECTEE_END };

struct exectee_ev {
	enum exectee_type type;
	uint64_t exec;              /* the exec's number in its sandbox (from 1) */
	bool replay;                /* from the history, for a watcher that just came */
	char *const *argv;          /* START */
	int64_t time_ms;            /* START: unix ms */
	int ch;                     /* DATA: 1 stdout, 2 stderr */
	const uint8_t *p;           /* DATA */
	size_t n;
	bool cut;                   /* DATA of a replay: the output before it was not kept */
	bool exited;                /* END: it exited (else it failed: error) */
	int exit_code;
	bool timed_out;
	uint64_t duration_ms;
	const char *error;          /* END when !exited */
};

typedef void (*exectee_fn)(const struct exectee_ev *ev, void *arg);

struct exectee_watch;

/* Watch sandbox sbx_id: the kept history comes through fn first (replay),
 * before this returns; then live events. */
struct exectee_watch *exectee_watch(const char *sbx_id, exectee_fn fn, void *arg);
void exectee_unwatch(struct exectee_watch *w);   /* accepts NULL */

/* From guest.c: an exec of sbx_id started (returns its number), wrote,
 * ended. */
uint64_t exectee_start(const char *sbx_id, char *const *argv);
void exectee_data(const char *sbx_id, uint64_t exec, int ch, const uint8_t *p, size_t n);
void exectee_end(const char *sbx_id, uint64_t exec, bool exited, int exit_code, bool timed_out,
		 const char *error);

/* The sandbox is gone: its history and watches (the watchers are not
 * called again; they still own their watch objects until unwatch). */
void exectee_forget(const char *sbx_id);

/* Bytes of history kept in all (tests). */
size_t exectee_kept_bytes(void);

#endif
