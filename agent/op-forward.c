/* op-forward.c — FORWARD: a raw byte relay between a stream and a TCP
 * connection to 127.0.0.1:PORT inside the guest (the published-port proxy
 * and `bhatti publish` sit on the host end). Sits between streams
 * (conn.c) and guest sockets.
 *
 *   FORWARD{port} ──► OK (connected) ──► DATA/EOF both ways ──► OK (END)
 *
 * Each direction closes on its own (half-close): EOF from the host becomes
 * shutdown(SHUT_WR) once buffered bytes are written; EOF from the guest
 * program becomes EOF to the host. The stream ends when both directions
 * are closed, on a socket error (ERROR), or on CLOSE from the host.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

struct forward {
	struct stream *s;
	struct watch sock;
	uint16_t port;
	bool connected;
	bool host_eof;        /* host finished sending */
	bool guest_eof;       /* guest program finished sending */
	bool shut_wr;
	struct buf tosock;    /* host bytes not yet written (bounded by our window) */
};

static void forward_free(void *p)
{
	struct forward *fw = p;
	buf_release(&fw->tosock);
	free(fw);
}

static void forward_destroy(struct forward *fw)
{
	watch_close(&fw->sock);
	if (fw->s)
		stream_detach_op(fw->s);
	fw->s = NULL;
	agent.forwards_open--;
	loop_defer_free(forward_free, fw);
}

static void forward_end(struct forward *fw, int code)
{
	struct stream *s = fw->s;
	uint16_t port = fw->port;
	forward_destroy(fw);
	if (!s)
		return;
	if (code) {
		stream_end_error(s, code, "connection to port %u: %s", port, strerror(code));
	} else {
		struct proto_ok ok = { 0 };
		stream_end(s, PROTO_OK, &ok);
	}
}

static void forward_update(struct forward *fw)
{
	uint32_t ev = 0;
	if (!fw->connected) {
		ev = EPOLLOUT;
	} else {
		if (!fw->guest_eof && fw->s && stream_room(fw->s))
			ev |= EPOLLIN;
		if (fw->tosock.len)
			ev |= EPOLLOUT;
	}
	watch_set(&fw->sock, ev);
}

static void forward_check_done(struct forward *fw)
{
	if (fw->host_eof && !fw->tosock.len && !fw->shut_wr) {
		shutdown(fw->sock.fd, SHUT_WR);
		fw->shut_wr = true;
	}
	if (fw->shut_wr && fw->guest_eof)
		forward_end(fw, 0);
	else
		forward_update(fw);
}

static void forward_write(struct forward *fw)
{
	size_t done = 0;
	while (done < fw->tosock.len) {
		ssize_t n = send(fw->sock.fd, fw->tosock.data + done, fw->tosock.len - done,
				 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			forward_end(fw, errno);
			return;
		}
		done += (size_t)n;
	}
	buf_consume(&fw->tosock, done);
	if (fw->s && done)
		stream_consumed(fw->s, done);
	forward_check_done(fw);
}

static void on_sock(struct watch *w, uint32_t events)
{
	struct forward *fw = w->data;

	if (!fw->connected) {
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		if (soerr) {
			struct stream *s = fw->s;
			uint16_t port = fw->port;
			forward_destroy(fw);
			if (s) {
				if (soerr == ECONNREFUSED)
					stream_end_error(s, soerr, "nothing is listening on port %u in the sandbox", port);
				else
					stream_end_error(s, soerr, "cannot connect to port %u: %s", port,
							 strerror(soerr));
			}
			return;
		}
		struct proto_ok ok = { 0 };
		fw->connected = true;
		stream_msg(fw->s, PROTO_OK, &ok);
		if (fw->tosock.len)
			forward_write(fw);
		else
			forward_check_done(fw);
		return;
	}
	if (events & EPOLLOUT) {
		forward_write(fw);
		if (w->fd < 0)
			return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !fw->guest_eof && fw->s) {
		ssize_t n = stream_read_fd(fw->s, PROTO_CH_OUT, w->fd);
		if (n == 0) {
			struct proto_eof eof = { .channel = PROTO_CH_OUT };
			fw->guest_eof = true;
			stream_msg(fw->s, PROTO_EOF, &eof);
		} else if (n < 0 && n != -EAGAIN) {
			forward_end(fw, (int)-n);
			return;
		}
		forward_check_done(fw);
	}
}

static void fwd_data(struct stream *s, uint8_t channel, const uint8_t *p, size_t n)
{
	struct forward *fw = s->op;
	if (channel != PROTO_CH_IN || fw->host_eof) {
		stream_consumed(s, n);
		return;
	}
	buf_add(&fw->tosock, p, n);
	if (fw->connected)
		forward_write(fw);
}

static void fwd_eof(struct stream *s, uint8_t channel)
{
	struct forward *fw = s->op;
	if (channel != PROTO_CH_IN)
		return;
	fw->host_eof = true;
	if (fw->connected)
		forward_check_done(fw);
}

static void fwd_window(struct stream *s)
{
	struct forward *fw = s->op;
	if (fw->connected)
		forward_update(fw);
}

static void fwd_close(struct stream *s)
{
	struct forward *fw = s->op;
	/* abortive close: the guest program sees a reset, like a dropped client */
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fw->sock.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	forward_end(fw, 0);
}

static void fwd_lost(struct stream *s)
{
	struct forward *fw = s->op;
	fw->s = NULL;
	forward_destroy(fw);
}

static const struct stream_ops forward_ops = {
	.data = fwd_data,
	.eof = fwd_eof,
	.window = fwd_window,
	.close = fwd_close,
	.lost = fwd_lost,
};

void op_forward(struct stream *s, const struct proto_frame *f)
{
	struct proto_forward req;
	if (op_decode(s, f, &req) < 0)
		return;
	if (req.port == 0) {
		stream_end_error(s, EINVAL, "invalid port 0");
		return;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		stream_end_error(s, errno, "socket: %s", strerror(errno));
		return;
	}
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(req.port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		int code = errno;
		close(fd);
		if (code == ECONNREFUSED)
			stream_end_error(s, code, "nothing is listening on port %u in the sandbox", req.port);
		else
			stream_end_error(s, code, "cannot connect to port %u: %s", req.port, strerror(code));
		return;
	}
	struct forward *fw = xcalloc(1, sizeof(*fw));
	fw->s = s;
	fw->port = req.port;
	buf_init(&fw->tosock);
	watch_init(&fw->sock, on_sock, fw);
	watch_add(&fw->sock, fd, EPOLLOUT);
	agent.forwards_open++;
	s->ops = &forward_ops;
	s->op = fw;
	agent_touch();
}
