/* app.c — the TUI's application: the one event loop (shared/loop) with
 * the keyboard, a signalfd (SIGWINCH, SIGINT, SIGTERM, SIGHUP), the
 * frame timer, the daemon's connections (feed.c) and each pane's
 * WebSocket (panes.c); the layout; key dispatch through the key tables;
 * the footer and the confirm dialog; tui_run().
 *
 * Sits between tui_run()'s caller (cli/cmd-tui.c) and the rest of tui/.
 * Touches the terminal only through curses (term.c sets it up).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "app.h"
#include "tui.h"

/* ---- frames ------------------------------------------------------------------ */

void app_redraw(struct app *a)
{
	a->need_redraw = true;
	app_frame(a);
}

void app_frame(struct app *a)
{
	if (a->frame_pending)
		return;
	a->frame_pending = true;
	uint64_t since = now_ms() - a->last_frame_ms;
	if (since >= FRAME_MIN_MS)
		task_post(&a->frame_task);   /* after this turn's events: they share the frame */
	else
		timer_arm(&a->frame, FRAME_MIN_MS - since);
}

static void draw_header(struct app *a)
{
	WINDOW *w = a->w_head;
	wbkgdset(w, ' ' | term_attr(R_HEADER));
	werase(w);
	struct model_counts c;
	model_counts(&a->model, &c);
	char counts[160];
	int n = snprintf(counts, sizeof(counts), "%d sandbox%s", c.total, c.total == 1 ? "" : "es");
	const struct {
		int v;
		const char *name;
	} parts[] = { { c.hot, "hot" }, { c.warm, "warm" }, { c.cold, "cold" },
		      { c.stopped, "stopped" }, { c.error, "error" }, { c.other, "busy" } };
	for (size_t i = 0; i < ARRAY_SIZE(parts) && n < (int)sizeof(counts); i++)
		if (parts[i].v)
			n += snprintf(counts + n, sizeof(counts) - (size_t)n, " %d %s", parts[i].v,
				      parts[i].name);
	const char *feed = a->feed == FEED_LIVE      ? "live"
			   : a->feed == FEED_POLLING ? "polling"
			   : a->feed == FEED_DOWN    ? "daemon gone: retrying"
						     : "connecting";
	char left[512];
	snprintf(left, sizeof(left), " bhatti  %s  %s%s%s%s  %s", a->url, a->version[0] ? "v" : "",
		 a->version, a->accel[0] ? " " : "", a->accel, counts);
	int fl = (int)strlen(feed) + 2;
	mvwaddnstr(w, 0, 0, left, MAX(0, a->cols - fl - 1));
	if (a->cols > fl) {
		if (a->feed == FEED_DOWN)
			wattron(w, A_BOLD | A_BLINK);
		mvwprintw(w, 0, a->cols - fl, "%s ", feed);
		wattroff(w, A_BOLD | A_BLINK);
	}
	wnoutrefresh(w);
}

static void footer_keys(struct app *a, WINDOW *w, const struct key_def *keys)
{
	for (const struct key_def *k = keys; k && k->key; k++) {
		if (!k->footer)
			continue;
		int y, x;
		getyx(w, y, x);
		(void)y;
		if (x + (int)strlen(k->label) + (int)strlen(k->help) + 3 >= a->cols)
			break;
		wattron(w, term_attr(R_KEY));
		wprintw(w, "%s", k->label);
		wattroff(w, term_attr(R_KEY));
		wprintw(w, " %s  ", k->help);
	}
}

/* The keys of a pane with the focus (panes.c handles them; listed here
 * for the footer and the help). */
const struct key_def app_pane_keys[] = {
	{ KEY_CTRL('\\'), "^\\", "detach", NULL, true },
	{ KEY_CTRL(']'), "^]", "next pane", NULL, true },
	{ KC(KEY_SPREVIOUS), "S-PgUp", "scroll back", NULL, true },
	{ KC(KEY_SNEXT), "S-PgDn", "scroll forward", NULL, true },
	{ 0 },
};

static void draw_footer(struct app *a)
{
	WINDOW *w = a->w_foot;
	wbkgdset(w, ' ' | term_attr(R_FOOTER));
	werase(w);
	wmove(w, 0, 0);
	if (a->dialog) {
		wattron(w, term_attr(R_DIALOG));
		wprintw(w, " %s (y/n) ", a->dialog_text);
		wattroff(w, term_attr(R_DIALOG));
	} else if (a->input) {
		wprintw(w, " %s%s", a->input_prompt, a->input_text);
		wattron(w, A_REVERSE);
		waddch(w, ' ');
		wattroff(w, A_REVERSE);
	} else if (a->msg[0]) {
		if (a->msg_error)
			wattron(w, term_attr(R_ERROR_MSG));
		wprintw(w, " %s", a->msg);
		wattroff(w, term_attr(R_ERROR_MSG));
	} else {
		waddch(w, ' ');
		footer_keys(a, w, a->focus >= 0 ? app_pane_keys : a->view->keys);
		if (a->focus < 0)
			footer_keys(a, w, app_global_keys);
	}
	wnoutrefresh(w);
}

static void draw_dialog(struct app *a)
{
	int width = MIN(a->cols - 4, (int)strlen(a->dialog_text) + 6);
	if (width < 10 || a->rows < 7)
		return;   /* the footer says it */
	int lines = 5;
	WINDOW *d = newwin(lines, width, (a->rows - lines) / 2, (a->cols - width) / 2);
	wbkgd(d, ' ' | term_attr(R_DIALOG));
	box(d, 0, 0);
	mvwaddnstr(d, 1, 2, a->dialog_text, width - 4);
	mvwaddstr(d, 3, 2, "y: yes   n: no");
	wnoutrefresh(d);
	delwin(d);
}

static void draw_frame(struct app *a)
{
	uint64_t t0 = now_ns();
	a->frame_pending = false;
	timer_cancel(&a->frame);
	task_cancel(&a->frame_task);
	bool all = a->need_redraw;
	a->need_redraw = false;
	if (all) {
		draw_header(a);
		werase(a->w_main);
		a->view->draw(a, a->w_main, a->main_rows, a->cols);
		wnoutrefresh(a->w_main);
		draw_footer(a);
	}
	panes_draw(a->panes, all);
	if (a->dialog && all)
		draw_dialog(a);
	if (a->focus >= 0 && !a->dialog) {
		panes_cursor(a->panes);
	} else {
		curs_set(0);
	}
	doupdate();
	a->last_frame_ms = now_ms();
	uint64_t ns = now_ns() - t0;
	a->frames++;
	a->frame_ns += ns;
	a->frame_ns_max = MAX(a->frame_ns_max, ns);
}

static void on_frame(struct timer *t)
{
	draw_frame(t->data);
}

static void on_frame_task(struct task *t)
{
	draw_frame(t->data);
}

static void on_tick(struct timer *t)
{
	struct app *a = t->data;
	app_redraw(a);   /* the ages in the list ("5m") */
	timer_arm(t, 60000);
}

/* ---- layout ------------------------------------------------------------------ */

void app_layout(struct app *a)
{
	struct winsize ws;
	if (ioctl(a->out_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col &&
	    (ws.ws_row != LINES || ws.ws_col != COLS))
		resizeterm(ws.ws_row, ws.ws_col);
	a->rows = LINES, a->cols = COLS;
	int mid = MAX(a->rows - 2, 1);
	a->main_rows = panes_count(a->panes) ? MIN(mid, MAX(5, mid / 3)) : mid;
	if (a->w_head)
		delwin(a->w_head), delwin(a->w_main), delwin(a->w_foot);
	a->w_head = newwin(1, a->cols, 0, 0);
	a->w_main = newwin(a->main_rows, a->cols, 1, 0);
	a->w_foot = newwin(1, a->cols, MAX(a->rows - 1, 1), 0);
	panes_layout(a->panes, 1 + a->main_rows, mid - a->main_rows, a->cols);
	clearok(curscr, TRUE);
	app_redraw(a);
}

void app_put(WINDOW *w, int y, int x, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	int room = getmaxx(w) - x;
	if (room > 0)
		mvwaddnstr(w, y, x, line, room);
}

/* ---- messages, dialogs, views ---------------------------------------------------- */

void app_message(struct app *a, bool error, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->msg, sizeof(a->msg), fmt, ap);
	va_end(ap);
	a->msg_error = error;
	app_redraw(a);
}

void app_confirm(struct app *a, const char *arg, void (*yes)(struct app *a), const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->dialog_text, sizeof(a->dialog_text), fmt, ap);
	va_end(ap);
	snprintf(a->dialog_arg, sizeof(a->dialog_arg), "%s", arg ? arg : "");
	a->dialog_yes = yes;
	a->dialog = true;
	app_redraw(a);
}

void app_set_view(struct app *a, const struct view_ops *v)
{
	if (v != a->view)
		a->prev_view = a->view;
	a->view = v;
	if (v->enter)
		v->enter(a);
	app_redraw(a);
}

static void quit_yes(struct app *a)
{
	a->quit = true;
	loop_stop();
}

void app_quit(struct app *a)
{
	int n = panes_count(a->panes);
	if (n)
		app_confirm(a, NULL, quit_yes, "quit? %d shell%s open (the session%s keep%s running)",
			    n, n == 1 ? " is" : "s are", n == 1 ? "" : "s", n == 1 ? "s" : "");
	else
		quit_yes(a);
}

static void key_quit(struct app *a)
{
	app_quit(a);
}

static void key_help(struct app *a)
{
	app_set_view(a, a->view == &view_help ? (a->prev_view ? a->prev_view : &view_dashboard)
					     : &view_help);
}

static void key_focus(struct app *a)
{
	panes_focus_next(a);
}

const struct key_def app_global_keys[] = {
	{ '?', "?", "help", key_help, true },
	{ '\t', "Tab", "focus a pane", key_focus, false },
	{ 'q', "q", "quit", key_quit, true },
	{ 0 },
};

/* ---- keys -------------------------------------------------------------------------- */

static bool run_table(struct app *a, const struct key_def *keys, int code)
{
	for (const struct key_def *k = keys; k && k->key; k++)
		if (k->key == code && k->fn) {
			k->fn(a);
			return true;
		}
	return false;
}

void app_input(struct app *a, const char *prompt, const struct input_ops *ops)
{
	a->input = true;
	snprintf(a->input_prompt, sizeof(a->input_prompt), "%s", prompt);
	a->input_text[0] = '\0';
	a->input_ops = ops;
	a->hist_at = -1;
	app_redraw(a);
}

static void input_history(struct app *a, int dir)
{
	char **h = a->input_ops->history;
	int n = h ? (int)strv_len(h) : 0;
	if (!n)
		return;
	int at = a->hist_at < 0 ? n : a->hist_at;
	at += dir;
	if (at < 0)
		at = 0;
	if (at >= n) {
		a->hist_at = -1;
		a->input_text[0] = '\0';
		return;
	}
	a->hist_at = at;
	snprintf(a->input_text, sizeof(a->input_text), "%s", h[at]);
}

static void input_key(struct app *a, int code)
{
	const struct input_ops *ops = a->input_ops;
	size_t n = strlen(a->input_text);
	char text[sizeof(a->input_text)];
	if (code == 27 || code == KEY_CTRL('c')) {
		a->input = false;
		a->input_text[0] = '\0';
		if (ops->cancel)
			ops->cancel(a);
	} else if (code == '\r' || code == '\n' || code == KC(KEY_ENTER)) {
		a->input = false;
		snprintf(text, sizeof(text), "%s", a->input_text);
		ops->done(a, text);
	} else if (code == 127 || code == KEY_CTRL('h') || code == KC(KEY_BACKSPACE)) {
		if (n)
			a->input_text[n - 1] = '\0';
	} else if (code == KEY_CTRL('u')) {
		a->input_text[0] = '\0';
	} else if (code == KC(KEY_UP) || code == KC(KEY_DOWN)) {
		input_history(a, code == KC(KEY_UP) ? -1 : 1);
	} else if (code >= 0x20 && code < 0x7f && n + 1 < sizeof(a->input_text)) {
		a->input_text[n] = (char)code;
		a->input_text[n + 1] = '\0';
	}
	if (a->input && ops->changed)
		ops->changed(a, a->input_text);
	app_redraw(a);
}

/* code: a character, or 0x1000000 | a curses KEY_* code. */
static void on_key(struct app *a, int code, int raw, bool is_key)
{
	if (a->msg[0]) {
		a->msg[0] = '\0';
		app_redraw(a);
	}
	if (a->dialog) {
		a->dialog = false;
		if (code == 'y' || code == 'Y')
			a->dialog_yes(a);
		app_redraw(a);
		return;
	}
	if (a->input) {
		input_key(a, code);
		return;
	}
	if (a->focus >= 0) {
		panes_key(a->panes, raw, is_key);
		return;
	}
	if (run_table(a, a->view->keys, code) || run_table(a, app_global_keys, code))
		return;
	if (a->view->key)
		a->view->key(a, code);
}

static void on_input(struct watch *w, uint32_t events UNUSED)
{
	struct app *a = w->data;
	wint_t ch;
	int r;
	while ((r = wget_wch(a->in_pad, &ch)) != ERR) {
		if (r == KEY_CODE_YES && ch == KEY_RESIZE)
			continue;   /* SIGWINCH comes through the signalfd */
		bool is_key = r == KEY_CODE_YES;
		on_key(a, is_key ? KC((int)ch) : (int)ch, (int)ch, is_key);
		if (a->quit)
			return;
	}
}

/* ---- signals --------------------------------------------------------------------- */

static void on_signal(struct watch *w, uint32_t events UNUSED)
{
	struct app *a = w->data;
	struct signalfd_siginfo si;
	bool winch = false;
	while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGWINCH) {
			winch = true;
		} else {
			a->quit = true;   /* SIGINT, SIGTERM, SIGHUP: leave cleanly */
			loop_stop();
		}
	}
	if (winch)
		app_layout(a);
}

/* ---- run --------------------------------------------------------------------------- */

static sigset_t app_signals(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGWINCH);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	return mask;
}

int app_start(struct app *a, const struct tui_opts *o, int in_fd, int out_fd, struct err *e)
{
	memset(a, 0, sizeof(*a));
	a->client = o->client;
	a->url = o->set->url;
	a->focus = -1;
	a->in_fd = in_fd, a->out_fd = out_fd;
	/* the theme first: a bad one is said before the screen changes */
	const char *nc = getenv("NO_COLOR");
	const char *want = theme_pick(o->theme, o->set->theme, nc && nc[0], true);
	int rc = theme_load(want, theme_dirs(), &a->theme, e);
	if (rc < 0)
		return rc;
	sigset_t mask = app_signals();
	sigprocmask(SIG_BLOCK, &mask, NULL);
	rc = term_start(in_fd, out_fd, e);
	if (rc < 0) {
		sigprocmask(SIG_UNBLOCK, &mask, NULL);
		return rc;
	}
	if (!term_has_colors())
		theme_builtin("mono", &a->theme);
	term_colors(&a->theme);
	model_init(&a->model);
	a->view = &view_dashboard;
	timer_init(&a->frame, on_frame, a);
	task_init(&a->frame_task, on_frame_task, a);
	timer_init(&a->tick, on_tick, a);
	watch_init(&a->in, on_input, a);
	watch_init(&a->sig, on_signal, a);
	a->in_pad = newpad(1, 1);
	keypad(a->in_pad, TRUE);
	nodelay(a->in_pad, TRUE);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd >= 0 && watch_add(&a->sig, sfd, EPOLLIN) < 0)
		close(sfd);
	watch_add(&a->in, in_fd, EPOLLIN);
	a->panes = panes_new(a);
	app_layout(a);
	timer_arm(&a->tick, 60000);
	return 0;
}

void app_stop(struct app *a)
{
	execlog_free(a);
	detail_free();
	feed_free(a->fd);
	a->fd = NULL;
	panes_free(a->panes);
	a->panes = NULL;
	timer_cancel(&a->frame);
	task_cancel(&a->frame_task);
	timer_cancel(&a->tick);
	watch_del(&a->in);
	watch_close(&a->sig);
	loop_run_once(0);   /* deferred frees */
	delwin(a->in_pad);
	delwin(a->w_head), delwin(a->w_main), delwin(a->w_foot);
	term_stop();
	model_release(&a->model);
	sigset_t mask = app_signals();
	sigprocmask(SIG_UNBLOCK, &mask, NULL);
}

int tui_run(const struct tui_opts *o, struct err *e)
{
	if (loop_init() < 0)
		return err_set(e, errno, "cannot start the event loop: %s", strerror(errno));
	struct app a;
	int rc = app_start(&a, o, 0, 1, e);
	if (rc < 0)
		return rc;
	a.fd = feed_new(&a);
	loop_run();
	app_stop(&a);
	return 0;
}
