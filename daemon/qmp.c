/* qmp.c — asynchronous QMP client (see qmp.h). Sits between the engine
 * and one QEMU's QMP socket; touches only that socket.
 *
 *   CONNECTED ──greeting──► NEGOTIATING ──qmp_capabilities ok──► READY
 *        └────────────── any read/write error or EOF ──────────► CLOSED
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "loop.h"
#include "qmp.h"

#define QMP_MAX_LINE (4u << 20) /* a reply longer than this is corrupt */

enum qmp_state { QMP_CONNECTED, QMP_NEGOTIATING, QMP_READY, QMP_CLOSED };

struct qmp_pending {
	unsigned long id;
	qmp_reply_fn cb;
	void *arg;
	struct qmp_pending *next;
};

struct qmp_out {
	struct buf line;
	int fd;                     /* to pass with the first byte, or -1 */
	struct qmp_out *next;
};

struct qmp {
	struct watch w;
	enum qmp_state state;
	struct buf in;
	struct qmp_out *out, **out_tail;   /* lines to write */
	struct qmp_out *held, **held_tail; /* commands waiting for READY */
	struct qmp_pending *pending, **pending_tail;
	unsigned long next_id;
	qmp_event_fn on_event;
	qmp_closed_fn on_closed;
	void *arg;
};

static void qmp_on_io(struct watch *w, uint32_t events);

static void out_free(struct qmp_out *o)
{
	buf_release(&o->line);
	if (o->fd >= 0)
		close(o->fd);
	free(o);
}

static void update_interest(struct qmp *q)
{
	if (q->state != QMP_CLOSED)
		watch_set(&q->w, EPOLLIN | (q->out ? EPOLLOUT : 0));
}

static void fail_pending(struct qmp *q, const struct err *e)
{
	while (q->pending) {
		struct qmp_pending *p = q->pending;
		q->pending = p->next;
		if (p->cb)
			p->cb(q, -e->code, NULL, e, p->arg);
		free(p);
	}
	q->pending_tail = &q->pending;
}

static void qmp_close(struct qmp *q, int code, const char *why)
{
	struct err e = ERR_INIT;
	if (q->state == QMP_CLOSED)
		return;
	q->state = QMP_CLOSED;
	err_set(&e, code, "qmp: %s", why);
	watch_close(&q->w);
	fail_pending(q, &e);
	if (q->on_closed)
		q->on_closed(q, &e, q->arg);
}

/* Queue one JSON line (takes obj). */
static void queue_line(struct qmp *q, cJSON *obj, int fd, bool hold)
{
	struct qmp_out *o = xcalloc(1, sizeof(*o));
	char *text = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	buf_init(&o->line);
	buf_adds(&o->line, text ? text : "{}");
	buf_addch(&o->line, '\n');
	free(text);
	o->fd = fd;
	if (hold) {
		*q->held_tail = o;
		q->held_tail = &o->next;
	} else {
		*q->out_tail = o;
		q->out_tail = &o->next;
	}
}

static void flush_out(struct qmp *q)
{
	while (q->out && q->state != QMP_CLOSED) {
		struct qmp_out *o = q->out;
		ssize_t n;
		if (o->fd >= 0) {
			char cbuf[CMSG_SPACE(sizeof(int))];
			struct iovec iov = { o->line.data, o->line.len };
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
					     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
			memset(cbuf, 0, sizeof(cbuf));
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &o->fd, sizeof(int));
			n = sendmsg(q->w.fd, &mh, MSG_NOSIGNAL);
			if (n > 0) {
				close(o->fd);
				o->fd = -1;
			}
		} else {
			n = send(q->w.fd, o->line.data, o->line.len, MSG_NOSIGNAL);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			qmp_close(q, errno, strerror(errno));
			return;
		}
		buf_consume(&o->line, (size_t)n);
		if (o->line.len)
			break;
		q->out = o->next;
		if (!q->out)
			q->out_tail = &q->out;
		out_free(o);
	}
	update_interest(q);
}

static void release_held(struct qmp *q)
{
	if (!q->held)
		return;
	*q->out_tail = q->held;
	q->out_tail = q->held_tail;
	q->held = NULL;
	q->held_tail = &q->held;
	flush_out(q);
}

static void on_capabilities(struct qmp *q, int rc, const cJSON *ret UNUSED,
			    const struct err *e, void *arg UNUSED)
{
	if (rc < 0) {
		qmp_close(q, EPROTO, err_str(e));
		return;
	}
	q->state = QMP_READY;
	release_held(q);
}

static int send_cmd(struct qmp *q, const char *cmd, cJSON *args, int fd,
		    qmp_reply_fn cb, void *arg, bool hold)
{
	cJSON *obj = cJSON_CreateObject();
	struct qmp_pending *p = xcalloc(1, sizeof(*p));
	p->id = ++q->next_id;
	p->cb = cb;
	p->arg = arg;
	cJSON_AddStringToObject(obj, "execute", cmd);
	if (args)
		cJSON_AddItemToObject(obj, "arguments", args);
	cJSON_AddNumberToObject(obj, "id", (double)p->id);
	*q->pending_tail = p;
	q->pending_tail = &p->next;
	queue_line(q, obj, fd, hold);
	if (!hold)
		flush_out(q);
	return 0;
}

static void handle_line(struct qmp *q, const char *line)
{
	cJSON *msg = cJSON_Parse(line);
	if (!msg || !cJSON_IsObject(msg)) {
		cJSON_Delete(msg);
		qmp_close(q, EPROTO, "unparsable message from QEMU");
		return;
	}
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(msg, "event");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	if (cJSON_GetObjectItemCaseSensitive(msg, "QMP")) {
		if (q->state == QMP_CONNECTED) {
			q->state = QMP_NEGOTIATING;
			send_cmd(q, "qmp_capabilities", NULL, -1, on_capabilities, NULL, false);
		}
	} else if (cJSON_IsString(ev)) {
		if (q->on_event)
			q->on_event(q, ev->valuestring,
				    cJSON_GetObjectItemCaseSensitive(msg, "data"), q->arg);
	} else if (cJSON_IsNumber(id)) {
		/* replies come in order, but match the id to be sure */
		struct qmp_pending **pp = &q->pending, *p;
		while (*pp && (*pp)->id != (unsigned long)id->valuedouble)
			pp = &(*pp)->next;
		p = *pp;
		if (p) {
			*pp = p->next;
			if (!*pp)
				q->pending_tail = pp;
			const cJSON *err = cJSON_GetObjectItemCaseSensitive(msg, "error");
			if (err) {
				struct err e = ERR_INIT;
				const cJSON *desc = cJSON_GetObjectItemCaseSensitive(err, "desc");
				err_set(&e, EIO, "%s", cJSON_IsString(desc) ? desc->valuestring : "qemu error");
				if (p->cb)
					p->cb(q, -EIO, NULL, &e, p->arg);
			} else if (p->cb) {
				p->cb(q, 0, cJSON_GetObjectItemCaseSensitive(msg, "return"), NULL, p->arg);
			}
			free(p);
		}
	}
	cJSON_Delete(msg);
}

static void read_in(struct qmp *q)
{
	char chunk[16384];
	ssize_t n = read(q->w.fd, chunk, sizeof(chunk));
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			qmp_close(q, errno, strerror(errno));
		return;
	}
	if (n == 0) {
		qmp_close(q, ECONNRESET, "QEMU closed the connection");
		return;
	}
	buf_add(&q->in, chunk, (size_t)n);
	size_t start = 0;
	for (;;) {
		char *nl = memchr(q->in.data + start, '\n', q->in.len - start);
		if (!nl)
			break;
		*nl = '\0';
		handle_line(q, q->in.data + start);
		if (q->state == QMP_CLOSED)
			return;
		start = (size_t)(nl - q->in.data) + 1;
	}
	buf_consume(&q->in, start);
	if (q->in.len > QMP_MAX_LINE)
		qmp_close(q, EMSGSIZE, "message from QEMU too long");
}

static void qmp_on_io(struct watch *w, uint32_t events)
{
	struct qmp *q = w->data;
	if (events & EPOLLOUT)
		flush_out(q);
	if (q->state != QMP_CLOSED && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		read_in(q);
}

struct qmp *qmp_new(int fd, qmp_event_fn on_event, qmp_closed_fn on_closed, void *arg)
{
	struct qmp *q = xcalloc(1, sizeof(*q));
	q->state = QMP_CONNECTED;
	buf_init(&q->in);
	q->out_tail = &q->out;
	q->held_tail = &q->held;
	q->pending_tail = &q->pending;
	q->on_event = on_event;
	q->on_closed = on_closed;
	q->arg = arg;
	fd_set_nonblock(fd, true);
	fd_set_cloexec(fd);
	watch_init(&q->w, qmp_on_io, q);
	if (watch_add(&q->w, fd, EPOLLIN) < 0) {
		close(fd);
		q->state = QMP_CLOSED;
	}
	return q;
}

bool qmp_ready(const struct qmp *q)
{
	return q->state == QMP_READY;
}

int qmp_cmd(struct qmp *q, const char *cmd, cJSON *args, int send_fd,
	    qmp_reply_fn cb, void *arg)
{
	if (q->state == QMP_CLOSED) {
		cJSON_Delete(args);
		return -ECONNRESET;
	}
	int fd = -1;
	if (send_fd >= 0 && (fd = fcntl(send_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		cJSON_Delete(args);
		return -errno;
	}
	return send_cmd(q, cmd, args, fd, cb, arg, q->state != QMP_READY);
}

void qmp_free(struct qmp *q)
{
	if (!q)
		return;
	q->on_closed = NULL;
	qmp_close(q, ECONNABORTED, "closed");
	while (q->out) {
		struct qmp_out *o = q->out;
		q->out = o->next;
		out_free(o);
	}
	while (q->held) {
		struct qmp_out *o = q->held;
		q->held = o->next;
		out_free(o);
	}
	buf_release(&q->in);
	free(q);
}

