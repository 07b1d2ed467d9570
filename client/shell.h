/* shell — one terminal session in a sandbox, as `bhatti shell` and the
 * TUI's panes use it: pick the session to reattach to, attach (or open a
 * new one) over the daemon's WebSocket GET /sandboxes/:id/ws, send keys
 * and window sizes, detach, and report what the daemon says through a
 * small callback table (docs/api.md has the protocol: binary frames are
 * terminal bytes both ways; text frames are JSON, {type: session | exit |
 * error | detached} from the daemon, {type: resize} to it).
 *
 * Sits between its caller (cli/cmd-shell.c; later tui/) and async.c, on
 * the caller's event loop (shared/loop). Prints nothing and touches no
 * terminal: the output bytes go to the caller.
 *
 * States (one of exit, error or detached ends it; then shell_free()):
 *
 *   PICKING ─ GET …/sessions answered ─► CONNECTING ─ upgrade ─► ATTACHED
 *   (only when asked to pick)              │                       │ exit / error /
 *                                          └── error ──► ENDED ◄───┘ detached / shell_detach()
 */
#ifndef BHATTI_CLIENT_SHELL_H
#define BHATTI_CLIENT_SHELL_H

#include <stdbool.h>
#include <stddef.h>

#include "client.h"

struct shell;

struct shell_cb {
	/* The WebSocket is open (optional). picked: the session that picking
	 * chose to reattach to, else NULL. */
	void (*attached)(struct shell *s, const char *picked, void *arg);
	/* The session's id (is_new: opened for us, not reattached). */
	void (*session)(struct shell *s, const char *id, bool is_new, void *arg);
	/* Terminal output (on reattach the scrollback comes first). */
	void (*output)(struct shell *s, const char *p, size_t n, void *arg);
	/* The input queue emptied after the socket had been full (optional). */
	void (*drained)(struct shell *s, void *arg);
	/* The end, exactly one of these three: */
	void (*exit)(struct shell *s, int code, void *arg);           /* the shell exited */
	void (*error)(struct shell *s, const struct err *e, void *arg);
	/* asked: after shell_detach(); else the daemon detached us */
	void (*detached)(struct shell *s, bool asked, void *arg);
};

struct shell_opts {
	const char *name;     /* the sandbox (name or id), as typed */
	const char *session;  /* reattach to this id, or NULL ... */
	bool pick;            /* ... or (with NULL) to the one detached session, if exactly one */
	unsigned cols, rows;  /* the window (0: 80x24) */
};

/* Start; everything after comes through cb on later loop turns. */
struct shell *shell_open(struct client *c, const struct shell_opts *o, const struct shell_cb *cb,
			 void *arg);
/* Keys for the session (queued until it is attached). */
void shell_input(struct shell *s, const void *p, size_t n);
void shell_resize(struct shell *s, unsigned cols, unsigned rows);
/* Bytes of input and resizes not yet taken by the socket. */
size_t shell_queued(const struct shell *s);
/* Leave the session running: detached(asked = true) once the daemon has
 * been told. */
void shell_detach(struct shell *s);
/* The session's id once known, else "". */
const char *shell_session_id(const struct shell *s);
/* At any time, also inside a callback: no callback after it; the memory
 * goes on the next loop turn. Accepts NULL. */
void shell_free(struct shell *s);

/* The one detached, running session other than "init" in a
 * GET /sandboxes/:id/sessions answer, if exactly one (caller frees), else
 * NULL. */
char *shell_pick(const char *sessions_json, size_t len);

#endif
