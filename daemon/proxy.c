/* proxy.c — the public proxy of published ports (see proxy.h for the
 * connection states, flow control and framing).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "acme.h"
#include "buf.h"
#include "guest.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "num.h"
#include "proxy-http.h"
#include "proxy-up.h"
#include "ratelimit.h"
#include "proxy.h"
#include "publish.h"
#include "sandbox.h"
#include "server.h"
#include "settings.h"
#include "util.h"
#include "valid.h"

#define READ_CHUNK (64u << 10)

/* ---- rate limits: token buckets by key (client address, alias) --------------------- */

#define BUCKETS 8192
#define BUCKET_PROBE 16

struct bucket {
	char key[72];
	double tokens;
	uint64_t at_ms;
};

struct buckets {
	struct bucket *slot;
	double per_ms, burst;
};

static void buckets_init(struct buckets *b, int64_t per_min)
{
	b->slot = per_min > 0 ? xcalloc(BUCKETS, sizeof(*b->slot)) : NULL;
	b->per_ms = (double)per_min / 60000.0;
	b->burst = per_min / 3 > 0 ? (double)(per_min / 3) : 1;
}

static uint32_t hash_key(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* One token for key: true, or false with the seconds until one is back. A
 * full neighbourhood gives its least recently used slot to the new key. */
static bool buckets_take(struct buckets *b, const char *key, uint64_t now, unsigned *ret_retry)
{
	if (!b->slot)
		return true;
	uint32_t h = hash_key(key);
	struct bucket *victim = NULL, *bk = NULL;
	for (unsigned i = 0; i < BUCKET_PROBE && !bk; i++) {
		struct bucket *s = &b->slot[(h + i) % BUCKETS];
		if (s->key[0] && strcmp(s->key, key) == 0)
			bk = s;
		else if (!victim || !s->key[0] || (victim->key[0] && s->at_ms < victim->at_ms))
			victim = s;
	}
	if (!bk) {
		bk = victim;
		snprintf(bk->key, sizeof(bk->key), "%s", key);
		bk->tokens = b->burst;
		bk->at_ms = now;
	}
	bk->tokens += (double)(now - bk->at_ms) * b->per_ms;
	if (bk->tokens > b->burst)
		bk->tokens = b->burst;
	bk->at_ms = now;
	if (bk->tokens >= 1) {
		bk->tokens -= 1;
		return true;
	}
	unsigned s = (unsigned)((1 - bk->tokens) / b->per_ms / 1000) + 1;
	*ret_retry = s;
	return false;
}

/* ---- the proxy --------------------------------------------------------------------- */

enum pstate { P_HEAD, P_OPEN, P_RELAY, P_TUNNEL, P_BRIDGE, P_CLOSING };

struct pconn {
	struct pconn *next;
	struct watch w;
	struct listen_peer *peer;
	char ip[INET6_ADDRSTRLEN];
	enum pstate st;
	struct buf in, out;
	struct timer tmo;
	bool client_eof;        /* the client finished sending */
	bool dead;
	bool owner;             /* the API's /sandboxes/:id/proxy/:port/ (JSON errors, a key) */
	bool redirect;          /* tls.http_listen: ACME answers, else 301 to https */
	proxy_accept_fn api;    /* an API connection over TLS, not decided yet: the
				 * API's (bridged to it) unless the owner's path */
	struct watch lw;        /* P_BRIDGE: our end of the socketpair to the API */
	struct buf lout;        /* P_BRIDGE: plaintext for the API not yet written */
	bool api_eof;           /* P_BRIDGE: the API closed its side */
	SSL *ssl;               /* HTTPS (tls.cert): every byte through it */
	bool ssl_wants_write;   /* the last SSL call waits for the socket to take bytes */

	/* the request being served */
	struct phead req;
	struct pbody reqb;
	bool req_done;          /* its body went to the guest whole */
	bool close_after;       /* close once the answer is out */
	bool upgrade;           /* it asks for a WebSocket (or another) upgrade */
	char alias[VALID_NAME_MAX + 1];
	uint16_t port;

	/* the guest side */
	struct pup *op;          /* the guest side: forward or IP (proxy-up.h) */
	bool connected, held, guest_eof;
	struct buf rhead;       /* the response head while it comes */
	bool resp_started;      /* its head went to the client */
	struct pbody respb;
};

static struct {
	struct server *srv;
	struct listener *l;
	struct listener *l80;   /* tls.http_listen */
	int https_port;         /* the public proxy's, for redirects */
	struct pconn *conns;
	unsigned nconns, max_conns;
	struct buckets by_ip, by_alias;
	char *listening;
	SSL_CTX *tls;           /* the public proxy's and the API's, with tls.cert or tls.acme */
	bool api_tls;           /* the API speaks TLS (lws): no peeking at it */
	enum pup_transport transport;   /* proxy.transport */
} P;

static void conn_update(struct pconn *c);
static void process(struct pconn *c);
static int owner_prefix(const char *p, size_t n);

static void conn_free(void *p)
{
	struct pconn *c = p;
	buf_release(&c->in);
	buf_release(&c->out);
	buf_release(&c->rhead);
	buf_release(&c->lout);
	phead_release(&c->req);
	free(c);
}

static void conn_close(struct pconn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	pup_free(c->op);
	c->op = NULL;
	timer_cancel(&c->tmo);
	SSL_free(c->ssl);
	c->ssl = NULL;
	watch_close(&c->lw);
	watch_close(&c->w);
	listen_peer_done(c->peer);
	for (struct pconn **pp = &P.conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	P.nconns--;
	loop_defer_free(conn_free, c);
}

static void arm(struct pconn *c, uint64_t ms)
{
	timer_arm(&c->tmo, ms);
}

/* ---- the client's bytes, plain or through TLS ------------------------------------------ */

/* > 0 bytes, 0 the client finished, -EAGAIN nothing now, else -errno. */
static ssize_t conn_recv(struct pconn *c, void *p, size_t n)
{
	if (!c->ssl) {
		ssize_t k = recv(c->w.fd, p, n, 0);
		return k < 0 ? (errno == EINTR ? -EAGAIN : -errno) : k;
	}
	ERR_clear_error();
	int k = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (k > 0) {
		c->ssl_wants_write = false;
		return k;
	}
	switch (SSL_get_error(c->ssl, k)) {
	case SSL_ERROR_WANT_READ:
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->ssl_wants_write = true;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		return -EPROTO;   /* a failed handshake, a bad record, a reset */
	}
}

static ssize_t conn_send(struct pconn *c, const void *p, size_t n)
{
	if (!c->ssl) {
		ssize_t k = send(c->w.fd, p, n, MSG_NOSIGNAL);
		return k < 0 ? (errno == EINTR ? -EAGAIN : -errno) : k;
	}
	ERR_clear_error();
	int k = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (k > 0) {
		c->ssl_wants_write = false;
		return k;
	}
	switch (SSL_get_error(c->ssl, k)) {
	case SSL_ERROR_WANT_WRITE:
		c->ssl_wants_write = true;
		return -EAGAIN;
	case SSL_ERROR_WANT_READ:
		return -EAGAIN;   /* a renegotiation: the next read moves it on */
	default:
		return -EPIPE;
	}
}

/* The client's side done sending: close_notify first under TLS. */
static void conn_shut_wr(struct pconn *c)
{
	if (c->ssl)
		SSL_shutdown(c->ssl);
	shutdown(c->w.fd, SHUT_WR);
}

/* ---- writing to the client --------------------------------------------------------- */

static void flush_out(struct pconn *c)
{
	size_t done = 0;
	while (done < c->out.len) {
		ssize_t n = conn_send(c, c->out.data + done, c->out.len - done);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			buf_consume(&c->out, done);
			conn_close(c);
			return;
		}
		done += (size_t)n;
	}
	buf_consume(&c->out, done);
	if (c->held && c->out.len < PROXY_HIGH / 2 && c->op) {
		c->held = false;
		pup_hold(c->op, false);
	}
	if (c->st == P_CLOSING && !c->out.len) {
		conn_close(c);
		return;
	}
	if (c->st == P_TUNNEL && c->guest_eof && !c->out.len)
		conn_shut_wr(c);
	if (c->st == P_BRIDGE && c->api_eof && !c->out.len) {
		conn_shut_wr(c);   /* the API closed: so do we (close_notify first) */
		conn_close(c);
		return;
	}
	conn_update(c);   /* what is left waits for EPOLLOUT */
}

static void client_write(struct pconn *c, const void *p, size_t n)
{
	buf_add(&c->out, p, n);
	if (c->op && !c->held && c->out.len > PROXY_HIGH) {
		c->held = true;
		pup_hold(c->op, true);
	}
}

static const char *reason_of(int status)
{
	switch (status) {
	case 301: return "Moved Permanently";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Error";
	}
}

static void html_escape(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': buf_adds(b, "&lt;"); break;
		case '>': buf_adds(b, "&gt;"); break;
		case '&': buf_adds(b, "&amp;"); break;
		case '"': buf_adds(b, "&quot;"); break;
		default: buf_addch(b, *s);
		}
	}
}

/* An answer of our own (an error page, a redirect), then close: whatever
 * the request still had to send is not read. */
static void answer(struct pconn *c, int status, unsigned retry_after, const char *location,
		   const char *fmt, ...) PRINTF(5, 6);
static void answer(struct pconn *c, int status, unsigned retry_after, const char *location,
		   const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pup_free(c->op);
	c->op = NULL;
	struct buf body = BUF_INIT;
	const char *ctype = "text/html; charset=utf-8";
	if (c->owner) {
		/* the API's error shape */
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "error", msg);
		char *txt = cJSON_PrintUnformatted(o);
		buf_adds(&body, txt);
		buf_addch(&body, '\n');
		free(txt);
		cJSON_Delete(o);
		ctype = "application/json";
		goto head;
	}
	buf_addf(&body, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%d %s</title>"
		 "</head>\n<body><h1>%d %s</h1>\n<p>", status, reason_of(status), status,
		 reason_of(status));
	html_escape(&body, msg);
	buf_adds(&body, "</p>\n<hr><p>bhatti</p></body></html>\n");
head:;
	struct buf h = BUF_INIT;
	buf_addf(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
		 "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n",
		 status, reason_of(status), ctype, body.len);
	if (retry_after)
		buf_addf(&h, "Retry-After: %u\r\n", retry_after);
	if (location)
		buf_addf(&h, "Location: %s\r\n", location);
	buf_adds(&h, "\r\n");
	client_write(c, h.data, h.len);
	if (strcmp(c->req.method ? c->req.method : "", "HEAD") != 0)
		client_write(c, body.data, body.len);
	buf_release(&h);
	buf_release(&body);
	c->st = P_CLOSING;
	arm(c, PROXY_BODY_IDLE_MS);
	conn_update(c);
	flush_out(c);
}

/* ---- ACME http-01 ------------------------------------------------------------------ */

#define ACME_PREFIX "/.well-known/acme-challenge/"

/* GET /.well-known/acme-challenge/TOKEN on any host: the key authorization
 * an ACME client (scripts/uacme-hook.sh) left in data_dir/acme/http-01/. */
static void serve_challenge(struct pconn *c)
{
	const char *token = c->req.target + strlen(ACME_PREFIX);
	size_t n = strlen(token);
	if (n == 0 || n > 256 || strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					       "0123456789-_") != n) {
		answer(c, 404, 0, NULL, "no such challenge");
		return;
	}
	struct buf path = BUF_INIT;
	buf_addf(&path, "%s/acme/http-01/%s", P.srv->cfg.data_dir, token);
	FILE *f = fopen(path.data, "re");
	buf_release(&path);
	char body[1024];
	size_t len = f ? fread(body, 1, sizeof(body) - 1, f) : 0;
	if (f)
		fclose(f);
	if (!f || len == 0) {
		answer(c, 404, 0, NULL, "no such challenge");
		return;
	}
	while (len && (body[len - 1] == '\n' || body[len - 1] == '\r'))
		len--;
	struct buf h = BUF_INIT;
	buf_addf(&h, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
		 "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
		 len);
	buf_add(&h, body, len);
	client_write(c, h.data, h.len);
	buf_release(&h);
	c->st = P_CLOSING;
	arm(c, PROXY_BODY_IDLE_MS);
	conn_update(c);
	flush_out(c);
}

/* tls.http_listen: everything but ACME goes to the same URL over https. */
static void redirect_https(struct pconn *c)
{
	const char *host = phead_get(&c->req, "host");
	if (!host || !host[0] || strpbrk(host, " \"<>\\")) {
		answer(c, 400, 0, NULL, "no Host header");
		return;
	}
	struct buf loc = BUF_INIT;
	size_t hl = host[0] == '[' ? strcspn(host, "]") + (strchr(host, ']') ? 1 : 0)
				   : strcspn(host, ":");
	buf_addf(&loc, "https://%.*s", (int)hl, host);
	if (P.https_port != 443)
		buf_addf(&loc, ":%d", P.https_port);
	buf_adds(&loc, c->req.target);
	answer(c, 301, 0, loc.data, "this site is served over https: %s", loc.data);
	buf_release(&loc);
}

/* ---- the guest side ---------------------------------------------------------------- */

static void request_finished(struct pconn *c)
{
	/* the response is whole: the guest's connection is not needed */
	pup_free(c->op);
	c->op = NULL;
	c->held = false;
	phead_release(&c->req);
	buf_reset(&c->rhead);
	c->resp_started = false;
	c->connected = c->guest_eof = false;
	if (c->close_after || c->client_eof) {
		c->st = P_CLOSING;
		if (!c->out.len)
			conn_close(c);
		return;
	}
	c->st = P_HEAD;
	arm(c, c->in.len ? PROXY_HEAD_TIMEOUT_MS : PROXY_IDLE_TIMEOUT_MS);
	conn_update(c);
	process(c);   /* a pipelined request waiting already */
}

/* The response head from the guest, rewritten for the client: hop-by-hop
 * headers dropped (Transfer-Encoding kept: a chunked body passes
 * unchanged), the connection kept alive when the framing allows. */
static int response_head(struct pconn *c, const struct phead *h, struct err *e)
{
	struct buf o = BUF_INIT;
	bool switching = h->status == 101;
	if (switching && !c->upgrade)
		return err_set(e, EPROTO, "the server switched protocols unasked");
	if (h->status >= 100 && h->status < 200 && !switching) {
		/* interim (100 Continue, 103 Early Hints): passed on, the real one follows */
		buf_addf(&o, "HTTP/1.1 %d %s\r\n\r\n", h->status, h->reason);
		client_write(c, o.data, o.len);
		buf_release(&o);
		return 0;
	}
	if (!switching && pbody_response(h, c->req.method, &c->respb, e) < 0)
		return -EPROTO;
	if (!switching && c->respb.kind == PBODY_CLOSE)
		c->close_after = true;
	buf_addf(&o, "HTTP/1.1 %d %s\r\n", h->status, h->reason);
	for (size_t i = 0; i < h->nh; i++) {
		const char *n = h->h[i].name;
		bool keep_te = strcasecmp(n, "transfer-encoding") == 0 &&
			       c->respb.kind == PBODY_CHUNKED;
		if (phead_hop_by_hop(h, n) && !keep_te)
			continue;
		buf_addf(&o, "%s: %s\r\n", n, h->h[i].value);
	}
	if (switching) {
		const char *up = phead_get(h, "upgrade");
		buf_addf(&o, "Connection: Upgrade\r\nUpgrade: %s\r\n", up ? up : "websocket");
	} else if (c->close_after) {
		buf_adds(&o, "Connection: close\r\n");
	}
	buf_adds(&o, "\r\n");
	client_write(c, o.data, o.len);
	buf_release(&o);
	c->resp_started = true;
	if (switching) {
		c->st = P_TUNNEL;
		arm(c, PROXY_TUNNEL_IDLE_MS);
		conn_update(c);
	} else {
		arm(c, PROXY_BODY_IDLE_MS);
	}
	return 1;
}

/* Body bytes of the response (or tunnel bytes) to the client. */
static void response_body(struct pconn *c, const uint8_t *p, size_t n)
{
	if (c->st == P_TUNNEL) {
		client_write(c, p, n);
		return;
	}
	bool done = false;
	ssize_t k = pbody_take(&c->respb, p, n, &done);
	if (k < 0) {
		log_warn("proxy: '%s': malformed chunked response from the sandbox", c->alias);
		c->close_after = true;
		c->st = P_CLOSING;
		pup_free(c->op);
		c->op = NULL;
		return;
	}
	client_write(c, p, (size_t)k);
	if (done)
		request_finished(c);
}

static void on_started(struct guest_op *op UNUSED, const struct guest_start *st UNUSED, void *arg)
{
	struct pconn *c = arg;
	c->connected = true;
	c->st = P_RELAY;
	arm(c, PROXY_RESPONSE_TIMEOUT_MS);
	conn_update(c);
}

static void on_data(struct guest_op *op UNUSED, enum guest_ch ch UNUSED, const uint8_t *p,
		    size_t n, void *arg)
{
	struct pconn *c = arg;
	if (c->resp_started) {
		arm(c, c->st == P_TUNNEL ? PROXY_TUNNEL_IDLE_MS : PROXY_BODY_IDLE_MS);
		response_body(c, p, n);
		flush_out(c);
		return;
	}
	buf_add(&c->rhead, p, n);
	while (!c->resp_started && c->op) {
		ssize_t hl = phead_end(c->rhead.data, c->rhead.len, PHEAD_MAX);
		if (hl == 0)
			return;
		struct phead h;
		struct err e = ERR_INIT;
		int r = hl < 0 ? err_set(&e, EMSGSIZE, "response head too large") :
				 phead_parse_response(c->rhead.data, (size_t)hl, &h, &e);
		if (r == 0)
			r = response_head(c, &h, &e);
		if (hl > 0)
			phead_release(&h);
		if (r < 0) {
			answer(c, 502, 0, NULL, "the server on port %u of the sandbox sent a bad "
			       "answer: %s", c->port, err_str(&e));
			return;
		}
		buf_consume(&c->rhead, (size_t)hl);
	}
	if (c->resp_started && c->rhead.len) {
		struct buf rest = c->rhead;
		c->rhead = (struct buf)BUF_INIT;
		response_body(c, (const uint8_t *)rest.data, rest.len);
		buf_release(&rest);
	}
	flush_out(c);
}

static void on_room(struct guest_op *op UNUSED, void *arg)
{
	struct pconn *c = arg;
	conn_update(c);   /* read the client again */
	process(c);
}

static void on_eof(struct guest_op *op UNUSED, void *arg)
{
	struct pconn *c = arg;
	c->guest_eof = true;
	if (c->st == P_TUNNEL) {
		flush_out(c);
		return;
	}
	if (!c->resp_started) {
		answer(c, 502, 0, NULL, "the server on port %u of the sandbox closed the "
		       "connection without answering", c->port);
		return;
	}
	/* a body up to the close ends here; one cut short: the client must
	 * see the connection close */
	if (!pbody_done(&c->respb))
		c->close_after = true;
	request_finished(c);
}

static void on_done(struct guest_op *op UNUSED, const struct guest_end *end, void *arg)
{
	struct pconn *c = arg;
	pup_free(c->op);
	c->op = NULL;
	if (c->st == P_TUNNEL) {
		c->st = P_CLOSING;
		if (!c->out.len)
			conn_close(c);
		return;
	}
	if (c->resp_started) {
		/* the guest's side ended before the response did */
		c->close_after = true;
		request_finished(c);
		return;
	}
	if (end->rc == -ECONNREFUSED && c->owner) {
		answer(c, 502, 0, NULL, "nothing is listening on port %u in sandbox '%s'", c->port,
		       c->alias);
	} else if (end->rc == -ECONNREFUSED) {
		answer(c, 502, 0, NULL, "nothing is listening on port %u in the sandbox (published "
		       "as '%s')", c->port, c->alias);
	} else if (end->rc == -EAGAIN || end->rc == -EBUSY) {
		answer(c, 503, 2, NULL, "the sandbox is busy waking up; try again in a moment (%s)",
		       err_str(end->err));
	} else if (end->rc < 0 && !c->connected) {
		answer(c, 502, 0, NULL, "sandbox unavailable: %s", err_str(end->err));
	} else {
		answer(c, 502, 0, NULL, "the server on port %u of the sandbox closed the "
		       "connection without answering", c->port);
	}
}

static const struct guest_cb fwd_cb = {
	.started = on_started, .data = on_data, .room = on_room, .eof = on_eof, .done = on_done,
};

/* ---- requests ---------------------------------------------------------------------- */

/* Host routing: "<alias>.<domain>" or "<alias>.<a.b.c.d>.nip.io" (any
 * port). Copies the alias out; false when the host is neither. */
static bool host_alias(const char *host, char *alias, size_t size)
{
	if (!host)
		return false;
	char h[256];
	size_t n = strcspn(host, ":");
	if (host[0] == '[' || n >= sizeof(h))
		return false;
	for (size_t i = 0; i < n; i++)
		h[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] - 'A' + 'a' : host[i]);
	h[n] = '\0';
	if (n && h[n - 1] == '.')
		h[--n] = '\0';
	char *dot = strchr(h, '.');
	if (!dot || (size_t)(dot - h) >= size)
		return false;
	const char *rest = dot + 1;
	const char *domain = P.srv->cfg.domain;
	bool ok = domain && strcmp(rest, domain) == 0;
	if (!ok) {
		/* a.b.c.d.nip.io */
		size_t rl = strlen(rest);
		if (rl > 7 && strcmp(rest + rl - 7, ".nip.io") == 0) {
			char ip[64];
			struct in_addr a;
			snprintf(ip, sizeof(ip), "%.*s", (int)(rl - 7), rest);
			ok = inet_pton(AF_INET, ip, &a) == 1;
		}
	}
	if (!ok)
		return false;
	memcpy(alias, h, (size_t)(dot - h));
	alias[dot - h] = '\0';
	return true;
}

/* The request head as it goes to the guest. */
static void upstream_head(struct pconn *c, const char *target, const char *prefix,
			  struct buf *o)
{
	const struct phead *h = &c->req;
	const char *host = phead_get(h, "host");
	buf_addf(o, "%s %s HTTP/1.1\r\nHost: localhost:%u\r\n", h->method, target, c->port);
	const char *xff = NULL;
	for (size_t i = 0; i < h->nh; i++) {
		const char *n = h->h[i].name;
		bool keep_te = strcasecmp(n, "transfer-encoding") == 0 &&
			       c->reqb.kind == PBODY_CHUNKED;
		if ((phead_hop_by_hop(h, n) && !keep_te) || strcasecmp(n, "host") == 0 ||
		    (c->owner && strcasecmp(n, "authorization") == 0) ||
		    strcasecmp(n, "x-forwarded-proto") == 0 ||
		    strcasecmp(n, "x-forwarded-host") == 0 ||
		    strcasecmp(n, "x-forwarded-prefix") == 0)
			continue;
		if (strcasecmp(n, "x-forwarded-for") == 0) {
			xff = h->h[i].value;
			continue;
		}
		buf_addf(o, "%s: %s\r\n", n, h->h[i].value);
	}
	if (xff)
		buf_addf(o, "X-Forwarded-For: %s, %s\r\n", xff, c->ip);
	else
		buf_addf(o, "X-Forwarded-For: %s\r\n", c->ip);
	buf_addf(o, "X-Forwarded-Proto: %s\r\n", c->ssl ? "https" : "http");
	if (host)
		buf_addf(o, "X-Forwarded-Host: %s\r\n", host);
	if (prefix)
		buf_addf(o, "X-Forwarded-Prefix: %s\r\n", prefix);
	if (c->upgrade)
		buf_addf(o, "Connection: Upgrade\r\nUpgrade: %s\r\n", phead_get(h, "upgrade"));
	else
		buf_adds(o, "Connection: close\r\n");
	buf_adds(o, "\r\n");
}

/* Request body bytes waiting in c->in to the guest, as much as its
 * credit allows. */
static void pump_body(struct pconn *c)
{
	if (!c->op)
		return;
	if (c->st == P_TUNNEL) {
		if (c->in.len) {
			pup_write(c->op, c->in.data, c->in.len);
			buf_reset(&c->in);
		}
		return;
	}
	if (c->req_done || !c->in.len)
		return;
	bool done = false;
	ssize_t k = pbody_take(&c->reqb, (const uint8_t *)c->in.data, c->in.len, &done);
	if (k < 0) {
		answer(c, 400, 0, NULL, "malformed chunked request body");
		return;
	}
	pup_write(c->op, c->in.data, (size_t)k);
	buf_consume(&c->in, (size_t)k);
	c->req_done = done;
}

/* The public routes: the host first, else the first path segment. The
 * sandbox, the path for the guest and the prefix cut off, or NULL after
 * answering. */
static struct sbx *route_public(struct pconn *c, struct buf *path, struct buf *prefix)
{
	const char *target = c->req.target;
	if (host_alias(phead_get(&c->req, "host"), c->alias, sizeof(c->alias))) {
		buf_adds(path, target);
	} else {
		size_t seg = strcspn(target + 1, "/?");
		if (seg == 0 || seg > VALID_NAME_MAX) {
			answer(c, 404, 0, NULL, "no published port here: the URL is /<alias>/...");
			return NULL;
		}
		memcpy(c->alias, target + 1, seg);
		c->alias[seg] = '\0';
		const char *rest = target + 1 + seg;
		if (*rest != '/') {
			/* "/alias" or "/alias?q": relative links need the slash */
			struct buf loc = BUF_INIT;
			struct sbx *sb;
			uint16_t port;
			buf_addf(&loc, "/%s/%s", c->alias, rest);
			if (pub_resolve(P.srv, c->alias, &sb, &port) < 0)
				answer(c, 404, 0, NULL, "nothing is published as '%s'", c->alias);
			else
				answer(c, 301, 0, loc.data, "moved to %s", loc.data);
			buf_release(&loc);
			return NULL;
		}
		buf_adds(path, rest);
		buf_addf(prefix, "/%s", c->alias);
	}
	struct sbx *sb;
	if (pub_resolve(P.srv, c->alias, &sb, &c->port) < 0) {
		answer(c, 404, 0, NULL, "nothing is published as '%s'", c->alias);
		return NULL;
	}
	unsigned retry = 1;
	uint64_t now = now_ms();
	if (!buckets_take(&P.by_ip, c->ip, now, &retry) ||
	    !buckets_take(&P.by_alias, c->alias, now, &retry)) {
		answer(c, 429, retry, NULL, "too many requests; try again in %u s", retry);
		return NULL;
	}
	return sb;
}

/* The owner's route on the API: /sandboxes/:id/proxy/:port/..., with the
 * caller's API key (never passed on to the guest) and their read rate. */
static struct sbx *route_owner(struct pconn *c, struct buf *path, struct buf *prefix)
{
	const char *target = c->req.target, *auth = phead_get(&c->req, "authorization");
	const char *id = target + strlen("/sandboxes/");
	size_t idl = strcspn(id, "/?");
	const char *pp = id + idl + strlen("/proxy/");
	size_t pl = strcspn(pp, "/?");
	char idbuf[VALID_NAME_MAX + 1], portbuf[8];
	if (strncmp(target, "/sandboxes/", 11) != 0 || idl == 0 || idl > VALID_NAME_MAX ||
	    strncmp(id + idl, "/proxy/", 7) != 0 || pl == 0 || pl >= sizeof(portbuf)) {
		answer(c, 404, 0, NULL, "this connection serves /sandboxes/:id/proxy/:port/... "
		       "only; open a new one for other API requests");
		return NULL;
	}
	memcpy(idbuf, id, idl);
	idbuf[idl] = '\0';
	memcpy(portbuf, pp, pl);
	portbuf[pl] = '\0';
	struct user u = { 0 };
	struct err e = ERR_INIT;
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
		answer(c, 401, 0, NULL, "missing API key: send 'Authorization: Bearer <key>'");
		return NULL;
	}
	if (store_user_auth(P.srv->store, auth + 7, &u, &e) < 0) {
		answer(c, 401, 0, NULL, "%s", err_str(&e));
		return NULL;
	}
	unsigned retry = 1;
	bool rate_ok = ratelimit_take(P.srv->rl, u.id, RATE_READ, now_ms(), &retry);
	struct sbx *sb = sbx_find(P.srv, &u, idbuf);
	user_release(&u);
	uint32_t port;
	if (!rate_ok) {
		answer(c, 429, retry, NULL, "rate limit: too many requests; retry in %u s", retry);
		return NULL;
	}
	if (!sb) {
		answer(c, 404, 0, NULL, "sandbox '%s' not found", idbuf);
		return NULL;
	}
	if (num_parse_u32(portbuf, 1, 65535, &port, "port", &e) < 0) {
		answer(c, 400, 0, NULL, "%s", err_str(&e));
		return NULL;
	}
	c->port = (uint16_t)port;
	snprintf(c->alias, sizeof(c->alias), "%s", sb->row.name);
	const char *rest = pp + pl;
	buf_adds(path, *rest == '/' ? rest : "/");
	if (*rest == '?')
		buf_adds(path, rest);
	buf_add(prefix, target, (size_t)(rest - target));
	return sb;
}

/* A whole request head is in c->in: route it and open the guest's port. */
static void start_request(struct pconn *c, size_t hl)
{
	struct err e = ERR_INIT;
	phead_release(&c->req);
	int r = phead_parse_request(c->in.data, hl, &c->req, &e);
	buf_consume(&c->in, hl);
	if (r < 0) {
		answer(c, 400, 0, NULL, "%s", err_str(&e));
		return;
	}
	r = pbody_request(&c->req, &c->reqb, &e);
	if (r < 0) {
		answer(c, r == -ENOSYS ? 501 : 400, 0, NULL, "%s", err_str(&e));
		return;
	}
	c->req_done = c->reqb.kind == PBODY_NONE;
	c->close_after = c->req.minor == 0 || phead_has_token(&c->req, "connection", "close");
	c->upgrade = phead_get(&c->req, "upgrade") &&
		     phead_has_token(&c->req, "connection", "upgrade");

	struct buf path = BUF_INIT, prefix = BUF_INIT;
	struct sbx *sb = NULL;
	if (c->req.target[0] != '/')
		answer(c, 400, 0, NULL, "the request target must be a path");
	else if (!c->owner && strncmp(c->req.target, ACME_PREFIX, strlen(ACME_PREFIX)) == 0 &&
		 strcmp(c->req.method, "GET") == 0)
		serve_challenge(c);
	else if (c->redirect)
		redirect_https(c);
	else if (c->owner)
		sb = route_owner(c, &path, &prefix);
	else
		sb = route_public(c, &path, &prefix);
	if (!sb) {
		buf_release(&path);
		buf_release(&prefix);
		return;
	}
	struct buf head = BUF_INIT;
	upstream_head(c, path.data, prefix.len ? prefix.data : NULL, &head);
	buf_release(&path);
	buf_release(&prefix);
	c->st = P_OPEN;
	c->connected = c->guest_eof = c->resp_started = false;
	buf_reset(&c->rhead);
	arm(c, PROXY_WAKE_TIMEOUT_MS);
	sbx_touch(sb);
	c->op = pup_open(sb, c->port, P.transport, &fwd_cb, c);
	pup_write(c->op, head.data, head.len);
	buf_release(&head);
	pump_body(c);
	conn_update(c);
}

/* ---- the API over TLS: decrypted here, bridged to libwebsockets ---------------------- */

/* Bytes between the API (its socketpair end) and the client: read what
 * the API wrote, write what the client sent. */
static void bridge_pump(struct pconn *c)
{
	if (c->in.len) {
		buf_add(&c->lout, c->in.data, c->in.len);
		buf_reset(&c->in);
	}
	size_t done = 0;
	while (done < c->lout.len) {
		ssize_t n = send(c->lw.fd, c->lout.data + done, c->lout.len - done, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			buf_consume(&c->lout, done);
			conn_close(c);
			return;
		}
		done += (size_t)n;
	}
	buf_consume(&c->lout, done);
	if (c->client_eof && !c->lout.len)
		shutdown(c->lw.fd, SHUT_WR);
	conn_update(c);
}

static void on_api(struct watch *w, uint32_t events)
{
	struct pconn *c = w->data;
	if (events & EPOLLOUT)
		bridge_pump(c);
	if (c->dead || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c->api_eof)
		return;
	char tmp[READ_CHUNK];
	ssize_t n = recv(w->fd, tmp, sizeof(tmp), 0);
	if (n > 0) {
		arm(c, PROXY_TUNNEL_IDLE_MS);
		client_write(c, tmp, (size_t)n);
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		c->api_eof = true;
	}
	flush_out(c);
}

/* An API connection over TLS, its first bytes decrypted: the owner's
 * proxy path stays here; anything else is handed to the API through a
 * socketpair. false: not decided yet (or handed over). */
static bool decide_api(struct pconn *c)
{
	int verdict = owner_prefix(c->in.data, c->in.len);
	if (verdict < 0 && c->in.len < 256 && !c->client_eof)
		return false;
	proxy_accept_fn api = c->api;
	c->api = NULL;
	if (verdict == 1) {
		c->owner = true;
		return true;
	}
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0) {
		conn_close(c);
		return false;
	}
	if (!api(sp[1], NULL)) {   /* it closed sp[1] */
		close(sp[0]);
		conn_close(c);
		return false;
	}
	c->st = P_BRIDGE;
	if (watch_add(&c->lw, sp[0], EPOLLIN) < 0) {
		close(sp[0]);
		conn_close(c);
		return false;
	}
	arm(c, PROXY_TUNNEL_IDLE_MS);
	bridge_pump(c);
	return false;
}

static void process(struct pconn *c)
{
	if (c->dead)
		return;
	switch (c->st) {
	case P_HEAD: {
		if (!c->in.len) {
			if (c->client_eof)
				conn_close(c);
			return;
		}
		if (c->api && !decide_api(c))
			return;
		ssize_t hl = phead_end(c->in.data, c->in.len, PHEAD_MAX);
		if (hl < 0) {
			answer(c, 431, 0, NULL, "the request head is larger than %u bytes", PHEAD_MAX);
			return;
		}
		if (hl == 0) {
			if (c->client_eof)
				conn_close(c);   /* half a head, then nothing */
			return;
		}
		start_request(c, (size_t)hl);
		return;
	}
	case P_OPEN:
	case P_RELAY:
	case P_TUNNEL:
		pump_body(c);
		if (c->client_eof && c->op && c->st == P_TUNNEL)
			pup_write_eof(c->op);
		else if (c->client_eof && !c->req_done)
			conn_close(c);   /* the client left in the middle of its request */
		return;
	case P_BRIDGE:
		bridge_pump(c);
		return;
	case P_CLOSING:
		return;
	}
}

/* What to watch on the client: read when there is room for it, write when
 * bytes wait. */
static void conn_update(struct pconn *c)
{
	if (c->dead)
		return;
	uint32_t ev = 0;
	bool want_read = !c->client_eof;
	switch (c->st) {
	case P_HEAD:
		want_read = want_read && c->in.len < PHEAD_MAX;
		break;
	case P_OPEN:
	case P_RELAY:
		want_read = want_read && !c->req_done && c->in.len < READ_CHUNK &&
			    (!c->op || pup_write_queued(c->op) < PROXY_HIGH);
		break;
	case P_TUNNEL:
		want_read = want_read && !c->in.len && c->op &&
			    pup_write_queued(c->op) < PROXY_HIGH;
		break;
	case P_BRIDGE:
		want_read = want_read && c->lout.len < PROXY_HIGH;
		watch_set(&c->lw, (c->api_eof || c->out.len >= PROXY_HIGH ? 0 : EPOLLIN) |
				  (c->lout.len ? EPOLLOUT : 0));
		break;
	case P_CLOSING:
		want_read = false;
		break;
	}
	if (want_read || (c->ssl && !SSL_is_init_finished(c->ssl)))
		ev |= EPOLLIN | EPOLLRDHUP;
	if (c->out.len || c->ssl_wants_write)
		ev |= EPOLLOUT;
	watch_set(&c->w, ev);
}

static void on_client(struct watch *w, uint32_t events)
{
	struct pconn *c = w->data;
	if (events & EPOLLOUT) {
		flush_out(c);
		if (c->dead)
			return;
	}
	/* under TLS a write may wait for a read and the other way round: try
	 * reading whenever the socket moved */
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP) ||
	    (c->ssl && (events & EPOLLOUT))) {
		char tmp[READ_CHUNK];
		ssize_t n = conn_recv(c, tmp, sizeof(tmp));
		if (n > 0) {
			buf_add(&c->in, tmp, (size_t)n);
			if (c->st == P_HEAD && !c->api)
				arm(c, PROXY_HEAD_TIMEOUT_MS);
			else if (c->st == P_TUNNEL || c->st == P_BRIDGE)
				arm(c, PROXY_TUNNEL_IDLE_MS);
		} else if (n == 0) {
			c->client_eof = true;
		} else if (n != -EAGAIN) {
			conn_close(c);
			return;
		}
		process(c);
		if (c->dead)
			return;
		if (c->out.len)
			flush_out(c);
		if (c->dead)
			return;
	}
	conn_update(c);
}

static void on_timeout(struct timer *t)
{
	struct pconn *c = t->data;
	switch (c->st) {
	case P_HEAD:
		if (c->in.len)
			answer(c, 408, 0, NULL, "the request head did not come in time");
		else
			conn_close(c);   /* an idle kept-alive connection */
		return;
	case P_OPEN:
		answer(c, 504, 0, NULL, "the sandbox did not wake, or port %u did not accept the "
		       "connection, within %d s", c->port, PROXY_WAKE_TIMEOUT_MS / 1000);
		return;
	case P_RELAY:
		if (!c->resp_started)
			answer(c, 504, 0, NULL, "the server on port %u of the sandbox did not answer "
			       "within %d s", c->port, PROXY_RESPONSE_TIMEOUT_MS / 1000);
		else
			conn_close(c);   /* a body stalled */
		return;
	case P_TUNNEL:
	case P_BRIDGE:
	case P_CLOSING:
		conn_close(c);
		return;
	}
}

static struct pconn *conn_new(int fd, struct listen_peer *peer)
{
	if (P.max_conns && P.nconns >= P.max_conns) {
		static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n"
					   "Content-Length: 0\r\nConnection: close\r\n\r\n";
		ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)n;
		close(fd);
		return NULL;
	}
	struct pconn *c = xcalloc(1, sizeof(*c));
	c->peer = peer;
	buf_init(&c->in);
	buf_init(&c->out);
	buf_init(&c->rhead);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	snprintf(c->ip, sizeof(c->ip), "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->ip, sizeof(c->ip));
		} else if (ss.ss_family == AF_INET6) {
			struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
			if (IN6_IS_ADDR_V4MAPPED(a))
				inet_ntop(AF_INET, &a->s6_addr[12], c->ip, sizeof(c->ip));
			else
				inet_ntop(AF_INET6, a, c->ip, sizeof(c->ip));
		}
	}
	watch_init(&c->w, on_client, c);
	watch_init(&c->lw, on_api, c);   /* (fd -1: conn_close closes it) */
	timer_init(&c->tmo, on_timeout, c);
	if (watch_add(&c->w, fd, EPOLLIN | EPOLLRDHUP) < 0) {
		close(fd);
		free(c);
		return NULL;
	}
	c->next = P.conns;
	P.conns = c;
	P.nconns++;
	arm(c, PROXY_HEAD_TIMEOUT_MS);
	return c;
}

static bool on_accept_http(int fd, struct listen_peer *peer, void *arg UNUSED)
{
	struct pconn *c = conn_new(fd, peer);
	if (c)
		c->redirect = true;
	return c != NULL;
}

/* Serve c through TLS (false: it failed, and c is closed). */
static bool conn_tls(struct pconn *c, int fd)
{
	c->ssl = SSL_new(P.tls);
	if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
		conn_close(c);
		return false;
	}
	SSL_set_accept_state(c->ssl);
	return true;
}

static bool on_accept(int fd, struct listen_peer *peer, void *arg UNUSED)
{
	struct pconn *c = conn_new(fd, peer);
	if (!c)
		return false;
	if (P.tls)
		conn_tls(c, fd);
	return true;   /* taken (and closed, when TLS could not begin) */
}

/* The TLS context of the public proxy and the API: the certificate chain
 * and key of tls.cert and tls.key, TLS 1.2 and up, HTTP/1.1 only (no ALPN
 * h2); with tls.acme, the certificate is chosen by SNI (acme_sni), with
 * tls.cert (when given) for names ACME has none for. */
static int tls_context(const struct settings *cfg, struct err *e)
{
	SSL_CTX *ctx;
	struct err ce = ERR_INIT;
	if (acme_tls_ctx(cfg->tls.cert, cfg->tls.key, &ctx, &ce) < 0)
		return err_set(e, EINVAL, "tls.cert and tls.key: %s", err_str(&ce));
	if (cfg->tls.acme.email) {
		SSL_CTX_set_tlsext_servername_callback(ctx, acme_sni);
		SSL_CTX_set_tlsext_servername_arg(ctx, cfg->tls.cert ? ctx : NULL);
	}
	P.tls = ctx;
	return 0;
}

/* ---- the owner's path on the API listener --------------------------------------------- */

/* Is this the start of "METHOD /sandboxes/ID/proxy/"? 1 yes, 0 no, -1
 * cannot tell yet (every byte so far fits). */
static int owner_prefix(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] >= 'A' && p[i] <= 'Z')
		i++;
	if (i == n)
		return -1;
	if (i == 0 || p[i] != ' ')
		return 0;
	i++;
	static const char a[] = "/sandboxes/", b[] = "/proxy/";
	for (size_t k = 0; k < sizeof(a) - 1; k++, i++) {
		if (i == n)
			return -1;
		if (p[i] != a[k])
			return 0;
	}
	size_t id = i;
	while (i < n && p[i] != '/' && p[i] != ' ' && p[i] != '?')
		i++;
	if (i == n)
		return -1;
	if (i == id || p[i] != '/')
		return 0;
	for (size_t k = 0; k < sizeof(b) - 1; k++, i++) {
		if (i == n)
			return -1;
		if (p[i] != b[k])
			return 0;
	}
	return 1;
}

struct sniff {
	struct watch w;
	struct timer t;
	struct listen_peer *peer;
	proxy_accept_fn api;
	uint64_t deadline;
};

static void sniff_free(void *p)
{
	free(p);
}

static void sniff_end(struct sniff *s)
{
	timer_cancel(&s->t);
	loop_defer_free(sniff_free, s);
}

static bool take_owner(int fd, struct listen_peer *peer);

/* Peek at the first bytes: the owner's proxy path stays here, anything
 * else goes to the API as it came (nothing was read). */
static void sniff_check(struct sniff *s)
{
	char b[256];
	ssize_t n = recv(s->w.fd, b, sizeof(b), MSG_PEEK);
	int verdict;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		verdict = -1;
	else if (n <= 0)
		verdict = 0;   /* gone or failed: the API's code says goodbye */
	else
		verdict = owner_prefix(b, (size_t)n);
	if (verdict < 0 && (size_t)n < sizeof(b) && now_ms() < s->deadline) {
		/* half a request line: look again shortly (the bytes stay
		 * readable, so waiting on the fd would spin) */
		watch_set(&s->w, 0);
		timer_arm(&s->t, 2);
		return;
	}
	int fd = s->w.fd;
	watch_del(&s->w);
	s->w.fd = -1;
	sniff_end(s);
	/* either closes fd when it does not take it */
	bool ok = verdict == 1 ? take_owner(fd, s->peer) : s->api(fd, s->peer);
	if (!ok)
		listen_peer_done(s->peer);
}

static void sniff_ready(struct watch *w, uint32_t events UNUSED)
{
	sniff_check(w->data);
}

static void sniff_timer(struct timer *t)
{
	struct sniff *s = t->data;
	if (now_ms() >= s->deadline) {
		/* nothing came: the API's header timeout has the same length */
		int fd = s->w.fd;
		watch_del(&s->w);
		s->w.fd = -1;
		sniff_end(s);
		close(fd);
		listen_peer_done(s->peer);
		return;
	}
	watch_set(&s->w, EPOLLIN | EPOLLRDHUP);
}

static struct pconn *conn_new(int fd, struct listen_peer *peer);
static bool conn_tls(struct pconn *c, int fd);

bool proxy_sniff(int fd, struct listen_peer *peer, proxy_accept_fn api, unsigned timeout_ms)
{
	if (!P.srv)
		return api(fd, peer);
	if (P.api_tls) {
		/* TLS ends here; the API gets the plaintext (decide_api) */
		struct pconn *c = conn_new(fd, peer);
		if (!c)
			return false;
		c->api = api;
		arm(c, timeout_ms);
		conn_tls(c, fd);
		return true;
	}
	struct sniff *s = xcalloc(1, sizeof(*s));
	s->peer = peer;
	s->api = api;
	s->deadline = now_ms() + timeout_ms;
	watch_init(&s->w, sniff_ready, s);
	timer_init(&s->t, sniff_timer, s);
	if (watch_add(&s->w, fd, EPOLLIN | EPOLLRDHUP) < 0) {
		close(fd);
		free(s);
		return false;
	}
	timer_arm(&s->t, timeout_ms);
	return true;
}

static bool take_owner(int fd, struct listen_peer *peer)
{
	struct pconn *c = conn_new(fd, peer);
	if (!c)
		return false;
	c->owner = true;
	return true;
}

int proxy_start(struct server *srv, struct err *e)
{
	const struct settings *cfg = &srv->cfg;
	P.srv = srv;
	P.max_conns = (unsigned)cfg->proxy.max_conns;
	buckets_init(&P.by_ip, cfg->proxy.requests_per_ip_per_min);
	buckets_init(&P.by_alias, cfg->proxy.requests_per_alias_per_min);
	P.api_tls = settings_https(cfg);
	if (pup_transport_parse(cfg->proxy.transport, &P.transport) < 0)
		return err_set(e, EINVAL, "proxy.transport must be auto, agent or ip");
	if (P.api_tls && tls_context(cfg, e) < 0)
		return -EINVAL;
	if (!cfg->public_proxy_listen)
		return 0;
	char *host = NULL;
	int port;
	int r = settings_parse_listen(cfg->public_proxy_listen, &host, &port, e);
	if (r < 0)
		return r;
	r = listen_start(host, port, (unsigned)cfg->proxy.max_conns_per_ip, on_accept, NULL, &P.l, e);
	free(host);
	if (r < 0)
		return r;
	P.https_port = port;
	if (P.api_tls && cfg->tls.http_listen) {
		host = NULL;
		r = settings_parse_listen(cfg->tls.http_listen, &host, &port, e);
		if (r == 0)
			r = listen_start(host, port, (unsigned)cfg->proxy.max_conns_per_ip,
					 on_accept_http, NULL, &P.l80, e);
		free(host);
		if (r < 0)
			return r;
	}
	P.listening = xstrdup(listen_describe(P.l));
	return 0;
}

const char *proxy_listening(void)
{
	return P.listening;
}

int proxy_port(void)
{
	return P.l ? listen_port(P.l) : 0;
}

void proxy_stop(void)
{
	while (P.conns)
		conn_close(P.conns);
	listen_free(P.l);
	listen_free(P.l80);
	P.l = P.l80 = NULL;
	free(P.by_ip.slot);
	free(P.by_alias.slot);
	free(P.listening);
	SSL_CTX_free(P.tls);
	memset(&P, 0, sizeof(P));
}
