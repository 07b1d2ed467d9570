/* view-exec.c — the exec prompt (`e`) and the exec log: a command typed
 * in the footer runs in the selected sandbox as `sh -c LINE` (POST
 * /sandboxes/:id/exec, streamed as ndjson and decoded by
 * client/execstream.c), its stdout and stderr (stderr in its own style)
 * land in the log as they come, then its exit code and how long it took.
 * Ctrl+C cancels it: the request is dropped, and the daemon kills the
 * command's process group when its client goes (docs/api.md). Up/Down in
 * the prompt walk the commands typed before (this session's).
 *
 * The log is one for the TUI (each command's header names its sandbox),
 * at most LOG_LINES lines. Exec streams of others (`x`, GET
 * /sandboxes/:id/execs) are not built yet (docs/tui.md).
 *
 * Sits between app.c (keys, frames), the async client and the footer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "app.h"
#include "async.h"
#include "execstream.h"
#include "httpc.h"

#define LOG_LINES 2000
#define HISTORY 100

struct log_line {
	char *text;
	enum role role;
};

struct execs {
	struct log_line lines[LOG_LINES];   /* a ring: the newest at (first + n - 1) */
	size_t first, n;
	bool open_line[3];                   /* stdout/stderr's last line is not ended */
	size_t scroll;                       /* lines up from the bottom */
	char *history[HISTORY + 1];
	size_t nhist;
	/* the running command */
	struct async_req *req;
	struct execstream es;
	char name[128];
	uint64_t t0;
	bool quiet;                          /* the watch shows this command */
	/* the watch (x): GET /sandboxes/:id/execs */
	struct async_ws *watch;
	char watching[128];
};

static struct execs *the_execs;   /* one TUI per process */

static struct execs *ex(struct app *a UNUSED)
{
	if (!the_execs)
		the_execs = xcalloc(1, sizeof(*the_execs));
	return the_execs;
}

static struct log_line *line_at(struct execs *x, size_t i)
{
	return &x->lines[(x->first + i) % LOG_LINES];
}

static void add_line(struct execs *x, enum role role, const char *text, size_t n)
{
	if (x->n == LOG_LINES) {
		free(line_at(x, 0)->text);
		x->first = (x->first + 1) % LOG_LINES;
		x->n--;
	}
	struct log_line *l = line_at(x, x->n++);
	l->text = xstrndup(text, n);
	l->role = role;
}

static void addf(struct execs *x, enum role role, const char *fmt, ...) PRINTF(3, 4);
static void addf(struct execs *x, enum role role, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	add_line(x, role, b.data, b.len);
	buf_release(&b);
	x->open_line[1] = x->open_line[2] = false;
}

/* Output: split into lines; a line not ended yet is continued by the next
 * chunk of the same stream. Control characters are shown as spaces. */
static void add_output(struct execs *x, int fd, const char *p, size_t n)
{
	enum role role = fd == 2 ? R_STDERR : R_NORMAL;
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t len = nl ? (size_t)(nl - p) : n;
		struct buf b = BUF_INIT;
		if (x->open_line[fd] && x->n) {
			buf_adds(&b, line_at(x, x->n - 1)->text);
			free(line_at(x, x->n - 1)->text);
			x->n--;
		}
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c == '\t')
				buf_adds(&b, "    ");
			else if (c != '\r')
				buf_addch(&b, c < 0x20 || c == 0x7f ? ' ' : (char)c);
		}
		add_line(x, role, b.data, b.len);
		buf_release(&b);
		x->open_line[fd] = !nl;
		x->open_line[fd == 1 ? 2 : 1] = false;
		p += nl ? len + 1 : len;
		n -= nl ? len + 1 : len;
	}
}

/* ---- the running command ------------------------------------------------------------ */

static struct app *the_app;

static void es_output(int fd, const char *p, size_t n, void *arg)
{
	struct execs *x = arg;
	if (x->quiet)
		return;
	add_output(x, fd, p, n);
	app_redraw(the_app);
}

static void es_exit(int code, bool timed_out, void *arg)
{
	struct execs *x = arg;
	if (x->quiet)
		return;
	addf(x, code ? R_ERROR_MSG : R_DIM, "[exit %d%s, %llu ms]", code,
	     timed_out ? ", timed out" : "", (unsigned long long)(now_ms() - x->t0));
}

static void es_error(const char *msg, void *arg)
{
	addf(arg, R_ERROR_MSG, "[error: %s]", msg);
}

static const struct execstream_cb es_cb = {
	.output = es_output, .exit = es_exit, .error = es_error,
};

static void req_body(struct async_req *r UNUSED, const char *p, size_t n, void *arg)
{
	struct execs *x = arg;
	execstream_feed(&x->es, p, n);
}

static void req_done(struct async_req *r, const struct err *e, void *arg)
{
	struct execs *x = arg;
	x->req = NULL;
	int st = async_req_status(r);
	if (e) {
		addf(x, R_ERROR_MSG, "[%s]", err_str(e));
	} else if (st != 200) {
		const struct buf *b = async_req_body(r);
		cJSON *j = cJSON_ParseWithLength(b->data, b->len);
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
		addf(x, R_ERROR_MSG, "[%s]", m ? m : "the daemon refused the command");
		cJSON_Delete(j);
	} else if (!x->es.ended) {
		addf(x, R_ERROR_MSG, "[the connection ended before the command did]");
	}
	execstream_release(&x->es);
	app_redraw(the_app);
}

static const struct async_req_cb req_cb = { .body = req_body, .done = req_done };

static void run(struct app *a, const char *name, const char *line)
{
	struct execs *x = ex(a);
	the_app = a;
	if (x->nhist == HISTORY) {
		free(x->history[0]);
		memmove(x->history, x->history + 1, (HISTORY - 1) * sizeof(char *));
		x->nhist--;
	}
	x->history[x->nhist++] = xstrdup(line);
	x->history[x->nhist] = NULL;
	snprintf(x->name, sizeof(x->name), "%s", name);
	x->quiet = x->watch && strcmp(x->watching, name) == 0;
	if (!x->quiet)
		addf(x, R_TITLE, "%s $ %s", name, line);
	x->scroll = 0;
	cJSON *b = cJSON_CreateObject(), *cmd = cJSON_AddArrayToObject(b, "cmd");
	cJSON_AddItemToArray(cmd, cJSON_CreateString("sh"));
	cJSON_AddItemToArray(cmd, cJSON_CreateString("-c"));
	cJSON_AddItemToArray(cmd, cJSON_CreateString(line));
	char *body = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	char *esc = httpc_escape(name);
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/exec", esc);
	struct client_req rq = {
		.method = "POST", .path = path.data, .body = body, .len = strlen(body),
		.body_fd = -1, .ctype = "application/json", .accept = "application/x-ndjson",
	};
	execstream_init(&x->es, &es_cb, x);
	x->t0 = now_ms();
	x->req = async_request(a->client, &rq, &req_cb, x);
	buf_release(&path);
	free(esc);
	free(body);
	app_set_view(a, &view_exec);
}

/* ---- the watch (x) -------------------------------------------------------------------- */

static void w_message(struct async_ws *ws UNUSED, bool binary, const char *p, size_t n, void *arg)
{
	struct execs *x = arg;
	if (binary)
		return;
	cJSON *j = cJSON_ParseWithLength(p, n);
	const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "type"));
	const cJSON *num = cJSON_GetObjectItemCaseSensitive(j, "exec");
	int exec = cJSON_IsNumber(num) ? num->valueint : 0;
	bool replay = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "replay"));
	if (!t) {
		/* not ours to judge */
	} else if (strcmp(t, "exec") == 0) {
		struct buf argv = BUF_INIT;
		const cJSON *a;
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(j, "argv"))
			if (cJSON_IsString(a))
				buf_addf(&argv, "%s%s", argv.len ? " " : "", a->valuestring);
		addf(x, R_TITLE, "%s #%d $ %s%s", x->watching, exec, argv.data,
		     replay ? "   (earlier)" : "");
		buf_release(&argv);
	} else if (strcmp(t, "stdout") == 0 || strcmp(t, "stderr") == 0) {
		char *data;
		size_t len;
		if (execstream_data(j, &data, &len)) {
			add_output(x, t[3] == 'o' ? 1 : 2, data, len);
			free(data);
		}
	} else if (strcmp(t, "exit") == 0) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "exit_code");
		const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "duration_ms");
		const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
		if (cJSON_IsNumber(code))
			addf(x, code->valueint ? R_ERROR_MSG : R_DIM, "[#%d exit %d, %.0f ms]", exec,
			     code->valueint, cJSON_IsNumber(ms) ? ms->valuedouble : 0);
		else
			addf(x, R_ERROR_MSG, "[#%d %s]", exec, err ? err : "ended");
	} else if (strcmp(t, "error") == 0) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
		addf(x, R_ERROR_MSG, "[cannot watch '%s': %s]", x->watching, m ? m : "refused");
	} else if (strcmp(t, "dropped") == 0) {
		const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(j, "bytes");
		addf(x, R_ERROR_MSG, "[%.0f bytes of output not shown: the TUI fell behind]",
		     cJSON_IsNumber(bytes) ? bytes->valuedouble : 0);
	}
	cJSON_Delete(j);
	app_redraw(the_app);
}

static void w_closed(struct async_ws *ws UNUSED, const struct err *e, void *arg)
{
	struct execs *x = arg;
	x->watch = NULL;
	if (e && e->code == ENOENT)
		addf(x, R_ERROR_MSG, "[no exec streams: this daemon has no GET /sandboxes/:id/execs, "
				    "or no sandbox '%s']", x->watching);
	else
		addf(x, R_DIM, "[stopped watching '%s'%s%s]", x->watching, e ? ": " : "",
		     e ? err_str(e) : "");
	app_redraw(the_app);
}

static const struct async_ws_cb watch_cb = { .message = w_message, .closed = w_closed };

static void watch_stop(struct execs *x)
{
	if (!x->watch)
		return;
	async_ws_abort(x->watch);
	x->watch = NULL;
	addf(x, R_DIM, "[stopped watching '%s']", x->watching);
}

void execlog_watch(struct app *a, const char *name)
{
	struct execs *x = ex(a);
	the_app = a;
	bool same = x->watch && strcmp(x->watching, name) == 0;
	watch_stop(x);
	if (!same) {
		snprintf(x->watching, sizeof(x->watching), "%s", name);
		char *esc = httpc_escape(name);
		struct buf path = BUF_INIT;
		buf_addf(&path, "/sandboxes/%s/execs", esc);
		x->watch = async_ws_open(a->client, path.data, &watch_cb, x);
		buf_release(&path);
		free(esc);
		addf(x, R_DIM, "[watching every exec in '%s': the last ones first, then live; "
				"x stops]", name);
	}
	x->scroll = 0;
	app_set_view(a, &view_exec);
}

/* ---- the prompt ------------------------------------------------------------------------ */

static char prompt_name[128];

static void prompt_done(struct app *a, const char *text)
{
	if (!text[0])
		return;
	if (ex(a)->req) {
		app_message(a, true, "a command is running (Ctrl+C cancels it)");
		return;
	}
	run(a, prompt_name, text);
}

static struct input_ops prompt_ops = { .done = prompt_done };

void execlog_prompt(struct app *a, const char *name)
{
	struct execs *x = ex(a);
	snprintf(prompt_name, sizeof(prompt_name), "%s", name);
	prompt_ops.history = x->history;
	char prompt[160];
	snprintf(prompt, sizeof(prompt), "exec in '%s'> ", name);
	app_input(a, prompt, &prompt_ops);
}

void execlog_free(struct app *a)
{
	struct execs *x = ex(a);
	if (x->req) {
		async_req_cancel(x->req);
		x->req = NULL;
		execstream_release(&x->es);
	}
	async_ws_abort(x->watch);
	for (size_t i = 0; i < x->n; i++)
		free(line_at(x, i)->text);
	for (size_t i = 0; i < x->nhist; i++)
		free(x->history[i]);
	free(x);
	the_execs = NULL;
}

/* ---- the view ---------------------------------------------------------------------------- */

static void draw(struct app *a, WINDOW *w, int rows, int cols)
{
	struct execs *x = ex(a);
	wattron(w, term_attr(R_TITLE));
	app_put(w, 0, 0, " exec log%s%s%s", x->req ? " (running: Ctrl+C cancels)" : "",
		  x->watch ? "   watching: " : "", x->watch ? x->watching : "");
	wattroff(w, term_attr(R_TITLE));
	int body = rows - 1;
	if (body <= 0)
		return;
	if (!x->n) {
		wattron(w, term_attr(R_DIM));
		app_put(w, 2, 1, "no commands yet: e runs one in the selected sandbox");
		wattroff(w, term_attr(R_DIM));
		return;
	}
	size_t last = x->n - MIN(x->scroll, x->n - 1);   /* one past the last line shown */
	size_t first = last > (size_t)body ? last - (size_t)body : 0;
	for (size_t i = first; i < last; i++) {
		const struct log_line *l = line_at(x, i);
		wattrset(w, term_attr(l->role));
		mvwaddnstr(w, (int)(i - first) + 1, 0, l->text, cols);
	}
	wattrset(w, A_NORMAL);
}

static void cancel(struct app *a)
{
	struct execs *x = ex(a);
	if (!x->req) {
		app_message(a, false, "no command is running");
		return;
	}
	async_req_cancel(x->req);   /* the daemon kills its process group */
	x->req = NULL;
	execstream_release(&x->es);
	addf(x, R_ERROR_MSG, "[cancelled: its process group is killed]");
	app_redraw(a);
}

static void again(struct app *a)
{
	const struct sbx_row *r = model_selected(&a->model, NULL);
	execlog_prompt(a, r ? r->name : ex(a)->name);
}

static void back(struct app *a)
{
	app_set_view(a, &view_dashboard);
}

static void up(struct app *a)
{
	struct execs *x = ex(a);
	if (x->scroll + 1 < x->n)
		x->scroll++;
	app_redraw(a);
}

static void down(struct app *a)
{
	struct execs *x = ex(a);
	if (x->scroll)
		x->scroll--;
	app_redraw(a);
}

static void page_up(struct app *a)
{
	struct execs *x = ex(a);
	x->scroll = MIN(x->scroll + (size_t)MAX(1, a->main_rows - 2), x->n ? x->n - 1 : 0);
	app_redraw(a);
}

static void page_down(struct app *a)
{
	struct execs *x = ex(a);
	size_t step = (size_t)MAX(1, a->main_rows - 2);
	x->scroll = x->scroll > step ? x->scroll - step : 0;
	app_redraw(a);
}

static void watch_key(struct app *a)
{
	struct execs *x = ex(a);
	if (x->watch) {
		watch_stop(x);
		app_redraw(a);
		return;
	}
	const struct sbx_row *r = model_selected(&a->model, NULL);
	if (r)
		execlog_watch(a, r->name);
}

static const struct key_def keys[] = {
	{ 'e', "e", "exec another", again, true },
	{ 'x', "x", "watch the selected sandbox's execs, or stop", watch_key, true },
	{ KEY_CTRL('c'), "^C", "cancel the command", cancel, true },
	{ 27, "Esc", "back", back, true },
	SCROLL_KEYS(up, down, page_up, page_down),
	{ 0 },
};

const struct view_ops view_exec = {
	.name = "exec",
	.keys = keys,
	.draw = draw,
};
