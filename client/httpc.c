/* httpc.c — HTTP/1.1 request heads and an incremental response parser,
 * free of I/O (see httpc.h for the states). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpc.h"

enum { S_HEAD, S_LEN, S_CLOSE, S_SIZE, S_DATA, S_CRLF, S_TRAILER, S_DONE, S_ERROR };

void httpc_init(struct httpc *p, bool head_request)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->line);
	p->state = S_HEAD;
	p->no_body = head_request;
	p->head.clen = -1;
}

void httpc_release(struct httpc *p)
{
	buf_release(&p->line);
}

static int fail(struct httpc *p, struct err *e, const char *fmt, const char *arg)
{
	p->state = S_ERROR;
	return err_set(e, EPROTO, fmt, arg);
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

/* The head is in p->line (ending "\r\n\r\n"): fill p->head, pick the body's
 * framing. */
static int parse_head(struct httpc *p, struct err *e)
{
	struct httpc_head *h = &p->head;
	char *head = p->line.data;
	int major, minor, status;
	if (sscanf(head, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 ||
	    status > 999) {
		char first[96];
		snprintf(first, sizeof(first), "%.*s", (int)MIN(strcspn(head, "\r\n"), 80), head);
		return fail(p, e, "the daemon's answer is not HTTP: '%s'", first);
	}
	h->status = status;
	for (char *line = strstr(head, "\r\n") + 2; line[0] != '\r'; line = strstr(line, "\r\n") + 2) {
		size_t nl = strcspn(line, ":\r\n");
		if (line[nl] != ':')
			continue;
		char v[256];
		header_value(line, nl, v, sizeof(v));
		if (nl == 14 && strncasecmp(line, "Content-Length", nl) == 0) {
			char *ep;
			errno = 0;
			h->clen = strtoll(v, &ep, 10);
			if (errno || *ep || h->clen < 0 || v[0] == '\0')
				return fail(p, e, "bad Content-Length '%s' from the daemon", v);
		} else if (nl == 17 && strncasecmp(line, "Transfer-Encoding", nl) == 0) {
			h->chunked = strcasestr(v, "chunked") != NULL;
		} else if (nl == 11 && strncasecmp(line, "Retry-After", nl) == 0) {
			snprintf(h->retry_after, sizeof(h->retry_after), "%s", v);
		} else if (nl == 17 && strncasecmp(line, "X-Bhatti-Existing", nl) == 0) {
			h->existing = strcasecmp(v, "true") == 0;
		} else if (nl == 12 && strncasecmp(line, "X-Bhatti-API", nl) == 0) {
			h->api = (int)strtol(v, NULL, 10);
		} else if (nl == 16 && strncasecmp(line, "X-Bhatti-Version", nl) == 0) {
			snprintf(h->server_version, sizeof(h->server_version), "%s", v);
		} else if (nl == 20 && strncasecmp(line, "Sec-WebSocket-Accept", nl) == 0) {
			snprintf(h->ws_accept, sizeof(h->ws_accept), "%s", v);
		}
	}
	buf_reset(&p->line);
	if (p->no_body || status < 200 || status == 204 || status == 304)
		p->state = S_DONE;
	else if (h->chunked)
		p->state = S_SIZE;
	else if (h->clen == 0)
		p->state = S_DONE;
	else if (h->clen > 0)
		p->state = S_LEN, p->left = (unsigned long long)h->clen;
	else
		p->state = S_CLOSE;
	return 0;
}

/* Gather the head from in: HTTPC_HEAD when it is complete. Only the bytes
 * up to its end are used. */
static int take_head(struct httpc *p, const char *in, size_t n, size_t *used, struct err *e)
{
	size_t old = p->line.len;
	size_t from = old > 3 ? old - 3 : 0;
	size_t add = MIN(n, HTTPC_MAX_HEAD + 4 - old);   /* not a whole body after it */
	buf_add(&p->line, in, add);
	char *end = memmem(p->line.data + from, p->line.len - from, "\r\n\r\n", 4);
	if (!end) {
		*used = add;
		if (p->line.len > HTTPC_MAX_HEAD) {
			p->state = S_ERROR;
			return err_set(e, EPROTO, "the daemon's answer has a head over %u bytes",
				       HTTPC_MAX_HEAD);
		}
		return HTTPC_MORE;
	}
	size_t head_len = (size_t)(end - p->line.data) + 4;
	*used = head_len - old;
	buf_setlen(&p->line, head_len);
	if (memchr(p->line.data, '\0', head_len)) {   /* parse_head reads C strings */
		p->state = S_ERROR;
		return err_set(e, EPROTO, "the daemon's answer has a NUL byte in its head");
	}
	int rc = parse_head(p, e);
	return rc < 0 ? rc : HTTPC_HEAD;
}

/* Gather one line (up to "\n") into p->line: 1 when it is complete. */
static int take_line(struct httpc *p, const char *in, size_t n, size_t *used, size_t max)
{
	const char *nl = memchr(in + *used, '\n', n - *used);
	size_t take = nl ? (size_t)(nl - in) + 1 - *used : n - *used;
	buf_add(&p->line, in + *used, take);
	*used += take;
	if (p->line.len > max)
		return -1;
	return nl ? 1 : 0;
}

static int chunk_size(struct httpc *p, struct err *e)
{
	char *ep;
	errno = 0;
	unsigned long long size = strtoull(p->line.data, &ep, 16);
	if (ep == p->line.data || errno || (*ep != '\r' && *ep != ';') ||
	    !strchr(p->line.data, '\r') || size > (1ull << 62))
		return fail(p, e, "%s", "bad chunk header from the daemon");
	buf_reset(&p->line);
	p->left = size;
	p->state = size ? S_DATA : S_TRAILER;
	return 0;
}

int httpc_parse(struct httpc *p, const char *in, size_t n, size_t *ret_used,
		const char **ret_piece, size_t *ret_len, struct err *e)
{
	size_t used = 0;
	int rc = HTTPC_MORE;
	*ret_piece = NULL;
	*ret_len = 0;
	for (;;) {
		if (p->state == S_ERROR) {
			rc = err_set(e, EPROTO, "the daemon's answer was malformed");
			break;
		}
		if (p->state == S_DONE) {
			rc = HTTPC_DONE;
			break;
		}
		if (used == n)
			break;
		if (p->state == S_HEAD) {
			size_t u;
			rc = take_head(p, in, n, &u, e);
			used += u;
			break;
		}
		if (p->state == S_LEN || p->state == S_DATA || p->state == S_CLOSE) {
			size_t take = n - used;
			if (p->state != S_CLOSE && take > p->left)
				take = (size_t)p->left;
			*ret_piece = in + used;
			*ret_len = take;
			used += take;
			if (p->state != S_CLOSE)
				p->left -= take;
			if (p->state == S_LEN && p->left == 0)
				p->state = S_DONE;
			else if (p->state == S_DATA && p->left == 0)
				p->state = S_CRLF;
			rc = HTTPC_BODY;
			break;
		}
		if (p->state == S_CRLF) {
			/* "\r\n" after the chunk's data, maybe split across feeds */
			while (used < n && p->line.len < 2)
				buf_addch(&p->line, in[used++]);
			if (p->line.len < 2)
				break;
			if (memcmp(p->line.data, "\r\n", 2) != 0) {
				rc = fail(p, e, "%s", "bad chunk end from the daemon");
				break;
			}
			buf_reset(&p->line);
			p->state = S_SIZE;
			continue;
		}
		size_t before = used;
		int got = take_line(p, in, n, &used, p->state == S_SIZE ? HTTPC_MAX_LINE : HTTPC_MAX_HEAD);
		if (p->state == S_TRAILER)
			p->trailer += used - before;
		if (got < 0 || p->trailer > HTTPC_MAX_HEAD) {
			rc = fail(p, e, "%s", p->state == S_SIZE ? "bad chunk header from the daemon"
								 : "the daemon's trailers are too long");
			break;
		}
		if (got == 0)
			break;
		if (p->state == S_SIZE) {
			if ((rc = chunk_size(p, e)) < 0)
				break;
		} else {   /* a trailer line; the empty one ends the answer */
			if (strcmp(p->line.data, "\r\n") == 0 || strcmp(p->line.data, "\n") == 0)
				p->state = S_DONE;
			buf_reset(&p->line);
		}
	}
	*ret_used = used;
	return rc;
}

int httpc_feed(struct httpc *p, const char *in, size_t n, const struct httpc_sink *sink,
	       void *arg, size_t *ret_used, struct err *e)
{
	size_t off = 0;
	int ev;
	for (;;) {
		size_t used, len;
		const char *piece;
		ev = httpc_parse(p, in + off, n - off, &used, &piece, &len, e);
		off += used;
		if (ev < 0 || ev == HTTPC_MORE || ev == HTTPC_DONE)
			break;
		bool go_on = ev == HTTPC_HEAD ? sink->head(arg, &p->head) : sink->body(arg, piece, len);
		if (!go_on) {
			ev = HTTPC_STOPPED;
			break;
		}
	}
	*ret_used = off;
	return ev;
}

int httpc_eof(struct httpc *p, struct err *e)
{
	switch (p->state) {
	case S_CLOSE:
	case S_TRAILER:
	case S_DONE:
		p->state = S_DONE;
		return HTTPC_DONE;
	case S_HEAD:
		return err_set(e, ECONNRESET, "the daemon closed the connection without an answer");
	case S_LEN:
		return err_set(e, ECONNRESET,
			       "the daemon closed the connection %llu bytes before the end of the answer",
			       p->left);
	case S_ERROR:
		return err_set(e, EPROTO, "the daemon's answer was malformed");
	default:
		return err_set(e, ECONNRESET, "the answer was cut short");
	}
}

void httpc_request(struct buf *out, const char *method, const char *host, const char *prefix,
		   const char *path, const char *extra, long long body_len)
{
	buf_addf(out, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: bhatti/" BHATTI_VERSION "\r\n",
		 method, prefix, path, host);
	if (body_len >= 0)
		buf_addf(out, "Content-Length: %lld\r\n", body_len);
	buf_addf(out, "%s\r\n", extra ? extra : "");
}

char *httpc_escape(const char *s)
{
	struct buf b = BUF_INIT;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		    strchr("-._~/", *c))
			buf_addch(&b, (char)*c);
		else
			buf_addf(&b, "%%%02X", *c);
	}
	return buf_detach(&b, NULL);
}
