/* model — the TUI's picture of the user's sandboxes: rows read from
 * GET /sandboxes, kept current by the events of GET /events (docs/api.md),
 * filtered, sorted, and the selection. No ncurses and no sockets: the
 * views draw it, app.c feeds it, tests/unit/test-tui-model.c drives it from
 * recorded answers and event streams.
 *
 * Ownership: struct model is embedded (model_init / model_release); rows
 * and their strings belong to it. `gen` goes up on every change a view
 * would show, so a frame is drawn only when something changed.
 */
#ifndef BHATTI_TUI_MODEL_H
#define BHATTI_TUI_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define MODEL_RECENT 8       /* events kept per sandbox for the detail view */
#define MODEL_LOG 500        /* events kept in all for the events log (l) */

struct sbx_row {
	char *id, *name, *state, *thermal, *image, *ip, *error;
	char *urls;               /* published URLs, ", " between them ("" none) */
	int cpus, memory_mb;
	int64_t created;          /* unix seconds (0: unknown) */
	int64_t active;           /* last activity, unix seconds (0: unknown): the list's
				   * idle_ms, then exec/session/wake events */
	int sessions;             /* from session.* events; -1 unknown */
	int execs;                /* running, from exec.* events */
	char *last_exec;          /* the latest exec.started argv, joined ("" none) */
	int last_exit;            /* its exit code, -1 while running or unknown */
	char *recent[MODEL_RECENT];   /* its last events, oldest first ("type detail") */
	int nrecent;
};

enum model_sort { SORT_NAME, SORT_STATE, SORT_AGE, SORT_MEMORY, SORT_N };

struct model {
	struct sbx_row *rows;
	size_t n, cap;
	size_t *view;             /* indices into rows: filtered and sorted */
	size_t nview;
	char *filter;             /* "" none: a substring of name, state, image or id */
	enum model_sort sort;
	bool desc;
	char *sel_id;             /* the selected row's id ("" none) */
	uint64_t gen;             /* bumps on every visible change */
	uint64_t seq;             /* the last event's seq (0 none) */
	char event_sandbox[64];   /* the last event applied: its sandbox_id ("" none) */
	char event_type[32];      /* and its type */
	char *log[MODEL_LOG];     /* every event, "12:00:01 dev sandbox.state state=warm", a
				   * ring: the newest at (log_first + nlog - 1) % MODEL_LOG */
	size_t log_first, nlog;
	uint64_t log_total;       /* events logged ever (the log changed; gen does not
				   * move for the log alone) */
};

/* The events log's line i (0 the oldest kept). */
const char *model_log_line(const struct model *m, size_t i);

struct model_counts {
	int total, hot, warm, cold, stopped, error, other;
};

void model_init(struct model *m);
void model_release(struct model *m);

/* Replace the rows with a GET /sandboxes answer (a JSON array of sandbox
 * objects). Session counts and exec facts known from events are kept for
 * ids still present. -EINVAL (e says why) when it is not such an array;
 * nothing changes then. */
int model_set_list(struct model *m, const char *json, size_t len, struct err *e);

/* Set the published URLs from a GET /ports answer
 * ({"ports":[{"sandbox_id":…,"url":…,"published":true}…]}) or clear them
 * all (json NULL). */
void model_set_ports(struct model *m, const char *json, size_t len);

/* What an event asks of the caller. */
enum model_need {
	MODEL_OK,          /* applied (or nothing to do) */
	MODEL_RESYNC,      /* re-read the list: a created sandbox, an event
			      about a sandbox we do not know */
	MODEL_BEHIND,      /* {"type":"resync"}: we fell behind and the daemon
			      ends the stream; subscribe again, re-read the list */
};

/* Apply one event of GET /events. -EINVAL for a message that is not an
 * event object (ignored by the caller). */
int model_apply_event(struct model *m, const char *json, size_t len, enum model_need *ret_need,
		      struct err *e);

void model_set_filter(struct model *m, const char *filter);
/* Sort by key; the same key again reverses the order. */
void model_set_sort(struct model *m, enum model_sort key);
const char *model_sort_name(enum model_sort key);

/* Move the selection by delta rows of the view (clamped). */
void model_move(struct model *m, int delta);
/* The selected row (NULL when the view is empty) and its place in the view. */
const struct sbx_row *model_selected(const struct model *m, size_t *ret_at);
const struct sbx_row *model_find(const struct model *m, const char *id_or_name);

void model_counts(const struct model *m, struct model_counts *ret);

/* "<1m", "5m", "3h", "2d" for seconds (negative: "-"). */
void model_age(int64_t secs, char *out, size_t size);

#endif
