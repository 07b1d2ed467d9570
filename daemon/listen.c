/* listen.c — listening sockets bound exactly as configured, accepts with
 * a per-client-address cap (see listen.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "listen.h"
#include "log.h"
#include "loop.h"

#define MAX_SOCKETS 8
#define ACCEPTS_PER_TURN 64

struct listen_peer {
	struct listen_peer *next;
	struct listener *l;
	int family;               /* AF_INET or AF_INET6 (v4-mapped folded to v4) */
	uint8_t addr[16];
	unsigned conns;
	unsigned refused;         /* since the last log line about it */
	uint64_t logged_ms;
};

struct listener {
	struct watch socks[MAX_SOCKETS];
	int nsocks;
	unsigned max_per_peer;
	listen_accept_fn fn;
	void *arg;
	struct listen_peer *peers;
	struct buf desc;
	int port;                 /* the first socket's (chosen by the kernel for 0) */
};

/* ---- client addresses ------------------------------------------------------ */

static void peer_key(const struct sockaddr_storage *ss, int *family, uint8_t addr[16])
{
	memset(addr, 0, 16);
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			*family = AF_INET;
			memcpy(addr, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			*family = AF_INET6;
			memcpy(addr, s6->sin6_addr.s6_addr, 16);
		}
	} else {
		*family = AF_INET;
		memcpy(addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	}
}

static struct listen_peer *peer_get(struct listener *l, const struct sockaddr_storage *ss)
{
	int family;
	uint8_t addr[16];
	peer_key(ss, &family, addr);
	for (struct listen_peer *p = l->peers; p; p = p->next)
		if (p->family == family && memcmp(p->addr, addr, 16) == 0)
			return p;
	struct listen_peer *p = xcalloc(1, sizeof(*p));
	p->l = l;
	p->family = family;
	memcpy(p->addr, addr, 16);
	p->next = l->peers;
	l->peers = p;
	return p;
}

static void peer_drop_if_idle(struct listen_peer *peer)
{
	if (peer->conns)
		return;
	for (struct listen_peer **pp = &peer->l->peers; *pp; pp = &(*pp)->next)
		if (*pp == peer) {
			*pp = peer->next;
			free(peer);
			return;
		}
}

void listen_peer_done(struct listen_peer *peer)
{
	if (!peer)
		return;
	if (peer->conns)
		peer->conns--;
	peer_drop_if_idle(peer);
}

static void peer_name(const struct listen_peer *p, char *out, size_t n)
{
	if (!inet_ntop(p->family, p->addr, out, (socklen_t)n))
		snprintf(out, n, "?");
}

/* ---- accepting ------------------------------------------------------------------ */

static void refuse(int fd, struct listen_peer *p)
{
	static const char body[] = "{\"error\":\"too many connections from your address\"}\n";
	char head[256], who[64];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
			 sizeof(body) - 1, body);
	/* best effort, never blocking: the socket is non-blocking */
	if (send(fd, head, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client will see the close */
	}
	close(fd);
	/* one line per address per 10 s, not one per connection */
	p->refused++;
	if (p->logged_ms && now_ms() - p->logged_ms < 10000)
		return;
	peer_name(p, who, sizeof(who));
	log_warn("refused %u connection%s from %s: it has %u open (limits.max_conns_per_ip)",
		 p->refused, p->refused == 1 ? "" : "s", who, p->conns);
	p->refused = 0;
	p->logged_ms = now_ms();
}

static void on_accept(struct watch *w, uint32_t events UNUSED)
{
	struct listener *l = w->data;
	for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(w->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("accept: %s", strerror(errno));
			return;
		}
		struct listen_peer *p = peer_get(l, &ss);
		if (l->max_per_peer && p->conns >= l->max_per_peer) {
			refuse(fd, p);
			continue;
		}
		/* answers go out in more than one write (head, body): without
		 * this, Nagle holds the second until the client's delayed ACK,
		 * 40 ms for every request on a kept-alive connection (lws sets
		 * it on sockets it accepts itself, not on adopted ones) */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		p->conns++;
		if (!l->fn(fd, p, l->arg)) {
			p->conns--;
			peer_drop_if_idle(p);
		}
	}
}

/* ---- binding ------------------------------------------------------------------------- */

/* Is got the address asked for? (Port 0 asks the kernel to choose.) */
static bool same_address(const struct sockaddr *got, const struct sockaddr *asked)
{
	if (got->sa_family != asked->sa_family)
		return false;
	if (got->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)got, *y = (const void *)asked;
		return (x->sin_port == y->sin_port || !y->sin_port) &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)got, *y = (const void *)asked;
	return (x->sin6_port == y->sin6_port || !y->sin6_port) &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static void describe(struct buf *b, const struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port;
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
		buf_addf(b, "%s[%s]:%d", b->len ? ", " : "", host, port);
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
		buf_addf(b, "%s%s:%d", b->len ? ", " : "", host, port);
	}
}

/* Bind one address, listen, and read the address back. */
static int bind_one(struct listener *l, const struct addrinfo *ai, bool dual_stack, struct err *e)
{
	if (l->nsocks == MAX_SOCKETS)
		return 0;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0)
		return err_set(e, errno, "socket: %s", strerror(errno));
	int one = 1, v6only = dual_stack ? 0 : 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	struct buf want = BUF_INIT;
	describe(&want, ai->ai_addr);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0) {
		int err = errno;
		close(fd);
		err_set(e, err, "cannot listen on %s: %s", want.data, strerror(err));
		buf_release(&want);
		return -err;
	}
	struct sockaddr_storage got;
	socklen_t gl = sizeof(got);
	if (getsockname(fd, (struct sockaddr *)&got, &gl) < 0 ||
	    !same_address((struct sockaddr *)&got, ai->ai_addr)) {
		struct buf g = BUF_INIT;
		describe(&g, (struct sockaddr *)&got);
		err_set(e, EADDRNOTAVAIL, "asked to listen on %s, but the socket is on %s", want.data,
			g.data);
		buf_release(&g);
		buf_release(&want);
		close(fd);
		return -EADDRNOTAVAIL;
	}
	buf_release(&want);
	describe(&l->desc, (struct sockaddr *)&got);
	if (!l->port)
		l->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
							  : ((struct sockaddr_in *)&got)->sin_port);
	struct watch *w = &l->socks[l->nsocks++];
	watch_init(w, on_accept, l);
	return watch_add(w, fd, EPOLLIN);
}

int listen_start(const char *host, int port, unsigned max_per_peer, listen_accept_fn fn,
		 void *arg, struct listener **ret, struct err *e)
{
	struct listener *l = xcalloc(1, sizeof(*l));
	l->max_per_peer = max_per_peer;
	l->fn = fn;
	l->arg = arg;
	buf_init(&l->desc);
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	bool any = !host || !host[0];
	struct addrinfo hints = {
		.ai_family = any ? AF_INET6 : AF_UNSPEC, .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV | (any ? AI_PASSIVE : 0),
	}, *res = NULL;
	int rc = getaddrinfo(any ? NULL : host, ps, &hints, &res);
	if (rc != 0 && any) {
		/* no IPv6 on this host: every IPv4 interface */
		hints.ai_family = AF_INET;
		rc = getaddrinfo(NULL, ps, &hints, &res);
	}
	if (rc != 0) {
		free(l);
		return err_set(e, EADDRNOTAVAIL, "cannot listen on '%s': %s", host ? host : "*",
			       gai_strerror(rc));
	}
	int r = 0;
	for (struct addrinfo *ai = res; ai && r == 0; ai = ai->ai_next) {
		bool dup = false;
		for (struct addrinfo *b = res; b != ai && !dup; b = b->ai_next)
			dup = same_address(b->ai_addr, ai->ai_addr);
		if (!dup)
			r = bind_one(l, ai, any, e);
	}
	freeaddrinfo(res);
	if (r == 0 && l->nsocks == 0)
		r = err_set(e, EADDRNOTAVAIL, "'%s' names no address to listen on", host);
	if (r < 0) {
		listen_free(l);
		return r;
	}
	*ret = l;
	return 0;
}

void listen_free(struct listener *l)
{
	if (!l)
		return;
	for (int i = 0; i < l->nsocks; i++)
		watch_close(&l->socks[i]);
	while (l->peers) {
		struct listen_peer *p = l->peers;
		l->peers = p->next;
		free(p);
	}
	buf_release(&l->desc);
	free(l);
}

const char *listen_describe(const struct listener *l)
{
	return l->desc.data;
}

int listen_port(const struct listener *l)
{
	return l->port;
}
