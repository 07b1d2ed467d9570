/* view-events.c — `l`: the events log: every event of GET /events as it
 * comes (the model keeps the last MODEL_LOG), newest at the bottom; j/k
 * and PgUp/PgDn scroll back. Without an events stream (a daemon that
 * has no GET /events) it says so and shows nothing.
 *
 * Sits between app.c and the model; draws only.
 */
#include <string.h>

#include "app.h"

static size_t back_n;   /* lines scrolled up from the newest */

static void draw(struct app *a, WINDOW *w, int rows, int cols)
{
	const struct model *m = &a->model;
	wattron(w, term_attr(R_TITLE));
	app_put(w, 0, 0, " events (%zu kept)", m->nlog);
	wattroff(w, term_attr(R_TITLE));
	int body = rows - 1;
	if (a->feed != FEED_LIVE && !m->nlog) {
		wattron(w, term_attr(R_DIM));
		app_put(w, 2, 1, "%s", a->feed == FEED_POLLING
				 ? "none: this daemon has no events stream (GET /events); the list is polled"
				 : "none: not connected to the daemon's events");
		wattroff(w, term_attr(R_DIM));
		return;
	}
	back_n = MIN(back_n, m->nlog ? m->nlog - 1 : 0);
	size_t last = m->nlog - back_n;
	size_t first = last > (size_t)body ? last - (size_t)body : 0;
	for (size_t i = first; i < last; i++)
		mvwaddnstr(w, (int)(i - first) + 1, 1, model_log_line(m, i), cols - 2);
}

static void enter(struct app *a UNUSED)
{
	back_n = 0;
}

static void back(struct app *a) { app_set_view(a, &view_dashboard); }
static void up(struct app *a) { back_n++; app_redraw(a); }
static void down(struct app *a) { back_n = back_n ? back_n - 1 : 0; app_redraw(a); }
static void page_up(struct app *a) { back_n += (size_t)MAX(1, a->main_rows - 2); app_redraw(a); }
static void page_down(struct app *a)
{
	size_t step = (size_t)MAX(1, a->main_rows - 2);
	back_n = back_n > step ? back_n - step : 0;
	app_redraw(a);
}

static const struct key_def keys[] = {
	{ 27, "Esc", "back", back, true },
	SCROLL_KEYS(up, down, page_up, page_down),
	{ 0 },
};

const struct view_ops view_events = {
	.name = "events",
	.keys = keys,
	.enter = enter,
	.draw = draw,
};
