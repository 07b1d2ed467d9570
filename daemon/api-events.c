/* api-events.c — GET /events: the caller's events (events.h), as a
 * WebSocket (one text message per event) or as streamed ndjson (one line
 * per event), live; ?since=SEQ replays what came after SEQ first,
 * ?sandbox=NAME keeps one sandbox's, ?follow=false (ndjson) answers what
 * there is and ends (docs/api.md).
 *
 * Sits between one HTTP request and one events subscriber. Memory is
 * bounded: events are taken from the ring only while less than
 * QUEUE_HIGH waits for the client; one that falls a ring behind gets
 * {"type":"resync"} and the end (it reconnects with ?since=).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "events.h"
#include "num.h"
#include "server.h"

#define QUEUE_HIGH (64u << 10)

struct events_ctx {
	struct http_req *r;
	struct events_sub *sub;
	bool ws, follow;
};

static void events_ctx_free(void *p)
{
	struct events_ctx *x = p;
	events_unsubscribe(x->sub);
	free(x);
}

static size_t queued(const struct events_ctx *x)
{
	return x->ws ? http_ws_queued(x->r) : http_stream_queued(x->r);
}

static void send_line(struct events_ctx *x, const char *json)
{
	if (x->ws) {
		http_ws_send(x->r, false, json, strlen(json));
		return;
	}
	http_stream_write(x->r, json, strlen(json));
	http_stream_write(x->r, "\n", 1);
}

static void finish(struct events_ctx *x)
{
	events_unsubscribe(x->sub);
	x->sub = NULL;
	if (x->ws)
		http_ws_close(x->r);
	else
		http_stream_end(x->r);
}

static void pump(struct events_ctx *x)
{
	while (x->sub && queued(x) < QUEUE_HIGH) {
		const char *json;
		int rc = events_next(x->sub, &json);
		if (rc == 0) {
			if (!x->follow)
				finish(x);
			return;
		}
		if (rc < 0) {
			send_line(x, "{\"type\":\"resync\"}");
			finish(x);
			return;
		}
		send_line(x, json);
	}
}

static void on_events(void *arg)
{
	pump(arg);
}

static void on_drain(struct http_req *r)
{
	pump(r->ctx);
}

void api_events(struct http_req *r)
{
	const char *since = http_query(r, "since"), *name = http_query(r, "sandbox");
	const char *follow = http_query(r, "follow");
	int64_t after = -1;
	if (since && num_parse_i64(since, 0, INT64_MAX, &after, "since", NULL) < 0) {
		http_reply_error(r, 400, "'since' must be an event's sequence number");
		return;
	}
	const char *only = NULL;
	if (name && name[0]) {
		struct sbx *sb = sbx_find(r->srv, &r->user, name);
		if (!sb) {
			http_reply_error(r, 404, "no sandbox '%s'", name);
			return;
		}
		only = sb->row.id;
	}
	if (!r->srv->events) {
		http_reply_error(r, 503, "events are not kept by this server");
		return;
	}
	struct events_ctx *x = xcalloc(1, sizeof(*x));
	x->r = r;
	x->ws = r->method == HTTP_WS;
	x->follow = x->ws || !follow || (strcmp(follow, "false") != 0 && strcmp(follow, "0") != 0);
	r->ctx = x;
	r->ctx_free = events_ctx_free;
	r->on_drain = on_drain;
	if (!x->ws)
		http_stream_start(r, 200, "application/x-ndjson", -1);
	x->sub = events_subscribe(r->srv->events, r->user.id, only, after, on_events, x);
	pump(x);
}
