/* app.h — what the files of tui/ share: the application state, the view
 * ops table, key tables, and the few calls between them (see tui.h for
 * the files). Private to tui/.
 *
 * The screen, top to bottom: the header (one line), the current view
 * (the dashboard, the help …), the shell panes when any are open (the
 * dashboard stays above them, smaller), the footer (one line: the keys of
 * what has the focus, generated from its key table, or the filter being
 * typed, or a message). Dialogs (confirm y/n) sit in the middle, modal.
 *
 * Drawing: anything that changes calls app_redraw() (everything) or arms
 * a frame for the panes' dirty rows (app_frame()); one timer draws the
 * frame with wnoutrefresh and a single doupdate. Nothing changes, nothing
 * is drawn: idle, the TUI writes nothing.
 */
#ifndef BHATTI_TUI_APP_H
#define BHATTI_TUI_APP_H

#include <stdbool.h>
#include <curses.h>

#include "client.h"
#include "loop.h"
#include "model.h"
#include "theme.h"

struct app;
struct tui_opts;

/* Key codes of the tables: a character as it is, a curses KEY_* as KC(). */
#define KC(k) (0x1000000 | (k))
#define KEY_CTRL(c) ((c) & 0x1f)

/* One key of a view: the key (a character or a curses KEY_*), how the
 * footer and help name it, what it does (for the help), and the action.
 * footer: shown in the footer (the help shows every key). */
struct key_def {
	int key;
	const char *label;
	const char *help;
	void (*fn)(struct app *a);
	bool footer;
};

/* A line typed in the footer: changed after each key (optional), done on
 * Enter, cancelled on Esc (optional); Up/Down walk the history (optional). */
struct input_ops {
	void (*changed)(struct app *a, const char *text);
	void (*done)(struct app *a, const char *text);
	void (*cancel)(struct app *a);
	char **history;                /* newest last, NULL-terminated */
};

/* The scrolling keys of a view with a log (k/Up, j/Down, PgUp, PgDn). */
#define SCROLL_KEYS(up, down, page_up, page_down) \
	{ 'k', "k", "scroll up", up, false }, \
	{ KC(KEY_UP), "Up", "scroll up", up, false }, \
	{ 'j', "j", "scroll down", down, false }, \
	{ KC(KEY_DOWN), "Down", "scroll down", down, false }, \
	{ KC(KEY_PPAGE), "PgUp", "page up", page_up, false }, \
	{ KC(KEY_NPAGE), "PgDn", "page down", page_down, false }

struct view_ops {
	const char *name;
	const struct key_def *keys;    /* ends with key 0 */
	void (*enter)(struct app *a);  /* optional */
	void (*draw)(struct app *a, WINDOW *w, int rows, int cols);
	/* A key not in the table (optional): true when used. */
	bool (*key)(struct app *a, int ch);
	/* An event of GET /events about sandbox id was applied to the model
	 * while the view is shown (optional). */
	void (*event)(struct app *a, const char *id, const char *type);
};

extern const struct view_ops view_dashboard, view_help, view_exec, view_detail, view_events;
void detail_free(void);   /* view-detail.c: at the end */
/* view-detail.c: publish (POST /sandboxes/:id/publish) or unpublish a port
 * of sandbox id, typed in the footer ("PORT [ALIAS]", "PORT"). */
void detail_publish_prompt(struct app *a, const char *id, const char *name);
void detail_unpublish_prompt(struct app *a, const char *id, const char *name);

/* view-exec.c: the exec prompt of sandbox name (e). */
void execlog_prompt(struct app *a, const char *name);
/* x: watch every exec in sandbox name (GET /sandboxes/:id/execs); the
 * same name again stops. */
void execlog_watch(struct app *a, const char *name);
void execlog_free(struct app *a);   /* at the end: cancels a running command */

#define FRAME_MIN_MS 1       /* frames are at least this far apart; otherwise one
				is drawn on the next loop turn (events of one turn
				share it). 8 ms held a pane's echo back ~5 ms in
				bench/tui when keys came every few ms */
#define POLL_MS 2000         /* the list is re-read this often without GET /events */

enum feed_state { FEED_CONNECTING, FEED_LIVE, FEED_POLLING, FEED_DOWN };

struct panes;

struct app {
	struct client *client;
	const char *url;
	struct model model;
	struct theme theme;
	/* the daemon */
	char version[32], accel[16];
	enum feed_state feed;
	char feed_err[160];
	bool no_ports;                 /* GET /ports answered 404: not on this daemon */
	struct feed *fd;
	/* the screen */
	int rows, cols;
	WINDOW *w_head, *w_main, *w_foot;
	int main_rows;
	const struct view_ops *view, *prev_view;
	size_t top;                    /* the dashboard's first row shown */
	struct panes *panes;
	int focus;                     /* -1 the view, else a pane's index */
	bool need_redraw;
	bool frame_pending;
	uint64_t last_frame_ms;
	struct timer frame, tick;
	struct task frame_task;
	int in_fd, out_fd;             /* the terminal (0 and 1; a pty in bench/tui) */
	/* frame statistics (bench/tui) */
	uint64_t frames, frame_ns, frame_ns_max;
	/* the footer's modes: a line being typed (the filter, a command) ... */
	bool input;
	char input_prompt[160];
	char input_text[256];
	const struct input_ops *input_ops;
	int hist_at;                   /* the history entry shown (-1: the line typed) */
	/* ... or a message */
	char msg[200];
	bool msg_error;
	/* a confirm dialog */
	bool dialog;
	char dialog_text[200];
	void (*dialog_yes)(struct app *a);
	char dialog_arg[128];          /* the sandbox id the dialog is about */
	bool quit;
	struct watch in, sig;
	WINDOW *in_pad;                /* keys are read here (a pad: reading never refreshes) */
};

/* ---- app.c ---- */
void app_redraw(struct app *a);          /* draw everything on the next frame */
void app_frame(struct app *a);           /* draw what is dirty on the next frame */
void app_set_view(struct app *a, const struct view_ops *v);
void app_message(struct app *a, bool error, const char *fmt, ...) PRINTF(3, 4);
void app_confirm(struct app *a, const char *arg, void (*yes)(struct app *a), const char *fmt,
		 ...) PRINTF(4, 5);
void app_quit(struct app *a);            /* asks first when panes are open */
/* Start typing a line in the footer (prompt, e.g. "/" or "exec in 'dev'> "). */
void app_input(struct app *a, const char *prompt, const struct input_ops *ops);
void app_layout(struct app *a);
/* mvwprintw cut at the window's right edge (curses would wrap the rest
 * onto the next row). */
void app_put(WINDOW *w, int y, int x, const char *fmt, ...) PRINTF(4, 5);
/* The keys every view has, and a pane's (handled by panes.c), each
 * ending with key 0 (for the footer and the help). */
extern const struct key_def app_global_keys[], app_pane_keys[];

/* Set up the screen on the terminal in_fd/out_fd with the theme of o
 * (everything but the daemon's feed); app_stop undoes it. For tui_run()
 * and bench/tui. */
int app_start(struct app *a, const struct tui_opts *o, int in_fd, int out_fd, struct err *e);
void app_stop(struct app *a);

/* ---- term.c ---- */
int term_start(int in_fd, int out_fd, struct err *e);
void term_stop(void);
void term_colors(const struct theme *t);
int term_attr(enum role r);              /* curses attributes of a role */
int term_pane_attr(int fg, int bg, unsigned pane_attrs);   /* a pane cell's */
bool term_has_colors(void);

/* ---- feed.c: what comes from the daemon ---- */
struct feed *feed_new(struct app *a);
void feed_free(struct feed *f);
void feed_refresh(struct feed *f);       /* re-read the list now */
void feed_ports(struct feed *f);         /* re-read the published URLs (GET /ports) */
/* An action on a sandbox: POST /sandboxes/ID/stop|start, DELETE …;
 * the outcome is a message, then the list is re-read. */
void feed_action(struct feed *f, const char *method, const char *id, const char *what,
		 const char *name);

/* ---- panes.c ---- */
struct panes *panes_new(struct app *a);
void panes_free(struct panes *ps);
int panes_count(const struct panes *ps);
/* Open (or focus) a shell pane on sandbox name. */
void panes_open(struct panes *ps, const char *name);
void panes_layout(struct panes *ps, int top, int rows, int cols);
/* Draw the panes: all, or only their dirty rows. */
void panes_draw(struct panes *ps, bool all);
/* A key for the focused pane. */
void panes_key(struct panes *ps, int ch, bool is_key);
void panes_focus_next(struct app *a);
/* Place the terminal's cursor in the focused pane (after a frame). */
void panes_cursor(struct panes *ps);

#endif
