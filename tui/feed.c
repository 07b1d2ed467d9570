/* feed.c — what the TUI hears from the daemon, on the event loop and
 * never blocking it: GET /health (version, accelerator), the list
 * (GET /sandboxes), the published ports (GET /ports), the live events
 * (GET /events as a WebSocket), and the actions the views ask for
 * (stop, start, destroy).
 *
 *   CONNECTING ─ health ok ─► open /events ─ upgraded ─► LIVE (list read once,
 *      ▲                            │      ▲             then kept by events)
 *      │                            │      └─ resync ──────┘ (we fell behind: the
 *      │                            │ 404: the daemon      daemon ends the stream;
 *      │                            ▼ has no events        open it again at once,
 *      │                         POLLING (the list         the list re-read)
 *      │                          re-read every POLL_MS)
 *      └── DOWN ◄── any of them cannot reach the daemon; retried every
 *                   RETRY_MS (the header says so)
 *
 * POLLING is for a daemon without GET /events (an older one); it re-reads
 * one list every 2 s, no more, and draws only when the list changed.
 *
 * Sits between app.c's model and client/async.h. Touches the model, the
 * header fields of struct app and its message line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "app.h"
#include "async.h"
#include "httpc.h"

#define RETRY_MS 2000

struct feed {
	struct app *a;
	struct async_req *health, *list, *ports;
	struct async_ws *events;
	bool list_again;          /* a re-read was asked while one ran */
	bool resynced;            /* the events said resync: their end comes next */
	struct timer retry, poll;
	struct action *actions;   /* in flight (cancelled by feed_free) */
};

struct action {
	struct feed *f;
	struct action *next;
	struct async_req *r;
	char what[16], name[128];
};

static void start(struct feed *f);
static void read_list(struct feed *f);
static const struct async_ws_cb events_cb;

static void set_state(struct feed *f, enum feed_state s, const char *why)
{
	struct app *a = f->a;
	if (a->feed != s || strcmp(a->feed_err, why ? why : "") != 0) {
		a->feed = s;
		snprintf(a->feed_err, sizeof(a->feed_err), "%s", why ? why : "");
		app_redraw(a);
	}
}

static void went_down(struct feed *f, const struct err *e)
{
	async_ws_abort(f->events);
	f->events = NULL;
	timer_cancel(&f->poll);
	set_state(f, FEED_DOWN, err_str(e));
	if (!f->retry.armed)
		timer_arm(&f->retry, RETRY_MS);
}

/* The daemon's {"error": "…"} of a kept body, or the status. */
static void answer_error(const struct async_req *r, char *out, size_t size)
{
	const struct buf *b = async_req_body(r);
	cJSON *j = cJSON_ParseWithLength(b->data, b->len);
	const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "error"));
	if (m)
		snprintf(out, size, "%s", m);
	else
		snprintf(out, size, "the daemon answered %d", async_req_status(r));
	cJSON_Delete(j);
}

/* ---- the list and the ports ---------------------------------------------------------- */

static void ports_done(struct async_req *r, const struct err *e, void *arg)
{
	struct feed *f = arg;
	f->ports = NULL;
	int st = async_req_status(r);
	if (e)
		return;   /* the list's own reading says when the daemon is gone */
	if (st == 404) {
		f->a->no_ports = true;   /* this daemon publishes no ports */
		model_set_ports(&f->a->model, NULL, 0);
	} else if (st == 200) {
		const struct buf *b = async_req_body(r);
		model_set_ports(&f->a->model, b->data, b->len);
	}
	app_redraw(f->a);
}

static const struct async_req_cb ports_cb = { .done = ports_done };

static void list_done(struct async_req *r, const struct err *e, void *arg)
{
	struct feed *f = arg;
	struct app *a = f->a;
	f->list = NULL;
	if (e) {
		went_down(f, e);
		return;
	}
	int st = async_req_status(r);
	if (st != 200) {
		char why[160];
		answer_error(r, why, sizeof(why));
		app_message(a, true, "cannot read the sandboxes: %s", why);
	} else {
		const struct buf *b = async_req_body(r);
		struct err pe = ERR_INIT;
		uint64_t gen = a->model.gen;
		if (model_set_list(&a->model, b->data, b->len, &pe) < 0)
			app_message(a, true, "%s", err_str(&pe));
		if (a->model.gen != gen)
			app_redraw(a);
		feed_ports(f);
	}
	if (f->list_again) {
		f->list_again = false;
		read_list(f);
	} else if (a->feed == FEED_POLLING) {
		timer_arm(&f->poll, POLL_MS);
	}
}

static const struct async_req_cb list_cb = { .done = list_done };

/* GET /ports: the published URLs of the list. Read after each read of
 * the list and after a publish or unpublish from here, never by a timer
 * (there is no event for a publish: another client's shows on the next
 * read). It asks the hot guests what listens, so it is not free. */
void feed_ports(struct feed *f)
{
	if (f->a->no_ports || f->ports)
		return;
	struct client_req rq = { .method = "GET", .path = "/ports", .body_fd = -1 };
	f->ports = async_request(f->a->client, &rq, &ports_cb, f);
}

static void read_list(struct feed *f)
{
	if (f->list) {
		f->list_again = true;
		return;
	}
	struct client_req rq = { .method = "GET", .path = "/sandboxes", .body_fd = -1 };
	f->list = async_request(f->a->client, &rq, &list_cb, f);
}

void feed_refresh(struct feed *f)
{
	timer_cancel(&f->poll);
	read_list(f);
}

static void on_poll(struct timer *t)
{
	read_list(t->data);
}

/* ---- events ------------------------------------------------------------------------- */

static void ev_open(struct async_ws *ws UNUSED, void *arg)
{
	struct feed *f = arg;
	f->a->model.seq = 0;
	set_state(f, FEED_LIVE, NULL);
	read_list(f);
}

static void ev_message(struct async_ws *ws UNUSED, bool binary, const char *p, size_t n,
		       void *arg)
{
	struct feed *f = arg;
	if (binary)
		return;
	enum model_need need;
	struct err e = ERR_INIT;
	uint64_t gen = f->a->model.gen, logged = f->a->model.log_total;
	struct app *a = f->a;
	if (model_apply_event(&a->model, p, n, &need, &e) < 0)
		return;   /* not an event: a newer daemon's message */
	if (need == MODEL_BEHIND) {
		/* {"type":"resync"}: the daemon ends this stream; a new one is
		 * opened at once and the list read again (ev_closed, ev_open) */
		f->resynced = true;
		if (a->view == &view_events)
			app_redraw(a);
		return;
	}
	if (need == MODEL_RESYNC)
		read_list(f);
	if (a->model.event_sandbox[0] && a->view->event)
		a->view->event(a, a->model.event_sandbox, a->model.event_type);
	if (a->model.gen != gen || (a->view == &view_events && a->model.log_total != logged))
		app_redraw(a);
}

static void ev_closed(struct async_ws *ws UNUSED, const struct err *e, void *arg)
{
	struct feed *f = arg;
	f->events = NULL;
	if (f->resynced) {
		/* we fell behind: subscribe again from now; ev_open re-reads the
		 * list (what was missed is in it; the events log says resync) */
		f->resynced = false;
		f->events = async_ws_open(f->a->client, "/events", &events_cb, f);
		return;
	}
	if (e && e->code == ENOENT) {
		/* no GET /events on this daemon: read the list every POLL_MS */
		set_state(f, FEED_POLLING, NULL);
		read_list(f);
		return;
	}
	struct err gone = ERR_INIT;
	err_set(&gone, e ? e->code : EPIPE, "%s", e ? err_str(e) : "the daemon closed the events");
	went_down(f, &gone);
}

static const struct async_ws_cb events_cb = {
	.open = ev_open, .message = ev_message, .closed = ev_closed,
};

/* ---- health, start ------------------------------------------------------------------ */

static void health_done(struct async_req *r, const struct err *e, void *arg)
{
	struct feed *f = arg;
	struct app *a = f->a;
	f->health = NULL;
	if (e) {
		went_down(f, e);
		return;
	}
	const struct buf *b = async_req_body(r);
	cJSON *j = cJSON_ParseWithLength(b->data, b->len);
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "version"));
	const char *ac = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "accel"));
	snprintf(a->version, sizeof(a->version), "%s", v ? v : "");
	snprintf(a->accel, sizeof(a->accel), "%s", ac ? ac : "");
	cJSON_Delete(j);
	a->no_ports = false;
	f->events = async_ws_open(a->client, "/events", &events_cb, f);
	app_redraw(a);
}

static const struct async_req_cb health_cb = { .done = health_done };

static void start(struct feed *f)
{
	struct client_req rq = { .method = "GET", .path = "/health", .body_fd = -1 };
	f->health = async_request(f->a->client, &rq, &health_cb, f);
}

static void on_retry(struct timer *t)
{
	start(t->data);
}

struct feed *feed_new(struct app *a)
{
	struct feed *f = xcalloc(1, sizeof(*f));
	f->a = a;
	a->feed = FEED_CONNECTING;
	timer_init(&f->retry, on_retry, f);
	timer_init(&f->poll, on_poll, f);
	start(f);
	return f;
}

void feed_free(struct feed *f)
{
	if (!f)
		return;
	async_req_cancel(f->health);
	async_req_cancel(f->list);
	async_req_cancel(f->ports);
	async_ws_abort(f->events);
	timer_cancel(&f->retry);
	timer_cancel(&f->poll);
	while (f->actions) {
		struct action *ac = f->actions;
		f->actions = ac->next;
		async_req_cancel(ac->r);
		free(ac);
	}
	free(f);
}

/* ---- actions ------------------------------------------------------------------------ */

static void action_done(struct async_req *r, const struct err *e, void *arg)
{
	struct action *ac = arg;
	struct app *a = ac->f->a;
	int st = async_req_status(r);
	if (e) {
		app_message(a, true, "%s '%s': %s", ac->what, ac->name, err_str(e));
	} else if (st / 100 != 2) {
		char why[160];
		answer_error(r, why, sizeof(why));
		app_message(a, true, "%s '%s': %s", ac->what, ac->name, why);
	} else {
		app_message(a, false, "%s '%s': done", ac->what, ac->name);
	}
	feed_refresh(ac->f);
	for (struct action **p = &ac->f->actions; *p; p = &(*p)->next)
		if (*p == ac) {
			*p = ac->next;
			break;
		}
	free(ac);
}

static const struct async_req_cb action_cb = { .done = action_done };

void feed_action(struct feed *f, const char *method, const char *id, const char *what,
		 const char *name)
{
	struct action *ac = xcalloc(1, sizeof(*ac));
	ac->f = f;
	snprintf(ac->what, sizeof(ac->what), "%s", what);
	snprintf(ac->name, sizeof(ac->name), "%s", name);
	char *esc = httpc_escape(id);
	struct buf path = BUF_INIT;
	buf_addf(&path, "/sandboxes/%s%s%s", esc, strcmp(what, "destroy") == 0 ? "" : "/",
		 strcmp(what, "destroy") == 0 ? "" : what);
	struct client_req rq = { .method = method, .path = path.data, .body_fd = -1 };
	ac->r = async_request(f->a->client, &rq, &action_cb, ac);
	ac->next = f->actions;
	f->actions = ac;
	buf_release(&path);
	free(esc);
	app_message(f->a, false, "%s '%s' …", what, name);
}
