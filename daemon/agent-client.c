/* agent-client.c — host side of the agent protocol: handshake, stream
 * multiplexing, flow control, and blocking helpers (see agent-client.h).
 * Sits between the engine/daemon/tests and one agent connection; touches
 * only its own fd.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-client.h"
#include "log.h"

struct ac_stream {
	struct ac *ac;
	uint32_t id;
	const struct reply_rule *rule;   /* what the agent may send on it */
	const struct ac_stream_cb *cb;   /* NULL: orphaned, dropped at END */
	void *arg;
	uint32_t send_window;
	uint32_t recv_window;            /* credit the agent may still use */
	uint32_t recv_consumed;          /* consumed, not yet granted back */
	uint8_t seen;                    /* bit i: rule->once[i] came */
	bool held;
	bool close_sent;
	struct buf wbuf;                 /* ac_write bytes waiting for credit ... */
	size_t woff;                     /* ... from this offset on */
	bool want_eof, eof_sent;
	struct ac_stream *next;
};

struct ac {
	int fd;
	struct proto_decoder dec;
	struct buf out;
	struct ac_stream *streams;
	uint32_t next_id;
	bool ready;
	bool dead;
	bool pumping;                    /* pump_all is on the stack */
	struct err dead_err;
	struct proto_hello_ok hello;
	bool have_hello;
	void (*notify)(void *arg);
	void *notify_arg;
};

/* ---- what the agent may send ----------------------------------------------------
 *
 * By the request that opened the stream (docs/protocol.md): the reply
 * types that may come before the end, each at most once; the types that
 * may end it (ERROR always may); the channels DATA may come on. Anything
 * else, a repeat, or a frame for a stream the host does not have ends the
 * connection: an agent is a tenant, and without this a guest could grow
 * the daemon's memory or its log without bound with repeated non-DATA
 * frames (which no window limits).
 */
#define CH(c) (1u << (c))

struct reply_rule {
	uint8_t request;
	uint8_t once[2];     /* 0 = none */
	uint8_t end[2];      /* besides ERROR; 0 = none */
	uint8_t data;        /* CH() bits */
};

static const struct reply_rule rules[] = {
	{ PROTO_PING, { 0 }, { PROTO_PONG }, 0 },
	{ PROTO_CONFIGURE, { 0 }, { PROTO_OK }, 0 },
	{ PROTO_ACTIVITY, { 0 }, { PROTO_ACTIVITY_INFO }, 0 },
	{ PROTO_SYNC, { 0 }, { PROTO_OK }, 0 },
	{ PROTO_LOAD, { 0 }, { PROTO_LOAD_INFO }, 0 },
	{ PROTO_EXEC, { PROTO_EXEC_STARTED }, { PROTO_EXIT, PROTO_EXEC_STARTED },
	  CH(PROTO_CH_OUT) | CH(PROTO_CH_ERR) },
	{ PROTO_SESSION_OPEN, { PROTO_SESSION }, { PROTO_EXIT, PROTO_OK }, CH(PROTO_CH_OUT) },
	{ PROTO_SESSION_ATTACH, { PROTO_SESSION }, { PROTO_EXIT, PROTO_OK }, CH(PROTO_CH_OUT) },
	{ PROTO_SESSION_LIST, { 0 }, { PROTO_SESSION_LIST_RESULT }, 0 },
	{ PROTO_SESSION_INFO, { 0 }, { PROTO_SESSION_LIST_RESULT }, 0 },
	{ PROTO_SESSION_KILL, { 0 }, { PROTO_OK }, 0 },
	{ PROTO_FILE_READ, { PROTO_FILE_META }, { PROTO_OK }, CH(PROTO_CH_OUT) },
	{ PROTO_FILE_WRITE, { 0 }, { PROTO_OK }, 0 },
	{ PROTO_FILE_STAT, { 0 }, { PROTO_FILE_META }, 0 },
	{ PROTO_FILE_LS, { 0 }, { PROTO_LS_RESULT }, 0 },
	{ PROTO_FORWARD, { PROTO_OK, PROTO_EOF }, { PROTO_OK }, CH(PROTO_CH_OUT) },
	{ PROTO_PORTS, { 0 }, { PROTO_PORTS_RESULT }, 0 },
};

/* A request type with no rule gets this one: only an ERROR may answer it. */
static const struct reply_rule error_only = { 0, { 0 }, { 0 }, 0 };

static const struct reply_rule *rule_for(uint8_t request)
{
	for (size_t i = 0; i < ARRAY_SIZE(rules); i++)
		if (rules[i].request == request)
			return &rules[i];
	return &error_only;
}

/* Output was queued: let an external loop know it should flush. */
static void kick(struct ac *ac)
{
	if (ac->notify)
		ac->notify(ac->notify_arg);
}

void ac_set_notify(struct ac *ac, void (*fn)(void *arg), void *arg)
{
	ac->notify = fn;
	ac->notify_arg = arg;
	if (ac->out.len)
		kick(ac);
}

/* ---- connection --------------------------------------------------------------- */

struct ac *ac_new(int fd, const char *token, const char *client_name)
{
	struct ac *ac = xcalloc(1, sizeof(*ac));
	struct proto_hello h = {
		.version = PROTO_VERSION,
		.token = (char *)(token ? token : ""),
		.client = (char *)(client_name ? client_name : "bhatti"),
	};
	ac->fd = fd;
	ac->next_id = 1;
	proto_decoder_init(&ac->dec);
	buf_init(&ac->out);
	fd_set_nonblock(fd, true);
	fd_set_cloexec(fd);
	proto_put_msg(&ac->out, 0, PROTO_HELLO, 0, &h);
	return ac;
}

static void stream_close(struct ac_stream *s, const struct err *e)
{
	struct ac *ac = s->ac;
	for (struct ac_stream **pp = &ac->streams; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	if (s->cb && s->cb->closed)
		s->cb->closed(s, e, s->arg);
	buf_release(&s->wbuf);
	free(s);
}

static int ac_die(struct ac *ac, int code, const char *fmt, ...) PRINTF(3, 4);
static int ac_vdie(struct ac *ac, int code, const char *fmt, va_list ap)
{
	if (ac->dead)
		return -ac->dead_err.code;
	ac->dead = true;
	ac->ready = false;
	ac->dead_err.code = code < 0 ? -code : code;
	vsnprintf(ac->dead_err.msg, sizeof(ac->dead_err.msg), fmt, ap);
	if (ac->fd >= 0)
		close(ac->fd);
	ac->fd = -1;
	buf_reset(&ac->out);
	while (ac->streams)
		stream_close(ac->streams, &ac->dead_err);
	return -ac->dead_err.code;
}

static int ac_die(struct ac *ac, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = ac_vdie(ac, code, fmt, ap);
	va_end(ap);
	return r;
}

void ac_close(struct ac *ac, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ac_vdie(ac, code, fmt, ap);
	va_end(ap);
}

void ac_free(struct ac *ac)
{
	if (!ac)
		return;
	ac_die(ac, ECONNABORTED, "agent client closed");
	proto_decoder_release(&ac->dec);
	buf_release(&ac->out);
	if (ac->have_hello)
		proto_msg_release(PROTO_HELLO_OK, &ac->hello);
	free(ac);
}

int ac_fd(const struct ac *ac)
{
	return ac->fd;
}

bool ac_ready(const struct ac *ac)
{
	return ac->ready;
}

bool ac_dead(const struct ac *ac)
{
	return ac->dead;
}

const struct proto_hello_ok *ac_hello(const struct ac *ac)
{
	return ac->have_hello ? &ac->hello : NULL;
}

bool ac_want_write(const struct ac *ac)
{
	return ac->out.len > 0;
}

static int copy_dead(struct ac *ac, struct err *e)
{
	if (e)
		*e = ac->dead_err;
	return -ac->dead_err.code;
}

/* Queue a message toward the agent. Past AC_OUT_HARD the agent has not read
 * its channel for a long while: end the connection (false). */
static bool queue_msg(struct ac *ac, uint32_t stream, uint8_t type, const void *msg)
{
	if (ac->dead)
		return false;
	if (ac->out.len > AC_OUT_HARD) {
		ac_die(ac, ENOBUFS, "the agent does not read its channel (%zu bytes waiting)",
		       ac->out.len);
		return false;
	}
	proto_put_msg(&ac->out, stream, type, 0, msg);
	kick(ac);
	return true;
}

static void pump(struct ac_stream *s);

/* The queue fell below AC_OUT_SOFT: streams with buffered writes go on. */
static void pump_all(struct ac *ac)
{
	if (ac->pumping)
		return;
	ac->pumping = true;
	for (struct ac_stream *s = ac->streams, *next; s && !ac->dead; s = next) {
		next = s->next;
		if (s->wbuf.len > s->woff || (s->want_eof && !s->eof_sent))
			pump(s);
	}
	ac->pumping = false;
}

int ac_flush(struct ac *ac, struct err *e)
{
	if (ac->dead)
		return copy_dead(ac, e);
	bool was_high = ac->out.len >= AC_OUT_SOFT;
	while (ac->out.len) {
		ssize_t n = send(ac->fd, ac->out.data, ac->out.len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			ac_die(ac, errno, "agent connection: %s", strerror(errno));
			return copy_dead(ac, e);
		}
		buf_consume(&ac->out, (size_t)n);
	}
	if (was_high && ac->out.len < AC_OUT_SOFT)
		pump_all(ac);
	return ac->dead ? copy_dead(ac, e) : 0;
}

/* ---- dispatch ----------------------------------------------------------------------- */

static struct ac_stream *find_stream(struct ac *ac, uint32_t id)
{
	for (struct ac_stream *s = ac->streams; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void grant(struct ac_stream *s, bool force)
{
	if (s->held || !s->recv_consumed || s->ac->dead)
		return;
	if (!force && s->recv_consumed < PROTO_WINDOW / 4)
		return;
	struct proto_window w = { .increment = s->recv_consumed };
	s->recv_window += s->recv_consumed;
	s->recv_consumed = 0;
	queue_msg(s->ac, s->id, PROTO_WINDOW_UPDATE, &w);
}

static void on_stream0(struct ac *ac, const struct proto_frame *f)
{
	struct err e = ERR_INIT;
	if (f->type == PROTO_HELLO_OK && !ac->have_hello) {
		if (proto_decode(f, &ac->hello, &e) < 0) {
			ac_die(ac, EPROTO, "bad HELLO_OK from the agent: %s", err_str(&e));
			return;
		}
		ac->have_hello = true;
		ac->ready = true;
		return;
	}
	if (f->type == PROTO_ERROR) {
		struct proto_error pe;
		if (proto_decode(f, &pe, &e) == 0) {
			ac_die(ac, pe.code ? pe.code : EPROTO, "agent: %s", pe.message);
			proto_msg_release(PROTO_ERROR, &pe);
		} else {
			ac_die(ac, EPROTO, "agent sent a malformed ERROR");
		}
		return;
	}
	ac_die(ac, EPROTO, "the agent sent %s (type %u) on stream 0",
	       proto_type_name(f->type) ? proto_type_name(f->type) : "an unknown message", f->type);
}

/* Is f a frame the agent may send on s now? Records a "once" type. */
static bool frame_allowed(struct ac_stream *s, const struct proto_frame *f)
{
	const struct reply_rule *r = s->rule;
	if (f->flags & PROTO_F_END)
		return f->type == PROTO_ERROR || (f->type && (f->type == r->end[0] ||
							      f->type == r->end[1]));
	for (int i = 0; i < 2; i++) {
		if (r->once[i] && f->type == r->once[i]) {
			if (s->seen & (1u << i))
				return false;
			s->seen |= (uint8_t)(1u << i);
			return true;
		}
	}
	return false;
}

static void on_data(struct ac *ac, struct ac_stream *s, const struct proto_frame *f)
{
	struct proto_data d;
	struct err e = ERR_INIT;
	if (proto_decode_data(f, &d, &e) < 0) {
		ac_die(ac, EPROTO, "%s", err_str(&e));
		return;
	}
	if (d.len == 0 || d.channel > 7 || !(s->rule->data & CH(d.channel))) {
		ac_die(ac, EPROTO, "the agent sent DATA (%zu bytes, channel %u) that stream %u "
				   "(%s) does not carry", d.len, d.channel, s->id,
		       proto_type_name(s->rule->request) ? proto_type_name(s->rule->request) : "?");
		return;
	}
	if (d.len > s->recv_window) {
		ac_die(ac, EPROTO, "agent overran the flow-control window on stream %u", s->id);
		return;
	}
	s->recv_window -= (uint32_t)d.len;
	if (s->cb && s->cb->data)
		s->cb->data(s, d.channel, d.data, d.len, s->arg);
	if (ac->dead)
		return;
	s->recv_consumed += (uint32_t)d.len;
	grant(s, !s->cb);   /* an orphan's bytes are dropped: let them flow */
}

static void on_window(struct ac *ac, struct ac_stream *s, const struct proto_frame *f)
{
	struct proto_window w;
	if (proto_decode(f, &w, NULL) < 0) {
		ac_die(ac, EPROTO, "malformed WINDOW_UPDATE from the agent");
		return;
	}
	/* credit given back can never exceed what was sent: the agent's
	 * window is PROTO_WINDOW (an increment of 0 changes nothing: older
	 * agents sent it) */
	if (w.increment > PROTO_WINDOW - s->send_window) {
		ac_die(ac, EPROTO, "the agent granted %u bytes of credit on stream %u, which has "
				   "%u of %u", w.increment, s->id, s->send_window, PROTO_WINDOW);
		return;
	}
	s->send_window += w.increment;
	pump(s);
	if (!ac->dead && s->cb && s->cb->window)
		s->cb->window(s, s->arg);
}

static void dispatch(struct ac *ac, const struct proto_frame *f)
{
	if (f->stream == 0) {
		on_stream0(ac, f);
		return;
	}
	if (!ac->ready)
		return; /* stale output from before a snapshot: not for us */
	struct ac_stream *s = find_stream(ac, f->stream);
	if (!s) {
		/* streams stay until their END (an orphan too): this is a
		 * stream the agent never had or already ended */
		ac_die(ac, EPROTO, "the agent sent %s on stream %u, which is not open",
		       proto_type_name(f->type) ? proto_type_name(f->type) : "a message", f->stream);
		return;
	}
	switch (f->type) {
	case PROTO_DATA:
		on_data(ac, s, f);
		return;
	case PROTO_WINDOW_UPDATE:
		on_window(ac, s, f);
		return;
	default:
		if (!frame_allowed(s, f)) {
			ac_die(ac, EPROTO, "the agent sent %s%s on stream %u (%s), which does not "
					   "allow it%s",
			       proto_type_name(f->type) ? proto_type_name(f->type) : "an unknown message",
			       f->flags & PROTO_F_END ? " (END)" : "", s->id,
			       proto_type_name(s->rule->request) ? proto_type_name(s->rule->request)
								 : "unknown request",
			       f->flags & PROTO_F_END ? "" : " here or again");
			return;
		}
		if (s->cb && s->cb->frame)
			s->cb->frame(s, f, s->arg);
		if ((f->flags & PROTO_F_END) && !ac->dead)
			stream_close(s, NULL);
	}
}

int ac_on_readable(struct ac *ac, struct err *e)
{
	char chunk[256 << 10];
	size_t total = 0;

	if (ac->dead)
		return copy_dead(ac, e);
	while (total < (1u << 20)) {
		ssize_t n = read(ac->fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			ac_die(ac, errno, "agent connection: %s", strerror(errno));
			return copy_dead(ac, e);
		}
		if (n == 0) {
			ac_die(ac, ECONNRESET, "the agent closed the connection");
			return copy_dead(ac, e);
		}
		total += (size_t)n;
		proto_decoder_feed(&ac->dec, chunk, (size_t)n);
		for (;;) {
			struct proto_frame f;
			struct err de = ERR_INIT;
			int r = proto_decoder_next(&ac->dec, &f, &de);
			if (r == 0)
				break;
			if (r < 0 && !ac->ready) {
				/* A VM restored from a snapshot may still send the
				 * tail of a frame from before it: hunt for HELLO_OK. */
				proto_decoder_resync(&ac->dec);
				continue;
			}
			if (r < 0) {
				ac_die(ac, -r, "agent stream: %s", err_str(&de));
				return copy_dead(ac, e);
			}
			dispatch(ac, &f);
			if (ac->dead)
				return copy_dead(ac, e);
		}
		if ((size_t)n < sizeof(chunk))
			break;
	}
	return ac_flush(ac, e);
}

int ac_poll(struct ac *ac, int timeout_ms, struct err *e)
{
	if (ac->dead)
		return copy_dead(ac, e);
	if (ac->out.len) {
		int r = ac_flush(ac, e);
		if (r < 0)
			return r;
	}
	struct pollfd p = { .fd = ac->fd, .events = POLLIN | (ac->out.len ? POLLOUT : 0) };
	int r = poll(&p, 1, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : err_set(e, errno, "poll: %s", strerror(errno));
	if (r == 0)
		return 0;
	if (p.revents & POLLOUT) {
		r = ac_flush(ac, e);
		if (r < 0)
			return r;
	}
	if (p.revents & (POLLIN | POLLHUP | POLLERR))
		return ac_on_readable(ac, e);
	return 0;
}

int ac_connect_unix(const char *path, const char *token, const char *client_name,
		    int timeout_ms, struct ac **ret, struct err *e)
{
	int fd, r = unix_connect(path, &fd);
	if (r < 0)
		return err_set(e, -r, "cannot connect to the agent at '%s': %s", path, strerror(-r));
	struct ac *ac = ac_new(fd, token, client_name);
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000);
	while (!ac->ready) {
		int left = (int)(deadline - now_ms());
		if ((int64_t)(deadline - now_ms()) <= 0) {
			ac_free(ac);
			return err_set(e, ETIMEDOUT, "the agent at '%s' did not answer HELLO", path);
		}
		if (ac_poll(ac, left, e) < 0) {
			ac_free(ac);
			return -e->code;
		}
	}
	*ret = ac;
	return 0;
}

/* ---- streams ----------------------------------------------------------------------- */

struct ac_stream *ac_open(struct ac *ac, uint8_t type, const void *msg,
			  const struct ac_stream_cb *cb, void *arg, struct err *e)
{
	if (ac->dead) {
		copy_dead(ac, e);
		return NULL;
	}
	uint32_t id = ac->next_id++;
	if (ac->next_id == 0)
		ac->next_id = 1;
	size_t before = ac->out.len;
	int r = proto_put_msg(&ac->out, id, type, 0, msg);
	if (r < 0) {
		buf_setlen(&ac->out, before);
		err_set(e, EMSGSIZE, "%s request is larger than a frame (%u bytes)",
			proto_type_name(type), PROTO_MAX_PAYLOAD);
		return NULL;
	}
	struct ac_stream *s = xcalloc(1, sizeof(*s));
	s->ac = ac;
	s->id = id;
	s->rule = rule_for(type);
	s->cb = cb;
	s->arg = arg;
	s->send_window = PROTO_WINDOW;
	s->recv_window = PROTO_WINDOW;
	buf_init(&s->wbuf);
	s->next = ac->streams;
	ac->streams = s;
	kick(ac);
	return s;
}

uint32_t ac_stream_id(const struct ac_stream *s)
{
	return s->id;
}

void ac_stream_orphan(struct ac_stream *s)
{
	if (!s)
		return;
	s->cb = NULL;
	s->arg = NULL;
	buf_release(&s->wbuf);
	s->woff = 0;
	s->want_eof = false;
	ac_send_close(s);
	if (s->held) {
		s->held = false;
		grant(s, true);
	}
}

static size_t credit(const struct ac_stream *s)
{
	if (s->ac->dead || s->ac->out.len >= AC_OUT_SOFT)
		return 0;
	return MIN(s->send_window, PROTO_DATA_CHUNK);
}

size_t ac_send_room(const struct ac_stream *s)
{
	return ac_write_queued(s) ? 0 : credit(s);
}

void ac_send_data(struct ac_stream *s, uint8_t channel, const void *p, size_t n)
{
	if (s->ac->dead || !n)
		return;
	if (n > s->send_window)
		abort(); /* programming error: check ac_send_room */
	s->send_window -= (uint32_t)n;
	proto_put_data(&s->ac->out, s->id, channel, p, n);
	kick(s->ac);
}

/* Send what credit allows of the buffered writes, then their EOF. */
static void pump(struct ac_stream *s)
{
	size_t room;
	bool sent = false;
	while (s->woff < s->wbuf.len && (room = credit(s)) > 0) {
		size_t n = MIN(room, s->wbuf.len - s->woff);
		ac_send_data(s, PROTO_CH_IN, s->wbuf.data + s->woff, n);
		s->woff += n;
		sent = true;
	}
	/* sent bytes are dropped from the front now and then, not per chunk
	 * (a 100 MB upload would be moved 1600 times) */
	if (s->woff == s->wbuf.len) {
		buf_reset(&s->wbuf);
		s->woff = 0;
	} else if (s->woff >= (1u << 20) && s->woff > s->wbuf.len / 2) {
		buf_consume(&s->wbuf, s->woff);
		s->woff = 0;
	}
	if (s->woff == s->wbuf.len && s->want_eof && !s->eof_sent && !s->ac->dead) {
		s->eof_sent = true;
		ac_send_eof(s, PROTO_CH_IN);
	}
	if (sent && !s->ac->dead && s->cb && s->cb->window && s->ac->pumping)
		s->cb->window(s, s->arg);
}

void ac_write(struct ac_stream *s, const void *p, size_t n)
{
	if (!n || s->ac->dead || s->want_eof || !s->cb)
		return;
	buf_add(&s->wbuf, p, n);
	pump(s);
}

void ac_write_eof(struct ac_stream *s)
{
	if (s->want_eof || s->ac->dead)
		return;
	s->want_eof = true;
	pump(s);
}

size_t ac_write_queued(const struct ac_stream *s)
{
	return s->wbuf.len - s->woff;
}

void ac_send_eof(struct ac_stream *s, uint8_t channel)
{
	struct proto_eof eof = { .channel = channel };
	ac_send_msg(s, PROTO_EOF, &eof);
}

void ac_send_msg(struct ac_stream *s, uint8_t type, const void *msg)
{
	queue_msg(s->ac, s->id, type, msg);
}

void ac_send_close(struct ac_stream *s)
{
	if (s->close_sent)
		return;
	s->close_sent = true;
	ac_send_msg(s, PROTO_CLOSE, NULL);
}

void ac_hold(struct ac_stream *s, bool hold)
{
	s->held = hold;
	if (!hold)
		grant(s, true);
}

/* ---- blocking helpers ------------------------------------------------------------------ */

/* The helpers' input: bytes in the caller's memory (it outlives the call,
 * so they are sent from there without a copy), then EOF. */
struct push {
	const uint8_t *p;
	size_t len, off;
	bool eof_sent;
};

static void push(struct ac_stream *s, struct push *in)
{
	size_t room;
	while (in->off < in->len && (room = ac_send_room(s)) > 0) {
		size_t n = MIN(room, in->len - in->off);
		ac_send_data(s, PROTO_CH_IN, in->p + in->off, n);
		in->off += n;
	}
	if (in->off == in->len && !in->eof_sent) {
		ac_send_eof(s, PROTO_CH_IN);
		in->eof_sent = true;
	}
}

/* Shared by the helpers: run the private loop until *done or timeout. On
 * timeout the stream is orphaned (its callbacks point into the caller's
 * stack frame, which is about to go away). */
static int wait_done(struct ac *ac, struct ac_stream *s, const bool *done,
		     int timeout_ms, struct err *e)
{
	uint64_t deadline = timeout_ms > 0 ? now_ms() + (uint64_t)timeout_ms : 0;
	while (!*done) {
		int wait = -1;
		if (deadline) {
			int64_t left = (int64_t)(deadline - now_ms());
			if (left <= 0) {
				ac_stream_orphan(s);
				ac_flush(ac, NULL);
				return err_set(e, ETIMEDOUT, "no answer from the agent within %d ms",
					       timeout_ms);
			}
			wait = (int)left;
		}
		int r = ac_poll(ac, wait, e);
		if (r < 0 && !*done)
			return r;
	}
	return 0;
}

struct call_ctx {
	uint8_t want;
	void *ret_msg;
	bool done;
	int rc;
	struct err err;
};

/* Decode an END frame that is an ERROR into ctx->err. */
static void take_error(const struct proto_frame *f, int *rc, struct err *out)
{
	struct proto_error pe;
	if (proto_decode(f, &pe, NULL) == 0) {
		*rc = err_set(out, pe.code ? pe.code : EIO, "%s", pe.message);
		proto_msg_release(PROTO_ERROR, &pe);
	} else {
		*rc = err_set(out, EPROTO, "malformed ERROR from the agent");
	}
}

static void call_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct call_ctx *c = arg;
	if (!(f->flags & PROTO_F_END))
		return;
	if (f->type == PROTO_ERROR)
		take_error(f, &c->rc, &c->err);
	else if (f->type != c->want)
		c->rc = err_set(&c->err, EPROTO, "expected %s from the agent, got %s",
				proto_type_name(c->want), proto_type_name(f->type) ?
				proto_type_name(f->type) : "an unknown message");
	else if (c->ret_msg && proto_decode(f, c->ret_msg, &c->err) < 0)
		c->rc = -c->err.code;
	else
		c->rc = 0;
}

static void call_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct call_ctx *c = arg;
	if (e) {
		c->rc = -e->code;
		c->err = *e;
	}
	c->done = true;
}

static const struct ac_stream_cb call_cb = { .frame = call_frame, .closed = call_closed };

int ac_call(struct ac *ac, uint8_t type, const void *req, uint8_t want,
	    void *ret_msg, int timeout_ms, struct err *e)
{
	struct call_ctx c = { .want = want, .ret_msg = ret_msg, .rc = -EIO };
	struct ac_stream *s = ac_open(ac, type, req, &call_cb, &c, e);
	if (!s)
		return -EIO;
	int r = wait_done(ac, s, &c.done, timeout_ms, e);
	if (r < 0)
		return r;
	if (c.rc < 0 && e)
		*e = c.err;
	return c.rc;
}

/* exec */

struct exec_ctx {
	struct ac_exec_result *res;
	struct push in;          /* stdin (with PROTO_EXEC_STDIN) */
	bool done;
	int rc;
	struct err err;
};

static void exec_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct exec_ctx *x = arg;
	if (f->type == PROTO_EXEC_STARTED) {
		struct proto_exec_started st;
		if (proto_decode(f, &st, NULL) == 0) {
			x->res->pid = st.pid;
			proto_msg_release(PROTO_EXEC_STARTED, &st);
		}
		if (f->flags & PROTO_F_END) /* detached */
			x->rc = 0;
	} else if (f->type == PROTO_EXIT) {
		struct proto_exit ex;
		if (proto_decode(f, &ex, &x->err) == 0) {
			x->res->exit_code = ex.exit_code;
			x->res->signal = ex.signal;
			x->res->flags = ex.flags;
			x->rc = 0;
		} else {
			x->rc = -x->err.code;
		}
	} else if (f->type == PROTO_ERROR) {
		take_error(f, &x->rc, &x->err);
	}
}

static void exec_data(struct ac_stream *s UNUSED, uint8_t ch, const uint8_t *p, size_t n, void *arg)
{
	struct exec_ctx *x = arg;
	buf_add(ch == PROTO_CH_ERR ? &x->res->err : &x->res->out, p, n);
}

static void exec_window(struct ac_stream *s, void *arg)
{
	struct exec_ctx *x = arg;
	if (x->in.p)
		push(s, &x->in);
}

static void exec_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct exec_ctx *x = arg;
	if (e) {
		x->rc = -e->code;
		x->err = *e;
	}
	x->done = true;
}

static const struct ac_stream_cb exec_cb = {
	.frame = exec_frame, .data = exec_data, .window = exec_window, .closed = exec_closed,
};

void ac_exec_result_release(struct ac_exec_result *r)
{
	buf_release(&r->out);
	buf_release(&r->err);
}

int ac_exec(struct ac *ac, const struct proto_exec *req, const void *stdin_data,
	    size_t stdin_len, struct ac_exec_result *ret, int timeout_ms, struct err *e)
{
	struct exec_ctx x = { .res = ret, .rc = -EIO };
	if (req->flags & PROTO_EXEC_STDIN)
		x.in = (struct push){ .p = stdin_data ? stdin_data : (const uint8_t *)"", .len = stdin_len };
	memset(ret, 0, sizeof(*ret));
	buf_init(&ret->out);
	buf_init(&ret->err);
	struct ac_stream *s = ac_open(ac, PROTO_EXEC, req, &exec_cb, &x, e);
	if (!s)
		return -EIO;
	if (x.in.p)
		push(s, &x.in);
	int r = wait_done(ac, s, &x.done, timeout_ms, e);
	if (r < 0)
		return r;
	if (x.rc < 0 && e)
		*e = x.err;
	return x.rc;
}

/* file read */

struct read_ctx {
	struct buf *out;
	struct proto_file_meta *meta;
	struct proto_ok *ok;
	bool done;
	int rc;
	struct err err;
};

static void read_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct read_ctx *x = arg;
	if (f->type == PROTO_FILE_META && x->meta) {
		if (proto_decode(f, x->meta, NULL) < 0)
			memset(x->meta, 0, sizeof(*x->meta));
	} else if (f->type == PROTO_OK && (f->flags & PROTO_F_END)) {
		struct proto_ok ok;
		if (proto_decode(f, &ok, &x->err) == 0) {
			if (x->ok)
				*x->ok = ok;
			x->rc = 0;
		} else {
			x->rc = -x->err.code;
		}
	} else if (f->type == PROTO_ERROR) {
		take_error(f, &x->rc, &x->err);
	}
}

static void read_data(struct ac_stream *s UNUSED, uint8_t ch UNUSED, const uint8_t *p, size_t n,
		      void *arg)
{
	struct read_ctx *x = arg;
	buf_add(x->out, p, n);
}

static void read_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct read_ctx *x = arg;
	if (e) {
		x->rc = -e->code;
		x->err = *e;
	}
	x->done = true;
}

static const struct ac_stream_cb read_cb = {
	.frame = read_frame, .data = read_data, .closed = read_closed,
};

int ac_read_file(struct ac *ac, const struct proto_file_read *req, struct buf *out,
		 struct proto_file_meta *ret_meta, struct proto_ok *ret_ok,
		 int timeout_ms, struct err *e)
{
	struct read_ctx x = { .out = out, .meta = ret_meta, .ok = ret_ok, .rc = -EIO };
	if (ret_meta)
		memset(ret_meta, 0, sizeof(*ret_meta));
	struct ac_stream *s = ac_open(ac, PROTO_FILE_READ, req, &read_cb, &x, e);
	if (!s)
		return -EIO;
	int r = wait_done(ac, s, &x.done, timeout_ms, e);
	if (r < 0)
		return r;
	if (x.rc < 0 && e)
		*e = x.err;
	return x.rc;
}

/* file write: stream the bytes within the window, then EOF, then OK */

struct write_ctx {
	struct push in;
	bool done;
	int rc;
	struct err err;
};

static void write_frame(struct ac_stream *s UNUSED, const struct proto_frame *f, void *arg)
{
	struct write_ctx *x = arg;
	if (f->type == PROTO_OK)
		x->rc = 0;
	else if (f->type == PROTO_ERROR)
		take_error(f, &x->rc, &x->err);
}

static void write_window(struct ac_stream *s, void *arg)
{
	push(s, &((struct write_ctx *)arg)->in);
}

static void write_closed(struct ac_stream *s UNUSED, const struct err *e, void *arg)
{
	struct write_ctx *x = arg;
	if (e) {
		x->rc = -e->code;
		x->err = *e;
	}
	x->done = true;
}

static const struct ac_stream_cb write_cb = {
	.frame = write_frame, .window = write_window, .closed = write_closed,
};

int ac_write_file(struct ac *ac, const struct proto_file_write *req, const void *data,
		  size_t len, int timeout_ms, struct err *e)
{
	struct write_ctx x = { .in = { .p = data, .len = len }, .rc = -EIO };
	struct ac_stream *s = ac_open(ac, PROTO_FILE_WRITE, req, &write_cb, &x, e);
	if (!s)
		return -EIO;
	push(s, &x.in);
	int r = wait_done(ac, s, &x.done, timeout_ms, e);
	if (r < 0)
		return r;
	if (x.rc < 0 && e)
		*e = x.err;
	return x.rc;
}
