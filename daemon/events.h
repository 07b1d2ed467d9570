/* events — what happened to sandboxes, as a stream: created, destroyed,
 * renamed, state and thermal changes (wake with wake_ms), sessions, execs.
 *
 * Sits between the core modules that emit (sandbox.c, thermal.c, the exec
 * and shell handlers through event_*()) and the subscribers of GET /events
 * (api-events.c: WebSocket or streamed ndjson). The core builds an event
 * with event_new() + event_str/int/strv() and hands it to events_emit();
 * it never sees JSON.
 *
 * Every event gets the next sequence number (1, 2, ...; it goes on from the
 * store after a restart). The last EVENTS_RING events stay in memory; each
 * is also written to the store's events table (kept EVENTS_KEEP_DAYS), so
 * ?since=SEQ replays from the ring, or from the table when the ring no
 * longer holds it. A subscriber reads at its own pace from the ring: one
 * that falls more than the ring behind is sent {"type":"resync"} and
 * dropped (it reconnects with ?since=). Memory is bounded by the ring.
 *
 *   event_new ──fields──► events_emit ──► ring + table ──► subscribers
 *                                            (seq)        (pos ≤ head)
 *
 * Ownership: events_new()/events_free() (serve.c); an event from
 * event_new() belongs to the caller until events_emit() takes it.
 * Subscribers (events_subscribe) belong to their owner, which ends them
 * with events_unsubscribe().
 */
#ifndef BHATTI_EVENTS_H
#define BHATTI_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define EVENTS_RING 1024
#define EVENTS_KEEP_DAYS 7

struct server;
struct sbx;
struct event;
struct events;
struct events_sub;

int events_new(struct server *srv, struct events **ret, struct err *e);
void events_free(struct events *ev);

/* An event about sb ("sandbox.created", "thermal.wake", ...). */
struct event *event_new(const struct sbx *sb, const char *type);
void event_str(struct event *ev, const char *key, const char *v);
void event_int(struct event *ev, const char *key, int64_t v);
void event_strv(struct event *ev, const char *key, char *const *v);
/* Number it, keep it, tell the subscribers; takes ev. A server without
 * events (a unit test) frees it. */
void events_emit(struct server *srv, struct event *ev);
/* The last sequence number given. */
int64_t events_last_seq(const struct events *evs);

/* A subscriber of user_id's events (only sandbox: that sandbox's id, or
 * NULL), starting after seq `since` (-1: from now). wake is called (on the
 * loop) when there are events to take. */
struct events_sub *events_subscribe(struct events *evs, int64_t user_id, const char *only,
				    int64_t since, void (*wake)(void *arg), void *arg);
void events_unsubscribe(struct events_sub *s);
/* The next event for s as one JSON line (without the newline): 1 and
 * *ret_json (valid until the next call), 0 when there is none now, or -1
 * when s fell behind (send {"type":"resync"} and drop it). */
int events_next(struct events_sub *s, const char **ret_json);

#endif
