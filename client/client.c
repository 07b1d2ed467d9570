/* client.c — settings, the client object, dialing and the synchronous
 * calls of the client library (see client.h). */
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

#include "client.h"
#include "config.h"
#include "httpc.h"
#include "num.h"
#include "tls.h"

/* ---- settings ------------------------------------------------------------- */

char *client_config_path(void)
{
	const char *home = getenv("HOME");
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/.bhatti/config.yaml", home && home[0] ? home : ".");
	return buf_detach(&b, NULL);
}

/* The seed system's keys (api_url, auth_token: what `bhatti setup`
 * writes) and this project's first ones (url, token), both read; the
 * seed's win when a file has both. */
struct file_cfg {
	char *api_url, *auth_token;
	char *url, *token;
	char *ca;
	char *theme;              /* bhatti tui's (docs/tui.md) */
};

static const struct config_key file_keys[] = {
	CONFIG_KEY_STR("api_url", struct file_cfg, api_url),
	CONFIG_KEY_STR("auth_token", struct file_cfg, auth_token),
	CONFIG_KEY_STR("url", struct file_cfg, url),
	CONFIG_KEY_STR("token", struct file_cfg, token),
	CONFIG_KEY_STR("ca", struct file_cfg, ca),
	CONFIG_KEY_STR("theme", struct file_cfg, theme),
};

static const char *first_set(const char *a, const char *b)
{
	return a && a[0] ? a : b && b[0] ? b : NULL;
}

void client_settings_resolve(struct client_settings *s, const char *flag_url,
			     const char *flag_token, struct err *warning)
{
	struct file_cfg fc = { 0 };
	char *path = client_config_path();
	struct err e = ERR_INIT;
	if (access(path, F_OK) == 0 &&
	    config_load_file(path, file_keys, ARRAY_SIZE(file_keys), &fc, &e) < 0)
		err_set(warning, e.code ? e.code : EINVAL, "ignoring %s: %s", path, err_str(&e));
	free(path);
	const char *env_url = getenv("BHATTI_URL"), *env_tok = getenv("BHATTI_TOKEN");
	const char *file_url = first_set(fc.api_url, fc.url);
	const char *file_tok = first_set(fc.auth_token, fc.token);
	const char *url = CLIENT_DEFAULT_URL, *from = "default";
	/* flags > environment > ~/.bhatti/config.yaml > default: the
	 * environment is how one command (or a script) points elsewhere
	 * without touching the saved settings */
	if (flag_url)
		url = flag_url, from = "flag";
	else if (env_url && env_url[0])
		url = env_url, from = "env";
	else if (file_url)
		url = file_url, from = "config";
	const char *tok = flag_token ? flag_token
			  : env_tok && env_tok[0] ? env_tok
			  : file_tok ? file_tok
			  : "";
	s->url = xstrdup(url);
	size_t n = strlen(s->url);
	while (n && s->url[n - 1] == '/')
		s->url[--n] = '\0';
	s->token = xstrdup(tok);
	s->url_from = from;
	s->connect_timeout_ms = CLIENT_CONNECT_TIMEOUT_MS;
	const char *env_ca = getenv("BHATTI_CA");
	s->ca = env_ca && env_ca[0] ? xstrdup(env_ca) : fc.ca && fc.ca[0] ? xstrdup(fc.ca) : NULL;
	const char *env_theme = getenv("BHATTI_THEME");
	const char *theme = env_theme && env_theme[0] ? env_theme
			    : fc.theme && fc.theme[0] ? fc.theme
			    : NULL;
	s->theme = theme ? xstrdup(theme) : NULL;
	s->file_theme = fc.theme && fc.theme[0] ? xstrdup(fc.theme) : NULL;
	config_release(file_keys, ARRAY_SIZE(file_keys), &fc);
}

void client_settings_release(struct client_settings *s)
{
	free(s->url);
	free(s->ca);
	if (s->token)
		memset(s->token, 0, strlen(s->token));
	free(s->token);
	free(s->theme);
	free(s->file_theme);
	memset(s, 0, sizeof(*s));
}

/* ---- the client ------------------------------------------------------------ */

/* "http[s]://host[:port][/prefix]" → host, port, Host: value and prefix. */
static int parse_url(struct client *c, const char *url, struct err *e)
{
	c->tls = strncasecmp(url, "https://", 8) == 0;
	if (!c->tls && strncasecmp(url, "http://", 7) != 0)
		return err_set(e, EINVAL, "'%s' is not an http:// or https:// URL", url);
	const char *hp = url + (c->tls ? 8 : 7);
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
	if (nl == 0 || nl >= sizeof(c->name))
		return err_set(e, EINVAL, "'%s': bad host", url);
	memcpy(c->name, h, nl);
	c->name[nl] = '\0';
	const char *p = colon ? colon + 1 : c->tls ? "443" : "80";
	uint32_t pn;
	if (num_parse_u32(p, 1, 65535, &pn, "port", NULL) < 0)
		return err_set(e, EINVAL, "'%s': bad port '%s'", url, p);
	snprintf(c->port, sizeof(c->port), "%u", pn);
	return 0;
}

struct client *client_new(const struct client_settings *s)
{
	struct client *c = xcalloc(1, sizeof(*c));
	c->url = xstrdup(s->url ? s->url : CLIENT_DEFAULT_URL);
	c->token = xstrdup(s->token ? s->token : "");
	c->connect_timeout_ms = s->connect_timeout_ms > 0 ? s->connect_timeout_ms
							  : CLIENT_CONNECT_TIMEOUT_MS;
	c->ca = s->ca ? xstrdup(s->ca) : NULL;
	parse_url(c, c->url, &c->url_err);
	return c;
}

void client_free(struct client *c)
{
	if (!c)
		return;
	memset(c->token, 0, strlen(c->token));
	free(c->token);
	free(c->url);
	free(c->ca);
	free(c);
}

bool client_unreachable(const struct err *e)
{
	switch (e->code) {
	case ECONNREFUSED:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ETIMEDOUT:
	case EADDRNOTAVAIL:
		return true;
	default:
		return false;
	}
}

/* ---- dialing ------------------------------------------------------------------ */

int client_resolve(const struct client *c, struct addrinfo **ret, struct err *e)
{
	if (c->url_err.code)
		return err_set(e, c->url_err.code, "%s", c->url_err.msg);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	int rc = getaddrinfo(c->name, c->port, &hints, ret);
	if (rc != 0)
		return err_set(e, EHOSTUNREACH, "cannot resolve '%s': %s", c->name, gai_strerror(rc));
	return 0;
}

int client_connect_start(const struct addrinfo *ai, int *ret_fd)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*ret_fd = fd;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	return -errno;   /* -EINPROGRESS: the fd is the caller's to wait on */
}

int client_connect_result(int fd)
{
	int err = 0;
	socklen_t sl = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
		return -errno;
	return -err;
}

int client_connect_error(const struct client *c, int code, struct err *e)
{
	return err_set(e, code, "cannot reach the daemon at %s (%s)", c->url, strerror(code));
}

/* A blocking, connected socket to the daemon. */
static int dial_tcp(const struct client *c, int *ret_fd, struct err *e)
{
	struct addrinfo *res;
	int rc = client_resolve(c, &res, e);
	if (rc < 0)
		return rc;
	int err = ECONNREFUSED, fd = -1;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		rc = client_connect_start(ai, &fd);
		if (rc == -EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int n;
			do
				n = poll(&p, 1, c->connect_timeout_ms);
			while (n < 0 && errno == EINTR);
			rc = n == 0 ? -ETIMEDOUT : n < 0 ? -errno : client_connect_result(fd);
		}
		if (rc < 0) {
			err = -rc;
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return client_connect_error(c, err, e);
	fd_set_nonblock(fd, false);
	*ret_fd = fd;
	return 0;
}

/* One synchronous call's connection: a socket, and TLS over it for https. */
struct conn {
	int fd;
	struct ctls *tls;
};

static int dial(const struct client *c, struct conn *ret, struct err *e)
{
	int fd = -1;
	int rc = dial_tcp(c, &fd, e);
	if (rc < 0)
		return rc;
	struct ctls *t = NULL;
	if (c->tls && (rc = ctls_open(fd, c->name, c->ca, &t, e)) < 0) {
		close(fd);
		return rc;
	}
	*ret = (struct conn){ .fd = fd, .tls = t };
	return 0;
}

static void conn_close(struct conn *cn)
{
	ctls_free(cn->tls);
	close(cn->fd);
}

static ssize_t conn_read(struct conn *cn, void *p, size_t n, struct err *e)
{
	if (cn->tls)
		return ctls_read(cn->tls, p, n, e);
	ssize_t k;
	do
		k = read(cn->fd, p, n);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		err_set(e, errno, "reading from the daemon: %s", strerror(errno));
	return k;
}

void client_head(const struct client *c, struct buf *out, const char *method, const char *path,
		 const char *extra, long long body_len)
{
	struct buf h = BUF_INIT;
	if (c->token[0])
		buf_addf(&h, "Authorization: Bearer %s\r\n", c->token);
	buf_adds(&h, extra ? extra : "");
	httpc_request(out, method, c->host, c->prefix, path, h.data, body_len);
	client_scrub(&h);
}

void client_scrub(struct buf *b)
{
	memset(b->data, 0, b->len);
	buf_release(b);
}

/* ---- synchronous calls ------------------------------------------------------- */

void client_resp_release(struct client_resp *r)
{
	buf_release(&r->body);
}

static int send_all(struct conn *cn, const void *p, size_t n, struct err *e)
{
	const char *q = p;
	while (n) {
		if (cn->tls) {
			ssize_t w = ctls_write(cn->tls, q, n, e);
			if (w < 0)
				return -1;
			q += w;
			n -= (size_t)w;
			continue;
		}
		/* MSG_NOSIGNAL: a daemon that answered early (413, 401) and
		 * closed must not kill us with SIGPIPE before we read why */
		ssize_t w = send(cn->fd, q, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return err_set(e, errno, "writing to the daemon: %s", strerror(errno));
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The body: from memory, or rq->len bytes read from rq->body_fd. */
static int send_body(struct conn *cn, const struct client_req *rq, struct err *e)
{
	if (rq->body_fd < 0)
		return rq->len ? send_all(cn, rq->body, rq->len, e) : 0;
	char tmp[65536];
	size_t left = rq->len;
	while (left) {
		ssize_t n = read(rq->body_fd, tmp, MIN(sizeof(tmp), left));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_set(e, n < 0 ? errno : EIO, "reading the local file: %s",
				       n < 0 ? strerror(errno) : "it got shorter while being sent");
		if (send_all(cn, tmp, (size_t)n, e) < 0)
			return -1;
		left -= (size_t)n;
	}
	return 0;
}

struct answer {
	const struct client_req *rq;
	struct client_resp *r;
	uint64_t t0;              /* the call's start (now_ns) */
};

static bool answer_head(void *arg, const struct httpc_head *h)
{
	struct answer *a = arg;
	a->r->status = h->status;
	snprintf(a->r->retry_after, sizeof(a->r->retry_after), "%s", h->retry_after);
	a->r->existing = h->existing;
	a->r->api = h->api;
	a->r->t_head = (now_ns() - a->t0) / 1000;
	snprintf(a->r->server_version, sizeof(a->r->server_version), "%s", h->server_version);
	return true;
}

static bool answer_body(void *arg, const char *p, size_t n)
{
	struct answer *a = arg;
	if (a->rq->on_body && a->r->status >= 200 && a->r->status < 300)
		return a->rq->on_body(p, n, a->rq->arg);   /* false: the consumer stopped */
	if (a->r->body.len < CLIENT_MAX_ERROR_BODY)
		buf_add(&a->r->body, p, n);
	return true;
}

static const struct httpc_sink answer_sink = { .head = answer_head, .body = answer_body };

/* Read and parse the answer. 0 at its end (or when on_body stopped). */
static int read_answer(struct conn *cn, const struct client_req *rq, struct client_resp *r,
		       uint64_t t0, struct err *e)
{
	struct httpc p;
	struct answer a = { .rq = rq, .r = r, .t0 = t0 };
	httpc_init(&p, strcmp(rq->method, "HEAD") == 0);
	char tmp[65536];
	int rc = HTTPC_MORE;
	while (rc == HTTPC_MORE) {
		ssize_t n = conn_read(cn, tmp, sizeof(tmp), e);
		size_t used;
		if (n < 0)
			rc = -(e && e->code ? e->code : EIO);
		else if (n == 0)
			rc = httpc_eof(&p, e);
		else
			rc = httpc_feed(&p, tmp, (size_t)n, &answer_sink, &a, &used, e);
	}
	httpc_release(&p);
	return rc < 0 ? rc : 0;
}

int client_call(struct client *c, const struct client_req *rq, struct client_resp *ret,
		struct err *e)
{
	memset(ret, 0, sizeof(*ret));
	buf_init(&ret->body);
	uint64_t t0 = now_ns();
	struct conn cn;
	int rc = dial(c, &cn, e);
	if (rc < 0)
		return rc;
	ret->t_connect = (now_ns() - t0) / 1000;
	struct buf h = BUF_INIT, extra = BUF_INIT;
	if (rq->ctype)
		buf_addf(&extra, "Content-Type: %s\r\n", rq->ctype);
	if (rq->accept)
		buf_addf(&extra, "Accept: %s\r\n", rq->accept);
	buf_adds(&extra, "Connection: close\r\n");
	bool has_body = rq->body_fd >= 0 || rq->body || strcmp(rq->method, "PUT") == 0 ||
			strcmp(rq->method, "POST") == 0 || strcmp(rq->method, "PATCH") == 0;
	client_head(c, &h, rq->method, rq->path, extra.data, has_body ? (long long)rq->len : -1);
	buf_release(&extra);
	rc = send_all(&cn, h.data, h.len, e);
	client_scrub(&h);
	/* a failed send may still have an answer (the daemon refused the
	 * body early): read it before reporting the send error */
	struct err send_e = ERR_INIT;
	if (rc == 0 && has_body)
		send_body(&cn, rq, &send_e);
	ret->t_sent = (now_ns() - t0) / 1000;
	if (rc == 0)
		rc = read_answer(&cn, rq, ret, t0, e);
	ret->t_done = (now_ns() - t0) / 1000;
	conn_close(&cn);
	if (rc < 0) {
		if (send_e.code && e)
			*e = send_e;
		rc = send_e.code ? -send_e.code : rc;
		err_prefix(e, "%s %s", rq->method, rq->path);
		client_resp_release(ret);
		memset(ret, 0, sizeof(*ret));
		buf_init(&ret->body);
		return rc;
	}
	return 0;
}
