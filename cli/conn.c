/* conn.c — URL, dial and HTTP/1.1 framing for the CLI (see conn.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "num.h"
#include "util.h"

/* ---- URL and dial ------------------------------------------------------------ */

/* "http://host[:port][/prefix]" → host, port, Host: value and prefix. */
static int parse_url(struct conn *c, const char *url, char *host, size_t hsz, char *port,
		     size_t psz, struct err *e)
{
	if (strncasecmp(url, "https://", 8) == 0)
		return err_set(e, EINVAL,
			       "'%s': the CLI speaks plain http:// only (for a remote daemon use an "
			       "SSH tunnel: ssh -L 8080:127.0.0.1:8080 HOST)", url);
	if (strncasecmp(url, "http://", 7) != 0)
		return err_set(e, EINVAL, "'%s' is not an http:// URL", url);
	const char *hp = url + 7;
	size_t hl = strcspn(hp, "/?#");
	if (hl == 0 || hl >= sizeof(c->host))
		return err_set(e, EINVAL, "'%s': no host or a host that is too long", url);
	memcpy(c->host, hp, hl);
	c->host[hl] = '\0';
	const char *rest = hp + hl;
	if (strlen(rest) >= sizeof(c->prefix) || strpbrk(rest, "?#"))
		return err_set(e, EINVAL, "'%s': the URL may have a path but no query", url);
	snprintf(c->prefix, sizeof(c->prefix), "%s", rest);
	size_t pl = strlen(c->prefix);
	while (pl && c->prefix[pl - 1] == '/')
		c->prefix[--pl] = '\0';

	const char *h = c->host, *colon;
	size_t nl;
	if (h[0] == '[') {   /* [v6]:port */
		const char *close = strchr(h, ']');
		if (!close)
			return err_set(e, EINVAL, "'%s': unclosed '[' in the host", url);
		nl = (size_t)(close - h - 1);
		h++;
		colon = close[1] == ':' ? close + 1 : NULL;
		if (close[1] && !colon)
			return err_set(e, EINVAL, "'%s': junk after ']'", url);
	} else {
		colon = strchr(h, ':');
		nl = colon ? (size_t)(colon - h) : strlen(h);
	}
	if (nl == 0 || nl >= hsz)
		return err_set(e, EINVAL, "'%s': bad host", url);
	memcpy(host, h, nl);
	host[nl] = '\0';
	const char *p = colon ? colon + 1 : "80";
	uint32_t pn;
	if (num_parse_u32(p, 1, 65535, &pn, "port", NULL) < 0)
		return err_set(e, EINVAL, "'%s': bad port '%s'", url, p);
	snprintf(port, psz, "%u", pn);
	return 0;
}

/* Connect one address with a timeout; 0 or an errno. */
static int connect_timed(int fd, const struct addrinfo *ai, int timeout_ms)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	int rc = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
	if (rc == EINPROGRESS) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int n;
		do
			n = poll(&p, 1, timeout_ms);
		while (n < 0 && errno == EINTR);
		socklen_t sl = sizeof(rc);
		if (n == 0)
			rc = ETIMEDOUT;
		else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &sl) < 0)
			rc = errno;
	}
	fcntl(fd, F_SETFL, fl);
	return rc;
}

int conn_open(struct conn *c, const char *base_url, struct err *e)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	buf_init(&c->in);
	char host[256], port[8];
	if (parse_url(c, base_url, host, sizeof(host), port, sizeof(port), e) < 0)
		return -1;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		return err_set(e, EHOSTUNREACH, "cannot resolve '%s': %s", host, gai_strerror(rc));
	int err = ECONNREFUSED;
	for (struct addrinfo *ai = res; ai && c->fd < 0; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		err = connect_timed(fd, ai, CONN_CONNECT_TIMEOUT_MS);
		if (err) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
	}
	freeaddrinfo(res);
	if (c->fd < 0)
		return err_set(e, err, "cannot reach the daemon at %s (%s)", base_url, strerror(err));
	return 0;
}

void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buf_release(&c->in);
}

/* ---- request ---------------------------------------------------------------- */

int conn_send(struct conn *c, const void *p, size_t n, struct err *e)
{
	const char *q = p;
	while (n) {
		/* MSG_NOSIGNAL: a daemon that answered early (413, 401) and
		 * closed must not kill us with SIGPIPE before we read why */
		ssize_t w = send(c->fd, q, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return err_set(e, errno, "writing to the daemon: %s", strerror(errno));
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

int conn_send_head(struct conn *c, const char *method, const char *path, const char *extra,
		   long long body_len, struct err *e)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: bhatti/" BHATTI_VERSION "\r\n",
		 method, c->prefix, path, c->host);
	if (body_len >= 0)
		buf_addf(&b, "Content-Length: %lld\r\n", body_len);
	buf_addf(&b, "%s\r\n", extra ? extra : "");
	int rc = conn_send(c, b.data, b.len, e);
	memset(b.data, 0, b.len);   /* it holds the API key */
	buf_release(&b);
	return rc;
}

/* ---- response ---------------------------------------------------------------- */

/* Read more bytes into c->in: >0, 0 at EOF, -1 on error. */
static ssize_t fill(struct conn *c, struct err *e)
{
	char tmp[65536];
	ssize_t n;
	do
		n = read(c->fd, tmp, sizeof(tmp));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return err_set(e, errno, "reading from the daemon: %s", strerror(errno));
	buf_add(&c->in, tmp, (size_t)n);
	return n;
}

static void header_value(const char *line, size_t nl, char *out, size_t osz)
{
	const char *v = line + nl + 1;
	v += strspn(v, " \t");
	snprintf(out, osz, "%.*s", (int)strcspn(v, "\r\n"), v);
	size_t l = strlen(out);
	while (l && (out[l - 1] == ' ' || out[l - 1] == '\t'))
		out[--l] = '\0';
}

int conn_read_head(struct conn *c, struct conn_head *h, struct err *e)
{
	memset(h, 0, sizeof(*h));
	h->clen = -1;
	char *end;
	while (!(end = c->in.len ? memmem(c->in.data, c->in.len, "\r\n\r\n", 4) : NULL)) {
		if (c->in.len > CONN_MAX_HEAD)
			return err_set(e, EPROTO, "the daemon's answer has a head over %u bytes",
				       CONN_MAX_HEAD);
		ssize_t n = fill(c, e);
		if (n < 0)
			return -1;
		if (n == 0)
			return err_set(e, ECONNRESET, "the daemon closed the connection without an answer");
	}
	size_t head_len = (size_t)(end - c->in.data) + 4;
	char *head = xstrndup(c->in.data, head_len);
	buf_consume(&c->in, head_len);
	int rc = 0;
	int major, minor, status;
	if (sscanf(head, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 ||
	    status > 999) {
		rc = err_set(e, EPROTO, "the daemon's answer is not HTTP: '%.*s'",
			     (int)MIN(strcspn(head, "\r\n"), 80), head);
		goto out;
	}
	h->status = status;
	for (char *line = strstr(head, "\r\n") + 2; *line && line[0] != '\r';
	     line = strstr(line, "\r\n") + 2) {
		size_t nl = strcspn(line, ":\r\n");
		if (line[nl] != ':')
			continue;
		char v[256];
		header_value(line, nl, v, sizeof(v));
		if (nl == 14 && strncasecmp(line, "Content-Length", nl) == 0) {
			char *ep;
			errno = 0;
			h->clen = strtoll(v, &ep, 10);
			if (errno || *ep || h->clen < 0 || v[0] == '\0') {
				rc = err_set(e, EPROTO, "bad Content-Length '%s' from the daemon", v);
				goto out;
			}
		} else if (nl == 17 && strncasecmp(line, "Transfer-Encoding", nl) == 0) {
			h->chunked = strcasestr(v, "chunked") != NULL;
		} else if (nl == 11 && strncasecmp(line, "Retry-After", nl) == 0) {
			snprintf(h->retry_after, sizeof(h->retry_after), "%s", v);
		} else if (nl == 17 && strncasecmp(line, "X-Bhatti-Existing", nl) == 0) {
			h->existing = strcasecmp(v, "true") == 0;
		} else if (nl == 20 && strncasecmp(line, "Sec-WebSocket-Accept", nl) == 0) {
			snprintf(h->ws_accept, sizeof(h->ws_accept), "%s", v);
		}
	}
out:
	free(head);
	return rc;
}

/* Give n bytes from the front of c->in to fn. */
static int deliver(struct conn *c, size_t n, bool (*fn)(const char *, size_t, void *), void *arg)
{
	bool more = !fn || fn(c->in.data, n, arg);
	buf_consume(&c->in, n);
	return more ? 0 : 1;
}

/* A body of known length (len < 0: up to the close). */
static int body_plain(struct conn *c, long long len, bool (*fn)(const char *, size_t, void *),
		      void *arg, struct err *e)
{
	long long left = len;
	for (;;) {
		if (c->in.len) {
			size_t n = len < 0 ? c->in.len : (size_t)MIN((long long)c->in.len, left);
			if (deliver(c, n, fn, arg))
				return 1;
			left -= (long long)n;
		}
		if (len >= 0 && left == 0)
			return 0;
		ssize_t r = fill(c, e);
		if (r < 0)
			return -1;
		if (r == 0)
			return len < 0 ? 0
				       : err_set(e, ECONNRESET, "the daemon closed the connection "
								"%lld bytes before the end of the answer",
						 left);
	}
}

static int body_chunked(struct conn *c, bool (*fn)(const char *, size_t, void *), void *arg,
			struct err *e)
{
	for (;;) {
		char *eol;
		while (!(eol = c->in.len ? memmem(c->in.data, c->in.len, "\r\n", 2) : NULL)) {
			if (c->in.len > 1024)
				return err_set(e, EPROTO, "bad chunk header from the daemon");
			ssize_t r = fill(c, e);
			if (r <= 0)
				return r < 0 ? -1 : err_set(e, ECONNRESET, "the answer was cut short");
		}
		char *ep;
		unsigned long long size = strtoull(c->in.data, &ep, 16);
		if (ep == c->in.data || (*ep != '\r' && *ep != ';'))
			return err_set(e, EPROTO, "bad chunk header from the daemon");
		buf_consume(&c->in, (size_t)(eol - c->in.data) + 2);
		if (size == 0) {   /* trailers, then the blank line */
			while (!(c->in.len >= 2 && memmem(c->in.data, c->in.len, "\r\n", 2))) {
				ssize_t r = fill(c, e);
				if (r <= 0)
					return r < 0 ? -1 : 0;
			}
			return 0;
		}
		int rc = body_plain(c, (long long)size, fn, arg, e);
		if (rc)
			return rc;
		while (c->in.len < 2) {
			ssize_t r = fill(c, e);
			if (r <= 0)
				return r < 0 ? -1 : err_set(e, ECONNRESET, "the answer was cut short");
		}
		if (memcmp(c->in.data, "\r\n", 2) != 0)
			return err_set(e, EPROTO, "bad chunk end from the daemon");
		buf_consume(&c->in, 2);
	}
}

int conn_read_body(struct conn *c, const struct conn_head *h, bool no_body,
		   bool (*fn)(const char *p, size_t n, void *arg), void *arg, struct err *e)
{
	if (no_body || h->status < 200 || h->status == 204 || h->status == 304)
		return 0;
	if (h->chunked)
		return body_chunked(c, fn, arg, e);
	return body_plain(c, h->clen, fn, arg, e);
}
