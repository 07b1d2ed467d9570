/* api-execs.c — GET /sandboxes/:id/execs (WebSocket): watch every exec
 * run in the caller's sandbox, by any client (docs/api.md): the last few
 * commands with the tails of their output first, then live. One JSON text
 * message per event.
 *
 * Sits between a WebSocket and the tee (exectee.h). Never slows an exec
 * and never buffers without bound: output for a watcher that has more
 * than WATCH_HIGH bytes waiting is dropped (counted), and so is anything
 * beyond WATCH_CAP; the next message that fits is preceded by
 * {"type":"dropped","bytes":N,"messages":M}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "exectee.h"

#define WATCH_HIGH (256u << 10)   /* output dropped beyond this much waiting */
#define WATCH_CAP (1u << 20)      /* anything dropped beyond this */
#define WATCH_CHUNK (16u << 10)   /* output bytes per message (lws sends a message
				     whole; the shell's are 32 KiB at most too) */

struct watch_ctx {
	struct http_req *r;
	struct exectee_watch *w;
	uint64_t dropped_bytes, dropped_msgs;
};

static void watch_ctx_free(void *p)
{
	struct watch_ctx *x = p;
	exectee_unwatch(x->w);
	free(x);
}

static void send_line(struct watch_ctx *x, struct buf *b, bool output, size_t bytes)
{
	size_t q = http_ws_queued(x->r);
	if (q > WATCH_CAP || (output && q > WATCH_HIGH)) {
		x->dropped_bytes += bytes;
		x->dropped_msgs++;
		return;
	}
	if (x->dropped_msgs) {
		char m[128];
		int n = snprintf(m, sizeof(m), "{\"type\":\"dropped\",\"bytes\":%llu,\"messages\":%llu}",
				 (unsigned long long)x->dropped_bytes, (unsigned long long)x->dropped_msgs);
		http_ws_send(x->r, false, m, (size_t)n);
		x->dropped_bytes = x->dropped_msgs = 0;
	}
	http_ws_send(x->r, false, b->data, b->len);
}

static void on_event(const struct exectee_ev *ev, void *arg)
{
	struct watch_ctx *x = arg;
	struct buf b = BUF_INIT;
	switch (ev->type) {
	case EXECTEE_START: {
		cJSON *arr = cJSON_CreateArray();
		for (char *const *a = ev->argv; a && *a; a++)
			cJSON_AddItemToArray(arr, cJSON_CreateString(*a));
		char *s = cJSON_PrintUnformatted(arr);
		buf_addf(&b, "{\"type\":\"exec\",\"exec\":%llu,\"time\":%lld,\"argv\":%s",
			 (unsigned long long)ev->exec, (long long)ev->time_ms, s);
		free(s);
		cJSON_Delete(arr);
		break;
	}
	case EXECTEE_DATA:
		/* in pieces of WATCH_CHUNK, each its own message */
		for (size_t off = 0; off < ev->n; off += WATCH_CHUNK) {
			size_t n = MIN((size_t)WATCH_CHUNK, ev->n - off);
			buf_reset(&b);
			buf_addf(&b, "{\"type\":\"%s\",\"exec\":%llu,",
				 ev->ch == 2 ? "stderr" : "stdout", (unsigned long long)ev->exec);
			api_json_bytes(&b, "data", ev->p + off, n);
			if (ev->cut && off == 0)
				buf_adds(&b, ",\"cut\":true");
			if (ev->replay)
				buf_adds(&b, ",\"replay\":true");
			buf_addch(&b, '}');
			send_line(x, &b, true, n);
		}
		buf_release(&b);
		return;
	case EXECTEE_END:
		buf_addf(&b, "{\"type\":\"exit\",\"exec\":%llu,\"duration_ms\":%llu",
			 (unsigned long long)ev->exec, (unsigned long long)ev->duration_ms);
		if (ev->exited) {
			buf_addf(&b, ",\"exit_code\":%d%s", ev->exit_code,
				 ev->timed_out ? ",\"timed_out\":true" : "");
		} else {
			buf_addch(&b, ',');
			api_json_bytes(&b, "error", (const uint8_t *)ev->error, strlen(ev->error));
		}
		break;
	}
	if (ev->replay)
		buf_adds(&b, ",\"replay\":true");
	buf_addch(&b, '}');
	send_line(x, &b, false, 0);
	buf_release(&b);
}

void api_execs(struct http_req *r)
{
	struct sbx *sb = api_sandbox(r);
	if (!sb)
		return;
	struct watch_ctx *x = xcalloc(1, sizeof(*x));
	x->r = r;
	r->ctx = x;
	r->ctx_free = watch_ctx_free;
	x->w = exectee_watch(sb->row.id, on_event, x);
}
