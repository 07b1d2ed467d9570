/* net-dns.c — the DNS forwarder on the bridges' gateways (see net-dns.h).
 * Sits between the guests and the upstream resolvers on the daemon's
 * event loop, asking net.c who a guest is and what it may resolve.
 * Touches its UDP sockets only (and, through net_learn, the sandboxes'
 * nftables sets).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "net-dns.h"
#include "net.h"
#include "sandbox.h"
#include "util.h"

#define DNS_MAX        1232     /* a UDP message, as EDNS advises */
#define PENDING_MAX    256
#define PENDING_MS     5000     /* a query forwarded and not answered is forgotten */
#define UPSTREAM_MAX   4
#define INTERNAL_TTL   5

enum { RCODE_OK = 0, RCODE_SERVFAIL = 2, RCODE_NXDOMAIN = 3, RCODE_REFUSED = 5 };

struct listener {
	struct dns *d;
	uint32_t gw;
	struct watch w;
	struct listener *next;
};

/* A query sent upstream, waiting for its answer. */
struct pending {
	bool used;
	uint16_t id, orig_id;
	uint64_t since_ms;
	struct sockaddr_in client;
	uint32_t gw;
	char sandbox[VALID_SANDBOX_ID_LEN + 1];
	bool learn;                 /* its answers open the sandbox's egress */
};

struct dns {
	struct net *net;
	struct sockaddr_in up[UPSTREAM_MAX];
	size_t nup, next_up;
	struct watch upw;           /* the one socket toward the upstreams */
	struct listener *listeners;
	struct pending pend[PENDING_MAX];
};

/* ---- messages ----------------------------------------------------------------------- */

/* The question's name (lower case, dotted, no final dot) and type;
 * *ret_end: the offset after the question. -1 if malformed. */
static int parse_question(const uint8_t *m, size_t len, char name[256], uint16_t *ret_type,
			  size_t *ret_end)
{
	size_t off = 12, o = 0;
	if (len < 12 || (m[4] << 8 | m[5]) != 1)
		return -1;
	while (off < len && m[off]) {
		size_t l = m[off];
		if (l > 63 || off + 1 + l > len || o + l + 1 > 254)
			return -1;
		if (o)
			name[o++] = '.';
		for (size_t i = 0; i < l; i++) {
			char c = (char)m[off + 1 + i];
			name[o++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		}
		off += 1 + l;
	}
	if (off + 5 > len)
		return -1;
	name[o] = '\0';
	*ret_type = (uint16_t)(m[off + 1] << 8 | m[off + 2]);
	*ret_end = off + 5;
	return 0;
}

/* Skip a (possibly compressed) name at off: the offset after it, or 0. */
static size_t skip_name(const uint8_t *m, size_t len, size_t off)
{
	while (off < len) {
		uint8_t l = m[off];
		if (l == 0)
			return off + 1;
		if ((l & 0xc0) == 0xc0)
			return off + 2 <= len ? off + 2 : 0;
		if (l > 63)
			return 0;
		off += 1 + l;
	}
	return 0;
}

/* The A records of an answer's answer section. */
static size_t answer_addrs(const uint8_t *m, size_t len, size_t qend, uint32_t *out, size_t max)
{
	size_t an = (size_t)(m[6] << 8 | m[7]), off = qend, n = 0;
	for (size_t i = 0; i < an && off; i++) {
		off = skip_name(m, len, off);
		if (!off || off + 10 > len)
			break;
		uint16_t type = (uint16_t)(m[off] << 8 | m[off + 1]);
		uint16_t rdlen = (uint16_t)(m[off + 8] << 8 | m[off + 9]);
		off += 10;
		if (off + rdlen > len)
			break;
		if (type == 1 && rdlen == 4 && n < max)
			out[n++] = (uint32_t)m[off] << 24 | (uint32_t)m[off + 1] << 16 |
				   (uint32_t)m[off + 2] << 8 | m[off + 3];
		off += rdlen;
	}
	return n;
}

/* An answer to query q (its question kept, up to qend) with rcode and, if
 * a is not 0, one A record. */
static size_t make_answer(const uint8_t *q, size_t qend, int rcode, uint32_t a, uint8_t *out)
{
	memcpy(out, q, qend);
	out[2] = (uint8_t)(0x84 | (q[2] & 0x01));  /* QR, AA, RD as asked */
	out[3] = (uint8_t)(0x80 | rcode);          /* RA */
	out[6] = 0;
	out[7] = a ? 1 : 0;
	memset(out + 8, 0, 4);
	size_t n = qend;
	if (a) {
		const uint8_t rr[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, INTERNAL_TTL, 0, 4,
				       (uint8_t)(a >> 24), (uint8_t)(a >> 16), (uint8_t)(a >> 8),
				       (uint8_t)a };
		memcpy(out + n, rr, sizeof(rr));
		n += sizeof(rr);
	}
	return n;
}

/* ---- forwarding --------------------------------------------------------------------- */

static struct listener *listener_of(struct dns *d, uint32_t gw)
{
	for (struct listener *l = d->listeners; l; l = l->next)
		if (l->gw == gw)
			return l;
	return NULL;
}

static void reply(struct listener *l, const struct sockaddr_in *to, const uint8_t *m, size_t n)
{
	if (sendto(l->w.fd, m, n, MSG_DONTWAIT, (const struct sockaddr *)to, sizeof(*to)) < 0)
		log_debug("dns: reply: %s", strerror(errno));
}

static struct pending *pending_new(struct dns *d)
{
	uint64_t now = now_ms();
	struct pending *free_slot = NULL;
	for (size_t i = 0; i < PENDING_MAX; i++) {
		struct pending *p = &d->pend[i];
		if (p->used && now - p->since_ms > PENDING_MS)
			p->used = false;
		if (!p->used && !free_slot)
			free_slot = p;
	}
	if (!free_slot)
		return NULL;
	uint16_t id;
	bool taken;
	do {
		randombytes_buf(&id, sizeof(id));
		taken = false;
		for (size_t i = 0; i < PENDING_MAX && !taken; i++)
			taken = d->pend[i].used && d->pend[i].id == id;
	} while (taken);
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->used = true;
	free_slot->id = id;
	free_slot->since_ms = now;
	return free_slot;
}

static void on_query(struct watch *w, uint32_t events UNUSED)
{
	struct listener *l = w->data;
	struct dns *d = l->d;
	uint8_t m[DNS_MAX], out[DNS_MAX + 16];
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t len;
	while ((len = recvfrom(w->fd, m, sizeof(m), MSG_DONTWAIT, (struct sockaddr *)&from, &fl)) >= 0) {
		char name[256];
		uint16_t type;
		size_t qend;
		fl = sizeof(from);
		if (parse_question(m, (size_t)len, name, &type, &qend) < 0 || (m[2] & 0x80))
			continue;
		struct sbx *sb = net_sandbox_by_ip(d->net, ntohl(from.sin_addr.s_addr));
		if (!sb) {
			reply(l, &from, out, make_answer(m, qend, RCODE_REFUSED, 0, out));
			continue;
		}
		size_t nl = strlen(name);
		if (nl > 9 && strcmp(name + nl - 9, ".internal") == 0) {
			name[nl - 9] = '\0';
			uint32_t a = net_address_of(d->net, sb->row.user_id, name);
			reply(l, &from, out, make_answer(m, qend, a ? RCODE_OK : RCODE_NXDOMAIN,
							 type == 1 ? a : 0, out));
			continue;
		}
		if (!net_name_allowed(d->net, sb, name)) {
			reply(l, &from, out, make_answer(m, qend, RCODE_REFUSED, 0, out));
			continue;
		}
		struct pending *p = d->nup ? pending_new(d) : NULL;
		if (!p) {
			reply(l, &from, out, make_answer(m, qend, RCODE_SERVFAIL, 0, out));
			continue;
		}
		p->orig_id = (uint16_t)(m[0] << 8 | m[1]);
		p->client = from;
		p->gw = l->gw;
		p->learn = net_name_listed(d->net, sb, name);
		snprintf(p->sandbox, sizeof(p->sandbox), "%s", sb->row.id);
		m[0] = (uint8_t)(p->id >> 8);
		m[1] = (uint8_t)p->id;
		const struct sockaddr_in *up = &d->up[d->next_up++ % d->nup];
		if (sendto(d->upw.fd, m, (size_t)len, MSG_DONTWAIT, (const struct sockaddr *)up,
			   sizeof(*up)) < 0) {
			log_debug("dns: upstream: %s", strerror(errno));
			p->used = false;
		}
	}
}

static void on_answer(struct watch *w, uint32_t events UNUSED)
{
	struct dns *d = w->data;
	uint8_t m[DNS_MAX];
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t len;
	while ((len = recvfrom(w->fd, m, sizeof(m), MSG_DONTWAIT, (struct sockaddr *)&from, &fl)) >= 0) {
		fl = sizeof(from);
		bool known = false;
		for (size_t i = 0; i < d->nup && !known; i++)
			known = d->up[i].sin_addr.s_addr == from.sin_addr.s_addr &&
				d->up[i].sin_port == from.sin_port;
		if (!known || len < 12)
			continue;
		uint16_t id = (uint16_t)(m[0] << 8 | m[1]);
		struct pending *p = NULL;
		for (size_t i = 0; i < PENDING_MAX && !p; i++)
			if (d->pend[i].used && d->pend[i].id == id)
				p = &d->pend[i];
		if (!p)
			continue;
		p->used = false;
		struct listener *l = listener_of(d, p->gw);
		struct sbx *sb = net_sandbox_by_ip(d->net, ntohl(p->client.sin_addr.s_addr));
		if (!l || !sb || strcmp(sb->row.id, p->sandbox) != 0)
			continue;
		char name[256];
		uint16_t type;
		size_t qend;
		if (p->learn && parse_question(m, (size_t)len, name, &type, &qend) == 0) {
			uint32_t ips[32];
			size_t n = answer_addrs(m, (size_t)len, qend, ips, ARRAY_SIZE(ips));
			struct err e = ERR_INIT;
			if (n && net_learn(d->net, sb, ips, n, &e) < 0) {
				log_warn("sandbox '%s': egress for '%s': %s", sb->row.id, name, err_str(&e));
				continue;   /* no answer rather than one it cannot use */
			}
		}
		m[0] = (uint8_t)(p->orig_id >> 8);
		m[1] = (uint8_t)p->orig_id;
		reply(l, &p->client, m, (size_t)len);
	}
}

/* ---- sockets ------------------------------------------------------------------------ */

static int udp_socket(uint32_t addr, uint16_t port, struct err *e)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(addr) };
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &sa.sin_addr, a, sizeof(a));
		int r = err_set(e, errno, "dns: cannot listen on %s:%u: %s", a, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

int dns_new(struct net *n, char *const *upstreams, struct dns **ret, struct err *e)
{
	struct dns *d = xcalloc(1, sizeof(*d));
	d->net = n;
	for (size_t i = 0; upstreams && upstreams[i] && d->nup < UPSTREAM_MAX; i++) {
		struct sockaddr_in *up = &d->up[d->nup];
		up->sin_family = AF_INET;
		up->sin_port = htons(53);
		if (inet_pton(AF_INET, upstreams[i], &up->sin_addr) != 1) {
			free(d);
			return err_set(e, EINVAL, "network.dns_upstreams: '%s' is not an IPv4 address",
				       upstreams[i]);
		}
		d->nup++;
	}
	if (!d->nup)
		log_warn("dns: no upstream resolver (network.dns_upstreams, /etc/resolv.conf): "
			 "only NAME.internal is answered");
	watch_init(&d->upw, on_answer, d);
	int fd = udp_socket(0, 0, e);
	if (fd < 0 || watch_add(&d->upw, fd, EPOLLIN) < 0) {
		if (fd >= 0)
			close(fd);
		free(d);
		return fd < 0 ? fd : err_set(e, EIO, "dns: cannot watch its socket");
	}
	*ret = d;
	return 0;
}

int dns_listen(struct dns *d, uint32_t gw, struct err *e)
{
	if (listener_of(d, gw))
		return 0;
	int fd = udp_socket(gw, 53, e);
	if (fd < 0)
		return fd;
	struct listener *l = xcalloc(1, sizeof(*l));
	l->d = d;
	l->gw = gw;
	watch_init(&l->w, on_query, l);
	if (watch_add(&l->w, fd, EPOLLIN) < 0) {
		close(fd);
		free(l);
		return err_set(e, EIO, "dns: cannot watch its socket");
	}
	l->next = d->listeners;
	d->listeners = l;
	return 0;
}

void dns_unlisten(struct dns *d, uint32_t gw)
{
	for (struct listener **pp = &d->listeners; *pp; pp = &(*pp)->next) {
		struct listener *l = *pp;
		if (l->gw != gw)
			continue;
		*pp = l->next;
		watch_close(&l->w);
		free(l);   /* (never from its own callback: net_sync is not called there) */
		return;
	}
}

void dns_free(struct dns *d)
{
	if (!d)
		return;
	while (d->listeners)
		dns_unlisten(d, d->listeners->gw);
	watch_close(&d->upw);
	free(d);
}
