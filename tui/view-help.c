/* view-help.c — `?`: every key, generated from the key tables (each
 * view's, a pane's, the global ones), so the help cannot disagree with
 * what the keys do. Laid out in columns of 40; j/k and PgUp/PgDn scroll
 * when it does not fit (80x24); Esc or ? goes back.
 *
 * Sits between app.c and the key tables; draws only.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"

#define HELP_LINES 128

struct hline {
	bool title;
	char label[48];
	const char *text;
};

static int help_top;

/* One line per action: the keys that do the same thing share it ("k/Up"). */
static int section(struct hline *out, int n, const char *title, const struct key_def *keys)
{
	if (n && n < HELP_LINES)
		out[n++] = (struct hline){ .text = "" };
	if (n < HELP_LINES)
		out[n++] = (struct hline){ .title = true, .text = title };
	for (const struct key_def *k = keys; k->key && n < HELP_LINES; k++) {
		bool seen = false;
		for (const struct key_def *e = keys; e < k && !seen; e++)
			seen = e->fn == k->fn && strcmp(e->help, k->help) == 0;
		if (seen)
			continue;
		struct hline *l = &out[n++];
		*l = (struct hline){ .text = k->help };
		size_t len = 0;
		for (const struct key_def *e = k; e->key; e++)
			if (e->fn == k->fn && strcmp(e->help, k->help) == 0 && !strstr(l->label, e->label) &&
			    len < sizeof(l->label))
				len += (size_t)snprintf(l->label + len, sizeof(l->label) - len, "%s%s",
							len ? "/" : "", e->label);
	}
	return n;
}

static int build(struct hline *l)
{
	int n = 0;
	n = section(l, n, "sandboxes (the dashboard)", view_dashboard.keys);
	n = section(l, n, "the detail view (i)", view_detail.keys);
	n = section(l, n, "the exec log (e, x)", view_exec.keys);
	n = section(l, n, "the events log (l)", view_events.keys);
	n = section(l, n, "a shell pane (when it has the focus)", app_pane_keys);
	n = section(l, n, "everywhere", app_global_keys);
	return n;
}

static void draw(struct app *a UNUSED, WINDOW *w, int rows, int cols)
{
	struct hline lines[HELP_LINES];
	int n = build(lines);
	int colw = 40, ncols = MAX(1, cols / colw);
	int per = MAX(1, rows);
	int max_scroll = MAX(0, n - per * ncols);
	help_top = MIN(help_top, max_scroll);
	for (int i = help_top; i < n; i++) {
		int at = i - help_top, c = at / per, y = at % per;
		if (c >= ncols)
			break;
		int x = c * colw;
		if (lines[i].title) {
			wattron(w, term_attr(R_TITLE));
			mvwaddnstr(w, y, x + 1, lines[i].text, colw - 2);
			wattroff(w, term_attr(R_TITLE));
		} else if (lines[i].label[0]) {
			wattron(w, term_attr(R_KEY));
			app_put(w, y, x + 2, "%-10.10s", lines[i].label);
			wattroff(w, term_attr(R_KEY));
			mvwaddnstr(w, y, x + 13, lines[i].text, colw - 14);
		}
	}
	if (max_scroll) {
		wattron(w, term_attr(R_DIM));
		app_put(w, rows - 1, MAX(0, cols - 24), help_top < max_scroll ? " j/PgDn: more " : " k/PgUp: back ");
		wattroff(w, term_attr(R_DIM));
	}
}

static void enter(struct app *a UNUSED)
{
	help_top = 0;
}

static void back(struct app *a)
{
	app_set_view(a, a->prev_view && a->prev_view != &view_help ? a->prev_view
								    : &view_dashboard);
}

static void down(struct app *a) { help_top++; app_redraw(a); }
static void up(struct app *a) { help_top = MAX(0, help_top - 1); app_redraw(a); }
static void page_down(struct app *a) { help_top += MAX(1, a->main_rows); app_redraw(a); }
static void page_up(struct app *a) { help_top = MAX(0, help_top - MAX(1, a->main_rows)); app_redraw(a); }

static const struct key_def keys[] = {
	{ 27, "Esc", "back", back, true },
	{ 'j', "j", "more", down, false },
	{ KC(KEY_DOWN), "Down", "more", down, false },
	{ 'k', "k", "back up", up, false },
	{ KC(KEY_UP), "Up", "back up", up, false },
	{ KC(KEY_NPAGE), "PgDn", "a page more", page_down, false },
	{ KC(KEY_PPAGE), "PgUp", "a page back", page_up, false },
	{ 0 },
};

const struct view_ops view_help = {
	.name = "help",
	.keys = keys,
	.enter = enter,
	.draw = draw,
};
