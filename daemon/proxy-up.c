/* proxy-up.c — the proxy's connection to a guest's port (see proxy-up.h):
 * the agent's forward stream, or a TCP connection to the guest's IP.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "loop.h"
#include "proxy-up.h"
#include "sandbox.h"
#include "server.h"
#include "util.h"
#include "valid.h"

#define UP_CHUNK (64u << 10)

struct pup {
	struct guest_op *op;          /* agent: the forward; NULL for ip */

	/* ip */
	const struct guest_cb *cb;    /* NULL once the owner let go */
	void *arg;
	struct server *srv;
	struct sbx *sb;               /* while waking only (a waiter of its) */
	char id[VALID_SANDBOX_ID_LEN + 1];   /* the sandbox, looked up on use */
	struct sockaddr_in addr;
	struct watch w;
	struct buf out;               /* bytes for the guest not sent yet */
	bool waking, in_ctor, connected, counted, held;
	bool want_eof, eof_sent, guest_eof, over;
	struct guest_end end;
	struct err err;
	struct task later;            /* `done` out of pup_open */
};

int pup_transport_parse(const char *s, enum pup_transport *ret)
{
	if (!s || strcmp(s, "auto") == 0)
		*ret = PUP_AUTO;
	else if (strcmp(s, "agent") == 0)
		*ret = PUP_AGENT;
	else if (strcmp(s, "ip") == 0)
		*ret = PUP_IP;
	else
		return -EINVAL;
	return 0;
}

static struct sbx *sandbox_of(struct pup *u)
{
	for (struct sbx *sb = u->srv->sandboxes; sb; sb = sb->next)
		if (strcmp(sb->row.id, u->id) == 0)
			return sb;
	return NULL;
}

/* The connection no longer keeps the sandbox hot. */
static void uncount(struct pup *u)
{
	if (!u->counted)
		return;
	u->counted = false;
	struct sbx *sb = sandbox_of(u);
	if (sb && sb->guest_ops) {
		sb->guest_ops--;
		sbx_touch(sb);
	}
}

static void touch(struct pup *u)
{
	struct sbx *sb = sandbox_of(u);
	if (sb)
		sbx_touch(sb);
}

static void deliver(struct pup *u)
{
	uncount(u);
	watch_close(&u->w);
	const struct guest_cb *cb = u->cb;
	if (cb)
		cb->done(NULL, &u->end, u->arg);
}

static void deliver_later(struct task *t)
{
	deliver(t->data);
}

/* The end, once: now, or on the next loop turn inside pup_open. */
static void finish(struct pup *u, int rc, const char *fmt, ...) PRINTF(3, 4);
static void finish(struct pup *u, int rc, const char *fmt, ...)
{
	if (u->over)
		return;
	u->over = true;
	u->end.rc = rc;
	u->end.started = u->connected;
	if (rc < 0 && fmt) {
		char msg[256];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		err_set(&u->err, -rc, "%s", msg);
	}
	u->end.err = &u->err;
	watch_set(&u->w, 0);
	if (u->in_ctor)
		task_post(&u->later);
	else
		deliver(u);
}

static void update(struct pup *u)
{
	if (u->over || u->w.fd < 0)
		return;
	uint32_t ev = 0;
	if (!u->connected)
		ev = EPOLLOUT;
	else {
		if (!u->held && !u->guest_eof)
			ev |= EPOLLIN | EPOLLRDHUP;
		if (u->out.len)
			ev |= EPOLLOUT;
	}
	watch_set(&u->w, ev);
}

/* Send what waits; false when the connection failed (and ended). */
static bool flush(struct pup *u)
{
	size_t done = 0;
	while (done < u->out.len) {
		ssize_t n = send(u->w.fd, u->out.data + done, u->out.len - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			int rc = -errno;
			buf_consume(&u->out, done);
			finish(u, rc, "the connection to port %u of the sandbox failed: %s",
			       ntohs(u->addr.sin_port), strerror(-rc));
			return false;
		}
		done += (size_t)n;
	}
	buf_consume(&u->out, done);
	if (done)
		touch(u);
	if (!u->out.len && u->want_eof && !u->eof_sent) {
		u->eof_sent = true;
		shutdown(u->w.fd, SHUT_WR);
	}
	return true;
}

/* Both directions closed: the end. */
static void maybe_done(struct pup *u)
{
	if (u->guest_eof && u->eof_sent && !u->over)
		finish(u, 0, NULL);
}

static void on_sock(struct watch *w, uint32_t events)
{
	struct pup *u = w->data;
	if (!u->connected) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr == ECONNREFUSED) {
			finish(u, -ECONNREFUSED, "nothing is listening on port %u in the sandbox",
			       ntohs(u->addr.sin_port));
			return;
		}
		if (soerr) {
			finish(u, -soerr, "cannot connect to port %u of the sandbox: %s",
			       ntohs(u->addr.sin_port), strerror(soerr));
			return;
		}
		u->connected = true;
		struct sbx *sb = sandbox_of(u);
		if (sb) {
			sb->guest_ops++;
			sbx_touch(sb);
			u->counted = true;
		}
		struct guest_start st = { 0 };
		if (u->cb)
			u->cb->started(NULL, &st, u->arg);
		if (!u->cb)
			return;
		if (!flush(u))
			return;
		update(u);
		return;
	}
	if (events & EPOLLOUT) {
		size_t before = u->out.len;
		if (!flush(u))
			return;
		if (u->out.len < before && u->cb && u->cb->room)
			u->cb->room(NULL, u->arg);
		if (!u->cb || u->over)
			return;
		maybe_done(u);
		if (u->over)
			return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && !u->held && !u->guest_eof) {
		char tmp[UP_CHUNK];
		ssize_t n = recv(w->fd, tmp, sizeof(tmp), 0);
		if (n > 0) {
			touch(u);
			if (u->cb)
				u->cb->data(NULL, GUEST_OUT, (const uint8_t *)tmp, (size_t)n, u->arg);
		} else if (n == 0) {
			u->guest_eof = true;
			if (u->cb && u->cb->eof)
				u->cb->eof(NULL, u->arg);
		} else if (errno != EAGAIN && errno != EINTR) {
			int rc = -errno;
			finish(u, rc, "the connection to port %u of the sandbox failed: %s",
			       ntohs(u->addr.sin_port), strerror(-rc));
			return;
		}
		if (!u->cb || u->over)
			return;
		maybe_done(u);
	}
	update(u);
}

/* The sandbox is hot (or could not be woken): connect to its address. */
static void woke(struct sbx *sb, int rc, const struct err *e, void *arg)
{
	struct pup *u = arg;
	u->waking = false;
	u->sb = NULL;
	if (rc < 0) {
		finish(u, rc, "%s", err_str(e));
		return;
	}
	if (!sb->row.ip || inet_pton(AF_INET, sb->row.ip, &u->addr.sin_addr) != 1) {
		finish(u, -ENETUNREACH, "sandbox '%s' has no address", sb->row.name);
		return;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		finish(u, -errno, "cannot make a socket: %s", strerror(errno));
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&u->addr, sizeof(u->addr)) < 0 && errno != EINPROGRESS) {
		int err = errno;
		close(fd);
		finish(u, err == ECONNREFUSED ? -ECONNREFUSED : -err,
		       "cannot connect to port %u of the sandbox: %s", ntohs(u->addr.sin_port),
		       strerror(err));
		return;
	}
	if (watch_add(&u->w, fd, EPOLLOUT) < 0) {
		close(fd);
		finish(u, -EIO, "cannot watch a socket");
	}
}

static void up_free(void *p)
{
	struct pup *u = p;
	buf_release(&u->out);
	free(u);
}

struct pup *pup_open(struct sbx *sb, uint16_t port, enum pup_transport t,
		     const struct guest_cb *cb, void *arg)
{
	struct pup *u = xcalloc(1, sizeof(*u));
	watch_init(&u->w, on_sock, u);   /* (fd -1 whatever the transport) */
	if (t == PUP_AGENT || !sb->row.ip) {
		u->op = guest_forward(sb, port, cb, arg);
		return u;
	}
	u->cb = cb;
	u->arg = arg;
	u->srv = sb->srv;
	u->sb = sb;
	snprintf(u->id, sizeof(u->id), "%s", sb->row.id);
	u->addr.sin_family = AF_INET;
	u->addr.sin_port = htons(port);
	buf_init(&u->out);
	task_init(&u->later, deliver_later, u);
	u->in_ctor = true;
	u->waking = true;
	sbx_wake(sb, woke, u);
	u->in_ctor = false;
	return u;
}

const char *pup_kind(const struct pup *u)
{
	return u->op ? "agent" : "ip";
}

void pup_write(struct pup *u, const void *p, size_t n)
{
	if (u->op) {
		guest_write(u->op, p, n);
		return;
	}
	if (u->over || u->want_eof)
		return;
	buf_add(&u->out, p, n);
	if (u->connected && flush(u))
		update(u);
}

void pup_write_eof(struct pup *u)
{
	if (u->op) {
		guest_write_eof(u->op);
		return;
	}
	u->want_eof = true;
	if (u->connected && !u->over && flush(u)) {
		maybe_done(u);
		update(u);
	}
}

size_t pup_write_queued(const struct pup *u)
{
	return u->op ? guest_write_queued(u->op) : u->out.len;
}

void pup_hold(struct pup *u, bool hold)
{
	if (u->op) {
		guest_hold(u->op, hold);
		return;
	}
	u->held = hold;
	update(u);
}

void pup_free(struct pup *u)
{
	if (!u)
		return;
	if (u->op) {
		guest_op_free(u->op);
		free(u);
		return;
	}
	u->cb = NULL;
	u->arg = NULL;
	if (u->waking && u->sb)
		sbx_cancel_wait(u->sb, u);
	u->waking = false;
	uncount(u);
	if (u->w.fd >= 0 && u->connected && !u->over) {
		/* the guest's server sees a reset, as a freed forward gives it */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(u->w.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	watch_close(&u->w);
	task_cancel(&u->later);
	loop_defer_free(up_free, u);
}
