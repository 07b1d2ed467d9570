/* conn.c — lohar's side of a host connection: handshake, frame dispatch to
 * the ops table, streams and flow control, the output queue; plus the two
 * ways connections arrive (a unix listener in test mode, the virtio-serial
 * port in a VM). Sits between the byte stream and the op-*.c handlers.
 *
 * Connection states:
 *
 *                 HELLO ok
 *     HELLO ─────────────────► READY
 *       │ bad HELLO, garbage     │ garbage, protocol violation
 *       ▼                        ▼
 *     CLOSING  (ERROR on stream 0 queued; input discarded; close once the
 *       │       output is flushed — the VM channel instead waits for EOF)
 *       ▼
 *     freed (socket)  /  DISCONNECTED (channel) ──host reconnects──► HELLO
 *
 * Any state goes to freed/DISCONNECTED when the peer hangs up. Streams of a
 * lost connection get ops->lost(): execs are killed, sessions detach.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

enum conn_state { CONN_HELLO, CONN_READY, CONN_CLOSING, CONN_DISCONNECTED };

struct conn {
	struct watch w;
	bool persistent;            /* the VM channel: reset, never freed */
	enum conn_state state;
	struct proto_decoder dec;
	struct buf out;
	struct stream **streams;
	size_t nstreams, cap;
	struct task flush_task;
	struct timer poll_timer;    /* channel: look for the host coming back */
	bool out_blocked;           /* a source found the queue over high water */
	bool in_paused;             /* queue over high water: requests wait */
	unsigned id;
};

static unsigned conn_next_id = 1;

static void conn_on_event(struct watch *w, uint32_t events);
static void conn_flush(struct task *t);
static void conn_lost(struct conn *c, const char *why);
static void conn_process(struct conn *c);

/* ---- streams ------------------------------------------------------------ */

static struct stream *stream_find(struct conn *c, uint32_t id)
{
	for (size_t i = 0; i < c->nstreams; i++)
		if (c->streams[i]->id == id)
			return c->streams[i];
	return NULL;
}

static struct stream *stream_new(struct conn *c, uint32_t id, uint8_t type)
{
	struct stream *s = xcalloc(1, sizeof(*s));
	s->conn = c;
	s->id = id;
	s->type = type;
	s->send_window = PROTO_WINDOW;
	s->recv_window = PROTO_WINDOW;
	if (c->nstreams == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->streams = xrealloc(c->streams, c->cap * sizeof(*c->streams));
	}
	c->streams[c->nstreams++] = s;
	return s;
}

static void stream_unlink(struct stream *s)
{
	struct conn *c = s->conn;
	if (!c)
		return;
	for (size_t i = 0; i < c->nstreams; i++) {
		if (c->streams[i] == s) {
			c->streams[i] = c->streams[--c->nstreams];
			break;
		}
	}
	s->conn = NULL;
}

unsigned conn_stream_count(const struct conn *c)
{
	return (unsigned)c->nstreams;
}

static void conn_want_flush(struct conn *c)
{
	task_post(&c->flush_task);
}

size_t stream_room(const struct stream *s)
{
	if (s->ended || !s->conn || s->conn->state != CONN_READY)
		return 0;
	if (s->conn->out.len >= AGENT_OUT_HIGH) {
		s->conn->out_blocked = true;
		return 0;
	}
	return MIN(s->send_window, PROTO_DATA_CHUNK);
}

void stream_data(struct stream *s, uint8_t channel, const void *p, size_t n)
{
	if (!n || s->ended || !s->conn)
		return;
	if (n > s->send_window)
		abort(); /* programming error: callers ask stream_room first */
	s->send_window -= (uint32_t)n;
	proto_put_data(&s->conn->out, s->id, channel, p, n);
	conn_want_flush(s->conn);
	agent_touch();
}

ssize_t stream_read_fd(struct stream *s, uint8_t channel, int fd)
{
	struct buf *out = &s->conn->out;
	size_t room = stream_room(s);
	if (!room)
		return -EAGAIN;
	/* Read straight into the output queue behind a DATA header. */
	buf_grow(out, PROTO_DATA_HDR + room);
	char *at = out->data + out->len + PROTO_DATA_HDR;
	ssize_t n = read(fd, at, room);
	if (n < 0)
		return -errno;
	if (n == 0)
		return 0;
	proto_data_header((uint8_t *)out->data + out->len, s->id, channel, (size_t)n);
	buf_setlen(out, out->len + PROTO_DATA_HDR + (size_t)n);
	s->send_window -= (uint32_t)n;
	conn_want_flush(s->conn);
	agent_touch();
	return n;
}

void stream_msg(struct stream *s, uint8_t type, const void *msg)
{
	if (s->ended || !s->conn)
		return;
	if (proto_put_msg(&s->conn->out, s->id, type, 0, msg) < 0)
		log_error("%s message too large for stream %u", proto_type_name(type), s->id);
	conn_want_flush(s->conn);
}

static void stream_free(void *p)
{
	free(p);
}

void stream_end(struct stream *s, uint8_t type, const void *msg)
{
	if (s->ended)
		return;
	s->ended = true;
	if (s->conn) {
		if (proto_put_msg(&s->conn->out, s->id, type, PROTO_F_END, msg) < 0)
			proto_put_error(&s->conn->out, s->id, EMSGSIZE,
					"reply does not fit in one frame");
		conn_want_flush(s->conn);
		stream_unlink(s);
	}
	s->ops = NULL;
	s->op = NULL;
	loop_defer_free(stream_free, s);
}

void stream_end_error(struct stream *s, int code, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct proto_error pe = { .code = code < 0 ? -code : code, .message = msg };
	stream_end(s, PROTO_ERROR, &pe);
}

void stream_consumed(struct stream *s, size_t n)
{
	if (s->ended || !s->conn)
		return;
	s->recv_consumed += (uint32_t)n;
	if (!s->recv_consumed)
		return;   /* nothing to give back (an increment of 0 means nothing) */
	/* Batch grants, but never sit on credit the host is waiting for. */
	if (s->recv_consumed >= PROTO_WINDOW / 4 || s->recv_window == 0 ||
	    s->recv_consumed + s->recv_window >= PROTO_WINDOW) {
		struct proto_window w = { .increment = s->recv_consumed };
		s->recv_window += s->recv_consumed;
		s->recv_consumed = 0;
		stream_msg(s, PROTO_WINDOW_UPDATE, &w);
	}
}

void stream_detach_op(struct stream *s)
{
	s->ops = NULL;
	s->op = NULL;
}

/* ---- connection lifecycle ----------------------------------------------- */

static void conn_free(void *p)
{
	struct conn *c = p;
	proto_decoder_release(&c->dec);
	buf_release(&c->out);
	free(c->streams);
	free(c);
}

/* Every stream of c dies without an END: the op decides what that means. */
static void conn_drop_streams(struct conn *c)
{
	while (c->nstreams) {
		struct stream *s = c->streams[c->nstreams - 1];
		const struct stream_ops *ops = s->ops;
		stream_unlink(s);
		s->ended = true;
		if (ops && ops->lost)
			ops->lost(s);
		s->ops = NULL;
		s->op = NULL;
		loop_defer_free(stream_free, s);
	}
}

static void conn_reset_io(struct conn *c)
{
	proto_decoder_release(&c->dec);
	proto_decoder_init(&c->dec);
	buf_reset(&c->out);
	c->out_blocked = false;
	c->in_paused = false;
	task_cancel(&c->flush_task);
}

/* Protocol violation: tell the host why, then close. */
static void conn_fail(struct conn *c, int code, const char *fmt, ...) PRINTF(3, 4);
static void conn_fail(struct conn *c, int code, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("connection %u: %s", c->id, msg);
	conn_drop_streams(c);
	proto_put_error(&c->out, 0, code, "%s", msg);
	c->state = CONN_CLOSING;
	conn_want_flush(c);
}

static void poll_timer_fn(struct timer *t);

static void conn_lost(struct conn *c, const char *why)
{
	log_info("connection %u closed: %s", c->id, why);
	conn_drop_streams(c);
	if (c->persistent) {
		/* The VM channel stays open; wait for the host to come back.
		 * Edge-triggered so a hung-up port does not spin the loop; the
		 * driver wakes the port when the host reconnects. */
		conn_reset_io(c);
		c->state = CONN_DISCONNECTED;
		watch_set(&c->w, EPOLLIN | EPOLLET);
		timer_arm(&c->poll_timer, 1000);
		return;
	}
	task_cancel(&c->flush_task);
	timer_cancel(&c->poll_timer);
	watch_close(&c->w);
	loop_defer_free(conn_free, c);
}

/* Channel only: is the host side connected again? */
static bool channel_connected(struct conn *c)
{
	struct pollfd p = { .fd = c->w.fd, .events = POLLIN };
	if (poll(&p, 1, 0) < 0)
		return false;
	return !(p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

static void channel_try_reconnect(struct conn *c)
{
	if (!channel_connected(c)) {
		timer_arm(&c->poll_timer, 1000);
		return;
	}
	timer_cancel(&c->poll_timer);
	c->state = CONN_HELLO;
	c->id = conn_next_id++;
	watch_set(&c->w, EPOLLIN);
	log_info("connection %u: host connected on the channel", c->id);
}

static void poll_timer_fn(struct timer *t)
{
	struct conn *c = t->data;
	if (c->state == CONN_DISCONNECTED)
		channel_try_reconnect(c);
}

static void conn_flush(struct task *t)
{
	struct conn *c = t->data;
	while (c->out.len) {
		ssize_t n = write(c->w.fd, c->out.data, c->out.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			conn_lost(c, strerror(errno));
			return;
		}
		buf_consume(&c->out, (size_t)n);
	}
	if (c->state == CONN_DISCONNECTED)
		return;
	if (c->in_paused && c->out.len < AGENT_OUT_LOW && c->state != CONN_CLOSING) {
		c->in_paused = false;
		conn_process(c); /* the requests already read; may pause again */
	}
	if (c->out.len) {
		watch_set(&c->w, c->state == CONN_CLOSING || c->in_paused ?
			  EPOLLOUT : EPOLLIN | EPOLLOUT);
		return;
	}
	if (c->state == CONN_CLOSING && !c->persistent) {
		conn_lost(c, "closed after a protocol error");
		return;
	}
	watch_set(&c->w, EPOLLIN);
	if (c->out_blocked && c->out.len < AGENT_OUT_LOW) {
		c->out_blocked = false;
		/* wake every source that stopped for the queue */
		for (size_t i = 0; i < c->nstreams; i++) {
			struct stream *s = c->streams[i];
			if (s->ops && s->ops->window)
				s->ops->window(s);
			if (c->nstreams <= i)
				break;
		}
	}
}

/* ---- handshake and dispatch --------------------------------------------- */

static bool token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = (unsigned char)(la != lb);
	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return diff == 0;
}

static void conn_hello(struct conn *c, const struct proto_frame *f)
{
	struct proto_hello h;
	struct err e = ERR_INIT;

	if (f->type != PROTO_HELLO || f->stream != 0) {
		conn_fail(c, EPROTO, "expected HELLO first, got %s",
			  proto_type_name(f->type) ? proto_type_name(f->type) : "an unknown message");
		return;
	}
	if (proto_decode(f, &h, &e) < 0) {
		conn_fail(c, EPROTO, "%s", err_str(&e));
		return;
	}
	if (h.version != PROTO_VERSION) {
		conn_fail(c, EPROTONOSUPPORT,
			  "protocol version %u is not supported (lohar speaks version %u)",
			  h.version, PROTO_VERSION);
	} else if (agent.token[0] && !token_equal(h.token, agent.token)) {
		conn_fail(c, EACCES, "bad token");
	} else {
		if (!agent.token[0] && h.token[0]) { /* first contact binds the token */
			free(agent.token);
			agent.token = xstrdup(h.token);
		}
		struct proto_hello_ok ok = {
			.version = PROTO_VERSION,
			.agent_version = (char *)BHATTI_VERSION,
			.max_frame = PROTO_MAX_FRAME,
			.window = PROTO_WINDOW,
			.max_streams = PROTO_MAX_STREAMS,
			.hostname = agent.hostname,
			.configured = agent.configured,
		};
		proto_put_msg(&c->out, 0, PROTO_HELLO_OK, 0, &ok);
		conn_want_flush(c);
		c->state = CONN_READY;
		log_info("connection %u: ready (client '%s')", c->id, h.client);
	}
	proto_msg_release(PROTO_HELLO, &h);
}

static void conn_stream_frame(struct conn *c, struct stream *s,
			      const struct proto_frame *f)
{
	const struct stream_ops *ops = s->ops;

	switch (f->type) {
	case PROTO_DATA: {
		struct proto_data d;
		struct err e = ERR_INIT;
		if (proto_decode_data(f, &d, &e) < 0) {
			conn_fail(c, EPROTO, "%s", err_str(&e));
			return;
		}
		if (d.len > s->recv_window) {
			conn_fail(c, EPROTO, "stream %u: DATA beyond the flow-control window", s->id);
			return;
		}
		s->recv_window -= (uint32_t)d.len;
		agent_touch();
		if (ops && ops->data)
			ops->data(s, d.channel, d.data, d.len);
		else
			stream_consumed(s, d.len);
		return;
	}
	case PROTO_EOF: {
		struct proto_eof eof;
		if (proto_decode(f, &eof, NULL) < 0) {
			conn_fail(c, EPROTO, "malformed EOF message");
			return;
		}
		if (ops && ops->eof)
			ops->eof(s, eof.channel);
		return;
	}
	case PROTO_WINDOW_UPDATE: {
		struct proto_window w;
		if (proto_decode(f, &w, NULL) < 0) {
			conn_fail(c, EPROTO, "malformed WINDOW_UPDATE message");
			return;
		}
		if ((uint64_t)s->send_window + w.increment > (1u << 30)) {
			conn_fail(c, EPROTO, "stream %u: window overflow", s->id);
			return;
		}
		s->send_window += w.increment;
		if (ops && ops->window)
			ops->window(s);
		return;
	}
	case PROTO_CLOSE:
		if (ops && ops->close)
			ops->close(s);
		else
			stream_end_error(s, ECANCELED, "cancelled");
		return;
	default:
		if (agent_op_find(f->type)) {
			conn_fail(c, EPROTO, "stream %u is already in use", s->id);
			return;
		}
		if (ops && ops->frame)
			ops->frame(s, f);
		else
			log_debug("stream %u: ignoring %s", s->id,
				  proto_type_name(f->type) ? proto_type_name(f->type) : "unknown message");
	}
}

static void conn_dispatch(struct conn *c, const struct proto_frame *f)
{
	if (c->state == CONN_HELLO) {
		conn_hello(c, f);
		return;
	}
	if (f->stream == 0) {
		if (f->type == PROTO_HELLO && c->persistent) {
			/* After a VM snapshot is restored the port can close and
			 * reopen before lohar notices: a HELLO is a new host. */
			log_info("connection %u: new HELLO on the channel; starting over", c->id);
			conn_drop_streams(c);
			buf_reset(&c->out);
			c->out_blocked = false;
			c->in_paused = false;
			c->state = CONN_HELLO;
			conn_hello(c, f);
		} else if (f->type == PROTO_HELLO)
			conn_fail(c, EPROTO, "HELLO sent twice");
		else
			log_debug("connection %u: ignoring %s on stream 0", c->id,
				  proto_type_name(f->type) ? proto_type_name(f->type) : "unknown message");
		return;
	}
	struct stream *s = stream_find(c, f->stream);
	if (s) {
		conn_stream_frame(c, s, f);
		return;
	}
	const struct agent_op *op = agent_op_find(f->type);
	if (!op) {
		/* Late frames for a stream that already ended are normal. */
		if (f->type == PROTO_DATA || f->type == PROTO_EOF ||
		    f->type == PROTO_WINDOW_UPDATE || f->type == PROTO_CLOSE ||
		    f->type == PROTO_RESIZE)
			return;
		log_warn("connection %u: unknown message type %u on stream %u", c->id,
			 f->type, f->stream);
		proto_put_error(&c->out, f->stream, EPROTO, "unknown message type %u", f->type);
		conn_want_flush(c);
		return;
	}
	if (c->nstreams >= PROTO_MAX_STREAMS) {
		proto_put_error(&c->out, f->stream, EMFILE,
				"too many open streams (limit %u)", PROTO_MAX_STREAMS);
		conn_want_flush(c);
		return;
	}
	s = stream_new(c, f->stream, f->type);
	op->start(s, f);
}

/* Dispatch the frames the decoder holds, but not while the output queue is
 * over its high-water mark: a host that sends requests without reading the
 * answers must not make lohar buffer them without bound. Paused, the
 * connection is not read either; conn_flush resumes once the queue drains. */
static void conn_process(struct conn *c)
{
	struct proto_frame f;
	struct err e = ERR_INIT;
	for (;;) {
		if (c->out.len >= AGENT_OUT_HIGH) {
			c->in_paused = true;
			watch_set(&c->w, EPOLLOUT);
			return;
		}
		int r = proto_decoder_next(&c->dec, &f, &e);
		if (r == 0)
			return;
		if (r < 0) {
			conn_fail(c, -r, "%s", err_str(&e));
			return;
		}
		conn_dispatch(c, &f);
		if (c->state == CONN_CLOSING || c->state == CONN_DISCONNECTED)
			return;
	}
}

static void conn_read(struct conn *c)
{
	char chunk[64 << 10];
	if (c->in_paused)
		return; /* an EPOLLIN from before the pause */
	ssize_t n = read(c->w.fd, chunk, sizeof(chunk));

	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		conn_lost(c, strerror(errno));
		return;
	}
	if (n == 0) {
		if (proto_decoder_pending(&c->dec))
			log_warn("connection %u: truncated frame at end of stream", c->id);
		conn_lost(c, "end of stream");
		return;
	}
	if (c->state == CONN_CLOSING)
		return; /* discard: waiting for the host to hang up */
	proto_decoder_feed(&c->dec, chunk, (size_t)n);
	conn_process(c);
}

static void conn_on_event(struct watch *w, uint32_t events)
{
	struct conn *c = w->data;

	if (c->state == CONN_DISCONNECTED) {
		channel_try_reconnect(c);
		return;
	}
	if (events & EPOLLIN)
		conn_read(c);
	else if (events & (EPOLLHUP | EPOLLERR)) {
		conn_lost(c, "hang-up");
		return;
	}
	if (w->fd >= 0 && c->state != CONN_DISCONNECTED && (events & EPOLLOUT))
		conn_flush(&c->flush_task);
}

struct conn *conn_new(int fd, bool persistent)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->persistent = persistent;
	c->state = CONN_HELLO;
	c->id = conn_next_id++;
	proto_decoder_init(&c->dec);
	buf_init(&c->out);
	task_init(&c->flush_task, conn_flush, c);
	timer_init(&c->poll_timer, poll_timer_fn, c);
	watch_init(&c->w, conn_on_event, c);
	fd_set_nonblock(fd, true);
	if (watch_add(&c->w, fd, EPOLLIN) < 0) {
		log_error("cannot watch connection fd %d: %s", fd, strerror(errno));
		close(fd);
		conn_free(c);
		return NULL;
	}
	return c;
}

/* ---- listener (test mode) ------------------------------------------------ */

static struct watch listener;

static void on_accept(struct watch *w, uint32_t events UNUSED)
{
	for (;;) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		struct conn *c = conn_new(fd, false);
		if (c)
			log_debug("connection %u: accepted", c->id);
	}
}

int listener_start(const char *path, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	/* bind() makes the path appear before listen() makes it accept: bind
	 * a temporary name and rename it into place once listening, so PATH
	 * existing means connections succeed (tests wait for it). */
	char tmp[sizeof(sa.sun_path)];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", path) >= sizeof(tmp))
		return err_set(e, ENAMETOOLONG, "socket path '%s' is too long", path);
	memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, errno, "socket: %s", strerror(errno));
	unlink(tmp);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
	    chmod(tmp, 0600) < 0 || rename(tmp, path) < 0) {
		int r = errno;
		close(fd);
		unlink(tmp);
		return err_set(e, r, "cannot listen on '%s': %s", path, strerror(r));
	}
	watch_init(&listener, on_accept, NULL);
	int r = watch_add(&listener, fd, EPOLLIN);
	if (r < 0) {
		close(fd);
		return err_set(e, -r, "epoll: %s", strerror(-r));
	}
	return 0;
}

/* ---- the VM channel ------------------------------------------------------- */

int channel_start(const char *path, struct err *e)
{
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set(e, errno, "cannot open the agent channel '%s': %s", path,
			       strerror(errno));
	struct conn *c = conn_new(fd, true);
	if (!c)
		return err_set(e, EIO, "cannot serve the agent channel '%s'", path);
	if (!channel_connected(c)) {
		c->state = CONN_DISCONNECTED;
		watch_set(&c->w, EPOLLIN | EPOLLET);
		timer_arm(&c->poll_timer, 1000);
	}
	log_info("serving the agent channel %s", path);
	return 0;
}
