/* view-help.c — `?`: every key, generated from the key tables (the
 * dashboard's, a pane's, and the global ones), so the help cannot
 * disagree with what the keys do. Esc, q or ? goes back.
 *
 * Sits between app.c and the key tables; draws only.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"

/* One line per action: the keys that do the same thing share it ("k/Up"). */
static void section(WINDOW *w, int *y, int *x, int rows, int colw, const char *title,
		    const struct key_def *keys)
{
	if (*y + 2 >= rows && *x == 0)
		*y = 0, *x = colw;   /* on into the second column */
	wattron(w, term_attr(R_TITLE));
	mvwaddnstr(w, (*y)++, *x + 1, title, colw - 2);
	wattroff(w, term_attr(R_TITLE));
	for (const struct key_def *k = keys; k->key; k++) {
		bool seen = false;
		for (const struct key_def *e = keys; e < k && !seen; e++)
			seen = e->fn == k->fn && strcmp(e->help, k->help) == 0;
		if (seen)
			continue;
		char label[48] = "";
		size_t n = 0;
		for (const struct key_def *e = k; e->key; e++)
			if (e->fn == k->fn && strcmp(e->help, k->help) == 0 &&
			    !strstr(label, e->label) && n < sizeof(label))
				n += (size_t)snprintf(label + n, sizeof(label) - n, "%s%s", n ? "/" : "",
						      e->label);
		if (*y >= rows) {
			if (*x)
				return;
			*y = 0, *x = colw;
		}
		wattron(w, term_attr(R_KEY));
		mvwprintw(w, *y, *x + 3, "%-12s", label);
		wattroff(w, term_attr(R_KEY));
		waddnstr(w, " ", 1);
		waddnstr(w, k->help, MAX(0, colw - 17));
		(*y)++;
	}
	(*y)++;
}

static void draw(struct app *a UNUSED, WINDOW *w, int rows, int cols)
{
	int y = 0, x = 0, colw = cols >= 80 ? cols / 2 : cols;
	section(w, &y, &x, rows, colw, "sandboxes (the dashboard)", view_dashboard.keys);
	section(w, &y, &x, rows, colw, "the detail view (i)", view_detail.keys);
	section(w, &y, &x, rows, colw, "the exec log (e, x)", view_exec.keys);
	section(w, &y, &x, rows, colw, "a shell pane (when it has the focus)", app_pane_keys);
	section(w, &y, &x, rows, colw, "everywhere", app_global_keys);
}

static void back(struct app *a)
{
	app_set_view(a, a->prev_view && a->prev_view != &view_help ? a->prev_view
								    : &view_dashboard);
}

static const struct key_def keys[] = {
	{ 27, "Esc", "back", back, true },
	{ 0 },
};

const struct view_ops view_help = {
	.name = "help",
	.keys = keys,
	.draw = draw,
};
