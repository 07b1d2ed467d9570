/* panes.c — the shell panes: each is a pane (pane.c: libvterm in memory)
 * fed by a shell session (client/shell.h: the WebSocket the CLI's
 * `bhatti shell` uses), drawn into its own curses window under the
 * dashboard. Keys of the focused pane go to its session, encoded by
 * libvterm; Ctrl+\ detaches (the session keeps running: `s` again
 * reattaches and the daemon replays its scrollback into a fresh pane);
 * Ctrl+] moves the focus on; Shift+PgUp/PgDn scroll back through the
 * pane's own scrollback ring. A pane's size follows the layout, and its
 * session's size follows the pane.
 *
 * Sits between app.c (layout, keys, frames) and pane.c + client/shell.c.
 * Touches its windows only; output marks rows dirty and asks for a frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "app.h"
#include "pane.h"
#include "shell.h"

#define MAX_PANES 6

struct tpane {
	struct panes *ps;
	struct pane *vt;
	struct shell *sh;
	WINDOW *win;
	int h, w;              /* the window: a title row, then the terminal */
	char name[128];
	char session[64];
	bool attached;
	bool title_dirty;
};

struct panes {
	struct app *a;
	struct tpane *p[MAX_PANES];
	int n;
	int top, rows, cols;   /* the area under the dashboard */
};

struct panes *panes_new(struct app *a)
{
	struct panes *ps = xcalloc(1, sizeof(*ps));
	ps->a = a;
	return ps;
}

static void tpane_free(struct tpane *t)
{
	shell_free(t->sh);
	pane_free(t->vt);
	if (t->win)
		delwin(t->win);
	free(t);
}

void panes_free(struct panes *ps)
{
	if (!ps)
		return;
	for (int i = 0; i < ps->n; i++)
		tpane_free(ps->p[i]);
	free(ps);
}

int panes_count(const struct panes *ps)
{
	return ps ? ps->n : 0;
}

static int index_of(struct panes *ps, struct tpane *t)
{
	for (int i = 0; i < ps->n; i++)
		if (ps->p[i] == t)
			return i;
	return -1;
}

/* Close t (also from inside its session's callbacks). */
static void close_pane(struct tpane *t)
{
	struct panes *ps = t->ps;
	struct app *a = ps->a;
	int i = index_of(ps, t);
	if (i < 0)
		return;
	memmove(&ps->p[i], &ps->p[i + 1], (size_t)(ps->n - i - 1) * sizeof(ps->p[0]));
	ps->n--;
	if (a->focus == i)
		a->focus = -1;
	else if (a->focus > i)
		a->focus--;
	tpane_free(t);
	app_layout(a);
}

/* ---- the session's callbacks ------------------------------------------------------ */

static void on_attached(struct shell *s UNUSED, const char *picked UNUSED, void *arg)
{
	struct tpane *t = arg;
	t->attached = true;
	t->title_dirty = true;
	app_frame(t->ps->a);
}

static void on_session(struct shell *s UNUSED, const char *id, bool is_new UNUSED, void *arg)
{
	struct tpane *t = arg;
	snprintf(t->session, sizeof(t->session), "%s", id);
	t->title_dirty = true;
	app_frame(t->ps->a);
}

static void on_output(struct shell *s UNUSED, const char *p, size_t n, void *arg)
{
	struct tpane *t = arg;
	pane_feed(t->vt, p, n);
	if (pane_any_dirty(t->vt))
		app_frame(t->ps->a);
}

static void on_exit_code(struct shell *s UNUSED, int code, void *arg)
{
	struct tpane *t = arg;
	app_message(t->ps->a, code != 0, "the shell in '%s' exited (%d)", t->name, code);
	close_pane(t);
}

static void on_error(struct shell *s UNUSED, const struct err *e, void *arg)
{
	struct tpane *t = arg;
	app_message(t->ps->a, true, "shell in '%s': %s", t->name, err_str(e));
	close_pane(t);
}

static void on_detached(struct shell *s UNUSED, bool asked, void *arg)
{
	struct tpane *t = arg;
	app_message(t->ps->a, !asked, "%s session %s of '%s' (s reattaches)",
		    asked ? "detached from" : "the daemon detached", t->session, t->name);
	close_pane(t);
}

static const struct shell_cb shell_cb = {
	.attached = on_attached,
	.session = on_session,
	.output = on_output,
	.exit = on_exit_code,
	.error = on_error,
	.detached = on_detached,
};

/* ---- open, layout ------------------------------------------------------------------ */

void panes_open(struct panes *ps, const char *name)
{
	struct app *a = ps->a;
	for (int i = 0; i < ps->n; i++)
		if (strcmp(ps->p[i]->name, name) == 0) {
			a->focus = i;
			app_redraw(a);
			return;
		}
	if (ps->n == MAX_PANES) {
		app_message(a, true, "%d panes are open already (Ctrl+\\ detaches one)", MAX_PANES);
		return;
	}
	struct tpane *t = xcalloc(1, sizeof(*t));
	t->ps = ps;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->vt = pane_new(1, 1);
	ps->p[ps->n++] = t;
	app_layout(a);   /* sizes every pane, this one too */
	int rows, cols;
	pane_size(t->vt, &rows, &cols);
	struct shell_opts o = {
		.name = name, .pick = true, .cols = (unsigned)cols, .rows = (unsigned)rows,
	};
	t->sh = shell_open(a->client, &o, &shell_cb, t);
	a->focus = ps->n - 1;
	app_redraw(a);
}

void panes_layout(struct panes *ps, int top, int rows, int cols)
{
	ps->top = top, ps->rows = rows, ps->cols = cols;
	if (!ps->n)
		return;
	bool side = cols / ps->n >= 60;   /* side by side when each gets 60 columns */
	for (int i = 0; i < ps->n; i++) {
		struct tpane *t = ps->p[i];
		int y, x, h, w;
		if (side) {
			int each = cols / ps->n;
			y = top, h = rows, x = i * each, w = i == ps->n - 1 ? cols - x : each;
		} else {
			int each = rows / ps->n;
			x = 0, w = cols, y = top + i * each, h = i == ps->n - 1 ? rows - i * each : each;
		}
		h = MAX(h, 2), w = MAX(w, 1);
		if (t->win)
			delwin(t->win);
		t->win = newwin(h, w, y, x);
		t->h = h, t->w = w;
		int prow, pcol;
		pane_size(t->vt, &prow, &pcol);
		if (prow != h - 1 || pcol != w) {
			pane_resize(t->vt, h - 1, w);
			if (t->sh)
				shell_resize(t->sh, (unsigned)w, (unsigned)(h - 1));
		}
		t->title_dirty = true;
	}
}

/* ---- drawing ------------------------------------------------------------------------ */

static void draw_title(struct tpane *t, bool focused)
{
	int attr = term_attr(focused ? R_FOCUS : R_BORDER) | A_REVERSE;
	wmove(t->win, 0, 0);
	wattrset(t->win, attr);
	for (int x = 0; x < t->w; x++)
		waddch(t->win, ' ');
	char title[256];
	int off = pane_scroll_offset(t->vt);
	char scroll[48] = "";
	if (off)
		snprintf(scroll, sizeof(scroll), "  [scrolled back %d]", off);
	snprintf(title, sizeof(title), " %s %s  %s%s%s", focused ? "▶" : " ", t->name,
		 t->attached ? "session " : "connecting…", t->session, scroll);
	mvwaddnstr(t->win, 0, 0, title, t->w);
	if (focused && t->w > 30) {
		const char *hint = "Ctrl+\\ detach  Ctrl+] next ";
		mvwaddstr(t->win, 0, t->w - (int)strlen(hint), hint);
	}
	wattrset(t->win, A_NORMAL);
}

static void draw_row(struct tpane *t, int row, struct pane_cell *cells)
{
	pane_row(t->vt, row, cells);
	wmove(t->win, row + 1, 0);
	for (int c = 0; c < t->w; c++) {
		const struct pane_cell *pc = &cells[c];
		if (c > 0 && pc->ch == 0 && cells[c - 1].width == 2)
			continue;   /* the right half of a wide character */
		int attr = term_pane_attr(pc->fg, pc->bg, pc->attrs);
		if (pc->ch < 0x80) {
			waddch(t->win, (chtype)(pc->ch >= 0x20 && pc->ch != 0x7f ? pc->ch : ' ') |
					       (chtype)attr);
		} else {
			wchar_t wc[2] = { (wchar_t)pc->ch, 0 };
			cchar_t cc;
			setcchar(&cc, wc, (attr_t)(attr & ~A_COLOR), (short)PAIR_NUMBER(attr), NULL);
			wadd_wch(t->win, &cc);
		}
	}
}

void panes_draw(struct panes *ps, bool all)
{
	struct app *a = ps->a;
	for (int i = 0; i < ps->n; i++) {
		struct tpane *t = ps->p[i];
		if (!t->win || (!all && !t->title_dirty && !pane_any_dirty(t->vt)))
			continue;
		if (all || t->title_dirty)
			draw_title(t, a->focus == i);
		int rows, cols;
		pane_size(t->vt, &rows, &cols);
		struct pane_cell *cells = xcalloc((size_t)cols, sizeof(*cells));
		for (int r = 0; r < rows; r++)
			if (all || pane_dirty(t->vt, r))
				draw_row(t, r, cells);
		free(cells);
		pane_clean(t->vt);
		t->title_dirty = false;
		wnoutrefresh(t->win);
	}
}

void panes_cursor(struct panes *ps)
{
	struct app *a = ps->a;
	if (a->focus < 0 || a->focus >= ps->n) {
		curs_set(0);
		return;
	}
	struct tpane *t = ps->p[a->focus];
	int r, c;
	bool vis;
	pane_cursor(t->vt, &r, &c, &vis);
	if (!vis || r + 1 >= t->h) {
		curs_set(0);
		return;
	}
	wmove(t->win, r + 1, c);
	wnoutrefresh(t->win);
	curs_set(1);
}

/* ---- keys ---------------------------------------------------------------------------- */

void panes_focus_next(struct app *a)
{
	struct panes *ps = a->panes;
	if (!ps->n) {
		app_message(a, false, "no panes open (s opens a shell on the selected sandbox)");
		return;
	}
	a->focus = a->focus + 1 >= ps->n ? -1 : a->focus + 1;
	app_redraw(a);
}

static int pane_key_of(int k, unsigned *mods)
{
	static const struct {
		int curses, pane;
		unsigned mods;
	} map[] = {
		{ KEY_UP, PANE_KEY_UP, 0 }, { KEY_DOWN, PANE_KEY_DOWN, 0 },
		{ KEY_LEFT, PANE_KEY_LEFT, 0 }, { KEY_RIGHT, PANE_KEY_RIGHT, 0 },
		{ KEY_SR, PANE_KEY_UP, PANE_MOD_SHIFT }, { KEY_SF, PANE_KEY_DOWN, PANE_MOD_SHIFT },
		{ KEY_SLEFT, PANE_KEY_LEFT, PANE_MOD_SHIFT },
		{ KEY_SRIGHT, PANE_KEY_RIGHT, PANE_MOD_SHIFT },
		{ KEY_HOME, PANE_KEY_HOME, 0 }, { KEY_END, PANE_KEY_END, 0 },
		{ KEY_PPAGE, PANE_KEY_PAGEUP, 0 }, { KEY_NPAGE, PANE_KEY_PAGEDOWN, 0 },
		{ KEY_IC, PANE_KEY_INS, 0 }, { KEY_DC, PANE_KEY_DEL, 0 },
		{ KEY_BACKSPACE, PANE_KEY_BACKSPACE, 0 }, { KEY_ENTER, PANE_KEY_ENTER, 0 },
		{ KEY_BTAB, PANE_KEY_TAB, PANE_MOD_SHIFT },
	};
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (map[i].curses == k) {
			*mods = map[i].mods;
			return map[i].pane;
		}
	if (k >= KEY_F(1) && k <= KEY_F(24)) {
		*mods = 0;
		return PANE_KEY_F1 + (k - KEY_F(1));
	}
	return 0;
}

void panes_key(struct panes *ps, int ch, bool is_key)
{
	struct app *a = ps->a;
	if (a->focus < 0 || a->focus >= ps->n)
		return;
	struct tpane *t = ps->p[a->focus];
	if (!is_key && ch == KEY_CTRL('\\')) {
		if (t->sh)
			shell_detach(t->sh);
		return;
	}
	if (!is_key && ch == KEY_CTRL(']')) {
		panes_focus_next(a);
		return;
	}
	if (is_key && (ch == KEY_SPREVIOUS || ch == KEY_SNEXT)) {
		int step = MAX(1, (t->h - 1) / 2);
		pane_scroll(t->vt, ch == KEY_SPREVIOUS ? step : -step);
		t->title_dirty = true;
		app_frame(a);
		return;
	}
	if (pane_scroll_offset(t->vt)) {
		pane_scroll(t->vt, 0);   /* typing returns to the live screen */
		t->title_dirty = true;
		app_frame(a);
	}
	struct buf out = BUF_INIT;
	if (is_key) {
		unsigned mods = 0;
		int k = pane_key_of(ch, &mods);
		if (k)
			pane_key(t->vt, (enum pane_key)k, mods, &out);
	} else {
		pane_char(t->vt, (uint32_t)ch, 0, &out);
	}
	if (out.len && t->sh)
		shell_input(t->sh, out.data, out.len);
	buf_release(&out);
}
