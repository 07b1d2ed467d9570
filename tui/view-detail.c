/* view-detail.c — `i`: the selected sandbox in detail: what GET
 * /sandboxes/:id says (shape, state, the thermal manager's timers and
 * wakes, IP, MAC and egress, labels, error), its sessions (GET
 * /sandboxes/:id/sessions: attached or not), its ports (GET
 * /sandboxes/:id/ports: listening and published; `p` publishes one, `u`
 * unpublishes), and its recent events (from the model). A part the daemon
 * has no route for says so (404).
 *
 * Sits between app.c, the async client and the model; one sandbox at a
 * time, read when the view is entered, on `r`, after a publish, and (the
 * inspect part, which never wakes it) on each event about it. Sessions
 * and ports are the guest's: read by themselves only while it is hot.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
	bool again[P_N];           /* read once more when the answer is in (events came) */
	char err[P_N][160];
	bool asleep;               /* sessions and ports not read: it is not hot */
	char asleep_state[16];
};

static struct detail D;
/* the publish or unpublish typed or on its way (the dashboard's p too) */
static struct {
	char id[128], name[128];
	int port;
	bool add;
	struct async_req *req;
} pub;
static struct app *the_app;

static void read_part(struct app *a, enum part p);

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
	if (D.again[p] && !e) {
		D.again[p] = false;
		read_part(the_app, p);   /* events came while this was read */
	}
	app_redraw(the_app);
}

static const struct async_req_cb part_cb = { .done = part_done };

static void read_part(struct app *a, enum part p)
{
	char *esc = httpc_escape(D.id);
	async_req_cancel(D.req[p]);
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s%s", esc, part_path[p]);
	struct client_req rq = { .method = "GET", .path = path.data, .body_fd = -1 };
	if (!D.json[p])
		D.status[p] = 0;   /* "…" until it comes; an answer before stays shown */
	D.req[p] = async_request(a->client, &rq, &part_cb, (void *)(intptr_t)p);
	buf_release(&path);
	free(esc);
}

/* The sessions and ports are the guest's: asking for them wakes a warm or
 * cold sandbox (docs/api.md). Looking is not a reason to wake it: they
 * are read by themselves only while it is hot, otherwise on `r`. */
static bool guest_parts(struct app *a, bool asked)
{
	const struct sbx_row *r = model_find(&a->model, D.id);
	D.asleep = !asked && !(r && strcmp(r->state, "hot") == 0);
	if (D.asleep)
		snprintf(D.asleep_state, sizeof(D.asleep_state), "%s", r ? r->state : "not running");
	return !D.asleep;
}

static void read_all(struct app *a, bool asked)
{
	read_part(a, P_INSPECT);
	if (guest_parts(a, asked)) {
		read_part(a, P_SESSIONS);
		read_part(a, P_PORTS);
	}
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
	read_all(a, false);
}

/* An event about this sandbox: a state change or a rename reads its
 * inspect again (it never wakes it), a session event its sessions while
 * hot; the recent events are redrawn. One read of each at a time: what
 * comes meanwhile reads once more when it is back (a flood of events
 * is not a flood of requests). Exec events read nothing. */
static void reread_part(struct app *a, enum part p)
{
	if (D.req[p])
		D.again[p] = true;
	else
		read_part(a, p);
}

static void on_event(struct app *a, const char *id, const char *type)
{
	if (strcmp(id, D.id) != 0)
		return;
	const struct sbx_row *r = model_find(&a->model, D.id);
	if (r)
		snprintf(D.name, sizeof(D.name), "%s", r->name);
	if (strncmp(type, "sandbox.", 8) == 0)
		reread_part(a, P_INSPECT);
	if (strncmp(type, "session.", 8) == 0 && guest_parts(a, false))
		reread_part(a, P_SESSIONS);
	app_redraw(a);
}

void detail_free(void)
{
	for (int p = 0; p < P_N; p++) {
		async_req_cancel(D.req[p]);
		cJSON_Delete(D.json[p]);
	}
	async_req_cancel(pub.req);
	memset(&pub, 0, sizeof(pub));
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
	if ((p == P_SESSIONS || p == P_PORTS) && D.asleep && !D.req[p]) {
		snprintf(tmp, sizeof(tmp), "not read: it is %s, and reading them would wake it (r reads them)",
			 D.asleep_state);
		msg = tmp;
	} else if (D.status[p] == 0)
		msg = "…";
	else if (D.status[p] == 404 && p == P_PORTS && !D.err[p][0])
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

static double jnum(const cJSON *o, const char *k)
{
	return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* "14:02:11" (UTC) of a unix-ms field, "" when absent */
static void hms(const cJSON *o, const char *k, char out[16])
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	time_t t = cJSON_IsNumber(v) ? (time_t)(v->valuedouble / 1000) : 0;
	struct tm tm;
	out[0] = '\0';
	if (t && gmtime_r(&t, &tm))
		strftime(out, 16, "%H:%M:%S", &tm);
}

/* "a, b, c" of a JSON array of strings (caller releases) */
static void join(const cJSON *arr, struct buf *b)
{
	const cJSON *v;
	cJSON_ArrayForEach(v, arr)
		if (cJSON_IsString(v))
			buf_addf(b, "%s%s", b->len ? ", " : "", v->valuestring);
}

/* GET /sandboxes/:id: shape, thermal, network, labels */
static void draw_inspect(WINDOW *w, int *py, const cJSON *o)
{
	int y = *py;
	app_put(w, y++, 3, "id %s   state %s   %d cpu, %d MB, image %s", js(o, "id"), js(o, "state"),
		(int)jnum(o, "cpus"), (int)jnum(o, "memory_mb"), js(o, "image"));
	app_put(w, y++, 3, "created %s%s%s", js(o, "created_at"), js(o, "origin")[0] ? "   origin " : "",
		js(o, "origin"));
	if (js(o, "error")[0]) {
		wattron(w, term_attr(R_ERROR_MSG));
		app_put(w, y++, 3, "error: %s", js(o, "error"));
		wattroff(w, term_attr(R_ERROR_MSG));
	}
	/* the thermal manager's view (docs/thermal.md) */
	char since[16], last[16];
	hms(o, "thermal_since", since);
	hms(o, "last_activity", last);
	const cJSON *idle = cJSON_GetObjectItemCaseSensitive(o, "idle_ms");
	app_put(w, y++, 3, "thermal %s%s%s   keep hot %s   warm after %s   cold after %s",
		js(o, "thermal"), since[0] ? " since " : "", since,
		cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "keep_hot")) ? "yes" : "no",
		js(o, "warm_after"), js(o, "cold_after"));
	if (cJSON_IsNumber(idle)) {
		const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "activity");
		app_put(w, y++, 3, "last activity %s (idle %.0f s when read)   wakes %d, the last %d ms%s%s",
			last[0] ? last : "-", idle->valuedouble / 1000, (int)jnum(o, "wake_count"),
			(int)jnum(o, "last_wake_ms"), js(act, "busy")[0] ? "   busy: " : "",
			js(act, "busy"));
	}
	/* networking */
	const cJSON *eg = cJSON_GetObjectItemCaseSensitive(o, "egress");
	if (js(o, "ip")[0]) {
		struct buf hosts = BUF_INIT, cidrs = BUF_INIT, allow = BUF_INIT;
		join(cJSON_GetObjectItemCaseSensitive(eg, "allow_hosts"), &hosts);
		join(cJSON_GetObjectItemCaseSensitive(eg, "allow_cidrs"), &cidrs);
		if (hosts.len)
			buf_addf(&allow, " hosts: %s", hosts.data);
		if (cidrs.len)
			buf_addf(&allow, "%s cidrs: %s", hosts.len ? ";" : "", cidrs.data);
		app_put(w, y++, 3, "ip %s   mac %s   egress %s%s%s%s", js(o, "ip"), js(o, "mac"),
			js(eg, "policy")[0] ? js(eg, "policy") : "allow", allow.len ? " (" : "",
			allow.len ? allow.data + 1 : "", allow.len ? ")" : "");
		buf_release(&hosts);
		buf_release(&cidrs);
		buf_release(&allow);
	} else {
		app_put(w, y++, 3, "no network (the daemon gives it no address)");
	}
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(o, "labels");
	struct buf lb = BUF_INIT;
	const cJSON *l;
	cJSON_ArrayForEach(l, labels)
		if (cJSON_IsString(l))
			buf_addf(&lb, "%s%s=%s", lb.len ? ", " : "", l->string, l->valuestring);
	app_put(w, y++, 3, "labels: %s", lb.len ? lb.data : "none");
	buf_release(&lb);
	*py = y;
}

static void draw(struct app *a, WINDOW *w, int rows, int cols)
{
	int y = 0;
	wattron(w, term_attr(R_TITLE));
	app_put(w, y++, 0, " %s", D.name[0] ? D.name : "no sandbox selected");
	wattroff(w, term_attr(R_TITLE));
	if (!D.id[0])
		return;
	if (part_ok(w, &y, P_INSPECT, "sandbox") && D.json[P_INSPECT])
		draw_inspect(w, &y, D.json[P_INSPECT]);
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
			/* GET /sandboxes/:id/ports: what listens in the guest, and
			 * the published ones (listening or not) */
			const cJSON *l = cJSON_GetObjectItemCaseSensitive(p, "listening");
			bool published = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "published"));
			app_put(w, y++, 3, "%-6d %-22s %-10s %-20s %s", (int)jnum(p, "port"),
				!cJSON_IsBool(l) ? "" : !cJSON_IsTrue(l) ? "not listening"
				: cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "loopback_only"))
				? "listening (loopback)" : "listening",
				published ? "published" : "", js(p, "alias"), js(p, "url"));
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
		read_all(a, true);
}

static void shell(struct app *a)
{
	if (D.name[0])
		panes_open(a->panes, D.name);
}

/* ---- publish, unpublish (also the dashboard's p) ---------------------------------------- */


static void pub_done(struct async_req *r, const struct err *e, void *arg UNUSED)
{
	struct app *a = the_app;
	pub.req = NULL;
	int st = async_req_status(r);
	const struct buf *b = async_req_body(r);
	cJSON *j = e ? NULL : cJSON_ParseWithLength(b->data, b->len);
	const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
	if (e)
		app_message(a, true, "%s", err_str(e));
	else if (st / 100 != 2)
		app_message(a, true, "%s", m ? m : st == 404 ? "not found (404)" : "refused");
	else if (pub.add)
		app_message(a, false, "'%s' port %d published: %s", pub.name, pub.port, js(j, "url"));
	else
		app_message(a, false, "'%s' port %d unpublished", pub.name, pub.port);
	cJSON_Delete(j);
	feed_ports(a->fd);
	if (a->view == &view_detail && strcmp(D.id, pub.id) == 0)
		read_all(a, false);
}

static const struct async_req_cb pub_cb = { .done = pub_done };

static void pub_send(struct app *a, const char *text, bool add)
{
	char alias[128] = "";
	char *end;
	long port = strtol(text, &end, 10);
	while (*end == ' ')
		end++;
	if (add && *end && strlen(end) < sizeof(alias) && !strchr(end, ' '))
		snprintf(alias, sizeof(alias), "%s", end), end += strlen(end);
	if (end == text || *end || port < 1 || port > 65535) {
		app_message(a, true, add ? "'%s' is not PORT [ALIAS] (a port 1-65535)"
				     : "'%s' is not a port (1-65535)", text);
		return;
	}
	if (pub.req) {
		app_message(a, true, "a publish is on its way already");
		return;
	}
	pub.port = (int)port;
	pub.add = add;
	char *esc = httpc_escape(pub.id);
	struct buf path = BUF_INIT;
	char *body = NULL;
	if (add) {
		buf_addf(&path, "/sandboxes/%s/publish", esc);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "port", pub.port);
		if (alias[0])
			cJSON_AddStringToObject(o, "alias", alias);
		body = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
	} else {
		buf_addf(&path, "/sandboxes/%s/publish/%d", esc, pub.port);
	}
	struct client_req rq = { .method = add ? "POST" : "DELETE", .path = path.data,
				 .body = body, .len = body ? strlen(body) : 0, .body_fd = -1,
				 .ctype = add ? "application/json" : NULL };
	pub.req = async_request(a->client, &rq, &pub_cb, NULL);
	app_message(a, false, "%s port %d of '%s' …", add ? "publishing" : "unpublishing", pub.port,
		    pub.name);
	buf_release(&path);
	cJSON_free(body);
	free(esc);
}

static void publish_done(struct app *a, const char *text) { pub_send(a, text, true); }
static void unpublish_done(struct app *a, const char *text) { pub_send(a, text, false); }

static const struct input_ops publish_ops = { .done = publish_done };
static const struct input_ops unpublish_ops = { .done = unpublish_done };

static void pub_target(struct app *a, const char *id, const char *name)
{
	the_app = a;
	snprintf(pub.id, sizeof(pub.id), "%s", id);
	snprintf(pub.name, sizeof(pub.name), "%s", name);
}

void detail_publish_prompt(struct app *a, const char *id, const char *name)
{
	pub_target(a, id, name);
	char prompt[200];
	snprintf(prompt, sizeof(prompt), "publish a port of '%s' (PORT [ALIAS]): ", name);
	app_input(a, prompt, &publish_ops);
}

void detail_unpublish_prompt(struct app *a, const char *id, const char *name)
{
	pub_target(a, id, name);
	char prompt[200];
	snprintf(prompt, sizeof(prompt), "unpublish a port of '%s': ", name);
	app_input(a, prompt, &unpublish_ops);
}

static void publish(struct app *a)
{
	if (D.id[0])
		detail_publish_prompt(a, D.id, D.name);
}

static void unpublish(struct app *a)
{
	if (D.id[0])
		detail_unpublish_prompt(a, D.id, D.name);
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
	{ 'r', "r", "read again (also its sessions and ports: wakes it)", reread, false },
	{ 0 },
};

const struct view_ops view_detail = {
	.name = "detail",
	.keys = keys,
	.enter = enter,
	.draw = draw,
	.event = on_event,
};
