/* agent-client — the host side of the agent protocol (docs/protocol.md).
 *
 * Sits between the host's users of a sandbox (engine, daemon handlers,
 * tests, benchmarks) and one agent connection (a unix socket: the VM's
 * virtio-serial chardev, or lohar's test-mode listener).
 *
 * Two layers:
 *   - async: the caller owns the event loop. It polls ac_fd() for reading
 *     (and writing while ac_want_write()), calls ac_on_readable() /
 *     ac_flush(), and gets per-stream callbacks. Never blocks.
 *   - blocking helpers (ac_call, ac_exec, ac_read_file, ac_write_file) for
 *     tests, benchmarks and simple tools: they run a private poll loop on
 *     this one connection until their stream ends.
 *
 * Ownership: ac_connect_unix()/ac_new() return a client the caller frees
 * with ac_free(). Streams belong to the client: a stream is freed right
 * after its `closed` callback; ac_close()/ac_free() close (with an error)
 * and free every open stream. An owner that goes away before its stream
 * has ended calls ac_stream_orphan(): no callback of the stream runs any
 * more, the agent is asked to cancel, and the client frees the stream
 * when the agent ends it. That is the rule that keeps callbacks off freed
 * memory: whoever frees the `arg` of a stream orphans the stream first.
 *
 * The agent is not trusted (a tenant with root in the guest can replace
 * it): every frame it sends must be one its stream's request allows
 * (docs/protocol.md, "what the host accepts"), at most once where the
 * protocol says once; its window credit must add up; a stream it never
 * had or already ended is not its to write to. Any violation ends the
 * connection. The output queue toward the agent is bounded: buffered
 * writes (ac_write) wait in their stream while more than AC_OUT_SOFT is
 * queued, and a queue above AC_OUT_HARD (an agent that does not read its
 * channel while the host keeps sending control messages) ends the
 * connection.
 */
#ifndef BHATTI_AGENT_CLIENT_H
#define BHATTI_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "proto.h"

struct ac;
struct ac_stream;

struct ac_stream_cb {
	/* Every non-DATA frame for the stream, the final (END) one included. */
	void (*frame)(struct ac_stream *s, const struct proto_frame *f, void *arg);
	/* Output bytes (channel PROTO_CH_OUT or PROTO_CH_ERR). */
	void (*data)(struct ac_stream *s, uint8_t channel, const uint8_t *p, size_t n, void *arg);
	/* More room to send (ac_send_room grew), or bytes queued with
	 * ac_write went out (ac_write_queued fell). */
	void (*window)(struct ac_stream *s, void *arg);
	/* Exactly once, last: e is NULL after a normal END frame, else why the
	 * stream died (connection lost, protocol error). s is freed after. */
	void (*closed)(struct ac_stream *s, const struct err *e, void *arg);
};

/* Output queued toward the agent: above SOFT, buffered writes wait; above
 * HARD, the agent is not reading and the connection is ended. */
#define AC_OUT_SOFT (1u << 20)
#define AC_OUT_HARD (8u << 20)

/* ---- connection ------------------------------------------------------------- */

/* Blocking connect to a unix socket and HELLO handshake. */
int ac_connect_unix(const char *path, const char *token, const char *client_name,
		    int timeout_ms, struct ac **ret, struct err *e);
/* Wrap an already connected fd (the client takes ownership) and queue
 * HELLO; the client becomes ready when HELLO_OK arrives (ac_ready). */
struct ac *ac_new(int fd, const char *token, const char *client_name);
void ac_free(struct ac *ac);
/* End the connection now: the fd is closed and every open stream gets its
 * `closed` callback with (code, message). Later calls are no-ops. */
void ac_close(struct ac *ac, int code, const char *fmt, ...) PRINTF(3, 4);

int ac_fd(const struct ac *ac);
bool ac_ready(const struct ac *ac);
bool ac_dead(const struct ac *ac);
const struct proto_hello_ok *ac_hello(const struct ac *ac);
bool ac_want_write(const struct ac *ac);

/* Call fn(arg) whenever output gets queued, so an external loop can
 * schedule ac_flush() (the async layer never writes on its own). */
void ac_set_notify(struct ac *ac, void (*fn)(void *arg), void *arg);

/* Read what is there and dispatch it: 0, or negative errno when the
 * connection died (e says why; every stream got `closed`). */
int ac_on_readable(struct ac *ac, struct err *e);
/* Write queued output: 0, or negative errno when the connection died. */
int ac_flush(struct ac *ac, struct err *e);
/* One round of the private loop: wait up to timeout_ms, then read/write. */
int ac_poll(struct ac *ac, int timeout_ms, struct err *e);

/* ---- streams ------------------------------------------------------------------ */

/* Open a stream with request `type`/`msg` (msg may be NULL for empty
 * bodies). Returns NULL (e set) if the client is dead or the body is too
 * large. */
struct ac_stream *ac_open(struct ac *ac, uint8_t type, const void *msg,
			  const struct ac_stream_cb *cb, void *arg, struct err *e);
uint32_t ac_stream_id(const struct ac_stream *s);
/* The owner goes away: see the top of this file. s must not be used
 * after this call. */
void ac_stream_orphan(struct ac_stream *s);

/* Buffered input (channel PROTO_CH_IN): the bytes are copied into the
 * stream and sent as credit allows; ac_write_eof() sends EOF after them.
 * The caller bounds what it queues with ac_write_queued() (the `window`
 * callback runs when some of it went out). */
void ac_write(struct ac_stream *s, const void *p, size_t n);
void ac_write_eof(struct ac_stream *s);
size_t ac_write_queued(const struct ac_stream *s);

/* Low level, for tests of the agent's flow control: bytes that may be
 * sent now (credit, capped at one chunk; 0 while buffered writes wait or
 * the output queue is above AC_OUT_SOFT), and DATA of at most that. */
size_t ac_send_room(const struct ac_stream *s);
void ac_send_data(struct ac_stream *s, uint8_t channel, const void *p, size_t n);
void ac_send_eof(struct ac_stream *s, uint8_t channel);
void ac_send_msg(struct ac_stream *s, uint8_t type, const void *msg);
/* Ask the agent to cancel/detach (once); the stream still ends with a frame. */
void ac_send_close(struct ac_stream *s);
/* Hold back receive credit (the consumer is slow); release with false. */
void ac_hold(struct ac_stream *s, bool hold);

/* ---- blocking helpers ------------------------------------------------------------ */

/* Request/response: open `type` with `req`, wait for the END frame. If it
 * is `want` it is decoded into ret_msg (caller releases with
 * proto_msg_release); if it is ERROR, returns -code with e set to the
 * agent's message. timeout_ms 0 = wait forever. */
int ac_call(struct ac *ac, uint8_t type, const void *req, uint8_t want,
	    void *ret_msg, int timeout_ms, struct err *e);

struct ac_exec_result {
	int exit_code;
	int signal;
	uint32_t flags;       /* PROTO_EXIT_* */
	uint32_t pid;
	struct buf out;       /* stdout */
	struct buf err;       /* stderr */
};
void ac_exec_result_release(struct ac_exec_result *r);

/* Run a command; stdin_data (may be NULL) is streamed in when
 * req->flags has PROTO_EXEC_STDIN. Fills ret (caller releases). */
int ac_exec(struct ac *ac, const struct proto_exec *req, const void *stdin_data,
	    size_t stdin_len, struct ac_exec_result *ret, int timeout_ms, struct err *e);

/* Read a file into out; meta and ok may be NULL. */
int ac_read_file(struct ac *ac, const struct proto_file_read *req, struct buf *out,
		 struct proto_file_meta *ret_meta, struct proto_ok *ret_ok,
		 int timeout_ms, struct err *e);

/* Write a file from memory. */
int ac_write_file(struct ac *ac, const struct proto_file_write *req, const void *data,
		  size_t len, int timeout_ms, struct err *e);

#endif
