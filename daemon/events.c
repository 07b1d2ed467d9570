/* events.c — the events stream's ring, history and subscribers (see
 * events.h for the model).
 *
 * Sits between the modules that emit (through event_*(), without seeing
 * JSON) and GET /events (api-events.c). Writes the store's events table
 * in batches (one transaction per FLUSH_MS, not an fsync per event: an
 * exec emits two; at once when a burst would overwrite a ring slot not
 * yet written) and prunes it of what is older than EVENTS_KEEP_DAYS.
 * Touches its ring, its subscribers and that table only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "events.h"
#include "log.h"
#include "loop.h"
#include "sandbox.h"
#include "server.h"
#include "store.h"

#define FLUSH_MS 500u
#define PRUNE_MS (3600u * 1000u)
#define PAGE 256              /* history rows a subscriber takes at a time */

struct slot {
	int64_t seq;              /* 0: empty */
	int64_t at_ms;
	int64_t user_id;
	char *sandbox_id;
	char *json;
};

struct event {
	cJSON *o;
	int64_t user_id;
	char *sandbox_id;
};

struct events_sub {
	struct events_sub *next;
	struct events *evs;
	int64_t user_id;
	char *only;               /* a sandbox id, or NULL */
	int64_t pos;              /* the next seq it takes */
	bool live;                /* it reads from the ring (not the history) */
	bool behind;              /* ... and fell a ring behind: resync */
	void (*wake)(void *arg);
	void *arg;
	struct task wake_task;
	char **page;              /* history from the store, [page_at, page_n) */
	size_t page_at, page_n;
	char *cur;                /* what events_next returned last */
};

struct events {
	struct server *srv;
	struct slot ring[EVENTS_RING];
	int64_t last;             /* the last seq given */
	int64_t ring_first;       /* the oldest seq the ring holds (last + 1: none) */
	int64_t flushed;          /* written to the store up to this seq */
	struct events_sub *subs;
	struct timer flush, prune;
};

/* ---- building ---------------------------------------------------------------------- */

struct event *event_new(const struct sbx *sb, const char *type)
{
	struct event *ev = xcalloc(1, sizeof(*ev));
	ev->o = cJSON_CreateObject();
	ev->user_id = sb->row.user_id;
	ev->sandbox_id = xstrdup(sb->row.id);
	cJSON_AddStringToObject(ev->o, "type", type);
	cJSON_AddStringToObject(ev->o, "sandbox", sb->row.name);
	cJSON_AddStringToObject(ev->o, "sandbox_id", sb->row.id);
	return ev;
}

void event_str(struct event *ev, const char *key, const char *v)
{
	cJSON_AddStringToObject(ev->o, key, v ? v : "");
}

void event_int(struct event *ev, const char *key, int64_t v)
{
	cJSON_AddNumberToObject(ev->o, key, (double)v);
}

/* At most STRV_MAX strings of at most STR_MAX bytes each ("..." marks a
 * cut): an exec's argv may be 128 KiB, and the ring keeps 1024 events. */
#define STRV_MAX 32
#define STR_MAX 256

void event_strv(struct event *ev, const char *key, char *const *v)
{
	cJSON *a = cJSON_AddArrayToObject(ev->o, key);
	for (size_t i = 0; v && v[i]; i++) {
		if (i == STRV_MAX) {
			cJSON_AddItemToArray(a, cJSON_CreateString("..."));
			break;
		}
		if (strlen(v[i]) <= STR_MAX) {
			cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
			continue;
		}
		size_t n = STR_MAX;
		while (n > 0 && ((unsigned char)v[i][n] & 0xc0) == 0x80)
			n--;   /* not inside a UTF-8 sequence */
		char *cut = xstrndup(v[i], n);
		struct buf b = BUF_INIT;
		buf_addf(&b, "%s...", cut);
		cJSON_AddItemToArray(a, cJSON_CreateString(b.data));
		buf_release(&b);
		free(cut);
	}
}

static void event_free(struct event *ev)
{
	if (!ev)
		return;
	cJSON_Delete(ev->o);
	free(ev->sandbox_id);
	free(ev);
}

/* ---- the history in the store -------------------------------------------------------- */

/* Write what the store does not have yet, in one transaction. */
static void flush(struct events *evs)
{
	struct err e = ERR_INIT;
	if (evs->flushed >= evs->last)
		return;
	size_t n = (size_t)(evs->last - evs->flushed);
	struct store_event *v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		const struct slot *sl = &evs->ring[(evs->flushed + 1 + (int64_t)i) % EVENTS_RING];
		v[i] = (struct store_event){ .seq = sl->seq, .user_id = sl->user_id,
					     .sandbox_id = sl->sandbox_id, .at_ms = sl->at_ms,
					     .body = sl->json };
	}
	if (store_events_add(evs->srv->store, v, n, &e) < 0)
		log_warn("events: %s", err_str(&e));
	else
		evs->flushed = evs->last;
	free(v);
}

static void on_flush(struct timer *t)
{
	flush(t->data);
}

static void on_prune(struct timer *t)
{
	struct events *evs = t->data;
	struct err e = ERR_INIT;
	if (store_event_prune(evs->srv->store, wall_ms() - EVENTS_KEEP_DAYS * 86400000ll, &e) < 0)
		log_warn("events: %s", err_str(&e));
	timer_arm(&evs->prune, PRUNE_MS);
}

/* ---- emitting -------------------------------------------------------------------------- */

static void sub_wake(struct task *t)
{
	struct events_sub *s = t->data;
	s->wake(s->arg);
}

void events_emit(struct server *srv, struct event *ev)
{
	struct events *evs = srv->events;
	if (!evs) {
		event_free(ev);
		return;
	}
	int64_t seq = evs->last + 1;
	/* the slot's event must be in the store before it is overwritten (a
	 * burst faster than the flush timer); a store that refuses loses it */
	if (seq - EVENTS_RING > evs->flushed) {
		flush(evs);
		if (seq - EVENTS_RING > evs->flushed)
			evs->flushed = seq - EVENTS_RING;
	}
	evs->last = seq;
	cJSON *o = ev->o;
	/* seq and time first: easier to read in a terminal */
	cJSON *head = cJSON_CreateObject();
	cJSON_AddNumberToObject(head, "seq", (double)seq);
	int64_t now = wall_ms();
	cJSON_AddNumberToObject(head, "time", (double)now);
	for (cJSON *c = o->child; c;) {
		cJSON *n = c->next;
		cJSON_AddItemToObject(head, c->string, cJSON_DetachItemViaPointer(o, c));
		c = n;
	}
	struct slot *sl = &evs->ring[seq % EVENTS_RING];
	free(sl->sandbox_id);
	free(sl->json);
	sl->seq = seq;
	sl->at_ms = now;
	sl->user_id = ev->user_id;
	sl->sandbox_id = ev->sandbox_id;
	ev->sandbox_id = NULL;
	sl->json = cJSON_PrintUnformatted(head);
	cJSON_Delete(head);
	event_free(ev);
	if (seq - evs->ring_first >= EVENTS_RING)
		evs->ring_first = seq - EVENTS_RING + 1;
	if (!evs->flush.armed)
		timer_arm(&evs->flush, FLUSH_MS);
	for (struct events_sub *s = evs->subs; s; s = s->next) {
		/* one that reads live and is a ring behind is not buffered
		 * for: it resyncs (one replaying history reads the store) */
		if (s->live && evs->last - s->pos >= EVENTS_RING)
			s->behind = true;
		task_post(&s->wake_task);
	}
}

int64_t events_last_seq(const struct events *evs)
{
	return evs ? evs->last : 0;
}

/* ---- subscribers ---------------------------------------------------------------------- */

struct events_sub *events_subscribe(struct events *evs, int64_t user_id, const char *only,
				    int64_t since, void (*wake)(void *arg), void *arg)
{
	struct events_sub *s = xcalloc(1, sizeof(*s));
	s->evs = evs;
	s->user_id = user_id;
	s->only = only ? xstrdup(only) : NULL;
	s->pos = since < 0 || since > evs->last ? evs->last + 1 : since + 1;
	s->live = s->pos >= evs->ring_first;
	s->wake = wake;
	s->arg = arg;
	task_init(&s->wake_task, sub_wake, s);
	s->next = evs->subs;
	evs->subs = s;
	if (s->pos <= evs->last)
		task_post(&s->wake_task);
	return s;
}

static void page_release(struct events_sub *s)
{
	for (size_t i = s->page_at; i < s->page_n; i++)
		free(s->page[i]);
	free(s->page);
	s->page = NULL;
	s->page_at = s->page_n = 0;
}

static void sub_free(void *p)
{
	struct events_sub *s = p;
	page_release(s);
	free(s->cur);
	free(s->only);
	free(s);
}

void events_unsubscribe(struct events_sub *s)
{
	if (!s)
		return;
	for (struct events_sub **pp = &s->evs->subs; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	task_cancel(&s->wake_task);
	loop_defer_free(sub_free, s);
}

static bool wanted(const struct events_sub *s, int64_t user_id, const char *sandbox_id)
{
	return user_id == s->user_id &&
	       (!s->only || (sandbox_id && strcmp(sandbox_id, s->only) == 0));
}

struct page_ctx {
	struct events_sub *s;
	int64_t last;
};

static int take_row(int64_t seq, int64_t user_id, const char *body, void *arg)
{
	struct page_ctx *pc = arg;
	struct events_sub *s = pc->s;
	pc->last = seq;
	if (user_id != s->user_id)
		return 0;
	if (s->only) {
		/* the sandbox filter reads the body's sandbox_id */
		cJSON *o = cJSON_Parse(body);
		const cJSON *id = o ? cJSON_GetObjectItemCaseSensitive(o, "sandbox_id") : NULL;
		bool ok = cJSON_IsString(id) && strcmp(id->valuestring, s->only) == 0;
		cJSON_Delete(o);
		if (!ok)
			return 0;
	}
	s->page[s->page_n++] = xstrdup(body);
	return 0;
}

/* History the ring no longer holds: the next PAGE rows from the store. */
static int load_page(struct events_sub *s)
{
	struct events *evs = s->evs;
	struct err e = ERR_INIT;
	page_release(s);
	s->page = xcalloc(PAGE, sizeof(*s->page));
	struct page_ctx pc = { s, 0 };
	if (store_event_each(evs->srv->store, s->pos - 1, PAGE, take_row, &pc, &e) < 0) {
		log_warn("events: %s", err_str(&e));
		return -1;
	}
	if (!pc.last) {
		s->pos = evs->ring_first;   /* nothing older kept: go on from the ring */
		return 0;
	}
	s->pos = pc.last + 1;
	return 0;
}

int events_next(struct events_sub *s, const char **ret_json)
{
	struct events *evs = s->evs;
	free(s->cur);
	s->cur = NULL;
	if (s->behind)
		return -1;
	for (;;) {
		if (s->page_at < s->page_n) {
			s->cur = s->page[s->page_at];
			s->page[s->page_at++] = NULL;
			*ret_json = s->cur;
			return 1;
		}
		if (s->pos > evs->last) {
			s->live = true;
			return 0;
		}
		if (s->pos < evs->ring_first) {
			if (s->live)
				return -1;
			if (s->pos > evs->flushed)
				flush(evs);
			if (load_page(s) < 0)
				return -1;
			continue;
		}
		s->live = true;
		const struct slot *sl = &evs->ring[s->pos % EVENTS_RING];
		s->pos++;
		if (wanted(s, sl->user_id, sl->sandbox_id)) {
			*ret_json = sl->json;
			return 1;
		}
	}
}

/* ---- life ---------------------------------------------------------------------------- */

int events_new(struct server *srv, struct events **ret, struct err *e)
{
	int64_t last;
	int rc = store_event_last(srv->store, &last, e);
	if (rc < 0)
		return rc;
	struct events *evs = xcalloc(1, sizeof(*evs));
	evs->srv = srv;
	evs->last = evs->flushed = last;
	evs->ring_first = last + 1;
	timer_init(&evs->flush, on_flush, evs);
	timer_init(&evs->prune, on_prune, evs);
	on_prune(&evs->prune);
	*ret = evs;
	return 0;
}

void events_free(struct events *evs)
{
	if (!evs)
		return;
	flush(evs);
	timer_cancel(&evs->flush);
	timer_cancel(&evs->prune);
	while (evs->subs) {
		struct events_sub *s = evs->subs;
		evs->subs = s->next;
		task_cancel(&s->wake_task);
		sub_free(s);
	}
	for (size_t i = 0; i < EVENTS_RING; i++) {
		free(evs->ring[i].sandbox_id);
		free(evs->ring[i].json);
	}
	free(evs);
}
