/* view-detail.c — `i`: the selected sandbox in detail: what GET
 * /sandboxes/:id says (shape, state, thermal timers and wakes, labels,
 * IP, error), its sessions (GET /sandboxes/:id/sessions: attached or
 * not), its ports (GET /sandboxes/:id/ports: listening and published;
 * `p` publishes one, `u` unpublishes), and its recent events (from the
 * model). Each part says so when the daemon has no such route (404):
 * thermal, labels, ports and events come from other branches.
 *
 * Sits between app.c, the async client and the model; one sandbox at a
 * time, read when the view is entered and on `r` (and after a publish).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "app.h"
#include "async.h"
#include "httpc.h"

enum part { P_INSPECT, P_SESSIONS, P_PORTS, P_N };

static const char *const part_path[P_N] = { "", "/sessions", "/ports" };

struct detail {
	char id[128], name[128];
	struct async_req *req[P_N];
	cJSON *json[P_N];          /* the answers (NULL: none yet) */
	int status[P_N];           /* 0: waiting; else the HTTP status; -1: unreachable */
	char err[P_N][160];
	struct async_req *action;  /* a publish or unpublish */
};

static struct detail D;
static struct app *the_app;

static void part_done(struct async_req *r, const struct err *e, void *arg)
{
	enum part p = (enum part)(intptr_t)arg;
	D.req[p] = NULL;
	cJSON_Delete(D.json[p]);
	D.json[p] = NULL;
	D.err[p][0] = '\0';
	if (e) {
		D.status[p] = -1;
		snprintf(D.err[p], sizeof(D.err[p]), "%s", err_str(e));
	} else {
		D.status[p] = async_req_status(r);
		const struct buf *b = async_req_body(r);
		D.json[p] = cJSON_ParseWithLength(b->data, b->len);
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(D.json[p], "error"));
		if (D.status[p] != 200)
			snprintf(D.err[p], sizeof(D.err[p]), "%s", m ? m : "");
	}
	app_redraw(the_app);
}

static const struct async_req_cb part_cb = { .done = part_done };

static void read_all(struct app *a)
{
	char *esc = httpc_escape(D.id);
	for (int p = 0; p < P_N; p++) {
		async_req_cancel(D.req[p]);
		struct buf path = BUF_INIT;
		buf_addf(&path, "/sandboxes/%s%s", esc, part_path[p]);
		struct client_req rq = { .method = "GET", .path = path.data, .body_fd = -1 };
		D.status[p] = 0;
		D.req[p] = async_request(a->client, &rq, &part_cb, (void *)(intptr_t)p);
		buf_release(&path);
	}
	free(esc);
}

static void enter(struct app *a)
{
	the_app = a;
	const struct sbx_row *r = model_selected(&a->model, NULL);
	if (!r) {
		D.id[0] = '\0';
		return;
	}
	if (strcmp(D.id, r->id) != 0)
		for (int p = 0; p < P_N; p++) {
			cJSON_Delete(D.json[p]);
			D.json[p] = NULL;
		}
	snprintf(D.id, sizeof(D.id), "%s", r->id);
	snprintf(D.name, sizeof(D.name), "%s", r->name);
	read_all(a);
}

void detail_free(void)
{
	for (int p = 0; p < P_N; p++) {
		async_req_cancel(D.req[p]);
		cJSON_Delete(D.json[p]);
	}
	async_req_cancel(D.action);
	memset(&D, 0, sizeof(D));
}

/* ---- drawing ---------------------------------------------------------------------------- */

static int heading(WINDOW *w, int y, const char *t)
{
	wattron(w, term_attr(R_TITLE));
	app_put(w, y, 1, "%s", t);
	wattroff(w, term_attr(R_TITLE));
	return y + 1;
}

/* "waiting", "not on this daemon", the error; true when the part is there */
static bool part_ok(WINDOW *w, int *y, enum part p, const char *what)
{
	const char *msg = NULL;
	char tmp[256];
	if (D.status[p] == 0)
		msg = "…";
	else if (D.status[p] == 404 && p == P_PORTS)
		msg = "not on this daemon (GET /sandboxes/:id/ports: 404)";
	else if (D.status[p] != 200) {
		snprintf(tmp, sizeof(tmp), "cannot read the %s: %s", what,
			 D.err[p][0] ? D.err[p] : "no answer");
		msg = tmp;
	}
	if (!msg)
		return true;
	wattron(w, term_attr(R_DIM));
	app_put(w, (*y)++, 3, "%s", msg);
	wattroff(w, term_attr(R_DIM));
	return false;
}

static const char *js(const cJSON *o, const char *k)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
	return s ? s : "";
}

static void draw(struct app *a, WINDOW *w, int rows, int cols)
{
	int y = 0;
	wattron(w, term_attr(R_TITLE));
	app_put(w, y++, 0, " %s", D.name[0] ? D.name : "no sandbox selected");
	wattroff(w, term_attr(R_TITLE));
	if (!D.id[0])
		return;
	const cJSON *o = D.json[P_INSPECT];
	if (part_ok(w, &y, P_INSPECT, "sandbox") && o) {
		app_put(w, y++, 3, "id %s   state %s%s%s   %d cpu, %d MB, image %s", js(o, "id"),
			  js(o, "state"), js(o, "thermal")[0] ? "   thermal " : "", js(o, "thermal"),
			  (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "cpus")),
			  (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "memory_mb")),
			  js(o, "image"));
		app_put(w, y++, 3, "created %s   origin %s%s%s", js(o, "created_at"), js(o, "origin"),
			  js(o, "ip")[0] ? "   ip " : "", js(o, "ip"));
		if (js(o, "error")[0]) {
			wattron(w, term_attr(R_ERROR_MSG));
			app_put(w, y++, 3, "error: %s", js(o, "error"));
			wattroff(w, term_attr(R_ERROR_MSG));
		}
		/* thermal timers (the thermal branch adds them to inspect) */
		const cJSON *idle = cJSON_GetObjectItemCaseSensitive(o, "idle_ms");
		if (cJSON_IsNumber(idle))
			app_put(w, y++, 3, "idle %.0f s   warm after %s   cold after %s   wakes %d "
				  "(last %d ms)   keep hot %s", idle->valuedouble / 1000,
				  js(o, "warm_after"), js(o, "cold_after"),
				  (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "wake_count")),
				  (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "last_wake_ms")),
				  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "keep_hot")) ? "yes" : "no");
		else
			app_put(w, y++, 3, "thermal timers: not reported by this daemon");
		const cJSON *labels = cJSON_GetObjectItemCaseSensitive(o, "labels");
		struct buf lb = BUF_INIT;
		const cJSON *l;
		cJSON_ArrayForEach(l, labels)
			if (cJSON_IsString(l))
				buf_addf(&lb, "%s%s=%s", lb.len ? ", " : "", l->string, l->valuestring);
		app_put(w, y++, 3, "labels: %s", cJSON_IsObject(labels) ? (lb.len ? lb.data : "none")
									 : "not reported by this daemon");
		buf_release(&lb);
	}
	y++;
	y = heading(w, y, "sessions");
	if (part_ok(w, &y, P_SESSIONS, "sessions")) {
		const cJSON *s;
		int n = 0;
		cJSON_ArrayForEach(s, D.json[P_SESSIONS]) {
			if (y >= rows)
				break;
			struct buf argv = BUF_INIT;
			const cJSON *av;
			cJSON_ArrayForEach(av, cJSON_GetObjectItemCaseSensitive(s, "argv"))
				buf_addf(&argv, "%s%s", argv.len ? " " : "", cJSON_GetStringValue(av));
			bool running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "running"));
			app_put(w, y++, 3, "%-12s %-10s %-9s %s", js(s, "id"),
				  running ? (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "attached"))
						     ? "attached" : "detached")
					  : "exited",
				  js(s, "tty"), argv.data);
			buf_release(&argv);
			n++;
		}
		if (!n)
			app_put(w, y++, 3, "none");
	}
	y++;
	y = heading(w, y, "ports (p publishes, u unpublishes)");
	if (part_ok(w, &y, P_PORTS, "ports")) {
		const cJSON *p;
		int n = 0;
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(D.json[P_PORTS], "ports")) {
			if (y >= rows)
				break;
			bool pub = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "published"));
			app_put(w, y++, 3, "%-6d %-10s %-20s %s",
				  (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p, "port")),
				  pub ? "published" : "listening", js(p, "alias"), js(p, "url"));
			n++;
		}
		if (!n)
			app_put(w, y++, 3, "none");
	}
	y++;
	y = heading(w, y, "recent events");
	const struct sbx_row *r = model_find(&a->model, D.id);
	if (a->feed != FEED_LIVE) {
		wattron(w, term_attr(R_DIM));
		app_put(w, y++, 3, "none: this daemon has no events stream (GET /events)");
		wattroff(w, term_attr(R_DIM));
	} else if (r) {
		for (int i = 0; i < r->nrecent && y < rows; i++)
			mvwaddnstr(w, y++, 3, r->recent[i], cols - 4);
		if (!r->nrecent)
			app_put(w, y++, 3, "none yet");
	}
}

/* ---- keys -------------------------------------------------------------------------------- */

static void back(struct app *a)
{
	app_set_view(a, &view_dashboard);
}

static void reread(struct app *a)
{
	if (D.id[0])
		read_all(a);
}

static void shell(struct app *a)
{
	if (D.name[0])
		panes_open(a->panes, D.name);
}

static void action_done(struct async_req *r, const struct err *e, void *arg UNUSED)
{
	D.action = NULL;
	int st = async_req_status(r);
	if (e) {
		app_message(the_app, true, "%s", err_str(e));
	} else if (st == 404) {
		app_message(the_app, true, "this daemon cannot publish (404: no publish routes, or no "
			    "such port)");
	} else if (st / 100 != 2) {
		const struct buf *b = async_req_body(r);
		cJSON *j = cJSON_ParseWithLength(b->data, b->len);
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
		app_message(the_app, true, "%s", m ? m : "refused");
		cJSON_Delete(j);
	} else {
		app_message(the_app, false, "done");
	}
	read_all(the_app);
}

static const struct async_req_cb action_cb = { .done = action_done };

static int parse_port(struct app *a, const char *text)
{
	char *end;
	long port = strtol(text, &end, 10);
	if (!text[0] || *end || port < 1 || port > 65535) {
		app_message(a, true, "'%s' is not a port (1-65535)", text);
		return 0;
	}
	return (int)port;
}

static void publish_done(struct app *a, const char *text)
{
	int port = parse_port(a, text);
	if (!port || D.action)
		return;
	char *esc = httpc_escape(D.id);
	struct buf path = BUF_INIT, body = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/publish", esc);
	buf_addf(&body, "{\"port\":%d}", port);
	struct client_req rq = { .method = "POST", .path = path.data, .body = body.data,
				 .len = body.len, .body_fd = -1, .ctype = "application/json" };
	D.action = async_request(a->client, &rq, &action_cb, NULL);
	buf_release(&path);
	buf_release(&body);
	free(esc);
}

static void unpublish_done(struct app *a, const char *text)
{
	int port = parse_port(a, text);
	if (!port || D.action)
		return;
	char *esc = httpc_escape(D.id);
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s/publish/%d", esc, port);
	struct client_req rq = { .method = "DELETE", .path = path.data, .body_fd = -1 };
	D.action = async_request(a->client, &rq, &action_cb, NULL);
	buf_release(&path);
	free(esc);
}

static const struct input_ops publish_ops = { .done = publish_done };
static const struct input_ops unpublish_ops = { .done = unpublish_done };

static void publish(struct app *a)
{
	app_input(a, "publish port: ", &publish_ops);
}

static void unpublish(struct app *a)
{
	app_input(a, "unpublish port: ", &unpublish_ops);
}

static void exec(struct app *a)
{
	if (D.name[0])
		execlog_prompt(a, D.name);
}

static void watch(struct app *a)
{
	if (D.name[0])
		execlog_watch(a, D.name);
}

static const struct key_def keys[] = {
	{ 27, "Esc", "back", back, true },
	{ 's', "s", "shell", shell, true },
	{ 'e', "e", "exec", exec, true },
	{ 'x', "x", "execs", watch, true },
	{ 'p', "p", "publish a port", publish, true },
	{ 'u', "u", "unpublish a port", unpublish, true },
	{ 'r', "r", "read again", reread, false },
	{ 0 },
};

const struct view_ops view_detail = {
	.name = "detail",
	.keys = keys,
	.enter = enter,
	.draw = draw,
};
