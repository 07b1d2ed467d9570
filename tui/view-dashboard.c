/* view-dashboard.c — the main view: the table of the user's sandboxes
 * (name, state in its colour, cpus, memory, image, IP, age, idle for,
 * shells,
 * published URLs), the selection, filter and sort keys, and the actions
 * on the selected sandbox (shell, stop/start, destroy) with their confirm
 * dialogs.
 *
 * Sits between app.c (keys, frames) and the model; actions go through
 * feed.c, shells through panes.c.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"

static enum role state_role(const char *s)
{
	if (strcmp(s, "hot") == 0)
		return R_HOT;
	if (strcmp(s, "warm") == 0)
		return R_WARM;
	if (strcmp(s, "cold") == 0)
		return R_COLD;
	if (strcmp(s, "stopped") == 0)
		return R_STOPPED;
	if (strcmp(s, "error") == 0)
		return R_ERROR;
	return R_BUSY;
}

static void draw(struct app *a, WINDOW *w, int rows, int cols)
{
	struct model *m = &a->model;
	int name_w = MAX(8, MIN(24, cols - 62));
	char head[256];
	snprintf(head, sizeof(head), " %-*s %-8s %3s %6s %-8s %-15s %4s %4s %3s %s", name_w, "NAME",
		 "STATE", "CPU", "MEM", "IMAGE", "IP", "AGE", "IDLE", "SH", "PUBLISHED");
	wattron(w, term_attr(R_TITLE));
	mvwaddnstr(w, 0, 0, head, cols);   /* cut, never wrapped onto the first row */
	wattroff(w, term_attr(R_TITLE));
	int list_rows = rows - 1;
	if (list_rows <= 0)
		return;
	if (!m->nview) {
		wattron(w, term_attr(R_DIM));
		if (a->feed == FEED_DOWN && !m->n)
			app_put(w, 2, 1, "cannot reach the daemon at %s: %s (retrying)", a->url,
				  a->feed_err);
		else if (a->feed == FEED_CONNECTING)
			app_put(w, 2, 1, "connecting to %s", a->url);
		else if (m->n)
			app_put(w, 2, 1, "no sandbox matches '%s' (Esc in / clears)", m->filter);
		else
			app_put(w, 2, 1, "no sandboxes yet: bhatti create NAME");
		wattroff(w, term_attr(R_DIM));
		return;
	}
	size_t at = 0;
	model_selected(m, &at);
	if (at < a->top)
		a->top = at;
	if (at >= a->top + (size_t)list_rows)
		a->top = at - (size_t)list_rows + 1;
	if (a->top + (size_t)list_rows > m->nview)
		a->top = m->nview > (size_t)list_rows ? m->nview - (size_t)list_rows : 0;
	int64_t now = wall_sec();
	for (int i = 0; i < list_rows && a->top + (size_t)i < m->nview; i++) {
		size_t vi = a->top + (size_t)i;
		const struct sbx_row *r = &m->rows[m->view[vi]];
		bool sel = vi == at;
		int base = sel ? term_attr(R_SELECTED) : term_attr(R_NORMAL);
		char age[16], idle[16], mem[16], sh[16];
		model_age(r->created ? now - r->created : -1, age, sizeof(age));
		model_age(r->active ? MAX(0, now - r->active) : -1, idle, sizeof(idle));
		snprintf(mem, sizeof(mem), "%dM", r->memory_mb);
		if (r->sessions < 0)
			snprintf(sh, sizeof(sh), "-");
		else
			snprintf(sh, sizeof(sh), "%d", r->sessions);
		wmove(w, i + 1, 0);
		if (sel) {
			wattron(w, base);
			for (int x = 0; x < cols; x++)
				waddch(w, ' ');
			wmove(w, i + 1, 0);
		}
		wattrset(w, base);
		wprintw(w, " %-*.*s ", name_w, name_w, r->name);
		if (!sel)
			wattrset(w, term_attr(state_role(r->state)));
		wprintw(w, "%-8.8s", r->state);
		wattrset(w, base);
		wprintw(w, " %3d %6s %-8.8s %-15.15s %4s %4s %3s ", r->cpus, mem, r->image,
			r->ip[0] ? r->ip : "-", age, idle, sh);
		int x = getcurx(w);
		if (x < cols)
			waddnstr(w, r->urls[0] ? r->urls : (a->no_ports ? "" : "-"), cols - x);
		wattrset(w, A_NORMAL);
	}
}

/* ---- keys -------------------------------------------------------------------------- */

static void up(struct app *a) { model_move(&a->model, -1); app_redraw(a); }
static void down(struct app *a) { model_move(&a->model, 1); app_redraw(a); }
static void page_up(struct app *a) { model_move(&a->model, -MAX(1, a->main_rows - 2)); app_redraw(a); }
static void page_down(struct app *a) { model_move(&a->model, MAX(1, a->main_rows - 2)); app_redraw(a); }
static void first(struct app *a) { model_move(&a->model, -(int)a->model.nview); app_redraw(a); }
static void last(struct app *a) { model_move(&a->model, (int)a->model.nview); app_redraw(a); }

static void filter_changed(struct app *a, const char *text)
{
	model_set_filter(&a->model, text);
}

static void filter_done(struct app *a UNUSED, const char *text UNUSED)
{
}

static void filter_cancel(struct app *a)
{
	model_set_filter(&a->model, "");
}

static const struct input_ops filter_ops = {
	.changed = filter_changed, .done = filter_done, .cancel = filter_cancel,
};

static void start_filter(struct app *a)
{
	app_input(a, "/", &filter_ops);
	snprintf(a->input_text, sizeof(a->input_text), "%s", a->model.filter);
}

static void sort_name(struct app *a) { model_set_sort(&a->model, SORT_NAME); app_redraw(a); }
static void sort_state(struct app *a) { model_set_sort(&a->model, SORT_STATE); app_redraw(a); }
static void sort_age(struct app *a) { model_set_sort(&a->model, SORT_AGE); app_redraw(a); }
static void sort_mem(struct app *a) { model_set_sort(&a->model, SORT_MEMORY); app_redraw(a); }

static void reread(struct app *a)
{
	feed_refresh(a->fd);
}

static const struct sbx_row *selected(struct app *a)
{
	const struct sbx_row *r = model_selected(&a->model, NULL);
	if (!r)
		app_message(a, true, "no sandbox selected");
	return r;
}

static void shell(struct app *a)
{
	const struct sbx_row *r = selected(a);
	if (r)
		panes_open(a->panes, r->name);
}

static void destroy_yes(struct app *a)
{
	const struct sbx_row *r = model_find(&a->model, a->dialog_arg);
	if (r)
		feed_action(a->fd, "DELETE", r->id, "destroy", r->name);
}

static void destroy(struct app *a)
{
	const struct sbx_row *r = selected(a);
	if (r)
		app_confirm(a, r->id, destroy_yes, "destroy '%s'? every file in it goes", r->name);
}

static void stop_start_yes(struct app *a)
{
	const struct sbx_row *r = model_find(&a->model, a->dialog_arg);
	if (r)
		feed_action(a->fd, "POST", r->id, strcmp(r->state, "stopped") == 0 ? "start" : "stop",
			    r->name);
}

static void stop_start(struct app *a)
{
	const struct sbx_row *r = selected(a);
	if (!r)
		return;
	bool start = strcmp(r->state, "stopped") == 0;
	app_confirm(a, r->id, stop_start_yes, start ? "start '%s'?" : "stop '%s'? (its memory is "
			"saved to disk; start resumes it)", r->name);
}

static void exec(struct app *a)
{
	const struct sbx_row *r = selected(a);
	if (r)
		execlog_prompt(a, r->name);
}

static void watch_execs(struct app *a)
{
	const struct sbx_row *r = selected(a);
	if (r)
		execlog_watch(a, r->name);
}

static void publish(struct app *a)
{
	const struct sbx_row *r = selected(a);
	if (r)
		detail_publish_prompt(a, r->id, r->name);
}

static void detail(struct app *a)
{
	if (selected(a))
		app_set_view(a, &view_detail);
}

static void events(struct app *a)
{
	app_set_view(a, &view_events);
}

static const struct key_def keys[] = {
	{ 'k', "k", "up", up, false },
	{ KC(KEY_UP), "Up", "up", up, false },
	{ 'j', "j", "down", down, false },
	{ KC(KEY_DOWN), "Down", "down", down, false },
	{ KC(KEY_PPAGE), "PgUp", "page up", page_up, false },
	{ KC(KEY_NPAGE), "PgDn", "page down", page_down, false },
	{ KC(KEY_HOME), "Home", "first", first, false },
	{ 'g', "g", "first", first, false },
	{ KC(KEY_END), "End", "last", last, false },
	{ 'G', "G", "last", last, false },
	{ 's', "s", "shell", shell, true },
	{ 'i', "i", "detail", detail, true },
	{ '\r', "Enter", "shell", shell, false },
	{ KC(KEY_ENTER), "Enter", "shell", shell, false },
	{ 'e', "e", "exec", exec, true },
	{ 'x', "x", "execs", watch_execs, true },
	{ 'S', "S", "stop/start", stop_start, true },
	{ 'd', "d", "destroy", destroy, true },
	{ 'p', "p", "publish a port", publish, false },
	{ '/', "/", "filter", start_filter, true },
	{ 'l', "l", "events", events, false },
	{ 'N', "N", "sort by name (again: reverse)", sort_name, false },
	{ 'T', "T", "sort by state", sort_state, false },
	{ 'A', "A", "sort by age", sort_age, false },
	{ 'M', "M", "sort by memory", sort_mem, false },
	{ 'r', "r", "re-read the list", reread, false },
	{ 0 },
};

const struct view_ops view_dashboard = {
	.name = "sandboxes",
	.keys = keys,
	.draw = draw,
};
