/* daemon.h — the in-process daemon of the fuzz targets fuzz-http,
 * fuzz-json and fuzz-agent: the real HTTP front (daemon/http.c on a real
 * libwebsockets context), the real route table and handlers, a real
 * `struct server` with a SQLite store in a temp dir under /dev/shm, a
 * user with a known key, default settings and the real rate limiter, and
 * an engine on the fake VMM backend (tests/fake-backend.h), so sandboxes
 * exist and change state without QEMU.
 *
 * Connections are socketpairs: one end is adopted into lws (http_adopt,
 * as if the listener had accepted it), the other is the client's, written
 * and read by the target. The daemon runs on this thread: fzd_serve()
 * turns lws and the shared loop (http_turn) until nothing moves any more.
 *
 * Baseline, restored after every input that changed it (fzd_reset): the
 * user "fuzz" (at most FZD_MAX_SANDBOXES sandboxes) with one secret
 * "TOKEN", the sandbox "box" (hot: RUNNING) and "off" (stopped by its
 * user), fresh rate-limit buckets.
 *
 * Not product code: linked only into the fuzz targets.
 */
#ifndef BHATTI_FUZZ_DAEMON_H
#define BHATTI_FUZZ_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent-client.h"
#include "buf.h"
#include "engine-internal.h"
#include "loop.h"
#include "server.h"

/* Inputs name the user's key with this; fzd_write() puts the real key
 * (which the store made) in its place. Same length as a key. */
#define FZD_KEY "bht_KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK"
#define FZD_MAX_SANDBOXES 4

/* One client connection. */
struct fzd_conn {
	int fd;              /* the client's end; -1 once closed */
	struct buf in;       /* bytes still to write to the daemon */
	struct buf out;      /* what the daemon wrote */
	bool eof;            /* the daemon closed its end */
};

/* Start it all (once; the first call of each target). */
void fzd_start(void);
struct server *fzd_server(void);
/* The sandbox "box" (hot). */
struct sbx *fzd_box(void);

/* A new connection, adopted by the daemon. */
void fzd_open(struct fzd_conn *c);
/* Queue bytes from the client (FZD_KEY replaced); fzd_serve writes them
 * as the socket takes them. */
void fzd_write(struct fzd_conn *c, const void *p, size_t n);
/* Serve until nothing moves: no bytes in or out of any of the n
 * connections, no task in the loop, for a few turns in a row. Aborts when
 * that never happens (a livelock). */
void fzd_serve(struct fzd_conn *const *conns, size_t n);
/* The clients shut their side (what the daemon still sends is read), then
 * close; serve until the daemon has ended every connection (aborts when it
 * never does) and what that set going has settled. */
void fzd_close(struct fzd_conn *const *conns, size_t n);

/* What the daemon wrote on a connection must read as HTTP/1.1 answers
 * with the client library's parser (client/httpc.h), and after a 101 as
 * WebSocket frames (client/wsc.h); aborts when not. With head_requests
 * (the input asked HEAD: no body follows a head, which the parser cannot
 * know) a malformed answer is not held against the daemon. */
void fzd_check_answers(const struct buf *out, bool head_requests);

/* An agent channel of a sandbox, as the QEMU backend keeps one for a
 * running VM (a watch calling ac_on_readable/ac_flush, a flush task on
 * output; a protocol error ends the client and leaves the VM without an
 * agent), over a socketpair whose other end (c) the target plays. */
struct fzd_agent {
	struct fzd_conn c;   /* the agent's end: c.in to the host, c.out from it */
	struct vm *vm;
	struct ac *ac;       /* NULL once lost or detached */
	struct watch w;
	struct task flush;
	bool lost;           /* the client ended the connection (an error) */
};

/* Attach a new channel to sb's VM (RUNNING) and play hello_ok (the
 * agent's HELLO_OK frame) so it is ready. */
void fzd_agent_attach(struct fzd_agent *a, struct sbx *sb, const void *hello_ok, size_t n);
/* The agent closes its end. */
void fzd_agent_hangup(struct fzd_agent *a);
/* Take the channel away again (its streams end with an error) and settle. */
void fzd_agent_detach(struct fzd_agent *a);

/* Back to the baseline when anything differs from it. */
void fzd_reset(void);

#endif
